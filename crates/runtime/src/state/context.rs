//! How a checkpointed topology checkpoints: the settings and restore point its tasks in one
//! process share.

use super::provider::Provider;
use std::path::PathBuf;
use tempest_protocol::config::{
    Config, ConfigError, TOPOLOGY_STATE_ALIGNMENT_MAX_TUPLES,
    TOPOLOGY_STATE_CHECKPOINT_INTERVAL_MS, TOPOLOGY_STATE_EXACTLY_ONCE,
};
use tempest_protocol::spec::{ComponentKind, TaskLayout, TopologySpec};

/// How a checkpointed topology checkpoints, shared by its tasks in one process.
#[derive(Debug)]
pub(crate) struct StateContext {
    pub topology: String,
    pub provider: Provider,
    pub exactly_once: bool,
    pub interval: std::time::Duration,
    pub max_buffered: usize,
    /// Exactly-once: the checkpoint every task restores (`Ok(None)`: start empty); `Err`
    /// if the completion marks could not be read.
    pub restore: Result<Option<u64>, String>,
    /// Every spout task of the topology (their marks decide what completed).
    pub spout_tasks: Vec<u32>,
    /// Exactly once: a tuple tree failed, so every task must roll back (a cluster worker
    /// asks Nimbus for it).
    rollback: std::sync::atomic::AtomicBool,
}

impl StateContext {
    /// The checkpoint settings of `spec`, if it has stateful bolts; `default_dir` is where
    /// redb files go unless `topology.state.redb.dir` says otherwise.
    pub(crate) fn of(
        spec: &TopologySpec,
        layout: &TaskLayout,
        default_dir: PathBuf,
    ) -> Result<Option<Self>, ConfigError> {
        if !spec.is_checkpointed() {
            return Ok(None);
        }
        let c: &Config = &spec.config;
        let provider = Provider::from_config(c, default_dir)?;
        let exactly_once = c.bool_or(TOPOLOGY_STATE_EXACTLY_ONCE, false)?;
        let spout_tasks: Vec<u32> = spec
            .components
            .iter()
            .filter(|c| c.kind == ComponentKind::Spout)
            .flat_map(|c| layout.tasks(&c.id))
            .collect();
        let restore = if exactly_once {
            provider
                .completed(&spec.name, &spout_tasks)
                .map_err(|e| e.to_string())
        } else {
            Ok(None)
        };
        if let Ok(Some(g)) = &restore {
            tracing::info!(topology = %spec.name, checkpoint = g, "exactly once: restoring every task to the last completed checkpoint");
        }
        Ok(Some(StateContext {
            topology: spec.name.clone(),
            provider,
            exactly_once,
            interval: std::time::Duration::from_millis(
                c.u64_or(TOPOLOGY_STATE_CHECKPOINT_INTERVAL_MS, 1000)?
                    .max(10),
            ),
            max_buffered: c.u64_or(TOPOLOGY_STATE_ALIGNMENT_MAX_TUPLES, 100_000)? as usize,
            restore,
            spout_tasks,
            rollback: std::sync::atomic::AtomicBool::new(false),
        }))
    }

    /// Exactly once: a tuple tree failed or timed out; its input is counted once only after
    /// every task rolls back to the last completed checkpoint.
    pub(crate) fn request_rollback(&self, task: u32) {
        if self.exactly_once
            && !self
                .rollback
                .swap(true, std::sync::atomic::Ordering::Relaxed)
        {
            tracing::warn!(task, "exactly once: a tuple tree failed; every task must roll back to the last completed checkpoint");
        }
    }

    /// True once a rollback was requested.
    pub(crate) fn rollback_requested(&self) -> bool {
        self.rollback.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// The checkpoint tasks start after (0: none).
    pub(crate) fn start_after(&self) -> u64 {
        match &self.restore {
            Ok(Some(g)) => *g,
            _ => 0,
        }
    }
}
