//! A process's configuration, in layers (figment): built-in defaults < the shared TOML file
//! (`deploy/tempest.toml`: its `[<section>]` and the top-level `secret`) < environment
//! variables (`TEMPEST_<SECTION>_<KEY>`, e.g. `TEMPEST_NIMBUS_LISTEN`, plus each daemon's
//! documented aliases such as `TEMPEST_NIMBUS` and `TEMPEST_SECRET`) < command-line flags. One
//! loader for Nimbus, supervisors and the CLI; an unknown key or a value of the wrong type is
//! an error naming the key and where it came from.

use figment::providers::{Env, Format, Serialized, Toml};
use figment::Figment;
use serde::de::DeserializeOwned;
use serde::Serialize;
use std::path::Path;

/// The environment variable that holds the cluster secret (top-level `secret`).
pub const SECRET_VAR: &str = "TEMPEST_SECRET";

/// The top-level keys of the shared file: the secret and one section per kind of process.
pub const TOP_LEVEL_KEYS: [&str; 4] = ["secret", "nimbus", "supervisor", "client"];

/// Where a process's config comes from, besides the defaults.
#[derive(Debug, Clone, Copy)]
pub struct Sources<'a> {
    /// The shared TOML file, if one is given (it must then exist).
    pub file: Option<&'a Path>,
    /// The file's section of this process (`nimbus`, `supervisor`, `client`).
    pub section: &'a str,
    /// Environment variables that set a key of the section: `(variable, key)`.
    pub env_aliases: &'a [(&'a str, &'a str)],
}

/// A loaded config: the section, and the cluster secret (`TEMPEST_SECRET`, else the file's
/// top-level `secret`; an empty one is none).
#[derive(Clone)]
pub struct Loaded<T> {
    /// The section.
    pub config: T,
    /// The cluster secret.
    pub secret: Option<String>,
}

impl<T: std::fmt::Debug> std::fmt::Debug for Loaded<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Loaded")
            .field("config", &self.config)
            .field("secret", &self.secret.as_ref().map(|_| "<redacted>"))
            .finish()
    }
}

/// Why a config could not be loaded: the key, the value and the layer it came from.
#[derive(Debug, thiserror::Error)]
#[error("config: {0}")]
pub struct ConfigError(String);

impl From<figment::Error> for ConfigError {
    fn from(e: figment::Error) -> Self {
        let all: Vec<String> = e.into_iter().map(|e| e.to_string()).collect();
        ConfigError(all.join("; "))
    }
}

/// Loads section `sources.section` into `T`: `defaults`, then the file, then the environment,
/// then `flags` (a struct whose `None` fields are skipped, e.g. with
/// `#[serde(skip_serializing_if = "Option::is_none")]`). `T` should deny unknown fields.
pub fn load<T, D, F>(
    sources: Sources<'_>,
    defaults: &D,
    flags: &F,
) -> Result<Loaded<T>, ConfigError>
where
    T: DeserializeOwned,
    D: Serialize,
    F: Serialize,
{
    let section = sources.section;
    let mut figment = Figment::new().merge(Serialized::default(section, defaults));
    if let Some(path) = sources.file {
        if !path.is_file() {
            return Err(ConfigError(format!(
                "config file {} does not exist (or is not a file)",
                path.display()
            )));
        }
        figment = figment.merge(Toml::file_exact(path));
    }
    let prefix = format!("TEMPEST_{}_", section.to_ascii_uppercase());
    let aliases: Vec<(String, String)> = sources
        .env_aliases
        .iter()
        .map(|(var, key)| (var.to_string(), format!("{section}.{key}")))
        .collect();
    let section_owned = section.to_string();
    figment = figment
        .merge(Env::raw().filter_map(move |var| {
            let var = var.as_str();
            if let Some((_, key)) = aliases.iter().find(|(a, _)| var.eq_ignore_ascii_case(a)) {
                return Some(key.clone().into());
            }
            let upper = var.to_ascii_uppercase();
            upper
                .strip_prefix(&prefix)
                .filter(|rest| !rest.is_empty())
                .map(|rest| format!("{section_owned}.{}", rest.to_ascii_lowercase()).into())
        }))
        .merge(Env::raw().only(&[SECRET_VAR]).map(|_| "secret".into()))
        .merge(Serialized::default(section, flags));
    let top: std::collections::BTreeMap<String, figment::value::Value> = figment.extract()?;
    let known = |k: &str| TOP_LEVEL_KEYS.contains(&k) || k == section;
    if let Some(unknown) = top.keys().find(|k| !known(k)) {
        return Err(ConfigError(format!(
            "unknown top-level key {unknown:?}{}; the file has `secret` and the sections {:?}",
            sources
                .file
                .map(|p| format!(" in {}", p.display()))
                .unwrap_or_default(),
            &TOP_LEVEL_KEYS[1..]
        )));
    }
    let config: T = figment.extract_inner(section)?;
    let secret: Option<String> = match figment.find_value("secret") {
        Ok(v) => v.into_string().filter(|s| !s.is_empty()),
        Err(_) => None,
    };
    Ok(Loaded { config, secret })
}

#[cfg(test)]
// figment::Jail's closures return figment::Error, which is large; only in tests.
#[allow(clippy::result_large_err)]
mod tests {
    use super::*;
    use serde::Deserialize;

    #[derive(Debug, Serialize, Deserialize, PartialEq)]
    #[serde(deny_unknown_fields)]
    struct Section {
        listen: String,
        timeout_secs: u64,
    }

    #[derive(Serialize, Default)]
    struct Flags {
        #[serde(skip_serializing_if = "Option::is_none")]
        timeout_secs: Option<u64>,
    }

    fn defaults() -> Section {
        Section {
            listen: "127.0.0.1:1".into(),
            timeout_secs: 15,
        }
    }

    #[test]
    fn file_then_env_then_flags_and_the_secret() {
        figment::Jail::expect_with(|jail| {
            jail.create_file(
                "t.toml",
                "secret = \"s3cret\"\n[demo]\nlisten = \"0.0.0.0:7\"\ntimeout_secs = 3\n[client]\nnimbus = \"x\"\n",
            )?;
            let sources = Sources {
                file: Some(Path::new("t.toml")),
                section: "demo",
                env_aliases: &[("TEMPEST_DEMO_ADDR", "listen")],
            };
            let l: Loaded<Section> = load(sources, &defaults(), &Flags::default()).unwrap();
            assert_eq!(
                l.config,
                Section {
                    listen: "0.0.0.0:7".into(),
                    timeout_secs: 3
                }
            );
            assert_eq!(l.secret.as_deref(), Some("s3cret"));
            assert!(!format!("{l:?}").contains("s3cret"));

            jail.set_env("TEMPEST_DEMO_TIMEOUT_SECS", "9");
            jail.set_env("TEMPEST_DEMO_ADDR", "10.0.0.1:8");
            jail.set_env("TEMPEST_SECRET", "from-env");
            let l: Loaded<Section> = load(sources, &defaults(), &Flags::default()).unwrap();
            assert_eq!(
                l.config,
                Section {
                    listen: "10.0.0.1:8".into(),
                    timeout_secs: 9
                }
            );
            assert_eq!(l.secret.as_deref(), Some("from-env"));

            let flags = Flags {
                timeout_secs: Some(1),
            };
            let l: Loaded<Section> = load(sources, &defaults(), &flags).unwrap();
            assert_eq!(l.config.timeout_secs, 1, "flags win");
            Ok(())
        });
    }

    #[test]
    fn unknown_keys_wrong_types_and_missing_files_are_named() {
        figment::Jail::expect_with(|jail| {
            jail.create_file("t.toml", "[demo]\nlisten_addr = \"x\"\n")?;
            let sources = Sources {
                file: Some(Path::new("t.toml")),
                section: "demo",
                env_aliases: &[],
            };
            let e = load::<Section, _, _>(sources, &defaults(), &Flags::default())
                .unwrap_err()
                .to_string();
            assert!(e.contains("listen_addr") && e.contains("t.toml"), "{e}");
            jail.create_file("v.toml", "secrte = \"x\"\n")?;
            let sources_v = Sources {
                file: Some(Path::new("v.toml")),
                ..sources
            };
            let e = load::<Section, _, _>(sources_v, &defaults(), &Flags::default())
                .unwrap_err()
                .to_string();
            assert!(e.contains("\"secrte\"") && e.contains("v.toml"), "{e}");
            jail.create_file("u.toml", "[demo]\ntimeout_secs = \"soon\"\n")?;
            let sources = Sources {
                file: Some(Path::new("u.toml")),
                ..sources
            };
            let e = load::<Section, _, _>(sources, &defaults(), &Flags::default())
                .unwrap_err()
                .to_string();
            assert!(e.contains("timeout_secs") && e.contains("soon"), "{e}");
            let sources = Sources {
                file: Some(Path::new("nope.toml")),
                ..sources
            };
            let e = load::<Section, _, _>(sources, &defaults(), &Flags::default())
                .unwrap_err()
                .to_string();
            assert!(
                e.contains("nope.toml") && e.contains("does not exist"),
                "{e}"
            );
            Ok(())
        });
    }
}
