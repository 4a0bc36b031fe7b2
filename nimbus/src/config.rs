//! Nimbus's configuration: every key with its default, read from the `[nimbus]` section and the
//! top-level `secret` of the shared TOML file (`deploy/tempest.toml`), then overridden by flags.

use serde::{Deserialize, Serialize};
use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use topology_api::control::SECRET_ENV;

/// Everything Nimbus can be configured with. The TOML keys are the field names; the flags are
/// the same names with `-` for `_` (`--data-dir`).
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct NimbusConfig {
    /// Address the HTTP API listens on. Default `127.0.0.1:6627`.
    pub listen: SocketAddr,
    /// Directory of the state store (`nimbus.redb`) and the artifacts (`artifacts/<sha256>`).
    /// Default `./tempest-data/nimbus`.
    pub data_dir: PathBuf,
    /// A supervisor is dead when its last heartbeat is older than this. After a Nimbus start,
    /// no supervisor is declared dead before this has passed. Default 15.
    pub supervisor_timeout_secs: u64,
    /// A worker slot of a live supervisor is dead when neither a worker heartbeat nor (for a
    /// fresh assignment) the assignment itself is younger than this. Default 30.
    pub worker_timeout_secs: u64,
    /// Largest topology binary accepted by an upload, in MiB; checked while streaming.
    /// Default 512.
    pub max_upload_mb: u64,
    /// The cluster secret every `/api/...` request must carry in `x-tempest-secret`; `None`
    /// leaves the API open (a warning is logged at start). Comes from the top-level `secret`
    /// key of the file or, overriding it, the `TEMPEST_SECRET` environment variable; never
    /// from a flag. Never printed (`Debug` redacts it).
    #[serde(skip)]
    pub secret: Option<String>,
}

impl Default for NimbusConfig {
    fn default() -> Self {
        NimbusConfig {
            listen: SocketAddr::from(([127, 0, 0, 1], 6627)),
            data_dir: PathBuf::from("./tempest-data/nimbus"),
            supervisor_timeout_secs: 15,
            worker_timeout_secs: 30,
            max_upload_mb: 512,
            secret: None,
        }
    }
}

impl fmt::Debug for NimbusConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("NimbusConfig")
            .field("listen", &self.listen)
            .field("data_dir", &self.data_dir)
            .field("supervisor_timeout_secs", &self.supervisor_timeout_secs)
            .field("worker_timeout_secs", &self.worker_timeout_secs)
            .field("max_upload_mb", &self.max_upload_mb)
            .field("secret", &self.secret.as_ref().map(|_| "<redacted>"))
            .finish()
    }
}

/// Why a configuration could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read config file {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The file is not valid TOML or has a bad key or value.
    #[error("config file {path}: {message}")]
    Parse {
        /// The file.
        path: PathBuf,
        /// What is wrong, with the key.
        message: String,
    },
    /// A value is out of range.
    #[error("config: {0}")]
    Invalid(String),
}

/// The parts of the shared file Nimbus reads; other sections (`[supervisor]`, `[client]`) are
/// left to their daemons.
#[derive(Deserialize)]
struct SharedFile {
    #[serde(default)]
    secret: Option<String>,
    #[serde(default)]
    nimbus: NimbusConfig,
}

impl NimbusConfig {
    /// Parses the shared TOML file's text: the `[nimbus]` section and the top-level `secret`.
    /// `path` only names the file in errors.
    pub fn from_toml_str(text: &str, path: &Path) -> Result<Self, ConfigError> {
        let file: SharedFile = toml::from_str(text).map_err(|e| ConfigError::Parse {
            path: path.to_path_buf(),
            message: e.to_string(),
        })?;
        let mut config = file.nimbus;
        config.secret = file.secret.filter(|s| !s.is_empty());
        Ok(config)
    }

    /// The defaults, overlaid by `file` if given, then the secret from `TEMPEST_SECRET` if set.
    pub fn load(file: Option<&Path>) -> Result<Self, ConfigError> {
        let mut config = match file {
            Some(path) => {
                let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
                    path: path.to_path_buf(),
                    source,
                })?;
                Self::from_toml_str(&text, path)?
            }
            None => NimbusConfig::default(),
        };
        if let Ok(secret) = std::env::var(SECRET_ENV) {
            if !secret.is_empty() {
                config.secret = Some(secret);
            }
        }
        Ok(config)
    }

    /// Checks the values are usable.
    pub fn validate(&self) -> Result<(), ConfigError> {
        for (key, value) in [
            ("supervisor_timeout_secs", self.supervisor_timeout_secs),
            ("worker_timeout_secs", self.worker_timeout_secs),
            ("max_upload_mb", self.max_upload_mb),
        ] {
            if value == 0 {
                return Err(ConfigError::Invalid(format!(
                    "{key} is 0; it must be at least 1"
                )));
            }
        }
        if self.max_upload_mb > 1 << 20 {
            return Err(ConfigError::Invalid(format!(
                "max_upload_mb {} is more than 1 TiB",
                self.max_upload_mb
            )));
        }
        Ok(())
    }

    /// The upload limit in bytes.
    pub fn max_upload_bytes(&self) -> u64 {
        self.max_upload_mb.saturating_mul(1 << 20)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_section_and_secret_are_read_other_sections_ignored() {
        let text = r#"
            secret = "s3cret"
            [nimbus]
            listen = "0.0.0.0:7000"
            data_dir = "/var/lib/tempest/nimbus"
            max_upload_mb = 64
            [supervisor]
            slots = [6700]
        "#;
        let c = NimbusConfig::from_toml_str(text, Path::new("t.toml")).unwrap();
        assert_eq!(c.listen, "0.0.0.0:7000".parse().unwrap());
        assert_eq!(c.data_dir, PathBuf::from("/var/lib/tempest/nimbus"));
        assert_eq!(c.max_upload_mb, 64);
        assert_eq!(
            c.supervisor_timeout_secs, 15,
            "unset keys keep their default"
        );
        assert_eq!(c.secret.as_deref(), Some("s3cret"));
        assert!(
            !format!("{c:?}").contains("s3cret"),
            "Debug must not show the secret"
        );
    }

    #[test]
    fn unknown_key_and_bad_value_are_named() {
        let e = NimbusConfig::from_toml_str("[nimbus]\nlisten_addr = \"x\"", Path::new("t.toml"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("listen_addr") && e.contains("t.toml"), "{e}");
        let e = NimbusConfig::from_toml_str("[nimbus]\nlisten = \"nowhere\"", Path::new("t.toml"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("listen"), "{e}");
    }

    #[test]
    fn zero_timeouts_are_refused() {
        let c = NimbusConfig {
            supervisor_timeout_secs: 0,
            ..NimbusConfig::default()
        };
        let e = c.validate().unwrap_err().to_string();
        assert!(e.contains("supervisor_timeout_secs"), "{e}");
        assert!(NimbusConfig::default().validate().is_ok());
    }
}
