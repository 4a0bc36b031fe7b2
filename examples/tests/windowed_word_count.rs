//! The windowed word count example (tumbling 10 s event-time windows, 2 s of lag, a late
//! stream), fed in steps as a tracked topology on simulated time: sentences stamped minutes
//! apart in event time, each window's top words once its end is passed or its input idle
//! (a 10 s timer on the runtime's clock), and a straggler below the watermark goes to the
//! late stream.

#[allow(dead_code)]
#[path = "../examples/windowed_word_count.rs"]
mod windowed_word_count;

use std::time::Duration;
use topology_api::testing::{simulated, TrackedTopology};
use topology_api::values;

#[test]
fn windows_of_event_time_report_their_top_words_and_stragglers_are_late() {
    simulated(async {
        let topology = windowed_word_count::topology(0.0, false).expect("a valid topology");
        let (tracked, feeders) = TrackedTopology::start_fed(&topology, &["sentences"]).unwrap();
        let sentences = &feeders["sentences"];
        let within = Duration::from_secs(600);
        let start = tokio::time::Instant::now();

        // Minute 0: two sentences in the window [0 s, 10 s), one in [10 s, 20 s).
        sentences.feed(values!["the cow", 1_000]);
        sentences.feed(values!["the dog", 4_000]);
        sentences.feed(values!["a cow", 12_000]);
        tracked.wait_idle(within).await.unwrap();
        assert_eq!(
            tracked.emitted("top-words"),
            [
                values![0, 10_000, 4, "the=2 cow=1 dog=1"],
                values![10_000, 20_000, 2, "a=1 cow=1"],
            ]
        );
        // The windows waited for the idle timeout: simulated seconds, not real ones.
        assert!(
            start.elapsed() >= Duration::from_secs(10),
            "{:?}",
            start.elapsed()
        );

        // Minutes later in event time: a new window, and a straggler from minute 0, now
        // below the watermark, on the late stream.
        sentences.feed(values!["the end", 185_000]);
        tracked.wait_idle(within).await.unwrap();
        sentences.feed(values!["too late", 2_000]);
        tracked.wait_idle(within).await.unwrap();
        let captured = tracked.captured();
        assert_eq!(
            captured.on("top-words", "default")[2..],
            [values![180_000, 190_000, 2, "end=1 the=1"]]
        );
        let late = captured.on("top-words", "late");
        // Both of its words, with the sentence's time.
        assert_eq!(late.len(), 2, "{late:?}");
        assert!(
            late.iter().all(|t| t[1] == topology_api::Value::I64(2_000)),
            "{late:?}"
        );
        let done = tracked.finish(within).await.unwrap();
        let late: u64 = done
            .report
            .tasks
            .iter()
            .filter(|t| t.component == "top-words")
            .map(|t| t.stats.late)
            .sum();
        assert_eq!(late, 2);
    });
}
