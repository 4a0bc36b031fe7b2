//! What the runtime tells the transport about its batches.

use bytes::BytesMut;
use std::future::Future;

/// How batches of one runtime are written, delivered and failed. The transport moves them;
/// what they mean is the runtime's.
pub trait Wire: Send + Sync + 'static {
    /// What executors queue for a remote task (one destination task each).
    type Batch: Send + 'static;

    /// The task a batch is for.
    fn task(batch: &Self::Batch) -> u32;

    /// Appends the encoding of `batches` to `out` (one frame's body).
    fn encode(&self, batches: &[Self::Batch], out: &mut Vec<u8>) -> std::io::Result<()>;

    /// Hands a frame's body, received from `peer`, to this worker's tasks, waiting for queue
    /// space (backpressure reaches the peer through TCP). An error closes that connection.
    fn deliver(
        &self,
        frame: BytesMut,
        peer: &str,
    ) -> impl Future<Output = Result<(), String>> + Send;

    /// A batch that cannot be delivered to `peer` (it is unreachable, its connection broke,
    /// it left the assignment, or the batch is too large for a frame), `why` saying which;
    /// returns how many tuple trees were failed because of it.
    fn undeliverable(&self, batch: Self::Batch, peer: &str, why: &str) -> usize;
}
