//! The one clock of the timers that mean something to a topology: message timeouts, checkpoint
//! intervals, tick tuples, the acker's expiry, processing-time windows and watermarks.
//!
//! It is tokio's clock: real time in production, and simulated time in a test whose runtime has
//! its time paused (`#[tokio::test(start_paused = true)]`, or `topology_api::testing`): there
//! it moves only when the test advances it, or jumps to the next timer when every task is
//! idle, so a 30 s timeout or a 60 s window takes milliseconds and happens at the same point
//! of the run every time. What measures the machine (latencies, batch flush deadlines, the
//! spout's busy-wait) stays on `std::time::Instant`. See `docs/design/clock.md`.

use std::sync::OnceLock;
use std::time::{SystemTime, UNIX_EPOCH};

pub(crate) use tokio::time::Instant;

/// The clock's now.
#[inline]
pub(crate) fn now() -> Instant {
    Instant::now()
}

/// Milliseconds since the Unix epoch on this clock: the wall time when the process first
/// asked, plus how far the clock moved since (so simulated time moves it too).
pub(crate) fn now_ms() -> i64 {
    static BASE: OnceLock<(i64, Instant)> = OnceLock::new();
    let (wall, at) = *BASE.get_or_init(|| {
        let wall = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as i64);
        (wall, now())
    });
    wall + now().saturating_duration_since(at).as_millis() as i64
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[tokio::test(start_paused = true)]
    async fn paused_time_moves_the_clock_and_its_wall_time_alike() {
        let (t0, ms0) = (now(), now_ms());
        tokio::time::sleep(Duration::from_secs(3600)).await;
        assert_eq!(now() - t0, Duration::from_secs(3600));
        assert_eq!(now_ms() - ms0, 3_600_000);
    }
}
