//! The topology binary's command line: `local` runs it here (`submit` and `worker` come with the
//! cluster). End a topology binary's `main` with [`main`], or embed [`Mode`] in your own clap
//! parser and call [`run`].

use crate::builder::Topology;
use crate::local::{run_local_blocking, LocalOptions, LocalReport};
use crate::worker::RunError;
use clap::{Args, Parser, Subcommand};
use std::process::ExitCode;
use std::time::Duration;

/// What the binary should do.
#[derive(Debug, Clone, Subcommand)]
pub enum Mode {
    /// Run the whole topology in this process (until Ctrl-C, --duration, or every finite
    /// spout is done and every tuple tree complete).
    Local(LocalArgs),
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
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_target(false)
        .try_init();
}

/// Why the binary could not do what its command line asked.
#[derive(Debug, thiserror::Error)]
pub enum EntryError {
    /// A `-c key=value` override is malformed.
    #[error("{0}")]
    BadOverride(String),
    /// The topology failed to run.
    #[error("{0}")]
    Run(#[from] RunError),
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
            for kv in &args.config {
                if let Err(e) = topology.config_mut().set_from_str(kv) {
                    tracing::error!("{e}");
                    return Err(EntryError::BadOverride(e));
                }
            }
            tracing::info!(topology = topology.name(), "running in local mode");
            let opts = LocalOptions {
                duration: args.duration,
                stop_on_ctrl_c: true,
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
    }
}
