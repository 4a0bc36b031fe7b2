//! Adopting workers after a supervisor restart: every worker writes a record,
//! `<data_dir>/workers/<port>/worker.json`; a restarted supervisor takes over each recorded
//! worker whose pid is alive and whose command line is that artifact in worker mode on that
//! port, instead of starting a duplicate. Records of anything else are removed.

use crate::data_dir::{write_atomically, DataDir, DataDirError};
use crate::process::{is_worker_cmdline, proc_cmdline, proc_exe, proc_stat, WorkerProcess};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use tempest_protocol::names::{check_sha256, check_topology_name};

/// What `worker.json` says about the worker on a port.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WorkerRecord {
    /// Its process id.
    pub pid: u32,
    /// Its topology.
    pub topology: String,
    /// Its assignment version.
    pub version: u64,
    /// What it runs (`Assignment::placement`); absent in records of older supervisors.
    #[serde(default)]
    pub placement: Option<String>,
    /// Its slot port.
    pub port: u16,
    /// The binary it runs: `<data_dir>/artifacts/<sha256>`.
    pub artifact: PathBuf,
}

impl WorkerRecord {
    /// Writes the record to `<data_dir>/workers/<port>/worker.json`, atomically.
    pub fn write(&self, dir: &DataDir) -> Result<(), DataDirError> {
        let json = serde_json::to_vec_pretty(self).map_err(|e| DataDirError::Io {
            path: dir.worker_record_file(self.port),
            reason: e.to_string(),
        })?;
        write_atomically(&dir.worker_record_file(self.port), &json)
    }

    /// The artifact's sha256, if the recorded binary is in `artifacts_dir`.
    pub fn artifact_sha(&self, artifacts_dir: &Path) -> Option<String> {
        if self.artifact.parent()? != artifacts_dir {
            return None;
        }
        let sha = self.artifact.file_name()?.to_str()?;
        check_sha256(sha).ok()?;
        Some(sha.to_string())
    }
}

/// A worker found running.
#[derive(Debug)]
pub struct AdoptedWorker {
    /// Its record.
    pub record: WorkerRecord,
    /// Its artifact's sha256.
    pub sha: String,
    /// The process, watched through `/proc`.
    pub process: WorkerProcess,
}

/// Reads every `workers/*/worker.json` and adopts the workers still running; removes the
/// records of the others, saying why in the log.
pub fn adopt_workers(dir: &DataDir) -> Vec<AdoptedWorker> {
    let Ok(entries) = std::fs::read_dir(dir.workers_dir()) else {
        return Vec::new();
    };
    let mut ports: Vec<u16> = entries
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse().ok())
        .collect();
    ports.sort_unstable();
    let mut adopted = Vec::new();
    for port in ports {
        let file = dir.worker_record_file(port);
        let text = match std::fs::read_to_string(&file) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => {
                tracing::warn!(file = %file.display(), error = %e, "cannot read worker record");
                continue;
            }
        };
        match check_record(dir, port, &text) {
            Ok(worker) => {
                tracing::info!(
                    port,
                    pid = worker.record.pid,
                    topology = %worker.record.topology,
                    version = worker.record.version,
                    "adopted running worker"
                );
                adopted.push(worker);
            }
            Err(why) => {
                tracing::info!(file = %file.display(), "not adopting: {why}; removing the record");
                if let Err(e) = std::fs::remove_file(&file) {
                    tracing::warn!(file = %file.display(), error = %e, "cannot remove worker record");
                }
            }
        }
    }
    adopted
}

/// Whether the record in `text`, found in the directory of `port`, names a live worker.
fn check_record(dir: &DataDir, port: u16, text: &str) -> Result<AdoptedWorker, String> {
    let record: WorkerRecord =
        serde_json::from_str(text).map_err(|e| format!("the record is not valid: {e}"))?;
    if record.port != port {
        return Err(format!(
            "it names port {} (in the directory of {port})",
            record.port
        ));
    }
    check_topology_name(&record.topology)?;
    let sha = record
        .artifact_sha(&dir.artifacts_dir())
        .ok_or_else(|| format!("artifact {} is not in the cache", record.artifact.display()))?;
    let stat = proc_stat(record.pid)
        .filter(|s| s.state != 'Z')
        .ok_or_else(|| format!("pid {} is not running", record.pid))?;
    let cmdline = proc_cmdline(record.pid).unwrap_or_default();
    let exe = proc_exe(record.pid);
    if !is_worker_cmdline(exe.as_deref(), &cmdline, &record.artifact, port) {
        return Err(format!(
            "pid {} runs {:?}, not {} in worker mode on port {port}",
            record.pid,
            cmdline,
            record.artifact.display()
        ));
    }
    let pid = record.pid;
    Ok(AdoptedWorker {
        record,
        sha,
        process: WorkerProcess::Adopted {
            pid,
            start_time: stat.start_time,
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::process::WorkerLaunch;
    use nix::sys::signal::Signal;
    use std::os::unix::fs::PermissionsExt;

    const SHA: &str = "cccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccc";

    /// Kills the process group when the test ends, whatever happens.
    struct KillOnDrop(u32);
    impl Drop for KillOnDrop {
        fn drop(&mut self) {
            let _ = nix::sys::signal::killpg(
                nix::unistd::Pid::from_raw(self.0 as i32),
                Signal::SIGKILL,
            );
        }
    }

    fn fake_artifact(dir: &DataDir) -> PathBuf {
        let path = dir.artifacts_dir().join(SHA);
        std::fs::write(&path, "#!/bin/sh\nsleep 60\n").unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
        path
    }

    fn launch(dir: &DataDir, artifact: &Path, port: u16) -> WorkerLaunch {
        std::fs::create_dir_all(dir.worker_dir(port)).unwrap();
        WorkerLaunch {
            artifact: artifact.to_path_buf(),
            topology: "t".into(),
            assignment_file: dir.assignment_file(port),
            host: "127.0.0.1".into(),
            port,
            nimbus: "http://127.0.0.1:1".into(),
            secret: None,
            log_file: dir.log_file("t", port),
            work_dir: dir.worker_dir(port),
            user: None,
        }
    }

    fn record(pid: u32, port: u16, artifact: &Path) -> WorkerRecord {
        WorkerRecord {
            pid,
            topology: "t".into(),
            version: 3,
            placement: None,
            port,
            artifact: artifact.to_path_buf(),
        }
    }

    #[tokio::test]
    async fn adopts_a_live_worker_and_drops_stale_records() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = DataDir::open(tmp.path()).unwrap();
        let artifact = fake_artifact(&dir);

        // A live worker on 6700.
        let child = launch(&dir, &artifact, 6700).spawn().unwrap();
        let pid = child.id().unwrap();
        let _guard = KillOnDrop(pid);
        // The shell has exec'd the script once its command line names the artifact.
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while !proc_cmdline(pid)
            .is_some_and(|c| is_worker_cmdline(proc_exe(pid).as_deref(), &c, &artifact, 6700))
        {
            assert!(std::time::Instant::now() < deadline, "worker never started");
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
        record(pid, 6700, &artifact).write(&dir).unwrap();

        // 6701: a live process that is not a worker (this test process).
        std::fs::create_dir_all(dir.worker_dir(6701)).unwrap();
        record(std::process::id(), 6701, &artifact)
            .write(&dir)
            .unwrap();
        // 6702: a dead pid.
        std::fs::create_dir_all(dir.worker_dir(6702)).unwrap();
        record(u32::MAX - 1, 6702, &artifact).write(&dir).unwrap();
        // 6703: the live worker, but recorded under the wrong port.
        std::fs::create_dir_all(dir.worker_dir(6703)).unwrap();
        record(pid, 6703, &artifact).write(&dir).unwrap();
        // 6704: garbage.
        std::fs::create_dir_all(dir.worker_dir(6704)).unwrap();
        std::fs::write(dir.worker_record_file(6704), "{not json").unwrap();

        let adopted = adopt_workers(&dir);
        assert_eq!(adopted.len(), 1, "{adopted:?}");
        assert_eq!(adopted[0].record, record(pid, 6700, &artifact));
        assert_eq!(adopted[0].sha, SHA);
        assert_eq!(adopted[0].process.pid(), pid);
        assert!(dir.worker_record_file(6700).exists());
        for port in [6701, 6702, 6703, 6704] {
            assert!(
                !dir.worker_record_file(port).exists(),
                "record of {port} kept"
            );
        }

        // Once it is killed, the adopted handle sees it gone.
        let mut process = adopted.into_iter().next().unwrap().process;
        assert_eq!(process.poll_exit(), None);
        process.signal(Signal::SIGKILL);
        drop(child); // tokio reaps it in the background; /proc shows it as a zombie until then
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while process.poll_exit().is_none() {
            assert!(std::time::Instant::now() < deadline, "worker never died");
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
        assert!(adopt_workers(&dir).is_empty());
    }

    #[test]
    fn an_artifact_outside_the_cache_is_not_trusted() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = DataDir::open(tmp.path()).unwrap();
        let r = record(1, 6700, Path::new("/usr/bin/sleep"));
        assert_eq!(r.artifact_sha(&dir.artifacts_dir()), None);
        let r = record(1, 6700, &dir.artifacts_dir().join(SHA));
        assert_eq!(r.artifact_sha(&dir.artifacts_dir()).as_deref(), Some(SHA));
    }
}
