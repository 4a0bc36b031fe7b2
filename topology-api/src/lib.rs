//! # topology-api: write Tempest topologies
//!
//! Implement [`Spout`] and [`Bolt`] (or [`BasicBolt`]), wire them with a [`TopologyBuilder`],
//! and end your binary's `main` with [`entry::main`]: `my-topology local` runs it in this
//! process; the cluster runs the same binary on its workers.
//!
//! Tuple trees are tracked with Storm's XOR acker: emit from a spout with a message id, anchor
//! bolt emits to their inputs, ack every input, and the spout's `ack` or `fail` is called once
//! per message id.
//!
//! ## Features
//! What the binary can do besides `local` (which it always can):
//! - `cluster`: run as a worker of a cluster (`<binary> worker ...`, started by a supervisor);
//! - `submit`: submit itself to Nimbus (`<binary> submit --nimbus URL`);
//! - `ui`: serve the web UI and REST API in local mode (`<binary> local --ui PORT`);
//! - `testing` (off by default, for dev-dependencies): the `testing` module's harness.
//!
//! All are on by default; `default-features = false` gives a binary that only runs locally,
//! with the fewest dependencies (see the README for what each costs).

mod builder;
pub mod entry;
#[cfg(feature = "testing")]
pub mod testing;

pub use async_trait::async_trait;
pub use builder::{BoltDeclarer, Source, SpoutDeclarer, TopologyBuilder};
pub use tempest_runtime::{
    run_local, run_local_blocking, values, BasicBolt, BasicOutputCollector, Bolt, BoltEvent,
    BoltFailure, ComponentError, ComponentResult, CustomGrouping, CustomGroupingFactory, EmitError,
    EventSender, ExecuteNow, ExecutorError, FailReason, FieldKey, Fields, JsonValueError,
    KeyValueState, LocalOptions, LocalReport, OutputCollector, OutputDeclarer, RunError, Spout,
    SpoutOutputCollector, StatefulBolt, TaskReport, TaskStats, Topology, TopologyContext, Tuple,
    TupleError, Value, Values, Window, WindowCollector, WindowSize, WindowedBolt, Windowing,
    DEFAULT_STREAM, TICK_STREAM,
};
pub use tempest_runtime::{OutputMode, Reduce, WindowAggregate, WindowSpan};

/// Stateful bolts' stores and their errors.
pub mod state {
    pub use tempest_runtime::state::*;
}

/// Topology configuration: [`Config`] and the keys Tempest reads, with their defaults.
pub mod config {
    pub use tempest_protocol::config::*;
}

/// The serializable description of a topology, as Nimbus and the workers see it.
pub mod spec {
    pub use tempest_protocol::spec::*;
}

/// The checks `TopologyBuilder::build` (and `submit`) make.
pub mod validate {
    pub use tempest_protocol::validate::*;
}

/// Running as a worker of a cluster (what `<binary> worker` does).
#[cfg(feature = "cluster")]
pub mod cluster {
    pub use tempest_runtime::cluster::*;
}

pub use config::Config;
pub use spec::{GroupingSpec, TopologySpec};

/// Everything a topology author usually needs.
pub mod prelude {
    pub use crate::{
        async_trait, values, BasicBolt, BasicOutputCollector, Bolt, ComponentError,
        ComponentResult, Config, CustomGrouping, ExecuteNow, FailReason, KeyValueState,
        OutputCollector, OutputDeclarer, OutputMode, Reduce, Spout, SpoutOutputCollector,
        StatefulBolt, Topology, TopologyBuilder, TopologyContext, Tuple, Value, Values, Window,
        WindowAggregate, WindowCollector, WindowSize, WindowSpan, WindowedBolt, Windowing,
    };
}

/// The README's Rust code blocks, compiled as doctests so the tutorial stays true.
#[cfg(doctest)]
#[doc = include_str!("../../README.md")]
pub struct ReadmeDoctests;
