//! The embedded store (the default): the durable state in a redb database at
//! `<data_dir>/nimbus.redb`. Each commit is one fsynced redb transaction, run on the blocking
//! pool.

use super::{Changes, ClusterStore, Durable, StoreError};
use crate::state::TopologyRecord;
use redb::{Database, ReadableTable, TableDefinition};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use tempest_protocol::control::Assignment;

const TOPOLOGIES: TableDefinition<'static, &str, &[u8]> = TableDefinition::new("topologies");
const ASSIGNMENTS: TableDefinition<'static, &str, &[u8]> = TableDefinition::new("assignments");
const META: TableDefinition<'static, &str, u64> = TableDefinition::new("meta");
/// Key in `META` of the next assignment version. Versions are unique across every topology
/// and incarnation, so a worker of a killed topology never matches a new one of the same name.
const NEXT_VERSION: &str = "next_version";

/// The redb database.
#[derive(Debug, Clone)]
pub struct EmbeddedStore {
    inner: Arc<Db>,
}

#[derive(Debug)]
struct Db {
    db: Database,
    path: PathBuf,
}

#[async_trait::async_trait]
impl ClusterStore for EmbeddedStore {
    async fn load(&self) -> Result<Durable, StoreError> {
        let inner = self.inner.clone();
        tokio::task::spawn_blocking(move || inner.load())
            .await
            .map_err(|e| self.interrupted(e))?
    }

    async fn commit(&self, changes: Changes) -> Result<Changes, StoreError> {
        let inner = self.inner.clone();
        tokio::task::spawn_blocking(move || inner.commit(&changes).map(|()| changes))
            .await
            .map_err(|e| self.interrupted(e))?
    }

    fn describe(&self) -> String {
        self.inner.path.display().to_string()
    }
}

impl EmbeddedStore {
    /// Opens (or creates) the database at `path`.
    pub fn open(path: &Path) -> Result<Self, StoreError> {
        let db = Database::create(path).db(path)?;
        let tx = db.begin_write().db(path)?;
        tx.open_table(TOPOLOGIES).db(path)?;
        tx.open_table(ASSIGNMENTS).db(path)?;
        tx.open_table(META).db(path)?;
        tx.commit().db(path)?;
        Ok(EmbeddedStore {
            inner: Arc::new(Db {
                db,
                path: path.to_path_buf(),
            }),
        })
    }

    fn interrupted(&self, e: tokio::task::JoinError) -> StoreError {
        StoreError::Interrupted {
            store: self.describe(),
            reason: e.to_string(),
        }
    }
}

impl Db {
    /// Reads everything.
    fn load(&self) -> Result<Durable, StoreError> {
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
        durable.fix_next_version();
        Ok(durable)
    }

    fn decode<T: serde::de::DeserializeOwned>(
        &self,
        table: &'static str,
        key: &str,
        bytes: &[u8],
    ) -> Result<T, StoreError> {
        serde_json::from_slice(bytes).map_err(|e| StoreError::Corrupt {
            store: self.path.display().to_string(),
            table,
            key: key.to_string(),
            reason: e.to_string(),
            hint: "move the file away to start empty",
        })
    }

    fn encode<T: serde::Serialize>(&self, key: &str, value: &T) -> Result<Vec<u8>, StoreError> {
        serde_json::to_vec(value).map_err(|e| StoreError::Encode {
            store: self.path.display().to_string(),
            key: key.to_string(),
            reason: e.to_string(),
        })
    }

    /// Writes `changes` in one durable transaction.
    fn commit(&self, changes: &Changes) -> Result<(), StoreError> {
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
    use crate::store::Changes;

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
            let store = EmbeddedStore::open(&path).unwrap();
            let mut c = Changes::default();
            c.put_topology(rec.clone());
            c.put_topology(record("gone"));
            c.put_assignment(assignment.clone());
            c.next_version = Some(8);
            store.inner.commit(&c).unwrap();
            let mut c = Changes::default();
            c.remove("gone");
            store.inner.commit(&c).unwrap();
        }
        let store = EmbeddedStore::open(&path).unwrap();
        let d = store.inner.load().unwrap();
        assert_eq!(d.topologies.len(), 1);
        assert_eq!(d.topologies["wc"], rec);
        assert_eq!(d.assignments["wc"], assignment);
        assert_eq!(d.next_version, 8);
    }

    #[test]
    fn next_version_is_above_every_stored_version() {
        let dir = tempfile::tempdir().unwrap();
        let store = EmbeddedStore::open(&dir.path().join("n.redb")).unwrap();
        let rec = record("wc");
        let mut c = Changes::default();
        c.put_assignment(Assignment {
            topology: "wc".into(),
            version: 41,
            artifact: rec.artifact.clone(),
            spec: rec.spec,
            workers: Vec::new(),
        });
        store.inner.commit(&c).unwrap();
        assert_eq!(store.inner.load().unwrap().next_version, 42);
    }
}
