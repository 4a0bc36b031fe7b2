//! Who leads: this Nimbus's role (the embedded store's single Nimbus always leads; with etcd the
//! election in `etcd::election` sets it), the answer of `GET /api/v1/leader`, and the 503 a
//! follower gives every request it does not serve. The contract is in
//! `docs/design/nimbus-ha.md`.

use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::{Deserialize, Serialize};
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};
use tokio::sync::watch;

/// The header a follower's 503 names the leader's URL in.
pub(crate) const LEADER_HEADER: &str = "x-tempest-leader";

/// A Nimbus: its id (host:port of its URL) and the URL clients reach it at.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NimbusInfo {
    /// Its id.
    pub id: String,
    /// Its URL.
    pub url: String,
}

/// This Nimbus's role.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Role {
    /// It leads: it schedules and takes changes.
    Leader,
    /// Another Nimbus leads (`None`: none is known now).
    #[cfg_attr(not(feature = "etcd"), allow(dead_code))]
    Follower(Option<NimbusInfo>),
}

/// One Nimbus in `GET /api/v1/leader`'s `nimbuses` (and Storm's nimbus summary).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NimbusHost {
    /// Its id.
    pub id: String,
    /// Its URL.
    pub url: String,
    /// `Leader`, `Not a Leader` or `Offline` (Storm's words).
    pub status: String,
    /// Seconds since it started (0 when offline).
    pub uptime_secs: u64,
    /// Its Tempest version.
    pub version: String,
}

/// The answer of `GET /api/v1/leader`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LeaderAnswer {
    /// The leader, if one is known.
    pub leader: Option<NimbusInfo>,
    /// The Nimbus that answers.
    #[serde(rename = "self")]
    pub me: NimbusInfo,
    /// Whether it leads.
    pub is_leader: bool,
    /// Every Nimbus known, with its status.
    pub nimbuses: Vec<NimbusHost>,
}

/// Lists the Nimbus hosts of the cluster (etcd's registry).
#[async_trait::async_trait]
pub(crate) trait Directory: Send + Sync {
    /// Every Nimbus known, with its status; `Err` says why it could not be read.
    async fn nimbuses(&self) -> Result<Vec<NimbusHost>, String>;
}

/// What a Nimbus does when it wins or loses the lead (implemented by the cluster).
#[cfg_attr(not(feature = "etcd"), allow(dead_code))]
#[async_trait::async_trait]
pub(crate) trait Takeover: Send + Sync {
    /// Loads the state and resets heartbeat tracking; called after winning, before the role
    /// is published. An error gives the lead back.
    async fn take_over(&self) -> Result<(), crate::store::StoreError>;
    /// Called after the lead is lost, once the role says so.
    async fn step_down(&self);
}

/// This Nimbus's role and how to describe the cluster's Nimbus hosts.
pub(crate) struct Leadership {
    me: NimbusInfo,
    started_ms: u64,
    role: watch::Receiver<Role>,
    directory: Option<Arc<dyn Directory>>,
}

impl std::fmt::Debug for Leadership {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Leadership")
            .field("me", &self.me)
            .field("role", &*self.role.borrow())
            .finish()
    }
}

/// Unix time in ms.
pub(crate) fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// Tempest's version, as Nimbus reports it.
pub(crate) const VERSION: &str = env!("CARGO_PKG_VERSION");

impl Leadership {
    /// A Nimbus that always leads (the embedded store).
    pub(crate) fn sole(me: NimbusInfo) -> Self {
        let (tx, role) = watch::channel(Role::Leader);
        // Nothing ever changes the role; the receiver keeps its last value.
        drop(tx);
        Leadership {
            me,
            started_ms: now_ms(),
            role,
            directory: None,
        }
    }

    #[cfg_attr(not(feature = "etcd"), allow(dead_code))]
    /// A Nimbus whose role an election sets through the returned sender (it starts as a
    /// follower that knows no leader).
    pub(crate) fn elected(
        me: NimbusInfo,
        directory: Arc<dyn Directory>,
    ) -> (Self, watch::Sender<Role>) {
        let (tx, role) = watch::channel(Role::Follower(None));
        (
            Leadership {
                me,
                started_ms: now_ms(),
                role,
                directory: Some(directory),
            },
            tx,
        )
    }

    /// This Nimbus.
    #[cfg_attr(not(feature = "etcd"), allow(dead_code))]
    pub(crate) fn me(&self) -> &NimbusInfo {
        &self.me
    }

    /// Whether it leads now.
    pub(crate) fn is_leader(&self) -> bool {
        *self.role.borrow() == Role::Leader
    }

    /// The leader as far as this Nimbus knows.
    pub(crate) fn leader(&self) -> Option<NimbusInfo> {
        match &*self.role.borrow() {
            Role::Leader => Some(self.me.clone()),
            Role::Follower(leader) => leader.clone(),
        }
    }

    /// Every Nimbus with its status: etcd's registry, or this one alone.
    pub(crate) async fn nimbus_hosts(&self) -> Vec<NimbusHost> {
        let me = self.me_host();
        let Some(directory) = &self.directory else {
            return vec![me];
        };
        match directory.nimbuses().await {
            Ok(list) if !list.is_empty() => list,
            Ok(_) => vec![me],
            Err(e) => {
                tracing::warn!("cannot list the Nimbus hosts from etcd: {e}");
                vec![me]
            }
        }
    }

    fn me_host(&self) -> NimbusHost {
        NimbusHost {
            id: self.me.id.clone(),
            url: self.me.url.clone(),
            status: if self.is_leader() {
                "Leader"
            } else {
                "Not a Leader"
            }
            .into(),
            uptime_secs: now_ms().saturating_sub(self.started_ms) / 1000,
            version: VERSION.into(),
        }
    }

    /// `GET /api/v1/leader`.
    pub(crate) async fn answer(&self) -> LeaderAnswer {
        let nimbuses = self.nimbus_hosts().await;
        LeaderAnswer {
            leader: self.leader(),
            me: self.me.clone(),
            is_leader: self.is_leader(),
            nimbuses,
        }
    }

    /// The 503 a follower answers with: the leader's URL in the body and the header.
    pub(crate) fn refusal(&self) -> Response {
        let leader = self.leader().map(|l| l.url);
        let error = match &leader {
            Some(url) => format!("not the leader; the leader is {url}"),
            None => "not the leader; the leader is not known yet (an election is under way), try again shortly".to_string(),
        };
        let body = serde_json::json!({ "error": error, "leader": leader });
        let mut resp = (StatusCode::SERVICE_UNAVAILABLE, Json(body)).into_response();
        if let Some(value) = leader.and_then(|url| HeaderValue::from_str(&url).ok()) {
            resp.headers_mut().insert(LEADER_HEADER, value);
        }
        resp
    }
}
