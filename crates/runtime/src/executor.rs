//! Executors: the async loops that run the tasks of one component.
//!
//! A bolt executor takes batches from its queue, executes each tuple on its task, sends batches
//! that filled up, and flushes partial batches as soon as its queue is empty (or a batch has
//! waited `topology.batch.flush.micros`): batches are large under load and latency stays low
//! when traffic is light.
//!
//! A spout executor calls `next_tuple` in rounds, delivers tree outcomes to `ack`/`fail`, fails
//! trees that time out, and bounds in-flight trees by `topology.max.spout.pending`. While it
//! waits for queue space it keeps draining its own queue, so the cycle spout -> bolts -> acker ->
//! spout can never deadlock on full queues.

use crate::catch_unwind::FutureExt;
use crate::clock;
use crate::collector::{Emitter, OutputCollector, SpoutOutputCollector, TaskStats};
use crate::component::{Bolt, BoltEvent, ComponentResult, ExecuteNow, Spout, TopologyContext};
use crate::failure::{BoltFailure, FailReason};
use crate::metrics::PUBLISH_EVERY;
use crate::settings::RuntimeSettings;
use crate::state::barrier::{Aligner, Step};
use crate::state::context::StateContext;
use crate::state::store::StateStore;
use crate::transfer::TreeOutcome;
use crate::transfer::{Envelope, Inbox, Outbox, Payload, Transfer, TransferError};
use crate::tuple::{Anchors, Fields, StreamMeta, Tuple, SYSTEM_COMPONENT, TICK_STREAM};
use crate::values;
use rustc_hash::FxHashSet;
use std::panic::AssertUnwindSafe;
use std::time::{Duration, Instant};
use tempest_protocol::status::TopologyStatus;
use tokio::sync::{mpsc, watch};

/// What a task did, reported when its executor ends.
#[derive(Debug, Clone)]
pub struct TaskReport {
    /// The task id.
    pub task_id: u32,
    /// Its component.
    pub component: String,
    /// Its counters.
    pub stats: TaskStats,
    /// Errors it reported (most recent last, at most 20 kept).
    pub errors: Vec<String>,
}

/// A component callback failed in a way that stops the executor.
#[derive(Debug, thiserror::Error)]
#[error("{component} task {task}: {what} failed: {message}")]
pub struct ExecutorError {
    /// The component.
    pub component: String,
    /// The task.
    pub task: u32,
    /// Which callback.
    pub what: &'static str,
    /// The error.
    pub message: String,
}

fn panic_message(p: &(dyn std::any::Any + Send)) -> String {
    if let Some(s) = p.downcast_ref::<&str>() {
        (*s).to_string()
    } else if let Some(s) = p.downcast_ref::<String>() {
        s.clone()
    } else {
        "panic with a non-string payload".to_string()
    }
}

fn report(em: &Emitter) -> TaskReport {
    TaskReport {
        task_id: em.task_id,
        component: em.component.clone(),
        stats: em.stats,
        errors: em.errors.iter().map(|e| e.error.clone()).collect(),
    }
}

/// Runs a spout callback that returns nothing; a panic is reported as the task's error instead
/// of stopping the executor.
async fn guarded(fut: impl std::future::Future<Output = ()>, em: &mut Emitter, what: &str) {
    if let Err(p) = AssertUnwindSafe(fut).catch_unwind().await {
        em.report_error(format!("{what} panicked: {}", panic_message(&*p)));
    }
}

/// One bolt task: the user's instance and its collector.
pub(crate) struct BoltTask {
    pub bolt: Box<dyn Bolt>,
    pub collector: OutputCollector,
    pub ctx: TopologyContext,
    /// Checkpointed topologies: the task's barrier bookkeeping.
    pub aligner: Option<Aligner>,
    /// The last checkpoint failure reported (the same one again is not reported again).
    pub checkpoint_error: Option<String>,
}

/// Runs the tasks of one bolt executor until its queue closes.
pub(crate) async fn run_bolts(
    mut tasks: Vec<BoltTask>,
    mut inbox: Inbox,
    mut events: mpsc::Receiver<(u32, BoltEvent)>,
    transfer: Transfer,
    settings: RuntimeSettings,
    tick: Option<Duration>,
) -> Result<Vec<TaskReport>, ExecutorError> {
    for t in &mut tasks {
        let result = AssertUnwindSafe(t.bolt.prepare(&t.ctx))
            .catch_unwind()
            .await;
        let message = match result {
            Ok(Ok(())) => continue,
            Ok(Err(e)) => e.to_string(),
            Err(p) => panic_message(&*p),
        };
        return Err(ExecutorError {
            component: t.ctx.component.clone(),
            task: t.ctx.task_id,
            what: "prepare",
            message,
        });
    }
    let first_task = tasks.first().map_or(0, |t| t.ctx.task_id);
    let tick_meta = StreamMeta::intern(SYSTEM_COMPONENT, TICK_STREAM, &Fields::from(["rate_secs"]));
    let mut ticker = tick.map(|d| tokio::time::interval_at(tokio::time::Instant::now() + d, d));
    // Metrics are also published while no input arrives, so an idle bolt's last counts show.
    let mut publish = tokio::time::interval(PUBLISH_EVERY);
    publish.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);

    loop {
        tokio::select! {
            env = inbox.recv() => {
                let Some(env) = env else { break };
                let Some(t) = tasks.get_mut((env.task - first_task) as usize) else {
                    tracing::warn!(task = env.task, "batch for a task this executor does not run");
                    continue;
                };
                if let Payload::Tuples(batch) = env.payload {
                    let received = Instant::now();
                    for tuple in batch {
                        if t.aligner.is_some() {
                            deliver_aligned(t, tuple).await;
                        } else if t.collector.em.lat.sample_next() {
                            let start = Instant::now();
                            if let Some(later) = execute_now(t, tuple) {
                                execute_later(t, later).await;
                            }
                            let end = Instant::now();
                            let lat = &mut t.collector.em.lat;
                            lat.execute_ns += (end - start).as_nanos() as u64;
                            lat.process_ns += (end - received).as_nanos() as u64;
                            lat.samples += 1;
                        } else if let Some(later) = execute_now(t, tuple) {
                            // The sync step inline: no future is built for a tuple it executes.
                            execute_later(t, later).await;
                        }
                        if !t.collector.em.outbox.ready.is_empty() {
                            send_ready(&mut t.collector.em.outbox, &transfer).await;
                        }
                    }
                }
            }
            Some((task, event)) = events.recv() => {
                if let Some(t) = tasks.get_mut((task - first_task) as usize) {
                    let result = AssertUnwindSafe(t.bolt.event(event, &mut t.collector))
                        .catch_unwind()
                        .await;
                    match result {
                        Ok(Ok(())) => {}
                        Ok(Err(e)) => t.collector.report_error(format!("event failed: {e}")),
                        Err(p) => t.collector.report_error(format!("event panicked: {}", panic_message(&*p))),
                    }
                    if !t.collector.em.outbox.ready.is_empty() {
                        send_ready(&mut t.collector.em.outbox, &transfer).await;
                    }
                }
            }
            _ = publish.tick() => {}
            _ = async { ticker.as_mut().expect("guarded").tick().await }, if ticker.is_some() => {
                let secs = tick.map_or(0, |d| d.as_secs());
                for t in &mut tasks {
                    let tuple = Tuple::new(tick_meta, values![secs], 0, Anchors::new());
                    execute(t, tuple).await;
                }
            }
        }
        let idle = inbox.is_empty();
        let now = Instant::now();
        for t in &mut tasks {
            let outbox = &mut t.collector.em.outbox;
            if idle || outbox.flush_due(now, settings.flush_interval) {
                outbox.flush();
            }
            send_ready(outbox, &transfer).await;
            t.collector.em.maybe_publish(now);
        }
    }

    let mut reports = Vec::with_capacity(tasks.len());
    for t in &mut tasks {
        if AssertUnwindSafe(t.bolt.cleanup())
            .catch_unwind()
            .await
            .is_err()
        {
            t.collector.report_error("cleanup panicked");
        }
        t.collector.em.outbox.flush();
        send_ready(&mut t.collector.em.outbox, &transfer).await;
        t.collector.em.publish(Instant::now());
        reports.push(report(&t.collector.em));
    }
    Ok(reports)
}

/// Hands a tuple to the task's barrier bookkeeping and does what it says: execute tuples,
/// take checkpoints (then pass the barrier on and ack it), fail abandoned barriers.
async fn deliver_aligned(t: &mut BoltTask, tuple: Tuple) {
    let aligner = t.aligner.as_mut().expect("checked by the caller");
    if let Ok(tuple) = aligner.admit(tuple) {
        return execute(t, tuple).await;
    }
    while let Some(step) = t.aligner.as_mut().and_then(Aligner::next) {
        match step {
            Step::Execute(tuple) => execute(t, tuple).await,
            Step::Checkpoint { id, barriers } => {
                let result = AssertUnwindSafe(t.bolt.checkpoint(id, &mut t.collector))
                    .catch_unwind()
                    .await;
                let failure = match result {
                    Ok(Ok(())) => None,
                    Ok(Err(e)) => Some(format!("checkpoint failed: {e}")),
                    Err(p) => Some(format!("checkpoint panicked: {}", panic_message(&*p))),
                };
                match failure {
                    None => {
                        t.checkpoint_error = None;
                        t.collector.em.checkpoint = Some(id);
                        t.collector.forward_barrier(id, &barriers);
                        for b in &barriers {
                            t.collector.ack_uncounted(b);
                        }
                    }
                    Some(message) => {
                        if t.checkpoint_error.as_ref() != Some(&message) {
                            t.collector.report_error(format!(
                                "{message} (checkpoint {id}; not reported again while it repeats)"
                            ));
                            t.checkpoint_error = Some(message.clone());
                        }
                        let reason = t.collector.reason(BoltFailure::Error, message);
                        for b in &barriers {
                            t.collector.fail_roots(&b.anchors, reason.clone());
                        }
                    }
                }
            }
            Step::Fail(barriers) => {
                let reason = t
                    .collector
                    .reason(BoltFailure::Failed, "checkpoint barrier abandoned");
                for b in &barriers {
                    t.collector.fail_roots(&b.anchors, reason.clone());
                }
            }
        }
    }
}

/// Executes one tuple; an error or panic fails the input's tree and is reported.
#[inline]
async fn execute(t: &mut BoltTask, tuple: Tuple) {
    if let Some(later) = execute_now(t, tuple) {
        execute_later(t, later).await;
    }
}

/// A tuple the bolt gave back to [`Bolt::execute`], with the anchors to fail if it errs.
struct Later {
    tuple: Tuple,
    anchors: Anchors,
}

/// The synchronous part of [`execute`]: tries [`Bolt::execute_now`] and gives the tuple back
/// if the bolt wants its async `execute`. Called directly in the executor's loop, so no future
/// is built (and moved) for a tuple the bolt executes here.
#[inline]
fn execute_now(t: &mut BoltTask, tuple: Tuple) -> Option<Later> {
    // Kept to fail the tree if execute does; copied as a slice (a plain copy for the usual
    // single anchor), not cloned item by item.
    let anchors = if tuple.is_tracked() {
        Anchors::from_slice(&tuple.anchors)
    } else {
        Anchors::new()
    };
    if !tuple.is_tick() {
        t.collector.em.stats.executed += 1;
    }
    let now = std::panic::catch_unwind(AssertUnwindSafe(|| {
        t.bolt.execute_now(tuple, &mut t.collector)
    }));
    match now {
        Ok(ExecuteNow::Later(tuple)) => return Some(Later { tuple, anchors }),
        Ok(ExecuteNow::Done(result)) => settle(t, Ok(result), &anchors),
        Err(panic) => settle(t, Err(panic), &anchors),
    }
    None
}

/// The async part of [`execute`]: [`Bolt::execute`] on a tuple `execute_now` gave back.
async fn execute_later(t: &mut BoltTask, later: Later) {
    let result = AssertUnwindSafe(t.bolt.execute(later.tuple, &mut t.collector))
        .catch_unwind()
        .await;
    settle(t, result, &later.anchors);
}

/// After an execute: on an error or panic, reports it and fails the trees of its input.
#[inline]
fn settle(t: &mut BoltTask, result: std::thread::Result<ComponentResult>, anchors: &Anchors) {
    let (how, message) = match result {
        Ok(Ok(())) => return,
        Ok(Err(e)) => (BoltFailure::Error, e.to_string()),
        Err(p) => (BoltFailure::Panic, panic_message(&*p)),
    };
    t.collector.report_error(match how {
        BoltFailure::Panic => format!("execute panicked: {message}"),
        _ => format!("execute failed: {message}"),
    });
    t.collector.em.stats.failed += 1;
    if !anchors.is_empty() {
        let reason = t.collector.reason(how, message);
        t.collector.fail_roots(anchors, reason);
    }
}

/// Sends the outbox's ready batches, waiting for queue space.
async fn send_ready(outbox: &mut Outbox, transfer: &Transfer) {
    for env in outbox.ready.drain(..) {
        if let Err(e) = transfer.send(env).await {
            // Only happens when the consumer stopped (shutdown or a failed prepare); the tuples'
            // trees, if tracked, time out and are replayed by their spouts.
            tracing::debug!("dropping batch: {e}");
        }
    }
}

/// One spout task: the user's instance and its collector.
pub(crate) struct SpoutTask {
    pub spout: Box<dyn Spout>,
    pub collector: SpoutOutputCollector,
    pub ctx: TopologyContext,
    /// Checkpointed topologies: the barriers this task starts.
    pub checkpoints: Option<SpoutCheckpoints>,
}

/// A spout task's part in checkpoints: it starts one every interval (one at a time), as a
/// barrier to every consumer task, and learns from the barrier's tree when every task below
/// it has saved it. In exactly-once mode it saves its position with each barrier, rewinds to
/// the restored checkpoint's position at start, and records each completed checkpoint.
pub(crate) struct SpoutCheckpoints {
    sc: std::sync::Arc<StateContext>,
    /// Exactly once: where the positions are saved.
    store: Option<Box<dyn StateStore>>,
    next_at: clock::Instant,
    last_id: u64,
    /// The checkpoint in flight (one at a time).
    in_flight: Option<InFlight>,
}

/// A checkpoint a spout task started and has not seen complete.
struct InFlight {
    /// The barrier's tree.
    root: u64,
    id: u64,
    /// Exactly once: the position saved with it.
    position: Option<serde_json::Value>,
    sent: clock::Instant,
    /// The barrier's tree completed: every task below saved the checkpoint.
    saved: bool,
    /// Exactly once: the data trees emitted before the barrier that are still in flight. A
    /// tuple lost on the way (a worker died, a connection dropped it) must not be left out of
    /// a checkpoint that completes: the checkpoint completes only once they all did.
    before: FxHashSet<u64>,
    /// One of `before` failed: this checkpoint never completes.
    tainted: bool,
}

const POSITION_KEY: &[u8] = b"position";

impl SpoutCheckpoints {
    pub(crate) fn new(sc: std::sync::Arc<StateContext>) -> Self {
        SpoutCheckpoints {
            last_id: sc.start_after(),
            next_at: clock::now() + sc.interval,
            sc,
            store: None,
            in_flight: None,
        }
    }

    /// Exactly once: opens the position store and rewinds the spout to the restored
    /// checkpoint's position.
    async fn open(&mut self, t: &mut SpoutTaskParts<'_>) -> Result<(), String> {
        if !self.sc.exactly_once {
            return Ok(());
        }
        if t.spout.position().is_none() {
            return Err("exactly-once mode needs spouts that can rewind: this one returns no position (implement Spout::position and Spout::rewind)".into());
        }
        let restore = self.sc.restore.clone()?;
        let mut store = self
            .sc
            .provider
            .open(&self.sc.topology, t.component, t.task)
            .map_err(|e| e.to_string())?;
        // A new history from the restored checkpoint: ids it remembered past it belong to a
        // run that was rolled back.
        self.sc
            .provider
            .mark_complete(&self.sc.topology, t.task, restore.unwrap_or(0), true)
            .map_err(|e| e.to_string())?;
        if let Some(g) = restore {
            let restored = store.restore(Some(g)).map_err(|e| e.to_string())?;
            let position = restored
                .entries
                .into_iter()
                .find(|(k, _)| k == POSITION_KEY)
                .ok_or_else(|| format!("checkpoint {g} has no position for this spout"))?;
            let position: serde_json::Value = serde_json::from_slice(&position.1)
                .map_err(|e| format!("the position saved with checkpoint {g} is damaged: {e}"))?;
            tracing::info!(task = t.task, checkpoint = g, %position, "rewinding to the last completed checkpoint");
            t.spout
                .rewind(position)
                .await
                .map_err(|e| format!("rewind failed: {e}"))?;
        } else {
            // Nothing completed: drop positions of checkpoints that never did.
            let _ = store.restore(Some(0));
        }
        self.store = Some(store);
        Ok(())
    }

    /// Starts the next checkpoint if it is due and none is in flight.
    fn maybe_start(&mut self, t: &mut SpoutTaskParts<'_>, now: clock::Instant, timeout: Duration) {
        if let Some(f) = &self.in_flight {
            if now.duration_since(f.sent) < timeout {
                return;
            }
            tracing::warn!(task = t.task, checkpoint = f.id, "checkpoint timed out");
            self.in_flight = None;
        }
        if now < self.next_at {
            return;
        }
        self.next_at = now + self.sc.interval;
        let id = if self.sc.exactly_once {
            // Every spout task counts from the same restored checkpoint: ids agree.
            self.last_id + 1
        } else {
            let ms = self.sc.interval.as_millis().max(1) as u64;
            let wall = clock::now_ms().max(0) as u64;
            (self.last_id + 1).max(wall / ms * ms)
        };
        let position = if self.sc.exactly_once {
            let Some(p) = t.spout.position() else {
                t.collector.report_error(
                    "the spout stopped reporting its position: no checkpoint started",
                );
                return;
            };
            let bytes = serde_json::to_vec(&p).unwrap_or_default();
            let saved = self
                .store
                .as_mut()
                .map(|s| s.save(id, &vec![(POSITION_KEY.to_vec(), Some(bytes))]));
            if let Some(Err(e)) = saved {
                t.collector
                    .report_error(format!("checkpoint {id}: saving the position: {e}"));
                return;
            }
            Some(p)
        } else {
            None
        };
        self.last_id = id;
        let before = if self.sc.exactly_once {
            t.collector.pending.roots().collect()
        } else {
            FxHashSet::default()
        };
        match t.collector.emit_barrier(id) {
            Some(root) => {
                self.in_flight = Some(InFlight {
                    root,
                    id,
                    position,
                    sent: now,
                    saved: false,
                    before,
                    tainted: false,
                })
            }
            None => {
                // No consumer: complete already.
                t.collector.em.checkpoint = Some(id);
            }
        }
    }

    /// A data tree timed out: a checkpoint waiting for it never completes.
    fn tree_failed(&mut self, root: u64) {
        if let Some(f) = self.in_flight.as_mut() {
            if f.before.remove(&root) {
                f.tainted = true;
            }
        }
    }

    /// Takes the outcome of a tree: returns whether it was this task's barrier, and the
    /// checkpoint (with its position) it completed, if it completed one.
    fn outcome(
        &mut self,
        root: u64,
        acked: bool,
        t: &mut SpoutTaskParts<'_>,
    ) -> (bool, Option<(u64, serde_json::Value)>) {
        let Some(f) = self.in_flight.as_mut() else {
            return (false, None);
        };
        let barrier = f.root == root;
        if barrier {
            if !acked {
                tracing::debug!(
                    task = t.task,
                    checkpoint = f.id,
                    "checkpoint failed; the next one will be tried"
                );
                self.in_flight = None;
                return (true, None);
            }
            f.saved = true;
        } else if f.before.remove(&root) && !acked {
            f.tainted = true;
        }
        if !f.saved || !f.before.is_empty() {
            return (barrier, None);
        }
        let f = self.in_flight.take().expect("just seen");
        if f.tainted {
            tracing::warn!(
                task = t.task,
                checkpoint = f.id,
                "a tuple emitted before the checkpoint failed: it does not complete"
            );
            return (barrier, None);
        }
        t.collector.em.checkpoint = Some(f.id);
        if !self.sc.exactly_once {
            return (barrier, None);
        }
        if let Err(e) = self
            .sc
            .provider
            .mark_complete(&self.sc.topology, t.task, f.id, false)
        {
            t.collector.report_error(format!(
                "checkpoint {}: recording its completion: {e}",
                f.id
            ));
            return (barrier, None);
        }
        if let Ok(Some(g)) = self
            .sc
            .provider
            .completed(&self.sc.topology, &self.sc.spout_tasks)
        {
            if let Some(store) = self.store.as_mut() {
                let _ = store.compact(g);
            }
        }
        (barrier, f.position.map(|p| (f.id, p)))
    }
}

/// What [`SpoutCheckpoints`] needs of its task (split from it to satisfy the borrow checker).
struct SpoutTaskParts<'a> {
    spout: &'a mut Box<dyn Spout>,
    collector: &'a mut SpoutOutputCollector,
    component: &'a str,
    task: u32,
}

impl SpoutTask {
    fn parts(&mut self) -> (Option<&mut SpoutCheckpoints>, SpoutTaskParts<'_>) {
        (
            self.checkpoints.as_mut(),
            SpoutTaskParts {
                spout: &mut self.spout,
                collector: &mut self.collector,
                component: &self.ctx.component,
                task: self.ctx.task_id,
            },
        )
    }
}

/// Runs the tasks of one spout executor until they are finished (every tree complete) or the
/// topology is killed.
pub(crate) async fn run_spouts(
    mut tasks: Vec<SpoutTask>,
    mut inbox: Inbox,
    transfer: Transfer,
    settings: RuntimeSettings,
    mut status: watch::Receiver<TopologyStatus>,
) -> Result<Vec<TaskReport>, ExecutorError> {
    for t in &mut tasks {
        let result = AssertUnwindSafe(t.spout.open(&t.ctx)).catch_unwind().await;
        let message = match result {
            Ok(Ok(())) => continue,
            Ok(Err(e)) => e.to_string(),
            Err(p) => panic_message(&*p),
        };
        return Err(ExecutorError {
            component: t.ctx.component.clone(),
            task: t.ctx.task_id,
            what: "open",
            message,
        });
    }
    for t in &mut tasks {
        let (checkpoints, mut parts) = t.parts();
        if let Some(c) = checkpoints {
            if let Err(message) = c.open(&mut parts).await {
                return Err(ExecutorError {
                    component: t.ctx.component.clone(),
                    task: t.ctx.task_id,
                    what: "checkpoint restore",
                    message,
                });
            }
        }
    }
    let first_task = tasks.first().map_or(0, |t| t.ctx.task_id);
    let mut active = false;
    let mut stash: Vec<Envelope> = Vec::new();
    let check_every = (settings.message_timeout / 4).min(Duration::from_secs(1));
    let mut next_timeout_check = clock::now() + check_every;
    let mut idle_since: Option<Instant> = None;

    loop {
        // Outcomes that arrived while we were blocked, then whatever is queued now.
        for env in stash.drain(..) {
            on_outcomes(&mut tasks, first_task, env).await;
        }
        while let Ok(env) = inbox.try_recv() {
            on_outcomes(&mut tasks, first_task, env).await;
        }

        let wanted = *status.borrow_and_update();
        if wanted == TopologyStatus::Killed {
            break;
        }
        if (wanted == TopologyStatus::Active) != active {
            active = !active;
            for t in &mut tasks {
                if active {
                    guarded(t.spout.activate(), &mut t.collector.em, "activate").await;
                } else {
                    guarded(t.spout.deactivate(), &mut t.collector.em, "deactivate").await;
                }
            }
        }

        let now = Instant::now();
        let clock_now = clock::now();
        if clock_now >= next_timeout_check {
            next_timeout_check = clock_now + check_every;
            for t in &mut tasks {
                let expired = t
                    .collector
                    .pending
                    .expire(clock_now, settings.message_timeout);
                if expired.is_empty() {
                    continue;
                }
                let reason = FailReason::Timeout {
                    after: settings.message_timeout,
                };
                for (root, msg_id) in expired {
                    if let Some(c) = &mut t.checkpoints {
                        c.sc.request_rollback(t.ctx.task_id);
                        c.tree_failed(root);
                    }
                    t.collector.em.stats.failed += 1;
                    t.collector.em.stats.failures.timeout += 1;
                    guarded(
                        t.spout.fail_with_reason(msg_id, &reason),
                        &mut t.collector.em,
                        "fail",
                    )
                    .await;
                }
            }
        }

        for t in &mut tasks {
            let (checkpoints, mut parts) = t.parts();
            if let Some(c) = checkpoints {
                let before = c.last_id;
                c.maybe_start(&mut parts, clock_now, settings.message_timeout);
                if c.last_id != before {
                    // Send the barrier now, also when the spout is inactive or finished.
                    t.collector.em.outbox.flush();
                    send_draining(
                        &mut t.collector.em.outbox,
                        &transfer,
                        &mut inbox,
                        &mut stash,
                    )
                    .await;
                }
            }
            t.collector.em.maybe_publish(now);
        }
        if tasks
            .iter()
            .all(|t| t.spout.is_finished() && t.collector.pending() == 0)
        {
            break;
        }

        // One round: each task's next_tuple, repeatedly while it emits, up to a batch.
        let mut emitted = 0usize;
        let mut saturated = false;
        if active {
            for t in &mut tasks {
                for _ in 0..settings.batch_size {
                    if t.spout.is_finished() {
                        break;
                    }
                    if t.collector.pending() >= settings.max_spout_pending {
                        saturated = true;
                        break;
                    }
                    t.collector.emits = 0;
                    let result = AssertUnwindSafe(t.spout.next_tuple(&mut t.collector))
                        .catch_unwind()
                        .await;
                    match result {
                        Ok(Ok(())) => {}
                        Ok(Err(e)) => t.collector.report_error(format!("next_tuple failed: {e}")),
                        Err(p) => t
                            .collector
                            .report_error(format!("next_tuple panicked: {}", panic_message(&*p))),
                    }
                    for msg_id in std::mem::take(&mut t.collector.acked_at_emit) {
                        t.collector.em.stats.acked += 1;
                        guarded(t.spout.ack(msg_id), &mut t.collector.em, "ack").await;
                    }
                    let n = t.collector.emits;
                    emitted += n;
                    if n == 0 {
                        break;
                    }
                    if !t.collector.em.outbox.ready.is_empty() {
                        send_draining(
                            &mut t.collector.em.outbox,
                            &transfer,
                            &mut inbox,
                            &mut stash,
                        )
                        .await;
                    }
                }
                t.collector.em.outbox.flush();
                send_draining(
                    &mut t.collector.em.outbox,
                    &transfer,
                    &mut inbox,
                    &mut stash,
                )
                .await;
            }
        }

        if emitted > 0 {
            idle_since = None;
            continue;
        }
        // Nothing to emit. For a short while keep polling (yielding to other tasks), so a spout
        // whose next tuple is microseconds away emits it on time; then back off to sleeping.
        let idle_for = now.duration_since(*idle_since.get_or_insert(now));
        if idle_for < settings.spout_spin && !saturated && active {
            tokio::task::yield_now().await;
            continue;
        }
        // Finished spouts only wait for outcomes (which wake this up) and timeouts: no 1 ms
        // polling, which under simulated time would also advance the clock 1 ms at a time.
        let finished = tasks.iter().all(|t| t.spout.is_finished());
        let wait = if saturated || finished {
            check_every
        } else {
            Duration::from_millis(1)
        };
        tokio::select! {
            // Once every producer has gone (no ackers), the branch is disabled, not spinning.
            Some(env) = inbox.recv() => stash.push(env),
            _ = status.changed() => {}
            _ = tokio::time::sleep(wait) => {}
        }
    }

    let mut reports = Vec::with_capacity(tasks.len());
    for t in &mut tasks {
        if active {
            guarded(t.spout.deactivate(), &mut t.collector.em, "deactivate").await;
        }
        guarded(t.spout.close(), &mut t.collector.em, "close").await;
        t.collector.em.outbox.flush();
        send_draining(
            &mut t.collector.em.outbox,
            &transfer,
            &mut inbox,
            &mut stash,
        )
        .await;
        t.collector.em.publish(Instant::now());
        reports.push(report(&t.collector.em));
    }
    Ok(reports)
}

/// Delivers a batch of tree outcomes to the spout task's `ack`/`fail`.
async fn on_outcomes(tasks: &mut [SpoutTask], first_task: u32, env: Envelope) {
    let Some(t) = tasks.get_mut((env.task - first_task) as usize) else {
        return;
    };
    let Payload::Outcomes(outcomes) = env.payload else {
        return;
    };
    let now = clock::now();
    for o in outcomes {
        let (root, acked) = match &o {
            TreeOutcome::Acked { root } => (*root, true),
            TreeOutcome::Failed { root, .. } => (*root, false),
        };
        let (checkpoints, mut parts) = t.parts();
        if let Some(c) = checkpoints {
            let (barrier, completed) = c.outcome(root, acked, &mut parts);
            if let Some((id, position)) = completed {
                guarded(
                    t.spout.checkpoint_complete(id, position),
                    &mut t.collector.em,
                    "checkpoint_complete",
                )
                .await;
            }
            if barrier {
                continue;
            }
        }
        match o {
            TreeOutcome::Acked { root } => {
                if let Some(tree) = t.collector.pending.take(root) {
                    t.collector.em.stats.acked += 1;
                    let lat = &mut t.collector.em.lat;
                    lat.complete_ns += (now - tree.emitted).as_nanos() as u64;
                    lat.completed += 1;
                    guarded(t.spout.ack(tree.msg_id), &mut t.collector.em, "ack").await;
                }
            }
            TreeOutcome::Failed { root, reason } => {
                if let Some(tree) = t.collector.pending.take(root) {
                    if let Some(c) = &t.checkpoints {
                        c.sc.request_rollback(t.ctx.task_id);
                    }
                    t.collector.em.stats.failed += 1;
                    reason.count(&mut t.collector.em.stats.failures);
                    guarded(
                        t.spout.fail_with_reason(tree.msg_id, &reason),
                        &mut t.collector.em,
                        "fail",
                    )
                    .await;
                }
            }
        }
    }
}

/// Sends the ready batches; while a queue is full, keeps taking our own queue's outcomes into
/// `stash` so the acker (which may be waiting on us) can make progress.
async fn send_draining(
    outbox: &mut Outbox,
    transfer: &Transfer,
    inbox: &mut Inbox,
    stash: &mut Vec<Envelope>,
) {
    for env in outbox.ready.drain(..) {
        let task = env.task;
        let sender = match transfer.sender(task) {
            Ok(s) => s,
            Err(e) => {
                tracing::debug!("dropping batch: {e}");
                continue;
            }
        };
        let result = loop {
            tokio::select! {
                biased;
                permit = sender.reserve() => break permit.map(|p| p.send(env)),
                Some(e) = inbox.recv() => stash.push(e),
            }
        };
        if result.is_err() {
            tracing::debug!("dropping batch: {}", TransferError::Closed(task));
        }
    }
}
