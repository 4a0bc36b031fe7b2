//! Where the CLI finds Nimbus and the cluster secret, through the one loader of
//! `tempest_server::config`: `--nimbus`, then `TEMPEST_NIMBUS` (or `TEMPEST_CLIENT_NIMBUS`), then
//! `[client] nimbus` in the config file (`--config FILE`, else `./tempest.toml` if it exists),
//! else `http://127.0.0.1:6627`; the credential from `TEMPEST_TOKEN` or `[client] token` (a
//! user's token), else the cluster secret from `TEMPEST_SECRET`, else the file's `secret`.

use serde::{Deserialize, Serialize};
use std::fmt;
use std::path::{Path, PathBuf};
use tempest_protocol::auth::{DEFAULT_NIMBUS, NIMBUS_ENV, TOKEN_ENV};
use tempest_server::config::{load, Sources};

/// The config file read when `--config` is not given (if it exists).
pub(crate) const DEFAULT_CONFIG_FILE: &str = "tempest.toml";

/// `[client]`: its keys are the `tempest` long flags, with `_` for `-`.
#[derive(Debug, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct ClientSection {
    /// Nimbus URL, or a seed list (commas, or a TOML list).
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "tempest_protocol::seeds::deserialize"
    )]
    nimbus: Option<String>,
    /// A user's token (also `TEMPEST_TOKEN`); sent instead of the cluster secret.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    token: Option<String>,
}

/// Where the Nimbus URL came from (named in errors, so a wrong address is easy to trace).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum NimbusSource {
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
pub(crate) struct Settings {
    /// Nimbus's URL, or a comma-separated seed list.
    pub nimbus: String,
    /// Where it came from.
    pub nimbus_from: NimbusSource,
    /// The credential sent: the user's token if one is set, else the cluster secret.
    pub secret: Option<String>,
}

/// The settings from `flag` (`--nimbus`), the environment and the config file: `explicit`
/// (which must exist), else `default` if it exists.
pub(crate) fn resolve(
    flag: Option<&str>,
    explicit: Option<&Path>,
    default: &Path,
) -> Result<Settings, String> {
    let file = explicit.or_else(|| default.is_file().then_some(default));
    let flags = ClientSection {
        nimbus: flag.map(str::to_string),
        token: None,
    };
    let sources = Sources {
        file,
        section: "client",
        env_aliases: &[(NIMBUS_ENV, "nimbus"), (TOKEN_ENV, "token")],
    };
    let loaded = load::<ClientSection, _, _>(sources, &ClientSection::default(), &flags)
        .map_err(|e| e.to_string())?;
    let env_set = |var: &str| std::env::var(var).is_ok_and(|v| !v.trim().is_empty());
    let nimbus = loaded.config.nimbus.filter(|v| !v.trim().is_empty());
    let nimbus_from = match (&nimbus, flag) {
        (None, _) => NimbusSource::Default,
        (Some(_), Some(_)) => NimbusSource::Flag,
        (Some(_), None) if env_set(NIMBUS_ENV) || env_set("TEMPEST_CLIENT_NIMBUS") => {
            NimbusSource::Env
        }
        (Some(_), None) => NimbusSource::File(file.map(Path::to_path_buf).unwrap_or_default()),
    };
    Ok(Settings {
        nimbus: nimbus
            .unwrap_or_else(|| DEFAULT_NIMBUS.to_string())
            .trim()
            .to_string(),
        nimbus_from,
        secret: loaded
            .config
            .token
            .filter(|t| !t.trim().is_empty())
            .map(|t| t.trim().to_string())
            .or(loaded.secret),
    })
}

/// The settings for this process: its flags, environment and config file.
pub(crate) fn settings(flag: Option<&str>, config: Option<&Path>) -> Result<Settings, String> {
    let settings = resolve(flag, config, Path::new(DEFAULT_CONFIG_FILE))?;
    tracing::debug!(
        nimbus = %settings.nimbus,
        from = %settings.nimbus_from,
        secret = settings.secret.is_some(),
        "resolved settings"
    );
    Ok(settings)
}

#[cfg(test)]
// figment::Jail's closures return figment::Error, which is large; only in tests.
#[allow(clippy::result_large_err)]
mod tests {
    use super::*;
    use figment::Jail;

    const FILE: &str = r#"
        secret = "from-file"
        [client]
        nimbus = "http://file:6627"
        [nimbus]
        listen = "0.0.0.0:6627"
        [supervisor]
        slots = [6700, 6701]
    "#;

    fn with_file(jail: &mut Jail, text: &str) -> PathBuf {
        jail.create_file("tempest.toml", text).expect("file");
        jail.directory().join("tempest.toml")
    }

    #[test]
    fn the_flag_wins_over_env_and_file() {
        Jail::expect_with(|jail| {
            let f = with_file(jail, FILE);
            jail.set_env(NIMBUS_ENV, "http://env:2");
            let s = resolve(Some("http://flag:1"), Some(&f), &f).unwrap();
            assert_eq!(s.nimbus, "http://flag:1");
            assert_eq!(s.nimbus_from, NimbusSource::Flag);
            Ok(())
        });
    }

    #[test]
    fn env_wins_over_file_and_file_over_default() {
        Jail::expect_with(|jail| {
            let f = with_file(jail, FILE);
            jail.set_env(NIMBUS_ENV, "http://env:2");
            let s = resolve(None, None, &f).unwrap();
            assert_eq!(s.nimbus, "http://env:2");
            assert_eq!(s.nimbus_from, NimbusSource::Env);
            jail.clear_env();
            let s = resolve(None, None, &f).unwrap();
            assert_eq!(s.nimbus, "http://file:6627");
            assert_eq!(s.nimbus_from, NimbusSource::File(f.clone()));
            assert!(s.nimbus_from.to_string().contains("tempest.toml"));
            Ok(())
        });
    }

    #[test]
    fn every_source_takes_a_seed_list() {
        Jail::expect_with(|jail| {
            let f = with_file(
                jail,
                "[client]\nnimbus = [\"http://a:6627\", \"http://b:6627\"]\n",
            );
            let s = resolve(None, None, &f).unwrap();
            assert_eq!(s.nimbus, "http://a:6627,http://b:6627");
            jail.set_env(NIMBUS_ENV, "http://c:1,http://d:2");
            let s = resolve(None, None, &f).unwrap();
            assert_eq!(s.nimbus, "http://c:1,http://d:2");
            let s = resolve(Some("http://e:1,http://f:2"), None, &f).unwrap();
            assert_eq!(s.nimbus, "http://e:1,http://f:2");
            Ok(())
        });
    }

    #[test]
    fn default_when_nothing_names_nimbus() {
        Jail::expect_with(|jail| {
            let missing = jail.directory().join("none.toml");
            let s = resolve(None, None, &missing).unwrap();
            assert_eq!(s.nimbus, DEFAULT_NIMBUS);
            assert_eq!(s.nimbus_from, NimbusSource::Default);
            assert_eq!(s.secret, None);
            Ok(())
        });
    }

    #[test]
    fn secret_from_env_then_file() {
        Jail::expect_with(|jail| {
            let f = with_file(jail, FILE);
            jail.set_env("TEMPEST_SECRET", "from-env");
            assert_eq!(
                resolve(None, None, &f).unwrap().secret.as_deref(),
                Some("from-env")
            );
            jail.clear_env();
            assert_eq!(
                resolve(None, None, &f).unwrap().secret.as_deref(),
                Some("from-file")
            );
            Ok(())
        });
    }

    #[test]
    fn a_token_wins_over_the_secret() {
        Jail::expect_with(|jail| {
            let f = with_file(jail, FILE);
            jail.set_env("TEMPEST_SECRET", "from-env");
            jail.set_env(TOKEN_ENV, "tpt_env");
            assert_eq!(
                resolve(None, None, &f).unwrap().secret.as_deref(),
                Some("tpt_env")
            );
            jail.clear_env();
            let f = with_file(jail, "secret = \"s\"\n[client]\ntoken = \"tpt_file\"\n");
            assert_eq!(
                resolve(None, None, &f).unwrap().secret.as_deref(),
                Some("tpt_file")
            );
            Ok(())
        });
    }

    #[test]
    fn typos_are_reported_with_their_key_and_file() {
        Jail::expect_with(|jail| {
            let f = with_file(
                jail,
                "secret = \"x\"\n[client]\nnimbus_url = \"http://x\"\n",
            );
            let e = resolve(None, None, &f).unwrap_err();
            assert!(
                e.contains("nimbus_url") && e.contains("tempest.toml"),
                "{e}"
            );
            let f = with_file(jail, "secrte = \"x\"");
            let e = resolve(None, None, &f).unwrap_err();
            assert!(e.contains("secrte"), "{e}");
            let f = with_file(jail, "[client]\nnimbus = 6627\n");
            let e = resolve(None, None, &f).unwrap_err();
            assert!(e.contains("nimbus"), "{e}");
            Ok(())
        });
    }

    #[test]
    fn a_missing_default_file_is_fine_but_a_missing_named_file_is_not() {
        Jail::expect_with(|_| {
            let missing = Path::new("/nonexistent/tempest.toml");
            assert!(resolve(None, None, missing).is_ok());
            let e = resolve(None, Some(missing), missing).unwrap_err();
            assert!(e.contains("/nonexistent/tempest.toml"), "{e}");
            Ok(())
        });
    }

    #[test]
    fn the_deployed_sample_parses() {
        Jail::expect_with(|jail| {
            let f = with_file(jail, include_str!("../../deploy/tempest.toml"));
            let s = resolve(None, None, &f).unwrap();
            assert_eq!(s.nimbus, DEFAULT_NIMBUS);
            assert_eq!(s.secret, None, "the sample must not ship a secret");
            Ok(())
        });
    }
}
