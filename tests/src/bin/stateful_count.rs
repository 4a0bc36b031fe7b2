//! The state tests' topology: a stateful word count over a finite, numbered source.
//!
//! - `sentences` emits ids `0..test.sentences` at `test.rate` per second. At least once, it
//!   resumes after a restart from its committed offset (every id below it acked, kept in
//!   `<test.dir>/committed-<task>`), like a Kafka spout; exactly once, it reports its offset as
//!   its position and rewinds to the one saved with the restored checkpoint. It is finished
//!   once everything is emitted and (exactly once) a checkpoint holding all of it completed.
//! - `split` (shuffle) splits; `count` (fields on "word") is a stateful bolt that writes its
//!   whole state to `<test.dir>/counts-<task>.json` as each checkpoint is saved.

use cluster_tests::SENTENCES;
use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;
use tempest_examples::SplitSentence;
use topology_api::config::{TOPOLOGY_MAX_SPOUT_PENDING, TOPOLOGY_STATE_EXACTLY_ONCE};
use topology_api::prelude::*;

fn dir(ctx: &TopologyContext) -> Result<PathBuf, ComponentError> {
    Ok(PathBuf::from(
        ctx.config()
            .str("test.dir")
            .ok_or("config key test.dir is not set")?,
    ))
}

/// Writes `bytes` to `path` whole (a reader never sees half a file).
fn write_atomically(path: &std::path::Path, bytes: &[u8]) -> std::io::Result<()> {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, bytes)?;
    std::fs::rename(&tmp, path)
}

#[derive(Default)]
struct Sentences {
    total: u64,
    rate: f64,
    exactly_once: bool,
    next: u64,
    /// At least once: ids acked above the committed offset, failed ids to emit again.
    acked: BTreeSet<u64>,
    committed: u64,
    replay: VecDeque<u64>,
    committed_file: Option<PathBuf>,
    /// Exactly once: every id is in a completed checkpoint.
    all_checkpointed: bool,
    started: Option<Instant>,
    emitted: u64,
}

#[async_trait]
impl Spout for Sentences {
    fn declare_output_fields(&self, d: &mut OutputDeclarer) {
        d.declare(["id", "sentence"]);
    }
    async fn open(&mut self, ctx: &TopologyContext) -> ComponentResult {
        self.total = ctx.config().u64_or("test.sentences", 1000)?;
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
        c.emit(values![id, SENTENCES[(id % 4) as usize]], Some(id))?;
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
                if let Err(e) = write_atomically(f, self.committed.to_string().as_bytes()) {
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
    fn is_finished(&self) -> bool {
        if self.exactly_once {
            self.all_checkpointed
        } else {
            self.committed >= self.total
        }
    }
    fn position(&self) -> Option<serde_json::Value> {
        Some(self.next.into())
    }
    async fn rewind(&mut self, position: serde_json::Value) -> ComponentResult {
        self.next = position.as_u64().ok_or("position is not a sentence id")?;
        Ok(())
    }
    async fn checkpoint_complete(&mut self, _id: u64, position: serde_json::Value) {
        if position.as_u64() >= Some(self.total) {
            self.all_checkpointed = true;
        }
    }
}

#[derive(Default)]
struct Count {
    out: Option<PathBuf>,
}

#[async_trait]
impl StatefulBolt for Count {
    type Key = String;
    type Value = u64;
    fn declare_output_fields(&self, _: &mut OutputDeclarer) {}
    async fn prepare(&mut self, ctx: &TopologyContext) -> ComponentResult {
        self.out = Some(dir(ctx)?.join(format!("counts-{}.json", ctx.task_id())));
        Ok(())
    }
    fn execute(
        &mut self,
        t: &Tuple,
        state: &mut KeyValueState<String, u64>,
        _: &mut BasicOutputCollector<'_>,
    ) -> ComponentResult {
        let word = t.str("word")?.to_string();
        let n = state.get_or(&word, &0) + 1;
        state.put(word, n);
        Ok(())
    }
    async fn pre_checkpoint(
        &mut self,
        _id: u64,
        state: &mut KeyValueState<String, u64>,
    ) -> ComponentResult {
        if let Some(out) = &self.out {
            let counts: BTreeMap<&String, &u64> = state.iter().collect();
            write_atomically(out, &serde_json::to_vec(&counts)?)?;
        }
        Ok(())
    }
}

fn main() -> ExitCode {
    let mut b = TopologyBuilder::new("stateful-count");
    b.config().set(TOPOLOGY_MAX_SPOUT_PENDING, 50_000);
    b.set_spout("sentences", Sentences::default, 1);
    b.set_basic_bolt("split", || SplitSentence, 2)
        .shuffle_grouping("sentences");
    b.set_stateful_bolt("count", Count::default, 2)
        .fields_grouping("split", ["word"]);
    match b.build() {
        Ok(t) => topology_api::entry::main(t),
        Err(e) => {
            eprintln!("{e}");
            ExitCode::FAILURE
        }
    }
}
