//! The local cache of topology binaries, `<data_dir>/artifacts/<sha256>`: downloaded from
//! Nimbus (which verifies the hash before the file appears), made executable, and pruned when
//! no worker of this node needs them any more.

use std::collections::HashSet;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use tempest_client::{ClientError, NimbusClient};
use tempest_protocol::names::check_sha256;

/// Why an artifact is not in the cache.
#[derive(Debug, thiserror::Error)]
pub enum ArtifactError {
    /// The id is not a sha256.
    #[error("artifact id {0}")]
    BadId(String),
    /// The download failed (Nimbus down, unknown artifact, hash mismatch).
    #[error("cannot download artifact {sha}: {source}")]
    Download {
        /// The artifact.
        sha: String,
        /// What the client said.
        #[source]
        source: ClientError,
    },
    /// The file could not be made executable.
    #[error("cannot make {path} executable: {reason}")]
    Chmod {
        /// The file.
        path: PathBuf,
        /// The error.
        reason: String,
    },
}

/// The artifact cache of one data directory.
#[derive(Debug, Clone)]
pub struct ArtifactCache {
    dir: PathBuf,
}

impl ArtifactCache {
    /// The cache in `dir` (which exists).
    pub fn new(dir: PathBuf) -> Self {
        ArtifactCache { dir }
    }

    /// Where artifact `sha` lives (or will).
    pub fn path(&self, sha: &str) -> Result<PathBuf, ArtifactError> {
        check_sha256(sha).map_err(ArtifactError::BadId)?;
        Ok(self.dir.join(sha))
    }

    /// Whether `sha` is cached and executable. A cached file that lost its mode (a crash
    /// between download and chmod) is made executable here.
    pub fn is_ready(&self, sha: &str) -> bool {
        let Ok(path) = self.path(sha) else {
            return false;
        };
        match std::fs::metadata(&path) {
            Ok(m) if m.is_file() && m.permissions().mode() & 0o111 == 0o111 => true,
            Ok(m) if m.is_file() => make_executable(&path).is_ok(),
            _ => false,
        }
    }

    /// Makes sure `sha` is cached and executable, downloading it if needed; returns its path.
    pub async fn ensure(&self, client: &NimbusClient, sha: &str) -> Result<PathBuf, ArtifactError> {
        let path = self.path(sha)?;
        if self.is_ready(sha) {
            return Ok(path);
        }
        client
            .download_artifact(sha, &path)
            .await
            .map_err(|source| ArtifactError::Download {
                sha: sha.to_string(),
                source,
            })?;
        make_executable(&path)?;
        Ok(path)
    }

    /// Deletes cached artifacts (and left-over partial downloads) not in `keep`; returns the
    /// ones deleted. Running workers are unaffected: their binary stays open until they exit.
    pub fn prune(&self, keep: &HashSet<String>) -> Vec<String> {
        let Ok(entries) = std::fs::read_dir(&self.dir) else {
            return Vec::new();
        };
        let mut removed = Vec::new();
        for entry in entries.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            let sha = name.strip_suffix(".part").unwrap_or(&name);
            if check_sha256(sha).is_err() || keep.contains(sha) {
                continue;
            }
            match std::fs::remove_file(entry.path()) {
                Ok(()) => removed.push(name),
                Err(e) => tracing::warn!(file = %entry.path().display(), error = %e,
                    "cannot remove unused artifact"),
            }
        }
        removed
    }
}

fn make_executable(path: &Path) -> Result<(), ArtifactError> {
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755)).map_err(|e| {
        ArtifactError::Chmod {
            path: path.to_path_buf(),
            reason: e.to_string(),
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const SHA_A: &str = "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";
    const SHA_B: &str = "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb";

    #[test]
    fn ids_that_are_not_hashes_never_become_paths() {
        let cache = ArtifactCache::new("/nowhere".into());
        assert!(cache.path("../../etc/passwd").is_err());
        assert!(!cache.is_ready("../../etc/passwd"));
        assert_eq!(
            cache.path(SHA_A).unwrap(),
            Path::new("/nowhere").join(SHA_A)
        );
    }

    #[test]
    fn a_cached_file_is_ready_once_executable() {
        let tmp = tempfile::tempdir().unwrap();
        let cache = ArtifactCache::new(tmp.path().to_path_buf());
        assert!(!cache.is_ready(SHA_A));
        let p = tmp.path().join(SHA_A);
        std::fs::write(&p, b"#!/bin/sh\n").unwrap();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o600)).unwrap();
        assert!(cache.is_ready(SHA_A));
        let mode = std::fs::metadata(&p).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o755);
    }

    #[tokio::test]
    async fn a_failed_download_names_the_artifact() {
        let tmp = tempfile::tempdir().unwrap();
        let cache = ArtifactCache::new(tmp.path().to_path_buf());
        // Nothing listens on port 1.
        let client = NimbusClient::new("http://127.0.0.1:1", None).unwrap();
        let e = cache.ensure(&client, SHA_A).await.unwrap_err().to_string();
        assert!(e.contains(SHA_A), "{e}");
        assert!(!tmp.path().join(SHA_A).exists());
    }

    #[test]
    fn pruning_keeps_what_is_needed_and_unknown_files() {
        let tmp = tempfile::tempdir().unwrap();
        let cache = ArtifactCache::new(tmp.path().to_path_buf());
        for name in [SHA_A, SHA_B, &format!("{SHA_B}.part"), "README"] {
            std::fs::write(tmp.path().join(name), b"x").unwrap();
        }
        let keep: HashSet<String> = [SHA_A.to_string()].into();
        let mut removed = cache.prune(&keep);
        removed.sort();
        assert_eq!(removed, vec![SHA_B.to_string(), format!("{SHA_B}.part")]);
        assert!(tmp.path().join(SHA_A).exists());
        assert!(tmp.path().join("README").exists());
    }
}
