//! Topology configuration: a map of Storm-style dotted keys to JSON values, with typed accessors
//! and the defaults of every key the runtime reads.

use serde::{Deserialize, Serialize};
use serde_json::Value as Json;
use std::collections::BTreeMap;

/// Number of worker processes the topology asks for in a cluster (local mode runs one).
pub const TOPOLOGY_WORKERS: &str = "topology.workers";
/// Number of acker tasks; 0 turns tracking off (every spout tuple is acked at once).
pub const TOPOLOGY_ACKER_EXECUTORS: &str = "topology.acker.executors";
/// Seconds after which an incomplete tuple tree is failed back to its spout.
pub const TOPOLOGY_MESSAGE_TIMEOUT_SECS: &str = "topology.message.timeout.secs";
/// Maximum tracked tuple trees in flight per spout task.
pub const TOPOLOGY_MAX_SPOUT_PENDING: &str = "topology.max.spout.pending";
/// Seconds between tick tuples sent to each bolt task; absent or 0 sends none.
pub const TOPOLOGY_TICK_TUPLE_FREQ_SECS: &str = "topology.tick.tuple.freq.secs";
/// Log every emitted tuple at info level.
pub const TOPOLOGY_DEBUG: &str = "topology.debug";
/// Capacity of each executor's input queue, in batches.
pub const TOPOLOGY_EXECUTOR_RECEIVE_BUFFER_SIZE: &str = "topology.executor.receive.buffer.size";
/// Maximum tuples in one batch between two tasks.
pub const TOPOLOGY_TRANSFER_BATCH_SIZE: &str = "topology.transfer.batch.size";
/// Longest time, in microseconds, a tuple waits in a partly filled batch of a busy executor.
pub const TOPOLOGY_BATCH_FLUSH_MICROS: &str = "topology.batch.flush.micros";

/// How long, in microseconds, an idle spout keeps polling `next_tuple` before sleeping 1 ms.
pub const TOPOLOGY_SPOUT_SPIN_MICROS: &str = "topology.spout.spin.micros";

/// Every key the runtime reads, its default, and what it does (the README table is made from it).
pub const KNOWN_KEYS: &[(&str, &str, &str)] = &[
    (
        TOPOLOGY_WORKERS,
        "1",
        "worker processes requested in a cluster; local mode runs one",
    ),
    (
        TOPOLOGY_ACKER_EXECUTORS,
        "1",
        "acker tasks; 0 turns tuple tracking off (spout tuples are acked at once)",
    ),
    (
        TOPOLOGY_MESSAGE_TIMEOUT_SECS,
        "30",
        "seconds before an incomplete tuple tree is failed and replayed",
    ),
    (
        TOPOLOGY_MAX_SPOUT_PENDING,
        "5000",
        "tracked tuple trees in flight per spout task (bounds memory and latency)",
    ),
    (
        TOPOLOGY_TICK_TUPLE_FREQ_SECS,
        "none",
        "seconds between tick tuples to each bolt task (per component)",
    ),
    (
        TOPOLOGY_DEBUG,
        "false",
        "log every emitted tuple (per component)",
    ),
    (
        TOPOLOGY_EXECUTOR_RECEIVE_BUFFER_SIZE,
        "64",
        "capacity of an executor's input queue, in batches",
    ),
    (
        TOPOLOGY_TRANSFER_BATCH_SIZE,
        "128",
        "most tuples per batch between two tasks",
    ),
    (
        TOPOLOGY_BATCH_FLUSH_MICROS,
        "500",
        "longest wait of a tuple in a partly filled batch of a busy executor",
    ),
    (
        TOPOLOGY_SPOUT_SPIN_MICROS,
        "200 (local), 0 (workers)",
        "how long an idle spout keeps polling next_tuple before sleeping 1 ms: low latency for one process, but it takes a core, so cluster workers do not spin",
    ),
];

/// A topology's (or a component's) configuration.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Config(BTreeMap<String, Json>);

/// A configuration value of the wrong type.
#[derive(Debug, thiserror::Error)]
#[error("config key {key:?} must be {expected}, got {value}")]
pub struct ConfigError {
    key: String,
    expected: &'static str,
    value: Json,
}

impl Config {
    /// An empty configuration (every key at its default).
    pub fn new() -> Self {
        Self::default()
    }

    /// Sets a key.
    pub fn set(&mut self, key: impl Into<String>, value: impl Into<Json>) -> &mut Self {
        self.0.insert(key.into(), value.into());
        self
    }

    /// Removes a key; its value if it was set.
    pub fn remove(&mut self, key: &str) -> Option<Json> {
        self.0.remove(key)
    }

    /// Parses `key=value` (value as JSON if it parses, else as a string) and sets it.
    pub fn set_from_str(&mut self, assignment: &str) -> Result<&mut Self, String> {
        let (k, v) = assignment
            .split_once('=')
            .ok_or_else(|| format!("config override {assignment:?} is not key=value"))?;
        let value = serde_json::from_str(v).unwrap_or_else(|_| Json::String(v.to_string()));
        Ok(self.set(k.trim(), value))
    }

    /// The raw value of a key.
    pub fn get(&self, key: &str) -> Option<&Json> {
        self.0.get(key)
    }

    /// All keys and values.
    pub fn iter(&self) -> impl Iterator<Item = (&String, &Json)> {
        self.0.iter()
    }

    /// This configuration overlaid by `other`'s keys.
    pub fn merged(&self, other: &Config) -> Config {
        let mut m = self.clone();
        m.0.extend(other.0.iter().map(|(k, v)| (k.clone(), v.clone())));
        m
    }

    /// An unsigned integer key, or `default` when absent.
    pub fn u64_or(&self, key: &str, default: u64) -> Result<u64, ConfigError> {
        match self.0.get(key) {
            None | Some(Json::Null) => Ok(default),
            Some(v) => v.as_u64().ok_or_else(|| ConfigError {
                key: key.into(),
                expected: "a non-negative integer",
                value: v.clone(),
            }),
        }
    }

    /// A boolean key, or `default` when absent.
    pub fn bool_or(&self, key: &str, default: bool) -> Result<bool, ConfigError> {
        match self.0.get(key) {
            None | Some(Json::Null) => Ok(default),
            Some(v) => v.as_bool().ok_or_else(|| ConfigError {
                key: key.into(),
                expected: "true or false",
                value: v.clone(),
            }),
        }
    }

    /// A float key, or `default` when absent.
    pub fn f64_or(&self, key: &str, default: f64) -> Result<f64, ConfigError> {
        match self.0.get(key) {
            None | Some(Json::Null) => Ok(default),
            Some(v) => v.as_f64().ok_or_else(|| ConfigError {
                key: key.into(),
                expected: "a number",
                value: v.clone(),
            }),
        }
    }

    /// A string key, if present and a string.
    pub fn str(&self, key: &str) -> Option<&str> {
        self.0.get(key).and_then(Json::as_str)
    }

    /// Builder-style setters for the common keys.
    pub fn with_workers(mut self, n: u64) -> Self {
        self.set(TOPOLOGY_WORKERS, n);
        self
    }
    /// Sets `topology.acker.executors`.
    pub fn with_ackers(mut self, n: u64) -> Self {
        self.set(TOPOLOGY_ACKER_EXECUTORS, n);
        self
    }
    /// Sets `topology.message.timeout.secs`.
    pub fn with_message_timeout_secs(mut self, secs: u64) -> Self {
        self.set(TOPOLOGY_MESSAGE_TIMEOUT_SECS, secs);
        self
    }
    /// Sets `topology.max.spout.pending`.
    pub fn with_max_spout_pending(mut self, n: u64) -> Self {
        self.set(TOPOLOGY_MAX_SPOUT_PENDING, n);
        self
    }
    /// Sets `topology.tick.tuple.freq.secs`.
    pub fn with_tick_freq_secs(mut self, secs: u64) -> Self {
        self.set(TOPOLOGY_TICK_TUPLE_FREQ_SECS, secs);
        self
    }
    /// Sets `topology.debug`.
    pub fn with_debug(mut self, on: bool) -> Self {
        self.set(TOPOLOGY_DEBUG, on);
        self
    }
}

/// The runtime settings read from a config, resolved once with defaults and checked.
#[derive(Debug, Clone)]
pub(crate) struct RuntimeSettings {
    pub ackers: u32,
    pub message_timeout: std::time::Duration,
    pub max_spout_pending: usize,
    pub receive_buffer: usize,
    pub batch_size: usize,
    pub flush_interval: std::time::Duration,
    pub spout_spin: std::time::Duration,
}

impl RuntimeSettings {
    pub(crate) fn from_config(c: &Config) -> Result<Self, ConfigError> {
        Ok(RuntimeSettings {
            ackers: c.u64_or(TOPOLOGY_ACKER_EXECUTORS, 1)? as u32,
            message_timeout: std::time::Duration::from_secs(
                c.u64_or(TOPOLOGY_MESSAGE_TIMEOUT_SECS, 30)?.max(1),
            ),
            max_spout_pending: c.u64_or(TOPOLOGY_MAX_SPOUT_PENDING, 5000)?.max(1) as usize,
            receive_buffer: c.u64_or(TOPOLOGY_EXECUTOR_RECEIVE_BUFFER_SIZE, 64)?.max(1) as usize,
            batch_size: c.u64_or(TOPOLOGY_TRANSFER_BATCH_SIZE, 128)?.max(1) as usize,
            flush_interval: std::time::Duration::from_micros(
                c.u64_or(TOPOLOGY_BATCH_FLUSH_MICROS, 500)?,
            ),
            spout_spin: std::time::Duration::from_micros(
                c.u64_or(TOPOLOGY_SPOUT_SPIN_MICROS, 200)?,
            ),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn overrides_parse_json_or_string() {
        let mut c = Config::new();
        c.set_from_str("topology.workers=3").unwrap();
        c.set_from_str("my.name=hello").unwrap();
        assert_eq!(c.u64_or(TOPOLOGY_WORKERS, 1).unwrap(), 3);
        assert_eq!(c.str("my.name"), Some("hello"));
        assert!(c.set_from_str("novalue").is_err());
    }

    #[test]
    fn readme_documents_every_key_with_its_default() {
        let readme = include_str!("../../README.md");
        for (key, default, _) in KNOWN_KEYS {
            let row = format!("| `{key}` | {default} |");
            assert!(readme.contains(&row), "README lacks the row {row}");
        }
        let documented = readme.matches("| `topology.").count();
        assert_eq!(
            documented,
            KNOWN_KEYS.len(),
            "README documents keys the code does not know"
        );
    }

    #[test]
    fn defaults_in_the_table_are_the_defaults_used() {
        let s = RuntimeSettings::from_config(&Config::new()).unwrap();
        let table = |k: &str| KNOWN_KEYS.iter().find(|r| r.0 == k).unwrap().1;
        assert_eq!(s.ackers.to_string(), table(TOPOLOGY_ACKER_EXECUTORS));
        assert_eq!(
            s.message_timeout.as_secs().to_string(),
            table(TOPOLOGY_MESSAGE_TIMEOUT_SECS)
        );
        assert_eq!(
            s.max_spout_pending.to_string(),
            table(TOPOLOGY_MAX_SPOUT_PENDING)
        );
        assert_eq!(
            s.receive_buffer.to_string(),
            table(TOPOLOGY_EXECUTOR_RECEIVE_BUFFER_SIZE)
        );
        assert_eq!(
            s.batch_size.to_string(),
            table(TOPOLOGY_TRANSFER_BATCH_SIZE)
        );
        assert_eq!(
            s.flush_interval.as_micros().to_string(),
            table(TOPOLOGY_BATCH_FLUSH_MICROS)
        );
        let spin = table(TOPOLOGY_SPOUT_SPIN_MICROS).split(' ').next().unwrap();
        assert_eq!(s.spout_spin.as_micros().to_string(), spin);
    }

    #[test]
    fn wrong_type_is_named() {
        let mut c = Config::new();
        c.set(TOPOLOGY_MAX_SPOUT_PENDING, "lots");
        let e = c
            .u64_or(TOPOLOGY_MAX_SPOUT_PENDING, 1)
            .unwrap_err()
            .to_string();
        assert!(e.contains("topology.max.spout.pending"), "{e}");
        assert!(e.contains("lots"), "{e}");
    }
}
