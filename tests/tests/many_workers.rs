//! Word count on clusters larger than two workers: exact counts, every id acked.

use cluster_tests::{expected_counts, serial, Cluster, ClusterOptions};
use std::time::Duration;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exact_counts_with_four_workers_on_two_supervisors() {
    let _turn = serial().await;
    let cluster = Cluster::start("four-workers", ClusterOptions::default()).await;
    let n = 4_000;
    cluster.submit_word_count("wc", 4, n, 2000);
    cluster.wait_all_acked(n, Duration::from_secs(60)).await;
    let expected = expected_counts(n);
    cluster_tests::eventually("exact counts", Duration::from_secs(30), || async {
        (cluster.counts().0 == expected).then_some(())
    })
    .await;
}
