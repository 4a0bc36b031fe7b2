//! Word count: random sentences -> split (shuffle) -> count (fields on "word") -> report
//! (global), which prints the top words and the throughput every few seconds.
//!
//! `cargo run --release --example word_count -- local --duration 20`

use std::collections::HashMap;
use std::process::ExitCode;
use std::time::Instant;
use tempest_examples::{RandomSentenceSpout, SplitSentence, WordCount};
use topology_api::config::TOPOLOGY_TICK_TUPLE_FREQ_SECS;
use topology_api::prelude::*;

/// Keeps the latest count of every word; on each tick prints the top ten and the rate.
struct Report {
    counts: HashMap<String, i64>,
    updates: u64,
    since: Instant,
}

#[async_trait]
impl Bolt for Report {
    fn declare_output_fields(&self, _: &mut OutputDeclarer) {}

    async fn execute(&mut self, t: Tuple, c: &mut OutputCollector) -> ComponentResult {
        if t.is_tick() {
            let secs = self.since.elapsed().as_secs_f64();
            let mut top: Vec<_> = self.counts.iter().collect();
            top.sort_by(|a, b| b.1.cmp(a.1).then(a.0.cmp(b.0)));
            let top: Vec<String> = top
                .iter()
                .take(10)
                .map(|(w, n)| format!("{w}={n}"))
                .collect();
            println!(
                "{:>10.0} words/s | top: {}",
                self.updates as f64 / secs,
                top.join(" ")
            );
            self.updates = 0;
            self.since = Instant::now();
            return Ok(());
        }
        self.counts
            .insert(t.str("word")?.to_string(), t.i64("count")?);
        self.updates += 1;
        c.ack(&t);
        Ok(())
    }
}

/// The topology (its test, `tests/word_count.rs`, mocks the spout).
pub(crate) fn topology() -> Result<Topology, topology_api::validate::TopologyErrors> {
    let mut b = TopologyBuilder::new("word-count");
    b.set_spout("sentences", || RandomSentenceSpout::new(true), 1);
    b.set_basic_bolt("split", || SplitSentence, 2)
        .shuffle_grouping("sentences");
    b.set_basic_bolt("count", WordCount::default, 2)
        .fields_grouping("split", ["word"]);
    b.set_bolt(
        "report",
        || Report {
            counts: HashMap::new(),
            updates: 0,
            since: Instant::now(),
        },
        1,
    )
    .global_grouping("count")
    .add_config(TOPOLOGY_TICK_TUPLE_FREQ_SECS, 3);
    b.build()
}

fn main() -> ExitCode {
    match topology() {
        Ok(topology) => topology_api::entry::main(topology),
        Err(e) => {
            eprintln!("{e}");
            ExitCode::FAILURE
        }
    }
}
