//! Word count from a finite reliable spout on Nimbus + 2 supervisors with 2 workers: tuples
//! cross workers (and supervisors), exact counts arrive at the sink, every id is acked.

use cluster_tests::{eventually, expected_counts, serial, Cluster, ClusterOptions};
use std::collections::BTreeSet;
use std::time::Duration;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exact_counts_across_two_workers() {
    let _turn = serial().await;
    let cluster = Cluster::start("across", ClusterOptions::default()).await;
    let n = 4_000;
    let out = cluster.submit(
        "wc",
        2,
        &[
            ("test.sentences", n.to_string()),
            ("test.rate", "4000".into()),
        ],
    );
    assert!(out.contains("wc"), "{out}");

    let client = cluster.client();
    let details = eventually(
        "the topology to be scheduled",
        Duration::from_secs(30),
        || {
            let client = client.clone();
            async move {
                client
                    .describe("wc")
                    .await
                    .ok()
                    .filter(|d| d.assignment.is_some())
            }
        },
    )
    .await;
    let assignment = details.assignment.expect("scheduled");
    assert_eq!(assignment.workers.len(), 2);
    let supervisors: BTreeSet<_> = assignment.workers.iter().map(|w| &w.supervisor).collect();
    assert_eq!(
        supervisors.len(),
        2,
        "workers spread over both supervisors: {assignment:?}"
    );

    let expected = expected_counts(n);
    eventually("every id acked", Duration::from_secs(60), || async {
        (cluster.acked_ids().len() as u64 == n).then_some(())
    })
    .await;
    eventually(
        "exact counts at the sink",
        Duration::from_secs(30),
        || async {
            let (counts, files) = cluster.counts();
            (counts == expected && files == 2).then_some(())
        },
    )
    .await;
    let (counts, _) = cluster.counts();
    assert_eq!(counts, expected, "{}", cluster.logs());

    // Metrics reach Nimbus from both workers: split tasks executed every sentence.
    let details = eventually("metrics of every task", Duration::from_secs(15), || {
        let client = client.clone();
        async move {
            let d = client.describe("wc").await.ok()?;
            let executed: u64 = d
                .tasks
                .iter()
                .filter(|t| t.metrics.component == "split")
                .map(|t| t.metrics.executed)
                .sum();
            (executed >= n).then_some(d)
        }
    })
    .await;
    let ports: BTreeSet<u16> = details.tasks.iter().map(|t| t.port).collect();
    assert_eq!(ports.len(), 2, "tasks report from two workers");
}
