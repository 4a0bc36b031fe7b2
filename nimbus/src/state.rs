//! A topology's life, as Nimbus records it: PENDING until scheduled, then ACTIVE ⇄ INACTIVE;
//! REBALANCING and KILLED last until their deadline, which the scheduler round acts on.
//! The transitions the API asks for are pure functions on a [`TopologyRecord`].

use serde::{Deserialize, Serialize};
use tempest_protocol::config::{TOPOLOGY_ACKER_EXECUTORS, TOPOLOGY_WORKERS};
use tempest_protocol::control::{RebalanceRequest, TopologyState};
use tempest_protocol::spec::ACKER_COMPONENT;
use tempest_protocol::TopologySpec;

/// The most tasks (acker tasks included) a topology may have; every process holds a table of
/// them, so a spec asking for billions is refused instead of exhausting memory.
pub(crate) const MAX_TASKS: u64 = 100_000;
/// The most workers a topology may ask for.
pub(crate) const MAX_WORKERS: u64 = 10_000;

/// Everything Nimbus keeps about one topology (its assignment is stored beside it).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TopologyRecord {
    /// Its name (the key).
    pub name: String,
    /// The effective spec: submitted config overrides merged, rebalances applied.
    pub spec: TopologySpec,
    /// sha256 of its binary.
    pub artifact: String,
    /// Where it is in its life.
    pub state: TopologyState,
    /// ACTIVE or INACTIVE: the state it enters once scheduled or rebalanced (activate and
    /// deactivate set it while it is PENDING or REBALANCING).
    pub resume: TopologyState,
    /// Unix time of the submission, in ms.
    pub submitted_ms: u64,
    /// The scheduler's account of it ("waiting for slots: ...").
    #[serde(default)]
    pub scheduler_info: String,
    /// A pending kill or rebalance.
    #[serde(default)]
    pub deadline: Option<Deadline>,
}

/// A kill or rebalance waiting out its wait time.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Deadline {
    /// Unix time in ms when it is carried out.
    pub at_ms: u64,
    /// What then happens.
    pub action: DeadlineAction,
}

/// What happens at a deadline.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum DeadlineAction {
    /// The assignment and the topology are removed.
    Kill,
    /// The spec gets the new parallelism and workers; the topology is rescheduled.
    Rebalance {
        /// The request.
        request: RebalanceRequest,
    },
}

impl PartialEq for DeadlineAction {
    fn eq(&self, other: &Self) -> bool {
        // By hand: `RebalanceRequest` does not implement `PartialEq`.
        match (self, other) {
            (DeadlineAction::Kill, DeadlineAction::Kill) => true,
            (
                DeadlineAction::Rebalance { request: a },
                DeadlineAction::Rebalance { request: b },
            ) => a.workers == b.workers && a.parallelism == b.parallelism,
            _ => false,
        }
    }
}

/// An action the topology's state or spec does not allow.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum StateError {
    #[error("topology {name:?} is being killed; it cannot be {action}")]
    BeingKilled { name: String, action: &'static str },
    #[error("topology {name:?} is already rebalancing; wait until it is done")]
    AlreadyRebalancing { name: String },
    #[error(
        "rebalance of {name:?}: unknown component {component:?}; its components are {known:?}"
    )]
    UnknownComponent {
        name: String,
        component: String,
        known: Vec<String>,
    },
    #[error("rebalance of {name:?}: parallelism {parallelism} of {component:?} must be between 1 and its {num_tasks} tasks")]
    ParallelismOutOfRange {
        name: String,
        component: String,
        parallelism: u32,
        num_tasks: u32,
    },
    #[error("rebalance of {name:?}: workers must be at least 1")]
    ZeroWorkers { name: String },
    #[error("rebalance of {name:?}: {workers} workers is more than the limit of {MAX_WORKERS}")]
    TooManyWorkers { name: String, workers: u32 },
}

impl TopologyRecord {
    /// A newly submitted topology: PENDING, to become ACTIVE once scheduled.
    pub fn submitted(spec: TopologySpec, artifact: String, now_ms: u64) -> Self {
        TopologyRecord {
            name: spec.name.clone(),
            spec,
            artifact,
            state: TopologyState::Pending,
            resume: TopologyState::Active,
            submitted_ms: now_ms,
            scheduler_info: String::new(),
            deadline: None,
        }
    }

    /// The deadline action that is due at `now_ms`, if any.
    pub(crate) fn due(&self, now_ms: u64) -> Option<&DeadlineAction> {
        self.deadline
            .as_ref()
            .filter(|d| d.at_ms <= now_ms)
            .map(|d| &d.action)
    }
}

/// Checks what the lifecycle needs of a spec beyond `validate`: a usable `topology.workers`
/// and a bounded number of tasks.
pub(crate) fn check_spec_size(spec: &TopologySpec) -> Result<(), String> {
    let workers = spec
        .config
        .u64_or(TOPOLOGY_WORKERS, 1)
        .map_err(|e| e.to_string())?;
    if workers == 0 {
        return Err(format!("{TOPOLOGY_WORKERS} is 0; it must be at least 1"));
    }
    if workers > MAX_WORKERS {
        return Err(format!(
            "{TOPOLOGY_WORKERS} is {workers}, more than the limit of {MAX_WORKERS}"
        ));
    }
    let ackers = spec
        .config
        .u64_or(TOPOLOGY_ACKER_EXECUTORS, 1)
        .map_err(|e| e.to_string())?;
    let tasks: u64 = spec
        .components
        .iter()
        .map(|c| u64::from(c.num_tasks))
        .sum::<u64>()
        .saturating_add(ackers);
    if tasks > MAX_TASKS {
        return Err(format!(
            "the topology has {tasks} tasks (acker tasks included), more than the limit of {MAX_TASKS}"
        ));
    }
    Ok(())
}

/// Activates (`active`) or deactivates a topology; returns what happened.
pub(crate) fn set_active(rec: &mut TopologyRecord, active: bool) -> Result<String, StateError> {
    let (target, word) = if active {
        (TopologyState::Active, "active")
    } else {
        (TopologyState::Inactive, "inactive")
    };
    match rec.state {
        TopologyState::Killed => Err(StateError::BeingKilled {
            name: rec.name.clone(),
            action: if active { "activated" } else { "deactivated" },
        }),
        TopologyState::Active | TopologyState::Inactive if rec.state == target => {
            Ok(format!("already {word}"))
        }
        TopologyState::Active | TopologyState::Inactive => {
            rec.state = target;
            rec.resume = target;
            Ok(format!("now {word}"))
        }
        TopologyState::Pending | TopologyState::Rebalancing => {
            rec.resume = target;
            Ok(format!(
                "{}; it will be {word} once scheduled",
                state_name(rec.state)
            ))
        }
    }
}

/// Kills a topology: KILLED (spouts paused) now, removed after `wait_secs`.
pub(crate) fn kill(rec: &mut TopologyRecord, wait_secs: u64, now_ms: u64) -> String {
    rec.state = TopologyState::Killed;
    rec.deadline = Some(Deadline {
        at_ms: now_ms.saturating_add(wait_secs.saturating_mul(1000)),
        action: DeadlineAction::Kill,
    });
    rec.scheduler_info = format!("killed; its workers stop in {wait_secs} s");
    if wait_secs == 0 {
        "killed; its workers stop now".to_string()
    } else {
        rec.scheduler_info.clone()
    }
}

/// Checks a rebalance request against the spec.
pub(crate) fn check_rebalance(
    name: &str,
    spec: &TopologySpec,
    req: &RebalanceRequest,
) -> Result<(), StateError> {
    match req.workers {
        Some(0) => {
            return Err(StateError::ZeroWorkers {
                name: name.to_string(),
            })
        }
        Some(w) if u64::from(w) > MAX_WORKERS => {
            return Err(StateError::TooManyWorkers {
                name: name.to_string(),
                workers: w,
            })
        }
        _ => {}
    }
    for (component, &parallelism) in &req.parallelism {
        let Some(c) = spec
            .component(component)
            .filter(|_| component != ACKER_COMPONENT)
        else {
            return Err(StateError::UnknownComponent {
                name: name.to_string(),
                component: component.clone(),
                known: spec.components.iter().map(|c| c.id.clone()).collect(),
            });
        };
        if parallelism == 0 || parallelism > c.num_tasks {
            return Err(StateError::ParallelismOutOfRange {
                name: name.to_string(),
                component: component.clone(),
                parallelism,
                num_tasks: c.num_tasks,
            });
        }
    }
    Ok(())
}

/// Starts a (checked) rebalance: a PENDING topology gets the new spec at once; a scheduled one
/// becomes REBALANCING (spouts paused) until `wait_secs` have passed.
pub(crate) fn start_rebalance(
    rec: &mut TopologyRecord,
    req: RebalanceRequest,
    wait_secs: u64,
    now_ms: u64,
) -> Result<String, StateError> {
    check_rebalance(&rec.name, &rec.spec, &req)?;
    match rec.state {
        TopologyState::Killed => Err(StateError::BeingKilled {
            name: rec.name.clone(),
            action: "rebalanced",
        }),
        TopologyState::Rebalancing => Err(StateError::AlreadyRebalancing {
            name: rec.name.clone(),
        }),
        TopologyState::Pending => {
            rec.spec = rebalanced_spec(&rec.spec, &req);
            Ok("pending; its spec is changed for when it is scheduled".to_string())
        }
        TopologyState::Active | TopologyState::Inactive => {
            rec.resume = rec.state;
            rec.state = TopologyState::Rebalancing;
            rec.deadline = Some(Deadline {
                at_ms: now_ms.saturating_add(wait_secs.saturating_mul(1000)),
                action: DeadlineAction::Rebalance { request: req },
            });
            rec.scheduler_info = format!("rebalancing in {wait_secs} s");
            Ok(rec.scheduler_info.clone())
        }
    }
}

/// `spec` with the request's parallelism and workers.
pub(crate) fn rebalanced_spec(spec: &TopologySpec, req: &RebalanceRequest) -> TopologySpec {
    let mut spec = spec.clone();
    for c in &mut spec.components {
        if let Some(&p) = req.parallelism.get(&c.id) {
            c.parallelism = p;
        }
    }
    if let Some(w) = req.workers {
        spec.config.set(TOPOLOGY_WORKERS, w);
    }
    spec
}

/// The state's name as the API spells it.
pub(crate) fn state_name(state: TopologyState) -> &'static str {
    match state {
        TopologyState::Pending => "PENDING",
        TopologyState::Active => "ACTIVE",
        TopologyState::Inactive => "INACTIVE",
        TopologyState::Killed => "KILLED",
        TopologyState::Rebalancing => "REBALANCING",
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use std::collections::BTreeMap;
    use tempest_protocol::spec::{
        ComponentKind, ComponentSpec, GroupingSpec, InputSpec, StreamSpec,
    };
    use tempest_protocol::Config;

    /// A valid spec: spout "s" (2 executors, 4 tasks) -> bolt "b" (3 executors).
    pub(crate) fn spec(name: &str, workers: u64) -> TopologySpec {
        let streams = BTreeMap::from([(
            "default".to_string(),
            StreamSpec {
                fields: vec!["word".into()],
                direct: false,
            },
        )]);
        TopologySpec {
            name: name.into(),
            config: Config::new().with_workers(workers),
            components: vec![
                ComponentSpec {
                    id: "s".into(),
                    kind: ComponentKind::Spout,
                    parallelism: 2,
                    num_tasks: 4,
                    streams: streams.clone(),
                    inputs: vec![],
                    config: Config::new(),
                },
                ComponentSpec {
                    id: "b".into(),
                    kind: ComponentKind::Bolt,
                    parallelism: 3,
                    num_tasks: 3,
                    streams,
                    inputs: vec![InputSpec {
                        component: "s".into(),
                        stream: "default".into(),
                        grouping: GroupingSpec::Shuffle,
                    }],
                    config: Config::new(),
                },
            ],
        }
    }

    pub(crate) fn record(name: &str) -> TopologyRecord {
        TopologyRecord::submitted(spec(name, 2), "a".repeat(64), 1_000)
    }

    fn scheduled(state: TopologyState) -> TopologyRecord {
        let mut r = record("t");
        r.state = state;
        r.resume = state;
        r
    }

    #[test]
    fn activate_and_deactivate() {
        let mut r = scheduled(TopologyState::Active);
        assert_eq!(set_active(&mut r, true).unwrap(), "already active");
        set_active(&mut r, false).unwrap();
        assert_eq!(
            (r.state, r.resume),
            (TopologyState::Inactive, TopologyState::Inactive)
        );
        set_active(&mut r, true).unwrap();
        assert_eq!(r.state, TopologyState::Active);
    }

    #[test]
    fn deactivating_a_pending_topology_takes_effect_once_scheduled() {
        let mut r = record("t");
        let msg = set_active(&mut r, false).unwrap();
        assert_eq!(
            (r.state, r.resume),
            (TopologyState::Pending, TopologyState::Inactive)
        );
        assert!(msg.contains("once scheduled"), "{msg}");
    }

    #[test]
    fn a_killed_topology_cannot_be_activated_or_rebalanced() {
        let mut r = scheduled(TopologyState::Active);
        kill(&mut r, 30, 5_000);
        assert_eq!(r.state, TopologyState::Killed);
        assert_eq!(r.due(34_999), None);
        assert_eq!(r.due(35_000), Some(&DeadlineAction::Kill));
        let e = set_active(&mut r, true).unwrap_err();
        assert!(matches!(e, StateError::BeingKilled { .. }), "{e}");
        let e = start_rebalance(&mut r, RebalanceRequest::default(), 0, 0).unwrap_err();
        assert!(e.to_string().contains("being killed"), "{e}");
    }

    #[test]
    fn rebalance_is_checked_and_remembers_the_state_to_return_to() {
        let mut r = scheduled(TopologyState::Inactive);
        let bad = RebalanceRequest {
            workers: None,
            parallelism: BTreeMap::from([("b".to_string(), 4)]),
        };
        let e = start_rebalance(&mut r, bad, 0, 0).unwrap_err().to_string();
        assert!(e.contains("\"b\"") && e.contains("3 tasks"), "{e}");
        let unknown = RebalanceRequest {
            workers: None,
            parallelism: BTreeMap::from([("nope".to_string(), 1)]),
        };
        let e = start_rebalance(&mut r, unknown, 0, 0)
            .unwrap_err()
            .to_string();
        assert!(e.contains("\"nope\""), "{e}");
        let zero = RebalanceRequest {
            workers: Some(0),
            ..RebalanceRequest::default()
        };
        assert!(start_rebalance(&mut r, zero, 0, 0).is_err());
        assert_eq!(r.state, TopologyState::Inactive, "refusals change nothing");

        let ok = RebalanceRequest {
            workers: Some(3),
            parallelism: BTreeMap::from([("s".to_string(), 4)]),
        };
        start_rebalance(&mut r, ok.clone(), 10, 1_000).unwrap();
        assert_eq!(
            (r.state, r.resume),
            (TopologyState::Rebalancing, TopologyState::Inactive)
        );
        assert_eq!(r.deadline.as_ref().unwrap().at_ms, 11_000);
        let e = start_rebalance(&mut r, ok.clone(), 10, 1_000).unwrap_err();
        assert!(matches!(e, StateError::AlreadyRebalancing { .. }));

        let s = rebalanced_spec(&r.spec, &ok);
        assert_eq!(s.component("s").unwrap().parallelism, 4);
        assert_eq!(s.config.u64_or(TOPOLOGY_WORKERS, 1).unwrap(), 3);
    }

    #[test]
    fn oversized_specs_are_refused() {
        let mut s = spec("t", 1);
        s.components[0].num_tasks = u32::MAX;
        let e = check_spec_size(&s).unwrap_err();
        assert!(e.contains("tasks"), "{e}");
        let s = spec("t", 0);
        assert!(check_spec_size(&s)
            .unwrap_err()
            .contains("topology.workers"));
        assert!(check_spec_size(&spec("t", 2)).is_ok());
    }
}
