//! Moving batches between executors: the messages on the queues (tuples, and the acker's
//! bookkeeping), the per-task batching outbox, and the table of queues an executor may send to.
//!
//! Every queue is a bounded tokio channel of batches: a full queue makes the sender wait
//! (backpressure); nothing is dropped and memory stays bounded by capacity x batch size.

use crate::tuple::Tuple;
#[cfg(feature = "cluster")]
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::mpsc;

/// Bookkeeping sent to an acker task.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub(crate) enum AckerMsg {
    /// A spout emitted a tracked tuple: start the tree.
    Init {
        root: u64,
        xor: u64,
        spout_task: u32,
    },
    /// A tuple of the tree was acked.
    Ack { root: u64, xor: u64 },
    /// A tuple of the tree was failed.
    Fail { root: u64 },
}

/// What an acker tells the spout task that emitted a root.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub(crate) enum TreeOutcome {
    Acked { root: u64 },
    Failed { root: u64 },
}

/// What travels on an executor's input queue: a batch for one of its tasks.
#[derive(Debug)]
pub(crate) struct Envelope {
    pub task: u32,
    pub payload: Payload,
}

/// A batch of one kind of message.
#[derive(Debug)]
pub(crate) enum Payload {
    /// Tuples for a bolt task.
    Tuples(Vec<Tuple>),
    /// Tuple-tree bookkeeping for an acker task.
    Acker(Vec<AckerMsg>),
    /// Completed or failed trees for a spout task.
    Outcomes(Vec<TreeOutcome>),
}

pub(crate) type Inbox = mpsc::Receiver<Envelope>;
pub(crate) type InboxSender = mpsc::Sender<Envelope>;

/// Per-destination buffers of one message kind.
struct Buffers<T> {
    by_task: Vec<Vec<T>>,
    dirty: Vec<u32>,
}

impl<T> Buffers<T> {
    fn new(max_task: u32) -> Self {
        Buffers {
            by_task: (0..=max_task).map(|_| Vec::new()).collect(),
            dirty: Vec::new(),
        }
    }

    /// Adds an item; returns the batch if it reached `batch_size`.
    #[inline]
    fn push(&mut self, task: u32, item: T, batch_size: usize) -> Option<Vec<T>> {
        let buf = &mut self.by_task[task as usize];
        if buf.is_empty() {
            self.dirty.push(task);
            buf.reserve(batch_size.min(1024));
        }
        buf.push(item);
        if buf.len() >= batch_size {
            // Leave the task in `dirty`; drain skips empty buffers.
            Some(std::mem::take(buf))
        } else {
            None
        }
    }

    fn drain(&mut self, mut f: impl FnMut(u32, Vec<T>)) {
        for task in self.dirty.drain(..) {
            let buf = std::mem::take(&mut self.by_task[task as usize]);
            if !buf.is_empty() {
                f(task, buf);
            }
        }
    }
}

/// Batches an executor's outgoing messages per destination task.
///
/// Pushing never blocks: full batches move to `ready`, which the executor sends (awaiting queue
/// space) between callbacks. `flush` moves every partial batch to `ready` as well.
pub(crate) struct Outbox {
    batch_size: usize,
    tuples: Buffers<Tuple>,
    acker: Buffers<AckerMsg>,
    outcomes: Buffers<TreeOutcome>,
    pub ready: Vec<Envelope>,
    buffered_since: Option<Instant>,
}

impl Outbox {
    pub(crate) fn new(max_task: u32, batch_size: usize) -> Self {
        Outbox {
            batch_size,
            tuples: Buffers::new(max_task),
            acker: Buffers::new(max_task),
            outcomes: Buffers::new(max_task),
            ready: Vec::new(),
            buffered_since: None,
        }
    }

    #[inline]
    fn mark(&mut self) {
        if self.buffered_since.is_none() {
            self.buffered_since = Some(Instant::now());
        }
    }

    #[inline]
    pub(crate) fn push_tuple(&mut self, task: u32, t: Tuple) {
        self.mark();
        if let Some(b) = self.tuples.push(task, t, self.batch_size) {
            self.ready.push(Envelope {
                task,
                payload: Payload::Tuples(b),
            });
        }
    }

    #[inline]
    pub(crate) fn push_acker(&mut self, task: u32, m: AckerMsg) {
        self.mark();
        if let Some(b) = self.acker.push(task, m, self.batch_size) {
            self.ready.push(Envelope {
                task,
                payload: Payload::Acker(b),
            });
        }
    }

    #[inline]
    pub(crate) fn push_outcome(&mut self, task: u32, m: TreeOutcome) {
        self.mark();
        if let Some(b) = self.outcomes.push(task, m, self.batch_size) {
            self.ready.push(Envelope {
                task,
                payload: Payload::Outcomes(b),
            });
        }
    }

    /// Moves every partial batch to `ready`.
    pub(crate) fn flush(&mut self) {
        let ready = &mut self.ready;
        self.tuples.drain(|task, b| {
            ready.push(Envelope {
                task,
                payload: Payload::Tuples(b),
            })
        });
        self.acker.drain(|task, b| {
            ready.push(Envelope {
                task,
                payload: Payload::Acker(b),
            })
        });
        self.outcomes.drain(|task, b| {
            ready.push(Envelope {
                task,
                payload: Payload::Outcomes(b),
            })
        });
        self.buffered_since = None;
    }

    /// True if a partial batch has waited longer than `interval`.
    pub(crate) fn flush_due(&self, now: Instant, interval: Duration) -> bool {
        self.buffered_since
            .is_some_and(|t| now.duration_since(t) >= interval)
    }
}

/// Why a batch could not be delivered.
#[derive(Debug, thiserror::Error)]
pub(crate) enum TransferError {
    #[error("no route to task {0} from this executor")]
    NoRoute(u32),
    #[error("task {0} has shut down")]
    Closed(u32),
}

/// A queue a batch for one task goes to.
#[derive(Clone)]
enum Route {
    /// The task's executor runs in this process.
    Local(InboxSender),
    /// The task runs in another worker: the queue of the link to it, which the transport
    /// repoints when the task's worker moves.
    #[cfg(feature = "cluster")]
    Remote(Arc<tempest_transport::RemoteRoute<Envelope>>),
}

/// The sender of a route: borrowed for a local queue, a clone for a remote one.
pub(crate) enum RouteSender<'a> {
    Local(&'a InboxSender),
    #[cfg(feature = "cluster")]
    Remote(InboxSender),
}

impl std::ops::Deref for RouteSender<'_> {
    type Target = InboxSender;

    fn deref(&self) -> &InboxSender {
        match self {
            RouteSender::Local(s) => s,
            #[cfg(feature = "cluster")]
            RouteSender::Remote(s) => s,
        }
    }
}

/// The queues one executor may send to, by destination task.
///
/// An executor holds senders only for its consumers (and ackers/spouts for tree bookkeeping), so
/// when every producer of a queue has finished, the queue closes and its executor drains and
/// stops: shutdown flows down the DAG by itself.
#[derive(Clone, Default)]
pub(crate) struct Transfer {
    routes: Vec<Option<Route>>,
}

impl Transfer {
    pub(crate) fn new(max_task: u32) -> Self {
        Transfer {
            routes: vec![None; max_task as usize + 1],
        }
    }

    /// Routes `task` to a queue of this process.
    pub(crate) fn add(&mut self, task: u32, sender: InboxSender) {
        self.routes[task as usize] = Some(Route::Local(sender));
    }

    /// Routes `task` to another worker through `route`.
    #[cfg(feature = "cluster")]
    pub(crate) fn add_remote(
        &mut self,
        task: u32,
        route: Arc<tempest_transport::RemoteRoute<Envelope>>,
    ) {
        self.routes[task as usize] = Some(Route::Remote(route));
    }

    /// Copies the route of `task` in `other` (if it has one) into this table.
    pub(crate) fn add_from(&mut self, task: u32, other: &Transfer) {
        if let Some(route) = other.routes.get(task as usize).cloned().flatten() {
            self.routes[task as usize] = Some(route);
        }
    }

    /// This table, with `other`'s routes for the tasks it has none for.
    #[cfg(feature = "cluster")]
    pub(crate) fn merged(&self, other: &Transfer) -> Transfer {
        let n = self.routes.len().max(other.routes.len());
        let routes = (0..n)
            .map(|i| {
                self.routes
                    .get(i)
                    .cloned()
                    .flatten()
                    .or_else(|| other.routes.get(i).cloned().flatten())
            })
            .collect();
        Transfer { routes }
    }

    pub(crate) fn sender(&self, task: u32) -> Result<RouteSender<'_>, TransferError> {
        match self.routes.get(task as usize).and_then(Option::as_ref) {
            Some(Route::Local(s)) => Ok(RouteSender::Local(s)),
            #[cfg(feature = "cluster")]
            Some(Route::Remote(r)) => Ok(RouteSender::Remote(r.queue())),
            None => Err(TransferError::NoRoute(task)),
        }
    }

    /// Sends one batch, waiting for queue space.
    pub(crate) async fn send(&self, env: Envelope) -> Result<(), TransferError> {
        let task = env.task;
        self.sender(task)?
            .send(env)
            .await
            .map_err(|_| TransferError::Closed(task))
    }
}
