//! The event-time watermark of one windowed task: the minimum, over every input (each task of
//! each input stream), of the latest timestamp it sent, minus the allowed lag. One slow input
//! task holds the watermark back, as it must: its tuples are not late just because another
//! task runs ahead.
//!
//! An input that sends nothing must not stall the windows forever. Like Flink's
//! `withIdleness`, an input silent for the idle timeout (processing time) stops holding the
//! watermark back; it holds it again from its next tuple on (the watermark never moves back,
//! so tuples it sends below the watermark are late). An input never heard from holds it back
//! for one idle timeout after the task started. When every input is idle, every window holding
//! a tuple seen so far is evaluated (the watermark jumps past them) instead of waiting for
//! tuples that may never come; tuples that arrive later for those windows are late.

use std::collections::HashMap;

/// One input of a windowed task: a source task and a stream.
pub(crate) type Input = (u32, String);

#[derive(Debug, Clone, Copy)]
struct Seen {
    /// The latest event timestamp it sent.
    latest: i64,
    /// When it last sent a tuple (processing time, ms).
    at_ms: i64,
}

/// What the inputs say of event time now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Mark {
    /// The watermark.
    At(i64),
    /// Every input is idle; this is the latest timestamp any sent.
    AllIdle(i64),
}

/// The latest timestamp of each input, and when each was last heard from.
#[derive(Debug)]
pub(crate) struct Watermarks {
    inputs: HashMap<Input, Option<Seen>>,
    lag_ms: i64,
    idle_ms: i64,
    started_ms: i64,
}

impl Watermarks {
    /// Tracks `inputs`, from `now_ms` on.
    pub(crate) fn new(
        inputs: impl IntoIterator<Item = Input>,
        lag_ms: i64,
        idle_ms: i64,
        now_ms: i64,
    ) -> Self {
        Watermarks {
            inputs: inputs.into_iter().map(|i| (i, None)).collect(),
            lag_ms,
            idle_ms,
            started_ms: now_ms,
        }
    }

    /// Records a tuple of `input` with event time `ts`, received at `now_ms`. An input not in
    /// the spec (it cannot happen in a valid topology) is tracked from now on.
    pub(crate) fn observe(&mut self, input: Input, ts: i64, now_ms: i64) {
        let slot = self.inputs.entry(input).or_insert(None);
        let latest = slot.map_or(ts, |s| s.latest.max(ts));
        *slot = Some(Seen {
            latest,
            at_ms: now_ms,
        });
    }

    /// The latest timestamp of each input heard from (what a checkpoint saves).
    pub(crate) fn snapshot(&self) -> Vec<(Input, i64)> {
        let mut out: Vec<(Input, i64)> = self
            .inputs
            .iter()
            .filter_map(|(i, s)| s.map(|s| (i.clone(), s.latest)))
            .collect();
        out.sort();
        out
    }

    /// Restores what [`Self::snapshot`] gave, as if each input was heard from at `now_ms`
    /// (idle timers start again: the restored task waits as long as a fresh one would).
    pub(crate) fn restore(&mut self, saved: impl IntoIterator<Item = (Input, i64)>, now_ms: i64) {
        for (input, latest) in saved {
            self.inputs.insert(
                input,
                Some(Seen {
                    latest,
                    at_ms: now_ms,
                }),
            );
        }
    }

    /// The watermark at `now_ms`, if there is one yet.
    pub(crate) fn current(&self, now_ms: i64) -> Option<Mark> {
        let mut active_min: Option<i64> = None;
        let mut seen_max: Option<i64> = None;
        for seen in self.inputs.values() {
            match seen {
                Some(s) => {
                    seen_max = Some(seen_max.map_or(s.latest, |m| m.max(s.latest)));
                    if now_ms - s.at_ms < self.idle_ms {
                        active_min = Some(active_min.map_or(s.latest, |m| m.min(s.latest)));
                    }
                }
                // Never heard from: it holds the watermark back for one idle timeout.
                None if now_ms - self.started_ms < self.idle_ms => return None,
                None => {}
            }
        }
        match active_min {
            Some(m) => Some(Mark::At(m.saturating_sub(self.lag_ms))),
            None => seen_max.map(Mark::AllIdle),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn input(task: u32) -> Input {
        (task, "default".to_string())
    }

    #[test]
    fn the_slowest_input_task_holds_the_watermark_back() {
        let mut w = Watermarks::new([input(1), input(2)], 2_000, 10_000, 0);
        w.observe(input(1), 50_000, 100);
        assert_eq!(w.current(100), None, "task 2 has not spoken yet");
        w.observe(input(2), 20_000, 200);
        assert_eq!(
            w.current(200),
            Some(Mark::At(18_000)),
            "the slow task minus the lag"
        );
        w.observe(input(1), 60_000, 300);
        assert_eq!(w.current(300), Some(Mark::At(18_000)));
        w.observe(input(2), 30_000, 400);
        assert_eq!(w.current(400), Some(Mark::At(28_000)));
        w.observe(input(2), 10_000, 500);
        assert_eq!(
            w.current(500),
            Some(Mark::At(28_000)),
            "an input's latest never moves back"
        );
    }

    #[test]
    fn an_idle_input_stops_holding_it_back_and_a_silent_one_after_a_timeout() {
        let mut w = Watermarks::new([input(1), input(2)], 0, 1_000, 0);
        w.observe(input(1), 5_000, 0);
        assert_eq!(w.current(999), None, "task 2 might still speak");
        assert_eq!(w.current(1_000), Some(Mark::AllIdle(5_000)), "both idle");
        w.observe(input(1), 7_000, 1_500);
        assert_eq!(
            w.current(1_600),
            Some(Mark::At(7_000)),
            "task 2 never spoke: it no longer counts"
        );
        w.observe(input(2), 6_000, 1_700);
        assert_eq!(
            w.current(1_800),
            Some(Mark::At(6_000)),
            "task 2 is back and holds it again"
        );
        assert_eq!(
            w.current(2_600),
            Some(Mark::At(6_000)),
            "task 1 went idle at 2 500"
        );
        assert_eq!(w.current(2_700), Some(Mark::AllIdle(7_000)), "both idle");
    }
}
