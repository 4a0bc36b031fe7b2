//! Nimbus high availability on etcd (cargo feature `etcd`): the key layout, the fence every
//! state write is conditional on, the connection, and the parts built on them: the fenced
//! [`store::EtcdStore`], the lease and the leader election ([`election`]), and the replication
//! of topology binaries between Nimbus hosts ([`replication`]). `docs/design/nimbus-ha.md` has
//! the design.

pub(crate) mod election;
pub(crate) mod replication;
pub(crate) mod store;

use crate::clock::Clock;
use crate::cluster::Cluster;
use crate::config::NimbusConfig;
use crate::error::NimbusError;
use crate::leadership::{now_ms, Directory, Leadership, NimbusHost, NimbusInfo};
use crate::store::{Durable, StoreError};
use etcd_client::{Client, ConnectOptions, GetOptions, KeyValue};
use serde::{Deserialize, Serialize};
use std::future::Future;
use std::sync::Arc;
use std::sync::Mutex;
use std::time::Duration;
use tokio::sync::watch;
use tokio::sync::Notify;
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

/// Connects to etcd and builds the cluster on the etcd store (a follower until it wins), then
/// starts the election and the binary replication, which run until `cancel` (the election
/// then revokes the lease).
pub(crate) async fn start(
    config: &NimbusConfig,
    clock: Clock,
    me: NimbusInfo,
    cancel: CancellationToken,
) -> Result<(Arc<Cluster>, Vec<JoinHandle<()>>), NimbusError> {
    let etcd = Etcd::connect(&config.etcd_endpoints, &config.cluster_name)
        .await
        .map_err(|e| NimbusError::Store(e.to_string()))?;
    let fence = Arc::new(Fence::default());
    let store = store::EtcdStore::new(etcd.clone(), fence.clone());
    let (leadership, role) = Leadership::elected(me.clone(), Arc::new(etcd.clone()));
    let leadership = Arc::new(leadership);
    store.set_leadership(leadership.clone());
    let cluster = Arc::new(Cluster::open(
        config,
        clock,
        Arc::new(store),
        Durable::default(),
        leadership,
    )?);
    tracing::info!(
        nimbus = %me.id,
        url = %me.url,
        etcd = %etcd.endpoints,
        keys = %etcd.keys.root(),
        lease_secs = config.leader_lease_secs,
        "HA with etcd: a follower until elected"
    );
    let (eligible_tx, eligible) = watch::channel(false);
    let (lease_tx, lease) = watch::channel(None);
    let replication = replication::Replication {
        etcd: etcd.clone(),
        me: me.clone(),
        artifacts: cluster.artifacts.clone(),
        secret: config.secret.clone(),
        eligible: eligible_tx,
        lease,
        stored: cluster.artifact_stored.clone(),
    };
    let election = election::Election {
        etcd,
        me,
        ttl: Duration::from_secs(config.leader_lease_secs),
        fence,
        role,
        takeover: cluster.clone(),
        eligible,
        lease: lease_tx,
    };
    let tasks = vec![
        tokio::spawn(replication.run(cancel.clone())),
        tokio::spawn(election.run(cancel)),
    ];
    Ok((cluster, tasks))
}

/// The longest any one etcd request may take before it counts as failed.
pub(crate) const REQUEST_TIMEOUT: Duration = Duration::from_secs(3);

/// The keys of one cluster, all under `/tempest/<cluster_name>/`.
#[derive(Debug, Clone)]
pub(crate) struct Keys {
    root: String,
}

impl Keys {
    /// The keys of cluster `name`.
    pub(crate) fn new(cluster: &str) -> Self {
        Keys {
            root: format!("/tempest/{cluster}/"),
        }
    }

    /// Everything of the cluster.
    pub(crate) fn root(&self) -> &str {
        &self.root
    }

    /// `leader`: the leader's `{id, url}`, bound to its lease.
    pub(crate) fn leader(&self) -> String {
        format!("{}leader", self.root)
    }

    /// `nimbuses/<id>`: a live Nimbus (bound to its lease).
    pub(crate) fn nimbus(&self, id: &str) -> String {
        format!("{}nimbuses/{id}", self.root)
    }

    /// Prefix of the live Nimbus hosts.
    pub(crate) fn nimbuses(&self) -> String {
        format!("{}nimbuses/", self.root)
    }

    /// `members/<id>`: a Nimbus that has ever run (not leased: listed as Offline when dead).
    pub(crate) fn member(&self, id: &str) -> String {
        format!("{}members/{id}", self.root)
    }

    /// Prefix of the members.
    pub(crate) fn members(&self) -> String {
        format!("{}members/", self.root)
    }

    /// Prefix of the topology records.
    pub(crate) fn topologies(&self) -> String {
        format!("{}topologies/", self.root)
    }

    /// Prefix of the assignments.
    pub(crate) fn assignments(&self) -> String {
        format!("{}assignments/", self.root)
    }

    /// The next assignment version.
    pub(crate) fn next_version(&self) -> String {
        format!("{}meta/next_version", self.root)
    }

    /// `artifacts/<sha>/<id>`: Nimbus `id` holds binary `sha` (bound to its lease).
    pub(crate) fn holder(&self, sha: &str, id: &str) -> String {
        format!("{}artifacts/{sha}/{id}", self.root)
    }

    /// Prefix of the holders of `sha`.
    pub(crate) fn holders(&self, sha: &str) -> String {
        format!("{}artifacts/{sha}/", self.root)
    }
}

/// The end of the key range of every key starting with `prefix` (etcd's prefix range).
pub(crate) fn prefix_end(prefix: &str) -> Vec<u8> {
    let mut end = prefix.as_bytes().to_vec();
    while let Some(last) = end.pop() {
        if last < 0xff {
            end.push(last + 1);
            return end;
        }
    }
    vec![0]
}

/// The leader's term this Nimbus holds, if any: the create revision of its leader key and how
/// long its lease is surely alive. Every state write is a txn conditional on the leader key
/// still having that create revision; a write is not even sent once the lease may have run
/// out.
#[derive(Debug, Default)]
pub(crate) struct Fence {
    term: Mutex<Option<Term>>,
    /// Signalled when a write found the fence broken (another Nimbus leads).
    pub(crate) broken: Notify,
}

#[derive(Debug, Clone, Copy)]
struct Term {
    revision: i64,
    valid_until: Instant,
}

impl Fence {
    fn lock(&self) -> std::sync::MutexGuard<'_, Option<Term>> {
        self.term.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// This Nimbus leads from `revision` (its leader key's create revision), its lease alive
    /// until `valid_until`.
    pub(crate) fn hold(&self, revision: i64, valid_until: Instant) {
        *self.lock() = Some(Term {
            revision,
            valid_until,
        });
    }

    /// The lease was renewed: alive until `valid_until`.
    pub(crate) fn extend(&self, valid_until: Instant) {
        if let Some(t) = self.lock().as_mut() {
            t.valid_until = t.valid_until.max(valid_until);
        }
    }

    /// Leads no more.
    pub(crate) fn release(&self) {
        *self.lock() = None;
    }

    /// The revision to fence a write on, if this Nimbus leads and its lease is surely alive.
    pub(crate) fn revision(&self) -> Option<i64> {
        let mut term = self.lock();
        match *term {
            Some(t) if Instant::now() < t.valid_until => Some(t.revision),
            Some(_) => {
                *term = None;
                None
            }
            None => None,
        }
    }

    /// A write was refused by etcd: another Nimbus leads.
    pub(crate) fn broke(&self) {
        self.release();
        self.broken.notify_one();
    }
}

/// The connection to etcd and the cluster's keys.
#[derive(Clone)]
pub(crate) struct Etcd {
    pub(crate) client: Client,
    pub(crate) keys: Keys,
    /// The endpoints, for messages.
    pub(crate) endpoints: String,
}

impl std::fmt::Debug for Etcd {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Etcd({} {})", self.endpoints, self.keys.root)
    }
}

/// A live Nimbus as `nimbuses/<id>` and `members/<id>` describe it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct Registration {
    pub(crate) id: String,
    pub(crate) url: String,
    /// Unix ms of its start (0 in `members/`).
    #[serde(default)]
    pub(crate) started_ms: u64,
    pub(crate) version: String,
}

impl Etcd {
    /// Connects to `endpoints` (etcd-client balances between them) with cluster `name`.
    pub(crate) async fn connect(endpoints: &[String], cluster: &str) -> Result<Self, StoreError> {
        let joined = endpoints.join(",");
        let options = ConnectOptions::new()
            .with_connect_timeout(Duration::from_secs(2))
            .with_keep_alive(Duration::from_secs(1), Duration::from_secs(2))
            .with_keep_alive_while_idle(true);
        let client = tokio::time::timeout(
            Duration::from_secs(10),
            Client::connect(endpoints, Some(options)),
        )
        .await
        .map_err(|_| StoreError::Etcd {
            endpoints: joined.clone(),
            what: "connecting",
            reason: "no answer in 10 s".into(),
        })?
        .map_err(|e| StoreError::Etcd {
            endpoints: joined.clone(),
            what: "connecting",
            reason: e.to_string(),
        })?;
        Ok(Etcd {
            client,
            keys: Keys::new(cluster),
            endpoints: joined,
        })
    }

    /// Runs `request` with [`REQUEST_TIMEOUT`]; `what` names it in the error.
    pub(crate) async fn call<T, F>(&self, what: &'static str, request: F) -> Result<T, StoreError>
    where
        F: Future<Output = Result<T, etcd_client::Error>>,
    {
        match tokio::time::timeout(REQUEST_TIMEOUT, request).await {
            Ok(Ok(v)) => Ok(v),
            Ok(Err(e)) => Err(self.error(what, e.to_string())),
            Err(_) => Err(self.error(what, format!("no answer in {REQUEST_TIMEOUT:?}"))),
        }
    }

    /// An etcd error.
    pub(crate) fn error(&self, what: &'static str, reason: String) -> StoreError {
        StoreError::Etcd {
            endpoints: self.endpoints.clone(),
            what,
            reason,
        }
    }

    /// Every key under `prefix` at `revision` (0: now), read in pages; and the revision read.
    pub(crate) async fn range(
        &self,
        what: &'static str,
        prefix: &str,
        revision: i64,
    ) -> Result<(Vec<KeyValue>, i64), StoreError> {
        const PAGE: i64 = 256;
        let end = prefix_end(prefix);
        let mut from = prefix.as_bytes().to_vec();
        let mut revision = revision;
        let mut out = Vec::new();
        loop {
            let mut options = GetOptions::new().with_range(end.clone()).with_limit(PAGE);
            if revision > 0 {
                options = options.with_revision(revision);
            }
            let mut client = self.client.clone();
            let mut resp = self
                .call(what, client.get(from.clone(), Some(options)))
                .await?;
            if revision == 0 {
                revision = resp.header().map_or(0, |h| h.revision());
            }
            let more = resp.more();
            let kvs = resp.take_kvs();
            if let Some(last) = kvs.last() {
                from = last.key().to_vec();
                from.push(0);
            }
            out.extend(kvs);
            if !more {
                return Ok((out, revision));
            }
        }
    }
}

#[async_trait::async_trait]
impl Directory for Etcd {
    async fn nimbuses(&self) -> Result<Vec<NimbusHost>, String> {
        let (live, rev) = self
            .range("listing the Nimbus hosts", &self.keys.nimbuses(), 0)
            .await
            .map_err(|e| e.to_string())?;
        let (members, _) = self
            .range("listing the Nimbus hosts", &self.keys.members(), rev)
            .await
            .map_err(|e| e.to_string())?;
        let mut client = self.client.clone();
        let leader = self
            .call("reading the leader", client.get(self.keys.leader(), None))
            .await
            .map_err(|e| e.to_string())?;
        let leader: Option<NimbusInfo> = leader
            .kvs()
            .first()
            .and_then(|kv| serde_json::from_slice(kv.value()).ok());
        let parse = |kvs: &[KeyValue]| -> Vec<Registration> {
            kvs.iter()
                .filter_map(|kv| serde_json::from_slice(kv.value()).ok())
                .collect()
        };
        let live = parse(&live);
        let now = now_ms();
        let mut hosts: Vec<NimbusHost> = live
            .iter()
            .map(|r| NimbusHost {
                id: r.id.clone(),
                url: r.url.clone(),
                status: if leader.as_ref().is_some_and(|l| l.id == r.id) {
                    "Leader"
                } else {
                    "Not a Leader"
                }
                .into(),
                uptime_secs: now.saturating_sub(r.started_ms) / 1000,
                version: r.version.clone(),
            })
            .collect();
        for m in parse(&members) {
            if !live.iter().any(|r| r.id == m.id) {
                hosts.push(NimbusHost {
                    id: m.id,
                    url: m.url,
                    status: "Offline".into(),
                    uptime_secs: 0,
                    version: m.version,
                });
            }
        }
        hosts.sort_by(|a, b| a.id.cmp(&b.id));
        Ok(hosts)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefix_ranges_end_after_every_key_of_the_prefix() {
        assert_eq!(prefix_end("/t/a/"), b"/t/a0".to_vec());
        let k = Keys::new("c1");
        assert_eq!(k.holder("ff", "h:1"), "/tempest/c1/artifacts/ff/h:1");
        assert!(k.holder("ff", "h:1").starts_with(&k.holders("ff")));
    }

    #[tokio::test(start_paused = true)]
    async fn a_fence_is_not_used_once_the_lease_may_have_run_out() {
        let fence = Fence::default();
        assert_eq!(fence.revision(), None);
        fence.hold(7, Instant::now() + Duration::from_secs(4));
        assert_eq!(fence.revision(), Some(7));
        tokio::time::advance(Duration::from_secs(3)).await;
        fence.extend(Instant::now() + Duration::from_secs(4));
        tokio::time::advance(Duration::from_secs(3)).await;
        assert_eq!(fence.revision(), Some(7), "renewed in time");
        tokio::time::advance(Duration::from_secs(2)).await;
        assert_eq!(fence.revision(), None, "not renewed: no write may be sent");
        fence.extend(Instant::now() + Duration::from_secs(4));
        assert_eq!(fence.revision(), None, "a lapsed term does not come back");
    }
}
