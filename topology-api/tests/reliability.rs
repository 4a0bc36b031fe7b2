//! Reliability: failed and timed-out tuple trees come back to the emitting spout task as `fail`,
//! replays complete, and every message id ends acked exactly once.

mod common;

use common::{id_counts, lock, run, Ledger, NumberSpout, Recorder, Seen};
use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use topology_api::config::{TOPOLOGY_ACKER_EXECUTORS, TOPOLOGY_MESSAGE_TIMEOUT_SECS};
use topology_api::prelude::*;

/// Ids seen so far, shared by every task of a bolt (a replay may go to another task).
type SeenOnce = Arc<Mutex<HashSet<u64>>>;

/// Fails the first delivery of every id divisible by 7 (after emitting an anchored child, which
/// must not save the tree); otherwise emits the id anchored and acks.
struct Gate {
    seen: SeenOnce,
}

#[async_trait]
impl Bolt for Gate {
    fn declare_output_fields(&self, d: &mut OutputDeclarer) {
        d.declare(["id"]);
    }
    async fn execute(&mut self, input: Tuple, c: &mut OutputCollector) -> ComponentResult {
        let id = input.i64("id")? as u64;
        let first = lock(&self.seen).insert(id);
        c.emit_anchored(&input, values![id])?;
        if id % 7 == 0 && first {
            c.fail(&input);
        } else {
            c.ack(&input);
        }
        Ok(())
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failed_trees_are_failed_once_on_the_emitting_task_and_replayed() {
    const N: u64 = 200;
    let ledger = Ledger::new();
    let sink_seen: Seen = Arc::default();
    let gate_seen: SeenOnce = Arc::default();

    let mut b = TopologyBuilder::new("reliability");
    b.config()
        .set(TOPOLOGY_ACKER_EXECUTORS, 2)
        .set(TOPOLOGY_MESSAGE_TIMEOUT_SECS, 30);
    let l = ledger.clone();
    // Two executors of two tasks each: outcomes must be routed to the right task within an
    // executor, not only to the right executor.
    b.set_spout("numbers", move || NumberSpout::new(N, &l), 2)
        .set_num_tasks(4);
    let g = gate_seen.clone();
    b.set_bolt("gate", move || Gate { seen: g.clone() }, 2)
        .shuffle_grouping("numbers");
    let s = sink_seen.clone();
    b.set_bolt("sink", move || Recorder::new(&s), 2)
        .fields_grouping("gate", ["id"]);
    let report = run(&b.build().expect("valid topology")).await;

    // Every spout task was opened once, and each task emitted only its own ids.
    let mut opened = lock(&ledger.opened).clone();
    opened.sort_unstable();
    let spout_tasks: Vec<u32> = report
        .tasks
        .iter()
        .filter(|t| t.component == "numbers")
        .map(|t| t.task_id)
        .collect();
    assert_eq!(opened, spout_tasks);
    assert_eq!(opened.len(), 4);

    ledger.assert_all_acked_once(N);
    let expected_fails: BTreeMap<u64, usize> =
        (0..N).filter(|id| id % 7 == 0).map(|id| (id, 1)).collect();
    assert_eq!(ledger.fail_counts(), expected_fails);
    // Failed by the bolt, not by the 30 s timeout.
    ledger.assert_fails_within(Duration::from_secs(10));

    // The sink saw every id, the failed ones twice (first delivery and replay).
    let expected_sink: BTreeMap<u64, usize> = (0..N)
        .map(|id| (id, if id % 7 == 0 { 2 } else { 1 }))
        .collect();
    assert_eq!(id_counts(&sink_seen), expected_sink);

    let by = report.by_component();
    assert_eq!(by["numbers"].acked, N);
    assert_eq!(by["numbers"].failed, expected_fails.len() as u64);
}

/// Holds the first delivery of ids divisible by 5 without acking it; when the replay arrives,
/// acks the held (by then timed out) tuple first, then the replay. Drops the first delivery of
/// ids that are 3 mod 10 outright (never acked nor failed).
struct Forgetful {
    held: HashMap<u64, Tuple>,
    seen: HashSet<u64>,
}

#[async_trait]
impl Bolt for Forgetful {
    fn declare_output_fields(&self, _d: &mut OutputDeclarer) {}
    async fn execute(&mut self, input: Tuple, c: &mut OutputCollector) -> ComponentResult {
        let id = input.i64("id")? as u64;
        let first = self.seen.insert(id);
        if first && id % 5 == 0 {
            self.held.insert(id, input);
            return Ok(());
        }
        if first && id % 10 == 3 {
            return Ok(());
        }
        if let Some(old) = self.held.remove(&id) {
            // A late ack of a timed-out tree: must not reach the spout as a second ack.
            c.ack(&old);
        }
        c.ack(&input);
        Ok(())
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unacked_trees_time_out_and_are_replayed_and_late_acks_are_ignored() {
    const N: u64 = 40;
    let ledger = Ledger::new();
    let mut b = TopologyBuilder::new("timeouts");
    b.config().set(TOPOLOGY_MESSAGE_TIMEOUT_SECS, 1);
    let l = ledger.clone();
    b.set_spout("numbers", move || NumberSpout::new(N, &l), 1);
    b.set_bolt(
        "forgetful",
        || Forgetful {
            held: HashMap::new(),
            seen: HashSet::new(),
        },
        1,
    )
    .shuffle_grouping("numbers");
    run(&b.build().expect("valid topology")).await;

    ledger.assert_all_acked_once(N);
    let expected_fails: BTreeMap<u64, usize> = (0..N)
        .filter(|id| id % 5 == 0 || id % 10 == 3)
        .map(|id| (id, 1))
        .collect();
    assert_eq!(ledger.fail_counts(), expected_fails);

    // Each fail came from the timeout: no earlier than the timeout after the first emit, and
    // not much later either.
    let emits = lock(&ledger.emits).clone();
    for &(_, id, failed_at) in lock(&ledger.fails).iter() {
        let first_emit = emits
            .iter()
            .find(|e| e.id == id)
            .expect("failed id was emitted")
            .at;
        let after = failed_at.duration_since(first_emit);
        assert!(
            after >= Duration::from_secs(1),
            "id {id} failed {after:?} after its emit, before the 1 s timeout"
        );
        assert!(
            after < Duration::from_secs(5),
            "id {id} failed {after:?} after its emit, far past the 1 s timeout"
        );
    }
}

/// Emits each id on the default stream (consumed) and on "unheard" (no consumers), both with
/// message ids; ids on "unheard" are offset by 1000.
struct TwoStreams {
    next: u64,
    acked: Arc<Mutex<Vec<u64>>>,
    pending_after_unheard: Arc<Mutex<Vec<usize>>>,
}

#[async_trait]
impl Spout for TwoStreams {
    fn declare_output_fields(&self, d: &mut OutputDeclarer) {
        d.declare(["id"]);
        d.declare_stream("unheard", ["id"]);
    }
    async fn next_tuple(&mut self, c: &mut SpoutOutputCollector) -> ComponentResult {
        if self.next == 10 {
            return Ok(());
        }
        let before = c.pending();
        c.emit_to("unheard", values![self.next], Some(1000 + self.next))?;
        lock(&self.pending_after_unheard).push(c.pending() - before);
        c.emit(values![self.next], Some(self.next))?;
        self.next += 1;
        Ok(())
    }
    async fn ack(&mut self, id: u64) {
        lock(&self.acked).push(id);
    }
    fn is_finished(&self) -> bool {
        self.next == 10
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn emits_nobody_consumes_are_acked_at_once() {
    let acked = Arc::new(Mutex::new(Vec::new()));
    let pending = Arc::new(Mutex::new(Vec::new()));
    let seen: Seen = Arc::default();
    let mut b = TopologyBuilder::new("unheard");
    let (a, p) = (acked.clone(), pending.clone());
    b.set_spout(
        "two",
        move || TwoStreams {
            next: 0,
            acked: a.clone(),
            pending_after_unheard: p.clone(),
        },
        1,
    );
    let s = seen.clone();
    b.set_bolt("sink", move || Recorder::new(&s), 1)
        .shuffle_grouping("two");
    run(&b.build().expect("valid topology")).await;

    assert_eq!(
        *lock(&pending),
        vec![0; 10],
        "an unconsumed emit is not pending"
    );
    let mut acked = lock(&acked).clone();
    acked.sort_unstable();
    let expected: Vec<u64> = (0..10).chain(1000..1010).collect();
    assert_eq!(acked, expected);
    assert_eq!(lock(&seen).len(), 10);
}
