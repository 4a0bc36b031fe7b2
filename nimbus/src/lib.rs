//! # nimbus: the Tempest master daemon
//!
//! Serves the control-plane HTTP API (`docs/design/control-plane.md`): stores topology binaries
//! by sha256, keeps topologies and assignments in a durable store (embedded by default; in etcd
//! with several Nimbus hosts and one elected leader under the `etcd` feature,
//! `docs/design/nimbus-ha.md`), tracks supervisor and worker heartbeats, and schedules
//! topologies onto the supervisors' slots. It also serves
//! the monitoring REST API, `/metrics` and the worker-log proxy (`docs/design/rest-api.md`),
//! from a bounded history of the metrics workers send.
//!
//! [`serve`] starts it on a bound listener and returns a [`NimbusHandle`] to stop it:
//!
//! ```no_run
//! # async fn run() -> Result<(), nimbus::NimbusError> {
//! let config = nimbus::NimbusConfig::default();
//! let listener = tokio::net::TcpListener::bind(config.listen).await.expect("bind");
//! let nimbus = nimbus::serve(listener, config).await?;
//! println!("Nimbus at {}", nimbus.url());
//! nimbus.shutdown().await
//! # }
//! ```
#![warn(missing_docs, unreachable_pub)]

mod api;
mod artifacts;
mod audit;
mod authz;
mod clock;
mod cluster;
mod config;
mod error;
#[cfg(feature = "etcd")]
mod etcd;
mod heartbeat;
mod leadership;
mod log_proxy;
mod reconcile;
mod scheduler;
mod state;
pub mod store;

pub use clock::Clock;
pub use config::{ConfigError, NimbusConfig, StoreKind, UserEntry};
pub use error::NimbusError;
#[cfg(feature = "etcd")]
pub use etcd::store::EtcdStore;
pub use leadership::{LeaderAnswer, NimbusHost, NimbusInfo};
pub use tempest_protocol::control::ClusterSummary;

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

/// A running Nimbus: its address, and the way to stop it.
#[derive(Debug)]
pub struct NimbusHandle {
    addr: SocketAddr,
    cancel: CancellationToken,
    server: JoinHandle<std::io::Result<()>>,
    scheduler: JoinHandle<()>,
    /// The read-only listener (`ui_listen`), if on: its address and server.
    read_only: Option<(SocketAddr, JoinHandle<std::io::Result<()>>)>,
    /// The election and the binary replication (HA with etcd): stopped after the server, so a
    /// shutdown ends with the lease revoked.
    ha: Vec<JoinHandle<()>>,
}

/// Starts Nimbus on `listener` with `config` (its `listen` is not used): opens the data dir,
/// loads the state, and serves the API and the scheduler until the handle is shut down.
pub async fn serve(
    listener: TcpListener,
    config: NimbusConfig,
) -> Result<NimbusHandle, NimbusError> {
    serve_with_clock(listener, config, Clock::system()).await
}

/// [`serve`], with the metrics history stamped by `clock` (tests move it to check windows of
/// hours in an instant).
pub async fn serve_with_clock(
    listener: TcpListener,
    config: NimbusConfig,
    clock: Clock,
) -> Result<NimbusHandle, NimbusError> {
    config.validate()?;
    let addr = listener.local_addr().map_err(NimbusError::Server)?;
    // The address really bound (a port 0 becomes the one the OS picked), so the advertised URL
    // and this Nimbus's id name it.
    let mut config = config;
    config.listen = addr;
    let credentials = Arc::new(authz::Credentials::of(&config));
    if credentials.open() {
        tracing::warn!(
            "no cluster secret configured (TEMPEST_SECRET or `secret` in the config file): \
             anyone who can reach {addr} can submit and run code on this cluster"
        );
    }
    let me = leadership::NimbusInfo {
        id: config.nimbus_id(),
        url: config.advertised(),
    };
    std::fs::create_dir_all(&config.data_dir).map_err(|source| NimbusError::Io {
        path: config.data_dir.clone(),
        source,
    })?;
    let audit = Arc::new(
        audit::Audit::open(&config.data_dir)
            .await
            .map_err(|source| NimbusError::Io {
                path: config.data_dir.join(audit::AUDIT_FILE),
                source,
            })?,
    );
    if !config.users.is_empty() {
        tracing::info!(
            users = config.users.len(),
            "users and roles on: the cluster secret is admin, workers use a credential derived from it"
        );
    }
    let cancel = CancellationToken::new();
    let (cluster, ha) = match config.store {
        StoreKind::Embedded => {
            let path = config.data_dir.join("nimbus.redb");
            let store = tokio::task::spawn_blocking(move || store::EmbeddedStore::open(&path))
                .await
                .map_err(|e| NimbusError::Crashed("opening the state store", e.to_string()))?
                .map_err(|e| NimbusError::Store(e.to_string()))?;
            let durable = store::ClusterStore::load(&store)
                .await
                .map_err(|e| NimbusError::Store(e.to_string()))?;
            tracing::info!(
                store = %store::ClusterStore::describe(&store),
                topologies = durable.topologies.len(),
                assignments = durable.assignments.len(),
                "state loaded"
            );
            let leadership = Arc::new(leadership::Leadership::sole(me));
            let cluster =
                cluster::Cluster::open(&config, clock, Arc::new(store), durable, leadership)?;
            (Arc::new(cluster), Vec::new())
        }
        #[cfg(feature = "etcd")]
        StoreKind::Etcd => etcd::start(&config, clock, me, cancel.clone()).await?,
        #[cfg(not(feature = "etcd"))]
        StoreKind::Etcd => unreachable!("validate() refuses store = etcd without the feature"),
    };
    let _ = cluster.address.set(addr);
    let scheduler = tokio::spawn(cluster.clone().run_scheduler(cancel.clone()));
    let read_only = match config.ui_listen {
        Some(ui) => {
            let bound = match TcpListener::bind(ui).await {
                Ok(l) => l.local_addr().map(|a| (l, a)),
                Err(e) => Err(e),
            };
            let (listener, ui_addr) = bound.map_err(|e| {
                cancel.cancel();
                NimbusError::Server(e)
            })?;
            let app = api::read_only_router(cluster.clone());
            let stop = cancel.clone();
            tracing::info!(%ui_addr, "read-only monitoring listener (no secret, GET only)");
            let server = tokio::spawn(async move {
                axum::serve(listener, app)
                    .with_graceful_shutdown(stop.cancelled_owned())
                    .await
            });
            Some((ui_addr, server))
        }
        None => None,
    };
    let gate = authz::Gate {
        credentials,
        cluster: cluster.clone(),
        audit,
    };
    let app = api::router(cluster, gate).into_make_service_with_connect_info::<SocketAddr>();
    let stop = cancel.clone();
    let server = tokio::spawn(async move {
        axum::serve(listener, app)
            .with_graceful_shutdown(stop.cancelled_owned())
            .await
    });
    tracing::info!(
        %addr,
        data_dir = %config.data_dir.display(),
        supervisor_timeout_secs = config.supervisor_timeout_secs,
        worker_timeout_secs = config.worker_timeout_secs,
        max_upload_mb = config.max_upload_mb,
        "nimbus listening"
    );
    Ok(NimbusHandle {
        addr,
        cancel,
        server,
        scheduler,
        read_only,
        ha,
    })
}

impl NimbusHandle {
    /// The address it listens on.
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// The address of the read-only listener (`ui_listen`), if it is on.
    pub fn ui_addr(&self) -> Option<SocketAddr> {
        self.read_only.as_ref().map(|(a, _)| *a)
    }

    /// Its base URL, `http://ADDR`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Stops it: no new connections; requests in progress finish; the scheduler stops; the
    /// state store is closed when this returns.
    pub async fn shutdown(self) -> Result<(), NimbusError> {
        self.cancel.cancel();
        let served = self.server.await;
        if let Some((_, read_only)) = self.read_only {
            if let Ok(Err(e)) = read_only.await {
                tracing::warn!("the read-only listener failed: {e}");
            }
        }
        let scheduled = self.scheduler.await;
        for task in self.ha {
            let _ = task.await;
        }
        tracing::info!("nimbus stopped");
        match served {
            Ok(result) => result.map_err(NimbusError::Server)?,
            Err(e) => return Err(NimbusError::Crashed("the HTTP server", e.to_string())),
        }
        scheduled.map_err(|e| NimbusError::Crashed("the scheduler", e.to_string()))
    }

    /// Serves until `signal` completes (then shuts down) or the server fails.
    pub async fn run_until(mut self, signal: impl Future<Output = ()>) -> Result<(), NimbusError> {
        tokio::select! {
            () = signal => {
                tracing::info!("shutting down");
                self.shutdown().await
            }
            served = &mut self.server => {
                self.cancel.cancel();
                let _ = self.scheduler.await;
                for task in self.ha {
                    let _ = task.await;
                }
                match served {
                    Ok(result) => result.map_err(NimbusError::Server),
                    Err(e) => Err(NimbusError::Crashed("the HTTP server", e.to_string())),
                }
            }
        }
    }
}
