//! The slot table: at most one worker per slot port, with its process and where it is in its
//! life. Carries out the actions `reconcile` decides (start, stop, kill, forget), notices
//! workers that exit, and keeps each worker's files (`assignment.json`, `worker.json`, its log)
//! in the data directory.

use crate::adopt::{AdoptedWorker, WorkerRecord};
use crate::artifacts::ArtifactCache;
use crate::config::Timings;
use crate::data_dir::{write_atomically, DataDir};
use crate::process::{WorkerLaunch, WorkerProcess};
use crate::reconcile::{
    failures_after_exit, restart_delay, Action, DesiredWorker, RunningWorkerState, StopReason,
    WorkerPhase,
};
use nix::sys::signal::Signal;
use std::collections::{BTreeMap, HashSet};
use std::io::Write;
use std::time::Instant;
use tempest_protocol::control::{Assignment, RunningWorker};

/// What a worker started on this node is told besides its assignment.
#[derive(Debug, Clone)]
pub struct LaunchSettings {
    /// `--host`.
    pub host: String,
    /// `--nimbus`.
    pub nimbus: String,
    /// The cluster secret (workers get the credential derived from it).
    pub secret: Option<String>,
    /// The user workers run as (when the supervisor is root).
    pub user: Option<crate::isolation::WorkerUser>,
    /// Where worker memory limits go, and the supervisor's limit in MiB.
    pub memory: Option<(std::sync::Arc<crate::isolation::MemoryCgroups>, u64)>,
}

/// The worker on one port.
#[derive(Debug)]
struct Slot {
    topology: String,
    version: u64,
    /// What it runs ([`Assignment::placement`]).
    placement: Option<String>,
    /// sha256 of its binary.
    artifact: String,
    state: SlotState,
}

#[derive(Debug)]
enum SlotState {
    Running {
        process: WorkerProcess,
        started_at: Instant,
        /// Consecutive exits before this start.
        failures: u32,
    },
    Stopping {
        process: WorkerProcess,
        sigkill_at: Instant,
        killed: bool,
    },
    Exited {
        restart_at: Instant,
        failures: u32,
    },
}

/// The workers of this supervisor, by port.
#[derive(Debug)]
pub struct Slots {
    dir: DataDir,
    cache: ArtifactCache,
    timings: Timings,
    launch: LaunchSettings,
    slots: BTreeMap<u16, Slot>,
}

impl Slots {
    /// An empty table.
    pub fn new(dir: DataDir, timings: Timings, launch: LaunchSettings) -> Self {
        let cache = ArtifactCache::new(dir.artifacts_dir());
        Slots {
            dir,
            cache,
            timings,
            launch,
            slots: BTreeMap::new(),
        }
    }

    /// Takes over a worker found running after a restart.
    pub fn adopt(&mut self, worker: AdoptedWorker, now: Instant) {
        self.slots.insert(
            worker.record.port,
            Slot {
                topology: worker.record.topology,
                version: worker.record.version,
                placement: worker.record.placement,
                artifact: worker.sha,
                state: SlotState::Running {
                    process: worker.process,
                    started_at: now,
                    failures: 0,
                },
            },
        );
    }

    /// Notices workers that exited: a running one waits out its back-off before a restart, a
    /// stopping one frees its port.
    pub fn poll(&mut self, now: Instant) {
        let mut freed = Vec::new();
        for (&port, slot) in self.slots.iter_mut() {
            match &mut slot.state {
                SlotState::Running {
                    process,
                    started_at,
                    failures,
                } => {
                    let Some(how) = process.poll_exit() else {
                        continue;
                    };
                    let ran_for = now.saturating_duration_since(*started_at);
                    let failures = failures_after_exit(*failures, ran_for, &self.timings);
                    let delay = restart_delay(failures, &self.timings);
                    tracing::warn!(
                        port,
                        pid = process.pid(),
                        topology = %slot.topology,
                        version = slot.version,
                        "worker exited ({how}) after {:.1}s; restarting in {}s if still assigned \
                         (exit {failures} in a row; see {})",
                        ran_for.as_secs_f64(),
                        delay.as_secs_f64(),
                        self.dir.log_file(&slot.topology, port).display()
                    );
                    remove_record(&self.dir, port);
                    slot.state = SlotState::Exited {
                        restart_at: now + delay,
                        failures,
                    };
                }
                SlotState::Stopping { process, .. } => {
                    if let Some(how) = process.poll_exit() {
                        tracing::info!(
                            port,
                            pid = process.pid(),
                            topology = %slot.topology,
                            version = slot.version,
                            "worker stopped ({how})"
                        );
                        remove_record(&self.dir, port);
                        freed.push(port);
                    }
                }
                SlotState::Exited { .. } => {}
            }
        }
        for port in freed {
            self.slots.remove(&port);
        }
    }

    /// Every worker's state, for `reconcile`.
    pub fn states(&self) -> Vec<RunningWorkerState> {
        self.slots
            .iter()
            .map(|(&port, slot)| RunningWorkerState {
                port,
                topology: slot.topology.clone(),
                version: slot.version,
                placement: slot.placement.clone(),
                phase: match &slot.state {
                    SlotState::Running { .. } => WorkerPhase::Running,
                    SlotState::Stopping {
                        sigkill_at, killed, ..
                    } => WorkerPhase::Stopping {
                        sigkill_at: *sigkill_at,
                        killed: *killed,
                    },
                    SlotState::Exited { restart_at, .. } => WorkerPhase::Exited {
                        restart_at: *restart_at,
                    },
                },
            })
            .collect()
    }

    /// The live workers not being stopped, as reported to Nimbus.
    pub fn running_workers(&self) -> Vec<RunningWorker> {
        self.slots
            .iter()
            .filter_map(|(&port, slot)| match &slot.state {
                SlotState::Running { process, .. } => Some(RunningWorker {
                    topology: slot.topology.clone(),
                    port,
                    version: slot.version,
                    pid: process.pid(),
                }),
                _ => None,
            })
            .collect()
    }

    /// The artifacts of every worker in the table.
    pub fn artifacts_in_use(&self) -> HashSet<String> {
        self.slots.values().map(|s| s.artifact.clone()).collect()
    }

    /// Carries out one action (`Fetch` is the caller's). `assignments` holds the current
    /// assignment of each topology, by name.
    pub fn apply(
        &mut self,
        action: &Action,
        assignments: &BTreeMap<String, Assignment>,
        now: Instant,
    ) {
        match action {
            Action::Fetch { .. } => {}
            Action::Start(want) => self.start(want, assignments, now),
            Action::Follow { port, version } => self.follow(*port, *version, assignments),
            Action::Stop { port, reason } => self.stop(*port, *reason, now),
            Action::Kill { port } => self.kill(*port),
            Action::Forget { port } => {
                if matches!(
                    self.slots.get(port).map(|s| &s.state),
                    Some(SlotState::Exited { .. })
                ) {
                    self.slots.remove(port);
                }
            }
        }
    }

    fn start(
        &mut self,
        want: &DesiredWorker,
        assignments: &BTreeMap<String, Assignment>,
        now: Instant,
    ) {
        let port = want.port;
        let failures = match self.slots.get(&port) {
            None => 0,
            // A restart of the same worker keeps counting its exits.
            Some(Slot {
                topology,
                version,
                state: SlotState::Exited { failures, .. },
                placement,
                ..
            }) if *topology == want.topology
                && (*version == want.version
                    || (want.placement.is_some() && *placement == want.placement)) =>
            {
                *failures
            }
            Some(Slot {
                state: SlotState::Exited { .. },
                ..
            }) => 0,
            Some(slot) => {
                tracing::error!(
                    port,
                    topology = %slot.topology,
                    "refusing to start {:?} v{}: port {port} still has a worker",
                    want.topology,
                    want.version
                );
                return;
            }
        };
        let Some(assignment) = assignments
            .get(&want.topology)
            .filter(|a| a.version == want.version)
        else {
            tracing::error!(port, topology = %want.topology, version = want.version,
                "no such assignment to start a worker for");
            return;
        };
        let exited = |failures: u32| {
            let failures = failures.saturating_add(1);
            SlotState::Exited {
                restart_at: now + restart_delay(failures, &self.timings),
                failures,
            }
        };
        let state = match self.spawn(want, assignment) {
            Ok(process) => {
                tracing::info!(
                    port,
                    pid = process.pid(),
                    topology = %want.topology,
                    version = want.version,
                    "started worker"
                );
                SlotState::Running {
                    process,
                    started_at: now,
                    failures,
                }
            }
            Err(e) => {
                tracing::error!(port, topology = %want.topology, version = want.version,
                    "cannot start worker: {e}");
                exited(failures)
            }
        };
        self.slots.insert(
            port,
            Slot {
                topology: want.topology.clone(),
                version: want.version,
                placement: want.placement.clone(),
                artifact: want.artifact.clone(),
                state,
            },
        );
    }

    /// Writes the worker's files and starts it.
    fn spawn(
        &self,
        want: &DesiredWorker,
        assignment: &Assignment,
    ) -> Result<WorkerProcess, String> {
        let port = want.port;
        let artifact = self.cache.path(&want.artifact).map_err(|e| e.to_string())?;
        let mut work_dir = self.dir.worker_dir(port);
        std::fs::create_dir_all(&work_dir)
            .map_err(|e| format!("cannot create {}: {e}", work_dir.display()))?;
        if let Some(user) = &self.launch.user {
            // Its records stay root's; it works in a directory of its own.
            work_dir = self.dir.worker_home(port);
            crate::isolation::give_dir(&work_dir, user).map_err(|e| {
                format!(
                    "cannot give {} to worker_user {:?}: {e}",
                    work_dir.display(),
                    user.name
                )
            })?;
        }
        std::fs::create_dir_all(self.dir.logs_dir())
            .map_err(|e| format!("cannot create {}: {e}", self.dir.logs_dir().display()))?;
        let assignment_file = self.write_assignment(port, assignment)?;
        let launch = WorkerLaunch {
            artifact: artifact.clone(),
            topology: want.topology.clone(),
            assignment_file,
            host: self.launch.host.clone(),
            port,
            nimbus: self.launch.nimbus.clone(),
            secret: self.launch.secret.clone(),
            log_file: self.dir.log_file(&want.topology, port),
            work_dir,
            user: self.launch.user.clone(),
        };
        rotate_log(&launch.log_file);
        note_in_log(&launch, &want.topology, want.version);
        let child = launch
            .spawn()
            .map_err(|e| format!("cannot run {}: {e}", artifact.display()))?;
        let process = WorkerProcess::child(child)
            .ok_or_else(|| format!("{} exited at once", artifact.display()))?;
        self.limit_memory(port, process.pid(), assignment);
        let record = WorkerRecord {
            pid: process.pid(),
            topology: want.topology.clone(),
            version: want.version,
            placement: want.placement.clone(),
            port,
            artifact,
        };
        if let Err(e) = record.write(&self.dir) {
            // It runs; only adoption after a supervisor restart will miss it.
            tracing::error!(port, "cannot record worker: {e}");
        }
        Ok(process)
    }

    /// Puts the worker under its memory limit: the supervisor's, lowered by the topology's
    /// `topology.worker.max.heap.size.mb`; logs where, or why not.
    fn limit_memory(&self, port: u16, pid: u32, assignment: &Assignment) {
        let Some((cgroups, cap)) = &self.launch.memory else {
            return;
        };
        let asked = assignment
            .spec
            .config
            .u64_or(
                tempest_protocol::config::TOPOLOGY_WORKER_MAX_HEAP_SIZE_MB,
                *cap,
            )
            .unwrap_or(*cap);
        let mb = asked.clamp(16, *cap);
        match cgroups.limit(port, pid, mb) {
            Ok(cgroup) => {
                tracing::info!(port, pid, limit_mb = mb, cgroup = %cgroup.display(), "worker memory limited")
            }
            Err(why) => tracing::warn!(port, pid, "worker runs without a memory limit: {why}"),
        }
    }

    /// Writes the assignment a worker on `port` runs to its file.
    fn write_assignment(
        &self,
        port: u16,
        assignment: &Assignment,
    ) -> Result<std::path::PathBuf, String> {
        let json = serde_json::to_vec_pretty(assignment)
            .map_err(|e| format!("cannot encode the assignment: {e}"))?;
        let file = self.dir.assignment_file(port);
        write_atomically(&file, &json).map_err(|e| e.to_string())?;
        Ok(file)
    }

    /// Keeps the running worker on `port` under assignment `version`, which places the same
    /// executors there: its files say the new version, so a restart or an adoption runs it.
    fn follow(&mut self, port: u16, version: u64, assignments: &BTreeMap<String, Assignment>) {
        let Some(slot) = self.slots.get_mut(&port) else {
            return;
        };
        let SlotState::Running { process, .. } = &slot.state else {
            return;
        };
        let Some(assignment) = assignments
            .get(&slot.topology)
            .filter(|a| a.version == version)
        else {
            return;
        };
        tracing::info!(
            port,
            pid = process.pid(),
            topology = %slot.topology,
            from = slot.version,
            to = version,
            "worker keeps running: the new assignment does not change it"
        );
        slot.version = version;
        let record = WorkerRecord {
            pid: process.pid(),
            topology: slot.topology.clone(),
            version,
            placement: slot.placement.clone(),
            port,
            artifact: self.cache.path(&slot.artifact).unwrap_or_default(),
        };
        let written = self
            .write_assignment(port, assignment)
            .and_then(|_| record.write(&self.dir).map_err(|e| e.to_string()));
        if let Err(e) = written {
            tracing::error!(port, "cannot record the worker's new version: {e}");
        }
    }

    fn stop(&mut self, port: u16, reason: StopReason, now: Instant) {
        let Some(slot) = self.slots.remove(&port) else {
            return;
        };
        let state = match slot.state {
            SlotState::Running { process, .. } => {
                tracing::info!(
                    port,
                    pid = process.pid(),
                    topology = %slot.topology,
                    version = slot.version,
                    "stopping worker: {}",
                    match reason {
                        StopReason::Unassigned => "its slot is no longer assigned here",
                        StopReason::Replaced => "its slot is assigned to another topology or version",
                    }
                );
                process.signal(Signal::SIGTERM);
                SlotState::Stopping {
                    process,
                    sigkill_at: now + self.timings.kill_grace,
                    killed: false,
                }
            }
            other => other,
        };
        self.slots.insert(port, Slot { state, ..slot });
    }

    fn kill(&mut self, port: u16) {
        if let Some(Slot {
            topology,
            state: SlotState::Stopping {
                process, killed, ..
            },
            ..
        }) = self.slots.get_mut(&port)
        {
            tracing::warn!(
                port,
                pid = process.pid(),
                topology = %topology,
                "worker did not stop within {}s of SIGTERM; sending SIGKILL",
                self.timings.kill_grace.as_secs_f64()
            );
            process.signal(Signal::SIGKILL);
            *killed = true;
        }
    }
}

fn remove_record(dir: &DataDir, port: u16) {
    let file = dir.worker_record_file(port);
    match std::fs::remove_file(&file) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => tracing::warn!(file = %file.display(), error = %e, "cannot remove worker record"),
    }
}

/// A worker's log larger than this when a worker starts is moved to `<log>.1` (replacing an
/// older one), so restarts do not grow it without bound. A long-running worker's log needs an
/// external rotation that truncates in place (the worker appends with `O_APPEND`).
const ROTATE_LOG_BYTES: u64 = 64 * 1024 * 1024;

fn rotate_log(log: &std::path::Path) {
    let Ok(meta) = std::fs::metadata(log) else {
        return;
    };
    if meta.len() <= ROTATE_LOG_BYTES {
        return;
    }
    let mut old = log.as_os_str().to_owned();
    old.push(".1");
    if let Err(e) = std::fs::rename(log, &old) {
        tracing::warn!(file = %log.display(), error = %e, "cannot rotate worker log");
    }
}

/// Marks a start in the worker's log, so restarts are easy to find among its output.
fn note_in_log(launch: &WorkerLaunch, topology: &str, version: u64) {
    let line = format!(
        "--- tempest supervisor: starting {topology} v{version} on port {} ({} seconds after the epoch) ---\n",
        launch.port,
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs())
    );
    let written = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&launch.log_file)
        .and_then(|mut f| f.write_all(line.as_bytes()));
    if let Err(e) = written {
        tracing::warn!(file = %launch.log_file.display(), error = %e, "cannot write worker log");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::reconcile::reconcile;
    use std::os::unix::fs::PermissionsExt;
    use std::time::Duration;
    use tempest_protocol::control::WorkerSlot;
    use tempest_protocol::{Config, TopologySpec};

    const SHA: &str = "dddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddd";

    fn setup(script: &str, timings: Timings) -> (tempfile::TempDir, Slots, DesiredWorker) {
        let tmp = tempfile::tempdir().unwrap();
        let dir = DataDir::open(tmp.path()).unwrap();
        let artifact = dir.artifacts_dir().join(SHA);
        std::fs::write(&artifact, script).unwrap();
        std::fs::set_permissions(&artifact, std::fs::Permissions::from_mode(0o755)).unwrap();
        let slots = Slots::new(
            dir,
            timings,
            LaunchSettings {
                host: "127.0.0.1".into(),
                nimbus: "http://127.0.0.1:1".into(),
                secret: None,
                user: None,
                memory: None,
            },
        );
        let want = DesiredWorker {
            port: 6700,
            topology: "t".into(),
            version: 1,
            artifact: SHA.into(),
            artifact_ready: true,
            placement: None,
        };
        (tmp, slots, want)
    }

    fn assignments() -> BTreeMap<String, Assignment> {
        let a = Assignment {
            topology: "t".into(),
            version: 1,
            artifact: SHA.into(),
            spec: TopologySpec {
                name: "t".into(),
                config: Config::default(),
                components: vec![],
            },
            workers: vec![WorkerSlot {
                supervisor: "me".into(),
                host: "127.0.0.1".into(),
                port: 6700,
                executors: vec![],
            }],
        };
        [("t".to_string(), a)].into()
    }

    /// One supervisor pass; returns the actions taken.
    fn pass(slots: &mut Slots, desired: &[DesiredWorker]) -> Vec<Action> {
        let now = Instant::now();
        slots.poll(now);
        let actions = reconcile(desired, &slots.states(), now);
        for a in &actions {
            slots.apply(a, &assignments(), now);
        }
        actions
    }

    struct KillGroup(u32);
    impl Drop for KillGroup {
        fn drop(&mut self) {
            let _ = nix::sys::signal::killpg(
                nix::unistd::Pid::from_raw(self.0 as i32),
                Signal::SIGKILL,
            );
        }
    }

    #[tokio::test]
    async fn a_worker_that_ignores_sigterm_is_killed_after_the_grace() {
        let timings = Timings {
            kill_grace: Duration::from_millis(300),
            ..Timings::default()
        };
        let script = "#!/bin/sh\ntrap '' TERM\necho ready\nsleep 60\n";
        let (tmp, mut slots, want) = setup(script, timings);
        assert_eq!(
            pass(&mut slots, std::slice::from_ref(&want)),
            vec![Action::Start(want.clone())]
        );
        let pid = slots.running_workers()[0].pid;
        let _guard = KillGroup(pid);
        let log = tmp.path().join("logs/t-6700.log");
        let deadline = Instant::now() + Duration::from_secs(10);
        while !std::fs::read_to_string(&log)
            .unwrap_or_default()
            .contains("ready")
        {
            assert!(Instant::now() < deadline, "worker never got ready");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        assert!(tmp.path().join("workers/6700/worker.json").exists());

        let stopped_at = Instant::now();
        let mut killed = false;
        loop {
            let actions = pass(&mut slots, &[]);
            killed |= actions.contains(&Action::Kill { port: 6700 });
            if slots.states().is_empty() {
                break;
            }
            assert!(Instant::now() < deadline, "worker never stopped");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        assert!(killed, "SIGKILL was needed");
        assert!(stopped_at.elapsed() >= timings.kill_grace);
        assert!(!crate::process::is_alive(pid));
        assert!(!tmp.path().join("workers/6700/worker.json").exists());
    }

    #[tokio::test]
    async fn a_binary_that_cannot_run_waits_out_a_back_off() {
        let (_tmp, mut slots, want) = setup("not a program\n", Timings::default());
        let before = Instant::now();
        pass(&mut slots, std::slice::from_ref(&want));
        let states = slots.states();
        assert_eq!(states.len(), 1);
        let WorkerPhase::Exited { restart_at } = states[0].phase else {
            panic!("{states:?}");
        };
        assert!(restart_at >= before + Duration::from_secs(1));
        // Nothing happens until the back-off is over.
        assert_eq!(pass(&mut slots, std::slice::from_ref(&want)), vec![]);
        assert!(slots.running_workers().is_empty());
    }
}
