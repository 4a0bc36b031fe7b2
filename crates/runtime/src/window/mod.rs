//! Windowed bolts: a bolt that sees bounded views of its input — the last N tuples or the last
//! T milliseconds, every K tuples or every S milliseconds, in processing time or event time —
//! instead of one tuple at a time (Storm's `BaseWindowedBolt`).
//!
//! The user implements [`WindowedBolt::execute`], which gets a [`Window`]: its tuples, the ones
//! new since the last evaluation, the ones that expired since then, and its time span. The
//! runtime runs it as an ordinary bolt ([`WindowedBoltAdapter`]), so any grouping works:
//! - tuples are held, not acked, until they have left every window they belong to; then they
//!   are acked (or failed, if a window holding them failed). What `execute` emits is anchored
//!   to every tuple of the window, so a failure downstream replays the whole window's inputs;
//! - in event time (a timestamp field or function), the watermark is the minimum over every
//!   input task and stream of the latest timestamp minus the lag (`watermark.rs`, which also
//!   says how idle inputs are handled); windows are evaluated in order as it passes their end;
//!   a tuple below the watermark is late: counted, emitted on the late tuple stream if one is
//!   configured (fields `tuple`, the original values as a list, and `timestamp`), and acked;
//! - a task holds at most `max_tuples`; beyond that, tuples are failed (their spouts replay
//!   them later) instead of held, so memory stays bounded. The number held is the `held`
//!   metric of the task in the UI and `/metrics`.
//!
//! The window shapes are in `manager.rs`, as a state machine tested with simulated time.

mod aggregate;
mod manager;
mod panes;
mod watermark;

pub use aggregate::{AggregatingBoltAdapter, Reduce, WindowAggregate};
pub use panes::WindowSpan;

use crate::collector::{EmitError, OutputCollector};
use crate::component::{Bolt, ComponentResult, OutputDeclarer, TopologyContext};
use crate::tuple::Tuple;
use crate::value::Value;
use crate::values;
use async_trait::async_trait;
use manager::{Length, Refused, Slide, WindowManager};
use std::sync::Arc;
use std::time::Duration;
use tempest_protocol::config::*;
use watermark::{Mark, Watermarks};

/// A window's length or slide: a number of tuples or a duration.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WindowSize {
    /// This many tuples.
    Count(usize),
    /// This long (milliseconds count).
    Duration(Duration),
}

/// A function giving a tuple's event time in milliseconds.
type Extractor = Arc<dyn Fn(&Tuple) -> Option<i64> + Send + Sync>;

/// A tuple's event time in milliseconds, from a field or a function.
#[derive(Clone)]
enum Timestamp {
    Field(String),
    Extractor(Extractor),
}

impl std::fmt::Debug for Timestamp {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Timestamp::Field(name) => write!(f, "Field({name:?})"),
            Timestamp::Extractor(_) => write!(f, "Extractor(..)"),
        }
    }
}

/// How a windowed bolt's windows are cut: Storm's `withWindow`, `withTumblingWindow`,
/// `withTimestampField`, `withLag`, `withWatermarkInterval`, `withLateTupleStream`, plus an
/// idle timeout for event time and a bound on the tuples held.
#[derive(Debug, Clone)]
pub struct Windowing {
    length: WindowSize,
    slide: WindowSize,
    timestamp: Option<Timestamp>,
    lag: Duration,
    watermark_interval: Duration,
    idle_timeout: Duration,
    late_stream: Option<String>,
    max_tuples: usize,
    max_accumulators: usize,
    output_mode: OutputMode,
    checkpointed: bool,
}

/// When an aggregating window emits its results (Spark's output modes that mean something
/// for windows).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum OutputMode {
    /// Once per window and key, when the watermark passes the window's end (the default).
    #[default]
    Append,
    /// At every timer (event time: every watermark interval; processing time: a tenth of the
    /// slide, at most 100 ms), the result of each open window and key that changed since the
    /// last one; nothing more when the window closes.
    Update,
}

impl OutputMode {
    /// Its name in `topology.bolts.window.output.mode`.
    pub fn as_str(&self) -> &'static str {
        match self {
            OutputMode::Append => "append",
            OutputMode::Update => "update",
        }
    }
}

/// The default bound on the tuples a windowed task holds.
pub const DEFAULT_MAX_TUPLES: usize = 100_000;
/// The default bound on the (pane, key) accumulators an aggregating windowed task holds.
pub const DEFAULT_MAX_ACCUMULATORS: usize = 1_000_000;
/// The fields of a late tuple stream.
pub const LATE_TUPLE_FIELDS: [&str; 2] = ["tuple", "timestamp"];

impl Windowing {
    /// Windows of `length`, evaluated every `slide` (each a count or a duration, in any
    /// combination).
    pub fn sliding(length: WindowSize, slide: WindowSize) -> Self {
        Windowing {
            length,
            slide,
            timestamp: None,
            lag: Duration::ZERO,
            watermark_interval: Duration::from_secs(1),
            idle_timeout: Duration::from_secs(10),
            late_stream: None,
            max_tuples: DEFAULT_MAX_TUPLES,
            max_accumulators: DEFAULT_MAX_ACCUMULATORS,
            output_mode: OutputMode::Append,
            checkpointed: false,
        }
    }

    /// Back-to-back windows of `length` (a sliding window whose slide is its length).
    pub fn tumbling(length: WindowSize) -> Self {
        Self::sliding(length, length)
    }

    /// Event time: the timestamp (milliseconds, an integer) is this field of every input.
    pub fn with_timestamp_field(mut self, field: &str) -> Self {
        self.timestamp = Some(Timestamp::Field(field.to_string()));
        self
    }

    /// Event time: the timestamp (milliseconds) is what `f` returns; `None` fails the tuple.
    pub fn with_timestamp_extractor(
        mut self,
        f: impl Fn(&Tuple) -> Option<i64> + Send + Sync + 'static,
    ) -> Self {
        self.timestamp = Some(Timestamp::Extractor(Arc::new(f)));
        self
    }

    /// How far behind the latest timestamp tuples may still arrive (event time; default 0).
    pub fn with_lag(mut self, lag: Duration) -> Self {
        self.lag = lag;
        self
    }

    /// How often the watermark is computed (event time; default 1 s).
    pub fn with_watermark_interval(mut self, every: Duration) -> Self {
        self.watermark_interval = every;
        self
    }

    /// After this long without a tuple, an input no longer holds the watermark back (event
    /// time; default 10 s).
    pub fn with_idle_timeout(mut self, after: Duration) -> Self {
        self.idle_timeout = after;
        self
    }

    /// Late tuples are emitted on `stream` (fields [`LATE_TUPLE_FIELDS`]) instead of dropped.
    pub fn with_late_tuple_stream(mut self, stream: &str) -> Self {
        self.late_stream = Some(stream.to_string());
        self
    }

    /// At most `n` tuples held per task; more are failed (default [`DEFAULT_MAX_TUPLES`]).
    pub fn with_max_tuples(mut self, n: usize) -> Self {
        self.max_tuples = n;
        self
    }

    /// Aggregating windows: at most `n` (pane, key) accumulators per task; a tuple that needs
    /// a new one beyond that is failed (default [`DEFAULT_MAX_ACCUMULATORS`]).
    pub fn with_max_accumulators(mut self, n: usize) -> Self {
        self.max_accumulators = n;
        self
    }

    /// Aggregating windows: when results are emitted (default [`OutputMode::Append`]).
    pub fn with_output_mode(mut self, mode: OutputMode) -> Self {
        self.output_mode = mode;
        self
    }

    /// The topology takes checkpoints for these windows, as it does for a stateful bolt
    /// (aggregating windows only). An aggregating window in a topology that takes
    /// checkpoints (this, or any stateful bolt) saves its open panes' accumulators and its
    /// watermark with each checkpoint and restores them after a crash: with
    /// `topology.state.exactly.once` every input is counted once in every window result.
    /// At least once, inputs are acked once a checkpoint holds them. Tuple-holding windows
    /// (`set_windowed_bolt`) are not checkpointed: `build()` refuses this on them.
    pub fn with_checkpoints(mut self) -> Self {
        self.checkpointed = true;
        self
    }

    /// Whether the windows take part in checkpoints.
    pub fn is_checkpointed(&self) -> bool {
        self.checkpointed
    }

    /// Whether windows are in event time.
    pub fn is_event_time(&self) -> bool {
        self.timestamp.is_some()
    }

    /// The late tuple stream, if any.
    pub fn late_stream(&self) -> Option<&str> {
        self.late_stream.as_deref()
    }

    /// The component config keys that describe these windows (what `build()` and Nimbus
    /// check: window sizes against the message timeout and max spout pending, the timestamp
    /// field against the input streams).
    pub fn to_config(&self) -> Config {
        let mut c = Config::new();
        let ms = |d: Duration| d.as_millis() as u64;
        match self.length {
            WindowSize::Count(n) => c.set(TOPOLOGY_BOLTS_WINDOW_LENGTH_COUNT, n as u64),
            WindowSize::Duration(d) => c.set(TOPOLOGY_BOLTS_WINDOW_LENGTH_DURATION_MS, ms(d)),
        };
        match self.slide {
            WindowSize::Count(n) => c.set(TOPOLOGY_BOLTS_WINDOW_SLIDING_INTERVAL_COUNT, n as u64),
            WindowSize::Duration(d) => {
                c.set(TOPOLOGY_BOLTS_WINDOW_SLIDING_INTERVAL_DURATION_MS, ms(d))
            }
        };
        if let Some(Timestamp::Field(f)) = &self.timestamp {
            c.set(TOPOLOGY_BOLTS_TUPLE_TIMESTAMP_FIELD, f.as_str());
        }
        if self.is_event_time() {
            c.set(TOPOLOGY_BOLTS_TUPLE_TIMESTAMP_MAX_LAG_MS, ms(self.lag));
            c.set(
                TOPOLOGY_BOLTS_WATERMARK_EVENT_INTERVAL_MS,
                ms(self.watermark_interval),
            );
            c.set(TOPOLOGY_BOLTS_WINDOW_IDLE_TIMEOUT_MS, ms(self.idle_timeout));
        }
        if let Some(s) = &self.late_stream {
            c.set(TOPOLOGY_BOLTS_LATE_TUPLE_STREAM, s.as_str());
        }
        c.set(TOPOLOGY_BOLTS_WINDOW_MAX_TUPLES, self.max_tuples as u64);
        c
    }

    /// The config keys of these windows on an aggregating bolt: [`Self::to_config`] without
    /// the tuple bound, with the accumulator bound and the output mode.
    pub fn to_aggregating_config(&self) -> Config {
        let mut c = Config::new();
        for (k, v) in self.to_config().iter() {
            if k != TOPOLOGY_BOLTS_WINDOW_MAX_TUPLES {
                c.set(k.clone(), v.clone());
            }
        }
        c.set(TOPOLOGY_BOLTS_WINDOW_AGGREGATING, true);
        c.set(
            TOPOLOGY_BOLTS_WINDOW_MAX_ACCUMULATORS,
            self.max_accumulators as u64,
        );
        c.set(TOPOLOGY_BOLTS_WINDOW_OUTPUT_MODE, self.output_mode.as_str());
        if self.checkpointed {
            c.set(TOPOLOGY_BOLTS_STATEFUL, true);
        }
        c
    }

    /// What is wrong with these windows for an aggregating bolt: [`Self::problems`], and a
    /// count length or slide (accumulators are kept per time pane).
    pub fn aggregating_problems(&self) -> Vec<String> {
        let mut p = self.shape_problems();
        if !matches!(
            (self.length, self.slide),
            (WindowSize::Duration(_), WindowSize::Duration(_))
        ) {
            p.push("an aggregating window needs a duration for its length and its slide (counts need every tuple: use set_windowed_bolt)".to_string());
        }
        if self.max_accumulators == 0 {
            p.push(
                "max accumulators is 0; an aggregating task must be able to hold one".to_string(),
            );
        }
        p
    }

    /// The event time of `t`, or why there is none (`Ok(None)`: processing time).
    pub(crate) fn event_time(&self, t: &Tuple) -> Result<Option<i64>, String> {
        match &self.timestamp {
            None => Ok(None),
            Some(Timestamp::Field(f)) => t.i64(f.as_str()).map(Some).map_err(|e| {
                format!(
                    "no event time for a tuple from {}: {e}",
                    t.source_component()
                )
            }),
            Some(Timestamp::Extractor(f)) => f(t).map(Some).ok_or_else(|| {
                format!(
                    "the timestamp extractor gave no time for a tuple from {}",
                    t.source_component()
                )
            }),
        }
    }

    /// The watermarks of a task in `ctx` (event time), over every task of every input.
    pub(crate) fn watermarks(&self, ctx: &TopologyContext) -> Option<Watermarks> {
        self.timestamp.as_ref().map(|_| {
            let spec = ctx.spec();
            let inputs = spec
                .component(ctx.component_id())
                .map(|c| c.inputs.clone())
                .unwrap_or_default();
            let expected = inputs.iter().flat_map(|i| {
                ctx.tasks_of(&i.component)
                    .map(move |task| (task, i.stream.clone()))
            });
            Watermarks::new(
                expected.collect::<Vec<_>>(),
                self.lag.as_millis() as i64,
                self.idle_timeout.as_millis() as i64,
                now_ms(),
            )
        })
    }

    /// What is wrong with these windows on their own for a tuple-holding bolt (zero sizes, a
    /// late stream without event time, the update output mode); the checks against the
    /// topology are in `validate`.
    pub fn problems(&self) -> Vec<String> {
        let mut p = self.shape_problems();
        if self.max_tuples == 0 {
            p.push("max tuples is 0; a windowed task must be able to hold one".to_string());
        }
        if self.output_mode == OutputMode::Update {
            p.push("the update output mode needs an aggregating window (set_aggregating_bolt); a tuple-holding window is evaluated once".to_string());
        }
        if self.checkpointed {
            p.push("checkpoints of tuple-holding windows are not implemented: use an aggregating window (set_aggregating_bolt), or a stateful bolt".to_string());
        }
        p
    }

    /// What is wrong with the sizes and the late stream.
    fn shape_problems(&self) -> Vec<String> {
        let mut p = Vec::new();
        let zero = |s: WindowSize| match s {
            WindowSize::Count(n) => n == 0,
            WindowSize::Duration(d) => d.as_millis() == 0,
        };
        if zero(self.length) {
            p.push("window length is 0; it must be at least 1 tuple or 1 ms".to_string());
        }
        if zero(self.slide) {
            p.push("window slide is 0; it must be at least 1 tuple or 1 ms".to_string());
        }
        if self.late_stream.is_some() && !self.is_event_time() {
            p.push(
                "a late tuple stream needs event time: set a timestamp field or extractor"
                    .to_string(),
            );
        }
        p
    }

    /// How often the task needs a timer: to compute the watermark (event time) or to
    /// evaluate time-slide windows close to their end (processing time).
    pub(crate) fn timer(&self) -> Option<Duration> {
        match (&self.timestamp, self.slide) {
            (Some(_), _) => Some(self.watermark_interval.max(Duration::from_millis(1))),
            (None, WindowSize::Duration(s)) => {
                Some((s / 10).clamp(Duration::from_millis(1), Duration::from_millis(100)))
            }
            (None, WindowSize::Count(_)) => None,
        }
    }
}

/// One evaluation of a window.
#[derive(Debug)]
pub struct Window<'a> {
    tuples: Vec<&'a Tuple>,
    new: Vec<&'a Tuple>,
    expired: Vec<&'a Tuple>,
    start_ms: i64,
    end_ms: i64,
}

impl<'a> Window<'a> {
    /// The tuples in the window, in time order (event time, or arrival).
    pub fn tuples(&self) -> &[&'a Tuple] {
        &self.tuples
    }
    /// The tuples that were not in the previous evaluated window.
    pub fn new_tuples(&self) -> &[&'a Tuple] {
        &self.new
    }
    /// The tuples that expired since the previous evaluation (already acked).
    pub fn expired(&self) -> &[&'a Tuple] {
        &self.expired
    }
    /// Start of the window's time span, ms since the epoch (inclusive). For a count length,
    /// the time of its first tuple.
    pub fn start_ms(&self) -> i64 {
        self.start_ms
    }
    /// End of the window's time span, ms since the epoch (exclusive).
    pub fn end_ms(&self) -> i64 {
        self.end_ms
    }
    /// Number of tuples in the window.
    pub fn len(&self) -> usize {
        self.tuples.len()
    }
    /// Whether the window has no tuples (never: empty windows are not evaluated).
    pub fn is_empty(&self) -> bool {
        self.tuples.is_empty()
    }
}

/// The collector a windowed bolt emits with: every emit is anchored to every tuple of the
/// window, so the window's inputs are replayed if what it emitted fails downstream.
#[derive(Debug)]
pub struct WindowCollector<'a> {
    inner: &'a mut OutputCollector,
    anchors: &'a [&'a Tuple],
}

impl WindowCollector<'_> {
    /// Emits on the default stream, anchored to the window.
    pub fn emit(&mut self, values: crate::value::Values) -> Result<(), EmitError> {
        self.inner
            .emit_to(crate::tuple::DEFAULT_STREAM, self.anchors, values)
    }
    /// Emits on `stream`, anchored to the window.
    pub fn emit_to(&mut self, stream: &str, values: crate::value::Values) -> Result<(), EmitError> {
        self.inner.emit_to(stream, self.anchors, values)
    }
    /// Reports an error (logged and kept with the task's recent errors).
    pub fn report_error(&mut self, error: impl std::fmt::Display) {
        self.inner.report_error(error)
    }
}

/// A bolt over windows of its input.
#[async_trait]
pub trait WindowedBolt: Send + 'static {
    /// Declares the streams this bolt emits (the late tuple stream is declared for it).
    fn declare_output_fields(&self, declarer: &mut OutputDeclarer);
    /// Called once before the first window.
    async fn prepare(&mut self, _ctx: &TopologyContext) -> ComponentResult {
        Ok(())
    }
    /// Processes one window. An error fails the window's tuples (they are replayed).
    async fn execute(
        &mut self,
        window: &Window<'_>,
        collector: &mut WindowCollector<'_>,
    ) -> ComponentResult;
    /// Called once when the bolt is shut down.
    async fn cleanup(&mut self) {}
}

/// The time now on the runtime's clock, ms since the epoch.
fn now_ms() -> i64 {
    crate::clock::now_ms()
}

/// A task's windows and watermark, made in `prepare`.
struct Running {
    manager: WindowManager<Tuple>,
    watermarks: Option<Watermarks>,
    /// Late tuples, and tuples refused because the task was full.
    late: u64,
    refused: u64,
}

/// Runs a [`WindowedBolt`] as a [`Bolt`] (what `TopologyBuilder::set_windowed_bolt` registers).
pub struct WindowedBoltAdapter<B> {
    bolt: B,
    windowing: Windowing,
    running: Option<Running>,
}

impl<B> std::fmt::Debug for WindowedBoltAdapter<B> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WindowedBoltAdapter")
            .field("windowing", &self.windowing)
            .finish_non_exhaustive()
    }
}

impl<B: WindowedBolt> WindowedBoltAdapter<B> {
    /// `bolt` over `windowing`'s windows.
    pub fn new(bolt: B, windowing: Windowing) -> Self {
        WindowedBoltAdapter {
            bolt,
            windowing,
            running: None,
        }
    }

    /// Evaluates every due window and acks (or fails) what expired.
    async fn evaluate(&mut self, collector: &mut OutputCollector) {
        let Some(running) = self.running.as_mut() else {
            return;
        };
        Self::hand_back(running, collector);
        while let Some(due) = running.manager.next_window() {
            Self::hand_back(running, collector);
            let (tuples, new, expired) = running.manager.view(&due);
            let window = Window {
                tuples,
                new,
                expired,
                start_ms: due.start_ms,
                end_ms: due.end_ms,
            };
            let mut wc = WindowCollector {
                inner: collector,
                anchors: &window.tuples,
            };
            let result = self.bolt.execute(&window, &mut wc).await;
            drop(window);
            if let Err(e) = result {
                collector.report_error(format!(
                    "window [{}, {}) failed (its tuples will be replayed): {e}",
                    due.start_ms, due.end_ms
                ));
                running.manager.fail_current();
            }
            running.manager.finish_window();
            Self::hand_back(running, collector);
        }
        Self::hand_back(running, collector);
        collector.em.stats.held = running.manager.held() as u64;
    }

    /// Acks (or fails) the tuples that left every window.
    fn hand_back(running: &mut Running, collector: &mut OutputCollector) {
        for (t, failed) in running.manager.take_expired() {
            if failed {
                collector.fail_because(
                    t,
                    "a window containing it failed (the task's errors say why)",
                );
            } else {
                collector.ack(t);
            }
        }
    }

    /// Moves the watermark (event time) or the clock (processing time) and evaluates.
    async fn on_timer(&mut self, collector: &mut OutputCollector) {
        let now = now_ms();
        if let Some(running) = self.running.as_mut() {
            match running.watermarks.as_ref().map(|w| w.current(now)) {
                Some(Some(Mark::At(mark))) => running.manager.advance(mark),
                Some(Some(Mark::AllIdle(latest))) => {
                    let horizon = running.manager.flush_horizon(latest);
                    running.manager.advance(horizon);
                }
                Some(None) => {}
                None => running.manager.advance(now + 1),
            }
        }
        self.evaluate(collector).await;
    }
}

#[async_trait]
impl<B: WindowedBolt> Bolt for WindowedBoltAdapter<B> {
    fn declare_output_fields(&self, declarer: &mut OutputDeclarer) {
        self.bolt.declare_output_fields(declarer);
        if let Some(s) = &self.windowing.late_stream {
            declarer.declare_stream(s, LATE_TUPLE_FIELDS);
        }
    }

    fn tick_interval(&self) -> Option<Duration> {
        self.windowing.timer()
    }

    async fn prepare(&mut self, ctx: &TopologyContext) -> ComponentResult {
        let w = &self.windowing;
        let length = match w.length {
            WindowSize::Count(n) => Length::Count(n),
            WindowSize::Duration(d) => Length::Millis(d.as_millis() as i64),
        };
        let slide = match w.slide {
            WindowSize::Count(n) => Slide::Count(n),
            WindowSize::Duration(d) => Slide::Millis(d.as_millis() as i64),
        };
        let watermarks = w.watermarks(ctx);
        self.running = Some(Running {
            manager: WindowManager::new(length, slide, w.max_tuples),
            watermarks,
            late: 0,
            refused: 0,
        });
        self.bolt.prepare(ctx).await
    }

    async fn execute(&mut self, input: Tuple, collector: &mut OutputCollector) -> ComponentResult {
        if input.is_tick() {
            self.on_timer(collector).await;
            return Ok(());
        }
        let ts = match self.windowing.event_time(&input) {
            Ok(ts) => ts,
            Err(e) => {
                collector.fail_because(&input, &e);
                return Err(e.into());
            }
        };
        let now = now_ms();
        let Some(running) = self.running.as_mut() else {
            return Err("a windowed bolt executed before prepare".into());
        };
        if let (Some(w), Some(ts)) = (running.watermarks.as_mut(), ts) {
            w.observe(
                (input.source_task(), input.source_stream().to_string()),
                ts,
                now,
            );
        }
        let event_time = ts.is_some();
        match running.manager.insert(input, ts.unwrap_or(now), event_time) {
            Ok(()) => {}
            Err(Refused::Late(t)) => {
                running.late += 1;
                collector.em.stats.late = running.late;
                if let Some(stream) = &self.windowing.late_stream {
                    let values: Box<[Value]> = t.values().into();
                    let ts = ts.unwrap_or(now);
                    collector.emit_to(stream, &[&t], values![Value::List(values), ts])?;
                }
                collector.ack(&t);
            }
            Err(Refused::Full(t)) => {
                running.refused += 1;
                collector.fail_because(
                    &t,
                    format!(
                        "the task holds its limit of {} tuples in windows",
                        self.windowing.max_tuples
                    ),
                );
                if running.refused.is_power_of_two() {
                    collector.report_error(format!(
                        "the task holds its limit of {} tuples in windows; failed {} tuples so far (they will be replayed)",
                        self.windowing.max_tuples, running.refused
                    ));
                }
            }
        }
        if !event_time {
            // Processing time: count slides evaluate at once; the clock moves with arrivals.
            running.manager.advance(now + 1);
            if matches!(self.windowing.slide, WindowSize::Count(_)) {
                self.evaluate(collector).await;
            }
        }
        if let Some(running) = self.running.as_ref() {
            collector.em.stats.held = running.manager.held() as u64;
        }
        Ok(())
    }

    async fn cleanup(&mut self) {
        self.bolt.cleanup().await
    }
}
