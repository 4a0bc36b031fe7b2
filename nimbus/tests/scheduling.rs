//! A submitted topology waits for slots, then is scheduled over them: every executor (ackers
//! included) exactly once, workers spread over slots and supervisors.

mod common;

use common::*;
use std::collections::BTreeSet;
use tempest_protocol::control::TopologyState;

#[tokio::test]
async fn a_topology_waits_for_slots_then_runs_spread_over_them() {
    let n = TestNimbus::start(|_| {}).await;
    let answer = n.submit("wc", spec(2)).await;
    assert_eq!(answer.state, TopologyState::Pending);
    assert_eq!(
        answer.message,
        "waiting for slots: needs 2 workers, 0 free slots"
    );
    let (status, msg) = refused(n.client.assignment("wc").await);
    assert_eq!(status, 404, "{msg}");
    assert!(msg.contains("\"wc\"") && msg.contains("PENDING"), "{msg}");

    // A supervisor with 2 slots: the topology is scheduled at once, and the heartbeat's
    // answer already carries the assignment.
    let answer = n
        .client
        .supervisor_heartbeat(&supervisor("sup-a", &[6700, 6701]))
        .await
        .unwrap();
    assert_eq!(answer.assignments.len(), 1);
    let a = &answer.assignments[0];
    assert_eq!(a.topology, "wc");
    assert_eq!(a.workers.len(), 2);
    assert_every_executor_once(a);
    let ports: BTreeSet<u16> = a.workers.iter().map(|w| w.port).collect();
    assert_eq!(ports, BTreeSet::from([6700, 6701]));
    assert!(
        a.workers.iter().all(|w| w.executors.len() == 3),
        "6 executors dealt evenly"
    );
    assert!(a
        .workers
        .iter()
        .all(|w| w.host == "host-sup-a" && w.supervisor == "sup-a"));
    assert_eq!(a.spec.name, "wc");
    assert_eq!(workers_of(&a.spec), 2);

    let details = n.client.describe("wc").await.unwrap();
    assert_eq!(details.summary.status, TopologyState::Active);
    assert_eq!(details.summary.workers_total, 2);
    assert_eq!(details.summary.requested_workers, 2);
    assert_eq!(details.summary.executors_total, 6);
    assert_eq!(details.summary.tasks_total, 7);
    assert_eq!(details.assignment.as_ref(), Some(a));
    assert_eq!(&n.client.assignment("wc").await.unwrap(), a);

    let sups = n.client.supervisors().await.unwrap().supervisors;
    assert_eq!(sups.len(), 1);
    assert_eq!((sups[0].slots_total, sups[0].slots_used), (2, 2));
    assert!(sups[0].alive);
    let summary: nimbus::ClusterSummary = reqwest::Client::new()
        .get(format!("{}/api/v1/cluster/summary", n.url))
        .header("x-tempest-secret", SECRET)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        (
            summary.supervisors,
            summary.slots_total,
            summary.slots_used,
            summary.slots_free
        ),
        (1, 2, 2, 0)
    );
    assert_eq!(summary.topologies, 1);

    // Another supervisor sees no assignment of its own.
    let other = n
        .client
        .supervisor_heartbeat(&supervisor("sup-b", &[6700]))
        .await
        .unwrap();
    assert!(other.assignments.is_empty());

    // A supervisor on the same host offering a port another live one offers is refused.
    let mut clash = supervisor("sup-c", &[6701, 6702]);
    clash.host = "host-sup-a".into();
    let (status, msg) = refused(n.client.supervisor_heartbeat(&clash).await);
    assert_eq!(status, 409);
    assert!(
        msg.contains("\"sup-a\"") && msg.contains("host-sup-a:6701"),
        "{msg}"
    );
}

#[tokio::test]
async fn workers_are_spread_over_supervisors_and_config_overrides_apply() {
    let n = TestNimbus::start(|_| {}).await;
    n.client
        .supervisor_heartbeat(&supervisor("sup-a", &[6700, 6701, 6702]))
        .await
        .unwrap();
    n.client
        .supervisor_heartbeat(&supervisor("sup-b", &[6700, 6701, 6702]))
        .await
        .unwrap();
    let sha = n.upload(b"binary").await;
    let mut req = submit_request("wc", spec(1), &sha);
    req.config.set("topology.workers", 4);
    let answer = n.client.submit(&req).await.unwrap();
    assert_eq!(answer.state, TopologyState::Active, "{}", answer.message);
    let a = n.client.assignment("wc").await.unwrap();
    assert_eq!(a.workers.len(), 4);
    let on_a = a.workers.iter().filter(|w| w.supervisor == "sup-a").count();
    assert_eq!(on_a, 2, "two workers per supervisor: {a:?}");
    assert_every_executor_once(&a);
    let details = n.client.describe("wc").await.unwrap();
    assert_eq!(
        details.configuration.u64_or("topology.workers", 0).unwrap(),
        4
    );

    // A second topology takes the two slots left.
    let mut req = submit_request("second", spec(2), &sha);
    req.config.set("topology.workers", 2);
    assert_eq!(
        n.client.submit(&req).await.unwrap().state,
        TopologyState::Active
    );
    let third = n
        .client
        .submit(&submit_request("third", spec(1), &sha))
        .await
        .unwrap();
    assert_eq!(third.state, TopologyState::Pending);
    assert_eq!(
        third.message,
        "waiting for slots: needs 1 worker, 0 free slots"
    );
    let list = n.client.list().await.unwrap().topologies;
    let names: Vec<_> = list.iter().map(|t| t.name.as_str()).collect();
    assert_eq!(names, ["second", "third", "wc"]);
}
