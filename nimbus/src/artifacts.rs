//! The artifact store: topology binaries as files `<data_dir>/artifacts/<sha256>`. An upload is
//! streamed to a temp file in that directory while it is hashed and counted, refused as soon
//! as it passes the size limit, fsynced, and renamed into place only if its hash matches; the
//! temp file is removed on any error, and no binary is ever held in memory.

use axum::body::Body;
use futures::StreamExt;
use sha2::{Digest, Sha256};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use tempest_protocol::names::check_sha256;
use tempest_server::linger;
use tokio::io::{AsyncWriteExt, BufWriter};

/// Prefix of temp files of uploads in progress (removed at start: leftovers of a crash).
const TEMP_PREFIX: &str = ".upload-";

/// Why an artifact could not be stored or served.
#[derive(Debug, thiserror::Error)]
pub(crate) enum ArtifactError {
    #[error("artifact id {0}")]
    BadId(String),
    #[error("the upload of artifact {sha} is larger than the limit of {limit_mb} MiB (max_upload_mb); nothing was stored")]
    TooLarge { sha: String, limit_mb: u64 },
    #[error("the uploaded content has sha256 {actual}, but the path says {expected}; nothing was stored")]
    HashMismatch { expected: String, actual: String },
    #[error("artifact {sha} not found; upload it with PUT /api/v1/artifacts/{sha}")]
    NotFound { sha: String },
    #[error("the upload broke off: {0}; nothing was stored")]
    Body(String),
    #[error("artifact store: {what}: {source}")]
    Io {
        what: String,
        source: std::io::Error,
    },
}

/// Whether an upload created the artifact or found it there.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Stored {
    /// Written now.
    Created,
    /// It was already there.
    Existed,
}

/// The artifacts directory and its upload limit.
#[derive(Debug)]
pub(crate) struct ArtifactStore {
    dir: PathBuf,
    max_bytes: u64,
    limit_mb: u64,
}

/// A temp file removed when dropped, unless kept.
struct TempFile {
    path: PathBuf,
    keep: bool,
}

impl Drop for TempFile {
    fn drop(&mut self) {
        if !self.keep {
            if let Err(e) = std::fs::remove_file(&self.path) {
                if e.kind() != std::io::ErrorKind::NotFound {
                    tracing::warn!(path = %self.path.display(), "cannot remove a temp upload: {e}");
                }
            }
        }
    }
}

fn io_error(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> ArtifactError {
    let what = what.into();
    move |source| ArtifactError::Io { what, source }
}

impl ArtifactStore {
    /// Opens the directory (creating it) and removes temp files left by a crash.
    pub(crate) fn open(dir: PathBuf, max_upload_mb: u64) -> std::io::Result<Self> {
        std::fs::create_dir_all(&dir)?;
        for entry in std::fs::read_dir(&dir)? {
            let entry = entry?;
            if entry.file_name().to_string_lossy().starts_with(TEMP_PREFIX) {
                tracing::info!(path = %entry.path().display(), "removing an unfinished upload");
                std::fs::remove_file(entry.path())?;
            }
        }
        Ok(ArtifactStore {
            dir,
            max_bytes: max_upload_mb.saturating_mul(1 << 20),
            limit_mb: max_upload_mb,
        })
    }

    /// The file of a checked id.
    fn path(&self, sha: &str) -> Result<PathBuf, ArtifactError> {
        check_sha256(sha).map_err(ArtifactError::BadId)?;
        Ok(self.dir.join(sha))
    }

    /// Whether the artifact is stored.
    pub(crate) async fn exists(&self, sha: &str) -> Result<bool, ArtifactError> {
        let path = self.path(sha)?;
        tokio::fs::try_exists(&path)
            .await
            .map_err(io_error(format!("cannot check {}", path.display())))
    }

    /// Stores the upload `body` as artifact `sha` (see the module doc). `declared_len` is the
    /// request's Content-Length, if it had one.
    pub(crate) async fn put(
        &self,
        sha: &str,
        declared_len: Option<u64>,
        body: Body,
    ) -> Result<Stored, ArtifactError> {
        let dest = self.path(sha)?;
        if self.exists(sha).await? {
            linger::discard(body).await;
            return Ok(Stored::Existed);
        }
        let too_large = || ArtifactError::TooLarge {
            sha: sha.to_string(),
            limit_mb: self.limit_mb,
        };
        if declared_len.is_some_and(|n| n > self.max_bytes) {
            linger::discard(body).await;
            return Err(too_large());
        }
        let mut stream = body.into_data_stream();

        static UPLOADS: AtomicU64 = AtomicU64::new(0);
        let n = UPLOADS.fetch_add(1, Ordering::Relaxed);
        let temp = TempFile {
            path: self
                .dir
                .join(format!("{TEMP_PREFIX}{sha}-{}-{n}", std::process::id())),
            keep: false,
        };
        let file = tokio::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&temp.path)
            .await
            .map_err(io_error(format!("cannot create {}", temp.path.display())))?;
        let mut out = BufWriter::with_capacity(1 << 16, file);
        let mut hasher = Sha256::new();
        let mut total = 0u64;
        while let Some(chunk) = stream.next().await {
            let chunk = chunk.map_err(|e| ArtifactError::Body(e.to_string()))?;
            total += chunk.len() as u64;
            if total > self.max_bytes {
                drop(out);
                drop(temp);
                linger::discard(Body::from_stream(stream)).await;
                return Err(too_large());
            }
            hasher.update(&chunk);
            out.write_all(&chunk)
                .await
                .map_err(io_error(format!("cannot write {}", temp.path.display())))?;
        }
        let write = io_error(format!("cannot write {}", temp.path.display()));
        if let Err(e) = out.flush().await {
            return Err(write(e));
        }
        let file = out.into_inner();
        file.sync_all()
            .await
            .map_err(io_error(format!("cannot sync {}", temp.path.display())))?;
        drop(file);

        let actual = hex::encode(hasher.finalize());
        if actual != sha {
            return Err(ArtifactError::HashMismatch {
                expected: sha.to_string(),
                actual,
            });
        }
        let mut temp = temp;
        tokio::fs::rename(&temp.path, &dest)
            .await
            .map_err(io_error(format!(
                "cannot move the upload to {}",
                dest.display()
            )))?;
        temp.keep = true;
        sync_dir(&self.dir).await;
        tracing::info!(artifact = %sha, bytes = total, "artifact stored");
        Ok(Stored::Created)
    }

    /// Opens an artifact for download: the file and its length.
    pub(crate) async fn open_file(
        &self,
        sha: &str,
    ) -> Result<(tokio::fs::File, u64), ArtifactError> {
        let path = self.path(sha)?;
        let file = match tokio::fs::File::open(&path).await {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(ArtifactError::NotFound {
                    sha: sha.to_string(),
                })
            }
            Err(e) => return Err(io_error(format!("cannot open {}", path.display()))(e)),
        };
        let len = file
            .metadata()
            .await
            .map_err(io_error(format!("cannot stat {}", path.display())))?
            .len();
        Ok((file, len))
    }

    /// The shas of every stored artifact.
    #[cfg_attr(not(feature = "etcd"), allow(dead_code))]
    pub(crate) async fn list(&self) -> Result<Vec<String>, ArtifactError> {
        let mut out = Vec::new();
        let mut entries = tokio::fs::read_dir(&self.dir)
            .await
            .map_err(io_error(format!("cannot list {}", self.dir.display())))?;
        while let Some(e) = entries
            .next_entry()
            .await
            .map_err(io_error(format!("cannot list {}", self.dir.display())))?
        {
            let name = e.file_name().to_string_lossy().into_owned();
            if check_sha256(&name).is_ok() {
                out.push(name);
            }
        }
        out.sort();
        Ok(out)
    }

    /// The directory.
    #[cfg(test)]
    pub(crate) fn dir(&self) -> &Path {
        &self.dir
    }
}

/// Makes a rename in `dir` durable.
async fn sync_dir(dir: &Path) {
    let dir = dir.to_path_buf();
    let synced = tokio::task::spawn_blocking(move || std::fs::File::open(&dir)?.sync_all()).await;
    if let Ok(Err(e)) = synced {
        tracing::warn!("cannot sync the artifacts directory: {e}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sha(bytes: &[u8]) -> String {
        hex::encode(Sha256::digest(bytes))
    }

    fn entries(dir: &Path) -> Vec<String> {
        let mut v: Vec<String> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        v.sort();
        v
    }

    #[tokio::test]
    async fn uploads_are_stored_by_hash_and_bad_ones_leave_nothing() {
        let tmp = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(tmp.path().join("a")).unwrap();
        std::fs::write(tmp.path().join("a").join(".upload-old"), b"x").unwrap();
        let store = ArtifactStore::open(tmp.path().join("a"), 1).unwrap();
        assert!(entries(store.dir()).is_empty(), "leftovers are removed");

        let data = b"a topology binary".to_vec();
        let id = sha(&data);
        let put = store
            .put(&id, None, Body::from(data.clone()))
            .await
            .unwrap();
        assert_eq!(put, Stored::Created);
        let again = store
            .put(&id, None, Body::from(data.clone()))
            .await
            .unwrap();
        assert_eq!(again, Stored::Existed);
        assert_eq!(std::fs::read(store.dir().join(&id)).unwrap(), data);

        let other = sha(b"something else");
        let e = store.put(&other, None, Body::from(data)).await.unwrap_err();
        let text = e.to_string();
        assert!(text.contains(&other) && text.contains(&id), "{text}");

        let big = vec![7u8; (1 << 20) + 1];
        let big_id = sha(&big);
        let e = store.put(&big_id, None, Body::from(big)).await.unwrap_err();
        assert!(matches!(e, ArtifactError::TooLarge { .. }), "{e}");
        let e = store
            .put(&big_id, Some(5 << 20), Body::empty())
            .await
            .unwrap_err();
        assert!(matches!(e, ArtifactError::TooLarge { .. }), "{e}");

        let e = store.put("../x", None, Body::empty()).await.unwrap_err();
        assert!(matches!(e, ArtifactError::BadId(_)), "{e}");
        assert_eq!(entries(store.dir()), std::slice::from_ref(&id));

        let (_, len) = store.open_file(&id).await.unwrap();
        assert_eq!(len, 17);
        let e = store.open_file(&other).await.unwrap_err();
        assert!(matches!(e, ArtifactError::NotFound { .. }));
    }
}
