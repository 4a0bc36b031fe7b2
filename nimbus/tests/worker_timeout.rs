//! A worker slot whose worker stops heartbeating (on a live supervisor) is dead after the
//! worker timeout; its worker moves to a free slot, another supervisor preferred.

mod common;

use common::*;
use std::time::Duration;
use tempest_client::NimbusClient;
use tempest_protocol::control::{WorkerHeartbeat, WorkerSlot};

/// Heartbeats as the worker on `slot`, following the directive's version (as a worker that the
/// supervisor restarts on a new version would), until dropped.
fn keep_worker_alive(
    client: &NimbusClient,
    topology: &str,
    slot: &WorkerSlot,
    version: u64,
) -> Heartbeating {
    let client = client.clone();
    let mut hb = WorkerHeartbeat {
        rollback: false,
        topology: topology.into(),
        host: slot.host.clone(),
        port: slot.port,
        version,
        tasks: vec![],
    };
    Heartbeating::spawn(async move {
        loop {
            if let Ok(d) = client.worker_heartbeat(&hb).await {
                hb.version = d.version;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    })
}

#[tokio::test]
async fn a_silent_worker_moves_and_the_reporting_one_stays() {
    let n = TestNimbus::start(|c| c.worker_timeout_secs = 1).await;
    let _a = keep_heartbeating(&n.client, supervisor("sup-a", &[6700, 6701]));
    let _b = keep_heartbeating(&n.client, supervisor("sup-b", &[6700, 6701]));
    let before = eventually("both supervisors", Duration::from_secs(5), || async {
        let list = n.client.supervisors().await.ok()?;
        (list.supervisors.len() == 2).then_some(())
    });
    before.await;
    n.submit("wc", spec(2)).await;
    let before = n.client.assignment("wc").await.unwrap();
    let alive = before
        .workers
        .iter()
        .find(|w| w.supervisor == "sup-a")
        .unwrap()
        .clone();
    let _w = keep_worker_alive(&n.client, "wc", &alive, before.version);

    let after = eventually(
        "the silent worker to move",
        Duration::from_secs(10),
        || async {
            let a = n.client.assignment("wc").await.ok()?;
            (a.version != before.version).then_some(a)
        },
    )
    .await;
    assert!(
        after.workers.contains(&alive),
        "the reporting worker keeps its slot: {after:?}"
    );
    let moved: Vec<_> = after.workers.iter().filter(|w| **w != alive).collect();
    assert_eq!(moved.len(), 1);
    assert_eq!(
        (moved[0].supervisor.as_str(), moved[0].port),
        ("sup-a", 6701),
        "the other supervisor is preferred over the silent worker's own"
    );
    let info = n
        .client
        .describe("wc")
        .await
        .unwrap()
        .summary
        .scheduler_info;
    assert!(info.contains("sent no heartbeat"), "{info}");
}
