//! The command line: global options and one subcommand per action, checked by clap so a bad
//! name, number or `key=value` is a usage error (exit 2) before anything is sent.

use clap::{Args, Parser, Subcommand};
use std::path::PathBuf;
use tempest_protocol::names::check_topology_name;

/// Administer a Tempest cluster.
#[derive(Debug, Parser)]
#[command(
    name = "tempest",
    version,
    about = "Administer a Tempest cluster: submit, list, describe, kill, activate, deactivate \
             and rebalance topologies",
    after_help = "The Nimbus URL comes from --nimbus, else $TEMPEST_NIMBUS, else `nimbus` in the \
                  [client] section of the config file, else http://127.0.0.1:6627. Each may be \
                  a seed list of several Nimbus hosts (http://a:6627,http://b:6627; a TOML list \
                  in the file): the CLI finds the leader and follows it through a failover. The \
                  credential is $TEMPEST_TOKEN (a user's token), else `token` in [client], else \
                  the cluster secret: $TEMPEST_SECRET, else the config file's top-level \
                  `secret`."
)]
pub(crate) struct Cli {
    /// Nimbus URL, e.g. http://nimbus.example:6627, or a seed list of several:
    /// http://a:6627,http://b:6627.
    #[arg(long, global = true, value_name = "URLS")]
    pub nimbus: Option<String>,
    /// Config file [default: ./tempest.toml if it exists].
    #[arg(long, global = true, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub(crate) enum Command {
    /// Upload a topology binary and start it on the cluster.
    Submit(SubmitArgs),
    /// List the live topologies.
    List(ListArgs),
    /// Show a topology: summary, config, and every task with its metrics.
    Describe(DescribeArgs),
    /// Deactivate a topology's spouts, wait, then stop its workers and forget it.
    Kill(KillArgs),
    /// Let a topology's spouts emit again.
    Activate(NameArg),
    /// Pause a topology's spouts (in-flight tuples still complete).
    Deactivate(NameArg),
    /// Change a topology's workers or executors: spouts pause, wait, then it is rescheduled.
    Rebalance(RebalanceArgs),
    /// Print each component's latest error as Storm's `get-errors` does (JSON).
    GetErrors(NameArg),
    /// Print this CLI's version and the Storm REST API version it follows.
    Version,
    /// Make user tokens for Nimbus's `[nimbus.users]` (offline: nothing is sent).
    #[command(subcommand)]
    Users(UsersCommand),
    /// Work with tokens (offline: nothing is sent).
    #[command(subcommand)]
    Token(TokenCommand),
}

/// `tempest users ...`.
#[derive(Debug, Subcommand)]
pub(crate) enum UsersCommand {
    /// Make a new random token for user NAME: prints the token once (hand it to the user, who
    /// sets TEMPEST_TOKEN or `token` in [client]) and the line for [nimbus.users] holding only
    /// its sha256.
    Add(UsersAddArgs),
}

/// Options of `users add`.
#[derive(Debug, Args)]
pub(crate) struct UsersAddArgs {
    /// The user's name (1-64 of A-Z a-z 0-9 . _ - @).
    #[arg(value_parser = user_name)]
    pub name: String,
    /// admin (everything), submitter (submit and operate its own topologies) or viewer (read
    /// only).
    #[arg(long, value_parser = clap::value_parser!(tempest_protocol::auth::Role))]
    pub role: tempest_protocol::auth::Role,
}

/// `tempest token ...`.
#[derive(Debug, Subcommand)]
pub(crate) enum TokenCommand {
    /// Read a token from stdin (never from the command line) and print its sha256, the
    /// `token_sha256` of [nimbus.users].
    Hash,
}

fn user_name(s: &str) -> Result<String, String> {
    tempest_protocol::auth::check_user_name(s).map(|()| s.to_string())
}

/// Options of `submit`.
#[derive(Debug, Args)]
pub(crate) struct SubmitArgs {
    /// The topology binary (it must print its spec when run as `BINARY spec`).
    #[arg(value_name = "BINARY")]
    pub binary: PathBuf,
    /// The topology's name on the cluster.
    #[arg(long, value_parser = topology_name)]
    pub name: String,
    /// Worker processes to run it in (sets topology.workers).
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..))]
    pub workers: Option<u32>,
    /// Override a config key, e.g. -c topology.max.spout.pending=1000 (repeatable; the value is
    /// JSON if it parses as JSON, else a string).
    #[arg(short = 'c', long = "set", value_name = "KEY=VALUE", value_parser = config_override)]
    pub overrides: Vec<String>,
}

/// Options of `list`.
#[derive(Debug, Args)]
pub(crate) struct ListArgs {
    /// Print Nimbus's answer as JSON instead of a table.
    #[arg(long)]
    pub json: bool,
}

/// Options of `describe`.
#[derive(Debug, Args)]
pub(crate) struct DescribeArgs {
    /// The topology.
    #[arg(value_name = "NAME", value_parser = topology_name)]
    pub name: String,
    /// Print Nimbus's answer as JSON instead of tables.
    #[arg(long)]
    pub json: bool,
}

/// Options of `kill`.
#[derive(Debug, Args)]
pub(crate) struct KillArgs {
    /// The topology.
    #[arg(value_name = "NAME", value_parser = topology_name)]
    pub name: String,
    /// Seconds between deactivating the spouts and stopping the workers [default: the
    /// topology's topology.message.timeout.secs, as in Storm].
    #[arg(long, short = 'w', value_name = "SECS")]
    pub wait: Option<u64>,
}

/// A topology name, the only argument of `activate` and `deactivate`.
#[derive(Debug, Args)]
pub(crate) struct NameArg {
    /// The topology.
    #[arg(value_name = "NAME", value_parser = topology_name)]
    pub name: String,
}

/// Options of `rebalance`.
#[derive(Debug, Args)]
pub(crate) struct RebalanceArgs {
    /// The topology.
    #[arg(value_name = "NAME", value_parser = topology_name)]
    pub name: String,
    /// New number of workers.
    #[arg(short = 'n', long = "workers", value_name = "WORKERS",
          value_parser = clap::value_parser!(u32).range(1..))]
    pub workers: Option<u32>,
    /// New number of executors of a component, e.g. -e split=4 (repeatable).
    #[arg(short = 'e', long = "executors", value_name = "COMPONENT=PAR",
          value_parser = component_parallelism)]
    pub executors: Vec<(String, u32)>,
    /// Seconds the spouts stay paused before the topology is rescheduled [default: the
    /// topology's topology.message.timeout.secs, as in Storm].
    #[arg(long, short = 'w', value_name = "SECS")]
    pub wait: Option<u64>,
}

/// A topology name that Nimbus would accept.
fn topology_name(s: &str) -> Result<String, String> {
    check_topology_name(s).map(|()| s.to_string())
}

/// `key=value` with a non-empty key.
fn config_override(s: &str) -> Result<String, String> {
    match s.split_once('=') {
        Some((k, _)) if !k.trim().is_empty() => Ok(s.to_string()),
        _ => Err(format!(
            "{s:?} is not key=value; e.g. -c topology.max.spout.pending=1000"
        )),
    }
}

/// `COMPONENT=PAR` with PAR at least 1.
fn component_parallelism(s: &str) -> Result<(String, u32), String> {
    let (component, par) = s
        .split_once('=')
        .ok_or_else(|| format!("{s:?} is not COMPONENT=PAR; e.g. -e split=4"))?;
    let component = component.trim();
    if component.is_empty() {
        return Err(format!("{s:?} names no component; e.g. -e split=4"));
    }
    match par.trim().parse::<u32>() {
        Ok(n) if n >= 1 => Ok((component.to_string(), n)),
        _ => Err(format!(
            "{s:?}: parallelism {par:?} must be a whole number of at least 1"
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn the_command_line_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn rebalance_takes_storm_style_options() {
        let cli = Cli::try_parse_from([
            "tempest",
            "rebalance",
            "wc",
            "-n",
            "3",
            "-e",
            "split=4",
            "-e",
            "count=2",
            "-w",
            "5",
        ])
        .unwrap();
        let Command::Rebalance(r) = cli.command else {
            panic!("{:?}", cli.command)
        };
        assert_eq!(r.workers, Some(3));
        assert_eq!(
            r.executors,
            vec![("split".to_string(), 4), ("count".to_string(), 2)]
        );
        assert_eq!(r.wait, Some(5));
    }

    #[test]
    fn bad_values_are_usage_errors() {
        for bad in [
            vec!["tempest", "describe", "../etc"],
            vec!["tempest", "kill", "wc", "--wait", "-1"],
            vec!["tempest", "rebalance", "wc", "-e", "split"],
            vec!["tempest", "rebalance", "wc", "-e", "split=0"],
            vec!["tempest", "rebalance", "wc", "-n", "0"],
            vec!["tempest", "submit", "bin", "--name", "wc", "-c", "novalue"],
            vec!["tempest", "submit", "bin", "--name", "wc", "--workers", "0"],
            vec!["tempest", "submit", "bin"],
        ] {
            let e = Cli::try_parse_from(&bad).unwrap_err();
            assert_eq!(e.exit_code(), 2, "{bad:?}");
        }
    }

    #[test]
    fn global_options_go_anywhere() {
        let cli = Cli::try_parse_from(["tempest", "list", "--nimbus", "http://n:1"]).unwrap();
        assert_eq!(cli.nimbus.as_deref(), Some("http://n:1"));
        let cli = Cli::try_parse_from(["tempest", "kill", "wc"]).unwrap();
        let Command::Kill(k) = cli.command else {
            panic!()
        };
        assert_eq!(k.wait, None, "the topology's message timeout");
    }
}
