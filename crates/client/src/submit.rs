//! Submitting a topology: the checks Nimbus will make, made first (so a large binary is not
//! uploaded for nothing), then the upload and the submit request. The CLI's `tempest submit` and
//! the topology binary's own `submit` both come through here.

use crate::{ClientError, NimbusClient};
use std::path::PathBuf;
use tempest_protocol::config::{Config, TOPOLOGY_WORKERS};
use tempest_protocol::control::{ActionResponse, SubmitRequest};
use tempest_protocol::names::check_topology_name;
use tempest_protocol::spec::TopologySpec;
use tempest_protocol::validate::validate;

/// A topology to submit.
#[derive(Debug, Clone)]
pub struct Submission {
    /// The topology binary (uploaded as the artifact).
    pub binary: PathBuf,
    /// Its spec, as the binary builds it.
    pub spec: TopologySpec,
    /// The name to run it under.
    pub name: String,
    /// Config keys overriding the spec's ([`submit_overrides`]).
    pub overrides: Config,
}

/// What a submission did.
#[derive(Debug, Clone)]
pub struct Submitted {
    /// The artifact's sha256.
    pub artifact: String,
    /// The binary's size in bytes.
    pub bytes: u64,
    /// Nimbus's answer.
    pub answer: ActionResponse,
}

/// Why a topology was not submitted.
#[derive(Debug, thiserror::Error)]
pub enum SubmitError {
    /// The name, the spec or a config override is not acceptable; nothing was uploaded.
    #[error("{binary}: {reason}")]
    Invalid {
        /// The binary.
        binary: String,
        /// What is wrong.
        reason: String,
    },
    /// Uploading or submitting failed.
    #[error("{0}")]
    Client(#[from] ClientError),
}

/// The config overrides of a submission: `topology.workers` from `--workers`, then each
/// `-c key=value`. Giving the worker count both ways is refused.
pub fn submit_overrides(workers: Option<u64>, overrides: &[String]) -> Result<Config, String> {
    let mut config = Config::new();
    if let Some(k) = workers {
        config.set(TOPOLOGY_WORKERS, k);
    }
    for kv in overrides {
        let key = kv.split_once('=').map_or(kv.as_str(), |(k, _)| k).trim();
        if key == TOPOLOGY_WORKERS {
            if let Some(k) = workers {
                return Err(format!(
                    "--workers {k} and -c {kv} both set {TOPOLOGY_WORKERS}; give one of them"
                ));
            }
        }
        config.set_from_str(kv)?;
    }
    Ok(config)
}

impl Submission {
    /// The spec Nimbus will run: renamed, with the overrides applied.
    pub fn effective_spec(&self) -> TopologySpec {
        let mut spec = self.spec.clone();
        spec.name = self.name.clone();
        spec.config = spec.config.merged(&self.overrides);
        spec
    }

    /// Checks what Nimbus will check: the name, and the effective spec (wiring, config keys
    /// and values).
    pub fn check(&self) -> Result<(), SubmitError> {
        let invalid = |reason: String| SubmitError::Invalid {
            binary: self.binary.display().to_string(),
            reason,
        };
        check_topology_name(&self.name).map_err(invalid)?;
        validate(&self.effective_spec()).map_err(|e| invalid(e.to_string()))
    }
}

impl NimbusClient {
    /// Checks `submission`, uploads its binary and submits it.
    pub async fn submit_topology(&self, submission: Submission) -> Result<Submitted, SubmitError> {
        submission.check()?;
        let bytes = std::fs::metadata(&submission.binary).map_or(0, |m| m.len());
        let artifact = self.upload_artifact(&submission.binary).await?;
        let mut spec = submission.spec;
        spec.name = submission.name.clone();
        let request = SubmitRequest {
            name: submission.name,
            spec,
            artifact: artifact.clone(),
            config: submission.overrides,
        };
        let answer = self.submit(&request).await?;
        Ok(Submitted {
            artifact,
            bytes,
            answer,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn workers_and_overrides_make_the_submitted_config() {
        let c = submit_overrides(
            Some(2),
            &["topology.max.spout.pending=100".into(), "my.name=x".into()],
        )
        .unwrap();
        assert_eq!(c.u64_or(TOPOLOGY_WORKERS, 1).unwrap(), 2);
        assert_eq!(c.u64_or("topology.max.spout.pending", 0).unwrap(), 100);
        assert_eq!(c.str("my.name"), Some("x"));
        assert_eq!(submit_overrides(None, &[]).unwrap(), Config::new());
    }

    #[test]
    fn workers_given_twice_is_refused() {
        let e = submit_overrides(Some(2), &["topology.workers=3".into()]).unwrap_err();
        assert!(e.contains("--workers 2"), "{e}");
        let c = submit_overrides(None, &["topology.workers=3".into()]).unwrap();
        assert_eq!(c.u64_or(TOPOLOGY_WORKERS, 1).unwrap(), 3);
    }

    #[test]
    fn a_misspelt_override_is_refused_before_anything_is_uploaded() {
        let submission = Submission {
            binary: "/nonexistent/wc".into(),
            spec: TopologySpec {
                name: "wc".into(),
                config: Config::new(),
                components: vec![],
            },
            name: "wc".into(),
            overrides: submit_overrides(None, &["topology.max.spout.pendng=10".into()]).unwrap(),
        };
        let e = submission.check().unwrap_err().to_string();
        assert!(
            e.contains("did you mean \"topology.max.spout.pending\""),
            "{e}"
        );
    }
}
