//! Placement, as pure functions without I/O or clocks: which free slots a topology's workers
//! get (spread over supervisors, most free slots first), which executors each worker runs
//! (dealt round-robin), and where the workers of dead slots move to.

use std::collections::BTreeMap;
use std::fmt;
use tempest_protocol::config::TOPOLOGY_WORKERS;
use tempest_protocol::control::WorkerSlot;
use tempest_protocol::spec::TaskLayout;
use tempest_protocol::{plan_executors, ExecutorPlan, TopologySpec};

/// A live supervisor and its slot ports no assignment uses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct SupervisorSlots {
    /// The supervisor's id.
    pub(crate) id: String,
    /// The host its workers are reached at.
    pub(crate) host: String,
    /// Unused slot ports, ascending.
    pub(crate) free: Vec<u16>,
}

/// Too few free slots for a topology.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct NotEnoughSlots {
    /// Workers the topology needs.
    pub(crate) needed: usize,
    /// Free slots on live supervisors.
    pub(crate) free: usize,
}

impl fmt::Display for NotEnoughSlots {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "needs {} worker{}, {} free slot{}",
            self.needed,
            plural(self.needed),
            self.free,
            plural(self.free)
        )
    }
}

/// "s" unless `n` is 1.
pub(crate) fn plural(n: usize) -> &'static str {
    if n == 1 {
        ""
    } else {
        "s"
    }
}

/// `topology.workers` of the spec (1 if absent or unreadable; submit refuses unreadable ones).
pub(crate) fn requested_workers(spec: &TopologySpec) -> usize {
    spec.config.u64_or(TOPOLOGY_WORKERS, 1).unwrap_or(1).max(1) as usize
}

/// Every executor of the topology, acker executors included.
pub(crate) fn executors(spec: &TopologySpec) -> Vec<ExecutorPlan> {
    plan_executors(spec, &TaskLayout::of(spec))
}

/// Free slots in total.
pub(crate) fn free_count(free: &[SupervisorSlots]) -> usize {
    free.iter().map(|s| s.free.len()).sum()
}

/// Takes `n` free slots, spread round-robin over supervisors, those with the most free slots
/// first; each supervisor gives its lowest ports. Takes nothing if there are too few.
pub(crate) fn take_slots(
    free: &mut [SupervisorSlots],
    n: usize,
) -> Result<Vec<(String, String, u16)>, NotEnoughSlots> {
    let total = free_count(free);
    if total < n {
        return Err(NotEnoughSlots {
            needed: n,
            free: total,
        });
    }
    let mut order: Vec<usize> = (0..free.len()).collect();
    order.sort_by(|&a, &b| {
        free[b]
            .free
            .len()
            .cmp(&free[a].free.len())
            .then_with(|| free[a].id.cmp(&free[b].id))
    });
    let mut taken = Vec::with_capacity(n);
    while taken.len() < n {
        for &i in &order {
            if taken.len() == n {
                break;
            }
            let s = &mut free[i];
            if !s.free.is_empty() {
                let port = s.free.remove(0);
                taken.push((s.id.clone(), s.host.clone(), port));
            }
        }
    }
    Ok(taken)
}

/// Deals `executors` round-robin over `workers` workers (each component's executors spread).
pub(crate) fn deal(executors: Vec<ExecutorPlan>, workers: usize) -> Vec<Vec<ExecutorPlan>> {
    let mut dealt = vec![Vec::new(); workers.max(1)];
    let n = dealt.len();
    for (i, e) in executors.into_iter().enumerate() {
        dealt[i % n].push(e);
    }
    dealt
}

/// Places a topology on free slots: its workers and their executors. The slots it takes are
/// removed from `free`; on failure `free` is unchanged.
pub(crate) fn place(
    spec: &TopologySpec,
    free: &mut [SupervisorSlots],
) -> Result<Vec<WorkerSlot>, NotEnoughSlots> {
    let executors = executors(spec);
    // As many workers as asked for, but none without an executor.
    let n = requested_workers(spec).min(executors.len()).max(1);
    let slots = take_slots(free, n)?;
    Ok(slots
        .into_iter()
        .zip(deal(executors, n))
        .map(|((supervisor, host, port), executors)| WorkerSlot {
            supervisor,
            host,
            port,
            executors,
        })
        .collect())
}

/// Places a rebalanced topology, moving as little as it can: if its executors are the same as
/// in `current` (only the number of workers changed, or nothing), the first workers keep their
/// slots and as many of their executors as a balanced share allows, and only the surplus moves
/// (to new workers on free slots, or to kept workers below their share); workers whose
/// executors do not change keep running. If the executors changed (a new parallelism), it is a
/// fresh placement. The slots of `current` must be in `free` (given back by the caller).
pub(crate) fn rebalance(
    current: &[WorkerSlot],
    spec: &TopologySpec,
    free: &mut [SupervisorSlots],
) -> Result<Vec<WorkerSlot>, NotEnoughSlots> {
    let executors = executors(spec);
    let mut placed: Vec<&ExecutorPlan> = current.iter().flat_map(|w| &w.executors).collect();
    let mut wanted: Vec<&ExecutorPlan> = executors.iter().collect();
    let key = |e: &&ExecutorPlan| (e.component.clone(), e.tasks.start, e.tasks.end);
    placed.sort_by_key(key);
    wanted.sort_by_key(key);
    if placed != wanted {
        return place(spec, free);
    }
    let n = requested_workers(spec).min(executors.len()).max(1);
    // Keep the first workers whose slots are still free to take (their supervisor is alive).
    let mut pool = free.to_vec();
    let mut kept: Vec<WorkerSlot> = Vec::new();
    let mut surplus: Vec<ExecutorPlan> = Vec::new();
    for w in current {
        let slot = pool
            .iter_mut()
            .find(|s| s.id == w.supervisor)
            .and_then(|s| s.free.iter().position(|p| *p == w.port).map(|i| (s, i)));
        match slot {
            Some((s, i)) if kept.len() < n => {
                s.free.remove(i);
                kept.push(w.clone());
            }
            _ => surplus.extend(w.executors.iter().cloned()),
        }
    }
    let new = take_slots(&mut pool, n - kept.len()).map_err(|e| NotEnoughSlots {
        needed: n,
        free: e.free + kept.len(),
    })?;
    // Balanced shares; the larger ones go to the kept workers holding the most executors.
    let (base, extra) = (executors.len() / n, executors.len() % n);
    let mut ranked: Vec<usize> = (0..kept.len()).collect();
    ranked.sort_by_key(|&i| std::cmp::Reverse(kept[i].executors.len()));
    ranked.extend(kept.len()..n);
    let mut share = vec![base; n];
    for &i in ranked.iter().take(extra) {
        share[i] += 1;
    }
    let mut workers: Vec<WorkerSlot> = kept;
    for (supervisor, host, port) in new {
        workers.push(WorkerSlot {
            supervisor,
            host,
            port,
            executors: Vec::new(),
        });
    }
    for (w, &share) in workers.iter_mut().zip(&share) {
        while w.executors.len() > share {
            surplus.extend(w.executors.pop());
        }
    }
    surplus.reverse();
    for (w, &share) in workers.iter_mut().zip(&share) {
        while w.executors.len() < share {
            match surplus.pop() {
                Some(e) => w.executors.push(e),
                None => break,
            }
        }
    }
    free.clone_from_slice(&pool);
    Ok(workers)
}

/// The outcome of moving workers off dead slots.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Moves {
    /// The workers, moved ones on their new slots.
    pub(crate) workers: Vec<WorkerSlot>,
    /// "supervisor/host:port -> supervisor/host:port" for each moved worker.
    pub(crate) moved: Vec<String>,
    /// "supervisor/host:port" of each worker that found no free slot.
    pub(crate) stuck: Vec<String>,
}

fn label(w: &WorkerSlot) -> String {
    format!("{}/{}", w.supervisor, w.address())
}

/// Moves the workers at indexes `dead` of `workers` to free slots: each to a supervisor other
/// than its old one if possible, then to the one with the fewest of this topology's workers,
/// then the most free slots. The others keep their slots and executors.
pub(crate) fn move_workers(
    workers: &[WorkerSlot],
    dead: &[usize],
    free: &mut [SupervisorSlots],
) -> Moves {
    let mut out = Moves {
        workers: workers.to_vec(),
        moved: Vec::new(),
        stuck: Vec::new(),
    };
    let mut hosting: BTreeMap<String, usize> = BTreeMap::new();
    for (i, w) in workers.iter().enumerate() {
        if !dead.contains(&i) {
            *hosting.entry(w.supervisor.clone()).or_default() += 1;
        }
    }
    for &i in dead {
        let Some(old) = workers.get(i) else { continue };
        let best = free
            .iter()
            .enumerate()
            .filter(|(_, s)| !s.free.is_empty())
            .min_by_key(|(_, s)| {
                (
                    s.id == old.supervisor,
                    hosting.get(&s.id).copied().unwrap_or(0),
                    std::cmp::Reverse(s.free.len()),
                    s.id.clone(),
                )
            })
            .map(|(j, _)| j);
        match best {
            Some(j) => {
                let s = &mut free[j];
                let port = s.free.remove(0);
                let w = &mut out.workers[i];
                w.supervisor = s.id.clone();
                w.host = s.host.clone();
                w.port = port;
                *hosting.entry(s.id.clone()).or_default() += 1;
                out.moved.push(format!("{} -> {}", label(old), label(w)));
            }
            None => out.stuck.push(label(old)),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state::tests::spec;
    use std::collections::BTreeSet;

    fn sup(id: &str, ports: &[u16]) -> SupervisorSlots {
        SupervisorSlots {
            id: id.into(),
            host: format!("{id}.local"),
            free: ports.to_vec(),
        }
    }

    /// (component, first task) of every executor, to compare placements.
    fn assigned(workers: &[WorkerSlot]) -> Vec<(String, u32)> {
        let mut v: Vec<_> = workers
            .iter()
            .flat_map(|w| &w.executors)
            .map(|e| (e.component.clone(), e.tasks.start))
            .collect();
        v.sort();
        v
    }

    #[test]
    fn every_executor_is_placed_once_and_workers_are_spread_over_supervisors() {
        let s = spec("t", 3);
        let mut free = vec![sup("a", &[6700, 6701]), sup("b", &[6700, 6701, 6702])];
        let workers = place(&s, &mut free).unwrap();
        assert_eq!(workers.len(), 3);
        // "b" has the most free slots: it gives the first and third worker.
        let slots: Vec<_> = workers
            .iter()
            .map(|w| (w.supervisor.as_str(), w.port))
            .collect();
        assert_eq!(slots, [("b", 6700), ("a", 6700), ("b", 6701)]);
        assert_eq!(free, vec![sup("a", &[6701]), sup("b", &[6702])]);
        let mut expected: Vec<_> = executors(&s)
            .into_iter()
            .map(|e| (e.component, e.tasks.start))
            .collect();
        expected.sort();
        assert_eq!(assigned(&workers), expected);
        // 6 executors (2 spout, 3 bolt, 1 acker) over 3 workers: 2 each.
        assert!(workers.iter().all(|w| w.executors.len() == 2));
    }

    #[test]
    fn a_component_is_spread_over_workers() {
        let s = spec("t", 2);
        let workers = place(&s, &mut [sup("a", &[1, 2])]).unwrap();
        for w in &workers {
            let bolts = w.executors.iter().filter(|e| e.component == "b").count();
            assert!((1..=2).contains(&bolts), "{w:?}");
        }
    }

    #[test]
    fn too_few_slots_take_nothing_and_say_how_many() {
        let s = spec("t", 3);
        let mut free = vec![sup("a", &[6700]), sup("b", &[6700])];
        let e = place(&s, &mut free).unwrap_err();
        assert_eq!(e, NotEnoughSlots { needed: 3, free: 2 });
        assert_eq!(e.to_string(), "needs 3 workers, 2 free slots");
        assert_eq!(free[0].free, [6700], "nothing taken");
    }

    #[test]
    fn no_more_workers_than_executors() {
        let s = spec("t", 50);
        let workers = place(&s, &mut [sup("a", &(1..=50).collect::<Vec<_>>())]).unwrap();
        assert_eq!(workers.len(), 6);
        assert!(workers.iter().all(|w| w.executors.len() == 1));
    }

    #[test]
    fn dead_workers_move_to_another_supervisor_and_the_others_stay() {
        let s = spec("t", 2);
        let mut free = vec![sup("a", &[6700, 6701]), sup("b", &[6700, 6701])];
        let workers = place(&s, &mut free).unwrap();
        let dead_index = workers.iter().position(|w| w.supervisor == "a").unwrap();
        // "a" is dead: it offers nothing; "b" and a fresh "c" have room.
        let mut free = vec![sup("b", &[6701]), sup("c", &[7000, 7001])];
        let moves = move_workers(&workers, &[dead_index], &mut free);
        assert_eq!(moves.moved.len(), 1, "{moves:?}");
        assert!(moves.stuck.is_empty());
        // "c" hosts none of this topology's workers yet: it is preferred over "b".
        let moved = &moves.workers[dead_index];
        assert_eq!((moved.supervisor.as_str(), moved.port), ("c", 7000));
        assert_eq!(moved.executors, workers[dead_index].executors);
        let kept = 1 - dead_index;
        assert_eq!(moves.workers[kept], workers[kept]);
        assert_eq!(assigned(&moves.workers), assigned(&workers));
        assert_eq!(free[1].free, [7001]);
    }

    #[test]
    fn a_rebalance_to_more_workers_moves_only_the_surplus() {
        // 6 executors on 3 workers (2 each); 4 workers want shares 2, 2, 1, 1.
        let s = spec("t", 3);
        let mut free = vec![sup("a", &[1, 2]), sup("b", &[1, 2])];
        let before = place(&s, &mut free).unwrap();
        let mut free = vec![sup("a", &[1, 2]), sup("b", &[1, 2])];
        let s4 = spec("t", 4);
        let after = rebalance(&before, &s4, &mut free).unwrap();
        assert_eq!(after.len(), 4);
        let unchanged = before.iter().filter(|w| after.contains(w)).count();
        assert_eq!(
            unchanged, 2,
            "two workers keep slot and executors: {after:?}"
        );
        assert_eq!(assigned(&after), assigned(&before));
        let sizes: Vec<usize> = after.iter().map(|w| w.executors.len()).collect();
        assert_eq!(sizes.iter().sum::<usize>(), 6);
        assert!(sizes.iter().all(|n| (1..=2).contains(n)), "{sizes:?}");
        assert_eq!(free_count(&free), 0);
    }

    #[test]
    fn a_rebalance_to_fewer_workers_keeps_the_first_and_spreads_the_rest() {
        let s = spec("t", 3);
        let mut free = vec![sup("a", &[1, 2]), sup("b", &[1, 2])];
        let before = place(&s, &mut free).unwrap();
        let mut free = vec![sup("a", &[1, 2]), sup("b", &[1, 2])];
        let after = rebalance(&before, &spec("t", 2), &mut free).unwrap();
        assert_eq!(after.len(), 2);
        assert_eq!(assigned(&after), assigned(&before));
        assert!(after.iter().all(|w| w.executors.len() == 3), "{after:?}");
        // The kept workers keep their slots and their executors come first.
        for (a, b) in after.iter().zip(&before) {
            assert_eq!(
                (a.supervisor.as_str(), a.port),
                (b.supervisor.as_str(), b.port)
            );
            assert_eq!(a.executors[..2], b.executors[..]);
        }
        assert_eq!(free_count(&free), 2);
    }

    #[test]
    fn a_rebalance_with_new_parallelism_is_a_fresh_placement() {
        let s = spec("t", 2);
        let mut free = vec![sup("a", &[1, 2])];
        let before = place(&s, &mut free).unwrap();
        let mut changed = spec("t", 2);
        changed.components[1].parallelism = 1;
        let mut free = vec![sup("a", &[1, 2])];
        let after = rebalance(&before, &changed, &mut free).unwrap();
        assert_eq!(
            assigned(&after),
            assigned(&place(&changed, &mut [sup("a", &[1, 2])]).unwrap())
        );
    }

    #[test]
    fn a_dead_worker_slot_prefers_another_supervisor_but_takes_its_own_if_alone() {
        let s = spec("t", 1);
        let workers = place(&s, &mut [sup("a", &[6700])]).unwrap();
        let mut free = vec![sup("a", &[6701]), sup("b", &[6700])];
        let moves = move_workers(&workers, &[0], &mut free);
        assert_eq!(moves.workers[0].supervisor, "b");
        let mut free = vec![sup("a", &[6701])];
        let moves = move_workers(&workers, &[0], &mut free);
        assert_eq!(
            (moves.workers[0].supervisor.as_str(), moves.workers[0].port),
            ("a", 6701)
        );
    }

    #[test]
    fn without_free_slots_workers_are_stuck_and_keep_their_slot() {
        let s = spec("t", 2);
        let workers = place(&s, &mut [sup("a", &[1, 2])]).unwrap();
        let moves = move_workers(&workers, &[0, 1], &mut [sup("b", &[9])]);
        assert_eq!(moves.moved.len(), 1);
        assert_eq!(moves.stuck, ["a/a.local:2"]);
        assert_eq!(moves.workers[1], workers[1]);
        let ports: BTreeSet<_> = moves.workers.iter().map(|w| w.port).collect();
        assert_eq!(ports.len(), 2);
    }
}
