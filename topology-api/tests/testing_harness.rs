//! The `testing` harness itself: completing a topology with mocked sources (its real spout
//! never finishes, so only mocking ends the run), faults on purpose and their replays with the
//! reason, tracked topologies fed in steps, and simulated time: a 30 s message timeout and a
//! 60 s sliding window pass in milliseconds of real time.

use std::time::{Duration, Instant};
use topology_api::prelude::*;
use topology_api::testing::{
    complete_topology, same_multiset, simulated, BoltTester, CompleteOptions, Fault, Faults,
    Feeder, MockedSources, TrackedTopology,
};
use topology_api::{BoltFailure, WindowSize};

/// A spout that never finishes: the harness must replace it.
struct Endless;

#[async_trait]
impl Spout for Endless {
    fn declare_output_fields(&self, d: &mut OutputDeclarer) {
        d.declare(["sentence"]);
    }
    async fn next_tuple(&mut self, c: &mut SpoutOutputCollector) -> ComponentResult {
        c.emit(values!["never mocked"], Some(0))?;
        Ok(())
    }
}

struct Split;

#[async_trait]
impl BasicBolt for Split {
    fn declare_output_fields(&self, d: &mut OutputDeclarer) {
        d.declare(["word"]);
    }
    fn execute(&mut self, t: &Tuple, c: &mut BasicOutputCollector<'_>) -> ComponentResult {
        for w in t.str("sentence")?.split_whitespace() {
            c.emit(values![w])?;
        }
        Ok(())
    }
}

#[derive(Default)]
struct Count(std::collections::HashMap<String, i64>);

#[async_trait]
impl BasicBolt for Count {
    fn declare_output_fields(&self, d: &mut OutputDeclarer) {
        d.declare(["word", "count"]);
    }
    fn execute(&mut self, t: &Tuple, c: &mut BasicOutputCollector<'_>) -> ComponentResult {
        let w = t.str("word")?;
        let n = self.0.entry(w.to_string()).or_default();
        *n += 1;
        c.emit(values![w, *n])?;
        Ok(())
    }
}

fn word_count(spout: impl Fn() -> Box<dyn Spout> + Send + Sync + 'static) -> Topology {
    struct Boxed(Box<dyn Spout>);
    #[async_trait]
    impl Spout for Boxed {
        fn declare_output_fields(&self, d: &mut OutputDeclarer) {
            self.0.declare_output_fields(d)
        }
        async fn next_tuple(&mut self, c: &mut SpoutOutputCollector) -> ComponentResult {
            self.0.next_tuple(c).await
        }
        async fn ack(&mut self, id: u64) {
            self.0.ack(id).await
        }
        async fn fail_with_reason(&mut self, id: u64, r: &FailReason) {
            self.0.fail_with_reason(id, r).await
        }
        fn is_finished(&self) -> bool {
            self.0.is_finished()
        }
    }
    let mut b = TopologyBuilder::new("wc");
    b.set_spout("sentences", move || Boxed(spout()), 1);
    b.set_basic_bolt("split", || Split, 2)
        .shuffle_grouping("sentences");
    b.set_basic_bolt("count", Count::default, 2)
        .fields_grouping("split", ["word"]);
    b.build().expect("a valid topology")
}

fn sentences() -> MockedSources {
    let mut s = MockedSources::new();
    s.add("sentences", [values!["the cow"], values!["the dog"]]);
    s
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mocked_sources_complete_and_every_component_s_emits_come_back() {
    let topology = word_count(|| Box::new(Endless));
    let done = complete_topology(&topology, &sentences(), CompleteOptions::default())
        .await
        .expect("completes");
    same_multiset(
        done.emitted("sentences"),
        &[values!["the cow"], values!["the dog"]],
    )
    .unwrap();
    same_multiset(
        done.emitted("split"),
        &[
            values!["the"],
            values!["cow"],
            values!["the"],
            values!["dog"],
        ],
    )
    .unwrap();
    same_multiset(
        done.emitted("count"),
        &[
            values!["the", 1],
            values!["cow", 1],
            values!["the", 2],
            values!["dog", 1],
        ],
    )
    .unwrap();
    same_multiset(
        &done.acked("sentences"),
        &[values!["the cow"], values!["the dog"]],
    )
    .unwrap();
    assert!(done.failed("sentences").is_empty());
    assert!(done.errors("split").is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fault_fails_a_tuple_with_its_reason_and_the_replay_completes() {
    for (fault, how) in [
        (Fault::Fail, BoltFailure::Failed),
        (Fault::Error, BoltFailure::Error),
        (Fault::Panic, BoltFailure::Panic),
        (Fault::Restart, BoltFailure::Failed),
    ] {
        let topology = Faults::new()
            .on("split", 0, 1, fault)
            .apply(word_count(|| Box::new(Endless)))
            .unwrap();
        let mut sources = sentences();
        sources.replay_failed(1);
        let done = complete_topology(&topology, &sources, CompleteOptions::default())
            .await
            .expect("completes");
        let failed = done.failed("sentences");
        assert_eq!(failed.len(), 1, "{fault:?}: {failed:?}");
        match &failed[0].1 {
            FailReason::Bolt {
                component,
                how: h,
                message,
                ..
            } => {
                assert_eq!((component.as_str(), *h), ("split", how), "{fault:?}");
                assert!(message.contains("on tuple 1"), "{fault:?}: {message}");
            }
            other => panic!("{fault:?}: {other}"),
        }
        // The failed sentence was replayed and completed: both are acked in the end.
        same_multiset(
            &done.acked("sentences"),
            &[values!["the cow"], values!["the dog"]],
        )
        .unwrap_or_else(|e| panic!("{fault:?}: {e}"));
        assert_eq!(done.emitted("split").len(), 4, "{fault:?}");
    }
}

/// Holds every tuple: neither acks nor fails it.
struct BlackHole;

#[async_trait]
impl Bolt for BlackHole {
    fn declare_output_fields(&self, _: &mut OutputDeclarer) {}
    async fn execute(&mut self, _: Tuple, _: &mut OutputCollector) -> ComponentResult {
        Ok(())
    }
}

#[test]
fn a_30_s_message_timeout_passes_in_simulated_time() {
    let real = Instant::now();
    let (done, simulated_for) = simulated(async {
        let start = tokio::time::Instant::now();
        let done = BoltTester::new("hole", ["word"])
            .config(Config::new().with_message_timeout_secs(30))
            .bolt(|| BlackHole)
            .run([values!["lost"]])
            .await
            .expect("completes");
        (done, start.elapsed())
    });
    assert_eq!(
        done.failed("input"),
        [(
            values!["lost"],
            FailReason::Timeout {
                after: Duration::from_secs(30)
            }
        )]
    );
    assert!(
        simulated_for >= Duration::from_secs(30),
        "{simulated_for:?}"
    );
    assert!(simulated_for < Duration::from_secs(35), "{simulated_for:?}");
    assert!(
        real.elapsed() < Duration::from_secs(10),
        "{:?}",
        real.elapsed()
    );
}

/// Emits the number of tuples in each window.
struct Size;

#[async_trait]
impl WindowedBolt for Size {
    fn declare_output_fields(&self, d: &mut OutputDeclarer) {
        d.declare(["size"]);
    }
    async fn execute(&mut self, w: &Window<'_>, c: &mut WindowCollector<'_>) -> ComponentResult {
        c.emit(values![w.len() as i64])?;
        Ok(())
    }
}

#[test]
fn a_60_s_sliding_window_slides_through_simulated_minutes() {
    let real = Instant::now();
    let (done, simulated_for) = simulated(async {
        let start = tokio::time::Instant::now();
        let windowing = Windowing::sliding(
            WindowSize::Duration(Duration::from_secs(60)),
            WindowSize::Duration(Duration::from_secs(10)),
        );
        let done = BoltTester::new("size", ["n"])
            .config(Config::new().with_message_timeout_secs(90))
            .windowed_bolt(|| Size, windowing)
            .run((0..5).map(|n| values![n]))
            .await
            .expect("completes");
        (done, start.elapsed())
    });
    // The five tuples arrived at one instant: in each of the 6 windows that cover it.
    assert_eq!(done.emitted("size"), vec![values![5]; 6].as_slice());
    assert_eq!(done.acked("input").len(), 5);
    // Windows end at multiples of the slide: the last one covering the tuples ends 50 to 60 s
    // after they arrived.
    assert!(
        simulated_for >= Duration::from_secs(50),
        "{simulated_for:?}"
    );
    assert!(
        real.elapsed() < Duration::from_secs(10),
        "{:?}",
        real.elapsed()
    );
}

#[test]
fn a_tracked_topology_is_fed_in_steps_and_waited_for_until_idle() {
    simulated(async {
        let feeder = Feeder::new(["sentence"]);
        let mut b = TopologyBuilder::new("tracked");
        b.set_spout("sentences", feeder.spout(), 1);
        b.set_basic_bolt("split", || Split, 2)
            .shuffle_grouping("sentences");
        b.set_basic_bolt("count", Count::default, 2)
            .fields_grouping("split", ["word"]);
        let topology = b.build().unwrap();
        let tracked = TrackedTopology::start(&topology, &[&feeder]).unwrap();
        let within = Duration::from_secs(30);

        feeder.feed(values!["a b a"]);
        tracked.wait_idle(within).await.unwrap();
        same_multiset(
            &tracked.emitted("count"),
            &[values!["a", 1], values!["b", 1], values!["a", 2]],
        )
        .unwrap();

        feeder.feed(values!["b"]);
        feeder.feed(values!["c"]);
        tracked.wait_idle(within).await.unwrap();
        let counts = tracked.emitted("count");
        assert_eq!(counts.len(), 5, "{counts:?}");
        assert!(counts[3..].contains(&values!["b", 2]), "{counts:?}");
        assert_eq!(feeder.outcomes().acked.len(), 3);

        let done = tracked.finish(within).await.unwrap();
        assert_eq!(done.emitted("split").len(), 5);
    });
}
