//! The `nimbus` daemon: reads its config (defaults < file < `TEMPEST_NIMBUS_<KEY>` < flags; the
//! secret from `TEMPEST_SECRET` or the file) and serves until Ctrl-C or SIGTERM.

use anyhow::Context;
use clap::Parser;
use nimbus::NimbusConfig;
use serde::Serialize;
use std::net::SocketAddr;
use std::path::PathBuf;

/// Tempest's master: REST API, scheduler, state and artifact stores.
#[derive(Debug, Parser, Serialize)]
#[command(version, about)]
struct Args {
    /// The shared TOML config file (its [nimbus] section and top-level `secret`).
    #[arg(long)]
    #[serde(skip)]
    config: Option<PathBuf>,
    /// Address to listen on [default: 127.0.0.1:6627].
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    listen: Option<SocketAddr>,
    /// Directory of the state store and artifacts [default: ./tempest-data/nimbus].
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    data_dir: Option<PathBuf>,
    /// Seconds without heartbeat after which a supervisor is dead [default: 15].
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    supervisor_timeout_secs: Option<u64>,
    /// Seconds without heartbeat after which a worker slot is dead [default: 30].
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    worker_timeout_secs: Option<u64>,
    /// Largest accepted topology binary, in MiB [default: 512].
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    max_upload_mb: Option<u64>,
    /// Also serve the monitoring API's GET routes and the web UI here, without the secret
    /// (read-only; Storm's UI port is 8080) [default: off].
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    ui_listen: Option<SocketAddr>,
    /// Where the cluster state lives: embedded or etcd [default: embedded].
    #[arg(long, value_enum)]
    #[serde(skip_serializing_if = "Option::is_none")]
    store: Option<StoreFlag>,
    /// etcd client URLs, comma-separated (with --store etcd).
    #[arg(long, value_delimiter = ',')]
    #[serde(skip_serializing_if = "Option::is_none")]
    etcd_endpoints: Option<Vec<String>>,
    /// This cluster's name in etcd [default: tempest].
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    cluster_name: Option<String>,
    /// TTL of the leader's etcd lease, in seconds [default: 5].
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    leader_lease_secs: Option<u64>,
    /// The URL clients use to reach this Nimbus [default: http://<listen>].
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    advertise_url: Option<String>,
}

/// `--store`.
#[derive(Debug, Clone, Copy, clap::ValueEnum, Serialize)]
#[serde(rename_all = "lowercase")]
enum StoreFlag {
    Embedded,
    Etcd,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tempest_server::logging::init();
    let args = Args::parse();
    let config = NimbusConfig::load(args.config.as_deref(), &args)?;
    let listener = tokio::net::TcpListener::bind(config.listen)
        .await
        .with_context(|| format!("cannot listen on {}", config.listen))?;
    let nimbus = nimbus::serve(listener, config).await?;
    nimbus.run_until(tempest_server::shutdown::signal()).await?;
    Ok(())
}
