//! When a failed record is emitted again: exponential back-off, Storm's
//! `KafkaSpoutRetryExponentialBackoff`.

use std::time::Duration;

/// Exponential back-off for failed records (at-least-once only).
///
/// The first retry waits `initial_delay`; retry `n` (n >= 2) waits `delay_period * 2^(n-1)`,
/// never more than `max_delay`. After `max_retries` retries (so `max_retries + 1` attempts) the
/// record is given up on: counted, logged, emitted on the dead-letter stream if one is set, and
/// then treated as done so its offset can be committed. `None` retries forever.
///
/// The default is Storm's: 0 ms, then 4 ms, 8 ms, 16 ms ... capped at 10 s, forever.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Wait before the first retry.
    pub initial_delay: Duration,
    /// Base of the exponential wait of later retries.
    pub delay_period: Duration,
    /// Longest wait.
    pub max_delay: Duration,
    /// Retries before a record is given up on; `None`: never.
    pub max_retries: Option<u32>,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            initial_delay: Duration::ZERO,
            delay_period: Duration::from_millis(2),
            max_delay: Duration::from_secs(10),
            max_retries: None,
        }
    }
}

impl RetryPolicy {
    /// A policy with these delays and bound.
    pub fn exponential(
        initial_delay: Duration,
        delay_period: Duration,
        max_delay: Duration,
        max_retries: Option<u32>,
    ) -> Self {
        RetryPolicy {
            initial_delay,
            delay_period,
            max_delay,
            max_retries,
        }
    }

    /// How long to wait before emitting a record again after its `fails`-th failed attempt
    /// (`fails >= 1`), or `None` if it has had all its retries.
    pub fn delay(&self, fails: u32) -> Option<Duration> {
        if self.max_retries.is_some_and(|max| fails > max) {
            return None;
        }
        let delay = if fails <= 1 {
            self.initial_delay
        } else {
            // 2^(fails-1), saturating: a record failed 64 times waits max_delay.
            let factor = 1u32.checked_shl(fails - 1).unwrap_or(u32::MAX);
            self.delay_period.saturating_mul(factor)
        };
        Some(delay.min(self.max_delay))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: Duration = Duration::from_millis(1);

    #[test]
    fn storms_default_schedule() {
        let p = RetryPolicy::default();
        let got: Vec<_> = (1..=5).map(|n| p.delay(n)).collect();
        assert_eq!(
            got,
            [
                Some(Duration::ZERO),
                Some(MS * 4),
                Some(MS * 8),
                Some(MS * 16),
                Some(MS * 32)
            ]
        );
        assert_eq!(p.delay(20), Some(Duration::from_secs(10)), "capped");
        assert_eq!(p.delay(1000), Some(Duration::from_secs(10)), "no overflow");
    }

    #[test]
    fn initial_delay_then_doubling_capped() {
        let p = RetryPolicy::exponential(MS * 100, MS * 10, MS * 150, None);
        let got: Vec<_> = (1..=5).map(|n| p.delay(n)).collect();
        assert_eq!(
            got,
            [
                Some(MS * 100),
                Some(MS * 20),
                Some(MS * 40),
                Some(MS * 80),
                Some(MS * 150)
            ]
        );
    }

    #[test]
    fn max_retries_gives_up_after_that_many_retries() {
        let p = RetryPolicy::exponential(MS, MS, MS * 10, Some(2));
        assert!(p.delay(1).is_some(), "first retry");
        assert!(p.delay(2).is_some(), "second retry");
        assert_eq!(p.delay(3), None, "three failed attempts: given up");
        let never = RetryPolicy::exponential(MS, MS, MS, Some(0));
        assert_eq!(never.delay(1), None, "no retries at all");
    }
}
