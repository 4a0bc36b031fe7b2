//! kill -9 one worker mid-run with acking on: its supervisor restarts it, the spout replays
//! what was lost, every message id ends acked.

use cluster_tests::{alive, eventually, serial, Cluster, ClusterOptions};
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use std::time::Duration;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_worker_is_restarted_and_nothing_is_lost() {
    let _turn = serial().await;
    let cluster = Cluster::start("worker-crash", ClusterOptions::default()).await;
    let n = 6_000;
    cluster.submit_word_count("wc", 2, n, 1000);
    cluster.wait_acked(n / 3, Duration::from_secs(60)).await;

    // Kill every worker of the first supervisor that has one.
    let sup = cluster
        .supervisors
        .iter()
        .find(|s| !s.live_workers().is_empty())
        .expect("a supervisor runs a worker");
    let before = sup.live_workers();
    for pid in before.values() {
        kill(Pid::from_raw(*pid), Signal::SIGKILL).expect("kill -9 the worker");
    }
    let acked_at_kill = cluster.acked_ids().len();

    eventually(
        "the supervisor to restart the worker",
        Duration::from_secs(30),
        || async {
            let now = sup.live_workers();
            let restarted = before
                .iter()
                .all(|(port, old)| now.get(port).is_some_and(|new| new != old && alive(*new)));
            restarted.then_some(())
        },
    )
    .await;
    cluster.wait_all_acked(n, Duration::from_secs(90)).await;
    assert!((acked_at_kill as u64) < n, "the crash happened mid-run");
}
