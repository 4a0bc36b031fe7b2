//! `GET /metrics`: the cluster and every task's metrics in the Prometheus (OpenMetrics) text
//! format, written with the `prometheus-client` crate from a registry built per scrape (the
//! values live in the metrics history, not in long-lived metric objects). Metric names and
//! meanings are listed in `docs/design/rest-api.md`.

use super::history::{TaskHistory, Totals};
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;
use std::collections::BTreeMap;
use std::sync::atomic::AtomicU64;
use tempest_protocol::control::ClusterSummary;
use tempest_protocol::control::TopologyState;

/// The content type of the answer.
pub(crate) const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// One topology as `/metrics` shows it.
#[derive(Debug)]
pub struct TopologyMetrics<'a> {
    /// Its name.
    pub name: &'a str,
    /// Its state.
    pub state: TopologyState,
    /// Workers assigned.
    pub workers: u32,
    /// Its tasks' histories, if any reported.
    pub tasks: Option<&'a BTreeMap<u32, TaskHistory>>,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct TaskLabels {
    topology: String,
    component: String,
    task: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct TopologyLabels {
    topology: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct StatusLabels {
    topology: String,
    status: String,
}

type FloatGauge = Gauge<f64, AtomicU64>;

/// A family of per-task metrics, registered under `name`.
fn family<M>(registry: &mut Registry, name: &str, help: &str) -> Family<TaskLabels, M>
where
    M: prometheus_client::metrics::TypedMetric
        + prometheus_client::encoding::EncodeMetric
        + std::fmt::Debug
        + Default
        + Clone
        + Send
        + Sync
        + 'static,
{
    let f = Family::<TaskLabels, M>::default();
    registry.register(name, help, f.clone());
    f
}

/// A gauge without labels, registered under `name` with `value`.
fn plain_gauge(registry: &mut Registry, name: &str, help: &str, value: i64) {
    let g: Gauge = Gauge::default();
    g.set(value);
    registry.register(name, help, g);
}

/// The exposition of the cluster summary and the topologies, at `now_ms`.
pub fn encode(
    cluster: &ClusterSummary,
    topologies: &[TopologyMetrics<'_>],
    now_ms: u64,
) -> Result<String, String> {
    let mut registry = Registry::with_prefix("tempest");
    plain_gauge(
        &mut registry,
        "supervisors",
        "Live supervisors",
        cluster.supervisors.into(),
    );
    plain_gauge(
        &mut registry,
        "slots_total",
        "Slots offered by live supervisors",
        cluster.slots_total.into(),
    );
    plain_gauge(
        &mut registry,
        "slots_used",
        "Slots of live supervisors that assignments use",
        cluster.slots_used.into(),
    );
    plain_gauge(
        &mut registry,
        "slots_free",
        "Slots of live supervisors that no assignment uses",
        cluster.slots_free.into(),
    );
    plain_gauge(
        &mut registry,
        "topologies",
        "Live topologies",
        cluster.topologies.into(),
    );
    let workers = Family::<TopologyLabels, Gauge>::default();
    registry.register(
        "topology_workers",
        "Workers assigned to the topology",
        workers.clone(),
    );
    let status = Family::<StatusLabels, Gauge>::default();
    registry.register(
        "topology_status",
        "1 for the topology's state (PENDING, ACTIVE, INACTIVE, KILLED, REBALANCING)",
        status.clone(),
    );
    let emitted = family::<Counter>(&mut registry, "task_emitted", "Tuples emitted");
    let transferred = family::<Counter>(
        &mut registry,
        "task_transferred",
        "Tuple copies sent to consumer tasks",
    );
    let acked = family::<Counter>(
        &mut registry,
        "task_acked",
        "Acked inputs (bolts) or completed tuple trees (spouts)",
    );
    let failed = family::<Counter>(
        &mut registry,
        "task_failed",
        "Failed inputs (bolts) or failed or timed-out tuple trees (spouts)",
    );
    let executed = family::<Counter>(&mut registry, "task_executed", "Tuples executed (bolts)");
    let execute_latency = family::<FloatGauge>(
        &mut registry,
        "task_execute_latency_ms",
        "Mean execute latency over the last 30 s, ms (bolts)",
    );
    let process_latency = family::<FloatGauge>(
        &mut registry,
        "task_process_latency_ms",
        "Mean time from receiving a tuple to acking it over the last 30 s, ms (bolts)",
    );
    let complete_latency = family::<FloatGauge>(
        &mut registry,
        "task_complete_latency_ms",
        "Mean time from emit to tree completion over the last 30 s, ms (spouts)",
    );
    let capacity = family::<FloatGauge>(
        &mut registry,
        "task_capacity",
        "Fraction of the last second spent executing (bolts; near 1 means saturated)",
    );
    let held = family::<Gauge>(
        &mut registry,
        "task_held_tuples",
        "Tuples the task holds now (windowed bolts: in windows, not yet acked)",
    );
    let late = family::<Counter>(
        &mut registry,
        "task_late_tuples",
        "Tuples that arrived below the watermark (event-time windowed bolts)",
    );
    for t in topologies {
        let topology = t.name.to_string();
        workers
            .get_or_create(&TopologyLabels {
                topology: topology.clone(),
            })
            .set(t.workers.into());
        let state = serde_json::to_value(t.state)
            .ok()
            .and_then(|v| v.as_str().map(str::to_string))
            .unwrap_or_default();
        status
            .get_or_create(&StatusLabels {
                topology: topology.clone(),
                status: state,
            })
            .set(1);
        for (id, task) in t.tasks.into_iter().flatten() {
            let labels = TaskLabels {
                topology: topology.clone(),
                component: task.component.clone(),
                task: id.to_string(),
            };
            let total = task.total();
            emitted.get_or_create(&labels).inc_by(total.emitted);
            transferred.get_or_create(&labels).inc_by(total.transferred);
            acked.get_or_create(&labels).inc_by(total.acked);
            failed.get_or_create(&labels).inc_by(total.failed);
            executed.get_or_create(&labels).inc_by(total.executed);
            let recent: Totals = task.recent(now_ms).map(|(d, _)| d).unwrap_or_default();
            execute_latency
                .get_or_create(&labels)
                .set(recent.execute_latency_ms());
            process_latency
                .get_or_create(&labels)
                .set(recent.process_latency_ms());
            complete_latency
                .get_or_create(&labels)
                .set(recent.complete_latency_ms());
            held.get_or_create(&labels)
                .set(i64::try_from(task.latest.held).unwrap_or(i64::MAX));
            late.get_or_create(&labels).inc_by(task.latest.late);
            let c = task.latest.capacity;
            capacity
                .get_or_create(&labels)
                .set(if c.is_finite() { c } else { 0.0 });
        }
    }
    let mut out = String::new();
    prometheus_client::encoding::text::encode(&mut out, &registry)
        .map_err(|e| format!("cannot write the metrics: {e}"))?;
    Ok(out)
}
