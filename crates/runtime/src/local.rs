//! Local mode (Storm's LocalCluster): the whole topology in this process, through the same
//! executors, queues, groupings and acker that cluster workers use.

use crate::collector::TaskStats;
use crate::executor::TaskReport;
#[cfg(feature = "ui")]
use crate::local_ui::LocalUi;
use crate::topology::Topology;
use crate::worker::{run_executors, RunError};
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tempest_protocol::spec::plan_executors;
use tempest_protocol::spec::TaskLayout;
use tempest_protocol::status::TopologyStatus;
use tokio::sync::watch;

/// How long local mode runs, and whether it serves the web UI.
#[derive(Debug, Clone, Default)]
pub struct LocalOptions {
    /// Stop after this long (spouts are deactivated and closed, queued tuples drain).
    /// Without it, run until Ctrl-C or until every finite spout is finished and every tree done.
    pub duration: Option<Duration>,
    /// Stop on Ctrl-C (the `local` command sets this).
    pub stop_on_ctrl_c: bool,
    /// Serve the web UI and the monitoring REST API (as Nimbus does) on this address while the
    /// topology runs; port 0 picks a free port (the log says which).
    pub ui: Option<SocketAddr>,
}

/// What a local run did.
#[derive(Debug, Clone)]
pub struct LocalReport {
    /// Per-task counters and errors.
    pub tasks: Vec<TaskReport>,
    /// Wall time of the run.
    pub elapsed: Duration,
}

impl LocalReport {
    /// A report of nothing (for modes that run no topology here).
    pub fn empty() -> Self {
        LocalReport {
            tasks: Vec::new(),
            elapsed: Duration::ZERO,
        }
    }

    /// Counters summed per component.
    pub fn by_component(&self) -> BTreeMap<String, TaskStats> {
        let mut m: BTreeMap<String, TaskStats> = BTreeMap::new();
        for t in &self.tasks {
            let s = m.entry(t.component.clone()).or_default();
            s.emitted += t.stats.emitted;
            s.transferred += t.stats.transferred;
            s.acked += t.stats.acked;
            s.failed += t.stats.failed;
            s.executed += t.stats.executed;
            s.failures = s.failures.plus(t.stats.failures);
        }
        m
    }

    /// A table of the per-component counters, for printing at the end of a run.
    pub fn summary(&self) -> String {
        let mut out = format!(
            "{:<20} {:>12} {:>12} {:>12} {:>12} {:>10}\n",
            "component", "emitted", "executed", "acked", "failed", "errors"
        );
        let errors: BTreeMap<&str, usize> = self.tasks.iter().fold(BTreeMap::new(), |mut m, t| {
            *m.entry(t.component.as_str()).or_default() += t.errors.len();
            m
        });
        for (c, s) in self.by_component() {
            out += &format!(
                "{:<20} {:>12} {:>12} {:>12} {:>12} {:>10}\n",
                c,
                s.emitted,
                s.executed,
                s.acked,
                s.failed,
                errors.get(c.as_str()).copied().unwrap_or(0)
            );
        }
        out
    }
}

/// Runs `topology` in this process until it ends (see [`LocalOptions`]).
pub async fn run_local(topology: &Topology, opts: LocalOptions) -> Result<LocalReport, RunError> {
    let start = Instant::now();
    let layout = TaskLayout::of(&topology.spec);
    let plans = plan_executors(&topology.spec, &layout);
    let status = Arc::new(watch::channel(TopologyStatus::Active).0);
    let stopper = {
        let status = status.clone();
        tokio::spawn(async move {
            let deadline = async {
                match opts.duration {
                    Some(d) => tokio::time::sleep(d).await,
                    None => std::future::pending().await,
                }
            };
            let ctrl_c = async {
                if opts.stop_on_ctrl_c && tokio::signal::ctrl_c().await.is_ok() {
                    tracing::info!("Ctrl-C: stopping spouts, draining bolts");
                } else {
                    std::future::pending::<()>().await
                }
            };
            tokio::select! {
                _ = deadline => {}
                _ = ctrl_c => {}
            }
            status.send_replace(TopologyStatus::Killed);
        })
    };
    #[cfg(feature = "ui")]
    let ui = match opts.ui {
        Some(addr) => {
            let ui = LocalUi::start(addr, &topology.spec, plans.clone(), status.clone())
                .await
                .map_err(|e| {
                    stopper.abort();
                    RunError::Ui(format!("cannot serve the web UI on {addr}: {e}"))
                })?;
            tracing::info!("web UI at {}", ui.topology_url(&topology.spec.name));
            Some(ui)
        }
        None => None,
    };
    #[cfg(feature = "ui")]
    let board = ui.as_ref().map(LocalUi::board);
    #[cfg(not(feature = "ui"))]
    let board = match opts.ui {
        Some(addr) => {
            stopper.abort();
            return Err(RunError::Ui(format!(
                "cannot serve the web UI on {addr}: this binary was built without topology-api's \"ui\" feature"
            )));
        }
        None => None,
    };
    let result = run_executors(topology, plans, status, board).await;
    stopper.abort();
    #[cfg(feature = "ui")]
    if let Some(ui) = ui {
        ui.stop().await;
    }
    Ok(LocalReport {
        tasks: result?,
        elapsed: start.elapsed(),
    })
}

/// Runs `topology` locally on a new multi-threaded runtime (one worker thread per core).
pub fn run_local_blocking(
    topology: &Topology,
    opts: LocalOptions,
) -> Result<LocalReport, RunError> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| RunError::Crashed(format!("cannot start the runtime: {e}")))?
        .block_on(run_local(topology, opts))
}
