//! The subcommands: each resolves its arguments, makes its calls with the one
//! [`NimbusClient`], and prints what Nimbus answered.

use crate::args::{Cli, Command, KillArgs, RebalanceArgs, SubmitArgs};
use crate::config::{self, Settings};
use crate::error::CliError;
use crate::{render, topology_binary};
use std::collections::BTreeMap;
use std::io::Write;
use tempest_client::{submit_overrides, ClientError, NimbusClient, Submission, SubmitError};
use tempest_protocol::control::RebalanceRequest;

/// A client and where its address came from (for error hints).
struct Nimbus {
    client: NimbusClient,
    settings: Settings,
}

impl Nimbus {
    fn connect(settings: Settings) -> Result<Self, CliError> {
        let client = NimbusClient::new(&settings.nimbus, settings.secret.clone())
            .map_err(|e| CliError::from_client(e, &settings.nimbus_from))?;
        Ok(Nimbus { client, settings })
    }

    /// A failed call as a CLI error.
    fn failed(&self, e: ClientError) -> CliError {
        CliError::from_client(e, &self.settings.nimbus_from)
    }
}

/// Runs the command line.
pub(crate) async fn run(cli: Cli) -> Result<(), CliError> {
    if let Command::Version = cli.command {
        print(&format!(
            "Tempest {}\nStorm UI REST API {}\n",
            env!("CARGO_PKG_VERSION"),
            tempest_monitor_storm_version()
        ));
        return Ok(());
    }
    match cli.command {
        Command::Users(crate::args::UsersCommand::Add(args)) => {
            return crate::tokens::add_user(&args.name, args.role);
        }
        Command::Token(crate::args::TokenCommand::Hash) => return crate::tokens::hash_stdin(),
        _ => {}
    }
    let settings =
        config::settings(cli.nimbus.as_deref(), cli.config.as_deref()).map_err(CliError::Usage)?;
    let nimbus = Nimbus::connect(settings)?;
    let c = &nimbus.client;
    match cli.command {
        Command::Submit(args) => submit(&nimbus, args).await,
        Command::List(args) => {
            let list = c.list().await.map_err(|e| nimbus.failed(e))?;
            if args.json {
                print_json(&list)
            } else {
                print(&render::topology_list(&list));
                Ok(())
            }
        }
        Command::Describe(args) => {
            let details = c.describe(&args.name).await.map_err(|e| nimbus.failed(e))?;
            if args.json {
                print_json(&details)
            } else {
                print(&render::topology_details(&details));
                Ok(())
            }
        }
        Command::Kill(KillArgs { name, wait }) => {
            let wait = wait_or_message_timeout(&nimbus, &name, wait).await?;
            let answer = c.kill(&name, wait).await.map_err(|e| nimbus.failed(e))?;
            print(&render::action(&answer));
            Ok(())
        }
        Command::Activate(args) => {
            let answer = c.activate(&args.name).await.map_err(|e| nimbus.failed(e))?;
            print(&render::action(&answer));
            Ok(())
        }
        Command::Deactivate(args) => {
            let answer = c
                .deactivate(&args.name)
                .await
                .map_err(|e| nimbus.failed(e))?;
            print(&render::action(&answer));
            Ok(())
        }
        Command::Rebalance(args) => rebalance(&nimbus, args).await,
        Command::GetErrors(args) => {
            let details = c.describe(&args.name).await.map_err(|e| nimbus.failed(e))?;
            let mut errors = serde_json::Map::new();
            let spouts = details
                .view
                .spouts
                .iter()
                .map(|s| (&s.spout_id, &s.last_error));
            let bolts = details
                .view
                .bolts
                .iter()
                .map(|b| (&b.bolt_id, &b.last_error));
            for (component, e) in spouts.chain(bolts) {
                if !e.last_error.is_empty() {
                    errors.insert(component.clone(), e.last_error.clone().into());
                }
            }
            print_json(&serde_json::json!({
                "Topology Name": args.name,
                "Comp-Errors": errors,
            }))
        }
        Command::Version | Command::Users(_) | Command::Token(_) => Ok(()),
    }
}

/// The Storm release whose UI REST API Nimbus follows (`stormVersion`).
fn tempest_monitor_storm_version() -> &'static str {
    "2.8.8"
}

/// `-w SECS` if given, else the topology's message timeout (Storm's default wait).
async fn wait_or_message_timeout(
    nimbus: &Nimbus,
    name: &str,
    wait: Option<u64>,
) -> Result<u64, CliError> {
    match wait {
        Some(w) => Ok(w),
        None => Ok(nimbus
            .client
            .describe(name)
            .await
            .map_err(|e| nimbus.failed(e))?
            .view
            .msg_timeout),
    }
}

/// `submit`: spec from the binary, then the one submit path (checks, upload, submit).
async fn submit(nimbus: &Nimbus, args: SubmitArgs) -> Result<(), CliError> {
    let overrides =
        submit_overrides(args.workers.map(u64::from), &args.overrides).map_err(CliError::Usage)?;
    let spec = topology_binary::read_spec(&args.binary).await?;
    let submission = Submission {
        binary: args.binary.clone(),
        spec,
        name: args.name,
        overrides,
    };
    let submitted = nimbus
        .client
        .submit_topology(submission)
        .await
        .map_err(|e| match e {
            SubmitError::Invalid { .. } => CliError::Failed(e.to_string()),
            SubmitError::Client(e) => nimbus.failed(e),
        })?;
    print(&format!(
        "uploaded {} ({}) as artifact {}\n",
        args.binary.display(),
        render::bytes(submitted.bytes),
        submitted.artifact
    ));
    print(&render::action(&submitted.answer));
    Ok(())
}

/// `rebalance`: new workers and executor counts.
async fn rebalance(nimbus: &Nimbus, args: RebalanceArgs) -> Result<(), CliError> {
    let mut parallelism = BTreeMap::new();
    for (component, n) in args.executors {
        if let Some(previous) = parallelism.insert(component.clone(), n) {
            return Err(CliError::Usage(format!(
                "-e {component}={previous} and -e {component}={n}: give each component once"
            )));
        }
    }
    let request = RebalanceRequest {
        workers: args.workers,
        parallelism,
    };
    let wait = wait_or_message_timeout(nimbus, &args.name, args.wait).await?;
    let answer = nimbus
        .client
        .rebalance(&args.name, wait, &request)
        .await
        .map_err(|e| nimbus.failed(e))?;
    print(&render::action(&answer));
    Ok(())
}

/// Writes to stdout; a closed stdout (`tempest list | head -1`) is not an error worth a panic.
fn print(text: &str) {
    let mut out = std::io::stdout().lock();
    let _ = out.write_all(text.as_bytes());
    let _ = out.flush();
}

/// Writes an answer as pretty JSON.
fn print_json(value: &impl serde::Serialize) -> Result<(), CliError> {
    let text = serde_json::to_string_pretty(value)
        .map_err(|e| CliError::Failed(format!("cannot print the answer as JSON: {e}")))?;
    print(&format!("{text}\n"));
    Ok(())
}
