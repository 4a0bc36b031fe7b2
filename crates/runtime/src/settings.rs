//! The runtime settings of a topology or component: its config read once, with defaults.

use tempest_protocol::config::*;

/// The runtime settings read from a config, resolved once with defaults and checked.
#[derive(Debug, Clone)]
pub(crate) struct RuntimeSettings {
    pub(crate) ackers: u32,
    pub(crate) message_timeout: std::time::Duration,
    pub(crate) max_spout_pending: usize,
    pub(crate) receive_buffer: usize,
    pub(crate) batch_size: usize,
    pub(crate) flush_interval: std::time::Duration,
    pub(crate) spout_spin: std::time::Duration,
}

impl RuntimeSettings {
    pub(crate) fn from_config(c: &Config) -> Result<Self, ConfigError> {
        Ok(RuntimeSettings {
            ackers: c.u64_or(TOPOLOGY_ACKER_EXECUTORS, 1)? as u32,
            message_timeout: std::time::Duration::from_secs(
                c.u64_or(TOPOLOGY_MESSAGE_TIMEOUT_SECS, 30)?.max(1),
            ),
            max_spout_pending: c.u64_or(TOPOLOGY_MAX_SPOUT_PENDING, 5000)?.max(1) as usize,
            receive_buffer: c.u64_or(TOPOLOGY_EXECUTOR_RECEIVE_BUFFER_SIZE, 64)?.max(1) as usize,
            batch_size: c.u64_or(TOPOLOGY_TRANSFER_BATCH_SIZE, 128)?.max(1) as usize,
            flush_interval: std::time::Duration::from_micros(
                c.u64_or(TOPOLOGY_BATCH_FLUSH_MICROS, 500)?,
            ),
            spout_spin: std::time::Duration::from_micros(
                c.u64_or(TOPOLOGY_SPOUT_SPIN_MICROS, 200)?,
            ),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_in_the_table_are_the_defaults_used() {
        let s = RuntimeSettings::from_config(&Config::new()).unwrap();
        let table = |k: &str| known_key(k).expect("a known key").default;
        assert_eq!(s.ackers.to_string(), table(TOPOLOGY_ACKER_EXECUTORS));
        assert_eq!(
            s.message_timeout.as_secs().to_string(),
            table(TOPOLOGY_MESSAGE_TIMEOUT_SECS)
        );
        assert_eq!(
            s.max_spout_pending.to_string(),
            table(TOPOLOGY_MAX_SPOUT_PENDING)
        );
        assert_eq!(
            s.receive_buffer.to_string(),
            table(TOPOLOGY_EXECUTOR_RECEIVE_BUFFER_SIZE)
        );
        assert_eq!(
            s.batch_size.to_string(),
            table(TOPOLOGY_TRANSFER_BATCH_SIZE)
        );
        assert_eq!(
            s.flush_interval.as_micros().to_string(),
            table(TOPOLOGY_BATCH_FLUSH_MICROS)
        );
        let spin = table(TOPOLOGY_SPOUT_SPIN_MICROS).split(' ').next().unwrap();
        assert_eq!(s.spout_spin.as_micros().to_string(), spin);
    }
}
