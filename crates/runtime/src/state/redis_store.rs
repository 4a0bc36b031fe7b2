//! The `redis` state provider: per task, hashes `<prefix>:base` (key -> value) and
//! `<prefix>:deltas` (checkpoint id -> that checkpoint's changes) and the string `<prefix>:meta`
//! (the checkpoint the base is at), where the prefix is `tempest:<topology>:<component>:<task>`.
//! Compaction is one MULTI/EXEC transaction. Survives any worker moving to any machine, as long
//! as the Redis server keeps its data (configure its persistence for that).
//!
//! Exactly-once completion marks: the hash `tempest:<topology>:completed` (spout task -> id).

use super::store::{
    decode_changes, encode_changes, restore_to, Changes, Restored, StateStore, StoreError,
};
use std::collections::BTreeMap;
use std::time::Duration;

const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

fn connect(url: &str) -> Result<redis::Connection, StoreError> {
    let io = |e: redis::RedisError| StoreError::Io {
        place: url.to_string(),
        message: e.to_string(),
    };
    let client = redis::Client::open(url).map_err(io)?;
    client
        .get_connection_with_timeout(CONNECT_TIMEOUT)
        .map_err(io)
}

/// One task's keys on a Redis server.
pub(crate) struct RedisStore {
    con: redis::Connection,
    url: String,
    prefix: String,
}

impl RedisStore {
    /// Connects to `url`, for the keys under `prefix`.
    pub(crate) fn open(url: &str, prefix: &str) -> Result<Self, StoreError> {
        Ok(RedisStore {
            con: connect(url)?,
            url: url.to_string(),
            prefix: prefix.to_string(),
        })
    }

    fn key(&self, part: &str) -> String {
        format!("{}:{part}", self.prefix)
    }

    fn io(&self, e: redis::RedisError) -> StoreError {
        StoreError::Io {
            place: format!("{} ({})", self.url, self.prefix),
            message: e.to_string(),
        }
    }

    fn unreadable(&self, message: String) -> StoreError {
        StoreError::Unreadable {
            place: format!("{} ({})", self.url, self.prefix),
            message,
        }
    }

    fn base_id(&mut self) -> Result<u64, StoreError> {
        let v: Option<String> = redis::cmd("GET")
            .arg(self.key("meta"))
            .query(&mut self.con)
            .map_err(|e| self.io(e))?;
        match v {
            None => Ok(0),
            Some(s) => s
                .parse()
                .map_err(|_| self.unreadable(format!("meta is {s:?}, not a checkpoint id"))),
        }
    }

    /// The deltas, in checkpoint order.
    fn deltas(&mut self) -> Result<Vec<(u64, Changes)>, StoreError> {
        let raw: Vec<(String, Vec<u8>)> = redis::cmd("HGETALL")
            .arg(self.key("deltas"))
            .query(&mut self.con)
            .map_err(|e| self.io(e))?;
        let mut deltas = Vec::with_capacity(raw.len());
        for (id, bytes) in raw {
            let id: u64 = id
                .parse()
                .map_err(|_| self.unreadable(format!("delta {id:?} is not a checkpoint id")))?;
            let changes = decode_changes(&bytes)
                .ok_or_else(|| self.unreadable(format!("checkpoint {id} is damaged")))?;
            deltas.push((id, changes));
        }
        deltas.sort_by_key(|(id, _)| *id);
        Ok(deltas)
    }
}

impl StateStore for RedisStore {
    fn restore(&mut self, upto: Option<u64>) -> Result<Restored, StoreError> {
        let base_id = self.base_id()?;
        let base: Vec<(Vec<u8>, Vec<u8>)> = redis::cmd("HGETALL")
            .arg(self.key("base"))
            .query(&mut self.con)
            .map_err(|e| self.io(e))?;
        let deltas = self.deltas()?;
        let place = format!("{} ({})", self.url, self.prefix);
        let (restored, discard) =
            restore_to(&place, base_id, base.into_iter().collect(), deltas, upto)?;
        if !discard.is_empty() {
            redis::cmd("HDEL")
                .arg(self.key("deltas"))
                .arg(discard)
                .query::<()>(&mut self.con)
                .map_err(|e| self.io(e))?;
        }
        Ok(restored)
    }

    fn save(&mut self, id: u64, changes: &Changes) -> Result<(), StoreError> {
        redis::cmd("HSET")
            .arg(self.key("deltas"))
            .arg(id)
            .arg(encode_changes(changes))
            .query::<()>(&mut self.con)
            .map_err(|e| self.io(e))
    }

    fn compact(&mut self, upto: u64) -> Result<(), StoreError> {
        let base_id = self.base_id()?;
        let folded: Vec<(u64, Changes)> = self
            .deltas()?
            .into_iter()
            .filter(|(id, _)| *id <= upto)
            .collect();
        let Some(&(last, _)) = folded.last() else {
            return Ok(());
        };
        if last <= base_id {
            return Ok(());
        }
        let mut merged: BTreeMap<Vec<u8>, Option<Vec<u8>>> = BTreeMap::new();
        for (_, changes) in &folded {
            for (k, v) in changes {
                merged.insert(k.clone(), v.clone());
            }
        }
        let mut pipe = redis::pipe();
        pipe.atomic();
        for (k, v) in merged {
            match v {
                Some(v) => pipe
                    .cmd("HSET")
                    .arg(self.key("base"))
                    .arg(k)
                    .arg(v)
                    .ignore(),
                None => pipe.cmd("HDEL").arg(self.key("base")).arg(k).ignore(),
            };
        }
        pipe.cmd("HDEL")
            .arg(self.key("deltas"))
            .arg(folded.iter().map(|(id, _)| *id).collect::<Vec<_>>())
            .ignore();
        pipe.cmd("SET").arg(self.key("meta")).arg(last).ignore();
        pipe.query::<()>(&mut self.con).map_err(|e| self.io(e))
    }
}

fn marks_key(topology: &str) -> String {
    format!("tempest:{topology}:completed")
}

/// Records that spout task `task` saw checkpoint `id` complete (`reset`: forgetting the
/// ones remembered).
pub(crate) fn mark_complete(
    url: &str,
    topology: &str,
    task: u32,
    id: u64,
    reset: bool,
) -> Result<(), StoreError> {
    let mut ids = if reset {
        Vec::new()
    } else {
        marks(url, topology, &[task])?.pop().unwrap_or_default()
    };
    ids.push(id);
    let keep = ids.len().saturating_sub(super::store::MARKS_KEPT);
    ids.drain(..keep);
    let text: Vec<String> = ids.iter().map(u64::to_string).collect();
    let mut con = connect(url)?;
    redis::cmd("HSET")
        .arg(marks_key(topology))
        .arg(task)
        .arg(text.join(" "))
        .query::<()>(&mut con)
        .map_err(|e| StoreError::Io {
            place: url.to_string(),
            message: e.to_string(),
        })
}

/// The checkpoints each of `tasks` saw complete (empty for a task without a mark).
pub(crate) fn marks(url: &str, topology: &str, tasks: &[u32]) -> Result<Vec<Vec<u64>>, StoreError> {
    if tasks.is_empty() {
        return Ok(Vec::new());
    }
    let mut con = connect(url)?;
    let raw: Vec<Option<String>> = redis::cmd("HMGET")
        .arg(marks_key(topology))
        .arg(tasks)
        .query(&mut con)
        .map_err(|e| StoreError::Io {
            place: url.to_string(),
            message: e.to_string(),
        })?;
    raw.into_iter()
        .map(|m| match m {
            None => Ok(Vec::new()),
            Some(s) => super::store::parse_marks(&s).ok_or_else(|| StoreError::Unreadable {
                place: format!("{url} ({})", marks_key(topology)),
                message: format!("{s:?} is not a list of checkpoint ids"),
            }),
        })
        .collect()
}
