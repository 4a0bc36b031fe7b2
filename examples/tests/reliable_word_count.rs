//! The reliable word count with 10% of word tuples failed: every message id must end acked
//! exactly once, through replays.

use std::time::Duration;
use tempest_examples::reliable;
use topology_api::{run_local, LocalOptions};

async fn run(total: u64, fail_fraction: f64, spouts: u32) {
    let (topology, ledger) = reliable::topology(total, fail_fraction, spouts).unwrap();
    let opts = LocalOptions::default();
    let report = tokio::time::timeout(Duration::from_secs(120), run_local(&topology, opts))
        .await
        .expect("topology finished before the deadline")
        .expect("topology ran");
    let ledger = ledger.lock().unwrap();
    assert_eq!(ledger.emitted, total, "{}", ledger.summary(total));
    assert_eq!(ledger.problems(total), (0, 0), "{}", ledger.summary(total));
    assert!(
        ledger.failed > 0,
        "some trees must have failed: {}",
        ledger.summary(total)
    );
    assert_eq!(ledger.replayed, ledger.failed, "{}", ledger.summary(total));
    let spout = &report.by_component()["sentences"];
    assert_eq!(spout.acked, total);
    assert_eq!(spout.failed, ledger.failed);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_percent_failures_every_id_acked_exactly_once() {
    run(20_000, 0.1, 1).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_spout_tasks_share_the_ids() {
    run(10_000, 0.1, 2).await;
}
