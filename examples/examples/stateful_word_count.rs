//! Stateful word count: the counts live in a stateful bolt's key-value state, saved at every
//! checkpoint (each second) to redb files under `tempest-state/` in the working directory.
//! Stop it with Ctrl-C, start it again: the counts continue from where they were.
//!
//! `cargo run --release --example stateful_word_count -- local`
//!
//! The spout emits sentence `i` of a fixed sequence and can rewind to any `i`, so the topology
//! also runs exactly once: `-- local -c topology.state.exactly.once=true`. The spout's position
//! is saved with each checkpoint, and a restart resumes from the last completed one, so every
//! sentence is counted exactly once however the process ends (try `kill -9`).

use clap::Parser;
use std::collections::{BTreeMap, VecDeque};
use std::process::ExitCode;
use std::time::Instant;
use tempest_examples::{sentences, SplitSentence};
use topology_api::config::{TOPOLOGY_MAX_SPOUT_PENDING, TOPOLOGY_TICK_TUPLE_FREQ_SECS};
use topology_api::prelude::*;

#[derive(Parser)]
#[command(about = "Word count with durable state: stop it, start it, the counts go on")]
struct Args {
    /// Sentences per second.
    #[arg(long, default_value_t = 2_000.0)]
    rate: f64,
    /// The mode and its flags: `local`, `local --duration 30`, ...
    #[arg(trailing_var_arg = true, allow_hyphen_values = true, required = true)]
    mode: Vec<String>,
}

/// Sentence `i` of an endless, fixed sequence: it can rewind to any `i`.
struct Sentences {
    sentences: Vec<&'static str>,
    rate: f64,
    next: u64,
    /// Failed ids to emit again (at least once).
    replay: VecDeque<u64>,
    started: Instant,
    emitted_here: u64,
}

impl Sentences {
    fn sentence(&self, i: u64) -> &'static str {
        self.sentences[(i.wrapping_mul(7919) % self.sentences.len() as u64) as usize]
    }
}

#[async_trait]
impl Spout for Sentences {
    fn declare_output_fields(&self, d: &mut OutputDeclarer) {
        d.declare(["sentence"]);
    }
    async fn next_tuple(&mut self, c: &mut SpoutOutputCollector) -> ComponentResult {
        if self.emitted_here as f64 >= self.started.elapsed().as_secs_f64() * self.rate {
            return Ok(());
        }
        let i = match self.replay.pop_front() {
            Some(i) => i,
            None => {
                self.next += 1;
                self.next - 1
            }
        };
        self.emitted_here += 1;
        c.emit(values![self.sentence(i)], Some(i))?;
        Ok(())
    }
    async fn fail(&mut self, id: u64) {
        self.replay.push_back(id);
    }
    fn position(&self) -> Option<serde_json::Value> {
        Some(self.next.into())
    }
    async fn rewind(&mut self, position: serde_json::Value) -> ComponentResult {
        self.next = position
            .as_u64()
            .ok_or("position is not a sentence number")?;
        self.replay.clear();
        Ok(())
    }
}

/// The counts, in durable state; emits each new count.
struct Count;

#[async_trait]
impl StatefulBolt for Count {
    type Key = String;
    type Value = i64;
    fn declare_output_fields(&self, d: &mut OutputDeclarer) {
        d.declare(["word", "count"]);
    }
    async fn init_state(&mut self, state: &mut KeyValueState<String, i64>) -> ComponentResult {
        let words: i64 = state.iter().map(|(_, n)| n).sum();
        println!("restored {} distinct words, {words} counted", state.len());
        Ok(())
    }
    fn execute(
        &mut self,
        input: &Tuple,
        state: &mut KeyValueState<String, i64>,
        c: &mut BasicOutputCollector<'_>,
    ) -> ComponentResult {
        let word = input.str("word")?;
        let n = state.get_or(&word.to_string(), &0) + 1;
        state.put(word.to_string(), n);
        c.emit(values![word, n])?;
        Ok(())
    }
}

/// Prints the top words every few seconds.
#[derive(Default)]
struct Report {
    counts: BTreeMap<String, i64>,
}

#[async_trait]
impl BasicBolt for Report {
    fn declare_output_fields(&self, _d: &mut OutputDeclarer) {}
    fn execute(&mut self, t: &Tuple, _c: &mut BasicOutputCollector<'_>) -> ComponentResult {
        if t.is_tick() {
            let mut top: Vec<_> = self.counts.iter().collect();
            top.sort_by(|a, b| b.1.cmp(a.1));
            let top: Vec<String> = top
                .iter()
                .take(5)
                .map(|(w, n)| format!("{w}={n}"))
                .collect();
            println!("top words: {}", top.join(" "));
            return Ok(());
        }
        self.counts
            .insert(t.str("word")?.to_string(), t.i64("count")?);
        Ok(())
    }
}

/// The topology at `rate` sentences per second (its test, `tests/stateful_word_count.rs`,
/// mocks the spout).
pub(crate) fn topology(rate: f64) -> Result<Topology, topology_api::validate::TopologyErrors> {
    let mut b = TopologyBuilder::new("stateful-word-count");
    // Acks wait for the checkpoint that saves their counts: room for a second of sentences.
    b.config().set(TOPOLOGY_MAX_SPOUT_PENDING, 20_000);
    b.set_spout(
        "sentences",
        move || Sentences {
            sentences: sentences(),
            rate,
            next: 0,
            replay: VecDeque::new(),
            started: Instant::now(),
            emitted_here: 0,
        },
        1,
    );
    b.set_basic_bolt("split", || SplitSentence, 2)
        .shuffle_grouping("sentences");
    b.set_stateful_bolt("count", || Count, 2)
        .fields_grouping("split", ["word"]);
    b.set_basic_bolt("report", Report::default, 1)
        .global_grouping("count")
        .add_config(TOPOLOGY_TICK_TUPLE_FREQ_SECS, 3);
    b.build()
}

fn main() -> ExitCode {
    let args = Args::parse();
    match topology(args.rate) {
        Ok(t) => match topology_api::entry::run(t, args.mode) {
            Ok(_) => ExitCode::SUCCESS,
            Err(_) => ExitCode::FAILURE,
        },
        Err(e) => {
            eprintln!("{e}");
            ExitCode::FAILURE
        }
    }
}
