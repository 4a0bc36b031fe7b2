//! A built topology: its serializable spec and the factories that make its components, which
//! is what every mode (local, worker) runs.

use crate::component::{Bolt, Spout};
use crate::grouping::CustomGroupingFactory;
use std::collections::HashMap;
use std::sync::Arc;
use tempest_protocol::config::Config;
use tempest_protocol::spec::TopologySpec;

/// An assigned spec that this binary did not build.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{0}")]
pub struct SpecMismatch(String);

/// Creates one spout instance per task.
pub type SpoutFactory = Arc<dyn Fn() -> Box<dyn Spout> + Send + Sync>;
/// Creates one bolt instance per task.
pub type BoltFactory = Arc<dyn Fn() -> Box<dyn Bolt> + Send + Sync>;

/// A built topology: its serializable spec plus the factories that make its components.
#[derive(Clone)]
pub struct Topology {
    pub(crate) spec: TopologySpec,
    pub(crate) spouts: HashMap<String, SpoutFactory>,
    pub(crate) bolts: HashMap<String, BoltFactory>,
    pub(crate) custom_groupings: HashMap<String, CustomGroupingFactory>,
}

impl Topology {
    /// A topology from its (validated) spec and the factories of its components and custom
    /// groupings, by component id and grouping name. `TopologyBuilder::build` makes these.
    pub fn from_parts(
        spec: TopologySpec,
        spouts: HashMap<String, SpoutFactory>,
        bolts: HashMap<String, BoltFactory>,
        custom_groupings: HashMap<String, CustomGroupingFactory>,
    ) -> Self {
        Topology {
            spec,
            spouts,
            bolts,
            custom_groupings,
        }
    }

    /// Its spec and factories, as [`Topology::from_parts`] takes them (to swap or wrap a
    /// component's factory, as `topology_api::testing` does).
    #[allow(clippy::type_complexity)]
    pub fn into_parts(
        self,
    ) -> (
        TopologySpec,
        HashMap<String, SpoutFactory>,
        HashMap<String, BoltFactory>,
        HashMap<String, CustomGroupingFactory>,
    ) {
        (self.spec, self.spouts, self.bolts, self.custom_groupings)
    }

    /// The serializable description of this topology.
    pub fn spec(&self) -> &TopologySpec {
        &self.spec
    }
    /// The topology's name.
    pub fn name(&self) -> &str {
        &self.spec.name
    }
    /// Mutable access to the topology config (e.g. to apply command-line overrides).
    pub fn config_mut(&mut self) -> &mut Config {
        &mut self.spec.config
    }

    /// This topology's code with an assigned `spec` (as Nimbus stores it: renamed, with config
    /// overrides and rebalanced parallelism). Its components, their kinds, streams and inputs
    /// must be the ones this binary builds.
    pub fn with_spec(&self, spec: TopologySpec) -> Result<Topology, SpecMismatch> {
        let mismatch = |what: String| {
            SpecMismatch(format!(
                "{what}; the assigned spec was not built by this binary"
            ))
        };
        if spec.components.len() != self.spec.components.len() {
            return Err(mismatch(format!(
                "the spec has {} components, this binary builds {}",
                spec.components.len(),
                self.spec.components.len()
            )));
        }
        for c in &spec.components {
            let Some(mine) = self.spec.component(&c.id) else {
                return Err(mismatch(format!(
                    "component {:?} is unknown to this binary",
                    c.id
                )));
            };
            if mine.kind != c.kind || mine.streams != c.streams || mine.inputs != c.inputs {
                return Err(mismatch(format!(
                    "component {:?} differs in kind, streams or inputs",
                    c.id
                )));
            }
        }
        let mut t = self.clone();
        t.spec = spec;
        Ok(t)
    }
}

impl std::fmt::Debug for Topology {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Topology")
            .field("spec", &self.spec)
            .finish()
    }
}
