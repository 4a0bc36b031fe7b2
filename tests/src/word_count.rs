//! The components of the cluster tests' word count topologies (tests/src/bin/): a reliable
//! spout whose acks survive restarts in `test.dir`, and a count bolt writing its counts there.

use crate::SENTENCES;
use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::io::Write;
use std::path::PathBuf;
use std::time::Instant;
use topology_api::prelude::*;

impl Sentences {
    /// A spout that reads its settings in `open`.
    pub fn new() -> Self {
        Sentences {
            total: 0,
            rate: 0.0,
            next: 0,
            acked: BTreeSet::new(),
            replay: VecDeque::new(),
            pending: BTreeSet::new(),
            log: None,
            started: Instant::now(),
            emitted: 0,
        }
    }
}

impl Default for Sentences {
    fn default() -> Self {
        Self::new()
    }
}

pub(crate) fn dir(ctx: &TopologyContext) -> Result<PathBuf, ComponentError> {
    Ok(PathBuf::from(
        ctx.config()
            .str("test.dir")
            .ok_or("config key test.dir is not set")?,
    ))
}

/// The reliable spout: ids `0..test.sentences` at `test.rate`/s, acks recorded in `test.dir`.
#[derive(Debug)]
pub struct Sentences {
    total: u64,
    rate: f64,
    next: u64,
    acked: BTreeSet<u64>,
    replay: VecDeque<u64>,
    pending: BTreeSet<u64>,
    log: Option<std::fs::File>,
    started: Instant,
    emitted: u64,
}

#[async_trait]
impl Spout for Sentences {
    fn declare_output_fields(&self, d: &mut OutputDeclarer) {
        d.declare(["id", "sentence"]);
    }
    async fn open(&mut self, ctx: &TopologyContext) -> ComponentResult {
        let path = dir(ctx)?.join(format!("acked-{}.log", ctx.task_index()));
        if let Ok(text) = std::fs::read_to_string(&path) {
            self.acked = text.lines().filter_map(|l| l.parse().ok()).collect();
        }
        self.total = ctx.config().u64_or("test.sentences", 1000)?;
        self.rate = ctx.config().f64_or("test.rate", 1000.0)?;
        self.log = Some(
            std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(path)?,
        );
        self.started = Instant::now();
        Ok(())
    }
    async fn next_tuple(&mut self, c: &mut SpoutOutputCollector) -> ComponentResult {
        if (self.emitted as f64) >= self.started.elapsed().as_secs_f64() * self.rate {
            return Ok(());
        }
        let id = match self.replay.pop_front() {
            Some(id) => id,
            None => {
                while self.next < self.total && self.acked.contains(&self.next) {
                    self.next += 1;
                }
                if self.next >= self.total {
                    return Ok(());
                }
                self.next += 1;
                self.next - 1
            }
        };
        self.pending.insert(id);
        self.emitted += 1;
        c.emit(values![id, SENTENCES[(id % 4) as usize]], Some(id))?;
        Ok(())
    }
    async fn ack(&mut self, id: u64) {
        self.pending.remove(&id);
        if self.acked.insert(id) {
            if let Some(log) = &mut self.log {
                let ok = writeln!(log, "{id}").and_then(|_| log.sync_data());
                if let Err(e) = ok {
                    tracing::error!("cannot record ack of {id}: {e}");
                }
            }
        }
    }
    async fn fail(&mut self, id: u64) {
        self.pending.remove(&id);
        self.replay.push_back(id);
    }
}

/// Counts words and writes them to `<test.dir>/counts-<task>.json` on each tick.
#[derive(Debug, Default)]
pub struct Count {
    counts: BTreeMap<String, u64>,
    out: Option<PathBuf>,
}

#[async_trait]
impl BasicBolt for Count {
    fn declare_output_fields(&self, _: &mut OutputDeclarer) {}
    async fn prepare(&mut self, ctx: &TopologyContext) -> ComponentResult {
        self.out = Some(dir(ctx)?.join(format!("counts-{}.json", ctx.task_id())));
        Ok(())
    }
    fn execute(&mut self, t: &Tuple, _: &mut BasicOutputCollector<'_>) -> ComponentResult {
        if t.is_tick() {
            if let Some(out) = &self.out {
                let tmp = out.with_extension("tmp");
                std::fs::write(&tmp, serde_json::to_vec(&self.counts)?)?;
                std::fs::rename(&tmp, out)?;
            }
            return Ok(());
        }
        *self.counts.entry(t.str("word")?.to_string()).or_default() += 1;
        Ok(())
    }
}
