//! Clusters of more than two workers: exact word counts with 4 workers on 2 supervisors and 6
//! workers on 3, every id acked; kill -9 of a worker under acking load with 4 workers loses
//! nothing; workers are named after their topology and port in `ps`.

use cluster_tests::{alive, eventually, expected_counts, serial, Cluster, ClusterOptions};
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use std::time::Duration;

/// Submits `n` sentences on `workers` workers and checks exact counts and acks.
async fn exact_counts(cluster: &Cluster, workers: u32, n: u64) {
    cluster.submit_word_count("wc", workers, n, 2000);
    let assignment = cluster.wait_running("wc", workers as usize).await;
    let supervisors: std::collections::BTreeSet<_> =
        assignment.workers.iter().map(|w| &w.supervisor).collect();
    assert_eq!(
        supervisors.len(),
        cluster.supervisors.len(),
        "workers on every supervisor: {assignment:?}"
    );
    cluster.wait_all_acked(n, Duration::from_secs(60)).await;
    let expected = expected_counts(n);
    eventually("exact counts", Duration::from_secs(30), || async {
        (cluster.counts().0 == expected).then_some(())
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exact_counts_with_four_workers_on_two_supervisors() {
    let _turn = serial().await;
    let cluster = Cluster::start("four-workers", ClusterOptions::default()).await;
    exact_counts(&cluster, 4, 8_000).await;

    // `ps -f` shows argv[0], `ps -e` the process name: both name the topology and the port.
    for ((_, port), pid) in cluster.live_workers() {
        let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).expect("cmdline");
        let argv0 = cmdline.split(|b| *b == 0).next().unwrap_or_default();
        assert_eq!(
            String::from_utf8_lossy(argv0),
            format!("tempest-worker:wc:{port}")
        );
        let comm = std::fs::read_to_string(format!("/proc/{pid}/comm")).expect("comm");
        assert_eq!(comm.trim(), format!("wc:{port}"));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exact_counts_with_six_workers_on_three_supervisors() {
    let _turn = serial().await;
    let opts = ClusterOptions {
        supervisors: 3,
        ..ClusterOptions::default()
    };
    let cluster = Cluster::start("six-workers", opts).await;
    exact_counts(&cluster, 6, 8_000).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_of_a_worker_among_four_loses_nothing() {
    let _turn = serial().await;
    let cluster = Cluster::start("four-workers-crash", ClusterOptions::default()).await;
    let n = 8_000;
    cluster.submit_word_count("wc", 4, n, 1000);
    cluster.wait_running("wc", 4).await;
    cluster.wait_acked(n / 4, Duration::from_secs(60)).await;

    // The worker hosting the spout: the hardest one to lose.
    let spout_port = cluster
        .client()
        .assignment("wc")
        .await
        .expect("assignment")
        .workers
        .iter()
        .find(|w| w.executors.iter().any(|e| e.component == "sentences"))
        .map(|w| w.port)
        .expect("a worker runs the spout");
    let (&(sup, port), &pid) = cluster
        .live_workers()
        .iter()
        .find(|((_, port), _)| *port == spout_port)
        .expect("the spout's worker runs");
    kill(Pid::from_raw(pid), Signal::SIGKILL).expect("kill -9 the worker");
    let acked_at_kill = cluster.acked_ids().len() as u64;
    eventually(
        "the supervisor to restart the worker",
        Duration::from_secs(30),
        || async {
            let now = cluster.supervisors[sup].live_workers();
            now.get(&port)
                .is_some_and(|new| *new != pid && alive(*new))
                .then_some(())
        },
    )
    .await;
    cluster.wait_all_acked(n, Duration::from_secs(90)).await;
    assert!(acked_at_kill < n, "the crash happened mid-run");
}
