//! Faults on purpose: a chosen task of a bolt fails its n-th tuple, returns an error, panics
//! or restarts (a new instance, prepared again; the tuple it held fails), so a test can
//! assert the replay.

use super::complete::TestError;
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;
use tempest_protocol::spec::ComponentKind;
use tempest_runtime::{
    Bolt, BoltEvent, BoltFactory, ComponentResult, ExecuteNow, OutputCollector, OutputDeclarer,
    Topology, TopologyContext, Tuple,
};

/// What a chosen task does with its chosen tuple.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// `collector.fail_because` it ("injected fault").
    Fail,
    /// `execute` returns an error.
    Error,
    /// `execute` panics.
    Panic,
    /// The task restarts: its instance is cleaned up and replaced by a new one from the
    /// factory (prepared again, so a stateful bolt restores its last checkpoint), and the
    /// tuple it held fails.
    Restart,
}

/// Which tasks fail how (applied to a topology with [`Faults::apply`]).
#[derive(Debug, Clone, Default)]
pub struct Faults {
    /// component -> (task index, n-th tuple from 1, fault).
    plans: BTreeMap<String, Vec<(u32, u64, Fault)>>,
}

impl Faults {
    /// No faults yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// Task `task_index` (0-based, among the bolt's tasks) of `bolt` meets `fault` on the
    /// `nth` tuple it executes (from 1; tick tuples do not count).
    pub fn on(mut self, bolt: &str, task_index: u32, nth: u64, fault: Fault) -> Self {
        self.plans
            .entry(bolt.to_string())
            .or_default()
            .push((task_index, nth, fault));
        self
    }

    /// `topology` with the faults' bolts wrapped; fails if one is not a bolt of it.
    pub fn apply(&self, topology: Topology) -> Result<Topology, TestError> {
        let (spec, spouts, mut bolts, groupings) = topology.into_parts();
        for (id, plan) in &self.plans {
            let is_bolt = spec
                .component(id)
                .is_some_and(|c| c.kind == ComponentKind::Bolt);
            let Some(inner) = bolts.get(id).cloned().filter(|_| is_bolt) else {
                return Err(TestError::Harness(format!(
                    "a fault is planned for bolt {id:?}, which the topology does not have"
                )));
            };
            let plan = Arc::new(plan.clone());
            let factory: BoltFactory = Arc::new(move || {
                Box::new(Faulty {
                    inner: inner(),
                    factory: inner.clone(),
                    plan: plan.clone(),
                    mine: Vec::new(),
                    executed: 0,
                    due: None,
                    ctx: None,
                }) as Box<dyn Bolt>
            });
            bolts.insert(id.clone(), factory);
        }
        Ok(Topology::from_parts(spec, spouts, bolts, groupings))
    }
}

/// A bolt task with planned faults.
struct Faulty {
    inner: Box<dyn Bolt>,
    factory: BoltFactory,
    plan: Arc<Vec<(u32, u64, Fault)>>,
    /// This task's (n-th tuple, fault).
    mine: Vec<(u64, Fault)>,
    executed: u64,
    /// The fault the tuple handed to `execute` meets.
    due: Option<Fault>,
    ctx: Option<TopologyContext>,
}

impl Faulty {
    async fn meet(
        &mut self,
        fault: Fault,
        input: Tuple,
        collector: &mut OutputCollector,
    ) -> ComponentResult {
        let (task, n) = (collector.task_id(), self.executed);
        match fault {
            Fault::Fail => {
                collector.fail_because(&input, format!("injected fault on tuple {n}"));
                Ok(())
            }
            Fault::Error => Err(format!("injected error on tuple {n}").into()),
            Fault::Panic => panic!("injected panic on tuple {n}"),
            Fault::Restart => {
                self.inner.cleanup().await;
                self.inner = (self.factory)();
                if let Some(ctx) = &self.ctx {
                    self.inner.prepare(ctx).await?;
                }
                collector.fail_because(
                    &input,
                    format!("injected restart of task {task} on tuple {n}"),
                );
                Ok(())
            }
        }
    }
}

#[async_trait::async_trait]
impl Bolt for Faulty {
    fn declare_output_fields(&self, declarer: &mut OutputDeclarer) {
        self.inner.declare_output_fields(declarer)
    }
    async fn prepare(&mut self, ctx: &TopologyContext) -> ComponentResult {
        let index = ctx.task_index();
        self.mine = self
            .plan
            .iter()
            .filter(|(i, _, _)| *i == index)
            .map(|&(_, n, f)| (n, f))
            .collect();
        self.ctx = Some(ctx.clone());
        self.inner.prepare(ctx).await
    }
    fn execute_now(&mut self, input: Tuple, collector: &mut OutputCollector) -> ExecuteNow {
        if !input.is_tick() {
            self.executed += 1;
            let n = self.executed;
            if let Some(&(_, fault)) = self.mine.iter().find(|(at, _)| *at == n) {
                self.due = Some(fault);
                return ExecuteNow::Later(input);
            }
        }
        self.inner.execute_now(input, collector)
    }
    async fn execute(&mut self, input: Tuple, collector: &mut OutputCollector) -> ComponentResult {
        match self.due.take() {
            Some(fault) => self.meet(fault, input, collector).await,
            None => self.inner.execute(input, collector).await,
        }
    }
    async fn cleanup(&mut self) {
        self.inner.cleanup().await
    }
    fn tick_interval(&self) -> Option<Duration> {
        self.inner.tick_interval()
    }
    async fn checkpoint(&mut self, id: u64, collector: &mut OutputCollector) -> ComponentResult {
        self.inner.checkpoint(id, collector).await
    }
    async fn event(
        &mut self,
        event: BoltEvent,
        collector: &mut OutputCollector,
    ) -> ComponentResult {
        self.inner.event(event, collector).await
    }
}
