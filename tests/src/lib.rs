//! Helpers for the cluster tests: find the built binaries, start Nimbus and supervisors as real
//! processes on loopback, wait for conditions with deadlines, and clean every process up.
//!
//! The daemons are the workspace's own binaries in the target directory: `cargo test --workspace`
//! builds them (their crates have integration tests). Run `cargo build --workspace` first if you
//! run only this package.

pub mod etcd;
pub mod kafka;
pub mod netns;
pub mod redis;
pub mod word_count;

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use std::collections::{BTreeMap, BTreeSet};
use std::future::Future;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;
use tempest_client::NimbusClient;
use tempest_protocol::control::Assignment;

/// The secret every test cluster uses.
pub const SECRET: &str = "cluster-test-secret";

/// Cluster tests start several processes each; running two at once on a 2-core machine makes
/// timings meaningless, so they take turns.
pub async fn serial() -> tokio::sync::MutexGuard<'static, ()> {
    static LOCK: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());
    LOCK.lock().await
}

/// A binary of the workspace, next to the test executable's directory (`target/<profile>/`).
pub fn workspace_bin(name: &str) -> PathBuf {
    let exe = std::env::current_exe().expect("test executable path");
    let dir = exe
        .parent()
        .and_then(Path::parent)
        .expect("target/<profile>/deps");
    let path = dir.join(name);
    assert!(
        path.exists(),
        "{} is not built; run `cargo build --workspace` (or `cargo test --workspace`)",
        path.display()
    );
    path
}

/// The cluster tests' topology binary.
pub fn topology_bin() -> PathBuf {
    workspace_bin("cluster_word_count")
}

/// A free TCP port on 127.0.0.1 (bound and released; fine for tests on one machine).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

/// `n` distinct free TCP ports on 127.0.0.1, all bound at once and then released, so a cluster
/// gets its ports in one go and no daemon is left to pick one with `:0` later (which could
/// land on a slot port chosen before).
pub fn free_ports(n: usize) -> Vec<u16> {
    let held: Vec<std::net::TcpListener> = (0..n)
        .map(|_| std::net::TcpListener::bind("127.0.0.1:0").expect("a free port"))
        .collect();
    held.iter()
        .map(|l| l.local_addr().expect("bound").port())
        .collect()
}

/// A new, empty temp dir for test `name`, with the topology's `out/` dir in it.
fn test_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!(
        "tempest-{name}-{}-{}",
        std::process::id(),
        free_port()
    ));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(dir.join("out")).expect("test dir");
    dir
}

/// A new, empty temp dir for test `name` (with an `out/` dir in it), for tests that start
/// their own processes; remove it with [`remove_test_dir`].
pub fn scratch_dir(name: &str) -> PathBuf {
    test_dir(name)
}

/// Removes a [`scratch_dir`], unless the test failed or `TEMPEST_KEEP_TEST_DIRS` is set.
pub fn remove_test_dir(dir: &Path) {
    remove_unless_failed(dir)
}

/// Removes a test's directory, unless the test failed (its logs are the evidence) or
/// `TEMPEST_KEEP_TEST_DIRS` is set.
fn remove_unless_failed(dir: &Path) {
    if !std::thread::panicking() && std::env::var_os("TEMPEST_KEEP_TEST_DIRS").is_none() {
        let _ = std::fs::remove_dir_all(dir);
    }
}

/// Polls `check` every 100 ms until it returns `Some`, or panics with `what` after `timeout`.
pub async fn eventually<T, F, Fut>(what: &str, timeout: Duration, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        if let Some(v) = check().await {
            return v;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out after {timeout:?} waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Like [`eventually`], but `check` says what it saw when it is not done yet (`Err`), and the
/// panic after `timeout` shows the last of those.
pub async fn eventually_or<T, F, Fut>(what: &str, timeout: Duration, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, String>>,
{
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        match check().await {
            Ok(v) => return v,
            Err(last) => assert!(
                tokio::time::Instant::now() < deadline,
                "timed out after {timeout:?} waiting for {what}; last seen: {last}"
            ),
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// A daemon process, killed when dropped.
#[derive(Debug)]
pub struct Daemon {
    child: Option<Child>,
    /// Its log file.
    pub log: PathBuf,
}

impl Daemon {
    fn spawn(bin: &Path, args: &[String], log: PathBuf) -> Daemon {
        Self::spawn_in(None, bin, args, log)
    }

    /// Starts `bin` in network namespace `ns` (with `ip netns exec`, which execs it: the pid
    /// is the daemon's), or in this one.
    fn spawn_in(ns: Option<&str>, bin: &Path, args: &[String], log: PathBuf) -> Daemon {
        let out = std::fs::File::create(&log).expect("log file");
        let err = out.try_clone().expect("log file");
        let mut cmd = match ns {
            Some(ns) => {
                let mut c = Command::new("ip");
                c.args(["netns", "exec", ns]).arg(bin);
                c
            }
            None => Command::new(bin),
        };
        let child = cmd
            .args(args)
            .env("TEMPEST_SECRET", SECRET)
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {}: {e}", bin.display()));
        Daemon {
            child: Some(child),
            log,
        }
    }

    /// `kill -9`, and wait for it to be gone.
    pub fn kill9(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Waits until it exits, at most `timeout`; its exit status.
    pub async fn exited(&mut self, timeout: Duration) -> std::process::ExitStatus {
        let child = self.child.as_mut().expect("a running process");
        eventually("the process to exit", timeout, || {
            let status = child.try_wait().expect("try_wait");
            async move { status }
        })
        .await
    }

    /// Its pid, while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// Whether it is still running.
    pub fn running(&mut self) -> bool {
        self.child
            .as_mut()
            .is_some_and(|c| matches!(c.try_wait(), Ok(None)))
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        self.kill9();
    }
}

/// The test topology in local mode with its web UI (`local --ui 0`): one process, killed when
/// dropped.
#[derive(Debug)]
pub struct LocalRun {
    /// The process (its log has stdout and stderr).
    pub daemon: Daemon,
    /// Its temp dir (the topology's `test.dir` is `out/` in it).
    pub dir: PathBuf,
    /// The base URL of its web UI and REST API.
    pub url: String,
}

impl LocalRun {
    /// The topology's name.
    pub const TOPOLOGY: &'static str = "cluster-word-count";

    /// Starts it emitting `sentences` ids at `rate` per second; waits for the URL in its log.
    pub async fn start(name: &str, sentences: u64, rate: u64) -> LocalRun {
        Self::start_bin(
            name,
            &topology_bin(),
            &[
                ("test.sentences", sentences.to_string()),
                ("test.rate", rate.to_string()),
            ],
        )
        .await
    }

    /// Starts topology binary `bin` (e.g. `workspace_bin("kafka_count")`) the same way, with
    /// `test.dir` and `config` (`-c key=value`); waits for the URL in its log.
    pub async fn start_bin(name: &str, bin: &Path, config: &[(&str, String)]) -> LocalRun {
        let dir = test_dir(name);
        let mut args: Vec<String> = vec![
            "local".into(),
            "--ui".into(),
            "0".into(),
            "-c".into(),
            format!("test.dir={}", dir.join("out").display()),
        ];
        for (k, v) in config {
            args.push("-c".into());
            args.push(format!("{k}={v}"));
        }
        let daemon = Daemon::spawn(bin, &args, dir.join("local.log"));
        let log = daemon.log.clone();
        let url = eventually(
            "local mode to log its web UI's URL",
            Duration::from_secs(30),
            || {
                let text = std::fs::read_to_string(&log).unwrap_or_default();
                let url = text
                    .split("web UI at ")
                    .nth(1)
                    .and_then(|rest| rest.split("/topology.html").next().map(str::to_string));
                async move { url }
            },
        )
        .await;
        LocalRun { daemon, dir, url }
    }

    /// Its log.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.daemon.log).unwrap_or_default()
    }
}

impl Drop for LocalRun {
    fn drop(&mut self) {
        self.daemon.kill9();
        remove_unless_failed(&self.dir);
    }
}

/// A supervisor and what the tests need to know about it.
#[derive(Debug)]
pub struct SupervisorProc {
    /// The process.
    pub daemon: Daemon,
    /// Its data dir.
    pub data_dir: PathBuf,
    /// Its slot ports.
    pub slots: Vec<u16>,
    args: Vec<String>,
    /// Its network namespace, if it has its own host.
    ns: Option<String>,
}

impl SupervisorProc {
    /// Pids of the workers it recorded (from `workers/*/worker.json`), by port.
    pub fn worker_pids(&self) -> BTreeMap<u16, i32> {
        let mut pids = BTreeMap::new();
        let Ok(entries) = std::fs::read_dir(self.data_dir.join("workers")) else {
            return pids;
        };
        for e in entries.flatten() {
            let Ok(text) = std::fs::read_to_string(e.path().join("worker.json")) else {
                continue;
            };
            let Ok(v) = serde_json::from_str::<serde_json::Value>(&text) else {
                continue;
            };
            if let (Some(pid), Some(port)) = (v["pid"].as_i64(), v["port"].as_u64()) {
                pids.insert(port as u16, pid as i32);
            }
        }
        pids
    }

    /// Live worker pids (recorded and still running).
    pub fn live_workers(&self) -> BTreeMap<u16, i32> {
        self.worker_pids()
            .into_iter()
            .filter(|(_, pid)| alive(*pid))
            .collect()
    }

    /// `kill -9` every worker it runs.
    pub fn kill9_workers(&self) {
        for pid in self.worker_pids().values() {
            let _ = kill(Pid::from_raw(*pid), Signal::SIGKILL);
        }
    }
}

/// Whether a process exists and is not a zombie.
pub fn alive(pid: i32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => !stat
            .rsplit_once(')')
            .is_some_and(|(_, rest)| rest.trim_start().starts_with('Z')),
        Err(_) => false,
    }
}

/// One Nimbus process of a [`Cluster`].
#[derive(Debug)]
pub struct NimbusProc {
    /// The process.
    pub daemon: Daemon,
    /// Its URL (what it advertises with etcd).
    pub url: String,
    /// Its data dir.
    pub data_dir: PathBuf,
    args: Vec<String>,
    restarts: usize,
}

/// Nimbus (one, or several sharing state in etcd) plus supervisors, each a real process with
/// its own data dir under a temp dir.
#[derive(Debug)]
pub struct Cluster {
    /// The test's directory (data dirs, logs, the topology's output).
    pub dir: PathBuf,
    /// The first Nimbus's URL (the one supervisors and [`Cluster::client`] use).
    pub url: String,
    /// The Nimbus hosts; `nimbuses[0]` is the first.
    pub nimbuses: Vec<NimbusProc>,
    /// The etcd cluster the Nimbus hosts share, if [`ClusterOptions::etcd_members`] > 0.
    pub etcd: Option<etcd::EtcdCluster>,
    /// The supervisors.
    pub supervisors: Vec<SupervisorProc>,
}

/// How a test cluster is set up.
#[derive(Debug)]
pub struct ClusterOptions {
    /// Number of supervisors.
    pub supervisors: usize,
    /// Slots per supervisor.
    pub slots: usize,
    /// Nimbus's supervisor timeout.
    pub supervisor_timeout_secs: u64,
    /// Extra Nimbus flags (for every Nimbus).
    pub nimbus_args: Vec<String>,
    /// Extra supervisor flags (for every supervisor).
    pub supervisor_args: Vec<String>,
    /// Run supervisor `i` in namespace `hosts[i]` at its address (Nimbus on the gateway),
    /// instead of everything on 127.0.0.1.
    pub hosts: Option<std::sync::Arc<netns::Hosts>>,
    /// Number of Nimbus hosts. More than 1 needs `etcd_members` > 0.
    pub nimbuses: usize,
    /// etcd members to start (1 or 3); with any, every Nimbus runs with `store = "etcd"`.
    /// 0: one Nimbus with the embedded store, as before.
    pub etcd_members: usize,
    /// Nimbus's `leader_lease_secs` with etcd.
    pub leader_lease_secs: u64,
}

impl Default for ClusterOptions {
    fn default() -> Self {
        ClusterOptions {
            supervisors: 2,
            slots: 2,
            supervisor_timeout_secs: 4,
            nimbus_args: Vec::new(),
            supervisor_args: Vec::new(),
            hosts: None,
            nimbuses: 1,
            etcd_members: 0,
            leader_lease_secs: 3,
        }
    }
}

/// What `GET /api/v1/leader` of one Nimbus said.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LeaderAnswer {
    /// The leader's URL, if it knows one.
    pub leader: Option<String>,
    /// Whether the asked Nimbus leads.
    pub is_leader: bool,
    /// The whole answer.
    pub json: serde_json::Value,
}

/// Asks the Nimbus at `url` who leads (`GET /api/v1/leader`, with the test secret).
pub async fn ask_leader(url: &str) -> Option<LeaderAnswer> {
    let http = reqwest::Client::builder()
        .timeout(Duration::from_millis(500))
        .build()
        .ok()?;
    let resp = http
        .get(format!("{url}/api/v1/leader"))
        .header("x-tempest-secret", SECRET)
        .send()
        .await
        .ok()?;
    if !resp.status().is_success() {
        return None;
    }
    let json: serde_json::Value = resp.json().await.ok()?;
    Some(LeaderAnswer {
        leader: json["leader"]["url"].as_str().map(str::to_string),
        is_leader: json["is_leader"].as_bool()?,
        json,
    })
}

impl Cluster {
    /// Starts etcd (if asked), the Nimbus hosts and the supervisors, and waits until the first
    /// Nimbus answers and sees every supervisor (with etcd: until the first Nimbus leads, as it
    /// starts first).
    pub async fn start(name: &str, opts: ClusterOptions) -> Cluster {
        assert!(
            opts.nimbuses == 1 || opts.etcd_members > 0,
            "several Nimbus hosts need etcd (ClusterOptions::etcd_members)"
        );
        let dir = test_dir(name);
        let etcd = if opts.etcd_members > 0 {
            let bin = etcd::etcd_bin().expect(
                "no etcd binary (/usr/bin/etcd): install Debian's etcd-server (scripts/deps.sh does)",
            );
            Some(etcd::EtcdCluster::start(name, &bin, opts.etcd_members).await)
        } else {
            None
        };
        // The Nimbus hosts, then per supervisor its slots and its log server.
        let mut ports = free_ports(opts.nimbuses + opts.supervisors * (opts.slots + 1)).into_iter();
        let nimbus_ip = opts
            .hosts
            .as_ref()
            .map_or("127.0.0.1".to_string(), |h| h.gateway.clone());
        let mut nimbuses = Vec::new();
        for i in 0..opts.nimbuses {
            let port = ports.next().expect("a port for Nimbus");
            let url = format!("http://{nimbus_ip}:{port}");
            let data_dir = if opts.nimbuses == 1 {
                dir.join("nimbus")
            } else {
                dir.join(format!("nimbus-{i}"))
            };
            let mut args = vec![
                "--listen".into(),
                format!("{nimbus_ip}:{port}"),
                "--data-dir".into(),
                data_dir.display().to_string(),
                "--supervisor-timeout-secs".into(),
                opts.supervisor_timeout_secs.to_string(),
                "--worker-timeout-secs".into(),
                "30".into(),
            ];
            if let Some(etcd) = &etcd {
                args.extend([
                    "--store".into(),
                    "etcd".into(),
                    "--etcd-endpoints".into(),
                    etcd.endpoints().join(","),
                    "--leader-lease-secs".into(),
                    opts.leader_lease_secs.to_string(),
                    "--advertise-url".into(),
                    url.clone(),
                ]);
            }
            args.extend(opts.nimbus_args.iter().cloned());
            let log = if opts.nimbuses == 1 {
                dir.join("nimbus.log")
            } else {
                dir.join(format!("nimbus-{i}.log"))
            };
            nimbuses.push(NimbusProc {
                daemon: Daemon::spawn(&workspace_bin("nimbus"), &args, log),
                url,
                data_dir,
                args,
                restarts: 0,
            });
            if i == 0 {
                // The first one starts alone, so it is the first leader.
                let first = &nimbuses[0];
                wait_for_nimbus(&first.url, etcd.is_some(), &first.daemon.log).await;
            }
        }
        let url = nimbuses[0].url.clone();
        let mut cluster = Cluster {
            dir,
            url,
            nimbuses,
            etcd,
            supervisors: Vec::new(),
        };
        if cluster.etcd.is_some() {
            for n in &cluster.nimbuses[1..] {
                wait_for_nimbus(&n.url, false, &n.daemon.log).await;
            }
        }
        for i in 0..opts.supervisors {
            let host = opts.hosts.as_ref().map(|h| h.hosts[i].clone());
            // In a namespace of its own every port is free.
            let mut slots: Vec<u16> = ports.by_ref().take(opts.slots).collect();
            let mut http = ports.next().expect("a port for the log server");
            if host.is_some() {
                slots = (0..opts.slots as u16).map(|s| 6700 + s).collect();
                http = 8000;
            }
            let (ns, address) = match &host {
                Some((ns, address)) => (Some(ns.clone()), address.clone()),
                None => (None, "127.0.0.1".to_string()),
            };
            let data_dir = cluster.dir.join(format!("supervisor-{i}"));
            let mut args = vec![
                // Every Nimbus (one URL when there is one).
                "--nimbus".into(),
                cluster.seeds(),
                "--data-dir".into(),
                data_dir.display().to_string(),
                "--host".into(),
                address.clone(),
                "--slots".into(),
                slots
                    .iter()
                    .map(u16::to_string)
                    .collect::<Vec<_>>()
                    .join(","),
                "--heartbeat-secs".into(),
                "1".into(),
                "--http-listen".into(),
                format!("{address}:{http}"),
            ];
            // The test topologies write to root's temp dirs: unless a test asks for worker
            // users (tests/tests/worker_user.rs), workers run as the (root) supervisor does.
            if !opts
                .supervisor_args
                .iter()
                .any(|a| a.starts_with("--run-worker-as-user"))
            {
                args.extend(["--run-worker-as-user".into(), "false".into()]);
            }
            args.extend(opts.supervisor_args.iter().cloned());
            let log = cluster.dir.join(format!("supervisor-{i}.log"));
            cluster.supervisors.push(SupervisorProc {
                daemon: Daemon::spawn_in(ns.as_deref(), &workspace_bin("supervisor"), &args, log),
                data_dir,
                slots,
                args,
                ns,
            });
        }
        let want = opts.supervisors;
        let client = cluster.client();
        eventually(
            "every supervisor to register",
            Duration::from_secs(30),
            || {
                let client = client.clone();
                async move {
                    let list = client.supervisors().await.ok()?;
                    (list.supervisors.iter().filter(|s| s.alive).count() == want).then_some(())
                }
            },
        )
        .await;
        cluster
    }

    /// A client of every Nimbus (the seed list; one URL when there is one) with the cluster's
    /// secret.
    pub fn client(&self) -> NimbusClient {
        NimbusClient::new(&self.seeds(), Some(SECRET.into())).expect("client")
    }

    /// A client of Nimbus `i` with the cluster's secret.
    pub fn client_of(&self, i: usize) -> NimbusClient {
        NimbusClient::new(&self.nimbuses[i].url, Some(SECRET.into())).expect("client")
    }

    /// The URLs of every Nimbus, comma-separated (a seed list).
    pub fn seeds(&self) -> String {
        let urls: Vec<&str> = self.nimbuses.iter().map(|n| n.url.as_str()).collect();
        urls.join(",")
    }

    /// The index of a Nimbus that says it leads (the lowest, if a paused old leader still
    /// says so too), if any.
    pub async fn leader(&self) -> Option<usize> {
        // All at once: a paused (SIGSTOP) Nimbus answers nothing until the timeout.
        let mut asks = tokio::task::JoinSet::new();
        for (i, n) in self.nimbuses.iter().enumerate() {
            let url = n.url.clone();
            asks.spawn(async move { (i, ask_leader(&url).await) });
        }
        let mut leaders = Vec::new();
        while let Some(Ok((i, answer))) = asks.join_next().await {
            if answer.is_some_and(|a| a.is_leader) {
                leaders.push(i);
            }
        }
        leaders.sort_unstable();
        leaders.first().copied()
    }

    /// Waits until etcd lists every Nimbus as a holder of every binary it knows of. A Nimbus
    /// lacking a live topology's binary is no candidate for leader, so a test that kills or
    /// pauses the leader right after a submit waits for this first (else the survivors wait out
    /// the no-holder fallback, 10 s, instead of the lease).
    pub async fn wait_every_nimbus_holds_the_binaries(&self) {
        let etcd = self.etcd.as_ref().expect("a cluster with etcd");
        let want = self.nimbuses.len();
        eventually(
            "every Nimbus to hold the topologies' binaries",
            Duration::from_secs(90),
            || {
                let mut holders: std::collections::BTreeMap<String, usize> = Default::default();
                for k in etcd.keys("/tempest/tempest/artifacts/") {
                    // /tempest/<cluster>/artifacts/<sha>/<nimbus id>
                    let sha = k.key.split('/').nth(4).unwrap_or_default().to_string();
                    *holders.entry(sha).or_default() += 1;
                }
                let done = !holders.is_empty() && holders.values().all(|&n| n >= want);
                async move { done.then_some(()) }
            },
        )
        .await;
    }

    /// Waits until a Nimbus other than `not` (if given) leads; its index.
    pub async fn wait_leader(&self, not: Option<usize>, timeout: Duration) -> usize {
        eventually("a Nimbus to lead", timeout, || async {
            self.leader().await.filter(|i| Some(*i) != not)
        })
        .await
    }

    /// `kill -9` Nimbus `i`.
    pub fn kill9_nimbus_at(&mut self, i: usize) {
        self.nimbuses[i].daemon.kill9();
    }

    /// Starts Nimbus `i` again with the same arguments (and data dir); does not wait.
    pub fn respawn_nimbus_at(&mut self, i: usize) {
        let n = &mut self.nimbuses[i];
        n.restarts += 1;
        let log = self
            .dir
            .join(format!("nimbus-{i}-restart-{}.log", n.restarts));
        n.daemon = Daemon::spawn(&workspace_bin("nimbus"), &n.args, log);
    }

    /// Sends `signal` to Nimbus `i` (e.g. SIGSTOP, SIGCONT, SIGTERM).
    pub fn signal_nimbus(&self, i: usize, signal: Signal) {
        let pid = self.nimbuses[i].daemon.pid().expect("a running Nimbus");
        kill(Pid::from_raw(pid as i32), signal).expect("signal Nimbus");
    }

    /// Where the topology writes its acks and counts (pass as `-c test.dir=...`).
    pub fn out_dir(&self) -> PathBuf {
        self.dir.join("out")
    }

    /// Submits the test topology with the `tempest` CLI; returns its stdout.
    pub fn submit(&self, name: &str, workers: u32, config: &[(&str, String)]) -> String {
        self.submit_bin(&topology_bin(), name, workers, config)
    }

    /// Submits topology binary `bin` (e.g. `workspace_bin("kafka_count")`) with the `tempest`
    /// CLI through the seed list, with `test.dir` set to [`Cluster::out_dir`]; returns its
    /// stdout.
    pub fn submit_bin(
        &self,
        bin: &Path,
        name: &str,
        workers: u32,
        config: &[(&str, String)],
    ) -> String {
        let mut args = vec![
            "--nimbus".to_string(),
            self.seeds(),
            "submit".into(),
            bin.display().to_string(),
            "--name".into(),
            name.into(),
            "--workers".into(),
            workers.to_string(),
            "-c".into(),
            format!("test.dir={}", self.out_dir().display()),
        ];
        for (k, v) in config {
            args.push("-c".into());
            args.push(format!("{k}={v}"));
        }
        let out = self.tempest(&args);
        assert!(
            out.status.success(),
            "tempest submit failed: {}",
            out.stderr
        );
        out.stdout
    }

    /// Submits the test topology to emit `sentences` ids at `rate` per second, with a 5 s
    /// message timeout (failures replay quickly).
    pub fn submit_word_count(&self, name: &str, workers: u32, sentences: u64, rate: u64) {
        self.submit(
            name,
            workers,
            &[
                ("test.sentences", sentences.to_string()),
                ("test.rate", rate.to_string()),
                ("topology.message.timeout.secs", "5".into()),
            ],
        );
    }

    /// Waits until at least `n` ids are acked.
    pub async fn wait_acked(&self, n: u64, timeout: Duration) {
        eventually(&format!("{n} ids acked"), timeout, || async {
            (self.acked_ids().len() as u64 >= n).then_some(())
        })
        .await;
    }

    /// Waits until ids `0..n` are all acked, and checks no other id was.
    pub async fn wait_all_acked(&self, n: u64, timeout: Duration) {
        self.wait_acked(n, timeout).await;
        let acked = self.acked_ids();
        assert!(
            acked.iter().copied().eq(0..n),
            "acked ids are not exactly 0..{n}\n{}",
            self.logs()
        );
    }

    /// Runs the `tempest` CLI with the cluster's secret.
    pub fn tempest(&self, args: &[String]) -> CliOutput {
        let out = Command::new(workspace_bin("tempest"))
            .args(args)
            .env("TEMPEST_SECRET", SECRET)
            .env_remove("TEMPEST_NIMBUS")
            .output()
            .expect("run tempest");
        CliOutput {
            status: out.status,
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    }

    /// Live worker pids of every supervisor, by (supervisor index, port).
    pub fn live_workers(&self) -> BTreeMap<(usize, u16), i32> {
        self.supervisors
            .iter()
            .enumerate()
            .flat_map(|(i, s)| {
                s.live_workers()
                    .into_iter()
                    .map(move |(port, pid)| ((i, port), pid))
            })
            .collect()
    }

    /// The id supervisor `i` registered with (from its data dir).
    pub fn supervisor_id(&self, i: usize) -> String {
        std::fs::read_to_string(self.supervisors[i].data_dir.join("supervisor-id"))
            .expect("supervisor id")
            .trim()
            .to_string()
    }

    /// Waits until topology `name` is scheduled on `workers` workers, all running; returns
    /// the assignment.
    pub async fn wait_running(&self, name: &str, workers: usize) -> Assignment {
        let client = self.client();
        let a = eventually(
            &format!("{name} scheduled on {workers} workers"),
            Duration::from_secs(30),
            || {
                let client = client.clone();
                async move {
                    let a = client.assignment(name).await.ok()?;
                    (a.workers.len() == workers).then_some(a)
                }
            },
        )
        .await;
        eventually(
            &format!("{workers} live workers"),
            Duration::from_secs(30),
            || async { (self.live_workers().len() == workers).then_some(()) },
        )
        .await;
        a
    }

    /// `kill -9` Nimbus (the first).
    pub fn kill9_nimbus(&mut self) {
        self.kill9_nimbus_at(0);
    }

    /// Starts the first Nimbus again on the same address and data dir, and waits until it
    /// answers.
    pub async fn restart_nimbus(&mut self) {
        self.respawn_nimbus_at(0);
        let n = &self.nimbuses[0];
        wait_for_nimbus(&n.url, false, &n.daemon.log).await;
    }

    /// Starts supervisor `i` again with the same arguments.
    pub fn restart_supervisor(&mut self, i: usize) {
        let s = &mut self.supervisors[i];
        s.daemon = Daemon::spawn_in(
            s.ns.as_deref(),
            &workspace_bin("supervisor"),
            &s.args,
            self.dir.join(format!("supervisor-{i}-restarted.log")),
        );
    }

    /// The ids the topology's spout recorded as acked (union of its ack logs).
    pub fn acked_ids(&self) -> BTreeSet<u64> {
        let mut ids = BTreeSet::new();
        if let Ok(entries) = std::fs::read_dir(self.out_dir()) {
            for e in entries.flatten() {
                let name = e.file_name().to_string_lossy().into_owned();
                if name.starts_with("acked-") {
                    if let Ok(text) = std::fs::read_to_string(e.path()) {
                        ids.extend(text.lines().filter_map(|l| l.parse::<u64>().ok()));
                    }
                }
            }
        }
        ids
    }

    /// The count bolts' latest counts, merged, and the number of count files.
    pub fn counts(&self) -> (BTreeMap<String, u64>, usize) {
        let mut merged = BTreeMap::new();
        let mut files = 0;
        if let Ok(entries) = std::fs::read_dir(self.out_dir()) {
            for e in entries.flatten() {
                let name = e.file_name().to_string_lossy().into_owned();
                if name.starts_with("counts-") && name.ends_with(".json") {
                    let Ok(text) = std::fs::read_to_string(e.path()) else {
                        continue;
                    };
                    let Ok(m) = serde_json::from_str::<BTreeMap<String, u64>>(&text) else {
                        continue;
                    };
                    files += 1;
                    for (w, n) in m {
                        *merged.entry(w).or_default() += n;
                    }
                }
            }
        }
        (merged, files)
    }

    /// The logs of Nimbus, the supervisors and the workers, for failure messages.
    pub fn logs(&self) -> String {
        let mut out = String::new();
        let mut files: Vec<PathBuf> = self.nimbuses.iter().map(|n| n.daemon.log.clone()).collect();
        files.extend(self.supervisors.iter().map(|s| s.daemon.log.clone()));
        for s in &self.supervisors {
            if let Ok(entries) = std::fs::read_dir(s.data_dir.join("logs")) {
                files.extend(entries.flatten().map(|e| e.path()));
            }
        }
        for f in files {
            let text = std::fs::read_to_string(&f).unwrap_or_default();
            let tail: Vec<&str> = text.lines().rev().take(30).collect();
            out += &format!("\n==== {} (last 30 lines)\n", f.display());
            for l in tail.into_iter().rev() {
                out += l;
                out += "\n";
            }
        }
        out
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        for s in &mut self.supervisors {
            s.daemon.kill9();
        }
        for s in &self.supervisors {
            s.kill9_workers();
        }
        for n in &mut self.nimbuses {
            n.daemon.kill9();
        }
        remove_unless_failed(&self.dir);
    }
}

/// Waits until the Nimbus at `url` answers a listing (`leading`: until it says it leads, with
/// etcd); its log is shown if it does not.
async fn wait_for_nimbus(url: &str, leading: bool, log: &Path) {
    let client = NimbusClient::new(url, Some(SECRET.into())).expect("client");
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        let ready = if leading {
            ask_leader(url).await.is_some_and(|a| a.is_leader)
        } else {
            client.list().await.is_ok() || ask_leader(url).await.is_some()
        };
        if ready {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "Nimbus at {url} did not get ready in 30 s; its log:\n{}",
            std::fs::read_to_string(log).unwrap_or_default()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// What a CLI run printed.
#[derive(Debug)]
pub struct CliOutput {
    /// Exit status.
    pub status: std::process::ExitStatus,
    /// Standard output.
    pub stdout: String,
    /// Standard error.
    pub stderr: String,
}

/// The sentences of the test topology; sentence `id` is `SENTENCES[id % 4]`.
pub const SENTENCES: [&str; 4] = [
    "the cow jumped over the moon",
    "an apple a day keeps the doctor away",
    "four score and seven years ago",
    "snow white and the seven dwarfs",
];

/// The number of words the topology's `n` sentences contain, per word.
pub fn expected_counts(n: u64) -> BTreeMap<String, u64> {
    let mut m = BTreeMap::new();
    for id in 0..n {
        for w in SENTENCES[(id % 4) as usize].split_whitespace() {
            *m.entry(w.to_string()).or_default() += 1;
        }
    }
    m
}

/// The checkpointed-window tests' window length (event time, ms).
pub const WINDOW_LENGTH_MS: i64 = 2_000;
/// Their slide: every event is in two windows.
pub const WINDOW_SLIDE_MS: i64 = 1_000;
/// Their allowed lag: events are at most this much out of order, so none is late.
pub const WINDOW_LAG_MS: i64 = 1_000;

/// Event `id` of the checkpointed-window tests: its key (5 keys) and event time, rising by
/// 10 ms per event and up to 499 ms early (out of order, within [`WINDOW_LAG_MS`]).
pub fn window_event(id: u64) -> (String, i64) {
    let jitter = (id.wrapping_mul(2_654_435_761) % 500) as i64;
    (format!("k{}", id % 5), 1_000_000 + id as i64 * 10 - jitter)
}

/// The count of every (key, window start, window end) holding an event of `0..n`: each
/// window `[e - length, e)`, `e` a multiple of the slide.
pub fn expected_window_counts(n: u64) -> BTreeMap<(String, i64, i64), i64> {
    let mut out = BTreeMap::new();
    for id in 0..n {
        let (key, ts) = window_event(id);
        let mut end = ts.div_euclid(WINDOW_SLIDE_MS) * WINDOW_SLIDE_MS + WINDOW_SLIDE_MS;
        while end - WINDOW_LENGTH_MS <= ts {
            *out.entry((key.clone(), end - WINDOW_LENGTH_MS, end))
                .or_default() += 1;
            end += WINDOW_SLIDE_MS;
        }
    }
    out
}
