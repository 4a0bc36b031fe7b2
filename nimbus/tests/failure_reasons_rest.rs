//! Failed tuple trees by reason in the REST API: what spout tasks report in their heartbeats
//! (`failures`) is summed per spout in `GET /api/v1/topology/{id}` (`spouts[].failedByReason`)
//! and on the spout's component page (`failedByReason`); a bolt's page has none.

mod common;

use common::*;
use serde_json::{json, Value};
use tempest_protocol::control::{FailureCounts, TaskMetrics, WorkerHeartbeat};
use tempest_protocol::spec::TaskLayout;

async fn get_json(n: &TestNimbus, path: &str) -> Value {
    let r = reqwest::Client::new()
        .get(format!("{}{path}", n.url))
        .header("x-tempest-secret", SECRET)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 200, "{path}");
    r.json().await.unwrap()
}

#[tokio::test]
async fn spout_failures_by_reason_are_summed_over_its_tasks() {
    let n = TestNimbus::start(|_| {}).await;
    n.client
        .supervisor_heartbeat(&supervisor("sup-a", &[6700]))
        .await
        .unwrap();
    n.submit("wc", spec(1)).await;
    let a = n.client.assignment("wc").await.unwrap();
    let layout = TaskLayout::of(&a.spec);
    let spout = layout.tasks("words").map(|task_id| {
        let failures = FailureCounts {
            timeout: u64::from(task_id) * 10,
            failed: 1,
            error: 2,
            panic: 3,
            undelivered: 4,
        };
        TaskMetrics {
            task_id,
            component: "words".into(),
            emitted: 100,
            failed: failures.total(),
            failures,
            ..TaskMetrics::default()
        }
    });
    let tasks: Vec<TaskMetrics> = spout.collect();
    let timeouts: u64 = tasks.iter().map(|t| t.failures.timeout).sum();
    assert!(tasks.len() == 2 && timeouts > 0);
    n.client
        .worker_heartbeat(&WorkerHeartbeat {
            rollback: false,
            topology: a.topology.clone(),
            host: a.workers[0].host.clone(),
            port: a.workers[0].port,
            version: a.version,
            tasks,
        })
        .await
        .unwrap();

    let expected = json!({
        "timeout": timeouts, "failed": 2, "error": 4, "panic": 6, "undelivered": 8
    });
    let t = get_json(&n, "/api/v1/topology/wc").await;
    let row = &t["spouts"][0];
    assert_eq!(row["spoutId"], "words", "{t}");
    assert_eq!(row["failedByReason"], expected, "{t}");
    let page = get_json(&n, "/api/v1/topology/wc/component/words").await;
    assert_eq!(page["failedByReason"], expected, "{page}");
    let bolt = get_json(&n, "/api/v1/topology/wc/component/count").await;
    assert!(bolt.get("failedByReason").is_none(), "{bolt}");
}
