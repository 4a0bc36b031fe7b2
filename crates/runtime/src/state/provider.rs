//! Which provider keeps a topology's state, and where: [`redb`](super::redb_store) files on the
//! worker's disk (one per task) or, with the `redis` feature, a shared Redis server
//! ([`redis`](super::redis_store)). Both also keep the completion marks of exactly-once mode
//! (the last checkpoints each spout task saw complete).

use super::store::{StateStore, StoreError};
use std::path::PathBuf;
use tempest_protocol::config::{
    Config, ConfigError, TOPOLOGY_STATE_PROVIDER, TOPOLOGY_STATE_REDB_DIR, TOPOLOGY_STATE_REDIS_URL,
};

/// Which provider keeps a topology's state, and where.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Provider {
    /// redb files in this directory (`<dir>/<topology>/<component>-<task>.redb`).
    Redb(PathBuf),
    /// A Redis server.
    Redis(String),
}

impl Provider {
    /// The provider `config` names; `default_dir` is the redb directory when the config has
    /// none.
    pub(crate) fn from_config(config: &Config, default_dir: PathBuf) -> Result<Self, ConfigError> {
        Ok(match config.str_or(TOPOLOGY_STATE_PROVIDER, "redb")? {
            "redis" => Provider::Redis(
                config
                    .str_or(TOPOLOGY_STATE_REDIS_URL, "redis://127.0.0.1:6379")?
                    .to_string(),
            ),
            // Anything else was refused by validation.
            _ => Provider::Redb(match config.get(TOPOLOGY_STATE_REDB_DIR) {
                Some(_) => PathBuf::from(config.str_or(TOPOLOGY_STATE_REDB_DIR, "")?),
                None => default_dir,
            }),
        })
    }

    /// The store of one task.
    pub(crate) fn open(
        &self,
        topology: &str,
        component: &str,
        task: u32,
    ) -> Result<Box<dyn StateStore>, StoreError> {
        match self {
            Provider::Redb(dir) => Ok(Box::new(super::redb_store::RedbStore::open(
                &dir.join(topology).join(format!("{component}-{task}.redb")),
            )?)),
            Provider::Redis(url) => {
                open_redis(url, &format!("tempest:{topology}:{component}:{task}"))
            }
        }
    }

    /// Records that spout task `task` saw checkpoint `id` complete (exactly-once mode);
    /// `reset` forgets what it saw before (a restore to `id` starts a new history).
    pub(crate) fn mark_complete(
        &self,
        topology: &str,
        task: u32,
        id: u64,
        reset: bool,
    ) -> Result<(), StoreError> {
        match self {
            Provider::Redb(dir) => {
                super::redb_store::mark_complete(&dir.join(topology), task, id, reset)
            }
            Provider::Redis(url) => redis_mark(url, topology, task, id, reset),
        }
    }

    /// The last checkpoint every one of `spout_tasks` saw complete (the newest in all their
    /// marks): where exactly-once mode restores to. `None`: none yet.
    pub(crate) fn completed(
        &self,
        topology: &str,
        spout_tasks: &[u32],
    ) -> Result<Option<u64>, StoreError> {
        let marks = match self {
            Provider::Redb(dir) => super::redb_store::marks(&dir.join(topology), spout_tasks)?,
            Provider::Redis(url) => redis_marks(url, topology, spout_tasks)?,
        };
        let mut marks = marks.into_iter();
        let Some(first) = marks.next() else {
            return Ok(None);
        };
        let common: Vec<u64> = marks.fold(first, |acc, m| {
            acc.into_iter().filter(|id| m.contains(id)).collect()
        });
        Ok(common.into_iter().max().filter(|&g| g > 0))
    }
}

#[cfg(feature = "redis")]
fn open_redis(url: &str, prefix: &str) -> Result<Box<dyn StateStore>, StoreError> {
    Ok(Box::new(super::redis_store::RedisStore::open(url, prefix)?))
}
#[cfg(feature = "redis")]
fn redis_mark(
    url: &str,
    topology: &str,
    task: u32,
    id: u64,
    reset: bool,
) -> Result<(), StoreError> {
    super::redis_store::mark_complete(url, topology, task, id, reset)
}
#[cfg(feature = "redis")]
fn redis_marks(url: &str, topology: &str, tasks: &[u32]) -> Result<Vec<Vec<u64>>, StoreError> {
    super::redis_store::marks(url, topology, tasks)
}

#[cfg(not(feature = "redis"))]
fn no_redis(url: &str) -> StoreError {
    StoreError::Io {
        place: url.to_string(),
        message: "this binary was built without the redis state provider (enable topology-api's `redis` feature)".into(),
    }
}
#[cfg(not(feature = "redis"))]
fn open_redis(url: &str, _prefix: &str) -> Result<Box<dyn StateStore>, StoreError> {
    Err(no_redis(url))
}
#[cfg(not(feature = "redis"))]
fn redis_mark(
    url: &str,
    _topology: &str,
    _task: u32,
    _id: u64,
    _reset: bool,
) -> Result<(), StoreError> {
    Err(no_redis(url))
}
#[cfg(not(feature = "redis"))]
fn redis_marks(url: &str, _topology: &str, _tasks: &[u32]) -> Result<Vec<Vec<u64>>, StoreError> {
    Err(no_redis(url))
}
