//! Which items are in which window, as a pure state machine over timestamps: no clock, no
//! tuples, no I/O, so every window shape is tested with simulated time.
//!
//! Items arrive with a timestamp (event time, or arrival time in processing-time windows). An
//! item with a timestamp below the watermark is late. The others wait in `pending` until the
//! watermark passes them, then are *released* in timestamp order; windows are cut from the
//! released items:
//! - a **time slide** of `s` ms evaluates windows ending at multiples of `s` (aligned to the
//!   epoch), each once the watermark reaches its end; windows are half-open, `[end - length,
//!   end)`; empty windows are skipped;
//! - a **count slide** of `k` evaluates a window at every `k`-th released item, ending just
//!   after it;
//! - a **time length** of `l` ms takes the released items with timestamps in the last `l` ms
//!   before the window's end; a **count length** of `n` the last `n` released items before it.
//!
//! After each evaluation, items no later window can contain expire (they are handed back to
//! be acked) and are reported as the next window's `expired`.

use std::collections::{BTreeMap, VecDeque};

/// How long a window is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Length {
    /// The last `n` items.
    Count(usize),
    /// The items of the last `ms` milliseconds.
    Millis(i64),
}

/// How often a window is evaluated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Slide {
    /// Every `k` items.
    Count(usize),
    /// At every multiple of `ms` milliseconds.
    Millis(i64),
}

/// Why an item was not taken.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Refused<T> {
    /// Its timestamp is below the watermark.
    Late(T),
    /// The manager holds its limit of items.
    Full(T),
}

/// A released item.
#[derive(Debug)]
struct Released<T> {
    ts: i64,
    /// Release order, from 0.
    r: u64,
    item: T,
    /// A window containing it failed: fail it instead of acking it when it expires.
    failed: bool,
}

/// A window to evaluate: ranges into the manager's released items.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Due {
    /// Index (into `released`) of the window's first item.
    first: usize,
    /// One past its last item.
    end: usize,
    /// Index of its first item not in the previous evaluated window.
    first_new: usize,
    /// Start of the window's time span (inclusive), ms.
    pub(crate) start_ms: i64,
    /// End of the window's time span (exclusive), ms.
    pub(crate) end_ms: i64,
}

/// The windows of one task.
#[derive(Debug)]
pub(crate) struct WindowManager<T> {
    length: Length,
    slide: Slide,
    max_items: usize,
    watermark: i64,
    /// Items above the watermark, by (timestamp, arrival).
    pending: BTreeMap<(i64, u64), T>,
    arrivals: u64,
    /// Released items, in timestamp order.
    released: VecDeque<Released<T>>,
    next_r: u64,
    /// Items expired since the last evaluation, with whether they failed; those from
    /// `handed_back` on are still to be handed back (acked or failed) by `take_expired`.
    expired: Vec<(T, bool)>,
    handed_back: usize,
    /// Released items since the last count-slide evaluation.
    since_fire: usize,
    /// The end of the next time-slide window, once an item was released.
    next_end: Option<i64>,
    /// Release index of the last item of the previous evaluated window.
    prev_last: Option<u64>,
    /// The window being evaluated (between `next_window` and `finish_window`).
    current: Option<Due>,
}

impl<T> WindowManager<T> {
    pub(crate) fn new(length: Length, slide: Slide, max_items: usize) -> Self {
        WindowManager {
            length,
            slide,
            max_items: max_items.max(1),
            watermark: i64::MIN,
            pending: BTreeMap::new(),
            arrivals: 0,
            released: VecDeque::new(),
            next_r: 0,
            expired: Vec::new(),
            handed_back: 0,
            since_fire: 0,
            next_end: None,
            prev_last: None,
            current: None,
        }
    }

    /// Items held (waiting or in a window).
    pub(crate) fn held(&self) -> usize {
        self.pending.len() + self.released.len()
    }

    /// Takes an item with timestamp `ts`; refuses it if it is late (and `may_be_late`), or if
    /// the manager is full.
    pub(crate) fn insert(&mut self, item: T, ts: i64, may_be_late: bool) -> Result<(), Refused<T>> {
        if may_be_late && ts < self.watermark {
            return Err(Refused::Late(item));
        }
        if self.held() >= self.max_items {
            return Err(Refused::Full(item));
        }
        self.pending.insert((ts, self.arrivals), item);
        self.arrivals += 1;
        Ok(())
    }

    /// The watermark at which every window holding timestamp `ts` has been evaluated (count
    /// slides: at which `ts` is released; a count slide still waits for its count).
    pub(crate) fn flush_horizon(&self, ts: i64) -> i64 {
        match (self.length, self.slide) {
            (Length::Millis(l), Slide::Millis(s)) => (ts + l).div_euclid(s) * s,
            (Length::Count(_), Slide::Millis(s)) => first_end(ts, s),
            (_, Slide::Count(_)) => ts + 1,
        }
    }

    /// Moves the watermark up to `w` (it never moves down).
    pub(crate) fn advance(&mut self, w: i64) {
        self.watermark = self.watermark.max(w);
    }

    /// The next window due at the current watermark, releasing items as needed; `None` when
    /// no window is due. Items that can be in no later window expire as it goes: hand them
    /// back with [`Self::take_expired`] after each call, and after [`Self::finish_window`],
    /// which ends the evaluation of the window returned.
    pub(crate) fn next_window(&mut self) -> Option<Due> {
        assert!(self.current.is_none(), "finish_window was not called");
        loop {
            match self.slide {
                Slide::Count(k) => {
                    if self.since_fire >= k {
                        self.since_fire = 0;
                        let due = self.count_slide_window();
                        return Some(self.start(due));
                    }
                }
                Slide::Millis(s) => {
                    if let Some(e) = self.next_end {
                        let unreleased_before_e =
                            self.pending.keys().next().is_some_and(|(ts, _)| *ts < e);
                        if e <= self.watermark && !unreleased_before_e {
                            match self.time_slide_window(e) {
                                Some(due) => return Some(self.start(due)),
                                None => {
                                    self.skip_empty(e, s);
                                    continue;
                                }
                            }
                        }
                    }
                }
            }
            if !self.release_one() {
                self.expire_below_horizon(None);
                return None;
            }
        }
    }

    /// Starts evaluating `due`: the items before it can be in no later window (windows only
    /// move forward), so they expire now and show as its `expired`.
    fn start(&mut self, mut due: Due) -> Due {
        for r in self.released.drain(..due.first) {
            self.expired.push((r.item, r.failed));
        }
        due.end -= due.first;
        due.first_new -= due.first;
        due.first = 0;
        self.current = Some(due);
        due
    }

    /// The items of the window being evaluated, its new ones and what expired since the last
    /// evaluation.
    pub(crate) fn view(&self, due: &Due) -> (Vec<&T>, Vec<&T>, Vec<&T>) {
        let all = self.released.range(due.first..due.end).map(|r| &r.item);
        let new = self.released.range(due.first_new..due.end).map(|r| &r.item);
        let expired = self.expired.iter().map(|(t, _)| t);
        (all.collect(), new.collect(), expired.collect())
    }

    /// Marks the items of the window being evaluated failed (its evaluation failed): they are
    /// failed instead of acked when they expire.
    pub(crate) fn fail_current(&mut self) {
        if let Some(due) = self.current {
            for r in self.released.range_mut(due.first..due.end) {
                r.failed = true;
            }
        }
    }

    /// Ends the evaluation of the current window; items no later window can contain expire.
    pub(crate) fn finish_window(&mut self) {
        let Some(due) = self.current.take() else {
            return;
        };
        self.prev_last = self.released.get(due.end - 1).map(|r| r.r);
        debug_assert_eq!(
            self.handed_back,
            self.expired.len(),
            "take_expired after each step"
        );
        self.expired.clear();
        self.handed_back = 0;
        if let Slide::Millis(s) = self.slide {
            self.next_end = Some(due.end_ms + s);
        }
        self.expire_below_horizon(Some(due.end_ms));
    }

    /// The items that expired since the last call, each with whether it failed: ack (or
    /// fail) them. They stay readable as the next window's `expired`.
    pub(crate) fn take_expired(&mut self) -> impl Iterator<Item = (&T, bool)> {
        let from = self.handed_back;
        self.handed_back = self.expired.len();
        self.expired[from..].iter().map(|(t, f)| (t, *f))
    }

    /// Releases the earliest pending item if it is below the watermark.
    fn release_one(&mut self) -> bool {
        let Some(entry) = self.pending.first_entry() else {
            return false;
        };
        let ts = entry.key().0;
        if ts >= self.watermark {
            return false;
        }
        let item = entry.remove();
        self.released.push_back(Released {
            ts,
            r: self.next_r,
            item,
            failed: false,
        });
        self.next_r += 1;
        self.since_fire += 1;
        if let (Slide::Millis(s), None) = (self.slide, self.next_end) {
            self.next_end = Some(first_end(ts, s));
        }
        true
    }

    /// The window ending after the last released item.
    fn count_slide_window(&self) -> Due {
        let end = self.released.len();
        let last_ts = self.released.back().map_or(0, |r| r.ts);
        let first = match self.length {
            Length::Count(n) => end.saturating_sub(n),
            Length::Millis(l) => self.released.partition_point(|r| r.ts <= last_ts - l),
        };
        let start_ms = match self.length {
            Length::Millis(l) => last_ts + 1 - l,
            Length::Count(_) => self.released.get(first).map_or(last_ts, |r| r.ts),
        };
        self.due(first, end, start_ms, last_ts + 1)
    }

    /// The window ending at `e`, if it has items.
    fn time_slide_window(&self, e: i64) -> Option<Due> {
        let end = self.released.partition_point(|r| r.ts < e);
        let first = match self.length {
            Length::Count(n) => end.saturating_sub(n),
            Length::Millis(l) => self.released.partition_point(|r| r.ts < e - l),
        };
        if first >= end {
            return None;
        }
        let start_ms = match self.length {
            Length::Millis(l) => e - l,
            Length::Count(_) => self.released[first].ts,
        };
        Some(self.due(first, end, start_ms, e))
    }

    fn due(&self, first: usize, end: usize, start_ms: i64, end_ms: i64) -> Due {
        let first_new = match self.prev_last {
            Some(p) => first.max(self.released.partition_point(|r| r.r <= p)),
            None => first,
        };
        Due {
            first,
            end,
            first_new: first_new.min(end),
            start_ms,
            end_ms,
        }
    }

    /// The time-slide window ending at `e` is empty: move to the first window that can hold
    /// a released item (or wait for one).
    fn skip_empty(&mut self, e: i64, s: i64) {
        let later = match self.length {
            Length::Millis(l) => self.released.iter().find(|r| r.ts >= e - l),
            Length::Count(_) => self.released.front(),
        };
        self.next_end = match later {
            Some(r) => Some(first_end(r.ts, s).max(e + s)),
            None => self
                .pending
                .keys()
                .next()
                .map(|(ts, _)| first_end(*ts, s).max(e + s)),
        };
    }

    /// Expires the released items no future window can contain. `window_end` is the end of
    /// the window just evaluated, if any (later windows end after it); without one, every
    /// future window ends after every released item.
    fn expire_below_horizon(&mut self, window_end: Option<i64>) {
        let len = self.released.len();
        let keep_from = match (self.length, self.slide) {
            // A future window holds the last `n` items of a prefix (in time order) at least as
            // long as the current one.
            (Length::Count(n), Slide::Millis(_)) => match (window_end, self.next_end) {
                (_, None) => 0,
                (Some(e), _) => self
                    .released
                    .partition_point(|r| r.ts < e)
                    .saturating_sub(n),
                (None, Some(_)) => len.saturating_sub(n),
            },
            // The next window comes after `k - since_fire` more items and holds the last `n`.
            (Length::Count(n), Slide::Count(k)) => (len + k.saturating_sub(self.since_fire))
                .saturating_sub(n)
                .min(len),
            // Future windows end at or after `next_end`.
            (Length::Millis(l), Slide::Millis(_)) => match self.next_end {
                Some(e) => self.released.partition_point(|r| r.ts < e - l),
                None => 0,
            },
            // Future windows end after the last released item.
            (Length::Millis(l), Slide::Count(_)) => match self.released.back() {
                Some(last) => {
                    let last_ts = last.ts;
                    self.released.partition_point(|r| r.ts <= last_ts - l)
                }
                None => 0,
            },
        };
        for r in self.released.drain(..keep_from) {
            self.expired.push((r.item, r.failed));
        }
    }
}

/// The end of the first `s`-aligned window that holds timestamp `ts`.
fn first_end(ts: i64, s: i64) -> i64 {
    ts.div_euclid(s) * s + s
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What a window showed: its items, new items, expired items, start and end.
    type Shown = (Vec<i64>, Vec<i64>, Vec<i64>, i64, i64);

    /// Evaluates every due window (items are their own timestamps); returns what each showed
    /// and the items handed back to be acked.
    fn drain(m: &mut WindowManager<i64>) -> (Vec<Shown>, Vec<i64>) {
        let mut shown = Vec::new();
        let mut acked: Vec<i64> = m.take_expired().map(|(t, _)| *t).collect();
        while let Some(due) = m.next_window() {
            acked.extend(m.take_expired().map(|(t, _)| *t));
            let (all, new, expired) = m.view(&due);
            shown.push((
                all.into_iter().copied().collect(),
                new.into_iter().copied().collect(),
                expired.into_iter().copied().collect(),
                due.start_ms,
                due.end_ms,
            ));
            m.finish_window();
            acked.extend(m.take_expired().map(|(t, _)| *t));
        }
        acked.extend(m.take_expired().map(|(t, _)| *t));
        (shown, acked)
    }

    /// Items of each shown window.
    fn items(shown: &[Shown]) -> Vec<Vec<i64>> {
        shown.iter().map(|s| s.0.clone()).collect()
    }

    /// Processing time: each item arrives at its timestamp and the watermark follows the clock.
    fn arrive(m: &mut WindowManager<i64>, ts: &[i64]) -> (Vec<Shown>, Vec<i64>) {
        let (mut shown, mut acked) = (Vec::new(), Vec::new());
        for &t in ts {
            m.insert(t, t, false).unwrap();
            m.advance(t + 1);
            let (s, a) = drain(m);
            shown.extend(s);
            acked.extend(a);
        }
        (shown, acked)
    }

    #[test]
    fn count_tumbling_windows() {
        let mut m = WindowManager::new(Length::Count(3), Slide::Count(3), 100);
        let (shown, acked) = arrive(&mut m, &[1, 2, 3, 4, 5, 6, 7]);
        assert_eq!(items(&shown), vec![vec![1, 2, 3], vec![4, 5, 6]]);
        assert_eq!(shown[1].1, vec![4, 5, 6], "all new");
        assert_eq!(shown[1].2, vec![1, 2, 3], "the first window expired");
        assert_eq!(
            acked,
            vec![1, 2, 3, 4, 5, 6],
            "each window's items leave with it"
        );
        assert_eq!(m.held(), 1, "7 waits for the next window");
    }

    #[test]
    fn count_sliding_windows_ramp_up_then_slide() {
        let mut m = WindowManager::new(Length::Count(3), Slide::Count(1), 100);
        let (shown, acked) = arrive(&mut m, &[1, 2, 3, 4, 5]);
        assert_eq!(
            items(&shown),
            vec![
                vec![1],
                vec![1, 2],
                vec![1, 2, 3],
                vec![2, 3, 4],
                vec![3, 4, 5]
            ]
        );
        assert_eq!(shown[3].1, vec![4], "only the newest is new");
        assert_eq!(shown[4].2, vec![2], "expired since the last window");
        assert_eq!(acked, vec![1, 2, 3], "3 is in no window after [3, 4, 5]");
    }

    #[test]
    fn time_sliding_windows_in_event_time() {
        let mut m = WindowManager::new(Length::Millis(10), Slide::Millis(5), 100);
        for t in [1, 4, 7, 12, 18] {
            m.insert(t, t, true).unwrap();
        }
        m.advance(30);
        let (shown, acked) = drain(&mut m);
        assert_eq!(
            items(&shown),
            vec![
                vec![1, 4],
                vec![1, 4, 7],
                vec![7, 12],
                vec![12, 18],
                vec![18]
            ]
        );
        let spans: Vec<(i64, i64)> = shown.iter().map(|s| (s.3, s.4)).collect();
        assert_eq!(spans, vec![(-5, 5), (0, 10), (5, 15), (10, 20), (15, 25)]);
        assert_eq!(shown[2].1, vec![12], "7 was in the previous window");
        assert_eq!(shown[2].2, vec![1, 4]);
        assert_eq!(
            acked,
            vec![1, 4, 7, 12, 18],
            "the empty window ending at 30 is skipped"
        );
        assert_eq!(m.held(), 0);
    }

    #[test]
    fn time_tumbling_windows_and_out_of_order_input() {
        let mut m = WindowManager::new(Length::Millis(10), Slide::Millis(10), 100);
        for t in [18, 4, 12, 1, 7] {
            m.insert(t, t, true).unwrap();
        }
        m.advance(19);
        let (shown, _) = drain(&mut m);
        assert_eq!(items(&shown), vec![vec![1, 4, 7], vec![12, 18]][..1]);
        m.advance(20);
        let (shown, acked) = drain(&mut m);
        assert_eq!(items(&shown), vec![vec![12, 18]]);
        assert_eq!(acked, vec![12, 18]);
        assert_eq!(m.insert(19, 19, true), Err(Refused::Late(19)));
        assert!(
            m.insert(20, 20, true).is_ok(),
            "at the watermark is not late"
        );
    }

    #[test]
    fn count_length_with_time_slide() {
        let mut m = WindowManager::new(Length::Count(2), Slide::Millis(10), 100);
        for t in [1, 2, 3, 11, 12, 25] {
            m.insert(t, t, true).unwrap();
        }
        m.advance(30);
        let (shown, acked) = drain(&mut m);
        assert_eq!(items(&shown), vec![vec![2, 3], vec![11, 12], vec![12, 25]]);
        assert_eq!(
            acked,
            vec![1, 2, 3, 11],
            "the last two may be in the next window"
        );
    }

    #[test]
    fn count_length_with_time_slide_keeps_what_a_later_window_needs() {
        // Window ending 10 holds 1 and 2; the one ending 20 holds the last two before 20.
        let mut m = WindowManager::new(Length::Count(2), Slide::Millis(10), 100);
        for t in [1, 2, 11, 21, 22] {
            m.insert(t, t, true).unwrap();
        }
        m.advance(30);
        let (shown, _) = drain(&mut m);
        assert_eq!(items(&shown), vec![vec![1, 2], vec![2, 11], vec![21, 22]]);
    }

    #[test]
    fn time_length_with_count_slide() {
        let mut m = WindowManager::new(Length::Millis(10), Slide::Count(2), 100);
        let (shown, acked) = arrive(&mut m, &[1, 3, 8, 14, 15]);
        assert_eq!(items(&shown), vec![vec![1, 3], vec![8, 14]]);
        assert_eq!(shown[1].3, 5, "start: 10 ms before the end");
        assert_eq!(shown[1].4, 15, "end: just after the triggering item");
        assert_eq!(acked, vec![1, 3]);
    }

    #[test]
    fn flushing_evaluates_every_window_holding_the_last_item() {
        let mut m = WindowManager::new(Length::Millis(10), Slide::Millis(5), 100);
        m.insert(12, 12, true).unwrap();
        m.advance(m.flush_horizon(12));
        let (shown, acked) = drain(&mut m);
        let spans: Vec<(i64, i64)> = shown.iter().map(|s| (s.3, s.4)).collect();
        assert_eq!(spans, vec![(5, 15), (10, 20)], "both windows that hold 12");
        assert_eq!(acked, vec![12]);
        let mut m = WindowManager::new(Length::Count(3), Slide::Millis(10), 100);
        m.insert(12, 12, true).unwrap();
        m.advance(m.flush_horizon(12));
        assert_eq!(items(&drain(&mut m).0), vec![vec![12]]);
    }

    #[test]
    fn empty_windows_are_skipped_even_across_a_long_gap() {
        let mut m = WindowManager::new(Length::Millis(10), Slide::Millis(10), 100);
        m.insert(1, 1, true).unwrap();
        m.insert(1_000_005, 1_000_005, true).unwrap();
        m.advance(2_000_000);
        let (shown, acked) = drain(&mut m);
        assert_eq!(items(&shown), vec![vec![1], vec![1_000_005]]);
        assert_eq!(shown[1].4, 1_000_010);
        assert_eq!(acked, vec![1, 1_000_005]);
    }

    #[test]
    fn a_full_manager_refuses_items_and_failed_windows_fail_their_items() {
        let mut m = WindowManager::new(Length::Count(2), Slide::Count(2), 3);
        for t in [1, 2, 3] {
            m.insert(t, t, false).unwrap();
        }
        assert_eq!(m.insert(4, 4, false), Err(Refused::Full(4)));
        m.advance(10);
        let due = m.next_window().expect("a window of two");
        m.fail_current();
        m.finish_window();
        let handed: Vec<(i64, bool)> = m.take_expired().map(|(t, f)| (*t, f)).collect();
        assert_eq!(
            handed,
            vec![(1, true), (2, true)],
            "tumbling: they leave with their failed window"
        );
        assert!(m.next_window().is_none() && due.end_ms == 3);
        assert_eq!(m.take_expired().count(), 0);
        assert_eq!(m.held(), 1, "3 waits for the next window");
    }
}
