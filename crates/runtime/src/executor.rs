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

use crate::collector::{Emitter, OutputCollector, SpoutOutputCollector, TaskStats};
use crate::component::{Bolt, BoltEvent, Spout, TopologyContext};
use crate::metrics::PUBLISH_EVERY;
use crate::settings::RuntimeSettings;
use crate::transfer::TreeOutcome;
use crate::transfer::{Envelope, Inbox, Outbox, Payload, Transfer, TransferError};
use crate::tuple::{Anchors, Fields, StreamMeta, Tuple, SYSTEM_COMPONENT, TICK_STREAM};
use crate::values;
use futures_util::FutureExt;
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
                        if t.collector.em.lat.sample_next() {
                            let start = Instant::now();
                            execute(t, tuple).await;
                            let end = Instant::now();
                            let lat = &mut t.collector.em.lat;
                            lat.execute_ns += (end - start).as_nanos() as u64;
                            lat.process_ns += (end - received).as_nanos() as u64;
                            lat.samples += 1;
                        } else {
                            execute(t, tuple).await;
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

/// Executes one tuple; an error or panic fails the input's tree and is reported.
#[inline]
async fn execute(t: &mut BoltTask, tuple: Tuple) {
    let anchors = if tuple.is_tracked() {
        tuple.anchors.clone()
    } else {
        Anchors::new()
    };
    if !tuple.is_tick() {
        t.collector.em.stats.executed += 1;
    }
    let result = AssertUnwindSafe(t.bolt.execute(tuple, &mut t.collector))
        .catch_unwind()
        .await;
    let message = match result {
        Ok(Ok(())) => return,
        Ok(Err(e)) => format!("execute failed: {e}"),
        Err(p) => format!("execute panicked: {}", panic_message(&*p)),
    };
    t.collector.report_error(message);
    t.collector.em.stats.failed += 1;
    t.collector.fail_roots(&anchors);
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
    let first_task = tasks.first().map_or(0, |t| t.ctx.task_id);
    let mut active = false;
    let mut stash: Vec<Envelope> = Vec::new();
    let check_every = (settings.message_timeout / 4).min(Duration::from_secs(1));
    let mut next_timeout_check = Instant::now() + check_every;
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
        if now >= next_timeout_check {
            next_timeout_check = now + check_every;
            for t in &mut tasks {
                for msg_id in t.collector.pending.expire(now, settings.message_timeout) {
                    t.collector.em.stats.failed += 1;
                    guarded(t.spout.fail(msg_id), &mut t.collector.em, "fail").await;
                }
            }
        }

        for t in &mut tasks {
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
        let wait = if saturated {
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
    let now = Instant::now();
    for o in outcomes {
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
            TreeOutcome::Failed { root } => {
                if let Some(tree) = t.collector.pending.take(root) {
                    t.collector.em.stats.failed += 1;
                    guarded(t.spout.fail(tree.msg_id), &mut t.collector.em, "fail").await;
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
