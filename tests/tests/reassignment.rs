//! A new assignment restarts only the workers it changes: when a supervisor dies, its workers
//! move and the others keep running (same pids) while every id is acked; a rebalance from 3
//! to 4 workers restarts only the workers whose executors move.

use cluster_tests::{eventually, serial, Cluster, ClusterOptions};
use std::collections::BTreeMap;
use std::time::Duration;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_supervisor_moves_only_its_workers() {
    let _turn = serial().await;
    let opts = ClusterOptions {
        supervisors: 3,
        ..ClusterOptions::default()
    };
    let mut cluster = Cluster::start("reassign-supervisor", opts).await;
    let n = 10_000;
    cluster.submit_word_count("wc", 4, n, 1000);
    let before = cluster.wait_running("wc", 4).await;
    cluster.wait_acked(n / 5, Duration::from_secs(60)).await;

    // The supervisor with two workers dies with them (the machine is gone).
    let pids = cluster.live_workers();
    let victim = (0..3)
        .find(|i| pids.keys().filter(|(s, _)| s == i).count() == 2)
        .expect("a supervisor runs two of the four workers");
    let victim_id = cluster.supervisor_id(victim);
    cluster.supervisors[victim].daemon.kill9();
    cluster.supervisors[victim].kill9_workers();
    let survivors: BTreeMap<_, _> = pids
        .into_iter()
        .filter(|((s, _), _)| *s != victim)
        .collect();
    assert_eq!(survivors.len(), 2);

    let client = cluster.client();
    let after = eventually(
        "Nimbus to move the dead supervisor's workers",
        Duration::from_secs(30),
        || {
            let client = client.clone();
            let victim_id = victim_id.clone();
            async move {
                let a = client.assignment("wc").await.ok()?;
                (a.version > before.version && a.workers.iter().all(|w| w.supervisor != victim_id))
                    .then_some(a)
            }
        },
    )
    .await;
    assert_eq!(after.workers.len(), 4);
    cluster.wait_all_acked(n, Duration::from_secs(90)).await;
    let now = cluster.live_workers();
    for (slot, pid) in &survivors {
        assert_eq!(
            now.get(slot),
            Some(pid),
            "the worker on {slot:?} kept running\n{}",
            cluster.logs()
        );
    }
    assert_eq!(now.len(), 4, "two moved workers run beside them: {now:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rebalance_restarts_only_the_workers_whose_executors_move() {
    let _turn = serial().await;
    let cluster = Cluster::start("reassign-rebalance", ClusterOptions::default()).await;
    let n = 10_000;
    cluster.submit_word_count("wc", 3, n, 1000);
    let before = cluster.wait_running("wc", 3).await;
    cluster.wait_acked(n / 5, Duration::from_secs(60)).await;
    let pids = cluster.live_workers();

    let args: Vec<String> = [
        "--nimbus",
        &cluster.url,
        "rebalance",
        "wc",
        "-n",
        "4",
        "--wait",
        "0",
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
    let after = cluster.wait_running("wc", 4).await;
    assert!(after.version > before.version);
    let unchanged: Vec<_> = before
        .workers
        .iter()
        .filter(|w| after.workers.contains(w))
        .collect();
    let slots = |a: &tempest_protocol::control::Assignment| -> Vec<String> {
        a.workers
            .iter()
            .map(|w| format!("{}:{} {:?}", w.supervisor, w.port, w.executors))
            .collect()
    };
    assert_eq!(
        unchanged.len(),
        2,
        "6 executors from 3 workers to 4 move two:\nbefore {:#?}\nafter {:#?}",
        slots(&before),
        slots(&after)
    );
    cluster.wait_all_acked(n, Duration::from_secs(90)).await;
    let now = cluster.live_workers();
    for w in unchanged {
        let slot = pids
            .keys()
            .find(|(_, port)| *port == w.port)
            .expect("the unchanged worker was running");
        assert_eq!(
            now.get(slot),
            pids.get(slot),
            "the worker on port {} kept running",
            w.port
        );
    }
}
