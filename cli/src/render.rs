//! Text output: aligned tables, durations, and the views of `list`, `describe` and action
//! answers. Everything returns a `String`, so it is tested without a terminal.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use tempest_protocol::control::{
    ActionResponse, PlacedTaskMetrics, TaskMetrics, TopologyDetails, TopologyList, TopologyState,
};

/// Longest last-error text shown in the task table.
const MAX_ERROR_CHARS: usize = 60;

/// Column alignment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Align {
    /// Text.
    Left,
    /// Numbers.
    Right,
}

/// A table with a header row, columns padded to their widest cell, two spaces apart.
#[derive(Debug)]
pub(crate) struct Table {
    headers: Vec<(&'static str, Align)>,
    rows: Vec<Vec<String>>,
}

impl Table {
    /// A table with these columns.
    pub(crate) fn new(headers: &[(&'static str, Align)]) -> Self {
        Table {
            headers: headers.to_vec(),
            rows: Vec::new(),
        }
    }

    /// Adds a row (missing cells are blank, extra cells are dropped).
    pub(crate) fn row(&mut self, cells: Vec<String>) {
        self.rows.push(cells);
    }

    /// The table as text, one line per row, without trailing spaces.
    pub(crate) fn render(&self) -> String {
        let n = self.headers.len();
        let cell = |row: &[String], i: usize| row.get(i).map_or("", |s| s.as_str()).to_string();
        let header: Vec<String> = self.headers.iter().map(|(h, _)| h.to_string()).collect();
        let lines: Vec<Vec<String>> = std::iter::once(header)
            .chain(
                self.rows
                    .iter()
                    .map(|r| (0..n).map(|i| cleaned(&cell(r, i))).collect()),
            )
            .collect();
        let widths: Vec<usize> = (0..n)
            .map(|i| {
                lines
                    .iter()
                    .map(|l| l[i].chars().count())
                    .max()
                    .unwrap_or(0)
            })
            .collect();
        let mut out = String::new();
        for line in &lines {
            let mut text = String::new();
            for (i, value) in line.iter().enumerate() {
                if i > 0 {
                    text.push_str("  ");
                }
                let pad = widths[i] - value.chars().count();
                match self.headers[i].1 {
                    Align::Left => {
                        text.push_str(value);
                        text.push_str(&" ".repeat(pad));
                    }
                    Align::Right => {
                        text.push_str(&" ".repeat(pad));
                        text.push_str(value);
                    }
                }
            }
            out.push_str(text.trim_end());
            out.push('\n');
        }
        out
    }
}

/// A cell's text on one line, without control characters (so a hostile error message cannot
/// break the table or the terminal).
fn cleaned(s: &str) -> String {
    s.chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect()
}

/// `s` cut to `max` characters, with `…` if cut.
fn truncated(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        s.to_string()
    } else {
        let mut t: String = s.chars().take(max.saturating_sub(1)).collect();
        t.push('…');
        t
    }
}

/// A duration in the two largest units: `45s`, `3m 12s`, `2h 5m`, `3d 4h`.
pub(crate) fn duration(secs: u64) -> String {
    let (d, h, m, s) = (secs / 86_400, secs / 3600 % 24, secs / 60 % 60, secs % 60);
    if d > 0 {
        format!("{d}d {h}h")
    } else if h > 0 {
        format!("{h}h {m}m")
    } else if m > 0 {
        format!("{m}m {s}s")
    } else {
        format!("{s}s")
    }
}

/// A byte count: `512 B`, `8.1 MiB`.
pub(crate) fn bytes(n: u64) -> String {
    const UNITS: [&str; 4] = ["KiB", "MiB", "GiB", "TiB"];
    if n < 1024 {
        return format!("{n} B");
    }
    let mut v = n as f64 / 1024.0;
    let mut unit = 0;
    while v >= 1024.0 && unit + 1 < UNITS.len() {
        v /= 1024.0;
        unit += 1;
    }
    format!("{v:.1} {}", UNITS[unit])
}

/// A state as Nimbus spells it (`ACTIVE`).
pub(crate) fn state(s: TopologyState) -> &'static str {
    match s {
        TopologyState::Pending => "PENDING",
        TopologyState::Active => "ACTIVE",
        TopologyState::Inactive => "INACTIVE",
        TopologyState::Killed => "KILLED",
        TopologyState::Rebalancing => "REBALANCING",
    }
}

/// The answer to an action: `wc: ACTIVE (message)`.
pub(crate) fn action(r: &ActionResponse) -> String {
    let message = r.message.trim();
    if message.is_empty() {
        format!("{}: {}\n", r.name, state(r.state))
    } else {
        format!("{}: {} ({})\n", r.name, state(r.state), cleaned(message))
    }
}

/// Assigned workers, with the requested number when they differ (`0/2` while pending).
fn workers(assigned: u32, requested: u32) -> String {
    if requested == 0 || assigned == requested {
        assigned.to_string()
    } else {
        format!("{assigned}/{requested}")
    }
}

/// `tempest list`: one row per topology; an INFO column when any is waiting for something.
pub(crate) fn topology_list(list: &TopologyList) -> String {
    if list.topologies.is_empty() {
        return "no topologies\n".to_string();
    }
    let with_info = list
        .topologies
        .iter()
        .any(|t| !t.scheduler_info.trim().is_empty());
    let mut headers = vec![
        ("NAME", Align::Left),
        ("STATUS", Align::Left),
        ("UPTIME", Align::Right),
        ("WORKERS", Align::Right),
        ("EXECUTORS", Align::Right),
        ("TASKS", Align::Right),
    ];
    if with_info {
        headers.push(("INFO", Align::Left));
    }
    let mut table = Table::new(&headers);
    let mut topologies: Vec<_> = list.topologies.iter().collect();
    topologies.sort_by(|a, b| a.name.cmp(&b.name));
    for t in topologies {
        table.row(vec![
            t.name.clone(),
            state(t.status).to_string(),
            duration(t.uptime_seconds),
            workers(t.workers_total, t.requested_workers),
            t.executors_total.to_string(),
            t.tasks_total.to_string(),
            t.scheduler_info.trim().to_string(),
        ]);
    }
    table.render()
}

/// One task of a topology: where it runs (by the assignment, else where it last reported) and
/// its metrics if its worker has reported.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct TaskRow {
    /// The task.
    pub task_id: u32,
    /// Its component.
    pub component: String,
    /// `host:port` of its worker.
    pub address: String,
    /// Its latest metrics.
    pub metrics: Option<TaskMetrics>,
}

/// Every task: those of the assignment and those that reported metrics, by task id.
pub(crate) fn task_rows(d: &TopologyDetails) -> Vec<TaskRow> {
    let mut rows: BTreeMap<u32, TaskRow> = BTreeMap::new();
    if let Some(a) = &d.assignment {
        for w in &a.workers {
            for e in &w.executors {
                for task_id in e.tasks.clone() {
                    rows.insert(
                        task_id,
                        TaskRow {
                            task_id,
                            component: e.component.clone(),
                            address: w.address(),
                            metrics: None,
                        },
                    );
                }
            }
        }
    }
    for PlacedTaskMetrics {
        host,
        port,
        metrics,
        ..
    } in &d.tasks
    {
        let row = rows.entry(metrics.task_id).or_insert_with(|| TaskRow {
            task_id: metrics.task_id,
            component: metrics.component.clone(),
            address: format!("{host}:{port}"),
            metrics: None,
        });
        row.metrics = Some(metrics.clone());
    }
    rows.into_values().collect()
}

/// A latency in ms, or `-` when there is none to show.
fn millis(v: f64) -> String {
    if v > 0.0 && v.is_finite() {
        format!("{v:.3}")
    } else {
        "-".to_string()
    }
}

/// The table of `describe`: every task with its counters, latencies, capacity and last error.
pub(crate) fn task_table(rows: &[TaskRow]) -> String {
    use Align::*;
    let mut table = Table::new(&[
        ("TASK", Right),
        ("COMPONENT", Left),
        ("HOST:PORT", Left),
        ("EMITTED", Right),
        ("TRANSFERRED", Right),
        ("ACKED", Right),
        ("FAILED", Right),
        ("EXECUTED", Right),
        ("EXEC-MS", Right),
        ("PROCESS-MS", Right),
        ("COMPLETE-MS", Right),
        ("CAPACITY", Right),
        ("LAST ERROR", Left),
    ]);
    for r in rows {
        let mut cells = vec![
            r.task_id.to_string(),
            r.component.clone(),
            r.address.clone(),
        ];
        match &r.metrics {
            Some(m) => {
                let last_error = m
                    .errors
                    .iter()
                    .max_by_key(|e| e.time_secs)
                    .map(|e| truncated(e.error.trim(), MAX_ERROR_CHARS))
                    .unwrap_or_default();
                cells.extend([
                    m.emitted.to_string(),
                    m.transferred.to_string(),
                    m.acked.to_string(),
                    m.failed.to_string(),
                    m.executed.to_string(),
                    millis(m.execute_latency_ms),
                    millis(m.process_latency_ms),
                    millis(m.complete_latency_ms),
                    format!("{:.3}", m.capacity),
                    last_error,
                ]);
            }
            None => {
                cells.extend(std::iter::repeat_n("-".to_string(), 9));
                cells.push("(not reported)".to_string());
            }
        }
        table.row(cells);
    }
    table.render()
}

/// A config value: strings bare, everything else as JSON.
fn config_value(v: &serde_json::Value) -> String {
    match v {
        serde_json::Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// `tempest describe`: the summary, the effective config, and the task table.
pub(crate) fn topology_details(d: &TopologyDetails) -> String {
    let s = &d.summary;
    let mut out = String::new();
    let _ = writeln!(out, "Topology {} ({})", s.name, state(s.status));
    let mut fields: Vec<(&str, String)> = vec![
        ("uptime", duration(s.uptime_seconds)),
        (
            "workers",
            format!("{} (requested {})", s.workers_total, s.requested_workers),
        ),
        ("executors", s.executors_total.to_string()),
        ("tasks", s.tasks_total.to_string()),
    ];
    match &d.assignment {
        Some(a) => fields.push((
            "assignment",
            format!("version {}, artifact {}", a.version, a.artifact),
        )),
        None => fields.push(("assignment", "none (not scheduled)".to_string())),
    }
    if !s.scheduler_info.trim().is_empty() {
        fields.push(("scheduler", s.scheduler_info.trim().to_string()));
    }
    for (k, v) in fields {
        let _ = writeln!(out, "  {:<11} {}", format!("{k}:"), cleaned(&v));
    }
    let _ = writeln!(out, "\nConfiguration:");
    let mut config = d.configuration.iter().peekable();
    if config.peek().is_none() {
        let _ = writeln!(out, "  (defaults)");
    }
    for (k, v) in config {
        let _ = writeln!(out, "  {} = {}", cleaned(k), cleaned(&config_value(v)));
    }
    let _ = writeln!(out, "\nTasks:");
    let rows = task_rows(d);
    if rows.is_empty() {
        let _ = writeln!(out, "  (none: not scheduled yet)");
    } else {
        for line in task_table(&rows).lines() {
            let _ = writeln!(out, "  {line}");
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use tempest_protocol::control::{Assignment, TaskError, TopologySummary, WorkerSlot};
    use tempest_protocol::{Config, ExecutorPlan, TopologySpec};

    fn summary(name: &str, status: TopologyState) -> TopologySummary {
        TopologySummary {
            id: name.into(),
            name: name.into(),
            status,
            uptime_seconds: 3725,
            uptime: "1h 2m 5s".into(),
            workers_total: 2,
            executors_total: 7,
            tasks_total: 9,
            requested_workers: 2,
            scheduler_info: String::new(),
        }
    }

    #[test]
    fn tables_align_text_left_and_numbers_right() {
        let mut t = Table::new(&[("NAME", Align::Left), ("N", Align::Right)]);
        t.row(vec!["a".into(), "1".into()]);
        t.row(vec!["longer".into(), "12345".into()]);
        t.row(vec!["x\ny".into()]);
        assert_eq!(
            t.render(),
            "NAME        N\n\
             a           1\n\
             longer  12345\n\
             x y\n"
        );
    }

    #[test]
    fn durations_use_the_two_largest_units() {
        assert_eq!(duration(0), "0s");
        assert_eq!(duration(59), "59s");
        assert_eq!(duration(192), "3m 12s");
        assert_eq!(duration(3725), "1h 2m");
        assert_eq!(duration(3 * 86_400 + 4 * 3600 + 5), "3d 4h");
        assert_eq!(bytes(512), "512 B");
        assert_eq!(bytes(8_493_465), "8.1 MiB");
    }

    #[test]
    fn list_shows_every_topology_sorted_and_why_one_waits() {
        let mut pending = summary("b-pending", TopologyState::Pending);
        pending.workers_total = 0;
        pending.executors_total = 0;
        pending.scheduler_info = "waiting for slots: needs 2 workers, 1 free slot".into();
        let list = TopologyList {
            topologies: vec![pending, summary("a-wc", TopologyState::Active)],
        };
        assert_eq!(
            topology_list(&list),
            "NAME       STATUS   UPTIME  WORKERS  EXECUTORS  TASKS  INFO\n\
             a-wc       ACTIVE    1h 2m        2          7      9\n\
             b-pending  PENDING   1h 2m      0/2          0      9  waiting for slots: needs 2 workers, 1 free slot\n"
        );
        let list = TopologyList {
            topologies: vec![summary("wc", TopologyState::Inactive)],
        };
        assert_eq!(
            topology_list(&list),
            "NAME  STATUS    UPTIME  WORKERS  EXECUTORS  TASKS\n\
             wc    INACTIVE   1h 2m        2          7      9\n"
        );
        assert_eq!(
            topology_list(&TopologyList { topologies: vec![] }),
            "no topologies\n"
        );
    }

    fn details() -> TopologyDetails {
        let spec = TopologySpec {
            name: "wc".into(),
            config: Config::new(),
            components: vec![],
        };
        let slot = |port: u16, executors: Vec<ExecutorPlan>| WorkerSlot {
            supervisor: "s1".into(),
            host: "10.0.0.1".into(),
            port,
            executors,
        };
        let plan = |component: &str, tasks: std::ops::Range<u32>| ExecutorPlan {
            component: component.into(),
            tasks,
        };
        let mut configuration = Config::new();
        configuration.set("topology.workers", 2).set("my.name", "x");
        TopologyDetails {
            summary: summary("wc", TopologyState::Active),
            view: Default::default(),
            configuration,
            assignment: Some(Assignment {
                topology: "wc".into(),
                version: 3,
                artifact: "ab".repeat(32),
                spec,
                workers: vec![
                    slot(6700, vec![plan("sentences", 1..2), plan("split", 2..4)]),
                    slot(6701, vec![plan("count", 4..5)]),
                ],
            }),
            tasks: vec![
                PlacedTaskMetrics {
                    host: "10.0.0.1".into(),
                    port: 6700,
                    last_heartbeat_secs: 1,
                    metrics: TaskMetrics {
                        task_id: 2,
                        component: "split".into(),
                        emitted: 100,
                        transferred: 100,
                        acked: 10,
                        failed: 1,
                        executed: 11,
                        execute_latency_ms: 0.0123,
                        process_latency_ms: 0.05,
                        complete_latency_ms: 0.0,
                        capacity: 0.25,
                        held: 0,
                        late: 0,
                        lag: Vec::new(),
                        checkpoint: None,
                        failures: Default::default(),
                        errors: vec![
                            TaskError {
                                time_secs: 2,
                                error: "newer\nerror".into(),
                            },
                            TaskError {
                                time_secs: 1,
                                error: "older".into(),
                            },
                        ],
                    },
                },
                PlacedTaskMetrics {
                    host: "10.0.0.2".into(),
                    port: 6800,
                    last_heartbeat_secs: 40,
                    metrics: TaskMetrics {
                        task_id: 9,
                        component: "__acker".into(),
                        ..TaskMetrics::default()
                    },
                },
            ],
        }
    }

    #[test]
    fn every_task_gets_a_row_with_or_without_metrics() {
        let rows = task_rows(&details());
        let ids: Vec<u32> = rows.iter().map(|r| r.task_id).collect();
        assert_eq!(ids, vec![1, 2, 3, 4, 9]);
        assert_eq!(rows[0].address, "10.0.0.1:6700");
        assert!(rows[0].metrics.is_none());
        assert_eq!(rows[1].metrics.as_ref().map(|m| m.emitted), Some(100));
        assert_eq!(rows[3].address, "10.0.0.1:6701");
        assert_eq!(rows[4].address, "10.0.0.2:6800");
    }

    #[test]
    fn describe_shows_summary_config_and_tasks() {
        let text = topology_details(&details());
        let expected = "\
Topology wc (ACTIVE)
  uptime:     1h 2m
  workers:    2 (requested 2)
  executors:  7
  tasks:      9
  assignment: version 3, artifact abababababababababababababababababababababababababababababababab

Configuration:
  my.name = x
  topology.workers = 2

Tasks:
  TASK  COMPONENT  HOST:PORT      EMITTED  TRANSFERRED  ACKED  FAILED  EXECUTED  EXEC-MS  PROCESS-MS  COMPLETE-MS  CAPACITY  LAST ERROR
     1  sentences  10.0.0.1:6700        -            -      -       -         -        -           -            -         -  (not reported)
     2  split      10.0.0.1:6700      100          100     10       1        11    0.012       0.050            -     0.250  newer error
     3  split      10.0.0.1:6700        -            -      -       -         -        -           -            -         -  (not reported)
     4  count      10.0.0.1:6701        -            -      -       -         -        -           -            -         -  (not reported)
     9  __acker    10.0.0.2:6800        0            0      0       0         0        -           -            -     0.000
";
        assert_eq!(text, expected, "got:\n{text}");
    }

    #[test]
    fn long_errors_are_cut() {
        let long = "e".repeat(200);
        let cut = truncated(&long, MAX_ERROR_CHARS);
        assert_eq!(cut.chars().count(), MAX_ERROR_CHARS);
        assert!(cut.ends_with('…'));
    }

    #[test]
    fn actions_show_state_and_message() {
        let r = ActionResponse {
            name: "wc".into(),
            state: TopologyState::Pending,
            message: "waiting for slots: needs 2 workers, 1 free slot".into(),
        };
        assert_eq!(
            action(&r),
            "wc: PENDING (waiting for slots: needs 2 workers, 1 free slot)\n"
        );
        let r = ActionResponse {
            message: String::new(),
            state: TopologyState::Killed,
            ..r
        };
        assert_eq!(action(&r), "wc: KILLED\n");
    }
}
