//! Task metrics from worker heartbeats appear in `describe`, with where the task runs;
//! heartbeats of stale workers are not mixed in.

mod common;

use common::*;
use tempest_protocol::control::{TaskError, TaskMetrics, WorkerHeartbeat};

#[tokio::test]
async fn worker_heartbeat_metrics_appear_in_describe() {
    let n = TestNimbus::start(|_| {}).await;
    n.client
        .supervisor_heartbeat(&supervisor("sup-a", &[6700, 6701]))
        .await
        .unwrap();
    n.submit("wc", spec(2)).await;
    let a = n.client.assignment("wc").await.unwrap();
    let w = &a.workers[1];
    let metrics = |task_id: u32, emitted: u64| TaskMetrics {
        task_id,
        component: "words".into(),
        emitted,
        acked: emitted,
        complete_latency_ms: 1.5,
        errors: (0..30)
            .map(|i| TaskError {
                time_secs: i,
                error: format!("error {i}"),
            })
            .collect(),
        ..TaskMetrics::default()
    };
    let beat = |version: u64, tasks: Vec<TaskMetrics>| WorkerHeartbeat {
        rollback: false,
        topology: "wc".into(),
        host: w.host.clone(),
        port: w.port,
        version,
        tasks,
    };
    assert!(n.client.describe("wc").await.unwrap().tasks.is_empty());
    n.client
        .worker_heartbeat(&beat(a.version, vec![metrics(1, 10), metrics(2, 20)]))
        .await
        .unwrap();
    n.client
        .worker_heartbeat(&beat(a.version, vec![metrics(1, 15), metrics(500, 1)]))
        .await
        .unwrap();
    // A worker of another version is told the current one; its metrics are not kept.
    let directive = n
        .client
        .worker_heartbeat(&beat(a.version + 100, vec![metrics(2, 999)]))
        .await
        .unwrap();
    assert_eq!(directive.version, a.version);

    let tasks = n.client.describe("wc").await.unwrap().tasks;
    let ids: Vec<u32> = tasks.iter().map(|t| t.metrics.task_id).collect();
    assert_eq!(ids, [1, 2], "task 500 does not exist");
    assert_eq!(tasks[0].metrics.emitted, 15, "the latest report wins");
    assert_eq!(tasks[1].metrics.emitted, 20);
    assert_eq!(
        (tasks[0].host.as_str(), tasks[0].port),
        (w.host.as_str(), w.port)
    );
    assert!(tasks[0].last_heartbeat_secs < 5);
    assert_eq!(tasks[0].metrics.complete_latency_ms, 1.5);
    assert_eq!(
        tasks[0].metrics.errors.len(),
        10,
        "errors per task are capped"
    );
    assert_eq!(tasks[0].metrics.errors[9].error, "error 29");

    // Metrics of a killed topology are dropped.
    n.client.kill("wc", 0).await.unwrap();
    n.submit("wc", spec(2)).await;
    assert!(n.client.describe("wc").await.unwrap().tasks.is_empty());
}
