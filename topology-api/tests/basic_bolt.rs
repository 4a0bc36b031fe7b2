//! `BasicBolt`: emits are anchored to the input and the input is acked when `execute` returns
//! `Ok`, failed when it returns `Err`.

mod common;

use common::{id_counts, lock, run, Ledger, NumberSpout, Seen};
use std::collections::{BTreeMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use topology_api::config::TOPOLOGY_MESSAGE_TIMEOUT_SECS;
use topology_api::prelude::*;

/// Re-emits the id (anchored by the collector).
struct Relay;

#[async_trait]
impl BasicBolt for Relay {
    fn declare_output_fields(&self, d: &mut OutputDeclarer) {
        d.declare(["id"]);
    }
    fn execute(&mut self, input: &Tuple, c: &mut BasicOutputCollector<'_>) -> ComponentResult {
        c.emit(values![input.i64("id")?])?;
        Ok(())
    }
}

/// Records ids; returns `Err` (or panics, with `panic`) the first time it sees an id divisible
/// by `fail_every` (never if 0).
struct Check {
    seen: Seen,
    first: Arc<Mutex<HashSet<u64>>>,
    fail_every: u64,
    panic: bool,
    task: u32,
}

#[async_trait]
impl BasicBolt for Check {
    fn declare_output_fields(&self, _d: &mut OutputDeclarer) {}
    async fn prepare(&mut self, ctx: &TopologyContext) -> ComponentResult {
        self.task = ctx.task_id();
        Ok(())
    }
    fn execute(&mut self, input: &Tuple, _c: &mut BasicOutputCollector<'_>) -> ComponentResult {
        let id = input.i64("id")? as u64;
        lock(&self.seen).push((self.task, id));
        let first = lock(&self.first).insert(id);
        if first && self.fail_every != 0 && id % self.fail_every == 0 {
            if self.panic {
                panic!("rejecting {id}");
            }
            return Err(format!("rejecting {id}").into());
        }
        Ok(())
    }
}

fn topology(n: u64, fail_every: u64, panic: bool) -> (Topology, Arc<Ledger>, Seen) {
    let ledger = Ledger::new();
    let seen: Seen = Arc::default();
    let first = Arc::new(Mutex::new(HashSet::new()));
    let mut b = TopologyBuilder::new("basic-bolts");
    b.config().set(TOPOLOGY_MESSAGE_TIMEOUT_SECS, 30);
    let l = ledger.clone();
    b.set_spout("numbers", move || NumberSpout::new(n, &l), 1);
    b.set_basic_bolt("relay", || Relay, 2)
        .shuffle_grouping("numbers");
    let s = seen.clone();
    b.set_basic_bolt(
        "check",
        move || Check {
            seen: s.clone(),
            first: first.clone(),
            fail_every,
            panic,
            task: 0,
        },
        2,
    )
    .shuffle_grouping("relay");
    (b.build().expect("valid topology"), ledger, seen)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn basic_bolts_anchor_and_ack_automatically() {
    const N: u64 = 100;
    let (topology, ledger, seen) = topology(N, 0, false);
    let report = run(&topology).await;
    ledger.assert_all_acked_once(N);
    assert!(
        ledger.fail_counts().is_empty(),
        "{:?}",
        ledger.fail_counts()
    );
    let expected: BTreeMap<u64, usize> = (0..N).map(|id| (id, 1)).collect();
    assert_eq!(id_counts(&seen), expected);
    let by = report.by_component();
    assert_eq!(by["relay"].acked, N);
    assert_eq!(by["check"].acked, N);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn basic_bolt_error_fails_the_tree() {
    error_or_panic_fails_the_tree(false).await;
}

/// A panic in the synchronous `execute` is caught like an error: the tree fails, the task
/// goes on.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn basic_bolt_panic_fails_the_tree_and_the_task_goes_on() {
    error_or_panic_fails_the_tree(true).await;
}

async fn error_or_panic_fails_the_tree(panic: bool) {
    const N: u64 = 60;
    let (topology, ledger, seen) = topology(N, 4, panic);
    let report = run(&topology).await;

    // The error two bolts downstream reached the spout: the relay's emit was anchored.
    let expected_fails: BTreeMap<u64, usize> =
        (0..N).filter(|id| id % 4 == 0).map(|id| (id, 1)).collect();
    assert_eq!(ledger.fail_counts(), expected_fails);
    // Failed by the error, not by the 30 s timeout.
    ledger.assert_fails_within(Duration::from_secs(10));
    ledger.assert_all_acked_once(N);
    let expected_seen: BTreeMap<u64, usize> = (0..N)
        .map(|id| (id, if id % 4 == 0 { 2 } else { 1 }))
        .collect();
    assert_eq!(id_counts(&seen), expected_seen);

    let mut errors: Vec<String> = report
        .tasks
        .iter()
        .filter(|t| t.component == "check")
        .flat_map(|t| t.errors.clone())
        .collect();
    errors.sort();
    let mut expected_errors: Vec<String> = expected_fails
        .keys()
        .map(|id| {
            if panic {
                format!("execute panicked: rejecting {id}")
            } else {
                format!("execute failed: rejecting {id}")
            }
        })
        .collect();
    expected_errors.sort();
    assert_eq!(errors, expected_errors);
    assert_eq!(
        report.by_component()["check"].failed,
        expected_fails.len() as u64
    );
}
