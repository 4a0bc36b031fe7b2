//! The supervisor's configuration, layered by the one loader of `tempest_server::config`:
//! defaults < the `[supervisor]` section of the cluster's TOML file < environment
//! (`TEMPEST_SUPERVISOR_<KEY>`, and `TEMPEST_NIMBUS` for `nimbus`) < command-line flags; the
//! secret from `TEMPEST_SECRET` or the file's top-level `secret`.

use serde::{Deserialize, Serialize};
use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;
use tempest_protocol::auth::NIMBUS_ENV;
use tempest_server::config::{load, Sources};

pub use tempest_protocol::auth::DEFAULT_NIMBUS;
/// Default data directory.
pub const DEFAULT_DATA_DIR: &str = "./tempest-data/supervisor";
/// Default host workers are reached at.
pub const DEFAULT_HOST: &str = "127.0.0.1";
/// Default slot ports.
pub const DEFAULT_SLOTS: [u16; 4] = [6700, 6701, 6702, 6703];
/// Default seconds between heartbeats.
pub const DEFAULT_HEARTBEAT_SECS: u64 = 2;
/// The `http_listen` value that disables the log server.
pub const HTTP_OFF: &str = "off";

/// The default `http_listen` for a host: that address, a port the OS picks (`<host>:0`).
pub fn default_http_listen(host: &str) -> String {
    if host.contains(':') && !host.starts_with('[') {
        format!("[{host}]:0")
    } else {
        format!("{host}:0")
    }
}

/// Everything a supervisor needs to run. Build it with [`SupervisorConfig::default`] and set
/// fields, or with [`SupervisorConfig::resolve`] from a file, flags and the environment.
#[derive(Clone, PartialEq, Eq)]
pub struct SupervisorConfig {
    /// Base URL of Nimbus, or a seed list of several Nimbus hosts (`nimbus`: a URL, URLs
    /// separated by commas, or a TOML list; default `http://127.0.0.1:6627`), kept
    /// comma-separated. Also passed to workers as `--nimbus`.
    pub nimbus: String,
    /// Where ids, artifacts, worker records and logs live (`data_dir`; default
    /// `./tempest-data/supervisor`). Created if missing.
    pub data_dir: PathBuf,
    /// Host name or address the workers of this node are reached at, reported to Nimbus and
    /// passed to workers as `--host` (`host`; default `127.0.0.1`).
    pub host: String,
    /// Slot ports offered to Nimbus, one worker each (`slots`; default
    /// `[6700, 6701, 6702, 6703]`).
    pub slots: Vec<u16>,
    /// Seconds between heartbeats to Nimbus (`heartbeat_secs`; default 2).
    pub heartbeat_secs: u64,
    /// Fixed supervisor id (`id`; default none: an id is generated once and kept in
    /// `<data_dir>/supervisor-id`).
    pub id: Option<String>,
    /// Where the log server (the workers' logs over HTTP) listens (`http_listen`; default
    /// `<host>:0`: the workers' address on a port the OS picks, reported to Nimbus in each
    /// heartbeat). `None` (`"off"` in the file or flag) disables it.
    pub http_listen: Option<String>,
    /// The cluster secret (top-level `secret`, or `TEMPEST_SECRET`; default none). Sent to
    /// Nimbus and handed to workers in their environment; never logged.
    pub secret: Option<String>,
    /// When the supervisor runs as root, run workers as `worker_user` (`run_worker_as_user`,
    /// Storm's `supervisor.run.worker.as.user`; default true). Off: workers run as root and
    /// their code can take over the host (a warning is logged). Ignored when not root.
    pub run_worker_as_user: bool,
    /// The unprivileged user workers run as (`worker_user`; default `tempest-worker`). It must
    /// exist: the supervisor refuses to start otherwise.
    pub worker_user: String,
    /// Memory limit of each worker in MiB, set with a cgroup (v2 with the memory controller,
    /// else v1's memory hierarchy) under the supervisor's own (`worker_memory_limit_mb`;
    /// default none: no limit). A topology's `topology.worker.max.heap.size.mb` may lower it.
    /// Without a usable controller the supervisor logs why and workers run unlimited.
    pub worker_memory_limit_mb: Option<u64>,
    /// Timings of the worker lifecycle. Not in the file or on the command line; tests shorten
    /// them.
    pub timings: Timings,
}

/// Timings of the worker lifecycle. The defaults are the contract's.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timings {
    /// How long a worker has between SIGTERM and SIGKILL (default 5 s).
    pub kill_grace: Duration,
    /// First restart delay of a worker that exited (default 1 s); doubles with each
    /// consecutive exit.
    pub restart_backoff_min: Duration,
    /// Longest restart delay (default 30 s).
    pub restart_backoff_max: Duration,
    /// A worker that ran this long before exiting is restarted after the shortest delay again
    /// (default 60 s).
    pub healthy_after: Duration,
    /// How often worker processes are checked (default 250 ms).
    pub check_interval: Duration,
}

impl Default for Timings {
    fn default() -> Self {
        Timings {
            kill_grace: Duration::from_secs(5),
            restart_backoff_min: Duration::from_secs(1),
            restart_backoff_max: Duration::from_secs(30),
            healthy_after: Duration::from_secs(60),
            check_interval: Duration::from_millis(250),
        }
    }
}

impl Default for SupervisorConfig {
    fn default() -> Self {
        SupervisorConfig {
            nimbus: DEFAULT_NIMBUS.to_string(),
            data_dir: PathBuf::from(DEFAULT_DATA_DIR),
            host: DEFAULT_HOST.to_string(),
            slots: DEFAULT_SLOTS.to_vec(),
            heartbeat_secs: DEFAULT_HEARTBEAT_SECS,
            id: None,
            http_listen: Some(default_http_listen(DEFAULT_HOST)),
            secret: None,
            run_worker_as_user: true,
            worker_user: crate::isolation::DEFAULT_WORKER_USER.to_string(),
            worker_memory_limit_mb: None,
            timings: Timings::default(),
        }
    }
}

impl fmt::Debug for SupervisorConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SupervisorConfig")
            .field("nimbus", &self.nimbus)
            .field("data_dir", &self.data_dir)
            .field("host", &self.host)
            .field("slots", &self.slots)
            .field("heartbeat_secs", &self.heartbeat_secs)
            .field("id", &self.id)
            .field("http_listen", &self.http_listen)
            .field("secret", &self.secret.as_ref().map(|_| "<redacted>"))
            .field("run_worker_as_user", &self.run_worker_as_user)
            .field("worker_user", &self.worker_user)
            .field("worker_memory_limit_mb", &self.worker_memory_limit_mb)
            .field("timings", &self.timings)
            .finish()
    }
}

/// Values given on the command line (each one set overrides the file and the environment),
/// and also the shape of the `[supervisor]` section: the long flag names with `_` for `-`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConfigOverrides {
    /// `--nimbus` (`TEMPEST_NIMBUS` in the environment): a URL or a seed list (commas, or a
    /// TOML list in the file).
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "tempest_protocol::seeds::deserialize"
    )]
    pub nimbus: Option<String>,
    /// `--data-dir`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub data_dir: Option<PathBuf>,
    /// `--host`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub host: Option<String>,
    /// `--slots 6700,6701`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub slots: Option<Vec<u16>>,
    /// `--heartbeat-secs`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub heartbeat_secs: Option<u64>,
    /// `--id`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    /// `--http-listen` (`off` disables the log server).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub http_listen: Option<String>,
    /// `--run-worker-as-user true|false`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub run_worker_as_user: Option<bool>,
    /// `--worker-user`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub worker_user: Option<String>,
    /// `--worker-memory-limit-mb`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub worker_memory_limit_mb: Option<u64>,
}

/// Why the configuration is not usable.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file, an environment variable or a flag has a bad key or value.
    #[error("{0}")]
    Load(#[from] tempest_server::config::ConfigError),
    /// A value is out of range.
    #[error("invalid supervisor config: {0}")]
    Invalid(String),
}

impl SupervisorConfig {
    /// The defaults, overlaid by `file` if given, the environment and `flags`.
    pub fn load(file: Option<&Path>, flags: &ConfigOverrides) -> Result<Self, ConfigError> {
        let sources = Sources {
            file,
            section: "supervisor",
            env_aliases: &[(NIMBUS_ENV, "nimbus")],
        };
        let loaded = load::<ConfigOverrides, _, _>(sources, &ConfigOverrides::default(), flags)?;
        Self::from_keys(loaded.config, loaded.secret)
    }

    /// The config from the merged keys (absent ones at their defaults) and the secret.
    fn from_keys(s: ConfigOverrides, secret: Option<String>) -> Result<Self, ConfigError> {
        let d = SupervisorConfig::default();
        let non_empty = |v: Option<String>| v.filter(|s| !s.trim().is_empty());
        let host = s.host.unwrap_or(d.host);
        let http_listen = match s.http_listen {
            Some(v) if v.trim().eq_ignore_ascii_case(HTTP_OFF) => None,
            Some(v) => Some(v.trim().to_string()),
            None => Some(default_http_listen(&host)),
        };
        let config = SupervisorConfig {
            nimbus: non_empty(s.nimbus).unwrap_or(d.nimbus),
            data_dir: s.data_dir.unwrap_or(d.data_dir),
            host,
            slots: s.slots.unwrap_or(d.slots),
            heartbeat_secs: s.heartbeat_secs.unwrap_or(d.heartbeat_secs),
            id: s.id,
            http_listen,
            secret: non_empty(secret),
            run_worker_as_user: s.run_worker_as_user.unwrap_or(d.run_worker_as_user),
            worker_user: s.worker_user.unwrap_or(d.worker_user),
            worker_memory_limit_mb: s.worker_memory_limit_mb,
            timings: d.timings,
        };
        config.validate()?;
        Ok(config)
    }

    /// Checks the values: at least one slot, no port twice, no port 0, a heartbeat of at least
    /// one second, a non-empty host, a usable id.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let bad = |m: String| Err(ConfigError::Invalid(m));
        if self.slots.is_empty() {
            return bad("slots is empty: offer at least one port, e.g. slots = [6700]".into());
        }
        let mut seen = std::collections::BTreeSet::new();
        for &p in &self.slots {
            if p == 0 {
                return bad("slot port 0 is not allowed: name a fixed port".into());
            }
            if !seen.insert(p) {
                return bad(format!(
                    "slot port {p} is listed twice in slots {:?}",
                    self.slots
                ));
            }
        }
        if self.heartbeat_secs == 0 {
            return bad("heartbeat_secs = 0: use at least 1".into());
        }
        if self.host.trim().is_empty() || self.host.contains(char::is_whitespace) {
            return bad(format!(
                "host {:?} is not a host name or address",
                self.host
            ));
        }
        if let Some(id) = &self.id {
            check_supervisor_id(id).map_err(ConfigError::Invalid)?;
        }
        if self.nimbus.trim().is_empty() {
            return bad("nimbus URL is empty".into());
        }
        if self.worker_user.trim().is_empty() || self.worker_user.contains(char::is_whitespace) {
            return bad(format!(
                "worker_user {:?} is not a user name",
                self.worker_user
            ));
        }
        if let Some(mb) = self.worker_memory_limit_mb {
            if mb < 16 {
                return bad(format!(
                    "worker_memory_limit_mb = {mb}: a worker needs at least 16 MiB"
                ));
            }
        }
        if let Some(listen) = &self.http_listen {
            let port_ok = listen
                .rsplit_once(':')
                .is_some_and(|(h, p)| !h.is_empty() && p.parse::<u16>().is_ok());
            if !port_ok {
                return bad(format!(
                    "http_listen {listen:?} is not ADDRESS:PORT (e.g. 0.0.0.0:8000, or \
                     127.0.0.1:0 for a port the OS picks) nor \"off\""
                ));
            }
        }
        Ok(())
    }

    /// The heartbeat interval.
    pub fn heartbeat_interval(&self) -> Duration {
        Duration::from_secs(self.heartbeat_secs)
    }
}

/// Checks a supervisor id: 1-128 characters of `A-Z a-z 0-9 . _ - :`.
pub fn check_supervisor_id(id: &str) -> Result<(), String> {
    let ok = !id.is_empty()
        && id.len() <= 128
        && id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-' | ':'));
    if ok {
        Ok(())
    } else {
        Err(format!(
            "supervisor id {id:?} is not allowed: use 1-128 characters of A-Z a-z 0-9 . _ - :"
        ))
    }
}

#[cfg(test)]
// figment::Jail's closures return figment::Error, which is large; only in tests.
#[allow(clippy::result_large_err)]
mod tests {
    use super::*;
    use figment::Jail;

    /// Loads with `text` as the config file, in a jail (its own directory and environment).
    fn resolve(
        jail: &mut Jail,
        text: &str,
        flags: ConfigOverrides,
    ) -> Result<SupervisorConfig, ConfigError> {
        jail.create_file("t.toml", text).expect("config file");
        SupervisorConfig::load(Some(Path::new("t.toml")), &flags)
    }

    #[test]
    fn defaults_without_a_file() {
        Jail::expect_with(|_| {
            let c = SupervisorConfig::load(None, &ConfigOverrides::default()).unwrap();
            assert_eq!(c, SupervisorConfig::default());
            assert_eq!(c.nimbus, "http://127.0.0.1:6627");
            assert_eq!(c.data_dir, PathBuf::from("./tempest-data/supervisor"));
            assert_eq!(c.host, "127.0.0.1");
            assert_eq!(c.slots, vec![6700, 6701, 6702, 6703]);
            assert_eq!(c.heartbeat_secs, 2);
            assert_eq!(c.http_listen.as_deref(), Some("127.0.0.1:0"));
            assert_eq!(c.timings.kill_grace, Duration::from_secs(5));
            Ok(())
        });
    }

    #[test]
    fn reads_its_section_and_the_secret_and_ignores_other_sections() {
        Jail::expect_with(|jail| {
            let text = r#"
                secret = "s3cret"
                [nimbus]
                listen = "0.0.0.0:6627"
                [supervisor]
                nimbus = "http://nimbus:6627"
                data_dir = "/var/lib/tempest"
                host = "node-a"
                slots = [7000, 7001]
                heartbeat_secs = 3
                id = "node-a-1"
                [client]
                nimbus = "http://elsewhere:1"
            "#;
            let c = resolve(jail, text, ConfigOverrides::default()).unwrap();
            assert_eq!(c.nimbus, "http://nimbus:6627");
            assert_eq!(c.data_dir, PathBuf::from("/var/lib/tempest"));
            assert_eq!(c.host, "node-a");
            assert_eq!(c.slots, vec![7000, 7001]);
            assert_eq!(c.heartbeat_secs, 3);
            assert_eq!(c.id.as_deref(), Some("node-a-1"));
            assert_eq!(c.secret.as_deref(), Some("s3cret"));
            Ok(())
        });
    }

    #[test]
    fn the_deployed_sample_sets_every_key_to_its_default() {
        Jail::expect_with(|jail| {
            let text = include_str!("../../deploy/tempest.toml");
            let c = resolve(jail, text, ConfigOverrides::default()).unwrap();
            assert_eq!(c, SupervisorConfig::default());
            Ok(())
        });
    }

    #[test]
    fn nimbus_takes_a_seed_list_as_a_toml_list_or_commas() {
        Jail::expect_with(|jail| {
            let d = ConfigOverrides::default;
            let text = "[supervisor]\nnimbus = [\"http://a:1\", \"http://b:2\"]\n";
            let c = resolve(jail, text, d()).unwrap();
            assert_eq!(c.nimbus, "http://a:1,http://b:2");
            jail.set_env("TEMPEST_NIMBUS", "http://c:3,http://d:4");
            let c = resolve(jail, text, d()).unwrap();
            assert_eq!(c.nimbus, "http://c:3,http://d:4", "env beats the file");
            jail.clear_env();
            let e = resolve(jail, "[supervisor]\nnimbus = 5\n", d()).unwrap_err();
            assert!(e.to_string().contains("list of URL strings"), "{e}");
            Ok(())
        });
    }

    #[test]
    fn flags_override_the_file_and_env_comes_between() {
        Jail::expect_with(|jail| {
            let text = "secret = \"file\"\n[supervisor]\nnimbus = \"http://file:1\"\nhost = \"h\"\nslots = [1]\n";
            let flags = ConfigOverrides {
                host: Some("flag-host".into()),
                slots: Some(vec![9000]),
                heartbeat_secs: Some(7),
                data_dir: Some("/d".into()),
                id: Some("x".into()),
                nimbus: None,
                http_listen: None,
                run_worker_as_user: Some(false),
                worker_user: Some("nobody".into()),
                worker_memory_limit_mb: Some(256),
            };
            jail.set_env("TEMPEST_NIMBUS", "http://env:2");
            jail.set_env("TEMPEST_SECRET", "env-secret");
            let c = resolve(jail, text, flags.clone()).unwrap();
            assert_eq!(c.host, "flag-host");
            assert_eq!(c.slots, vec![9000]);
            assert_eq!(c.heartbeat_secs, 7);
            assert_eq!(c.data_dir, PathBuf::from("/d"));
            assert_eq!(c.id.as_deref(), Some("x"));
            assert!(!c.run_worker_as_user);
            assert_eq!(c.worker_user, "nobody");
            assert_eq!(c.worker_memory_limit_mb, Some(256));
            assert_eq!(
                c.http_listen.as_deref(),
                Some("flag-host:0"),
                "the default follows the host"
            );
            assert_eq!(c.nimbus, "http://env:2", "env beats the file");
            assert_eq!(
                c.secret.as_deref(),
                Some("env-secret"),
                "env beats the file"
            );

            let with_flag = ConfigOverrides {
                nimbus: Some("http://flag:3".into()),
                ..flags
            };
            jail.clear_env();
            jail.set_env("TEMPEST_NIMBUS", "http://env:2");
            jail.set_env("TEMPEST_SUPERVISOR_HEARTBEAT_SECS", "9");
            let c = resolve(jail, text, with_flag).unwrap();
            assert_eq!(c.nimbus, "http://flag:3", "the flag beats env");
            assert_eq!(c.heartbeat_secs, 7, "the flag beats TEMPEST_SUPERVISOR_*");
            assert_eq!(c.secret.as_deref(), Some("file"));
            Ok(())
        });
    }

    #[test]
    fn mistakes_are_named() {
        Jail::expect_with(|jail| {
            let d = ConfigOverrides::default;
            let e = resolve(jail, "[supervisor]\nslot = [1]\n", d()).unwrap_err();
            assert!(e.to_string().contains("slot"), "{e}");
            let e = resolve(jail, "[supervisor]\nslots = [1, 1]\n", d()).unwrap_err();
            assert!(e.to_string().contains("port 1 is listed twice"), "{e}");
            let e = resolve(jail, "[supervisor]\nslots = []\n", d()).unwrap_err();
            assert!(e.to_string().contains("slots is empty"), "{e}");
            let e = resolve(jail, "[supervisor]\nslots = [70000]\n", d()).unwrap_err();
            assert!(e.to_string().contains("t.toml"), "{e}");
            let e = resolve(jail, "[supervisor]\nheartbeat_secs = 0\n", d()).unwrap_err();
            assert!(e.to_string().contains("heartbeat_secs = 0"), "{e}");
            let e = resolve(jail, "[supervisor]\nid = \"a/b\"\n", d()).unwrap_err();
            assert!(e.to_string().contains("\"a/b\""), "{e}");
            Ok(())
        });
    }

    #[test]
    fn the_log_server_can_be_placed_or_turned_off() {
        Jail::expect_with(|jail| {
            let d = ConfigOverrides::default;
            let c = resolve(jail, "[supervisor]\nhttp_listen = \"0.0.0.0:8000\"\n", d()).unwrap();
            assert_eq!(c.http_listen.as_deref(), Some("0.0.0.0:8000"));
            let off = ConfigOverrides {
                http_listen: Some("off".into()),
                ..d()
            };
            let c = resolve(jail, "[supervisor]\nhttp_listen = \"0.0.0.0:8000\"\n", off).unwrap();
            assert_eq!(c.http_listen, None, "the flag beats the file");
            let c = resolve(jail, "[supervisor]\nhost = \"::1\"\n", d()).unwrap();
            assert_eq!(c.http_listen.as_deref(), Some("[::1]:0"));
            let e = resolve(jail, "[supervisor]\nhttp_listen = \"8000\"\n", d()).unwrap_err();
            assert!(e.to_string().contains("http_listen \"8000\""), "{e}");
            Ok(())
        });
    }

    #[test]
    fn the_secret_is_never_in_debug_output() {
        let c = SupervisorConfig {
            secret: Some("hunter2".into()),
            ..SupervisorConfig::default()
        };
        let shown = format!("{c:?}");
        assert!(!shown.contains("hunter2"), "{shown}");
        assert!(shown.contains("<redacted>"), "{shown}");
    }
}
