//! `topology.max.spout.pending` bounds the tracked trees in flight per spout task: a bolt that
//! holds tuples and acks them in batches lets the spout reach the limit but never exceed it.

mod common;

use common::{lock, run, Ledger, NumberSpout};
use std::collections::HashMap;
use topology_api::config::TOPOLOGY_MAX_SPOUT_PENDING;
use topology_api::prelude::*;

/// Holds its inputs and acks them all once it holds `batch` of them (or has received all `n`).
struct Batcher {
    batch: usize,
    n: u64,
    received: u64,
    held: Vec<Tuple>,
}

#[async_trait]
impl Bolt for Batcher {
    fn declare_output_fields(&self, _d: &mut OutputDeclarer) {}
    async fn execute(&mut self, input: Tuple, c: &mut OutputCollector) -> ComponentResult {
        self.held.push(input);
        self.received += 1;
        if self.held.len() >= self.batch || self.received == self.n {
            for t in self.held.drain(..) {
                c.ack(&t);
            }
        }
        Ok(())
    }
}

/// `spout_tasks` tasks in one executor, each limited to `limit` pending; the bolt acks in
/// batches of `batch`.
async fn check(limit: u64, spout_tasks: u32, batch: usize, n: u64) {
    let ledger = Ledger::new();
    let mut b = TopologyBuilder::new("max-pending");
    b.config().set(TOPOLOGY_MAX_SPOUT_PENDING, limit);
    let l = ledger.clone();
    b.set_spout("numbers", move || NumberSpout::new(n, &l), 1)
        .set_num_tasks(spout_tasks);
    b.set_bolt(
        "batcher",
        move || Batcher {
            batch,
            n,
            received: 0,
            held: Vec::new(),
        },
        1,
    )
    .shuffle_grouping("numbers");
    run(&b.build().expect("valid topology")).await;
    let ctx = format!("limit {limit}, {spout_tasks} spout tasks, batches of {batch}");

    ledger.assert_all_acked_once(n);
    assert!(ledger.fail_counts().is_empty(), "{ctx}");
    let emits = lock(&ledger.emits).clone();
    let mut max_after: HashMap<u32, usize> = HashMap::new();
    for e in &emits {
        assert!(
            e.pending_before < limit as usize,
            "{ctx}: next_tuple of task {} was called with {} trees pending",
            e.task,
            e.pending_before
        );
        let m = max_after.entry(e.task).or_default();
        *m = (*m).max(e.pending_after);
    }
    assert_eq!(max_after.len(), spout_tasks as usize, "{ctx}");
    // The bolt holds tuples until it has a batch, so each task must have reached its limit:
    // the bound is really exercised, not trivially met.
    for (task, max) in max_after {
        assert_eq!(
            max, limit as usize,
            "{ctx}: task {task} peaked at {max} pending"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_spout_task_never_exceeds_max_pending() {
    check(4, 1, 4, 60).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn max_pending_is_per_spout_task() {
    // Two tasks of 3 each: 6 trees in flight in all, so batches of 6 can only fill if each
    // task gets to its own limit.
    check(3, 2, 6, 60).await;
}
