//! Testing topologies in a normal `cargo test` (feature `testing`; Storm's `Testing` API).
//!
//! - [`complete_topology`]: run a built topology in this process with [`MockedSources`] (its
//!   spouts replaced by given tuples) until every tree completed or failed, and get back what
//!   each component emitted per stream, what the spouts' tuples did (acked, failed and why)
//!   and the errors reported ([`Completed`]).
//! - [`TrackedTopology`]: start a topology whose spouts are [`Feeder`]s, feed tuples, wait
//!   until nothing is in flight, assert, feed more.
//! - [`Faults`]: make a chosen task fail a tuple, panic or restart, and assert the replay.
//! - [`BoltTester`]: drive one bolt (plain, basic, windowed or stateful) with input tuples.
//! - [`simulated`]: run a test on simulated time — message timeouts, tick tuples, window
//!   and watermark timers and checkpoint intervals fire without waiting, at the same point of
//!   the run every time (the runtime's clock is tokio's; see `docs/design/clock.md`).
//! - [`same_in_order`] / [`same_multiset`]: compare tuple lists.
//!
//! Emits are captured by one extra bolt, [`CAPTURE`], that subscribes to every non-direct
//! stream of every component (global grouping) and acks what it gets: a tuple emitted on a
//! direct stream is not captured.

mod bolt;
mod capture;
mod compare;
mod complete;
mod faults;
mod mock;
mod time;
mod tracked;

pub use bolt::{BoltTester, INPUT};
pub use capture::{Captured, CAPTURE};
pub use compare::{same_in_order, same_multiset};
pub use complete::{complete_topology, CompleteOptions, Completed, TestError};
pub use faults::{Fault, Faults};
pub use mock::{MockedSources, SpoutOutcomes};
pub use time::{advance, simulated};
pub use tracked::{Feeder, TrackedTopology};
