//! The topology the cluster tests submit: a reliable word count whose spout survives restarts.
//!
//! - `sentences` emits ids `0..test.sentences` at `test.rate` per second, each with its id as
//!   message id; acked ids are appended to `<test.dir>/acked-<task>.log` (fsync'd), so a restarted
//!   spout emits only what was never acked, like a Kafka spout committing offsets.
//! - `split` (shuffle) splits; `count` (fields on "word") counts and writes its counts to
//!   `<test.dir>/counts-<task>.json` every second (atomically), where the test reads them.

use cluster_tests::word_count::{Count, Sentences};
use std::process::ExitCode;
use tempest_examples::SplitSentence;
use topology_api::config::TOPOLOGY_TICK_TUPLE_FREQ_SECS;
use topology_api::prelude::*;

fn main() -> ExitCode {
    let mut b = TopologyBuilder::new("cluster-word-count");
    b.set_spout("sentences", Sentences::new, 1);
    b.set_basic_bolt("split", || SplitSentence, 2)
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
