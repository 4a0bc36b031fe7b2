//! Crashes: a panicking bolt fails its input's tree and keeps running without disturbing other
//! bolts; a panicking `next_tuple` is reported and the spout carries on; a failing `prepare`
//! stops the whole topology with an error instead of hanging it.

mod common;

use common::{id_counts, lock, run, try_run, Ledger, NumberSpout, Recorder, Seen};
use std::collections::{BTreeMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use topology_api::config::TOPOLOGY_MESSAGE_TIMEOUT_SECS;
use topology_api::prelude::*;
use topology_api::RunError;

/// Panics the first time it sees an id divisible by 5; acks everything else.
struct Fragile {
    seen: Arc<Mutex<HashSet<u64>>>,
}

#[async_trait]
impl Bolt for Fragile {
    fn declare_output_fields(&self, _d: &mut OutputDeclarer) {}
    async fn execute(&mut self, input: Tuple, c: &mut OutputCollector) -> ComponentResult {
        let id = input.i64("id")? as u64;
        let first = lock(&self.seen).insert(id);
        if first && id % 5 == 0 {
            panic!("boom on {id}");
        }
        c.ack(&input);
        Ok(())
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn panicking_bolt_fails_its_trees_and_leaves_other_bolts_alone() {
    const N: u64 = 60;
    let ledger = Ledger::new();
    let b_seen: Seen = Arc::default();
    let fragile_seen = Arc::new(Mutex::new(HashSet::new()));

    let mut b = TopologyBuilder::new("crash");
    b.config().set(TOPOLOGY_MESSAGE_TIMEOUT_SECS, 30);
    let l = ledger.clone();
    b.set_spout("numbers", move || NumberSpout::new(N, &l), 1);
    b.set_bolt(
        "a",
        move || Fragile {
            seen: fragile_seen.clone(),
        },
        2,
    )
    .shuffle_grouping("numbers");
    let s = b_seen.clone();
    b.set_bolt("b", move || Recorder::new(&s), 1)
        .shuffle_grouping("numbers");
    let report = run(&b.build().expect("valid topology")).await;

    let failing: Vec<u64> = (0..N).filter(|id| id % 5 == 0).collect();
    let expected_fails: BTreeMap<u64, usize> = failing.iter().map(|&id| (id, 1)).collect();
    assert_eq!(ledger.fail_counts(), expected_fails);
    // Failed by the panic, not by the 30 s timeout.
    ledger.assert_fails_within(Duration::from_secs(10));
    ledger.assert_all_acked_once(N);

    // B got every tuple, including the first deliveries that A panicked on, plus the replays.
    let expected_b: BTreeMap<u64, usize> = (0..N)
        .map(|id| (id, if id % 5 == 0 { 2 } else { 1 }))
        .collect();
    assert_eq!(id_counts(&b_seen), expected_b);

    let mut errors: Vec<String> = report
        .tasks
        .iter()
        .filter(|t| t.component == "a")
        .flat_map(|t| t.errors.clone())
        .collect();
    errors.sort();
    let mut expected_errors: Vec<String> = failing
        .iter()
        .map(|id| format!("execute panicked: boom on {id}"))
        .collect();
    expected_errors.sort();
    assert_eq!(errors, expected_errors);
    for t in report.tasks.iter().filter(|t| t.component != "a") {
        assert!(
            t.errors.is_empty(),
            "task {} errors {:?}",
            t.task_id,
            t.errors
        );
    }
    let by = report.by_component();
    assert_eq!(by["a"].failed, failing.len() as u64);
    assert_eq!(by["a"].executed, N + failing.len() as u64);
    assert_eq!(by["b"].executed, N + failing.len() as u64);
}

/// Panics in its first `next_tuple`, then emits `0..N` reliably.
struct PanicOnceSpout {
    inner: NumberSpout,
    panicked: bool,
}

#[async_trait]
impl Spout for PanicOnceSpout {
    fn declare_output_fields(&self, d: &mut OutputDeclarer) {
        self.inner.declare_output_fields(d)
    }
    async fn open(&mut self, ctx: &TopologyContext) -> ComponentResult {
        self.inner.open(ctx).await
    }
    async fn next_tuple(&mut self, c: &mut SpoutOutputCollector) -> ComponentResult {
        if !self.panicked {
            self.panicked = true;
            panic!("spout hiccup");
        }
        self.inner.next_tuple(c).await
    }
    async fn ack(&mut self, id: u64) {
        self.inner.ack(id).await
    }
    async fn fail(&mut self, id: u64) {
        self.inner.fail(id).await
    }
    fn is_finished(&self) -> bool {
        self.inner.is_finished()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn panicking_next_tuple_is_reported_and_the_spout_carries_on() {
    const N: u64 = 20;
    let ledger = Ledger::new();
    let seen: Seen = Arc::default();
    let mut b = TopologyBuilder::new("spout-crash");
    let l = ledger.clone();
    b.set_spout(
        "numbers",
        move || PanicOnceSpout {
            inner: NumberSpout::new(N, &l),
            panicked: false,
        },
        1,
    );
    let s = seen.clone();
    b.set_bolt("sink", move || Recorder::new(&s), 1)
        .shuffle_grouping("numbers");
    let report = run(&b.build().expect("valid topology")).await;

    ledger.assert_all_acked_once(N);
    let expected: BTreeMap<u64, usize> = (0..N).map(|id| (id, 1)).collect();
    assert_eq!(id_counts(&seen), expected);
    let spout = report
        .tasks
        .iter()
        .find(|t| t.component == "numbers")
        .expect("spout task report");
    assert_eq!(
        spout.errors,
        vec!["next_tuple panicked: spout hiccup".to_string()]
    );
}

/// Emits forever (never finished).
struct Endless {
    next: u64,
}

#[async_trait]
impl Spout for Endless {
    fn declare_output_fields(&self, d: &mut OutputDeclarer) {
        d.declare(["id"]);
    }
    async fn next_tuple(&mut self, c: &mut SpoutOutputCollector) -> ComponentResult {
        self.next += 1;
        c.emit(values![self.next], Some(self.next))?;
        Ok(())
    }
}

/// Fails in `prepare`.
struct NoDatabase;

#[async_trait]
impl Bolt for NoDatabase {
    fn declare_output_fields(&self, _d: &mut OutputDeclarer) {}
    async fn prepare(&mut self, _ctx: &TopologyContext) -> ComponentResult {
        Err("cannot connect to the database".into())
    }
    async fn execute(&mut self, input: Tuple, c: &mut OutputCollector) -> ComponentResult {
        c.ack(&input);
        Ok(())
    }
}

/// Counts and acks.
struct Counter {
    count: Arc<AtomicU64>,
}

#[async_trait]
impl Bolt for Counter {
    fn declare_output_fields(&self, _d: &mut OutputDeclarer) {}
    async fn execute(&mut self, input: Tuple, c: &mut OutputCollector) -> ComponentResult {
        self.count.fetch_add(1, Ordering::SeqCst);
        c.ack(&input);
        Ok(())
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failing_prepare_stops_the_topology_with_an_error() {
    let count = Arc::new(AtomicU64::new(0));
    let mut b = TopologyBuilder::new("bad-prepare");
    b.set_spout("endless", || Endless { next: 0 }, 1);
    let c = count.clone();
    b.set_bolt("ok", move || Counter { count: c.clone() }, 1)
        .shuffle_grouping("endless");
    b.set_bolt("db", || NoDatabase, 2)
        .shuffle_grouping("endless");
    let result = try_run(&b.build().expect("valid topology")).await;
    match result {
        Err(RunError::Executor(e)) => {
            assert_eq!(e.component, "db");
            assert_eq!(e.what, "prepare");
            assert!(e.message.contains("cannot connect to the database"), "{e}");
            let text = e.to_string();
            assert!(text.contains("db") && text.contains("prepare"), "{text}");
        }
        Err(e) => panic!("expected the prepare error, got {e}"),
        Ok(r) => panic!("an endless topology with a failed bolt ended normally: {r:?}"),
    }
}
