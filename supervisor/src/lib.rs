//! Tempest supervisor: the node daemon that runs a topology's workers on its slot ports.
//!
//! It heartbeats to Nimbus with its id, host, slots and running workers; for each slot Nimbus
//! assigns to it, it caches the topology binary (by sha256) and keeps one worker process of the
//! assigned topology and version running on that port: started in its own process group,
//! restarted with a back-off when it exits, replaced when the assignment changes, stopped
//! (SIGTERM, then SIGKILL) when the slot is taken away. A restarted supervisor adopts the
//! workers it finds running. It serves its workers' log files over HTTP ([`log_server`]). The
//! behaviour is specified in `docs/design/control-plane.md` and `docs/design/rest-api.md`.
//!
//! [`run`] is the daemon; [`SupervisorConfig`] its configuration.
#![warn(missing_docs, unreachable_pub)]

pub mod adopt;
pub mod artifacts;
pub mod config;
pub mod data_dir;
pub mod heartbeat;
pub mod isolation;
pub mod log_server;
pub mod process;
pub mod reconcile;
pub mod slots;
mod supervisor;

pub use config::{ConfigError, ConfigOverrides, SupervisorConfig, Timings};
pub use supervisor::{run, SupervisorError};
