//! Backpressure: a fast spout emitting untracked tuples into a slow bolt through tiny queues is
//! held back by the full queue (the spout never runs further ahead of the bolt than the queues
//! and batches can hold), and nothing is dropped.

mod common;

use common::{lock, run};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use topology_api::config::{
    TOPOLOGY_ACKER_EXECUTORS, TOPOLOGY_EXECUTOR_RECEIVE_BUFFER_SIZE, TOPOLOGY_TRANSFER_BATCH_SIZE,
};
use topology_api::prelude::*;

const N: u64 = 250;

#[derive(Default)]
struct Shared {
    /// Tuples the bolt has started executing.
    executed: AtomicU64,
    /// Largest (emitted - executed) the spout saw before an emit.
    max_lag: AtomicU64,
    /// Ids the bolt received, in order.
    received: Mutex<Vec<u64>>,
}

/// Emits `0..N` without message ids, `per_call` per `next_tuple`, as fast as it is let.
struct FastSpout {
    shared: Arc<Shared>,
    next: u64,
    per_call: u64,
}

#[async_trait]
impl Spout for FastSpout {
    fn declare_output_fields(&self, d: &mut OutputDeclarer) {
        d.declare(["id"]);
    }
    async fn next_tuple(&mut self, c: &mut SpoutOutputCollector) -> ComponentResult {
        if self.next == N {
            return Ok(());
        }
        let lag = self.next - self.shared.executed.load(Ordering::SeqCst);
        self.shared.max_lag.fetch_max(lag, Ordering::SeqCst);
        for _ in 0..self.per_call {
            if self.next < N {
                c.emit(values![self.next], None)?;
                self.next += 1;
            }
        }
        Ok(())
    }
    fn is_finished(&self) -> bool {
        self.next == N
    }
}

/// Takes about a millisecond per tuple.
struct SlowBolt {
    shared: Arc<Shared>,
}

#[async_trait]
impl Bolt for SlowBolt {
    fn declare_output_fields(&self, _d: &mut OutputDeclarer) {}
    async fn execute(&mut self, input: Tuple, c: &mut OutputCollector) -> ComponentResult {
        self.shared.executed.fetch_add(1, Ordering::SeqCst);
        lock(&self.shared.received).push(input.i64("id")? as u64);
        tokio::time::sleep(Duration::from_millis(1)).await;
        c.ack(&input);
        Ok(())
    }
}

async fn check(capacity: u64, batch: u64, ackers: u64, per_call: u64) {
    let shared = Arc::new(Shared::default());
    let mut b = TopologyBuilder::new("backpressure");
    b.config()
        .set(TOPOLOGY_EXECUTOR_RECEIVE_BUFFER_SIZE, capacity)
        .set(TOPOLOGY_TRANSFER_BATCH_SIZE, batch)
        .set(TOPOLOGY_ACKER_EXECUTORS, ackers);
    let s = shared.clone();
    b.set_spout(
        "fast",
        move || FastSpout {
            shared: s.clone(),
            next: 0,
            per_call,
        },
        1,
    );
    let s = shared.clone();
    b.set_bolt("slow", move || SlowBolt { shared: s.clone() }, 1)
        .shuffle_grouping("fast");
    let report = run(&b.build().expect("valid topology")).await;
    let ctx = format!("capacity {capacity}, batch {batch}, ackers {ackers}, {per_call} per call");

    // Emitted but not yet started by the bolt, at the moment of an emit: at most `capacity`
    // batches of `batch` in the bolt's queue, the batch the bolt's executor has taken from the
    // queue (all `batch` of it when the executor has not yet started its first tuple), and the
    // spout's partial batch (batch - 1; a full one is sent, waiting for queue space, before
    // `next_tuple` is called again).
    let bound = capacity * batch + batch + (batch - 1);
    let max_lag = shared.max_lag.load(Ordering::SeqCst);
    assert!(
        max_lag <= bound,
        "{ctx}: the spout ran {max_lag} tuples ahead of the bolt; queues hold at most {bound}"
    );
    // The bolt is ~1000x slower than the spout, so the queue must actually have filled up:
    // otherwise this test would not be exercising backpressure at all.
    assert!(
        max_lag >= capacity * batch,
        "{ctx}: the spout never got ahead ({max_lag}); the bolt is not slow enough to test"
    );

    let received = lock(&shared.received).clone();
    assert_eq!(
        received,
        (0..N).collect::<Vec<_>>(),
        "{ctx}: every tuple arrives, once, in order (one spout task, one bolt task)"
    );
    let by = report.by_component();
    assert_eq!(by["fast"].emitted, N, "{ctx}");
    assert_eq!(by["slow"].executed, N, "{ctx}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_bolt_holds_back_fast_spout_with_batch_of_one() {
    check(1, 1, 1, 1).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_bolt_holds_back_fast_spout_with_small_batches() {
    check(1, 4, 1, 1).await;
    check(2, 3, 0, 1).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn spout_emitting_several_per_call_is_held_back_too() {
    // Batches that fill inside one `next_tuple` are sent before the next call.
    check(1, 2, 1, 3).await;
    check(2, 1, 1, 4).await;
}
