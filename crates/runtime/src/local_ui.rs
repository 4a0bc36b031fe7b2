//! The [`Monitor`] of a local run (`local --ui PORT`): one topology in this process, shown as a
//! cluster of one supervisor with one worker, its metrics sampled from the process's
//! [`MetricsBoard`] every second. Activate, deactivate and kill act on the run; rebalance is
//! refused (a local run's executors are fixed).

use crate::metrics::MetricsBoard;
use axum::response::Response;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use tempest_monitor::http::ApiError;
use tempest_monitor::{
    prometheus_text, MetricsHistory, Monitor, NimbusRole, NimbusStatus, Snapshot, TopologyMetrics,
};
use tempest_protocol::control::stats::{pretty_duration, ComponentPage, Window};
use tempest_protocol::control::{
    ActionResponse, Assignment, ClusterSummary, RebalanceRequest, SupervisorList,
    SupervisorSummary, TopologyDetails, TopologyList, TopologyState, TopologySummary,
    WorkerHeartbeat, WorkerSlot,
};
use tempest_protocol::spec::ExecutorPlan;
use tempest_protocol::spec::{TaskLayout, TopologySpec};
use tempest_protocol::status::TopologyStatus;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

/// The host and supervisor id local mode reports.
const LOCAL_HOST: &str = "localhost";

/// A local run as the monitoring API shows it.
#[derive(Debug)]
struct LocalMonitor {
    assignment: Assignment,
    layout: TaskLayout,
    started: Instant,
    state: Mutex<TopologyState>,
    status: Arc<watch::Sender<TopologyStatus>>,
    board: Arc<MetricsBoard>,
    history: Mutex<MetricsHistory>,
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

impl LocalMonitor {
    /// The monitor of a run of `spec` by the executors `plans`, steered through `status`, with
    /// metrics published to `board`. `port` is where the UI is served (shown as the worker's
    /// port).
    fn new(
        spec: &TopologySpec,
        plans: Vec<ExecutorPlan>,
        status: Arc<watch::Sender<TopologyStatus>>,
        board: Arc<MetricsBoard>,
        port: u16,
    ) -> Self {
        let assignment = Assignment {
            topology: spec.name.clone(),
            version: 1,
            artifact: String::new(),
            spec: spec.clone(),
            workers: vec![WorkerSlot {
                supervisor: LOCAL_HOST.into(),
                host: LOCAL_HOST.into(),
                port,
                executors: plans,
            }],
        };
        LocalMonitor {
            layout: TaskLayout::of(spec),
            assignment,
            started: Instant::now(),
            state: Mutex::new(TopologyState::Active),
            status,
            board,
            history: Mutex::new(MetricsHistory::default()),
        }
    }

    /// Adds the board's current metrics to the history.
    fn sample(&self) {
        let worker = &self.assignment.workers[0];
        let hb = WorkerHeartbeat {
            rollback: false,
            topology: self.name().to_string(),
            host: worker.host.clone(),
            port: worker.port,
            version: self.assignment.version,
            tasks: self.board.snapshot(),
        };
        self.history()
            .record_worker(hb, self.layout.max_task(), true, now_ms());
    }

    /// Samples every second until `stop` is cancelled.
    async fn sample_every_second(&self, stop: CancellationToken) {
        let mut every = tokio::time::interval(Duration::from_secs(1));
        loop {
            tokio::select! {
                _ = every.tick() => self.sample(),
                () = stop.cancelled() => return,
            }
        }
    }

    fn name(&self) -> &str {
        &self.assignment.topology
    }

    fn spec(&self) -> &TopologySpec {
        &self.assignment.spec
    }

    /// The state the API reports: KILLED once the run is stopping, however it was stopped
    /// (kill, Ctrl-C, `--duration`, a failed executor).
    fn state(&self) -> TopologyState {
        if *self.status.borrow() == TopologyStatus::Killed {
            return TopologyState::Killed;
        }
        *self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Moves the run to `next`, its spouts to `status`; 409 once it is being killed or is
    /// stopping (a stopping run never starts its spouts again).
    fn transition(
        &self,
        name: &str,
        next: TopologyState,
        status: TopologyStatus,
    ) -> Result<(), ApiError> {
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        let mut stopping = *state == TopologyState::Killed;
        self.status.send_if_modified(|s| {
            stopping |= *s == TopologyStatus::Killed;
            if stopping || *s == status {
                return false;
            }
            *s = status;
            true
        });
        if stopping {
            return Err(ApiError::conflict(format!(
                "topology {name:?} is being killed or is stopping"
            )));
        }
        *state = next;
        Ok(())
    }

    fn history(&self) -> MutexGuard<'_, MetricsHistory> {
        self.history.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn uptime_secs(&self) -> u64 {
        self.started.elapsed().as_secs()
    }

    fn executors(&self) -> u32 {
        self.assignment.workers[0].executors.len() as u32
    }

    /// 404 unless `name` is this run's topology.
    fn check(&self, name: &str) -> Result<(), ApiError> {
        if name == self.name() {
            Ok(())
        } else {
            Err(ApiError::not_found(format!(
                "topology {name:?} is not running here; this local run runs {:?}",
                self.name()
            )))
        }
    }

    fn summary(&self) -> TopologySummary {
        TopologySummary {
            id: self.name().to_string(),
            name: self.name().to_string(),
            status: self.state(),
            uptime_seconds: self.uptime_secs(),
            uptime: pretty_duration(self.uptime_secs()),
            workers_total: 1,
            executors_total: self.executors(),
            tasks_total: self.layout.max_task(),
            requested_workers: 1,
            scheduler_info: "local mode: every task runs in this process".into(),
        }
    }

    /// Runs `f` on the history with a snapshot of the topology.
    fn with_snapshot<T>(&self, f: impl FnOnce(&Snapshot<'_>) -> T) -> T {
        let history = self.history();
        let empty = Default::default();
        let snapshot = Snapshot {
            name: self.name(),
            state: self.state(),
            spec: self.spec(),
            layout: self.layout.clone(),
            assignment: Some(&self.assignment),
            tasks: history.tasks(self.name()).unwrap_or(&empty),
            worker_seen: HashMap::from([(
                (LOCAL_HOST.to_string(), self.assignment.workers[0].port),
                0,
            )]),
            now_ms: now_ms(),
        };
        f(&snapshot)
    }

    fn answer(&self, message: impl Into<String>) -> ActionResponse {
        ActionResponse {
            name: self.name().to_string(),
            state: self.state(),
            message: message.into(),
        }
    }
}

/// The web UI and REST API of a local run, served until [`LocalUi::stop`].
#[derive(Debug)]
pub(crate) struct LocalUi {
    addr: SocketAddr,
    board: Arc<MetricsBoard>,
    stop: CancellationToken,
    server: JoinHandle<std::io::Result<()>>,
    sampler: JoinHandle<()>,
}

impl LocalUi {
    /// Serves the UI and API of a run of `spec` by the executors `plans`, steered through
    /// `status`, on `addr` (port 0 picks a free port). The executors must publish their metrics
    /// to [`LocalUi::board`].
    pub(crate) async fn start(
        addr: SocketAddr,
        spec: &TopologySpec,
        plans: Vec<ExecutorPlan>,
        status: Arc<watch::Sender<TopologyStatus>>,
    ) -> std::io::Result<Self> {
        let listener = TcpListener::bind(addr).await?;
        let addr = listener.local_addr()?;
        let board = Arc::new(MetricsBoard::default());
        let monitor = Arc::new(LocalMonitor::new(
            spec,
            plans,
            status,
            board.clone(),
            addr.port(),
        ));
        let app = tempest_monitor::http::routes(monitor.clone())
            .merge(tempest_monitor::ui_routes())
            .fallback(tempest_monitor::http::no_such_endpoint)
            .method_not_allowed_fallback(tempest_monitor::http::method_not_allowed)
            .layer(axum::middleware::from_fn(
                tempest_monitor::storm::conventions,
            ));
        let stop = CancellationToken::new();
        let shutdown = stop.clone().cancelled_owned();
        let server = tokio::spawn(async move {
            axum::serve(listener, app)
                .with_graceful_shutdown(shutdown)
                .await
        });
        let sampler = {
            let stop = stop.clone();
            tokio::spawn(async move { monitor.sample_every_second(stop).await })
        };
        Ok(LocalUi {
            addr,
            board,
            stop,
            server,
            sampler,
        })
    }

    /// Where the executors publish their metrics.
    pub(crate) fn board(&self) -> Arc<MetricsBoard> {
        self.board.clone()
    }

    /// The URL of `topology`'s page.
    pub(crate) fn topology_url(&self, topology: &str) -> String {
        format!(
            "http://{}{}",
            self.addr,
            tempest_monitor::topology_page(topology)
        )
    }

    /// Stops serving (requests in progress finish).
    pub(crate) async fn stop(self) {
        self.stop.cancel();
        let _ = self.sampler.await;
        match self.server.await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => tracing::warn!("the web UI server failed: {e}"),
            Err(e) => tracing::warn!("the web UI server crashed: {e}"),
        }
    }
}

#[async_trait::async_trait]
impl Monitor for LocalMonitor {
    /// This process, the one "Nimbus" of a local run.
    async fn nimbuses(&self) -> Vec<NimbusStatus> {
        vec![NimbusStatus {
            host: LOCAL_HOST.into(),
            port: self.assignment.workers[0].port,
            role: NimbusRole::Leader,
            uptime_secs: Some(self.uptime_secs()),
        }]
    }

    /// The topology defaults and the UI's port under Storm's names.
    async fn cluster_configuration(&self) -> serde_json::Map<String, serde_json::Value> {
        let mut conf = tempest_monitor::storm::defaults();
        conf.insert("nimbus.seeds".into(), serde_json::json!([LOCAL_HOST]));
        conf.insert(
            "ui.port".into(),
            serde_json::json!(self.assignment.workers[0].port),
        );
        conf.insert("ui.pagination".into(), serde_json::json!(20));
        conf.insert("storm.cluster.mode".into(), serde_json::json!("local"));
        conf.insert(
            "topology.eventlogger.executors".into(),
            serde_json::json!(0),
        );
        conf
    }

    async fn cluster_summary(&self) -> ClusterSummary {
        ClusterSummary {
            supervisors: 1,
            slots_total: 1,
            slots_used: 1,
            slots_free: 0,
            topologies: 1,
            nimbus_uptime_seconds: self.uptime_secs(),
            nimbus_uptime: pretty_duration(self.uptime_secs()),
            executors_total: self.executors(),
            tasks_total: self.layout.max_task(),
            tempest_version: env!("CARGO_PKG_VERSION").to_string(),
        }
    }

    async fn supervisors(&self) -> SupervisorList {
        SupervisorList {
            supervisors: vec![SupervisorSummary {
                id: LOCAL_HOST.into(),
                host: LOCAL_HOST.into(),
                uptime_seconds: self.uptime_secs(),
                uptime: pretty_duration(self.uptime_secs()),
                slots_total: 1,
                slots_used: 1,
                last_heartbeat_secs: 0,
                alive: true,
                http: None,
            }],
        }
    }

    async fn topologies(&self) -> TopologyList {
        TopologyList {
            topologies: vec![self.summary()],
        }
    }

    async fn topology(
        &self,
        name: &str,
        window: Window,
        sys: bool,
    ) -> Result<TopologyDetails, ApiError> {
        self.check(name)?;
        Ok(self.with_snapshot(|s| s.details(self.summary(), window, sys)))
    }

    async fn component(
        &self,
        name: &str,
        component: &str,
        window: Window,
    ) -> Result<ComponentPage, ApiError> {
        self.check(name)?;
        self.with_snapshot(|s| s.component(component, window))
    }

    async fn worker_log(
        &self,
        name: &str,
        _host: &str,
        _port: u16,
        _range: &[(&str, String)],
    ) -> Result<Response, ApiError> {
        self.check(name)?;
        Err(ApiError::not_found(
            "local mode keeps no worker log files: the log goes to the terminal (stderr) \
             of the process running the topology",
        ))
    }

    async fn prometheus_text(&self) -> Result<String, ApiError> {
        let summary = self.cluster_summary().await;
        let history = self.history();
        let topology = TopologyMetrics {
            name: self.name(),
            state: self.state(),
            workers: 1,
            tasks: history.tasks(self.name()),
        };
        prometheus_text(&summary, &[topology], now_ms()).map_err(ApiError::internal)
    }

    async fn set_active(&self, name: &str, active: bool) -> Result<ActionResponse, ApiError> {
        self.check(name)?;
        if active {
            self.transition(name, TopologyState::Active, TopologyStatus::Active)?;
        } else {
            self.transition(name, TopologyState::Inactive, TopologyStatus::Inactive)?;
        }
        let what = if active { "activated" } else { "deactivated" };
        tracing::info!(topology = name, "{what} through the web UI / REST API");
        Ok(self.answer(format!(
            "{what}: spouts {}",
            if active { "emit" } else { "are paused" }
        )))
    }

    async fn kill(&self, name: &str, wait_secs: u64) -> Result<ActionResponse, ApiError> {
        self.check(name)?;
        self.transition(name, TopologyState::Killed, TopologyStatus::Inactive)?;
        tracing::info!(
            topology = name,
            wait_secs,
            "killed through the web UI / REST API: spouts stop now, the run ends after the wait"
        );
        let status = self.status.clone();
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_secs(wait_secs)).await;
            status.send_replace(TopologyStatus::Killed);
        });
        Ok(self.answer(format!(
            "spouts are deactivated; the run ends in {wait_secs}s"
        )))
    }

    async fn rebalance(
        &self,
        name: &str,
        _wait_secs: u64,
        _req: RebalanceRequest,
    ) -> Result<ActionResponse, ApiError> {
        self.check(name)?;
        Err(ApiError::bad_request(
            "local mode cannot rebalance: a local run's executors are fixed; submit the \
             topology to a cluster to rebalance it",
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tempest_protocol::config::Config;
    use tempest_protocol::spec::{ComponentKind, ComponentSpec, StreamSpec};

    fn monitor() -> LocalMonitor {
        let spec = TopologySpec {
            name: "t".into(),
            config: Config::new(),
            components: vec![ComponentSpec {
                id: "s".into(),
                kind: ComponentKind::Spout,
                parallelism: 1,
                num_tasks: 1,
                streams: [(
                    "default".to_string(),
                    StreamSpec {
                        fields: vec!["n".into()],
                        direct: false,
                    },
                )]
                .into(),
                inputs: vec![],
                config: Config::new(),
            }],
        };
        let plans = tempest_protocol::spec::plan_executors(&spec, &TaskLayout::of(&spec));
        let status = Arc::new(watch::channel(TopologyStatus::Active).0);
        LocalMonitor::new(&spec, plans, status, Arc::default(), 8080)
    }

    #[tokio::test]
    async fn a_stopping_run_never_starts_its_spouts_again() {
        let m = monitor();
        let answer = m.set_active("t", false).await.expect("deactivate");
        assert_eq!(answer.state, TopologyState::Inactive);
        assert_eq!(*m.status.borrow(), TopologyStatus::Inactive);
        // Ctrl-C or --duration stops the run: activate must not undo it.
        m.status.send_replace(TopologyStatus::Killed);
        let refused = m.set_active("t", true).await.expect_err("refused");
        assert_eq!(
            refused.status,
            axum::http::StatusCode::CONFLICT,
            "{refused:?}"
        );
        assert!(m.kill("t", 0).await.is_err(), "already stopping");
        assert_eq!(*m.status.borrow(), TopologyStatus::Killed);
        assert_eq!(
            m.topologies().await.topologies[0].status,
            TopologyState::Killed
        );
    }

    #[tokio::test]
    async fn kill_pauses_the_spouts_then_stops_the_run() {
        let m = monitor();
        let answer = m.kill("t", 0).await.expect("kill");
        assert_eq!(answer.state, TopologyState::Killed);
        let mut status = m.status.subscribe();
        status
            .wait_for(|s| *s == TopologyStatus::Killed)
            .await
            .expect("the run is stopped");
        assert!(
            m.set_active("t", true).await.is_err(),
            "a killed run stays killed"
        );
        assert_eq!(
            m.rebalance("t", 0, Default::default())
                .await
                .unwrap_err()
                .status,
            400
        );
        assert_eq!(
            m.topology("x", Window::AllTime, false)
                .await
                .unwrap_err()
                .status,
            404
        );
    }
}
