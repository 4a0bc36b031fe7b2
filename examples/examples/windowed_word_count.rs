//! Top words per tumbling 10 s window, in event time: sentences carry the time they happened,
//! up to 2.5 s before they reach the topology (a little out of order); the windows allow 2 s
//! of lag, so the stragglers beyond that are late: counted on the late tuple stream and
//! printed with each window.
//!
//! `cargo run --release --example windowed_word_count -- local --duration 35`
//!
//! `--rate` (sentences per second, default 2 000) sets the load; with `--rate 0` the spout
//! emits as fast as it can (the window then holds what 12 s bring, up to its limit).
//! `--plain` runs the same topology with a plain word counter in place of the windows, to
//! measure what windowing costs at a given rate.

use clap::Parser;
use std::collections::HashMap;
use std::process::ExitCode;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use tempest_examples::sentences;
use topology_api::config::TOPOLOGY_MESSAGE_TIMEOUT_SECS;
use topology_api::prelude::*;

#[derive(Parser)]
#[command(about = "Top 10 words per tumbling 10 s event-time window, with 2 s of lag")]
struct Args {
    /// Sentences per second (0: as fast as possible).
    #[arg(long, default_value_t = 2_000.0)]
    rate: f64,
    /// Count words without windows (to compare the cost).
    #[arg(long)]
    plain: bool,
    /// The mode and its flags: `local --duration 35`, ...
    #[arg(trailing_var_arg = true, allow_hyphen_values = true, required = true)]
    mode: Vec<String>,
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

/// Sentences stamped with when they "happened": now, minus up to 2.5 s of delay.
struct StampedSentences {
    sentences: Vec<&'static str>,
    rng: fastrand::Rng,
    rate: f64,
    started: Instant,
    emitted: u64,
}

#[async_trait]
impl Spout for StampedSentences {
    fn declare_output_fields(&self, d: &mut OutputDeclarer) {
        d.declare(["sentence", "ts"]);
    }
    async fn next_tuple(&mut self, c: &mut SpoutOutputCollector) -> ComponentResult {
        if self.rate > 0.0
            && self.emitted as f64 >= self.started.elapsed().as_secs_f64() * self.rate
        {
            return Ok(());
        }
        let s = self.sentences[self.rng.usize(..self.sentences.len())];
        let delay = self.rng.i64(0..2_500);
        self.emitted += 1;
        c.emit(values![s, now_ms() - delay], None)?;
        Ok(())
    }
}

/// Splits a sentence into words, each with the sentence's time.
struct Split;

#[async_trait]
impl BasicBolt for Split {
    fn declare_output_fields(&self, d: &mut OutputDeclarer) {
        d.declare(["word", "ts"]);
    }
    fn execute(&mut self, t: &Tuple, c: &mut BasicOutputCollector<'_>) -> ComponentResult {
        let ts = t.i64("ts")?;
        for w in t.str("sentence")?.split_whitespace() {
            c.emit(values![w, ts])?;
        }
        Ok(())
    }
}

/// Counts the words of each window and emits its top ten.
struct TopWords;

#[async_trait]
impl WindowedBolt for TopWords {
    fn declare_output_fields(&self, d: &mut OutputDeclarer) {
        d.declare(["start", "end", "words", "top"]);
    }
    async fn execute(&mut self, w: &Window<'_>, c: &mut WindowCollector<'_>) -> ComponentResult {
        let mut counts: HashMap<&str, i64> = HashMap::new();
        for t in w.tuples() {
            *counts.entry(t.str("word")?).or_default() += 1;
        }
        let mut top: Vec<(&str, i64)> = counts.into_iter().collect();
        top.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(b.0)));
        let top: Vec<String> = top
            .iter()
            .take(10)
            .map(|(w, n)| format!("{w}={n}"))
            .collect();
        c.emit(values![
            w.start_ms(),
            w.end_ms(),
            w.len() as i64,
            top.join(" ")
        ])?;
        Ok(())
    }
}

/// Prints each window's top words, and how many tuples arrived too late so far.
#[derive(Default)]
struct Print {
    late: u64,
}

#[async_trait]
impl BasicBolt for Print {
    fn declare_output_fields(&self, _: &mut OutputDeclarer) {}
    fn execute(&mut self, t: &Tuple, _: &mut BasicOutputCollector<'_>) -> ComponentResult {
        if t.source_stream() == "late" {
            self.late += 1;
            return Ok(());
        }
        let hms = |ms: i64| {
            let s = (ms / 1000).rem_euclid(86_400);
            format!("{:02}:{:02}:{:02}", s / 3600, s / 60 % 60, s % 60)
        };
        println!(
            "window [{}, {}) UTC: {} words, late so far {} | top: {}",
            hms(t.i64("start")?),
            hms(t.i64("end")?),
            t.i64("words")?,
            self.late,
            t.str("top")?
        );
        Ok(())
    }
}

/// The topology at `rate` sentences per second, with windows or `plain` (its test,
/// `tests/windowed_word_count.rs`, mocks the spout).
pub(crate) fn topology(
    rate: f64,
    plain: bool,
) -> Result<Topology, topology_api::validate::TopologyErrors> {
    let mut b = TopologyBuilder::new("windowed-word-count");
    b.config().set(TOPOLOGY_MESSAGE_TIMEOUT_SECS, 60);
    b.set_spout(
        "sentences",
        move || StampedSentences {
            sentences: sentences(),
            rng: fastrand::Rng::new(),
            rate,
            started: Instant::now(),
            emitted: 0,
        },
        1,
    );
    b.set_basic_bolt("split", || Split, 2)
        .shuffle_grouping("sentences");
    let windowing = Windowing::tumbling(WindowSize::Duration(Duration::from_secs(10)))
        .with_timestamp_field("ts")
        .with_lag(Duration::from_secs(2))
        .with_late_tuple_stream("late")
        .with_max_tuples(1_000_000);
    if plain {
        b.set_basic_bolt("count", tempest_examples::WordCount::default, 1)
            .global_grouping("split");
    } else {
        b.set_windowed_bolt("top-words", || TopWords, 1, windowing)
            .global_grouping("split");
        b.set_basic_bolt("print", Print::default, 1)
            .global_grouping("top-words")
            .global_grouping(("top-words", "late"));
    }
    b.build()
}

fn main() -> ExitCode {
    let args = Args::parse();
    match topology(args.rate, args.plain) {
        Ok(t) => {
            if topology_api::entry::run(t, args.mode).is_err() {
                return ExitCode::FAILURE;
            }
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("{e}");
            ExitCode::FAILURE
        }
    }
}
