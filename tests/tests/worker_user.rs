//! Workers that cannot take over their host, against real processes: root supervisors (two, two
//! slots each) run a topology's three workers as `worker_user`: `/proc/<pid>/status` shows its
//! uid and gid and no supplementary groups, each works in a mode-700 directory of its own, and
//! with the worker's own credentials nothing outside that directory can be written (the binary,
//! the supervisors' files, other workers' records, the system). With `worker_memory_limit_mb`
//! each worker is in a memory cgroup with its limit where the host has a usable controller;
//! where it has none, the supervisor says so. A missing worker user stops the supervisor with an
//! error saying how to create it.

use cluster_tests::{eventually, serial, workspace_bin, Cluster, ClusterOptions};
use std::os::unix::fs::MetadataExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

const WORKER_USER: &str = "tempest-worker";

/// Whether this test runs as root (`/proc/self` belongs to the effective uid).
fn is_root() -> bool {
    std::fs::metadata("/proc/self").is_ok_and(|m| m.uid() == 0)
}

/// The uid and gid of `tempest-worker`, created first if missing (scripts/deps.sh does too).
fn worker_user() -> (u32, u32) {
    assert!(
        is_root(),
        "this test starts root supervisors: run it as root"
    );
    let id = |flag: &str| {
        Command::new("id")
            .args([flag, WORKER_USER])
            .output()
            .ok()
            .filter(|o| o.status.success())
            .and_then(|o| {
                String::from_utf8_lossy(&o.stdout)
                    .trim()
                    .parse::<u32>()
                    .ok()
            })
    };
    if id("-u").is_none() {
        let status = Command::new("useradd")
            .args([
                "--system",
                "--no-create-home",
                "--shell",
                "/usr/sbin/nologin",
                WORKER_USER,
            ])
            .status()
            .expect("run useradd");
        assert!(
            status.success() || id("-u").is_some(),
            "useradd {WORKER_USER} failed"
        );
    }
    (id("-u").expect("uid"), id("-g").expect("gid"))
}

/// The `Uid:`/`Gid:`/`Groups:` fields of `/proc/<pid>/status`.
fn status_field(pid: i32, field: &str) -> String {
    let text = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("status");
    text.lines()
        .find_map(|l| l.strip_prefix(&format!("{field}:")))
        .unwrap_or_default()
        .trim()
        .to_string()
}

/// Whether a process with `uid`, `gid` and no supplementary groups (the worker's credentials:
/// std drops root's groups when it sets the uid) can append to `path` (creating it if missing).
fn can_write_as(uid: u32, gid: u32, path: &Path) -> bool {
    Command::new("/bin/sh")
        .args(["-c", "echo probe >> \"$1\"", "sh"])
        .arg(path)
        .uid(uid)
        .gid(gid)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .expect("run the probe")
        .success()
}

/// The `cgroup=` of every "worker memory limited" line of the supervisors' logs.
fn limited_cgroups(cluster: &Cluster) -> Vec<PathBuf> {
    let mut dirs = Vec::new();
    for s in &cluster.supervisors {
        let log = std::fs::read_to_string(&s.daemon.log).unwrap_or_default();
        for line in log.lines().filter(|l| l.contains("worker memory limited")) {
            if let Some(rest) = line.split("cgroup=").nth(1) {
                dirs.push(PathBuf::from(
                    rest.split_whitespace().next().unwrap_or_default(),
                ));
            }
        }
    }
    dirs
}

fn supervisor_logs(cluster: &Cluster) -> String {
    cluster
        .supervisors
        .iter()
        .map(|s| std::fs::read_to_string(&s.daemon.log).unwrap_or_default())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_root_supervisors_workers_run_as_the_worker_user_inside_their_own_dir() {
    let _turn = serial().await;
    let (uid, gid) = worker_user();
    let opts = ClusterOptions {
        supervisors: 2,
        slots: 2,
        supervisor_args: vec![
            "--run-worker-as-user".into(),
            "true".into(),
            "--worker-user".into(),
            WORKER_USER.into(),
            "--worker-memory-limit-mb".into(),
            "256".into(),
        ],
        ..ClusterOptions::default()
    };
    let cluster = Cluster::start("worker-user", opts).await;
    // The test topology records its acks in test.dir: that one is the worker user's.
    std::os::unix::fs::chown(cluster.out_dir(), Some(uid), Some(gid)).unwrap();
    cluster.submit(
        "isolated",
        3,
        &[
            ("test.rate", "50".into()),
            ("topology.worker.max.heap.size.mb", "192".into()),
        ],
    );
    cluster.wait_running("isolated", 3).await;
    cluster.wait_acked(20, Duration::from_secs(60)).await;

    let workers = cluster.live_workers();
    assert_eq!(workers.len(), 3);
    let per_supervisor = |i: usize| workers.keys().filter(|(s, _)| *s == i).count();
    assert!(
        per_supervisor(0) >= 1
            && per_supervisor(1) >= 1
            && per_supervisor(0).max(per_supervisor(1)) == 2
    );
    for (&(sup, port), &pid) in &workers {
        // Real, effective, saved and filesystem ids are all the worker user's.
        assert_eq!(
            status_field(pid, "Uid"),
            format!("{uid}\t{uid}\t{uid}\t{uid}"),
            "worker {pid}"
        );
        assert_eq!(
            status_field(pid, "Gid"),
            format!("{gid}\t{gid}\t{gid}\t{gid}"),
            "worker {pid}"
        );
        assert_eq!(status_field(pid, "Groups"), "", "root's groups are dropped");
        let data_dir = &cluster.supervisors[sup].data_dir;
        let home = data_dir.join(format!("workers/{port}/home"));
        let cwd = std::fs::read_link(format!("/proc/{pid}/cwd")).unwrap();
        assert_eq!(
            cwd,
            home.canonicalize().unwrap(),
            "worker {pid} works in its own dir"
        );
        let meta = std::fs::metadata(&home).unwrap();
        assert_eq!((meta.uid(), meta.mode() & 0o777), (uid, 0o700));
        // With the worker's credentials: its own dir is writable (so the probe can succeed)...
        assert!(can_write_as(uid, gid, &home.join("probe")), "its own dir");
        // ...and nothing else is.
        let binary = std::fs::read_link(format!("/proc/{pid}/exe")).unwrap();
        let other_port = cluster.supervisors[sup]
            .slots
            .iter()
            .copied()
            .find(|p| *p != port)
            .unwrap();
        let other_supervisor = &cluster.supervisors[1 - sup].data_dir;
        for path in [
            binary.clone(),
            binary.with_file_name("new-binary"),
            data_dir.join("probe"),
            data_dir.join(format!("workers/{port}/assignment.json")),
            data_dir.join(format!("workers/{port}/worker.json")),
            data_dir.join(format!("workers/{other_port}/probe")),
            data_dir.join("workers/probe"),
            data_dir.join("state/../probe"),
            data_dir.join("logs/probe"),
            data_dir.join(format!("logs/isolated-{port}.log")),
            data_dir.join("supervisor-id"),
            other_supervisor.join("probe"),
            other_supervisor.join("artifacts/probe"),
            PathBuf::from("/etc/tempest-probe"),
            PathBuf::from("/usr/local/bin/tempest-probe"),
        ] {
            assert!(
                !can_write_as(uid, gid, &path),
                "worker {pid} (uid {uid}) could write {}",
                path.display()
            );
        }
        assert!(!Path::new("/etc/tempest-probe").exists());
    }

    // Memory limits: where this host has a memory controller the supervisor can use, each
    // worker is in a cgroup of its own with the topology's (lower) limit; elsewhere the
    // supervisor says why.
    let logs = supervisor_logs(&cluster);
    let cgroups = limited_cgroups(&cluster);
    if logs.contains("worker memory limits: cgroup") {
        assert_eq!(cgroups.len(), 3, "{logs}");
        for (&(_, port), &pid) in &workers {
            let dir = cgroups
                .iter()
                .find(|d| d.ends_with(port.to_string()))
                .unwrap_or_else(|| panic!("no cgroup for port {port}: {cgroups:?}"));
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
            assert_eq!(limit, 192 << 20, "{}", limit_file.display());
            let procs = std::fs::read_to_string(dir.join("cgroup.procs")).unwrap();
            assert!(
                procs.lines().any(|l| l == pid.to_string()),
                "worker {pid} in {}: {procs}",
                dir.display()
            );
        }
    } else {
        assert!(
            logs.contains("worker memory limits are not available"),
            "{logs}"
        );
        assert!(
            logs.contains("worker runs without a memory limit"),
            "{logs}"
        );
    }

    // Stop the workers, then remove their (now empty) cgroups.
    cluster.client().kill("isolated", 0).await.expect("kill");
    eventually("every worker stopped", Duration::from_secs(60), || async {
        cluster.live_workers().is_empty().then_some(())
    })
    .await;
    for dir in &cgroups {
        let _ = std::fs::remove_dir(dir);
        if let Some(parent) = dir.parent() {
            let _ = std::fs::remove_dir(parent);
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_worker_user_stops_the_supervisor_with_a_clear_error() {
    let _turn = serial().await;
    assert!(is_root(), "run it as root");
    let dir = cluster_tests::scratch_dir("worker-user-missing");
    let out = Command::new(workspace_bin("supervisor"))
        .args(["--nimbus", "http://127.0.0.1:1", "--data-dir"])
        .arg(dir.join("supervisor"))
        .args(["--worker-user", "no-such-tempest-user"])
        .env("TEMPEST_SECRET", cluster_tests::SECRET)
        .output()
        .expect("run the supervisor");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{stderr}");
    assert!(
        stderr.contains("worker_user \"no-such-tempest-user\" does not exist")
            && stderr.contains("useradd")
            && stderr.contains("run_worker_as_user = false"),
        "{stderr}"
    );
    assert!(!stderr.contains(cluster_tests::SECRET));
    cluster_tests::remove_test_dir(&dir);
}
