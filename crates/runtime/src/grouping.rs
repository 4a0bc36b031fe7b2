//! Stream groupings at run time: given a tuple's values, which of the consumer's tasks get it.
//!
//! Each emitting task holds its own [`Router`] per (stream, consumer), so routing needs no locks.
//! Hashes are xxh3 over a canonical encoding of the values, identical in every process and run.

use crate::value::Value;
use smallvec::SmallVec;
use std::sync::Arc;
use tempest_protocol::spec::GroupingSpec;
use xxhash_rust::xxh3::Xxh3;

/// Task ids chosen for one tuple; inline for the common single-task case.
pub(crate) type Targets = SmallVec<[u32; 4]>;

/// A user-defined grouping (Storm's `CustomStreamGrouping`).
///
/// One instance is created per emitting task; it may keep state (it is only called from that
/// task's executor).
pub trait CustomGrouping: Send + 'static {
    /// Called once with the consumer's task ids before any tuple is routed.
    fn prepare(&mut self, target_tasks: &[u32]);
    /// The tasks (from `target_tasks`) that receive a tuple with these values.
    fn choose_tasks(&mut self, values: &[Value]) -> Vec<u32>;
}

/// Creates one [`CustomGrouping`] per emitting task.
pub type CustomGroupingFactory = Arc<dyn Fn() -> Box<dyn CustomGrouping> + Send + Sync>;

/// The stable hash of the values at `indices` (all values if `indices` is empty).
pub(crate) fn stable_hash(values: &[Value], indices: &[usize], seed: u64) -> u64 {
    // Fast path for the common single string key.
    if let [i] = indices {
        if let Some(Value::Str(s)) = values.get(*i) {
            return xxhash_rust::xxh3::xxh3_64_with_seed(s.as_bytes(), seed);
        }
    }
    let mut h = Xxh3::with_seed(seed);
    for &i in indices {
        values.get(i).unwrap_or(&Value::Null).stable_hash(&mut h);
    }
    h.digest()
}

/// Routes the tuples of one stream to one consumer component.
pub(crate) enum Router {
    RoundRobin {
        tasks: Vec<u32>,
        next: usize,
    },
    Fields {
        tasks: Vec<u32>,
        indices: Vec<usize>,
    },
    PartialKey {
        tasks: Vec<u32>,
        indices: Vec<usize>,
        load: Vec<u64>,
    },
    All {
        tasks: Vec<u32>,
    },
    Single(u32),
    Direct,
    Custom {
        grouping: Box<dyn CustomGrouping>,
        /// The consumer's tasks (sorted): a chosen task outside them is dropped and logged.
        tasks: Vec<u32>,
        /// Tasks chosen outside `tasks` so far.
        strays: u64,
    },
}

impl Router {
    /// The router for `spec` over the consumer's `tasks` (sorted ascending).
    ///
    /// `field_indices` are the positions of the grouping's fields in the stream (validated at
    /// build time); `local_tasks` are the consumer tasks in the emitter's own worker.
    pub(crate) fn new(
        spec: &GroupingSpec,
        tasks: Vec<u32>,
        field_indices: Vec<usize>,
        local_tasks: Vec<u32>,
        custom: Option<&CustomGroupingFactory>,
        rng: &mut fastrand::Rng,
    ) -> Router {
        let shuffle = |tasks: Vec<u32>, rng: &mut fastrand::Rng| {
            let next = if tasks.is_empty() {
                0
            } else {
                rng.usize(..tasks.len())
            };
            Router::RoundRobin { tasks, next }
        };
        match spec {
            GroupingSpec::Shuffle | GroupingSpec::None => shuffle(tasks, rng),
            GroupingSpec::LocalOrShuffle if !local_tasks.is_empty() => shuffle(local_tasks, rng),
            GroupingSpec::LocalOrShuffle => shuffle(tasks, rng),
            GroupingSpec::Fields { .. } => Router::Fields {
                tasks,
                indices: field_indices,
            },
            GroupingSpec::PartialKey { .. } => Router::PartialKey {
                load: vec![0; tasks.len()],
                tasks,
                indices: field_indices,
            },
            GroupingSpec::All => Router::All { tasks },
            GroupingSpec::Global => Router::Single(tasks.iter().copied().min().unwrap_or(0)),
            GroupingSpec::Direct => Router::Direct,
            GroupingSpec::Custom { .. } => {
                let mut g = match custom {
                    Some(factory) => factory(),
                    None => Box::new(NoTargets),
                };
                g.prepare(&tasks);
                Router::Custom {
                    grouping: g,
                    tasks,
                    strays: 0,
                }
            }
        }
    }

    /// Appends the tasks that get a tuple with these values.
    #[inline]
    pub(crate) fn choose(&mut self, values: &[Value], out: &mut Targets) {
        match self {
            Router::RoundRobin { tasks, next } => {
                if !tasks.is_empty() {
                    out.push(tasks[*next]);
                    *next = if *next + 1 == tasks.len() {
                        0
                    } else {
                        *next + 1
                    };
                }
            }
            Router::Fields { tasks, indices } => {
                let h = stable_hash(values, indices, 0);
                out.push(tasks[(h % tasks.len() as u64) as usize]);
            }
            Router::PartialKey {
                tasks,
                indices,
                load,
            } => {
                let n = tasks.len() as u64;
                let a = (stable_hash(values, indices, 0) % n) as usize;
                let b = (stable_hash(values, indices, 0x9e37_79b9_7f4a_7c15) % n) as usize;
                let pick = if load[b] < load[a] { b } else { a };
                load[pick] += 1;
                out.push(tasks[pick]);
            }
            Router::All { tasks } => out.extend_from_slice(tasks),
            Router::Single(t) => out.push(*t),
            Router::Direct => {}
            Router::Custom {
                grouping,
                tasks,
                strays,
            } => {
                for t in grouping.choose_tasks(values) {
                    if tasks.binary_search(&t).is_ok() {
                        out.push(t);
                    } else {
                        *strays += 1;
                        if strays.is_power_of_two() {
                            tracing::error!(task = t, consumers = ?tasks, strays = *strays,
                                "a custom grouping chose a task that does not consume the stream; the tuple does not go there");
                        }
                    }
                }
            }
        }
    }
}

/// Stands in for a custom grouping whose factory is missing (validation prevents this).
struct NoTargets;
impl CustomGrouping for NoTargets {
    fn prepare(&mut self, _: &[u32]) {}
    fn choose_tasks(&mut self, _: &[Value]) -> Vec<u32> {
        Vec::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::values;
    use std::collections::{HashMap, HashSet};

    fn router(spec: GroupingSpec, tasks: Vec<u32>, local: Vec<u32>) -> Router {
        Router::new(
            &spec,
            tasks,
            vec![0],
            local,
            None,
            &mut fastrand::Rng::new(),
        )
    }

    fn route(r: &mut Router, v: &[Value]) -> Targets {
        let mut out = Targets::new();
        r.choose(v, &mut out);
        out
    }

    fn fields() -> GroupingSpec {
        GroupingSpec::Fields {
            fields: vec!["word".into()],
        }
    }

    #[test]
    fn fields_grouping_is_stable_across_instances_and_runs() {
        // Two routers stand for two emitting tasks (possibly in two processes): the mapping must
        // not depend on instance, seed or process. The pinned values guard against a hasher that
        // changes between runs or builds (a per-process random hasher would fail this).
        let mut a = router(fields(), vec![3, 4, 5, 6], vec![]);
        let mut b = router(fields(), vec![3, 4, 5, 6], vec![]);
        for w in ["the", "cow", "jumped", "over", "moon", "a", "zebra"] {
            let v = values![w];
            assert_eq!(route(&mut a, &v), route(&mut b, &v), "{w}");
            assert_eq!(route(&mut a, &v), route(&mut a, &v), "{w}");
        }
        assert_eq!(
            stable_hash(&values!["the"], &[0], 0),
            xxhash_rust::xxh3::xxh3_64(b"the")
        );
        let mixed = values!["the", 7];
        assert_eq!(stable_hash(&mixed, &[0, 1], 0), 0x3726_f9da_2533_8ead);
    }

    #[test]
    fn fields_grouping_spreads_keys() {
        let mut r = router(fields(), vec![1, 2, 3, 4], vec![]);
        let used: HashSet<u32> = (0..1000)
            .map(|i| route(&mut r, &values![format!("w{i}")])[0])
            .collect();
        assert_eq!(used.len(), 4);
    }

    #[test]
    fn shuffle_balances_over_all_tasks() {
        let mut r = router(GroupingSpec::Shuffle, vec![1, 2, 3], vec![]);
        let mut counts = HashMap::new();
        for _ in 0..300 {
            *counts.entry(route(&mut r, &values!["x"])[0]).or_insert(0) += 1;
        }
        assert_eq!(counts.len(), 3);
        assert!(counts.values().all(|&c| c == 100), "{counts:?}");
    }

    #[test]
    fn all_reaches_every_task() {
        let mut r = router(GroupingSpec::All, vec![4, 5, 6], vec![]);
        assert_eq!(route(&mut r, &values!["x"]).as_slice(), &[4, 5, 6]);
    }

    #[test]
    fn global_picks_lowest_task() {
        let mut r = router(GroupingSpec::Global, vec![9, 7, 8], vec![]);
        for _ in 0..10 {
            assert_eq!(route(&mut r, &values!["x"]).as_slice(), &[7]);
        }
    }

    #[test]
    fn partial_key_uses_at_most_two_tasks_per_key_and_balances() {
        let spec = GroupingSpec::PartialKey {
            fields: vec!["word".into()],
        };
        let mut r = router(spec, vec![1, 2, 3, 4], vec![]);
        let mut per_key: HashMap<String, HashSet<u32>> = HashMap::new();
        let mut load: HashMap<u32, u64> = HashMap::new();
        // A skewed stream: one hot key takes half the tuples.
        for i in 0..20_000u32 {
            let key = if i % 2 == 0 {
                "hot".to_string()
            } else {
                format!("k{}", i % 97)
            };
            let t = route(&mut r, &values![key.clone()])[0];
            per_key.entry(key).or_default().insert(t);
            *load.entry(t).or_default() += 1;
        }
        assert!(per_key.values().all(|s| s.len() <= 2), "{per_key:?}");
        assert_eq!(
            per_key["hot"].len(),
            2,
            "the hot key is split over two tasks"
        );
        // A fields grouping would put >= 50% on one task; two choices keeps every task < 40%.
        let max = *load.values().max().unwrap();
        assert!(max < 8_000, "load {load:?}");
    }

    #[test]
    fn local_or_shuffle_prefers_local_tasks() {
        let mut r = router(GroupingSpec::LocalOrShuffle, vec![1, 2, 3, 4], vec![2, 4]);
        let used: HashSet<u32> = (0..100).map(|_| route(&mut r, &values!["x"])[0]).collect();
        assert_eq!(used, HashSet::from([2, 4]));
        let mut r = router(GroupingSpec::LocalOrShuffle, vec![1, 2], vec![]);
        let used: HashSet<u32> = (0..100).map(|_| route(&mut r, &values!["x"])[0]).collect();
        assert_eq!(
            used,
            HashSet::from([1, 2]),
            "no local task: shuffle over all"
        );
    }

    #[test]
    fn custom_grouping_is_prepared_and_used() {
        struct Last(Vec<u32>);
        impl CustomGrouping for Last {
            fn prepare(&mut self, t: &[u32]) {
                self.0 = t.to_vec();
            }
            fn choose_tasks(&mut self, _: &[Value]) -> Vec<u32> {
                vec![*self.0.last().unwrap()]
            }
        }
        let f: CustomGroupingFactory = Arc::new(|| Box::new(Last(vec![])));
        let spec = GroupingSpec::Custom {
            name: "last".into(),
        };
        let mut r = Router::new(
            &spec,
            vec![1, 2, 3],
            vec![],
            vec![],
            Some(&f),
            &mut fastrand::Rng::new(),
        );
        assert_eq!(route(&mut r, &values!["x"]).as_slice(), &[3]);
    }
}
