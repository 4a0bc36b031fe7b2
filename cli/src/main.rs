//! `tempest`: the admin command of a Tempest cluster. Parses the command line, runs one command
//! against Nimbus, and turns any failure into one line on stderr and an exit code
//! (1: Nimbus refused or could not be reached; 2: the command line or config is wrong).

mod args;
mod commands;
mod config;
mod error;
mod render;
mod topology_binary;

use clap::Parser;
use std::process::ExitCode;

fn main() -> ExitCode {
    let cli = args::Cli::parse();
    init_tracing();
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => return error::CliError::Failed(format!("cannot start: {e}")).report(),
    };
    match runtime.block_on(commands::run(cli)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => e.report(),
    }
}

/// Logs go to stderr, `warn` and up unless `RUST_LOG` says otherwise.
fn init_tracing() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_target(false)
        .with_writer(std::io::stderr)
        .try_init();
}
