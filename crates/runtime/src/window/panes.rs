//! Per-key accumulators of time windows, kept in panes: a pure state machine over timestamps
//! (no clock, no tuples, no I/O), so every window shape is tested with simulated time.
//!
//! A window of length `l` sliding by `s` is cut into panes of `p = gcd(l, s)` ms aligned to
//! the epoch; each pane holds one accumulator per key for the items whose timestamp falls in
//! it. The window `[e - l, e)` (its end `e` a multiple of `s`) is the merge of its `l / p`
//! panes, key by key: an item is added to exactly one accumulator and never read again, and a
//! sliding window costs a merge of panes, not a pass over its items (Flink's and Li et al.'s
//! "no pane, no gain" panes). Memory is the number of (pane, key) accumulators: keys × open
//! panes, bounded by `max_entries`.
//!
//! The watermark works as in `manager.rs`: an item below it is late; a window is closed once
//! the watermark reaches its end, windows in order; empty windows are skipped. Once a window
//! is closed the panes no later window covers are dropped.

use rustc_hash::{FxHashMap, FxHashSet};
use std::collections::hash_map::Entry;
use std::collections::BTreeMap;
use std::hash::Hash;

/// Why an item found no accumulator.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum NoRoom {
    /// Its timestamp is below the watermark.
    Late,
    /// The panes hold their limit of accumulators and this one would be new.
    Full,
}

/// One window's span: `[start_ms, end_ms)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct WindowSpan {
    /// Start of the window, ms since the epoch (inclusive).
    pub start_ms: i64,
    /// End of the window, ms since the epoch (exclusive).
    pub end_ms: i64,
}

/// The panes of one task: accumulators by pane start, then key.
#[derive(Debug)]
pub(crate) struct Panes<K, A> {
    length: i64,
    slide: i64,
    pane: i64,
    max_entries: usize,
    watermark: i64,
    panes: BTreeMap<i64, FxHashMap<K, A>>,
    entries: usize,
    /// Every window ending at or before this was closed (its result is out).
    closed_upto: i64,
    /// Update mode: the (pane, key) accumulators changed since the last update pass.
    dirty: Option<FxHashSet<(i64, K)>>,
    /// Checkpoints: the panes changed and dropped since the last save (`None`: not
    /// checkpointed), and the pane the last item went to (most go to the same).
    saves: Option<Saves>,
}

/// What changed since the last checkpoint, pane by pane.
#[derive(Debug, Default)]
struct Saves {
    touched: std::collections::BTreeSet<i64>,
    dropped: std::collections::BTreeSet<i64>,
    last_touched: Option<i64>,
}

fn gcd(a: i64, b: i64) -> i64 {
    if b == 0 {
        a
    } else {
        gcd(b, a % b)
    }
}

impl<K: Eq + Hash + Clone, A> Panes<K, A> {
    /// Windows of `length_ms` sliding by `slide_ms` (both > 0), at most `max_entries`
    /// accumulators; `track_changes` keeps what changed for update passes.
    pub(crate) fn new(
        length_ms: i64,
        slide_ms: i64,
        max_entries: usize,
        track_changes: bool,
    ) -> Self {
        let (length, slide) = (length_ms.max(1), slide_ms.max(1));
        Panes {
            length,
            slide,
            pane: gcd(length, slide),
            max_entries: max_entries.max(1),
            watermark: i64::MIN,
            panes: BTreeMap::new(),
            entries: 0,
            closed_upto: i64::MIN,
            dirty: track_changes.then(FxHashSet::default),
            saves: None,
        }
    }

    /// Keeps what changed since the last [`Self::saved`], for checkpoints.
    pub(crate) fn track_saves(&mut self) {
        self.saves = Some(Saves::default());
    }

    /// Accumulators held (keys × open panes).
    pub(crate) fn entries(&self) -> usize {
        self.entries
    }

    /// The watermark (`i64::MIN` before the first advance).
    pub(crate) fn watermark(&self) -> i64 {
        self.watermark
    }

    /// The pane holding timestamp `ts`.
    fn pane_of(&self, ts: i64) -> i64 {
        ts.div_euclid(self.pane) * self.pane
    }

    /// The accumulator of `key` in the pane of `ts`, made with `create` if new; refused if
    /// `ts` is late (and `may_be_late`) or a new one would pass the limit.
    pub(crate) fn accumulator(
        &mut self,
        ts: i64,
        key: K,
        may_be_late: bool,
        create: impl FnOnce() -> A,
    ) -> Result<&mut A, NoRoom> {
        if may_be_late && ts < self.watermark {
            return Err(NoRoom::Late);
        }
        let pane = self.pane_of(ts);
        let changed = self.dirty.as_ref().map(|_| (pane, key.clone()));
        let full = self.entries >= self.max_entries;
        // A pane left empty by a refusal holds nothing and goes with its window.
        let acc = match self.panes.entry(pane).or_default().entry(key) {
            Entry::Occupied(o) => o.into_mut(),
            Entry::Vacant(v) => {
                if full {
                    return Err(NoRoom::Full);
                }
                self.entries += 1;
                v.insert(create())
            }
        };
        if let (Some(dirty), Some(changed)) = (self.dirty.as_mut(), changed) {
            dirty.insert(changed);
        }
        if let Some(saves) = self.saves.as_mut() {
            if saves.last_touched != Some(pane) {
                saves.touched.insert(pane);
                saves.dropped.remove(&pane);
                saves.last_touched = Some(pane);
            }
        }
        Ok(acc)
    }

    /// Moves the watermark up to `w` (it never moves down).
    pub(crate) fn advance(&mut self, w: i64) {
        self.watermark = self.watermark.max(w);
    }

    /// The watermark at which every window holding timestamp `ts` is closed.
    pub(crate) fn flush_horizon(&self, ts: i64) -> i64 {
        (ts + self.length).div_euclid(self.slide) * self.slide
    }

    /// The end of the first window that holds pane `pane` and is not closed yet.
    fn first_open_end(&self, pane: i64) -> i64 {
        let first = pane.div_euclid(self.slide) * self.slide + self.slide;
        if self.closed_upto == i64::MIN {
            first
        } else {
            first.max(self.closed_upto + self.slide)
        }
    }

    /// The next window due at the current watermark (the watermark reached its end and it
    /// holds a pane), or `None`.
    pub(crate) fn next_due(&self) -> Option<WindowSpan> {
        let (&first_pane, _) = self.panes.iter().next()?;
        let end = self.first_open_end(first_pane);
        (end <= self.watermark).then_some(WindowSpan {
            start_ms: end - self.length,
            end_ms: end,
        })
    }

    /// The panes of window `span`, oldest first.
    fn panes_of(&self, span: WindowSpan) -> impl Iterator<Item = &FxHashMap<K, A>> {
        self.panes.range(span.start_ms..span.end_ms).map(|(_, p)| p)
    }

    /// The result of window `span`: one merged accumulator per key (a clone for sliding
    /// windows; the pane itself when the window is one pane, which is then closed as well).
    pub(crate) fn window_result(
        &mut self,
        span: WindowSpan,
        merge: impl Fn(&mut A, &A),
    ) -> Vec<(K, A)>
    where
        A: Clone,
    {
        if self.length == self.pane {
            // Tumbling: the window is its one pane, and no later window needs it.
            return match self.panes.remove(&span.start_ms) {
                Some(p) => {
                    self.entries -= p.len();
                    self.note_dropped(span.start_ms);
                    p.into_iter().collect()
                }
                None => Vec::new(),
            };
        }
        let mut out: FxHashMap<K, A> = FxHashMap::default();
        for pane in self.panes_of(span) {
            for (k, a) in pane {
                match out.get_mut(k) {
                    Some(acc) => merge(acc, a),
                    None => {
                        out.insert(k.clone(), a.clone());
                    }
                }
            }
        }
        out.into_iter().collect()
    }

    /// The merged accumulator of `key` over window `span`, if any pane has it.
    fn key_result(&self, span: WindowSpan, key: &K, merge: &impl Fn(&mut A, &A)) -> Option<A>
    where
        A: Clone,
    {
        let mut out: Option<A> = None;
        for pane in self.panes_of(span) {
            if let Some(a) = pane.get(key) {
                match &mut out {
                    Some(acc) => merge(acc, a),
                    None => out = Some(a.clone()),
                }
            }
        }
        out
    }

    /// Update mode: for every open window holding an accumulator changed since the last
    /// pass, the changed keys with their current merged result, windows in order.
    pub(crate) fn take_updates(&mut self, merge: impl Fn(&mut A, &A)) -> Vec<(WindowSpan, K, A)>
    where
        A: Clone,
    {
        let Some(dirty) = self.dirty.take() else {
            return Vec::new();
        };
        let mut windows: BTreeMap<i64, FxHashSet<K>> = BTreeMap::new();
        for (pane, key) in dirty {
            let mut end = self.first_open_end(pane);
            while end - self.length <= pane {
                windows.entry(end).or_default().insert(key.clone());
                end += self.slide;
            }
        }
        let mut out = Vec::new();
        for (end, keys) in windows {
            let span = WindowSpan {
                start_ms: end - self.length,
                end_ms: end,
            };
            for key in keys {
                if let Some(a) = self.key_result(span, &key, &merge) {
                    out.push((span, key, a));
                }
            }
        }
        self.dirty = Some(FxHashSet::default());
        out
    }

    /// Closes window `span` (after its result is out): drops the panes no later window holds.
    pub(crate) fn close(&mut self, span: WindowSpan) {
        self.closed_upto = self.closed_upto.max(span.end_ms);
        let next_start = span.end_ms + self.slide - self.length;
        while let Some((&start, _)) = self.panes.iter().next() {
            if start >= next_start {
                break;
            }
            if let Some(p) = self.panes.remove(&start) {
                self.entries -= p.len();
                self.note_dropped(start);
            }
        }
    }

    fn note_dropped(&mut self, pane: i64) {
        if let Some(saves) = self.saves.as_mut() {
            saves.dropped.insert(pane);
            saves.touched.remove(&pane);
            if saves.last_touched == Some(pane) {
                saves.last_touched = None;
            }
        }
    }

    /// What changed since the last [`Self::saved`]: each pane changed, with its
    /// accumulators, and each pane dropped (`None`).
    pub(crate) fn changes(&self) -> Vec<(i64, Option<&FxHashMap<K, A>>)> {
        let Some(saves) = &self.saves else {
            return Vec::new();
        };
        let touched = saves.touched.iter().map(|p| (*p, self.panes.get(p)));
        let dropped = saves.dropped.iter().map(|p| (*p, None));
        touched.chain(dropped).collect()
    }

    /// The changes given by [`Self::changes`] are saved.
    pub(crate) fn saved(&mut self) {
        if let Some(saves) = self.saves.as_mut() {
            *saves = Saves::default();
        }
    }

    /// The last closed window's end (`i64::MIN`: none yet).
    pub(crate) fn closed_upto(&self) -> i64 {
        self.closed_upto
    }

    /// Restores saved panes and the watermark and closed windows they were saved with.
    pub(crate) fn restore(
        &mut self,
        watermark: i64,
        closed_upto: i64,
        panes: impl IntoIterator<Item = (i64, FxHashMap<K, A>)>,
    ) {
        self.watermark = watermark;
        self.closed_upto = closed_upto;
        self.panes = panes.into_iter().filter(|(_, p)| !p.is_empty()).collect();
        self.entries = self.panes.values().map(|p| p.len()).sum();
        if let Some(d) = &mut self.dirty {
            d.clear();
        }
        self.saved();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    type P = Panes<&'static str, i64>;

    fn add(p: &mut P, ts: i64, key: &'static str) -> Result<(), NoRoom> {
        *p.accumulator(ts, key, true, || 0)? += 1;
        Ok(())
    }

    /// Closes every due window; each as (start, end, sorted (key, count)).
    /// Each closed window: start, end and its (key, count) pairs.
    type Closed = Vec<(i64, i64, Vec<(&'static str, i64)>)>;

    fn close_due(p: &mut P) -> Closed {
        let mut out = Vec::new();
        while let Some(span) = p.next_due() {
            let mut r = p.window_result(span, |a, b| *a += *b);
            r.sort();
            out.push((span.start_ms, span.end_ms, r));
            p.close(span);
        }
        out
    }

    #[test]
    fn tumbling_windows_count_per_key_and_free_their_pane() {
        let mut p = P::new(10, 10, 100, false);
        for (ts, k) in [(1, "a"), (4, "b"), (7, "a"), (12, "a"), (18, "b"), (3, "a")] {
            add(&mut p, ts, k).unwrap();
        }
        assert_eq!(p.entries(), 4, "(pane 0: a, b) and (pane 10: a, b)");
        p.advance(10);
        assert_eq!(close_due(&mut p), vec![(0, 10, vec![("a", 3), ("b", 1)])]);
        assert_eq!(p.entries(), 2);
        assert_eq!(add(&mut p, 9, "a"), Err(NoRoom::Late));
        p.advance(25);
        assert_eq!(close_due(&mut p), vec![(10, 20, vec![("a", 1), ("b", 1)])]);
        assert_eq!(p.entries(), 0);
    }

    #[test]
    fn sliding_windows_merge_panes_in_order() {
        // Length 10, slide 5: panes of 5; each item is in two windows.
        let mut p = P::new(10, 5, 100, false);
        for (ts, k) in [(1, "a"), (4, "b"), (7, "a"), (12, "b"), (18, "a")] {
            add(&mut p, ts, k).unwrap();
        }
        p.advance(30);
        assert_eq!(
            close_due(&mut p),
            vec![
                (-5, 5, vec![("a", 1), ("b", 1)]),
                (0, 10, vec![("a", 2), ("b", 1)]),
                (5, 15, vec![("a", 1), ("b", 1)]),
                (10, 20, vec![("a", 1), ("b", 1)]),
                (15, 25, vec![("a", 1)]),
            ]
        );
        assert_eq!(p.entries(), 0, "every pane dropped once no window holds it");
    }

    #[test]
    fn slide_not_dividing_length_uses_the_gcd_and_skips_empty_windows() {
        // Length 6, slide 4: panes of 2.
        let mut p = P::new(6, 4, 100, false);
        for ts in [1, 5, 100] {
            add(&mut p, ts, "k").unwrap();
        }
        p.advance(200);
        let got: Vec<(i64, i64, i64)> = close_due(&mut p)
            .into_iter()
            .map(|(s, e, r)| (s, e, r[0].1))
            .collect();
        // Ends are multiples of 4: 1 is only in [-2, 4), 5 only in [2, 8), 100 only in
        // [98, 104); the empty windows between are skipped.
        assert_eq!(got, vec![(-2, 4, 1), (2, 8, 1), (98, 104, 1)]);
    }

    #[test]
    fn the_limit_refuses_new_accumulators_but_not_existing_ones() {
        let mut p = P::new(10, 10, 2, false);
        add(&mut p, 1, "a").unwrap();
        add(&mut p, 2, "b").unwrap();
        assert_eq!(add(&mut p, 3, "c"), Err(NoRoom::Full));
        add(&mut p, 4, "a").unwrap();
        assert_eq!(
            add(&mut p, 14, "a"),
            Err(NoRoom::Full),
            "a new pane is a new one"
        );
        assert_eq!(p.entries(), 2);
        p.advance(10);
        close_due(&mut p);
        add(&mut p, 14, "a").unwrap();
    }

    #[test]
    fn updates_name_every_open_window_of_a_changed_key_once_per_pass() {
        let mut p = P::new(10, 5, 100, true);
        add(&mut p, 6, "a").unwrap();
        add(&mut p, 7, "a").unwrap();
        let u = p.take_updates(|a, b| *a += *b);
        let spans: Vec<(i64, i64, &str, i64)> = u
            .iter()
            .map(|(s, k, a)| (s.start_ms, s.end_ms, *k, *a))
            .collect();
        assert_eq!(spans, vec![(0, 10, "a", 2), (5, 15, "a", 2)]);
        assert!(
            p.take_updates(|a, b| *a += *b).is_empty(),
            "nothing changed since"
        );
        p.advance(10);
        close_due(&mut p);
        add(&mut p, 11, "a").unwrap();
        let u = p.take_updates(|a, b| *a += *b);
        let spans: Vec<(i64, i64, i64)> = u
            .iter()
            .map(|(s, _, a)| (s.start_ms, s.end_ms, *a))
            .collect();
        assert_eq!(
            spans,
            vec![(5, 15, 3), (10, 20, 1)],
            "the closed window is not updated"
        );
    }

    /// What a store would hold after applying `p`'s changes to `store`.
    fn save(p: &mut P, store: &mut BTreeMap<i64, FxHashMap<&'static str, i64>>) {
        for (pane, accs) in p.changes() {
            match accs {
                Some(a) => store.insert(pane, a.clone()),
                None => store.remove(&pane),
            };
        }
        p.saved();
    }

    #[test]
    fn saved_changes_restore_the_same_windows() {
        let mut p = P::new(10, 5, 100, false);
        p.track_saves();
        let mut store = BTreeMap::new();
        for (ts, k) in [(1, "a"), (7, "b"), (12, "a")] {
            add(&mut p, ts, k).unwrap();
        }
        save(&mut p, &mut store);
        assert_eq!(store.len(), 3, "panes 0, 5 and 10");
        p.advance(10);
        close_due(&mut p);
        add(&mut p, 13, "b").unwrap();
        let changed: Vec<(i64, bool)> = p
            .changes()
            .iter()
            .map(|(pn, a)| (*pn, a.is_some()))
            .collect();
        assert_eq!(
            changed,
            vec![(10, true), (0, false)],
            "pane 10 changed, pane 0 dropped"
        );
        save(&mut p, &mut store);
        assert!(p.changes().is_empty());
        let mut q = P::new(10, 5, 100, false);
        q.restore(p.watermark(), p.closed_upto(), store.clone());
        assert_eq!(q.entries(), p.entries());
        p.advance(100);
        q.advance(100);
        assert_eq!(close_due(&mut q), close_due(&mut p));
        assert_eq!(add(&mut q, 3, "a"), Err(NoRoom::Late));
    }
}
