//! Stateful bolts and checkpoints.
//!
//! A [`StatefulBolt`] keeps a typed key-value state ([`KeyValueState`]) that survives crashes:
//! every `topology.state.checkpoint.interval.ms` each spout task sends a checkpoint barrier
//! down the DAG ([`barrier`]); when it has reached a stateful task on every input, the task
//! saves what changed since the last checkpoint to its store ([`store`]) before passing the
//! barrier on. The barrier is a tracked tuple tree, so the spout learns when every task below
//! it saved the checkpoint. docs/design/checkpoints.md has the protocol and why it is correct.
//!
//! - **At least once** (the default): a task acks its inputs only once a checkpoint holding
//!   their effects is saved, and after a crash restores its own newest checkpoint; inputs after
//!   it are replayed by their spouts, so an update may count twice, never zero times.
//! - **Exactly once** (`topology.state.exactly.once`): barriers are aligned, spouts save their
//!   position with each checkpoint, and at start every task restores the last checkpoint that
//!   *every* spout task saw complete, and the spouts rewind to their positions in it: every
//!   input updates the state exactly once.

pub(crate) mod barrier;
pub(crate) mod context;
pub(crate) mod provider;
mod redb_store;
#[cfg(feature = "redis")]
mod redis_store;
pub(crate) mod store;

use crate::collector::{BasicOutputCollector, OutputCollector};
use crate::component::{Bolt, ComponentResult, ExecuteNow, OutputDeclarer, TopologyContext};
use crate::tuple::Tuple;
use async_trait::async_trait;
use serde::de::DeserializeOwned;
use serde::Serialize;
use std::collections::{BTreeMap, BTreeSet};
pub use store::StoreError;
use store::{Changes, StateStore};

/// A bolt's key-value state: keys and values of any serde type, held in memory and saved,
/// key by key as they change, at every checkpoint. Storm's `KeyValueState`.
#[derive(Debug)]
pub struct KeyValueState<K, V> {
    map: BTreeMap<K, V>,
    dirty: BTreeSet<K>,
}

impl<K: Ord + Clone, V> Default for KeyValueState<K, V> {
    fn default() -> Self {
        KeyValueState {
            map: BTreeMap::new(),
            dirty: BTreeSet::new(),
        }
    }
}

impl<K: Ord + Clone, V> KeyValueState<K, V> {
    /// The value of `key`.
    pub fn get(&self, key: &K) -> Option<&V> {
        self.map.get(key)
    }
    /// The value of `key`, or `default`.
    pub fn get_or<'a>(&'a self, key: &K, default: &'a V) -> &'a V {
        self.map.get(key).unwrap_or(default)
    }
    /// Sets `key` to `value`.
    pub fn put(&mut self, key: K, value: V) {
        self.mark(&key);
        self.map.insert(key, value);
    }
    /// The value of `key`, to change in place (the key is saved at the next checkpoint).
    /// Takes a borrowed form of the key (`&str` for `String` keys): no allocation for a key
    /// that is already there.
    pub fn get_mut<Q>(&mut self, key: &Q) -> Option<&mut V>
    where
        K: std::borrow::Borrow<Q>,
        Q: Ord + ?Sized + ToOwned<Owned = K>,
    {
        let v = self.map.get_mut(key)?;
        if !self.dirty.contains(key) {
            self.dirty.insert(key.to_owned());
        }
        Some(v)
    }
    /// Removes `key`; returns its value.
    pub fn delete(&mut self, key: &K) -> Option<V> {
        let old = self.map.remove(key);
        if old.is_some() {
            self.mark(key);
        }
        old
    }
    fn mark(&mut self, key: &K) {
        if !self.dirty.contains(key) {
            self.dirty.insert(key.clone());
        }
    }
    /// Every key and value, in key order.
    pub fn iter(&self) -> impl Iterator<Item = (&K, &V)> {
        self.map.iter()
    }
    /// Number of keys.
    pub fn len(&self) -> usize {
        self.map.len()
    }
    /// True if there are no keys.
    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }
}

impl<K, V> KeyValueState<K, V>
where
    K: Ord + Clone + Serialize + DeserializeOwned,
    V: Serialize + DeserializeOwned,
{
    /// The changes since the last call, encoded (the keys stay dirty until `saved`).
    fn changes(&self) -> Result<Changes, rmp_serde::encode::Error> {
        self.dirty
            .iter()
            .map(|k| {
                let value = self.map.get(k).map(rmp_serde::to_vec).transpose()?;
                Ok((rmp_serde::to_vec(k)?, value))
            })
            .collect()
    }

    fn saved(&mut self) {
        self.dirty.clear();
    }

    fn load(entries: Vec<(Vec<u8>, Vec<u8>)>) -> Result<Self, rmp_serde::decode::Error> {
        let mut map = BTreeMap::new();
        for (k, v) in entries {
            map.insert(rmp_serde::from_slice(&k)?, rmp_serde::from_slice(&v)?);
        }
        Ok(KeyValueState {
            map,
            dirty: BTreeSet::new(),
        })
    }
}

/// A bolt with durable key-value state (Storm's `IStatefulBolt`): it receives its state,
/// restored from the last checkpoint, before its first tuple, and every input it executes
/// with `Ok` is acked for it once a checkpoint holds its effects. Emits are anchored to the
/// input (as in a [`BasicBolt`](crate::BasicBolt)). Wire it with
/// `TopologyBuilder::set_stateful_bolt`.
#[async_trait]
pub trait StatefulBolt: Send + 'static {
    /// The state's key type.
    type Key: Ord + Clone + Serialize + DeserializeOwned + Send + Sync;
    /// The state's value type.
    type Value: Serialize + DeserializeOwned + Send + Sync;

    /// Declares the streams this bolt emits.
    fn declare_output_fields(&self, declarer: &mut OutputDeclarer);
    /// Called once before the state is restored.
    async fn prepare(&mut self, _ctx: &TopologyContext) -> ComponentResult {
        Ok(())
    }
    /// The state as restored from the last checkpoint (empty the first time), before the
    /// first tuple (Storm's `initState`).
    async fn init_state(
        &mut self,
        _state: &mut KeyValueState<Self::Key, Self::Value>,
    ) -> ComponentResult {
        Ok(())
    }
    /// Processes one input tuple, reading and updating the state, without waiting on
    /// anything (like [`BasicBolt::execute`](crate::BasicBolt::execute)).
    fn execute(
        &mut self,
        input: &Tuple,
        state: &mut KeyValueState<Self::Key, Self::Value>,
        collector: &mut BasicOutputCollector<'_>,
    ) -> ComponentResult;
    /// Called before checkpoint `id` saves the state (Storm's `prePrepare`): last changes.
    async fn pre_checkpoint(
        &mut self,
        _id: u64,
        _state: &mut KeyValueState<Self::Key, Self::Value>,
    ) -> ComponentResult {
        Ok(())
    }
    /// Called once when the bolt is shut down.
    async fn cleanup(&mut self) {}
}

/// Runs a [`StatefulBolt`] as a [`Bolt`] (what `set_stateful_bolt` registers): restores its
/// state, saves it at checkpoints, holds the acks of at-least-once mode until then.
pub struct StatefulBoltAdapter<B: StatefulBolt> {
    bolt: B,
    state: KeyValueState<B::Key, B::Value>,
    store: Option<Box<dyn StateStore>>,
    exactly_once: bool,
    /// Executed inputs whose effects no saved checkpoint holds yet (at least once).
    unacked: Vec<Tuple>,
    /// Why the state could not be restored: the task then fails its inputs instead of
    /// running on the wrong state.
    broken: Option<String>,
    /// Inputs failed because the state is broken (reported every 10 000).
    refused: u64,
    context: Option<std::sync::Arc<context::StateContext>>,
    task: String,
}

impl<B: StatefulBolt> std::fmt::Debug for StatefulBoltAdapter<B> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StatefulBoltAdapter")
            .field("task", &self.task)
            .field("keys", &self.state.len())
            .field("unacked", &self.unacked.len())
            .finish_non_exhaustive()
    }
}

impl<B: StatefulBolt> StatefulBoltAdapter<B> {
    /// Executes `input` on the state, then acks it (exactly once) or holds its ack until the
    /// next checkpoint (at least once).
    fn execute_stateful(
        &mut self,
        input: Tuple,
        collector: &mut OutputCollector,
    ) -> ComponentResult {
        if let Some(why) = &self.broken {
            if self.refused % 10_000 == 0 {
                collector.report_error(format!(
                    "state not restored, failing inputs ({} so far): {why}",
                    self.refused + 1
                ));
            }
            self.refused += 1;
            collector.fail_because(&input, format!("state not restored: {why}"));
            return Ok(());
        }
        {
            let mut basic = BasicOutputCollector::new(collector, &input);
            self.bolt.execute(&input, &mut self.state, &mut basic)?;
        }
        if self.exactly_once || !input.is_tracked() {
            // Exactly once does not rely on replays: the spouts rewind instead.
            collector.ack(&input);
        } else {
            self.unacked.push(input);
        }
        Ok(())
    }

    /// Wraps `bolt`.
    pub fn new(bolt: B) -> Self {
        StatefulBoltAdapter {
            bolt,
            state: KeyValueState::default(),
            store: None,
            exactly_once: false,
            unacked: Vec::new(),
            broken: None,
            refused: 0,
            context: None,
            task: String::new(),
        }
    }

    fn restore(&mut self, ctx: &TopologyContext) -> Result<(), String> {
        let opened = TaskState::open(ctx)?;
        self.exactly_once = opened.context.exactly_once;
        self.state = KeyValueState::load(opened.restored.entries).map_err(|e| {
            format!(
                "the state of {} does not decode as this bolt's key and value types: {e}",
                self.task
            )
        })?;
        tracing::info!(task = %self.task, checkpoint = ?opened.restored.checkpoint, keys = self.state.len(), "state restored");
        self.store = Some(opened.store);
        self.context = Some(opened.context);
        Ok(())
    }

    fn save(&mut self, id: u64) -> Result<(), String> {
        let store = self.store.as_mut().ok_or("no state store")?;
        let context = self.context.as_ref().ok_or("no checkpoint settings")?;
        let changes = self
            .state
            .changes()
            .map_err(|e| format!("cannot encode the state: {e}"))?;
        save_checkpoint(store.as_mut(), context, &self.task, id, &changes)?;
        self.state.saved();
        Ok(())
    }
}

/// A task's store, opened and restored as its topology's checkpoint mode says.
pub(crate) struct TaskState {
    pub(crate) store: Box<dyn StateStore>,
    pub(crate) restored: store::Restored,
    pub(crate) context: std::sync::Arc<context::StateContext>,
}

impl TaskState {
    /// Opens the store of the task of `ctx` and restores it: exactly once, to the last
    /// checkpoint every spout task saw complete (empty before the first); at least once, to
    /// its own newest.
    pub(crate) fn open(ctx: &TopologyContext) -> Result<Self, String> {
        let Some(sc) = ctx.state.clone() else {
            return Err(
                "the topology has no checkpoint settings (a bug: stateful bolts set them)".into(),
            );
        };
        let upto = if sc.exactly_once {
            Some(
                sc.restore
                    .clone()
                    .map_err(|e| format!("cannot tell which checkpoint to restore: {e}"))?,
            )
        } else {
            None
        };
        let mut store = sc
            .provider
            .open(&sc.topology, &ctx.component, ctx.task_id)
            .map_err(|e| e.to_string())?;
        let restored = match upto {
            // Exactly once, nothing completed yet: start empty, dropping any partial checkpoint.
            Some(None) => store.restore(Some(0)),
            Some(Some(g)) => store.restore(Some(g)),
            None => store.restore(None),
        };
        let restored = match restored {
            Ok(r) => r,
            // Exactly once before any completed checkpoint: a task with only newer deltas.
            Err(StoreError::Missing { wanted: 0, .. }) => store::Restored::default(),
            Err(e) => return Err(e.to_string()),
        };
        Ok(TaskState {
            store,
            restored,
            context: sc,
        })
    }
}

/// Saves `changes` as checkpoint `id` of `store`, durably, then folds what can no longer be
/// rolled back: at least once restores this task's newest checkpoint, so older ones fold;
/// exactly once may roll back to the last one every spout saw complete, so up to it.
pub(crate) fn save_checkpoint(
    store: &mut dyn StateStore,
    context: &context::StateContext,
    task: &str,
    id: u64,
    changes: &Changes,
) -> Result<(), String> {
    store.save(id, changes).map_err(|e| e.to_string())?;
    let fold = if context.exactly_once {
        context
            .provider
            .completed(&context.topology, &context.spout_tasks)
            .ok()
            .flatten()
    } else {
        Some(id)
    };
    if let Some(upto) = fold {
        if let Err(e) = store.compact(upto) {
            tracing::warn!(task, "compacting state: {e}");
        }
    }
    Ok(())
}

#[async_trait]
impl<B: StatefulBolt> Bolt for StatefulBoltAdapter<B> {
    fn declare_output_fields(&self, declarer: &mut OutputDeclarer) {
        self.bolt.declare_output_fields(declarer)
    }

    async fn prepare(&mut self, ctx: &TopologyContext) -> ComponentResult {
        self.task = format!("{} task {}", ctx.component_id(), ctx.task_id());
        self.bolt.prepare(ctx).await?;
        match self.restore(ctx) {
            Ok(()) => self.bolt.init_state(&mut self.state).await,
            Err(e) => {
                // Not an error of prepare: the worker would restart and fail again, in a loop.
                // The task stays up, reports the problem and fails its inputs.
                tracing::error!(task = %self.task, "state not restored: {e}");
                self.broken = Some(e);
                Ok(())
            }
        }
    }

    async fn execute(&mut self, input: Tuple, collector: &mut OutputCollector) -> ComponentResult {
        self.execute_stateful(input, collector)
    }

    fn execute_now(&mut self, input: Tuple, collector: &mut OutputCollector) -> ExecuteNow {
        ExecuteNow::Done(self.execute_stateful(input, collector))
    }

    async fn checkpoint(&mut self, id: u64, collector: &mut OutputCollector) -> ComponentResult {
        if let Some(why) = &self.broken {
            return Err(format!("state not restored: {why}").into());
        }
        self.bolt.pre_checkpoint(id, &mut self.state).await?;
        match self.save(id) {
            Ok(()) => {
                for t in self.unacked.drain(..) {
                    collector.ack(&t);
                }
                Ok(())
            }
            Err(e) => {
                // The inputs are replayed; the changes stay dirty for the next checkpoint.
                let why = format!("saving the state: {e}");
                for t in self.unacked.drain(..) {
                    collector.fail_because(&t, &why);
                }
                Err(why.into())
            }
        }
    }

    async fn cleanup(&mut self) {
        self.bolt.cleanup().await
    }
}
