//! Real etcd for tests: Debian's `etcd-server` (3.4; `scripts/deps.sh` installs it) as 1 or 3
//! members on free loopback ports, each with its data dir in a temp dir, killed when dropped.
//!
//! ```no_run
//! # async fn t() {
//! let Some(etcd) = cluster_tests::etcd::EtcdCluster::start_or_skip("my-test", 1).await else {
//!     return; // the etcd binary is absent: the reason was printed
//! };
//! println!("etcd at {}", etcd.endpoints().join(","));
//! # }
//! ```

use crate::{eventually, free_ports, remove_test_dir, scratch_dir, Daemon};
use base64::prelude::{Engine, BASE64_STANDARD};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

/// The etcd server binary: `TEMPEST_ETCD` if set, else `etcd` from Debian's package.
pub fn etcd_bin() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("TEMPEST_ETCD") {
        return Some(PathBuf::from(p));
    }
    ["/usr/bin/etcd", "/usr/local/bin/etcd"]
        .into_iter()
        .map(PathBuf::from)
        .find(|p| p.exists())
}

/// One etcd member.
#[derive(Debug)]
pub struct EtcdMember {
    /// Its name (`m0`, `m1`, ...).
    pub name: String,
    /// Its client URL, `http://127.0.0.1:<port>`.
    pub client_url: String,
    /// Its peer URL.
    pub peer_url: String,
    /// Its data dir.
    pub data_dir: PathBuf,
    /// The process (`None` after [`EtcdCluster::kill9`]).
    pub daemon: Option<Daemon>,
    args: Vec<String>,
}

/// A running etcd cluster of 1 or 3 members.
#[derive(Debug)]
pub struct EtcdCluster {
    /// Its members.
    pub members: Vec<EtcdMember>,
    dir: PathBuf,
}

impl EtcdCluster {
    /// Starts `members` members (1 or 3) and waits until the cluster answers, or returns
    /// `None` after printing why if the etcd binary is absent (install Debian's `etcd-server`;
    /// `scripts/deps.sh` does). Panics if etcd is there but does not start.
    pub async fn start_or_skip(test: &str, members: usize) -> Option<EtcdCluster> {
        let Some(bin) = etcd_bin() else {
            eprintln!(
                "SKIPPED {test}: no etcd binary (/usr/bin/etcd); install Debian's etcd-server \
                 (scripts/deps.sh does) or set TEMPEST_ETCD"
            );
            return None;
        };
        Some(Self::start(test, &bin, members).await)
    }

    /// Starts `members` members of `bin` and waits until every member answers.
    pub async fn start(test: &str, bin: &Path, members: usize) -> EtcdCluster {
        assert!(members >= 1, "an etcd cluster needs a member");
        let dir = scratch_dir(&format!("{test}-etcd"));
        let ports = free_ports(2 * members);
        let token = format!("tempest-{}", ports[0]);
        let mut list: Vec<EtcdMember> = (0..members)
            .map(|i| EtcdMember {
                name: format!("m{i}"),
                client_url: format!("http://127.0.0.1:{}", ports[2 * i]),
                peer_url: format!("http://127.0.0.1:{}", ports[2 * i + 1]),
                data_dir: dir.join(format!("m{i}")),
                daemon: None,
                args: Vec::new(),
            })
            .collect();
        let initial: Vec<String> = list
            .iter()
            .map(|m| format!("{}={}", m.name, m.peer_url))
            .collect();
        let initial = initial.join(",");
        for m in &mut list {
            m.args = vec![
                "--name".into(),
                m.name.clone(),
                "--data-dir".into(),
                m.data_dir.display().to_string(),
                "--listen-client-urls".into(),
                m.client_url.clone(),
                "--advertise-client-urls".into(),
                m.client_url.clone(),
                "--listen-peer-urls".into(),
                m.peer_url.clone(),
                "--initial-advertise-peer-urls".into(),
                m.peer_url.clone(),
                "--initial-cluster".into(),
                initial.clone(),
                "--initial-cluster-token".into(),
                token.clone(),
                "--initial-cluster-state".into(),
                "new".into(),
                // Short raft timers: a test on one machine does not need LAN margins.
                "--heartbeat-interval".into(),
                "50".into(),
                "--election-timeout".into(),
                "500".into(),
                // Lease TTLs survive an etcd leader change (3.4.20+).
                "--experimental-enable-lease-checkpoint".into(),
                "--logger".into(),
                "zap".into(),
                "--log-level".into(),
                "warn".into(),
            ];
            m.daemon = Some(Daemon::spawn(
                bin,
                &m.args,
                dir.join(format!("{}.log", m.name)),
            ));
        }
        let cluster = EtcdCluster { members: list, dir };
        for m in &cluster.members {
            cluster.wait_healthy(&m.client_url).await;
        }
        cluster
    }

    async fn wait_healthy(&self, url: &str) {
        let health = format!("{url}/health");
        eventually(
            &format!("etcd member {url} to be healthy"),
            Duration::from_secs(30),
            || {
                let health = health.clone();
                async move {
                    let body = http_get(&health).await?;
                    body.contains("\"health\":\"true\"").then_some(())
                }
            },
        )
        .await;
    }

    /// The client URLs of the members, for Nimbus's `etcd_endpoints`.
    pub fn endpoints(&self) -> Vec<String> {
        self.members.iter().map(|m| m.client_url.clone()).collect()
    }

    /// `kill -9` member `i`.
    pub fn kill9(&mut self, i: usize) {
        if let Some(mut d) = self.members[i].daemon.take() {
            d.kill9();
        }
    }

    /// Starts member `i` again on its data dir (it rejoins the cluster) and waits until it is
    /// healthy.
    pub async fn restart(&mut self, i: usize) {
        let bin = etcd_bin().expect("etcd binary");
        let m = &mut self.members[i];
        let mut args = m.args.clone();
        if let Some(pos) = args.iter().position(|a| a == "new") {
            args[pos] = "existing".into();
        }
        m.daemon = Some(Daemon::spawn(
            &bin,
            &args,
            self.dir.join(format!("{}-restarted.log", m.name)),
        ));
        let url = m.client_url.clone();
        self.wait_healthy(&url).await;
    }

    /// Runs `etcdctl` (v3 API) against the cluster with `args`; its stdout. Panics if it fails.
    pub fn etcdctl(&self, args: &[&str]) -> String {
        let out = Command::new("etcdctl")
            .env("ETCDCTL_API", "3")
            .arg(format!("--endpoints={}", self.endpoints().join(",")))
            .args(args)
            .output()
            .expect("run etcdctl (Debian's etcd-client)");
        assert!(
            out.status.success(),
            "etcdctl {args:?} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Every key under `prefix` with its value and revisions, read with `etcdctl get -w json`.
    pub fn keys(&self, prefix: &str) -> Vec<EtcdKey> {
        let text = self.etcdctl(&["get", "--prefix", prefix, "-w", "json"]);
        let v: serde_json::Value = serde_json::from_str(&text).expect("etcdctl json");
        let decode = |s: &serde_json::Value| -> String {
            let b64 = s.as_str().unwrap_or_default();
            let bytes = BASE64_STANDARD.decode(b64).unwrap_or_default();
            String::from_utf8_lossy(&bytes).into_owned()
        };
        v["kvs"]
            .as_array()
            .map(|kvs| {
                kvs.iter()
                    .map(|kv| EtcdKey {
                        key: decode(&kv["key"]),
                        value: decode(&kv["value"]),
                        create_revision: kv["create_revision"].as_i64().unwrap_or(0),
                        mod_revision: kv["mod_revision"].as_i64().unwrap_or(0),
                        lease: kv["lease"].as_i64().unwrap_or(0),
                    })
                    .collect()
            })
            .unwrap_or_default()
    }

    /// The logs of the members, for failure messages.
    pub fn logs(&self) -> String {
        let mut out = String::new();
        for m in &self.members {
            if let Some(d) = &m.daemon {
                let text = std::fs::read_to_string(&d.log).unwrap_or_default();
                let tail: Vec<&str> = text.lines().rev().take(20).collect();
                out += &format!("\n==== etcd {} (last 20 lines)\n", m.name);
                for l in tail.into_iter().rev() {
                    out += l;
                    out += "\n";
                }
            }
        }
        out
    }
}

impl Drop for EtcdCluster {
    fn drop(&mut self) {
        for i in 0..self.members.len() {
            self.kill9(i);
        }
        remove_test_dir(&self.dir);
    }
}

/// A key as `etcdctl get -w json` shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EtcdKey {
    /// The key.
    pub key: String,
    /// The value (lossy UTF-8).
    pub value: String,
    /// The revision that created it.
    pub create_revision: i64,
    /// The revision of its last change.
    pub mod_revision: i64,
    /// Its lease, 0 for none.
    pub lease: i64,
}

/// A plain HTTP/1.0 GET on loopback; the body, or `None` if it failed.
async fn http_get(url: &str) -> Option<String> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let rest = url.strip_prefix("http://")?;
    let (addr, path) = rest.split_once('/').map_or((rest, ""), |(a, p)| (a, p));
    let mut s = tokio::time::timeout(Duration::from_secs(2), tokio::net::TcpStream::connect(addr))
        .await
        .ok()?
        .ok()?;
    s.write_all(format!("GET /{path} HTTP/1.0\r\nHost: {addr}\r\n\r\n").as_bytes())
        .await
        .ok()?;
    let mut buf = Vec::new();
    tokio::time::timeout(Duration::from_secs(2), s.read_to_end(&mut buf))
        .await
        .ok()?
        .ok()?;
    let text = String::from_utf8_lossy(&buf).into_owned();
    text.split_once("\r\n\r\n").map(|(_, b)| b.to_string())
}
