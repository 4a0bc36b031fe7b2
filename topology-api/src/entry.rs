//! The topology binary's command line: `local` runs it in this process, `submit` sends it to a
//! cluster, `worker` is how supervisors run it, `spec` prints its spec. End a topology binary's
//! `main` with [`main`], or embed [`Mode`] in your own clap parser and call [`run`].

use crate::builder::Topology;
use crate::client::{check_topology_name, ClientError, NimbusClient};
use crate::config::{Config, TOPOLOGY_WORKERS};
use crate::control::{ActionResponse, SubmitRequest, NIMBUS_ENV, SECRET_ENV};
use crate::local::{run_local_blocking, LocalOptions, LocalReport};
use crate::worker::RunError;
use crate::worker_process::{run_worker, WorkerError, WorkerOptions};
use clap::{Args, Parser, Subcommand};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

/// What the binary should do.
#[derive(Debug, Clone, Subcommand)]
pub enum Mode {
    /// Run the whole topology in this process (until Ctrl-C, --duration, or every finite
    /// spout is done and every tuple tree complete).
    Local(LocalArgs),
    /// Upload this binary to Nimbus and submit the topology (like `storm jar`).
    Submit(SubmitArgs),
    /// Print the topology's spec as JSON (used by `tempest submit`).
    Spec,
    /// Run as a cluster worker (started by a supervisor).
    Worker(WorkerArgs),
}

/// Options of `submit`.
#[derive(Debug, Clone, Args)]
pub struct SubmitArgs {
    /// Nimbus's URL.
    #[arg(long, env = NIMBUS_ENV, default_value = "http://127.0.0.1:6627")]
    pub nimbus: String,
    /// The name to run it under (default: the topology's own name).
    #[arg(long)]
    pub name: Option<String>,
    /// Number of worker processes (sets topology.workers).
    #[arg(long)]
    pub workers: Option<u64>,
    /// Override a config key, e.g. -c topology.max.spout.pending=1000 (repeatable).
    #[arg(short = 'c', long = "config", value_name = "KEY=VALUE")]
    pub config: Vec<String>,
}

/// Options of `worker` (set by the supervisor).
#[derive(Debug, Clone, Args)]
pub struct WorkerArgs {
    /// The assignment file.
    #[arg(long)]
    pub assignment: PathBuf,
    /// This worker's host, as in the assignment.
    #[arg(long)]
    pub host: String,
    /// This worker's slot port.
    #[arg(long)]
    pub port: u16,
    /// Nimbus's URL.
    #[arg(long, env = NIMBUS_ENV)]
    pub nimbus: String,
}

/// Options of `local`.
#[derive(Debug, Clone, Args)]
pub struct LocalArgs {
    /// Stop after this long: seconds ("30") or a duration ("90s", "5m").
    #[arg(long, value_parser = parse_duration)]
    pub duration: Option<Duration>,
    /// Override a config key, e.g. -c topology.max.spout.pending=1000 (repeatable).
    #[arg(short = 'c', long = "config", value_name = "KEY=VALUE")]
    pub config: Vec<String>,
    /// Do not print the per-component summary at the end.
    #[arg(long)]
    pub quiet: bool,
    /// Serve the web UI and REST API on this port while the topology runs (0: any free port).
    #[arg(long, value_name = "PORT")]
    pub ui: Option<u16>,
    /// The address the web UI listens on (with --ui).
    #[arg(long, value_name = "IP", default_value = "127.0.0.1", requires = "ui")]
    pub ui_host: std::net::IpAddr,
}

/// The default command line of a topology binary.
#[derive(Debug, Parser)]
#[command(about = "A Tempest topology")]
pub struct Cli {
    /// The mode.
    #[command(subcommand)]
    pub mode: Mode,
}

/// Parses "30" (seconds) or a humantime duration ("90s", "5m", "250ms").
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    if let Ok(secs) = s.parse::<f64>() {
        if secs.is_finite() && secs >= 0.0 {
            return Ok(Duration::from_secs_f64(secs));
        }
    }
    humantime::parse_duration(s)
        .map_err(|e| format!("{s:?} is not a duration ({e}); try 30 or 90s"))
}

/// Sets up logging from `RUST_LOG` (default `info`). Safe to call more than once.
pub fn init_tracing() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    // Logs go to stderr: stdout is for what a command prints (e.g. `spec`'s JSON).
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_target(false)
        .with_writer(std::io::stderr)
        .try_init();
}

/// Why the binary could not do what its command line asked.
#[derive(Debug, thiserror::Error)]
pub enum EntryError {
    /// A `-c key=value` override or a name is malformed.
    #[error("{0}")]
    BadArgument(String),
    /// The topology failed to run.
    #[error("{0}")]
    Run(#[from] RunError),
    /// Talking to Nimbus failed.
    #[error("{0}")]
    Client(#[from] ClientError),
    /// Worker mode failed.
    #[error("{0}")]
    Worker(#[from] WorkerError),
    /// Something local failed (runtime, own executable).
    #[error("{0}")]
    Local(String),
}

/// Parses the command line and runs `topology` in the chosen mode.
pub fn main(topology: Topology) -> ExitCode {
    init_tracing();
    let cli = Cli::parse();
    match run(topology, cli.mode) {
        Ok(_) => ExitCode::SUCCESS,
        Err(_) => ExitCode::FAILURE,
    }
}

/// Runs `topology` in `mode`, printing a summary at the end; errors are logged and returned.
pub fn run(mut topology: Topology, mode: Mode) -> Result<LocalReport, EntryError> {
    init_tracing();
    match mode {
        Mode::Local(args) => {
            if let Err(e) = apply_overrides(topology.config_mut(), &args.config) {
                tracing::error!("{e}");
                return Err(e);
            }
            tracing::info!(topology = topology.name(), "running in local mode");
            let opts = LocalOptions {
                duration: args.duration,
                stop_on_ctrl_c: true,
                ui: args.ui.map(|port| (args.ui_host, port).into()),
            };
            match run_local_blocking(&topology, opts) {
                Ok(report) => {
                    if !args.quiet {
                        println!(
                            "topology {} ran for {:.1}s\n{}",
                            topology.name(),
                            report.elapsed.as_secs_f64(),
                            report.summary()
                        );
                    }
                    Ok(report)
                }
                Err(e) => {
                    tracing::error!("{e}");
                    Err(e.into())
                }
            }
        }
        Mode::Spec => match serde_json::to_string_pretty(topology.spec()) {
            Ok(json) => {
                println!("{json}");
                Ok(LocalReport::empty())
            }
            Err(e) => Err(EntryError::Local(e.to_string())),
        },
        Mode::Submit(args) => {
            let result = runtime().and_then(|rt| rt.block_on(submit(topology, args)));
            match result {
                Ok(answer) => {
                    let state = serde_json::to_value(answer.state).unwrap_or_default();
                    let state = state.as_str().unwrap_or("?");
                    println!("{}: {state} ({})", answer.name, answer.message);
                    Ok(LocalReport::empty())
                }
                Err(e) => {
                    tracing::error!("{e}");
                    Err(e)
                }
            }
        }
        Mode::Worker(args) => {
            let opts = WorkerOptions {
                assignment: args.assignment,
                host: args.host,
                port: args.port,
                nimbus: args.nimbus,
            };
            let result = runtime().and_then(|rt| {
                rt.block_on(run_worker(topology, opts))
                    .map_err(EntryError::from)
            });
            match result {
                Ok(exit) => {
                    tracing::info!(?exit, "worker stopped");
                    Ok(LocalReport::empty())
                }
                Err(e) => {
                    tracing::error!("{e}");
                    Err(e)
                }
            }
        }
    }
}

fn runtime() -> Result<tokio::runtime::Runtime, EntryError> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| EntryError::Local(format!("cannot start the runtime: {e}")))
}

fn apply_overrides(config: &mut Config, overrides: &[String]) -> Result<(), EntryError> {
    for kv in overrides {
        config.set_from_str(kv).map_err(EntryError::BadArgument)?;
    }
    Ok(())
}

/// Uploads this executable and submits its topology.
async fn submit(topology: Topology, args: SubmitArgs) -> Result<ActionResponse, EntryError> {
    let name = args.name.unwrap_or_else(|| topology.name().to_string());
    check_topology_name(&name).map_err(EntryError::BadArgument)?;
    let mut config = Config::new();
    if let Some(w) = args.workers {
        config.set(TOPOLOGY_WORKERS, w);
    }
    apply_overrides(&mut config, &args.config)?;
    let exe = std::env::current_exe()
        .map_err(|e| EntryError::Local(format!("cannot find this executable: {e}")))?;
    let client = NimbusClient::new(&args.nimbus, std::env::var(SECRET_ENV).ok())?;
    let artifact = client.upload_artifact(&exe).await?;
    let req = SubmitRequest {
        name,
        spec: topology.spec().clone(),
        artifact,
        config,
    };
    Ok(client.submit(&req).await?)
}
