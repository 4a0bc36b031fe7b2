//! The subcommands: each resolves its arguments, makes its calls with the one
//! [`NimbusClient`], and prints what Nimbus answered.

use crate::args::{Cli, Command, KillArgs, RebalanceArgs, SubmitArgs};
use crate::config::{self, Settings};
use crate::error::CliError;
use crate::{render, topology_binary};
use std::collections::BTreeMap;
use std::io::Write;
use topology_api::client::{ClientError, NimbusClient};
use topology_api::config::TOPOLOGY_WORKERS;
use topology_api::control::{RebalanceRequest, SubmitRequest};
use topology_api::Config;

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
pub async fn run(cli: Cli) -> Result<(), CliError> {
    let settings = config::settings(cli.nimbus.as_deref(), cli.config.as_deref())?;
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
    }
}

/// `submit`: spec from the binary, upload, submit.
async fn submit(nimbus: &Nimbus, args: SubmitArgs) -> Result<(), CliError> {
    let overrides = submit_config(args.workers, &args.overrides)?;
    let mut spec = topology_binary::read_spec(&args.binary).await?;
    // Check here what Nimbus will check, before uploading a large binary for nothing.
    let mut effective = spec.clone();
    effective.name = args.name.clone();
    effective.config = effective.config.merged(&overrides);
    topology_api::validate::validate(&effective)
        .map_err(|e| CliError::Failed(format!("{}: {e}", args.binary.display())))?;
    spec.name = args.name.clone();

    let size = std::fs::metadata(&args.binary).map_or(0, |m| m.len());
    let artifact = nimbus
        .client
        .upload_artifact(&args.binary)
        .await
        .map_err(|e| nimbus.failed(e))?;
    print(&format!(
        "uploaded {} ({}) as artifact {artifact}\n",
        args.binary.display(),
        render::bytes(size)
    ));
    let request = SubmitRequest {
        name: args.name,
        spec,
        artifact,
        config: overrides,
    };
    let answer = nimbus
        .client
        .submit(&request)
        .await
        .map_err(|e| nimbus.failed(e))?;
    print(&render::action(&answer));
    Ok(())
}

/// The config overrides of a submission: `topology.workers` from `--workers`, then each `-c`.
fn submit_config(workers: Option<u32>, overrides: &[String]) -> Result<Config, CliError> {
    let mut config = Config::new();
    if let Some(k) = workers {
        config.set(TOPOLOGY_WORKERS, k);
    }
    for kv in overrides {
        let key = kv.split_once('=').map_or(kv.as_str(), |(k, _)| k).trim();
        if key == TOPOLOGY_WORKERS {
            if let Some(k) = workers {
                return Err(CliError::Usage(format!(
                    "--workers {k} and -c {kv} both set {TOPOLOGY_WORKERS}; give one of them"
                )));
            }
        }
        config.set_from_str(kv).map_err(CliError::Usage)?;
    }
    Ok(config)
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
    let answer = nimbus
        .client
        .rebalance(&args.name, args.wait, &request)
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn workers_and_overrides_make_the_submitted_config() {
        let c = submit_config(
            Some(2),
            &["topology.max.spout.pending=100".into(), "my.name=x".into()],
        )
        .unwrap();
        assert_eq!(c.u64_or(TOPOLOGY_WORKERS, 1).unwrap(), 2);
        assert_eq!(c.u64_or("topology.max.spout.pending", 0).unwrap(), 100);
        assert_eq!(c.str("my.name"), Some("x"));
        assert_eq!(submit_config(None, &[]).unwrap(), Config::new());
    }

    #[test]
    fn workers_given_twice_is_a_usage_error() {
        let e = submit_config(Some(2), &["topology.workers=3".into()]).unwrap_err();
        assert!(matches!(e, CliError::Usage(m) if m.contains("--workers 2")));
        let c = submit_config(None, &["topology.workers=3".into()]).unwrap();
        assert_eq!(c.u64_or(TOPOLOGY_WORKERS, 1).unwrap(), 3);
    }
}
