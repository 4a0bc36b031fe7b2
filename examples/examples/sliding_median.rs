//! The classic monitoring job: server response times (ms) → a sliding window of the last 60 s,
//! evaluated every second → the median and the 99th percentile, printed live.
//!
//! `cargo run --release --example sliding_median -- local --duration 30`
//!
//! The window keeps a count per millisecond value and updates it with each evaluation's new
//! and expired tuples, so a second's work is proportional to what changed, not to the window.
//! The first minute's windows are partial (they hold what arrived since the start).

use std::collections::BTreeMap;
use std::process::ExitCode;
use std::time::Duration;
use topology_api::config::TOPOLOGY_MESSAGE_TIMEOUT_SECS;
use topology_api::prelude::*;

/// Response times at about `rate` per second: mostly around 20 ms, with a slow tail.
struct ResponseTimes {
    rng: fastrand::Rng,
    rate: f64,
    started: std::time::Instant,
    emitted: u64,
}

#[async_trait]
impl Spout for ResponseTimes {
    fn declare_output_fields(&self, d: &mut OutputDeclarer) {
        d.declare(["ms"]);
    }
    async fn next_tuple(&mut self, c: &mut SpoutOutputCollector) -> ComponentResult {
        if self.emitted as f64 >= self.started.elapsed().as_secs_f64() * self.rate {
            return Ok(());
        }
        // Log-normal-ish: the product of a few uniform draws, and one request in 50 slow.
        let base = 8.0 + 24.0 * self.rng.f64() * self.rng.f64() * 2.0;
        let ms = if self.rng.usize(..50) == 0 {
            base * (5.0 + 20.0 * self.rng.f64())
        } else {
            base
        };
        self.emitted += 1;
        // Untracked: a monitoring job's inputs are not replayed (a window would hold tracked
        // tuples for its whole minute, far more than topology.max.spout.pending allows).
        c.emit(values![ms.round() as i64], None)?;
        Ok(())
    }
}

/// The median and p99 of each window, from counts per millisecond value.
#[derive(Default)]
struct Percentiles {
    counts: BTreeMap<i64, u64>,
    total: u64,
}

impl Percentiles {
    fn quantile(&self, q: f64) -> i64 {
        let rank = ((self.total as f64) * q).ceil().max(1.0) as u64;
        let mut seen = 0;
        for (&ms, &n) in &self.counts {
            seen += n;
            if seen >= rank {
                return ms;
            }
        }
        0
    }
}

#[async_trait]
impl WindowedBolt for Percentiles {
    fn declare_output_fields(&self, d: &mut OutputDeclarer) {
        d.declare(["start", "end", "requests", "median_ms", "p99_ms"]);
    }
    async fn execute(&mut self, w: &Window<'_>, c: &mut WindowCollector<'_>) -> ComponentResult {
        for t in w.new_tuples() {
            *self.counts.entry(t.i64("ms")?).or_default() += 1;
            self.total += 1;
        }
        for t in w.expired() {
            let ms = t.i64("ms")?;
            if let Some(n) = self.counts.get_mut(&ms) {
                *n -= 1;
                self.total -= 1;
                if *n == 0 {
                    self.counts.remove(&ms);
                }
            }
        }
        c.emit(values![
            w.start_ms(),
            w.end_ms(),
            self.total as i64,
            self.quantile(0.5),
            self.quantile(0.99)
        ])?;
        Ok(())
    }
}

/// Prints each window's figures.
struct Print;

#[async_trait]
impl BasicBolt for Print {
    fn declare_output_fields(&self, _: &mut OutputDeclarer) {}
    fn execute(&mut self, t: &Tuple, _: &mut BasicOutputCollector<'_>) -> ComponentResult {
        let end = t.i64("end")?;
        let day_secs = (end / 1000).rem_euclid(86_400);
        println!(
            "{:02}:{:02}:{:02} UTC, last {:>2} s: {:>6} requests  median {:>3} ms  p99 {:>4} ms",
            day_secs / 3600,
            day_secs / 60 % 60,
            day_secs % 60,
            (end - t.i64("start")?) / 1000,
            t.i64("requests")?,
            t.i64("median_ms")?,
            t.i64("p99_ms")?
        );
        Ok(())
    }
}

/// The topology (its test, `tests/sliding_median.rs`, mocks the spout).
pub(crate) fn topology() -> Result<Topology, topology_api::validate::TopologyErrors> {
    let mut b = TopologyBuilder::new("sliding-median");
    // Held tuples wait up to length + slide: the message timeout must cover that.
    b.config().set(TOPOLOGY_MESSAGE_TIMEOUT_SECS, 90);
    b.set_spout(
        "response-times",
        || ResponseTimes {
            rng: fastrand::Rng::new(),
            rate: 1_000.0,
            started: std::time::Instant::now(),
            emitted: 0,
        },
        1,
    );
    let windowing = Windowing::sliding(
        WindowSize::Duration(Duration::from_secs(60)),
        WindowSize::Duration(Duration::from_secs(1)),
    );
    b.set_windowed_bolt("percentiles", Percentiles::default, 1, windowing)
        .global_grouping("response-times");
    b.set_basic_bolt("print", || Print, 1)
        .global_grouping("percentiles");
    b.build()
}

fn main() -> ExitCode {
    match topology() {
        Ok(t) => topology_api::entry::main(t),
        Err(e) => {
            eprintln!("{e}");
            ExitCode::FAILURE
        }
    }
}
