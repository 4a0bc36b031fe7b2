//! A supervisor against a stub Nimbus (just the heartbeat and artifact endpoints) and a
//! "topology binary" that is a shell script: it starts the worker with the contract's command
//! line, restarts it when it dies, keeps it while Nimbus is down, replaces it on a new
//! version, is adopted by a restarted supervisor, and stops it when the slot goes away; a worker
//! over its memory limit is killed where the host has a memory controller.

use axum::extract::{Path as UrlPath, State};
use axum::http::{HeaderMap, StatusCode};
use axum::routing::{get, post};
use axum::{Json, Router};
use nix::sys::signal::{killpg, Signal};
use nix::unistd::Pid;
use sha2::{Digest, Sha256};
use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use supervisor::adopt::WorkerRecord;
use supervisor::process::{is_alive, proc_cmdline};
use supervisor::{SupervisorConfig, Timings};
use tempest_protocol::auth::SECRET_HEADER;
use tempest_protocol::control::{
    Assignment, ErrorBody, RunningWorker, SupervisorAssignments, SupervisorHeartbeat, WorkerSlot,
};
use tempest_protocol::{Config, TopologySpec};
use tokio::sync::oneshot;

const SECRET: &str = "s3cret";
const ME: &str = "sup-a";
const PORT: u16 = 6700;

/// What a worker does: say how it was started, then wait to be killed. It is given the
/// credential derived from the secret (`tempest_protocol::auth::worker_credential("s3cret")`),
/// never the secret itself.
const WORKER_SCRIPT: &str = r#"#!/bin/sh
echo "worker args: $*"
if [ "$TEMPEST_SECRET" = "tw_8cd1aec554184237e3bce2f399cc24cf6aafda44216e6c0846f991c003b37faf" ]; then echo "secret ok"; fi
if [ "$TEMPEST_SECRET" = "s3cret" ]; then echo "the raw secret"; fi
echo "cwd: $(pwd)"
sleep 60
"#;

#[derive(Default)]
struct Stub {
    assignments: Mutex<Vec<Assignment>>,
    /// sha256 -> content served for it.
    artifacts: Mutex<Vec<(String, Vec<u8>)>>,
    down: AtomicBool,
    heartbeats: Mutex<Vec<SupervisorHeartbeat>>,
    heartbeat_calls: AtomicUsize,
    downloads: AtomicUsize,
    wrong_secrets: AtomicUsize,
}

fn secret_ok(stub: &Stub, headers: &HeaderMap) -> bool {
    let ok = headers.get(SECRET_HEADER).and_then(|v| v.to_str().ok()) == Some(SECRET);
    if !ok {
        stub.wrong_secrets.fetch_add(1, Ordering::SeqCst);
    }
    ok
}

async fn heartbeat(
    State(stub): State<Arc<Stub>>,
    headers: HeaderMap,
    Json(hb): Json<SupervisorHeartbeat>,
) -> Result<Json<SupervisorAssignments>, (StatusCode, Json<ErrorBody>)> {
    stub.heartbeat_calls.fetch_add(1, Ordering::SeqCst);
    let error = |status, error: &str| Err((status, Json(ErrorBody::new(error))));
    if stub.down.load(Ordering::SeqCst) {
        return error(StatusCode::SERVICE_UNAVAILABLE, "down for the test");
    }
    if !secret_ok(&stub, &headers) {
        return error(StatusCode::UNAUTHORIZED, "missing or wrong cluster secret");
    }
    stub.heartbeats.lock().unwrap().push(hb);
    Ok(Json(SupervisorAssignments {
        assignments: stub.assignments.lock().unwrap().clone(),
    }))
}

async fn artifact(
    State(stub): State<Arc<Stub>>,
    headers: HeaderMap,
    UrlPath(sha): UrlPath<String>,
) -> Result<Vec<u8>, StatusCode> {
    stub.downloads.fetch_add(1, Ordering::SeqCst);
    if !secret_ok(&stub, &headers) {
        return Err(StatusCode::UNAUTHORIZED);
    }
    let artifacts = stub.artifacts.lock().unwrap();
    artifacts
        .iter()
        .find(|(s, _)| *s == sha)
        .map(|(_, bytes)| bytes.clone())
        .ok_or(StatusCode::NOT_FOUND)
}

/// Serves the stub on a free port; returns its URL.
async fn serve(stub: Arc<Stub>) -> String {
    let app = Router::new()
        .route("/api/v1/supervisor/heartbeat", post(heartbeat))
        .route("/api/v1/artifacts/{sha}", get(artifact))
        .with_state(stub);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    url
}

fn sha256(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

fn assignment(topology: &str, version: u64, artifact: &str) -> Assignment {
    Assignment {
        topology: topology.into(),
        version,
        artifact: artifact.into(),
        spec: TopologySpec {
            name: topology.into(),
            config: Config::default(),
            components: vec![],
        },
        workers: vec![
            WorkerSlot {
                supervisor: ME.into(),
                host: "127.0.0.1".into(),
                port: PORT,
                executors: vec![],
            },
            WorkerSlot {
                supervisor: "someone-else".into(),
                host: "10.0.0.9".into(),
                port: PORT,
                executors: vec![],
            },
        ],
    }
}

fn config(nimbus: &str, data_dir: &Path) -> SupervisorConfig {
    SupervisorConfig {
        nimbus: nimbus.into(),
        data_dir: data_dir.into(),
        host: "127.0.0.1".into(),
        slots: vec![PORT, PORT + 1],
        heartbeat_secs: 1,
        id: Some(ME.into()),
        http_listen: Some("127.0.0.1:0".into()),
        secret: Some(SECRET.into()),
        // The script checks its working directory as root's; worker users are tested in
        // tests/tests/worker_user.rs.
        run_worker_as_user: false,
        worker_user: "tempest-worker".into(),
        worker_memory_limit_mb: None,
        timings: Timings {
            check_interval: Duration::from_millis(50),
            ..Timings::default()
        },
    }
}

/// A running supervisor and the means to stop it.
struct Running {
    stop: oneshot::Sender<()>,
    task: tokio::task::JoinHandle<Result<(), supervisor::SupervisorError>>,
}

fn start(config: SupervisorConfig) -> Running {
    let (stop, stopped) = oneshot::channel::<()>();
    let task = tokio::spawn(supervisor::run(config, async {
        let _ = stopped.await;
    }));
    Running { stop, task }
}

impl Running {
    async fn shutdown(self) {
        let _ = self.stop.send(());
        tokio::time::timeout(Duration::from_secs(10), self.task)
            .await
            .expect("supervisor did not stop")
            .unwrap()
            .unwrap();
    }
}

/// Kills a worker's process group when dropped, so a failing test leaves nothing behind.
struct Reap(Arc<Mutex<Vec<u32>>>);
impl Drop for Reap {
    fn drop(&mut self) {
        for pid in self.0.lock().unwrap().iter() {
            let _ = killpg(Pid::from_raw(*pid as i32), Signal::SIGKILL);
        }
    }
}

/// Polls `check` every 20 ms until it gives a value; panics after `secs` seconds.
async fn wait_for<T>(what: &str, secs: u64, mut check: impl FnMut() -> Option<T>) -> T {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(secs);
    loop {
        if let Some(v) = check() {
            return v;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out after {secs}s waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn read_record(data_dir: &Path) -> Option<WorkerRecord> {
    let text =
        std::fs::read_to_string(data_dir.join(format!("workers/{PORT}/worker.json"))).ok()?;
    serde_json::from_str(&text).ok()
}

/// The live worker of `version` on the port, once its script runs (its command line names
/// the artifact).
fn live_worker(data_dir: &Path, version: u64) -> Option<WorkerRecord> {
    let r = read_record(data_dir).filter(|r| r.version == version && is_alive(r.pid))?;
    let cmdline = proc_cmdline(r.pid)?;
    cmdline
        .iter()
        .any(|a| Path::new(a) == r.artifact)
        .then_some(r)
}

fn log_text(data_dir: &Path, topology: &str) -> String {
    std::fs::read_to_string(data_dir.join(format!("logs/{topology}-{PORT}.log")))
        .unwrap_or_default()
}

fn starts_in_log(data_dir: &Path, topology: &str) -> usize {
    log_text(data_dir, topology)
        .matches("--- tempest supervisor: starting")
        .count()
}

fn reported(stub: &Stub, from: usize) -> Vec<Vec<RunningWorker>> {
    stub.heartbeats.lock().unwrap()[from..]
        .iter()
        .map(|hb| hb.workers.clone())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn runs_restarts_keeps_replaces_adopts_and_stops_a_worker() {
    let tmp = tempfile::tempdir().unwrap();
    let data_dir = tmp.path().join("supervisor");
    let pids = Arc::new(Mutex::new(Vec::new()));
    let _reap = Reap(pids.clone());

    let stub = Arc::new(Stub::default());
    let sha = sha256(WORKER_SCRIPT.as_bytes());
    stub.artifacts
        .lock()
        .unwrap()
        .push((sha.clone(), WORKER_SCRIPT.as_bytes().to_vec()));
    *stub.assignments.lock().unwrap() = vec![assignment("wc", 1, &sha)];
    let url = serve(stub.clone()).await;
    let sup = start(config(&url, &data_dir));

    // Started with the contract's command line, files and environment.
    let first = wait_for("the first worker", 15, || live_worker(&data_dir, 1)).await;
    pids.lock().unwrap().push(first.pid);
    let data_dir = std::fs::canonicalize(&data_dir).unwrap();
    let artifact = data_dir.join("artifacts").join(&sha);
    assert_eq!(first.artifact, artifact);
    assert_eq!((first.topology.as_str(), first.port), ("wc", PORT));
    let assignment_file = data_dir.join(format!("workers/{PORT}/assignment.json"));
    let expected: Vec<OsString> = [
        "/bin/sh",
        artifact.to_str().unwrap(),
        "worker",
        "--assignment",
        assignment_file.to_str().unwrap(),
        "--host",
        "127.0.0.1",
        "--port",
        &PORT.to_string(),
        "--nimbus",
        &url,
    ]
    .iter()
    .map(OsString::from)
    .collect();
    assert_eq!(proc_cmdline(first.pid).unwrap(), expected);
    let written: Assignment =
        serde_json::from_str(&std::fs::read_to_string(&assignment_file).unwrap()).unwrap();
    assert_eq!(written, assignment("wc", 1, &sha));
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(&artifact).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o755);
    let log = wait_for("the worker's output in its log", 10, || {
        Some(log_text(&data_dir, "wc")).filter(|l| l.contains("cwd:"))
    })
    .await;
    assert!(log.contains("worker args: worker --assignment"), "{log}");
    // The log is served over HTTP, at the URL the heartbeats report.
    let http = wait_for("a heartbeat with the log server's URL", 10, || {
        stub.heartbeats.lock().unwrap().last()?.http.clone()
    })
    .await;
    let served = reqwest::Client::new()
        .get(format!("{http}/api/v1/log?file=wc-{PORT}.log&start=0"))
        .header(SECRET_HEADER, SECRET)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        served.contains("worker args: worker --assignment"),
        "{served}"
    );
    assert!(
        log.contains("secret ok"),
        "the secret is in the environment: {log}"
    );
    assert!(
        log.contains(&format!(
            "cwd: {}",
            data_dir.join(format!("workers/{PORT}")).display()
        )),
        "{log}"
    );
    assert!(!log.contains(SECRET), "the secret is never in a log: {log}");
    assert!(
        !log.contains("the raw secret"),
        "workers get the derived credential, not the secret: {log}"
    );
    // Its own process group, so a supervisor crash does not take it along.
    assert_eq!(
        nix::unistd::getpgid(Some(Pid::from_raw(first.pid as i32)))
            .unwrap()
            .as_raw(),
        first.pid as i32
    );
    // Reported to Nimbus.
    let worker = RunningWorker {
        topology: "wc".into(),
        port: PORT,
        version: 1,
        pid: first.pid,
    };
    wait_for("the worker in a heartbeat", 10, || {
        reported(&stub, 0)
            .contains(&vec![worker.clone()])
            .then_some(())
    })
    .await;
    assert_eq!(stub.wrong_secrets.load(Ordering::SeqCst), 0);

    // Killed (a crash of the worker): restarted after the back-off.
    killpg(Pid::from_raw(first.pid as i32), Signal::SIGKILL).unwrap();
    let second = wait_for("the restarted worker", 15, || {
        live_worker(&data_dir, 1).filter(|r| r.pid != first.pid)
    })
    .await;
    pids.lock().unwrap().push(second.pid);
    assert_eq!(starts_in_log(&data_dir, "wc"), 2);

    // Nimbus down: the worker stays as it is.
    stub.down.store(true, Ordering::SeqCst);
    let calls = stub.heartbeat_calls.load(Ordering::SeqCst);
    wait_for("three failed heartbeats", 10, || {
        (stub.heartbeat_calls.load(Ordering::SeqCst) >= calls + 3).then_some(())
    })
    .await;
    assert_eq!(live_worker(&data_dir, 1).map(|r| r.pid), Some(second.pid));
    stub.down.store(false, Ordering::SeqCst);

    // A new version that places the same executors here: kept, its record says version 2.
    *stub.assignments.lock().unwrap() = vec![assignment("wc", 2, &sha)];
    let kept = wait_for("the worker to follow version 2", 15, || {
        live_worker(&data_dir, 2)
    })
    .await;
    assert_eq!(
        kept.pid, second.pid,
        "a worker the new version does not change keeps running"
    );

    // A new version that changes what runs here (another spec): replaced.
    let mut changed = assignment("wc", 3, &sha);
    changed.spec.config.set("test.generation", 3);
    *stub.assignments.lock().unwrap() = vec![changed];
    let third = wait_for("the worker of version 3", 15, || live_worker(&data_dir, 3)).await;
    pids.lock().unwrap().push(third.pid);
    assert!(!is_alive(second.pid), "the old version's worker is gone");

    // A restarted supervisor adopts it rather than starting another.
    sup.shutdown().await;
    assert!(is_alive(third.pid), "workers outlive their supervisor");
    let seen = stub.heartbeats.lock().unwrap().len();
    let sup = start(config(&url, &data_dir));
    let adopted = RunningWorker {
        topology: "wc".into(),
        port: PORT,
        version: 3,
        pid: third.pid,
    };
    wait_for("the adopted worker in a heartbeat", 10, || {
        reported(&stub, seen)
            .contains(&vec![adopted.clone()])
            .then_some(())
    })
    .await;
    let calls = stub.heartbeat_calls.load(Ordering::SeqCst);
    wait_for("two more heartbeats", 10, || {
        (stub.heartbeat_calls.load(Ordering::SeqCst) >= calls + 2).then_some(())
    })
    .await;
    assert_eq!(live_worker(&data_dir, 3).map(|r| r.pid), Some(third.pid));
    assert_eq!(
        starts_in_log(&data_dir, "wc"),
        3,
        "no duplicate was started"
    );
    assert_eq!(
        stub.downloads.load(Ordering::SeqCst),
        1,
        "the artifact was cached"
    );

    // The slot goes away: the worker is stopped and its record removed.
    stub.assignments.lock().unwrap().clear();
    wait_for("the worker to stop", 15, || {
        (!is_alive(third.pid) && read_record(&data_dir).is_none()).then_some(())
    })
    .await;
    wait_for("a heartbeat without workers", 10, || {
        reported(&stub, seen)
            .last()
            .is_some_and(|w| w.is_empty())
            .then_some(())
    })
    .await;
    sup.shutdown().await;
    // Nothing is needed any more: the cached artifact was pruned.
    assert!(!artifact.exists());
}

#[tokio::test]
async fn a_corrupt_artifact_is_never_run() {
    let tmp = tempfile::tempdir().unwrap();
    let data_dir = tmp.path().join("supervisor");
    let stub = Arc::new(Stub::default());
    let sha = sha256(WORKER_SCRIPT.as_bytes());
    // Nimbus serves other bytes under the hash.
    stub.artifacts
        .lock()
        .unwrap()
        .push((sha.clone(), b"#!/bin/sh\nsleep 60\n".to_vec()));
    *stub.assignments.lock().unwrap() = vec![assignment("wc", 1, &sha)];
    let url = serve(stub.clone()).await;
    let sup = start(config(&url, &data_dir));
    wait_for("two download attempts", 15, || {
        (stub.downloads.load(Ordering::SeqCst) >= 2).then_some(())
    })
    .await;
    assert!(read_record(&data_dir).is_none());
    // The attempt counted last may still be writing its `.part` file; once it has checked the
    // hash, nothing is left (the next attempt comes only after a back-off of seconds).
    let cached = || -> Vec<PathBuf> {
        std::fs::read_dir(data_dir.join("artifacts"))
            .unwrap()
            .map(|e| e.unwrap().path())
            .collect()
    };
    wait_for("the refused download to leave nothing behind", 5, || {
        cached().is_empty().then_some(())
    })
    .await;
    assert!(read_record(&data_dir).is_none());
    sup.shutdown().await;
}

#[tokio::test]
async fn a_second_supervisor_on_the_same_data_dir_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let url = serve(Arc::new(Stub::default())).await;
    let first = start(config(&url, tmp.path()));
    // Until the first one has taken the lock, a second one may start (and stop at once).
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    let error = loop {
        match supervisor::run(config(&url, tmp.path()), async {}).await {
            Err(e) => break e.to_string(),
            Ok(()) => {
                assert!(tokio::time::Instant::now() < deadline, "never refused");
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
    };
    assert!(error.contains("in use by another supervisor"), "{error}");
    first.shutdown().await;
}

/// A worker that waits until its supervisor has moved it into its memory cgroup (it is moved
/// just after it starts), then has a child allocate (and touch) 300 MiB.
const HUNGRY_SCRIPT: &str = r#"#!/bin/sh
i=0
while ! grep -q tempest- /proc/$$/cgroup && [ $i -lt 200 ]; do sleep 0.05; i=$((i+1)); done
echo "cgroup: $(grep -E '(^0::|memory)' /proc/$$/cgroup | tr '\n' ' ')"
if python3 -c "x = b'x' * (300 << 20)"; then echo "allocation survived"; else echo "allocation killed: $?"; fi
sleep 60
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_over_its_memory_limit_is_killed_where_the_host_has_a_memory_controller() {
    let tmp = tempfile::tempdir().unwrap();
    let data_dir = tmp.path().join("supervisor");
    let pids = Arc::new(Mutex::new(Vec::new()));
    let _reap = Reap(pids.clone());
    let stub = Arc::new(Stub::default());
    let sha = sha256(HUNGRY_SCRIPT.as_bytes());
    stub.artifacts
        .lock()
        .unwrap()
        .push((sha.clone(), HUNGRY_SCRIPT.as_bytes().to_vec()));
    let mut a = assignment("hungry", 1, &sha);
    // The topology lowers the supervisor's 64 MiB to 48.
    a.spec.config.set(
        tempest_protocol::config::TOPOLOGY_WORKER_MAX_HEAP_SIZE_MB,
        48,
    );
    *stub.assignments.lock().unwrap() = vec![a];
    let url = serve(stub.clone()).await;
    let mut c = config(&url, &data_dir);
    c.worker_memory_limit_mb = Some(64);
    let sup = start(c);
    let worker = wait_for("the worker", 15, || live_worker(&data_dir, 1)).await;
    pids.lock().unwrap().push(worker.pid);
    let log = wait_for("the allocation's outcome", 30, || {
        Some(log_text(&data_dir, "hungry")).filter(|l| l.contains("allocation "))
    })
    .await;
    // The same detection the supervisor made (it makes the same parent dir; no other test
    // here sets a memory limit).
    let cgroups = supervisor::isolation::memory_cgroups(ME);
    let parent = match &cgroups {
        supervisor::isolation::MemoryCgroups::V2(d)
        | supervisor::isolation::MemoryCgroups::V1(d) => Some(d.clone()),
        supervisor::isolation::MemoryCgroups::Unavailable(why) => {
            eprintln!("no memory controller here ({why}): checking the worker ran unlimited");
            None
        }
    };
    match &parent {
        Some(parent) => {
            let dir = parent.join(PORT.to_string());
            let limit_file = ["memory.max", "memory.limit_in_bytes"]
                .iter()
                .map(|f| dir.join(f))
                .find(|p| p.exists())
                .expect("a memory limit file");
            let limit: u64 = std::fs::read_to_string(&limit_file)
                .unwrap()
                .trim()
                .parse()
                .unwrap();
            assert_eq!(limit, 48 << 20, "{}", limit_file.display());
            assert!(log.contains(&format!("tempest-{ME}/{PORT}")), "{log}");
            assert!(
                log.contains("allocation killed: 137"),
                "300 MiB under a 48 MiB limit: {log}"
            );
        }
        None => assert!(log.contains("allocation survived"), "{log}"),
    }
    sup.shutdown().await;
    let _ = killpg(Pid::from_raw(worker.pid as i32), Signal::SIGKILL);
    if let Some(parent) = parent {
        let dir = parent.join(PORT.to_string());
        // Empty once the worker's processes are gone.
        wait_for("the worker's cgroup to empty", 10, || {
            std::fs::read_to_string(dir.join("cgroup.procs"))
                .map_or(true, |p| p.trim().is_empty())
                .then_some(())
        })
        .await;
        let _ = std::fs::remove_dir(&dir);
        let _ = std::fs::remove_dir(&parent);
    }
}
