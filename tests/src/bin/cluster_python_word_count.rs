//! The cluster word count (cluster_word_count.rs) with its split bolt in Python: examples/python/
//! split_stdlib.py (standard library only) run by a `ShellBolt`, embedded in this binary.
//!
//! - `sentences` emits ids `0..test.sentences` at `test.rate` per second, each with its id as
//!   message id; acked ids are appended to `<test.dir>/acked-<task>.log` (fsync'd), so a restarted
//!   spout emits only what was never acked, like a Kafka spout committing offsets.
//! - `split` (shuffle) splits; `count` (fields on "word") counts and writes its counts to
//!   `<test.dir>/counts-<task>.json` every second (atomically), where the test reads them.

use cluster_tests::word_count::{Count, Sentences};
use std::process::ExitCode;
use tempest_multilang::{resources, ShellBolt, ShellCommand};
use topology_api::config::TOPOLOGY_TICK_TUPLE_FREQ_SECS;
use topology_api::prelude::*;

fn main() -> ExitCode {
    let mut b = TopologyBuilder::new("cluster-python-word-count");
    b.set_spout("sentences", Sentences::new, 1);
    let split = ShellBolt::new(
        ShellCommand::new("python3", ["split_stdlib.py"]),
        resources!["split_stdlib.py" => "../../../examples/python/split_stdlib.py"],
    )
    .output_fields(["word"]);
    b.set_bolt("split", move || split.clone(), 4)
        .shuffle_grouping("sentences");
    b.set_basic_bolt("count", Count::default, 2)
        .fields_grouping("split", ["word"])
        .add_config(TOPOLOGY_TICK_TUPLE_FREQ_SECS, 1);
    match b.build() {
        Ok(t) => topology_api::entry::main(t),
        Err(e) => {
            eprintln!("{e}");
            ExitCode::FAILURE
        }
    }
}
