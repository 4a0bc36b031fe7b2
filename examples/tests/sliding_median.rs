//! The sliding median example (a 60 s window sliding every second, processing time) with its
//! response-time spout mocked, on simulated time: a minute of windows in milliseconds.

#[allow(dead_code)]
#[path = "../examples/sliding_median.rs"]
mod sliding_median;

use std::time::{Duration, Instant};
use topology_api::testing::{complete_topology, simulated, CompleteOptions, MockedSources};
use topology_api::{values, Value};

fn int(v: &Value) -> i64 {
    match v {
        Value::I64(n) => *n,
        other => panic!("not an integer: {other:?}"),
    }
}

#[test]
fn a_minute_of_sliding_windows_each_tells_the_median_and_p99() {
    let real = Instant::now();
    let (done, simulated_for) = simulated(async {
        let start = tokio::time::Instant::now();
        let topology = sliding_median::topology().expect("a valid topology");
        let mut sources = MockedSources::new();
        // 1..=101 ms, in a scrambled order: the median is 51, the 99th percentile 100.
        sources.add(
            "response-times",
            (0..101).map(|i| values![(i * 37) % 101 + 1]),
        );
        let done = complete_topology(&topology, &sources, CompleteOptions::default())
            .await
            .expect("completes");
        (done, start.elapsed())
    });
    let windows = done.emitted("percentiles");
    // Every 1 s window end in the minute after the tuples arrived covers all of them.
    assert_eq!(windows.len(), 60, "{windows:?}");
    for w in windows {
        let (start, end) = (int(&w[0]), int(&w[1]));
        assert_eq!(end - start, 60_000, "{w:?}");
        assert_eq!(&w[2..], &values![101, 51, 100][..], "{w:?}");
    }
    assert_eq!(done.acked("response-times").len(), 101);
    assert!(
        simulated_for >= Duration::from_secs(59),
        "{simulated_for:?}"
    );
    assert!(
        real.elapsed() < Duration::from_secs(20),
        "{:?}",
        real.elapsed()
    );
}
