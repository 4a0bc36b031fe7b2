//! The `nimbus` daemon: reads its config (file, then flags; the secret from `TEMPEST_SECRET` or
//! the file) and serves until Ctrl-C or SIGTERM.

use anyhow::Context;
use clap::Parser;
use nimbus::NimbusConfig;
use std::net::SocketAddr;
use std::path::PathBuf;

/// Tempest's master: REST API, scheduler, state and artifact stores.
#[derive(Debug, Parser)]
#[command(version, about)]
struct Args {
    /// The shared TOML config file (its [nimbus] section and top-level `secret`).
    #[arg(long)]
    config: Option<PathBuf>,
    /// Address to listen on [default: 127.0.0.1:6627].
    #[arg(long)]
    listen: Option<SocketAddr>,
    /// Directory of the state store and artifacts [default: ./tempest-data/nimbus].
    #[arg(long)]
    data_dir: Option<PathBuf>,
    /// Seconds without heartbeat after which a supervisor is dead [default: 15].
    #[arg(long)]
    supervisor_timeout_secs: Option<u64>,
    /// Seconds without heartbeat after which a worker slot is dead [default: 30].
    #[arg(long)]
    worker_timeout_secs: Option<u64>,
    /// Largest accepted topology binary, in MiB [default: 512].
    #[arg(long)]
    max_upload_mb: Option<u64>,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    topology_api::entry::init_tracing();
    let args = Args::parse();
    let mut config = NimbusConfig::load(args.config.as_deref())?;
    config.listen = args.listen.unwrap_or(config.listen);
    config.data_dir = args.data_dir.unwrap_or(config.data_dir);
    config.supervisor_timeout_secs = args
        .supervisor_timeout_secs
        .unwrap_or(config.supervisor_timeout_secs);
    config.worker_timeout_secs = args
        .worker_timeout_secs
        .unwrap_or(config.worker_timeout_secs);
    config.max_upload_mb = args.max_upload_mb.unwrap_or(config.max_upload_mb);
    let listener = tokio::net::TcpListener::bind(config.listen)
        .await
        .with_context(|| format!("cannot listen on {}", config.listen))?;
    let nimbus = nimbus::serve(listener, config).await?;
    nimbus.run_until(shutdown_signal()).await?;
    Ok(())
}

/// Ctrl-C or SIGTERM.
async fn shutdown_signal() {
    let ctrl_c = async {
        if let Err(e) = tokio::signal::ctrl_c().await {
            tracing::error!("cannot listen for Ctrl-C: {e}");
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(e) => {
                tracing::error!("cannot listen for SIGTERM: {e}");
                std::future::pending::<()>().await;
            }
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {}
        () = term => {}
    }
}
