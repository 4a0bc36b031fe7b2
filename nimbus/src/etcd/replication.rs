//! Binaries survive the loss of a Nimbus, as in Storm's blob store: every Nimbus keeps them by
//! sha256 in its artifact store and registers as a holder of each (`artifacts/<sha>/<id>`,
//! bound to its lease). Every [`SYNC_PERIOD`] (and after an upload) it reads the live
//! topologies and fetches each binary it lacks from a live holder, the leader first, through
//! the same verified upload path as a client's (hashed while streamed, renamed into place only
//! if the sha256 matches). It stands for election only while it holds every live topology's
//! binary, or, when no live Nimbus holds one, after [`FALLBACK_AFTER`] (logged as an error: that
//! topology's workers cannot be restarted on new machines).

use super::{Etcd, Registration};
use crate::artifacts::ArtifactStore;
use crate::leadership::NimbusInfo;
use crate::state::TopologyRecord;
use axum::body::Body;
use etcd_client::{PutOptions, Txn, TxnOp};
use std::collections::{BTreeSet, HashSet};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{watch, Notify};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

/// How often a Nimbus looks for binaries it lacks (Storm's `nimbus.code.sync.freq.secs`).
pub(crate) const SYNC_PERIOD: Duration = Duration::from_secs(2);
/// How long a Nimbus that lacks a binary nobody alive holds waits before it stands anyway.
pub(crate) const FALLBACK_AFTER: Duration = Duration::from_secs(10);
/// Most holder keys put in one txn (etcd takes 128 operations).
const HOLDERS_PER_TXN: usize = 100;

/// The replication task of one Nimbus.
pub(crate) struct Replication {
    pub(crate) etcd: Etcd,
    pub(crate) me: NimbusInfo,
    pub(crate) artifacts: Arc<ArtifactStore>,
    pub(crate) secret: Option<String>,
    pub(crate) eligible: watch::Sender<bool>,
    pub(crate) lease: watch::Receiver<Option<i64>>,
    /// Signalled when an upload stored a binary.
    pub(crate) stored: Arc<Notify>,
}

/// What the last rounds found.
#[derive(Default)]
struct Progress {
    /// The lease the holder keys were put with, and the shas put.
    registered: (Option<i64>, HashSet<String>),
    /// Since when a missing binary has had no live holder.
    unheld_since: Option<Instant>,
}

/// Why a binary could not be fetched.
enum Fetch {
    /// No other live Nimbus holds it.
    NoHolder,
    /// Holders exist but none gave it.
    Failed(String),
}

impl Replication {
    /// Runs rounds until `cancel`.
    pub(crate) async fn run(mut self, cancel: CancellationToken) {
        let http = match reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(2))
            .read_timeout(Duration::from_secs(10))
            .build()
        {
            Ok(h) => h,
            Err(e) => {
                tracing::error!("binary replication cannot start its HTTP client: {e}");
                return;
            }
        };
        let mut progress = Progress::default();
        loop {
            if let Err(e) = self.round(&http, &mut progress).await {
                tracing::warn!("binary replication round failed, retrying: {e}");
            }
            tokio::select! {
                () = cancel.cancelled() => return,
                () = tokio::time::sleep(SYNC_PERIOD) => {}
                () = self.stored.notified() => {}
                _ = self.lease.changed() => {}
            }
        }
    }

    async fn round(&self, http: &reqwest::Client, progress: &mut Progress) -> Result<(), String> {
        let keys = &self.etcd.keys;
        let (records, _) = self
            .etcd
            .range("reading the topologies", &keys.topologies(), 0)
            .await
            .map_err(|e| e.to_string())?;
        let needed: BTreeSet<String> = records
            .iter()
            .filter_map(|kv| serde_json::from_slice::<TopologyRecord>(kv.value()).ok())
            .map(|r| r.artifact)
            .collect();
        let mut lacking = Vec::new();
        for sha in &needed {
            if !self
                .artifacts
                .exists(sha)
                .await
                .map_err(|e| e.to_string())?
            {
                lacking.push(sha.clone());
            }
        }
        let fallback = progress
            .unheld_since
            .is_some_and(|since| since.elapsed() >= FALLBACK_AFTER);
        if !lacking.is_empty() && !fallback {
            // Not a candidate while it fetches (a fetch can take long).
            self.set_eligible(false);
        }
        let mut missing = Vec::new();
        for sha in &lacking {
            match self.fetch(http, sha).await {
                Ok(from) => {
                    tracing::info!(artifact = %sha, from = %from, "fetched a topology binary")
                }
                Err(Fetch::NoHolder) => missing.push((sha.clone(), false)),
                Err(Fetch::Failed(e)) => {
                    tracing::warn!(artifact = %sha, "cannot fetch a topology binary: {e}");
                    missing.push((sha.clone(), true));
                }
            }
        }
        let eligible = if missing.is_empty() {
            progress.unheld_since = None;
            true
        } else if missing.iter().all(|(_, held)| !held) {
            let since = *progress.unheld_since.get_or_insert_with(Instant::now);
            let over = since.elapsed() >= FALLBACK_AFTER;
            if over && !*self.eligible.borrow() {
                let shas: Vec<&str> = missing.iter().map(|(s, _)| s.as_str()).collect();
                tracing::error!(
                    missing = ?shas,
                    "no live Nimbus holds these topology binaries and this one lacks them: \
                     standing for election anyway after {FALLBACK_AFTER:?}; their workers cannot \
                     be started on a supervisor that lacks them until someone uploads them again"
                );
            }
            over
        } else {
            progress.unheld_since = None;
            false
        };
        self.set_eligible(eligible);
        self.register(progress).await
    }

    fn set_eligible(&self, eligible: bool) {
        self.eligible.send_if_modified(|e| {
            let changed = *e != eligible;
            *e = eligible;
            changed
        });
    }

    /// Puts a holder key for every binary held that is not registered under the lease.
    async fn register(&self, progress: &mut Progress) -> Result<(), String> {
        let Some(lease) = *self.lease.borrow() else {
            return Ok(());
        };
        if progress.registered.0 != Some(lease) {
            progress.registered = (Some(lease), HashSet::new());
        }
        let held = self.artifacts.list().await.map_err(|e| e.to_string())?;
        let new: Vec<String> = held
            .into_iter()
            .filter(|sha| !progress.registered.1.contains(sha))
            .collect();
        for chunk in new.chunks(HOLDERS_PER_TXN) {
            let ops: Vec<TxnOp> = chunk
                .iter()
                .map(|sha| {
                    TxnOp::put(
                        self.etcd.keys.holder(sha, &self.me.id),
                        Vec::new(),
                        Some(PutOptions::new().with_lease(lease)),
                    )
                })
                .collect();
            let mut client = self.etcd.client.clone();
            self.etcd
                .call(
                    "registering held binaries",
                    client.txn(Txn::new().and_then(ops)),
                )
                .await
                .map_err(|e| e.to_string())?;
            progress.registered.1.extend(chunk.iter().cloned());
        }
        Ok(())
    }

    /// Fetches `sha` from a live holder, the leader first; the URL it came from.
    async fn fetch(&self, http: &reqwest::Client, sha: &str) -> Result<String, Fetch> {
        let keys = &self.etcd.keys;
        let failed = |e: crate::store::StoreError| Fetch::Failed(e.to_string());
        let (holders, rev) = self
            .etcd
            .range("listing a binary's holders", &keys.holders(sha), 0)
            .await
            .map_err(failed)?;
        let ids: HashSet<String> = holders
            .iter()
            .filter_map(|kv| {
                let key = String::from_utf8_lossy(kv.key()).into_owned();
                key.rsplit('/').next().map(str::to_string)
            })
            .filter(|id| *id != self.me.id)
            .collect();
        let (live, _) = self
            .etcd
            .range("listing the Nimbus hosts", &keys.nimbuses(), rev)
            .await
            .map_err(failed)?;
        let mut client = self.etcd.client.clone();
        let leader = self
            .etcd
            .call("reading the leader", client.get(keys.leader(), None))
            .await
            .map_err(failed)?;
        let leader_id = leader
            .kvs()
            .first()
            .and_then(|kv| serde_json::from_slice::<NimbusInfo>(kv.value()).ok())
            .map(|l| l.id);
        let mut urls: Vec<(bool, String)> = live
            .iter()
            .filter_map(|kv| serde_json::from_slice::<Registration>(kv.value()).ok())
            .filter(|r| ids.contains(&r.id))
            .map(|r| (Some(&r.id) != leader_id.as_ref(), r.url))
            .collect();
        urls.sort();
        if urls.is_empty() {
            return Err(Fetch::NoHolder);
        }
        let mut last = String::new();
        for (_, url) in urls {
            match self.download(http, &url, sha).await {
                Ok(()) => return Ok(url),
                Err(e) => last = format!("{url}: {e}"),
            }
        }
        Err(Fetch::Failed(last))
    }

    /// Streams `sha` from the Nimbus at `url` into the artifact store (verified there).
    async fn download(&self, http: &reqwest::Client, url: &str, sha: &str) -> Result<(), String> {
        let mut request = http.get(format!("{url}/api/v1/artifacts/{sha}"));
        if let Some(secret) = &self.secret {
            request = request.header(tempest_protocol::auth::SECRET_HEADER, secret);
        }
        let resp = request.send().await.map_err(|e| e.to_string())?;
        if !resp.status().is_success() {
            return Err(format!("HTTP {}", resp.status()));
        }
        let len = resp.content_length();
        self.artifacts
            .put(sha, len, Body::from_stream(resp.bytes_stream()))
            .await
            .map(|_| ())
            .map_err(|e| e.to_string())
    }
}
