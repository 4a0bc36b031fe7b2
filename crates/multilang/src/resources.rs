//! The component's files: embedded in the topology binary at build time ([`resources!`]) and
//! extracted, checked by sha256, into each task's own working directory; or, for development,
//! a directory on this machine.

use sha2::{Digest, Sha256};
use std::path::{Path, PathBuf};

/// Files compiled into the binary: (relative path, contents).
#[derive(Debug, Clone, Copy)]
pub struct Resources {
    files: &'static [(&'static str, &'static [u8])],
}

/// Embeds files in the binary: `resources!["split.py" => "../python/split.py"]` (the second
/// path is relative to the file that calls the macro, as with `include_bytes!`; the first is
/// where the file goes in the working directory).
#[macro_export]
macro_rules! resources {
    ($($name:literal => $path:literal),* $(,)?) => {{
        const FILES: &[(&str, &[u8])] = &[$(($name, include_bytes!($path) as &[u8])),*];
        $crate::Resources::new(FILES)
    }};
}

impl Resources {
    /// These files (what [`resources!`] builds).
    pub const fn new(files: &'static [(&'static str, &'static [u8])]) -> Self {
        Resources { files }
    }

    /// The sha256 of all files (names and contents), hex.
    pub fn digest(&self) -> String {
        let mut h = Sha256::new();
        for (name, bytes) in self.files {
            h.update((name.len() as u64).to_le_bytes());
            h.update(name.as_bytes());
            h.update((bytes.len() as u64).to_le_bytes());
            h.update(bytes);
        }
        hex::encode(h.finalize())
    }

    /// Writes the files into `dir` and reads each back to check its sha256.
    pub(crate) fn extract(&self, dir: &Path) -> std::io::Result<()> {
        for (name, bytes) in self.files {
            let rel = Path::new(name);
            if rel.is_absolute() || rel.components().any(|c| c.as_os_str() == "..") {
                return Err(std::io::Error::other(format!(
                    "resource path {name:?} must be relative and stay inside the working directory"
                )));
            }
            let path = dir.join(rel);
            if let Some(parent) = path.parent() {
                std::fs::create_dir_all(parent)?;
            }
            std::fs::write(&path, bytes)?;
            if bytes.starts_with(b"#!") {
                use std::os::unix::fs::PermissionsExt;
                std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755))?;
            }
            let written = std::fs::read(&path)?;
            if Sha256::digest(&written) != Sha256::digest(bytes) {
                return Err(std::io::Error::other(format!(
                    "{} does not hold what was written (sha256 differs)",
                    path.display()
                )));
            }
        }
        Ok(())
    }
}

/// Where a shell component's working directory comes from.
#[derive(Debug, Clone)]
pub enum Files {
    /// Files embedded in the binary, extracted per task (what ships to a cluster).
    Embedded(Resources),
    /// An existing directory on every machine (development, or files installed by other means).
    Dir(PathBuf),
}

impl From<Resources> for Files {
    fn from(r: Resources) -> Self {
        Files::Embedded(r)
    }
}

impl Files {
    /// The working directory of one task: the embedded files are extracted under
    /// `$TEMPEST_MULTILANG_DIR` (default: the system temp dir)
    /// `/tempest-multilang/<topology>/worker-<pid>/<component>-<task>/`.
    pub(crate) fn working_dir(
        &self,
        topology: &str,
        component: &str,
        task: u32,
    ) -> std::io::Result<(PathBuf, bool)> {
        match self {
            Files::Dir(d) => Ok((d.clone(), false)),
            Files::Embedded(r) => {
                let base = std::env::var_os("TEMPEST_MULTILANG_DIR")
                    .map(PathBuf::from)
                    .unwrap_or_else(std::env::temp_dir);
                let dir = base
                    .join("tempest-multilang")
                    .join(topology)
                    .join(format!("worker-{}", std::process::id()))
                    .join(format!("{component}-{task}"));
                std::fs::create_dir_all(&dir)?;
                r.extract(&dir)?;
                tracing::info!(component, task, dir = %dir.display(), sha256 = %r.digest(), "extracted the component's files");
                Ok((dir, true))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn extracts_checks_and_refuses_escapes() {
        let tmp = std::env::temp_dir().join(format!("tempest-res-test-{}", std::process::id()));
        let r = Resources::new(&[("a/b.py", b"print(1)\n"), ("run.sh", b"#!/bin/sh\n")]);
        r.extract(&tmp).unwrap();
        assert_eq!(std::fs::read(tmp.join("a/b.py")).unwrap(), b"print(1)\n");
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(tmp.join("run.sh"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o111, 0o111, "scripts with #! are executable");
        let bad = Resources::new(&[("../x", b"")]);
        assert!(bad
            .extract(&tmp)
            .unwrap_err()
            .to_string()
            .contains("inside"));
        assert_ne!(r.digest(), bad.digest());
        std::fs::remove_dir_all(&tmp).unwrap();
    }
}
