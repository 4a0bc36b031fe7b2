//! The reliable word count: a finite spout that replays failed sentences, and a count bolt that
//! fails a fraction of its input. Used by the `reliable_word_count` example and its test.

use crate::{sentences, SplitSentence};
use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use topology_api::prelude::*;
use topology_api::validate::TopologyErrors;

/// What the spouts saw, per message id.
#[derive(Debug, Default)]
pub struct Ledger {
    /// Distinct message ids emitted.
    pub emitted: u64,
    /// Re-emissions of failed ids.
    pub replayed: u64,
    /// fail() calls.
    pub failed: u64,
    /// ack() calls per message id.
    pub acks: HashMap<u64, u32>,
}

/// A finite spout that replays every failed sentence until it is acked.
#[derive(Debug)]
pub struct ReliableSentenceSpout {
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
#[derive(Debug)]
pub struct FlakyCount {
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

impl Ledger {
    /// Ids in `0..total` never acked, and ids acked more than once.
    pub fn problems(&self, total: u64) -> (usize, usize) {
        let never = (0..total).filter(|id| !self.acks.contains_key(id)).count();
        let twice = self.acks.values().filter(|&&n| n > 1).count();
        (never, twice)
    }

    /// One line: emitted, acked, failed, replayed, never acked, acked more than once.
    pub fn summary(&self, total: u64) -> String {
        let acked: u64 = self.acks.values().map(|&n| u64::from(n)).sum();
        let (never, twice) = self.problems(total);
        format!(
            "message ids: emitted={} acked={} failed={} replayed={} never_acked={} acked_more_than_once={}",
            self.emitted, acked, self.failed, self.replayed, never, twice
        )
    }
}

/// Builds the topology: `total` sentences from `spouts` spout tasks, split (2), count (2) which
/// fails `fail_fraction` of its words. Returns it with the spouts' shared ledger.
pub fn topology(
    total: u64,
    fail_fraction: f64,
    spouts: u32,
) -> Result<(Topology, Arc<Mutex<Ledger>>), TopologyErrors> {
    let ledger = Arc::new(Mutex::new(Ledger::default()));
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
        spouts,
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
    Ok((b.build()?, ledger))
}
