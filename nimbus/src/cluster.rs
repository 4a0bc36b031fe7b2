//! Nimbus's state and the operations on it: the durable topologies and assignments (mirrored in
//! memory, every change committed to the store before it is applied and answered), what the
//! heartbeats said, and the scheduler round that reconciles the two. The monitoring API's
//! answers are in [`monitoring`].

mod monitoring;

use crate::artifacts::ArtifactStore;
use crate::clock::Clock;
use crate::config::NimbusConfig;
use crate::error::NimbusError;
use crate::heartbeat::{check_supervisor_heartbeat, Heartbeats, Timeouts};
use crate::leadership::{Leadership, NimbusHost, Takeover};
use crate::log_proxy::LogProxy;
use crate::reconcile;
use crate::scheduler;
use crate::state::{self, TopologyRecord};
use crate::store::{Changes, ClusterStore, Durable, StoreError};
use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use tempest_monitor::http::ApiError;
use tempest_monitor::MetricsHistory;
use tempest_protocol::config::{
    TOPOLOGY_MAX_REPLICATION_WAIT_TIME_SEC, TOPOLOGY_MIN_REPLICATION_COUNT,
};
use tempest_protocol::control::stats::pretty_duration;
use tempest_protocol::control::{
    ActionResponse, Assignment, SubmitRequest, SupervisorAssignments, SupervisorHeartbeat,
    TopologyState, TopologySummary, WorkerDirective, WorkerHeartbeat,
};
use tempest_protocol::names::check_topology_name;
use tempest_protocol::spec::TaskLayout;
use tokio::sync::{Notify, RwLock, RwLockWriteGuard};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

/// Names that are paths of the API, not topologies.
const RESERVED_NAMES: &[&str] = &["summary"];

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

    /// The topology `name`; 404 if there is none.
    fn record(&self, name: &str) -> Result<&TopologyRecord, ApiError> {
        self.durable.topologies.get(name).ok_or_else(|| {
            ApiError::not_found(format!(
                "topology {name:?} is not known to Nimbus; `tempest list` shows the live ones"
            ))
        })
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
    store: Arc<dyn ClusterStore>,
    pub(crate) artifacts: Arc<ArtifactStore>,
    /// Signalled when an upload stored a binary (the replication registers it).
    pub(crate) artifact_stored: Arc<Notify>,
    /// Whether this Nimbus leads, and who does.
    pub(crate) leadership: Arc<Leadership>,
    /// `started` is this process's start (its uptime).
    timeouts: Timeouts,
    /// When this Nimbus last began to lead: nothing is declared dead before a timeout has
    /// passed since (heartbeats went to the old leader until then).
    led_since: Mutex<Instant>,
    /// A write failed in a way that leaves unknown whether it happened: reload before the
    /// next change.
    stale: AtomicBool,
    core: RwLock<Core>,
    heartbeats: Mutex<Heartbeats>,
    /// Stamps the metrics history.
    clock: Clock,
    metrics: Mutex<MetricsHistory>,
    /// Fetches worker logs from the supervisors.
    pub(crate) log_proxy: LogProxy,
    /// Exactly-once topologies whose workers asked to roll back, with the assignment
    /// version they ran (the next round gives them a new one).
    rollbacks: Mutex<HashMap<String, u64>>,
    /// The address the API listens on, once bound (`/api/v1/nimbus/summary`).
    pub(crate) address: std::sync::OnceLock<std::net::SocketAddr>,
}

impl Cluster {
    /// Opens the artifact store in the data dir; the state is `durable`, kept in `store`
    /// (loaded again whenever this Nimbus takes the lead). Metrics are stamped with `clock`.
    pub(crate) fn open(
        config: &NimbusConfig,
        clock: Clock,
        store: Arc<dyn ClusterStore>,
        durable: Durable,
        leadership: Arc<Leadership>,
    ) -> Result<Self, NimbusError> {
        let artifacts_dir = config.data_dir.join("artifacts");
        let artifacts =
            ArtifactStore::open(artifacts_dir.clone(), config.max_upload_mb).map_err(|source| {
                NimbusError::Io {
                    path: artifacts_dir,
                    source,
                }
            })?;
        let now = Instant::now();
        Ok(Cluster {
            store,
            artifacts: Arc::new(artifacts),
            artifact_stored: Arc::new(Notify::new()),
            leadership,
            timeouts: Timeouts {
                started: now,
                supervisor: Duration::from_secs(config.supervisor_timeout_secs),
                worker: Duration::from_secs(config.worker_timeout_secs),
            },
            led_since: Mutex::new(now),
            stale: AtomicBool::new(false),
            core: RwLock::new(Core {
                durable,
                assigned_at: HashMap::new(),
            }),
            rollbacks: Mutex::new(HashMap::new()),
            address: std::sync::OnceLock::new(),
            heartbeats: Mutex::new(Heartbeats::default()),
            metrics: Mutex::new(MetricsHistory::default()),
            clock,
            log_proxy: LogProxy::new(config.secret.clone())
                .map_err(|e| NimbusError::Crashed("the log proxy's HTTP client", e))?,
        })
    }

    /// The liveness clocks: the grace counts from when this Nimbus began to lead.
    pub(crate) fn liveness(&self) -> Timeouts {
        let led_since = *self.led_since.lock().unwrap_or_else(|e| e.into_inner());
        Timeouts {
            started: self.timeouts.started.max(led_since),
            ..self.timeouts
        }
    }

    /// Every Nimbus of the cluster with its status, for Storm's `/api/v1/nimbus/summary`
    /// (the monitoring API's; `GET /api/v1/leader` answers the same list).
    pub(crate) async fn nimbus_hosts(&self) -> Vec<NimbusHost> {
        self.leadership.nimbus_hosts().await
    }

    /// The state for a change: reloaded first if a failed write left it in doubt.
    async fn core_mut(&self) -> Result<RwLockWriteGuard<'_, Core>, StoreError> {
        let mut core = self.core.write().await;
        if self.stale.load(Ordering::SeqCst) {
            core.durable = self.store.load().await?;
            self.stale.store(false, Ordering::SeqCst);
            tracing::info!("state reloaded after a failed write");
        }
        Ok(core)
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
        let changes = match self.store.commit(changes).await {
            Ok(changes) => changes,
            Err(e) => {
                if matches!(e, StoreError::Etcd { .. } | StoreError::Interrupted { .. }) {
                    self.stale.store(true, Ordering::SeqCst);
                }
                return Err(e);
            }
        };
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
        if !self.leadership.is_leader() {
            return Ok(());
        }
        let mut core = self.core_mut().await?;
        let now = Instant::now();
        let t = &self.liveness();
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
        let rollbacks =
            std::mem::take(&mut *self.rollbacks.lock().unwrap_or_else(|e| e.into_inner()));
        let waiting = self.replication_waits(&core.durable, now_ms()).await;
        let round = reconcile::plan(
            &core.durable,
            free,
            &dead,
            &rollbacks,
            &waiting,
            self.store.max_topologies_per_commit(),
            now_ms(),
        );
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

    /// The new topologies whose binary is not yet on `topology.min.replication.count` Nimbus
    /// hosts and whose `topology.max.replication.wait.time.sec` has not passed, with what
    /// they wait for.
    async fn replication_waits(&self, durable: &Durable, now_ms: u64) -> HashMap<String, String> {
        let mut waits = HashMap::new();
        let new = durable.topologies.values().filter(|r| {
            r.state == TopologyState::Pending
                && r.deadline.is_none()
                && !durable.assignments.contains_key(&r.name)
        });
        for rec in new {
            let min = rec
                .spec
                .config
                .u64_or(TOPOLOGY_MIN_REPLICATION_COUNT, 1)
                .unwrap_or(1);
            if min <= 1 {
                continue;
            }
            let wait = rec
                .spec
                .config
                .f64_or(TOPOLOGY_MAX_REPLICATION_WAIT_TIME_SEC, 60.0)
                .unwrap_or(60.0);
            if wait >= 0.0 && now_ms >= rec.submitted_ms.saturating_add((wait * 1000.0) as u64) {
                continue;
            }
            let have = match self.store.replicas(&rec.artifact).await {
                Ok(n) => n,
                Err(e) => {
                    tracing::warn!(topology = %rec.name, "cannot count its binary's holders: {e}");
                    0
                }
            };
            if have as u64 >= min {
                continue;
            }
            let until = if wait >= 0.0 {
                format!("scheduled anyway {wait} s after its submission")
            } else {
                "waits for it: topology.max.replication.wait.time.sec is -1".to_string()
            };
            waits.insert(
                rec.name.clone(),
                format!("waiting for its binary on {min} Nimbus hosts ({have} so far; {until})"),
            );
        }
        waits
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
    /// `owner` is the submitting user, kept as `topology.submitter.user` (replacing any value
    /// the topology came with).
    pub(crate) async fn submit(
        &self,
        req: SubmitRequest,
        owner: &str,
    ) -> Result<ActionResponse, ApiError> {
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
        spec.config.set(
            tempest_protocol::config::TOPOLOGY_SUBMITTER_USER,
            owner.to_string(),
        );
        if let Err(e) = tempest_protocol::validate::validate(&spec) {
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
            let mut core = self.core_mut().await?;
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

    /// The owner and `topology.users` of topology `name`, if it is known.
    pub(crate) async fn topology_acl(&self, name: &str) -> Option<crate::authz::TopologyAcl> {
        let core = self.core.read().await;
        let config = &core.durable.topologies.get(name)?.spec.config;
        let users = config
            .get(tempest_protocol::config::TOPOLOGY_USERS)
            .and_then(|v| v.as_array())
            .map(|items| {
                items
                    .iter()
                    .filter_map(|u| u.as_str().map(str::to_string))
                    .collect()
            })
            .unwrap_or_default();
        Some(crate::authz::TopologyAcl {
            owner: config
                .str(tempest_protocol::config::TOPOLOGY_SUBMITTER_USER)
                .map(str::to_string),
            users,
        })
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
        let mut core = self.core_mut().await?;
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
            let t = self.liveness();
            if let Some((other, port)) = heartbeats.address_taken(&hb, now, &t) {
                return Err(ApiError::conflict(format!(
                    "supervisor {id:?} offers {}:{port}, which live supervisor {other:?} offers \
                     too; give each supervisor on a host its own slot ports",
                    hb.host
                )));
            }
            heartbeats.record_supervisor(hb, now, &t)
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
        let hb_topology = hb.topology.clone();
        let core = self.core.read().await;
        let Some(rec) = core.durable.topologies.get(&hb.topology) else {
            return Err(ApiError::not_found(format!(
                "topology {:?} is not known to Nimbus (killed?); its workers should stop",
                hb.topology
            )));
        };
        let assignment = core.durable.assignments.get(&hb.topology);
        let version = assignment.map_or(0, |a| a.version);
        let reported = hb.version;
        let current =
            assignment.filter(|a| a.version == hb.version && a.slot(&hb.host, hb.port).is_some());
        let rollback = current.is_some() && hb.rollback;
        if rollback {
            tracing::warn!(
                topology = %hb.topology,
                worker = %format!("{}:{}", hb.host, hb.port),
                version = hb.version,
                "exactly once: a worker asks every worker to roll back to the last completed checkpoint"
            );
            self.rollbacks
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .insert(hb.topology.clone(), hb.version);
        }
        if current.is_some() {
            let max_task = TaskLayout::of(&rec.spec).max_task();
            self.heartbeats()
                .record_worker(&hb.topology, &hb.host, hb.port, Instant::now());
            let assigned_here = core.assigned_at.contains_key(&hb.topology);
            self.metrics()
                .record_worker(hb, max_task, assigned_here, self.clock.now_ms());
        }
        let directive = WorkerDirective {
            state: rec.state,
            version,
            assignment: assignment.filter(|a| a.version != reported).cloned(),
        };
        if rollback {
            // Answer with the new version at once.
            drop(core);
            self.reconcile_now().await;
            let core = self.core.read().await;
            let assignment = core.durable.assignments.get(&hb_topology);
            return Ok(WorkerDirective {
                state: directive.state,
                version: assignment.map_or(0, |a| a.version),
                assignment: assignment.filter(|a| a.version != reported).cloned(),
            });
        }
        Ok(directive)
    }
}

#[async_trait::async_trait]
impl Takeover for Cluster {
    async fn take_over(&self) -> Result<(), StoreError> {
        let durable = self.store.load().await?;
        let mut core = self.core.write().await;
        tracing::info!(
            store = %self.store.describe(),
            topologies = durable.topologies.len(),
            assignments = durable.assignments.len(),
            "taking the lead: state loaded; no supervisor or worker is declared dead before \
             its timeout has passed from now"
        );
        core.durable = durable;
        core.assigned_at.clear();
        self.stale.store(false, Ordering::SeqCst);
        *self.heartbeats() = Heartbeats::default();
        *self.led_since.lock().unwrap_or_else(|e| e.into_inner()) = Instant::now();
        self.rollbacks
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clear();
        Ok(())
    }

    async fn step_down(&self) {
        // Wait for a change in progress to end; none starts, as the role says follower.
        let _core = self.core.write().await;
        tracing::info!("following: this Nimbus no longer schedules nor takes changes");
    }
}
