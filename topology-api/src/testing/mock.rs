//! Mocked sources: spouts replaced by given tuples, emitted once each with a message id (and
//! replayed when failed, if asked), and what became of each.

use super::capture::lock;
use std::collections::{BTreeMap, VecDeque};
use std::sync::{Arc, Mutex};
use tempest_protocol::spec::StreamSpec;
use tempest_runtime::{
    ComponentResult, FailReason, OutputDeclarer, Spout, SpoutFactory, SpoutOutputCollector,
    TopologyContext, Values, DEFAULT_STREAM,
};

/// The tuples that replace spouts, per spout and stream (Storm's `MockedSources`).
#[derive(Debug, Clone, Default)]
pub struct MockedSources {
    pub(crate) tuples: BTreeMap<String, Vec<(String, Values)>>,
    pub(crate) max_replays: u32,
}

impl MockedSources {
    /// No spout mocked yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// Spout `spout` emits `tuples` on its default stream (after what was added before).
    pub fn add(&mut self, spout: &str, tuples: impl IntoIterator<Item = Values>) -> &mut Self {
        self.add_to(spout, DEFAULT_STREAM, tuples)
    }

    /// Spout `spout` emits `tuples` on `stream`.
    pub fn add_to(
        &mut self,
        spout: &str,
        stream: &str,
        tuples: impl IntoIterator<Item = Values>,
    ) -> &mut Self {
        self.tuples
            .entry(spout.to_string())
            .or_default()
            .extend(tuples.into_iter().map(|t| (stream.to_string(), t)));
        self
    }

    /// Replays a failed tuple up to `n` times (default 0: a failed tuple stays failed), as a
    /// reliable spout would.
    pub fn replay_failed(&mut self, n: u32) -> &mut Self {
        self.max_replays = n;
        self
    }
}

/// What became of one spout's tuples (in the order the outcomes arrived).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SpoutOutcomes {
    /// The tuples whose trees completed, with their stream.
    pub acked: Vec<(String, Values)>,
    /// The tuples whose trees failed, with their stream and why (a replayed tuple appears
    /// once per failed attempt).
    pub failed: Vec<(String, Values, FailReason)>,
}

impl SpoutOutcomes {
    /// The acked tuples' values.
    pub fn acked_values(&self) -> Vec<Values> {
        self.acked.iter().map(|(_, v)| v.clone()).collect()
    }
    /// The failed tuples' values.
    pub fn failed_values(&self) -> Vec<Values> {
        self.failed.iter().map(|(_, v, _)| v.clone()).collect()
    }
}

pub(crate) type Outcomes = Arc<Mutex<SpoutOutcomes>>;

/// A spout task emitting its share of a mocked spout's tuples (task `i` of `k`: the tuples
/// whose index is `i` modulo `k`), message id = the tuple's index.
pub(crate) struct MockSpout {
    streams: BTreeMap<String, StreamSpec>,
    tuples: Arc<Vec<(String, Values)>>,
    queue: VecDeque<usize>,
    attempts: BTreeMap<usize, u32>,
    in_flight: usize,
    max_replays: u32,
    outcomes: Outcomes,
}

impl MockSpout {
    /// The factory of a spout that declares `streams` and emits `tuples`.
    pub(crate) fn factory(
        streams: BTreeMap<String, StreamSpec>,
        tuples: Vec<(String, Values)>,
        max_replays: u32,
        outcomes: Outcomes,
    ) -> SpoutFactory {
        let tuples = Arc::new(tuples);
        Arc::new(move || {
            Box::new(MockSpout {
                streams: streams.clone(),
                tuples: tuples.clone(),
                queue: VecDeque::new(),
                attempts: BTreeMap::new(),
                in_flight: 0,
                max_replays,
                outcomes: outcomes.clone(),
            }) as Box<dyn Spout>
        })
    }
}

pub(crate) fn declare(streams: &BTreeMap<String, StreamSpec>, d: &mut OutputDeclarer) {
    for (id, s) in streams {
        if s.direct {
            d.declare_direct_stream(id, s.fields.clone());
        } else {
            d.declare_stream(id, s.fields.clone());
        }
    }
}

#[async_trait::async_trait]
impl Spout for MockSpout {
    fn declare_output_fields(&self, d: &mut OutputDeclarer) {
        declare(&self.streams, d);
    }
    async fn open(&mut self, ctx: &TopologyContext) -> ComponentResult {
        let tasks = ctx.component_tasks();
        let (k, i) = (
            (tasks.end - tasks.start) as usize,
            ctx.task_index() as usize,
        );
        self.queue = (0..self.tuples.len()).filter(|n| n % k == i).collect();
        for &n in &self.queue {
            let stream = &self.tuples[n].0;
            match self.streams.get(stream) {
                None => {
                    return Err(format!(
                        "mocked tuple {n} of {:?} is for stream {stream:?}, which the spout does not declare (it declares {:?})",
                        ctx.component_id(),
                        self.streams.keys().collect::<Vec<_>>()
                    )
                    .into())
                }
                Some(s) if s.direct => {
                    return Err(format!(
                        "mocked tuple {n} of {:?} is for direct stream {stream:?}: mocked sources cannot emit on direct streams",
                        ctx.component_id()
                    )
                    .into())
                }
                Some(_) => {}
            }
        }
        Ok(())
    }
    async fn next_tuple(&mut self, c: &mut SpoutOutputCollector) -> ComponentResult {
        if let Some(n) = self.queue.pop_front() {
            let (stream, values) = &self.tuples[n];
            self.in_flight += 1;
            c.emit_to(stream, values.clone(), Some(n as u64))?;
        }
        Ok(())
    }
    async fn ack(&mut self, id: u64) {
        self.in_flight -= 1;
        lock(&self.outcomes)
            .acked
            .push(self.tuples[id as usize].clone());
    }
    async fn fail_with_reason(&mut self, id: u64, reason: &FailReason) {
        self.in_flight -= 1;
        let n = id as usize;
        let (stream, values) = self.tuples[n].clone();
        lock(&self.outcomes)
            .failed
            .push((stream, values, reason.clone()));
        let attempts = self.attempts.entry(n).or_default();
        if *attempts < self.max_replays {
            *attempts += 1;
            self.queue.push_back(n);
        }
    }
    fn is_finished(&self) -> bool {
        // With replays, a tuple in flight may come back.
        self.queue.is_empty() && (self.max_replays == 0 || self.in_flight == 0)
    }
}
