//! The supervisor's configuration: the `[supervisor]` section and the top-level `secret` of the
//! cluster's TOML file, overridden by command-line flags and the `TEMPEST_NIMBUS` /
//! `TEMPEST_SECRET` environment variables.

use serde::Deserialize;
use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Default Nimbus URL.
pub const DEFAULT_NIMBUS: &str = "http://127.0.0.1:6627";
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
    /// Base URL of Nimbus (`nimbus`; default `http://127.0.0.1:6627`). Also passed to workers
    /// as `--nimbus`.
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
            .field("timings", &self.timings)
            .finish()
    }
}

/// Values given on the command line; each one set overrides the file.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ConfigOverrides {
    /// `--nimbus` (or `TEMPEST_NIMBUS`, which the binary folds in here).
    pub nimbus: Option<String>,
    /// `--data-dir`.
    pub data_dir: Option<PathBuf>,
    /// `--host`.
    pub host: Option<String>,
    /// `--slots 6700,6701`.
    pub slots: Option<Vec<u16>>,
    /// `--heartbeat-secs`.
    pub heartbeat_secs: Option<u64>,
    /// `--id`.
    pub id: Option<String>,
    /// `--http-listen` (`off` disables the log server).
    pub http_listen: Option<String>,
}

/// Why the configuration is not usable.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The config file could not be read.
    #[error("cannot read config file {path}: {reason}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        reason: String,
    },
    /// The config file is not valid TOML or has unknown or mistyped keys.
    #[error("config file {path}: {reason}")]
    Parse {
        /// The file.
        path: PathBuf,
        /// What the parser said.
        reason: String,
    },
    /// A value is out of range.
    #[error("invalid supervisor config: {0}")]
    Invalid(String),
}

/// The parts of the shared TOML file the supervisor reads; other sections are ignored.
#[derive(Debug, Default, Deserialize)]
struct ConfigFile {
    #[serde(default)]
    secret: Option<String>,
    #[serde(default)]
    supervisor: SupervisorSection,
}

/// `[supervisor]`: the long flag names with `_` for `-`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct SupervisorSection {
    nimbus: Option<String>,
    data_dir: Option<PathBuf>,
    host: Option<String>,
    slots: Option<Vec<u16>>,
    heartbeat_secs: Option<u64>,
    id: Option<String>,
    http_listen: Option<String>,
}

impl SupervisorConfig {
    /// Reads the optional config file, then applies flags and environment: the Nimbus URL is
    /// `--nimbus`, then `env_nimbus`, then the file; the secret is `env_secret`, then the file.
    pub fn load(
        file: Option<&Path>,
        flags: ConfigOverrides,
        env_nimbus: Option<String>,
        env_secret: Option<String>,
    ) -> Result<Self, ConfigError> {
        let text = match file {
            Some(path) => Some((
                path,
                std::fs::read_to_string(path).map_err(|e| ConfigError::Read {
                    path: path.to_path_buf(),
                    reason: e.to_string(),
                })?,
            )),
            None => None,
        };
        Self::resolve(
            text.as_ref().map(|(p, t)| (*p, t.as_str())),
            flags,
            env_nimbus,
            env_secret,
        )
    }

    /// Like [`SupervisorConfig::load`], with the file's text given as `(path, text)`.
    pub fn resolve(
        file: Option<(&Path, &str)>,
        flags: ConfigOverrides,
        env_nimbus: Option<String>,
        env_secret: Option<String>,
    ) -> Result<Self, ConfigError> {
        let parsed: ConfigFile = match file {
            Some((path, text)) => toml::from_str(text).map_err(|e| ConfigError::Parse {
                path: path.to_path_buf(),
                reason: e.to_string(),
            })?,
            None => ConfigFile::default(),
        };
        let s = parsed.supervisor;
        let d = SupervisorConfig::default();
        let non_empty = |v: Option<String>| v.filter(|s| !s.trim().is_empty());
        let host = flags.host.or(s.host).unwrap_or(d.host);
        let http_listen = match flags.http_listen.or(s.http_listen) {
            Some(v) if v.trim().eq_ignore_ascii_case(HTTP_OFF) => None,
            Some(v) => Some(v.trim().to_string()),
            None => Some(default_http_listen(&host)),
        };
        let config = SupervisorConfig {
            nimbus: non_empty(flags.nimbus)
                .or(non_empty(env_nimbus))
                .or(s.nimbus)
                .unwrap_or(d.nimbus),
            data_dir: flags.data_dir.or(s.data_dir).unwrap_or(d.data_dir),
            host,
            slots: flags.slots.or(s.slots).unwrap_or(d.slots),
            heartbeat_secs: flags
                .heartbeat_secs
                .or(s.heartbeat_secs)
                .unwrap_or(d.heartbeat_secs),
            id: flags.id.or(s.id),
            http_listen,
            secret: non_empty(env_secret).or(non_empty(parsed.secret)),
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
mod tests {
    use super::*;

    fn resolve(text: &str, flags: ConfigOverrides) -> Result<SupervisorConfig, ConfigError> {
        SupervisorConfig::resolve(Some((Path::new("t.toml"), text)), flags, None, None)
    }

    #[test]
    fn defaults_without_a_file() {
        let c = SupervisorConfig::resolve(None, ConfigOverrides::default(), None, None).unwrap();
        assert_eq!(c, SupervisorConfig::default());
        assert_eq!(c.nimbus, "http://127.0.0.1:6627");
        assert_eq!(c.data_dir, PathBuf::from("./tempest-data/supervisor"));
        assert_eq!(c.host, "127.0.0.1");
        assert_eq!(c.slots, vec![6700, 6701, 6702, 6703]);
        assert_eq!(c.heartbeat_secs, 2);
        assert_eq!(c.http_listen.as_deref(), Some("127.0.0.1:0"));
        assert_eq!(c.timings.kill_grace, Duration::from_secs(5));
    }

    #[test]
    fn reads_its_section_and_the_secret_and_ignores_other_sections() {
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
        let c = resolve(text, ConfigOverrides::default()).unwrap();
        assert_eq!(c.nimbus, "http://nimbus:6627");
        assert_eq!(c.data_dir, PathBuf::from("/var/lib/tempest"));
        assert_eq!(c.host, "node-a");
        assert_eq!(c.slots, vec![7000, 7001]);
        assert_eq!(c.heartbeat_secs, 3);
        assert_eq!(c.id.as_deref(), Some("node-a-1"));
        assert_eq!(c.secret.as_deref(), Some("s3cret"));
    }

    #[test]
    fn flags_override_the_file_and_env_comes_between() {
        let text = "secret = \"file\"\n[supervisor]\nnimbus = \"http://file:1\"\nhost = \"h\"\nslots = [1]\n";
        let flags = ConfigOverrides {
            host: Some("flag-host".into()),
            slots: Some(vec![9000]),
            heartbeat_secs: Some(7),
            data_dir: Some("/d".into()),
            id: Some("x".into()),
            nimbus: None,
            http_listen: None,
        };
        let p = Path::new("t.toml");
        let c = SupervisorConfig::resolve(
            Some((p, text)),
            flags.clone(),
            Some("http://env:2".into()),
            Some("env-secret".into()),
        )
        .unwrap();
        assert_eq!(c.host, "flag-host");
        assert_eq!(c.slots, vec![9000]);
        assert_eq!(c.heartbeat_secs, 7);
        assert_eq!(c.data_dir, PathBuf::from("/d"));
        assert_eq!(c.id.as_deref(), Some("x"));
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
        let c = SupervisorConfig::resolve(
            Some((p, text)),
            with_flag,
            Some("http://env:2".into()),
            None,
        )
        .unwrap();
        assert_eq!(c.nimbus, "http://flag:3", "the flag beats env");
        assert_eq!(c.secret.as_deref(), Some("file"));
    }

    #[test]
    fn mistakes_are_named() {
        let e = resolve("[supervisor]\nslot = [1]\n", ConfigOverrides::default()).unwrap_err();
        assert!(e.to_string().contains("slot"), "{e}");
        let e = resolve("[supervisor]\nslots = [1, 1]\n", ConfigOverrides::default()).unwrap_err();
        assert!(e.to_string().contains("port 1 is listed twice"), "{e}");
        let e = resolve("[supervisor]\nslots = []\n", ConfigOverrides::default()).unwrap_err();
        assert!(e.to_string().contains("slots is empty"), "{e}");
        let e = resolve(
            "[supervisor]\nslots = [70000]\n",
            ConfigOverrides::default(),
        )
        .unwrap_err();
        assert!(e.to_string().contains("t.toml"), "{e}");
        let e = resolve(
            "[supervisor]\nheartbeat_secs = 0\n",
            ConfigOverrides::default(),
        )
        .unwrap_err();
        assert!(e.to_string().contains("heartbeat_secs = 0"), "{e}");
        let e = resolve("[supervisor]\nid = \"a/b\"\n", ConfigOverrides::default()).unwrap_err();
        assert!(e.to_string().contains("\"a/b\""), "{e}");
    }

    #[test]
    fn the_log_server_can_be_placed_or_turned_off() {
        let c = resolve(
            "[supervisor]\nhttp_listen = \"0.0.0.0:8000\"\n",
            ConfigOverrides::default(),
        )
        .unwrap();
        assert_eq!(c.http_listen.as_deref(), Some("0.0.0.0:8000"));
        let off = ConfigOverrides {
            http_listen: Some("off".into()),
            ..ConfigOverrides::default()
        };
        let c = resolve("[supervisor]\nhttp_listen = \"0.0.0.0:8000\"\n", off).unwrap();
        assert_eq!(c.http_listen, None, "the flag beats the file");
        let c = resolve("[supervisor]\nhost = \"::1\"\n", ConfigOverrides::default()).unwrap();
        assert_eq!(c.http_listen.as_deref(), Some("[::1]:0"));
        let e = resolve(
            "[supervisor]\nhttp_listen = \"8000\"\n",
            ConfigOverrides::default(),
        )
        .unwrap_err();
        assert!(e.to_string().contains("http_listen \"8000\""), "{e}");
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
