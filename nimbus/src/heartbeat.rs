//! What the heartbeats say, kept in memory: the supervisor registry and its liveness, when each
//! assigned worker slot last reported, and the latest metrics of every task.

use crate::scheduler::SupervisorSlots;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::time::Duration;
use tokio::time::Instant;
use topology_api::control::{
    Assignment, PlacedTaskMetrics, SupervisorHeartbeat, SupervisorSummary, TaskMetrics,
    WorkerHeartbeat,
};

/// Errors kept per task (the most recent).
pub(crate) const MAX_ERRORS_PER_TASK: usize = 10;
/// Characters kept of one task error.
pub(crate) const MAX_ERROR_CHARS: usize = 2_000;
/// Slots one supervisor may offer.
pub(crate) const MAX_SLOTS_PER_SUPERVISOR: usize = 1_024;
/// A supervisor silent this long is forgotten (it is listed as dead until then).
pub(crate) const FORGET_SUPERVISOR_AFTER: Duration = Duration::from_secs(3_600);

/// The clocks liveness is judged by.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Timeouts {
    /// When this Nimbus started: nothing is declared dead before a timeout has passed since.
    pub(crate) started: Instant,
    /// `supervisor_timeout_secs`.
    pub(crate) supervisor: Duration,
    /// `worker_timeout_secs`.
    pub(crate) worker: Duration,
}

/// A supervisor as its last heartbeat described it.
#[derive(Debug, Clone)]
struct SupervisorEntry {
    host: String,
    slots: Vec<u16>,
    http: Option<String>,
    first_seen: Instant,
    last_seen: Instant,
}

/// A slot of an assignment whose worker must move, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct DeadSlot {
    /// Its index in the assignment's workers.
    pub(crate) index: usize,
    /// Why it is dead.
    pub(crate) reason: String,
}

/// A task's latest metrics and where they came from.
#[derive(Debug, Clone)]
struct TaskEntry {
    host: String,
    port: u16,
    at: Instant,
    metrics: TaskMetrics,
}

/// Everything learned from heartbeats.
#[derive(Debug, Default)]
pub(crate) struct Heartbeats {
    supervisors: BTreeMap<String, SupervisorEntry>,
    /// Last heartbeat of a worker of the current assignment version, by (topology, host, port).
    workers: HashMap<(String, String, u16), Instant>,
    /// Latest metrics by topology and task id.
    metrics: HashMap<String, BTreeMap<u32, TaskEntry>>,
}

/// Checks a supervisor heartbeat's fields.
pub(crate) fn check_supervisor_heartbeat(hb: &SupervisorHeartbeat) -> Result<(), String> {
    let id_ok = !hb.id.is_empty()
        && hb.id.len() <= 128
        && hb
            .id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-' | ':'));
    if !id_ok {
        return Err(format!(
            "supervisor id {:?} is not allowed: use 1-128 characters of A-Z a-z 0-9 . _ - :",
            hb.id
        ));
    }
    if hb.host.is_empty() || hb.host.len() > 255 || hb.host.chars().any(char::is_whitespace) {
        return Err(format!(
            "supervisor {:?}: host {:?} is not a host name or address",
            hb.id, hb.host
        ));
    }
    if hb.slots.len() > MAX_SLOTS_PER_SUPERVISOR {
        return Err(format!(
            "supervisor {:?} offers {} slots, more than the limit of {MAX_SLOTS_PER_SUPERVISOR}",
            hb.id,
            hb.slots.len()
        ));
    }
    if hb.slots.contains(&0) {
        return Err(format!("supervisor {:?} offers slot port 0", hb.id));
    }
    let distinct: HashSet<u16> = hb.slots.iter().copied().collect();
    if distinct.len() != hb.slots.len() {
        return Err(format!(
            "supervisor {:?} offers a slot port twice: {:?}",
            hb.id, hb.slots
        ));
    }
    if hb.workers.len() > MAX_SLOTS_PER_SUPERVISOR {
        return Err(format!(
            "supervisor {:?} reports {} workers, more than the limit of {MAX_SLOTS_PER_SUPERVISOR}",
            hb.id,
            hb.workers.len()
        ));
    }
    Ok(())
}

impl Heartbeats {
    /// Records a (checked) supervisor heartbeat. True if the supervisor is new, came back, or
    /// offers other slots than before: the scheduler should look again.
    pub(crate) fn record_supervisor(
        &mut self,
        hb: SupervisorHeartbeat,
        now: Instant,
        t: &Timeouts,
    ) -> bool {
        let mut slots = hb.slots;
        slots.sort_unstable();
        match self.supervisors.get_mut(&hb.id) {
            Some(e) => {
                let changed = now.duration_since(e.last_seen) > t.supervisor
                    || e.slots != slots
                    || e.host != hb.host;
                e.host = hb.host;
                e.slots = slots;
                e.http = hb.http;
                e.last_seen = now;
                changed
            }
            None => {
                tracing::info!(supervisor = %hb.id, host = %hb.host, slots = ?slots, "supervisor registered");
                self.supervisors.insert(
                    hb.id,
                    SupervisorEntry {
                        host: hb.host,
                        slots,
                        http: hb.http,
                        first_seen: now,
                        last_seen: now,
                    },
                );
                true
            }
        }
    }

    /// A live supervisor other than `hb`'s that already offers one of its host:port slots:
    /// (its id, the port). Two workers must never be assigned the same address.
    pub(crate) fn address_taken(
        &self,
        hb: &SupervisorHeartbeat,
        now: Instant,
        t: &Timeouts,
    ) -> Option<(String, u16)> {
        self.supervisors
            .iter()
            .filter(|(id, e)| **id != hb.id && e.host == hb.host && self.fresh(id, now, t))
            .find_map(|(id, e)| {
                hb.slots
                    .iter()
                    .find(|p| e.slots.contains(p))
                    .map(|p| (id.clone(), *p))
            })
    }

    /// Whether the supervisor's last heartbeat is within the timeout.
    fn fresh(&self, id: &str, now: Instant, t: &Timeouts) -> bool {
        self.supervisors
            .get(id)
            .is_some_and(|e| now.duration_since(e.last_seen) <= t.supervisor)
    }

    /// Whether the supervisor counts as alive for the slots assigned to it: within one timeout
    /// of this Nimbus's start every supervisor does, heard from or not.
    pub(crate) fn supervisor_alive(&self, id: &str, now: Instant, t: &Timeouts) -> bool {
        now.duration_since(t.started) <= t.supervisor || self.fresh(id, now, t)
    }

    /// Every live supervisor with its slots that are not in `used` (supervisor id, port).
    pub(crate) fn free_slots(
        &self,
        used: &HashSet<(String, u16)>,
        now: Instant,
        t: &Timeouts,
    ) -> Vec<SupervisorSlots> {
        self.supervisors
            .iter()
            .filter(|(id, _)| self.fresh(id, now, t))
            .map(|(id, e)| SupervisorSlots {
                id: id.clone(),
                host: e.host.clone(),
                free: e
                    .slots
                    .iter()
                    .copied()
                    .filter(|p| !used.contains(&(id.clone(), *p)))
                    .collect(),
            })
            .collect()
    }

    /// The slots of `a` whose workers must move: on a dead supervisor, on a port the supervisor
    /// no longer offers, or silent for longer than the worker timeout since `fresh_since`
    /// (when the assignment was made, or Nimbus started).
    pub(crate) fn dead_slots(
        &self,
        a: &Assignment,
        fresh_since: Instant,
        now: Instant,
        t: &Timeouts,
    ) -> Vec<DeadSlot> {
        let mut dead = Vec::new();
        for (index, w) in a.workers.iter().enumerate() {
            let reason = if !self.supervisor_alive(&w.supervisor, now, t) {
                Some(format!(
                    "supervisor {} sent no heartbeat for {} s",
                    w.supervisor,
                    t.supervisor.as_secs()
                ))
            } else if self
                .supervisors
                .get(&w.supervisor)
                .is_some_and(|e| !e.slots.contains(&w.port))
            {
                Some(format!(
                    "supervisor {} no longer offers port {}",
                    w.supervisor, w.port
                ))
            } else {
                let key = (a.topology.clone(), w.host.clone(), w.port);
                let last = self
                    .workers
                    .get(&key)
                    .map_or(fresh_since, |&at| at.max(fresh_since));
                (now.duration_since(last) > t.worker).then(|| {
                    format!(
                        "worker {} sent no heartbeat for {} s",
                        w.address(),
                        t.worker.as_secs()
                    )
                })
            };
            if let Some(reason) = reason {
                dead.push(DeadSlot { index, reason });
            }
        }
        dead
    }

    /// Records a worker heartbeat of the current assignment: its slot is alive, and its tasks'
    /// metrics (task ids up to `max_task`) replace the previous ones.
    pub(crate) fn record_worker(&mut self, hb: WorkerHeartbeat, max_task: u32, now: Instant) {
        self.workers
            .insert((hb.topology.clone(), hb.host.clone(), hb.port), now);
        let tasks = self.metrics.entry(hb.topology).or_default();
        for mut m in hb.tasks {
            if m.task_id == 0 || m.task_id > max_task {
                continue;
            }
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
            tasks.insert(
                m.task_id,
                TaskEntry {
                    host: hb.host.clone(),
                    port: hb.port,
                    at: now,
                    metrics: m,
                },
            );
        }
    }

    /// The latest metrics of a topology's tasks, by task id.
    pub(crate) fn task_metrics(&self, topology: &str, now: Instant) -> Vec<PlacedTaskMetrics> {
        self.metrics
            .get(topology)
            .map(|tasks| {
                tasks
                    .values()
                    .map(|e| PlacedTaskMetrics {
                        host: e.host.clone(),
                        port: e.port,
                        last_heartbeat_secs: now.duration_since(e.at).as_secs(),
                        metrics: e.metrics.clone(),
                    })
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Forgets what workers of a removed topology said.
    pub(crate) fn forget_topology(&mut self, topology: &str) {
        self.metrics.remove(topology);
        self.workers.retain(|(t, _, _), _| t != topology);
    }

    /// Forgets worker liveness of slots no assignment has any more, metrics of topologies that
    /// are gone, and supervisors silent for [`FORGET_SUPERVISOR_AFTER`].
    pub(crate) fn prune(&mut self, assignments: &BTreeMap<String, Assignment>, now: Instant) {
        self.workers.retain(|(t, host, port), _| {
            assignments
                .get(t)
                .is_some_and(|a| a.slot(host, *port).is_some())
        });
        self.metrics.retain(|t, _| assignments.contains_key(t));
        self.supervisors.retain(|id, e| {
            let keep = now.duration_since(e.last_seen) < FORGET_SUPERVISOR_AFTER;
            if !keep {
                tracing::info!(supervisor = %id, "forgetting a supervisor silent for an hour");
            }
            keep
        });
    }

    /// The supervisor list; `used` counts the assigned slots of a supervisor.
    pub(crate) fn summaries(
        &self,
        used: impl Fn(&str) -> u32,
        now: Instant,
        t: &Timeouts,
    ) -> Vec<SupervisorSummary> {
        self.supervisors
            .iter()
            .map(|(id, e)| SupervisorSummary {
                id: id.clone(),
                host: e.host.clone(),
                uptime_seconds: now.duration_since(e.first_seen).as_secs(),
                slots_total: e.slots.len() as u32,
                slots_used: used(id),
                last_heartbeat_secs: now.duration_since(e.last_seen).as_secs(),
                alive: self.fresh(id, now, t),
                http: e.http.clone(),
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use topology_api::control::{TaskError, WorkerSlot};

    fn timeouts(started: Instant) -> Timeouts {
        Timeouts {
            started,
            supervisor: Duration::from_secs(15),
            worker: Duration::from_secs(30),
        }
    }

    fn hb(id: &str, slots: &[u16]) -> SupervisorHeartbeat {
        SupervisorHeartbeat {
            id: id.into(),
            host: "h".into(),
            slots: slots.to_vec(),
            workers: vec![],
            http: None,
        }
    }

    fn assignment(slots: &[(&str, u16)]) -> Assignment {
        let spec = crate::state::tests::spec("t", 1);
        Assignment {
            topology: "t".into(),
            version: 1,
            artifact: "a".repeat(64),
            spec,
            workers: slots
                .iter()
                .map(|(s, p)| WorkerSlot {
                    supervisor: s.to_string(),
                    host: "h".into(),
                    port: *p,
                    executors: vec![],
                })
                .collect(),
        }
    }

    #[test]
    fn heartbeats_are_checked() {
        assert!(check_supervisor_heartbeat(&hb("a", &[6700, 6701])).is_ok());
        let e = check_supervisor_heartbeat(&hb("../x", &[1])).unwrap_err();
        assert!(e.contains("\"../x\""), "{e}");
        assert!(check_supervisor_heartbeat(&hb("a", &[1, 1])).is_err());
        assert!(check_supervisor_heartbeat(&hb("a", &[0])).is_err());
    }

    #[test]
    fn a_live_supervisor_owns_its_addresses() {
        let t = timeouts(Instant::now());
        let mut h = Heartbeats::default();
        h.record_supervisor(hb("a", &[6700, 6701]), Instant::now(), &t);
        assert_eq!(
            h.address_taken(&hb("b", &[6701, 6800]), Instant::now(), &t),
            Some(("a".to_string(), 6701))
        );
        assert_eq!(h.address_taken(&hb("a", &[6701]), Instant::now(), &t), None);
        let mut elsewhere = hb("b", &[6701]);
        elsewhere.host = "other".into();
        assert_eq!(h.address_taken(&elsewhere, Instant::now(), &t), None);
    }

    #[tokio::test(start_paused = true)]
    async fn no_supervisor_is_dead_before_one_timeout_after_start() {
        let start = Instant::now();
        let t = timeouts(start);
        let mut h = Heartbeats::default();
        let a = assignment(&[("never-seen", 6700), ("seen", 6700)]);
        tokio::time::advance(Duration::from_secs(10)).await;
        assert!(h.record_supervisor(hb("seen", &[6700]), Instant::now(), &t));
        assert!(!h.record_supervisor(hb("seen", &[6700]), Instant::now(), &t));
        assert!(h.dead_slots(&a, start, Instant::now(), &t).is_empty());
        tokio::time::advance(Duration::from_secs(6)).await;
        let dead = h.dead_slots(&a, start, Instant::now(), &t);
        assert_eq!(dead.len(), 1);
        assert_eq!(dead[0].index, 0);
        assert!(dead[0].reason.contains("never-seen"), "{dead:?}");
        tokio::time::advance(Duration::from_secs(10)).await;
        assert_eq!(h.dead_slots(&a, start, Instant::now(), &t).len(), 2);
        // Back after being dead: the scheduler must look again.
        assert!(h.record_supervisor(hb("seen", &[6700]), Instant::now(), &t));
    }

    #[tokio::test(start_paused = true)]
    async fn a_silent_worker_slot_is_dead_after_the_worker_timeout() {
        let start = Instant::now();
        let t = timeouts(start);
        let mut h = Heartbeats::default();
        let a = assignment(&[("s", 6700), ("s", 6701)]);
        tokio::time::advance(Duration::from_secs(25)).await;
        h.record_supervisor(hb("s", &[6700, 6701]), Instant::now(), &t);
        h.record_worker(
            WorkerHeartbeat {
                topology: "t".into(),
                host: "h".into(),
                port: 6700,
                version: 1,
                tasks: vec![],
            },
            10,
            Instant::now(),
        );
        tokio::time::advance(Duration::from_secs(10)).await;
        h.record_supervisor(hb("s", &[6700, 6701]), Instant::now(), &t);
        let dead = h.dead_slots(&a, start, Instant::now(), &t);
        assert_eq!(dead.len(), 1, "{dead:?}");
        assert_eq!(dead[0].index, 1);
        // A port the supervisor stopped offering is dead at once.
        h.record_supervisor(hb("s", &[6701]), Instant::now(), &t);
        let dead = h.dead_slots(&a, Instant::now(), Instant::now(), &t);
        assert_eq!(dead.len(), 1);
        assert!(dead[0].reason.contains("no longer offers port 6700"));
    }

    #[tokio::test(start_paused = true)]
    async fn metrics_keep_the_latest_per_task_and_few_errors() {
        let t0 = Instant::now();
        let mut h = Heartbeats::default();
        let errors: Vec<TaskError> = (0..50)
            .map(|i| TaskError {
                time_secs: i,
                error: "x".repeat(5_000),
            })
            .collect();
        let tasks = vec![
            TaskMetrics {
                task_id: 1,
                emitted: 5,
                errors,
                ..TaskMetrics::default()
            },
            TaskMetrics {
                task_id: 99,
                ..TaskMetrics::default()
            },
        ];
        let wh = WorkerHeartbeat {
            topology: "t".into(),
            host: "h".into(),
            port: 6700,
            version: 1,
            tasks,
        };
        h.record_worker(wh, 10, t0);
        tokio::time::advance(Duration::from_secs(3)).await;
        let m = h.task_metrics("t", Instant::now());
        assert_eq!(m.len(), 1, "task 99 is not a task of the topology");
        assert_eq!(m[0].last_heartbeat_secs, 3);
        assert_eq!(m[0].metrics.errors.len(), MAX_ERRORS_PER_TASK);
        assert_eq!(
            m[0].metrics.errors[0].time_secs, 40,
            "the most recent are kept"
        );
        assert!(m[0].metrics.errors[0].error.len() <= MAX_ERROR_CHARS + 3);
        h.forget_topology("t");
        assert!(h.task_metrics("t", Instant::now()).is_empty());
    }
}
