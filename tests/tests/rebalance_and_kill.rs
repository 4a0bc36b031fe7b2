//! rebalance from 1 to 2 workers under load with nothing lost; then kill with a wait: spouts are
//! deactivated at once, the workers stop and the topology is gone after the wait.

use cluster_tests::{eventually, serial, Cluster, ClusterOptions};
use std::time::{Duration, Instant};
use tempest_protocol::control::TopologyState;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rebalance_then_kill_with_wait() {
    let _turn = serial().await;
    let cluster = Cluster::start("rebalance", ClusterOptions::default()).await;
    let n = 6_000;
    cluster.submit_word_count("wc", 1, n, 1000);
    let client = cluster.client();
    cluster.wait_acked(n / 4, Duration::from_secs(60)).await;
    assert_eq!(
        client
            .assignment("wc")
            .await
            .expect("assignment")
            .workers
            .len(),
        1
    );

    let args: Vec<String> = [
        "--nimbus",
        &cluster.url,
        "rebalance",
        "wc",
        "-n",
        "2",
        "--wait",
        "1",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    let out = cluster.tempest(&args);
    assert!(
        out.status.success(),
        "rebalance: {} {}",
        out.stdout,
        out.stderr
    );
    eventually(
        "two workers after the rebalance",
        Duration::from_secs(30),
        || {
            let client = client.clone();
            async move {
                let a = client.assignment("wc").await.ok()?;
                (a.workers.len() == 2).then_some(())
            }
        },
    )
    .await;
    cluster.wait_all_acked(n, Duration::from_secs(90)).await;
    eventually("two live workers", Duration::from_secs(30), || async {
        let live: usize = cluster
            .supervisors
            .iter()
            .map(|s| s.live_workers().len())
            .sum();
        (live == 2).then_some(())
    })
    .await;

    let args: Vec<String> = ["--nimbus", &cluster.url, "kill", "wc", "--wait", "3"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    let killed_at = Instant::now();
    let out = cluster.tempest(&args);
    assert!(out.status.success(), "kill: {} {}", out.stdout, out.stderr);
    let d = client
        .describe("wc")
        .await
        .expect("still listed during the wait");
    assert_eq!(d.summary.status, TopologyState::Killed);
    eventually("the topology to be gone", Duration::from_secs(30), || {
        let client = client.clone();
        async move { (client.describe("wc").await.err()?.status() == Some(404)).then_some(()) }
    })
    .await;
    assert!(
        killed_at.elapsed() >= Duration::from_secs(3),
        "removed before the wait ended"
    );
    eventually("every worker to stop", Duration::from_secs(30), || async {
        let live: usize = cluster
            .supervisors
            .iter()
            .map(|s| s.live_workers().len())
            .sum();
        (live == 0).then_some(())
    })
    .await;
}
