//! The supervisor's main loop: opens the data directory, adopts the workers left running,
//! starts the heartbeat, and on every answer from Nimbus, every worker check and every
//! finished download brings the workers closer to the assignments.

use crate::adopt::adopt_workers;
use crate::artifacts::ArtifactCache;
use crate::config::{SupervisorConfig, Timings};
use crate::data_dir::{DataDir, DataDirError};
use crate::heartbeat::Heartbeat;
use crate::log_server;
use crate::reconcile::{desired_workers, reconcile, restart_delay, Action, DesiredWorker};
use crate::slots::{LaunchSettings, Slots};
use std::collections::{BTreeMap, HashMap, HashSet};
use std::future::Future;
use std::path::PathBuf;
use std::time::Instant;
use tempest_client::{ClientError, NimbusClient};
use tempest_protocol::control::Assignment;
use tokio::sync::watch;
use tokio::task::JoinSet;

/// Why the supervisor could not start or stopped.
#[derive(Debug, thiserror::Error)]
pub enum SupervisorError {
    /// The configuration is not usable.
    #[error(transparent)]
    Config(#[from] crate::config::ConfigError),
    /// The data directory is not usable.
    #[error(transparent)]
    DataDir(#[from] DataDirError),
    /// The Nimbus URL is not usable.
    #[error(transparent)]
    Client(#[from] ClientError),
    /// The heartbeat task ended unexpectedly (it panicked).
    #[error("the heartbeat task stopped unexpectedly")]
    HeartbeatStopped,
    /// Workers cannot run as `worker_user` (it does not exist, or is root).
    #[error("{0}")]
    WorkerUser(String),
    /// The log server could not listen on `http_listen`.
    #[error("cannot serve worker logs on http_listen {listen:?}: {reason} (choose another address, or \"off\")")]
    LogServer {
        /// The address.
        listen: String,
        /// Why.
        reason: String,
    },
}

/// Runs a supervisor until `shutdown` completes. Its workers keep running after it returns
/// (a restarted supervisor adopts them). Fails at once if the config, the data directory
/// (missing rights, another supervisor on it) or the Nimbus URL is unusable; afterwards
/// problems are logged and retried, never fatal.
pub async fn run(
    config: SupervisorConfig,
    shutdown: impl Future<Output = ()>,
) -> Result<(), SupervisorError> {
    config.validate()?;
    let worker_user = crate::isolation::worker_user(config.run_worker_as_user, &config.worker_user)
        .map_err(SupervisorError::WorkerUser)?;
    let dir = DataDir::open(&config.data_dir)?;
    let _lock = dir.lock()?;
    let id = dir.supervisor_id(config.id.as_deref())?;
    if let Some(user) = &worker_user {
        // The state dir of the workers' redb state provider.
        let state = dir.root().join("state");
        crate::isolation::give_dir(&state, user).map_err(|e| {
            SupervisorError::WorkerUser(format!(
                "cannot give {} to worker_user {:?}: {e}",
                state.display(),
                user.name
            ))
        })?;
    }
    let memory = config.worker_memory_limit_mb.map(|mb| {
        let cgroups = crate::isolation::memory_cgroups(&id);
        cgroups.log();
        (std::sync::Arc::new(cgroups), mb)
    });
    let mut client = NimbusClient::new(&config.nimbus, config.secret.clone())?;
    if client.seeds().len() > 1 {
        // Through a failover a heartbeat (or a download) keeps trying for one interval; the
        // next beat tries again.
        client = client.with_failover(config.heartbeat_interval());
    }
    tracing::info!(
        id = %id,
        host = %config.host,
        slots = ?config.slots,
        nimbus = %config.nimbus,
        data_dir = %dir.root().display(),
        "supervisor starting"
    );

    let mut slots = Slots::new(
        dir.clone(),
        config.timings,
        LaunchSettings {
            host: config.host.clone(),
            nimbus: config.nimbus.clone(),
            secret: config.secret.clone(),
            user: worker_user,
            memory,
        },
    );
    let now = Instant::now();
    for worker in adopt_workers(&dir) {
        slots.adopt(worker, now);
    }

    let log_server = match &config.http_listen {
        Some(listen) => Some(
            log_server::start(
                listen,
                &config.host,
                dir.logs_dir(),
                config.secret.as_deref(),
            )
            .await
            .map_err(|e| SupervisorError::LogServer {
                listen: listen.clone(),
                reason: e.to_string(),
            })?,
        ),
        None => None,
    };

    let (workers_tx, workers_rx) = watch::channel(slots.running_workers());
    let (assignments_tx, mut assignments_rx) = watch::channel(None);
    let heartbeat = Heartbeat {
        client: client.clone(),
        id: id.clone(),
        host: config.host.clone(),
        slots: config.slots.clone(),
        interval: config.heartbeat_interval(),
        http: log_server.as_ref().map(|s| s.url().to_string()),
    };
    let heartbeat_task = tokio::spawn(heartbeat.run(workers_rx, assignments_tx));

    let mut node = Node {
        id,
        slot_ports: config.slots.clone(),
        client,
        cache: ArtifactCache::new(dir.artifacts_dir()),
        slots,
        assignments: None,
        desired: Vec::new(),
        downloads: JoinSet::new(),
        download_ids: HashMap::new(),
        fetches: HashMap::new(),
        pruned_for: None,
        timings: config.timings,
    };
    let mut check = tokio::time::interval(config.timings.check_interval);
    check.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    tokio::pin!(shutdown);
    let result = loop {
        tokio::select! {
            _ = &mut shutdown => break Ok(()),
            changed = assignments_rx.changed() => {
                if changed.is_err() {
                    break Err(SupervisorError::HeartbeatStopped);
                }
                let answer = assignments_rx.borrow_and_update().clone();
                if let Some(assignments) = answer {
                    node.set_assignments(assignments);
                }
            }
            _ = check.tick() => {}
            Some(done) = node.downloads.join_next_with_id() => {
                let (sha, result) = match done {
                    Ok((id, result)) => (node.download_ids.remove(&id), result),
                    Err(e) => {
                        let reason = format!("the download task failed: {e}");
                        (node.download_ids.remove(&e.id()), Err(reason))
                    }
                };
                if let Some(sha) = sha {
                    node.download_finished(sha, result);
                }
            }
        }
        node.step(Instant::now());
        workers_tx.send_if_modified(|reported| {
            let now = node.slots.running_workers();
            let changed = *reported != now;
            *reported = now;
            changed
        });
    };
    heartbeat_task.abort();
    node.downloads.abort_all();
    if let Some(s) = log_server {
        s.stop();
    }
    tracing::info!("supervisor stopped; its workers keep running");
    result
}

/// An artifact download: in flight, or failed and waiting to be tried again.
#[derive(Debug, Default)]
struct Fetch {
    in_flight: bool,
    failures: u32,
    retry_at: Option<Instant>,
}

/// The supervisor's state between loop turns.
struct Node {
    id: String,
    slot_ports: Vec<u16>,
    client: NimbusClient,
    cache: ArtifactCache,
    slots: Slots,
    /// The latest assignments by topology; `None` until Nimbus first answered, and while it
    /// does not the workers are left as they are.
    assignments: Option<BTreeMap<String, Assignment>>,
    /// The workers those ask of this node.
    desired: Vec<DesiredWorker>,
    downloads: JoinSet<Result<PathBuf, String>>,
    /// The artifact each download task fetches.
    download_ids: HashMap<tokio::task::Id, String>,
    fetches: HashMap<String, Fetch>,
    /// The artifacts kept at the last pruning.
    pruned_for: Option<HashSet<String>>,
    timings: Timings,
}

impl Node {
    fn set_assignments(&mut self, assignments: Vec<Assignment>) {
        let (desired, notes) = desired_workers(&assignments, &self.id, &self.slot_ports);
        for note in notes {
            tracing::warn!("{note}");
        }
        tracing::info!(
            workers = ?desired
                .iter()
                .map(|d| format!("{}:{} v{}", d.port, d.topology, d.version))
                .collect::<Vec<_>>(),
            "new assignments"
        );
        self.desired = desired;
        self.assignments = Some(
            assignments
                .into_iter()
                .map(|a| (a.topology.clone(), a))
                .collect(),
        );
        // Forget failed downloads nothing needs any more.
        let wanted: HashSet<&String> = self.desired.iter().map(|d| &d.artifact).collect();
        self.fetches
            .retain(|sha, f| f.in_flight || wanted.contains(sha));
    }

    /// Deletes cached binaries that no assignment, worker or download needs, each time that
    /// set changes.
    fn prune_artifacts(&mut self) {
        let mut keep: HashSet<String> = self.desired.iter().map(|d| d.artifact.clone()).collect();
        keep.extend(self.slots.artifacts_in_use());
        keep.extend(self.fetches.keys().cloned());
        if self.pruned_for.as_ref() == Some(&keep) {
            return;
        }
        for removed in self.cache.prune(&keep) {
            tracing::info!(artifact = %removed, "removed unused artifact from the cache");
        }
        self.pruned_for = Some(keep);
    }

    fn download_finished(&mut self, sha: String, result: Result<PathBuf, String>) {
        let fetch = self.fetches.entry(sha.clone()).or_default();
        fetch.in_flight = false;
        match result {
            Ok(path) => {
                tracing::info!(artifact = %sha, path = %path.display(), "artifact downloaded");
                self.fetches.remove(&sha);
            }
            Err(e) => {
                fetch.failures = fetch.failures.saturating_add(1);
                let delay = restart_delay(fetch.failures, &self.timings);
                fetch.retry_at = Some(Instant::now() + delay);
                tracing::warn!("{e}; trying again in {}s", delay.as_secs_f64());
            }
        }
    }

    /// One pass: notice exits, then act on the difference between assignments and workers.
    fn step(&mut self, now: Instant) {
        self.slots.poll(now);
        let Some(assignments) = &self.assignments else {
            return;
        };
        for d in &mut self.desired {
            d.artifact_ready = self.cache.is_ready(&d.artifact);
        }
        for action in reconcile(&self.desired, &self.slots.states(), now) {
            match &action {
                Action::Fetch { artifact } => {
                    let fetch = self.fetches.entry(artifact.clone()).or_default();
                    if fetch.in_flight || fetch.retry_at.is_some_and(|t| now < t) {
                        continue;
                    }
                    fetch.in_flight = true;
                    tracing::info!(artifact = %artifact, "downloading artifact");
                    let (client, cache, sha) =
                        (self.client.clone(), self.cache.clone(), artifact.clone());
                    let task = self.downloads.spawn(async move {
                        cache.ensure(&client, &sha).await.map_err(|e| e.to_string())
                    });
                    self.download_ids.insert(task.id(), artifact.clone());
                }
                _ => self.slots.apply(&action, assignments, now),
            }
        }
        self.prune_artifacts();
    }
}
