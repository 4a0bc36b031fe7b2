//! KafkaSpout throughput: records/s into a topology, at least once (every record's tuple tree
//! acked). Produces `--records` small records (a 12-byte key, a 16-byte value) into a new
//! `--partitions`-partition topic once, then runs, `--runs` times in this process, a local
//! topology of a `--spouts`-task KafkaSpout (default translator: fields `topic, partition,
//! offset, key, value`, each run in a new consumer group from the earliest offset) and a
//! counting bolt, until every record is acked. The rate of a run is records / (last ack −
//! first emit); the last line printed is `median_records_per_s=..`.
//!
//! Needs a broker (the README's "Kafka" section starts one with `scripts/tansu.sh`):
//! `cargo run --release --example kafka_bench -- --bootstrap 127.0.0.1:9092 --records 2000000`

use anyhow::{bail, Context};
use clap::Parser;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::error::KafkaError;
use rdkafka::producer::{BaseRecord, DefaultProducerContext, Producer, ThreadedProducer};
use rdkafka::types::RDKafkaErrorCode;
use rdkafka::ClientConfig;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use tempest_kafka::{FirstPollOffsetStrategy, KafkaSpout, KafkaSpoutConfig, Topics};
use topology_api::config::TOPOLOGY_MAX_SPOUT_PENDING;
use topology_api::prelude::*;
use topology_api::{run_local_blocking, LocalOptions};

#[derive(Parser)]
#[command(about = "KafkaSpout throughput (records/s into a topology, at least once)")]
struct Args {
    /// The brokers.
    #[arg(long, default_value = "127.0.0.1:9092")]
    bootstrap: String,
    /// Records to produce, and to read in each run.
    #[arg(long, default_value_t = 1_000_000)]
    records: u64,
    /// Partitions of the topic.
    #[arg(long, default_value_t = 4)]
    partitions: i32,
    /// KafkaSpout tasks (each reads its share of the partitions).
    #[arg(long, default_value_t = 2)]
    spouts: u32,
    /// Counting bolt tasks.
    #[arg(long, default_value_t = 2)]
    counters: u32,
    /// Runs of the topology over the same records; the median is reported.
    #[arg(long, default_value_t = 3)]
    runs: u32,
    /// `topology.max.spout.pending` (tracked trees in flight per spout task).
    #[arg(long, default_value_t = 5000)]
    max_pending: u64,
}

/// Nanoseconds since the benchmark started (one clock for every task).
fn since(start: Instant) -> u64 {
    start.elapsed().as_nanos() as u64
}

/// The times and counts every spout task of a run shares.
struct Progress {
    clock: Instant,
    target: u64,
    acked: AtomicU64,
    failed: AtomicU64,
    /// Nanoseconds on `clock` (`u64::MAX`: none yet).
    first_emit: AtomicU64,
    last_ack: AtomicU64,
}

/// A KafkaSpout that notes its first emit and counts acks; finished once every record of the
/// run is acked (so local mode ends).
struct Timed {
    inner: KafkaSpout,
    progress: Arc<Progress>,
}

#[async_trait]
impl Spout for Timed {
    fn declare_output_fields(&self, d: &mut OutputDeclarer) {
        self.inner.declare_output_fields(d)
    }
    async fn open(&mut self, ctx: &TopologyContext) -> ComponentResult {
        self.inner.open(ctx).await
    }
    async fn next_tuple(&mut self, c: &mut SpoutOutputCollector) -> ComponentResult {
        if self.is_finished() {
            return Ok(());
        }
        self.inner.next_tuple(c).await?;
        if self.progress.first_emit.load(Ordering::Relaxed) == u64::MAX {
            let now = since(self.progress.clock);
            // Only once it emitted something: the first calls may have no records yet.
            if c.pending() > 0 {
                let _ = self.progress.first_emit.compare_exchange(
                    u64::MAX,
                    now,
                    Ordering::Relaxed,
                    Ordering::Relaxed,
                );
            }
        }
        Ok(())
    }
    async fn ack(&mut self, id: u64) {
        self.inner.ack(id).await;
        self.progress.acked.fetch_add(1, Ordering::Relaxed);
        self.progress
            .last_ack
            .fetch_max(since(self.progress.clock), Ordering::Relaxed);
    }
    async fn fail(&mut self, id: u64) {
        self.progress.failed.fetch_add(1, Ordering::Relaxed);
        self.inner.fail(id).await
    }
    async fn deactivate(&mut self) {
        self.inner.deactivate().await
    }
    async fn close(&mut self) {
        self.inner.close().await
    }
    fn is_finished(&self) -> bool {
        self.progress.acked.load(Ordering::Relaxed) >= self.progress.target
    }
}

/// Counts its tuples (and acks them: a BasicBolt).
struct Count(u64);

#[async_trait]
impl BasicBolt for Count {
    fn declare_output_fields(&self, _: &mut OutputDeclarer) {}
    fn execute(&mut self, t: &Tuple, _: &mut BasicOutputCollector<'_>) -> ComponentResult {
        // Touch the record like a real bolt would.
        self.0 += t.str("value")?.len() as u64;
        Ok(())
    }
}

/// Creates `topic` and produces `records` records to it; returns the time it took.
fn produce(args: &Args, topic: &str) -> anyhow::Result<Duration> {
    let mut c = ClientConfig::new();
    c.set("bootstrap.servers", &args.bootstrap);
    let admin: AdminClient<DefaultClientContext> = c.create()?;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    for r in rt.block_on(admin.create_topics(
        &[NewTopic::new(
            topic,
            args.partitions,
            TopicReplication::Fixed(1),
        )],
        &AdminOptions::new().operation_timeout(Some(Duration::from_secs(10))),
    ))? {
        if let Err((t, e)) = r {
            bail!("cannot create topic {t}: {e}");
        }
    }
    let producer: ThreadedProducer<DefaultProducerContext> = c
        .clone()
        .set("linger.ms", "20")
        .set("batch.num.messages", "10000")
        .set("queue.buffering.max.messages", "1000000")
        .create()?;
    let start = Instant::now();
    for i in 0..args.records {
        let key = format!("k{i:011}");
        let value = format!("value-{i:010}");
        let mut record = BaseRecord::<str, str>::to(topic).key(&key).payload(&value);
        loop {
            match producer.send(record) {
                Ok(()) => break,
                Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), r)) => {
                    record = r;
                    std::thread::sleep(Duration::from_millis(1));
                }
                Err((e, _)) => bail!("cannot produce to {topic}: {e}"),
            }
        }
    }
    producer
        .flush(Duration::from_secs(120))
        .context("waiting for the broker to confirm every record")?;
    Ok(start.elapsed())
}

/// One run: a topology reading the whole topic in a new group; its records/s.
fn run(args: &Args, topic: &str, group: &str) -> anyhow::Result<f64> {
    let spout = KafkaSpoutConfig::builder(&args.bootstrap, Topics::names([topic]))
        .group_id(group)
        .first_poll_offset_strategy(FirstPollOffsetStrategy::Earliest)
        .offset_commit_period(Duration::from_secs(1))
        // The test broker's fetches wait out fetch.wait.max.ms even when data arrives.
        .consumer_property("fetch.wait.max.ms", "20")
        .build()?;
    let progress = Arc::new(Progress {
        clock: Instant::now(),
        target: args.records,
        acked: AtomicU64::new(0),
        failed: AtomicU64::new(0),
        first_emit: AtomicU64::new(u64::MAX),
        last_ack: AtomicU64::new(0),
    });
    let mut b = TopologyBuilder::new("kafka-bench");
    b.config()
        .set(TOPOLOGY_MAX_SPOUT_PENDING, args.max_pending as i64);
    let p = progress.clone();
    b.set_spout(
        "kafka",
        move || Timed {
            inner: KafkaSpout::new(spout.clone()),
            progress: p.clone(),
        },
        args.spouts,
    );
    b.set_basic_bolt("count", || Count(0), args.counters)
        .shuffle_grouping("kafka");
    let topology = b.build()?;
    let report = run_local_blocking(&topology, LocalOptions::default())?;
    let acked = progress.acked.load(Ordering::Relaxed);
    if acked < args.records {
        bail!(
            "the run ended with {acked} of {} records acked",
            args.records
        );
    }
    let first = progress.first_emit.load(Ordering::Relaxed);
    let last = progress.last_ack.load(Ordering::Relaxed);
    let secs = last.saturating_sub(first) as f64 / 1e9;
    let executed: u64 = report.by_component().get("count").map_or(0, |s| s.executed);
    let rate = args.records as f64 / secs;
    println!(
        "run in group {group}: {acked} acked ({} failed, {executed} executed) in {secs:.2} s from the first emit: {rate:.0} records/s (whole run {:.2} s)",
        progress.failed.load(Ordering::Relaxed),
        report.elapsed.as_secs_f64()
    );
    Ok(rate)
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    topology_api::entry::init_tracing();
    let stamp = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let topic = format!("kafka-bench-{stamp}");
    let took = produce(&args, &topic)?;
    println!(
        "produced {} records to {topic} ({} partitions) in {:.2} s ({:.0} records/s)",
        args.records,
        args.partitions,
        took.as_secs_f64(),
        args.records as f64 / took.as_secs_f64()
    );
    let mut rates = Vec::new();
    for i in 0..args.runs {
        rates.push(run(&args, &topic, &format!("{topic}-run{i}"))?);
    }
    rates.sort_by(f64::total_cmp);
    let median = rates[rates.len() / 2];
    println!(
        "spouts={} counters={} partitions={} records={} runs={:?}",
        args.spouts,
        args.counters,
        args.partitions,
        args.records,
        rates.iter().map(|r| r.round() as u64).collect::<Vec<_>>()
    );
    println!("median_records_per_s={median:.0}");
    Ok(())
}
