//! Topology configuration: a map of Storm-style dotted keys to JSON values, with typed accessors,
//! and the table of every key Tempest reads (type, default, meaning), against which a topology's
//! keys are checked when it is built and submitted.

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

/// A windowed bolt's window length in tuples.
pub const TOPOLOGY_BOLTS_WINDOW_LENGTH_COUNT: &str = "topology.bolts.window.length.count";
/// A windowed bolt's window length in milliseconds.
pub const TOPOLOGY_BOLTS_WINDOW_LENGTH_DURATION_MS: &str =
    "topology.bolts.window.length.duration.ms";
/// A windowed bolt's slide in tuples.
pub const TOPOLOGY_BOLTS_WINDOW_SLIDING_INTERVAL_COUNT: &str =
    "topology.bolts.window.sliding.interval.count";
/// A windowed bolt's slide in milliseconds.
pub const TOPOLOGY_BOLTS_WINDOW_SLIDING_INTERVAL_DURATION_MS: &str =
    "topology.bolts.window.sliding.interval.duration.ms";
/// The input field holding a windowed bolt's event time (ms).
pub const TOPOLOGY_BOLTS_TUPLE_TIMESTAMP_FIELD: &str = "topology.bolts.tuple.timestamp.field";
/// How late (ms) tuples may arrive in event time.
pub const TOPOLOGY_BOLTS_TUPLE_TIMESTAMP_MAX_LAG_MS: &str =
    "topology.bolts.tuple.timestamp.max.lag.ms";
/// How often (ms) a windowed bolt computes its watermark.
pub const TOPOLOGY_BOLTS_WATERMARK_EVENT_INTERVAL_MS: &str =
    "topology.bolts.watermark.event.interval.ms";
/// The stream late tuples are emitted on.
pub const TOPOLOGY_BOLTS_LATE_TUPLE_STREAM: &str = "topology.bolts.late.tuple.stream";
/// After how long (ms) without tuples an input stops holding a watermark back.
pub const TOPOLOGY_BOLTS_WINDOW_IDLE_TIMEOUT_MS: &str = "topology.bolts.window.idle.timeout.ms";
/// Most tuples a windowed task holds; more are failed.
pub const TOPOLOGY_BOLTS_WINDOW_MAX_TUPLES: &str = "topology.bolts.window.max.tuples";
/// Set by the builder on an aggregating windowed bolt: it folds tuples into accumulators
/// instead of holding them (the tuple-holding checks do not apply).
pub const TOPOLOGY_BOLTS_WINDOW_AGGREGATING: &str = "topology.bolts.window.aggregating";
/// Most (pane, key) accumulators an aggregating windowed task holds; more are failed.
pub const TOPOLOGY_BOLTS_WINDOW_MAX_ACCUMULATORS: &str = "topology.bolts.window.max.accumulators";
/// When an aggregating window emits: `append` (once, when it closes) or `update`.
pub const TOPOLOGY_BOLTS_WINDOW_OUTPUT_MODE: &str = "topology.bolts.window.output.mode";

/// Set by the builder on a stateful bolt: the topology takes checkpoints.
pub const TOPOLOGY_BOLTS_STATEFUL: &str = "topology.bolts.stateful";
/// Milliseconds between checkpoints of a topology with stateful bolts.
pub const TOPOLOGY_STATE_CHECKPOINT_INTERVAL_MS: &str = "topology.state.checkpoint.interval.ms";
/// Where stateful bolts keep their state: `redb` (on disk, the default) or `redis`.
pub const TOPOLOGY_STATE_PROVIDER: &str = "topology.state.provider";
/// The directory of the `redb` state provider.
pub const TOPOLOGY_STATE_REDB_DIR: &str = "topology.state.redb.dir";
/// The URL of the `redis` state provider's server.
pub const TOPOLOGY_STATE_REDIS_URL: &str = "topology.state.redis.url";
/// Exactly-once state: spouts rewind and every task rolls back to the last checkpoint.
pub const TOPOLOGY_STATE_EXACTLY_ONCE: &str = "topology.state.exactly.once";
/// Most tuples a task buffers while it aligns a checkpoint's barriers (exactly-once).
pub const TOPOLOGY_STATE_ALIGNMENT_MAX_TUPLES: &str = "topology.state.alignment.max.tuples";
/// Nimbus hosts that must hold a new topology's binary before it is scheduled (Storm's key).
pub const TOPOLOGY_MIN_REPLICATION_COUNT: &str = "topology.min.replication.count";
/// Seconds a new topology waits for its binary to reach `topology.min.replication.count` Nimbus
/// hosts before it is scheduled anyway; -1 waits forever (Storm's key).
pub const TOPOLOGY_MAX_REPLICATION_WAIT_TIME_SEC: &str = "topology.max.replication.wait.time.sec";

/// Users besides the submitter who may operate the topology (Storm's key): a list of names.
pub const TOPOLOGY_USERS: &str = "topology.users";
/// The user who submitted the topology (Storm's key): set by Nimbus from the credential, any
/// value given with the topology is replaced.
pub const TOPOLOGY_SUBMITTER_USER: &str = "topology.submitter.user";
/// Memory limit of each of the topology's workers, in MiB, enforced with a cgroup by
/// supervisors that set `worker_memory_limit_mb` (Storm's key; it may only lower that limit).
pub const TOPOLOGY_WORKER_MAX_HEAP_SIZE_MB: &str = "topology.worker.max.heap.size.mb";

/// Shell components: the multilang serializer (only Storm's JSON one).
pub const TOPOLOGY_MULTILANG_SERIALIZER: &str = "topology.multilang.serializer";
/// Shell components: seconds a subprocess may stay silent before it is killed and restarted.
pub const TOPOLOGY_SUBPROCESS_TIMEOUT_SECS: &str = "topology.subprocess.timeout.secs";
/// Shell bolts: most tuples sent to the subprocess and not yet acked or failed.
pub const TOPOLOGY_SHELL_BOLT_MAX_PENDING: &str = "topology.shell.bolt.max.pending";

/// The type of a known key's value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyKind {
    /// A non-negative integer.
    Count,
    /// `true` or `false`.
    Bool,
    /// Any number.
    Number,
    /// A string.
    Text,
    /// A list of strings.
    TextList,
}

/// A config key Tempest reads: its name, type, default and meaning (the README's table).
#[derive(Debug, Clone, Copy)]
pub struct KnownKey {
    /// The key.
    pub name: &'static str,
    /// The type of its value.
    pub kind: KeyKind,
    /// Its default, as the README shows it.
    pub default: &'static str,
    /// What it does.
    pub doc: &'static str,
}

const fn key(
    name: &'static str,
    kind: KeyKind,
    default: &'static str,
    doc: &'static str,
) -> KnownKey {
    KnownKey {
        name,
        kind,
        default,
        doc,
    }
}

/// Every key Tempest reads, its type, its default, and what it does.
pub const KNOWN_KEYS: &[KnownKey] = &[
    key(
        TOPOLOGY_WORKERS,
        KeyKind::Count,
        "1",
        "worker processes requested in a cluster; local mode runs one",
    ),
    key(
        TOPOLOGY_ACKER_EXECUTORS,
        KeyKind::Count,
        "1",
        "acker tasks; 0 turns tuple tracking off (spout tuples are acked at once)",
    ),
    key(
        TOPOLOGY_MESSAGE_TIMEOUT_SECS,
        KeyKind::Count,
        "30",
        "seconds before an incomplete tuple tree is failed and replayed",
    ),
    key(
        TOPOLOGY_MAX_SPOUT_PENDING,
        KeyKind::Count,
        "5000",
        "tracked tuple trees in flight per spout task (bounds memory and latency)",
    ),
    key(
        TOPOLOGY_TICK_TUPLE_FREQ_SECS,
        KeyKind::Count,
        "none",
        "seconds between tick tuples to each bolt task (per component)",
    ),
    key(
        TOPOLOGY_DEBUG,
        KeyKind::Bool,
        "false",
        "log every emitted tuple (per component)",
    ),
    key(
        TOPOLOGY_EXECUTOR_RECEIVE_BUFFER_SIZE,
        KeyKind::Count,
        "64",
        "capacity of an executor's input queue, in batches",
    ),
    key(
        TOPOLOGY_TRANSFER_BATCH_SIZE,
        KeyKind::Count,
        "128",
        "most tuples per batch between two tasks",
    ),
    key(
        TOPOLOGY_BATCH_FLUSH_MICROS,
        KeyKind::Count,
        "500",
        "longest wait of a tuple in a partly filled batch of a busy executor",
    ),
    key(
        TOPOLOGY_SPOUT_SPIN_MICROS,
        KeyKind::Count,
        "200 (local), 0 (workers)",
        "how long an idle spout keeps polling next_tuple before sleeping 1 ms: low latency for one process, but it takes a core, so cluster workers do not spin",
    ),
    key(
        TOPOLOGY_BOLTS_WINDOW_LENGTH_COUNT,
        KeyKind::Count,
        "none",
        "window length in tuples (windowed bolts; set by `Windowing`)",
    ),
    key(
        TOPOLOGY_BOLTS_WINDOW_LENGTH_DURATION_MS,
        KeyKind::Count,
        "none",
        "window length in ms (windowed bolts)",
    ),
    key(
        TOPOLOGY_BOLTS_WINDOW_SLIDING_INTERVAL_COUNT,
        KeyKind::Count,
        "none",
        "window slide in tuples (windowed bolts)",
    ),
    key(
        TOPOLOGY_BOLTS_WINDOW_SLIDING_INTERVAL_DURATION_MS,
        KeyKind::Count,
        "none",
        "window slide in ms (windowed bolts)",
    ),
    key(
        TOPOLOGY_BOLTS_TUPLE_TIMESTAMP_FIELD,
        KeyKind::Text,
        "none",
        "the input field with the event time in ms (event-time windows)",
    ),
    key(
        TOPOLOGY_BOLTS_TUPLE_TIMESTAMP_MAX_LAG_MS,
        KeyKind::Count,
        "0",
        "how far behind the latest event time tuples may arrive before they are late",
    ),
    key(
        TOPOLOGY_BOLTS_WATERMARK_EVENT_INTERVAL_MS,
        KeyKind::Count,
        "1000",
        "how often a windowed task computes its watermark",
    ),
    key(
        TOPOLOGY_BOLTS_LATE_TUPLE_STREAM,
        KeyKind::Text,
        "none",
        "stream late tuples are emitted on (else they are counted and dropped)",
    ),
    key(
        TOPOLOGY_BOLTS_WINDOW_IDLE_TIMEOUT_MS,
        KeyKind::Count,
        "10000",
        "an input silent this long stops holding the watermark back",
    ),
    key(
        TOPOLOGY_BOLTS_WINDOW_MAX_TUPLES,
        KeyKind::Count,
        "100000",
        "most tuples a windowed task holds; more are failed and replayed",
    ),
    key(
        TOPOLOGY_BOLTS_WINDOW_AGGREGATING,
        KeyKind::Bool,
        "false",
        "set by `set_aggregating_bolt`: the windows fold tuples into per-key accumulators",
    ),
    key(
        TOPOLOGY_BOLTS_WINDOW_MAX_ACCUMULATORS,
        KeyKind::Count,
        "1000000",
        "most (pane, key) accumulators an aggregating windowed task holds; tuples needing a new one are failed",
    ),
    key(
        TOPOLOGY_BOLTS_WINDOW_OUTPUT_MODE,
        KeyKind::Text,
        "append",
        "aggregating windows: `append` emits each window's results once when it closes, `update` emits changed results every watermark interval",
    ),
    key(
        TOPOLOGY_BOLTS_STATEFUL,
        KeyKind::Bool,
        "false",
        "set by `set_stateful_bolt`: the bolt keeps state and the topology takes checkpoints",
    ),
    key(
        TOPOLOGY_STATE_CHECKPOINT_INTERVAL_MS,
        KeyKind::Count,
        "1000",
        "how often spouts start a checkpoint (topologies with stateful bolts)",
    ),
    key(
        TOPOLOGY_STATE_PROVIDER,
        KeyKind::Text,
        "redb",
        "where state is kept: `redb` (files on the worker's disk) or `redis` (a shared server)",
    ),
    key(
        TOPOLOGY_STATE_REDB_DIR,
        KeyKind::Text,
        "`tempest-state` (local), the supervisor's `state/` (workers)",
        "directory of the redb state files, one per task",
    ),
    key(
        TOPOLOGY_STATE_REDIS_URL,
        KeyKind::Text,
        "redis://127.0.0.1:6379",
        "the Redis server of the redis state provider",
    ),
    key(
        TOPOLOGY_STATE_EXACTLY_ONCE,
        KeyKind::Bool,
        "false",
        "exactly-once state: barriers are aligned, spouts rewind, and after a failure every task rolls back to the last completed checkpoint",
    ),
    key(
        TOPOLOGY_STATE_ALIGNMENT_MAX_TUPLES,
        KeyKind::Count,
        "100000",
        "most tuples a task buffers while aligning barriers; beyond it that checkpoint is abandoned",
    ),
    key(
        TOPOLOGY_MULTILANG_SERIALIZER,
        KeyKind::Text,
        "org.apache.storm.multilang.JsonSerializer",
        "shell components: the multilang serializer; only Storm's JSON one (also \"json\") is accepted",
    ),
    key(
        TOPOLOGY_SUBPROCESS_TIMEOUT_SECS,
        KeyKind::Count,
        "supervisor.worker.timeout.secs, else 30",
        "shell components: seconds a subprocess may send nothing (bolts: not even a heartbeat sync; spouts: no sync) before it is killed, reported and restarted",
    ),
    key(
        TOPOLOGY_SHELL_BOLT_MAX_PENDING,
        KeyKind::Count,
        "100",
        "shell bolts: most tuples sent to the subprocess and not yet acked or failed; execute waits (handling what the subprocess sends) at the bound",
    ),
    key(
        TOPOLOGY_USERS,
        KeyKind::TextList,
        "none",
        "users besides the submitter who may operate the topology (kill, rebalance, activate, deactivate) when Nimbus has users; their role must allow operating",
    ),
    key(
        TOPOLOGY_SUBMITTER_USER,
        KeyKind::Text,
        "set by Nimbus",
        "the user who submitted the topology (its owner), from the credential of the submit; a value given with the topology is replaced",
    ),
    key(
        TOPOLOGY_WORKER_MAX_HEAP_SIZE_MB,
        KeyKind::Count,
        "the supervisor's worker_memory_limit_mb",
        "memory limit of each worker in MiB (a cgroup), on supervisors that set worker_memory_limit_mb; it may only lower that limit",
    ),
    key(
        TOPOLOGY_MIN_REPLICATION_COUNT,
        KeyKind::Count,
        "1",
        "Nimbus hosts that must hold a new topology's binary before it is scheduled (HA with etcd)",
    ),
    key(
        TOPOLOGY_MAX_REPLICATION_WAIT_TIME_SEC,
        KeyKind::Number,
        "60",
        "seconds a new topology waits for that replication before it is scheduled anyway; -1 waits forever",
    ),
];

/// The known key of this name.
pub fn known_key(name: &str) -> Option<&'static KnownKey> {
    KNOWN_KEYS.iter().find(|k| k.name == name)
}

/// The prefix of Tempest's own keys: a key under it must be a known one.
pub const TOPOLOGY_PREFIX: &str = "topology.";

/// A config key or value Tempest cannot use.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum KeyError {
    /// A `topology.` key Tempest does not know (a typo, most likely).
    #[error("unknown config key {key:?}{}", suggestion.as_ref().map(|s| format!("; did you mean {s:?}?")).unwrap_or_default())]
    Unknown {
        /// The key.
        key: String,
        /// The nearest known key, if one is near.
        suggestion: Option<String>,
    },
    /// A key of the user's without a prefix of its own.
    #[error("config key {key:?} has no prefix: keys of your own need one that is not \"topology.\" (e.g. \"myapp.{key}\")")]
    NoPrefix {
        /// The key.
        key: String,
    },
    /// A known key with a value of the wrong type.
    #[error("config key {key:?} must be {expected}, got {value}")]
    WrongType {
        /// The key.
        key: String,
        /// What it must be.
        expected: &'static str,
        /// What it is.
        value: Json,
    },
}

/// The known key nearest to `key`, if it is near: within a few edits (more for long keys), or
/// one of the two is the start of the other (`topology.tick.tuple.freq`).
fn nearest_known(key: &str) -> Option<String> {
    let near = (key.len() / 5).max(3);
    KNOWN_KEYS
        .iter()
        .map(|k| {
            let prefix = k.name.starts_with(key) || key.starts_with(k.name);
            let distance = strsim::damerau_levenshtein(key, k.name);
            (if prefix { 0 } else { distance }, k.name)
        })
        .filter(|(d, _)| *d <= near)
        .min()
        .map(|(_, name)| name.to_string())
}

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

    /// A string key, or `default` when absent.
    pub fn str_or<'a>(&'a self, key: &str, default: &'a str) -> Result<&'a str, ConfigError> {
        match self.0.get(key) {
            None | Some(Json::Null) => Ok(default),
            Some(v) => v.as_str().ok_or_else(|| ConfigError {
                key: key.into(),
                expected: "a string",
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

    /// Checks every key: `topology.` keys must be known and of the right type, other keys need
    /// a prefix of their own (`myapp.rate`). Returns every problem.
    pub fn check(&self) -> Vec<KeyError> {
        let mut problems = Vec::new();
        for (k, v) in &self.0 {
            if let Some(known) = known_key(k) {
                let ok = match known.kind {
                    KeyKind::Count => v.is_null() || v.is_u64(),
                    KeyKind::Bool => v.is_null() || v.is_boolean(),
                    KeyKind::Number => v.is_null() || v.is_number(),
                    KeyKind::Text => v.is_null() || v.is_string(),
                    KeyKind::TextList => {
                        v.is_null()
                            || v.as_array()
                                .is_some_and(|items| items.iter().all(Json::is_string))
                    }
                };
                if !ok {
                    problems.push(KeyError::WrongType {
                        key: k.clone(),
                        expected: match known.kind {
                            KeyKind::Count => "a non-negative integer",
                            KeyKind::Bool => "true or false",
                            KeyKind::Number => "a number",
                            KeyKind::Text => "a string",
                            KeyKind::TextList => "a list of strings",
                        },
                        value: v.clone(),
                    });
                }
            } else if k.starts_with(TOPOLOGY_PREFIX) {
                problems.push(KeyError::Unknown {
                    key: k.clone(),
                    suggestion: nearest_known(k),
                });
            } else if !k
                .split_once('.')
                .is_some_and(|(p, rest)| !p.is_empty() && !rest.is_empty())
            {
                // A misspelt prefix ("topolgy.workers") is a prefix of its own: say what is near.
                problems.push(KeyError::NoPrefix { key: k.clone() });
            }
        }
        problems
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
        let readme = include_str!("../../../README.md");
        for k in KNOWN_KEYS {
            let row = format!("| `{}` | {} |", k.name, k.default);
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
    fn wrong_type_is_named() {
        let mut c = Config::new();
        c.set(TOPOLOGY_MAX_SPOUT_PENDING, "lots");
        let e = c
            .u64_or(TOPOLOGY_MAX_SPOUT_PENDING, 1)
            .unwrap_err()
            .to_string();
        assert!(e.contains("topology.max.spout.pending"), "{e}");
        assert!(e.contains("lots"), "{e}");
        let problems = c.check();
        assert_eq!(problems.len(), 1);
        assert!(
            problems[0].to_string().contains("non-negative integer"),
            "{problems:?}"
        );
    }

    #[test]
    fn misspelt_keys_are_refused_with_the_nearest_known_one() {
        let mut c = Config::new();
        c.set("topology.max.spout.pendng", 10);
        c.set("topology.no.such.thing", 1);
        c.set("rate", 5);
        c.set("myapp.rate", 5);
        c.set(TOPOLOGY_DEBUG, true);
        let problems: Vec<String> = c.check().iter().map(ToString::to_string).collect();
        assert_eq!(problems.len(), 3, "{problems:?}");
        assert!(
            problems.iter().any(|p| p.contains(
                "\"topology.max.spout.pendng\"; did you mean \"topology.max.spout.pending\"?"
            )),
            "{problems:?}"
        );
        assert!(
            problems
                .iter()
                .any(|p| p == "unknown config key \"topology.no.such.thing\""),
            "{problems:?}"
        );
        assert!(
            problems
                .iter()
                .any(|p| p.contains("\"rate\" has no prefix")),
            "{problems:?}"
        );
    }
}
