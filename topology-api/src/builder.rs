//! `TopologyBuilder`: wire spouts and bolts into a validated [`Topology`].

use std::collections::HashMap;
use std::sync::Arc;
use tempest_protocol::config::Config;
use tempest_protocol::config::TOPOLOGY_BOLTS_STATEFUL;
use tempest_protocol::spec::{ComponentKind, ComponentSpec, GroupingSpec, InputSpec, TopologySpec};
use tempest_protocol::validate::{validate, TopologyError, TopologyErrors};
use tempest_runtime::{
    AggregatingBoltAdapter, BasicBolt, BasicBoltAdapter, Bolt, BoltFactory, CustomGrouping,
    CustomGroupingFactory, OutputDeclarer, Spout, SpoutFactory, StatefulBolt, StatefulBoltAdapter,
    Topology, WindowAggregate, WindowedBolt, WindowedBoltAdapter, Windowing, DEFAULT_STREAM,
};

/// The input of a subscription: a component's default stream (`"split"`) or a named one
/// (`("split", "errors")`).
#[derive(Debug, Clone)]
pub struct Source {
    component: String,
    stream: String,
}

impl From<&str> for Source {
    fn from(c: &str) -> Self {
        Source {
            component: c.into(),
            stream: DEFAULT_STREAM.into(),
        }
    }
}
impl From<String> for Source {
    fn from(c: String) -> Self {
        Source {
            component: c,
            stream: DEFAULT_STREAM.into(),
        }
    }
}
impl From<(&str, &str)> for Source {
    fn from((c, s): (&str, &str)) -> Self {
        Source {
            component: c.into(),
            stream: s.into(),
        }
    }
}

/// Builds a topology. Problems are collected and reported together by [`build`](Self::build).
///
/// ```
/// use topology_api::prelude::*;
/// # struct Numbers;
/// # #[async_trait] impl Spout for Numbers {
/// #   fn declare_output_fields(&self, d: &mut OutputDeclarer) { d.declare(["n"]) }
/// #   async fn next_tuple(&mut self, _c: &mut SpoutOutputCollector) -> ComponentResult { Ok(()) }
/// # }
/// # struct Print;
/// # #[async_trait] impl BasicBolt for Print {
/// #   fn declare_output_fields(&self, _d: &mut OutputDeclarer) {}
/// #   fn execute(&mut self, t: &Tuple, _c: &mut BasicOutputCollector<'_>) -> ComponentResult { Ok(()) }
/// # }
/// let mut builder = TopologyBuilder::new("numbers");
/// builder.set_spout("numbers", || Numbers, 1);
/// builder.set_basic_bolt("print", || Print, 2).fields_grouping("numbers", ["n"]);
/// let topology = builder.build().expect("valid topology");
/// assert_eq!(topology.spec().components.len(), 2);
/// ```
pub struct TopologyBuilder {
    spec: TopologySpec,
    /// Problems found while wiring (reported by `build` with the rest).
    problems: Vec<TopologyError>,
    spouts: HashMap<String, SpoutFactory>,
    bolts: HashMap<String, BoltFactory>,
    custom_groupings: HashMap<String, CustomGroupingFactory>,
}

impl std::fmt::Debug for TopologyBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TopologyBuilder")
            .field("spec", &self.spec)
            .finish_non_exhaustive()
    }
}

impl TopologyBuilder {
    /// A builder for a topology named `name`.
    pub fn new(name: impl Into<String>) -> Self {
        TopologyBuilder {
            spec: TopologySpec {
                name: name.into(),
                config: Config::new(),
                components: Vec::new(),
            },
            problems: Vec::new(),
            spouts: HashMap::new(),
            bolts: HashMap::new(),
            custom_groupings: HashMap::new(),
        }
    }

    /// The topology config.
    pub fn config(&mut self) -> &mut Config {
        &mut self.spec.config
    }

    /// Replaces the topology config.
    pub fn with_config(&mut self, config: Config) -> &mut Self {
        self.spec.config = config;
        self
    }

    fn add(&mut self, id: &str, kind: ComponentKind, parallelism: u32, d: OutputDeclarer) -> usize {
        self.spec.components.push(ComponentSpec {
            id: id.to_string(),
            kind,
            parallelism,
            num_tasks: parallelism,
            streams: d.into_streams(),
            inputs: Vec::new(),
            config: Config::new(),
        });
        self.spec.components.len() - 1
    }

    /// Adds a spout with `parallelism` executors, each task made by `factory`.
    pub fn set_spout<S, F>(&mut self, id: &str, factory: F, parallelism: u32) -> SpoutDeclarer<'_>
    where
        S: Spout,
        F: Fn() -> S + Send + Sync + 'static,
    {
        let mut d = OutputDeclarer::default();
        factory().declare_output_fields(&mut d);
        let index = self.add(id, ComponentKind::Spout, parallelism, d);
        self.spouts
            .entry(id.to_string())
            .or_insert_with(|| Arc::new(move || Box::new(factory()) as Box<dyn Spout>));
        SpoutDeclarer {
            builder: self,
            index,
        }
    }

    /// Adds a bolt with `parallelism` executors, each task made by `factory`.
    pub fn set_bolt<B, F>(&mut self, id: &str, factory: F, parallelism: u32) -> BoltDeclarer<'_>
    where
        B: Bolt,
        F: Fn() -> B + Send + Sync + 'static,
    {
        let mut d = OutputDeclarer::default();
        factory().declare_output_fields(&mut d);
        let index = self.add(id, ComponentKind::Bolt, parallelism, d);
        self.bolts
            .entry(id.to_string())
            .or_insert_with(|| Arc::new(move || Box::new(factory()) as Box<dyn Bolt>));
        BoltDeclarer {
            builder: self,
            index,
        }
    }

    /// Adds a [`BasicBolt`]: emits anchored to the input, input acked when `execute` returns.
    pub fn set_basic_bolt<B, F>(
        &mut self,
        id: &str,
        factory: F,
        parallelism: u32,
    ) -> BoltDeclarer<'_>
    where
        B: BasicBolt,
        F: Fn() -> B + Send + Sync + 'static,
    {
        self.set_bolt(id, move || BasicBoltAdapter(factory()), parallelism)
    }

    /// Adds a stateful bolt ([`StatefulBolt`]): its key-value state is restored before its
    /// first tuple and saved at every checkpoint; the topology then takes checkpoints every
    /// `topology.state.checkpoint.interval.ms`. See the README's "State" section.
    pub fn set_stateful_bolt<B, F>(
        &mut self,
        id: &str,
        factory: F,
        parallelism: u32,
    ) -> BoltDeclarer<'_>
    where
        B: StatefulBolt,
        F: Fn() -> B + Send + Sync + 'static,
    {
        let declarer = self.set_bolt(id, move || StatefulBoltAdapter::new(factory()), parallelism);
        declarer.builder.spec.components[declarer.index]
            .config
            .set(TOPOLOGY_BOLTS_STATEFUL, true);
        declarer
    }

    /// Adds a [`WindowedBolt`]: it sees `windowing`'s windows of its input instead of single
    /// tuples; its inputs are acked when they leave every window, and its emits are anchored
    /// to the window's tuples. Subscribe it with any grouping.
    pub fn set_windowed_bolt<B, F>(
        &mut self,
        id: &str,
        factory: F,
        parallelism: u32,
        windowing: Windowing,
    ) -> BoltDeclarer<'_>
    where
        B: WindowedBolt,
        F: Fn() -> B + Send + Sync + 'static,
    {
        for message in windowing.problems() {
            self.problems.push(TopologyError::BadWindow {
                bolt: id.to_string(),
                message,
            });
        }
        let config = windowing.to_config();
        let declarer = self.set_bolt(
            id,
            move || WindowedBoltAdapter::new(factory(), windowing.clone()),
            parallelism,
        );
        for (key, value) in config.iter() {
            declarer.builder.spec.components[declarer.index]
                .config
                .set(key.clone(), value.clone());
        }
        declarer
    }

    /// Adds an aggregating windowed bolt ([`WindowAggregate`]): each tuple is folded into an
    /// accumulator of its window and key as it arrives, and each window's results are
    /// emitted when it closes (or as they change, [`OutputMode::Update`]). `windowing` must
    /// use durations; memory is keys × open panes, bounded by
    /// `Windowing::with_max_accumulators`. In a topology that takes checkpoints (a stateful
    /// bolt, or `Windowing::with_checkpoints`) the open windows are saved with every
    /// checkpoint and restored after a crash; otherwise each tuple is acked once folded in.
    /// See the README's "Aggregating windows".
    pub fn set_aggregating_bolt<A, F>(
        &mut self,
        id: &str,
        factory: F,
        parallelism: u32,
        windowing: Windowing,
    ) -> BoltDeclarer<'_>
    where
        A: WindowAggregate,
        F: Fn() -> A + Send + Sync + 'static,
    {
        for message in windowing.aggregating_problems() {
            self.problems.push(TopologyError::BadWindow {
                bolt: id.to_string(),
                message,
            });
        }
        let config = windowing.to_aggregating_config();
        let declarer = self.set_bolt(
            id,
            move || AggregatingBoltAdapter::new(factory(), windowing.clone()),
            parallelism,
        );
        for (key, value) in config.iter() {
            declarer.builder.spec.components[declarer.index]
                .config
                .set(key.clone(), value.clone());
        }
        declarer
    }

    /// Validates the wiring and returns the topology, or every problem found.
    pub fn build(self) -> Result<Topology, TopologyErrors> {
        let mut problems = self.problems.clone();
        for c in &self.spec.components {
            for input in &c.inputs {
                if let GroupingSpec::Custom { name } = &input.grouping {
                    if !self.custom_groupings.contains_key(name) {
                        problems.push(TopologyError::UnknownCustomGrouping {
                            bolt: c.id.clone(),
                            name: name.clone(),
                        });
                    }
                }
            }
        }
        if let Err(e) = validate(&self.spec) {
            problems.extend(e.0);
        }
        if !problems.is_empty() {
            return Err(TopologyErrors(problems));
        }
        Ok(Topology::from_parts(
            self.spec,
            self.spouts,
            self.bolts,
            self.custom_groupings,
        ))
    }
}

/// Configures a spout just added.
#[derive(Debug)]
pub struct SpoutDeclarer<'a> {
    builder: &'a mut TopologyBuilder,
    index: usize,
}

impl SpoutDeclarer<'_> {
    /// Sets the number of tasks (default: the parallelism).
    pub fn set_num_tasks(self, n: u32) -> Self {
        self.builder.spec.components[self.index].num_tasks = n;
        self
    }
    /// Sets a config key for this component only.
    pub fn add_config(self, key: &str, value: impl Into<serde_json::Value>) -> Self {
        self.builder.spec.components[self.index]
            .config
            .set(key, value);
        self
    }
}

/// Configures a bolt just added: its subscriptions, tasks and config.
#[derive(Debug)]
pub struct BoltDeclarer<'a> {
    builder: &'a mut TopologyBuilder,
    index: usize,
}

impl BoltDeclarer<'_> {
    /// Subscribes to `source` with any grouping.
    pub fn grouping(self, source: impl Into<Source>, grouping: GroupingSpec) -> Self {
        let s = source.into();
        self.builder.spec.components[self.index]
            .inputs
            .push(InputSpec {
                component: s.component,
                stream: s.stream,
                grouping,
            });
        self
    }
    /// Round-robin over this bolt's tasks.
    pub fn shuffle_grouping(self, source: impl Into<Source>) -> Self {
        self.grouping(source, GroupingSpec::Shuffle)
    }
    /// Equal values of `fields` go to the same task.
    pub fn fields_grouping<I, S>(self, source: impl Into<Source>, fields: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        let fields = fields.into_iter().map(Into::into).collect();
        self.grouping(source, GroupingSpec::Fields { fields })
    }
    /// Each key goes to the less loaded of two candidate tasks.
    pub fn partial_key_grouping<I, S>(self, source: impl Into<Source>, fields: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        let fields = fields.into_iter().map(Into::into).collect();
        self.grouping(source, GroupingSpec::PartialKey { fields })
    }
    /// Every task gets every tuple.
    pub fn all_grouping(self, source: impl Into<Source>) -> Self {
        self.grouping(source, GroupingSpec::All)
    }
    /// Everything goes to the lowest task id.
    pub fn global_grouping(self, source: impl Into<Source>) -> Self {
        self.grouping(source, GroupingSpec::Global)
    }
    /// No preference (currently shuffle).
    pub fn none_grouping(self, source: impl Into<Source>) -> Self {
        self.grouping(source, GroupingSpec::None)
    }
    /// The emitter picks the task with `emit_direct`; the stream must be declared direct.
    pub fn direct_grouping(self, source: impl Into<Source>) -> Self {
        self.grouping(source, GroupingSpec::Direct)
    }
    /// Shuffle among this bolt's tasks in the emitter's worker, if any.
    pub fn local_or_shuffle_grouping(self, source: impl Into<Source>) -> Self {
        self.grouping(source, GroupingSpec::LocalOrShuffle)
    }
    /// A user-defined grouping; `factory` makes one instance per emitting task.
    pub fn custom_grouping<G, F>(self, source: impl Into<Source>, name: &str, factory: F) -> Self
    where
        G: CustomGrouping,
        F: Fn() -> G + Send + Sync + 'static,
    {
        self.builder.custom_groupings.insert(
            name.to_string(),
            Arc::new(move || Box::new(factory()) as Box<dyn CustomGrouping>),
        );
        self.grouping(source, GroupingSpec::Custom { name: name.into() })
    }
    /// Sets the number of tasks (default: the parallelism).
    pub fn set_num_tasks(self, n: u32) -> Self {
        self.builder.spec.components[self.index].num_tasks = n;
        self
    }
    /// Sets a config key for this component only (e.g. `topology.tick.tuple.freq.secs`).
    pub fn add_config(self, key: &str, value: impl Into<serde_json::Value>) -> Self {
        self.builder.spec.components[self.index]
            .config
            .set(key, value);
        self
    }
}
