//! Word count with the split bolt in Python: random sentences (Rust, reliable) -> split
//! (examples/python/split.py, a pystorm bolt run by `ShellBolt`) -> count (Rust) -> report
//! (prints the top words and the rate every few seconds).
//!
//! `pip install pystorm` (or make a venv and set TEMPEST_PYTHON to its python), then
//! `cargo run --release --example python_word_count -- local --duration 20`; the same binary
//! submits to a cluster (`... -- submit --nimbus URL`): split.py is embedded in it.
//!
//! `TEMPEST_SPLIT=rust` runs the Rust split instead (the comparison in the README).

use std::collections::HashMap;
use std::process::ExitCode;
use std::time::Instant;
use tempest_examples::{RandomSentenceSpout, SplitSentence, WordCount};
use tempest_multilang::{resources, ShellBolt, ShellCommand};
use topology_api::config::TOPOLOGY_TICK_TUPLE_FREQ_SECS;
use topology_api::prelude::*;

/// Prints the number of counts it received per second and the top words on each tick.
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
            let mut top: Vec<_> = self.counts.iter().collect();
            top.sort_by(|a, b| b.1.cmp(a.1).then(a.0.cmp(b.0)));
            let top: Vec<String> = top
                .iter()
                .take(5)
                .map(|(w, n)| format!("{w}={n}"))
                .collect();
            let rate = self.updates as f64 / self.since.elapsed().as_secs_f64();
            println!("{rate:>10.0} words/s | top: {}", top.join(" "));
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

fn main() -> ExitCode {
    let mut b = TopologyBuilder::new("python-word-count");
    b.set_spout("sentences", || RandomSentenceSpout::new(true), 1);
    if std::env::var("TEMPEST_SPLIT").as_deref() == Ok("rust") {
        b.set_basic_bolt("split", || SplitSentence, 1)
            .shuffle_grouping("sentences");
    } else {
        let python = std::env::var("TEMPEST_PYTHON").unwrap_or_else(|_| "python3".to_string());
        let split = ShellBolt::new(
            ShellCommand::new(python, ["split.py"]),
            resources!["split.py" => "../python/split.py"],
        )
        .output_fields(["word"]);
        b.set_bolt("split", move || split.clone(), 1)
            .shuffle_grouping("sentences");
    }
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
    match b.build() {
        Ok(topology) => topology_api::entry::main(topology),
        Err(e) => {
            eprintln!("{e}");
            ExitCode::FAILURE
        }
    }
}
