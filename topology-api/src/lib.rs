//! # topology-api: write Tempest topologies
//!
//! Implement [`Spout`] and [`Bolt`] (or [`BasicBolt`]), wire them with a [`TopologyBuilder`],
//! and end your binary's `main` with [`entry::main`]: `my-topology local` runs it in this
//! process; the cluster runs the same binary on its workers.
//!
//! Tuple trees are tracked with Storm's XOR acker: emit from a spout with a message id, anchor
//! bolt emits to their inputs, ack every input, and the spout's `ack` or `fail` is called once
//! per message id.
#![warn(missing_docs, unreachable_pub)]

mod acker;
mod builder;
pub mod client;
mod collector;
mod component;
pub mod config;
pub mod control;
pub mod entry;
mod executor;
mod grouping;
mod local;
mod metrics;
pub mod monitor;
pub mod spec;
mod transfer;
mod transport;
mod tuple;
pub mod validate;
mod value;
mod worker;
mod worker_process;

pub use async_trait::async_trait;
pub use builder::{BoltDeclarer, Source, SpoutDeclarer, Topology, TopologyBuilder};
pub use collector::{
    BasicOutputCollector, EmitError, OutputCollector, SpoutOutputCollector, TaskStats,
};
pub use component::{
    BasicBolt, Bolt, ComponentError, ComponentResult, OutputDeclarer, Spout, TopologyContext,
};
pub use config::Config;
pub use executor::{ExecutorError, TaskReport, TopologyStatus};
pub use grouping::{CustomGrouping, CustomGroupingFactory};
pub use local::{run_local, run_local_blocking, LocalOptions, LocalReport};
pub use metrics::MetricsBoard;
pub use spec::{GroupingSpec, TopologySpec};
pub use tuple::{FieldKey, Fields, Tuple, TupleError, DEFAULT_STREAM, TICK_STREAM};
pub use value::{Value, Values};
pub use worker::{plan_executors, run_executors, ExecutorPlan, RunError};
pub use worker_process::{run_worker, WorkerError, WorkerExit, WorkerOptions};

/// Everything a topology author usually needs.
pub mod prelude {
    pub use crate::{
        async_trait, values, BasicBolt, BasicOutputCollector, Bolt, ComponentError,
        ComponentResult, Config, CustomGrouping, OutputCollector, OutputDeclarer, Spout,
        SpoutOutputCollector, Topology, TopologyBuilder, TopologyContext, Tuple, Value, Values,
    };
}

/// The README's Rust code blocks, compiled as doctests so the tutorial stays true.
#[cfg(doctest)]
#[doc = include_str!("../../README.md")]
pub struct ReadmeDoctests;
