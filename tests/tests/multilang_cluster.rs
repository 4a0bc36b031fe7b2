//! A word count whose split bolt is Python (examples/python/split_stdlib.py, embedded in the
//! topology binary) on a real cluster: 4 workers on 2 supervisors, exact counts, every id acked.

use cluster_tests::{eventually, expected_counts, serial, workspace_bin, Cluster, ClusterOptions};
use std::time::Duration;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_python_split_bolt_counts_exactly_on_four_workers() {
    let _turn = serial().await;
    let cluster = Cluster::start("multilang", ClusterOptions::default()).await;
    let n = 4_000;
    cluster.submit_bin(
        &workspace_bin("cluster_python_word_count"),
        "pywc",
        4,
        &[
            ("test.sentences", n.to_string()),
            ("test.rate", "2000".into()),
            ("topology.message.timeout.secs", "10".into()),
        ],
    );
    let assignment = cluster.wait_running("pywc", 4).await;
    let supervisors: std::collections::BTreeSet<_> =
        assignment.workers.iter().map(|w| &w.supervisor).collect();
    assert_eq!(
        supervisors.len(),
        2,
        "workers on both supervisors: {assignment:?}"
    );
    let split_workers: std::collections::BTreeSet<_> = assignment
        .workers
        .iter()
        .filter(|w| w.executors.iter().any(|e| e.component == "split"))
        .map(|w| w.port)
        .collect();
    assert!(
        split_workers.len() >= 2,
        "the Python split runs in several workers: {assignment:?}"
    );
    cluster.wait_all_acked(n, Duration::from_secs(60)).await;
    let expected = expected_counts(n);
    eventually("exact counts", Duration::from_secs(30), || async {
        (cluster.counts().0 == expected).then_some(())
    })
    .await;
}
