//! Nimbus's configuration: every key with its default, layered by the one loader of
//! `tempest_server::config`: defaults < the `[nimbus]` section of the shared TOML file
//! (`deploy/tempest.toml`) < `TEMPEST_NIMBUS_<KEY>` variables < flags; the secret from the
//! top-level `secret` or `TEMPEST_SECRET`.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use tempest_protocol::auth::{check_user_name, Role, SecretDigest};
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
    /// Where the cluster state lives: `embedded` (a redb file in the data dir; one Nimbus) or
    /// `etcd` (several Nimbus hosts, one leader; needs a nimbus built with the cargo feature
    /// `etcd`). Default `embedded`.
    pub store: StoreKind,
    /// etcd client URLs (`http://host:2379`), with `store = "etcd"`. Default none.
    pub etcd_endpoints: Vec<String>,
    /// Names this cluster's keys in etcd (`/tempest/<cluster_name>/`), so clusters can share
    /// an etcd. Default `tempest`.
    pub cluster_name: String,
    /// TTL of this Nimbus's etcd lease, in seconds: a leader that dies is replaced within about
    /// this long, and one that cannot renew it steps down before it runs out. Default 5.
    pub leader_lease_secs: u64,
    /// The URL clients use to reach this Nimbus (given to them by the others as the leader's
    /// URL). Default `http://<listen>`; required with etcd when `listen` is 0.0.0.0 or [::].
    pub advertise_url: Option<String>,
    /// Users of the API and their roles, by name: `[nimbus.users]` then
    /// `alice = { role = "submitter", token_sha256 = "..." }` (the line `tempest users add`
    /// prints). Roles: `admin`, `submitter`, `viewer`. Needs the cluster secret (supervisors
    /// and workers use it). Default none: the secret alone opens the API.
    pub users: BTreeMap<String, UserEntry>,
}

/// One user of `[nimbus.users]`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UserEntry {
    /// What the user may do.
    pub role: Role,
    /// The sha256 of the user's token, in hex (never the token itself).
    pub token_sha256: String,
}

/// Where Nimbus keeps the cluster state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum StoreKind {
    /// A redb file in the data dir: one Nimbus (the quick start).
    #[default]
    Embedded,
    /// etcd: several Nimbus hosts, one leader elected with an etcd lease.
    Etcd,
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
            store: StoreKind::Embedded,
            etcd_endpoints: Vec::new(),
            cluster_name: "tempest".into(),
            leader_lease_secs: 5,
            advertise_url: None,
            users: BTreeMap::new(),
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
            .field("store", &self.store)
            .field("etcd_endpoints", &self.etcd_endpoints)
            .field("cluster_name", &self.cluster_name)
            .field("leader_lease_secs", &self.leader_lease_secs)
            .field("advertise_url", &self.advertise_url)
            .field(
                "users",
                &self
                    .users
                    .iter()
                    .map(|(n, u)| (n.as_str(), u.role))
                    .collect::<Vec<_>>(),
            )
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
        self.validate_users()?;
        self.validate_store()
    }

    /// Checks `[nimbus.users]`: names, digests, no token shared, and a secret beside them.
    fn validate_users(&self) -> Result<(), ConfigError> {
        let invalid = |m: String| Err(ConfigError::Invalid(m));
        let mut seen: BTreeMap<String, &str> = BTreeMap::new();
        for (name, user) in &self.users {
            if let Err(e) = check_user_name(name) {
                return invalid(format!("[nimbus.users]: {e}"));
            }
            if SecretDigest::from_hex(&user.token_sha256).is_none() {
                return invalid(format!(
                    "[nimbus.users] {name}: token_sha256 must be 64 hex digits (the sha256 of the token, as `tempest users add` or `tempest token hash` print it), not the token itself"
                ));
            }
            let digest = user.token_sha256.trim().to_ascii_lowercase();
            if let Some(other) = seen.insert(digest, name) {
                return invalid(format!(
                    "[nimbus.users] {other} and {name} have the same token_sha256; give each user a token of its own"
                ));
            }
        }
        if !self.users.is_empty() && self.secret.is_none() {
            return invalid(
                "[nimbus.users] is set but there is no cluster secret (`secret` or TEMPEST_SECRET): supervisors authenticate with the secret and workers with a credential derived from it, so users need one"
                    .into(),
            );
        }
        Ok(())
    }

    /// Checks the store keys go together.
    fn validate_store(&self) -> Result<(), ConfigError> {
        let invalid = |m: String| Err(ConfigError::Invalid(m));
        match self.store {
            StoreKind::Embedded => {
                if !self.etcd_endpoints.is_empty() {
                    return invalid(format!(
                        "etcd_endpoints is set ({}) but store is \"embedded\"; set store = \"etcd\" to keep the state in etcd, or remove etcd_endpoints",
                        self.etcd_endpoints.join(",")
                    ));
                }
                Ok(())
            }
            StoreKind::Etcd => {
                if !cfg!(feature = "etcd") {
                    return invalid(
                        "store = \"etcd\" needs a nimbus built with the cargo feature `etcd` \
                         (cargo build -p nimbus --features etcd; it needs protoc); this one was \
                         built without it"
                            .into(),
                    );
                }
                if self.etcd_endpoints.is_empty() {
                    return invalid(
                        "store = \"etcd\" needs etcd_endpoints (e.g. [\"http://127.0.0.1:2379\"])"
                            .into(),
                    );
                }
                for e in &self.etcd_endpoints {
                    if !(e.starts_with("http://") || e.starts_with("https://")) || e.len() < 10 {
                        return invalid(format!(
                            "etcd endpoint {e:?} is not a URL such as http://127.0.0.1:2379"
                        ));
                    }
                }
                let name_ok = !self.cluster_name.is_empty()
                    && self.cluster_name.len() <= 64
                    && self
                        .cluster_name
                        .chars()
                        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'));
                if !name_ok {
                    return invalid(format!(
                        "cluster_name {:?} is not allowed: use 1-64 characters of A-Z a-z 0-9 . _ -",
                        self.cluster_name
                    ));
                }
                if !(2..=3600).contains(&self.leader_lease_secs) {
                    return invalid(format!(
                        "leader_lease_secs {} is out of range: etcd leases last 2 to 3600 s",
                        self.leader_lease_secs
                    ));
                }
                if self.advertise_url.is_none() && self.listen.ip().is_unspecified() {
                    return invalid(format!(
                        "listen is {}, which other hosts cannot dial: set advertise_url (the URL clients use to reach this Nimbus) with store = \"etcd\"",
                        self.listen
                    ));
                }
                let url = self.advertised();
                let authority = url
                    .strip_prefix("http://")
                    .or_else(|| url.strip_prefix("https://"))
                    .map(|rest| rest.trim_end_matches('/'));
                match authority {
                    Some(a)
                        if !a.is_empty()
                            && !a.contains('/')
                            && !a.contains(char::is_whitespace) =>
                    {
                        Ok(())
                    }
                    _ => invalid(format!(
                        "advertise_url {url:?} is not a base URL such as http://nimbus-1:6627"
                    )),
                }
            }
        }
    }

    /// The URL clients reach this Nimbus at: `advertise_url`, else `http://<listen>`.
    pub fn advertised(&self) -> String {
        match &self.advertise_url {
            Some(url) => url.trim_end_matches('/').to_string(),
            None => format!("http://{}", self.listen),
        }
    }

    /// This Nimbus's id among the Nimbus hosts: the host and port of its advertised URL.
    pub fn nimbus_id(&self) -> String {
        let url = self.advertised();
        url.split_once("://")
            .map_or(url.as_str(), |(_, rest)| rest)
            .to_string()
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
    fn store_keys_are_checked_together() {
        let etcd = NimbusConfig {
            store: StoreKind::Etcd,
            ..NimbusConfig::default()
        };
        let e = etcd.validate().unwrap_err().to_string();
        if cfg!(feature = "etcd") {
            assert!(e.contains("etcd_endpoints"), "{e}");
        } else {
            assert!(e.contains("feature `etcd`"), "{e}");
        }
        let stray = NimbusConfig {
            etcd_endpoints: vec!["http://127.0.0.1:2379".into()],
            ..NimbusConfig::default()
        };
        let e = stray.validate().unwrap_err().to_string();
        assert!(e.contains("store is \"embedded\""), "{e}");
        let c = NimbusConfig::default();
        assert_eq!(c.advertised(), "http://127.0.0.1:6627");
        assert_eq!(c.nimbus_id(), "127.0.0.1:6627");
    }

    #[cfg(feature = "etcd")]
    #[test]
    fn etcd_needs_an_advertised_url_and_a_usable_lease() {
        let base = NimbusConfig {
            store: StoreKind::Etcd,
            etcd_endpoints: vec!["http://127.0.0.1:2379".into()],
            ..NimbusConfig::default()
        };
        assert!(base.validate().is_ok());
        let wild = NimbusConfig {
            listen: "0.0.0.0:6627".parse().unwrap(),
            ..base.clone()
        };
        let e = wild.validate().unwrap_err().to_string();
        assert!(e.contains("advertise_url"), "{e}");
        let short = NimbusConfig {
            leader_lease_secs: 1,
            ..base.clone()
        };
        let e = short.validate().unwrap_err().to_string();
        assert!(e.contains("leader_lease_secs 1"), "{e}");
        let bad = NimbusConfig {
            cluster_name: "a/b".into(),
            ..base
        };
        assert!(bad.validate().unwrap_err().to_string().contains("a/b"));
    }

    #[test]
    fn users_are_read_and_a_bad_role_or_digest_is_named() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.toml");
        let digest = tempest_protocol::auth::token_sha256("tpt_x");
        std::fs::write(
            &path,
            format!(
                "secret = \"s\"\n[nimbus.users]\nalice = {{ role = \"submitter\", token_sha256 = \"{digest}\" }}\n"
            ),
        )
        .unwrap();
        let c = NimbusConfig::load(Some(&path), &NoFlags {}).unwrap();
        assert_eq!(c.users["alice"].role, Role::Submitter);
        assert!(!format!("{c:?}").contains(&digest), "Debug shows no digest");
        std::fs::write(
            &path,
            format!("secret = \"s\"\n[nimbus.users]\nalice = {{ role = \"root\", token_sha256 = \"{digest}\" }}\n"),
        )
        .unwrap();
        let e = NimbusConfig::load(Some(&path), &NoFlags {})
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("root") && e.contains("submitter") && e.contains("alice"),
            "{e}"
        );
        std::fs::write(
            &path,
            "secret = \"s\"\n[nimbus.users]\nalice = { role = \"viewer\", token_sha256 = \"tpt_x\" }\n",
        )
        .unwrap();
        let e = NimbusConfig::load(Some(&path), &NoFlags {})
            .unwrap_err()
            .to_string();
        assert!(e.contains("alice") && e.contains("64 hex digits"), "{e}");
        let mut c = NimbusConfig::default();
        c.users.insert(
            "bob".into(),
            UserEntry {
                role: Role::Viewer,
                token_sha256: digest.clone(),
            },
        );
        let e = c.validate().unwrap_err().to_string();
        assert!(e.contains("no cluster secret"), "{e}");
        c.secret = Some("s".into());
        c.users.insert(
            "carol".into(),
            UserEntry {
                role: Role::Admin,
                token_sha256: digest,
            },
        );
        let e = c.validate().unwrap_err().to_string();
        assert!(e.contains("bob and carol"), "{e}");
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
