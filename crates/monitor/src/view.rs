//! Builds the monitoring views of the REST API (`docs/design/rest-api.md`) from a snapshot of
//! one topology: its spec, assignment and task histories. Pure: no locks, no I/O, the time is
//! given.

use super::history::{TaskHistory, Totals};
use super::http::ApiError;
use std::collections::{BTreeMap, HashMap};
use tempest_protocol::control::stats::{
    decimal3, pretty_duration, BoltRow, BoltWindowStats, ComponentErrorRow, ComponentPage,
    LastError, RowCounters, SpoutRow, TaskStatsRow, TopologyView, Window, WindowStats, WorkerRow,
    WorkerStatsRow,
};
use tempest_protocol::control::{
    Assignment, FailureCounts, TopologyDetails, TopologyState, TopologySummary, WorkerSlot,
};
use tempest_protocol::spec::{ComponentKind, TaskLayout, TopologySpec, ACKER_COMPONENT};

/// Config key of the message timeout (Storm's `msgTimeout`).
const MESSAGE_TIMEOUT: &str = "topology.message.timeout.secs";

/// One topology as the views need it (Nimbus takes it under its locks).
#[derive(Debug)]
pub struct Snapshot<'a> {
    /// Its name (and id).
    pub name: &'a str,
    /// Its state.
    pub state: TopologyState,
    /// Its spec.
    pub spec: &'a TopologySpec,
    /// Its task numbering (`TaskLayout::of(spec)`).
    pub layout: TaskLayout,
    /// Its assignment, if scheduled.
    pub assignment: Option<&'a Assignment>,
    /// Its tasks' histories.
    pub tasks: &'a BTreeMap<u32, TaskHistory>,
    /// Seconds since each worker (host, port) of the assignment last reported.
    pub worker_seen: HashMap<(String, u16), u64>,
    /// Now, Unix ms.
    pub now_ms: u64,
}

/// The UI page showing a worker's log.
pub(crate) fn log_link(topology: &str, host: &str, port: u16) -> String {
    let query: String = url_query(&[
        ("topology", topology),
        ("host", host),
        ("port", &port.to_string()),
    ]);
    format!("/log.html?{query}")
}

/// The path of a topology's page in the web UI.
pub fn topology_page(topology: &str) -> String {
    format!("/topology.html?{}", url_query(&[("id", topology)]))
}

/// `k=v&...` with the values percent-encoded.
pub(crate) fn url_query(pairs: &[(&str, &str)]) -> String {
    form_urlencoded::Serializer::new(String::new())
        .extend_pairs(pairs)
        .finish()
}

/// A component page row's counters and latencies from an aggregate.
fn row_counters(agg: &Aggregate) -> RowCounters {
    let t = &agg.totals;
    RowCounters {
        emitted: t.emitted,
        transferred: t.transferred,
        acked: t.acked,
        failed: t.failed,
        executed: t.executed,
        complete_latency: decimal3(t.complete_latency_ms()),
        execute_latency: decimal3(t.execute_latency_ms()),
        process_latency: decimal3(t.process_latency_ms()),
        capacity: decimal3(agg.capacity),
        held: agg.held,
        late: agg.late,
    }
}

/// What a set of tasks did in a window, their highest latest capacity, and the tuples they
/// hold and have seen late (latest reports, summed).
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Aggregate {
    pub(crate) totals: Totals,
    pub(crate) capacity: f64,
    pub(crate) held: u64,
    pub(crate) late: u64,
}

impl Aggregate {
    fn add(&mut self, task: &TaskHistory, window: Window, now_ms: u64) {
        self.totals = self.totals.plus(&task.in_window(window.secs(), now_ms));
        let c = task.latest.capacity;
        if c.is_finite() && c > self.capacity {
            self.capacity = c;
        }
        self.held += task.latest.held;
        self.late += task.latest.late;
    }
}

impl<'a> Snapshot<'a> {
    /// The components shown: the spec's, in declaration order, then the acker with `sys`.
    pub(crate) fn components(&self, sys: bool) -> Vec<(String, ComponentKind)> {
        let mut out: Vec<(String, ComponentKind)> = self
            .spec
            .components
            .iter()
            .map(|c| (c.id.clone(), c.kind))
            .collect();
        if sys && !self.layout.tasks(ACKER_COMPONENT).is_empty() {
            out.push((ACKER_COMPONENT.to_string(), ComponentKind::Bolt));
        }
        out
    }

    /// A component's kind, if it is one of the topology's (the acker included).
    pub(crate) fn kind_of(&self, component: &str) -> Option<ComponentKind> {
        if component == ACKER_COMPONENT {
            return (!self.layout.tasks(ACKER_COMPONENT).is_empty()).then_some(ComponentKind::Bolt);
        }
        self.spec.component(component).map(|c| c.kind)
    }

    /// A component's executors: as assigned, else as specified.
    pub(crate) fn executors(&self, component: &str) -> u32 {
        match self.assignment {
            Some(a) => a
                .workers
                .iter()
                .flat_map(|w| &w.executors)
                .filter(|e| e.component == component)
                .count() as u32,
            None => self.spec.component(component).map_or(0, |c| c.parallelism),
        }
    }

    /// A component's number of tasks.
    pub(crate) fn task_count(&self, component: &str) -> u32 {
        let r = self.layout.tasks(component);
        r.end - r.start
    }

    /// The histories of a component's tasks.
    pub(crate) fn histories(&self, component: &str) -> impl Iterator<Item = &TaskHistory> + '_ {
        let range = self.layout.tasks(component);
        self.tasks.range(range).map(|(_, t)| t)
    }

    /// What a component's tasks did in a window.
    pub(crate) fn aggregate(&self, component: &str, window: Window) -> Aggregate {
        let mut agg = Aggregate::default();
        for t in self.histories(component) {
            agg.add(t, window, self.now_ms);
        }
        agg
    }

    /// A spout's failed trees by reason, as its tasks last reported them (since they started).
    pub(crate) fn failed_by_reason(&self, component: &str) -> FailureCounts {
        self.histories(component)
            .fold(FailureCounts::default(), |sum, t| {
                sum.plus(t.latest.failures)
            })
    }

    /// The assigned slot running `host:port`.
    fn slot(&self, host: &str, port: u16) -> Option<&WorkerSlot> {
        self.assignment.and_then(|a| a.slot(host, port))
    }

    /// The assigned slot and executor (its task range) of a task.
    fn placement(&self, task: u32) -> Option<(&WorkerSlot, String)> {
        self.assignment?.workers.iter().find_map(|w| {
            w.executors
                .iter()
                .find(|e| e.tasks.contains(&task))
                .map(|e| {
                    let last = e.tasks.end.saturating_sub(1);
                    (w, format!("[{}-{}]", e.tasks.start, last))
                })
        })
    }

    fn last_error(&self, component: &str) -> LastError {
        let newest = self
            .histories(component)
            .flat_map(|t| t.errors())
            .max_by_key(|(e, _, _)| e.time_secs);
        match newest {
            Some((e, host, port)) => LastError {
                last_error: e.error.clone(),
                error_host: host.clone(),
                error_port: Some(*port),
                error_time: Some(e.time_secs),
                error_lapsed_secs: Some((self.now_ms / 1000).saturating_sub(e.time_secs)),
                error_worker_log_link: log_link(self.name, host, *port),
            },
            None => LastError::default(),
        }
    }

    /// Topology totals of a window: emitted and transferred of every shown component, acked,
    /// failed and complete latency of the spouts.
    fn window_stats(&self, window: Window, sys: bool) -> WindowStats {
        let mut all = Totals::default();
        let mut spouts = Totals::default();
        for (id, kind) in self.components(sys) {
            let agg = self.aggregate(&id, window);
            all = all.plus(&agg.totals);
            if kind == ComponentKind::Spout {
                spouts = spouts.plus(&agg.totals);
            }
        }
        WindowStats {
            window: window.as_str().into_owned(),
            window_pretty: window.pretty(),
            emitted: all.emitted,
            transferred: all.transferred,
            complete_latency: decimal3(spouts.complete_latency_ms()),
            acked: spouts.acked,
            failed: spouts.failed,
        }
    }

    fn spout_stats(&self, component: &str, window: Window) -> WindowStats {
        let t = self.aggregate(component, window).totals;
        WindowStats {
            window: window.as_str().into_owned(),
            window_pretty: window.pretty(),
            emitted: t.emitted,
            transferred: t.transferred,
            complete_latency: decimal3(t.complete_latency_ms()),
            acked: t.acked,
            failed: t.failed,
        }
    }

    fn bolt_stats(&self, component: &str, window: Window) -> BoltWindowStats {
        let agg = self.aggregate(component, window);
        let t = agg.totals;
        BoltWindowStats {
            window: window.as_str().into_owned(),
            window_pretty: window.pretty(),
            emitted: t.emitted,
            transferred: t.transferred,
            executed: t.executed,
            execute_latency: decimal3(t.execute_latency_ms()),
            process_latency: decimal3(t.process_latency_ms()),
            capacity: decimal3(agg.capacity),
            acked: t.acked,
            failed: t.failed,
        }
    }

    fn worker_rows(&self) -> Vec<WorkerRow> {
        let Some(a) = self.assignment else {
            return Vec::new();
        };
        a.workers
            .iter()
            .map(|w| {
                let mut num_tasks: BTreeMap<String, u32> = BTreeMap::new();
                let mut components: Vec<String> = Vec::new();
                for e in &w.executors {
                    *num_tasks.entry(e.component.clone()).or_default() +=
                        e.tasks.end - e.tasks.start;
                    if !components.contains(&e.component) {
                        components.push(e.component.clone());
                    }
                }
                let link = log_link(self.name, &w.host, w.port);
                let uptime = self
                    .tasks
                    .values()
                    .filter(|t| t.host == w.host && t.port == w.port)
                    .map(|t| t.uptime_secs(self.now_ms))
                    .max()
                    .unwrap_or(0);
                WorkerRow {
                    topology_id: self.name.to_string(),
                    topology_name: self.name.to_string(),
                    host: w.host.clone(),
                    port: w.port,
                    supervisor_id: w.supervisor.clone(),
                    executors_total: w.executors.len() as u32,
                    executors: w.executors.len() as u32,
                    components,
                    component_num_tasks: num_tasks,
                    last_heartbeat_secs: self.worker_seen.get(&(w.host.clone(), w.port)).copied(),
                    uptime_seconds: uptime,
                    uptime: pretty_duration(uptime),
                    log_link: link.clone(),
                    worker_log_link: link,
                }
            })
            .collect()
    }

    /// The monitoring part of `GET /api/v1/topology/{id}`.
    pub(crate) fn topology_view(&self, window: Window, sys: bool) -> TopologyView {
        let mut spouts = Vec::new();
        let mut bolts = Vec::new();
        for (id, kind) in self.components(sys) {
            let agg = self.aggregate(&id, window);
            let t = agg.totals;
            let (executors, tasks) = (self.executors(&id), self.task_count(&id));
            let last_error = self.last_error(&id);
            match kind {
                ComponentKind::Spout => spouts.push(SpoutRow {
                    failed_by_reason: self.failed_by_reason(&id),
                    spout_id: id,
                    executors,
                    tasks,
                    emitted: t.emitted,
                    transferred: t.transferred,
                    complete_latency: decimal3(t.complete_latency_ms()),
                    acked: t.acked,
                    failed: t.failed,
                    last_error,
                }),
                ComponentKind::Bolt => bolts.push(BoltRow {
                    bolt_id: id,
                    executors,
                    tasks,
                    emitted: t.emitted,
                    transferred: t.transferred,
                    capacity: decimal3(agg.capacity),
                    execute_latency: decimal3(t.execute_latency_ms()),
                    executed: t.executed,
                    process_latency: decimal3(t.process_latency_ms()),
                    acked: t.acked,
                    failed: t.failed,
                    held: agg.held,
                    late: agg.late,
                    last_error,
                }),
            }
        }
        TopologyView {
            window: window.as_str().into_owned(),
            window_hint: window.pretty(),
            msg_timeout: self.spec.config.u64_or(MESSAGE_TIMEOUT, 30).unwrap_or(30),
            last_checkpoint: self.last_checkpoint(),
            topology_stats: Window::ALL
                .into_iter()
                .map(|w| self.window_stats(w, sys))
                .collect(),
            spouts,
            bolts,
            workers: self.worker_rows(),
            graph: self.graph(sys),
        }
    }

    /// The last checkpoint every spout task reported complete.
    fn last_checkpoint(&self) -> Option<u64> {
        if !self.spec.is_checkpointed() {
            return None;
        }
        let spouts: Vec<&str> = self
            .spec
            .components
            .iter()
            .filter(|c| c.kind == ComponentKind::Spout)
            .map(|c| c.id.as_str())
            .collect();
        let mut min: Option<u64> = None;
        let mut any = false;
        for t in self.tasks.values() {
            if spouts.contains(&t.latest.component.as_str()) {
                any = true;
                let c = t.latest.checkpoint?;
                min = Some(min.map_or(c, |m| m.min(c)));
            }
        }
        min.filter(|_| any)
    }

    /// `GET /api/v1/topology/{id}`: `summary` with the config, the assignment, the latest
    /// report of every task and the view of `window`.
    pub fn details(&self, summary: TopologySummary, window: Window, sys: bool) -> TopologyDetails {
        TopologyDetails {
            summary,
            configuration: self.spec.config.clone(),
            assignment: self.assignment.cloned(),
            tasks: self.tasks.values().map(|t| t.placed(self.now_ms)).collect(),
            view: self.topology_view(window, sys),
        }
    }

    /// `GET /api/v1/topology/{id}/component/{component}`; 404 naming the components there are
    /// if it has no such component.
    pub fn component(&self, component: &str, window: Window) -> Result<ComponentPage, ApiError> {
        self.component_page(component, window).ok_or_else(|| {
            ApiError::not_found(format!(
                "topology {:?} has no component {component:?}; it has {}",
                self.name,
                self.components(true)
                    .iter()
                    .map(|(id, _)| format!("{id:?}"))
                    .collect::<Vec<_>>()
                    .join(", ")
            ))
        })
    }

    /// The component page; `None` if it has no such component.
    fn component_page(&self, component: &str, window: Window) -> Option<ComponentPage> {
        let kind = self.kind_of(component)?;
        let range = self.layout.tasks(component);
        let mut executor_stats = Vec::new();
        let mut workers: BTreeMap<(String, u16), (WorkerStatsRow, Aggregate)> = BTreeMap::new();
        for task in range.clone() {
            let history = self.tasks.get(&task);
            let placed = self.placement(task);
            let (host, port) = match (history, &placed) {
                (Some(h), _) => (h.host.clone(), h.port),
                (None, Some((w, _))) => (w.host.clone(), w.port),
                (None, None) => (String::new(), 0),
            };
            let supervisor_id = self
                .slot(&host, port)
                .map(|w| w.supervisor.clone())
                .unwrap_or_default();
            let mut agg = Aggregate::default();
            if let Some(h) = history {
                agg.add(h, window, self.now_ms);
            }
            let t = agg.totals;
            let link = if host.is_empty() {
                String::new()
            } else {
                log_link(self.name, &host, port)
            };
            executor_stats.push(TaskStatsRow {
                id: format!("[{task}-{task}]"),
                task_id: task,
                executor_id: placed.as_ref().map(|(_, e)| e.clone()).unwrap_or_default(),
                host: host.clone(),
                port,
                supervisor_id: supervisor_id.clone(),
                last_heartbeat_secs: history
                    .map(|h| self.now_ms.saturating_sub(h.last_at_ms) / 1000),
                uptime_seconds: history.map_or(0, |h| h.uptime_secs(self.now_ms)),
                uptime: pretty_duration(history.map_or(0, |h| h.uptime_secs(self.now_ms))),
                counters: row_counters(&agg),
                log_link: link.clone(),
                worker_log_link: link.clone(),
            });
            if host.is_empty() {
                continue;
            }
            let entry = workers.entry((host.clone(), port)).or_insert_with(|| {
                let executors = self.slot(&host, port).map_or(0, |w| {
                    w.executors
                        .iter()
                        .filter(|e| e.component == component)
                        .count() as u32
                });
                (
                    WorkerStatsRow {
                        host: host.clone(),
                        port,
                        supervisor_id,
                        executors,
                        log_link: link.clone(),
                        worker_log_link: link,
                        ..WorkerStatsRow::default()
                    },
                    Aggregate::default(),
                )
            });
            entry.0.tasks += 1;
            entry.1.totals = entry.1.totals.plus(&t);
            entry.1.capacity = entry.1.capacity.max(agg.capacity);
        }
        let worker_stats = workers
            .into_values()
            .map(|(mut row, agg)| {
                row.counters = row_counters(&agg);
                row
            })
            .collect();
        let mut component_errors: Vec<ComponentErrorRow> = self
            .tasks
            .range(range)
            .flat_map(|(id, t)| t.errors().map(move |e| (*id, e)))
            .map(|(task_id, (e, host, port))| ComponentErrorRow {
                error_time: e.time_secs,
                time: e.time_secs,
                error_host: host.clone(),
                error_port: *port,
                error_lapsed_secs: (self.now_ms / 1000).saturating_sub(e.time_secs),
                error: e.error.clone(),
                task_id,
                error_worker_log_link: log_link(self.name, host, *port),
            })
            .collect();
        component_errors.sort_by_key(|e| std::cmp::Reverse(e.error_time));
        let (spout_summary, bolt_stats) = match kind {
            ComponentKind::Spout => (
                Some(
                    Window::ALL
                        .into_iter()
                        .map(|w| self.spout_stats(component, w))
                        .collect(),
                ),
                None,
            ),
            ComponentKind::Bolt => (
                None,
                Some(
                    Window::ALL
                        .into_iter()
                        .map(|w| self.bolt_stats(component, w))
                        .collect(),
                ),
            ),
        };
        Some(ComponentPage {
            id: component.to_string(),
            name: self.name.to_string(),
            topology_id: self.name.to_string(),
            topology_status: Some(self.state),
            component_type: kind.as_str().to_string(),
            executors: self.executors(component),
            tasks: self.task_count(component),
            window: window.as_str().into_owned(),
            window_hint: window.pretty(),
            failed_by_reason: (kind == ComponentKind::Spout)
                .then(|| self.failed_by_reason(component)),
            spout_summary,
            bolt_stats,
            executor_stats,
            worker_stats,
            component_errors,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn log_links_are_encoded() {
        assert_eq!(
            log_link("wc", "10.0.0.5", 6700),
            "/log.html?topology=wc&host=10.0.0.5&port=6700"
        );
        assert_eq!(
            log_link("wc", "::1", 6700),
            "/log.html?topology=wc&host=%3A%3A1&port=6700"
        );
    }
}
