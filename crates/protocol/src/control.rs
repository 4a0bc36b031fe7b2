//! Control-plane messages: what Nimbus, Supervisors, workers and the CLI say to each other over
//! HTTP + JSON. Defined once, here; every daemon uses these types. The endpoints are listed in
//! `docs/design/control-plane.md`.

use crate::config::Config;
use crate::spec::{ExecutorPlan, TopologySpec};
use crate::status::TopologyStatus;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

pub mod stats;

/// Where a topology is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum TopologyState {
    /// Accepted, waiting for enough free slots.
    Pending,
    /// Scheduled; spouts emit.
    Active,
    /// Scheduled; spouts paused.
    Inactive,
    /// Spouts deactivated, waiting out the kill's wait time before its workers stop.
    Killed,
    /// Spouts deactivated, waiting out the rebalance's wait time before rescheduling.
    Rebalancing,
}

impl TopologyState {
    /// What running spouts should do in this state.
    pub fn spout_status(self) -> TopologyStatus {
        match self {
            TopologyState::Active => TopologyStatus::Active,
            _ => TopologyStatus::Inactive,
        }
    }
}

/// `POST /api/v1/topologies`: submit a topology whose binary was uploaded before.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SubmitRequest {
    /// The topology's name (unique among live topologies).
    pub name: String,
    /// Its spec, as built by the binary.
    pub spec: TopologySpec,
    /// sha256 (hex) of the binary, uploaded with `PUT /api/v1/artifacts/{sha256}`.
    pub artifact: String,
    /// Config keys overriding the spec's (e.g. `topology.workers`).
    #[serde(default)]
    pub config: Config,
}

/// The answer to a submit, activate, deactivate, rebalance or kill.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ActionResponse {
    /// The topology.
    pub name: String,
    /// Its state after the action.
    pub state: TopologyState,
    /// A human-readable account, e.g. why it is pending.
    pub message: String,
}

/// An error answer: every 4xx/5xx carries one.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ErrorBody {
    /// What was wrong, naming the culprit.
    pub error: String,
    /// The same, under the name Storm's UI daemon uses (its UI shows `errorMessage`).
    #[serde(
        default,
        rename = "errorMessage",
        skip_serializing_if = "Option::is_none"
    )]
    pub error_message: Option<String>,
}

impl ErrorBody {
    /// An error body saying `message` under both names.
    pub fn new(message: impl Into<String>) -> Self {
        let error = message.into();
        ErrorBody {
            error_message: Some(error.clone()),
            error,
        }
    }
}

/// Body of `POST /api/v1/topology/{name}/rebalance/{wait}`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct RebalanceRequest {
    /// New number of workers.
    #[serde(default)]
    pub workers: Option<u32>,
    /// New executor counts per component (each at most the component's tasks).
    #[serde(default)]
    pub parallelism: BTreeMap<String, u32>,
}

/// One worker slot of an assignment: which executors run in the worker on `host:port`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WorkerSlot {
    /// The supervisor that runs it.
    pub supervisor: String,
    /// Host name or address other workers connect to.
    pub host: String,
    /// The slot port (the worker listens on it for tuples).
    pub port: u16,
    /// The executors it hosts.
    pub executors: Vec<ExecutorPlan>,
}

impl WorkerSlot {
    /// "host:port".
    pub fn address(&self) -> String {
        format!("{}:{}", self.host, self.port)
    }
}

/// Where every executor of a topology runs. Changes (new `version`) on reassignment and
/// rebalance; workers of an old version are replaced.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Assignment {
    /// The topology.
    pub topology: String,
    /// Increases with every change.
    pub version: u64,
    /// sha256 of the topology binary.
    pub artifact: String,
    /// The spec the workers run (with submitted overrides and rebalanced parallelism).
    pub spec: TopologySpec,
    /// The workers.
    pub workers: Vec<WorkerSlot>,
}

impl Assignment {
    /// The slot on `host:port`, if this assignment has one.
    pub fn slot(&self, host: &str, port: u16) -> Option<&WorkerSlot> {
        self.workers
            .iter()
            .find(|w| w.host == host && w.port == port)
    }

    /// What the worker on `host:port` runs, as a 128-bit digest of the topology, its binary, its spec
    /// and the slot's executors (`None` if the slot is not in this assignment). A worker whose
    /// placement is the same in a newer assignment keeps running across it: only its peers
    /// changed. Supervisors and workers both decide by this, so they agree. The spec's
    /// `topology.workers` is left out: a worker does not depend on how many others there are.
    /// With `topology.state.exactly.once` the version is in: every version restarts every
    /// worker, so all roll back to the same checkpoint.
    pub fn placement(&self, host: &str, port: u16) -> Option<String> {
        let slot = self.slot(host, port)?;
        let mut spec = self.spec.clone();
        spec.config.remove(crate::config::TOPOLOGY_WORKERS);
        // Exactly-once state rolls every task back together: no worker outlives a version.
        let exactly_once = spec
            .config
            .bool_or(crate::config::TOPOLOGY_STATE_EXACTLY_ONCE, false)
            .unwrap_or(false);
        let version = exactly_once.then_some(self.version);
        let what = (
            &self.topology,
            &self.artifact,
            &spec,
            &slot.executors,
            version,
        );
        let json = serde_json::to_vec(&what).ok()?;
        Some(format!("{:032x}", xxhash_rust::xxh3::xxh3_128(&json)))
    }
}

/// A worker process a supervisor runs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunningWorker {
    /// Its topology.
    pub topology: String,
    /// Its slot port.
    pub port: u16,
    /// The assignment version it runs.
    pub version: u64,
    /// Its process id.
    pub pid: u32,
}

/// `POST /api/v1/supervisor/heartbeat`: a supervisor is alive and offers these slots.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SupervisorHeartbeat {
    /// Stable id (kept in the supervisor's data dir).
    pub id: String,
    /// Host name or address its workers are reached at.
    pub host: String,
    /// Slot ports it offers.
    pub slots: Vec<u16>,
    /// The workers it currently runs.
    pub workers: Vec<RunningWorker>,
    /// Base URL of its HTTP server (worker logs), if it serves one.
    #[serde(default)]
    pub http: Option<String>,
}

/// The answer to a supervisor heartbeat: the assignments with a slot on this supervisor.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct SupervisorAssignments {
    /// Assignments that place at least one worker on this supervisor.
    pub assignments: Vec<Assignment>,
}

/// Counters and latencies of one task, as workers report them.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct TaskMetrics {
    /// The task.
    pub task_id: u32,
    /// Its component.
    pub component: String,
    /// Tuples emitted.
    pub emitted: u64,
    /// Tuple copies sent to consumer tasks.
    pub transferred: u64,
    /// Acked inputs (bolts) or completed trees (spouts).
    pub acked: u64,
    /// Failed inputs (bolts) or failed / timed out trees (spouts).
    pub failed: u64,
    /// Tuples executed (bolts).
    pub executed: u64,
    /// Mean execute latency in ms (bolts, sampled).
    pub execute_latency_ms: f64,
    /// Mean time from receiving a tuple to acking it, in ms (bolts, sampled).
    pub process_latency_ms: f64,
    /// Mean time from emit to tree completion, in ms (spouts).
    pub complete_latency_ms: f64,
    /// Fraction of the last window spent executing (bolts; near 1 means saturated).
    pub capacity: f64,
    /// Tuples the task holds (in windows), now.
    #[serde(default)]
    pub held: u64,
    /// Late tuples (event-time windows).
    #[serde(default)]
    pub late: u64,
    /// Where a spout stands in each partition of its source (a Kafka spout: committed offset
    /// and log end), as it last reported.
    #[serde(default)]
    pub lag: Vec<PartitionLag>,
    /// The last checkpoint this task completed: for a spout task, the last whose barriers
    /// every downstream task passed; for a bolt task, the last it saved (checkpointed
    /// topologies only).
    #[serde(default)]
    pub checkpoint: Option<u64>,
    /// Spout tasks: the failed trees counted in `failed`, by why they failed.
    #[serde(default)]
    pub failures: FailureCounts,
    /// Most recent errors.
    pub errors: Vec<TaskError>,
}

/// A spout task's failed tuple trees, by why each failed (they sum to its `failed`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct FailureCounts {
    /// No outcome within `topology.message.timeout.secs`.
    #[serde(default)]
    pub timeout: u64,
    /// A bolt failed a tuple of the tree (`collector.fail`).
    #[serde(default)]
    pub failed: u64,
    /// A bolt's `execute` returned an error.
    #[serde(default)]
    pub error: u64,
    /// A bolt's `execute` panicked.
    #[serde(default)]
    pub panic: u64,
    /// A tuple of the tree could not be delivered: the worker hosting its task was
    /// unreachable, left the assignment or dropped the connection.
    #[serde(default)]
    pub undelivered: u64,
}

impl FailureCounts {
    /// The counts of both, added.
    pub fn plus(self, o: FailureCounts) -> FailureCounts {
        FailureCounts {
            timeout: self.timeout + o.timeout,
            failed: self.failed + o.failed,
            error: self.error + o.error,
            panic: self.panic + o.panic,
            undelivered: self.undelivered + o.undelivered,
        }
    }

    /// Every count.
    pub fn total(&self) -> u64 {
        self.timeout + self.failed + self.error + self.panic + self.undelivered
    }
}

/// A spout's position in one partition of its source.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PartitionLag {
    /// The topic (or stream) name.
    pub topic: String,
    /// The partition.
    pub partition: i32,
    /// The offset committed for the spout's group (-1 if none yet).
    pub committed: i64,
    /// The partition's log end (the next offset to be written).
    pub log_end: i64,
}

/// `GET /api/v1/topology/{name}/lag`: per spout reporting partitions, Storm's shape.
pub type TopologyLag = BTreeMap<String, SpoutLag>;

/// One spout's lag.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SpoutLag {
    /// The spout's component id.
    #[serde(rename = "spoutId")]
    pub spout_id: String,
    /// `KAFKA`.
    #[serde(rename = "spoutType")]
    pub spout_type: String,
    /// By topic, then partition (as a string, like Storm's).
    #[serde(rename = "spoutLagResult")]
    pub result: BTreeMap<String, BTreeMap<String, PartitionOffsets>>,
}

/// A partition's offsets and lag, as Storm's UI gives them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PartitionOffsets {
    /// Committed offset (-1 if none).
    #[serde(rename = "consumerCommittedOffset")]
    pub committed: i64,
    /// Log end.
    #[serde(rename = "logHeadOffset")]
    pub log_head: i64,
    /// Log end minus committed (everything, if nothing is committed yet).
    pub lag: i64,
}

impl SpoutLag {
    /// The lag of every spout in `tasks` that reported partitions (the latest report of each
    /// task; a partition reported by two tasks, during a rebalance, takes the higher commit).
    pub fn of_tasks(tasks: &[PlacedTaskMetrics]) -> TopologyLag {
        let mut out = TopologyLag::new();
        for t in tasks.iter().filter(|t| !t.metrics.lag.is_empty()) {
            let spout = out
                .entry(t.metrics.component.clone())
                .or_insert_with(|| SpoutLag {
                    spout_id: t.metrics.component.clone(),
                    spout_type: "KAFKA".into(),
                    result: BTreeMap::new(),
                });
            for p in &t.metrics.lag {
                let offsets = PartitionOffsets {
                    committed: p.committed,
                    log_head: p.log_end,
                    lag: p.log_end - p.committed.max(0),
                };
                let partitions = spout.result.entry(p.topic.clone()).or_default();
                let slot = partitions
                    .entry(p.partition.to_string())
                    .or_insert_with(|| offsets.clone());
                if offsets.committed > slot.committed {
                    *slot = offsets;
                }
            }
        }
        out
    }
}

/// An error a task reported.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TaskError {
    /// Unix time in seconds.
    pub time_secs: u64,
    /// The message.
    pub error: String,
}

/// `POST /api/v1/worker/heartbeat`: a worker is alive; its tasks' metrics.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct WorkerHeartbeat {
    /// The topology.
    pub topology: String,
    /// The worker's host.
    pub host: String,
    /// The worker's port.
    pub port: u16,
    /// The assignment version it runs.
    pub version: u64,
    /// Metrics of its tasks (cumulative since the worker started).
    pub tasks: Vec<TaskMetrics>,
    /// Exactly-once topologies: this worker lost its previous incarnation (or a tuple tree
    /// failed), so every worker must roll back to the last completed checkpoint; Nimbus
    /// answers with a new assignment version, which restarts them all.
    #[serde(default)]
    pub rollback: bool,
}

/// The answer to a worker heartbeat.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct WorkerDirective {
    /// The topology's state (spouts emit only when ACTIVE).
    pub state: TopologyState,
    /// The current assignment version; a worker running another one should stop, unless
    /// its placement is the same in it ([`Assignment::placement`]).
    pub version: u64,
    /// The current assignment, when the worker reported another version.
    #[serde(default)]
    pub assignment: Option<Assignment>,
}

/// One topology in `GET /api/v1/topology/summary`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TopologySummary {
    /// Its id (its name).
    pub id: String,
    /// Its name.
    pub name: String,
    /// Its state.
    pub status: TopologyState,
    /// Seconds since submission.
    #[serde(rename = "uptimeSeconds")]
    pub uptime_seconds: u64,
    /// The same, as Storm writes it ("6m 5s").
    #[serde(default)]
    pub uptime: String,
    /// Workers assigned.
    #[serde(rename = "workersTotal")]
    pub workers_total: u32,
    /// Executors assigned.
    #[serde(rename = "executorsTotal")]
    pub executors_total: u32,
    /// Tasks.
    #[serde(rename = "tasksTotal")]
    pub tasks_total: u32,
    /// Workers requested.
    #[serde(rename = "requestedWorkers")]
    pub requested_workers: u32,
    /// Why it is pending, if it is.
    #[serde(default, rename = "schedulerInfo")]
    pub scheduler_info: String,
}

/// `GET /api/v1/topology/summary`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TopologyList {
    /// Every live topology.
    pub topologies: Vec<TopologySummary>,
}

/// `GET /api/v1/topology/{name}`: a topology, where its tasks run and how they are doing.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TopologyDetails {
    /// The summary.
    #[serde(flatten)]
    pub summary: TopologySummary,
    /// The effective topology config.
    pub configuration: Config,
    /// The current assignment, if scheduled.
    pub assignment: Option<Assignment>,
    /// Per-task metrics with where the task runs.
    pub tasks: Vec<PlacedTaskMetrics>,
    /// Statistics per window, components, workers and the graph (`docs/design/rest-api.md`).
    #[serde(flatten)]
    pub view: stats::TopologyView,
}

/// A task's metrics and location.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PlacedTaskMetrics {
    /// Worker host.
    pub host: String,
    /// Worker port.
    pub port: u16,
    /// Seconds since its worker last reported.
    pub last_heartbeat_secs: u64,
    /// The metrics.
    #[serde(flatten)]
    pub metrics: TaskMetrics,
}

/// One supervisor in `GET /api/v1/supervisor/summary`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SupervisorSummary {
    /// Its id.
    pub id: String,
    /// Its host.
    pub host: String,
    /// Seconds since it registered.
    #[serde(rename = "uptimeSeconds")]
    pub uptime_seconds: u64,
    /// The same, as Storm writes it.
    #[serde(default)]
    pub uptime: String,
    /// Slots offered.
    #[serde(rename = "slotsTotal")]
    pub slots_total: u32,
    /// Slots assigned.
    #[serde(rename = "slotsUsed")]
    pub slots_used: u32,
    /// Seconds since its last heartbeat.
    pub last_heartbeat_secs: u64,
    /// Whether its heartbeats are within the timeout.
    pub alive: bool,
    /// Base URL of its HTTP server, if any.
    #[serde(default)]
    pub http: Option<String>,
}

/// `GET /api/v1/supervisor/summary`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SupervisorList {
    /// Every supervisor Nimbus knows.
    pub supervisors: Vec<SupervisorSummary>,
}

/// `GET /api/v1/cluster/summary`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClusterSummary {
    /// Live supervisors.
    pub supervisors: u32,
    /// Slots offered by live supervisors.
    #[serde(rename = "slotsTotal")]
    pub slots_total: u32,
    /// Slots of live supervisors that assignments use.
    #[serde(rename = "slotsUsed")]
    pub slots_used: u32,
    /// Slots of live supervisors that no assignment uses.
    #[serde(rename = "slotsFree")]
    pub slots_free: u32,
    /// Live topologies.
    pub topologies: u32,
    /// Seconds since this Nimbus started.
    #[serde(rename = "nimbusUptimeSeconds")]
    pub nimbus_uptime_seconds: u64,
    /// The same, as Storm writes it ("6m 5s").
    #[serde(default, rename = "nimbusUptime")]
    pub nimbus_uptime: String,
    /// Executors assigned, all topologies.
    #[serde(default, rename = "executorsTotal")]
    pub executors_total: u32,
    /// Tasks of all topologies.
    #[serde(default, rename = "tasksTotal")]
    pub tasks_total: u32,
    /// The version of this Nimbus.
    #[serde(default, rename = "tempestVersion")]
    pub tempest_version: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_placement_changes_with_the_slots_executors_spec_or_binary_only() {
        let plan = |c: &str, t: u32| ExecutorPlan {
            component: c.into(),
            tasks: t..t + 1,
        };
        let slot = |port, executors| WorkerSlot {
            supervisor: "s".into(),
            host: "h".into(),
            port,
            executors,
        };
        let a = Assignment {
            topology: "t".into(),
            version: 1,
            artifact: "a".repeat(64),
            spec: TopologySpec {
                name: "t".into(),
                config: Config::new().with_workers(2),
                components: vec![],
            },
            workers: vec![slot(1, vec![plan("x", 1)]), slot(2, vec![plan("y", 2)])],
        };
        let p = |a: &Assignment, port| a.placement("h", port);
        assert!(p(&a, 1).is_some() && p(&a, 1) != p(&a, 2));
        assert_eq!(p(&a, 3), None);
        // Another version, another worker count, a moved peer: same placement.
        let mut b = a.clone();
        b.version = 2;
        b.spec.config.set(crate::config::TOPOLOGY_WORKERS, 3);
        b.workers[1].port = 7;
        b.workers.push(slot(8, vec![]));
        assert_eq!(p(&a, 1), p(&b, 1));
        // Its executors, the spec or the binary changed: another placement.
        let mut c = a.clone();
        c.workers[0].executors.push(plan("y", 3));
        assert_ne!(p(&a, 1), p(&c, 1));
        let mut d = a.clone();
        d.spec.config.set("topology.max.spout.pending", 10);
        assert_ne!(p(&a, 1), p(&d, 1));
        let mut e = a.clone();
        e.artifact = "b".repeat(64);
        assert_ne!(p(&a, 1), p(&e, 1));
    }
}
