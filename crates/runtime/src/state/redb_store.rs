//! The `redb` state provider: one redb file per task, `<dir>/<topology>/<component>-<task>.redb`,
//! with the base, the deltas by checkpoint id and the id the base is at. Every save is one
//! durable redb transaction. Survives worker and machine restarts; not a task that moves to
//! another machine (the file stays behind).
//!
//! Exactly-once completion marks are small files, `<dir>/<topology>/completed/<task>`,
//! written whole and renamed into place.

// redb's error type is large; errors are rare and leave the hot path at once.
#![allow(clippy::result_large_err)]

use super::store::{
    decode_changes, encode_changes, parse_marks, restore_to, Changes, Restored, StateStore,
    StoreError, MARKS_KEPT,
};
use backon::{BlockingRetryable, ExponentialBuilder};
use redb::{Database, ReadableTable, TableDefinition};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

const BASE: TableDefinition<'_, &[u8], &[u8]> = TableDefinition::new("base");
const DELTAS: TableDefinition<'_, u64, &[u8]> = TableDefinition::new("deltas");
const META: TableDefinition<'_, &str, u64> = TableDefinition::new("meta");
const BASE_ID: &str = "base_checkpoint";

/// A store's contents: the base's checkpoint id, the base, the deltas in checkpoint order.
type Contents = (u64, BTreeMap<Vec<u8>, Vec<u8>>, Vec<(u64, Changes)>);

/// One task's redb file.
pub(crate) struct RedbStore {
    db: Database,
    path: PathBuf,
}

impl RedbStore {
    /// Opens (or creates) the file at `path`. A worker that hosted the task before may still
    /// be shutting down with the file open: opening is retried for a few seconds.
    pub(crate) fn open(path: &Path) -> Result<Self, StoreError> {
        let place = path.display().to_string();
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(|e| StoreError::Io {
                place: dir.display().to_string(),
                message: e.to_string(),
            })?;
        }
        let db = (|| Database::create(path))
            .retry(
                ExponentialBuilder::default()
                    .with_min_delay(Duration::from_millis(50))
                    .with_max_delay(Duration::from_secs(1))
                    .with_max_times(8),
            )
            .sleep(std::thread::sleep)
            .when(|e| matches!(e, redb::DatabaseError::DatabaseAlreadyOpen))
            .call()
            .map_err(|e| match e {
                redb::DatabaseError::DatabaseAlreadyOpen => StoreError::Io {
                    place: place.clone(),
                    message: "another process has it open".into(),
                },
                e => StoreError::Unreadable {
                    place: place.clone(),
                    message: e.to_string(),
                },
            })?;
        let store = RedbStore {
            db,
            path: path.to_path_buf(),
        };
        // Create the tables, so that reads find them.
        store.write(|tx| {
            tx.open_table(BASE)?;
            tx.open_table(DELTAS)?;
            tx.open_table(META)?;
            Ok(())
        })?;
        Ok(store)
    }

    fn place(&self) -> String {
        self.path.display().to_string()
    }

    fn unreadable(&self, e: impl std::fmt::Display) -> StoreError {
        StoreError::Unreadable {
            place: self.place(),
            message: e.to_string(),
        }
    }

    fn write(
        &self,
        f: impl FnOnce(&redb::WriteTransaction) -> Result<(), redb::Error>,
    ) -> Result<(), StoreError> {
        let io = |e: redb::Error| StoreError::Io {
            place: self.place(),
            message: e.to_string(),
        };
        let tx = self.db.begin_write().map_err(|e| io(e.into()))?;
        f(&tx).map_err(io)?;
        tx.commit().map_err(|e| io(e.into()))
    }

    /// The base, its checkpoint id and the deltas, read in one transaction.
    fn read_all(&self) -> Result<Contents, StoreError> {
        let tx = self.db.begin_read().map_err(|e| self.unreadable(e))?;
        let meta = tx.open_table(META).map_err(|e| self.unreadable(e))?;
        let base_id = meta
            .get(BASE_ID)
            .map_err(|e| self.unreadable(e))?
            .map_or(0, |v| v.value());
        let mut base = BTreeMap::new();
        let table = tx.open_table(BASE).map_err(|e| self.unreadable(e))?;
        for entry in table.iter().map_err(|e| self.unreadable(e))? {
            let (k, v) = entry.map_err(|e| self.unreadable(e))?;
            base.insert(k.value().to_vec(), v.value().to_vec());
        }
        let mut deltas = Vec::new();
        let table = tx.open_table(DELTAS).map_err(|e| self.unreadable(e))?;
        for entry in table.iter().map_err(|e| self.unreadable(e))? {
            let (id, bytes) = entry.map_err(|e| self.unreadable(e))?;
            let changes = decode_changes(bytes.value())
                .ok_or_else(|| self.unreadable(format!("checkpoint {} is damaged", id.value())))?;
            deltas.push((id.value(), changes));
        }
        Ok((base_id, base, deltas))
    }
}

impl StateStore for RedbStore {
    fn restore(&mut self, upto: Option<u64>) -> Result<Restored, StoreError> {
        let (base_id, base, deltas) = self.read_all()?;
        let (restored, discard) = restore_to(&self.place(), base_id, base, deltas, upto)?;
        if !discard.is_empty() {
            self.write(|tx| {
                let mut t = tx.open_table(DELTAS)?;
                for id in &discard {
                    t.remove(id)?;
                }
                Ok(())
            })?;
        }
        Ok(restored)
    }

    fn save(&mut self, id: u64, changes: &Changes) -> Result<(), StoreError> {
        let bytes = encode_changes(changes);
        self.write(|tx| {
            tx.open_table(DELTAS)?.insert(id, bytes.as_slice())?;
            Ok(())
        })
    }

    fn compact(&mut self, upto: u64) -> Result<(), StoreError> {
        let (base_id, _, deltas) = self.read_all()?;
        let folded: Vec<(u64, Changes)> =
            deltas.into_iter().filter(|(id, _)| *id <= upto).collect();
        let Some(&(last, _)) = folded.last() else {
            return Ok(());
        };
        if last <= base_id {
            return Ok(());
        }
        self.write(|tx| {
            let mut base = tx.open_table(BASE)?;
            let mut table = tx.open_table(DELTAS)?;
            for (id, changes) in &folded {
                for (k, v) in changes {
                    match v {
                        Some(v) => {
                            base.insert(k.as_slice(), v.as_slice())?;
                        }
                        None => {
                            base.remove(k.as_slice())?;
                        }
                    }
                }
                table.remove(id)?;
            }
            tx.open_table(META)?.insert(BASE_ID, last)?;
            Ok(())
        })
    }
}

fn marks_dir(dir: &Path) -> PathBuf {
    dir.join("completed")
}

/// Records that spout task `task` saw checkpoint `id` complete; `reset` first forgets the
/// ones it remembered (a restore starts a new history).
pub(crate) fn mark_complete(dir: &Path, task: u32, id: u64, reset: bool) -> Result<(), StoreError> {
    let mut ids = if reset {
        Vec::new()
    } else {
        marks(dir, &[task])?.pop().unwrap_or_default()
    };
    ids.push(id);
    let keep = ids.len().saturating_sub(MARKS_KEPT);
    ids.drain(..keep);
    let text: Vec<String> = ids.iter().map(u64::to_string).collect();
    let dir = marks_dir(dir);
    let io = |e: std::io::Error| StoreError::Io {
        place: dir.display().to_string(),
        message: e.to_string(),
    };
    std::fs::create_dir_all(&dir).map_err(io)?;
    let tmp = dir.join(format!(".{task}.tmp"));
    {
        use std::io::Write;
        let mut f = std::fs::File::create(&tmp).map_err(io)?;
        f.write_all(text.join(" ").as_bytes()).map_err(io)?;
        f.sync_all().map_err(io)?;
    }
    std::fs::rename(&tmp, dir.join(task.to_string())).map_err(io)
}

/// The checkpoints each of `tasks` saw complete, most recent last (empty for a task without
/// a mark).
pub(crate) fn marks(dir: &Path, tasks: &[u32]) -> Result<Vec<Vec<u64>>, StoreError> {
    let dir = marks_dir(dir);
    tasks
        .iter()
        .map(|t| {
            let path = dir.join(t.to_string());
            match std::fs::read_to_string(&path) {
                Ok(s) => parse_marks(&s).ok_or_else(|| StoreError::Unreadable {
                    place: path.display().to_string(),
                    message: format!("{s:?} is not a list of checkpoint ids"),
                }),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Vec::new()),
                Err(e) => Err(StoreError::Io {
                    place: path.display().to_string(),
                    message: e.to_string(),
                }),
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn put(k: &str, v: &str) -> (Vec<u8>, Option<Vec<u8>>) {
        (k.as_bytes().to_vec(), Some(v.as_bytes().to_vec()))
    }

    fn entries(r: &Restored) -> Vec<(String, String)> {
        r.entries
            .iter()
            .map(|(k, v)| {
                (
                    String::from_utf8_lossy(k).into_owned(),
                    String::from_utf8_lossy(v).into_owned(),
                )
            })
            .collect()
    }

    #[test]
    fn restore_applies_deltas_up_to_the_checkpoint_and_discards_later_ones() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t/count-3.redb");
        let mut s = RedbStore::open(&path).unwrap();
        assert_eq!(s.restore(None).unwrap().checkpoint, None);
        s.save(1, &vec![put("a", "1"), put("b", "1")]).unwrap();
        s.save(2, &vec![put("a", "2"), (b"b".to_vec(), None)])
            .unwrap();
        s.save(3, &vec![put("c", "3")]).unwrap();
        s.compact(1).unwrap();
        drop(s);

        let mut s = RedbStore::open(&path).unwrap();
        let r = s.restore(Some(2)).unwrap();
        assert_eq!(r.checkpoint, Some(2));
        assert_eq!(entries(&r), [("a".into(), "2".into())]);
        // Checkpoint 3 was discarded; 1 was compacted into the base.
        assert_eq!(s.restore(None).unwrap().checkpoint, Some(2));
        match s.restore(Some(3)) {
            Err(StoreError::Missing {
                wanted: 3,
                newest: 2,
                ..
            }) => {}
            other => panic!("expected Missing, got {other:?}"),
        }
        s.compact(2).unwrap();
        let r = s.restore(None).unwrap();
        assert_eq!(
            (r.checkpoint, entries(&r)),
            (Some(2), vec![("a".into(), "2".into())])
        );
    }

    #[test]
    fn a_damaged_file_is_reported_as_unreadable() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("bad.redb");
        std::fs::write(&path, b"this is not a redb file, not even close to one").unwrap();
        match RedbStore::open(&path) {
            Err(e @ StoreError::Unreadable { .. }) => {
                assert!(e.to_string().contains("bad.redb"), "{e}");
            }
            Err(e) => panic!("expected Unreadable, got {e}"),
            Ok(_) => panic!("a damaged file opened"),
        }
    }

    #[test]
    fn completion_marks_remember_recent_checkpoints_and_reset_forgets_them() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(
            marks(dir.path(), &[1, 2]).unwrap(),
            [Vec::<u64>::new(), Vec::new()]
        );
        mark_complete(dir.path(), 1, 7, false).unwrap();
        mark_complete(dir.path(), 1, 8, false).unwrap();
        assert_eq!(
            marks(dir.path(), &[1, 2]).unwrap(),
            [vec![7, 8], Vec::new()]
        );
        for id in 9..100 {
            mark_complete(dir.path(), 1, id, false).unwrap();
        }
        let kept = marks(dir.path(), &[1]).unwrap().pop().unwrap();
        assert_eq!(kept, (68..100).collect::<Vec<u64>>());
        mark_complete(dir.path(), 1, 5, true).unwrap();
        assert_eq!(marks(dir.path(), &[1]).unwrap(), [vec![5]]);
    }
}
