//! The traits topology authors implement: [`Spout`], [`Bolt`] and [`BasicBolt`], and what the
//! runtime hands them ([`TopologyContext`], [`OutputDeclarer`]).

use crate::collector::{BasicOutputCollector, OutputCollector, SpoutOutputCollector};
use crate::failure::FailReason;
use crate::tuple::{Tuple, DEFAULT_STREAM};
use async_trait::async_trait;
use std::collections::BTreeMap;
use std::ops::Range;
use std::sync::Arc;
use tempest_protocol::config::Config;
use tempest_protocol::spec::{StreamSpec, TaskLayout, TopologySpec};

/// The error type components return: any error, boxed.
pub type ComponentError = Box<dyn std::error::Error + Send + Sync>;
/// The result of a component callback.
pub type ComponentResult<T = ()> = Result<T, ComponentError>;

/// A source of tuples.
///
/// The runtime calls `next_tuple` in a loop on the spout's own executor, and `ack`/`fail` on the
/// same executor when a tuple tree it emitted with a message id completes or fails.
#[async_trait]
pub trait Spout: Send + 'static {
    /// Declares the streams this spout emits.
    fn declare_output_fields(&self, declarer: &mut OutputDeclarer);
    /// Called once before anything else.
    async fn open(&mut self, _ctx: &TopologyContext) -> ComponentResult {
        Ok(())
    }
    /// Emit zero or more tuples. Return quickly when there is nothing to emit.
    async fn next_tuple(&mut self, collector: &mut SpoutOutputCollector) -> ComponentResult;
    /// The tuple tree of `msg_id` completed.
    async fn ack(&mut self, _msg_id: u64) {}
    /// The tuple tree of `msg_id` failed or timed out; replay it if you want it delivered.
    async fn fail(&mut self, _msg_id: u64) {}
    /// The tuple tree of `msg_id` failed, for `reason`: it timed out, a bolt task failed it
    /// (`collector.fail`, an `Err` from `execute` or a panic in it, with its message), or a
    /// tuple of it could not be delivered to a worker. The runtime calls this instead of
    /// [`fail`](Self::fail); the default calls `fail`, so a spout that does not care why
    /// implements `fail` alone, as in Storm.
    async fn fail_with_reason(&mut self, msg_id: u64, _reason: &FailReason) {
        self.fail(msg_id).await
    }
    /// The topology was activated (also called after `open` when it starts active).
    async fn activate(&mut self) {}
    /// The topology was deactivated: `next_tuple` is not called until it is activated again.
    async fn deactivate(&mut self) {}
    /// Called once when the spout is shut down.
    async fn close(&mut self) {}
    /// A finite spout returns true once it has nothing more to emit, ever. Local mode ends when
    /// every spout is finished and every tuple tree is complete.
    fn is_finished(&self) -> bool {
        false
    }
    /// Exactly-once mode: where this spout stands in its source (what it has emitted so far),
    /// saved with each checkpoint. `None` (the default): it cannot rewind, and the topology
    /// cannot run exactly-once.
    fn position(&self) -> Option<serde_json::Value> {
        None
    }
    /// Exactly-once mode: continue from `position` (one this spout returned from
    /// [`Spout::position`]), after a rollback to the checkpoint it was saved with; called
    /// before the next `next_tuple`.
    async fn rewind(&mut self, _position: serde_json::Value) -> ComponentResult {
        Err("this spout cannot rewind (implement Spout::position and Spout::rewind)".into())
    }
    /// Exactly-once mode: checkpoint `id`, whose positions include `position`, is complete:
    /// the spout may make it durable in its source (a Kafka spout commits those offsets).
    async fn checkpoint_complete(&mut self, _id: u64, _position: serde_json::Value) {}
}

/// An operator: receives tuples, emits tuples, acks or fails its inputs.
///
/// If the input is part of a tracked tuple tree, call `collector.ack(&input)` (or `fail`) once
/// you are done with it, or the tree times out. Returning an error (or panicking) fails the
/// input's tree and reports the error; do not also ack it.
#[async_trait]
pub trait Bolt: Send + 'static {
    /// Declares the streams this bolt emits.
    fn declare_output_fields(&self, declarer: &mut OutputDeclarer);
    /// Called once before the first tuple.
    async fn prepare(&mut self, _ctx: &TopologyContext) -> ComponentResult {
        Ok(())
    }
    /// Processes one input tuple.
    async fn execute(&mut self, input: Tuple, collector: &mut OutputCollector) -> ComponentResult;
    /// The synchronous fast path: a bolt whose work on a tuple never waits may do it here and
    /// return [`ExecuteNow::Done`], which saves allocating `execute`'s future for every tuple
    /// (a tenth of the cost of a light bolt). The executor calls this first and `execute` only
    /// with the tuple it gives back ([`ExecuteNow::Later`], the default). [`BasicBolt`]s use
    /// this path.
    fn execute_now(&mut self, input: Tuple, _collector: &mut OutputCollector) -> ExecuteNow {
        ExecuteNow::Later(input)
    }
    /// Called once when the bolt is shut down.
    async fn cleanup(&mut self) {}
    /// How often this bolt wants a tick tuple, besides `topology.tick.tuple.freq.secs` (the
    /// shorter wins); windowed bolts use it for their timers.
    fn tick_interval(&self) -> Option<std::time::Duration> {
        None
    }
    /// A checkpoint barrier reached this task on every input (topologies with stateful
    /// bolts): make what the task holds durable as of checkpoint `id`, before the barrier
    /// moves on. Stateful bolts save their state here; another bolt may flush a buffer. An
    /// `Err` abandons the checkpoint (it never completes; the next one is tried).
    async fn checkpoint(&mut self, _id: u64, _collector: &mut OutputCollector) -> ComponentResult {
        Ok(())
    }
    /// Handles an event sent with [`TopologyContext::events`]: something that completed after
    /// `execute` returned (a write the broker confirmed, a call that answered). Runs on the
    /// bolt's own executor, between tuples, with its collector: ack, fail or emit here. A bolt
    /// that sends events must handle them; the default reports them as errors.
    async fn event(
        &mut self,
        _event: BoltEvent,
        _collector: &mut OutputCollector,
    ) -> ComponentResult {
        Err("this bolt received an event but does not handle events (implement Bolt::event)".into())
    }
}

/// What [`Bolt::execute_now`] did with a tuple.
#[derive(Debug)]
pub enum ExecuteNow {
    /// Executed, with this result (as `execute` would have returned it).
    Done(ComponentResult),
    /// Not executed here: the executor passes the tuple to `execute`.
    Later(Tuple),
}

/// An event for a bolt task, of any type its sender chose ([`Bolt::event`]).
pub struct BoltEvent(Box<dyn std::any::Any + Send>);

impl std::fmt::Debug for BoltEvent {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("BoltEvent(..)")
    }
}

impl BoltEvent {
    /// The event as a `T`, or itself back if it is another type.
    pub fn downcast<T: std::any::Any>(self) -> Result<T, BoltEvent> {
        self.0.downcast::<T>().map(|b| *b).map_err(BoltEvent)
    }
}

/// Queue capacity of a bolt executor's events: senders wait when it is full.
pub(crate) const EVENT_QUEUE: usize = 1024;

/// Sends events to one bolt task from anywhere (another tokio task, a callback): they are
/// handled by [`Bolt::event`] on the bolt's own executor. Clone it freely.
#[derive(Debug, Clone)]
pub struct EventSender {
    task: u32,
    queue: tokio::sync::mpsc::Sender<(u32, BoltEvent)>,
}

impl EventSender {
    pub(crate) fn new(task: u32, queue: tokio::sync::mpsc::Sender<(u32, BoltEvent)>) -> Self {
        EventSender { task, queue }
    }

    /// Sends `event`, waiting while the executor's event queue is full; `Err` gives it back
    /// if the bolt has shut down.
    pub async fn send<E: std::any::Any + Send>(&self, event: E) -> Result<(), E> {
        self.queue
            .send((self.task, BoltEvent(Box::new(event))))
            .await
            .map_err(|e| {
                let (_, BoltEvent(boxed)) = e.0;
                *boxed.downcast::<E>().expect("the event we just boxed")
            })
    }
}

/// A bolt whose emits are anchored to the input and whose input is acked when `execute` returns
/// `Ok` (failed when it returns `Err`). Storm's `BaseBasicBolt`.
#[async_trait]
pub trait BasicBolt: Send + 'static {
    /// Declares the streams this bolt emits.
    fn declare_output_fields(&self, declarer: &mut OutputDeclarer);
    /// Called once before the first tuple.
    async fn prepare(&mut self, _ctx: &TopologyContext) -> ComponentResult {
        Ok(())
    }
    /// Processes one input tuple, without waiting on anything (as in Storm, where a basic
    /// bolt's `execute` is a plain call; a bolt that must await uses [`Bolt`]).
    fn execute(
        &mut self,
        input: &Tuple,
        collector: &mut BasicOutputCollector<'_>,
    ) -> ComponentResult;
    /// Called once when the bolt is shut down.
    async fn cleanup(&mut self) {}
}

/// Runs a [`BasicBolt`] as a [`Bolt`] (what `TopologyBuilder::set_basic_bolt` registers).
#[derive(Debug)]
pub struct BasicBoltAdapter<B>(pub B);

impl<B: BasicBolt> BasicBoltAdapter<B> {
    /// Executes `input`, acking it on `Ok`; on `Err` the executor fails its tree and reports
    /// the error.
    fn execute_basic(&mut self, input: &Tuple, collector: &mut OutputCollector) -> ComponentResult {
        self.0
            .execute(input, &mut BasicOutputCollector::new(collector, input))?;
        collector.ack(input);
        Ok(())
    }
}

#[async_trait]
impl<B: BasicBolt> Bolt for BasicBoltAdapter<B> {
    fn declare_output_fields(&self, declarer: &mut OutputDeclarer) {
        self.0.declare_output_fields(declarer)
    }
    async fn prepare(&mut self, ctx: &TopologyContext) -> ComponentResult {
        self.0.prepare(ctx).await
    }
    async fn execute(&mut self, input: Tuple, collector: &mut OutputCollector) -> ComponentResult {
        self.execute_basic(&input, collector)
    }
    fn execute_now(&mut self, input: Tuple, collector: &mut OutputCollector) -> ExecuteNow {
        ExecuteNow::Done(self.execute_basic(&input, collector))
    }
    async fn cleanup(&mut self) {
        self.0.cleanup().await
    }
}

/// Collects the streams a component declares.
#[derive(Debug, Default)]
pub struct OutputDeclarer {
    streams: BTreeMap<String, StreamSpec>,
}

impl OutputDeclarer {
    /// The streams declared so far, by id.
    pub fn into_streams(self) -> BTreeMap<String, StreamSpec> {
        self.streams
    }

    /// Declares the default stream with these fields.
    pub fn declare<I, S>(&mut self, fields: I)
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.declare_stream(DEFAULT_STREAM, fields)
    }

    /// Declares a named stream.
    pub fn declare_stream<I, S>(&mut self, stream: &str, fields: I)
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.insert(stream, fields, false)
    }

    /// Declares a direct stream: consumers subscribe with direct grouping and the emitter picks
    /// the task with `emit_direct`.
    pub fn declare_direct_stream<I, S>(&mut self, stream: &str, fields: I)
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.insert(stream, fields, true)
    }

    fn insert<I, S>(&mut self, stream: &str, fields: I, direct: bool)
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        let fields = fields.into_iter().map(Into::into).collect();
        self.streams
            .insert(stream.to_string(), StreamSpec { fields, direct });
    }
}

/// What a task knows about itself and its topology.
#[derive(Debug, Clone)]
pub struct TopologyContext {
    pub(crate) spec: Arc<TopologySpec>,
    pub(crate) layout: Arc<TaskLayout>,
    pub(crate) component: String,
    pub(crate) task_id: u32,
    pub(crate) config: Arc<Config>,
    /// For bolts: where events for this task go.
    pub(crate) events: Option<EventSender>,
    /// Checkpointed topologies: where state lives and what to restore.
    pub(crate) state: Option<Arc<crate::state::context::StateContext>>,
}

impl TopologyContext {
    /// The topology's name.
    pub fn topology_name(&self) -> &str {
        &self.spec.name
    }
    /// This task's component id.
    pub fn component_id(&self) -> &str {
        &self.component
    }
    /// This task's id (unique in the topology, from 1).
    pub fn task_id(&self) -> u32 {
        self.task_id
    }
    /// The ids of all tasks of this component.
    pub fn component_tasks(&self) -> Range<u32> {
        self.layout.tasks(&self.component)
    }
    /// The position of this task among its component's tasks (0-based).
    pub fn task_index(&self) -> u32 {
        self.task_id - self.component_tasks().start
    }
    /// The ids of the tasks of another component.
    pub fn tasks_of(&self, component: &str) -> Range<u32> {
        self.layout.tasks(component)
    }
    /// The topology config overlaid with this component's config.
    pub fn config(&self) -> &Config {
        &self.config
    }
    /// The whole topology spec.
    pub fn spec(&self) -> &TopologySpec {
        &self.spec
    }
    /// For a bolt task: a sender of events to it, handled by [`Bolt::event`] on its own
    /// executor (spouts have none).
    pub fn events(&self) -> Option<EventSender> {
        self.events.clone()
    }
}
