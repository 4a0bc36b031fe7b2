//! Output collectors: how components emit, anchor, ack and fail. Emitting only appends to the
//! executor's [`Outbox`]; the executor sends full batches between callbacks and flushes partial
//! ones when its input runs dry, so the user-visible model stays one tuple at a time.

use crate::clock;
use crate::failure::{BoltFailure, FailReason};
use crate::grouping::{Router, Targets};
use crate::metrics::{task_error, Latencies, MetricsBoard, PUBLISH_EVERY};
use crate::transfer::AckerMsg;
use crate::transfer::Outbox;
use crate::tuple::{Anchors, StreamMeta, Tuple, DEFAULT_STREAM};
use crate::value::Values;
use rustc_hash::FxHashMap;
use std::collections::VecDeque;
use std::ops::Range;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tempest_protocol::control::{FailureCounts, PartitionLag, TaskError, TaskMetrics};
use tempest_protocol::spec::CHECKPOINT_STREAM;

/// Why an emit was refused.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum EmitError {
    /// The component declared no such stream.
    #[error("{component} emitted on undeclared stream {stream:?}; declared streams: {declared:?}")]
    UnknownStream {
        /// The emitter.
        component: String,
        /// The stream named.
        stream: String,
        /// What it declared.
        declared: Vec<String>,
    },
    /// Values do not match the declared fields.
    #[error("{component} emitted {got} values on stream {stream:?}, which declares {fields:?}")]
    WrongArity {
        /// The emitter.
        component: String,
        /// The stream.
        stream: String,
        /// Its declared fields.
        fields: Vec<String>,
        /// Number of values emitted.
        got: usize,
    },
    /// `emit` on a direct stream, or `emit_direct` on a normal one.
    #[error("{component}: stream {stream:?} is {declared}, so use {use_instead}")]
    DirectMismatch {
        /// The emitter.
        component: String,
        /// The stream.
        stream: String,
        /// "declared direct" or "not declared direct".
        declared: &'static str,
        /// The method to call instead.
        use_instead: &'static str,
    },
    /// `emit_direct` to a task that does not consume the stream.
    #[error("{component} emitted directly to task {task} on stream {stream:?}, but that task does not consume it; consumers: {consumers:?}")]
    NotAConsumer {
        /// The emitter.
        component: String,
        /// The stream.
        stream: String,
        /// The task named.
        task: u32,
        /// The tasks that do consume it.
        consumers: Vec<u32>,
    },
}

/// How many recent errors a task keeps.
pub(crate) const MAX_KEPT_ERRORS: usize = 20;

/// One declared output stream of a task, with a router per consumer.
pub(crate) struct StreamOut {
    pub meta: &'static StreamMeta,
    pub direct: bool,
    pub routers: Vec<Router>,
    /// Tasks subscribed with direct grouping (sorted).
    pub direct_consumers: Vec<u32>,
}

/// The routing and batching shared by spout and bolt collectors.
pub(crate) struct Emitter {
    pub task_id: u32,
    pub component: String,
    streams: Vec<StreamOut>,
    pub outbox: Outbox,
    pub rng: fastrand::Rng,
    /// Acker task ids; empty when tracking is off.
    ackers: Range<u32>,
    debug: bool,
    targets: Targets,
    pub errors: VecDeque<TaskError>,
    pub stats: TaskStats,
    pub lat: Latencies,
    board: Option<Arc<MetricsBoard>>,
    /// The source positions a spout last reported.
    pub lag: Vec<PartitionLag>,
    /// The last checkpoint this task completed (checkpointed topologies).
    pub checkpoint: Option<u64>,
    /// Checkpoint barriers go to every task of every consumer: `barrier_meta` is this
    /// component's barrier stream, `barrier_targets` those tasks (sorted).
    pub barrier_meta: &'static StreamMeta,
    pub barrier_targets: Vec<u32>,
}

/// Per-task counters, owned by the task's executor (no atomics on the hot path).
#[derive(Debug, Default, Clone, Copy)]
pub struct TaskStats {
    /// Tuples emitted (counted once per emit call).
    pub emitted: u64,
    /// Tuple copies sent to consumer tasks.
    pub transferred: u64,
    /// Inputs acked (bolts) or trees completed (spouts).
    pub acked: u64,
    /// Inputs failed (bolts) or trees failed or timed out (spouts).
    pub failed: u64,
    /// Tuples executed (bolts).
    pub executed: u64,
    /// Tuples held now (windowed bolts).
    pub held: u64,
    /// Late tuples (event-time windowed bolts).
    pub late: u64,
    /// Spouts: the trees counted in `failed`, by why they failed.
    pub failures: FailureCounts,
}

impl Emitter {
    pub(crate) fn new(
        task_id: u32,
        component: String,
        streams: Vec<StreamOut>,
        outbox: Outbox,
        ackers: Range<u32>,
        debug: bool,
        board: Option<Arc<MetricsBoard>>,
    ) -> Self {
        let barrier_meta = StreamMeta::intern(
            &component,
            CHECKPOINT_STREAM,
            &crate::tuple::Fields::from(["id"]),
        );
        Emitter {
            task_id,
            component,
            streams,
            outbox,
            rng: fastrand::Rng::new(),
            ackers,
            debug,
            targets: Targets::new(),
            errors: VecDeque::new(),
            stats: TaskStats::default(),
            lat: Latencies::default(),
            board,
            lag: Vec::new(),
            checkpoint: None,
            barrier_meta,
            barrier_targets: Vec::new(),
        }
    }

    /// Sends checkpoint barrier `id` to every consumer task, each copy anchored by `ids`.
    pub(crate) fn send_barrier(&mut self, id: u64, mut ids: impl FnMut(&mut Self) -> Anchors) {
        let meta = self.barrier_meta;
        for i in 0..self.barrier_targets.len() {
            let task = self.barrier_targets[i];
            let anchors = ids(self);
            self.outbox.push_tuple(
                task,
                Tuple::new(meta, crate::values![id], self.task_id, anchors),
            );
        }
    }

    /// Publishes this task's metrics to the board if a second has passed since the last time.
    #[inline]
    pub(crate) fn maybe_publish(&mut self, now: Instant) {
        if self.board.is_some() && now.duration_since(self.lat.last_publish) >= PUBLISH_EVERY {
            self.publish(now);
        }
    }

    /// Publishes this task's metrics to the board now.
    pub(crate) fn publish(&mut self, now: Instant) {
        let Some(board) = &self.board else { return };
        self.lat.last_publish = now;
        let capacity = self.lat.take_capacity(self.stats.executed, now);
        board.publish(TaskMetrics {
            task_id: self.task_id,
            component: self.component.clone(),
            emitted: self.stats.emitted,
            transferred: self.stats.transferred,
            acked: self.stats.acked,
            failed: self.stats.failed,
            executed: self.stats.executed,
            execute_latency_ms: self.lat.execute_ms(),
            process_latency_ms: self.lat.process_ms(),
            complete_latency_ms: self.lat.complete_ms(),
            capacity,
            held: self.stats.held,
            late: self.stats.late,
            lag: self.lag.clone(),
            checkpoint: self.checkpoint,
            failures: self.stats.failures,
            errors: self.errors.iter().cloned().collect(),
        });
    }

    /// Logs an error and keeps it among the task's recent errors (at most [`MAX_KEPT_ERRORS`]).
    pub(crate) fn report_error(&mut self, msg: String) {
        tracing::error!(component = %self.component, task = self.task_id, "{msg}");
        if self.errors.len() == MAX_KEPT_ERRORS {
            self.errors.pop_front();
        }
        self.errors.push_back(task_error(msg));
    }

    pub(crate) fn tracking(&self) -> bool {
        !self.ackers.is_empty()
    }

    #[inline]
    pub(crate) fn acker_for(&self, root: u64) -> u32 {
        crate::acker::acker_of(&self.ackers, root)
    }

    /// Resolves the stream and checks the emit; returns the stream index.
    #[inline]
    fn stream_index(&self, stream: &str, direct: bool, arity: usize) -> Result<usize, EmitError> {
        // A component declares a few streams: comparing names beats hashing one per emit.
        let idx = self
            .streams
            .iter()
            .position(|s| s.meta.stream == stream)
            .ok_or_else(|| EmitError::UnknownStream {
                component: self.component.clone(),
                stream: stream.to_string(),
                declared: self.streams.iter().map(|s| s.meta.stream.clone()).collect(),
            })?;
        let s = &self.streams[idx];
        if s.direct != direct {
            return Err(EmitError::DirectMismatch {
                component: self.component.clone(),
                stream: stream.to_string(),
                declared: if s.direct {
                    "declared direct"
                } else {
                    "not declared direct"
                },
                use_instead: if s.direct { "emit_direct" } else { "emit" },
            });
        }
        if s.meta.fields.len() != arity {
            return Err(EmitError::WrongArity {
                component: self.component.clone(),
                stream: stream.to_string(),
                fields: s.meta.fields.names().to_vec(),
                got: arity,
            });
        }
        Ok(idx)
    }

    /// Computes the target tasks of an emit into `self.targets`.
    #[inline]
    fn route(
        &mut self,
        stream: &str,
        direct_task: Option<u32>,
        values: &Values,
    ) -> Result<usize, EmitError> {
        let idx = self.stream_index(stream, direct_task.is_some(), values.len())?;
        self.targets.clear();
        let s = &mut self.streams[idx];
        match direct_task {
            Some(task) => {
                if s.direct_consumers.binary_search(&task).is_err() {
                    return Err(EmitError::NotAConsumer {
                        component: self.component.clone(),
                        stream: stream.to_string(),
                        task,
                        consumers: s.direct_consumers.clone(),
                    });
                }
                self.targets.push(task);
            }
            None => {
                for r in &mut s.routers {
                    r.choose(values, &mut self.targets);
                }
            }
        }
        if self.debug {
            tracing::info!(component = %self.component, task = self.task_id, stream, ?values, targets = ?self.targets, "emitting");
        }
        self.stats.emitted += 1;
        self.stats.transferred += self.targets.len() as u64;
        Ok(idx)
    }

    /// Sends `values` to every target, with anchors computed per target by `ids`.
    #[inline]
    fn deliver(&mut self, idx: usize, values: Values, mut ids: impl FnMut(&mut Self) -> Anchors) {
        let meta = self.streams[idx].meta;
        let Some((&last, rest)) = self.targets.split_last() else {
            return;
        };
        // Copies for all but the last target (all grouping, several consumers)...
        for i in 0..rest.len() {
            let task = self.targets[i];
            let anchors = ids(self);
            self.outbox.push_tuple(
                task,
                Tuple::new(meta, values.clone(), self.task_id, anchors),
            );
        }
        // ...and the values themselves for the last (usually the only) one.
        let anchors = ids(self);
        self.outbox
            .push_tuple(last, Tuple::new(meta, values, self.task_id, anchors));
    }
}

/// The collector bolts emit with.
pub struct OutputCollector {
    pub(crate) em: Emitter,
}

impl std::fmt::Debug for OutputCollector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OutputCollector")
            .field("component", &self.em.component)
            .field("task", &self.em.task_id)
            .finish_non_exhaustive()
    }
}

impl OutputCollector {
    /// Emits on the default stream, anchored to `input` (the common case).
    #[inline]
    pub fn emit_anchored(&mut self, input: &Tuple, values: Values) -> Result<(), EmitError> {
        self.emit_to(DEFAULT_STREAM, &[input], values)
    }

    /// Emits on the default stream, not anchored: the new tuple is not tracked.
    #[inline]
    pub fn emit(&mut self, values: Values) -> Result<(), EmitError> {
        self.emit_to(DEFAULT_STREAM, &[], values)
    }

    /// Emits on `stream`, anchored to every tuple in `anchors` (none: untracked).
    #[inline]
    pub fn emit_to(
        &mut self,
        stream: &str,
        anchors: &[&Tuple],
        values: Values,
    ) -> Result<(), EmitError> {
        let idx = self.em.route(stream, None, &values)?;
        self.send(idx, anchors, values);
        Ok(())
    }

    /// Emits to one task on a direct stream.
    pub fn emit_direct(
        &mut self,
        task: u32,
        stream: &str,
        anchors: &[&Tuple],
        values: Values,
    ) -> Result<(), EmitError> {
        let idx = self.em.route(stream, Some(task), &values)?;
        self.send(idx, anchors, values);
        Ok(())
    }

    #[inline]
    fn send(&mut self, idx: usize, anchors: &[&Tuple], values: Values) {
        let tracked = self.em.tracking() && anchors.iter().any(|a| a.is_tracked());
        if !tracked {
            self.em.deliver(idx, values, |_| Anchors::new());
            return;
        }
        self.em.deliver(idx, values, |em| anchor_ids(em, anchors));
    }

    /// Passes checkpoint barrier `id` on to every consumer task, anchored to the barriers
    /// that completed it here (so the spouts learn when every task downstream passed it).
    pub(crate) fn forward_barrier(&mut self, id: u64, barriers: &[Tuple]) {
        let anchors: Vec<&Tuple> = barriers.iter().collect();
        self.em.send_barrier(id, |em| anchor_ids(em, &anchors));
    }

    /// Acks `input`: its part of the tuple tree is done.
    #[inline]
    pub fn ack(&mut self, input: &Tuple) {
        self.em.stats.acked += 1;
        self.ack_uncounted(input);
    }

    /// Acks `input` without counting it (checkpoint barriers).
    #[inline]
    pub(crate) fn ack_uncounted(&mut self, input: &Tuple) {
        if !self.em.tracking() {
            return;
        }
        let val = input.ack_val();
        for &(root, edge) in &input.anchors {
            let acker = self.em.acker_for(root);
            self.em.outbox.push_acker(
                acker,
                AckerMsg::Ack {
                    root,
                    xor: edge ^ val,
                },
            );
        }
    }

    /// The tasks the last emit went to (what Storm's `emit` returns; multilang components
    /// ask for it with `need_task_ids`).
    pub fn last_emit_tasks(&self) -> &[u32] {
        &self.em.targets
    }

    /// Fails `input`: its tuple tree fails at once and the spout may replay it. The spout
    /// learns that this bolt task failed it ([`FailReason::Bolt`]).
    pub fn fail(&mut self, input: &Tuple) {
        self.fail_as(input, BoltFailure::Failed, String::new());
    }

    /// Fails `input` as [`fail`](Self::fail) does, telling the spout why: `why` becomes the
    /// message of the [`FailReason`] its `fail_with_reason` receives.
    pub fn fail_because(&mut self, input: &Tuple, why: impl std::fmt::Display) {
        self.fail_as(input, BoltFailure::Failed, why.to_string());
    }

    fn fail_as(&mut self, input: &Tuple, how: BoltFailure, message: String) {
        self.em.stats.failed += 1;
        if self.em.tracking() && !input.anchors.is_empty() {
            let reason = FailReason::bolt(&self.em.component, self.em.task_id, how, message);
            self.fail_roots(&input.anchors, reason);
        }
    }

    /// Fails the trees of `anchors` for `reason` (the executor's path for an `execute` that
    /// erred or panicked, and for abandoned checkpoint barriers).
    pub(crate) fn fail_roots(&mut self, anchors: &Anchors, reason: FailReason) {
        let Some((&(last, _), rest)) = anchors.split_last() else {
            return;
        };
        for &(root, _) in rest {
            let acker = self.em.acker_for(root);
            let reason = Box::new(reason.clone());
            self.em
                .outbox
                .push_acker(acker, AckerMsg::Fail { root, reason });
        }
        let acker = self.em.acker_for(last);
        self.em.outbox.push_acker(
            acker,
            AckerMsg::Fail {
                root: last,
                reason: Box::new(reason),
            },
        );
    }

    /// A reason naming this task, for the executor's failures of its inputs.
    pub(crate) fn reason(&self, how: BoltFailure, message: impl Into<String>) -> FailReason {
        FailReason::bolt(&self.em.component, self.em.task_id, how, message)
    }

    /// Reports an error: logged and kept with the task's recent errors.
    pub fn report_error(&mut self, error: impl std::fmt::Display) {
        self.em.report_error(error.to_string());
    }

    /// This task's id.
    pub fn task_id(&self) -> u32 {
        self.em.task_id
    }
}

/// A new edge from each tracked tuple of `anchors` to a child: the child's tree ids.
#[inline]
fn anchor_ids(em: &mut Emitter, anchors: &[&Tuple]) -> Anchors {
    let mut ids = Anchors::new();
    for a in anchors.iter().filter(|a| a.is_tracked()) {
        let edge = em.rng.u64(..);
        a.add_child_edge(edge);
        for &(root, _) in &a.anchors {
            match ids.iter_mut().find(|(r, _)| *r == root) {
                Some((_, id)) => *id ^= edge,
                None => ids.push((root, edge)),
            }
        }
    }
    ids
}

/// The collector a [`BasicBolt`](crate::BasicBolt) emits with: every emit is anchored to the input.
#[derive(Debug)]
pub struct BasicOutputCollector<'a> {
    inner: &'a mut OutputCollector,
    input: &'a Tuple,
}

impl<'a> BasicOutputCollector<'a> {
    pub(crate) fn new(inner: &'a mut OutputCollector, input: &'a Tuple) -> Self {
        BasicOutputCollector { inner, input }
    }
    /// Emits on the default stream, anchored to the input.
    #[inline]
    pub fn emit(&mut self, values: Values) -> Result<(), EmitError> {
        self.inner.emit_to(DEFAULT_STREAM, &[self.input], values)
    }
    /// Emits on `stream`, anchored to the input.
    pub fn emit_to(&mut self, stream: &str, values: Values) -> Result<(), EmitError> {
        self.inner.emit_to(stream, &[self.input], values)
    }
    /// Emits to one task on a direct stream, anchored to the input.
    pub fn emit_direct(
        &mut self,
        task: u32,
        stream: &str,
        values: Values,
    ) -> Result<(), EmitError> {
        self.inner.emit_direct(task, stream, &[self.input], values)
    }
    /// Reports an error (logged and kept with the task's recent errors).
    pub fn report_error(&mut self, error: impl std::fmt::Display) {
        self.inner.report_error(error)
    }
}

/// A spout tuple tree awaiting its outcome.
#[derive(Debug, Clone, Copy)]
pub(crate) struct PendingTree {
    pub msg_id: u64,
    /// On the runtime's clock (the message timeout is measured on it).
    pub emitted: clock::Instant,
}

/// The tracked trees of one spout task, with their timeout.
#[derive(Debug, Default)]
pub(crate) struct PendingTrees {
    trees: FxHashMap<u64, PendingTree>,
}

impl PendingTrees {
    pub(crate) fn insert(&mut self, root: u64, msg_id: u64, emitted: clock::Instant) {
        self.trees.insert(root, PendingTree { msg_id, emitted });
    }
    /// Removes and returns the tree of `root`, if still pending (late outcomes find nothing).
    pub(crate) fn take(&mut self, root: u64) -> Option<PendingTree> {
        self.trees.remove(&root)
    }
    /// Removes the trees emitted more than `timeout` before `now`; returns their roots and
    /// message ids.
    pub(crate) fn expire(&mut self, now: clock::Instant, timeout: Duration) -> Vec<(u64, u64)> {
        let mut expired = Vec::new();
        self.trees.retain(|&root, t| {
            let keep = now.saturating_duration_since(t.emitted) < timeout;
            if !keep {
                expired.push((root, t.msg_id));
            }
            keep
        });
        expired
    }
    pub(crate) fn len(&self) -> usize {
        self.trees.len()
    }
    /// The roots of the trees in flight.
    pub(crate) fn roots(&self) -> impl Iterator<Item = u64> + '_ {
        self.trees.keys().copied()
    }
}

/// The collector spouts emit with.
pub struct SpoutOutputCollector {
    pub(crate) em: Emitter,
    pub(crate) pending: PendingTrees,
    /// Message ids that completed at emit time (no consumers, or tracking off).
    pub(crate) acked_at_emit: Vec<u64>,
    /// Number of emit calls during the current `next_tuple`.
    pub(crate) emits: usize,
}

impl std::fmt::Debug for SpoutOutputCollector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SpoutOutputCollector")
            .field("component", &self.em.component)
            .field("task", &self.em.task_id)
            .finish_non_exhaustive()
    }
}

impl SpoutOutputCollector {
    /// Reports where this spout task stands in each partition of its source (committed
    /// offset and log end): the UI's lag table and `GET /api/v1/topology/{id}/lag` show the
    /// latest report.
    pub fn report_lag(&mut self, lag: Vec<PartitionLag>) {
        self.em.lag = lag;
    }

    /// Emits on the default stream. With a message id the tuple tree is tracked: the spout's
    /// `ack` or `fail` is called with that id once it completes, fails or times out.
    #[inline]
    pub fn emit(&mut self, values: Values, msg_id: Option<u64>) -> Result<(), EmitError> {
        self.emit_to(DEFAULT_STREAM, values, msg_id)
    }

    /// Emits on a named stream.
    #[inline]
    pub fn emit_to(
        &mut self,
        stream: &str,
        values: Values,
        msg_id: Option<u64>,
    ) -> Result<(), EmitError> {
        let idx = self.em.route(stream, None, &values)?;
        self.send(idx, values, msg_id);
        Ok(())
    }

    /// Emits to one task on a direct stream.
    pub fn emit_direct(
        &mut self,
        task: u32,
        stream: &str,
        values: Values,
        msg_id: Option<u64>,
    ) -> Result<(), EmitError> {
        let idx = self.em.route(stream, Some(task), &values)?;
        self.send(idx, values, msg_id);
        Ok(())
    }

    #[inline]
    fn send(&mut self, idx: usize, values: Values, msg_id: Option<u64>) {
        self.emits += 1;
        let Some(msg_id) = msg_id else {
            self.em.deliver(idx, values, |_| Anchors::new());
            return;
        };
        if !self.em.tracking() || self.em.targets.is_empty() {
            self.em.deliver(idx, values, |_| Anchors::new());
            self.acked_at_emit.push(msg_id);
            return;
        }
        let root = self.em.rng.u64(1..);
        let mut xor = 0u64;
        self.em.deliver(idx, values, |em| {
            let edge = em.rng.u64(..);
            xor ^= edge;
            smallvec::smallvec![(root, edge)]
        });
        self.init_tree(root, xor);
        self.pending.insert(root, msg_id, clock::now());
    }

    /// Tells the root's acker a tree started, with the XOR of its first edges.
    fn init_tree(&mut self, root: u64, xor: u64) {
        let spout_task = self.em.task_id;
        let acker = self.em.acker_for(root);
        self.em.outbox.push_acker(
            acker,
            AckerMsg::Init {
                root,
                xor,
                spout_task,
            },
        );
    }

    /// Sends checkpoint barrier `id` to every consumer task as the root of a tracked tree;
    /// returns the root (`None`: no consumers or tracking off, nothing to wait for).
    pub(crate) fn emit_barrier(&mut self, id: u64) -> Option<u64> {
        if !self.em.tracking() || self.em.barrier_targets.is_empty() {
            self.em.send_barrier(id, |_| Anchors::new());
            return None;
        }
        let root = self.em.rng.u64(1..);
        let mut xor = 0u64;
        self.em.send_barrier(id, |em| {
            let edge = em.rng.u64(..);
            xor ^= edge;
            smallvec::smallvec![(root, edge)]
        });
        self.init_tree(root, xor);
        Some(root)
    }

    /// Reports an error: logged and kept with the task's recent errors.
    pub fn report_error(&mut self, error: impl std::fmt::Display) {
        self.em.report_error(error.to_string());
    }

    /// The tasks the last emit went to (what Storm's `emit` returns; multilang components
    /// ask for it with `need_task_ids`).
    pub fn last_emit_tasks(&self) -> &[u32] {
        &self.em.targets
    }

    /// Number of tracked tuple trees of this task still in flight.
    pub fn pending(&self) -> usize {
        self.pending.len()
    }

    /// This task's id.
    pub fn task_id(&self) -> u32 {
        self.em.task_id
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timeout_fails_each_tree_once_and_late_outcomes_find_nothing() {
        let mut p = PendingTrees::default();
        let t0 = clock::now();
        p.insert(1, 100, t0);
        p.insert(2, 200, t0 + Duration::from_secs(5));
        let timeout = Duration::from_secs(10);
        assert!(p.expire(t0 + Duration::from_secs(9), timeout).is_empty());
        assert_eq!(
            p.expire(t0 + Duration::from_secs(11), timeout)
                .into_iter()
                .map(|(_, id)| id)
                .collect::<Vec<_>>(),
            vec![100]
        );
        assert!(p.expire(t0 + Duration::from_secs(12), timeout).is_empty());
        assert!(
            p.take(1).is_none(),
            "a late ack after the timeout is ignored"
        );
        assert_eq!(p.take(2).map(|t| t.msg_id), Some(200));
        assert_eq!(p.len(), 0);
    }
}
