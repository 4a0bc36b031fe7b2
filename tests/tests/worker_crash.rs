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
    cluster.submit(
        "wc",
        2,
        &[
            ("test.sentences", n.to_string()),
            ("test.rate", "1000".into()),
            ("topology.message.timeout.secs", "5".into()),
        ],
    );
    eventually(
        "a third of the ids acked",
        Duration::from_secs(60),
        || async { (cluster.acked_ids().len() as u64 >= n / 3).then_some(()) },
    )
    .await;

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
    eventually(
        "every id acked after the crash",
        Duration::from_secs(90),
        || async { (cluster.acked_ids().len() as u64 == n).then_some(()) },
    )
    .await;
    let acked = cluster.acked_ids();
    assert_eq!(acked.len() as u64, n, "{}", cluster.logs());
    assert!(acked.iter().copied().eq(0..n), "ids outside 0..{n}");
    assert!((acked_at_kill as u64) < n, "the crash happened mid-run");
}
