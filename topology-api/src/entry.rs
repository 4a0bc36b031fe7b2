//! The topology binary's command line: `local` runs it in this process, `spec` prints its spec,
//! and with the features that allow them, `submit` sends it to a cluster and `worker` is how
//! supervisors run it. End a topology binary's `main` with [`main`]; a binary with flags of its
//! own parses them and hands the rest of its command line to [`run`].

use crate::Topology;
use clap::{Args, Parser, Subcommand};
use std::ffi::OsString;
use std::process::ExitCode;
use std::time::Duration;
use tempest_protocol::config::Config;
use tempest_runtime::{run_local_blocking, LocalOptions, LocalReport, RunError};

/// What the binary should do.
#[derive(Debug, Clone, Subcommand)]
enum Mode {
    /// Run the whole topology in this process (until Ctrl-C, --duration, or every finite
    /// spout is done and every tuple tree complete).
    Local(LocalArgs),
    /// Upload this binary to Nimbus and submit the topology (like `storm jar`).
    #[cfg(feature = "submit")]
    Submit(SubmitArgs),
    /// Print the topology's spec as JSON (used by `tempest submit`).
    Spec,
    /// Run as a cluster worker (started by a supervisor).
    #[cfg(feature = "cluster")]
    Worker(WorkerArgs),
}

/// Options of `submit`.
#[cfg(feature = "submit")]
#[derive(Debug, Clone, Args)]
struct SubmitArgs {
    /// Nimbus's URL, or a seed list of several Nimbus hosts (http://a:6627,http://b:6627): the
    /// submission goes to the leader, through a failover.
    #[arg(long, env = tempest_protocol::auth::NIMBUS_ENV, default_value = tempest_protocol::auth::DEFAULT_NIMBUS)]
    nimbus: String,
    /// The name to run it under (default: the topology's own name).
    #[arg(long)]
    name: Option<String>,
    /// Number of worker processes (sets topology.workers).
    #[arg(long)]
    workers: Option<u64>,
    /// Override a config key, e.g. -c topology.max.spout.pending=1000 (repeatable).
    #[arg(short = 'c', long = "config", value_name = "KEY=VALUE")]
    config: Vec<String>,
}

/// Options of `worker` (set by the supervisor).
#[cfg(feature = "cluster")]
#[derive(Debug, Clone, Args)]
struct WorkerArgs {
    /// The assignment file.
    #[arg(long)]
    assignment: std::path::PathBuf,
    /// This worker's host, as in the assignment.
    #[arg(long)]
    host: String,
    /// This worker's slot port.
    #[arg(long)]
    port: u16,
    /// Nimbus's URL, or a seed list of several Nimbus hosts (comma-separated), as the
    /// supervisor has it.
    #[arg(long, env = tempest_protocol::auth::NIMBUS_ENV)]
    nimbus: String,
}

/// Options of `local`.
#[derive(Debug, Clone, Args)]
struct LocalArgs {
    /// Stop after this long: seconds ("30") or a duration ("90s", "5m").
    #[arg(long, value_parser = parse_duration)]
    duration: Option<Duration>,
    /// Override a config key, e.g. -c topology.max.spout.pending=1000 (repeatable).
    #[arg(short = 'c', long = "config", value_name = "KEY=VALUE")]
    config: Vec<String>,
    /// Do not print the per-component summary at the end.
    #[arg(long)]
    quiet: bool,
    /// Serve the web UI and REST API on this port while the topology runs (0: any free port).
    #[arg(long, value_name = "PORT")]
    ui: Option<u16>,
    /// The address the web UI listens on (with --ui).
    #[arg(long, value_name = "IP", default_value = "127.0.0.1", requires = "ui")]
    ui_host: std::net::IpAddr,
}

/// The command line of a topology binary.
#[derive(Debug, Parser)]
#[command(about = "A Tempest topology")]
struct Cli {
    #[command(subcommand)]
    mode: Mode,
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

/// Sets up logging from `RUST_LOG` (default `info`), to stderr. Safe to call more than once.
pub fn init_tracing() {
    tempest_server::logging::init();
}

/// Why the binary could not do what its command line asked.
#[derive(Debug, thiserror::Error)]
pub enum EntryError {
    /// The command line or a `-c key=value` override is malformed.
    #[error("{0}")]
    BadArgument(String),
    /// The topology failed to run.
    #[error("{0}")]
    Run(#[from] RunError),
    /// Submitting failed.
    #[cfg(feature = "submit")]
    #[error("{0}")]
    Submit(#[from] tempest_client::SubmitError),
    /// Worker mode failed.
    #[cfg(feature = "cluster")]
    #[error("{0}")]
    Worker(#[from] tempest_runtime::cluster::WorkerError),
    /// Something local failed (the runtime, this executable).
    #[error("{0}")]
    Local(String),
}

/// Parses this process's command line and runs `topology` in the chosen mode.
pub fn main(topology: Topology) -> ExitCode {
    let args: Vec<OsString> = std::env::args_os().skip(1).collect();
    match run(topology, args) {
        Ok(_) => ExitCode::SUCCESS,
        Err(_) => ExitCode::FAILURE,
    }
}

/// Runs `topology` in the mode `args` give (`["local", "--duration", "30"]`: a mode and its
/// flags, without the program name), printing a summary at the end; errors are logged and
/// returned. `--help` and a malformed command line print clap's message and exit the process.
pub fn run<I, S>(mut topology: Topology, args: I) -> Result<LocalReport, EntryError>
where
    I: IntoIterator<Item = S>,
    S: Into<OsString> + Clone,
{
    init_tracing();
    let program = std::env::args_os()
        .next()
        .unwrap_or_else(|| topology.name().into());
    let cli = Cli::parse_from(std::iter::once(program).chain(args.into_iter().map(Into::into)));
    match cli.mode {
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
        #[cfg(feature = "submit")]
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
        #[cfg(feature = "cluster")]
        Mode::Worker(args) => {
            use tempest_runtime::cluster::{run_worker, WorkerOptions};
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

#[cfg(any(feature = "submit", feature = "cluster"))]
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
    let problems: Vec<String> = config.check().iter().map(ToString::to_string).collect();
    if problems.is_empty() {
        Ok(())
    } else {
        Err(EntryError::BadArgument(problems.join("; ")))
    }
}

/// Submits this executable: the same checks and steps as `tempest submit`.
#[cfg(feature = "submit")]
async fn submit(
    topology: Topology,
    args: SubmitArgs,
) -> Result<tempest_protocol::control::ActionResponse, EntryError> {
    use tempest_client::{submit_overrides, NimbusClient, Submission};
    let overrides =
        submit_overrides(args.workers, &args.config).map_err(EntryError::BadArgument)?;
    let binary = std::env::current_exe()
        .map_err(|e| EntryError::Local(format!("cannot find this executable: {e}")))?;
    let secret = tempest_protocol::auth::credential_from_env();
    let client =
        NimbusClient::new(&args.nimbus, secret).map_err(|e| EntryError::Submit(e.into()))?;
    let submission = Submission {
        binary,
        name: args.name.unwrap_or_else(|| topology.name().to_string()),
        spec: topology.spec().clone(),
        overrides,
    };
    Ok(client.submit_topology(submission).await?.answer)
}
