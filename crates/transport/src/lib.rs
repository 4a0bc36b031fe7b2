//! # tempest-transport: connections between workers
//!
//! Per pair of workers, two TCP connections ("lanes") carry length-prefixed frames of batches
//! for the receiving worker's tasks. This crate knows nothing of tuples: the runtime says what
//! a batch is and how it is encoded, delivered and failed ([`Wire`]); the transport keeps the
//! connections up and routes each task's batches to the link of the worker that hosts it.
//!
//! - The **data** lane carries tuples to bolt tasks; the **control** lane carries acker messages
//!   and tree outcomes to acker and spout tasks ([`Lane`]). Inside a worker, the spout -> bolts
//!   -> acker -> spout cycle cannot deadlock because ackers and spouts always drain their
//!   queues; across workers that only holds if their traffic never waits behind tuples stuck on
//!   a full bolt queue (head-of-line blocking on a shared connection). Separate lanes keep it
//!   true.
//! - Of each pair, the worker with the lower address dials both lanes; each connection is then
//!   used in both directions, so a link lives as long as its peer is in the assignment, whether
//!   or not this worker ever sends on it (it may only receive).
//! - Handshake ([`handshake`]): the dialer sends `Hello` (cluster secret, topology, assignment
//!   version, its address, the lane); the acceptor answers `Welcome`, or `Refused` with the
//!   reason, and only a welcomed connection carries batches. A connection accepted for a link
//!   replaces the one the link had: the dialer only dials when its side of the old one is gone.
//! - Dialing backs off exponentially with jitter and says so in the log once per doubling of
//!   the attempts ([`backoff`]), so an unreachable peer costs a few lines, not a disk.
//! - Each link has a bounded queue; the routes of the peer's tasks point to it through a
//!   [`RemoteRoute`], repointed when a new assignment moves tasks to another worker
//!   ([`TransportHandle::update`]). Batches that cannot be delivered (the connection broke, or
//!   the peer stayed unreachable for [`HOLD`]) go to [`Wire::undeliverable`], which fails their
//!   tuple trees: nothing is dropped silently.

pub mod backoff;
mod frame;
#[cfg(test)]
mod fuzz;
pub mod handshake;
mod link;
mod transport;
mod wire;

pub use frame::{Handshake, Lane, LANES, MAX_FRAME, MAX_HANDSHAKE_FRAME};
pub use handshake::Identity;
pub use link::HOLD;
pub use transport::{Peer, RemoteRoute, Transport, TransportHandle};
pub use wire::Wire;
