//! # tempest-protocol: what Tempest's processes say to each other
//!
//! The types every part of Tempest shares, with no I/O: a topology's [`spec`] (components,
//! streams, groupings, the task layout and executors), its [`config`] (keys, types, defaults,
//! checks), its [`validate`]ion, the control-plane messages between Nimbus, supervisors, workers
//! and the CLI ([`control`]), what spouts are told to do ([`status`]), the cluster secret
//! ([`auth`]), the names that end up in paths ([`names`]) and Nimbus seed lists ([`seeds`]). Each
//! is defined once, here.

pub mod auth;
pub mod config;
pub mod control;
pub mod names;
pub mod seeds;
pub mod spec;
pub mod status;
pub mod validate;

pub use config::Config;
pub use spec::{plan_executors, ExecutorPlan, GroupingSpec, TaskLayout, TopologySpec};
pub use status::TopologyStatus;
