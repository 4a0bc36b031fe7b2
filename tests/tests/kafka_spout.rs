//! The Kafka spout and bolt in one process (local mode) against a real broker (tansu): retries
//! with a failing bolt, commits that end at the log end, the uncommitted-offsets bound,
//! at-most-once committing before it emits, dead letters, pattern subscriptions picking up a
//! new topic, and rewinding to a position.

use cluster_tests::kafka::{keyed_records, Broker};
use cluster_tests::{eventually, remove_test_dir, scratch_dir, serial};
use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tempest_kafka::{
    KafkaBolt, KafkaBoltConfig, KafkaSpout, KafkaSpoutConfig, KafkaSpoutConfigBuilder,
    ProcessingGuarantee, RetryPolicy, Topics,
};
use topology_api::prelude::*;
use topology_api::{run_local, LocalOptions, LocalReport};

const GROUP: &str = "tempest-test";

/// A spout that delegates to `inner` and is finished once `stop` is set, so a local run ends
/// when the test has seen what it waits for.
struct Stoppable<S> {
    inner: S,
    stop: Arc<AtomicBool>,
}

#[async_trait]
impl<S: Spout> Spout for Stoppable<S> {
    fn declare_output_fields(&self, d: &mut OutputDeclarer) {
        self.inner.declare_output_fields(d)
    }
    async fn open(&mut self, ctx: &TopologyContext) -> ComponentResult {
        self.inner.open(ctx).await
    }
    async fn next_tuple(&mut self, c: &mut SpoutOutputCollector) -> ComponentResult {
        if self.stop.load(Ordering::Relaxed) {
            return Ok(());
        }
        self.inner.next_tuple(c).await
    }
    async fn ack(&mut self, id: u64) {
        self.inner.ack(id).await
    }
    async fn fail(&mut self, id: u64) {
        self.inner.fail(id).await
    }
    async fn deactivate(&mut self) {
        self.inner.deactivate().await
    }
    async fn close(&mut self) {
        self.inner.close().await
    }
    fn is_finished(&self) -> bool {
        self.stop.load(Ordering::Relaxed)
    }
}

/// What the sink saw: (topic, partition, offset) -> times, and the tuples' streams.
#[derive(Default)]
struct Seen {
    times: BTreeMap<(String, i64, i64), usize>,
    streams: BTreeMap<String, usize>,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// Records every tuple it gets, fails `fail_fraction` of them (re-emitting the rest as
/// `key, message` for a KafkaBolt), and fails every attempt of offsets in `always_fail`.
struct Sink {
    seen: Arc<Mutex<Seen>>,
    fail_fraction: f64,
    always_fail: BTreeSet<i64>,
    /// Set while the test wants tuples to stay in flight (not acked).
    hold: Option<Arc<AtomicBool>>,
    held: Vec<Tuple>,
}

#[async_trait]
impl Bolt for Sink {
    fn declare_output_fields(&self, d: &mut OutputDeclarer) {
        d.declare(["key", "message"]);
    }
    async fn execute(&mut self, t: Tuple, c: &mut OutputCollector) -> ComponentResult {
        if t.is_tick() {
            if !self
                .hold
                .as_ref()
                .is_some_and(|h| h.load(Ordering::Relaxed))
            {
                for h in self.held.drain(..) {
                    c.ack(&h);
                }
            }
            return Ok(());
        }
        let key = (
            t.str("topic")?.to_string(),
            t.i64("partition")?,
            t.i64("offset")?,
        );
        {
            let mut seen = lock(&self.seen);
            *seen.times.entry(key.clone()).or_default() += 1;
            *seen
                .streams
                .entry(t.source_stream().to_string())
                .or_default() += 1;
        }
        if t.source_stream() != "default" {
            c.ack(&t);
            return Ok(());
        }
        if self.always_fail.contains(&key.2) || fastrand::f64() < self.fail_fraction {
            c.fail(&t);
            return Ok(());
        }
        if self
            .hold
            .as_ref()
            .is_some_and(|h| h.load(Ordering::Relaxed))
        {
            self.held.push(t);
            return Ok(());
        }
        let k = t.str("key")?.to_string();
        let v = t.str("value")?.to_string();
        c.emit_anchored(&t, values![k, v])?;
        c.ack(&t);
        Ok(())
    }
}

struct Run {
    broker: Broker,
    dir: std::path::PathBuf,
}

impl Run {
    fn new(name: &str) -> Run {
        let dir = scratch_dir(name);
        let broker = Broker::start(&dir);
        Run { broker, dir }
    }

    fn spout(&self, topics: Topics) -> KafkaSpoutConfigBuilder {
        KafkaSpoutConfig::builder(&self.broker.bootstrap(), topics)
            .group_id(GROUP)
            .offset_commit_period(Duration::from_millis(200))
            .consumer_property("fetch.wait.max.ms", "20")
    }
}

impl Drop for Run {
    fn drop(&mut self) {
        remove_test_dir(&self.dir);
    }
}

struct Topo {
    spout: KafkaSpoutConfig,
    tasks: u32,
    fail_fraction: f64,
    always_fail: BTreeSet<i64>,
    out: Option<KafkaBoltConfig>,
    hold: Option<Arc<AtomicBool>>,
    dead_letters: bool,
}

/// Runs the topology in the background until `stop` is set; returns the sink's record and the
/// run's handle.
fn start(
    t: Topo,
    stop: Arc<AtomicBool>,
) -> (
    Arc<Mutex<Seen>>,
    tokio::task::JoinHandle<Result<LocalReport, topology_api::RunError>>,
) {
    let seen = Arc::new(Mutex::new(Seen::default()));
    let mut b = TopologyBuilder::new("kafka-local");
    b.config().set("topology.message.timeout.secs", 10);
    let spout = t.spout.clone();
    let s = stop.clone();
    b.set_spout(
        "kafka",
        move || Stoppable {
            inner: KafkaSpout::new(spout.clone()),
            stop: s.clone(),
        },
        t.tasks,
    );
    let (sn, ff, af, hold) = (seen.clone(), t.fail_fraction, t.always_fail, t.hold);
    let mut sink = b
        .set_bolt(
            "sink",
            move || Sink {
                seen: sn.clone(),
                fail_fraction: ff,
                always_fail: af.clone(),
                hold: hold.clone(),
                held: Vec::new(),
            },
            2,
        )
        .shuffle_grouping("kafka")
        .add_config("topology.tick.tuple.freq.secs", 1);
    if t.dead_letters {
        sink = sink.shuffle_grouping(("kafka", "dead"));
    }
    let _ = sink;
    if let Some(out) = t.out {
        b.set_bolt("out", move || KafkaBolt::new(out.clone()), 2)
            .shuffle_grouping("sink");
    }
    let topology = b.build().expect("valid topology");
    let handle = tokio::spawn(async move { run_local(&topology, LocalOptions::default()).await });
    (seen, handle)
}

async fn finish(
    stop: &AtomicBool,
    handle: tokio::task::JoinHandle<Result<LocalReport, topology_api::RunError>>,
) -> LocalReport {
    stop.store(true, Ordering::Relaxed);
    tokio::time::timeout(Duration::from_secs(30), handle)
        .await
        .expect("the run ends once the spouts are stopped")
        .expect("join")
        .expect("the run succeeds")
}

fn distinct(seen: &Mutex<Seen>) -> usize {
    lock(seen).times.len()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failing_tuples_are_retried_until_everything_is_through_and_committed() {
    let _turn = serial().await;
    let run = Run::new("kafka-retries");
    let n = 2000;
    run.broker.create_topic("in", 4).await;
    run.broker.create_topic("out", 4).await;
    let ends = run.broker.produce("in", &keyed_records(n)).await;
    assert_eq!(ends.len(), 4, "keys spread over the 4 partitions: {ends:?}");

    let stop = Arc::new(AtomicBool::new(false));
    let out = KafkaBoltConfig::builder(&run.broker.bootstrap())
        .topic("out")
        .producer_property("linger.ms", "5")
        .build()
        .expect("bolt config");
    let (seen, handle) = start(
        Topo {
            spout: run.spout(Topics::names(["in"])).build().expect("config"),
            tasks: 2,
            fail_fraction: 0.1,
            always_fail: BTreeSet::new(),
            out: Some(out),
            hold: None,
            dead_letters: false,
        },
        stop.clone(),
    );
    eventually("every record seen", Duration::from_secs(60), || async {
        (distinct(&seen) == n).then_some(())
    })
    .await;
    eventually(
        "the committed offsets at the end of every partition",
        Duration::from_secs(30),
        || async { (run.broker.committed(GROUP, "in", 4) == ends).then_some(()) },
    )
    .await;
    let report = finish(&stop, handle).await;
    let seen = lock(&seen);
    let retried = seen.times.values().filter(|n| **n > 1).count();
    assert!(
        retried > 0,
        "10% failed, so some records were emitted again"
    );
    let failed = report.by_component()["kafka"].failed;
    assert!(
        failed as usize >= retried,
        "failed {failed}, retried {retried}"
    );

    // The KafkaBolt wrote every record: read them back.
    let want: BTreeSet<(String, String)> = keyed_records(n).into_iter().collect();
    let mut got = BTreeSet::new();
    run.broker
        .read_until("out", 4, Duration::from_secs(30), |r| {
            got.insert((
                r.key.clone().unwrap_or_default(),
                r.value.clone().unwrap_or_default(),
            ));
            got.len() >= want.len()
        });
    assert_eq!(got, want, "every input key/value is in the output topic");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn max_uncommitted_offsets_bounds_what_a_stuck_partition_emits() {
    let _turn = serial().await;
    let run = Run::new("kafka-max-uncommitted");
    run.broker.create_topic("in", 1).await;
    run.broker.produce("in", &keyed_records(300)).await;
    let stop = Arc::new(AtomicBool::new(false));
    let hold = Arc::new(AtomicBool::new(true));
    let (seen, handle) = start(
        Topo {
            spout: run
                .spout(Topics::names(["in"]))
                .max_uncommitted_offsets(50)
                .max_poll_records(10)
                .build()
                .expect("config"),
            tasks: 1,
            fail_fraction: 0.0,
            always_fail: BTreeSet::new(),
            out: None,
            hold: Some(hold.clone()),
            dead_letters: false,
        },
        stop.clone(),
    );
    // Nothing is acked while held: the spout stops at the limit (plus at most one poll).
    eventually("50 records emitted", Duration::from_secs(30), || async {
        (distinct(&seen) >= 50).then_some(())
    })
    .await;
    // Give it time to (wrongly) go on; the limit must hold over a second of polling.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(1);
    while tokio::time::Instant::now() < deadline {
        assert!(distinct(&seen) < 60, "emitted {} > 50 + 9", distinct(&seen));
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    hold.store(false, Ordering::Relaxed);
    eventually("all 300 once released", Duration::from_secs(30), || async {
        (distinct(&seen) == 300).then_some(())
    })
    .await;
    eventually("committed to the end", Duration::from_secs(30), || async {
        (run.broker.committed(GROUP, "in", 1).get(&0) == Some(&300)).then_some(())
    })
    .await;
    finish(&stop, handle).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exhausted_retries_go_to_the_dead_letter_stream_and_are_committed() {
    let _turn = serial().await;
    let run = Run::new("kafka-dead-letters");
    run.broker.create_topic("in", 1).await;
    run.broker.produce("in", &keyed_records(100)).await;
    let stop = Arc::new(AtomicBool::new(false));
    let poison: BTreeSet<i64> = [7, 42].into_iter().collect();
    let (seen, handle) = start(
        Topo {
            spout: run
                .spout(Topics::names(["in"]))
                .retry(RetryPolicy::exponential(
                    Duration::ZERO,
                    Duration::from_millis(5),
                    Duration::from_millis(50),
                    Some(3),
                ))
                .dead_letter_stream("dead")
                .build()
                .expect("config"),
            tasks: 1,
            fail_fraction: 0.0,
            always_fail: poison,
            out: None,
            hold: None,
            dead_letters: true,
        },
        stop.clone(),
    );
    eventually(
        "both poison records dead-lettered",
        Duration::from_secs(30),
        || async { (lock(&seen).streams.get("dead") == Some(&2)).then_some(()) },
    )
    .await;
    eventually("committed past them", Duration::from_secs(30), || async {
        (run.broker.committed(GROUP, "in", 1).get(&0) == Some(&100)).then_some(())
    })
    .await;
    finish(&stop, handle).await;
    let seen = lock(&seen);
    // 1 attempt + 3 retries on the default stream, then once on "dead".
    assert_eq!(seen.times[&("in".to_string(), 0, 7)], 5);
    assert_eq!(seen.times[&("in".to_string(), 0, 42)], 5);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn at_most_once_commits_each_poll_before_emitting_it() {
    let _turn = serial().await;
    let run = Run::new("kafka-at-most-once");
    run.broker.create_topic("in", 2).await;
    let ends = run.broker.produce("in", &keyed_records(200)).await;
    let stop = Arc::new(AtomicBool::new(false));
    let (seen, handle) = start(
        Topo {
            spout: run
                .spout(Topics::names(["in"]))
                .processing_guarantee(ProcessingGuarantee::AtMostOnce)
                .build()
                .expect("config"),
            tasks: 1,
            // Failures are not retried at most once.
            fail_fraction: 0.5,
            always_fail: BTreeSet::new(),
            out: None,
            hold: None,
            dead_letters: false,
        },
        stop.clone(),
    );
    eventually("200 records seen", Duration::from_secs(30), || async {
        (distinct(&seen) == 200).then_some(())
    })
    .await;
    // Committed already: the commit precedes the emit.
    assert_eq!(run.broker.committed(GROUP, "in", 2), ends);
    finish(&stop, handle).await;
    assert!(
        lock(&seen).times.values().all(|n| *n == 1),
        "nothing is emitted twice at most once"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pattern_picks_up_a_topic_created_later() {
    let _turn = serial().await;
    let run = Run::new("kafka-pattern");
    run.broker.create_topic("sent.a", 2).await;
    run.broker.produce("sent.a", &keyed_records(20)).await;
    run.broker.create_topic("other", 1).await;
    run.broker.produce("other", &keyed_records(5)).await;
    let stop = Arc::new(AtomicBool::new(false));
    let (seen, handle) = start(
        Topo {
            spout: run
                .spout(Topics::pattern("sent\\..*").expect("regex"))
                .partition_refresh_period(Duration::from_millis(300))
                .build()
                .expect("config"),
            tasks: 2,
            fail_fraction: 0.0,
            always_fail: BTreeSet::new(),
            out: None,
            hold: None,
            dead_letters: false,
        },
        stop.clone(),
    );
    eventually("sent.a read", Duration::from_secs(30), || async {
        (distinct(&seen) == 20).then_some(())
    })
    .await;
    run.broker.create_topic("sent.b", 2).await;
    run.broker.produce("sent.b", &keyed_records(10)).await;
    eventually("sent.b read too", Duration::from_secs(30), || async {
        (distinct(&seen) == 30).then_some(())
    })
    .await;
    finish(&stop, handle).await;
    let topics: BTreeSet<String> = lock(&seen).times.keys().map(|k| k.0.clone()).collect();
    assert_eq!(topics, ["sent.a", "sent.b"].map(String::from).into());
}

/// Drives a KafkaSpout directly, as the checkpoint machinery will: position, rewind,
/// checkpoint_complete.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn position_rewind_and_checkpoint_commit() {
    let _turn = serial().await;
    let run = Run::new("kafka-rewind");
    run.broker.create_topic("in", 1).await;
    run.broker.produce("in", &keyed_records(30)).await;
    let config = run
        .spout(Topics::names(["in"]))
        .processing_guarantee(ProcessingGuarantee::ExactlyOnce)
        .build()
        .expect("config");
    let offsets = Arc::new(Mutex::new(Vec::<i64>::new()));
    let stop = Arc::new(AtomicBool::new(false));

    /// Runs `inner`; once it has emitted 10 records, rewinds it to its position after 5;
    /// once it is at 25 again, completes a checkpoint there and stops.
    struct Driver {
        inner: KafkaSpout,
        at5: Option<serde_json::Value>,
        rewound: bool,
        stop: Arc<AtomicBool>,
    }
    #[async_trait]
    impl Spout for Driver {
        fn declare_output_fields(&self, d: &mut OutputDeclarer) {
            self.inner.declare_output_fields(d)
        }
        async fn open(&mut self, ctx: &TopologyContext) -> ComponentResult {
            self.inner.open(ctx).await
        }
        async fn next_tuple(&mut self, c: &mut SpoutOutputCollector) -> ComponentResult {
            if self.stop.load(Ordering::Relaxed) {
                return Ok(());
            }
            let pos = self.inner.position().ok_or("a position")?;
            let next = pos["in"]["0"].as_i64().unwrap_or(0);
            if next == 5 && self.at5.is_none() {
                self.at5 = Some(pos.clone());
            }
            if next == 10 && !self.rewound {
                self.rewound = true;
                let p = self.at5.clone().ok_or("a position at 5")?;
                return self.inner.rewind(p).await;
            }
            if next == 25 && self.rewound {
                self.inner.checkpoint_complete(1, pos).await;
                self.stop.store(true, Ordering::Relaxed);
                return Ok(());
            }
            self.inner.next_tuple(c).await
        }
        async fn close(&mut self) {
            self.inner.close().await
        }
        fn is_finished(&self) -> bool {
            self.stop.load(Ordering::Relaxed)
        }
    }
    struct Record(Arc<Mutex<Vec<i64>>>);
    #[async_trait]
    impl BasicBolt for Record {
        fn declare_output_fields(&self, _: &mut OutputDeclarer) {}
        fn execute(&mut self, t: &Tuple, _: &mut BasicOutputCollector<'_>) -> ComponentResult {
            lock(&self.0).push(t.i64("offset")?);
            Ok(())
        }
    }
    let mut b = TopologyBuilder::new("kafka-rewind");
    let s = stop.clone();
    b.set_spout(
        "kafka",
        move || Driver {
            inner: KafkaSpout::new(config.clone()),
            at5: None,
            rewound: false,
            stop: s.clone(),
        },
        1,
    );
    let o = offsets.clone();
    b.set_basic_bolt("record", move || Record(o.clone()), 1)
        .shuffle_grouping("kafka");
    let topology = b.build().expect("valid");
    tokio::time::timeout(
        Duration::from_secs(60),
        run_local(&topology, LocalOptions::default()),
    )
    .await
    .expect("ends")
    .expect("runs");
    let got = lock(&offsets).clone();
    let want: Vec<i64> = (0..10).chain(5..25).collect();
    assert_eq!(got, want, "0..10, rewound to 5, on to 25");
    assert_eq!(
        run.broker.committed(GROUP, "in", 1)[&0],
        25,
        "the checkpoint's position is committed"
    );
}
