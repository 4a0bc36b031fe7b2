//! An idle spout backs off to sleeping instead of spinning, with or without ackers; a spout
//! whose `ack` panics has the panic reported and keeps running.

mod common;

use common::{run, try_run};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use topology_api::config::TOPOLOGY_ACKER_EXECUTORS;
use topology_api::prelude::*;

/// Emits one tuple, then nothing, counting the idle calls, for 500 ms.
struct IdleSpout {
    idle_calls: Arc<AtomicU64>,
    first_emit: Option<Instant>,
}

#[async_trait]
impl Spout for IdleSpout {
    fn declare_output_fields(&self, d: &mut OutputDeclarer) {
        d.declare(["id"]);
    }
    async fn next_tuple(&mut self, c: &mut SpoutOutputCollector) -> ComponentResult {
        if self.first_emit.is_none() {
            c.emit(values![1], Some(1))?;
            self.first_emit = Some(Instant::now());
        } else {
            self.idle_calls.fetch_add(1, Ordering::SeqCst);
        }
        Ok(())
    }
    fn is_finished(&self) -> bool {
        self.first_emit
            .is_some_and(|t| t.elapsed() >= Duration::from_millis(500))
    }
}

struct Ack;

#[async_trait]
impl Bolt for Ack {
    fn declare_output_fields(&self, _d: &mut OutputDeclarer) {}
    async fn execute(&mut self, input: Tuple, c: &mut OutputCollector) -> ComponentResult {
        c.ack(&input);
        Ok(())
    }
}

async fn idle_calls(ackers: u64) -> u64 {
    let calls = Arc::new(AtomicU64::new(0));
    let mut b = TopologyBuilder::new("idle-spout");
    b.config().set(TOPOLOGY_ACKER_EXECUTORS, ackers);
    let c = calls.clone();
    b.set_spout(
        "idle",
        move || IdleSpout {
            idle_calls: c.clone(),
            first_emit: None,
        },
        1,
    );
    b.set_bolt("ack", || Ack, 1).shuffle_grouping("idle");
    run(&b.build().expect("valid topology")).await;
    calls.load(Ordering::SeqCst)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_spout_backs_off_with_and_without_ackers() {
    // A 1 ms back-off gives ~500 calls in 500 ms (plus the short spin window); allow 10x.
    for ackers in [1, 0] {
        let calls = idle_calls(ackers).await;
        assert!(
            calls < 5_000,
            "ackers {ackers}: idle spout polled next_tuple {calls} times in 500 ms (spinning)"
        );
    }
}

/// Emits ids 0..10 and panics in `ack` for id 3.
struct PanickyAck {
    next: u64,
    acked: u64,
}

#[async_trait]
impl Spout for PanickyAck {
    fn declare_output_fields(&self, d: &mut OutputDeclarer) {
        d.declare(["id"]);
    }
    async fn next_tuple(&mut self, c: &mut SpoutOutputCollector) -> ComponentResult {
        if self.next < 10 {
            c.emit(values![self.next], Some(self.next))?;
            self.next += 1;
        }
        Ok(())
    }
    async fn ack(&mut self, id: u64) {
        self.acked += 1;
        assert_ne!(id, 3, "ack blew up on 3");
    }
    fn is_finished(&self) -> bool {
        self.acked == 10
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_panic_in_spout_ack_is_reported_not_fatal() {
    let mut b = TopologyBuilder::new("panicky-ack");
    b.set_spout("s", || PanickyAck { next: 0, acked: 0 }, 1);
    b.set_bolt("ack", || Ack, 1).shuffle_grouping("s");
    let report = try_run(&b.build().unwrap())
        .await
        .expect("a panicking ack does not stop the topology");
    let spout = report.tasks.iter().find(|t| t.component == "s").unwrap();
    assert_eq!(spout.stats.acked, 10);
    assert_eq!(spout.errors.len(), 1, "{:?}", spout.errors);
    assert!(
        spout.errors[0].starts_with("ack panicked") && spout.errors[0].contains("ack blew up on 3"),
        "{:?}",
        spout.errors
    );
}
