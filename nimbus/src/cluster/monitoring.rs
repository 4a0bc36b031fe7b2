//! The monitoring REST API's answers for the cluster: Nimbus as a [`Monitor`].

use super::{checked_name, Cluster, Core};
use crate::state::{self, TopologyRecord};
use axum::response::Response;
use std::collections::{BTreeMap, HashMap};
use tempest_monitor::http::ApiError;
use tempest_monitor::{
    prometheus_text, MetricsHistory, Monitor, NimbusRole, NimbusStatus, Snapshot, TaskHistory,
    TopologyMetrics,
};
use tempest_protocol::control::stats::{pretty_duration, ComponentPage, Window};
use tempest_protocol::control::{
    ActionResponse, ClusterSummary, RebalanceRequest, SupervisorList, TopologyDetails, TopologyList,
};
use tempest_protocol::spec::TaskLayout;
use tokio::time::Instant;

/// The histories of a topology no task of which has reported yet.
static EMPTY: BTreeMap<u32, TaskHistory> = BTreeMap::new();

impl Cluster {
    /// `rec` as the views need it.
    fn snapshot<'a>(
        &self,
        core: &'a Core,
        rec: &'a TopologyRecord,
        metrics: &'a MetricsHistory,
    ) -> Snapshot<'a> {
        let assignment = core.durable.assignments.get(&rec.name);
        Snapshot {
            name: &rec.name,
            state: rec.state,
            spec: &rec.spec,
            layout: TaskLayout::of(&rec.spec),
            assignment,
            tasks: metrics.tasks(&rec.name).unwrap_or(&EMPTY),
            worker_seen: self.worker_seen(&rec.name, assignment),
            now_ms: self.clock.now_ms(),
        }
    }
}

#[async_trait::async_trait]
impl Monitor for Cluster {
    /// `GET /api/v1/nimbus/summary`: every Nimbus of the cluster (with etcd: its registry;
    /// else this one, the leader).
    async fn nimbuses(&self) -> Vec<NimbusStatus> {
        let addr = self
            .address
            .get()
            .copied()
            .unwrap_or_else(|| std::net::SocketAddr::from(([127, 0, 0, 1], 0)));
        self.nimbus_hosts()
            .await
            .into_iter()
            .map(|h| {
                let authority = h.url.split_once("://").map_or(h.url.as_str(), |(_, a)| a);
                let (host, port) = match authority.rsplit_once(':') {
                    Some((host, port)) => (host.to_string(), port.parse().unwrap_or(addr.port())),
                    None => (authority.to_string(), addr.port()),
                };
                let role = match h.status.as_str() {
                    "Leader" => NimbusRole::Leader,
                    "Offline" => NimbusRole::Offline,
                    _ => NimbusRole::Follower,
                };
                NimbusStatus {
                    host,
                    port,
                    role,
                    uptime_secs: (role != NimbusRole::Offline).then_some(h.uptime_secs),
                }
            })
            .collect()
    }

    /// `GET /api/v1/cluster/configuration`: the topology defaults and Nimbus's own settings
    /// under Storm's names.
    async fn cluster_configuration(&self) -> serde_json::Map<String, serde_json::Value> {
        let mut conf = tempest_monitor::storm::defaults();
        let nimbuses = self.nimbuses().await;
        let seeds: Vec<String> = nimbuses.iter().map(|n| n.host.clone()).collect();
        let port = nimbuses.first().map_or(0, |n| n.port);
        for (k, v) in [
            ("nimbus.seeds", serde_json::json!(seeds)),
            ("ui.port", serde_json::json!(port)),
            ("ui.pagination", serde_json::json!(20)),
            (
                "nimbus.supervisor.timeout.secs",
                serde_json::json!(self.timeouts.supervisor.as_secs()),
            ),
            (
                "nimbus.task.timeout.secs",
                serde_json::json!(self.timeouts.worker.as_secs()),
            ),
            ("topology.eventlogger.executors", serde_json::json!(0)),
        ] {
            conf.insert(k.to_string(), v);
        }
        conf
    }

    /// `GET /api/v1/cluster/summary`.
    async fn cluster_summary(&self) -> ClusterSummary {
        let list = self.supervisors().await;
        let topologies = self.core.read().await.durable.topologies.len() as u32;
        let live = list.supervisors.iter().filter(|s| s.alive);
        let (mut total, mut used, mut count) = (0, 0, 0);
        for s in live {
            count += 1;
            total += s.slots_total;
            used += s.slots_used.min(s.slots_total);
        }
        let (executors_total, tasks_total) = {
            let core = self.core.read().await;
            let executors = core
                .durable
                .assignments
                .values()
                .flat_map(|a| &a.workers)
                .map(|w| w.executors.len() as u32)
                .sum();
            let tasks = core
                .durable
                .topologies
                .values()
                .map(|r| TaskLayout::of(&r.spec).max_task())
                .sum();
            (executors, tasks)
        };
        let uptime = self.timeouts.started.elapsed().as_secs();
        ClusterSummary {
            supervisors: count,
            slots_total: total,
            slots_used: used,
            slots_free: total - used,
            topologies,
            nimbus_uptime_seconds: uptime,
            nimbus_uptime: pretty_duration(uptime),
            executors_total,
            tasks_total,
            tempest_version: env!("CARGO_PKG_VERSION").to_string(),
        }
    }

    /// `GET /api/v1/supervisor/summary`.
    async fn supervisors(&self) -> SupervisorList {
        let core = self.core.read().await;
        let mut used: HashMap<&str, u32> = HashMap::new();
        for a in core.durable.assignments.values() {
            for w in &a.workers {
                *used.entry(w.supervisor.as_str()).or_default() += 1;
            }
        }
        let supervisors = self.heartbeats().summaries(
            |id| used.get(id).copied().unwrap_or(0),
            Instant::now(),
            &self.liveness(),
        );
        SupervisorList { supervisors }
    }

    /// `GET /api/v1/topology/summary`.
    async fn topologies(&self) -> TopologyList {
        let core = self.core.read().await;
        TopologyList {
            topologies: core
                .durable
                .topologies
                .values()
                .map(|r| self.summary(&core, r))
                .collect(),
        }
    }

    /// `GET /api/v1/topology/{name}?window=&sys=`.
    async fn topology(
        &self,
        name: &str,
        window: Window,
        sys: bool,
    ) -> Result<TopologyDetails, ApiError> {
        checked_name(name)?;
        let core = self.core.read().await;
        let rec = core.record(name)?;
        let summary = self.summary(&core, rec);
        let metrics = self.metrics();
        Ok(self
            .snapshot(&core, rec, &metrics)
            .details(summary, window, sys))
    }

    /// `GET /api/v1/topology/{name}/component/{component}?window=`.
    async fn component(
        &self,
        name: &str,
        component: &str,
        window: Window,
    ) -> Result<ComponentPage, ApiError> {
        checked_name(name)?;
        let core = self.core.read().await;
        let rec = core.record(name)?;
        let metrics = self.metrics();
        self.snapshot(&core, rec, &metrics)
            .component(component, window)
    }

    /// `GET /api/v1/topology/{name}/worker-log/{host}/{port}`: fetched from the log server of
    /// the supervisor that offers the slot.
    async fn worker_log(
        &self,
        name: &str,
        host: &str,
        port: u16,
        range: &[(&str, String)],
    ) -> Result<Response, ApiError> {
        let base = self.log_server(name, host, port).await?;
        self.log_proxy
            .fetch(&base, &format!("{name}-{port}.log"), range)
            .await
    }

    /// `GET /metrics`: the Prometheus text of every task and the cluster.
    async fn prometheus_text(&self) -> Result<String, ApiError> {
        let summary = self.cluster_summary().await;
        let core = self.core.read().await;
        let now_ms = self.clock.now_ms();
        let metrics = self.metrics();
        let topologies: Vec<TopologyMetrics<'_>> = core
            .durable
            .topologies
            .values()
            .map(|rec| TopologyMetrics {
                name: &rec.name,
                state: rec.state,
                workers: core
                    .durable
                    .assignments
                    .get(&rec.name)
                    .map_or(0, |a| a.workers.len() as u32),
                tasks: metrics.tasks(&rec.name),
            })
            .collect();
        prometheus_text(&summary, &topologies, now_ms).map_err(ApiError::internal)
    }

    /// `POST /api/v1/topology/{name}/activate` and `.../deactivate`.
    async fn set_active(&self, name: &str, active: bool) -> Result<ActionResponse, ApiError> {
        self.transition(name, |rec, _| state::set_active(rec, active))
            .await
    }

    /// `POST /api/v1/topology/{name}/kill/{wait_secs}`.
    async fn kill(&self, name: &str, wait_secs: u64) -> Result<ActionResponse, ApiError> {
        let answer = self
            .transition(name, |rec, now| Ok(state::kill(rec, wait_secs, now)))
            .await?;
        if wait_secs == 0 {
            self.reconcile_now().await;
        }
        Ok(answer)
    }

    /// `POST /api/v1/topology/{name}/rebalance/{wait_secs}`.
    async fn rebalance(
        &self,
        name: &str,
        wait_secs: u64,
        req: RebalanceRequest,
    ) -> Result<ActionResponse, ApiError> {
        let answer = self
            .transition(name, |rec, now| {
                state::start_rebalance(rec, req, wait_secs, now)
            })
            .await?;
        if wait_secs > 0 {
            return Ok(answer);
        }
        self.reconcile_now().await;
        let core = self.core.read().await;
        Ok(match core.durable.topologies.get(name) {
            Some(rec) => ActionResponse {
                name: name.to_string(),
                state: rec.state,
                message: rec.scheduler_info.clone(),
            },
            None => answer,
        })
    }
}
