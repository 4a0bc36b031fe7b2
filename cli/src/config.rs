//! Where the CLI finds Nimbus and the cluster secret: `--nimbus`, then `TEMPEST_NIMBUS`, then
//! `[client] nimbus` in the config file (`--config FILE`, else `./tempest.toml` if it exists),
//! else `http://127.0.0.1:6627`; the secret from `TEMPEST_SECRET`, else the file's `secret`.

use crate::error::CliError;
use serde::Deserialize;
use std::fmt;
use std::path::{Path, PathBuf};
use topology_api::control::{NIMBUS_ENV, SECRET_ENV};

/// Nimbus's address when nothing else names one.
pub const DEFAULT_NIMBUS: &str = "http://127.0.0.1:6627";
/// The config file read when `--config` is not given (if it exists).
pub const DEFAULT_CONFIG_FILE: &str = "tempest.toml";
/// Larger config files are refused (it is a few dozen lines).
const MAX_CONFIG_BYTES: u64 = 1 << 20;

/// The parts of the shared config file (`deploy/tempest.toml`) the CLI reads. The `[nimbus]`
/// and `[supervisor]` sections belong to the daemons; they are accepted and ignored here.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileConfig {
    /// The cluster secret.
    #[serde(default)]
    pub secret: Option<String>,
    /// The CLI's section.
    #[serde(default)]
    pub client: ClientSection,
    /// Nimbus's section (not read by the CLI).
    #[serde(default)]
    #[expect(
        dead_code,
        reason = "accepted so the shared file parses; read by nimbus"
    )]
    pub nimbus: Option<toml::Table>,
    /// The supervisors' section (not read by the CLI).
    #[serde(default)]
    #[expect(
        dead_code,
        reason = "accepted so the shared file parses; read by supervisors"
    )]
    pub supervisor: Option<toml::Table>,
}

/// `[client]`: its keys are the `tempest` long flags, with `_` for `-`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClientSection {
    /// Nimbus URL.
    #[serde(default)]
    pub nimbus: Option<String>,
}

/// A config file and what it says.
#[derive(Debug)]
pub struct LoadedFile {
    /// Where it was read from.
    pub path: PathBuf,
    /// Its contents.
    pub config: FileConfig,
}

/// Where the Nimbus URL came from (named in errors, so a wrong address is easy to trace).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NimbusSource {
    /// `--nimbus`.
    Flag,
    /// `TEMPEST_NIMBUS`.
    Env,
    /// `[client] nimbus` in this file.
    File(PathBuf),
    /// Nothing named one.
    Default,
}

impl fmt::Display for NimbusSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            NimbusSource::Flag => write!(f, "--nimbus"),
            NimbusSource::Env => write!(f, "{NIMBUS_ENV}"),
            NimbusSource::File(p) => write!(f, "[client] nimbus in {}", p.display()),
            NimbusSource::Default => write!(
                f,
                "the default; set --nimbus, {NIMBUS_ENV} or [client] nimbus in {DEFAULT_CONFIG_FILE}"
            ),
        }
    }
}

/// What the CLI connects to, and with which secret.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settings {
    /// Nimbus's URL.
    pub nimbus: String,
    /// Where it came from.
    pub nimbus_from: NimbusSource,
    /// The cluster secret, if any.
    pub secret: Option<String>,
}

/// Reads the config file: `explicit` must exist; otherwise `default` is read if it exists.
pub fn load(explicit: Option<&Path>, default: &Path) -> Result<Option<LoadedFile>, CliError> {
    let path = match explicit {
        Some(p) => p,
        None if default.is_file() => default,
        None => return Ok(None),
    };
    let unreadable = |e: std::io::Error| {
        CliError::Usage(format!("cannot read config file {}: {e}", path.display()))
    };
    let len = std::fs::metadata(path).map_err(unreadable)?.len();
    if len > MAX_CONFIG_BYTES {
        return Err(CliError::Usage(format!(
            "config file {} is {len} bytes; a Tempest config file is at most {MAX_CONFIG_BYTES}",
            path.display()
        )));
    }
    let text = std::fs::read_to_string(path).map_err(unreadable)?;
    let config = parse(&text)
        .map_err(|e| CliError::Usage(format!("config file {}: {e}", path.display())))?;
    Ok(Some(LoadedFile {
        path: path.to_path_buf(),
        config,
    }))
}

/// Parses config file text; the error names the line.
pub fn parse(text: &str) -> Result<FileConfig, String> {
    toml::from_str(text).map_err(|e| {
        let line = e
            .span()
            .map(|s| text[..s.start.min(text.len())].matches('\n').count() + 1);
        let message = e.message().trim();
        match line {
            Some(n) => format!("line {n}: {message}"),
            None => message.to_string(),
        }
    })
}

/// Resolves the Nimbus URL and secret. `env` looks up an environment variable; an empty value
/// counts as unset.
pub fn resolve(
    flag: Option<&str>,
    env: impl Fn(&str) -> Option<String>,
    file: Option<&LoadedFile>,
) -> Settings {
    let env = |key: &str| env(key).filter(|v| !v.trim().is_empty());
    let from_file = file.and_then(|f| {
        f.config
            .client
            .nimbus
            .clone()
            .filter(|v| !v.trim().is_empty())
            .map(|url| (url, NimbusSource::File(f.path.clone())))
    });
    let (nimbus, nimbus_from) = flag
        .map(|url| (url.to_string(), NimbusSource::Flag))
        .or_else(|| env(NIMBUS_ENV).map(|url| (url, NimbusSource::Env)))
        .or(from_file)
        .unwrap_or_else(|| (DEFAULT_NIMBUS.to_string(), NimbusSource::Default));
    let secret = env(SECRET_ENV).or_else(|| {
        file.and_then(|f| f.config.secret.clone())
            .filter(|s| !s.is_empty())
    });
    Settings {
        nimbus: nimbus.trim().to_string(),
        nimbus_from,
        secret,
    }
}

/// The settings for this process: its flags, environment and config file.
pub fn settings(flag: Option<&str>, config: Option<&Path>) -> Result<Settings, CliError> {
    let file = load(config, Path::new(DEFAULT_CONFIG_FILE))?;
    let settings = resolve(flag, |k| std::env::var(k).ok(), file.as_ref());
    tracing::debug!(
        nimbus = %settings.nimbus,
        from = %settings.nimbus_from,
        secret = settings.secret.is_some(),
        "resolved settings"
    );
    Ok(settings)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn file(text: &str) -> LoadedFile {
        LoadedFile {
            path: PathBuf::from("/etc/tempest/tempest.toml"),
            config: parse(text).unwrap(),
        }
    }

    fn env(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let map: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        move |k| map.get(k).cloned()
    }

    const FILE: &str = r#"
        secret = "from-file"
        [client]
        nimbus = "http://file:6627"
        [nimbus]
        listen = "0.0.0.0:6627"
        [supervisor]
        slots = [6700, 6701]
    "#;

    #[test]
    fn the_flag_wins_over_env_and_file() {
        let f = file(FILE);
        let s = resolve(
            Some("http://flag:1"),
            env(&[(NIMBUS_ENV, "http://env:2")]),
            Some(&f),
        );
        assert_eq!(s.nimbus, "http://flag:1");
        assert_eq!(s.nimbus_from, NimbusSource::Flag);
    }

    #[test]
    fn env_wins_over_file() {
        let f = file(FILE);
        let s = resolve(None, env(&[(NIMBUS_ENV, "http://env:2")]), Some(&f));
        assert_eq!(s.nimbus, "http://env:2");
        assert_eq!(s.nimbus_from, NimbusSource::Env);
    }

    #[test]
    fn file_wins_over_default() {
        let f = file(FILE);
        let s = resolve(None, env(&[]), Some(&f));
        assert_eq!(s.nimbus, "http://file:6627");
        assert_eq!(s.nimbus_from, NimbusSource::File(f.path.clone()));
        assert!(s
            .nimbus_from
            .to_string()
            .contains("/etc/tempest/tempest.toml"));
    }

    #[test]
    fn default_when_nothing_names_nimbus() {
        let s = resolve(None, env(&[(NIMBUS_ENV, "  ")]), Some(&file("")));
        assert_eq!(s.nimbus, DEFAULT_NIMBUS);
        assert_eq!(s.nimbus_from, NimbusSource::Default);
        assert_eq!(s.secret, None);
        let s = resolve(None, env(&[]), None);
        assert_eq!(s.nimbus, DEFAULT_NIMBUS);
    }

    #[test]
    fn secret_from_env_then_file() {
        let f = file(FILE);
        let s = resolve(None, env(&[(SECRET_ENV, "from-env")]), Some(&f));
        assert_eq!(s.secret.as_deref(), Some("from-env"));
        let s = resolve(None, env(&[(SECRET_ENV, "")]), Some(&f));
        assert_eq!(s.secret.as_deref(), Some("from-file"));
        let s = resolve(None, env(&[]), None);
        assert_eq!(s.secret, None);
    }

    #[test]
    fn typos_are_reported_with_their_line() {
        let e = parse("secret = \"x\"\n[client]\nnimbus_url = \"http://x\"\n").unwrap_err();
        assert!(e.starts_with("line 3:"), "{e}");
        assert!(e.contains("nimbus_url"), "{e}");
        let e = parse("secrte = \"x\"").unwrap_err();
        assert!(e.contains("secrte"), "{e}");
        let e = parse("[client]\nnimbus = 6627\n").unwrap_err();
        assert!(e.starts_with("line 2:"), "{e}");
    }

    #[test]
    fn a_missing_default_file_is_fine_but_a_missing_named_file_is_not() {
        let missing = Path::new("/nonexistent/tempest.toml");
        assert!(load(None, missing).unwrap().is_none());
        let e = load(Some(missing), missing).unwrap_err();
        assert!(
            matches!(&e, CliError::Usage(m) if m.contains("/nonexistent/tempest.toml")),
            "{e:?}"
        );
    }

    #[test]
    fn the_deployed_sample_parses() {
        let text = include_str!("../../deploy/tempest.toml");
        let f = parse(text).unwrap();
        assert_eq!(f.client.nimbus.as_deref(), Some(DEFAULT_NIMBUS));
        assert_eq!(f.secret, None, "the sample must not ship a secret");
    }
}
