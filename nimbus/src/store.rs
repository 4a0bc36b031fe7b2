//! The durable state and the seam it is kept behind: topologies and assignments (JSON values
//! keyed by topology name) and the next assignment version, written by one [`ClusterStore`].
//! The default is the [`EmbeddedStore`] (a redb file under the data dir); with the `etcd`
//! feature, `EtcdStore` keeps the same values in etcd and fences every write on the leader key
//! (`docs/design/nimbus-ha.md`). Each change is one transaction, committed before Nimbus answers.

mod embedded;

pub use crate::state::{Deadline, DeadlineAction, TopologyRecord};
pub use embedded::EmbeddedStore;

use std::collections::BTreeMap;
use std::path::PathBuf;
use tempest_protocol::control::Assignment;

/// The state store failed.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// redb failed.
    #[error("state store {path}: {source}")]
    Db {
        /// The database file.
        path: PathBuf,
        /// What redb said.
        source: Box<redb::Error>,
    },
    /// A stored value is not a readable record.
    #[error("state store {store}: the {table} entry {key:?} is unreadable ({reason}); {hint}")]
    Corrupt {
        /// The store (file or etcd prefix).
        store: String,
        /// `topologies`, `assignments` or `meta`.
        table: &'static str,
        /// The key.
        key: String,
        /// Why it cannot be read.
        reason: String,
        /// What to do.
        hint: &'static str,
    },
    /// A value could not be encoded.
    #[error("state store {store}: cannot encode {key:?}: {reason}")]
    Encode {
        /// The store.
        store: String,
        /// The key.
        key: String,
        /// Why.
        reason: String,
    },
    /// The commit task did not finish.
    #[error("state store {store}: the write was interrupted: {reason}")]
    Interrupted {
        /// The store.
        store: String,
        /// Why.
        reason: String,
    },
    /// etcd could not be reached or failed; a write may or may not have happened.
    #[error("state store etcd ({endpoints}): {what}: {reason}")]
    Etcd {
        /// The endpoints.
        endpoints: String,
        /// What was being done.
        what: &'static str,
        /// The error.
        reason: String,
    },
    /// This Nimbus is not (or no longer) the leader: the write was refused (fenced) and
    /// nothing was written.
    #[error("this Nimbus is not the leader; nothing was written{}", leader_hint(.leader))]
    NotLeader {
        /// The leader's URL, if known.
        leader: Option<String>,
    },
    /// One commit would pass etcd's limits on a transaction.
    #[error("state store etcd: one change of {ops} keys and {bytes} bytes is more than etcd takes in a transaction ({max_ops} keys, {max_bytes} bytes); nothing was written")]
    TooLarge {
        /// Keys in the change.
        ops: usize,
        /// Bytes of keys and values.
        bytes: usize,
        /// The key limit.
        max_ops: usize,
        /// The byte limit.
        max_bytes: usize,
    },
}

fn leader_hint(leader: &Option<String>) -> String {
    match leader {
        Some(url) => format!("; the leader is {url}"),
        None => String::new(),
    }
}

/// Where Nimbus keeps its durable state: one implementation per store kind, chosen by the
/// `store` key of the config.
#[async_trait::async_trait]
pub trait ClusterStore: Send + Sync + std::fmt::Debug {
    /// Reads everything (with `next_version` above every stored version).
    async fn load(&self) -> Result<Durable, StoreError>;
    /// Writes `changes` in one transaction and hands them back; with etcd only while this
    /// Nimbus leads (else [`StoreError::NotLeader`] and nothing is written).
    async fn commit(&self, changes: Changes) -> Result<Changes, StoreError>;
    /// The store, for logs.
    fn describe(&self) -> String;
    /// The most topologies one scheduler round may change (so a commit stays within the
    /// store's transaction limits).
    fn max_topologies_per_commit(&self) -> usize {
        usize::MAX
    }
    /// How many Nimbus hosts hold artifact `sha`. The embedded store has one Nimbus, which
    /// holds every artifact a topology was submitted with.
    async fn replicas(&self, _sha: &str) -> Result<usize, StoreError> {
        Ok(1)
    }
}

/// What the store holds, as it is in memory.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Durable {
    /// The live topologies, by name.
    pub topologies: BTreeMap<String, TopologyRecord>,
    /// Their assignments, by topology name.
    pub assignments: BTreeMap<String, Assignment>,
    /// The version the next new assignment gets.
    pub next_version: u64,
}

/// Changes to commit in one transaction; a `None` value removes the key.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Changes {
    /// Topologies to write or remove.
    pub topologies: BTreeMap<String, Option<TopologyRecord>>,
    /// Assignments to write or remove.
    pub assignments: BTreeMap<String, Option<Assignment>>,
    /// The new next version.
    pub next_version: Option<u64>,
}

impl Changes {
    /// Whether there is nothing to write.
    pub fn is_empty(&self) -> bool {
        self.topologies.is_empty() && self.assignments.is_empty() && self.next_version.is_none()
    }

    /// Writes a topology.
    pub fn put_topology(&mut self, record: TopologyRecord) {
        self.topologies.insert(record.name.clone(), Some(record));
    }

    /// Writes an assignment.
    pub fn put_assignment(&mut self, assignment: Assignment) {
        self.assignments
            .insert(assignment.topology.clone(), Some(assignment));
    }

    /// Forgets a topology and its assignment.
    pub fn remove(&mut self, name: &str) {
        self.topologies.insert(name.to_string(), None);
        self.assignments.insert(name.to_string(), None);
    }
}

impl Durable {
    /// Applies committed changes.
    pub fn apply(&mut self, changes: Changes) {
        for (name, record) in changes.topologies {
            match record {
                Some(r) => self.topologies.insert(name, r),
                None => self.topologies.remove(&name),
            };
        }
        for (name, assignment) in changes.assignments {
            match assignment {
                Some(a) => self.assignments.insert(name, a),
                None => self.assignments.remove(&name),
            };
        }
        if let Some(v) = changes.next_version {
            self.next_version = v;
        }
    }

    /// Never hands out a version that is already in use, whatever the counter says (at least 1).
    pub(crate) fn fix_next_version(&mut self) {
        let highest = self.assignments.values().map(|a| a.version).max();
        self.next_version = self
            .next_version
            .max(highest.map_or(1, |v| v.saturating_add(1)));
    }
}
