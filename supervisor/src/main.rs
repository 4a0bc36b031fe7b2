//! The `supervisor` daemon: reads its config, then runs until SIGINT or SIGTERM.

use anyhow::Context;
use clap::Parser;
use std::path::PathBuf;
use supervisor::{ConfigOverrides, SupervisorConfig};

/// Tempest supervisor: runs the workers Nimbus assigns to this node.
#[derive(Debug, Parser)]
#[command(version)]
struct Args {
    /// TOML config file (its `[supervisor]` section and top-level `secret`).
    #[arg(long)]
    config: Option<PathBuf>,
    /// Nimbus URL, or a seed list of several (http://a:6627,http://b:6627) [default:
    /// $TEMPEST_NIMBUS, then the file, then http://127.0.0.1:6627].
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
    /// When root, run workers as --worker-user (true) or as root (false) [default: true].
    #[arg(long)]
    run_worker_as_user: Option<bool>,
    /// The unprivileged user workers run as when the supervisor is root [default:
    /// tempest-worker].
    #[arg(long)]
    worker_user: Option<String>,
    /// Memory limit of each worker in MiB, with a cgroup [default: none].
    #[arg(long)]
    worker_memory_limit_mb: Option<u64>,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tempest_server::logging::init();
    let args = Args::parse();
    let flags = ConfigOverrides {
        nimbus: args.nimbus,
        data_dir: args.data_dir,
        host: args.host,
        slots: args.slots,
        heartbeat_secs: args.heartbeat_secs,
        id: args.id,
        http_listen: args.http_listen,
        run_worker_as_user: args.run_worker_as_user,
        worker_user: args.worker_user,
        worker_memory_limit_mb: args.worker_memory_limit_mb,
    };
    let config = SupervisorConfig::load(args.config.as_deref(), &flags)?;
    supervisor::run(config, tempest_server::shutdown::signal())
        .await
        .context("supervisor failed")
}
