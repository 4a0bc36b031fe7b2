//! Memory and CPU of an aggregating window against a tuple-holding one at the same load: a
//! spout emits `(key, ts)` at `--rate` tuples/s (event time, up to 90% of the lag early), one
//! windowed task counts per key in `--length-s` windows sliding by `--slide-s` and emits one
//! tuple per window and key to a sink. Both kinds emit the same results.
//!
//! ```text
//! cargo run --release -p topology-api --example window_memory -- --kind holding --rate 150000
//! cargo run --release -p topology-api --example window_memory -- --kind aggregating --rate 150000
//! ```
//!
//! Prints one line: `kind=.. rate=.. tuples_per_s=.. cpu_cores=.. peak_rss_mb=.. base_rss_mb=..
//! results=.. refused=..` (`cpu_cores`: the process's CPU time over the measured seconds /
//! those seconds; `peak_rss_mb`: VmHWM at the end; `base_rss_mb`: RSS before the topology
//! started; `refused`: tuples failed because the task held its limit).
//!
//! `--max-rss-mb N` makes it exit with an error if the peak RSS is above N: the bound check
//! of the 1M-key run (`--keys 1000000 --sequential`, which puts every key in every window).

use clap::Parser;
use std::process::ExitCode;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use topology_api::prelude::*;
use topology_api::LocalOptions;

#[derive(Parser, Clone)]
#[command(about = "Memory and CPU of aggregating against tuple-holding windows")]
struct Args {
    /// `holding` (a WindowedBolt that sees every tuple) or `aggregating` (Reduce::count_by).
    #[arg(long)]
    kind: String,
    /// Tuples per second (0: as fast as the spout can).
    #[arg(long, default_value_t = 150_000)]
    rate: u64,
    /// Distinct keys.
    #[arg(long, default_value_t = 10_000)]
    keys: u64,
    /// Keys in turn (0, 1, 2, ...) instead of at random: every key in every window once the
    /// rate times the length covers them.
    #[arg(long)]
    sequential: bool,
    /// Window length, seconds.
    #[arg(long, default_value_t = 10)]
    length_s: u64,
    /// Window slide, seconds.
    #[arg(long, default_value_t = 10)]
    slide_s: u64,
    /// Allowed lag, seconds.
    #[arg(long, default_value_t = 2)]
    lag_s: u64,
    /// Seconds before measuring.
    #[arg(long, default_value_t = 15)]
    warmup: u64,
    /// Seconds measured.
    #[arg(long, default_value_t = 20)]
    measure: u64,
    /// The bound: most tuples (holding) or accumulators (aggregating) held.
    #[arg(long, default_value_t = 5_000_000)]
    max_held: usize,
    /// Exit with an error if the peak RSS is above this many MB.
    #[arg(long)]
    max_rss_mb: Option<f64>,
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

struct Events {
    args: Args,
    rng: fastrand::Rng,
    started: Instant,
    emitted: Arc<AtomicU64>,
    n: u64,
}

#[async_trait]
impl Spout for Events {
    fn declare_output_fields(&self, d: &mut OutputDeclarer) {
        d.declare(["key", "ts"]);
    }
    async fn next_tuple(&mut self, c: &mut SpoutOutputCollector) -> ComponentResult {
        let due = if self.args.rate == 0 {
            self.n + 256
        } else {
            (self.started.elapsed().as_secs_f64() * self.args.rate as f64) as u64
        };
        let early = (self.args.lag_s * 900).max(1) as i64;
        let now = now_ms();
        for _ in 0..256 {
            if self.n >= due {
                break;
            }
            let k = if self.args.sequential {
                self.n % self.args.keys
            } else {
                self.rng.u64(0..self.args.keys)
            };
            c.emit(values![format!("k{k}"), now - self.rng.i64(0..early)], None)?;
            self.n += 1;
        }
        self.emitted.store(self.n, Ordering::Relaxed);
        Ok(())
    }
}

/// Counts per key over every tuple of the window (what a tuple-holding window must do).
struct HoldingCount;

#[async_trait]
impl WindowedBolt for HoldingCount {
    fn declare_output_fields(&self, d: &mut OutputDeclarer) {
        d.declare(["key", "start", "end", "count"]);
    }
    async fn execute(&mut self, w: &Window<'_>, c: &mut WindowCollector<'_>) -> ComponentResult {
        let mut counts: std::collections::HashMap<&str, i64> = Default::default();
        for t in w.tuples() {
            *counts.entry(t.str("key")?).or_default() += 1;
        }
        for (k, n) in counts {
            c.emit(values![k, w.start_ms(), w.end_ms(), n])?;
        }
        Ok(())
    }
}

/// Counts the results it receives.
struct Sink(Arc<AtomicU64>);

impl BasicBolt for Sink {
    fn declare_output_fields(&self, _: &mut OutputDeclarer) {}
    fn execute(&mut self, _: &Tuple, _: &mut BasicOutputCollector<'_>) -> ComponentResult {
        self.0.fetch_add(1, Ordering::Relaxed);
        Ok(())
    }
}

fn cpu_seconds() -> f64 {
    procfs::process::Process::myself()
        .and_then(|p| p.stat())
        .map(|s| (s.utime + s.stime) as f64 / procfs::ticks_per_second() as f64)
        .unwrap_or(0.0)
}

fn rss_mb(field: &str) -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix(field))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        .map_or(0.0, |kb| kb / 1024.0)
}

fn main() -> ExitCode {
    let args = Args::parse();
    let emitted = Arc::new(AtomicU64::new(0));
    let results = Arc::new(AtomicU64::new(0));
    let mut b = TopologyBuilder::new("window-memory");
    let spout_args = args.clone();
    let spout_emitted = emitted.clone();
    b.set_spout(
        "events",
        move || Events {
            args: spout_args.clone(),
            rng: fastrand::Rng::with_seed(1),
            started: Instant::now(),
            emitted: spout_emitted.clone(),
            n: 0,
        },
        1,
    );
    let windowing = Windowing::sliding(
        WindowSize::Duration(Duration::from_secs(args.length_s)),
        WindowSize::Duration(Duration::from_secs(args.slide_s)),
    )
    .with_timestamp_field("ts")
    .with_lag(Duration::from_secs(args.lag_s));
    b.config()
        .set(topology_api::config::TOPOLOGY_MESSAGE_TIMEOUT_SECS, 300);
    match args.kind.as_str() {
        "holding" => {
            b.set_windowed_bolt(
                "count",
                || HoldingCount,
                1,
                windowing.with_max_tuples(args.max_held),
            )
            .shuffle_grouping("events");
        }
        "aggregating" => {
            b.set_aggregating_bolt(
                "count",
                || Reduce::count_by("key"),
                1,
                windowing.with_max_accumulators(args.max_held),
            )
            .shuffle_grouping("events");
        }
        other => {
            eprintln!("--kind {other:?}: say holding or aggregating");
            return ExitCode::FAILURE;
        }
    }
    let sink = results.clone();
    b.set_basic_bolt("sink", move || Sink(sink.clone()), 1)
        .shuffle_grouping("count");
    let topology = match b.build() {
        Ok(t) => t,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::FAILURE;
        }
    };
    let base_rss = rss_mb("VmRSS:");
    let (warmup, measure) = (args.warmup, args.measure);
    let probe_emitted = emitted.clone();
    let probe = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_secs(warmup));
        let (e0, c0, t0) = (
            probe_emitted.load(Ordering::Relaxed),
            cpu_seconds(),
            Instant::now(),
        );
        std::thread::sleep(Duration::from_secs(measure));
        let secs = t0.elapsed().as_secs_f64();
        let e1 = probe_emitted.load(Ordering::Relaxed);
        ((e1 - e0) as f64 / secs, (cpu_seconds() - c0) / secs)
    });
    let report = topology_api::run_local_blocking(
        &topology,
        LocalOptions {
            duration: Some(Duration::from_secs(warmup + measure + 1)),
            ..LocalOptions::default()
        },
    );
    let (tuples_per_s, cpu_cores) = probe.join().unwrap_or((0.0, 0.0));
    let report = match report {
        Ok(r) => r,
        Err(e) => {
            eprintln!("the run failed: {e}");
            return ExitCode::FAILURE;
        }
    };
    let refused: u64 = report
        .tasks
        .iter()
        .filter(|t| t.component == "count")
        .map(|t| t.stats.failed)
        .sum();
    let peak = rss_mb("VmHWM:");
    println!(
        "kind={} rate={} keys={} tuples_per_s={tuples_per_s:.0} cpu_cores={cpu_cores:.2} peak_rss_mb={peak:.1} base_rss_mb={base_rss:.1} results={} refused={refused}",
        args.kind,
        args.rate,
        args.keys,
        results.load(Ordering::Relaxed)
    );
    if let Some(max) = args.max_rss_mb {
        if peak > max {
            eprintln!("peak RSS {peak:.1} MB is above the bound of {max:.1} MB");
            return ExitCode::FAILURE;
        }
    }
    ExitCode::SUCCESS
}
