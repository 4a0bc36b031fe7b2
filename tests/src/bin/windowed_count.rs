//! The checkpointed-window tests' topology: per-key counts in sliding event-time windows over
//! a finite, numbered source of events out of order within the allowed lag.
//!
//! - `events` emits event ids `0..test.events` at `test.rate` per second, each as
//!   [`cluster_tests::window_event`] says (its key and event time). At least once it resumes
//!   after a restart from its committed offset (every id below it acked, in
//!   `<test.dir>/committed-<task>`), like a Kafka spout; exactly once it reports its offset as
//!   its position and rewinds to the one saved with the restored checkpoint.
//! - `count` (fields on "key") is an aggregating, checkpointed window:
//!   [`cluster_tests::WINDOW_LENGTH_MS`] sliding by [`cluster_tests::WINDOW_SLIDE_MS`], lag
//!   [`cluster_tests::WINDOW_LAG_MS`], results in append mode.
//! - `results` (shuffle) appends each result as a JSON line `[key, start, end, count]` to
//!   `<test.dir>/results-<task>.jsonl`: a sink that writes what it receives, at least once.

use cluster_tests::{window_event, WINDOW_LAG_MS, WINDOW_LENGTH_MS, WINDOW_SLIDE_MS};
use std::collections::{BTreeSet, VecDeque};
use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant};
use topology_api::config::{TOPOLOGY_MAX_SPOUT_PENDING, TOPOLOGY_STATE_EXACTLY_ONCE};
use topology_api::prelude::*;

fn dir(ctx: &TopologyContext) -> Result<PathBuf, ComponentError> {
    Ok(PathBuf::from(
        ctx.config()
            .str("test.dir")
            .ok_or("config key test.dir is not set")?,
    ))
}

#[derive(Default)]
struct Events {
    total: u64,
    rate: f64,
    exactly_once: bool,
    next: u64,
    /// At least once: ids acked above the committed offset, failed ids to emit again.
    acked: BTreeSet<u64>,
    committed: u64,
    replay: VecDeque<u64>,
    committed_file: Option<PathBuf>,
    started: Option<Instant>,
    emitted: u64,
}

#[async_trait]
impl Spout for Events {
    fn declare_output_fields(&self, d: &mut OutputDeclarer) {
        d.declare(["key", "ts"]);
    }
    async fn open(&mut self, ctx: &TopologyContext) -> ComponentResult {
        self.total = ctx.config().u64_or("test.events", 1000)?;
        self.rate = ctx.config().f64_or("test.rate", 1000.0)?;
        self.exactly_once = ctx.config().bool_or(TOPOLOGY_STATE_EXACTLY_ONCE, false)?;
        let file = dir(ctx)?.join(format!("committed-{}", ctx.task_index()));
        if !self.exactly_once {
            if let Ok(text) = std::fs::read_to_string(&file) {
                self.committed = text.trim().parse()?;
                self.next = self.committed;
            }
        }
        self.committed_file = Some(file);
        self.started = Some(Instant::now());
        Ok(())
    }
    async fn next_tuple(&mut self, c: &mut SpoutOutputCollector) -> ComponentResult {
        let elapsed = self.started.map_or(0.0, |s| s.elapsed().as_secs_f64());
        if (self.emitted as f64) >= elapsed * self.rate {
            return Ok(());
        }
        let id = match self.replay.pop_front() {
            Some(id) => id,
            None if self.next < self.total => {
                self.next += 1;
                self.next - 1
            }
            None => return Ok(()),
        };
        self.emitted += 1;
        let (key, ts) = window_event(id);
        c.emit(values![key, ts], Some(id))?;
        Ok(())
    }
    async fn ack(&mut self, id: u64) {
        if self.exactly_once {
            return;
        }
        self.acked.insert(id);
        let before = self.committed;
        while self.acked.remove(&self.committed) {
            self.committed += 1;
        }
        if self.committed != before {
            if let Some(f) = &self.committed_file {
                let tmp = f.with_extension("tmp");
                let written = std::fs::write(&tmp, self.committed.to_string())
                    .and_then(|()| std::fs::rename(&tmp, f));
                if let Err(e) = written {
                    tracing::error!("cannot record the committed offset: {e}");
                }
            }
        }
    }
    async fn fail(&mut self, id: u64) {
        if !self.exactly_once {
            self.replay.push_back(id);
        }
    }
    fn position(&self) -> Option<serde_json::Value> {
        Some(self.next.into())
    }
    async fn rewind(&mut self, position: serde_json::Value) -> ComponentResult {
        self.next = position.as_u64().ok_or("position is not an event id")?;
        Ok(())
    }
}

/// Appends every result it receives to its file, one JSON line each.
#[derive(Default)]
struct Results {
    out: Option<std::fs::File>,
}

#[async_trait]
impl BasicBolt for Results {
    fn declare_output_fields(&self, _: &mut OutputDeclarer) {}
    async fn prepare(&mut self, ctx: &TopologyContext) -> ComponentResult {
        let path = dir(ctx)?.join(format!("results-{}.jsonl", ctx.task_id()));
        self.out = Some(
            std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(path)?,
        );
        Ok(())
    }
    fn execute(&mut self, t: &Tuple, _: &mut BasicOutputCollector<'_>) -> ComponentResult {
        let line = serde_json::json!([
            t.str("key")?,
            t.i64("start")?,
            t.i64("end")?,
            t.i64("count")?
        ]);
        if let Some(out) = self.out.as_mut() {
            // One write per line: a kill -9 leaves at most a torn last line.
            out.write_all(format!("{line}\n").as_bytes())?;
        }
        Ok(())
    }
}

fn main() -> ExitCode {
    let mut b = TopologyBuilder::new("windowed-count");
    b.config().set(TOPOLOGY_MAX_SPOUT_PENDING, 50_000);
    b.set_spout("events", Events::default, 1);
    let windowing = Windowing::sliding(
        WindowSize::Duration(Duration::from_millis(WINDOW_LENGTH_MS as u64)),
        WindowSize::Duration(Duration::from_millis(WINDOW_SLIDE_MS as u64)),
    )
    .with_timestamp_field("ts")
    .with_lag(Duration::from_millis(WINDOW_LAG_MS as u64))
    .with_watermark_interval(Duration::from_millis(200))
    .with_idle_timeout(Duration::from_secs(10))
    .with_checkpoints();
    b.set_aggregating_bolt("count", || Reduce::count_by("key"), 2, windowing)
        .fields_grouping("events", ["key"]);
    b.set_basic_bolt("results", Results::default, 2)
        .shuffle_grouping("count");
    match b.build() {
        Ok(t) => topology_api::entry::main(t),
        Err(e) => {
            eprintln!("{e}");
            ExitCode::FAILURE
        }
    }
}
