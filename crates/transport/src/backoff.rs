//! Reconnect delays for one peer lane, and a log of failed attempts that stays short.

use crate::Lane;
use backon::{BackoffBuilder, ExponentialBackoff, ExponentialBuilder};
use std::time::Duration;

/// A connection that lived this long was healthy: the next dial starts a fresh back-off.
pub const STABLE_AFTER: Duration = Duration::from_secs(1);
/// First reconnect delay; it doubles per failed attempt up to [`MAX_DIAL_DELAY`], and each
/// delay gets up to as much again of random jitter.
pub const MIN_DIAL_DELAY: Duration = Duration::from_millis(25);
/// Longest reconnect delay before jitter.
pub const MAX_DIAL_DELAY: Duration = Duration::from_secs(1);

/// Exponential back-off with jitter for dialing one peer lane. A failure is logged when the
/// count of consecutive failures reaches a power of two (1, 2, 4, ...): a peer down for an hour
/// costs about a dozen lines.
#[derive(Debug)]
pub struct Reconnect {
    address: String,
    lane: Lane,
    delays: ExponentialBackoff,
    failures: u64,
}

impl Reconnect {
    /// Back-off for dialing `address` on `lane`.
    pub fn new(address: &str, lane: Lane) -> Self {
        Reconnect {
            address: address.to_string(),
            lane,
            delays: Self::fresh(),
            failures: 0,
        }
    }

    fn fresh() -> ExponentialBackoff {
        ExponentialBuilder::default()
            .with_min_delay(MIN_DIAL_DELAY)
            .with_max_delay(MAX_DIAL_DELAY)
            .with_jitter()
            .without_max_times()
            .build()
    }

    /// Consecutive failed attempts.
    pub fn failures(&self) -> u64 {
        self.failures
    }

    /// Records a failed attempt and logs it if the failures just reached a power of two;
    /// returns how long to wait before the next one.
    pub fn failed(&mut self, error: &str) -> Duration {
        self.failures += 1;
        if self.failures.is_power_of_two() {
            tracing::warn!(peer = %self.address, lane = ?self.lane, attempts = self.failures,
                "cannot connect to worker (retrying with back-off; next report after {} attempts): {error}",
                self.failures * 2);
        }
        self.delays.next().unwrap_or(MAX_DIAL_DELAY)
    }

    /// The delay before redialing after a connection broke: none after a healthy one (which
    /// also starts a fresh back-off), else the next back-off step.
    pub fn after_break(&mut self, lived: Duration) -> Duration {
        if lived >= STABLE_AFTER {
            self.delays = Self::fresh();
            self.failures = 0;
            Duration::ZERO
        } else {
            self.failed("the connection closed right after it opened")
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delays_grow_to_the_cap_and_a_healthy_connection_resets_them() {
        let mut r = Reconnect::new("127.0.0.1:1", Lane::Data);
        let delays: Vec<Duration> = (0..12).map(|_| r.failed("refused")).collect();
        assert!(delays[0] >= MIN_DIAL_DELAY && delays[0] <= MIN_DIAL_DELAY * 2);
        assert!(
            delays.iter().all(|d| *d <= MAX_DIAL_DELAY * 2),
            "{delays:?}"
        );
        assert!(delays[11] >= MAX_DIAL_DELAY, "{delays:?}");
        // A connection that dies at once keeps backing off; a healthy one starts afresh.
        assert!(r.after_break(Duration::from_millis(5)) >= MAX_DIAL_DELAY);
        assert_eq!(r.failures(), 13);
        assert_eq!(r.after_break(STABLE_AFTER), Duration::ZERO);
        assert_eq!(r.failures(), 0);
    }

    /// A log sink for one test.
    #[derive(Clone, Default)]
    struct Lines(std::sync::Arc<std::sync::Mutex<Vec<u8>>>);

    impl std::io::Write for Lines {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn a_thousand_failed_attempts_make_ten_log_lines() {
        let lines = Lines::default();
        let sink = lines.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_writer(move || sink.clone())
            .with_ansi(false)
            .finish();
        tracing::subscriber::with_default(subscriber, || {
            let mut r = Reconnect::new("10.0.0.9:6700", Lane::Control);
            for _ in 0..1000 {
                r.failed("connection refused");
            }
        });
        let text = String::from_utf8(lines.0.lock().unwrap().clone()).unwrap();
        let logged: Vec<&str> = text.lines().collect();
        assert_eq!(logged.len(), 10, "{text}");
        assert!(
            logged[9].contains("attempts=512") && logged[9].contains("10.0.0.9:6700"),
            "{text}"
        );
    }
}
