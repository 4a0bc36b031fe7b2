//! Word count over a finite, reliable spout gives exact counts, with default settings and under
//! tiny queues and batches (with and without acking): nothing lost, nothing duplicated, no
//! deadlock.

mod common;

use common::{lock, run, Ledger, NumberSpout};
use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use topology_api::config::{
    TOPOLOGY_ACKER_EXECUTORS, TOPOLOGY_EXECUTOR_RECEIVE_BUFFER_SIZE, TOPOLOGY_MAX_SPOUT_PENDING,
    TOPOLOGY_TRANSFER_BATCH_SIZE,
};
use topology_api::prelude::*;

const SENTENCES: &[&str] = &[
    "the cow jumped over the moon",
    "an apple a day keeps the doctor away",
    "four score and seven years ago",
    "snow white and the seven dwarfs",
    "i am at two with nature",
    "the quick brown fox jumps over the lazy dog",
    "to be or not to be that is the question",
    "a stitch in time saves nine",
    "all that glitters is not gold",
    "the early bird catches the worm",
    "the moon the moon the moon",
    "seven seven seven",
    "x",
];

/// Number of sentences the spout emits (id -> SENTENCES[id % len]).
const N: u64 = 130;

fn sentence(id: u64) -> &'static str {
    SENTENCES[(id % SENTENCES.len() as u64) as usize]
}

fn expected_counts() -> BTreeMap<String, u64> {
    let mut m = BTreeMap::new();
    for id in 0..N {
        for w in sentence(id).split_whitespace() {
            *m.entry(w.to_string()).or_default() += 1;
        }
    }
    m
}

/// Splits sentences into words, anchored, then acks the sentence.
struct Split;

#[async_trait]
impl Bolt for Split {
    fn declare_output_fields(&self, d: &mut OutputDeclarer) {
        d.declare(["word"]);
    }
    async fn execute(&mut self, input: Tuple, c: &mut OutputCollector) -> ComponentResult {
        for w in input.str("sentence")?.split_whitespace() {
            c.emit_anchored(&input, values![w])?;
        }
        c.ack(&input);
        Ok(())
    }
}

/// Final counts of each count task, reported at cleanup: (task id, counts).
type Finals = Arc<Mutex<Vec<(u32, HashMap<String, u64>)>>>;

struct Count {
    finals: Finals,
    task: u32,
    counts: HashMap<String, u64>,
}

#[async_trait]
impl Bolt for Count {
    fn declare_output_fields(&self, _d: &mut OutputDeclarer) {}
    async fn prepare(&mut self, ctx: &TopologyContext) -> ComponentResult {
        self.task = ctx.task_id();
        Ok(())
    }
    async fn execute(&mut self, input: Tuple, c: &mut OutputCollector) -> ComponentResult {
        if input.source_component() != "split" {
            return Err(format!("unexpected input {input:?}").into());
        }
        *self
            .counts
            .entry(input.str("word")?.to_string())
            .or_default() += 1;
        c.ack(&input);
        Ok(())
    }
    async fn cleanup(&mut self) {
        lock(&self.finals).push((self.task, std::mem::take(&mut self.counts)));
    }
}

fn topology(config: &[(&str, u64)]) -> (Topology, Arc<Ledger>, Finals) {
    let ledger = Ledger::new();
    let finals: Finals = Arc::default();
    let mut b = TopologyBuilder::new("word-count-exact");
    for (k, v) in config {
        b.config().set(*k, *v);
    }
    let l = ledger.clone();
    b.set_spout(
        "sentences",
        move || NumberSpout::new(N, &l).with_payload(&["sentence"], |id| values![sentence(id)]),
        1,
    );
    b.set_bolt("split", || Split, 2)
        .shuffle_grouping("sentences");
    let f = finals.clone();
    b.set_bolt(
        "count",
        move || Count {
            finals: f.clone(),
            task: 0,
            counts: HashMap::new(),
        },
        3,
    )
    .fields_grouping("split", ["word"]);
    (b.build().expect("valid topology"), ledger, finals)
}

/// Runs the word count with `config` and checks counts, partitioning and acks.
async fn check_word_count(config: &[(&str, u64)]) {
    let (topology, ledger, finals) = topology(config);
    let report = run(&topology).await;
    let ctx = format!("config {config:?}");

    let finals = lock(&finals).clone();
    assert_eq!(finals.len(), 3, "{ctx}: one final report per count task");
    let mut merged: BTreeMap<String, u64> = BTreeMap::new();
    let mut owner: HashMap<String, Vec<u32>> = HashMap::new();
    for (task, counts) in &finals {
        for (w, n) in counts {
            *merged.entry(w.clone()).or_default() += n;
            owner.entry(w.clone()).or_default().push(*task);
        }
    }
    assert_eq!(merged, expected_counts(), "{ctx}: counts differ");
    for (w, tasks) in &owner {
        assert_eq!(
            tasks.len(),
            1,
            "{ctx}: word {w:?} counted by tasks {tasks:?}"
        );
    }
    let used: std::collections::HashSet<u32> = owner.values().map(|t| t[0]).collect();
    assert!(
        used.len() > 1,
        "{ctx}: fields grouping put every word on one task"
    );

    assert!(
        ledger.fail_counts().is_empty(),
        "{ctx}: unexpected fails {:?}",
        ledger.fail_counts()
    );
    ledger.assert_all_acked_once(N);
    let pending_limit = config
        .iter()
        .find(|(k, _)| *k == TOPOLOGY_MAX_SPOUT_PENDING)
        .map(|(_, v)| *v as usize);
    let tracking = !config.contains(&(TOPOLOGY_ACKER_EXECUTORS, 0));
    if let (Some(limit), true) = (pending_limit, tracking) {
        let max = ledger.max_pending.load(std::sync::atomic::Ordering::SeqCst);
        assert!(max <= limit, "{ctx}: {max} trees pending, limit {limit}");
    }

    let by = report.by_component();
    let words: u64 = expected_counts().values().sum();
    assert_eq!(by["split"].executed, N, "{ctx}");
    assert_eq!(by["count"].executed, words, "{ctx}");
    assert_eq!(by["count"].acked, words, "{ctx}");
    for t in &report.tasks {
        assert!(
            t.errors.is_empty(),
            "{ctx}: task {} errors {:?}",
            t.task_id,
            t.errors
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn word_count_is_exact_with_defaults() {
    check_word_count(&[]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn word_count_is_exact_under_tiny_queues() {
    for batch in 1..=4u64 {
        for pending in [2u64, 5000] {
            check_word_count(&[
                (TOPOLOGY_EXECUTOR_RECEIVE_BUFFER_SIZE, 1),
                (TOPOLOGY_TRANSFER_BATCH_SIZE, batch),
                (TOPOLOGY_MAX_SPOUT_PENDING, pending),
            ])
            .await;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn word_count_is_exact_under_tiny_queues_without_acking() {
    for batch in 1..=4u64 {
        check_word_count(&[
            (TOPOLOGY_EXECUTOR_RECEIVE_BUFFER_SIZE, 1),
            (TOPOLOGY_TRANSFER_BATCH_SIZE, batch),
            (TOPOLOGY_MAX_SPOUT_PENDING, 2),
            (TOPOLOGY_ACKER_EXECUTORS, 0),
        ])
        .await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn word_count_is_exact_with_two_ackers() {
    check_word_count(&[
        (TOPOLOGY_ACKER_EXECUTORS, 2),
        (TOPOLOGY_EXECUTOR_RECEIVE_BUFFER_SIZE, 2),
        (TOPOLOGY_TRANSFER_BATCH_SIZE, 3),
        (TOPOLOGY_MAX_SPOUT_PENDING, 7),
    ])
    .await;
}
