//! The monitoring views of Nimbus's REST API (`docs/design/rest-api.md`): per-window statistics
//! of topologies, components, tasks and workers, and the component graph. Field names follow
//! Apache Storm's UI REST API where the concept is the same; latencies and capacities are
//! strings with three decimals there, as in Storm.

use crate::control::{FailureCounts, TopologyState};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fmt;

/// A statistics window, as in Storm's `?window=` query parameter.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Window {
    /// The last 10 minutes (`600`).
    TenMinutes,
    /// The last 3 hours (`10800`).
    ThreeHours,
    /// The last day (`86400`).
    OneDay,
    /// Everything known (`:all-time`), the default.
    #[default]
    AllTime,
    /// Any other number of seconds (`?window=60`); the history answers up to a day truly.
    Secs(u64),
}

impl Window {
    /// Every window, shortest first.
    pub const ALL: [Window; 4] = [
        Window::TenMinutes,
        Window::ThreeHours,
        Window::OneDay,
        Window::AllTime,
    ];

    /// Parses the query parameter value: `:all-time` or a whole number of seconds (600,
    /// 10800 and 86400 are Storm's named windows).
    pub fn parse(text: &str) -> Result<Window, String> {
        if text == ":all-time" {
            return Ok(Window::AllTime);
        }
        let secs: u64 = text.trim().parse().map_err(|_| {
            format!("window {text:?} is neither :all-time nor a whole number of seconds")
        })?;
        Ok(match secs {
            600 => Window::TenMinutes,
            10_800 => Window::ThreeHours,
            86_400 => Window::OneDay,
            n => Window::Secs(n),
        })
    }

    /// The window as Storm's UI daemon takes it: any value answers. Storm looks the value up
    /// among its four windows and answers zeros for any other; a number of seconds here is
    /// answered from the history, and a value that is not one (`?window=foo`) is the empty
    /// window of 0 seconds (zeros, as in Storm).
    pub fn storm(text: &str) -> Window {
        Window::parse(text).unwrap_or(Window::Secs(0))
    }

    /// Its length in seconds; `None` for all time.
    pub fn secs(self) -> Option<u64> {
        match self {
            Window::TenMinutes => Some(600),
            Window::ThreeHours => Some(10_800),
            Window::OneDay => Some(86_400),
            Window::AllTime => None,
            Window::Secs(n) => Some(n),
        }
    }

    /// The query parameter value.
    pub fn as_str(self) -> std::borrow::Cow<'static, str> {
        match self {
            Window::TenMinutes => "600".into(),
            Window::ThreeHours => "10800".into(),
            Window::OneDay => "86400".into(),
            Window::AllTime => ":all-time".into(),
            Window::Secs(n) => n.to_string().into(),
        }
    }

    /// Storm's `windowPretty`: "10m 0s", "3h 0m 0s", "1d 0h 0m 0s", "All time".
    pub fn pretty(self) -> String {
        match self.secs() {
            Some(s) => pretty_duration(s),
            None => "All time".to_string(),
        }
    }
}

impl fmt::Display for Window {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.as_str())
    }
}

/// A duration as Storm's UI writes it: every unit from the largest non-zero one down to
/// seconds ("45s", "6m 5s", "3h 0m 0s", "1d 0h 0m 0s").
pub fn pretty_duration(secs: u64) -> String {
    let (d, h, m, s) = (
        secs / 86_400,
        secs % 86_400 / 3_600,
        secs % 3_600 / 60,
        secs % 60,
    );
    if d > 0 {
        format!("{d}d {h}h {m}m {s}s")
    } else if h > 0 {
        format!("{h}h {m}m {s}s")
    } else if m > 0 {
        format!("{m}m {s}s")
    } else {
        format!("{s}s")
    }
}

/// A latency or capacity as Storm's API writes it: a string with three decimals.
pub fn decimal3(x: f64) -> String {
    if x.is_finite() {
        format!("{x:.3}")
    } else {
        "0.000".to_string()
    }
}

/// A decimal sent as a string (`"2.000"`) or as a number (`2.0`), kept as the string.
fn string_or_number<'de, D: serde::Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Decimal {
        Text(String),
        Number(f64),
    }
    Ok(match Decimal::deserialize(d)? {
        Decimal::Text(s) => s,
        Decimal::Number(x) => decimal3(x),
    })
}

/// Topology-wide or spout statistics of one window (`topologyStats[]`, `spoutSummary[]`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct WindowStats {
    /// The window (`"600"`, ..., `":all-time"`).
    pub window: String,
    /// The window, pretty ("10m 0s").
    pub window_pretty: String,
    /// Tuples emitted.
    pub emitted: u64,
    /// Tuple copies sent to consumer tasks.
    pub transferred: u64,
    /// Mean complete latency of the spouts' trees, in ms (three decimals). Storm's
    /// `spoutSummary[]` sends it as a number, which this reads too.
    #[serde(deserialize_with = "string_or_number")]
    pub complete_latency: String,
    /// Completed trees.
    pub acked: u64,
    /// Failed or timed-out trees.
    pub failed: u64,
}

/// Bolt statistics of one window (`boltStats[]`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BoltWindowStats {
    /// The window.
    pub window: String,
    /// The window, pretty.
    pub window_pretty: String,
    /// Tuples emitted.
    pub emitted: u64,
    /// Tuple copies sent to consumer tasks.
    pub transferred: u64,
    /// Tuples executed.
    pub executed: u64,
    /// Mean execute latency, ms.
    pub execute_latency: String,
    /// Mean process latency, ms.
    pub process_latency: String,
    /// Latest capacity (the highest of the tasks).
    pub capacity: String,
    /// Acked inputs.
    pub acked: u64,
    /// Failed inputs.
    pub failed: u64,
}

/// A component's most recent error, as Storm's spout and bolt rows carry it.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LastError {
    /// The message; empty if there was none.
    pub last_error: String,
    /// Host of the worker that reported it; empty if none.
    pub error_host: String,
    /// Port of that worker.
    pub error_port: Option<u16>,
    /// When, in Unix seconds.
    pub error_time: Option<u64>,
    /// Seconds since then.
    pub error_lapsed_secs: Option<u64>,
    /// Link to that worker's log page; empty if none.
    pub error_worker_log_link: String,
}

/// A spout of `GET /api/v1/topology/{id}`, in the asked window.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SpoutRow {
    /// Component id.
    pub spout_id: String,
    /// Executors.
    pub executors: u32,
    /// Tasks.
    pub tasks: u32,
    /// Tuples emitted.
    pub emitted: u64,
    /// Tuple copies sent to consumer tasks.
    pub transferred: u64,
    /// Mean complete latency, ms.
    pub complete_latency: String,
    /// Completed trees.
    pub acked: u64,
    /// Failed or timed-out trees.
    pub failed: u64,
    /// Failed trees by why they failed, counted since its tasks started (not windowed).
    #[serde(default)]
    pub failed_by_reason: FailureCounts,
    /// Its last error.
    #[serde(flatten)]
    pub last_error: LastError,
}

/// A bolt of `GET /api/v1/topology/{id}`, in the asked window.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BoltRow {
    /// Component id.
    pub bolt_id: String,
    /// Executors.
    pub executors: u32,
    /// Tasks.
    pub tasks: u32,
    /// Tuples emitted.
    pub emitted: u64,
    /// Tuple copies sent to consumer tasks.
    pub transferred: u64,
    /// Latest capacity (the highest of its tasks).
    pub capacity: String,
    /// Mean execute latency, ms.
    pub execute_latency: String,
    /// Tuples executed.
    pub executed: u64,
    /// Mean process latency, ms.
    pub process_latency: String,
    /// Acked inputs.
    pub acked: u64,
    /// Failed inputs.
    pub failed: u64,
    /// Tuples its tasks hold now (windowed bolts).
    #[serde(default)]
    pub held: u64,
    /// Late tuples its tasks saw (event-time windowed bolts).
    #[serde(default)]
    pub late: u64,
    /// Its last error.
    #[serde(flatten)]
    pub last_error: LastError,
}

/// A worker of `GET /api/v1/topology/{id}`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct WorkerRow {
    /// The topology.
    pub topology_id: String,
    /// The topology.
    pub topology_name: String,
    /// Worker host.
    pub host: String,
    /// Worker (slot) port.
    pub port: u16,
    /// The supervisor running it.
    pub supervisor_id: String,
    /// Executors it hosts.
    pub executors_total: u32,
    /// The same number (the brief name).
    pub executors: u32,
    /// Ids of the components it runs.
    pub components: Vec<String>,
    /// Tasks it runs, by component.
    pub component_num_tasks: BTreeMap<String, u32>,
    /// Seconds since its last heartbeat; `None` before the first.
    pub last_heartbeat_secs: Option<u64>,
    /// Seconds since this worker incarnation first reported (0 before it did).
    #[serde(default)]
    pub uptime_seconds: u64,
    /// The same, as Storm writes it ("6m 5s").
    #[serde(default)]
    pub uptime: String,
    /// Link to its log page.
    pub log_link: String,
    /// The same link (Storm's name).
    pub worker_log_link: String,
}

/// A component in the graph.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct GraphNode {
    /// Component id.
    pub id: String,
    /// `"spout"` or `"bolt"`.
    #[serde(rename = "type")]
    pub kind: String,
    /// Executors.
    pub executors: u32,
    /// Tasks.
    pub tasks: u32,
    /// The highest latest capacity of its tasks (0 for spouts).
    pub capacity: f64,
    /// Tuples emitted per second over the last ~30 s.
    pub emitted_per_second: f64,
    /// Tuples executed per second over the last ~30 s.
    pub executed_per_second: f64,
}

/// A subscription in the graph, with its estimated rate (see `docs/design/rest-api.md`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct GraphEdge {
    /// Producing component.
    pub from: String,
    /// Consuming component.
    pub to: String,
    /// The stream.
    pub stream: String,
    /// The grouping's label (`GroupingSpec::label`).
    pub grouping: String,
    /// Estimated tuples per second arriving over this edge, over the last ~30 s.
    pub tuples_per_second: f64,
}

/// The component graph of a topology.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Graph {
    /// Components.
    pub nodes: Vec<GraphNode>,
    /// Subscriptions.
    pub edges: Vec<GraphEdge>,
}

/// The monitoring part of `GET /api/v1/topology/{id}` (flattened into `TopologyDetails`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct TopologyView {
    /// The asked window.
    pub window: String,
    /// It, pretty.
    pub window_hint: String,
    /// `topology.message.timeout.secs`.
    pub msg_timeout: u64,
    /// Checkpointed topologies: the last checkpoint every spout task saw complete (every task
    /// below it saved it); `None` before the first, or without stateful bolts.
    #[serde(default)]
    pub last_checkpoint: Option<u64>,
    /// Topology totals, one per window.
    pub topology_stats: Vec<WindowStats>,
    /// Spouts in the asked window.
    pub spouts: Vec<SpoutRow>,
    /// Bolts in the asked window.
    pub bolts: Vec<BoltRow>,
    /// Workers of the current assignment.
    pub workers: Vec<WorkerRow>,
    /// The component graph.
    pub graph: Graph,
}

/// The counters and latencies of a component page row (a task or a worker), flattened into
/// the row's JSON as Storm's fields.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RowCounters {
    /// Tuples emitted.
    pub emitted: u64,
    /// Tuple copies sent.
    pub transferred: u64,
    /// Acked.
    pub acked: u64,
    /// Failed.
    pub failed: u64,
    /// Executed (bolts).
    pub executed: u64,
    /// Mean complete latency, ms (spouts).
    pub complete_latency: String,
    /// Mean execute latency, ms (bolts).
    pub execute_latency: String,
    /// Mean process latency, ms (bolts).
    pub process_latency: String,
    /// Capacity (bolts).
    pub capacity: String,
    /// Tuples held now (windowed bolts).
    #[serde(default)]
    pub held: u64,
    /// Late tuples seen (event-time windowed bolts).
    #[serde(default)]
    pub late: u64,
}

/// One task of `GET /api/v1/topology/{id}/component/{component}` (`executorStats[]`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TaskStatsRow {
    /// `"[t-t]"`, Storm's executor id form.
    pub id: String,
    /// The task.
    pub task_id: u32,
    /// The executor running it, `"[first-last]"`.
    pub executor_id: String,
    /// Worker host.
    pub host: String,
    /// Worker port.
    pub port: u16,
    /// Supervisor of that worker.
    pub supervisor_id: String,
    /// Seconds since the task last reported; `None` if it never did.
    pub last_heartbeat_secs: Option<u64>,
    /// Seconds since the task's current worker incarnation first reported (0 before it did).
    #[serde(default)]
    pub uptime_seconds: u64,
    /// The same, as Storm writes it ("6m 5s").
    #[serde(default)]
    pub uptime: String,
    /// Its counters and latencies over the window.
    #[serde(flatten)]
    pub counters: RowCounters,
    /// Link to its worker's log page.
    pub log_link: String,
    /// The same link (Storm's name).
    pub worker_log_link: String,
}

/// One worker's share of a component (`workerStats[]`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct WorkerStatsRow {
    /// Worker host.
    pub host: String,
    /// Worker port.
    pub port: u16,
    /// Its supervisor.
    pub supervisor_id: String,
    /// Executors of the component in it.
    pub executors: u32,
    /// Tasks of the component in it.
    pub tasks: u32,
    /// The counters of its tasks summed, latencies weighted, capacity the highest.
    #[serde(flatten)]
    pub counters: RowCounters,
    /// Link to its log page.
    pub log_link: String,
    /// The same link (Storm's name).
    pub worker_log_link: String,
}

/// An error of a component (`componentErrors[]`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ComponentErrorRow {
    /// When, in Unix seconds.
    pub error_time: u64,
    /// The same (Storm's name before 0.11).
    pub time: u64,
    /// Host of the worker that reported it.
    pub error_host: String,
    /// Port of that worker.
    pub error_port: u16,
    /// Seconds since.
    pub error_lapsed_secs: u64,
    /// The message.
    pub error: String,
    /// The task that reported it.
    pub task_id: u32,
    /// Link to that worker's log page.
    pub error_worker_log_link: String,
}

/// `GET /api/v1/topology/{id}/component/{component}`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ComponentPage {
    /// Component id.
    pub id: String,
    /// The topology's name.
    pub name: String,
    /// The topology's id (its name).
    pub topology_id: String,
    /// The topology's state.
    pub topology_status: Option<TopologyState>,
    /// `"spout"` or `"bolt"`.
    pub component_type: String,
    /// Executors.
    pub executors: u32,
    /// Tasks.
    pub tasks: u32,
    /// The asked window.
    pub window: String,
    /// It, pretty.
    pub window_hint: String,
    /// Spouts: one per window.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub spout_summary: Option<Vec<WindowStats>>,
    /// Bolts: one per window.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bolt_stats: Option<Vec<BoltWindowStats>>,
    /// Spouts: failed trees by why they failed, counted since its tasks started.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failed_by_reason: Option<FailureCounts>,
    /// One per task, in the asked window.
    pub executor_stats: Vec<TaskStatsRow>,
    /// One per worker running the component, in the asked window.
    pub worker_stats: Vec<WorkerStatsRow>,
    /// Recent errors, newest first.
    pub component_errors: Vec<ComponentErrorRow>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn windows_parse_and_print_as_storm_does() {
        for w in Window::ALL {
            assert_eq!(Window::parse(&w.as_str()), Ok(w));
        }
        assert_eq!(Window::TenMinutes.pretty(), "10m 0s");
        assert_eq!(Window::ThreeHours.pretty(), "3h 0m 0s");
        assert_eq!(Window::OneDay.pretty(), "1d 0h 0m 0s");
        assert_eq!(Window::AllTime.pretty(), "All time");
        assert_eq!(Window::parse("60"), Ok(Window::Secs(60)));
        assert_eq!(Window::parse("600"), Ok(Window::TenMinutes));
        assert_eq!(Window::storm("foo"), Window::Secs(0));
        let e = Window::parse("sixty").unwrap_err();
        assert!(e.contains("\"sixty\"") && e.contains(":all-time"), "{e}");
        assert_eq!(Window::default(), Window::AllTime);
    }

    #[test]
    fn durations_and_decimals() {
        assert_eq!(pretty_duration(0), "0s");
        assert_eq!(pretty_duration(365), "6m 5s");
        assert_eq!(pretty_duration(7212), "2h 0m 12s");
        assert_eq!(pretty_duration(97_205), "1d 3h 0m 5s");
        assert_eq!(decimal3(0.0481), "0.048");
        assert_eq!(decimal3(f64::NAN), "0.000");
    }
}
