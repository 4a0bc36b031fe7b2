//! kill -9 a supervisor and its workers: after the supervisor timeout Nimbus moves its workers
//! to the other supervisor, processing resumes, nothing is lost.

use cluster_tests::{eventually, serial, Cluster, ClusterOptions};
use std::time::Duration;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn workers_of_a_dead_supervisor_are_reassigned() {
    let _turn = serial().await;
    let mut cluster = Cluster::start("supervisor-crash", ClusterOptions::default()).await;
    let n = 6_000;
    cluster.submit_word_count("wc", 2, n, 1000);
    let client = cluster.client();
    cluster.wait_acked(n / 3, Duration::from_secs(60)).await;
    let before = client.assignment("wc").await.expect("assignment");
    let victim_id = std::fs::read_to_string(cluster.supervisors[0].data_dir.join("supervisor-id"))
        .expect("supervisor id")
        .trim()
        .to_string();
    assert!(
        before.workers.iter().any(|w| w.supervisor == victim_id),
        "the victim runs a worker: {before:?}"
    );

    cluster.supervisors[0].daemon.kill9();
    cluster.supervisors[0].kill9_workers();

    let after = eventually(
        "Nimbus to move the workers",
        Duration::from_secs(30),
        || {
            let client = client.clone();
            let victim = victim_id.clone();
            async move {
                let a = client.assignment("wc").await.ok()?;
                (a.version > before.version && a.workers.iter().all(|w| w.supervisor != victim))
                    .then_some(a)
            }
        },
    )
    .await;
    assert_eq!(after.workers.len(), 2, "still two workers: {after:?}");
    cluster.wait_all_acked(n, Duration::from_secs(90)).await;
}
