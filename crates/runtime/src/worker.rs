//! A worker: builds and runs the executors of the tasks it hosts. Local mode is a worker that
//! hosts every task of the topology.

use crate::acker::run_acker;
use crate::collector::{Emitter, OutputCollector, PendingTrees, SpoutOutputCollector, StreamOut};
use crate::component::{EventSender, TopologyContext, EVENT_QUEUE};
use crate::executor::{
    run_bolts, run_spouts, BoltTask, ExecutorError, SpoutCheckpoints, SpoutTask, TaskReport,
};
use crate::grouping::Router;
use crate::metrics::MetricsBoard;
use crate::settings::RuntimeSettings;
use crate::state::barrier::Aligner;
use crate::state::context::StateContext;
use crate::topology::{SpecMismatch, Topology};
use crate::transfer::{Destinations, InboxSender, Outbox, Transfer};
use crate::tuple::{Fields, StreamMeta};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;
use tempest_protocol::config::{ConfigError, TOPOLOGY_DEBUG, TOPOLOGY_TICK_TUPLE_FREQ_SECS};
use tempest_protocol::spec::{
    ComponentKind, ExecutorPlan, GroupingSpec, TaskLayout, ACKER_COMPONENT,
};
use tempest_protocol::status::TopologyStatus;
use tempest_protocol::validate::{validate, TopologyErrors};
use tokio::sync::{mpsc, watch};
use tokio::task::JoinSet;

/// Why a topology could not run to the end.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// The topology is invalid.
    #[error("{0}")]
    Invalid(#[from] TopologyErrors),
    /// A config value is unusable.
    #[error("{0}")]
    Config(#[from] ConfigError),
    /// A component has no factory in this binary (the spec and binary do not match).
    #[error("component {0:?} is in the spec but this binary has no factory for it")]
    MissingFactory(String),
    /// An assigned spec does not match this binary's topology.
    #[error("{0}")]
    SpecMismatch(#[from] SpecMismatch),
    /// An executor stopped on an error (e.g. `prepare` failed).
    #[error("{0}")]
    Executor(#[from] ExecutorError),
    /// An executor panicked outside user callbacks (a bug in Tempest).
    #[error("executor crashed: {0}")]
    Crashed(String),
    /// Local mode could not serve its web UI (e.g. the port is taken).
    #[error("{0}")]
    Ui(String),
}

/// Runs `hosted` executors of `topology` in this process until they all end: spouts when
/// finished (every tree complete) or when `status` says killed; bolts and ackers when their
/// inputs are done. Every task must be hosted here (local mode). Metrics are published to
/// `board` if given.
pub async fn run_executors(
    topology: &Topology,
    hosted: Vec<ExecutorPlan>,
    status: Arc<watch::Sender<TopologyStatus>>,
    board: Option<Arc<MetricsBoard>>,
) -> Result<Vec<TaskReport>, RunError> {
    let (running, inbound) = spawn_executors(
        topology,
        hosted,
        status,
        &Transfer::default(),
        board,
        PathBuf::from(LOCAL_STATE_DIR),
    )?;
    // Nothing arrives from outside: only executors hold senders, so queues close in DAG order.
    drop(inbound);
    running.join().await
}

/// Where local mode keeps redb state files unless `topology.state.redb.dir` says otherwise
/// (relative to the working directory).
pub(crate) const LOCAL_STATE_DIR: &str = "tempest-state";

/// Executors running in this process.
pub(crate) struct RunningExecutors {
    set: JoinSet<Result<Vec<TaskReport>, ExecutorError>>,
    status: Arc<watch::Sender<TopologyStatus>>,
    state: Option<Arc<StateContext>>,
}

impl RunningExecutors {
    /// Exactly once: a task asked for every task to roll back.
    #[cfg_attr(not(feature = "cluster"), allow(dead_code))]
    pub(crate) fn rollback_requested(&self) -> bool {
        self.state.as_ref().is_some_and(|s| s.rollback_requested())
    }

    /// Waits for every executor; the first error kills the rest.
    pub(crate) async fn join(mut self) -> Result<Vec<TaskReport>, RunError> {
        let mut reports = Vec::new();
        let mut first_error = None;
        while let Some(joined) = self.set.join_next().await {
            let result = match joined {
                Ok(r) => r.map_err(RunError::from),
                Err(e) => Err(RunError::Crashed(e.to_string())),
            };
            match result {
                Ok(r) => reports.extend(r),
                Err(e) => {
                    tracing::error!("{e}; stopping the topology");
                    self.status.send_replace(TopologyStatus::Killed);
                    first_error.get_or_insert(e);
                }
            }
        }
        match first_error {
            Some(e) => Err(e),
            None => {
                reports.sort_by_key(|r| r.task_id);
                Ok(reports)
            }
        }
    }
}

/// Starts the `hosted` executors. Tuples for tasks not hosted here go through `remote` (queues
/// drained by the transport); the returned `Transfer` holds the queues of the hosted tasks, for
/// tuples arriving from other workers. Metrics are published to `board` if given.
pub(crate) fn spawn_executors(
    topology: &Topology,
    hosted: Vec<ExecutorPlan>,
    status: Arc<watch::Sender<TopologyStatus>>,
    remote: &Transfer,
    board: Option<Arc<MetricsBoard>>,
    state_dir: PathBuf,
) -> Result<(RunningExecutors, Transfer), RunError> {
    validate(&topology.spec)?;
    let spec = Arc::new(topology.spec.clone());
    let layout = Arc::new(TaskLayout::of(&spec));
    let state = StateContext::of(&spec, &layout, state_dir)?.map(Arc::new);
    let top_settings = RuntimeSettings::from_config(&spec.config)?;
    let max_task = layout.max_task();
    let tracking = top_settings.ackers > 0;
    let ackers = if tracking {
        layout.tasks(ACKER_COMPONENT)
    } else {
        0..0
    };

    // One bounded queue per executor.
    let mut senders: Vec<Option<InboxSender>> = vec![None; max_task as usize + 1];
    let mut inboxes = Vec::with_capacity(hosted.len());
    for plan in &hosted {
        let cap =
            RuntimeSettings::from_config(&spec.component_config(&plan.component))?.receive_buffer;
        let (tx, rx) = mpsc::channel(cap);
        for t in plan.tasks.clone() {
            senders[t as usize] = Some(tx.clone());
        }
        inboxes.push(rx);
    }
    let hosted_tasks = |component: &str| -> Vec<u32> {
        layout
            .tasks(component)
            .filter(|t| senders[*t as usize].is_some())
            .collect()
    };
    let transfer_to = |tasks: &mut dyn Iterator<Item = u32>| {
        let mut tr = Transfer::new(max_task);
        for t in tasks {
            match &senders[t as usize] {
                Some(s) => tr.add(t, s.clone()),
                None => tr.add_from(t, remote),
            }
        }
        tr
    };

    let mut set = JoinSet::new();
    for (plan, inbox) in hosted.iter().zip(inboxes) {
        let component = plan.component.as_str();
        if component == ACKER_COMPONENT {
            let spouts: Vec<u32> = spec
                .components
                .iter()
                .filter(|c| c.kind == ComponentKind::Spout)
                .flat_map(|c| layout.tasks(&c.id))
                .collect();
            let outbox = Outbox::new(Destinations::of(spouts.clone()), top_settings.batch_size);
            let transfer = transfer_to(&mut spouts.into_iter());
            let timeout = top_settings.message_timeout;
            set.spawn(async move {
                run_acker(inbox, transfer, outbox, timeout).await;
                Ok(Vec::new())
            });
            continue;
        }
        let Some(c) = spec.component(component) else {
            return Err(RunError::MissingFactory(component.to_string()));
        };
        let config = Arc::new(spec.component_config(component));
        let settings = RuntimeSettings::from_config(&config)?;
        let debug = config.bool_or(TOPOLOGY_DEBUG, false)?;

        // Where this executor may send: its consumers and the ackers.
        let consumers: Vec<u32> = c
            .streams
            .keys()
            .flat_map(|s| spec.subscribers(component, s))
            .flat_map(|(sub, _)| layout.tasks(&sub.id))
            .chain(ackers.clone())
            .collect();
        let mut barrier_targets: Vec<u32> = consumers
            .iter()
            .copied()
            .filter(|t| !ackers.contains(t))
            .collect();
        barrier_targets.sort_unstable();
        barrier_targets.dedup();
        let destinations = Destinations::of(consumers.clone());
        let transfer = transfer_to(&mut consumers.into_iter());

        let mut rng = fastrand::Rng::new();
        let emitter = |task: u32, rng: &mut fastrand::Rng| {
            let streams = c
                .streams
                .iter()
                .map(|(stream, s)| {
                    let fields = Fields::new(s.fields.clone());
                    let subs: Vec<_> = spec.subscribers(component, stream).collect();
                    let routers = subs
                        .iter()
                        .map(|(sub, grouping)| {
                            let key_fields = match grouping {
                                GroupingSpec::Fields { fields: f }
                                | GroupingSpec::PartialKey { fields: f } => {
                                    f.iter().filter_map(|f| fields.index_of(f)).collect()
                                }
                                _ => Vec::new(),
                            };
                            let custom = match grouping {
                                GroupingSpec::Custom { name } => {
                                    topology.custom_groupings.get(name)
                                }
                                _ => None,
                            };
                            Router::new(
                                grouping,
                                layout.tasks(&sub.id).collect(),
                                key_fields,
                                hosted_tasks(&sub.id),
                                custom,
                                rng,
                            )
                        })
                        .collect();
                    let mut direct_consumers: Vec<u32> = subs
                        .iter()
                        .filter(|(_, g)| **g == GroupingSpec::Direct)
                        .flat_map(|(sub, _)| layout.tasks(&sub.id))
                        .collect();
                    direct_consumers.sort_unstable();
                    StreamOut {
                        meta: StreamMeta::intern(component, stream, &fields),
                        direct: s.direct,
                        routers,
                        direct_consumers,
                    }
                })
                .collect();
            let mut em = Emitter::new(
                task,
                component.to_string(),
                streams,
                Outbox::new(destinations.clone(), settings.batch_size),
                ackers.clone(),
                debug,
                board.clone(),
            );
            if state.is_some() {
                em.barrier_targets = barrier_targets.clone();
            }
            em
        };
        let (events_tx, events_rx) = mpsc::channel(EVENT_QUEUE);
        let is_bolt = c.kind == ComponentKind::Bolt;
        let ctx = |task: u32| TopologyContext {
            spec: spec.clone(),
            layout: layout.clone(),
            component: component.to_string(),
            task_id: task,
            config: config.clone(),
            events: is_bolt.then(|| EventSender::new(task, events_tx.clone())),
            state: state.clone(),
        };
        // Checkpointed topologies: every task of every component this bolt reads from sends
        // it barriers.
        let upstream: Vec<u32> = c
            .inputs
            .iter()
            .flat_map(|i| layout.tasks(&i.component))
            .collect();
        let aligner = || {
            state.as_ref().map(|sc| {
                Aligner::new(
                    upstream.iter().copied(),
                    sc.start_after(),
                    sc.exactly_once,
                    sc.max_buffered,
                )
            })
        };

        match c.kind {
            ComponentKind::Spout => {
                let factory = topology
                    .spouts
                    .get(component)
                    .ok_or_else(|| RunError::MissingFactory(component.to_string()))?;
                let tasks = plan
                    .tasks
                    .clone()
                    .map(|t| SpoutTask {
                        spout: factory(),
                        collector: SpoutOutputCollector {
                            em: emitter(t, &mut rng),
                            pending: PendingTrees::default(),
                            acked_at_emit: Vec::new(),
                            emits: 0,
                        },
                        ctx: ctx(t),
                        checkpoints: state.clone().map(SpoutCheckpoints::new),
                    })
                    .collect();
                let status = status.subscribe();
                set.spawn(run_spouts(tasks, inbox, transfer, settings, status));
            }
            ComponentKind::Bolt => {
                let factory = topology
                    .bolts
                    .get(component)
                    .ok_or_else(|| RunError::MissingFactory(component.to_string()))?;
                let user_tick = match config.u64_or(TOPOLOGY_TICK_TUPLE_FREQ_SECS, 0)? {
                    0 => None,
                    s => Some(Duration::from_secs(s)),
                };
                let tasks: Vec<BoltTask> = plan
                    .tasks
                    .clone()
                    .map(|t| BoltTask {
                        bolt: factory(),
                        collector: OutputCollector {
                            em: emitter(t, &mut rng),
                        },
                        ctx: ctx(t),
                        aligner: aligner(),
                        checkpoint_error: None,
                    })
                    .collect();
                // The shorter of the user's ticks and what the bolt needs (window timers).
                let bolt_tick = tasks.first().and_then(|t| t.bolt.tick_interval());
                let tick = match (user_tick, bolt_tick) {
                    (Some(a), Some(b)) => Some(a.min(b)),
                    (a, b) => a.or(b),
                };
                set.spawn(run_bolts(tasks, inbox, events_rx, transfer, settings, tick));
            }
        }
    }
    let mut inbound = Transfer::new(max_task);
    for (t, sender) in senders.into_iter().enumerate() {
        if let Some(sender) = sender {
            inbound.add(t as u32, sender);
        }
    }
    Ok((RunningExecutors { set, status, state }, inbound))
}
