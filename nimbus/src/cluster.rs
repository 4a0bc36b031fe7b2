//! Nimbus's state and the operations on it: the durable topologies and assignments (mirrored in
//! memory, every change committed to the store before it is applied and answered), what the
//! heartbeats said, and the scheduler round that reconciles the two.

use crate::artifacts::ArtifactStore;
use crate::clock::Clock;
use crate::config::NimbusConfig;
use crate::error::{ApiError, NimbusError};
use crate::heartbeat::{check_supervisor_heartbeat, Heartbeats, Timeouts};
use crate::log_proxy::LogProxy;
use crate::metrics_history::MetricsHistory;
use crate::reconcile;
use crate::scheduler;
use crate::state::{self, TopologyRecord};
use crate::store::{Changes, Durable, Store, StoreError};
use crate::topology_view::Snapshot;
use serde::{Deserialize, Serialize};
use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use tokio::sync::RwLock;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use topology_api::client::check_topology_name;
use topology_api::control::stats::{pretty_duration, ComponentPage, Window};
use topology_api::control::{
    ActionResponse, Assignment, RebalanceRequest, SubmitRequest, SupervisorAssignments,
    SupervisorHeartbeat, SupervisorList, TopologyDetails, TopologyList, TopologyState,
    TopologySummary, WorkerDirective, WorkerHeartbeat,
};
use topology_api::spec::TaskLayout;

/// Names that are paths of the API, not topologies.
const RESERVED_NAMES: &[&str] = &["summary"];

/// `GET /api/v1/cluster/summary`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClusterSummary {
    /// Live supervisors.
    pub supervisors: u32,
    /// Slots offered by live supervisors.
    #[serde(rename = "slotsTotal")]
    pub slots_total: u32,
    /// Slots of live supervisors that assignments use.
    #[serde(rename = "slotsUsed")]
    pub slots_used: u32,
    /// Slots of live supervisors that no assignment uses.
    #[serde(rename = "slotsFree")]
    pub slots_free: u32,
    /// Live topologies.
    pub topologies: u32,
    /// Seconds since this Nimbus started.
    #[serde(rename = "nimbusUptimeSeconds")]
    pub nimbus_uptime_seconds: u64,
    /// The same, as Storm writes it ("6m 5s").
    #[serde(default, rename = "nimbusUptime")]
    pub nimbus_uptime: String,
    /// Executors assigned, all topologies.
    #[serde(default, rename = "executorsTotal")]
    pub executors_total: u32,
    /// Tasks of all topologies.
    #[serde(default, rename = "tasksTotal")]
    pub tasks_total: u32,
    /// The version of this Nimbus.
    #[serde(default, rename = "tempestVersion")]
    pub tempest_version: String,
}

/// The durable state in memory, and when each assignment was made (by this process).
struct Core {
    durable: Durable,
    assigned_at: HashMap<String, Instant>,
}

impl Core {
    /// (supervisor, port) of every assigned slot.
    fn used_slots(&self) -> HashSet<(String, u16)> {
        self.durable
            .assignments
            .values()
            .flat_map(|a| a.workers.iter().map(|w| (w.supervisor.clone(), w.port)))
            .collect()
    }

    fn record(&self, name: &str) -> Result<&TopologyRecord, ApiError> {
        self.durable
            .topologies
            .get(name)
            .ok_or_else(|| ApiError::unknown_topology(name))
    }
}

/// Unix time in ms.
fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// A checked topology name from a path.
fn checked_name(name: &str) -> Result<(), ApiError> {
    check_topology_name(name).map_err(ApiError::bad_request)
}

/// Nimbus: its state and what can be done with it.
pub(crate) struct Cluster {
    store: Arc<Store>,
    pub(crate) artifacts: ArtifactStore,
    timeouts: Timeouts,
    core: RwLock<Core>,
    heartbeats: Mutex<Heartbeats>,
    /// Stamps the metrics history.
    clock: Clock,
    metrics: Mutex<MetricsHistory>,
    /// Fetches worker logs from the supervisors.
    pub(crate) log_proxy: LogProxy,
}

impl Cluster {
    /// Opens the data dir: the artifact store and the state store, loaded. Metrics are
    /// stamped with `clock`.
    pub(crate) async fn open(config: &NimbusConfig, clock: Clock) -> Result<Self, NimbusError> {
        let dir = config.data_dir.clone();
        let io = |path: &std::path::Path| {
            let path = path.to_path_buf();
            move |source| NimbusError::Io { path, source }
        };
        std::fs::create_dir_all(&dir).map_err(io(&dir))?;
        let artifacts_dir = dir.join("artifacts");
        let artifacts = ArtifactStore::open(artifacts_dir.clone(), config.max_upload_mb)
            .map_err(io(&artifacts_dir))?;
        let db_path = dir.join("nimbus.redb");
        let (store, durable) = tokio::task::spawn_blocking(move || {
            let store = Store::open(&db_path)?;
            let durable = store.load()?;
            Ok::<_, StoreError>((store, durable))
        })
        .await
        .map_err(|e| NimbusError::Crashed("opening the state store", e.to_string()))?
        .map_err(|e| NimbusError::Store(e.to_string()))?;
        tracing::info!(
            store = %store.path().display(),
            topologies = durable.topologies.len(),
            assignments = durable.assignments.len(),
            "state loaded"
        );
        Ok(Cluster {
            store: Arc::new(store),
            artifacts,
            timeouts: Timeouts {
                started: Instant::now(),
                supervisor: Duration::from_secs(config.supervisor_timeout_secs),
                worker: Duration::from_secs(config.worker_timeout_secs),
            },
            core: RwLock::new(Core {
                durable,
                assigned_at: HashMap::new(),
            }),
            heartbeats: Mutex::new(Heartbeats::default()),
            metrics: Mutex::new(MetricsHistory::default()),
            clock,
            log_proxy: LogProxy::new(config.secret.clone())
                .map_err(|e| NimbusError::Crashed("the log proxy's HTTP client", e))?,
        })
    }

    fn heartbeats(&self) -> MutexGuard<'_, Heartbeats> {
        // A panic while holding the lock leaves plain data behind: keep using it.
        self.heartbeats
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn metrics(&self) -> MutexGuard<'_, MetricsHistory> {
        self.metrics
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Commits `changes` durably, then applies them in memory.
    async fn commit(&self, core: &mut Core, changes: Changes) -> Result<(), StoreError> {
        if changes.is_empty() {
            return Ok(());
        }
        let store = self.store.clone();
        let changes = tokio::task::spawn_blocking(move || store.commit(&changes).map(|()| changes))
            .await
            .map_err(|e| StoreError::Interrupted {
                path: self.store.path().to_path_buf(),
                reason: e.to_string(),
            })??;
        let now = Instant::now();
        for (name, a) in &changes.assignments {
            match a {
                Some(_) => core.assigned_at.insert(name.clone(), now),
                None => core.assigned_at.remove(name),
            };
        }
        core.durable.apply(changes);
        Ok(())
    }

    /// One scheduler round (see `reconcile`): commits what it decides.
    pub(crate) async fn reconcile(&self) -> Result<(), StoreError> {
        let mut core = self.core.write().await;
        let now = Instant::now();
        let t = &self.timeouts;
        let (free, dead) = {
            let hb = self.heartbeats();
            let free = hb.free_slots(&core.used_slots(), now, t);
            let dead: HashMap<_, _> = core
                .durable
                .assignments
                .iter()
                .filter_map(|(name, a)| {
                    let since = core
                        .assigned_at
                        .get(name)
                        .copied()
                        .unwrap_or(t.started)
                        .max(t.started);
                    let d = hb.dead_slots(a, since, now, t);
                    (!d.is_empty()).then(|| (name.clone(), d))
                })
                .collect();
            (free, dead)
        };
        let round = reconcile::plan(&core.durable, free, &dead, now_ms());
        if !round.changes.is_empty() {
            self.commit(&mut core, round.changes).await?;
            for e in &round.events {
                tracing::info!("{e}");
            }
        }
        let mut hb = self.heartbeats();
        for name in &round.removed {
            hb.forget_topology(name);
        }
        hb.prune(&core.durable.assignments, now);
        drop(hb);
        self.metrics()
            .retain(|t| core.durable.topologies.contains_key(t));
        Ok(())
    }

    /// Runs a round every second until cancelled.
    pub(crate) async fn run_scheduler(self: Arc<Self>, cancel: CancellationToken) {
        let mut tick = tokio::time::interval(Duration::from_secs(1));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = cancel.cancelled() => break,
                _ = tick.tick() => {}
            }
            if let Err(e) = self.reconcile().await {
                tracing::error!("scheduler round failed, retrying in a second: {e}");
            }
        }
    }

    /// A round right after a change, so its answer reflects it; a failure is left to the
    /// next periodic round.
    async fn reconcile_now(&self) {
        if let Err(e) = self.reconcile().await {
            tracing::error!("scheduler round failed, retrying in a second: {e}");
        }
    }

    /// `POST /api/v1/topologies`.
    pub(crate) async fn submit(&self, req: SubmitRequest) -> Result<ActionResponse, ApiError> {
        let name = req.name;
        checked_name(&name)?;
        if RESERVED_NAMES.contains(&name.as_str()) {
            return Err(ApiError::bad_request(format!(
                "topology name {name:?} is reserved (it is a path of the API); choose another"
            )));
        }
        let mut spec = req.spec;
        spec.name = name.clone();
        spec.config = spec.config.merged(&req.config);
        if let Err(e) = topology_api::validate::validate(&spec) {
            return Err(ApiError::bad_request(format!("topology {name:?}: {e}")));
        }
        state::check_spec_size(&spec)
            .map_err(|e| ApiError::bad_request(format!("topology {name:?}: {e}")))?;
        if !self
            .artifacts
            .exists(&req.artifact)
            .await
            .map_err(|e| ApiError::bad_request(format!("topology {name:?}: {e}")))?
        {
            return Err(ApiError::bad_request(format!(
                "topology {name:?}: artifact {} is not in Nimbus; upload it first (PUT /api/v1/artifacts/{})",
                req.artifact, req.artifact
            )));
        }
        {
            let mut core = self.core.write().await;
            if let Some(live) = core.durable.topologies.get(&name) {
                return Err(ApiError::conflict(format!(
                    "a topology named {name:?} is already live ({}); kill it first or choose another name",
                    state::state_name(live.state)
                )));
            }
            let mut changes = Changes::default();
            changes.put_topology(TopologyRecord::submitted(spec, req.artifact, now_ms()));
            self.commit(&mut core, changes).await?;
        }
        tracing::info!(topology = %name, "topology submitted");
        self.reconcile_now().await;
        let core = self.core.read().await;
        Ok(match core.durable.topologies.get(&name) {
            Some(rec) => ActionResponse {
                name,
                state: rec.state,
                message: rec.scheduler_info.clone(),
            },
            None => ActionResponse {
                name,
                state: TopologyState::Killed,
                message: "killed right after its submission".into(),
            },
        })
    }

    fn summary(&self, core: &Core, rec: &TopologyRecord) -> TopologySummary {
        let a = core.durable.assignments.get(&rec.name);
        TopologySummary {
            id: rec.name.clone(),
            name: rec.name.clone(),
            status: rec.state,
            uptime_seconds: now_ms().saturating_sub(rec.submitted_ms) / 1000,
            uptime: pretty_duration(now_ms().saturating_sub(rec.submitted_ms) / 1000),
            workers_total: a.map_or(0, |a| a.workers.len() as u32),
            executors_total: a.map_or(0, |a| {
                a.workers.iter().map(|w| w.executors.len() as u32).sum()
            }),
            tasks_total: TaskLayout::of(&rec.spec).max_task(),
            requested_workers: scheduler::requested_workers(&rec.spec) as u32,
            scheduler_info: rec.scheduler_info.clone(),
        }
    }

    /// `GET /api/v1/topology/summary`.
    pub(crate) async fn list(&self) -> TopologyList {
        let core = self.core.read().await;
        TopologyList {
            topologies: core
                .durable
                .topologies
                .values()
                .map(|r| self.summary(&core, r))
                .collect(),
        }
    }

    /// `GET /api/v1/topology/{name}?window=&sys=`.
    pub(crate) async fn describe(
        &self,
        name: &str,
        window: Window,
        sys: bool,
    ) -> Result<TopologyDetails, ApiError> {
        checked_name(name)?;
        let core = self.core.read().await;
        let rec = core.record(name)?;
        let assignment = core.durable.assignments.get(name);
        let worker_seen = self.worker_seen(name, assignment);
        let now_ms = self.clock.now_ms();
        let metrics = self.metrics();
        let empty = Default::default();
        let snapshot = Snapshot {
            name,
            state: rec.state,
            spec: &rec.spec,
            layout: TaskLayout::of(&rec.spec),
            assignment,
            tasks: metrics.tasks(name).unwrap_or(&empty),
            worker_seen,
            now_ms,
        };
        Ok(TopologyDetails {
            summary: self.summary(&core, rec),
            configuration: rec.spec.config.clone(),
            assignment: assignment.cloned(),
            tasks: metrics.latest(name, now_ms),
            view: snapshot.topology_view(window, sys),
        })
    }

    /// `GET /api/v1/topology/{name}/component/{component}?window=`.
    pub(crate) async fn component(
        &self,
        name: &str,
        component: &str,
        window: Window,
    ) -> Result<ComponentPage, ApiError> {
        checked_name(name)?;
        let core = self.core.read().await;
        let rec = core.record(name)?;
        let assignment = core.durable.assignments.get(name);
        let worker_seen = self.worker_seen(name, assignment);
        let metrics = self.metrics();
        let empty = Default::default();
        let snapshot = Snapshot {
            name,
            state: rec.state,
            spec: &rec.spec,
            layout: TaskLayout::of(&rec.spec),
            assignment,
            tasks: metrics.tasks(name).unwrap_or(&empty),
            worker_seen,
            now_ms: self.clock.now_ms(),
        };
        snapshot.component_page(component, window).ok_or_else(|| {
            ApiError::not_found(format!(
                "topology {name:?} has no component {component:?}; it has {}",
                snapshot
                    .components(true)
                    .iter()
                    .map(|(id, _)| format!("{id:?}"))
                    .collect::<Vec<_>>()
                    .join(", ")
            ))
        })
    }

    /// Seconds since each worker of `assignment` last reported.
    fn worker_seen(
        &self,
        name: &str,
        assignment: Option<&Assignment>,
    ) -> HashMap<(String, u16), u64> {
        let now = Instant::now();
        let hb = self.heartbeats();
        assignment
            .into_iter()
            .flat_map(|a| &a.workers)
            .filter_map(|w| {
                hb.worker_seen(name, &w.host, w.port)
                    .map(|at| ((w.host.clone(), w.port), now.duration_since(at).as_secs()))
            })
            .collect()
    }

    /// The base URL of the log server of the supervisor offering `host:port` for `name`'s
    /// worker: the one of the current assignment, else any known supervisor on that host
    /// offering that port.
    pub(crate) async fn log_server(
        &self,
        name: &str,
        host: &str,
        port: u16,
    ) -> Result<String, ApiError> {
        checked_name(name)?;
        let core = self.core.read().await;
        core.record(name)?;
        let assigned = core
            .durable
            .assignments
            .get(name)
            .and_then(|a| a.slot(host, port))
            .map(|w| w.supervisor.clone());
        let hb = self.heartbeats();
        let found = match assigned
            .as_deref()
            .and_then(|id| hb.supervisor(id).map(|s| (id, s)))
        {
            Some((id, (_, _, http))) => Some((id.to_string(), http)),
            None => hb
                .supervisors()
                .find(|(_, h, slots, _)| *h == host && slots.contains(&port))
                .map(|(id, _, _, http)| (id.to_string(), http)),
        };
        match found {
            Some((_, Some(url))) => Ok(url.to_string()),
            Some((id, None)) => Err(ApiError::not_found(format!(
                "supervisor {id:?} (running {host}:{port}) serves no worker logs: its \
                 http_listen is off"
            ))),
            None => Err(ApiError::not_found(format!(
                "no known supervisor offers {host}:{port} for topology {name:?}"
            ))),
        }
    }

    /// `GET /metrics`: the Prometheus text of every task and the cluster.
    pub(crate) async fn prometheus_text(&self) -> Result<String, ApiError> {
        let summary = self.cluster_summary().await;
        let core = self.core.read().await;
        let now_ms = self.clock.now_ms();
        let metrics = self.metrics();
        let topologies: Vec<crate::prometheus::TopologyMetrics<'_>> = core
            .durable
            .topologies
            .values()
            .map(|rec| crate::prometheus::TopologyMetrics {
                name: &rec.name,
                state: rec.state,
                workers: core
                    .durable
                    .assignments
                    .get(&rec.name)
                    .map_or(0, |a| a.workers.len() as u32),
                tasks: metrics.tasks(&rec.name),
            })
            .collect();
        crate::prometheus::encode(&summary, &topologies, now_ms)
            .map_err(|e| ApiError::new(axum::http::StatusCode::INTERNAL_SERVER_ERROR, e))
    }

    /// `GET /api/v1/topology/{name}/assignment`.
    pub(crate) async fn assignment(&self, name: &str) -> Result<Assignment, ApiError> {
        checked_name(name)?;
        let core = self.core.read().await;
        let rec = core.record(name)?;
        core.durable.assignments.get(name).cloned().ok_or_else(|| {
            ApiError::not_found(format!(
                "topology {name:?} is not scheduled ({}: {})",
                state::state_name(rec.state),
                rec.scheduler_info
            ))
        })
    }

    /// Applies a lifecycle transition to a topology and commits it; answers with its state.
    async fn transition(
        &self,
        name: &str,
        change: impl FnOnce(&mut TopologyRecord, u64) -> Result<String, state::StateError>,
    ) -> Result<ActionResponse, ApiError> {
        checked_name(name)?;
        let mut core = self.core.write().await;
        let before = core.record(name)?;
        let mut rec = before.clone();
        let message = change(&mut rec, now_ms())?;
        if rec != *before {
            let mut changes = Changes::default();
            changes.put_topology(rec.clone());
            self.commit(&mut core, changes).await?;
            tracing::info!(topology = %name, state = state::state_name(rec.state), "{message}");
        }
        Ok(ActionResponse {
            name: name.to_string(),
            state: rec.state,
            message,
        })
    }

    /// `POST /api/v1/topology/{name}/activate` and `.../deactivate`.
    pub(crate) async fn set_active(
        &self,
        name: &str,
        active: bool,
    ) -> Result<ActionResponse, ApiError> {
        self.transition(name, |rec, _| state::set_active(rec, active))
            .await
    }

    /// `POST /api/v1/topology/{name}/kill/{wait_secs}`.
    pub(crate) async fn kill(
        &self,
        name: &str,
        wait_secs: u64,
    ) -> Result<ActionResponse, ApiError> {
        let answer = self
            .transition(name, |rec, now| Ok(state::kill(rec, wait_secs, now)))
            .await?;
        if wait_secs == 0 {
            self.reconcile_now().await;
        }
        Ok(answer)
    }

    /// `POST /api/v1/topology/{name}/rebalance/{wait_secs}`.
    pub(crate) async fn rebalance(
        &self,
        name: &str,
        wait_secs: u64,
        req: RebalanceRequest,
    ) -> Result<ActionResponse, ApiError> {
        let answer = self
            .transition(name, |rec, now| {
                state::start_rebalance(rec, req, wait_secs, now)
            })
            .await?;
        if wait_secs > 0 {
            return Ok(answer);
        }
        self.reconcile_now().await;
        let core = self.core.read().await;
        Ok(match core.durable.topologies.get(name) {
            Some(rec) => ActionResponse {
                name: name.to_string(),
                state: rec.state,
                message: rec.scheduler_info.clone(),
            },
            None => answer,
        })
    }

    /// `GET /api/v1/supervisor/summary`.
    pub(crate) async fn supervisors(&self) -> SupervisorList {
        let core = self.core.read().await;
        let mut used: HashMap<&str, u32> = HashMap::new();
        for a in core.durable.assignments.values() {
            for w in &a.workers {
                *used.entry(w.supervisor.as_str()).or_default() += 1;
            }
        }
        let supervisors = self.heartbeats().summaries(
            |id| used.get(id).copied().unwrap_or(0),
            Instant::now(),
            &self.timeouts,
        );
        SupervisorList { supervisors }
    }

    /// `GET /api/v1/cluster/summary`.
    pub(crate) async fn cluster_summary(&self) -> ClusterSummary {
        let list = self.supervisors().await;
        let topologies = self.core.read().await.durable.topologies.len() as u32;
        let live = list.supervisors.iter().filter(|s| s.alive);
        let (mut total, mut used, mut count) = (0, 0, 0);
        for s in live {
            count += 1;
            total += s.slots_total;
            used += s.slots_used.min(s.slots_total);
        }
        let (executors_total, tasks_total) = {
            let core = self.core.read().await;
            let executors = core
                .durable
                .assignments
                .values()
                .flat_map(|a| &a.workers)
                .map(|w| w.executors.len() as u32)
                .sum();
            let tasks = core
                .durable
                .topologies
                .values()
                .map(|r| TaskLayout::of(&r.spec).max_task())
                .sum();
            (executors, tasks)
        };
        let uptime = self.timeouts.started.elapsed().as_secs();
        ClusterSummary {
            supervisors: count,
            slots_total: total,
            slots_used: used,
            slots_free: total - used,
            topologies,
            nimbus_uptime_seconds: uptime,
            nimbus_uptime: pretty_duration(uptime),
            executors_total,
            tasks_total,
            tempest_version: env!("CARGO_PKG_VERSION").to_string(),
        }
    }

    /// `POST /api/v1/supervisor/heartbeat`.
    pub(crate) async fn supervisor_heartbeat(
        &self,
        hb: SupervisorHeartbeat,
    ) -> Result<SupervisorAssignments, ApiError> {
        check_supervisor_heartbeat(&hb).map_err(ApiError::bad_request)?;
        let id = hb.id.clone();
        let changed = {
            let mut heartbeats = self.heartbeats();
            let now = Instant::now();
            if let Some((other, port)) = heartbeats.address_taken(&hb, now, &self.timeouts) {
                return Err(ApiError::conflict(format!(
                    "supervisor {id:?} offers {}:{port}, which live supervisor {other:?} offers \
                     too; give each supervisor on a host its own slot ports",
                    hb.host
                )));
            }
            heartbeats.record_supervisor(hb, now, &self.timeouts)
        };
        if changed {
            self.reconcile_now().await;
        }
        let core = self.core.read().await;
        Ok(SupervisorAssignments {
            assignments: core
                .durable
                .assignments
                .values()
                .filter(|a| a.workers.iter().any(|w| w.supervisor == id))
                .cloned()
                .collect(),
        })
    }

    /// `POST /api/v1/worker/heartbeat`.
    pub(crate) async fn worker_heartbeat(
        &self,
        hb: WorkerHeartbeat,
    ) -> Result<WorkerDirective, ApiError> {
        checked_name(&hb.topology)?;
        let core = self.core.read().await;
        let Some(rec) = core.durable.topologies.get(&hb.topology) else {
            return Err(ApiError::not_found(format!(
                "topology {:?} is not known to Nimbus (killed?); its workers should stop",
                hb.topology
            )));
        };
        let assignment = core.durable.assignments.get(&hb.topology);
        let version = assignment.map_or(0, |a| a.version);
        let current =
            assignment.filter(|a| a.version == hb.version && a.slot(&hb.host, hb.port).is_some());
        if current.is_some() {
            let max_task = TaskLayout::of(&rec.spec).max_task();
            self.heartbeats()
                .record_worker(&hb.topology, &hb.host, hb.port, Instant::now());
            let assigned_here = core.assigned_at.contains_key(&hb.topology);
            self.metrics()
                .record_worker(hb, max_task, assigned_here, self.clock.now_ms());
        }
        Ok(WorkerDirective {
            state: rec.state,
            version,
        })
    }
}
