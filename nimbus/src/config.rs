//! Nimbus's configuration: every key with its default, layered by the one loader of
//! `tempest_server::config`: defaults < the `[nimbus]` section of the shared TOML file
//! (`deploy/tempest.toml`) < `TEMPEST_NIMBUS_<KEY>` variables < flags; the secret from the
//! top-level `secret` or `TEMPEST_SECRET`.

use serde::{Deserialize, Serialize};
use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use tempest_server::config::{load, Sources};

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
    /// A second, read-only listener for monitoring tools that send no credentials: the
    /// monitoring API's GET routes, `/metrics` and the web UI, without the secret; every
    /// other method is refused there (changes need the secret on `listen`). Off by default;
    /// Storm's UI port is `0.0.0.0:8080`.
    pub ui_listen: Option<SocketAddr>,
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
            ui_listen: None,
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
            .field("ui_listen", &self.ui_listen)
            .finish()
    }
}

/// Why a configuration could not be used.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file, an environment variable or a flag has a bad key or value.
    #[error("{0}")]
    Load(#[from] tempest_server::config::ConfigError),
    /// A value is out of range.
    #[error("config: {0}")]
    Invalid(String),
}

impl NimbusConfig {
    /// The defaults, overlaid by `file` if given, `TEMPEST_NIMBUS_<KEY>` variables and
    /// `flags` (a struct of the keys given on the command line, `None` ones skipped); the
    /// secret from `TEMPEST_SECRET` or the file.
    pub fn load(file: Option<&Path>, flags: &impl Serialize) -> Result<Self, ConfigError> {
        let sources = Sources {
            file,
            section: "nimbus",
            env_aliases: &[],
        };
        let loaded = load::<NimbusConfig, _, _>(sources, &NimbusConfig::default(), flags)?;
        let mut config = loaded.config;
        config.secret = loaded.secret;
        config.validate()?;
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

    #[derive(Serialize, Default)]
    struct NoFlags {}

    #[test]
    fn file_section_and_secret_are_read_other_sections_ignored() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.toml");
        let text = r#"
            secret = "s3cret"
            [nimbus]
            listen = "0.0.0.0:7000"
            data_dir = "/var/lib/tempest/nimbus"
            max_upload_mb = 64
            [supervisor]
            slots = [6700]
        "#;
        std::fs::write(&path, text).unwrap();
        let c = NimbusConfig::load(Some(&path), &NoFlags {}).unwrap();
        assert_eq!(c.listen, "0.0.0.0:7000".parse().unwrap());
        assert_eq!(c.data_dir, PathBuf::from("/var/lib/tempest/nimbus"));
        assert_eq!(c.max_upload_mb, 64);
        assert_eq!(
            c.supervisor_timeout_secs, 15,
            "unset keys keep their default"
        );
        if std::env::var_os("TEMPEST_SECRET").is_none() {
            assert_eq!(c.secret.as_deref(), Some("s3cret"));
        }
        assert!(
            !format!("{c:?}").contains("s3cret"),
            "Debug must not show the secret"
        );
    }

    #[test]
    fn unknown_key_and_bad_value_are_named() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.toml");
        std::fs::write(&path, "[nimbus]\nlisten_addr = \"x\"").unwrap();
        let e = NimbusConfig::load(Some(&path), &NoFlags {})
            .unwrap_err()
            .to_string();
        assert!(e.contains("listen_addr") && e.contains("t.toml"), "{e}");
        std::fs::write(&path, "[nimbus]\nlisten = \"nowhere\"").unwrap();
        let e = NimbusConfig::load(Some(&path), &NoFlags {})
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
