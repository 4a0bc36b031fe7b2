//! Simulated time for tests: a current-thread runtime with tokio's clock paused, which is the
//! runtime's clock (message timeouts, ticks, windows, watermarks, checkpoint intervals).

use std::future::Future;
use std::time::Duration;

/// Runs `test` to completion on simulated time: a current-thread tokio runtime whose clock
/// is paused. The clock moves when the test calls [`advance`], and jumps to the next timer
/// whenever every task is idle, so a 30 s message timeout or a 60 s window passes in
/// milliseconds, at the same point of the run every time. Use it from a plain `#[test]`:
///
/// ```
/// # use std::time::Duration;
/// topology_api::testing::simulated(async {
///     let start = tokio::time::Instant::now();
///     tokio::time::sleep(Duration::from_secs(3600)).await; // returns at once
///     assert_eq!(start.elapsed(), Duration::from_secs(3600));
/// });
/// ```
///
/// (`#[tokio::test(start_paused = true)]` does the same, with tokio's `test-util` feature.)
pub fn simulated<F: Future>(test: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .start_paused(true)
        .build()
        .expect("a current-thread tokio runtime")
        .block_on(test)
}

/// Moves simulated time forward by `by`, firing the timers due on the way (under
/// [`simulated`]; panics if time is not paused).
pub async fn advance(by: Duration) {
    tokio::time::advance(by).await
}
