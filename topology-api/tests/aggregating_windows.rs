//! Aggregating windows in local mode on simulated time: per-key counts of sliding event-time
//! windows, fed out of order within the lag to two tasks, equal to counts computed here from
//! the events, each (window, key) emitted exactly once (append mode); the update mode's last
//! update per (window, key) is the exact count; late tuples go to the late stream; the
//! accumulator bound fails tuples instead of growing; count windows are refused, and so are
//! checkpoints of tuple-holding windows. (Aggregating windows across a crash, in checkpoints:
//! `tests/tests/window_recovery.rs`; pane arithmetic: `crates/runtime/src/window/panes.rs`.)

use std::collections::BTreeMap;
use std::time::Duration;
use topology_api::prelude::*;
use topology_api::testing::{simulated, TrackedTopology};

/// Declares the events' fields; the tests feed it.
struct Events;

#[async_trait]
impl Spout for Events {
    fn declare_output_fields(&self, d: &mut OutputDeclarer) {
        d.declare(["key", "ts"]);
    }
    async fn next_tuple(&mut self, _: &mut SpoutOutputCollector) -> ComponentResult {
        Ok(())
    }
}

const LENGTH_MS: i64 = 10_000;
const SLIDE_MS: i64 = 5_000;

fn topology(mode: OutputMode, max_accumulators: usize) -> Topology {
    let mut b = TopologyBuilder::new("aggregating-windows");
    b.set_spout("events", || Events, 1);
    let windowing = Windowing::sliding(
        WindowSize::Duration(Duration::from_millis(LENGTH_MS as u64)),
        WindowSize::Duration(Duration::from_millis(SLIDE_MS as u64)),
    )
    .with_timestamp_field("ts")
    .with_lag(Duration::from_secs(2))
    .with_late_tuple_stream("late")
    .with_output_mode(mode)
    .with_max_accumulators(max_accumulators);
    b.set_aggregating_bolt("count", || Reduce::count_by("key"), 2, windowing)
        .fields_grouping("events", ["key"]);
    b.build().expect("a valid topology")
}

/// `n` events over 10 keys, event times rising by 10 ms on average, each up to 1.9 s early
/// (out of order, but within the 2 s lag: none is late).
fn events(n: usize, seed: u64) -> Vec<(String, i64)> {
    let mut rng = fastrand::Rng::with_seed(seed);
    (0..n)
        .map(|i| {
            let base = 100_000 + i as i64 * 10;
            (format!("k{}", rng.u8(0..10)), base - rng.i64(0..1_900))
        })
        .collect()
}

/// Counts per (window start, window end, key), computed from the events: a window `[e - 10 s,
/// e)` for every end `e` a multiple of 5 s that holds the event.
fn expected(events: &[(String, i64)]) -> BTreeMap<(i64, i64, String), i64> {
    let mut out = BTreeMap::new();
    for (k, ts) in events {
        let mut end = ts.div_euclid(SLIDE_MS) * SLIDE_MS + SLIDE_MS;
        while end - LENGTH_MS <= *ts {
            *out.entry((end - LENGTH_MS, end, k.clone())).or_default() += 1;
            end += SLIDE_MS;
        }
    }
    out
}

fn result_of(v: &Values) -> ((i64, i64, String), i64) {
    let get = |i: usize| match &v[i] {
        Value::I64(n) => *n,
        other => panic!("field {i} of {v:?} is {other:?}"),
    };
    let key = match &v[0] {
        Value::Str(s) => s.to_string(),
        other => panic!("key of {v:?} is {other:?}"),
    };
    ((get(1), get(2), key), get(3))
}

/// Waits (on simulated time) until `count` emitted at least `n` results.
async fn wait_for(tracked: &TrackedTopology, n: usize) -> Vec<Values> {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(600);
    loop {
        let got = tracked.emitted("count");
        if got.len() >= n {
            return got;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "only {} of {n} results in 600 simulated s: {got:?}",
            got.len()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[test]
fn append_mode_emits_each_window_and_key_once_with_the_exact_count() {
    simulated(async {
        let topology = topology(OutputMode::Append, 1_000_000);
        let (tracked, feeders) = TrackedTopology::start_fed(&topology, &["events"]).unwrap();
        let events = events(3_000, 7);
        for (k, ts) in &events {
            feeders["events"].feed(values![k.as_str(), *ts]);
        }
        let want = expected(&events);
        let got = wait_for(&tracked, want.len()).await;
        // Long after every window closed (idle inputs flush them): nothing more comes.
        tokio::time::sleep(Duration::from_secs(60)).await;
        let got_after = tracked.emitted("count");
        assert_eq!(got_after.len(), got.len(), "results after the last window");
        let mut seen = BTreeMap::new();
        for v in &got_after {
            let (window, n) = result_of(v);
            assert!(
                seen.insert(window.clone(), n).is_none(),
                "{window:?} emitted twice"
            );
        }
        assert_eq!(seen, want);

        // A straggler far below the watermark is late: on the late stream, counted, acked.
        feeders["events"].feed(values!["k1", 1_000]);
        tracked.wait_idle(Duration::from_secs(60)).await.unwrap();
        assert_eq!(tracked.captured().on("count", "late").len(), 1);
        let done = tracked.finish(Duration::from_secs(60)).await.unwrap();
        let tasks: Vec<_> = done
            .report
            .tasks
            .iter()
            .filter(|t| t.component == "count")
            .collect();
        assert_eq!(tasks.iter().map(|t| t.stats.late).sum::<u64>(), 1);
        assert_eq!(
            tasks.iter().map(|t| t.stats.acked).sum::<u64>(),
            events.len() as u64 + 1,
            "every input acked once it is folded in"
        );
        assert_eq!(
            tasks.iter().map(|t| t.stats.held).sum::<u64>(),
            0,
            "no accumulator left once every window closed"
        );
    });
}

#[test]
fn update_mode_emits_changes_and_its_last_update_is_the_exact_count() {
    simulated(async {
        let topology = topology(OutputMode::Update, 1_000_000);
        let (tracked, feeders) = TrackedTopology::start_fed(&topology, &["events"]).unwrap();
        // Two batches in the same windows: the second arrives after the first was reported.
        let first = [("a", 101_000), ("a", 102_000), ("b", 103_000)];
        let second = [("a", 103_500), ("b", 101_500)];
        for (k, ts) in first {
            feeders["events"].feed(values![k, ts]);
        }
        wait_for(&tracked, 1).await;
        // Past the next watermark interval: the first batch's updates are all out.
        tokio::time::sleep(Duration::from_millis(1_500)).await;
        for (k, ts) in second {
            feeders["events"].feed(values![k, ts]);
        }
        tracked.wait_idle(Duration::from_secs(60)).await.unwrap();
        tokio::time::sleep(Duration::from_secs(60)).await;
        let all: Vec<(String, i64)> = first
            .iter()
            .chain(second.iter())
            .map(|(k, ts)| (k.to_string(), *ts))
            .collect();
        let want = expected(&all);
        let mut last = BTreeMap::new();
        let mut updates: BTreeMap<_, usize> = BTreeMap::new();
        for v in tracked.emitted("count") {
            let (window, n) = result_of(&v);
            *updates.entry(window.clone()).or_default() += 1;
            last.insert(window, n);
        }
        assert_eq!(last, want, "the last update of each window and key");
        assert_eq!(
            updates[&(95_000, 105_000, "a".to_string())],
            2,
            "one update per batch that changed it: {updates:?}"
        );
        tracked.finish(Duration::from_secs(60)).await.unwrap();
    });
}

#[test]
fn the_accumulator_bound_fails_tuples_instead_of_growing() {
    simulated(async {
        // 4 accumulators per task; tumbling-like spread: every key is new in each pane.
        let topology = topology(OutputMode::Append, 4);
        let (tracked, feeders) = TrackedTopology::start_fed(&topology, &["events"]).unwrap();
        for i in 0..40 {
            feeders["events"].feed(values![format!("key{i}"), 100_000 + i]);
        }
        tracked.wait_idle(Duration::from_secs(60)).await.unwrap();
        let outcomes = feeders["events"].outcomes();
        let done = tracked.finish(Duration::from_secs(60)).await.unwrap();
        let count: Vec<_> = done
            .report
            .tasks
            .iter()
            .filter(|t| t.component == "count")
            .collect();
        let acked: u64 = count.iter().map(|t| t.stats.acked).sum();
        let failed: u64 = count.iter().map(|t| t.stats.failed).sum();
        // 40 keys in the panes of one time range: at most 4 per task (2 tasks) hold one.
        assert!(acked <= 8, "acked {acked}");
        assert_eq!(acked + failed, 40, "{outcomes:?}");
        let results = done.captured.on("count", "default").len() as u64;
        assert!(results <= 2 * acked, "{results} results for {acked} keys");
    });
}

#[test]
fn aggregating_windows_need_durations() {
    let mut b = TopologyBuilder::new("bad");
    b.set_spout("events", || Events, 1);
    b.set_aggregating_bolt(
        "count",
        || Reduce::count_by("key"),
        1,
        Windowing::tumbling(WindowSize::Count(10)),
    )
    .shuffle_grouping("events");
    let err = b
        .build()
        .expect_err("a count window cannot aggregate")
        .to_string();
    assert!(
        err.contains("\"count\"") && err.contains("needs a duration"),
        "{err}"
    );
}

#[test]
fn tuple_windows_refuse_the_update_mode() {
    struct Nothing;
    #[async_trait]
    impl WindowedBolt for Nothing {
        fn declare_output_fields(&self, _: &mut OutputDeclarer) {}
        async fn execute(
            &mut self,
            _: &Window<'_>,
            _: &mut WindowCollector<'_>,
        ) -> ComponentResult {
            Ok(())
        }
    }
    let mut b = TopologyBuilder::new("bad");
    b.set_spout("events", || Events, 1);
    b.set_windowed_bolt(
        "w",
        || Nothing,
        1,
        Windowing::tumbling(WindowSize::Duration(Duration::from_secs(1)))
            .with_output_mode(OutputMode::Update),
    )
    .shuffle_grouping("events");
    let err = b.build().expect_err("update needs aggregation").to_string();
    assert!(err.contains("update output mode"), "{err}");

    // Their tuples are not in checkpoints: asking for it is refused by name.
    let mut b = TopologyBuilder::new("bad");
    b.set_spout("events", || Events, 1);
    b.set_windowed_bolt(
        "w",
        || Nothing,
        1,
        Windowing::tumbling(WindowSize::Duration(Duration::from_secs(1))).with_checkpoints(),
    )
    .shuffle_grouping("events");
    let err = b
        .build()
        .expect_err("no checkpoints of held tuples")
        .to_string();
    assert!(
        err.contains("\"w\"") && err.contains("checkpoints of tuple-holding windows"),
        "{err}"
    );
}
