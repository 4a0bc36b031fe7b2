//! # tempest-server: what every Tempest process shares
//!
//! One way to set up logging ([`logging`]), to wait for a shutdown signal ([`shutdown`]), to
//! layer a daemon's config (file < environment < flags, [`config`]) and to check the cluster
//! secret on an HTTP server ([`secret`]), used by Nimbus, supervisors, the CLI and topology
//! binaries alike.

#[cfg(feature = "config")]
pub mod config;
#[cfg(feature = "http")]
pub mod linger;
pub mod logging;
#[cfg(feature = "http")]
pub mod secret;
pub mod shutdown;
