//! The serializable description of a topology: components, streams, subscriptions and config.
//! It is what `submit` sends to Nimbus and what every worker rebuilds its executors from.

use crate::config::{Config, TOPOLOGY_ACKER_EXECUTORS};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::ops::Range;

/// The component id of the acker system bolt.
pub const ACKER_COMPONENT: &str = "__acker";
/// The system stream checkpoint barriers travel on, from every task to every consumer task.
pub const CHECKPOINT_STREAM: &str = "__checkpoint";

/// How an edge partitions tuples among the consumer's tasks.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "type")]
pub enum GroupingSpec {
    /// Round-robin over the consumer's tasks, starting at a random one.
    Shuffle,
    /// Equal values of these fields always go to the same task (stable hash).
    Fields {
        /// The key fields.
        fields: Vec<String>,
    },
    /// Each key goes to the less loaded of two tasks chosen by two hashes of these fields.
    PartialKey {
        /// The key fields.
        fields: Vec<String>,
    },
    /// Every task gets a copy.
    All,
    /// Everything goes to the consumer's lowest task id.
    Global,
    /// No preference: behaves as shuffle.
    None,
    /// The emitter names the task with `emit_direct`.
    Direct,
    /// Shuffle among the consumer's tasks in the same worker if there are any, else among all.
    LocalOrShuffle,
    /// A user `CustomGrouping`, registered with the builder under this name.
    Custom {
        /// The registration name.
        name: String,
    },
}

impl GroupingSpec {
    /// A short name for display ("fields(word)").
    pub fn label(&self) -> String {
        match self {
            GroupingSpec::Shuffle => "shuffle".into(),
            GroupingSpec::Fields { fields } => format!("fields({})", fields.join(",")),
            GroupingSpec::PartialKey { fields } => format!("partial_key({})", fields.join(",")),
            GroupingSpec::All => "all".into(),
            GroupingSpec::Global => "global".into(),
            GroupingSpec::None => "none".into(),
            GroupingSpec::Direct => "direct".into(),
            GroupingSpec::LocalOrShuffle => "local_or_shuffle".into(),
            GroupingSpec::Custom { name } => format!("custom({name})"),
        }
    }
}

/// A declared output stream.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StreamSpec {
    /// Field names.
    pub fields: Vec<String>,
    /// True if consumers must subscribe with direct grouping and emitters use `emit_direct`.
    pub direct: bool,
}

/// One subscription of a bolt: a (component, stream) and the grouping on that edge.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InputSpec {
    /// The producing component.
    pub component: String,
    /// The producing stream.
    pub stream: String,
    /// The grouping.
    pub grouping: GroupingSpec,
}

/// Spout or bolt.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ComponentKind {
    /// A source.
    Spout,
    /// An operator.
    Bolt,
}

impl ComponentKind {
    /// "spout" or "bolt".
    pub fn as_str(self) -> &'static str {
        match self {
            ComponentKind::Spout => "spout",
            ComponentKind::Bolt => "bolt",
        }
    }
}

/// One component of a topology.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ComponentSpec {
    /// Unique id.
    pub id: String,
    /// Spout or bolt.
    pub kind: ComponentKind,
    /// Number of executors.
    pub parallelism: u32,
    /// Number of tasks (instances), spread over the executors; at least `parallelism`.
    pub num_tasks: u32,
    /// Declared output streams by id.
    pub streams: BTreeMap<String, StreamSpec>,
    /// Subscriptions (bolts only).
    pub inputs: Vec<InputSpec>,
    /// Per-component config overrides.
    pub config: Config,
}

/// A whole topology, without its code.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TopologySpec {
    /// The topology's name.
    pub name: String,
    /// Topology-wide config.
    pub config: Config,
    /// The components, in the order they were declared.
    pub components: Vec<ComponentSpec>,
}

/// Where every task of a topology sits: ids are numbered from 1, components in id order, the
/// acker system bolt included, so every process derives the same numbering from the same spec.
#[derive(Debug, Clone)]
pub struct TaskLayout {
    ranges: BTreeMap<String, Range<u32>>,
    by_task: Vec<String>,
}

impl TaskLayout {
    /// The layout of `spec`.
    pub fn of(spec: &TopologySpec) -> Self {
        let mut counts: BTreeMap<String, u32> = spec
            .components
            .iter()
            .map(|c| (c.id.clone(), c.num_tasks))
            .collect();
        let ackers = spec.config.u64_or(TOPOLOGY_ACKER_EXECUTORS, 1).unwrap_or(1) as u32;
        if ackers > 0 {
            counts.insert(ACKER_COMPONENT.to_string(), ackers);
        }
        let mut next = 1u32;
        let mut ranges = BTreeMap::new();
        let mut by_task = vec![String::new()];
        for (id, n) in counts {
            ranges.insert(id.clone(), next..next + n);
            by_task.extend(std::iter::repeat_n(id, n as usize));
            next += n;
        }
        TaskLayout { ranges, by_task }
    }

    /// The task ids of a component (empty if unknown).
    pub fn tasks(&self, component: &str) -> Range<u32> {
        self.ranges.get(component).cloned().unwrap_or(0..0)
    }

    /// The component a task belongs to.
    pub fn component_of(&self, task: u32) -> Option<&str> {
        self.by_task
            .get(task as usize)
            .map(String::as_str)
            .filter(|s| !s.is_empty())
    }

    /// The highest task id.
    pub fn max_task(&self) -> u32 {
        self.by_task.len() as u32 - 1
    }

    /// Components with their task ranges, in id order.
    pub fn components(&self) -> impl Iterator<Item = (&str, Range<u32>)> {
        self.ranges.iter().map(|(c, r)| (c.as_str(), r.clone()))
    }
}

/// One executor: a component and the contiguous range of its tasks it runs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExecutorPlan {
    /// The component.
    pub component: String,
    /// Its tasks run by this executor.
    pub tasks: Range<u32>,
}

/// Every executor of the topology, acker executors included.
pub fn plan_executors(spec: &TopologySpec, layout: &TaskLayout) -> Vec<ExecutorPlan> {
    let mut plans = Vec::new();
    for (component, tasks) in layout.components() {
        let parallelism = if component == ACKER_COMPONENT {
            tasks.end - tasks.start
        } else {
            spec.component(component).map_or(1, |c| c.parallelism)
        };
        for r in executor_task_ranges(tasks, parallelism) {
            plans.push(ExecutorPlan {
                component: component.to_string(),
                tasks: r,
            });
        }
    }
    plans
}

/// Splits tasks `range` over `executors` executors as evenly as possible (Storm's scheme).
pub fn executor_task_ranges(range: Range<u32>, executors: u32) -> Vec<Range<u32>> {
    let n = range.end - range.start;
    let executors = executors.clamp(1, n.max(1));
    let (base, extra) = (n / executors, n % executors);
    let mut start = range.start;
    (0..executors)
        .map(|i| {
            let len = base + u32::from(i < extra);
            let r = start..start + len;
            start += len;
            r
        })
        .collect()
}

impl TopologySpec {
    /// True if a bolt keeps state: spouts start checkpoints and every task takes part.
    pub fn is_checkpointed(&self) -> bool {
        self.components.iter().any(|c| {
            c.config
                .bool_or(crate::config::TOPOLOGY_BOLTS_STATEFUL, false)
                .unwrap_or(false)
        })
    }

    /// The component of this id.
    pub fn component(&self, id: &str) -> Option<&ComponentSpec> {
        self.components.iter().find(|c| c.id == id)
    }

    /// The consumers of a component's stream, with their groupings.
    pub fn subscribers<'a>(
        &'a self,
        component: &'a str,
        stream: &'a str,
    ) -> impl Iterator<Item = (&'a ComponentSpec, &'a GroupingSpec)> + 'a {
        self.components.iter().flat_map(move |c| {
            c.inputs
                .iter()
                .filter(move |i| i.component == component && i.stream == stream)
                .map(move |i| (c, &i.grouping))
        })
    }

    /// The topology config overlaid with the component's own.
    pub fn component_config(&self, component: &str) -> Config {
        match self.component(component) {
            Some(c) => self.config.merged(&c.config),
            None => self.config.clone(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn executors_split_tasks_evenly() {
        assert_eq!(executor_task_ranges(1..6, 2), vec![1..4, 4..6]);
        assert_eq!(executor_task_ranges(3..5, 2), vec![3..4, 4..5]);
        assert_eq!(executor_task_ranges(1..2, 4), vec![1..2]);
    }
}
