//! `tempest`: the admin command of a Tempest cluster. Parses the command line, runs one command
//! against Nimbus, and turns any failure into one line on stderr and an exit code
//! (1: Nimbus refused or could not be reached; 2: the command line or config is wrong).

mod args;
mod commands;
mod config;
mod error;
mod render;
mod tokens;
mod topology_binary;

use clap::Parser;
use std::process::ExitCode;

fn main() -> ExitCode {
    let cli = args::Cli::parse();
    tempest_server::logging::init_with_default(tracing::level_filters::LevelFilter::WARN);
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
