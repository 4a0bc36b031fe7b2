//! Placement, as pure functions without I/O or clocks: which free slots a topology's workers
//! get (spread over supervisors, most free slots first), which executors each worker runs
//! (dealt round-robin), and where the workers of dead slots move to.

use std::collections::BTreeMap;
use std::fmt;
use topology_api::config::TOPOLOGY_WORKERS;
use topology_api::control::WorkerSlot;
use topology_api::spec::TaskLayout;
use topology_api::{plan_executors, ExecutorPlan, TopologySpec};

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
