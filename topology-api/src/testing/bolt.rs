//! One bolt alone: drive a single bolt (plain, basic, windowed or stateful) with input tuples
//! and read its emits, which inputs it acked and failed (and why), and its errors, without
//! writing a topology. Underneath it is a topology of a mocked spout named [`INPUT`] and the
//! bolt, completed with [`complete_topology`].

use super::complete::{complete_topology, CompleteOptions, Completed, TestError};
use super::mock::{declare, MockedSources};
use crate::TopologyBuilder;
use std::collections::BTreeMap;
use tempest_protocol::config::Config;
use tempest_protocol::spec::StreamSpec;
use tempest_runtime::{
    BasicBolt, Bolt, ComponentResult, OutputDeclarer, Spout, SpoutOutputCollector, StatefulBolt,
    Values, WindowedBolt, Windowing, DEFAULT_STREAM,
};

/// The id of the spout that feeds the bolt under test: its acked and failed tuples are the
/// bolt's inputs (`completed.acked(INPUT)`).
pub const INPUT: &str = "input";

type AddBolt = Box<dyn FnOnce(&mut TopologyBuilder, &[String])>;

/// Drives one bolt with input tuples.
///
/// ```
/// use topology_api::prelude::*;
/// use topology_api::testing::{simulated, BoltTester};
///
/// struct Upper;
/// #[async_trait]
/// impl BasicBolt for Upper {
///     fn declare_output_fields(&self, d: &mut OutputDeclarer) {
///         d.declare(["word"]);
///     }
///     fn execute(&mut self, t: &Tuple, c: &mut BasicOutputCollector<'_>) -> ComponentResult {
///         c.emit(values![t.str("word")?.to_uppercase()])?;
///         Ok(())
///     }
/// }
///
/// let done = simulated(
///     BoltTester::new("upper", ["word"])
///         .basic_bolt(|| Upper)
///         .run([values!["cow"], values![7]]),
/// )
/// .expect("the run completes");
/// assert_eq!(done.emitted("upper"), [values!["COW"]]);
/// assert_eq!(done.acked("input"), [values!["cow"]]);
/// assert_eq!(done.failed("input").len(), 1, "7 is not a string");
/// ```
pub struct BoltTester {
    id: String,
    inputs: BTreeMap<String, StreamSpec>,
    config: Config,
    add: Option<AddBolt>,
    options: CompleteOptions,
}

impl std::fmt::Debug for BoltTester {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BoltTester")
            .field("id", &self.id)
            .finish_non_exhaustive()
    }
}

impl BoltTester {
    /// A tester of bolt `id`, whose input (the default stream of [`INPUT`]) has `fields`.
    pub fn new<I, S>(id: &str, fields: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        BoltTester {
            id: id.to_string(),
            inputs: BTreeMap::new(),
            config: Config::new(),
            add: None,
            options: CompleteOptions::default(),
        }
        .input_stream(DEFAULT_STREAM, fields)
    }

    /// Also feeds the bolt on `stream` of [`INPUT`], with these fields.
    pub fn input_stream<I, S>(mut self, stream: &str, fields: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.inputs.insert(
            stream.to_string(),
            StreamSpec {
                fields: fields.into_iter().map(Into::into).collect(),
                direct: false,
            },
        );
        self
    }

    /// The topology config the bolt runs with (message timeout, tick frequency, ...).
    pub fn config(mut self, config: Config) -> Self {
        self.config = config;
        self
    }

    /// How the run completes (its deadline).
    pub fn options(mut self, options: CompleteOptions) -> Self {
        self.options = options;
        self
    }

    fn with(mut self, add: AddBolt) -> Self {
        self.add = Some(add);
        self
    }

    /// Tests a [`Bolt`].
    pub fn bolt<B: Bolt, F: Fn() -> B + Send + Sync + 'static>(self, factory: F) -> Self {
        let id = self.id.clone();
        self.with(Box::new(move |b, streams| {
            let mut d = b.set_bolt(&id, factory, 1);
            for s in streams {
                d = d.shuffle_grouping((INPUT, s.as_str()));
            }
        }))
    }

    /// Tests a [`BasicBolt`].
    pub fn basic_bolt<B: BasicBolt, F: Fn() -> B + Send + Sync + 'static>(
        self,
        factory: F,
    ) -> Self {
        let id = self.id.clone();
        self.with(Box::new(move |b, streams| {
            let mut d = b.set_basic_bolt(&id, factory, 1);
            for s in streams {
                d = d.shuffle_grouping((INPUT, s.as_str()));
            }
        }))
    }

    /// Tests a [`WindowedBolt`] with `windowing` (under [`simulated`](super::simulated),
    /// processing-time windows and watermark timers pass without waiting).
    pub fn windowed_bolt<B: WindowedBolt, F: Fn() -> B + Send + Sync + 'static>(
        self,
        factory: F,
        windowing: Windowing,
    ) -> Self {
        let id = self.id.clone();
        self.with(Box::new(move |b, streams| {
            let mut d = b.set_windowed_bolt(&id, factory, 1, windowing);
            for s in streams {
                d = d.shuffle_grouping((INPUT, s.as_str()));
            }
        }))
    }

    /// Tests a [`StatefulBolt`] (checkpointed as the config says; its state lives where
    /// `topology.state.provider` says, in local mode's state dir by default).
    pub fn stateful_bolt<B: StatefulBolt, F: Fn() -> B + Send + Sync + 'static>(
        self,
        factory: F,
    ) -> Self {
        let id = self.id.clone();
        self.with(Box::new(move |b, streams| {
            let mut d = b.set_stateful_bolt(&id, factory, 1);
            for s in streams {
                d = d.shuffle_grouping((INPUT, s.as_str()));
            }
        }))
    }

    /// Executes `inputs` (on the default input stream) until each input's tree completed or
    /// failed.
    pub async fn run(
        self,
        inputs: impl IntoIterator<Item = Values>,
    ) -> Result<Completed, TestError> {
        let mut sources = MockedSources::new();
        sources.add(INPUT, inputs);
        self.run_sources(sources).await
    }

    /// Executes the tuples `sources` gives spout [`INPUT`] (per stream, with replays if it
    /// says so).
    pub async fn run_sources(mut self, sources: MockedSources) -> Result<Completed, TestError> {
        let Some(add) = self.add.take() else {
            return Err(TestError::Harness(format!(
                "BoltTester for {:?}: say which bolt (bolt, basic_bolt, windowed_bolt or stateful_bolt)",
                self.id
            )));
        };
        let mut b = TopologyBuilder::new(format!("test-{}", self.id));
        b.with_config(self.config.clone());
        let inputs = self.inputs.clone();
        b.set_spout(INPUT, move || Placeholder(inputs.clone()), 1);
        let streams: Vec<String> = self.inputs.keys().cloned().collect();
        add(&mut b, &streams);
        let topology = b
            .build()
            .map_err(|e| TestError::Harness(format!("the bolt's test topology is invalid: {e}")))?;
        complete_topology(&topology, &sources, self.options.clone()).await
    }
}

/// Declares the input streams; replaced by the mocked spout before the run.
struct Placeholder(BTreeMap<String, StreamSpec>);

#[async_trait::async_trait]
impl Spout for Placeholder {
    fn declare_output_fields(&self, d: &mut OutputDeclarer) {
        declare(&self.0, d);
    }
    async fn next_tuple(&mut self, _: &mut SpoutOutputCollector) -> ComponentResult {
        Ok(())
    }
}
