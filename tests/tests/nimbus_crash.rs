//! kill -9 Nimbus while a topology runs: tuples keep flowing between the workers; a restarted
//! Nimbus lists the topology and its assignment unchanged, and the workers were not restarted.

use cluster_tests::{eventually, serial, Cluster, ClusterOptions};
use std::time::Duration;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn topology_survives_a_nimbus_crash() {
    let _turn = serial().await;
    let mut cluster = Cluster::start("nimbus-crash", ClusterOptions::default()).await;
    let n = 8_000;
    cluster.submit(
        "wc",
        2,
        &[
            ("test.sentences", n.to_string()),
            ("test.rate", "1000".into()),
        ],
    );
    eventually("the first ids acked", Duration::from_secs(60), || async {
        (cluster.acked_ids().len() >= 500).then_some(())
    })
    .await;
    let client = cluster.client();
    let before = client.assignment("wc").await.expect("assignment");
    let pids_before: Vec<_> = cluster
        .supervisors
        .iter()
        .map(|s| s.live_workers())
        .collect();

    cluster.kill9_nimbus();
    let acked_at_crash = cluster.acked_ids().len();
    eventually(
        "tuples to keep flowing without Nimbus",
        Duration::from_secs(30),
        || async { (cluster.acked_ids().len() >= acked_at_crash + 1_000).then_some(()) },
    )
    .await;

    cluster.restart_nimbus().await;
    let list = client.list().await.expect("list after restart");
    assert_eq!(list.topologies.len(), 1);
    assert_eq!(list.topologies[0].name, "wc");
    let after = client
        .assignment("wc")
        .await
        .expect("assignment after restart");
    assert_eq!(after, before, "the assignment is unchanged");

    cluster.wait_all_acked(n, Duration::from_secs(60)).await;
    let pids_after: Vec<_> = cluster
        .supervisors
        .iter()
        .map(|s| s.live_workers())
        .collect();
    assert_eq!(
        pids_after,
        pids_before,
        "workers were not restarted\n{}",
        cluster.logs()
    );
}
