//! The exclamation example with its random word spout mocked: each word comes out of
//! `exclaim2` with six exclamation marks, and every tuple is acked.

#[allow(dead_code)]
#[path = "../examples/exclamation.rs"]
mod exclamation;

use topology_api::testing::{complete_topology, same_multiset, CompleteOptions, MockedSources};
use topology_api::values;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_word_gets_six_exclamation_marks() {
    let topology = exclamation::topology().expect("a valid topology");
    let mut sources = MockedSources::new();
    sources.add(
        "word",
        [values!["nathan"], values!["golda"], values!["nathan"]],
    );
    let done = complete_topology(&topology, &sources, CompleteOptions::default())
        .await
        .expect("completes");
    same_multiset(
        done.emitted("exclaim1"),
        &[
            values!["nathan!!!"],
            values!["golda!!!"],
            values!["nathan!!!"],
        ],
    )
    .unwrap();
    same_multiset(
        done.emitted("exclaim2"),
        &[
            values!["nathan!!!!!!"],
            values!["golda!!!!!!"],
            values!["nathan!!!!!!"],
        ],
    )
    .unwrap();
    assert_eq!(done.acked("word").len(), 3);
    assert!(done.failed("word").is_empty());
}
