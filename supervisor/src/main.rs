//! The `supervisor` daemon: reads its config, then runs until SIGINT or SIGTERM.

use anyhow::Context;
use clap::Parser;
use std::path::PathBuf;
use supervisor::{ConfigOverrides, SupervisorConfig};
use topology_api::control::{NIMBUS_ENV, SECRET_ENV};

/// Tempest supervisor: runs the workers Nimbus assigns to this node.
#[derive(Debug, Parser)]
#[command(version)]
struct Args {
    /// TOML config file (its `[supervisor]` section and top-level `secret`).
    #[arg(long)]
    config: Option<PathBuf>,
    /// Nimbus URL [default: $TEMPEST_NIMBUS, then the file, then http://127.0.0.1:6627].
    #[arg(long)]
    nimbus: Option<String>,
    /// Data directory [default: ./tempest-data/supervisor].
    #[arg(long)]
    data_dir: Option<PathBuf>,
    /// Host name or address workers are reached at [default: 127.0.0.1].
    #[arg(long)]
    host: Option<String>,
    /// Slot ports, comma-separated [default: 6700,6701,6702,6703].
    #[arg(long, value_delimiter = ',')]
    slots: Option<Vec<u16>>,
    /// Seconds between heartbeats [default: 2].
    #[arg(long)]
    heartbeat_secs: Option<u64>,
    /// Fixed supervisor id [default: generated once, kept in <data-dir>/supervisor-id].
    #[arg(long)]
    id: Option<String>,
    /// Address of the worker-log HTTP server, ADDRESS:PORT or "off" [default: <host>:0, a port
    /// the OS picks, reported to Nimbus].
    #[arg(long)]
    http_listen: Option<String>,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .init();
    let args = Args::parse();
    let flags = ConfigOverrides {
        nimbus: args.nimbus,
        data_dir: args.data_dir,
        host: args.host,
        slots: args.slots,
        heartbeat_secs: args.heartbeat_secs,
        id: args.id,
        http_listen: args.http_listen,
    };
    let config = SupervisorConfig::load(
        args.config.as_deref(),
        flags,
        std::env::var(NIMBUS_ENV).ok(),
        std::env::var(SECRET_ENV).ok(),
    )?;
    supervisor::run(config, shutdown_signal())
        .await
        .context("supervisor failed")
}

/// Completes on SIGINT or SIGTERM.
async fn shutdown_signal() {
    let mut term = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
        Ok(s) => s,
        Err(e) => {
            tracing::warn!(error = %e, "cannot listen for SIGTERM; stopping on Ctrl-C only");
            let _ = tokio::signal::ctrl_c().await;
            return;
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
    tracing::info!("shutting down");
}
