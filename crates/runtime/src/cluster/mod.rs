//! Worker mode: the topology binary as one worker of a cluster, and how its batches cross the
//! wire to the other workers.

mod wire;
mod worker;

pub use worker::{run_worker, WorkerError, WorkerExit, WorkerOptions};
