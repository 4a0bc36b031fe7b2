//! Kafka in and out on a real cluster against a real broker (tansu): keyed records in a
//! 4-partition topic, a 2-task KafkaSpout on 2 workers, a bolt failing 10% of its tuples, a
//! sink recording what it processed and a KafkaBolt writing every record to another topic.
//! A worker is killed with `kill -9` mid-run. Every record is processed at least once, the
//! group's committed offsets end at the end of every partition, the lag endpoint agrees, and
//! the output topic holds every input key and value.

use cluster_tests::kafka::{keyed_records, Broker};
use cluster_tests::{
    alive, eventually, eventually_or, serial, workspace_bin, Cluster, ClusterOptions, SECRET,
};
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

const PARTITIONS: i32 = 4;

/// The distinct (topic, partition, offset) the sinks recorded, and how many lines in all.
fn seen(cluster: &Cluster) -> (BTreeSet<(String, i32, i64)>, usize) {
    let mut set = BTreeSet::new();
    let mut lines = 0;
    if let Ok(entries) = std::fs::read_dir(cluster.out_dir()) {
        for e in entries.flatten() {
            if !e.file_name().to_string_lossy().starts_with("seen-") {
                continue;
            }
            let text = std::fs::read_to_string(e.path()).unwrap_or_default();
            for l in text.lines() {
                let mut it = l.split(' ');
                let (Some(t), Some(p), Some(o)) = (it.next(), it.next(), it.next()) else {
                    continue;
                };
                if let (Ok(p), Ok(o)) = (p.parse(), o.parse()) {
                    set.insert((t.to_string(), p, o));
                    lines += 1;
                }
            }
        }
    }
    (set, lines)
}

/// `GET /api/v1/topology/<name>/lag` through Nimbus: partition -> (committed, log end).
async fn lag(cluster: &Cluster, name: &str) -> Option<BTreeMap<String, (i64, i64)>> {
    let url = format!("{}/api/v1/topology/{name}/lag", cluster.url);
    let v: serde_json::Value = reqwest::Client::new()
        .get(url)
        .header("x-tempest-secret", SECRET)
        .send()
        .await
        .ok()?
        .json()
        .await
        .ok()?;
    let parts = v["kafka"]["spoutLagResult"]["in"].as_object()?;
    Some(
        parts
            .iter()
            .map(|(p, o)| {
                (
                    p.clone(),
                    (
                        o["consumerCommittedOffset"].as_i64().unwrap_or(-2),
                        o["logHeadOffset"].as_i64().unwrap_or(-2),
                    ),
                )
            })
            .collect(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kafka_records_survive_a_killed_worker_and_failing_tuples() {
    let _turn = serial().await;
    let cluster = Cluster::start("kafka-cluster", ClusterOptions::default()).await;
    let broker = Broker::start(&cluster.dir);
    broker.create_topic("in", PARTITIONS).await;
    broker.create_topic("out", PARTITIONS).await;
    let n = 6000;
    let records = keyed_records(n);
    let (first, second) = records.split_at(n / 2);
    let mut ends = broker.produce("in", first).await;

    cluster.submit_bin(
        &workspace_bin("kafka_count"),
        "kafka",
        2,
        &[
            ("test.kafka.bootstrap", broker.bootstrap()),
            ("test.fail.fraction", "0.1".into()),
            ("topology.message.timeout.secs", "5".into()),
        ],
    );
    cluster.wait_running("kafka", 2).await;
    eventually(
        "a quarter of the records processed",
        Duration::from_secs(60),
        || async { (seen(&cluster).0.len() >= n / 4).then_some(()) },
    )
    .await;

    // kill -9 the first supervisor's worker(s), mid-run.
    let sup = cluster
        .supervisors
        .iter()
        .find(|s| !s.live_workers().is_empty())
        .expect("a supervisor runs a worker");
    let before = sup.live_workers();
    for pid in before.values() {
        kill(Pid::from_raw(*pid), Signal::SIGKILL).expect("kill -9 the worker");
    }
    let at_kill = seen(&cluster).0.len();
    // The second half arrives while the worker is down and restarting.
    for (p, end) in broker.produce("in", second).await {
        ends.insert(p, end);
    }
    assert_eq!(ends.len() as i32, PARTITIONS, "every partition has records");
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

    let want: BTreeSet<(String, i32, i64)> = ends
        .iter()
        .flat_map(|(p, end)| (0..*end).map(move |o| ("in".to_string(), *p, o)))
        .collect();
    assert_eq!(want.len(), n);
    eventually_or(
        "every record processed",
        Duration::from_secs(120),
        || async {
            let (got, lines) = seen(&cluster);
            if got == want {
                return Ok(());
            }
            let missing: Vec<_> = want.difference(&got).take(5).collect();
            Err(format!(
                "{} of {} records in {lines} lines; missing e.g. {missing:?}",
                got.len(),
                want.len()
            ))
        },
    )
    .await;
    let committed = eventually_or(
        "the committed offsets at the end of every partition",
        Duration::from_secs(30),
        || async {
            let c = broker.committed("tempest-test", "in", PARTITIONS);
            if c == ends {
                Ok(c)
            } else {
                Err(format!(
                    "committed {c:?}, log ends {ends:?}, lag endpoint {:?}",
                    lag(&cluster, "kafka").await
                ))
            }
        },
    )
    .await;
    // The spouts report the same through Nimbus (log end from their fetches, see README).
    let want_lag: BTreeMap<String, (i64, i64)> = committed
        .iter()
        .map(|(p, c)| (p.to_string(), (*c, ends[p])))
        .collect();
    eventually_or(
        "the lag endpoint at zero lag",
        Duration::from_secs(30),
        || async {
            let got = lag(&cluster, "kafka").await;
            if got.as_ref() == Some(&want_lag) {
                Ok(())
            } else {
                Err(format!("{got:?}, want {want_lag:?}"))
            }
        },
    )
    .await;

    let (distinct, lines) = seen(&cluster);
    assert!(
        at_kill < n,
        "the kill happened mid-run ({at_kill} of {n} done)"
    );
    eprintln!(
        "{} records, {lines} processed (duplicates from replays: {})",
        distinct.len(),
        lines - distinct.len()
    );

    // Every input key/value is in the output topic (at least once: duplicates allowed).
    let want_out: BTreeSet<(String, String)> = records.into_iter().collect();
    let mut got = BTreeSet::new();
    broker.read_until("out", PARTITIONS, Duration::from_secs(30), |r| {
        got.insert((
            r.key.clone().unwrap_or_default(),
            r.value.clone().unwrap_or_default(),
        ));
        got.len() >= want_out.len()
    });
    assert_eq!(
        got.len(),
        want_out.len(),
        "distinct records in the output topic"
    );
    assert_eq!(
        got, want_out,
        "every input key/value is in the output topic"
    );
}
