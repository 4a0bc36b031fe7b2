//! Moving batches between executors: the messages on the queues (tuples, and the acker's
//! bookkeeping), the per-task batching outbox, and the table of queues an executor may send to.
//!
//! Every queue is a bounded tokio channel of batches: a full queue makes the sender wait
//! (backpressure); nothing is dropped and memory stays bounded by capacity x batch size.

use crate::failure::FailReason;
use crate::tuple::Tuple;
#[cfg(feature = "cluster")]
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::mpsc;

/// Bookkeeping sent to an acker task. Acks are two words; only a failure carries more (its
/// reason, boxed, so the message stays as small as an `Init`).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub(crate) enum AckerMsg {
    /// A spout emitted a tracked tuple: start the tree.
    Init {
        root: u64,
        xor: u64,
        spout_task: u32,
    },
    /// A tuple of the tree was acked.
    Ack { root: u64, xor: u64 },
    /// A tuple of the tree was failed, for this reason.
    Fail { root: u64, reason: Box<FailReason> },
}

#[cfg(test)]
impl AckerMsg {
    /// A failure of `root` by a bolt "b" task 1, for tests.
    pub(crate) fn test_fail(root: u64) -> Self {
        AckerMsg::Fail {
            root,
            reason: Box::new(FailReason::bolt(
                "b",
                1,
                crate::failure::BoltFailure::Failed,
                "",
            )),
        }
    }
}

/// What an acker tells the spout task that emitted a root.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub(crate) enum TreeOutcome {
    Acked { root: u64 },
    Failed { root: u64, reason: Box<FailReason> },
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

/// The tasks an executor sends to, numbered densely: its outbox has a buffer per destination,
/// not per task of the topology (whose memory would grow with tasks squared). Destinations
/// come in a few contiguous task ranges (a component's tasks are contiguous), so a lookup is a
/// scan of those.
#[derive(Debug, Clone, Default)]
pub(crate) struct Destinations {
    /// (first task, end task, slot of the first task), by first task.
    ranges: Vec<(u32, u32, usize)>,
    slots: usize,
}

impl Destinations {
    /// The destinations `tasks` (in any order, repeats allowed).
    pub(crate) fn of(tasks: impl IntoIterator<Item = u32>) -> Self {
        let mut tasks: Vec<u32> = tasks.into_iter().collect();
        tasks.sort_unstable();
        tasks.dedup();
        let mut ranges: Vec<(u32, u32, usize)> = Vec::new();
        for (slot, t) in tasks.iter().copied().enumerate() {
            match ranges.last_mut() {
                Some((_, end, _)) if *end == t => *end = t + 1,
                _ => ranges.push((t, t + 1, slot)),
            }
        }
        Destinations {
            ranges,
            slots: tasks.len(),
        }
    }

    /// The slot of `task`.
    #[inline]
    fn slot(&self, task: u32) -> Option<usize> {
        self.ranges
            .iter()
            .find(|(start, end, _)| (*start..*end).contains(&task))
            .map(|(start, _, base)| base + (task - start) as usize)
    }

    /// The task of `slot`.
    fn task(&self, slot: usize) -> u32 {
        let (start, _, base) = self
            .ranges
            .iter()
            .rev()
            .find(|(_, _, base)| *base <= slot)
            .copied()
            .unwrap_or_default();
        start + (slot - base) as u32
    }
}

/// Per-destination buffers of one message kind.
struct Buffers<T> {
    by_slot: Vec<Vec<T>>,
    /// The length of the last batch sent to each slot: a new buffer reserves that much, so a
    /// destination that gets full batches allocates once per batch, and one that gets a tuple
    /// or two per flush (one of many consumer tasks) does not allocate room for a full batch.
    last_len: Vec<u32>,
    dirty: Vec<usize>,
}

impl<T> Buffers<T> {
    fn new(slots: usize) -> Self {
        Buffers {
            by_slot: (0..slots).map(|_| Vec::new()).collect(),
            last_len: vec![0; slots],
            dirty: Vec::new(),
        }
    }

    /// Adds an item; returns the batch if it reached `batch_size`.
    #[inline]
    fn push(&mut self, slot: usize, item: T, batch_size: usize) -> Option<Vec<T>> {
        let buf = &mut self.by_slot[slot];
        if buf.is_empty() {
            self.dirty.push(slot);
            let most = batch_size.min(1024);
            buf.reserve((self.last_len[slot] as usize).clamp(most.min(4), most));
        }
        buf.push(item);
        if buf.len() >= batch_size {
            // Leave the slot in `dirty`; drain skips empty buffers.
            self.last_len[slot] = buf.len() as u32;
            Some(std::mem::take(buf))
        } else {
            None
        }
    }

    fn drain(&mut self, mut f: impl FnMut(usize, Vec<T>)) {
        for slot in self.dirty.drain(..) {
            let buf = std::mem::take(&mut self.by_slot[slot]);
            if !buf.is_empty() {
                self.last_len[slot] = buf.len() as u32;
                f(slot, buf);
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
    destinations: Destinations,
    tuples: Buffers<Tuple>,
    acker: Buffers<AckerMsg>,
    outcomes: Buffers<TreeOutcome>,
    pub ready: Vec<Envelope>,
    buffered_since: Option<Instant>,
}

impl Outbox {
    /// An outbox for an executor that sends to `destinations`.
    pub(crate) fn new(destinations: Destinations, batch_size: usize) -> Self {
        let slots = destinations.slots;
        Outbox {
            batch_size,
            destinations,
            tuples: Buffers::new(slots),
            acker: Buffers::new(slots),
            outcomes: Buffers::new(slots),
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

    /// The buffer slot of `task`; a task this executor has no route to is a bug in the
    /// caller (routers only name consumers).
    #[inline]
    fn slot(&self, task: u32) -> usize {
        self.destinations
            .slot(task)
            .unwrap_or_else(|| panic!("task {task} is not a destination of this executor"))
    }

    #[inline]
    pub(crate) fn push_tuple(&mut self, task: u32, t: Tuple) {
        self.mark();
        let slot = self.slot(task);
        if let Some(b) = self.tuples.push(slot, t, self.batch_size) {
            self.ready.push(Envelope {
                task,
                payload: Payload::Tuples(b),
            });
        }
    }

    /// Adds a message for acker `task`. An ack of the same tree as the message before it is
    /// folded into that one (XOR is associative, and a tree cannot complete between two acks
    /// of its own that are still buffered together): a bolt acking the several tuples of one
    /// tree in a row, as a count bolt acking a sentence's words does, sends one message.
    #[inline]
    pub(crate) fn push_acker(&mut self, task: u32, m: AckerMsg) {
        self.mark();
        let slot = self.slot(task);
        if let AckerMsg::Ack { root, xor } = &m {
            let (root, xor) = (*root, *xor);
            if let Some(AckerMsg::Ack {
                root: last_root,
                xor: last_xor,
            }) = self.acker.by_slot[slot].last_mut()
            {
                if *last_root == root {
                    *last_xor ^= xor;
                    return;
                }
            }
        }
        if let Some(b) = self.acker.push(slot, m, self.batch_size) {
            self.ready.push(Envelope {
                task,
                payload: Payload::Acker(b),
            });
        }
    }

    #[inline]
    pub(crate) fn push_outcome(&mut self, task: u32, m: TreeOutcome) {
        self.mark();
        let slot = self.slot(task);
        if let Some(b) = self.outcomes.push(slot, m, self.batch_size) {
            self.ready.push(Envelope {
                task,
                payload: Payload::Outcomes(b),
            });
        }
    }

    /// Moves every partial batch to `ready`.
    pub(crate) fn flush(&mut self) {
        let ready = &mut self.ready;
        let d = &self.destinations;
        self.tuples.drain(|slot, b| {
            ready.push(Envelope {
                task: d.task(slot),
                payload: Payload::Tuples(b),
            })
        });
        self.acker.drain(|slot, b| {
            ready.push(Envelope {
                task: d.task(slot),
                payload: Payload::Acker(b),
            })
        });
        self.outcomes.drain(|slot, b| {
            ready.push(Envelope {
                task: d.task(slot),
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn destinations_number_task_ranges_densely_both_ways() {
        let d = Destinations::of([9, 3, 4, 5, 12, 10, 4]);
        assert_eq!(d.slots, 6);
        let slots: Vec<Option<usize>> = [3, 4, 5, 9, 10, 12, 6, 11, 1]
            .iter()
            .map(|&t| d.slot(t))
            .collect();
        assert_eq!(
            slots,
            [
                Some(0),
                Some(1),
                Some(2),
                Some(3),
                Some(4),
                Some(5),
                None,
                None,
                None
            ]
        );
        for slot in 0..d.slots {
            assert_eq!(d.slot(d.task(slot)), Some(slot));
        }
        assert_eq!(Destinations::of([]).slots, 0);
    }

    #[test]
    fn a_full_batch_is_ready_and_a_flush_sends_the_rest_to_the_right_tasks() {
        let mut o = Outbox::new(Destinations::of([7, 8, 20]), 2);
        o.push_acker(20, AckerMsg::test_fail(1));
        o.push_acker(8, AckerMsg::test_fail(2));
        o.push_acker(20, AckerMsg::test_fail(3));
        assert_eq!(o.ready.len(), 1);
        assert_eq!(o.ready[0].task, 20);
        o.flush();
        let tasks: Vec<u32> = o.ready.iter().map(|e| e.task).collect();
        assert_eq!(tasks, [20, 8]);
    }

    #[test]
    fn consecutive_acks_of_one_tree_fold_into_one_message_and_nothing_else_does() {
        let mut o = Outbox::new(Destinations::of([1, 2]), 100);
        let ack = |root, xor| AckerMsg::Ack { root, xor };
        for m in [ack(5, 0b0011), ack(5, 0b0101), ack(6, 0b1000)] {
            o.push_acker(1, m);
        }
        o.push_acker(2, ack(6, 0b0001));
        o.push_acker(1, AckerMsg::test_fail(6));
        o.push_acker(1, ack(6, 0b0100));
        o.push_acker(1, ack(6, 0b0010));
        o.flush();
        let batches: Vec<(u32, Vec<AckerMsg>)> = o
            .ready
            .drain(..)
            .map(|e| match e.payload {
                Payload::Acker(m) => (e.task, m),
                other => panic!("not acker messages: {other:?}"),
            })
            .collect();
        assert_eq!(
            batches,
            [
                (
                    1,
                    vec![
                        ack(5, 0b0110),
                        ack(6, 0b1000),
                        AckerMsg::test_fail(6),
                        ack(6, 0b0110)
                    ]
                ),
                (2, vec![ack(6, 0b0001)]),
            ]
        );
    }
}
