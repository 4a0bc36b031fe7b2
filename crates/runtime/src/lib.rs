//! # tempest-runtime: what runs a topology
//!
//! The components' traits and collectors, tuples and values, groupings, the batching queues,
//! the XOR acker, the executors, and the two ways to run a [`Topology`]: all of it in this
//! process ([`run_local`]), or one worker of a cluster (`cluster::run_worker`, with the
//! `cluster` feature). Topology authors use it through `topology-api`, which re-exports what
//! they need.
//!
//! Features: `cluster` (worker mode: the TCP transport and the Nimbus client), `ui` (local
//! mode's web UI and REST API).

mod acker;
mod catch_unwind;
mod clock;
#[cfg(feature = "cluster")]
pub mod cluster;
mod collector;
mod component;
mod executor;
mod failure;
mod grouping;
mod local;
#[cfg(feature = "ui")]
mod local_ui;
mod metrics;
mod settings;
pub mod state;
mod topology;
mod transfer;
mod tuple;
mod value;
pub mod window;
mod worker;

pub use collector::{
    BasicOutputCollector, EmitError, OutputCollector, SpoutOutputCollector, TaskStats,
};
pub use component::{
    BasicBolt, BasicBoltAdapter, Bolt, BoltEvent, ComponentError, ComponentResult, EventSender,
    ExecuteNow, OutputDeclarer, Spout, TopologyContext,
};
pub use executor::{ExecutorError, TaskReport};
pub use failure::{BoltFailure, FailReason};
pub use grouping::{CustomGrouping, CustomGroupingFactory};
pub use local::{run_local, run_local_blocking, LocalOptions, LocalReport};
pub use metrics::MetricsBoard;
pub use state::{KeyValueState, StatefulBolt, StatefulBoltAdapter};
pub use topology::{BoltFactory, SpecMismatch, SpoutFactory, Topology};
pub use tuple::{FieldKey, Fields, Tuple, TupleError, DEFAULT_STREAM, TICK_STREAM};
pub use value::{JsonValueError, Value, Values};
pub use window::{
    AggregatingBoltAdapter, OutputMode, Reduce, Window, WindowAggregate, WindowCollector,
    WindowSize, WindowSpan, WindowedBolt, WindowedBoltAdapter, Windowing,
};
pub use worker::{run_executors, RunError};
