//! Stateful bolts on a real cluster: 2 supervisors, 4 workers, the stateful word count of
//! `tests/src/bin/stateful_count.rs`, a worker holding count tasks killed with `kill -9`
//! mid-run. Exactly once (Redis state), the final counts are exactly the expected ones and
//! stay so: every worker rolled back to the last completed checkpoint together. At least once
//! (redb state on each supervisor's disk), every count is at least the expected one. Nimbus is
//! killed and restarted mid-run too: committed state does not depend on it.

use cluster_tests::redis::RedisServer;
use cluster_tests::{
    alive, eventually, expected_counts, serial, workspace_bin, Cluster, ClusterOptions,
};
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use std::collections::BTreeMap;
use std::time::Duration;

const SENTENCES: u64 = 30_000;
const RATE: u64 = 1_500;

fn total(counts: &BTreeMap<String, u64>) -> u64 {
    counts.values().sum()
}

/// Submits the stateful count on 4 workers, restarts Nimbus and kills a count worker once a
/// third is counted; returns the cluster (for the caller to wait on the outcome).
async fn run_and_crash(name: &str, config: &[(&str, String)]) -> Cluster {
    let mut cluster = Cluster::start(name, ClusterOptions::default()).await;
    let mut config: Vec<(&str, String)> = config.to_vec();
    config.push(("test.sentences", SENTENCES.to_string()));
    config.push(("test.rate", RATE.to_string()));
    cluster.submit_bin(&workspace_bin("stateful_count"), "counts", 4, &config);
    let assignment = cluster.wait_running("counts", 4).await;
    let expected_total = total(&expected_counts(SENTENCES));
    eventually(
        "a sixth of the words counted",
        Duration::from_secs(60),
        || async { (total(&cluster.counts().0) > expected_total / 6).then_some(()) },
    )
    .await;

    cluster.kill9_nimbus();
    cluster.restart_nimbus().await;
    eventually(
        "a third of the words counted",
        Duration::from_secs(60),
        || async { (total(&cluster.counts().0) > expected_total / 3).then_some(()) },
    )
    .await;

    let count_port = assignment
        .workers
        .iter()
        .find(|w| w.executors.iter().any(|e| e.component == "count"))
        .map(|w| w.port)
        .expect("a worker runs count tasks");
    let (&(sup, port), &pid) = cluster
        .live_workers()
        .iter()
        .find(|((_, p), _)| *p == count_port)
        .expect("the count worker runs");
    kill(Pid::from_raw(pid), Signal::SIGKILL).expect("kill -9 the worker");
    println!(
        "killed the worker on port {port} with {} of {expected_total} words counted",
        total(&cluster.counts().0)
    );
    eventually("the worker restarted", Duration::from_secs(30), || async {
        cluster.supervisors[sup]
            .live_workers()
            .get(&port)
            .is_some_and(|new| *new != pid && alive(*new))
            .then_some(())
    })
    .await;
    cluster
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exactly_once_counts_are_exact_after_kill_9_of_a_worker_among_four() {
    let _turn = serial().await;
    let redis = RedisServer::start();
    let cluster = run_and_crash(
        "state-exactly-once",
        &[
            ("topology.state.exactly.once", "true".into()),
            ("topology.state.provider", "redis".into()),
            ("topology.state.redis.url", redis.url()),
        ],
    )
    .await;
    let want = expected_counts(SENTENCES);
    eventually_exact(&cluster, &want).await;
    // And it stays exact: two more checkpoints later nothing was counted again.
    let details = |c: &Cluster| {
        let client = c.client();
        async move {
            client
                .describe("counts")
                .await
                .ok()
                .and_then(|d| d.view.last_checkpoint)
        }
    };
    let seen = details(&cluster).await.expect("a completed checkpoint");
    eventually("two more checkpoints", Duration::from_secs(90), || async {
        details(&cluster).await.filter(|c| *c >= seen + 2)
    })
    .await;
    assert_eq!(cluster.counts().0, want, "still exact");
    assert!(
        cluster
            .logs()
            .contains("roll back to the last completed checkpoint"),
        "the rollback is logged"
    );
}

async fn eventually_exact(cluster: &Cluster, want: &BTreeMap<String, u64>) {
    let deadline = std::time::Instant::now() + Duration::from_secs(120);
    loop {
        let got = cluster.counts().0;
        assert!(
            total(&got) <= total(want),
            "counted {} words, more than the {} sent: {got:?}\n{}",
            total(&got),
            total(want),
            cluster.logs()
        );
        if got == *want {
            break;
        }
        if std::time::Instant::now() > deadline {
            let logs = cluster.logs();
            let interesting: Vec<&str> = logs
                .lines()
                .filter(|l| {
                    l.contains("WARN")
                        || l.contains("ERROR")
                        || l.contains("restor")
                        || l.contains("rewind")
                })
                .collect();
            panic!(
                "no exact counts in 120 s: counted {} of {} words: {got:?}\n{}",
                total(&got),
                total(want),
                interesting.join("\n")
            );
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    println!(
        "exactly once on 4 workers: counted {} words, expected {}",
        total(want),
        total(want)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn at_least_once_counts_lose_nothing_after_kill_9_of_a_worker_among_four() {
    let _turn = serial().await;
    let cluster = run_and_crash("state-at-least-once", &[]).await;
    let want = expected_counts(SENTENCES);
    let got = eventually(
        "every count at least the expected one",
        Duration::from_secs(120),
        || async {
            let got = cluster.counts().0;
            want.iter()
                .all(|(w, n)| got.get(w).is_some_and(|g| g >= n))
                .then_some(got)
        },
    )
    .await;
    println!(
        "at least once on 4 workers: counted {} words, expected {} ({} counted twice)",
        total(&got),
        total(&want),
        total(&got) - total(&want)
    );
}
