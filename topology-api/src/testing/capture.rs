//! The capturing bolt: subscribes to every non-direct stream of every component and records
//! each tuple by (component, stream), in arrival order, then acks it.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard};
use tempest_protocol::spec::{ComponentKind, ComponentSpec, GroupingSpec, InputSpec};
use tempest_runtime::{
    Bolt, ComponentResult, ExecuteNow, OutputCollector, OutputDeclarer, Topology, Tuple, Values,
};

/// The id of the bolt the harness adds to capture emits (it shows in reports and counts).
pub const CAPTURE: &str = "tempest-testing-capture";

/// Tuples by (component, stream), in the order the capturing bolt received them.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Captured {
    pub(crate) by_stream: BTreeMap<(String, String), Vec<Values>>,
}

impl Captured {
    /// What `component` emitted on `stream`.
    pub fn on(&self, component: &str, stream: &str) -> &[Values] {
        self.by_stream
            .get(&(component.to_string(), stream.to_string()))
            .map_or(&[], Vec::as_slice)
    }

    /// The (component, stream) pairs that emitted anything.
    pub fn streams(&self) -> impl Iterator<Item = (&str, &str)> {
        self.by_stream.keys().map(|(c, s)| (c.as_str(), s.as_str()))
    }
}

/// Shared between the capturing bolt and the test.
pub(crate) type Sink = Arc<Mutex<Captured>>;

pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

struct Capture {
    sink: Sink,
}

#[async_trait::async_trait]
impl Bolt for Capture {
    fn declare_output_fields(&self, _: &mut OutputDeclarer) {}
    async fn execute(&mut self, input: Tuple, collector: &mut OutputCollector) -> ComponentResult {
        self.record(&input, collector);
        Ok(())
    }
    fn execute_now(&mut self, input: Tuple, collector: &mut OutputCollector) -> ExecuteNow {
        self.record(&input, collector);
        ExecuteNow::Done(Ok(()))
    }
}

impl Capture {
    fn record(&mut self, input: &Tuple, collector: &mut OutputCollector) {
        let key = (
            input.source_component().to_string(),
            input.source_stream().to_string(),
        );
        let values: Values = input.values().iter().cloned().collect();
        lock(&self.sink)
            .by_stream
            .entry(key)
            .or_default()
            .push(values);
        collector.ack(input);
    }
}

/// `topology` with the capturing bolt added; fails if a component already has its id.
pub(crate) fn with_capture(topology: Topology, sink: &Sink) -> Result<Topology, String> {
    let (mut spec, spouts, mut bolts, groupings) = topology.into_parts();
    if spec.component(CAPTURE).is_some() {
        return Err(format!(
            "the topology has a component named {CAPTURE:?}, the harness's own"
        ));
    }
    let inputs = spec
        .components
        .iter()
        .flat_map(|c| {
            c.streams
                .iter()
                .filter(|(_, s)| !s.direct)
                .map(|(stream, _)| InputSpec {
                    component: c.id.clone(),
                    stream: stream.clone(),
                    grouping: GroupingSpec::Global,
                })
        })
        .collect();
    spec.components.push(ComponentSpec {
        id: CAPTURE.to_string(),
        kind: ComponentKind::Bolt,
        parallelism: 1,
        num_tasks: 1,
        streams: BTreeMap::new(),
        inputs,
        config: Default::default(),
    });
    let sink = sink.clone();
    bolts.insert(
        CAPTURE.to_string(),
        Arc::new(move || Box::new(Capture { sink: sink.clone() }) as Box<dyn Bolt>),
    );
    Ok(Topology::from_parts(spec, spouts, bolts, groupings))
}
