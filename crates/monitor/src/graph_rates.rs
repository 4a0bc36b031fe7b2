//! The component graph with estimated rates. Workers count per task, not per stream or edge,
//! so an edge's rate is estimated from task counters over the last ~30 s: the consumer's
//! executed rate is shared among its inputs in proportion to each producer's emit rate (times
//! the consumer's task count for `all` grouping, which copies every tuple to every task).
//! Exact for a bolt with one input; over-estimates the share of a producer that also emits on
//! streams the bolt does not subscribe to. See `docs/design/rest-api.md`.

use super::history::Totals;
use super::view::Snapshot;
use std::collections::HashMap;
use tempest_protocol::control::stats::{Graph, GraphEdge, GraphNode};
use tempest_protocol::spec::{ComponentKind, GroupingSpec};

/// Emitted and executed tuples per second of a component over the last ~30 s (the sum of its
/// tasks' rates; a task silent for 30 s adds nothing).
fn rates(snap: &Snapshot<'_>, component: &str) -> (f64, f64) {
    let mut emitted = 0.0;
    let mut executed = 0.0;
    for t in snap.histories(component) {
        if let Some((d, secs)) = t.recent(snap.now_ms) {
            let d: Totals = d;
            emitted += d.emitted as f64 / secs;
            executed += d.executed as f64 / secs;
        }
    }
    (emitted, executed)
}

/// One decimal is plenty for a label.
fn round1(x: f64) -> f64 {
    if x.is_finite() {
        (x * 10.0).round() / 10.0
    } else {
        0.0
    }
}

impl Snapshot<'_> {
    /// The graph of the shown components and the spec's subscriptions between them.
    pub(crate) fn graph(&self, sys: bool) -> Graph {
        graph(self, sys)
    }
}

fn graph(snap: &Snapshot<'_>, sys: bool) -> Graph {
    let components = snap.components(sys);
    let rate: HashMap<&str, (f64, f64)> = components
        .iter()
        .map(|(id, _)| (id.as_str(), rates(snap, id)))
        .collect();
    let nodes = components
        .iter()
        .map(|(id, kind)| {
            let (emitted, executed) = rate.get(id.as_str()).copied().unwrap_or_default();
            let capacity = match kind {
                ComponentKind::Spout => 0.0,
                ComponentKind::Bolt => snap.aggregate(id, Default::default()).capacity,
            };
            GraphNode {
                id: id.clone(),
                kind: kind.as_str().to_string(),
                executors: snap.executors(id),
                tasks: snap.task_count(id),
                capacity,
                emitted_per_second: round1(emitted),
                executed_per_second: round1(executed),
            }
        })
        .collect();
    let mut edges = Vec::new();
    for c in &snap.spec.components {
        let executed = rate.get(c.id.as_str()).map_or(0.0, |r| r.1);
        let weights: Vec<f64> = c
            .inputs
            .iter()
            .map(|i| {
                let emitted = rate.get(i.component.as_str()).map_or(0.0, |r| r.0);
                let copies = match i.grouping {
                    GroupingSpec::All => f64::from(c.num_tasks.max(1)),
                    _ => 1.0,
                };
                emitted * copies
            })
            .collect();
        let total: f64 = weights.iter().sum();
        for (i, w) in c.inputs.iter().zip(&weights) {
            // No producer rate known: an equal share each.
            let share = if total > 0.0 {
                w / total
            } else {
                1.0 / weights.len() as f64
            };
            edges.push(GraphEdge {
                from: i.component.clone(),
                to: c.id.clone(),
                stream: i.stream.clone(),
                grouping: i.grouping.label(),
                tuples_per_second: round1(executed * share),
            });
        }
    }
    Graph { nodes, edges }
}
