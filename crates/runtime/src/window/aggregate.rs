//! Aggregating windows: a windowed bolt that folds each tuple into a per-window, per-key
//! accumulator as it arrives (Flink's `AggregateFunction`: create, add, merge, result) instead
//! of holding the tuples until the window closes. Memory is keys × open panes, not tuples;
//! sliding windows are merges of panes (`panes.rs`), so no tuple is read twice.
//!
//! Event time, watermarks, idle inputs and late tuples work as in tuple-holding windows
//! ([`super`]); windows must be time windows (a length and a slide in ms). Each tuple is acked
//! once it is folded in: outside checkpoints an aggregating window is at most once across a
//! crash of its task (its open accumulators are in memory); what it emits is not anchored.

use super::panes::{NoRoom, Panes, WindowSpan};
use super::watermark::{Mark, Watermarks};
use super::{now_ms, OutputMode, WindowSize, Windowing, LATE_TUPLE_FIELDS};
use crate::collector::OutputCollector;
use crate::component::{Bolt, ComponentResult, ExecuteNow, OutputDeclarer, TopologyContext};
use crate::tuple::{Tuple, DEFAULT_STREAM};
use crate::value::{Value, Values};
use crate::values;
use async_trait::async_trait;
use compact_str::CompactString;
use serde::de::DeserializeOwned;
use serde::Serialize;
use std::hash::Hash;

/// How an aggregating windowed bolt folds its input: one accumulator per window and key
/// (Flink's `AggregateFunction`). Wire it with `TopologyBuilder::set_aggregating_bolt`.
///
/// Every method is synchronous and called on the bolt's own executor: `add` runs once per
/// tuple, so keep it cheap. [`Reduce`] implements it for a key, a value and a reduce function.
pub trait WindowAggregate: Send + 'static {
    /// What tuples are grouped by.
    type Key: Eq + Hash + Clone + Serialize + DeserializeOwned + Send + Sync;
    /// The running aggregate of one key in one pane of a window.
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
                collector.ack(&input);
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
        });
        self.agg.prepare(ctx)
    }

    async fn execute(&mut self, input: Tuple, collector: &mut OutputCollector) -> ComponentResult {
        self.on_tuple(input, collector)
    }

    fn execute_now(&mut self, input: Tuple, collector: &mut OutputCollector) -> ExecuteNow {
        ExecuteNow::Done(self.on_tuple(input, collector))
    }
}
