//! # tempest-multilang: spouts and bolts in any language
//!
//! [`ShellBolt`] and [`ShellSpout`] run a program per task (`python3 split.py`, or any
//! executable with arguments) and speak Storm's multilang protocol with it over its stdin and
//! stdout: JSON messages, each followed by a line `end`. Components written for Storm
//! (pystorm, streamparse, Storm's own `storm.py`, or plain code speaking the protocol) run
//! unchanged.
//!
//! The component's files ship inside the topology binary ([`resources!`]): each task extracts
//! them into its own working directory, so a supervisor on another host needs nothing but
//! the interpreter. See the README's "Components in other languages" section for what of
//! Storm's protocol is supported, and docs/design/multilang.md for how it works.
//!
//! Only topologies that depend on this crate link it.

mod bolt;
mod process;
mod protocol;
mod resources;
mod settings;
mod spout;

pub use bolt::ShellBolt;
pub use process::LaunchError;
pub use resources::{Files, Resources};
pub use settings::{
    JSON_SERIALIZER, SUPERVISOR_WORKER_TIMEOUT_SECS, TOPOLOGY_MULTILANG_SERIALIZER,
    TOPOLOGY_SHELL_BOLT_MAX_PENDING, TOPOLOGY_SUBPROCESS_TIMEOUT_SECS,
};
pub use spout::ShellSpout;

use std::fmt;
use topology_api::OutputDeclarer;

/// The program a shell component runs, with its arguments and extra environment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShellCommand {
    /// The program (looked up in `PATH` unless it has a slash).
    pub program: String,
    /// Its arguments.
    pub args: Vec<String>,
    /// Variables added to its environment.
    pub env: Vec<(String, String)>,
}

impl ShellCommand {
    /// `program` with `args`: `ShellCommand::new("python3", ["split.py"])`.
    pub fn new<I, S>(program: impl Into<String>, args: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        ShellCommand {
            program: program.into(),
            args: args.into_iter().map(Into::into).collect(),
            env: Vec::new(),
        }
    }

    /// Adds a variable to the subprocess's environment.
    pub fn env(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.env.push((key.into(), value.into()));
        self
    }
}

impl fmt::Display for ShellCommand {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.program)?;
        for a in &self.args {
            write!(f, " {a}")?;
        }
        Ok(())
    }
}

/// The streams a shell component declares (the subprocess cannot declare them: Storm's
/// shell components declare theirs in Java too).
#[derive(Debug, Clone, Default)]
pub(crate) struct Outputs(Vec<(String, Vec<String>, bool)>);

impl Outputs {
    pub(crate) fn add<I, S>(&mut self, stream: &str, fields: I, direct: bool)
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.0.push((
            stream.to_string(),
            fields.into_iter().map(Into::into).collect(),
            direct,
        ));
    }

    pub(crate) fn declare(&self, d: &mut OutputDeclarer) {
        for (stream, fields, direct) in &self.0 {
            if *direct {
                d.declare_direct_stream(stream, fields.clone());
            } else {
                d.declare_stream(stream, fields.clone());
            }
        }
    }
}
