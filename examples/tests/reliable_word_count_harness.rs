//! The reliable word count's flaky counter under the harness: every failure reaches the
//! spout with the bolt, task and message that failed it, and the replays complete.

use tempest_examples::reliable;
use topology_api::testing::{complete_topology, CompleteOptions, MockedSources};
use topology_api::{values, FailReason};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_failure_names_the_flaky_count_and_the_replay_completes() {
    let (topology, _ledger) = reliable::topology(0, 0.3, 1).unwrap();
    let mut sources = MockedSources::new();
    sources
        .add(
            "sentences",
            (0..50).map(|i| values![format!("sentence {i} of fifty words")]),
        )
        .replay_failed(100);
    let done = complete_topology(&topology, &sources, CompleteOptions::default())
        .await
        .expect("completes");
    let failed = done.failed("sentences");
    assert!(!failed.is_empty(), "30% of words fail: some sentence must");
    for (sentence, reason) in &failed {
        assert_eq!(reason.component(), Some("count"), "{sentence:?}: {reason}");
        assert!(matches!(reason, FailReason::Bolt { .. }), "{reason}");
    }
    assert_eq!(
        done.acked("sentences").len(),
        50,
        "every sentence completes in the end"
    );
}
