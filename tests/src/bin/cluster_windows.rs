//! The topology the windows cluster test submits: a finite reliable spout of events
//! (`id`, `key` = id % 5, `ts` = id × 10 ms), and a windowed bolt (fields grouping on `key`)
//! counting each key's events per tumbling 1 s event-time window. Each window task writes
//! its results so far to `<test.dir>/windows-<task>.json` (`"key@start": count`), atomically.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;
use topology_api::prelude::*;

struct Events {
    total: u64,
    next: u64,
    acked: u64,
    replay: Vec<u64>,
}

#[async_trait]
impl Spout for Events {
    fn declare_output_fields(&self, d: &mut OutputDeclarer) {
        d.declare(["id", "key", "ts"]);
    }
    async fn open(&mut self, ctx: &TopologyContext) -> ComponentResult {
        self.total = ctx.config().u64_or("test.events", 3_000)?;
        Ok(())
    }
    async fn next_tuple(&mut self, c: &mut SpoutOutputCollector) -> ComponentResult {
        let id = match self.replay.pop() {
            Some(id) => id,
            None if self.next < self.total => {
                self.next += 1;
                self.next - 1
            }
            None => return Ok(()),
        };
        c.emit(values![id, (id % 5) as i64, (id * 10) as i64], Some(id))?;
        Ok(())
    }
    async fn ack(&mut self, _: u64) {
        self.acked += 1;
    }
    async fn fail(&mut self, id: u64) {
        self.replay.push(id);
    }
}

/// Counts each window's events per key and records them.
struct CountPerWindow {
    out: Option<PathBuf>,
    counts: BTreeMap<String, u64>,
}

#[async_trait]
impl WindowedBolt for CountPerWindow {
    fn declare_output_fields(&self, _: &mut OutputDeclarer) {}
    async fn prepare(&mut self, ctx: &TopologyContext) -> ComponentResult {
        let dir = ctx.config().str("test.dir").ok_or("test.dir is not set")?;
        self.out = Some(PathBuf::from(dir).join(format!("windows-{}.json", ctx.task_id())));
        Ok(())
    }
    async fn execute(&mut self, w: &Window<'_>, _: &mut WindowCollector<'_>) -> ComponentResult {
        for t in w.tuples() {
            *self
                .counts
                .entry(format!("{}@{}", t.i64("key")?, w.start_ms()))
                .or_default() += 1;
        }
        if let Some(out) = &self.out {
            let tmp = out.with_extension("tmp");
            std::fs::write(&tmp, serde_json::to_vec(&self.counts)?)?;
            std::fs::rename(&tmp, out)?;
        }
        Ok(())
    }
}

fn main() -> ExitCode {
    let mut b = TopologyBuilder::new("cluster-windows");
    b.set_spout(
        "events",
        || Events {
            total: 0,
            next: 0,
            acked: 0,
            replay: Vec::new(),
        },
        1,
    );
    let windowing = Windowing::tumbling(WindowSize::Duration(Duration::from_secs(1)))
        .with_timestamp_field("ts")
        .with_watermark_interval(Duration::from_millis(50))
        .with_idle_timeout(Duration::from_secs(1));
    b.set_windowed_bolt(
        "windows",
        || CountPerWindow {
            out: None,
            counts: BTreeMap::new(),
        },
        2,
        windowing,
    )
    .fields_grouping("events", ["key"]);
    match b.build() {
        Ok(t) => topology_api::entry::main(t),
        Err(e) => {
            eprintln!("{e}");
            ExitCode::FAILURE
        }
    }
}
