//! Live per-task metrics. Executors keep plain counters (no atomics on the hot path) and publish
//! a snapshot to the process's [`MetricsBoard`] about once a second; workers send the board in
//! their heartbeats. Latencies are sampled (one tuple in [`SAMPLE_EVERY`]).

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use tempest_protocol::control::{TaskError, TaskMetrics};

/// One tuple in this many gets its execute latency measured.
pub(crate) const SAMPLE_EVERY: u64 = 16;
/// How often an executor publishes its tasks' metrics.
pub(crate) const PUBLISH_EVERY: Duration = Duration::from_secs(1);

/// The latest metrics of every task of this process.
#[derive(Debug, Default)]
pub struct MetricsBoard {
    tasks: Mutex<BTreeMap<u32, TaskMetrics>>,
}

impl MetricsBoard {
    /// A copy of every task's latest metrics, by task id.
    pub fn snapshot(&self) -> Vec<TaskMetrics> {
        self.tasks
            .lock()
            .map(|t| t.values().cloned().collect())
            .unwrap_or_default()
    }

    pub(crate) fn publish(&self, m: TaskMetrics) {
        if let Ok(mut t) = self.tasks.lock() {
            t.insert(m.task_id, m);
        }
    }
}

/// Sampled latency sums of one task.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Latencies {
    pub execute_ns: u64,
    pub process_ns: u64,
    pub samples: u64,
    pub complete_ns: u64,
    pub completed: u64,
    /// Counter deciding which tuple is sampled.
    pub tick: u64,
    /// Executed count and time at the start of the current capacity window.
    pub window_executed: u64,
    pub window_start: Instant,
    pub last_publish: Instant,
}

impl Default for Latencies {
    fn default() -> Self {
        let now = Instant::now();
        Latencies {
            execute_ns: 0,
            process_ns: 0,
            samples: 0,
            complete_ns: 0,
            completed: 0,
            tick: 0,
            window_executed: 0,
            window_start: now,
            last_publish: now,
        }
    }
}

impl Latencies {
    /// True if the next tuple should be timed.
    #[inline]
    pub(crate) fn sample_next(&mut self) -> bool {
        self.tick = self.tick.wrapping_add(1);
        self.tick % SAMPLE_EVERY == 0
    }

    fn mean_ms(sum_ns: u64, n: u64) -> f64 {
        if n == 0 {
            0.0
        } else {
            sum_ns as f64 / n as f64 / 1e6
        }
    }

    /// Mean execute latency in ms.
    pub(crate) fn execute_ms(&self) -> f64 {
        Self::mean_ms(self.execute_ns, self.samples)
    }
    /// Mean process latency in ms.
    pub(crate) fn process_ms(&self) -> f64 {
        Self::mean_ms(self.process_ns, self.samples)
    }
    /// Mean complete latency in ms.
    pub(crate) fn complete_ms(&self) -> f64 {
        Self::mean_ms(self.complete_ns, self.completed)
    }

    /// Fraction of the window since the last call spent executing, estimated as executed
    /// tuples times mean execute latency (Storm's capacity); starts a new window.
    pub(crate) fn take_capacity(&mut self, executed: u64, now: Instant) -> f64 {
        let window = now.duration_since(self.window_start).as_secs_f64();
        let n = executed.saturating_sub(self.window_executed);
        self.window_executed = executed;
        self.window_start = now;
        if window <= 0.0 {
            return 0.0;
        }
        (n as f64 * self.execute_ms() / 1e3 / window).min(1.0)
    }
}

/// Seconds since the Unix epoch.
pub(crate) fn unix_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// A reported error, stamped now.
pub(crate) fn task_error(msg: String) -> TaskError {
    TaskError {
        time_secs: unix_secs(),
        error: msg,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn capacity_is_busy_fraction_of_the_window() {
        let mut l = Latencies::default();
        let start = l.window_start;
        // 1000 tuples at 0.5 ms each in a 1 s window: half busy.
        l.execute_ns = 500_000 * 10;
        l.samples = 10;
        let c = l.take_capacity(1000, start + Duration::from_secs(1));
        assert!((c - 0.5).abs() < 1e-9, "{c}");
        // Nothing executed in the next window.
        assert_eq!(l.take_capacity(1000, start + Duration::from_secs(2)), 0.0);
    }

    #[test]
    fn one_in_sample_every_is_sampled() {
        let mut l = Latencies::default();
        let n = (0..SAMPLE_EVERY * 10).filter(|_| l.sample_next()).count();
        assert_eq!(n, 10);
    }
}
