//! `GET /metrics` is Prometheus text whose values are what the workers sent: per-task counters
//! (monotonic across a worker restart), latency and capacity gauges, cluster gauges.

mod common;

use common::*;
use prometheus_parse::{Scrape, Value};
use tempest_protocol::control::{TaskMetrics, WorkerHeartbeat};
use tempest_protocol::spec::TaskLayout;

/// Every line is a comment (`# HELP`, `# TYPE`, `# UNIT`, `# EOF`) or a sample
/// `name{labels} value`; the exposition ends with `# EOF`.
fn assert_exposition_format(text: &str) {
    assert!(text.ends_with("# EOF\n"), "{text}");
    for line in text.lines() {
        if let Some(comment) = line.strip_prefix("# ") {
            let word = comment.split(' ').next().unwrap_or_default();
            assert!(["HELP", "TYPE", "UNIT", "EOF"].contains(&word), "{line}");
            continue;
        }
        let (series, value) = line.rsplit_once(' ').expect("a sample has a value");
        assert!(value.parse::<f64>().is_ok(), "{line}");
        let name = series.split('{').next().unwrap();
        assert!(
            name.starts_with("tempest_")
                && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_'),
            "{line}"
        );
        if let Some(labels) = series.strip_prefix(name) {
            assert!(
                labels.is_empty() || (labels.starts_with('{') && labels.ends_with('}')),
                "{line}"
            );
        }
    }
}

fn value(scrape: &Scrape, metric: &str, labels: &[(&str, &str)]) -> f64 {
    let s = scrape
        .samples
        .iter()
        .find(|s| s.metric == metric && labels.iter().all(|(k, v)| s.labels.get(k) == Some(*v)))
        .unwrap_or_else(|| panic!("no {metric} {labels:?}"));
    match s.value {
        Value::Counter(v) | Value::Gauge(v) | Value::Untyped(v) => v,
        ref other => panic!("{metric}: {other:?}"),
    }
}

#[tokio::test]
async fn metrics_are_prometheus_text_with_the_workers_values() {
    let n = TestNimbus::start(|_| {}).await;
    n.client
        .supervisor_heartbeat(&supervisor("sup-a", &[6700, 6701]))
        .await
        .unwrap();
    n.submit("wc", spec(1)).await;
    let a = n.client.assignment("wc").await.unwrap();
    let layout = TaskLayout::of(&a.spec);
    let spout_task = layout.tasks("words").start;
    let bolt_task = layout.tasks("count").start;
    let beat = |emitted: u64, capacity: f64| WorkerHeartbeat {
        rollback: false,
        topology: "wc".into(),
        host: a.workers[0].host.clone(),
        port: a.workers[0].port,
        version: a.version,
        tasks: vec![
            TaskMetrics {
                task_id: spout_task,
                component: "words".into(),
                emitted,
                acked: emitted,
                failed: 3,
                complete_latency_ms: 4.0,
                ..TaskMetrics::default()
            },
            TaskMetrics {
                task_id: bolt_task,
                component: "count".into(),
                executed: emitted,
                acked: emitted,
                execute_latency_ms: 0.25,
                process_latency_ms: 0.5,
                capacity,
                ..TaskMetrics::default()
            },
        ],
    };
    for (emitted, capacity) in [(100, 0.1), (250, 0.2), (40, 0.3)] {
        n.client
            .worker_heartbeat(&beat(emitted, capacity))
            .await
            .unwrap();
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    }

    let text = n.client.metrics_text().await.unwrap();
    assert_exposition_format(&text);
    let scrape = Scrape::parse(text.lines().map(|l| Ok(l.to_string()))).unwrap();
    let spout = [
        ("topology", "wc"),
        ("component", "words"),
        ("task", &*spout_task.to_string()),
    ];
    let bolt_id = bolt_task.to_string();
    let bolt = [
        ("topology", "wc"),
        ("component", "count"),
        ("task", &*bolt_id),
    ];
    assert_eq!(
        value(&scrape, "tempest_task_emitted_total", &spout),
        290.0,
        "250, then a restart, then 40 more"
    );
    assert_eq!(value(&scrape, "tempest_task_acked_total", &spout), 290.0);
    assert_eq!(
        value(&scrape, "tempest_task_failed_total", &spout),
        6.0,
        "3 before the restart and 3 after"
    );
    assert_eq!(value(&scrape, "tempest_task_executed_total", &bolt), 290.0);
    assert_eq!(value(&scrape, "tempest_task_capacity", &bolt), 0.3);
    assert_eq!(
        value(&scrape, "tempest_task_execute_latency_ms", &bolt),
        0.25
    );
    assert_eq!(
        value(&scrape, "tempest_task_process_latency_ms", &bolt),
        0.5
    );
    assert_eq!(
        value(&scrape, "tempest_task_complete_latency_ms", &spout),
        4.0
    );
    assert_eq!(value(&scrape, "tempest_supervisors", &[]), 1.0);
    assert_eq!(value(&scrape, "tempest_slots_total", &[]), 2.0);
    assert_eq!(value(&scrape, "tempest_slots_used", &[]), 1.0);
    assert_eq!(value(&scrape, "tempest_slots_free", &[]), 1.0);
    assert_eq!(value(&scrape, "tempest_topologies", &[]), 1.0);
    assert_eq!(
        value(&scrape, "tempest_topology_workers", &[("topology", "wc")]),
        1.0
    );
    assert_eq!(
        value(
            &scrape,
            "tempest_topology_status",
            &[("topology", "wc"), ("status", "ACTIVE")]
        ),
        1.0
    );
    assert!(
        text.contains("# TYPE tempest_task_emitted counter"),
        "{text}"
    );
    assert!(
        text.contains("# TYPE tempest_task_capacity gauge"),
        "{text}"
    );

    // A killed topology's series are gone.
    n.client.kill("wc", 0).await.unwrap();
    let text = n.client.metrics_text().await.unwrap();
    assert!(!text.contains("topology=\"wc\""), "{text}");
}
