//! # tempest-monitor: what you watch a topology with
//!
//! The REST API of Storm's UI, `/metrics` (Prometheus) and the web UI, over any [`Monitor`].
//! Nimbus serves them for its cluster; local mode serves them for its one topology when run
//! with `local --ui PORT`. Both build their answers from the same pieces: a bounded per-task
//! [`MetricsHistory`] fed with task metrics, and a [`Snapshot`] of one topology that turns it
//! into the views of `docs/design/rest-api.md`.

mod assets;
mod graph_rates;
mod history;
pub mod http;
mod prometheus;
pub mod storm;
mod view;

pub use assets::routes as ui_routes;
pub use history::{MetricsHistory, TaskHistory};
pub use prometheus::{encode as prometheus_text, TopologyMetrics};
pub use view::{topology_page, Snapshot};

use axum::response::Response;
use http::ApiError;
use tempest_protocol::control::stats::{ComponentPage, Window};
use tempest_protocol::control::{
    ActionResponse, ClusterSummary, RebalanceRequest, SupervisorList, TopologyDetails, TopologyList,
};

/// Whether a Nimbus leads the cluster, as `/api/v1/nimbus/summary` says it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NimbusRole {
    /// It leads ("Leader").
    Leader,
    /// It is up and follows ("Not a Leader").
    Follower,
    /// It does not answer ("Offline").
    Offline,
}

impl NimbusRole {
    /// Storm's `status` text.
    pub fn as_storm(self) -> &'static str {
        match self {
            NimbusRole::Leader => "Leader",
            NimbusRole::Follower => "Not a Leader",
            NimbusRole::Offline => "Offline",
        }
    }
}

/// One Nimbus host of the cluster, for `/api/v1/nimbus/summary`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NimbusStatus {
    /// Its host.
    pub host: String,
    /// Its API port.
    pub port: u16,
    /// Whether it leads.
    pub role: NimbusRole,
    /// Seconds since it started; `None` when it is offline (Storm: "Not applicable").
    pub uptime_secs: Option<u64>,
}

/// What the monitoring API ([`http::routes`]) asks of the server behind it. Names are topology
/// names (their ids); an unknown one is a 404 naming it.
#[async_trait::async_trait]
pub trait Monitor: Send + Sync + 'static {
    /// `GET /api/v1/cluster/summary`.
    async fn cluster_summary(&self) -> ClusterSummary;
    /// `GET /api/v1/nimbus/summary`: every Nimbus host of the cluster, leader or not, and
    /// whether each is up. A single Nimbus (and local mode) is one `Leader`.
    async fn nimbuses(&self) -> Vec<NimbusStatus>;
    /// `GET /api/v1/cluster/configuration`: the daemon's effective configuration under
    /// Storm's dotted keys.
    async fn cluster_configuration(&self) -> serde_json::Map<String, serde_json::Value>;
    /// `GET /api/v1/supervisor/summary`.
    async fn supervisors(&self) -> SupervisorList;
    /// `GET /api/v1/topology/summary`.
    async fn topologies(&self) -> TopologyList;
    /// `GET /api/v1/topology/{name}?window=&sys=`.
    async fn topology(
        &self,
        name: &str,
        window: Window,
        sys: bool,
    ) -> Result<TopologyDetails, ApiError>;
    /// `GET /api/v1/topology/{name}/component/{component}?window=`.
    async fn component(
        &self,
        name: &str,
        component: &str,
        window: Window,
    ) -> Result<ComponentPage, ApiError>;
    /// `GET /api/v1/topology/{name}/worker-log/{host}/{port}`, with the `start` and `length`
    /// query parameters given.
    async fn worker_log(
        &self,
        name: &str,
        host: &str,
        port: u16,
        range: &[(&str, String)],
    ) -> Result<Response, ApiError>;
    /// `GET /metrics`: the Prometheus text.
    async fn prometheus_text(&self) -> Result<String, ApiError>;
    /// `POST /api/v1/topology/{name}/activate` (`active`) or `.../deactivate`.
    async fn set_active(&self, name: &str, active: bool) -> Result<ActionResponse, ApiError>;
    /// `POST /api/v1/topology/{name}/kill/{wait_secs}`.
    async fn kill(&self, name: &str, wait_secs: u64) -> Result<ActionResponse, ApiError>;
    /// `POST /api/v1/topology/{name}/rebalance/{wait_secs}`.
    async fn rebalance(
        &self,
        name: &str,
        wait_secs: u64,
        req: RebalanceRequest,
    ) -> Result<ActionResponse, ApiError>;
}
