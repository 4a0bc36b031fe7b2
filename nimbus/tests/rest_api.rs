//! The monitoring REST API over real HTTP (`docs/design/rest-api.md`): this test acts as the
//! supervisors and workers, sending heartbeats with metrics at times it sets on Nimbus's clock,
//! and checks every endpoint: windows of 10 minutes to all time across a worker restart, the
//! component page, the graph's rates, Storm's fields, `/metrics`, the secret in either header,
//! 404s and 400s.

mod common;

use common::*;
use serde_json::Value;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use tempest_protocol::control::stats::Window;
use tempest_protocol::control::{Assignment, TaskError, TaskMetrics, WorkerHeartbeat};
use tempest_protocol::spec::TaskLayout;

/// Nimbus's clock at the start of a test (Unix ms).
const T0: u64 = 1_700_000_000_000;
/// The worker restarts at this second (its counters start again from zero).
const RESTART: u64 = 7_170;
/// The test ends at this second: 4 hours.
const END: u64 = 14_400;

/// What every task reports when it has been counting for `secs` seconds: spout tasks emit and
/// complete 10 tuples a second (2 ms each), bolt tasks execute, emit and ack 5 a second.
fn reports(a: &Assignment, secs: u64, capacity: f64) -> Vec<TaskMetrics> {
    let layout = TaskLayout::of(&a.spec);
    let spout = layout.tasks("words").map(|task_id| TaskMetrics {
        task_id,
        component: "words".into(),
        emitted: 10 * secs,
        transferred: 10 * secs,
        acked: 10 * secs,
        complete_latency_ms: 2.0,
        ..TaskMetrics::default()
    });
    let bolt = layout.tasks("count").map(|task_id| TaskMetrics {
        task_id,
        component: "count".into(),
        emitted: 5 * secs,
        transferred: 5 * secs,
        acked: 5 * secs,
        executed: 5 * secs,
        execute_latency_ms: 0.5,
        process_latency_ms: 0.7,
        capacity,
        ..TaskMetrics::default()
    });
    spout.chain(bolt).collect()
}

fn beat(a: &Assignment, tasks: Vec<TaskMetrics>) -> WorkerHeartbeat {
    WorkerHeartbeat {
        rollback: false,
        topology: a.topology.clone(),
        host: a.workers[0].host.clone(),
        port: a.workers[0].port,
        version: a.version,
        tasks,
    }
}

/// A Nimbus on a manual clock with topology "wc" (one worker on sup-a) that has run for four
/// hours: reports every minute, then every 2 s for the last 10 minutes, and a worker restart
/// at [`RESTART`]. The last report carries capacity 0.4 and an error 65 s old.
async fn four_hours_of_wc() -> (TestNimbus, Assignment, Arc<AtomicU64>) {
    let now = Arc::new(AtomicU64::new(T0));
    let n = TestNimbus::start_with_clock(|_| {}, nimbus::Clock::manual(now.clone())).await;
    n.client
        .supervisor_heartbeat(&supervisor("sup-a", &[6700]))
        .await
        .unwrap();
    n.submit("wc", spec(1)).await;
    let a = n.client.assignment("wc").await.unwrap();
    let times = (0..=END - 600)
        .step_by(60)
        .chain((END - 598..=END).step_by(2));
    for t in times {
        now.store(T0 + t * 1000, Ordering::SeqCst);
        let counting = if t < RESTART { t } else { t - RESTART };
        let mut tasks = reports(&a, counting, if t == END { 0.4 } else { 0.25 });
        if t == END {
            let count = tasks.iter_mut().find(|m| m.component == "count").unwrap();
            count.errors.push(TaskError {
                time_secs: T0 / 1000 + END - 65,
                error: "bad word: \"\"".into(),
            });
        }
        n.client.worker_heartbeat(&beat(&a, tasks)).await.unwrap();
    }
    (n, a, now)
}

/// GET `path` with the secret; the status and the JSON body.
async fn get_json(n: &TestNimbus, path: &str) -> (u16, Value) {
    let r = reqwest::Client::new()
        .get(format!("{}{path}", n.url))
        .header("x-tempest-secret", SECRET)
        .send()
        .await
        .unwrap();
    let status = r.status().as_u16();
    (status, r.json().await.unwrap_or(Value::Null))
}

/// Per spout task: 10/s until the last report before the restart (7140 s), then 10/s for
/// the 7230 s after it.
const SPOUT_TASK_ALL_TIME: u64 = 10 * 7_140 + 10 * (END - RESTART);

#[tokio::test]
async fn windows_count_what_happened_in_them_across_a_worker_restart() {
    let (n, _a, _now) = four_hours_of_wc().await;
    let (status, t) = get_json(&n, "/api/v1/topology/wc?window=600").await;
    assert_eq!(status, 200, "{t}");
    assert_eq!(t["window"], "600");
    assert_eq!(t["windowHint"], "10m 0s");
    assert_eq!(t["msgTimeout"], 30);
    assert_eq!(t["status"], "ACTIVE");
    assert!(t["uptime"].as_str().unwrap().ends_with('s'));

    // Topology totals per window: spouts and bolts emit alike (2 x 10/s = 4 x 5/s).
    let stats = t["topologyStats"].as_array().unwrap();
    let windows: Vec<&str> = stats
        .iter()
        .map(|s| s["window"].as_str().unwrap())
        .collect();
    assert_eq!(windows, ["600", "10800", "86400", ":all-time"]);
    let pretty: Vec<&str> = stats
        .iter()
        .map(|s| s["windowPretty"].as_str().unwrap())
        .collect();
    assert_eq!(pretty, ["10m 0s", "3h 0m 0s", "1d 0h 0m 0s", "All time"]);
    let spout_task = |w: &str| match w {
        "600" => 6_000,
        "10800" => SPOUT_TASK_ALL_TIME - 36_000,
        _ => SPOUT_TASK_ALL_TIME,
    };
    for s in stats {
        let per_task = spout_task(s["window"].as_str().unwrap());
        assert_eq!(s["emitted"], 2 * 2 * per_task, "{s}");
        assert_eq!(s["transferred"], 2 * 2 * per_task, "{s}");
        assert_eq!(s["acked"], 2 * per_task, "spout trees only: {s}");
        assert_eq!(s["failed"], 0);
        assert_eq!(s["completeLatency"], "2.000");
    }

    // The components in the asked window.
    let spouts = t["spouts"].as_array().unwrap();
    assert_eq!(spouts.len(), 1);
    let s = &spouts[0];
    assert_eq!(s["spoutId"], "words");
    assert_eq!(
        (s["executors"].as_u64(), s["tasks"].as_u64()),
        (Some(2), Some(2))
    );
    assert_eq!(s["emitted"], 12_000);
    assert_eq!(s["acked"], 12_000);
    assert_eq!(s["completeLatency"], "2.000");
    assert_eq!(s["lastError"], "");
    assert_eq!(s["errorPort"], Value::Null);
    let bolts = t["bolts"].as_array().unwrap();
    assert_eq!(bolts.len(), 1, "no acker without sys=1");
    let b = &bolts[0];
    assert_eq!(b["boltId"], "count");
    assert_eq!(
        (b["executors"].as_u64(), b["tasks"].as_u64()),
        (Some(3), Some(4))
    );
    assert_eq!(b["executed"], 4 * 3_000);
    assert_eq!(b["executeLatency"], "0.500");
    assert_eq!(b["processLatency"], "0.700");
    assert_eq!(b["capacity"], "0.400", "the latest capacity");
    assert_eq!(b["lastError"], "bad word: \"\"");
    assert_eq!(b["errorHost"], "host-sup-a");
    assert_eq!(b["errorPort"], 6700);
    assert_eq!(b["errorTime"], T0 / 1000 + END - 65);
    assert_eq!(b["errorLapsedSecs"], 65);
    assert_eq!(
        b["errorWorkerLogLink"],
        "/log.html?topology=wc&host=host-sup-a&port=6700"
    );

    // Other windows, through the client.
    for (window, per_task) in [
        (Window::ThreeHours, SPOUT_TASK_ALL_TIME - 36_000),
        (Window::OneDay, SPOUT_TASK_ALL_TIME),
        (Window::AllTime, SPOUT_TASK_ALL_TIME),
    ] {
        let d = n.client.describe_window("wc", window, false).await.unwrap();
        assert_eq!(d.view.spouts[0].emitted, 2 * per_task, "{window}");
        assert_eq!(d.view.bolts[0].executed, 2 * per_task, "{window}");
    }
    let with_sys = n
        .client
        .describe_window("wc", Window::AllTime, true)
        .await
        .unwrap();
    let ids: Vec<&str> = with_sys
        .view
        .bolts
        .iter()
        .map(|b| b.bolt_id.as_str())
        .collect();
    assert_eq!(ids, ["count", "__acker"]);
    // The default window is all time; the raw reports are still there for the CLI.
    let d = n.client.describe("wc").await.unwrap();
    assert_eq!(d.view.window, ":all-time");
    assert_eq!(d.tasks.len(), 6, "the acker reports nothing here");
    assert_eq!(d.tasks[0].metrics.component, "count");
    assert_eq!(
        d.tasks[0].metrics.executed,
        5 * (END - RESTART),
        "as reported"
    );

    // Workers and the graph.
    let w = &t["workers"][0];
    assert_eq!(w["host"], "host-sup-a");
    assert_eq!(w["port"], 6700);
    assert_eq!(w["supervisorId"], "sup-a");
    assert_eq!(w["executorsTotal"], 6);
    assert_eq!(w["componentNumTasks"]["count"], 4);
    assert_eq!(
        w["logLink"],
        "/log.html?topology=wc&host=host-sup-a&port=6700"
    );
    assert!(w["lastHeartbeatSecs"].as_u64().unwrap() < 10);
    let g = &t["graph"];
    let nodes = g["nodes"].as_array().unwrap();
    assert_eq!(nodes.len(), 2);
    assert_eq!(nodes[0]["id"], "words");
    assert_eq!(nodes[0]["type"], "spout");
    assert_eq!(nodes[0]["emittedPerSecond"], 20.0);
    assert_eq!(nodes[1]["type"], "bolt");
    assert_eq!(nodes[1]["capacity"], 0.4);
    assert_eq!(nodes[1]["executedPerSecond"], 20.0);
    let edges = g["edges"].as_array().unwrap();
    assert_eq!(edges.len(), 1);
    assert_eq!(edges[0]["from"], "words");
    assert_eq!(edges[0]["to"], "count");
    assert_eq!(edges[0]["stream"], "default");
    assert_eq!(edges[0]["grouping"], "fields(word)");
    assert_eq!(edges[0]["tuplesPerSecond"], 20.0);
}

#[tokio::test]
async fn the_component_page_has_windows_tasks_workers_and_errors() {
    let (n, a, _now) = four_hours_of_wc().await;
    let (status, c) = get_json(&n, "/api/v1/topology/wc/component/count?window=600").await;
    assert_eq!(status, 200, "{c}");
    assert_eq!(c["id"], "count");
    assert_eq!(c["name"], "wc");
    assert_eq!(c["topologyId"], "wc");
    assert_eq!(c["topologyStatus"], "ACTIVE");
    assert_eq!(c["componentType"], "bolt");
    assert_eq!(
        (c["executors"].as_u64(), c["tasks"].as_u64()),
        (Some(3), Some(4))
    );
    assert_eq!(c["windowHint"], "10m 0s");
    assert!(c.get("spoutSummary").is_none());
    let stats = c["boltStats"].as_array().unwrap();
    assert_eq!(stats.len(), 4);
    assert_eq!(stats[0]["executed"], 12_000);
    assert_eq!(stats[3]["executed"], 4 * SPOUT_TASK_ALL_TIME / 2);
    assert_eq!(stats[0]["capacity"], "0.400");

    let tasks = c["executorStats"].as_array().unwrap();
    let layout = TaskLayout::of(&a.spec);
    let ids: Vec<u64> = tasks
        .iter()
        .map(|t| t["taskId"].as_u64().unwrap())
        .collect();
    let expected: Vec<u64> = layout.tasks("count").map(u64::from).collect();
    assert_eq!(ids, expected);
    let first = &tasks[0];
    assert_eq!(first["id"], format!("[{}-{}]", ids[0], ids[0]));
    assert!(first["executorId"].as_str().unwrap().starts_with('['));
    assert_eq!(first["host"], "host-sup-a");
    assert_eq!(first["port"], 6700);
    assert_eq!(first["supervisorId"], "sup-a");
    assert_eq!(first["executed"], 3_000);
    assert_eq!(first["executeLatency"], "0.500");
    assert_eq!(
        first["logLink"],
        "/log.html?topology=wc&host=host-sup-a&port=6700"
    );

    let workers = c["workerStats"].as_array().unwrap();
    assert_eq!(workers.len(), 1);
    assert_eq!(workers[0]["tasks"], 4);
    assert_eq!(workers[0]["executors"], 3);
    assert_eq!(workers[0]["executed"], 12_000);

    let errors = c["componentErrors"].as_array().unwrap();
    assert_eq!(errors.len(), 1);
    assert_eq!(errors[0]["error"], "bad word: \"\"");
    assert_eq!(errors[0]["errorTime"], T0 / 1000 + END - 65);
    assert_eq!(errors[0]["time"], errors[0]["errorTime"]);
    assert_eq!(errors[0]["errorHost"], "host-sup-a");
    assert_eq!(errors[0]["errorPort"], 6700);
    assert_eq!(errors[0]["errorLapsedSecs"], 65);

    let spout = n
        .client
        .component("wc", "words", Window::AllTime)
        .await
        .unwrap();
    assert_eq!(spout.component_type, "spout");
    let summary = spout.spout_summary.unwrap();
    assert_eq!(summary[3].emitted, 2 * SPOUT_TASK_ALL_TIME);
    assert_eq!(summary[0].emitted, 12_000);
    assert!(spout.bolt_stats.is_none());
    assert!(spout.component_errors.is_empty());
    let acker = n
        .client
        .component("wc", "__acker", Window::AllTime)
        .await
        .unwrap();
    assert_eq!(acker.component_type, "bolt");
}

#[tokio::test]
async fn unknown_names_are_404_and_bad_parameters_400_with_a_message() {
    let n = TestNimbus::start(|_| {}).await;
    n.client
        .supervisor_heartbeat(&supervisor("sup-a", &[6700]))
        .await
        .unwrap();
    n.submit("wc", spec(1)).await;
    for path in [
        "/api/v1/topology/nope",
        "/api/v1/topology/nope/component/count",
        "/api/v1/topology/nope/worker-log/host-sup-a/6700",
        "/api/v1/topology/nope/assignment",
    ] {
        let (status, body) = get_json(&n, path).await;
        assert_eq!(status, 404, "{path}: {body}");
        assert!(
            body["error"].as_str().unwrap().contains("\"nope\""),
            "{body}"
        );
    }
    let (status, body) = get_json(&n, "/api/v1/topology/wc/component/nope").await;
    assert_eq!(status, 404);
    let e = body["error"].as_str().unwrap();
    assert!(
        e.contains("no component \"nope\"") && e.contains("\"count\""),
        "{e}"
    );
    for action in ["activate", "deactivate", "kill/0", "rebalance/0"] {
        let (status, _) = refused_post(&n, &format!("/api/v1/topology/nope/{action}"), "").await;
        assert_eq!(status, 404, "{action}");
    }

    // Storm answers any window and any sys value: a window that is not a number of seconds
    // is the empty one, a sys other than "true" is false.
    for path in [
        "/api/v1/topology/wc/component/count?window=all-time",
        "/api/v1/topology/wc?sys=yes",
    ] {
        let (status, body) = get_json(&n, path).await;
        assert_eq!(status, 200, "{path}: {body}");
    }
    let (_, body) = get_json(&n, "/api/v1/topology/wc?sys=1").await;
    assert_eq!(body["bolts"].as_array().unwrap().len(), 1, "sys=1 is false");
    let (status, body) = get_json(&n, "/api/v1/supervisor?id=nope").await;
    assert_eq!(status, 404);
    assert!(body["errorMessage"].as_str().unwrap().contains("\"nope\""));
    let (status, body) = get_json(&n, "/api/v1/supervisor").await;
    assert_eq!(status, 400);
    assert!(body["errorMessage"].as_str().unwrap().contains("?id="));
    let (status, body) = get_json(&n, "/api/v1/topology/wc/worker-log/host-sup-a/x").await;
    assert_eq!(status, 400);
    assert!(body["error"].as_str().unwrap().contains("\"x\""));

    for (body, culprit) in [
        (r#"{"parallelism": {"nope": 2}}"#, "nope"),
        (r#"{"parallelism": {"count": 99}}"#, "99"),
        (r#"{"workers": 0}"#, "workers"),
        (
            r#"{"rebalanceOptions": {"numWorkers": "many"}}"#,
            "numWorkers",
        ),
        ("{", "not a valid rebalance request"),
    ] {
        let (status, e) = refused_post(&n, "/api/v1/topology/wc/rebalance/0", body).await;
        assert_eq!(status, 400, "{body}: {e}");
        assert!(e.contains(culprit), "{body}: {e}");
    }
    let (status, e) = refused_post(&n, "/api/v1/topology/wc/rebalance/soon", "").await;
    assert_eq!(status, 400);
    assert!(e.contains("\"soon\""), "{e}");
}

/// POSTs `body`; the status and the error message (empty on success).
async fn refused_post(n: &TestNimbus, path: &str, body: &str) -> (u16, String) {
    let r = reqwest::Client::new()
        .post(format!("{}{path}", n.url))
        .header("x-tempest-secret", SECRET)
        .body(body.to_string())
        .send()
        .await
        .unwrap();
    let status = r.status().as_u16();
    let v: Value = r.json().await.unwrap_or(Value::Null);
    (status, v["error"].as_str().unwrap_or_default().to_string())
}

#[tokio::test]
async fn every_endpoint_needs_the_secret_in_either_header() {
    let n = TestNimbus::start(|_| {}).await;
    n.client
        .supervisor_heartbeat(&supervisor("sup-a", &[6700]))
        .await
        .unwrap();
    n.submit("wc", spec(1)).await;
    let http = reqwest::Client::new();
    let gets = [
        "/api/v1/cluster/summary",
        "/api/v1/supervisor/summary",
        "/api/v1/topology/summary",
        "/api/v1/topology/wc",
        "/api/v1/topology/wc?window=600",
        "/api/v1/topology/wc/component/count",
        "/api/v1/topology/wc/worker-log/host-sup-a/6700",
        "/api/v1/topology/wc/assignment",
        "/metrics",
    ];
    let posts = [
        "/api/v1/topology/wc/activate",
        "/api/v1/topology/wc/deactivate",
        "/api/v1/topology/wc/rebalance/0",
        "/api/v1/topology/wc/kill/0",
    ];
    let requests = gets
        .iter()
        .map(|p| http.get(format!("{}{p}", n.url)))
        .chain(posts.iter().map(|p| http.post(format!("{}{p}", n.url))));
    for rb in requests {
        let rb = rb.build().unwrap();
        let path = rb.url().path().to_string();
        for auth in [
            None,
            Some(("x-tempest-secret", "wrong")),
            Some(("authorization", "Bearer wrong")),
        ] {
            let mut req = rb.try_clone().unwrap();
            if let Some((k, v)) = auth {
                req.headers_mut().insert(k, v.parse().unwrap());
            }
            let r = http.execute(req).await.unwrap();
            assert_eq!(r.status().as_u16(), 401, "{path} with {auth:?}");
            let v: Value = r.json().await.unwrap();
            let expected = if auth.is_none() {
                "no credential: "
            } else {
                "unknown credential: "
            };
            let message = v["error"].as_str().unwrap_or_default();
            assert!(message.starts_with(expected), "{path}: {v}");
            assert_eq!(v["errorMessage"], v["error"]);
        }
    }
    // A CORS preflight carries no credentials: it is answered, with no data.
    let r = http
        .request(
            reqwest::Method::OPTIONS,
            format!("{}/api/v1/topology/wc", n.url),
        )
        .header("origin", "http://elsewhere.example")
        .header("access-control-request-method", "GET")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 200);
    assert_eq!(r.headers()["access-control-allow-origin"], "*");
    assert!(r.headers()["access-control-allow-headers"]
        .to_str()
        .unwrap()
        .contains("Authorization"));
    assert!(r.text().await.unwrap().is_empty());
    // With the secret as a bearer token, the GETs answer (the proxy has no log server: 404).
    for p in gets {
        let r = http
            .get(format!("{}{p}", n.url))
            .bearer_auth(SECRET)
            .send()
            .await
            .unwrap();
        let expected = if p.contains("worker-log") { 404 } else { 200 };
        assert_eq!(r.status().as_u16(), expected, "{p}");
    }
}

#[tokio::test]
async fn summaries_and_actions_carry_storm_fields() {
    let n = TestNimbus::start(|_| {}).await;
    n.client
        .supervisor_heartbeat(&supervisor("sup-a", &[6700, 6701]))
        .await
        .unwrap();
    n.submit("wc", spec(1)).await;
    let (_, c) = get_json(&n, "/api/v1/cluster/summary").await;
    assert_eq!(c["supervisors"], 1);
    assert_eq!(
        (c["slotsTotal"].as_u64(), c["slotsUsed"].as_u64()),
        (Some(2), Some(1))
    );
    assert_eq!(c["slotsFree"], 1);
    assert_eq!(c["topologies"], 1);
    assert_eq!(c["executorsTotal"], 6);
    assert_eq!(c["tasksTotal"], 7);
    assert!(c["nimbusUptime"].as_str().unwrap().ends_with('s'));
    assert!(c["tempestVersion"].as_str().is_some());
    let (_, s) = get_json(&n, "/api/v1/supervisor/summary").await;
    let s = &s["supervisors"][0];
    assert_eq!(s["id"], "sup-a");
    assert!(s["uptime"].as_str().unwrap().ends_with('s'));
    assert_eq!(s["slotsUsed"], 1);
    let (_, t) = get_json(&n, "/api/v1/topology/summary").await;
    let t = &t["topologies"][0];
    assert_eq!(t["id"], "wc");
    assert_eq!(t["status"], "ACTIVE");
    assert!(t["uptime"].as_str().unwrap().ends_with('s'));
    assert_eq!(t["tasksTotal"], 7);

    let r = reqwest::Client::new()
        .post(format!("{}/api/v1/topology/wc/deactivate", n.url))
        .header("x-tempest-secret", SECRET)
        .send()
        .await
        .unwrap();
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["topologyOperation"], "deactivate");
    assert_eq!(v["topologyId"], "wc");
    assert_eq!(v["status"], "success");
    assert_eq!(v["state"], "INACTIVE", "our own fields stay");
    // Storm's rebalance body is understood.
    let (status, e) = refused_post(
        &n,
        "/api/v1/topology/wc/rebalance/0",
        r#"{"rebalanceOptions": {"numWorkers": 2, "executors": {"count": "4"}}}"#,
    )
    .await;
    assert_eq!(status, 200, "{e}");
    let d = n.client.describe("wc").await.unwrap();
    assert_eq!(d.summary.requested_workers, 2);
    assert_eq!(d.view.bolts[0].executors, 4);
}

#[tokio::test]
async fn after_a_nimbus_restart_earlier_counts_are_in_all_time_only() {
    let mut n = TestNimbus::start(|_| {}).await;
    let sup = supervisor("sup-a", &[6700]);
    n.client.supervisor_heartbeat(&sup).await.unwrap();
    n.submit("wc", spec(1)).await;
    let a = n.client.assignment("wc").await.unwrap();
    // A fresh assignment: everything its workers report happened in the window.
    n.client
        .worker_heartbeat(&beat(&a, reports(&a, 100, 0.1)))
        .await
        .unwrap();
    let d = n
        .client
        .describe_window("wc", Window::TenMinutes, false)
        .await
        .unwrap();
    assert_eq!(d.view.spouts[0].emitted, 2 * 1_000);

    // Nimbus restarts; the workers run on and report their cumulative counts.
    n.restart(|_| {}).await;
    n.client.supervisor_heartbeat(&sup).await.unwrap();
    for secs in [150, 160] {
        n.client
            .worker_heartbeat(&beat(&a, reports(&a, secs, 0.1)))
            .await
            .unwrap();
    }
    let d = n
        .client
        .describe_window("wc", Window::TenMinutes, false)
        .await
        .unwrap();
    assert_eq!(
        d.view.spouts[0].emitted,
        2 * 100,
        "only what happened since it heard"
    );
    let d = n
        .client
        .describe_window("wc", Window::AllTime, false)
        .await
        .unwrap();
    assert_eq!(d.view.spouts[0].emitted, 2 * 1_600);
}

/// The JSON type names a field check uses.
fn type_of(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "bool",
        Value::Number(n) if n.is_u64() || n.is_i64() => "int",
        Value::Number(_) => "double",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

/// Asserts that `v` has every field of `fields` with its type, as Storm 2.8.8's UIHelpers
/// writes it ("number": an int or a double, since Jackson writes 0.0 as a double and a
/// count as an int; "int|null" for Storm's nullable ints).
fn storm_fields(what: &str, v: &Value, fields: &[(&str, &str)]) {
    for (name, ty) in fields {
        let got = type_of(&v[*name]);
        let ok = ty
            .split('|')
            .any(|t| t == got || (t == "number" && (got == "int" || got == "double")));
        assert!(
            ok && v.get(*name).is_some(),
            "{what}.{name}: {ty} expected, got {got} in {v}"
        );
    }
}

#[tokio::test]
async fn every_endpoint_has_storms_fields_and_types() {
    let (n, a, _) = four_hours_of_wc().await;
    let (status, c) = get_json(&n, "/api/v1/cluster/summary").await;
    assert_eq!(status, 200);
    storm_fields(
        "cluster",
        &c,
        &[
            ("stormVersion", "string"),
            ("supervisors", "int"),
            ("topologies", "int"),
            ("slotsTotal", "int"),
            ("slotsUsed", "int"),
            ("slotsFree", "int"),
            ("executorsTotal", "int"),
            ("tasksTotal", "int"),
            ("schedulerDisplayResource", "bool"),
            ("totalMem", "number"),
            ("totalCpu", "number"),
            ("availMem", "number"),
            ("availCpu", "number"),
            ("fragmentedMem", "number"),
            ("fragmentedCpu", "number"),
            ("memAssignedPercentUtil", "string"),
            ("cpuAssignedPercentUtil", "string"),
        ],
    );
    let version = c["stormVersion"].as_str().unwrap();
    let parts: Vec<u32> = version.split('.').map(|p| p.parse().unwrap()).collect();
    assert_eq!(parts.len(), 3, "{version} is X.Y.Z");
    assert!(parts[0] >= 2, "{version}: a 2.x API");

    let (_, conf) = get_json(&n, "/api/v1/cluster/configuration").await;
    storm_fields(
        "configuration",
        &conf,
        &[
            ("topology.message.timeout.secs", "int"),
            ("nimbus.seeds", "array"),
            ("ui.pagination", "int"),
            ("topology.eventlogger.executors", "int"),
        ],
    );

    let (_, nb) = get_json(&n, "/api/v1/nimbus/summary").await;
    let list = nb["nimbuses"].as_array().unwrap();
    assert_eq!(list.len(), 1);
    storm_fields(
        "nimbus",
        &list[0],
        &[
            ("host", "string"),
            ("port", "int"),
            ("status", "string"),
            ("version", "string"),
            ("nimbusUpTime", "string"),
            ("nimbusUpTimeSeconds", "int"),
            ("nimbusLogLink", "string"),
        ],
    );
    assert_eq!(list[0]["status"], "Leader");
    assert_eq!(
        list[0]["port"],
        n.url.rsplit(':').next().unwrap().parse::<u16>().unwrap()
    );

    let supervisor_fields = [
        ("id", "string"),
        ("host", "string"),
        ("uptime", "string"),
        ("uptimeSeconds", "int"),
        ("slotsTotal", "int"),
        ("slotsUsed", "int"),
        ("slotsFree", "int"),
        ("totalMem", "number"),
        ("totalCpu", "number"),
        ("usedMem", "number"),
        ("usedCpu", "number"),
        ("availMem", "number"),
        ("availCpu", "number"),
        ("version", "string"),
    ];
    let (_, s) = get_json(&n, "/api/v1/supervisor/summary").await;
    storm_fields(
        "supervisor/summary",
        &s,
        &[("schedulerDisplayResource", "bool")],
    );
    storm_fields("supervisor", &s["supervisors"][0], &supervisor_fields);
    assert_eq!(s["supervisors"][0]["slotsFree"], 0);

    let worker_fields = [
        ("topologyId", "string"),
        ("topologyName", "string"),
        ("host", "string"),
        ("port", "int"),
        ("supervisorId", "string"),
        ("uptime", "string"),
        ("uptimeSeconds", "int"),
        ("executorsTotal", "int"),
        ("componentNumTasks", "object"),
        ("workerLogLink", "string"),
        ("assignedMemOnHeap", "number"),
        ("assignedMemOffHeap", "number"),
        ("assignedCpu", "number"),
        ("owner", "string"),
    ];
    for query in ["id=sup-a", "host=host-sup-a"] {
        let (status, one) = get_json(&n, &format!("/api/v1/supervisor?{query}")).await;
        assert_eq!(status, 200, "{query}: {one}");
        storm_fields("supervisor?", &one["supervisors"][0], &supervisor_fields);
        let workers = one["workers"].as_array().unwrap();
        assert_eq!(workers.len(), 1, "{one}");
        storm_fields("supervisor?.workers", &workers[0], &worker_fields);
    }

    let (_, t) = get_json(&n, "/api/v1/topology/summary").await;
    storm_fields(
        "topology/summary",
        &t["topologies"][0],
        &[
            ("id", "string"),
            ("encodedId", "string"),
            ("name", "string"),
            ("status", "string"),
            ("uptime", "string"),
            ("uptimeSeconds", "int"),
            ("tasksTotal", "int"),
            ("workersTotal", "int"),
            ("executorsTotal", "int"),
            ("replicationCount", "int"),
            ("schedulerInfo", "string"),
            ("owner", "string"),
            ("requestedMemOnHeap", "number"),
            ("requestedMemOffHeap", "number"),
            ("requestedTotalMem", "number"),
            ("requestedCpu", "number"),
            ("assignedMemOnHeap", "number"),
            ("assignedMemOffHeap", "number"),
            ("assignedTotalMem", "number"),
            ("assignedCpu", "number"),
            ("stormVersion", "string"),
        ],
    );

    // The topology page and its 2.x twin `/metrics`, in a window of 60 s (not one of Storm's
    // four: answered from the history).
    for path in [
        "/api/v1/topology/wc?window=60",
        "/api/v1/topology/wc/metrics?window=60",
    ] {
        let (status, d) = get_json(&n, path).await;
        assert_eq!(status, 200, "{path}");
        storm_fields(
            path,
            &d,
            &[
                ("id", "string"),
                ("encodedId", "string"),
                ("name", "string"),
                ("status", "string"),
                ("uptime", "string"),
                ("uptimeSeconds", "int"),
                ("tasksTotal", "int"),
                ("workersTotal", "int"),
                ("executorsTotal", "int"),
                ("msgTimeout", "int"),
                ("windowHint", "string"),
                ("window", "string"),
                ("debug", "bool"),
                ("samplingPct", "number"),
                ("configuration", "object"),
                ("topologyStats", "array"),
                ("spouts", "array"),
                ("bolts", "array"),
                ("workers", "array"),
                ("visualizationTable", "array"),
                ("schedulerDisplayResource", "bool"),
                ("owner", "string"),
            ],
        );
        assert_eq!(d["window"], "60");
        assert_eq!(d["windowHint"], "1m 0s");
        assert_eq!(
            d["spouts"][0]["emitted"],
            2 * 10 * 60,
            "two spout tasks at 10/s"
        );
        assert_eq!(d["configuration"]["topology.message.timeout.secs"], 30);
        assert_eq!(d["configuration"]["storm.id"], "wc");
        storm_fields(
            "topologyStats",
            &d["topologyStats"][0],
            &[
                ("window", "string"),
                ("windowPretty", "string"),
                ("emitted", "int"),
                ("transferred", "int"),
                ("completeLatency", "string"),
                ("acked", "int"),
                ("failed", "int"),
            ],
        );
        storm_fields(
            "spouts",
            &d["spouts"][0],
            &[
                ("spoutId", "string"),
                ("encodedSpoutId", "string"),
                ("executors", "int"),
                ("tasks", "int"),
                ("emitted", "int"),
                ("transferred", "int"),
                ("completeLatency", "string"),
                ("acked", "int"),
                ("failed", "int"),
                ("lastError", "string"),
                ("errorHost", "string"),
                ("errorPort", "int|null"),
                ("errorWorkerLogLink", "string"),
            ],
        );
        storm_fields(
            "bolts",
            &d["bolts"][0],
            &[
                ("boltId", "string"),
                ("encodedBoltId", "string"),
                ("executors", "int"),
                ("tasks", "int"),
                ("emitted", "int"),
                ("transferred", "int"),
                ("capacity", "string"),
                ("executeLatency", "string"),
                ("executed", "int"),
                ("processLatency", "string"),
                ("acked", "int"),
                ("failed", "int"),
                ("lastError", "string"),
                ("errorPort", "int|null"),
                ("errorLapsedSecs", "int|null"),
            ],
        );
        storm_fields("workers", &d["workers"][0], &worker_fields);
        // The worker restarted at RESTART; its next report (every 60 s then) starts its uptime.
        let restarted_at = RESTART.div_ceil(60) * 60;
        assert_eq!(d["workers"][0]["uptimeSeconds"], END - restarted_at);
    }

    let (_, p) = get_json(&n, "/api/v1/topology/wc/component/words?window=600").await;
    storm_fields(
        "component",
        &p,
        &[
            ("id", "string"),
            ("encodedId", "string"),
            ("name", "string"),
            ("topologyId", "string"),
            ("encodedTopologyId", "string"),
            ("componentType", "string"),
            ("executors", "int"),
            ("tasks", "int"),
            ("window", "string"),
            ("windowHint", "string"),
            ("debug", "bool"),
            ("samplingPct", "number"),
            ("eventLogLink", "string"),
            ("profilingAndDebuggingCapable", "bool"),
            ("profileActionEnabled", "bool"),
            ("profilerActive", "array"),
            ("spoutSummary", "array"),
            ("executorStats", "array"),
            ("componentErrors", "array"),
        ],
    );
    storm_fields(
        "spoutSummary",
        &p["spoutSummary"][0],
        &[
            ("window", "string"),
            ("windowPretty", "string"),
            ("emitted", "int"),
            ("transferred", "int"),
            ("completeLatency", "number"),
            ("acked", "int"),
            ("failed", "int"),
        ],
    );
    storm_fields(
        "executorStats",
        &p["executorStats"][0],
        &[
            ("id", "string"),
            ("encodedId", "string"),
            ("uptime", "string"),
            ("uptimeSeconds", "int"),
            ("host", "string"),
            ("port", "int"),
            ("emitted", "int"),
            ("transferred", "int"),
            ("completeLatency", "string"),
            ("acked", "int"),
            ("failed", "int"),
            ("workerLogLink", "string"),
        ],
    );
    let (_, p) = get_json(&n, "/api/v1/topology/wc/component/count").await;
    storm_fields(
        "componentErrors",
        &p["componentErrors"][0],
        &[
            ("errorTime", "int"),
            ("errorHost", "string"),
            ("errorPort", "int"),
            ("error", "string"),
            ("errorLapsedSecs", "int"),
            ("errorWorkerLogLink", "string"),
        ],
    );
    storm_fields(
        "boltStats",
        &p["boltStats"][0],
        &[
            ("window", "string"),
            ("windowPretty", "string"),
            ("emitted", "int"),
            ("transferred", "int"),
            ("executed", "int"),
            ("executeLatency", "string"),
            ("processLatency", "string"),
            ("capacity", "string"),
            ("acked", "int"),
            ("failed", "int"),
        ],
    );

    let (_, w) = get_json(&n, "/api/v1/topology-workers/wc").await;
    storm_fields(
        "topology-workers",
        &w,
        &[("hostPortList", "array"), ("logviewerScheme", "string")],
    );
    assert_eq!(w["hostPortList"][0]["host"], a.workers[0].host.as_str());
    assert_eq!(w["hostPortList"][0]["port"], a.workers[0].port);

    let (_, v) = get_json(&n, "/api/v1/topology/wc/visualization").await;
    let count = &v["count"];
    storm_fields(
        "visualization",
        count,
        &[
            (":type", "string"),
            (":capacity", "number"),
            (":latency", "number"),
            (":transferred", "int"),
            (":stats", "array"),
            (":link", "string"),
            (":inputs", "array"),
        ],
    );
    storm_fields(
        ":inputs",
        &count[":inputs"][0],
        &[
            (":component", "string"),
            (":stream", "string"),
            (":sani-stream", "string"),
            (":grouping", "string"),
        ],
    );
    assert_eq!(count[":inputs"][0][":component"], "words");
    assert_eq!(count[":link"], "/component.html?id=count&topology_id=wc");
    let (_, vi) = get_json(&n, "/api/v1/topology/wc/visualization-init").await;
    storm_fields(
        "visualization-init",
        &vi["visualizationTable"][0][0],
        &[
            ("stream", "string"),
            ("sani-stream", "string"),
            ("checked", "bool"),
        ],
    );
    let (_, h) = get_json(&n, "/api/v1/history/summary").await;
    assert_eq!(h["topo-history"], serde_json::json!(["wc"]));

    // Debug sampling and JVM profiling: Storm's error shape, saying why.
    for path in [
        "/api/v1/topology/wc/debug/enable/10",
        "/api/v1/topology/wc/component/count/debug/disable/10",
        "/api/v1/topology/wc/profiling/restartworker/host-sup-a:6700",
        "/api/v1/topology/wc/profiling/start/host-sup-a:6700/10",
    ] {
        let r = reqwest::Client::new()
            .post(format!("{}{path}", n.url))
            .header("x-tempest-secret", SECRET)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status().as_u16(), 400, "{path}");
        let e: Value = r.json().await.unwrap();
        assert!(
            e["errorMessage"]
                .as_str()
                .unwrap()
                .contains("not supported"),
            "{e}"
        );
    }
}

#[tokio::test]
async fn jsonp_cors_and_cache_headers_are_storms() {
    let n = TestNimbus::start(|_| {}).await;
    let http = reqwest::Client::new();
    let r = http
        .get(format!(
            "{}/api/v1/cluster/summary?callback=jQuery.cb_1",
            n.url
        ))
        .header("x-tempest-secret", SECRET)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 200);
    assert_eq!(r.headers()["content-type"], "application/javascript");
    assert_eq!(r.headers()["access-control-allow-origin"], "*");
    assert_eq!(r.headers()["cache-control"], "no-cache, no-store");
    let text = r.text().await.unwrap();
    let json = text
        .strip_prefix("jQuery.cb_1(")
        .and_then(|t| t.strip_suffix(");"))
        .unwrap_or_else(|| panic!("not JSONP: {text}"));
    let v: Value = serde_json::from_str(json).unwrap();
    assert!(v["stormVersion"].is_string());
    // Errors are wrapped too; a bad callback name is refused.
    let r = http
        .get(format!("{}/api/v1/topology/nope?callback=cb", n.url))
        .header("x-tempest-secret", SECRET)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 404);
    assert!(r.text().await.unwrap().starts_with("cb({\"error\""));
    let r = http
        .get(format!(
            "{}/api/v1/cluster/summary?callback=alert(1)",
            n.url
        ))
        .header("x-tempest-secret", SECRET)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 400);
    let e: Value = r.json().await.unwrap();
    assert!(
        e["errorMessage"].as_str().unwrap().contains("alert(1)"),
        "{e}"
    );
}

#[tokio::test]
async fn the_read_only_listener_serves_gets_without_the_secret_and_refuses_changes() {
    let n = TestNimbus::start(|c| c.ui_listen = Some("127.0.0.1:0".parse().unwrap())).await;
    n.client
        .supervisor_heartbeat(&supervisor("sup-a", &[6700]))
        .await
        .unwrap();
    n.submit("wc", spec(1)).await;
    let ui = format!("http://{}", n.handle.as_ref().unwrap().ui_addr().unwrap());
    let http = reqwest::Client::new();
    for path in [
        "/api/v1/cluster/summary",
        "/api/v1/cluster/configuration",
        "/api/v1/nimbus/summary",
        "/api/v1/topology/summary",
        "/api/v1/topology/wc?window=60",
        "/api/v1/topology/wc/component/count",
        "/metrics",
        "/index.html",
    ] {
        let r = http.get(format!("{ui}{path}")).send().await.unwrap();
        assert_eq!(r.status().as_u16(), 200, "{path} without the secret");
    }
    for path in [
        "/api/v1/topology/wc/kill/0",
        "/api/v1/topology/wc/deactivate",
        "/api/v1/topology/wc/rebalance/0",
        "/api/v1/topologies",
    ] {
        let r = http
            .post(format!("{ui}{path}"))
            .header("x-tempest-secret", SECRET)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status().as_u16(), 405, "{path}");
        let e: Value = r.json().await.unwrap();
        assert!(
            e["errorMessage"].as_str().unwrap().contains("read-only"),
            "{e}"
        );
    }
    // The control routes are not there at all, and the topology still runs.
    let r = http
        .get(format!("{ui}/api/v1/topology/wc/assignment"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 404);
    assert_eq!(
        n.client.describe("wc").await.unwrap().summary.status,
        tempest_protocol::control::TopologyState::Active
    );
    // The main listener still needs the secret.
    let r = http
        .get(format!("{}/api/v1/cluster/summary", n.url))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 401);
}
