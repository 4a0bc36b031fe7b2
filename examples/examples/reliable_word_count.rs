//! Reliable word count: a finite spout that keeps every message until it is acked and replays
//! the ones that fail, a split bolt, and a count bolt that fails a configurable fraction of its
//! tuples. Ends by printing how many message ids were emitted, acked, failed and replayed, and
//! exits non-zero if any id was never acked (or acked twice).
//!
//! `cargo run --release --example reliable_word_count -- --fail-fraction 0.1 local`

use clap::Parser;
use std::collections::{HashMap, VecDeque};
use std::process::ExitCode;
use std::sync::{Arc, Mutex};
use tempest_examples::{sentences, SplitSentence};
use topology_api::entry::Mode;
use topology_api::prelude::*;

#[derive(Parser)]
#[command(about = "Word count that replays failed sentences until every one is acked")]
struct Args {
    /// Number of sentences (message ids) to emit.
    #[arg(long, default_value_t = 100_000)]
    sentences: u64,
    /// Fraction of word tuples the count bolt fails (0.0 to 1.0).
    #[arg(long, default_value_t = 0.1)]
    fail_fraction: f64,
    /// Spout tasks (each emits its share of the ids).
    #[arg(long, default_value_t = 1)]
    spouts: u32,
    #[command(subcommand)]
    mode: Mode,
}

/// What the spouts saw, per message id.
#[derive(Default)]
struct Ledger {
    emitted: u64,
    replayed: u64,
    failed: u64,
    acks: HashMap<u64, u32>,
}

struct ReliableSentenceSpout {
    total: u64,
    next: u64,
    step: u64,
    pending: HashMap<u64, &'static str>,
    replay: VecDeque<u64>,
    sentences: Vec<&'static str>,
    ledger: Arc<Mutex<Ledger>>,
}

#[async_trait]
impl Spout for ReliableSentenceSpout {
    fn declare_output_fields(&self, d: &mut OutputDeclarer) {
        d.declare(["sentence"]);
    }
    async fn open(&mut self, ctx: &TopologyContext) -> ComponentResult {
        // Task k of n emits ids k, k+n, k+2n, ...
        self.next = ctx.task_index() as u64;
        self.step = ctx.component_tasks().len() as u64;
        Ok(())
    }
    async fn next_tuple(&mut self, c: &mut SpoutOutputCollector) -> ComponentResult {
        let id = if let Some(id) = self.replay.pop_front() {
            self.ledger.lock().unwrap().replayed += 1;
            id
        } else if self.next < self.total {
            let id = self.next;
            self.next += self.step;
            let s = self.sentences[(id % self.sentences.len() as u64) as usize];
            self.pending.insert(id, s);
            self.ledger.lock().unwrap().emitted += 1;
            id
        } else {
            return Ok(());
        };
        c.emit(values![self.pending[&id]], Some(id))?;
        Ok(())
    }
    async fn ack(&mut self, id: u64) {
        self.pending.remove(&id);
        *self.ledger.lock().unwrap().acks.entry(id).or_default() += 1;
    }
    async fn fail(&mut self, id: u64) {
        self.ledger.lock().unwrap().failed += 1;
        self.replay.push_back(id);
    }
    fn is_finished(&self) -> bool {
        self.next >= self.total && self.pending.is_empty()
    }
}

/// Counts words, but fails a fraction of its input (before counting it).
struct FlakyCount {
    fail_fraction: f64,
    rng: fastrand::Rng,
    counts: HashMap<String, u64>,
}

#[async_trait]
impl Bolt for FlakyCount {
    fn declare_output_fields(&self, _: &mut OutputDeclarer) {}
    async fn execute(&mut self, t: Tuple, c: &mut OutputCollector) -> ComponentResult {
        if self.rng.f64() < self.fail_fraction {
            c.fail(&t);
            return Ok(());
        }
        *self.counts.entry(t.str("word")?.to_string()).or_default() += 1;
        c.ack(&t);
        Ok(())
    }
}

fn main() -> ExitCode {
    let args = Args::parse();
    let ledger = Arc::new(Mutex::new(Ledger::default()));
    let (total, fail_fraction) = (args.sentences, args.fail_fraction);
    let mut b = TopologyBuilder::new("reliable-word-count");
    let l = ledger.clone();
    b.set_spout(
        "sentences",
        move || ReliableSentenceSpout {
            total,
            next: 0,
            step: 1,
            pending: HashMap::new(),
            replay: VecDeque::new(),
            sentences: sentences(),
            ledger: l.clone(),
        },
        args.spouts,
    );
    b.set_basic_bolt("split", || SplitSentence, 2)
        .shuffle_grouping("sentences");
    b.set_bolt(
        "count",
        move || FlakyCount {
            fail_fraction,
            rng: fastrand::Rng::new(),
            counts: HashMap::new(),
        },
        2,
    )
    .fields_grouping("split", ["word"]);
    let topology = match b.build() {
        Ok(t) => t,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::FAILURE;
        }
    };
    if topology_api::entry::run(topology, args.mode).is_err() {
        return ExitCode::FAILURE;
    }

    let l = ledger.lock().unwrap();
    let acked: u64 = l.acks.values().map(|&n| u64::from(n)).sum();
    let never_acked = (0..total).filter(|id| !l.acks.contains_key(id)).count();
    let acked_twice = l.acks.values().filter(|&&n| n > 1).count();
    println!(
        "message ids: emitted={} acked={} failed={} replayed={} never_acked={} acked_more_than_once={}",
        l.emitted, acked, l.failed, l.replayed, never_acked, acked_twice
    );
    if never_acked > 0 || acked_twice > 0 {
        eprintln!("FAILED: every message id must be acked exactly once");
        return ExitCode::FAILURE;
    }
    ExitCode::SUCCESS
}
