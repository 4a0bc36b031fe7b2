//! Per-task metrics over time, from the workers' heartbeats: monotonic running totals (a worker
//! restart or a move starts a new segment instead of making counters go down) and a bounded
//! history of them, so any window's counts are a subtraction and its mean latencies a ratio of
//! two subtractions. See "How the windows are computed" in `docs/design/rest-api.md`.

use std::collections::{BTreeMap, HashMap, VecDeque};
use tempest_protocol::control::{PlacedTaskMetrics, TaskError, TaskMetrics, WorkerHeartbeat};

/// Errors kept per task (the most recent).
pub(crate) const MAX_ERRORS_PER_TASK: usize = 10;
/// Characters kept of one task error.
pub(crate) const MAX_ERROR_CHARS: usize = 2_000;

/// Span over which rates and recent latencies are computed: a task's newest sample against
/// its oldest one at most this much older. A task silent for this long has no rate.
pub(crate) const RECENT_SPAN_MS: u64 = 30_000;

/// A resolution of the history: a sample at most every `spacing_ms`, kept until a newer one is
/// at least `keep_ms` old (so one sample at or before `now - keep_ms` always remains), and
/// never more than `max_len`.
#[derive(Debug, Clone, Copy)]
struct Resolution {
    spacing_ms: u64,
    keep_ms: u64,
    max_len: usize,
}

/// Every sample for 10 minutes, one a minute for 3 hours, one every 10 minutes for a day.
const RESOLUTIONS: [Resolution; 3] = [
    Resolution {
        spacing_ms: 0,
        keep_ms: 600_000,
        max_len: 512,
    },
    Resolution {
        spacing_ms: 60_000,
        keep_ms: 10_800_000,
        max_len: 200,
    },
    Resolution {
        spacing_ms: 600_000,
        keep_ms: 86_400_000,
        max_len: 160,
    },
];

/// Cumulative counts of a task, and latency sums (mean × count) so windowed means can be
/// computed by subtraction.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub(crate) struct Totals {
    pub(crate) emitted: u64,
    pub(crate) transferred: u64,
    pub(crate) acked: u64,
    pub(crate) failed: u64,
    pub(crate) executed: u64,
    /// Σ execute latency (ms) over executed tuples.
    pub(crate) execute_ms_sum: f64,
    /// Σ process latency (ms) over executed tuples.
    pub(crate) process_ms_sum: f64,
    /// Σ complete latency (ms) over completed (acked) trees.
    pub(crate) complete_ms_sum: f64,
}

/// A latency sum from a reported mean, sanitised (a worker could send NaN or a negative).
fn latency_sum(mean_ms: f64, count: u64) -> f64 {
    if mean_ms.is_finite() && mean_ms > 0.0 {
        mean_ms * count as f64
    } else {
        0.0
    }
}

impl Totals {
    /// What a report says, cumulative since its worker started.
    fn of_report(m: &TaskMetrics) -> Totals {
        Totals {
            emitted: m.emitted,
            transferred: m.transferred,
            acked: m.acked,
            failed: m.failed,
            executed: m.executed,
            execute_ms_sum: latency_sum(m.execute_latency_ms, m.executed),
            process_ms_sum: latency_sum(m.process_latency_ms, m.executed),
            complete_ms_sum: latency_sum(m.complete_latency_ms, m.acked),
        }
    }

    /// True if any counter is lower than in `before`: the task started counting again.
    fn went_down_from(&self, before: &Totals) -> bool {
        self.emitted < before.emitted
            || self.transferred < before.transferred
            || self.acked < before.acked
            || self.failed < before.failed
            || self.executed < before.executed
    }

    /// The sum of two.
    pub(crate) fn plus(&self, o: &Totals) -> Totals {
        Totals {
            emitted: self.emitted.saturating_add(o.emitted),
            transferred: self.transferred.saturating_add(o.transferred),
            acked: self.acked.saturating_add(o.acked),
            failed: self.failed.saturating_add(o.failed),
            executed: self.executed.saturating_add(o.executed),
            execute_ms_sum: self.execute_ms_sum + o.execute_ms_sum,
            process_ms_sum: self.process_ms_sum + o.process_ms_sum,
            complete_ms_sum: self.complete_ms_sum + o.complete_ms_sum,
        }
    }

    /// What happened since `earlier` (never negative).
    fn since(&self, earlier: &Totals) -> Totals {
        Totals {
            emitted: self.emitted.saturating_sub(earlier.emitted),
            transferred: self.transferred.saturating_sub(earlier.transferred),
            acked: self.acked.saturating_sub(earlier.acked),
            failed: self.failed.saturating_sub(earlier.failed),
            executed: self.executed.saturating_sub(earlier.executed),
            execute_ms_sum: (self.execute_ms_sum - earlier.execute_ms_sum).max(0.0),
            process_ms_sum: (self.process_ms_sum - earlier.process_ms_sum).max(0.0),
            complete_ms_sum: (self.complete_ms_sum - earlier.complete_ms_sum).max(0.0),
        }
    }

    /// Mean execute latency, ms (0 without executed tuples).
    pub(crate) fn execute_latency_ms(&self) -> f64 {
        mean(self.execute_ms_sum, self.executed)
    }

    /// Mean process latency, ms.
    pub(crate) fn process_latency_ms(&self) -> f64 {
        mean(self.process_ms_sum, self.executed)
    }

    /// Mean complete latency, ms.
    pub(crate) fn complete_latency_ms(&self) -> f64 {
        mean(self.complete_ms_sum, self.acked)
    }
}

fn mean(sum: f64, n: u64) -> f64 {
    if n == 0 {
        0.0
    } else {
        sum / n as f64
    }
}

/// Running totals at a time (Unix ms).
#[derive(Debug, Clone, Copy)]
struct Sample {
    at_ms: u64,
    totals: Totals,
}

/// The samples of one resolution, oldest first.
#[derive(Debug, Clone, Default)]
struct Samples(VecDeque<Sample>);

impl Samples {
    fn push(&mut self, s: Sample, r: Resolution) {
        if let Some(last) = self.0.back_mut() {
            if s.at_ms <= last.at_ms {
                // The same instant: the newer totals replace it.
                *last = s;
                return;
            }
            if s.at_ms < last.at_ms.saturating_add(r.spacing_ms) {
                return;
            }
        }
        self.0.push_back(s);
        let cutoff = s.at_ms.saturating_sub(r.keep_ms);
        while self.0.len() >= 2 && self.0[1].at_ms <= cutoff {
            self.0.pop_front();
        }
        while self.0.len() > r.max_len {
            self.0.pop_front();
        }
    }

    /// The newest sample at or before `t`, if this resolution reaches back that far.
    fn at_or_before(&self, t: u64) -> Option<&Sample> {
        let n = self.0.partition_point(|s| s.at_ms <= t);
        n.checked_sub(1).and_then(|i| self.0.get(i))
    }
}

/// One task's history.
#[derive(Debug, Clone)]
pub struct TaskHistory {
    /// Its component.
    pub(crate) component: String,
    /// The worker it last reported from.
    pub(crate) host: String,
    /// The worker's port.
    pub(crate) port: u16,
    /// When it last reported (Unix ms, Nimbus's clock).
    pub(crate) last_at_ms: u64,
    /// When the current segment (this worker incarnation) first reported: the uptime Storm
    /// shows on workers and executors counts from here (at most one heartbeat late).
    pub(crate) since_ms: u64,
    /// Its latest report as sent (cumulative since its worker started).
    pub(crate) latest: TaskMetrics,
    /// Totals of the segments before the current one (worker restarts, moves).
    finished: Totals,
    /// The current segment's totals (the latest report).
    current: Totals,
    /// What a window reaching back before the first report counts from: zero, or (for a task
    /// of an assignment this Nimbus process did not make: it restarted) the first report's
    /// totals.
    before_first: Totals,
    /// One history per resolution.
    samples: [Samples; 3],
    /// Recent errors with the worker that reported them, oldest first (at most
    /// [`MAX_ERRORS_PER_TASK`]).
    errors: VecDeque<(TaskError, String, u16)>,
}

impl TaskHistory {
    /// Its running totals now (monotonic).
    pub(crate) fn total(&self) -> Totals {
        self.finished.plus(&self.current)
    }

    /// Seconds since its current worker incarnation first reported.
    pub(crate) fn uptime_secs(&self, now_ms: u64) -> u64 {
        now_ms.saturating_sub(self.since_ms) / 1000
    }

    /// What happened in the `secs` before `now_ms` (`None`: all time).
    pub(crate) fn in_window(&self, secs: Option<u64>, now_ms: u64) -> Totals {
        let total = self.total();
        let Some(secs) = secs else { return total };
        let start = now_ms.saturating_sub(secs.saturating_mul(1000));
        let base = self
            .samples
            .iter()
            .find(|s| s.0.front().is_some_and(|f| f.at_ms <= start))
            .and_then(|s| s.at_or_before(start))
            .map_or(self.before_first, |s| s.totals);
        total.since(&base)
    }

    /// What happened over the last [`RECENT_SPAN_MS`] and over how many seconds; `None` if the
    /// task has not reported in that span or has only one sample in it.
    pub(crate) fn recent(&self, now_ms: u64) -> Option<(Totals, f64)> {
        let fine = &self.samples[0].0;
        let newest = fine.back()?;
        if now_ms.saturating_sub(newest.at_ms) > RECENT_SPAN_MS {
            return None;
        }
        let from = newest.at_ms.saturating_sub(RECENT_SPAN_MS);
        let oldest = fine.iter().find(|s| s.at_ms >= from)?;
        let secs = (newest.at_ms - oldest.at_ms) as f64 / 1000.0;
        (secs > 0.0).then(|| (newest.totals.since(&oldest.totals), secs))
    }

    /// The latest report as sent, with where the task ran.
    pub(crate) fn placed(&self, now_ms: u64) -> PlacedTaskMetrics {
        PlacedTaskMetrics {
            host: self.host.clone(),
            port: self.port,
            last_heartbeat_secs: now_ms.saturating_sub(self.last_at_ms) / 1000,
            metrics: self.latest.clone(),
        }
    }

    /// Recent errors with the host and port that reported them, newest first.
    pub(crate) fn errors(&self) -> impl Iterator<Item = &(TaskError, String, u16)> {
        self.errors.iter().rev()
    }

    fn record(&mut self, m: TaskMetrics, host: &str, port: u16, now_ms: u64) {
        let now_ms = now_ms.max(self.last_at_ms);
        let totals = Totals::of_report(&m);
        if self.host != host || self.port != port || totals.went_down_from(&self.current) {
            self.finished = self.finished.plus(&self.current);
            self.since_ms = now_ms;
            self.host = host.to_string();
            self.port = port;
        }
        self.current = totals;
        for e in &m.errors {
            let known = self
                .errors
                .iter()
                .any(|(k, h, p)| k == e && h == host && *p == port);
            if !known {
                self.errors.push_back((e.clone(), host.to_string(), port));
            }
        }
        while self.errors.len() > MAX_ERRORS_PER_TASK {
            self.errors.pop_front();
        }
        self.latest = m;
        self.last_at_ms = now_ms;
        let sample = Sample {
            at_ms: now_ms,
            totals: self.total(),
        };
        for (s, r) in self.samples.iter_mut().zip(RESOLUTIONS) {
            s.push(sample, r);
        }
    }
}

/// Cuts what a worker sends to the bounds Nimbus keeps: the most recent errors, each at most
/// [`MAX_ERROR_CHARS`] long.
fn bounded(mut m: TaskMetrics) -> TaskMetrics {
    let excess = m.errors.len().saturating_sub(MAX_ERRORS_PER_TASK);
    m.errors.drain(..excess);
    for e in &mut m.errors {
        if e.error.len() > MAX_ERROR_CHARS {
            let mut cut = MAX_ERROR_CHARS;
            while !e.error.is_char_boundary(cut) {
                cut -= 1;
            }
            e.error.truncate(cut);
            e.error.push('…');
        }
    }
    m
}

/// The histories of every task of every live topology.
#[derive(Debug, Default)]
pub struct MetricsHistory {
    topologies: HashMap<String, BTreeMap<u32, TaskHistory>>,
}

impl MetricsHistory {
    /// Records a worker heartbeat of the current assignment received at `now_ms`: task ids
    /// from 1 to `max_task`, the others are ignored. `assigned_here`: this Nimbus process made
    /// the assignment, so its workers started counting after it; otherwise (Nimbus restarted)
    /// what a task counted before its first report here goes to "all time" only, as Nimbus
    /// cannot tell when it happened.
    pub fn record_worker(
        &mut self,
        hb: WorkerHeartbeat,
        max_task: u32,
        assigned_here: bool,
        now_ms: u64,
    ) {
        let tasks = self.topologies.entry(hb.topology).or_default();
        for m in hb.tasks {
            if m.task_id == 0 || m.task_id > max_task {
                continue;
            }
            let m = bounded(m);
            let task = tasks.entry(m.task_id).or_insert_with(|| TaskHistory {
                component: m.component.clone(),
                host: hb.host.clone(),
                port: hb.port,
                last_at_ms: now_ms,
                since_ms: now_ms,
                latest: TaskMetrics::default(),
                finished: Totals::default(),
                current: Totals::default(),
                before_first: if assigned_here {
                    Totals::default()
                } else {
                    Totals::of_report(&m)
                },
                samples: Default::default(),
                errors: VecDeque::new(),
            });
            task.component.clone_from(&m.component);
            task.record(m, &hb.host, hb.port, now_ms);
        }
    }

    /// A topology's tasks by id (empty if none reported).
    pub fn tasks(&self, topology: &str) -> Option<&BTreeMap<u32, TaskHistory>> {
        self.topologies.get(topology)
    }

    /// Keeps only the topologies `live` says are live.
    pub fn retain(&mut self, live: impl Fn(&str) -> bool) {
        self.topologies.retain(|t, _| live(t));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIN: u64 = 60_000;

    fn report(task_id: u32, emitted: u64, executed: u64, latency: f64) -> TaskMetrics {
        TaskMetrics {
            task_id,
            component: "c".into(),
            emitted,
            transferred: emitted,
            executed,
            acked: executed,
            execute_latency_ms: latency,
            process_latency_ms: latency,
            complete_latency_ms: latency,
            capacity: 0.5,
            held: 0,
            late: 0,
            lag: Vec::new(),
            checkpoint: None,
            ..TaskMetrics::default()
        }
    }

    fn hb(port: u16, tasks: Vec<TaskMetrics>) -> WorkerHeartbeat {
        WorkerHeartbeat {
            rollback: false,
            topology: "t".into(),
            host: "h".into(),
            port,
            version: 1,
            tasks,
        }
    }

    #[test]
    fn windows_subtract_the_totals_at_their_start() {
        let t0 = 10 * 86_400_000;
        let mut h = MetricsHistory::default();
        // 10 tuples a second, reported every 2 s for 20 minutes.
        let mut t = t0;
        while t <= t0 + 20 * MIN {
            let n = (t - t0) / 100;
            h.record_worker_here(hb(6700, vec![report(1, n, n, 2.0)]), 5, t);
            t += 2_000;
        }
        let now = t0 + 20 * MIN;
        let task = &h.tasks("t").unwrap()[&1];
        assert_eq!(task.in_window(None, now).emitted, 12_000);
        assert_eq!(task.in_window(Some(600), now).emitted, 6_000);
        assert_eq!(task.in_window(Some(10_800), now).emitted, 12_000);
        let w = task.in_window(Some(600), now);
        assert!((w.execute_latency_ms() - 2.0).abs() < 1e-9);
        let (recent, secs) = task.recent(now).unwrap();
        assert_eq!(secs, 30.0);
        assert_eq!(recent.emitted, 300);
        assert!(task.recent(now + 31_000).is_none(), "silent for too long");
    }

    #[test]
    fn a_restarted_worker_does_not_make_totals_go_down() {
        let t0 = 10 * 86_400_000;
        let mut h = MetricsHistory::default();
        h.record_worker_here(hb(6700, vec![report(1, 100, 100, 1.0)]), 5, t0);
        h.record_worker_here(hb(6700, vec![report(1, 500, 500, 1.0)]), 5, t0 + 2_000);
        // The worker restarted: counters from zero.
        h.record_worker_here(hb(6700, vec![report(1, 30, 30, 3.0)]), 5, t0 + 4_000);
        // It moved to another worker, whose counters happen to be higher.
        h.record_worker_here(hb(6701, vec![report(1, 600, 600, 1.0)]), 5, t0 + 6_000);
        let task = &h.tasks("t").unwrap()[&1];
        let all = task.in_window(None, t0 + 6_000);
        assert_eq!(all.emitted, 500 + 30 + 600);
        assert_eq!(task.port, 6701);
        assert_eq!(task.in_window(Some(600), t0 + 6_000).emitted, 1130);
        let mean = all.execute_latency_ms();
        let expected = (500.0 + 90.0 + 600.0) / 1130.0;
        assert!((mean - expected).abs() < 1e-9, "{mean} vs {expected}");
    }

    #[test]
    fn history_is_bounded_and_old_windows_stay_answerable() {
        let t0 = 10 * 86_400_000;
        let mut h = MetricsHistory::default();
        // Two days at one report a second: 1 tuple a second.
        let mut t = t0;
        while t <= t0 + 2 * 86_400_000 {
            let n = (t - t0) / 1000;
            h.record_worker_here(hb(6700, vec![report(1, n, 0, 0.0)]), 5, t);
            t += 1_000;
        }
        let now = t - 1_000;
        let task = &h.tasks("t").unwrap()[&1];
        let lens: Vec<usize> = task.samples.iter().map(|s| s.0.len()).collect();
        assert!(
            lens[0] <= 512 && lens[1] <= 200 && lens[2] <= 160,
            "{lens:?}"
        );
        assert_eq!(task.in_window(Some(600), now).emitted, 600);
        // Exact to one minute over 3 hours, to ten minutes over a day.
        let three_h = task.in_window(Some(10_800), now).emitted;
        assert!((10_800..=10_860).contains(&three_h), "{three_h}");
        let day = task.in_window(Some(86_400), now).emitted;
        assert!((86_400..=87_000).contains(&day), "{day}");
        assert_eq!(task.in_window(None, now).emitted, 2 * 86_400);
    }

    impl MetricsHistory {
        /// Records a heartbeat of an assignment made by this Nimbus.
        fn record_worker_here(&mut self, hb: WorkerHeartbeat, max_task: u32, now_ms: u64) {
            self.record_worker(hb, max_task, true, now_ms);
        }
    }

    #[test]
    fn counts_before_a_restarted_nimbus_heard_of_a_task_are_all_time_only() {
        let t0 = 10 * 86_400_000;
        let mut restarted = MetricsHistory::default();
        restarted.record_worker(
            hb(6700, vec![report(1, 1_000, 0, 0.0)]),
            5,
            false,
            t0 + 2_000,
        );
        restarted.record_worker(
            hb(6700, vec![report(1, 1_010, 0, 0.0)]),
            5,
            false,
            t0 + 4_000,
        );
        let task = &restarted.tasks("t").unwrap()[&1];
        assert_eq!(task.in_window(Some(600), t0 + 4_000).emitted, 10);
        assert_eq!(task.in_window(None, t0 + 4_000).emitted, 1_010);
        // A task that appears later (a new worker) counts from zero.
        let mut running = MetricsHistory::default();
        running.record_worker_here(hb(6700, vec![report(1, 7, 0, 0.0)]), 5, t0);
        let task = &running.tasks("t").unwrap()[&1];
        assert_eq!(task.in_window(Some(600), t0).emitted, 7);
    }

    #[test]
    fn errors_are_few_short_and_merged_across_reports() {
        let t0 = 10 * 86_400_000;
        let mut h = MetricsHistory::default();
        let mut m = report(1, 0, 0, 0.0);
        m.errors = (0..50)
            .map(|i| TaskError {
                time_secs: i,
                error: "x".repeat(5_000),
            })
            .collect();
        h.record_worker_here(hb(6700, vec![m.clone(), report(99, 0, 0, 0.0)]), 10, t0);
        h.record_worker_here(hb(6700, vec![m]), 10, t0 + 2_000);
        let tasks = h.tasks("t").unwrap();
        assert_eq!(tasks.len(), 1, "task 99 is not a task of the topology");
        let errors: Vec<_> = tasks[&1].errors().collect();
        assert_eq!(errors.len(), MAX_ERRORS_PER_TASK);
        assert_eq!(errors[0].0.time_secs, 49, "newest first");
        assert!(errors[0].0.error.len() <= MAX_ERROR_CHARS + 3);
        let latest = tasks[&1].placed(t0 + 5_000);
        assert_eq!(latest.last_heartbeat_secs, 3);
        assert_eq!(latest.metrics.errors.len(), MAX_ERRORS_PER_TASK);
        h.retain(|_| false);
        assert!(h.tasks("t").is_none());
    }
}
