//! One scheduler round, as a pure function of the durable state, the free slots, the dead slots
//! and the time: carry out due kills and rebalances, move workers off dead slots, schedule
//! pending topologies (oldest first). The result is a set of changes to commit at once.

use crate::heartbeat::DeadSlot;
use crate::scheduler::{self, plural, SupervisorSlots};
use crate::state::{rebalanced_spec, DeadlineAction, TopologyRecord};
use crate::store::{Changes, Durable};
use std::collections::HashMap;
use tempest_protocol::control::{Assignment, TopologyState, WorkerSlot};

/// What a round decided.
#[derive(Debug, Default)]
pub(crate) struct Round {
    /// The changes to commit.
    pub(crate) changes: Changes,
    /// Topologies removed (their metrics are dropped after the commit).
    pub(crate) removed: Vec<String>,
    /// What happened, to log after the commit.
    pub(crate) events: Vec<String>,
}

/// Plans a round. `free` lists every live supervisor with its unused ports; `dead` the dead
/// slots of each assignment; `rollbacks` the exactly-once topologies whose workers asked to
/// roll back, with the version they ran; `waiting` the new topologies whose binary is not yet
/// replicated enough, with what they wait for (they stay PENDING). At most `max_topologies`
/// topologies are changed (the store's transaction limit); the others wait for the next round.
pub(crate) fn plan(
    durable: &Durable,
    mut free: Vec<SupervisorSlots>,
    dead: &HashMap<String, Vec<DeadSlot>>,
    rollbacks: &HashMap<String, u64>,
    waiting: &HashMap<String, String>,
    max_topologies: usize,
    now_ms: u64,
) -> Round {
    let mut round = Round::default();
    let full = |round: &Round| {
        round
            .changes
            .topologies
            .len()
            .max(round.changes.assignments.len())
            >= max_topologies
    };
    let mut next_version = durable.next_version;
    let mut new_assignment = |rec: &TopologyRecord, spec, workers: Vec<WorkerSlot>| {
        let version = next_version;
        next_version += 1;
        Assignment {
            topology: rec.name.clone(),
            version,
            artifact: rec.artifact.clone(),
            spec,
            workers,
        }
    };
    let no_dead = Vec::new();

    // Due kills and rebalances.
    for rec in durable.topologies.values() {
        let Some(action) = rec.due(now_ms) else {
            continue;
        };
        if full(&round) {
            break;
        }
        let current = durable.assignments.get(&rec.name);
        let dead_here = dead.get(&rec.name).unwrap_or(&no_dead);
        match action {
            DeadlineAction::Kill => {
                round.changes.remove(&rec.name);
                round.removed.push(rec.name.clone());
                round
                    .events
                    .push(format!("topology {:?} killed and removed", rec.name));
                if let Some(a) = current {
                    give_back(&mut free, a, dead_here);
                }
            }
            DeadlineAction::Rebalance { request } => {
                let spec = rebalanced_spec(&rec.spec, request);
                let mut next = rec.clone();
                next.deadline = None;
                match current {
                    None => {
                        next.spec = spec;
                        next.state = TopologyState::Pending;
                    }
                    Some(a) => {
                        // Its own live slots are free for its new placement.
                        let mut pool = free.clone();
                        give_back(&mut pool, a, dead_here);
                        next.state = rec.resume;
                        match scheduler::rebalance(&a.workers, &spec, &mut pool) {
                            Ok(workers) => {
                                free = pool;
                                let n = workers.len();
                                let a = new_assignment(rec, spec.clone(), workers);
                                next.scheduler_info = format!(
                                    "rebalanced onto {n} worker{} (version {})",
                                    plural(n),
                                    a.version
                                );
                                next.spec = spec;
                                round.changes.put_assignment(a);
                            }
                            Err(e) => {
                                next.scheduler_info = format!(
                                    "rebalance not applied ({e}); kept version {}",
                                    a.version
                                );
                            }
                        }
                    }
                }
                round
                    .events
                    .push(format!("topology {:?}: {}", rec.name, next.scheduler_info));
                round.changes.put_topology(next);
            }
        }
    }

    // Exactly once: a worker lost its previous incarnation (or a tree failed). The same
    // placement under a new version restarts every worker (the version is part of their
    // placement), and each restores the last completed checkpoint.
    for (name, asked) in rollbacks {
        if full(&round) {
            break;
        }
        let (Some(rec), Some(a)) = (durable.topologies.get(name), durable.assignments.get(name))
        else {
            continue;
        };
        if a.version != *asked || round.changes.topologies.contains_key(name) {
            continue;
        }
        let next = new_assignment(rec, a.spec.clone(), a.workers.clone());
        let mut r = rec.clone();
        r.scheduler_info = format!(
            "exactly once: every worker restarted to roll back to the last completed checkpoint (version {})",
            next.version
        );
        round
            .events
            .push(format!("topology {name:?}: {}", r.scheduler_info));
        round.changes.put_assignment(next);
        round.changes.put_topology(r);
    }

    // Workers on dead slots move to free ones.
    for (name, a) in &durable.assignments {
        if full(&round) {
            break;
        }
        let Some(rec) = durable.topologies.get(name) else {
            continue;
        };
        let dead_here = match dead.get(name) {
            Some(d) if !d.is_empty() => d,
            _ => continue,
        };
        let settled = matches!(rec.state, TopologyState::Active | TopologyState::Inactive);
        if !settled || rec.deadline.is_some() || round.changes.topologies.contains_key(name) {
            continue;
        }
        let indexes: Vec<usize> = dead_here.iter().map(|d| d.index).collect();
        let moves = scheduler::move_workers(&a.workers, &indexes, &mut free);
        let reasons: Vec<&str> = dead_here.iter().map(|d| d.reason.as_str()).collect();
        let mut info = Vec::new();
        if !moves.moved.is_empty() {
            let next = new_assignment(rec, a.spec.clone(), moves.workers);
            info.push(format!(
                "moved {} (version {})",
                moves.moved.join(", "),
                next.version
            ));
            round.changes.put_assignment(next);
        }
        if !moves.stuck.is_empty() {
            info.push(format!(
                "no free slot for the worker{} on {}",
                plural(moves.stuck.len()),
                moves.stuck.join(", ")
            ));
        }
        let info = format!("{}: {}", reasons.join("; "), info.join("; "));
        if info != rec.scheduler_info {
            if !moves.moved.is_empty() {
                round.events.push(format!("topology {name:?}: {info}"));
            }
            let mut next = rec.clone();
            next.scheduler_info = info;
            round.changes.put_topology(next);
        }
    }

    // Pending topologies, oldest first.
    let mut pending: Vec<&TopologyRecord> = durable
        .topologies
        .values()
        .filter(|r| r.state == TopologyState::Pending && r.deadline.is_none())
        .filter(|r| !round.changes.topologies.contains_key(&r.name))
        .collect();
    pending.sort_by(|a, b| (a.submitted_ms, &a.name).cmp(&(b.submitted_ms, &b.name)));
    for rec in pending {
        if full(&round) {
            break;
        }
        let mut next = rec.clone();
        if let Some(info) = waiting.get(&rec.name) {
            if *info != rec.scheduler_info {
                next.scheduler_info = info.clone();
                round.changes.put_topology(next);
            }
            continue;
        }
        match scheduler::place(&rec.spec, &mut free) {
            Ok(workers) => {
                let n = workers.len();
                let mut supervisors: Vec<&str> =
                    workers.iter().map(|w| w.supervisor.as_str()).collect();
                supervisors.sort_unstable();
                supervisors.dedup();
                let s = supervisors.len();
                let a = new_assignment(rec, rec.spec.clone(), workers);
                next.state = rec.resume;
                next.scheduler_info = format!(
                    "scheduled {n} worker{} on {s} supervisor{} (version {})",
                    plural(n),
                    plural(s),
                    a.version
                );
                round
                    .events
                    .push(format!("topology {:?}: {}", rec.name, next.scheduler_info));
                round.changes.put_assignment(a);
            }
            Err(e) => next.scheduler_info = format!("waiting for slots: {e}"),
        }
        if next != *rec {
            round.changes.put_topology(next);
        }
    }

    if next_version != durable.next_version {
        round.changes.next_version = Some(next_version);
    }
    round
}

/// Returns the slots of `a` on live supervisors (listed in `free`), except dead ones, to `free`.
fn give_back(free: &mut [SupervisorSlots], a: &Assignment, dead: &[DeadSlot]) {
    for (i, w) in a.workers.iter().enumerate() {
        if dead.iter().any(|d| d.index == i) {
            continue;
        }
        if let Some(s) = free.iter_mut().find(|s| s.id == w.supervisor) {
            if !s.free.contains(&w.port) {
                s.free.push(w.port);
                s.free.sort_unstable();
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state::tests::record;
    use crate::state::{kill, start_rebalance};
    use std::collections::{BTreeMap, HashSet};
    use tempest_protocol::control::RebalanceRequest;

    fn sup(id: &str, ports: &[u16]) -> SupervisorSlots {
        SupervisorSlots {
            id: id.into(),
            host: format!("{id}.local"),
            free: ports.to_vec(),
        }
    }

    fn durable(records: Vec<TopologyRecord>) -> Durable {
        Durable {
            topologies: records.into_iter().map(|r| (r.name.clone(), r)).collect(),
            assignments: BTreeMap::new(),
            next_version: 1,
        }
    }

    /// Runs a round and applies it.
    fn run(d: &mut Durable, free: Vec<SupervisorSlots>, now_ms: u64) -> Round {
        let round = plan(
            d,
            free,
            &HashMap::new(),
            &HashMap::new(),
            &HashMap::new(),
            usize::MAX,
            now_ms,
        );
        d.apply(round.changes.clone());
        round
    }

    #[test]
    fn pending_topologies_wait_for_enough_slots_then_are_scheduled_in_submission_order() {
        let mut young = record("young");
        young.submitted_ms = 2_000;
        let mut d = durable(vec![young, record("old")]);
        run(&mut d, vec![sup("a", &[1])], 0);
        assert_eq!(
            d.topologies["old"].scheduler_info,
            "waiting for slots: needs 2 workers, 1 free slot"
        );
        assert_eq!(d.topologies["old"].state, TopologyState::Pending);
        let r = run(&mut d, vec![sup("a", &[1, 2]), sup("b", &[1])], 0);
        assert_eq!(d.topologies["old"].state, TopologyState::Active);
        assert_eq!(d.assignments["old"].version, 1);
        assert_eq!(d.topologies["young"].state, TopologyState::Pending);
        assert_eq!(d.next_version, 2);
        assert_eq!(r.events.len(), 1);
        // Nothing changes: nothing to commit.
        let r = plan(
            &d,
            vec![sup("a", &[2])],
            &HashMap::new(),
            &HashMap::new(),
            &HashMap::new(),
            usize::MAX,
            0,
        );
        assert!(r.changes.is_empty(), "{:?}", r.changes);
    }

    #[test]
    fn a_due_kill_removes_the_topology_and_frees_its_slots_in_the_same_round() {
        let mut d = durable(vec![record("t")]);
        run(&mut d, vec![sup("a", &[1, 2])], 0);
        let mut waiting = record("next");
        waiting.submitted_ms = 5_000;
        d.topologies.insert("next".into(), waiting);
        let mut rec = d.topologies["t"].clone();
        kill(&mut rec, 10, 1_000);
        d.topologies.insert("t".into(), rec);
        run(&mut d, vec![sup("a", &[])], 10_999);
        assert!(d.topologies.contains_key("t"));
        let r = run(&mut d, vec![sup("a", &[])], 11_000);
        assert_eq!(r.removed, ["t"]);
        assert!(!d.topologies.contains_key("t") && !d.assignments.contains_key("t"));
        assert_eq!(d.topologies["next"].state, TopologyState::Active);
    }

    #[test]
    fn a_due_rebalance_reschedules_with_a_new_version_and_restores_the_state() {
        let mut d = durable(vec![record("t")]);
        run(&mut d, vec![sup("a", &[1, 2])], 0);
        let mut rec = d.topologies["t"].clone();
        rec.state = TopologyState::Inactive;
        rec.resume = TopologyState::Inactive;
        let req = RebalanceRequest {
            workers: Some(1),
            parallelism: BTreeMap::from([("b".to_string(), 1)]),
        };
        start_rebalance(&mut rec, req, 0, 500).unwrap();
        d.topologies.insert("t".into(), rec);
        run(&mut d, vec![sup("a", &[])], 500);
        let (rec, a) = (&d.topologies["t"], &d.assignments["t"]);
        assert_eq!(rec.state, TopologyState::Inactive);
        assert_eq!(a.version, 2);
        assert_eq!(a.workers.len(), 1);
        assert_eq!(a.spec.component("b").unwrap().parallelism, 1);
        assert_eq!(rec.spec, a.spec);
        // 2 spout + 1 bolt + 1 acker executors.
        assert_eq!(a.workers[0].executors.len(), 4);
    }

    #[test]
    fn a_rebalance_that_does_not_fit_keeps_the_old_assignment() {
        let mut d = durable(vec![record("t")]);
        run(&mut d, vec![sup("a", &[1, 2])], 0);
        let mut rec = d.topologies["t"].clone();
        let req = RebalanceRequest {
            workers: Some(5),
            ..RebalanceRequest::default()
        };
        start_rebalance(&mut rec, req, 0, 0).unwrap();
        d.topologies.insert("t".into(), rec);
        run(&mut d, vec![sup("a", &[3])], 0);
        let rec = &d.topologies["t"];
        assert_eq!(rec.state, TopologyState::Active);
        assert_eq!(d.assignments["t"].version, 1);
        assert!(
            rec.scheduler_info.contains("needs 5 workers, 3 free slots"),
            "{}",
            rec.scheduler_info
        );
        assert_eq!(scheduler::requested_workers(&rec.spec), 2);
    }

    #[test]
    fn dead_slots_move_and_say_why_or_why_not() {
        let mut d = durable(vec![record("t")]);
        run(&mut d, vec![sup("a", &[1]), sup("b", &[1])], 0);
        let on_b = d.assignments["t"]
            .workers
            .iter()
            .position(|w| w.supervisor == "b")
            .unwrap();
        let dead = HashMap::from([(
            "t".to_string(),
            vec![DeadSlot {
                index: on_b,
                reason: "supervisor b sent no heartbeat for 15 s".into(),
            }],
        )]);
        // No free slot: the assignment stays, the reason is recorded once.
        let r = plan(
            &d,
            vec![sup("a", &[])],
            &dead,
            &HashMap::new(),
            &HashMap::new(),
            usize::MAX,
            0,
        );
        d.apply(r.changes);
        assert_eq!(d.assignments["t"].version, 1);
        let info = d.topologies["t"].scheduler_info.clone();
        assert!(
            info.contains("no free slot") && info.contains("b/b.local:1"),
            "{info}"
        );
        assert!(plan(
            &d,
            vec![sup("a", &[])],
            &dead,
            &HashMap::new(),
            &HashMap::new(),
            usize::MAX,
            0
        )
        .changes
        .is_empty());
        // A slot frees up on "a": the worker moves there.
        let r = plan(
            &d,
            vec![sup("a", &[2])],
            &dead,
            &HashMap::new(),
            &HashMap::new(),
            usize::MAX,
            0,
        );
        d.apply(r.changes);
        let a = &d.assignments["t"];
        assert_eq!(a.version, 2);
        assert!(a.workers.iter().all(|w| w.supervisor == "a"));
        assert!(d.topologies["t"].scheduler_info.contains("-> a/a.local:2"));
    }

    #[test]
    fn a_topology_waiting_for_replication_stays_pending_and_says_why() {
        let mut d = durable(vec![record("t")]);
        let waiting = HashMap::from([("t".to_string(), "waiting for its binary".to_string())]);
        let (none, no) = (HashMap::new(), HashMap::new());
        let r = plan(
            &d,
            vec![sup("a", &[1, 2])],
            &none,
            &no,
            &waiting,
            usize::MAX,
            0,
        );
        d.apply(r.changes);
        assert_eq!(d.topologies["t"].state, TopologyState::Pending);
        assert_eq!(d.topologies["t"].scheduler_info, "waiting for its binary");
        assert!(d.assignments.is_empty());
        let again = plan(
            &d,
            vec![sup("a", &[1, 2])],
            &none,
            &no,
            &waiting,
            usize::MAX,
            0,
        );
        assert!(again.changes.is_empty(), "nothing new to write");
        run(&mut d, vec![sup("a", &[1, 2])], 0);
        assert_eq!(d.topologies["t"].state, TopologyState::Active);
    }

    #[test]
    fn a_round_changes_at_most_the_stores_limit_of_topologies() {
        let records: Vec<TopologyRecord> = (0..5).map(|i| record(&format!("t{i}"))).collect();
        let mut d = durable(records);
        let (none, no, nothing) = (HashMap::new(), HashMap::new(), HashMap::new());
        let r = plan(
            &d,
            vec![sup("a", &(1..=20).collect::<Vec<u16>>())],
            &none,
            &no,
            &nothing,
            2,
            0,
        );
        assert_eq!(r.changes.topologies.len(), 2);
        assert_eq!(r.changes.assignments.len(), 2);
        d.apply(r.changes);
        let r = plan(
            &d,
            vec![sup("a", &(5..=20).collect::<Vec<u16>>())],
            &none,
            &no,
            &nothing,
            2,
            0,
        );
        assert_eq!(r.changes.topologies.len(), 2);
        d.apply(r.changes);
        let versions: HashSet<u64> = d.assignments.values().map(|a| a.version).collect();
        assert_eq!(versions.len(), 4, "versions stay unique");
    }
}
