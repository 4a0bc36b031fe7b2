//! The lease and the leader election. Each session of a Nimbus is one etcd lease of
//! `leader_lease_secs`, renewed every third of it; `nimbuses/<id>` and the binaries it holds
//! are bound to it. A candidate takes the leader key with one txn (put it, bound to the lease,
//! if its create revision is 0: nobody holds it), and the create revision of that put is the
//! fence of every write of the term. Losers watch the key and try again when it goes. A leader
//! steps down by itself when a renewal does not come back before its lease may have run out,
//! when a fenced write is refused, or when the key changes; a session that cannot renew ends,
//! and a new one starts with a new lease. On shutdown the lease is revoked: the key goes at once
//! and another Nimbus takes over.

use super::{Etcd, Fence, Registration};
use crate::leadership::{now_ms, NimbusInfo, Role, Takeover, VERSION};
use etcd_client::{
    Compare, CompareOp, EventType, PutOptions, Txn, TxnOp, TxnOpResponse, WatchOptions,
};
use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

/// The election of one Nimbus.
pub(crate) struct Election {
    pub(crate) etcd: Etcd,
    pub(crate) me: NimbusInfo,
    /// The lease's TTL.
    pub(crate) ttl: Duration,
    pub(crate) fence: Arc<Fence>,
    pub(crate) role: watch::Sender<Role>,
    pub(crate) takeover: Arc<dyn Takeover>,
    /// Whether this Nimbus holds every live topology's binary (it stands only then).
    pub(crate) eligible: watch::Receiver<bool>,
    /// The lease of the current session, for the holder keys.
    pub(crate) lease: watch::Sender<Option<i64>>,
}

/// What a campaign found.
enum Campaign {
    /// This Nimbus leads from this revision.
    Won(i64),
    /// Another one leads (or a dead incarnation of this one still holds the key).
    Lost(Option<NimbusInfo>),
}

impl Election {
    /// How long after a renewal was sent the lease is surely alive: the TTL less a margin
    /// (a third of it, at most 1 s), so a leader steps down before its lease can run out.
    fn alive_for(&self) -> Duration {
        self.ttl - (self.ttl / 3).min(Duration::from_secs(1))
    }

    /// Runs sessions until `cancel`; then revokes the lease.
    pub(crate) async fn run(self, cancel: CancellationToken) {
        loop {
            let ended = self.session(&cancel).await;
            if let Err(e) = &ended {
                tracing::warn!("etcd session ended: {e}; starting a new one");
            }
            if cancel.is_cancelled() {
                tracing::info!("left the election (lease revoked)");
                return;
            }
            tokio::select! {
                () = cancel.cancelled() => return,
                () = tokio::time::sleep(Duration::from_millis(500)) => {}
            }
        }
    }

    /// One lease: registers, campaigns, leads or follows, until the lease is lost or
    /// `cancel`. Always ends as a follower with the lease revoked (if etcd answers).
    async fn session(&self, cancel: &CancellationToken) -> Result<(), String> {
        let mut client = self.etcd.client.clone();
        let granted_at = Instant::now();
        let lease = self
            .etcd
            .call(
                "granting a lease",
                client.lease_grant(self.ttl.as_secs() as i64, None),
            )
            .await
            .map_err(|e| e.to_string())?
            .id();
        let mut leading = None;
        let result = self
            .lead_or_follow(lease, granted_at, &mut leading, cancel)
            .await;
        self.fence.release();
        if leading.is_some() {
            self.role.send_replace(Role::Follower(None));
            match &result {
                Ok(()) => tracing::info!(nimbus = %self.me.id, "stepped down: shutting down"),
                Err(e) => tracing::warn!(nimbus = %self.me.id, "stepped down: {e}"),
            }
            self.takeover.step_down().await;
        }
        self.lease.send_replace(None);
        let revoke = client.lease_revoke(lease);
        if let Ok(Err(e)) = tokio::time::timeout(Duration::from_secs(2), revoke).await {
            tracing::debug!("cannot revoke lease {lease:x}: {e}");
        }
        result
    }

    async fn lead_or_follow(
        &self,
        lease: i64,
        granted_at: Instant,
        leading: &mut Option<i64>,
        cancel: &CancellationToken,
    ) -> Result<(), String> {
        let keys = &self.etcd.keys;
        let mut client = self.etcd.client.clone();
        let err = |e: crate::store::StoreError| e.to_string();
        let registration = Registration {
            id: self.me.id.clone(),
            url: self.me.url.clone(),
            started_ms: now_ms(),
            version: VERSION.into(),
        };
        let member = Registration {
            started_ms: 0,
            ..registration.clone()
        };
        let json = |r: &Registration| serde_json::to_vec(r).unwrap_or_default();
        let register = Txn::new().and_then([
            TxnOp::put(
                keys.nimbus(&self.me.id),
                json(&registration),
                Some(PutOptions::new().with_lease(lease)),
            ),
            TxnOp::put(keys.member(&self.me.id), json(&member), None),
        ]);
        self.etcd
            .call("registering this Nimbus", client.txn(register))
            .await
            .map_err(err)?;
        self.lease.send_replace(Some(lease));
        let (mut keeper, mut renewals) = self
            .etcd
            .call("keeping the lease alive", client.lease_keep_alive(lease))
            .await
            .map_err(err)?;
        let mut watch = self
            .etcd
            .call(
                "watching the leader key",
                client.watch(keys.leader(), Some(WatchOptions::new())),
            )
            .await
            .map_err(err)?;
        let mut alive_until = granted_at + self.alive_for();
        let mut sent: VecDeque<Instant> = VecDeque::new();
        let mut renew = tokio::time::interval(self.ttl / 3);
        renew.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut recheck = tokio::time::interval(self.ttl);
        recheck.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut eligible = self.eligible.clone();
        let mut campaign_now = true;
        let mut said_not_eligible = false;
        loop {
            if leading.is_none() && campaign_now {
                campaign_now = false;
                if *eligible.borrow() {
                    said_not_eligible = false;
                    match self.campaign(lease).await.map_err(err)? {
                        Campaign::Won(revision) => {
                            self.fence.hold(revision, alive_until);
                            match self.takeover.take_over().await {
                                Ok(()) => {
                                    *leading = Some(revision);
                                    self.role.send_replace(Role::Leader);
                                    tracing::info!(
                                        nimbus = %self.me.id,
                                        term = revision,
                                        "elected leader"
                                    );
                                }
                                Err(e) => {
                                    tracing::error!(
                                        "won the election but cannot load the state ({e}); giving the lead back"
                                    );
                                    self.fence.release();
                                    self.resign(revision).await;
                                }
                            }
                        }
                        Campaign::Lost(leader) => self.follow(leader),
                    }
                } else {
                    if !said_not_eligible {
                        tracing::info!(
                            "not standing for election yet: this Nimbus lacks a live topology's binary"
                        );
                        said_not_eligible = true;
                    }
                    let leader = self.current_leader().await.map_err(err)?;
                    self.follow(leader.map(|(l, _)| l));
                }
            }
            tokio::select! {
                () = cancel.cancelled() => return Ok(()),
                _ = renew.tick() => {
                    keeper.keep_alive().await.map_err(|e| format!("cannot renew the lease: {e}"))?;
                    sent.push_back(Instant::now());
                }
                renewed = renewals.message() => match renewed {
                    Ok(Some(r)) => {
                        let at = sent.pop_front().unwrap_or(granted_at);
                        if r.ttl() <= 0 {
                            return Err("the lease expired".into());
                        }
                        alive_until = alive_until.max(at + self.alive_for());
                        self.fence.extend(alive_until);
                    }
                    Ok(None) => return Err("the lease's keep-alive stream ended".into()),
                    Err(e) => return Err(format!("the lease's keep-alive stream failed: {e}")),
                },
                () = tokio::time::sleep_until(alive_until) => {
                    return Err(format!(
                        "the lease was not renewed within {:?}: stepping down before it can run out",
                        self.alive_for()
                    ));
                }
                event = watch.message() => match event {
                    Ok(Some(resp)) => {
                        for e in resp.events() {
                            let gone = e.event_type() == EventType::Delete;
                            let created = e.kv().map_or(0, |kv| kv.create_revision());
                            match *leading {
                                Some(term) if gone || created != term => {
                                    self.lose(leading, "the leader key changed").await;
                                    campaign_now = true;
                                }
                                Some(_) => {}
                                None => campaign_now = true,
                            }
                        }
                        if resp.canceled() {
                            return Err(format!("the watch of the leader key was cancelled: {}", resp.cancel_reason()));
                        }
                    }
                    Ok(None) => return Err("the watch of the leader key ended".into()),
                    Err(e) => return Err(format!("the watch of the leader key failed: {e}")),
                },
                () = self.fence.broken.notified() => {
                    if leading.is_some() {
                        self.lose(leading, "a fenced write was refused").await;
                    }
                    campaign_now = true;
                }
                changed = eligible.changed() => {
                    if changed.is_err() {
                        return Err("the binary replication stopped".into());
                    }
                    campaign_now = true;
                }
                _ = recheck.tick() => {
                    if let Some(term) = *leading {
                        let holder = self.current_leader().await.map_err(err)?;
                        if holder.map(|(_, rev)| rev) != Some(term) {
                            self.lose(leading, "the leader key is no longer this Nimbus's").await;
                        }
                    }
                    campaign_now = true;
                }
            }
        }
    }

    /// Publishes `leader` as the one this follower knows.
    fn follow(&self, leader: Option<NimbusInfo>) {
        // A dead incarnation of this Nimbus (same id) may hold the key until its lease ends.
        let leader = leader.filter(|l| l.id != self.me.id);
        self.role.send_if_modified(|role| {
            let next = Role::Follower(leader);
            let changed = *role != next;
            *role = next;
            changed
        });
    }

    /// Steps down: no more writes, the role says follower, the cluster stops scheduling.
    async fn lose(&self, leading: &mut Option<i64>, why: &str) {
        if leading.take().is_some() {
            self.fence.release();
            self.role.send_replace(Role::Follower(None));
            tracing::warn!(nimbus = %self.me.id, "stepped down: {why}");
            self.takeover.step_down().await;
        }
    }

    /// The txn that takes the leader key if nobody holds it.
    async fn campaign(&self, lease: i64) -> Result<Campaign, crate::store::StoreError> {
        let key = self.etcd.keys.leader();
        let value = serde_json::to_vec(&self.me).unwrap_or_default();
        let txn = Txn::new()
            .when([Compare::create_revision(key.clone(), CompareOp::Equal, 0)])
            .and_then([TxnOp::put(
                key.clone(),
                value,
                Some(PutOptions::new().with_lease(lease)),
            )])
            .or_else([TxnOp::get(key, None)]);
        let mut client = self.etcd.client.clone();
        let resp = self.etcd.call("campaigning", client.txn(txn)).await?;
        if resp.succeeded() {
            return Ok(Campaign::Won(resp.header().map_or(0, |h| h.revision())));
        }
        let leader = resp.op_responses().into_iter().find_map(|r| match r {
            TxnOpResponse::Get(g) => g
                .kvs()
                .first()
                .and_then(|kv| serde_json::from_slice(kv.value()).ok()),
            _ => None,
        });
        Ok(Campaign::Lost(leader))
    }

    /// The leader key's holder and create revision, if held.
    async fn current_leader(&self) -> Result<Option<(NimbusInfo, i64)>, crate::store::StoreError> {
        let mut client = self.etcd.client.clone();
        let resp = self
            .etcd
            .call(
                "reading the leader",
                client.get(self.etcd.keys.leader(), None),
            )
            .await?;
        Ok(resp.kvs().first().and_then(|kv| {
            serde_json::from_slice(kv.value())
                .ok()
                .map(|l| (l, kv.create_revision()))
        }))
    }

    /// Deletes the leader key if it is still this term's.
    async fn resign(&self, revision: i64) {
        let key = self.etcd.keys.leader();
        let txn = Txn::new()
            .when([Compare::create_revision(
                key.clone(),
                CompareOp::Equal,
                revision,
            )])
            .and_then([TxnOp::delete(key, None)]);
        let mut client = self.etcd.client.clone();
        if let Err(e) = self.etcd.call("resigning", client.txn(txn)).await {
            tracing::warn!("cannot give the lead back: {e}; it goes with the lease");
        }
    }
}
