//! The word count example with its random sentence spout mocked: the counts per word come out
//! of `count` one update at a time, the report bolt (ticked every 3 s, simulated) acks them
//! all, and every sentence's tree completes.

#[allow(dead_code)]
#[path = "../examples/word_count.rs"]
mod word_count;

use topology_api::testing::{
    complete_topology, same_multiset, simulated, CompleteOptions, MockedSources,
};
use topology_api::values;

#[test]
fn counts_come_out_one_update_per_word() {
    let done = simulated(async {
        let topology = word_count::topology().expect("a valid topology");
        let mut sources = MockedSources::new();
        sources.add(
            "sentences",
            [values!["the cow jumped"], values!["the moon"]],
        );
        complete_topology(&topology, &sources, CompleteOptions::default())
            .await
            .expect("completes")
    });
    same_multiset(
        done.emitted("split"),
        &[
            values!["the"],
            values!["cow"],
            values!["jumped"],
            values!["the"],
            values!["moon"],
        ],
    )
    .unwrap();
    same_multiset(
        done.emitted("count"),
        &[
            values!["the", 1],
            values!["cow", 1],
            values!["jumped", 1],
            values!["the", 2],
            values!["moon", 1],
        ],
    )
    .unwrap();
    assert_eq!(done.acked("sentences").len(), 2);
    assert_eq!(done.report.by_component()["report"].acked, 5);
}
