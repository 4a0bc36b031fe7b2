//! Storm's exclamation topology: words -> exclaim1 (shuffle, 3) -> exclaim2 (shuffle, 2),
//! each adding "!!!"; a printer shows one result per second.
//!
//! `cargo run --release --example exclamation -- local --duration 5`

use std::process::ExitCode;
use topology_api::config::TOPOLOGY_TICK_TUPLE_FREQ_SECS;
use topology_api::prelude::*;

const WORDS: [&str; 5] = ["nathan", "mike", "jackson", "golda", "bertels"];

struct TestWordSpout(fastrand::Rng);

#[async_trait]
impl Spout for TestWordSpout {
    fn declare_output_fields(&self, d: &mut OutputDeclarer) {
        d.declare(["word"]);
    }
    async fn next_tuple(&mut self, c: &mut SpoutOutputCollector) -> ComponentResult {
        c.emit(values![WORDS[self.0.usize(..WORDS.len())]], None)?;
        Ok(())
    }
}

struct Exclaim;

#[async_trait]
impl BasicBolt for Exclaim {
    fn declare_output_fields(&self, d: &mut OutputDeclarer) {
        d.declare(["word"]);
    }
    fn execute(&mut self, t: &Tuple, c: &mut BasicOutputCollector<'_>) -> ComponentResult {
        c.emit(values![format!("{}!!!", t.str("word")?)])?;
        Ok(())
    }
}

/// Prints the latest word and how many arrived, once per tick.
#[derive(Default)]
struct Printer {
    last: String,
    seen: u64,
}

#[async_trait]
impl BasicBolt for Printer {
    fn declare_output_fields(&self, _: &mut OutputDeclarer) {}
    fn execute(&mut self, t: &Tuple, _: &mut BasicOutputCollector<'_>) -> ComponentResult {
        if t.is_tick() {
            println!("{} words in the last second, e.g. {}", self.seen, self.last);
            self.seen = 0;
        } else {
            self.seen += 1;
            if self.seen == 1 {
                self.last = t.str("word")?.to_string();
            }
        }
        Ok(())
    }
}

/// The topology (its test, `tests/exclamation.rs`, mocks the spout).
pub(crate) fn topology() -> Result<Topology, topology_api::validate::TopologyErrors> {
    let mut b = TopologyBuilder::new("exclamation");
    b.set_spout("word", || TestWordSpout(fastrand::Rng::new()), 1);
    b.set_basic_bolt("exclaim1", || Exclaim, 3)
        .shuffle_grouping("word");
    b.set_basic_bolt("exclaim2", || Exclaim, 2)
        .shuffle_grouping("exclaim1");
    b.set_basic_bolt("print", Printer::default, 1)
        .global_grouping("exclaim2")
        .add_config(TOPOLOGY_TICK_TUPLE_FREQ_SECS, 1);
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
