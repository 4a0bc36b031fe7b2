//! A restarted Nimbus carries on from its data dir: same topologies, same assignments and
//! versions, so running workers are not restarted.

mod common;

use common::*;
use tempest_protocol::control::TopologyState;

#[tokio::test]
async fn a_restarted_nimbus_keeps_topologies_and_assignment_versions() {
    let mut n = TestNimbus::start(|_| {}).await;
    let beat = supervisor("sup-a", &[6700, 6701]);
    n.client.supervisor_heartbeat(&beat).await.unwrap();
    n.submit("wc", spec(2)).await;
    n.submit("waiting", spec(5)).await;
    n.client.deactivate("wc").await.unwrap();
    let assignment = n.client.assignment("wc").await.unwrap();
    let list = n.client.list().await.unwrap().topologies;
    let artifacts = n.artifact_files();

    n.restart(|_| {}).await;

    let again = n.client.list().await.unwrap().topologies;
    let states: Vec<_> = again.iter().map(|t| (t.name.clone(), t.status)).collect();
    assert_eq!(
        states,
        [
            ("waiting".to_string(), TopologyState::Pending),
            ("wc".to_string(), TopologyState::Inactive)
        ]
    );
    assert_eq!(
        serde_json::to_value(&again[1]).unwrap()["schedulerInfo"],
        serde_json::to_value(&list[1]).unwrap()["schedulerInfo"]
    );
    assert_eq!(n.client.assignment("wc").await.unwrap(), assignment);
    assert_eq!(n.artifact_files(), artifacts);
    // The supervisor heartbeats to the new process and gets the same assignment.
    let answer = n.client.supervisor_heartbeat(&beat).await.unwrap();
    assert_eq!(answer.assignments, std::slice::from_ref(&assignment));

    // Versions go on from where they were: a new assignment gets a higher one.
    n.client.kill("wc", 0).await.unwrap();
    n.client
        .supervisor_heartbeat(&supervisor("sup-b", &[6700, 6701, 6702]))
        .await
        .unwrap();
    let next = n.client.assignment("waiting").await.unwrap();
    assert!(
        next.version > assignment.version,
        "{} > {}",
        next.version,
        assignment.version
    );
    n.stop().await;
}
