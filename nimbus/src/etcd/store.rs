//! The etcd store: the same JSON values as the embedded store, under `/tempest/<cluster>/`
//! (`topologies/<name>`, `assignments/<name>`, `meta/next_version`). A load reads every key at
//! one revision; a commit is one txn that runs only if the leader key still has the create
//! revision this Nimbus won it with (fencing), within etcd's limits of 128 operations and
//! 1.5 MiB per request.

use super::{Etcd, Fence};
use crate::leadership::Leadership;
use crate::store::{Changes, ClusterStore, Durable, StoreError};
use etcd_client::{Compare, CompareOp, GetOptions, KeyValue, Txn, TxnOp};
use std::sync::{Arc, OnceLock};

/// etcd's default `--max-txn-ops`.
pub(crate) const MAX_TXN_OPS: usize = 128;
/// etcd's default `--max-request-bytes` (1.5 MiB), less room for the request's framing.
pub(crate) const MAX_TXN_BYTES: usize = 1_536 * 1024 - 16 * 1024;

/// The cluster state in etcd, written only under this Nimbus's fence.
#[derive(Debug, Clone)]
pub struct EtcdStore {
    etcd: Etcd,
    fence: Arc<Fence>,
    /// Who leads, for the hint of a refused write (set once the cluster is built).
    leadership: Arc<OnceLock<Arc<Leadership>>>,
}

impl EtcdStore {
    /// Connects to etcd at `endpoints` for cluster `cluster`: a store that writes nothing until
    /// [`EtcdStore::fence_on`] (the election does that for a running Nimbus).
    pub async fn connect(endpoints: &[String], cluster: &str) -> Result<Self, StoreError> {
        let etcd = Etcd::connect(endpoints, cluster).await?;
        Ok(Self::new(etcd, Arc::new(Fence::default())))
    }

    /// Writes from now on only while the leader key (`/tempest/<cluster>/leader`) has create
    /// revision `revision`, and for at most `valid_for` (the lease this Nimbus holds).
    pub fn fence_on(&self, revision: i64, valid_for: std::time::Duration) {
        self.fence
            .hold(revision, tokio::time::Instant::now() + valid_for);
    }

    pub(crate) fn new(etcd: Etcd, fence: Arc<Fence>) -> Self {
        EtcdStore {
            etcd,
            fence,
            leadership: Arc::default(),
        }
    }

    /// Lets refusals name the leader.
    pub(crate) fn set_leadership(&self, leadership: Arc<Leadership>) {
        let _ = self.leadership.set(leadership);
    }

    fn not_leader(&self) -> StoreError {
        StoreError::NotLeader {
            leader: self
                .leadership
                .get()
                .and_then(|l| l.leader())
                .filter(|l| Some(l) != self.leadership.get().map(|me| me.me()))
                .map(|l| l.url),
        }
    }

    fn decode<T: serde::de::DeserializeOwned>(
        &self,
        table: &'static str,
        kv: &KeyValue,
    ) -> Result<(String, T), StoreError> {
        let key = String::from_utf8_lossy(kv.key()).into_owned();
        let value = serde_json::from_slice(kv.value()).map_err(|e| StoreError::Corrupt {
            store: format!("etcd {}", self.etcd.keys.root()),
            table,
            key: key.clone(),
            reason: e.to_string(),
            hint: "delete the key (etcdctl del) to drop it",
        })?;
        let name = key.rsplit('/').next().unwrap_or_default().to_string();
        Ok((name, value))
    }

    fn encode<T: serde::Serialize>(&self, key: &str, value: &T) -> Result<Vec<u8>, StoreError> {
        serde_json::to_vec(value).map_err(|e| StoreError::Encode {
            store: format!("etcd {}", self.etcd.keys.root()),
            key: key.to_string(),
            reason: e.to_string(),
        })
    }

    /// The txn operations of `changes`, checked against etcd's limits.
    fn operations(&self, changes: &Changes) -> Result<Vec<TxnOp>, StoreError> {
        let keys = &self.etcd.keys;
        let mut ops = Vec::new();
        let mut bytes = 0;
        let mut put = |key: String, value: Vec<u8>, ops: &mut Vec<TxnOp>| {
            bytes += key.len() + value.len();
            ops.push(TxnOp::put(key, value, None));
        };
        for (name, record) in &changes.topologies {
            let key = format!("{}{name}", keys.topologies());
            match record {
                Some(r) => {
                    let json = self.encode(&key, r)?;
                    put(key, json, &mut ops);
                }
                None => ops.push(TxnOp::delete(key, None)),
            }
        }
        for (name, assignment) in &changes.assignments {
            let key = format!("{}{name}", keys.assignments());
            match assignment {
                Some(a) => {
                    let json = self.encode(&key, a)?;
                    put(key, json, &mut ops);
                }
                None => ops.push(TxnOp::delete(key, None)),
            }
        }
        if let Some(v) = changes.next_version {
            put(keys.next_version(), v.to_string().into_bytes(), &mut ops);
        }
        // One compare on the leader key besides.
        if ops.len() >= MAX_TXN_OPS || bytes > MAX_TXN_BYTES {
            return Err(StoreError::TooLarge {
                ops: ops.len(),
                bytes,
                max_ops: MAX_TXN_OPS - 1,
                max_bytes: MAX_TXN_BYTES,
            });
        }
        Ok(ops)
    }
}

#[async_trait::async_trait]
impl ClusterStore for EtcdStore {
    async fn load(&self) -> Result<Durable, StoreError> {
        let keys = &self.etcd.keys;
        let what = "reading the cluster state";
        let (topologies, revision) = self.etcd.range(what, &keys.topologies(), 0).await?;
        let (assignments, _) = self.etcd.range(what, &keys.assignments(), revision).await?;
        let mut client = self.etcd.client.clone();
        let meta = self
            .etcd
            .call(
                what,
                client.get(
                    keys.next_version(),
                    Some(GetOptions::new().with_revision(revision)),
                ),
            )
            .await?;
        let mut durable = Durable {
            next_version: 1,
            ..Durable::default()
        };
        for kv in &topologies {
            let (name, record) = self.decode("topologies", kv)?;
            durable.topologies.insert(name, record);
        }
        for kv in &assignments {
            let (name, a) = self.decode("assignments", kv)?;
            durable.assignments.insert(name, a);
        }
        if let Some(kv) = meta.kvs().first() {
            let text = String::from_utf8_lossy(kv.value());
            durable.next_version = text.trim().parse().map_err(|e| StoreError::Corrupt {
                store: format!("etcd {}", keys.root()),
                table: "meta",
                key: keys.next_version(),
                reason: format!("{text:?}: {e}"),
                hint: "delete the key (etcdctl del) to recompute it",
            })?;
        }
        durable.fix_next_version();
        Ok(durable)
    }

    async fn commit(&self, changes: Changes) -> Result<Changes, StoreError> {
        let Some(revision) = self.fence.revision() else {
            return Err(self.not_leader());
        };
        let ops = self.operations(&changes)?;
        let txn = Txn::new()
            .when([Compare::create_revision(
                self.etcd.keys.leader(),
                CompareOp::Equal,
                revision,
            )])
            .and_then(ops);
        let mut client = self.etcd.client.clone();
        let resp = self
            .etcd
            .call("writing the cluster state", client.txn(txn))
            .await?;
        if !resp.succeeded() {
            tracing::warn!(
                term = revision,
                "a write was refused by etcd: another Nimbus leads now (fenced); stepping down"
            );
            self.fence.broke();
            return Err(self.not_leader());
        }
        Ok(changes)
    }

    fn describe(&self) -> String {
        format!("etcd {} {}", self.etcd.endpoints, self.etcd.keys.root())
    }

    fn max_topologies_per_commit(&self) -> usize {
        // A topology and its assignment: two operations each, and the version.
        16
    }

    async fn replicas(&self, sha: &str) -> Result<usize, StoreError> {
        let mut client = self.etcd.client.clone();
        let resp = self
            .etcd
            .call(
                "counting a binary's holders",
                client.get(
                    self.etcd.keys.holders(sha),
                    Some(GetOptions::new().with_prefix().with_count_only()),
                ),
            )
            .await?;
        Ok(resp.count().max(0) as usize)
    }
}
