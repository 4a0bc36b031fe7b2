//! The stateful word count example with its sentence spout mocked, run twice on one state
//! directory on simulated time (checkpoints every second of it): the second run starts from
//! the counts the first one checkpointed.

#[allow(dead_code)]
#[path = "../examples/stateful_word_count.rs"]
mod stateful_word_count;

use topology_api::config::TOPOLOGY_STATE_REDB_DIR;
use topology_api::testing::{
    complete_topology, same_multiset, simulated, CompleteOptions, Completed, MockedSources,
};
use topology_api::values;

fn run(dir: &std::path::Path, sentences: &[&str]) -> Completed {
    simulated(async {
        let mut topology = stateful_word_count::topology(1_000.0).expect("a valid topology");
        topology
            .config_mut()
            .set(TOPOLOGY_STATE_REDB_DIR, dir.to_string_lossy().as_ref());
        let mut sources = MockedSources::new();
        sources.add("sentences", sentences.iter().map(|s| values![*s]));
        complete_topology(&topology, &sources, CompleteOptions::default())
            .await
            .expect("completes")
    })
}

#[test]
fn counts_survive_a_restart_from_their_checkpoint() {
    let dir = tempfile::tempdir().unwrap();
    let first = run(dir.path(), &["the cow", "the dog"]);
    same_multiset(
        first.emitted("count"),
        &[
            values!["the", 1],
            values!["cow", 1],
            values!["the", 2],
            values!["dog", 1],
        ],
    )
    .unwrap();
    // Acked only once a checkpoint saved their counts.
    assert_eq!(first.acked("sentences").len(), 2);

    let second = run(dir.path(), &["the cow"]);
    same_multiset(
        second.emitted("count"),
        &[values!["the", 3], values!["cow", 2]],
    )
    .unwrap();
    assert_eq!(second.acked("sentences").len(), 1);
}
