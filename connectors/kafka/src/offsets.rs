//! What an at-least-once spout knows about one partition's offsets: which it emitted, which are
//! in flight, acked or waiting for a retry, and how far it may commit (Storm's `OffsetManager`).
//!
//! The commit rule: an offset is committed only when it and every offset before it in the
//! partition are done (acked, or given up after the last retry). Offsets the spout never emitted
//! between two it did (compacted away, transaction markers) do not hold the commit back: every
//! emitted offset at or above the committed one is kept here until it is committed, so an offset
//! missing from the map was never emitted.

use std::collections::BTreeMap;
use std::time::Instant;

/// Where one emitted, uncommitted offset stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Status {
    /// Emitted, its tuple tree not complete yet; `fails` earlier attempts failed.
    InFlight { fails: u32 },
    /// Its last attempt failed; it waits in the retry schedule. `dead`: retries are exhausted
    /// and it is to be emitted on the dead-letter stream.
    Failed { fails: u32, dead: bool },
    /// Done: acked, or given up on. It may be committed once everything before it is.
    Acked,
}

/// The offsets of one partition, for at-least-once processing.
#[derive(Debug, Clone)]
pub(crate) struct OffsetManager {
    /// The next offset to consume after a restart (Kafka's committed offset). `None` until
    /// known: a partition started from its beginning or end learns it from its first record.
    committed: Option<i64>,
    /// Emitted and not yet committed offsets.
    emitted: BTreeMap<i64, Status>,
    /// When each failed offset may be retried.
    retries: BTreeMap<i64, Instant>,
}

impl OffsetManager {
    /// A partition whose consumption starts at `committed` (if known).
    pub(crate) fn new(committed: Option<i64>) -> Self {
        OffsetManager {
            committed,
            emitted: BTreeMap::new(),
            retries: BTreeMap::new(),
        }
    }

    /// The committed offset, if known.
    #[cfg(test)]
    pub(crate) fn committed(&self) -> Option<i64> {
        self.committed
    }

    /// Learns where consumption started, if it was not known (from the first record read).
    pub(crate) fn start_at(&mut self, offset: i64) {
        if self.committed.is_none() {
            self.committed = Some(offset);
        }
    }

    /// Whether `offset` is below the committed offset (done long ago).
    pub(crate) fn is_committed(&self, offset: i64) -> bool {
        self.committed.is_some_and(|c| offset < c)
    }

    /// Where `offset` stands, if it is emitted and uncommitted.
    pub(crate) fn status(&self, offset: i64) -> Option<Status> {
        self.emitted.get(&offset).copied()
    }

    /// Emitted and not committed: in flight, failed or acked (what `max.uncommitted.offsets`
    /// bounds).
    #[cfg(test)]
    pub(crate) fn num_uncommitted(&self) -> usize {
        self.emitted.len()
    }

    /// `offset` was emitted (again): in flight. Returns how many earlier attempts failed.
    pub(crate) fn emit(&mut self, offset: i64) -> u32 {
        self.start_at(offset);
        let fails = match self.emitted.get(&offset) {
            Some(Status::Failed { fails, .. }) | Some(Status::InFlight { fails }) => *fails,
            _ => 0,
        };
        self.retries.remove(&offset);
        self.emitted.insert(offset, Status::InFlight { fails });
        fails
    }

    /// `offset` is done (acked, or given up on). Returns false if it was not in flight or
    /// failed (a late ack, or an offset committed meanwhile): nothing changes then.
    pub(crate) fn ack(&mut self, offset: i64) -> bool {
        match self.emitted.get_mut(&offset) {
            Some(s @ (Status::InFlight { .. } | Status::Failed { .. })) => {
                *s = Status::Acked;
                self.retries.remove(&offset);
                true
            }
            _ => false,
        }
    }

    /// Marks an offset that was never emitted (the translator dropped its record) as done.
    pub(crate) fn skip(&mut self, offset: i64) {
        self.start_at(offset);
        self.retries.remove(&offset);
        self.emitted.insert(offset, Status::Acked);
    }

    /// The in-flight `offset` failed; it is retried at `due` (`dead`: on the dead-letter
    /// stream). Returns the number of failed attempts so far, or `None` if it was not in
    /// flight.
    pub(crate) fn fail(&mut self, offset: i64, due: Instant, dead: bool) -> Option<u32> {
        let s = self.emitted.get_mut(&offset)?;
        let Status::InFlight { fails } = *s else {
            return None;
        };
        *s = Status::Failed {
            fails: fails + 1,
            dead,
        };
        self.retries.insert(offset, due);
        Some(fails + 1)
    }

    /// How many attempts of the in-flight `offset` failed before this one (0 for the first).
    pub(crate) fn fails(&self, offset: i64) -> Option<u32> {
        match self.emitted.get(&offset)? {
            Status::InFlight { fails } => Some(*fails),
            _ => None,
        }
    }

    /// Whether the failed `offset` may be emitted again at `now`.
    pub(crate) fn retry_ready(&self, offset: i64, now: Instant) -> bool {
        self.retries.get(&offset).is_some_and(|due| *due <= now)
    }

    /// The lowest failed offset that may be retried at `now`.
    pub(crate) fn earliest_retriable(&self, now: Instant) -> Option<i64> {
        self.retries
            .iter()
            .find(|(_, due)| **due <= now)
            .map(|(o, _)| *o)
    }

    /// Whether the partition may be polled at `now` under `max_uncommitted`: below the limit,
    /// or it has a retriable offset among its first `max_uncommitted` uncommitted offsets
    /// (retries inside the limit may proceed; Storm's rule).
    pub(crate) fn pollable(&self, max_uncommitted: usize, now: Instant) -> bool {
        if self.emitted.len() < max_uncommitted {
            return true;
        }
        let Some(retry) = self.earliest_retriable(now) else {
            return false;
        };
        self.emitted.range(..retry).count() < max_uncommitted
    }

    /// Treats the failed offsets in `from..to` as done: a poll after seeking to `from` for a
    /// retry returned `to` first, so they are gone from the log (compacted or deleted).
    pub(crate) fn ack_retriable_below(&mut self, from: i64, to: i64) {
        let gone: Vec<i64> = self.retries.range(from..to).map(|(o, _)| *o).collect();
        for o in gone {
            self.ack(o);
        }
    }

    /// The offset to commit: one past the last of the done offsets that start at the committed
    /// one, skipping offsets never emitted. `None` if it would not move.
    pub(crate) fn next_commit_offset(&self) -> Option<i64> {
        let committed = self.committed?;
        let mut next = committed;
        for (&offset, status) in &self.emitted {
            if *status != Status::Acked {
                break;
            }
            // offset > next: the offsets between were never emitted (a gap in the log).
            next = offset + 1;
        }
        (next > committed).then_some(next)
    }

    /// `next` was committed: forget everything below it.
    pub(crate) fn commit(&mut self, next: i64) {
        self.committed = Some(self.committed.map_or(next, |c| c.max(next)));
        self.emitted = self.emitted.split_off(&next);
        self.retries = self.retries.split_off(&next);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn acked(m: &mut OffsetManager, offsets: impl IntoIterator<Item = i64>) {
        for o in offsets {
            m.emit(o);
            assert!(m.ack(o), "ack of {o}");
        }
    }

    #[test]
    fn commits_only_a_contiguous_acked_prefix() {
        let mut m = OffsetManager::new(Some(0));
        for o in 0..5 {
            m.emit(o);
        }
        assert_eq!(m.next_commit_offset(), None, "nothing acked");
        m.ack(1);
        m.ack(2);
        assert_eq!(m.next_commit_offset(), None, "0 is still in flight");
        m.ack(0);
        assert_eq!(m.next_commit_offset(), Some(3));
        m.commit(3);
        assert_eq!(m.num_uncommitted(), 2);
        m.ack(4);
        assert_eq!(m.next_commit_offset(), None, "3 is still in flight");
        m.ack(3);
        assert_eq!(m.next_commit_offset(), Some(5));
        m.commit(5);
        assert_eq!(m.num_uncommitted(), 0);
        assert_eq!(m.committed(), Some(5));
    }

    #[test]
    fn a_failed_offset_holds_the_commit_back_until_it_is_retried_and_acked() {
        let now = Instant::now();
        let mut m = OffsetManager::new(Some(10));
        acked(&mut m, [11, 12]);
        m.emit(10);
        assert_eq!(m.fail(10, now, false), Some(1));
        assert_eq!(m.next_commit_offset(), None);
        assert_eq!(m.earliest_retriable(now), Some(10));
        assert!(m.retry_ready(10, now));
        assert_eq!(m.emit(10), 1, "the retry knows one attempt failed");
        assert_eq!(m.earliest_retriable(now), None);
        assert!(m.ack(10));
        assert_eq!(m.next_commit_offset(), Some(13));
    }

    #[test]
    fn gaps_never_emitted_do_not_hold_the_commit_back() {
        // Offsets 3..=6 were compacted away: the log has 0, 1, 2, 7, 8.
        let mut m = OffsetManager::new(Some(0));
        acked(&mut m, [0, 1, 2, 7, 8]);
        assert_eq!(m.next_commit_offset(), Some(9));
        // A gap right at the committed offset too.
        let mut m = OffsetManager::new(Some(100));
        acked(&mut m, [105]);
        assert_eq!(m.next_commit_offset(), Some(106));
        // But an emitted, unacked offset after a gap stops it.
        let mut m = OffsetManager::new(Some(0));
        acked(&mut m, [0]);
        m.emit(5);
        acked(&mut m, [6]);
        assert_eq!(m.next_commit_offset(), Some(1));
    }

    #[test]
    fn an_unknown_start_is_learnt_from_the_first_record() {
        let mut m = OffsetManager::new(None);
        assert_eq!(m.next_commit_offset(), None);
        acked(&mut m, [42, 43]);
        assert_eq!(m.committed(), Some(42));
        assert_eq!(m.next_commit_offset(), Some(44));
    }

    #[test]
    fn late_acks_and_acks_of_committed_offsets_change_nothing() {
        let mut m = OffsetManager::new(Some(0));
        acked(&mut m, [0, 1]);
        m.commit(2);
        assert!(!m.ack(1), "already committed");
        assert!(!m.ack(7), "never emitted");
        assert!(m.is_committed(1));
        assert!(!m.is_committed(2));
        assert_eq!(m.next_commit_offset(), None);
    }

    #[test]
    fn max_uncommitted_stops_polling_but_lets_retries_inside_the_limit_through() {
        let now = Instant::now();
        let later = now + Duration::from_secs(60);
        let mut m = OffsetManager::new(Some(0));
        for o in 0..4 {
            m.emit(o);
        }
        assert!(m.pollable(5, now));
        assert!(!m.pollable(4, now), "4 uncommitted, limit 4");
        // Offset 1 failed, retry not due yet: still not pollable.
        m.fail(1, later, false);
        assert!(!m.pollable(4, now));
        // Due now: offset 1 is among the first 4 uncommitted, so it may be retried.
        let mut m2 = m.clone();
        m2.fail(2, now, false);
        assert!(m2.pollable(4, now));
        // A retry beyond the first `limit` uncommitted offsets may not.
        assert!(
            !m2.pollable(2, now),
            "offset 2 is the third uncommitted, limit 2"
        );
        // Acking and committing frees room.
        m.ack(0);
        m.commit(1);
        assert!(m.pollable(4, now));
    }

    #[test]
    fn retriable_offsets_compacted_away_are_done() {
        let now = Instant::now();
        let mut m = OffsetManager::new(Some(0));
        for o in 0..3 {
            m.emit(o);
            m.fail(o, now, false);
        }
        // Seeking to 0 for the retry, the poll returned 2 first: 0 and 1 are gone.
        m.ack_retriable_below(0, 2);
        assert_eq!(m.status(0), Some(Status::Acked));
        assert_eq!(m.status(1), Some(Status::Acked));
        assert_eq!(m.earliest_retriable(now), Some(2));
        assert_eq!(m.next_commit_offset(), Some(2));
    }

    #[test]
    fn dropped_records_are_done_at_once() {
        let mut m = OffsetManager::new(Some(0));
        m.skip(0);
        acked(&mut m, [1]);
        assert_eq!(m.next_commit_offset(), Some(2));
    }
}
