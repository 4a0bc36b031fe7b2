//! Word count benchmark: spout -> split (shuffle) -> count (fields on "word"). Sentence `i` is
//! one of the ten sentences of `data/sentences.txt`, drawn by a hash of `i`, stamped with its
//! *intended* emit time (`t0 + i / rate` with `--rate`, so a spout held back by backpressure
//! shows as latency: no coordinated omission) or its emit time (without `--rate`); the count
//! bolt records the latency of every word in an HDR histogram. Figures cover the `--seconds`
//! after a `--warmup`. The last line printed is
//! `sentences_per_s=.. words_per_s=.. p50_us=.. p99_us=.. p999_us=.. cpu_cores=.. peak_rss_mb=.. words_check=ok`
//! (`cpu_cores`: the process's CPU time over the window / the window; `words_check`: every
//! word the spout emitted was counted, checked after the run drains).
//!
//! Local mode (one process):
//! `cargo run --release --example bench_word_count -- --warmup 5 --seconds 20 --acking on`
//! `cargo run --release --example bench_word_count -- --warmup 5 --seconds 20 --rate 100000`
//! `cargo run --release --example bench_word_count -- --warmup 5 --seconds 20 --state on`
//! (`--state on`: the counts live in a stateful bolt, checkpointed every second, exactly once)
//!
//! On a running cluster (e.g. `deploy/local-cluster.sh start`), across `--workers` processes:
//! `target/release/examples/bench_word_count --cluster http://127.0.0.1:6627 --workers 2`
//! There the bolts write their counters and histograms to files each second; the figures are
//! for the window after a warm-up, and `peak_rss_mb` is the largest worker's.

use clap::{Parser, ValueEnum};
use hdrhistogram::serialization::{Deserializer, Serializer, V2Serializer};
use hdrhistogram::Histogram;
use rustc_hash::FxHashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use tempest_client::{NimbusClient, Submission};
use tempest_examples::sentences;
use tempest_protocol::auth::SECRET_ENV;
use topology_api::config::{
    TOPOLOGY_ACKER_EXECUTORS, TOPOLOGY_MAX_SPOUT_PENDING, TOPOLOGY_STATE_EXACTLY_ONCE,
    TOPOLOGY_TICK_TUPLE_FREQ_SECS, TOPOLOGY_WORKERS,
};
use topology_api::prelude::*;
use topology_api::{run_local_blocking, LocalOptions};

#[derive(Clone, Copy, PartialEq, ValueEnum)]
enum OnOff {
    On,
    Off,
}

#[derive(Parser)]
#[command(about = "Word count throughput and latency, in local mode or on a cluster")]
struct Args {
    /// How long to measure.
    #[arg(long, default_value_t = 10)]
    seconds: u64,
    /// How long to run before measuring.
    #[arg(long, default_value_t = 3)]
    warmup: u64,
    /// Keep the counts in a stateful bolt, checkpointed every second, exactly once (needs
    /// acking).
    #[arg(long, value_enum, default_value = "off")]
    state: OnOff,
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
    /// Run on the cluster whose Nimbus is at this URL instead of in this process.
    #[arg(long)]
    cluster: Option<String>,
    /// Worker processes on the cluster.
    #[arg(long, default_value_t = 2)]
    workers: u64,
    /// How the cluster runs this binary (`worker ...`, `spec`); not for direct use.
    #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
    mode: Vec<String>,
}

/// Where cluster-mode bolts write their results (a config key).
const OUT_DIR: &str = "bench.out";
/// Offered load in sentences per second, all spout tasks together (a config key).
const RATE: &str = "bench.rate";

/// Nanoseconds since the Unix epoch: one clock for every process on the machine.
fn now_ns() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as i64)
}

struct BenchSpout {
    /// The sentences, each with its number of words (counted once, not per emit).
    sentences: Vec<(&'static str, u64)>,
    acking: bool,
    rate_per_task: Option<f64>,
    started: Instant,
    /// `started` on the Unix clock, in ns.
    started_ns: i64,
    emitted: u64,
    /// The next sentence number (its position: the spout can rewind to it).
    next: u64,
    /// Words in the sentences emitted.
    words: u64,
    results: Results,
}

impl BenchSpout {
    /// Sentence `i` and its number of words.
    fn sentence(&self, i: u64) -> (&'static str, u64) {
        let h = xxhash(i);
        self.sentences[(h % self.sentences.len() as u64) as usize]
    }
}

/// A cheap, well-mixed hash of a sentence number (splitmix64).
fn xxhash(i: u64) -> u64 {
    let mut z = i.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

#[async_trait]
impl Spout for BenchSpout {
    fn declare_output_fields(&self, d: &mut OutputDeclarer) {
        d.declare(["sentence", "ts"]);
    }
    async fn open(&mut self, ctx: &TopologyContext) -> ComponentResult {
        let c = ctx.config();
        self.acking = c.u64_or(TOPOLOGY_ACKER_EXECUTORS, 1)? > 0;
        let rate = c.f64_or(RATE, 0.0)?;
        self.rate_per_task = (rate > 0.0).then(|| rate / ctx.component_tasks().len() as f64);
        self.started = Instant::now();
        self.started_ns = now_ns();
        Ok(())
    }
    async fn next_tuple(&mut self, c: &mut SpoutOutputCollector) -> ComponentResult {
        let ts = match self.rate_per_task {
            Some(rate) => {
                let due = (self.started.elapsed().as_secs_f64() * rate) as u64;
                if self.emitted >= due {
                    return Ok(());
                }
                // When this sentence should have been emitted.
                self.started_ns + (self.emitted as f64 * 1e9 / rate) as i64
            }
            None => now_ns(),
        };
        let (s, words) = self.sentence(self.next);
        self.emitted += 1;
        self.next += 1;
        let id = self.acking.then_some(self.next);
        c.emit(values![s, ts], id)?;
        self.words += words;
        Ok(())
    }
    async fn close(&mut self) {
        *self.results.words_emitted.lock().expect("not poisoned") += self.words;
    }
    fn position(&self) -> Option<serde_json::Value> {
        Some(self.next.into())
    }
    async fn rewind(&mut self, position: serde_json::Value) -> ComponentResult {
        self.next = position
            .as_u64()
            .ok_or("position is not a sentence number")?;
        Ok(())
    }
}

/// Per-task results: where local mode sums them, and where cluster mode writes them.
#[derive(Clone, Default)]
struct Results {
    /// Measured in the window.
    sentences: Arc<Mutex<u64>>,
    words: Arc<Mutex<u64>>,
    latency: Arc<Mutex<Option<Histogram<u64>>>>,
    /// Over the whole run, for the words check.
    words_emitted: Arc<Mutex<u64>>,
    words_counted: Arc<Mutex<u64>>,
    /// The measured window on the Unix clock in ns (local mode; set before the run): tuples
    /// before it (the warm-up) or after it are not measured.
    window: Arc<Mutex<Option<(i64, i64)>>>,
}

impl Results {
    fn window(&self) -> Option<(i64, i64)> {
        *self.window.lock().expect("not poisoned")
    }
}

/// True if `now_ns` is in `window` (always without one).
fn in_window(window: Option<(i64, i64)>, now_ns: i64) -> bool {
    window.is_none_or(|(from, to)| now_ns >= from && now_ns < to)
}

/// A result file of one task: `<dir>/<kind>-<task>`, written atomically.
fn write_result(dir: &Path, kind: &str, task: u32, bytes: &[u8]) -> std::io::Result<()> {
    let path = dir.join(format!("{kind}-{task}"));
    let tmp = dir.join(format!(".{kind}-{task}.tmp"));
    std::fs::write(&tmp, bytes)?;
    std::fs::rename(tmp, path)
}

/// Splits sentences, anchoring each word to its sentence; counts sentences.
struct Split {
    /// Sentences split in the window, and in all.
    sentences: u64,
    seen: u64,
    measuring: bool,
    window: Option<(i64, i64)>,
    task: u32,
    out: Option<PathBuf>,
    results: Results,
}

#[async_trait]
impl BasicBolt for Split {
    fn declare_output_fields(&self, d: &mut OutputDeclarer) {
        d.declare(["word", "ts"]);
    }
    async fn prepare(&mut self, ctx: &TopologyContext) -> ComponentResult {
        self.task = ctx.task_id();
        self.out = ctx.config().str(OUT_DIR).map(PathBuf::from);
        self.window = self.results.window();
        Ok(())
    }
    fn execute(&mut self, t: &Tuple, c: &mut BasicOutputCollector<'_>) -> ComponentResult {
        if t.is_tick() {
            if let Some(dir) = &self.out {
                write_result(
                    dir,
                    "sentences",
                    self.task,
                    self.sentences.to_string().as_bytes(),
                )?;
            }
            return Ok(());
        }
        let ts = t.i64(1)?;
        for w in t.str(0)?.split_whitespace() {
            c.emit(values![w, ts])?;
        }
        // The clock is read every 256 sentences: the window's edges are that precise.
        if self.seen % 256 == 0 {
            self.measuring = in_window(self.window, now_ns());
        }
        self.seen += 1;
        if self.measuring {
            self.sentences += 1;
        }
        Ok(())
    }
    async fn cleanup(&mut self) {
        if let Ok(mut n) = self.results.sentences.lock() {
            *n += self.sentences;
        }
    }
}

/// Counts words and records each word's latency since its sentence was emitted.
struct Count {
    window: Option<(i64, i64)>,
    counts: FxHashMap<String, u64>,
    /// Words counted in the window, and in all.
    words: u64,
    counted: u64,
    latency: Histogram<u64>,
    task: u32,
    out: Option<PathBuf>,
    results: Results,
}

#[async_trait]
impl BasicBolt for Count {
    fn declare_output_fields(&self, _: &mut OutputDeclarer) {}
    async fn prepare(&mut self, ctx: &TopologyContext) -> ComponentResult {
        self.task = ctx.task_id();
        self.out = ctx.config().str(OUT_DIR).map(PathBuf::from);
        self.window = self.results.window();
        Ok(())
    }
    fn execute(&mut self, t: &Tuple, _: &mut BasicOutputCollector<'_>) -> ComponentResult {
        if t.is_tick() {
            if let Some(dir) = &self.out {
                let mut buf = Vec::new();
                V2Serializer::new()
                    .serialize(&self.latency, &mut buf)
                    .map_err(|e| format!("serializing the histogram: {e:?}"))?;
                write_result(dir, "latency", self.task, &buf)?;
                write_result(dir, "words", self.task, self.words.to_string().as_bytes())?;
            }
            return Ok(());
        }
        let word = t.str(0)?;
        match self.counts.get_mut(word) {
            Some(n) => *n += 1,
            None => {
                self.counts.insert(word.to_string(), 1);
            }
        }
        self.record(t)
    }
    async fn cleanup(&mut self) {
        self.publish();
    }
}

impl Count {
    /// Counts a word and its latency (in the window).
    fn record(&mut self, t: &Tuple) -> ComponentResult {
        self.counted += 1;
        let now = now_ns();
        if in_window(self.window, now) {
            let latency_ns = (now - t.i64(1)?).max(0) as u64;
            self.latency.saturating_record(latency_ns / 1000);
            self.words += 1;
        }
        Ok(())
    }

    /// Adds this task's figures to the run's.
    fn publish(&mut self) {
        *self.results.words_counted.lock().expect("not poisoned") += self.counted;
        if let Ok(mut n) = self.results.words.lock() {
            *n += self.words;
        }
        if let Ok(mut h) = self.results.latency.lock() {
            match h.as_mut() {
                Some(h) => {
                    let _ = h.add(&self.latency);
                }
                None => *h = Some(self.latency.clone()),
            }
        }
    }
}

/// `--state on`: the counts in a stateful bolt's key-value state (saved at every checkpoint),
/// the figures as in [`Count`].
struct StatefulCount(Count);

#[async_trait]
impl StatefulBolt for StatefulCount {
    type Key = String;
    type Value = u64;
    fn declare_output_fields(&self, _: &mut OutputDeclarer) {}
    async fn prepare(&mut self, _ctx: &TopologyContext) -> ComponentResult {
        self.0.window = self.0.results.window();
        Ok(())
    }
    fn execute(
        &mut self,
        t: &Tuple,
        state: &mut KeyValueState<String, u64>,
        _c: &mut BasicOutputCollector<'_>,
    ) -> ComponentResult {
        let word = t.str(0)?;
        match state.get_mut(word) {
            Some(n) => *n += 1,
            None => state.put(word.to_string(), 1),
        }
        self.0.record(t)
    }
    async fn cleanup(&mut self) {
        self.0.publish();
    }
}

fn histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 60_000_000, 3).expect("valid histogram bounds")
}

/// Peak resident set size of a process, from /proc (0 where unavailable).
fn peak_rss_mb(pid: &str) -> f64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse::<f64>().ok())
        })
        .map_or(0.0, |kb| kb / 1024.0)
}

fn build(args: &Args, results: &Results) -> anyhow::Result<Topology> {
    let mut b = TopologyBuilder::new("bench-word-count");
    b.config()
        .set(
            TOPOLOGY_ACKER_EXECUTORS,
            if args.acking == OnOff::On { 1 } else { 0 },
        )
        .set(TOPOLOGY_MAX_SPOUT_PENDING, 10_000);
    if let Some(rate) = args.rate {
        b.config().set(RATE, rate);
    }
    for kv in &args.config {
        b.config().set_from_str(kv).map_err(anyhow::Error::msg)?;
    }
    let r = results.clone();
    b.set_spout(
        "spout",
        move || BenchSpout {
            sentences: sentences()
                .into_iter()
                .map(|s| (s, s.split_whitespace().count() as u64))
                .collect(),
            acking: true,
            rate_per_task: None,
            started: Instant::now(),
            started_ns: 0,
            emitted: 0,
            next: 0,
            words: 0,
            results: r.clone(),
        },
        args.spouts,
    );
    let r = results.clone();
    b.set_basic_bolt(
        "split",
        move || Split {
            sentences: 0,
            seen: 0,
            measuring: false,
            window: None,
            task: 0,
            out: None,
            results: r.clone(),
        },
        args.splits,
    )
    .shuffle_grouping("spout")
    .add_config(TOPOLOGY_TICK_TUPLE_FREQ_SECS, 1);
    let r = results.clone();
    let count = move || Count {
        window: None,
        counts: FxHashMap::default(),
        words: 0,
        counted: 0,
        latency: histogram(),
        task: 0,
        out: None,
        results: r.clone(),
    };
    if args.state == OnOff::On {
        b.config().set(TOPOLOGY_STATE_EXACTLY_ONCE, true);
        b.set_stateful_bolt("count", move || StatefulCount(count()), args.counts)
            .fields_grouping("split", ["word"]);
    } else {
        b.set_basic_bolt("count", count, args.counts)
            .fields_grouping("split", ["word"])
            .add_config(TOPOLOGY_TICK_TUPLE_FREQ_SECS, 1);
    }
    Ok(b.build()?)
}

/// What the bolts have written so far in cluster mode: sentences, words, merged latency.
fn read_results(dir: &Path) -> (u64, u64, Histogram<u64>) {
    let (mut sentences, mut words, mut latency) = (0, 0, histogram());
    for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        let number = || {
            std::fs::read_to_string(e.path())
                .ok()
                .and_then(|s| s.trim().parse::<u64>().ok())
                .unwrap_or(0)
        };
        if name.starts_with("sentences-") {
            sentences += number();
        } else if name.starts_with("words-") {
            words += number();
        } else if name.starts_with("latency-") {
            if let Ok(bytes) = std::fs::read(e.path()) {
                if let Ok(h) = Deserializer::new().deserialize::<u64, _>(&mut bytes.as_slice()) {
                    let _ = latency.add(&h);
                }
            }
        }
    }
    (sentences, words, latency)
}

/// The largest peak RSS among the worker processes running `artifact` (supervisors run their
/// cached copy, named by its sha256).
fn workers_peak_rss_mb(artifact: &str) -> f64 {
    let mut peak: f64 = 0.0;
    for e in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        let pid = e.file_name().to_string_lossy().into_owned();
        let Ok(exe) = std::fs::read_link(format!("/proc/{pid}/exe")) else {
            continue;
        };
        let Ok(cmd) = std::fs::read(format!("/proc/{pid}/cmdline")) else {
            continue;
        };
        let cmd = String::from_utf8_lossy(&cmd);
        let worker = cmd.split('\0').nth(1) == Some("worker");
        if exe.to_string_lossy().ends_with(artifact) && worker {
            peak = peak.max(peak_rss_mb(&pid));
        }
    }
    peak
}

async fn run_on_cluster(args: &Args, url: &str, topology: Topology) -> anyhow::Result<()> {
    let client = NimbusClient::new(url, std::env::var(SECRET_ENV).ok())?;
    let out = std::env::temp_dir().join(format!("tempest-bench-{}", std::process::id()));
    std::fs::create_dir_all(&out)?;
    let name = format!("bench-{}", std::process::id());
    let mut config = Config::new();
    config
        .set(OUT_DIR, out.display().to_string())
        .set(TOPOLOGY_WORKERS, args.workers);
    let submitted = client
        .submit_topology(Submission {
            binary: std::env::current_exe()?,
            spec: topology.spec().clone(),
            name: name.clone(),
            overrides: config,
        })
        .await?;
    let (artifact, answer) = (submitted.artifact, submitted.answer);
    eprintln!("{}: {:?} - {}", answer.name, answer.state, answer.message);

    let result = async {
        let deadline = Instant::now() + Duration::from_secs(60);
        while read_results(&out).1 == 0 {
            anyhow::ensure!(
                Instant::now() < deadline,
                "no results from the workers after 60 s"
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        tokio::time::sleep(Duration::from_secs(3)).await; // warm-up
        let (s0, w0, h0) = read_results(&out);
        let t0 = Instant::now();
        tokio::time::sleep(Duration::from_secs(args.seconds)).await;
        let (s1, w1, mut h1) = read_results(&out);
        let secs = t0.elapsed().as_secs_f64();
        h1.subtract(&h0)
            .map_err(|e| anyhow::anyhow!("histograms: {e:?}"))?;
        let rss = workers_peak_rss_mb(&artifact);
        anyhow::Ok(((s1 - s0) as f64 / secs, (w1 - w0) as f64 / secs, h1, rss))
    }
    .await;
    client.kill(&name, 0).await?;
    let _ = std::fs::remove_dir_all(&out);
    let (sentences, words, h, rss) = result?;
    eprintln!(
        "cluster {url}: {} workers, acking={}, measured {} s after a 3 s warm-up",
        args.workers,
        if args.acking == OnOff::On {
            "on"
        } else {
            "off"
        },
        args.seconds
    );
    println!(
        "sentences_per_s={sentences:.0} words_per_s={words:.0} p50_us={} p99_us={} p999_us={} peak_rss_mb={rss:.1}",
        h.value_at_quantile(0.5),
        h.value_at_quantile(0.99),
        h.value_at_quantile(0.999),
    );
    Ok(())
}

fn main() -> anyhow::Result<()> {
    topology_api::entry::init_tracing();
    let args = Args::parse();
    let results = Results::default();
    let topology = build(&args, &results)?;
    if !args.mode.is_empty() {
        topology_api::entry::run(topology, args.mode.clone())?;
        return Ok(());
    }
    if let Some(url) = &args.cluster {
        let rt = tokio::runtime::Runtime::new()?;
        return rt.block_on(run_on_cluster(&args, url, topology));
    }

    let from = now_ns() + args.warmup as i64 * 1_000_000_000;
    let to = from + args.seconds as i64 * 1_000_000_000;
    *results.window.lock().expect("not poisoned") = Some((from, to));
    // The process's CPU time over the window, sampled at its edges.
    let (warmup, seconds) = (args.warmup, args.seconds);
    let cpu = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_secs(warmup));
        let before = cpu_seconds();
        std::thread::sleep(Duration::from_secs(seconds));
        (cpu_seconds() - before) / seconds as f64
    });
    let opts = LocalOptions {
        duration: Some(Duration::from_secs(args.warmup + args.seconds)),
        stop_on_ctrl_c: true,
        ..LocalOptions::default()
    };
    let report = run_local_blocking(&topology, opts)?;
    let cpu_cores = cpu.join().unwrap_or(0.0);
    let secs = args.seconds as f64;
    let by = report.by_component();
    eprintln!(
        "acking={} state={} rate={} spouts={} splits={} counts={} ran {:.2}s ({} s warm-up); spout acked={} failed={}",
        on_off(args.acking),
        on_off(args.state),
        args.rate.map_or("max".to_string(), |r| r.to_string()),
        args.spouts,
        args.splits,
        args.counts,
        report.elapsed.as_secs_f64(),
        args.warmup,
        by.get("spout").map_or(0, |s| s.acked),
        by.get("spout").map_or(0, |s| s.failed),
    );
    let latency = results.latency.lock().ok().and_then(|h| h.clone());
    let h = latency.unwrap_or_else(histogram);
    let sentences = results.sentences.lock().map_or(0, |n| *n);
    let words = results.words.lock().map_or(0, |n| *n);
    let emitted = *results.words_emitted.lock().expect("not poisoned");
    let counted = *results.words_counted.lock().expect("not poisoned");
    let check = if emitted == counted {
        "ok".to_string()
    } else {
        format!("FAILED(emitted={emitted},counted={counted})")
    };
    println!(
        "sentences_per_s={:.0} words_per_s={:.0} p50_us={} p99_us={} p999_us={} cpu_cores={cpu_cores:.2} peak_rss_mb={:.1} words_check={check}",
        sentences as f64 / secs,
        words as f64 / secs,
        h.value_at_quantile(0.5),
        h.value_at_quantile(0.99),
        h.value_at_quantile(0.999),
        peak_rss_mb("self")
    );
    anyhow::ensure!(emitted == counted, "words were lost: {check}");
    Ok(())
}

fn on_off(v: OnOff) -> &'static str {
    match v {
        OnOff::On => "on",
        OnOff::Off => "off",
    }
}

/// CPU time (user + system) this process has used, in seconds.
fn cpu_seconds() -> f64 {
    procfs::process::Process::myself()
        .and_then(|p| p.stat())
        .map_or(0.0, |s| {
            (s.utime + s.stime) as f64 / procfs::ticks_per_second() as f64
        })
}
