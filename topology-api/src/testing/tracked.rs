//! Tracked topologies (Storm's `TrackedTopology` and `FeederSpout`): the topology runs in the
//! background; the test feeds tuples through [`Feeder`] spouts, waits until nothing is in
//! flight, asserts on what was emitted, and feeds more.

use super::capture::{lock, with_capture, Captured, Sink};
use super::complete::{Completed, TestError};
use super::mock::{declare, SpoutOutcomes};
use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tempest_protocol::spec::StreamSpec;
use tempest_runtime::{
    run_local, ComponentResult, FailReason, LocalOptions, LocalReport, OutputDeclarer, RunError,
    Spout, SpoutOutputCollector, Topology, Values, DEFAULT_STREAM,
};
use tokio::sync::Notify;

/// A spout the test feeds: register it with `builder.set_spout(id, feeder.spout(), n)`, then
/// [`feed`](Feeder::feed) it while the topology runs. Each tuple is emitted once, with a
/// message id; clones feed the same spout.
#[derive(Clone)]
pub struct Feeder {
    shared: Arc<Shared>,
}

impl std::fmt::Debug for Feeder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Feeder").finish_non_exhaustive()
    }
}

struct Shared {
    streams: BTreeMap<String, StreamSpec>,
    state: Mutex<FeedState>,
    /// Signalled on every outcome.
    changed: Notify,
}

#[derive(Default)]
struct FeedState {
    queue: VecDeque<(String, Values)>,
    in_flight: HashMap<u64, (String, Values)>,
    next_id: u64,
    finished: bool,
    outcomes: SpoutOutcomes,
}

impl Feeder {
    /// A feeder emitting on its default stream, with these fields.
    pub fn new<I, S>(fields: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        Self::with_streams([(DEFAULT_STREAM, fields)])
    }

    /// A feeder declaring these streams and their fields.
    pub fn with_streams<T, I, S>(streams: T) -> Self
    where
        T: IntoIterator<Item = (&'static str, I)>,
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        let streams = streams
            .into_iter()
            .map(|(id, fields)| {
                (
                    id.to_string(),
                    StreamSpec {
                        fields: fields.into_iter().map(Into::into).collect(),
                        direct: false,
                    },
                )
            })
            .collect();
        Feeder {
            shared: Arc::new(Shared {
                streams,
                state: Mutex::default(),
                changed: Notify::new(),
            }),
        }
    }

    /// The spout's factory, for `TopologyBuilder::set_spout`.
    pub fn spout(&self) -> impl Fn() -> FeederSpout + Send + Sync + 'static {
        let shared = self.shared.clone();
        move || FeederSpout {
            shared: shared.clone(),
        }
    }

    /// Queues `values` for the default stream.
    pub fn feed(&self, values: Values) {
        self.feed_to(DEFAULT_STREAM, values)
    }

    /// Queues `values` for `stream`.
    pub fn feed_to(&self, stream: &str, values: Values) {
        lock(&self.shared.state)
            .queue
            .push_back((stream.to_string(), values));
    }

    /// What became of the tuples fed so far.
    pub fn outcomes(&self) -> SpoutOutcomes {
        lock(&self.shared.state).outcomes.clone()
    }

    /// True when every tuple fed was emitted and its tree completed or failed.
    pub fn idle(&self) -> bool {
        let s = lock(&self.shared.state);
        s.queue.is_empty() && s.in_flight.is_empty()
    }

    fn finish(&self) {
        lock(&self.shared.state).finished = true;
    }
}

/// The spout task of a [`Feeder`].
pub struct FeederSpout {
    shared: Arc<Shared>,
}

impl std::fmt::Debug for FeederSpout {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FeederSpout").finish_non_exhaustive()
    }
}

impl FeederSpout {
    fn outcome(&self, id: u64, reason: Option<&FailReason>) {
        let mut s = lock(&self.shared.state);
        if let Some((stream, values)) = s.in_flight.remove(&id) {
            match reason {
                None => s.outcomes.acked.push((stream, values)),
                Some(r) => s.outcomes.failed.push((stream, values, r.clone())),
            }
        }
        drop(s);
        self.shared.changed.notify_waiters();
    }
}

#[async_trait::async_trait]
impl Spout for FeederSpout {
    fn declare_output_fields(&self, d: &mut OutputDeclarer) {
        declare(&self.shared.streams, d);
    }
    async fn next_tuple(&mut self, c: &mut SpoutOutputCollector) -> ComponentResult {
        let next = {
            let mut s = lock(&self.shared.state);
            s.queue.pop_front().map(|t| {
                let id = s.next_id;
                s.next_id += 1;
                s.in_flight.insert(id, t.clone());
                (id, t)
            })
        };
        if let Some((id, (stream, values))) = next {
            c.emit_to(&stream, values, Some(id))?;
        }
        Ok(())
    }
    async fn ack(&mut self, id: u64) {
        self.outcome(id, None);
    }
    async fn fail_with_reason(&mut self, id: u64, reason: &FailReason) {
        self.outcome(id, Some(reason));
    }
    fn is_finished(&self) -> bool {
        let s = lock(&self.shared.state);
        s.finished && s.queue.is_empty()
    }
}

/// A topology running in the background of a test, fed by [`Feeder`]s.
pub struct TrackedTopology {
    name: String,
    feeders: Vec<Feeder>,
    sink: Sink,
    /// `None` once finished.
    run: Option<tokio::task::JoinHandle<Result<LocalReport, RunError>>>,
}

impl Drop for TrackedTopology {
    /// A tracked topology dropped unfinished (a failed assertion) is stopped.
    fn drop(&mut self) {
        if let Some(run) = self.run.take() {
            run.abort();
        }
    }
}

impl std::fmt::Debug for TrackedTopology {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TrackedTopology")
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}

impl TrackedTopology {
    /// Starts `topology` (whose spouts are `feeders`' or finite ones) in the background, with
    /// its emits captured. Call from within a tokio runtime ([`simulated`](super::simulated),
    /// or `#[tokio::test]`).
    pub fn start(topology: &Topology, feeders: &[&Feeder]) -> Result<Self, TestError> {
        let sink = Sink::default();
        let topology = with_capture(topology.clone(), &sink).map_err(TestError::Harness)?;
        let name = topology.name().to_string();
        let run = tokio::spawn(async move { run_local(&topology, LocalOptions::default()).await });
        Ok(TrackedTopology {
            name,
            feeders: feeders.iter().map(|f| (*f).clone()).collect(),
            sink,
            run: Some(run),
        })
    }

    /// Starts `topology` with the spouts named in `spouts` replaced by feeders (declaring
    /// the spouts' streams), returned by spout id; see [`start`](Self::start).
    pub fn start_fed(
        topology: &Topology,
        spouts: &[&str],
    ) -> Result<(Self, BTreeMap<String, Feeder>), TestError> {
        let (spec, mut factories, bolts, groupings) = topology.clone().into_parts();
        let mut feeders = BTreeMap::new();
        for id in spouts {
            let Some(c) = spec
                .component(id)
                .filter(|c| c.kind == tempest_protocol::spec::ComponentKind::Spout)
            else {
                return Err(TestError::Harness(format!(
                    "cannot feed spout {id:?}: the topology has no such spout"
                )));
            };
            let feeder = Feeder {
                shared: Arc::new(Shared {
                    streams: c
                        .streams
                        .iter()
                        .filter(|(_, s)| !s.direct)
                        .map(|(k, v)| (k.clone(), v.clone()))
                        .collect(),
                    state: Mutex::default(),
                    changed: Notify::new(),
                }),
            };
            let spout = feeder.spout();
            factories.insert(
                id.to_string(),
                Arc::new(move || Box::new(spout()) as Box<dyn Spout>),
            );
            feeders.insert(id.to_string(), feeder);
        }
        let topology = Topology::from_parts(spec, factories, bolts, groupings);
        let all: Vec<&Feeder> = feeders.values().collect();
        let tracked = Self::start(&topology, &all)?;
        Ok((tracked, feeders))
    }

    /// Waits until every feeder is idle: every tuple fed was emitted and its tree completed
    /// or failed (so every tuple anchored to it was captured). `within` is on the runtime's
    /// clock. Tuples emitted unanchored are not tracked and may still be on their way.
    pub async fn wait_idle(&self, within: Duration) -> Result<(), TestError> {
        let wait = async {
            for f in &self.feeders {
                loop {
                    let changed = f.shared.changed.notified();
                    tokio::pin!(changed);
                    changed.as_mut().enable();
                    if f.idle() {
                        break;
                    }
                    if self.run.as_ref().is_none_or(|r| r.is_finished()) {
                        return Err(TestError::Harness(format!(
                            "topology {:?} stopped while tuples were in flight",
                            self.name
                        )));
                    }
                    // Also wake now and then, to notice a topology that stopped.
                    let _ = tokio::time::timeout(Duration::from_millis(100), changed).await;
                }
            }
            Ok(())
        };
        tokio::time::timeout(within, wait)
            .await
            .map_err(|_| TestError::Deadline {
                topology: self.name.clone(),
                deadline: within,
            })?
    }

    /// Everything captured so far, by component and stream.
    pub fn captured(&self) -> Captured {
        lock(&self.sink).clone()
    }

    /// What `component` emitted on its default stream so far.
    pub fn emitted(&self, component: &str) -> Vec<Values> {
        lock(&self.sink).on(component, DEFAULT_STREAM).to_vec()
    }

    /// Finishes the feeders, waits (`within`, on the runtime's clock) for the topology to
    /// drain and end, and returns the whole run.
    pub async fn finish(mut self, within: Duration) -> Result<Completed, TestError> {
        for f in &self.feeders {
            f.finish();
        }
        let Some(mut run) = self.run.take() else {
            return Err(TestError::Harness("finished twice".into()));
        };
        let report = match tokio::time::timeout(within, &mut run).await {
            Ok(Ok(report)) => report?,
            Ok(Err(e)) => return Err(TestError::Harness(format!("the run panicked: {e}"))),
            Err(_) => {
                run.abort();
                return Err(TestError::Deadline {
                    topology: self.name.clone(),
                    deadline: within,
                });
            }
        };
        let captured = lock(&self.sink).clone();
        Ok(Completed {
            captured,
            spouts: BTreeMap::new(),
            report,
        })
    }
}
