//! What the heartbeats say, kept in memory: the supervisor registry and its liveness, and when
//! each assigned worker slot last reported. (The tasks' metrics are in the
//! `MetricsHistory` of `topology_api::monitor`.)

use crate::scheduler::SupervisorSlots;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::time::Duration;
use tempest_protocol::control::stats::pretty_duration;
use tempest_protocol::control::{Assignment, SupervisorHeartbeat, SupervisorSummary};
use tokio::time::Instant;

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

/// Everything learned from heartbeats.
#[derive(Debug, Default)]
pub(crate) struct Heartbeats {
    supervisors: BTreeMap<String, SupervisorEntry>,
    /// Last heartbeat of a worker of the current assignment version, by (topology, host, port).
    workers: HashMap<(String, String, u16), Instant>,
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

    /// Records a worker heartbeat of the current assignment: its slot is alive.
    pub(crate) fn record_worker(&mut self, topology: &str, host: &str, port: u16, now: Instant) {
        self.workers
            .insert((topology.to_string(), host.to_string(), port), now);
    }

    /// When the worker on `host:port` of `topology` last reported, if it has.
    pub(crate) fn worker_seen(&self, topology: &str, host: &str, port: u16) -> Option<Instant> {
        self.workers
            .get(&(topology.to_string(), host.to_string(), port))
            .copied()
    }

    /// A supervisor's host, slots and log server URL (if it has one), by id.
    pub(crate) fn supervisor(&self, id: &str) -> Option<(&str, &[u16], Option<&str>)> {
        self.supervisors
            .get(id)
            .map(|e| (e.host.as_str(), e.slots.as_slice(), e.http.as_deref()))
    }

    /// Every known supervisor: id, host, slots and log server URL.
    pub(crate) fn supervisors(
        &self,
    ) -> impl Iterator<Item = (&str, &str, &[u16], Option<&str>)> + '_ {
        self.supervisors.iter().map(|(id, e)| {
            (
                id.as_str(),
                e.host.as_str(),
                e.slots.as_slice(),
                e.http.as_deref(),
            )
        })
    }

    /// Forgets what workers of a removed topology said.
    pub(crate) fn forget_topology(&mut self, topology: &str) {
        self.workers.retain(|(t, _, _), _| t != topology);
    }

    /// Forgets worker liveness of slots no assignment has any more, and supervisors silent for
    /// [`FORGET_SUPERVISOR_AFTER`].
    pub(crate) fn prune(&mut self, assignments: &BTreeMap<String, Assignment>, now: Instant) {
        self.workers.retain(|(t, host, port), _| {
            assignments
                .get(t)
                .is_some_and(|a| a.slot(host, *port).is_some())
        });
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
                uptime: pretty_duration(now.duration_since(e.first_seen).as_secs()),
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
    use tempest_protocol::control::WorkerSlot;

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
        h.record_worker("t", "h", 6700, Instant::now());
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
}
