//! The Storm config keys shell components read.

use std::time::Duration;
use topology_api::Config;

pub use topology_api::config::{
    TOPOLOGY_MULTILANG_SERIALIZER, TOPOLOGY_SHELL_BOLT_MAX_PENDING,
    TOPOLOGY_SUBPROCESS_TIMEOUT_SECS,
};
/// Storm's fallback for the subprocess timeout.
pub const SUPERVISOR_WORKER_TIMEOUT_SECS: &str = "supervisor.worker.timeout.secs";
/// Storm's JSON serializer, the default and only accepted value of the serializer key.
pub const JSON_SERIALIZER: &str = "org.apache.storm.multilang.JsonSerializer";

/// What a shell component's config says.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Settings {
    pub timeout: Duration,
    pub max_pending: usize,
}

impl Settings {
    pub(crate) fn of(config: &Config) -> Result<Settings, String> {
        let serializer = config
            .str_or(TOPOLOGY_MULTILANG_SERIALIZER, JSON_SERIALIZER)
            .map_err(|e| e.to_string())?;
        if serializer != JSON_SERIALIZER && serializer != "json" {
            return Err(format!(
                "{TOPOLOGY_MULTILANG_SERIALIZER} is {serializer:?}: Tempest speaks only Storm's JSON serializer ({JSON_SERIALIZER:?}); remove the key or set it to that"
            ));
        }
        let fallback = config
            .u64_or(SUPERVISOR_WORKER_TIMEOUT_SECS, 30)
            .map_err(|e| e.to_string())?;
        let secs = config
            .u64_or(TOPOLOGY_SUBPROCESS_TIMEOUT_SECS, fallback)
            .map_err(|e| e.to_string())?;
        if secs == 0 {
            return Err(format!(
                "{TOPOLOGY_SUBPROCESS_TIMEOUT_SECS} must be at least 1"
            ));
        }
        let max_pending = config
            .u64_or(TOPOLOGY_SHELL_BOLT_MAX_PENDING, 100)
            .map_err(|e| e.to_string())?
            .max(1) as usize;
        Ok(Settings {
            timeout: Duration::from_secs(secs),
            max_pending,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_json_serializer_is_accepted() {
        let mut c = Config::new();
        assert_eq!(Settings::of(&c).unwrap().timeout, Duration::from_secs(30));
        c.set(
            TOPOLOGY_MULTILANG_SERIALIZER,
            "org.example.MsgpackSerializer",
        );
        let e = Settings::of(&c).unwrap_err();
        assert!(
            e.contains("MsgpackSerializer") && e.contains("only Storm's JSON"),
            "{e}"
        );
        c.set(TOPOLOGY_MULTILANG_SERIALIZER, JSON_SERIALIZER);
        c.set(SUPERVISOR_WORKER_TIMEOUT_SECS, 7);
        assert_eq!(Settings::of(&c).unwrap().timeout, Duration::from_secs(7));
        c.set(TOPOLOGY_SUBPROCESS_TIMEOUT_SECS, 3);
        assert_eq!(Settings::of(&c).unwrap().timeout, Duration::from_secs(3));
    }
}
