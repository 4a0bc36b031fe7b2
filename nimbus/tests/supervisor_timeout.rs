//! A supervisor that stops heartbeating is declared dead after the timeout (not before one
//! timeout since Nimbus started), and its workers move to free slots of the live ones.

mod common;

use common::*;
use std::time::{Duration, Instant};
use tempest_protocol::control::TopologyState;

#[tokio::test]
async fn workers_of_a_silent_supervisor_move_to_the_live_one() {
    let n = TestNimbus::start(|c| c.supervisor_timeout_secs = 2).await;
    let started = Instant::now();
    let a_beat = supervisor("sup-a", &[6700, 6701]);
    n.client.supervisor_heartbeat(&a_beat).await.unwrap();
    n.client
        .supervisor_heartbeat(&supervisor("sup-b", &[6700, 6701]))
        .await
        .unwrap();
    n.submit("wc", spec(2)).await;
    let before = n.client.assignment("wc").await.unwrap();
    let on = |a: &tempest_protocol::control::Assignment, s: &str| {
        a.workers.iter().filter(|w| w.supervisor == s).count()
    };
    assert_eq!(
        (on(&before, "sup-a"), on(&before, "sup-b")),
        (1, 1),
        "{before:?}"
    );
    let kept = before
        .workers
        .iter()
        .find(|w| w.supervisor == "sup-a")
        .unwrap()
        .clone();

    // Only sup-a keeps heartbeating.
    let _a = keep_heartbeating(&n.client, a_beat);
    let after = eventually(
        "the worker of sup-b to move",
        Duration::from_secs(15),
        || async {
            let a = n.client.assignment("wc").await.ok()?;
            (a.version != before.version).then_some(a)
        },
    )
    .await;
    assert!(
        started.elapsed() >= Duration::from_secs(2),
        "nobody is declared dead within one timeout of the start"
    );
    assert!(after.version > before.version);
    assert_eq!(on(&after, "sup-a"), 2, "{after:?}");
    assert!(
        after.workers.contains(&kept),
        "the healthy worker keeps its slot"
    );
    assert_every_executor_once(&after);

    let sups = n.client.supervisors().await.unwrap().supervisors;
    let b = sups.iter().find(|s| s.id == "sup-b").unwrap();
    assert!(!b.alive);
    assert_eq!(b.slots_used, 0);
    let details = n.client.describe("wc").await.unwrap();
    assert_eq!(details.summary.status, TopologyState::Active);
    assert!(
        details.summary.scheduler_info.contains("sup-b"),
        "{}",
        details.summary.scheduler_info
    );
}

#[tokio::test]
async fn without_free_slots_the_assignment_stays_and_says_why() {
    let n = TestNimbus::start(|c| c.supervisor_timeout_secs = 1).await;
    let a_beat = supervisor("sup-a", &[6700]);
    n.client.supervisor_heartbeat(&a_beat).await.unwrap();
    n.client
        .supervisor_heartbeat(&supervisor("sup-b", &[6700]))
        .await
        .unwrap();
    n.submit("wc", spec(2)).await;
    let before = n.client.assignment("wc").await.unwrap();
    let _a = keep_heartbeating(&n.client, a_beat);
    let info = eventually(
        "the scheduler to report the stuck worker",
        Duration::from_secs(10),
        || async {
            let d = n.client.describe("wc").await.ok()?;
            let info = d.summary.scheduler_info;
            info.contains("no free slot").then_some(info)
        },
    )
    .await;
    assert!(info.contains("sup-b"), "{info}");
    assert_eq!(n.client.assignment("wc").await.unwrap(), before);
}
