//! All and global groupings at run time: all grouping copies every tuple to every consumer task,
//! global grouping sends everything to the consumer's lowest task id. Other groupings are
//! covered elsewhere (fields in word_count_exact, direct in direct, shuffle throughout).

mod common;

use common::{lock, run, Ledger, NumberSpout, Recorder, Seen};
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use topology_api::prelude::*;

const N: u64 = 50;

/// (task, id) pairs grouped per task.
fn per_task(seen: &Seen) -> BTreeMap<u32, Vec<u64>> {
    let mut m: BTreeMap<u32, Vec<u64>> = BTreeMap::new();
    for &(t, id) in lock(seen).iter() {
        m.entry(t).or_default().push(id);
    }
    for ids in m.values_mut() {
        ids.sort_unstable();
    }
    m
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn all_grouping_reaches_every_task_and_global_only_the_lowest() {
    let ledger = Ledger::new();
    let all_seen: Seen = Arc::default();
    let global_seen: Seen = Arc::default();

    let mut b = TopologyBuilder::new("groupings");
    let l = ledger.clone();
    b.set_spout("numbers", move || NumberSpout::new(N, &l), 2);
    let s = all_seen.clone();
    b.set_bolt("all", move || Recorder::new(&s), 2)
        .set_num_tasks(3)
        .all_grouping("numbers");
    let s = global_seen.clone();
    b.set_bolt("global", move || Recorder::new(&s), 2)
        .set_num_tasks(3)
        .global_grouping("numbers");
    let report = run(&b.build().expect("valid topology")).await;

    let tasks_of = |c: &str| -> BTreeSet<u32> {
        report
            .tasks
            .iter()
            .filter(|t| t.component == c)
            .map(|t| t.task_id)
            .collect()
    };
    let every_id: Vec<u64> = (0..N).collect();

    let all_tasks = tasks_of("all");
    assert_eq!(all_tasks.len(), 3);
    let all = per_task(&all_seen);
    assert_eq!(all.keys().copied().collect::<BTreeSet<_>>(), all_tasks);
    for (task, ids) in &all {
        assert_eq!(ids, &every_id, "all grouping: task {task}");
    }

    let global_tasks = tasks_of("global");
    assert_eq!(global_tasks.len(), 3);
    let lowest = *global_tasks.first().expect("a task");
    let global = per_task(&global_seen);
    assert_eq!(
        global.keys().copied().collect::<Vec<_>>(),
        vec![lowest],
        "global grouping: only the lowest task {lowest} receives"
    );
    assert_eq!(global[&lowest], every_id);

    // A tree with four branches (three copies plus the global one) completes once.
    ledger.assert_all_acked_once(N);
    assert!(ledger.fail_counts().is_empty());
    let by = report.by_component();
    assert_eq!(by["numbers"].emitted, N);
    assert_eq!(by["numbers"].transferred, 4 * N);
}
