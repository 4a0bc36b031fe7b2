//! Completing a topology (Storm's `completeTopology`): run it in this process with mocked
//! sources until every tree completed or failed, and return what happened.

use super::capture::{lock, with_capture, Captured, Sink};
use super::mock::{MockSpout, MockedSources, Outcomes, SpoutOutcomes};
use std::collections::BTreeMap;
use std::time::Duration;
use tempest_protocol::spec::ComponentKind;
use tempest_runtime::{
    run_local, FailReason, LocalOptions, LocalReport, RunError, Topology, Values, DEFAULT_STREAM,
};

/// Why a test run did not complete.
#[derive(Debug, thiserror::Error)]
pub enum TestError {
    /// The topology could not run (invalid, a `prepare` failed, ...).
    #[error("the topology failed: {0}")]
    Run(#[from] RunError),
    /// It did not end by the deadline: a spout that is not mocked never finishes, or a tree
    /// never completes (a bolt that neither acks nor fails, with a long message timeout).
    #[error("topology {topology:?} did not complete within {deadline:?} (on the runtime's clock): is a spout not mocked, or does a tree never complete?")]
    Deadline {
        /// The topology.
        topology: String,
        /// The deadline.
        deadline: Duration,
    },
    /// The harness was asked for something the topology does not have.
    #[error("{0}")]
    Harness(String),
}

/// How [`complete_topology`] runs.
#[derive(Debug, Clone)]
pub struct CompleteOptions {
    /// Give up after this long on the runtime's clock (simulated time under [`simulated`]:
    /// then a deadline of hours costs nothing while the topology is busy). Default 60 s.
    ///
    /// [`simulated`]: super::simulated
    pub deadline: Duration,
}

impl Default for CompleteOptions {
    fn default() -> Self {
        CompleteOptions {
            deadline: Duration::from_secs(60),
        }
    }
}

/// What a completed run did.
#[derive(Debug, Clone)]
pub struct Completed {
    /// Every tuple every component emitted on a non-direct stream, by component and stream.
    pub captured: Captured,
    /// What became of each mocked spout's tuples.
    pub spouts: BTreeMap<String, SpoutOutcomes>,
    /// The run's per-task counters and errors.
    pub report: LocalReport,
}

impl Completed {
    /// What `component` emitted on its default stream, in the order the capture received it.
    pub fn emitted(&self, component: &str) -> &[Values] {
        self.captured.on(component, DEFAULT_STREAM)
    }

    /// What `component` emitted on `stream`.
    pub fn emitted_on(&self, component: &str, stream: &str) -> &[Values] {
        self.captured.on(component, stream)
    }

    /// The mocked tuples of `spout` whose trees completed.
    pub fn acked(&self, spout: &str) -> Vec<Values> {
        self.spouts
            .get(spout)
            .map(SpoutOutcomes::acked_values)
            .unwrap_or_default()
    }

    /// The mocked tuples of `spout` whose trees failed, with why.
    pub fn failed(&self, spout: &str) -> Vec<(Values, FailReason)> {
        self.spouts.get(spout).map_or_else(Vec::new, |o| {
            o.failed
                .iter()
                .map(|(_, v, r)| (v.clone(), r.clone()))
                .collect()
        })
    }

    /// The errors `component`'s tasks reported (each task's, oldest first).
    pub fn errors(&self, component: &str) -> Vec<&str> {
        self.report
            .tasks
            .iter()
            .filter(|t| t.component == component)
            .flat_map(|t| t.errors.iter().map(String::as_str))
            .collect()
    }
}

/// The parts of a run the harness reads while or after it runs.
pub(crate) struct Harnessed {
    pub topology: Topology,
    pub sink: Sink,
    pub outcomes: BTreeMap<String, Outcomes>,
}

/// `topology` with the spouts of `sources` mocked and the capturing bolt added.
pub(crate) fn harness(topology: Topology, sources: &MockedSources) -> Result<Harnessed, TestError> {
    let (spec, mut spouts, bolts, groupings) = topology.into_parts();
    let mut outcomes = BTreeMap::new();
    for (id, tuples) in &sources.tuples {
        let Some(c) = spec
            .component(id)
            .filter(|c| c.kind == ComponentKind::Spout)
        else {
            let known: Vec<&str> = spec
                .components
                .iter()
                .filter(|c| c.kind == ComponentKind::Spout)
                .map(|c| c.id.as_str())
                .collect();
            return Err(TestError::Harness(format!(
                "mocked sources name spout {id:?}, which the topology does not have; its spouts: {known:?}"
            )));
        };
        let o = Outcomes::default();
        spouts.insert(
            id.clone(),
            MockSpout::factory(
                c.streams.clone(),
                tuples.clone(),
                sources.max_replays,
                o.clone(),
            ),
        );
        outcomes.insert(id.clone(), o);
    }
    let sink = Sink::default();
    let topology = with_capture(Topology::from_parts(spec, spouts, bolts, groupings), &sink)
        .map_err(TestError::Harness)?;
    Ok(Harnessed {
        topology,
        sink,
        outcomes,
    })
}

/// Runs `topology` in this process with the spouts of `sources` replaced by their tuples,
/// until every spout is finished and every tree completed or failed (Storm's
/// `completeTopology`). Spouts not in `sources` run as they are, and must finish by
/// themselves ([`Spout::is_finished`](tempest_runtime::Spout::is_finished)).
///
/// Run it under [`simulated`](super::simulated) for timeouts, ticks and windows that fire
/// without waiting.
pub async fn complete_topology(
    topology: &Topology,
    sources: &MockedSources,
    options: CompleteOptions,
) -> Result<Completed, TestError> {
    let h = harness(topology.clone(), sources)?;
    let run = run_local(&h.topology, LocalOptions::default());
    let report = match tokio::time::timeout(options.deadline, run).await {
        Ok(report) => report?,
        Err(_) => {
            return Err(TestError::Deadline {
                topology: topology.name().to_string(),
                deadline: options.deadline,
            })
        }
    };
    let captured = lock(&h.sink).clone();
    let spouts = h
        .outcomes
        .iter()
        .map(|(id, o)| (id.clone(), lock(o).clone()))
        .collect();
    Ok(Completed {
        captured,
        spouts,
        report,
    })
}
