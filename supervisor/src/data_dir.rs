//! The supervisor's data directory: where each file lives, the supervisor id kept in it, the
//! lock that keeps a second supervisor off it, and atomic file writes.
//!
//! ```text
//! <data_dir>/supervisor-id                  the id, generated once
//! <data_dir>/supervisor.lock                held (flock) while a supervisor runs
//! <data_dir>/artifacts/<sha256>             cached topology binaries (mode 755)
//! <data_dir>/workers/<port>/assignment.json the worker's control::Assignment
//! <data_dir>/workers/<port>/worker.json     {pid, topology, version, port, artifact}
//! <data_dir>/workers/<port>/home/           the worker's own dir when it runs as worker_user
//! <data_dir>/state/                         the workers' redb state (worker_user's, mode 700)
//! <data_dir>/logs/<topology>-<port>.log     the worker's stdout and stderr
//! ```

use crate::config::check_supervisor_id;
use nix::fcntl::{Flock, FlockArg};
use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};

/// Why the data directory cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum DataDirError {
    /// A file or directory could not be created, read or written.
    #[error("{path}: {reason}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The error.
        reason: String,
    },
    /// Another supervisor holds the lock.
    #[error(
        "data dir {0} is in use by another supervisor (it holds supervisor.lock); \
         stop it or give this one another --data-dir"
    )]
    Locked(PathBuf),
    /// The id file holds something that is not an id.
    #[error("{path}: {reason}; delete the file to get a new id")]
    BadId {
        /// The id file.
        path: PathBuf,
        /// What is wrong with its content.
        reason: String,
    },
}

fn io_err(path: &Path) -> impl Fn(std::io::Error) -> DataDirError + '_ {
    move |e| DataDirError::Io {
        path: path.to_path_buf(),
        reason: e.to_string(),
    }
}

/// The paths in one supervisor data directory (absolute once opened).
#[derive(Debug, Clone)]
pub struct DataDir {
    root: PathBuf,
}

/// The data directory's lock; released when dropped.
#[derive(Debug)]
pub struct DataDirLock {
    _lock: Flock<File>,
}

impl DataDir {
    /// Creates `root` if needed and makes its path absolute (workers run in their own
    /// directory, so every path handed to them must be absolute).
    pub fn open(root: &Path) -> Result<Self, DataDirError> {
        std::fs::create_dir_all(root).map_err(io_err(root))?;
        let root = std::fs::canonicalize(root).map_err(io_err(root))?;
        let dir = DataDir { root };
        for sub in [dir.artifacts_dir(), dir.workers_dir(), dir.logs_dir()] {
            std::fs::create_dir_all(&sub).map_err(io_err(&sub))?;
        }
        Ok(dir)
    }

    /// Takes the data directory's lock, or fails if another supervisor holds it.
    pub fn lock(&self) -> Result<DataDirLock, DataDirError> {
        let path = self.root.join("supervisor.lock");
        let file = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .map_err(io_err(&path))?;
        match Flock::lock(file, FlockArg::LockExclusiveNonblock) {
            Ok(lock) => Ok(DataDirLock { _lock: lock }),
            Err((_, nix::errno::Errno::EWOULDBLOCK)) => {
                Err(DataDirError::Locked(self.root.clone()))
            }
            Err((_, e)) => Err(DataDirError::Io {
                path,
                reason: e.to_string(),
            }),
        }
    }

    /// The directory itself.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// `<root>/artifacts`.
    pub fn artifacts_dir(&self) -> PathBuf {
        self.root.join("artifacts")
    }

    /// `<root>/workers`.
    pub fn workers_dir(&self) -> PathBuf {
        self.root.join("workers")
    }

    /// `<root>/workers/<port>`.
    pub fn worker_dir(&self, port: u16) -> PathBuf {
        self.workers_dir().join(port.to_string())
    }

    /// `<root>/workers/<port>/home`: a worker's own directory (its working directory and
    /// `HOME`) when it runs as `worker_user`.
    pub fn worker_home(&self, port: u16) -> PathBuf {
        self.worker_dir(port).join("home")
    }

    /// `<root>/workers/<port>/assignment.json`.
    pub fn assignment_file(&self, port: u16) -> PathBuf {
        self.worker_dir(port).join("assignment.json")
    }

    /// `<root>/workers/<port>/worker.json`.
    pub fn worker_record_file(&self, port: u16) -> PathBuf {
        self.worker_dir(port).join("worker.json")
    }

    /// `<root>/logs`.
    pub fn logs_dir(&self) -> PathBuf {
        self.root.join("logs")
    }

    /// `<root>/logs/<topology>-<port>.log`; `topology` must have passed
    /// `client::check_topology_name`.
    pub fn log_file(&self, topology: &str, port: u16) -> PathBuf {
        self.logs_dir().join(format!("{topology}-{port}.log"))
    }

    /// The supervisor's id: `fixed` if given, else the one kept in `<root>/supervisor-id`,
    /// generated (host name and random suffix) and written on first use.
    pub fn supervisor_id(&self, fixed: Option<&str>) -> Result<String, DataDirError> {
        if let Some(id) = fixed {
            return Ok(id.to_string());
        }
        let path = self.root.join("supervisor-id");
        match std::fs::read_to_string(&path) {
            Ok(text) => {
                let id = text.trim().to_string();
                check_supervisor_id(&id).map_err(|reason| DataDirError::BadId {
                    path: path.clone(),
                    reason,
                })?;
                Ok(id)
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let id = new_supervisor_id();
                write_atomically(&path, format!("{id}\n").as_bytes())?;
                Ok(id)
            }
            Err(e) => Err(io_err(&path)(e)),
        }
    }
}

/// A fresh id: the host name (reduced to id characters) and 16 random hex digits.
fn new_supervisor_id() -> String {
    let host: String = hostname::get()
        .map(|h| h.to_string_lossy().into_owned())
        .unwrap_or_default()
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))
        .take(64)
        .collect();
    let host = if host.is_empty() {
        "supervisor".into()
    } else {
        host
    };
    format!("{host}-{:016x}", fastrand::u64(..))
}

/// Writes `bytes` to `path` through a temporary file in the same directory and a rename, so
/// readers see the old content or the new, never a part.
pub fn write_atomically(path: &Path, bytes: &[u8]) -> Result<(), DataDirError> {
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".tmp");
    let tmp = PathBuf::from(tmp);
    let result = (|| {
        let mut f = File::create(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
        std::fs::rename(&tmp, path)
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result.map_err(io_err(path))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_id_is_generated_once_and_kept() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = DataDir::open(&tmp.path().join("sup")).unwrap();
        let id = dir.supervisor_id(None).unwrap();
        check_supervisor_id(&id).unwrap();
        assert_eq!(dir.supervisor_id(None).unwrap(), id);
        let again = DataDir::open(&tmp.path().join("sup")).unwrap();
        assert_eq!(again.supervisor_id(None).unwrap(), id);
        assert_eq!(again.supervisor_id(Some("fixed")).unwrap(), "fixed");
        assert!(dir.root().is_absolute());
        assert!(dir.artifacts_dir().is_dir() && dir.logs_dir().is_dir());
    }

    #[test]
    fn a_garbled_id_file_is_reported() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = DataDir::open(tmp.path()).unwrap();
        std::fs::write(tmp.path().join("supervisor-id"), "a b/c").unwrap();
        let e = dir.supervisor_id(None).unwrap_err().to_string();
        assert!(e.contains("supervisor-id") && e.contains("a b/c"), "{e}");
    }

    #[test]
    fn a_second_supervisor_cannot_take_the_same_data_dir() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = DataDir::open(tmp.path()).unwrap();
        let held = dir.lock().unwrap();
        let e = dir.lock().unwrap_err();
        assert!(matches!(e, DataDirError::Locked(_)), "{e}");
        drop(held);
        dir.lock().unwrap();
    }

    #[test]
    fn atomic_writes_replace_the_content() {
        let tmp = tempfile::tempdir().unwrap();
        let p = tmp.path().join("f.json");
        write_atomically(&p, b"one").unwrap();
        write_atomically(&p, b"two").unwrap();
        assert_eq!(std::fs::read(&p).unwrap(), b"two");
        assert!(!tmp.path().join("f.json.tmp").exists());
    }
}
