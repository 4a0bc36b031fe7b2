//! kill -9 a supervisor and its workers: after the supervisor timeout Nimbus moves its workers
//! to the other supervisor, processing resumes, nothing is lost.

use cluster_tests::{eventually, serial, Cluster, ClusterOptions};
use std::time::Duration;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn workers_of_a_dead_supervisor_are_reassigned() {
    let _turn = serial().await;
    let mut cluster = Cluster::start("supervisor-crash", ClusterOptions::default()).await;
    let n = 6_000;
    cluster.submit(
        "wc",
        2,
        &[
            ("test.sentences", n.to_string()),
            ("test.rate", "1000".into()),
            ("topology.message.timeout.secs", "5".into()),
        ],
    );
    let client = cluster.client();
    eventually(
        "a third of the ids acked",
        Duration::from_secs(60),
        || async { (cluster.acked_ids().len() as u64 >= n / 3).then_some(()) },
    )
    .await;
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
    eventually(
        "every id acked after the reassignment",
        Duration::from_secs(90),
        || async { (cluster.acked_ids().len() as u64 == n).then_some(()) },
    )
    .await;
    assert!(
        cluster.acked_ids().iter().copied().eq(0..n),
        "{}",
        cluster.logs()
    );
}
