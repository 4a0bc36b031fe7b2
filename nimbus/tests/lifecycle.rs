//! A topology's life through the API: deactivate and activate (seen by workers in their
//! heartbeat directive), kill with a wait, rebalance with a wait.

mod common;

use common::*;
use std::collections::BTreeMap;
use std::time::Duration;
use tempest_protocol::control::{Assignment, RebalanceRequest, TopologyState, WorkerHeartbeat};

/// A worker heartbeat from the first worker of `a`.
fn worker_beat(a: &Assignment) -> WorkerHeartbeat {
    WorkerHeartbeat {
        rollback: false,
        topology: a.topology.clone(),
        host: a.workers[0].host.clone(),
        port: a.workers[0].port,
        version: a.version,
        tasks: vec![],
    }
}

async fn scheduled(n: &TestNimbus, name: &str, workers: u64) -> Assignment {
    n.client
        .supervisor_heartbeat(&supervisor("sup-a", &[6700, 6701, 6702, 6703]))
        .await
        .unwrap();
    let answer = n.submit(name, spec(workers)).await;
    assert_eq!(answer.state, TopologyState::Active, "{}", answer.message);
    n.client.assignment(name).await.unwrap()
}

#[tokio::test]
async fn deactivate_and_activate_reach_the_workers() {
    let n = TestNimbus::start(|_| {}).await;
    let a = scheduled(&n, "wc", 2).await;
    let directive = n.client.worker_heartbeat(&worker_beat(&a)).await.unwrap();
    assert_eq!(
        (directive.state, directive.version),
        (TopologyState::Active, a.version)
    );

    let answer = n.client.deactivate("wc").await.unwrap();
    assert_eq!(answer.state, TopologyState::Inactive);
    let directive = n.client.worker_heartbeat(&worker_beat(&a)).await.unwrap();
    assert_eq!(directive.state, TopologyState::Inactive);
    assert_eq!(
        n.client.describe("wc").await.unwrap().summary.status,
        TopologyState::Inactive
    );
    let again = n.client.deactivate("wc").await.unwrap();
    assert_eq!(again.message, "already inactive");

    let answer = n.client.activate("wc").await.unwrap();
    assert_eq!(answer.state, TopologyState::Active);
    let directive = n.client.worker_heartbeat(&worker_beat(&a)).await.unwrap();
    assert_eq!(directive.state, TopologyState::Active);
    assert_eq!(
        n.client.assignment("wc").await.unwrap(),
        a,
        "no reassignment"
    );
}

#[tokio::test]
async fn a_deactivated_pending_topology_starts_inactive() {
    let n = TestNimbus::start(|_| {}).await;
    n.submit("wc", spec(1)).await;
    let answer = n.client.deactivate("wc").await.unwrap();
    assert_eq!(answer.state, TopologyState::Pending);
    n.client
        .supervisor_heartbeat(&supervisor("sup-a", &[6700]))
        .await
        .unwrap();
    assert_eq!(
        n.client.describe("wc").await.unwrap().summary.status,
        TopologyState::Inactive
    );
}

#[tokio::test]
async fn a_killed_topology_is_killed_at_once_and_gone_after_the_wait() {
    let n = TestNimbus::start(|_| {}).await;
    let a = scheduled(&n, "wc", 2).await;
    let answer = n.client.kill("wc", 1).await.unwrap();
    assert_eq!(answer.state, TopologyState::Killed);
    let list = n.client.list().await.unwrap().topologies;
    assert_eq!(list[0].status, TopologyState::Killed);
    let directive = n.client.worker_heartbeat(&worker_beat(&a)).await.unwrap();
    assert_eq!(
        directive.state,
        TopologyState::Killed,
        "spouts stop emitting"
    );
    let (status, msg) = refused(n.client.activate("wc").await);
    assert_eq!(status, 409, "{msg}");
    assert!(msg.contains("being killed"), "{msg}");
    // Supervisors keep the workers until the wait is over.
    let beat = supervisor("sup-a", &[6700, 6701, 6702, 6703]);
    assert_eq!(
        n.client
            .supervisor_heartbeat(&beat)
            .await
            .unwrap()
            .assignments
            .len(),
        1
    );

    eventually(
        "the killed topology to be removed",
        Duration::from_secs(5),
        || async { n.client.describe("wc").await.is_err().then_some(()) },
    )
    .await;
    assert_eq!(refused(n.client.describe("wc").await).0, 404);
    assert_eq!(refused(n.client.assignment("wc").await).0, 404);
    assert!(n.client.list().await.unwrap().topologies.is_empty());
    let (status, msg) = refused(n.client.worker_heartbeat(&worker_beat(&a)).await);
    assert_eq!(status, 404, "the worker is told to stop: {msg}");
    assert!(n
        .client
        .supervisor_heartbeat(&beat)
        .await
        .unwrap()
        .assignments
        .is_empty());

    // The name is free again, and the new assignment has a new version.
    let b = scheduled(&n, "wc", 2).await;
    assert!(b.version > a.version);
}

#[tokio::test]
async fn kill_without_wait_removes_at_once() {
    let n = TestNimbus::start(|_| {}).await;
    scheduled(&n, "wc", 1).await;
    let answer = n.client.kill("wc", 0).await.unwrap();
    assert_eq!(answer.state, TopologyState::Killed);
    assert_eq!(refused(n.client.describe("wc").await).0, 404);
}

#[tokio::test]
async fn a_rebalance_pauses_then_reschedules_with_a_new_version() {
    let n = TestNimbus::start(|_| {}).await;
    let a = scheduled(&n, "wc", 2).await;
    let req = RebalanceRequest {
        workers: Some(3),
        parallelism: BTreeMap::from([("count".to_string(), 4)]),
    };
    let answer = n.client.rebalance("wc", 1, &req).await.unwrap();
    assert_eq!(answer.state, TopologyState::Rebalancing);
    let directive = n.client.worker_heartbeat(&worker_beat(&a)).await.unwrap();
    assert_eq!(directive.state, TopologyState::Rebalancing);
    let (status, _) = refused(n.client.rebalance("wc", 1, &req).await);
    assert_eq!(status, 409);

    let b = eventually("the rebalance", Duration::from_secs(5), || async {
        let b = n.client.assignment("wc").await.ok()?;
        (b.version != a.version).then_some(b)
    })
    .await;
    assert_eq!(b.workers.len(), 3);
    assert_eq!(b.spec.component("count").unwrap().parallelism, 4);
    assert_eq!(workers_of(&b.spec), 3);
    assert_every_executor_once(&b);
    let details = n.client.describe("wc").await.unwrap();
    assert_eq!(details.summary.status, TopologyState::Active);
    assert_eq!(details.summary.executors_total, 7);
    let directive = n.client.worker_heartbeat(&worker_beat(&a)).await.unwrap();
    assert_eq!(
        directive.version, b.version,
        "old workers learn of the new version"
    );

    // Without a wait, the answer already tells the outcome.
    let answer = n
        .client
        .rebalance(
            "wc",
            0,
            &RebalanceRequest {
                workers: Some(1),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(answer.state, TopologyState::Active);
    assert!(
        answer.message.contains("rebalanced onto 1 worker"),
        "{}",
        answer.message
    );
}
