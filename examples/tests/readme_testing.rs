//! The README's "Testing your topology" example, verbatim (`readme_shows_this_file` keeps the
//! two equal).

use std::time::Duration;
use tempest_examples::{RandomSentenceSpout, SplitSentence, WordCount};
use topology_api::prelude::*;
use topology_api::testing::{
    complete_topology, same_multiset, simulated, BoltTester, CompleteOptions, Fault, Faults,
    MockedSources,
};

fn topology() -> Topology {
    let mut b = TopologyBuilder::new("word-count");
    b.set_spout("sentences", || RandomSentenceSpout::new(true), 1);
    b.set_basic_bolt("split", || SplitSentence, 2)
        .shuffle_grouping("sentences");
    b.set_basic_bolt("count", WordCount::default, 2)
        .fields_grouping("split", ["word"]);
    b.build().expect("a valid topology")
}

#[tokio::test]
async fn counts_each_word() {
    // The random spout is replaced by these sentences; the run ends when their trees do.
    let mut sources = MockedSources::new();
    sources.add("sentences", [values!["the cow"], values!["the dog"]]);
    let done = complete_topology(&topology(), &sources, CompleteOptions::default())
        .await
        .unwrap();
    let expected = [
        values!["the", 1],
        values!["cow", 1],
        values!["the", 2],
        values!["dog", 1],
    ];
    same_multiset(done.emitted("count"), &expected).unwrap();
    assert_eq!(done.acked("sentences").len(), 2);
}

#[tokio::test]
async fn a_failed_split_is_replayed_and_the_spout_learns_why() {
    // Split's first task fails the first sentence it gets; the mocked spout replays it once.
    let faulty = Faults::new()
        .on("split", 0, 1, Fault::Error)
        .apply(topology())
        .unwrap();
    let mut sources = MockedSources::new();
    sources
        .add("sentences", [values!["the cow"], values!["the dog"]])
        .replay_failed(1);
    let done = complete_topology(&faulty, &sources, CompleteOptions::default())
        .await
        .unwrap();
    let failed = done.failed("sentences");
    assert_eq!(failed.len(), 1);
    let reason = &failed[0].1;
    assert_eq!(reason.component(), Some("split"));
    assert_eq!(reason.kind(), "error");
    // "execute returned an error in bolt \"split\" task 5: injected error on tuple 1"
    println!("{reason}");
    let both = [values!["the cow"], values!["the dog"]];
    same_multiset(&done.acked("sentences"), &both).unwrap();
}

/// Holds its input: never acks it.
struct Forgetful;

#[async_trait]
impl Bolt for Forgetful {
    fn declare_output_fields(&self, _: &mut OutputDeclarer) {}
    async fn execute(&mut self, _: Tuple, _: &mut OutputCollector) -> ComponentResult {
        Ok(())
    }
}

#[test]
fn a_forgotten_tuple_times_out_in_simulated_time() {
    // 30 simulated seconds, a few real milliseconds.
    let done = simulated(
        BoltTester::new("forgetful", ["word"])
            .config(Config::new().with_message_timeout_secs(30))
            .bolt(|| Forgetful)
            .run([values!["cow"]]),
    )
    .unwrap();
    let (_, reason) = &done.failed("input")[0];
    assert_eq!(
        reason,
        &FailReason::Timeout {
            after: Duration::from_secs(30)
        }
    );
}

/// The README's example block is this file, from the first `use` on.
#[test]
fn readme_shows_this_file() {
    let readme = include_str!("../../README.md");
    let file = include_str!("readme_testing.rs");
    let body = &file[file.find("use std::time").expect("the first use")..];
    let body = &body[..body
        .find("/// The README's example block")
        .expect("this test")];
    let section = &readme[readme
        .find("## Testing your topology")
        .expect("the section")..];
    let start = section.find("```rs\n").expect("the example block") + 6;
    let block = &section[start..start + section[start..].find("```").expect("its end")];
    assert_eq!(
        block.trim_end(),
        body.trim_end(),
        "README and examples/tests/readme_testing.rs differ"
    );
}
