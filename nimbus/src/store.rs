//! The durable state: topologies and assignments as JSON values keyed by topology name, and the
//! next assignment version, in an embedded redb database at `<data_dir>/nimbus.redb`. Each
//! change is one transaction, committed (fsynced) before Nimbus answers.

use crate::state::TopologyRecord;
use redb::{Database, ReadableTable, TableDefinition};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use tempest_protocol::control::Assignment;

const TOPOLOGIES: TableDefinition<'static, &str, &[u8]> = TableDefinition::new("topologies");
const ASSIGNMENTS: TableDefinition<'static, &str, &[u8]> = TableDefinition::new("assignments");
const META: TableDefinition<'static, &str, u64> = TableDefinition::new("meta");
/// Key in `META` of the next assignment version. Versions are unique across every topology
/// and incarnation, so a worker of a killed topology never matches a new one of the same name.
const NEXT_VERSION: &str = "next_version";

/// The state store failed.
#[derive(Debug, thiserror::Error)]
pub(crate) enum StoreError {
    /// redb failed.
    #[error("state store {path}: {source}")]
    Db {
        path: PathBuf,
        source: Box<redb::Error>,
    },
    /// A stored value is not a readable record.
    #[error("state store {path}: the {table} entry {key:?} is unreadable ({reason}); move the file away to start empty")]
    Corrupt {
        path: PathBuf,
        table: &'static str,
        key: String,
        reason: String,
    },
    /// A value could not be encoded.
    #[error("state store {path}: cannot encode {key:?}: {reason}")]
    Encode {
        path: PathBuf,
        key: String,
        reason: String,
    },
    /// The commit task did not finish.
    #[error("state store {path}: the write was interrupted: {reason}")]
    Interrupted { path: PathBuf, reason: String },
}

/// What the store holds, as it is in memory.
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct Durable {
    pub(crate) topologies: BTreeMap<String, TopologyRecord>,
    pub(crate) assignments: BTreeMap<String, Assignment>,
    /// The version the next new assignment gets.
    pub(crate) next_version: u64,
}

/// Changes to commit in one transaction; a `None` value removes the key.
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct Changes {
    pub(crate) topologies: BTreeMap<String, Option<TopologyRecord>>,
    pub(crate) assignments: BTreeMap<String, Option<Assignment>>,
    pub(crate) next_version: Option<u64>,
}

impl Changes {
    pub(crate) fn is_empty(&self) -> bool {
        self.topologies.is_empty() && self.assignments.is_empty() && self.next_version.is_none()
    }

    pub(crate) fn put_topology(&mut self, record: TopologyRecord) {
        self.topologies.insert(record.name.clone(), Some(record));
    }

    pub(crate) fn put_assignment(&mut self, assignment: Assignment) {
        self.assignments
            .insert(assignment.topology.clone(), Some(assignment));
    }

    /// Forgets a topology and its assignment.
    pub(crate) fn remove(&mut self, name: &str) {
        self.topologies.insert(name.to_string(), None);
        self.assignments.insert(name.to_string(), None);
    }
}

impl Durable {
    /// Applies committed changes.
    pub(crate) fn apply(&mut self, changes: Changes) {
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
}

/// The open database.
pub(crate) struct Store {
    db: Database,
    path: PathBuf,
}

impl Store {
    /// Opens (or creates) the database at `path`.
    pub(crate) fn open(path: &Path) -> Result<Self, StoreError> {
        let db = Database::create(path).db(path)?;
        let tx = db.begin_write().db(path)?;
        tx.open_table(TOPOLOGIES).db(path)?;
        tx.open_table(ASSIGNMENTS).db(path)?;
        tx.open_table(META).db(path)?;
        tx.commit().db(path)?;
        Ok(Store {
            db,
            path: path.to_path_buf(),
        })
    }

    /// The database file.
    pub(crate) fn path(&self) -> &Path {
        &self.path
    }

    /// Reads everything.
    pub(crate) fn load(&self) -> Result<Durable, StoreError> {
        let tx = self.db.begin_read().db(&self.path)?;
        let mut durable = Durable {
            next_version: 1,
            ..Durable::default()
        };
        for entry in tx
            .open_table(TOPOLOGIES)
            .db(&self.path)?
            .iter()
            .db(&self.path)?
        {
            let (k, v) = entry.db(&self.path)?;
            let record: TopologyRecord = self.decode("topologies", k.value(), v.value())?;
            durable.topologies.insert(k.value().to_string(), record);
        }
        for entry in tx
            .open_table(ASSIGNMENTS)
            .db(&self.path)?
            .iter()
            .db(&self.path)?
        {
            let (k, v) = entry.db(&self.path)?;
            let a: Assignment = self.decode("assignments", k.value(), v.value())?;
            durable.assignments.insert(k.value().to_string(), a);
        }
        let meta = tx.open_table(META).db(&self.path)?;
        if let Some(v) = meta.get(NEXT_VERSION).db(&self.path)? {
            durable.next_version = v.value();
        }
        // Never hand out a version that is already in use, whatever the counter says.
        let highest = durable.assignments.values().map(|a| a.version).max();
        durable.next_version = durable
            .next_version
            .max(highest.map_or(1, |v| v.saturating_add(1)));
        Ok(durable)
    }

    fn decode<T: serde::de::DeserializeOwned>(
        &self,
        table: &'static str,
        key: &str,
        bytes: &[u8],
    ) -> Result<T, StoreError> {
        serde_json::from_slice(bytes).map_err(|e| StoreError::Corrupt {
            path: self.path.clone(),
            table,
            key: key.to_string(),
            reason: e.to_string(),
        })
    }

    fn encode<T: serde::Serialize>(&self, key: &str, value: &T) -> Result<Vec<u8>, StoreError> {
        serde_json::to_vec(value).map_err(|e| StoreError::Encode {
            path: self.path.clone(),
            key: key.to_string(),
            reason: e.to_string(),
        })
    }

    /// Writes `changes` in one durable transaction.
    pub(crate) fn commit(&self, changes: &Changes) -> Result<(), StoreError> {
        let tx = self.db.begin_write().db(&self.path)?;
        {
            let mut topologies = tx.open_table(TOPOLOGIES).db(&self.path)?;
            for (name, record) in &changes.topologies {
                match record {
                    Some(r) => {
                        let json = self.encode(name, r)?;
                        topologies
                            .insert(name.as_str(), json.as_slice())
                            .db(&self.path)?;
                    }
                    None => {
                        topologies.remove(name.as_str()).db(&self.path)?;
                    }
                }
            }
            let mut assignments = tx.open_table(ASSIGNMENTS).db(&self.path)?;
            for (name, assignment) in &changes.assignments {
                match assignment {
                    Some(a) => {
                        let json = self.encode(name, a)?;
                        assignments
                            .insert(name.as_str(), json.as_slice())
                            .db(&self.path)?;
                    }
                    None => {
                        assignments.remove(name.as_str()).db(&self.path)?;
                    }
                }
            }
            if let Some(v) = changes.next_version {
                let mut meta = tx.open_table(META).db(&self.path)?;
                meta.insert(NEXT_VERSION, v).db(&self.path)?;
            }
        }
        tx.commit().db(&self.path)?;
        Ok(())
    }
}

/// Names the database in redb errors.
trait OrStoreError<T> {
    fn db(self, path: &Path) -> Result<T, StoreError>;
}

impl<T, E: Into<redb::Error>> OrStoreError<T> for Result<T, E> {
    fn db(self, path: &Path) -> Result<T, StoreError> {
        self.map_err(|e| StoreError::Db {
            path: path.to_path_buf(),
            source: Box::new(e.into()),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state::tests::record;

    #[test]
    fn changes_survive_reopening() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("nimbus.redb");
        let rec = record("wc");
        let assignment = Assignment {
            topology: "wc".into(),
            version: 7,
            artifact: rec.artifact.clone(),
            spec: rec.spec.clone(),
            workers: Vec::new(),
        };
        {
            let store = Store::open(&path).unwrap();
            let mut c = Changes::default();
            c.put_topology(rec.clone());
            c.put_topology(record("gone"));
            c.put_assignment(assignment.clone());
            c.next_version = Some(8);
            store.commit(&c).unwrap();
            let mut c = Changes::default();
            c.remove("gone");
            store.commit(&c).unwrap();
        }
        let store = Store::open(&path).unwrap();
        let d = store.load().unwrap();
        assert_eq!(d.topologies.len(), 1);
        assert_eq!(d.topologies["wc"], rec);
        assert_eq!(d.assignments["wc"], assignment);
        assert_eq!(d.next_version, 8);
    }

    #[test]
    fn next_version_is_above_every_stored_version() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("n.redb")).unwrap();
        let rec = record("wc");
        let mut c = Changes::default();
        c.put_assignment(Assignment {
            topology: "wc".into(),
            version: 41,
            artifact: rec.artifact.clone(),
            spec: rec.spec,
            workers: Vec::new(),
        });
        store.commit(&c).unwrap();
        assert_eq!(store.load().unwrap().next_version, 42);
    }
}
