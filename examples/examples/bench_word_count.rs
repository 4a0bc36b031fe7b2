//! Word count benchmark in local mode: spout -> split (shuffle) -> count (fields on "word").
//! The spout draws uniformly from the ten sentences of `data/sentences.txt` and stamps each
//! sentence with its emit time; the count bolt records emit-to-count latency of every word in an
//! HDR histogram. The last line printed is
//! `sentences_per_s=.. words_per_s=.. p50_us=.. p99_us=.. p999_us=.. peak_rss_mb=..`.
//!
//! `cargo run --release --example bench_word_count -- --seconds 10 --acking on`
//! `cargo run --release --example bench_word_count -- --seconds 10 --rate 100000`

use clap::{Parser, ValueEnum};
use hdrhistogram::Histogram;
use rustc_hash::FxHashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};
use tempest_examples::sentences;
use topology_api::config::{TOPOLOGY_ACKER_EXECUTORS, TOPOLOGY_MAX_SPOUT_PENDING};
use topology_api::prelude::*;
use topology_api::{run_local_blocking, LocalOptions};

#[derive(Clone, Copy, PartialEq, ValueEnum)]
enum OnOff {
    On,
    Off,
}

#[derive(Parser)]
#[command(about = "Word count throughput and latency in local mode")]
struct Args {
    /// How long to run.
    #[arg(long, default_value_t = 10)]
    seconds: u64,
    /// Track every sentence's tuple tree with the acker.
    #[arg(long, value_enum, default_value = "on")]
    acking: OnOff,
    /// Offered load in sentences per second (all spout tasks together); unlimited if absent.
    #[arg(long)]
    rate: Option<u64>,
    /// Spout parallelism.
    #[arg(long, default_value_t = 1)]
    spouts: u32,
    /// Split parallelism.
    #[arg(long, default_value_t = 2)]
    splits: u32,
    /// Count parallelism.
    #[arg(long, default_value_t = 2)]
    counts: u32,
    /// Override a config key (repeatable), e.g. -c topology.max.spout.pending=2000.
    #[arg(short = 'c', long = "config", value_name = "KEY=VALUE")]
    config: Vec<String>,
}

/// Nanoseconds since the process's benchmark epoch (shared by all tasks of this process).
fn now_ns() -> i64 {
    static EPOCH: OnceLock<Instant> = OnceLock::new();
    EPOCH.get_or_init(Instant::now).elapsed().as_nanos() as i64
}

struct BenchSpout {
    sentences: Vec<&'static str>,
    rng: fastrand::Rng,
    acking: bool,
    rate_per_task: Option<f64>,
    started: Instant,
    emitted: u64,
}

#[async_trait]
impl Spout for BenchSpout {
    fn declare_output_fields(&self, d: &mut OutputDeclarer) {
        d.declare(["sentence", "ts"]);
    }
    async fn open(&mut self, _: &TopologyContext) -> ComponentResult {
        self.started = Instant::now();
        Ok(())
    }
    async fn next_tuple(&mut self, c: &mut SpoutOutputCollector) -> ComponentResult {
        if let Some(rate) = self.rate_per_task {
            let due = (self.started.elapsed().as_secs_f64() * rate) as u64;
            if self.emitted >= due {
                return Ok(());
            }
        }
        let s = self.sentences[self.rng.usize(..self.sentences.len())];
        self.emitted += 1;
        let id = self.acking.then_some(self.emitted);
        c.emit(values![s, now_ns()], id)?;
        Ok(())
    }
}

/// Splits sentences, anchoring each word to its sentence; counts sentences.
struct Split {
    sentences: u64,
    total: Arc<AtomicU64>,
}

#[async_trait]
impl Bolt for Split {
    fn declare_output_fields(&self, d: &mut OutputDeclarer) {
        d.declare(["word", "ts"]);
    }
    async fn execute(&mut self, t: Tuple, c: &mut OutputCollector) -> ComponentResult {
        let ts = t.i64(1)?;
        for w in t.str(0)?.split_whitespace() {
            c.emit_anchored(&t, values![w, ts])?;
        }
        c.ack(&t);
        self.sentences += 1;
        Ok(())
    }
    async fn cleanup(&mut self) {
        self.total.fetch_add(self.sentences, Ordering::Relaxed);
    }
}

/// Counts words and records each word's latency since its sentence was emitted.
struct Count {
    counts: FxHashMap<String, u64>,
    words: u64,
    latency: Histogram<u64>,
    shared: Arc<Mutex<Histogram<u64>>>,
    total: Arc<AtomicU64>,
}

#[async_trait]
impl Bolt for Count {
    fn declare_output_fields(&self, _: &mut OutputDeclarer) {}
    async fn execute(&mut self, t: Tuple, c: &mut OutputCollector) -> ComponentResult {
        let word = t.str(0)?;
        match self.counts.get_mut(word) {
            Some(n) => *n += 1,
            None => {
                self.counts.insert(word.to_string(), 1);
            }
        }
        let latency_ns = (now_ns() - t.i64(1)?).max(0) as u64;
        self.latency.saturating_record(latency_ns / 1000);
        self.words += 1;
        c.ack(&t);
        Ok(())
    }
    async fn cleanup(&mut self) {
        self.total.fetch_add(self.words, Ordering::Relaxed);
        if let Ok(mut h) = self.shared.lock() {
            let _ = h.add(&self.latency);
        }
    }
}

fn histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 60_000_000, 3).expect("valid histogram bounds")
}

/// Peak resident set size of this process, from /proc (0 where unavailable).
fn peak_rss_mb() -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse::<f64>().ok())
        })
        .map_or(0.0, |kb| kb / 1024.0)
}

fn main() -> anyhow::Result<()> {
    topology_api::entry::init_tracing();
    let args = Args::parse();
    let acking = args.acking == OnOff::On;
    let latency = Arc::new(Mutex::new(histogram()));
    let (sentences_total, words_total) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
    let rate_per_task = args.rate.map(|r| r as f64 / args.spouts as f64);

    let mut b = TopologyBuilder::new("bench-word-count");
    b.config()
        .set(TOPOLOGY_ACKER_EXECUTORS, if acking { 1 } else { 0 })
        .set(TOPOLOGY_MAX_SPOUT_PENDING, 10_000);
    for kv in &args.config {
        b.config().set_from_str(kv).map_err(anyhow::Error::msg)?;
    }
    b.set_spout(
        "spout",
        move || BenchSpout {
            sentences: sentences(),
            rng: fastrand::Rng::new(),
            acking,
            rate_per_task,
            started: Instant::now(),
            emitted: 0,
        },
        args.spouts,
    );
    let st = sentences_total.clone();
    b.set_bolt(
        "split",
        move || Split {
            sentences: 0,
            total: st.clone(),
        },
        args.splits,
    )
    .shuffle_grouping("spout");
    let (wt, lat) = (words_total.clone(), latency.clone());
    b.set_bolt(
        "count",
        move || Count {
            counts: FxHashMap::default(),
            words: 0,
            latency: histogram(),
            shared: lat.clone(),
            total: wt.clone(),
        },
        args.counts,
    )
    .fields_grouping("split", ["word"]);
    let topology = b.build()?;

    let opts = LocalOptions {
        duration: Some(Duration::from_secs(args.seconds)),
        stop_on_ctrl_c: true,
    };
    let report = run_local_blocking(&topology, opts)?;
    let secs = report.elapsed.as_secs_f64();
    let h = latency
        .lock()
        .map_err(|_| anyhow::anyhow!("latency histogram poisoned"))?;
    let by = report.by_component();
    eprintln!(
        "acking={} rate={} spouts={} splits={} counts={} ran {:.2}s; spout acked={} failed={}",
        if acking { "on" } else { "off" },
        args.rate.map_or("max".to_string(), |r| r.to_string()),
        args.spouts,
        args.splits,
        args.counts,
        secs,
        by.get("spout").map_or(0, |s| s.acked),
        by.get("spout").map_or(0, |s| s.failed),
    );
    println!(
        "sentences_per_s={:.0} words_per_s={:.0} p50_us={} p99_us={} p999_us={} peak_rss_mb={:.1}",
        sentences_total.load(Ordering::Relaxed) as f64 / secs,
        words_total.load(Ordering::Relaxed) as f64 / secs,
        h.value_at_quantile(0.5),
        h.value_at_quantile(0.99),
        h.value_at_quantile(0.999),
        peak_rss_mb()
    );
    Ok(())
}
