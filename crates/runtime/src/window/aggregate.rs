//! Aggregating windows: a windowed bolt that folds each tuple into a per-window, per-key
//! accumulator as it arrives (Flink's `AggregateFunction`: create, add, merge, result) instead
//! of holding the tuples until the window closes. Memory is keys × open panes, not tuples;
//! sliding windows are merges of panes (`panes.rs`), so no tuple is read twice.
//!
//! Event time, watermarks, idle inputs and late tuples work as in tuple-holding windows
//! ([`super`]); windows must be time windows (a length and a slide in ms). What it emits is not
//! anchored: a result stands for many tuples, already acked or held for a checkpoint.
//!
//! - **Not checkpointed** (a topology without checkpoints): each tuple is acked once it is
//!   folded in, so a crash of the task loses its open windows (at most once).
//! - **Checkpointed** (the topology takes checkpoints: it has a stateful bolt, or
//!   `Windowing::with_checkpoints` asked for them): the windows are operator state, as in
//!   Flink. At each checkpoint the panes changed or dropped since the last one are saved in
//!   the task's state store (one store key per pane: its keys and accumulators, MessagePack),
//!   with the watermark, the last closed window and each input's latest timestamp; a
//!   restarted task restores them before its first tuple, so windows, timers and lateness
//!   continue where the checkpoint left them. This is why [`WindowAggregate`]'s key and
//!   accumulator are `Serialize + DeserializeOwned`. Exactly once: inputs are acked at once
//!   and the spouts rewind to the restored checkpoint, so every input is counted once in
//!   every window (a window that closed after the checkpoint emits its result again, with the
//!   same value: sinks deduplicate by window and key). At least once: inputs are acked when a
//!   saved checkpoint holds them; replays may then come after the watermark passed them
//!   (late) or count twice, so results are not exact.

use super::panes::{NoRoom, Panes, WindowSpan};
use super::watermark::{Mark, Watermarks};
use super::{now_ms, OutputMode, WindowSize, Windowing, LATE_TUPLE_FIELDS};
use crate::collector::OutputCollector;
use crate::component::{Bolt, ComponentResult, ExecuteNow, OutputDeclarer, TopologyContext};
use crate::state::context::StateContext;
use crate::state::store::{Changes, StateStore};
use crate::state::{save_checkpoint, TaskState};
use crate::tuple::{Tuple, DEFAULT_STREAM};
use crate::value::{Value, Values};
use crate::values;
use async_trait::async_trait;
use compact_str::CompactString;
use rustc_hash::FxHashMap;
use serde::de::DeserializeOwned;
use serde::Serialize;
use std::hash::Hash;
use std::sync::Arc;

/// How an aggregating windowed bolt folds its input: one accumulator per window and key
/// (Flink's `AggregateFunction`). Wire it with `TopologyBuilder::set_aggregating_bolt`.
///
/// Every method is synchronous and called on the bolt's own executor: `add` runs once per
/// tuple, so keep it cheap. [`Reduce`] implements it for a key, a value and a reduce function.
pub trait WindowAggregate: Send + 'static {
    /// What tuples are grouped by. Serde, because a checkpoint saves it with its
    /// accumulators (topologies with checkpoints; see the module doc).
    type Key: Eq + Hash + Clone + Serialize + DeserializeOwned + Send + Sync;
    /// The running aggregate of one key in one pane of a window. Serde, because a
    /// checkpoint saves it: a type that cannot be (a handle, a closure) does not compile here;
    /// keep such things in the aggregate itself, or serialize a summary of them.
    type Acc: Clone + Serialize + DeserializeOwned + Send + Sync;

    /// Declares the streams [`Self::result`] emits on (the default stream; the late tuple
    /// stream is declared for it).
    fn declare_output_fields(&self, declarer: &mut OutputDeclarer);
    /// Called once before the first tuple.
    fn prepare(&mut self, _ctx: &TopologyContext) -> ComponentResult {
        Ok(())
    }
    /// The key of `input`; an error fails the tuple.
    fn key(&self, input: &Tuple) -> ComponentResult<Self::Key>;
    /// A new, empty accumulator.
    fn create(&self) -> Self::Acc;
    /// Folds `input` into `acc`; an error fails the tuple (the accumulator must be unchanged).
    fn add(&self, acc: &mut Self::Acc, input: &Tuple) -> ComponentResult;
    /// Folds `other` (the same key, a later pane of the same window) into `acc`.
    fn merge(&self, acc: &mut Self::Acc, other: &Self::Acc);
    /// The tuple emitted (on the default stream) for `key` in `window`.
    fn result(&self, key: &Self::Key, acc: &Self::Acc, window: WindowSpan) -> Values;
}

type KeyFn<K> = Box<dyn Fn(&Tuple) -> ComponentResult<K> + Send + Sync>;
type ValueFn<V> = Box<dyn Fn(&Tuple) -> ComponentResult<V> + Send + Sync>;
type ReduceFn<V> = Box<dyn Fn(&mut V, &V) + Send + Sync>;
type OutputFn<K, V> = Box<dyn Fn(&K, &V, WindowSpan) -> Values + Send + Sync>;

/// A [`WindowAggregate`] from functions: each tuple gives a key and a value, values of a key
/// are combined with an associative `reduce` (Spark's `reduceByKeyAndWindow`), and `output`
/// makes the tuple of a window and key.
pub struct Reduce<K, V> {
    fields: Vec<String>,
    key: KeyFn<K>,
    value: ValueFn<V>,
    reduce: ReduceFn<V>,
    output: OutputFn<K, V>,
}

impl<K, V> std::fmt::Debug for Reduce<K, V> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Reduce")
            .field("fields", &self.fields)
            .finish_non_exhaustive()
    }
}

impl<K, V> Reduce<K, V> {
    /// Emits `fields` (what `output` returns) per window and key; `reduce` must be
    /// associative (panes are reduced, then merged).
    pub fn new<I, S>(
        fields: I,
        key: impl Fn(&Tuple) -> ComponentResult<K> + Send + Sync + 'static,
        value: impl Fn(&Tuple) -> ComponentResult<V> + Send + Sync + 'static,
        reduce: impl Fn(&mut V, &V) + Send + Sync + 'static,
        output: impl Fn(&K, &V, WindowSpan) -> Values + Send + Sync + 'static,
    ) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        Reduce {
            fields: fields.into_iter().map(Into::into).collect(),
            key: Box::new(key),
            value: Box::new(value),
            reduce: Box::new(reduce),
            output: Box::new(output),
        }
    }
}

impl Reduce<CompactString, i64> {
    /// Counts tuples per value of the string field `field`; emits `[field, "start", "end",
    /// "count"]` per window and key.
    pub fn count_by(field: &str) -> Self {
        let name = field.to_string();
        Reduce::new(
            [field, "start", "end", "count"],
            move |t| Ok(CompactString::from(t.str(name.as_str())?)),
            |_| Ok(1),
            |a, b| *a += *b,
            |k, n, w| values![k.as_str(), w.start_ms, w.end_ms, *n],
        )
    }
}

impl<K, V> WindowAggregate for Reduce<K, V>
where
    K: Eq + Hash + Clone + Serialize + DeserializeOwned + Send + Sync + 'static,
    V: Clone + Serialize + DeserializeOwned + Send + Sync + 'static,
{
    type Key = K;
    type Acc = Option<V>;

    fn declare_output_fields(&self, declarer: &mut OutputDeclarer) {
        declarer.declare(self.fields.iter().cloned());
    }
    fn key(&self, input: &Tuple) -> ComponentResult<K> {
        (self.key)(input)
    }
    fn create(&self) -> Option<V> {
        None
    }
    fn add(&self, acc: &mut Option<V>, input: &Tuple) -> ComponentResult {
        let v = (self.value)(input)?;
        match acc {
            Some(a) => (self.reduce)(a, &v),
            None => *acc = Some(v),
        }
        Ok(())
    }
    fn merge(&self, acc: &mut Option<V>, other: &Option<V>) {
        match (acc.as_mut(), other) {
            (Some(a), Some(b)) => (self.reduce)(a, b),
            (None, Some(b)) => *acc = Some(b.clone()),
            (_, None) => {}
        }
    }
    fn result(&self, key: &K, acc: &Option<V>, window: WindowSpan) -> Values {
        match acc {
            Some(v) => (self.output)(key, v, window),
            None => Values::new(),
        }
    }
}

/// A task's panes and watermark, made in `prepare`.
struct Running<A: WindowAggregate> {
    panes: Panes<A::Key, A::Acc>,
    watermarks: Option<Watermarks>,
    late: u64,
    refused: u64,
    checkpoints: Option<Checkpoints>,
    /// Why the windows could not be restored: inputs are failed instead of counted wrong.
    broken: Option<String>,
}

/// One pane's accumulators, by key.
type PaneAccs<A> = FxHashMap<<A as WindowAggregate>::Key, <A as WindowAggregate>::Acc>;

/// A checkpointed task's store and the inputs whose acks wait for the next checkpoint.
struct Checkpoints {
    store: Box<dyn StateStore>,
    context: Arc<StateContext>,
    /// At least once: inputs folded in since the last saved checkpoint.
    unacked: Vec<Tuple>,
}

/// The store key of the windows' progress; panes are `PANE` and their start, big-endian.
const META_KEY: &[u8] = b"m";
const PANE: u8 = b'p';

/// What a checkpoint saves besides the panes.
#[derive(serde::Serialize, serde::Deserialize)]
struct Meta {
    watermark: i64,
    closed_upto: i64,
    /// Each input's (task, stream) and latest timestamp.
    inputs: Vec<((u32, String), i64)>,
}

fn pane_key(start: i64) -> Vec<u8> {
    let mut k = Vec::with_capacity(9);
    k.push(PANE);
    k.extend_from_slice(&start.to_be_bytes());
    k
}

/// Runs a [`WindowAggregate`] as a [`Bolt`] (what `TopologyBuilder::set_aggregating_bolt`
/// registers).
pub struct AggregatingBoltAdapter<A: WindowAggregate> {
    agg: A,
    windowing: Windowing,
    running: Option<Running<A>>,
}

impl<A: WindowAggregate> std::fmt::Debug for AggregatingBoltAdapter<A> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AggregatingBoltAdapter")
            .field("windowing", &self.windowing)
            .finish_non_exhaustive()
    }
}

fn millis(size: WindowSize) -> i64 {
    match size {
        WindowSize::Duration(d) => d.as_millis() as i64,
        // Refused by `Windowing::aggregating_problems` when the topology is built.
        WindowSize::Count(_) => 1,
    }
}

impl<A: WindowAggregate> AggregatingBoltAdapter<A> {
    /// `agg` over `windowing`'s windows (time windows; see
    /// [`Windowing::aggregating_problems`]).
    pub fn new(agg: A, windowing: Windowing) -> Self {
        AggregatingBoltAdapter {
            agg,
            windowing,
            running: None,
        }
    }

    /// Folds one tuple in (or handles a tick).
    fn on_tuple(&mut self, input: Tuple, collector: &mut OutputCollector) -> ComponentResult {
        if input.is_tick() {
            self.on_timer(collector);
            return Ok(());
        }
        if let Some(running) = self.running.as_mut() {
            if let Some(why) = &running.broken {
                // Counting on empty windows would give wrong results: fail instead.
                if running.refused % 10_000 == 0 {
                    collector.report_error(format!(
                        "windows not restored, failing inputs ({} so far): {why}",
                        running.refused + 1
                    ));
                }
                running.refused += 1;
                collector.fail_because(&input, format!("windows not restored: {why}"));
                return Ok(());
            }
        }
        let ts = self.windowing.event_time(&input)?;
        let now = now_ms();
        let Some(running) = self.running.as_mut() else {
            return Err("an aggregating windowed bolt executed before prepare".into());
        };
        if let (Some(w), Some(ts)) = (running.watermarks.as_mut(), ts) {
            w.observe(
                (input.source_task(), input.source_stream().to_string()),
                ts,
                now,
            );
        }
        let event_time = ts.is_some();
        // Processing time: the arrival, never below the watermark (the clock may step back).
        let t = ts.unwrap_or_else(|| now.max(running.panes.watermark()));
        let key = self.agg.key(&input)?;
        let agg = &self.agg;
        match running
            .panes
            .accumulator(t, key, event_time, || agg.create())
        {
            Ok(acc) => {
                agg.add(acc, &input)?;
                match running.checkpoints.as_mut() {
                    Some(c) if !c.context.exactly_once && input.is_tracked() => {
                        c.unacked.push(input)
                    }
                    _ => collector.ack(&input),
                }
            }
            Err(NoRoom::Late) => {
                running.late += 1;
                collector.em.stats.late = running.late;
                if let Some(stream) = &self.windowing.late_stream {
                    let values: Box<[Value]> = input.values().into();
                    collector.emit_to(stream, &[&input], values![Value::List(values), t])?;
                }
                collector.ack(&input);
            }
            Err(NoRoom::Full) => {
                running.refused += 1;
                let limit = self.windowing.max_accumulators;
                collector.fail_because(
                    &input,
                    format!("the task holds its limit of {limit} window accumulators"),
                );
                if running.refused.is_power_of_two() {
                    collector.report_error(format!(
                        "the task holds its limit of {limit} window accumulators (keys × open panes); failed {} tuples so far (they will be replayed)",
                        running.refused
                    ));
                }
            }
        }
        collector.em.stats.held = running.panes.entries() as u64;
        Ok(())
    }

    /// Restores the windows from the task's store (checkpointed windows).
    fn restore(&mut self, ctx: &TopologyContext) -> Result<(), String> {
        let Some(running) = self.running.as_mut() else {
            return Ok(());
        };
        let opened = TaskState::open(ctx)?;
        let task = format!("{} task {}", ctx.component_id(), ctx.task_id());
        let mut meta = None;
        let mut panes: Vec<(i64, PaneAccs<A>)> = Vec::new();
        let undecodable = |e: rmp_serde::decode::Error| {
            format!(
                "the windows of {task} do not decode as this bolt's key and accumulator types: {e}"
            )
        };
        for (k, v) in opened.restored.entries {
            if k == META_KEY {
                meta = Some(rmp_serde::from_slice::<Meta>(&v).map_err(undecodable)?);
            } else if k.len() == 9 && k[0] == PANE {
                let start = i64::from_be_bytes(k[1..9].try_into().expect("8 bytes"));
                let accs: Vec<(A::Key, A::Acc)> = rmp_serde::from_slice(&v).map_err(undecodable)?;
                panes.push((start, accs.into_iter().collect()));
            } else {
                return Err(format!("the windows of {task} hold an unknown key {k:?}"));
            }
        }
        running.panes.track_saves();
        if let Some(meta) = meta {
            running
                .panes
                .restore(meta.watermark, meta.closed_upto, panes);
            if let Some(w) = running.watermarks.as_mut() {
                w.restore(meta.inputs, now_ms());
            }
            tracing::info!(%task, checkpoint = ?opened.restored.checkpoint, accumulators = running.panes.entries(), watermark = meta.watermark, "windows restored");
        }
        running.checkpoints = Some(Checkpoints {
            store: opened.store,
            context: opened.context,
            unacked: Vec::new(),
        });
        Ok(())
    }

    /// Saves the panes changed since the last checkpoint, and the watermark, as `id`.
    fn save(&mut self, id: u64, task: &str) -> Result<(), String> {
        let Some(running) = self.running.as_mut() else {
            return Ok(());
        };
        let Some(c) = running.checkpoints.as_mut() else {
            return Ok(());
        };
        let encode = |e: rmp_serde::encode::Error| format!("cannot encode the windows: {e}");
        let mut changes: Changes = Vec::new();
        for (start, accs) in running.panes.changes() {
            let value = match accs {
                Some(accs) => {
                    let entries: Vec<(&A::Key, &A::Acc)> = accs.iter().collect();
                    Some(rmp_serde::to_vec(&entries).map_err(encode)?)
                }
                None => None,
            };
            changes.push((pane_key(start), value));
        }
        let meta = Meta {
            watermark: running.panes.watermark(),
            closed_upto: running.panes.closed_upto(),
            inputs: running
                .watermarks
                .as_ref()
                .map(|w| w.snapshot())
                .unwrap_or_default(),
        };
        changes.push((
            META_KEY.to_vec(),
            Some(rmp_serde::to_vec(&meta).map_err(encode)?),
        ));
        save_checkpoint(c.store.as_mut(), &c.context, task, id, &changes)?;
        running.panes.saved();
        Ok(())
    }

    /// Moves the watermark (event time) or the clock (processing time) and emits.
    fn on_timer(&mut self, collector: &mut OutputCollector) {
        let now = now_ms();
        if let Some(running) = self.running.as_mut() {
            match running.watermarks.as_ref().map(|w| w.current(now)) {
                Some(Some(Mark::At(mark))) => running.panes.advance(mark),
                Some(Some(Mark::AllIdle(latest))) => {
                    let horizon = running.panes.flush_horizon(latest);
                    running.panes.advance(horizon);
                }
                Some(None) => {}
                None => running.panes.advance(now),
            }
        }
        self.emit_due(collector);
    }

    /// Update mode: emits what changed; then closes every due window (append mode: emitting
    /// its results).
    fn emit_due(&mut self, collector: &mut OutputCollector) {
        let agg = &self.agg;
        let Some(running) = self.running.as_mut() else {
            return;
        };
        let merge = |a: &mut A::Acc, b: &A::Acc| agg.merge(a, b);
        let emit = |collector: &mut OutputCollector, values: Values| {
            if values.is_empty() {
                return;
            }
            if let Err(e) = collector.emit_to(DEFAULT_STREAM, &[], values) {
                collector.report_error(format!("emitting a window result: {e}"));
            }
        };
        let append = self.windowing.output_mode == OutputMode::Append;
        if !append {
            for (span, key, acc) in running.panes.take_updates(merge) {
                emit(collector, agg.result(&key, &acc, span));
            }
        }
        while let Some(span) = running.panes.next_due() {
            if append {
                for (key, acc) in running.panes.window_result(span, merge) {
                    emit(collector, agg.result(&key, &acc, span));
                }
            }
            running.panes.close(span);
        }
        collector.em.stats.held = running.panes.entries() as u64;
    }
}

#[async_trait]
impl<A: WindowAggregate> Bolt for AggregatingBoltAdapter<A> {
    fn declare_output_fields(&self, declarer: &mut OutputDeclarer) {
        self.agg.declare_output_fields(declarer);
        if let Some(s) = &self.windowing.late_stream {
            declarer.declare_stream(s, LATE_TUPLE_FIELDS);
        }
    }

    fn tick_interval(&self) -> Option<std::time::Duration> {
        // Event time: every watermark interval; processing time: a tenth of the slide (at
        // most 100 ms). Updates (update mode) go out at the same timer.
        self.windowing.timer()
    }

    async fn prepare(&mut self, ctx: &TopologyContext) -> ComponentResult {
        let w = &self.windowing;
        self.running = Some(Running {
            panes: Panes::new(
                millis(w.length),
                millis(w.slide),
                w.max_accumulators,
                w.output_mode == OutputMode::Update,
            ),
            watermarks: w.watermarks(ctx),
            late: 0,
            refused: 0,
            checkpoints: None,
            broken: None,
        });
        self.agg.prepare(ctx)?;
        // In a checkpointed topology (a stateful bolt, or `Windowing::with_checkpoints`) the
        // windows are state, as in Flink: saved with every checkpoint, restored here.
        if ctx.state.is_some() {
            if let Err(e) = self.restore(ctx) {
                // As a stateful bolt: not an error of prepare (the worker would restart and
                // fail again, in a loop); the task stays up, reports it and fails its inputs.
                tracing::error!(task = ctx.task_id(), "windows not restored: {e}");
                if let Some(r) = self.running.as_mut() {
                    r.broken = Some(e);
                }
            }
        }
        Ok(())
    }

    async fn checkpoint(&mut self, id: u64, collector: &mut OutputCollector) -> ComponentResult {
        let task = format!("{} task {}", collector.em.component, collector.task_id());
        if let Some(why) = self.running.as_ref().and_then(|r| r.broken.as_ref()) {
            return Err(format!("windows not restored: {why}").into());
        }
        let saved = self.save(id, &task);
        let Some(c) = self.running.as_mut().and_then(|r| r.checkpoints.as_mut()) else {
            return Ok(());
        };
        match saved {
            Ok(()) => {
                for t in c.unacked.drain(..) {
                    collector.ack(&t);
                }
                Ok(())
            }
            Err(e) => {
                // The inputs are replayed; the changed panes are saved with the next one.
                let why = format!("saving the windows: {e}");
                for t in c.unacked.drain(..) {
                    collector.fail_because(&t, &why);
                }
                Err(why.into())
            }
        }
    }

    async fn execute(&mut self, input: Tuple, collector: &mut OutputCollector) -> ComponentResult {
        self.on_tuple(input, collector)
    }

    fn execute_now(&mut self, input: Tuple, collector: &mut OutputCollector) -> ExecuteNow {
        ExecuteNow::Done(self.on_tuple(input, collector))
    }
}
