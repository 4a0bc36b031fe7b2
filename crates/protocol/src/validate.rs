//! Checks a topology spec before it runs: every problem is reported, each naming its culprit.
//! Used by the builder and (for submitted specs) by Nimbus.

use crate::spec::{ComponentKind, GroupingSpec, TopologySpec};
use std::collections::{HashMap, HashSet};
use std::fmt;

/// One problem in a topology.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum TopologyError {
    /// The topology has no spout.
    #[error("topology {topology:?} has no spout; add one with set_spout")]
    NoSpout {
        /// The topology name.
        topology: String,
    },
    /// Two components share an id.
    #[error("component id {id:?} is used twice; component ids must be unique")]
    DuplicateComponent {
        /// The id.
        id: String,
    },
    /// Ids must be non-empty and not start with `__` (reserved for system components).
    #[error(
        "component id {id:?} is not allowed: ids must be non-empty and must not start with \"__\""
    )]
    ReservedId {
        /// The id.
        id: String,
    },
    /// Parallelism or number of tasks is zero.
    #[error("component {id:?} has {what} 0; it must be at least 1")]
    ZeroParallelism {
        /// The component.
        id: String,
        /// "parallelism" or "num_tasks".
        what: &'static str,
    },
    /// A bolt subscribes to nothing.
    #[error("bolt {bolt:?} has no inputs; subscribe it with a grouping (e.g. shuffle_grouping)")]
    BoltWithoutInputs {
        /// The bolt.
        bolt: String,
    },
    /// A spout has inputs (only possible in a hand-written spec).
    #[error("spout {spout:?} has inputs; only bolts subscribe to streams")]
    SpoutWithInputs {
        /// The spout.
        spout: String,
    },
    /// A subscription names a component that does not exist.
    #[error("bolt {bolt:?} subscribes to unknown component {source_component:?}; known components: {known:?}")]
    UnknownComponent {
        /// The subscribing bolt.
        bolt: String,
        /// The missing component.
        source_component: String,
        /// The ids that exist.
        known: Vec<String>,
    },
    /// A subscription names a stream the component does not declare.
    #[error("bolt {bolt:?} subscribes to stream {stream:?} of {source_component:?}, which declares only {declared:?}")]
    UnknownStream {
        /// The subscribing bolt.
        bolt: String,
        /// The producer.
        source_component: String,
        /// The missing stream.
        stream: String,
        /// The streams it declares.
        declared: Vec<String>,
    },
    /// A fields or partial-key grouping names an undeclared field.
    #[error("{grouping} grouping of bolt {bolt:?} on {field:?}: stream {stream:?} of {source_component:?} declares {declared:?}")]
    UnknownGroupingField {
        /// The subscribing bolt.
        bolt: String,
        /// The producer.
        source_component: String,
        /// The stream.
        stream: String,
        /// The grouping kind.
        grouping: &'static str,
        /// The missing field.
        field: String,
        /// The declared fields.
        declared: Vec<String>,
    },
    /// A fields grouping with no fields.
    #[error("{grouping} grouping of bolt {bolt:?} on {source_component:?} names no fields")]
    EmptyGroupingFields {
        /// The subscribing bolt.
        bolt: String,
        /// The producer.
        source_component: String,
        /// The grouping kind.
        grouping: &'static str,
    },
    /// Direct grouping on a stream not declared direct.
    #[error("bolt {bolt:?} uses direct grouping on stream {stream:?} of {source_component:?}, which is not declared direct (use declare_direct_stream)")]
    DirectGroupingOnNonDirectStream {
        /// The subscribing bolt.
        bolt: String,
        /// The producer.
        source_component: String,
        /// The stream.
        stream: String,
    },
    /// A non-direct grouping on a direct stream.
    #[error("bolt {bolt:?} uses {grouping} grouping on direct stream {stream:?} of {source_component:?}; direct streams need direct grouping")]
    NonDirectGroupingOnDirectStream {
        /// The subscribing bolt.
        bolt: String,
        /// The producer.
        source_component: String,
        /// The stream.
        stream: String,
        /// The grouping used.
        grouping: String,
    },
    /// A custom grouping name without a registered factory.
    #[error("bolt {bolt:?} uses custom grouping {name:?}, which is not registered")]
    UnknownCustomGrouping {
        /// The subscribing bolt.
        bolt: String,
        /// The grouping name.
        name: String,
    },
    /// A windowed bolt's windows cannot work with the topology's limits or inputs.
    #[error("windows of bolt {bolt:?}: {message}")]
    BadWindow {
        /// The windowed bolt.
        bolt: String,
        /// What is wrong, with the values and the keys that set them.
        message: String,
    },
    /// A topology with stateful bolts cannot checkpoint as configured.
    #[error("state: {message}")]
    BadState {
        /// What is wrong, naming the keys involved.
        message: String,
    },
    /// The component graph has a cycle.
    #[error("the topology has a cycle: {}", path.join(" -> "))]
    Cycle {
        /// The components on the cycle, the first repeated at the end.
        path: Vec<String>,
    },
    /// More tasks than a topology may have.
    #[error("the topology has {total} tasks; at most {max} are allowed")]
    TooManyTasks {
        /// Tasks asked for (all components).
        total: u64,
        /// The limit.
        max: u64,
    },
    /// A config key is unknown, has no prefix, or has a value of the wrong type.
    #[error("config of {scope}: {message}")]
    BadConfig {
        /// "topology" or the component id.
        scope: String,
        /// What is wrong.
        message: String,
    },
}

/// All the problems of an invalid topology.
#[derive(Debug, Clone, PartialEq)]
pub struct TopologyErrors(pub Vec<TopologyError>);

impl fmt::Display for TopologyErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "invalid topology ({} problem", self.0.len())?;
        if self.0.len() != 1 {
            write!(f, "s")?;
        }
        write!(f, "):")?;
        for e in &self.0 {
            write!(f, "\n  - {e}")?;
        }
        Ok(())
    }
}

impl std::error::Error for TopologyErrors {}

/// Most tasks a topology may have (task tables are sized by it).
pub const MAX_TASKS: u64 = 100_000;

/// Checks `spec`; returns every problem found.
pub fn validate(spec: &TopologySpec) -> Result<(), TopologyErrors> {
    let mut errs = Vec::new();
    if !spec
        .components
        .iter()
        .any(|c| c.kind == ComponentKind::Spout)
    {
        errs.push(TopologyError::NoSpout {
            topology: spec.name.clone(),
        });
    }
    let mut seen = HashSet::new();
    for c in &spec.components {
        if !seen.insert(c.id.as_str()) {
            let e = TopologyError::DuplicateComponent { id: c.id.clone() };
            if !errs.contains(&e) {
                errs.push(e);
            }
        }
        if c.id.is_empty() || c.id.starts_with("__") {
            errs.push(TopologyError::ReservedId { id: c.id.clone() });
        }
        if c.parallelism == 0 {
            errs.push(TopologyError::ZeroParallelism {
                id: c.id.clone(),
                what: "parallelism",
            });
        } else if c.num_tasks == 0 {
            errs.push(TopologyError::ZeroParallelism {
                id: c.id.clone(),
                what: "num_tasks",
            });
        }
        match c.kind {
            ComponentKind::Bolt if c.inputs.is_empty() => {
                errs.push(TopologyError::BoltWithoutInputs { bolt: c.id.clone() })
            }
            ComponentKind::Spout if !c.inputs.is_empty() => {
                errs.push(TopologyError::SpoutWithInputs {
                    spout: c.id.clone(),
                })
            }
            _ => {}
        }
        for input in &c.inputs {
            check_input(spec, &c.id, input, &mut errs);
        }
        for message in window_problems(spec, c) {
            errs.push(TopologyError::BadWindow {
                bolt: c.id.clone(),
                message,
            });
        }
        // The component's own overrides only: a bad topology-wide value is reported once below.
        for e in c.config.check() {
            errs.push(TopologyError::BadConfig {
                scope: c.id.clone(),
                message: e.to_string(),
            });
        }
    }
    for e in spec.config.check() {
        errs.push(TopologyError::BadConfig {
            scope: "topology".into(),
            message: e.to_string(),
        });
    }
    if let Some(message) = state_problem(spec) {
        errs.push(TopologyError::BadState { message });
    }
    let total: u64 = spec.components.iter().map(|c| u64::from(c.num_tasks)).sum();
    if total > MAX_TASKS {
        errs.push(TopologyError::TooManyTasks {
            total,
            max: MAX_TASKS,
        });
    }
    let ids_unique = seen.len() == spec.components.len();
    if let Some(path) = find_cycle(spec).filter(|_| ids_unique) {
        errs.push(TopologyError::Cycle { path });
    }
    if errs.is_empty() {
        Ok(())
    } else {
        Err(TopologyErrors(errs))
    }
}

/// What makes a windowed bolt's windows unworkable (Storm's checks, made when the topology is
/// built and submitted instead of when a worker prepares the bolt): tuples are held, unacked,
/// for a window's length plus its slide, so that must fit in the message timeout (durations)
/// and in max spout pending (counts); an event-time field must be declared by every input.
fn window_problems(spec: &TopologySpec, c: &crate::spec::ComponentSpec) -> Vec<String> {
    use crate::config::*;
    let config = spec.component_config(&c.id);
    let get = |key: &str| config.u64_or(key, 0).ok().filter(|v| *v > 0);
    let (len_count, len_ms) = (
        get(TOPOLOGY_BOLTS_WINDOW_LENGTH_COUNT),
        get(TOPOLOGY_BOLTS_WINDOW_LENGTH_DURATION_MS),
    );
    let (slide_count, slide_ms) = (
        get(TOPOLOGY_BOLTS_WINDOW_SLIDING_INTERVAL_COUNT),
        get(TOPOLOGY_BOLTS_WINDOW_SLIDING_INTERVAL_DURATION_MS),
    );
    let mut p = Vec::new();
    if len_count.is_none() && len_ms.is_none() {
        if slide_count.is_some() || slide_ms.is_some() {
            p.push("a slide is set but no window length".to_string());
        }
        return p;
    }
    if len_count.is_some() && len_ms.is_some() {
        p.push("the length is set both as a count and as a duration".to_string());
    }
    if slide_count.is_some() && slide_ms.is_some() {
        p.push("the slide is set both as a count and as a duration".to_string());
    }
    // An aggregating window acks each tuple once it is folded in (or at the next checkpoint):
    // no tuple waits for its window, so the timeout and pending checks do not apply.
    let aggregating = config
        .bool_or(TOPOLOGY_BOLTS_WINDOW_AGGREGATING, false)
        .unwrap_or(false);
    let timeout_ms = config
        .u64_or(TOPOLOGY_MESSAGE_TIMEOUT_SECS, 30)
        .unwrap_or(30)
        .saturating_mul(1000);
    let durations = len_ms.unwrap_or(0) + slide_ms.unwrap_or(0);
    if durations > timeout_ms && !aggregating {
        p.push(format!(
            "window duration (length + slide) {durations} ms is more than {TOPOLOGY_MESSAGE_TIMEOUT_SECS} ({} s): \
             tuples would time out while they wait in a window; raise the timeout or shorten the window",
            timeout_ms / 1000
        ));
    }
    let pending = config
        .u64_or(TOPOLOGY_MAX_SPOUT_PENDING, 5000)
        .unwrap_or(5000);
    let counts = len_count.unwrap_or(0) + slide_count.unwrap_or(0);
    if counts > pending && !aggregating {
        p.push(format!(
            "window count (length + slide) {counts} is more than {TOPOLOGY_MAX_SPOUT_PENDING} ({pending}): \
             the spouts would stop before a window fills; raise it or shorten the window"
        ));
    }
    if let Some(field) = config.str(TOPOLOGY_BOLTS_TUPLE_TIMESTAMP_FIELD) {
        for input in &c.inputs {
            let declared = spec
                .component(&input.component)
                .and_then(|src| src.streams.get(&input.stream));
            if let Some(stream) = declared {
                if !stream.fields.iter().any(|f| f == field) {
                    p.push(format!(
                        "timestamp field {field:?} is not declared by stream {:?} of {:?}, which declares {:?}",
                        input.stream, input.component, stream.fields
                    ));
                }
            }
        }
    }
    p
}

fn check_input(
    spec: &TopologySpec,
    bolt: &str,
    input: &crate::spec::InputSpec,
    errs: &mut Vec<TopologyError>,
) {
    let Some(source) = spec.component(&input.component) else {
        errs.push(TopologyError::UnknownComponent {
            bolt: bolt.into(),
            source_component: input.component.clone(),
            known: spec.components.iter().map(|c| c.id.clone()).collect(),
        });
        return;
    };
    let Some(stream) = source.streams.get(&input.stream) else {
        errs.push(TopologyError::UnknownStream {
            bolt: bolt.into(),
            source_component: input.component.clone(),
            stream: input.stream.clone(),
            declared: source.streams.keys().cloned().collect(),
        });
        return;
    };
    let (grouping, fields) = match &input.grouping {
        GroupingSpec::Fields { fields } => ("fields", fields),
        GroupingSpec::PartialKey { fields } => ("partial key", fields),
        _ => ("", &Vec::new()),
    };
    if !grouping.is_empty() && fields.is_empty() {
        errs.push(TopologyError::EmptyGroupingFields {
            bolt: bolt.into(),
            source_component: input.component.clone(),
            grouping,
        });
    }
    for field in fields {
        if !stream.fields.contains(field) {
            errs.push(TopologyError::UnknownGroupingField {
                bolt: bolt.into(),
                source_component: input.component.clone(),
                stream: input.stream.clone(),
                grouping,
                field: field.clone(),
                declared: stream.fields.clone(),
            });
        }
    }
    let is_direct = input.grouping == GroupingSpec::Direct;
    if is_direct && !stream.direct {
        errs.push(TopologyError::DirectGroupingOnNonDirectStream {
            bolt: bolt.into(),
            source_component: input.component.clone(),
            stream: input.stream.clone(),
        });
    } else if !is_direct && stream.direct {
        errs.push(TopologyError::NonDirectGroupingOnDirectStream {
            bolt: bolt.into(),
            source_component: input.component.clone(),
            stream: input.stream.clone(),
            grouping: input.grouping.label(),
        });
    }
}

/// A cycle in the component graph, as a path of ids that starts and ends at the same component:
/// a depth-first search in declaration order; meeting a component that is still on the search's
/// path closes a cycle.
fn find_cycle(spec: &TopologySpec) -> Option<Vec<String>> {
    let index: HashMap<&str, usize> = spec
        .components
        .iter()
        .enumerate()
        .map(|(i, c)| (c.id.as_str(), i))
        .collect();
    // Edges from a component to the components that subscribe to it, in declaration order.
    let mut consumers: Vec<Vec<usize>> = vec![Vec::new(); spec.components.len()];
    for (to, c) in spec.components.iter().enumerate() {
        for input in &c.inputs {
            if let Some(&from) = index.get(input.component.as_str()) {
                consumers[from].push(to);
            }
        }
    }
    #[derive(Clone, Copy, PartialEq)]
    enum Mark {
        New,
        OnPath,
        Done,
    }
    let mut marks = vec![Mark::New; spec.components.len()];
    for root in 0..spec.components.len() {
        if marks[root] != Mark::New {
            continue;
        }
        // The path, each component with the next of its consumers to visit.
        let mut path: Vec<(usize, usize)> = vec![(root, 0)];
        marks[root] = Mark::OnPath;
        while let Some((at, next)) = path.last_mut() {
            let at = *at;
            let Some(&to) = consumers[at].get(*next) else {
                marks[at] = Mark::Done;
                path.pop();
                continue;
            };
            *next += 1;
            match marks[to] {
                Mark::OnPath => {
                    let from = path.iter().position(|&(c, _)| c == to).unwrap_or(0);
                    let mut names: Vec<String> = path[from..]
                        .iter()
                        .map(|&(c, _)| spec.components[c].id.clone())
                        .collect();
                    names.push(spec.components[to].id.clone());
                    return Some(names);
                }
                Mark::New => {
                    marks[to] = Mark::OnPath;
                    path.push((to, 0));
                }
                Mark::Done => {}
            }
        }
    }
    None
}

/// Why a topology with stateful bolts cannot checkpoint, if it cannot: checkpoints are tracked
/// tuple trees, so they need ackers; the provider must be one Tempest has.
fn state_problem(spec: &TopologySpec) -> Option<String> {
    use crate::config::{TOPOLOGY_ACKER_EXECUTORS, TOPOLOGY_STATE_PROVIDER};
    if !spec.is_checkpointed() {
        return None;
    }
    if spec.config.u64_or(TOPOLOGY_ACKER_EXECUTORS, 1).ok() == Some(0) {
        return Some(format!(
            "stateful bolts need acking: checkpoints are tracked tuple trees, but {TOPOLOGY_ACKER_EXECUTORS} is 0"
        ));
    }
    match spec.config.str_or(TOPOLOGY_STATE_PROVIDER, "redb") {
        Ok("redb" | "redis") => None,
        Ok(other) => Some(format!(
            "{TOPOLOGY_STATE_PROVIDER} is {other:?}; the providers are \"redb\" and \"redis\""
        )),
        Err(_) => None,
    }
}
