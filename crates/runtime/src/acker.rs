//! Storm's XOR acker: tracks every tuple tree in 64 bits per tree.
//!
//! A spout tuple gets a random root id; every anchored edge of its tree gets a random edge id.
//! The spout sends `Init(root, xor of its edges)`; acking a tuple sends `Ack(root, its edge id xor
//! the ids of the children anchored to it)`. Every edge id thus enters the XOR exactly twice, once
//! when created and once when acked, and the value reaches zero exactly when the whole tree is
//! acked. Trees are assigned to acker tasks by root id, so ackers share no state.

use crate::failure::FailReason;
use crate::transfer::{AckerMsg, Inbox, Outbox, Payload, Transfer, TreeOutcome};
use rustc_hash::FxHashMap;
use std::collections::hash_map;
use std::time::Duration;

/// The acker task of the tree `root` among `ackers` (not empty). Roots are uniformly random,
/// so the high bits of `root * n` spread trees evenly, without a division per message.
#[inline]
pub(crate) fn acker_of(ackers: &std::ops::Range<u32>, root: u64) -> u32 {
    let n = u64::from(ackers.end - ackers.start);
    ackers.start + ((u128::from(root) * u128::from(n)) >> 64) as u32
}

#[derive(Debug, Default)]
struct Entry {
    val: u64,
    spout_task: Option<u32>,
    /// The first failure's reason (later ones of the same tree are dropped).
    failed: Option<Box<FailReason>>,
}

/// The acker's table of open trees, in two generations: entries that see no completion within one
/// to two message timeouts are dropped (the spout has failed them on its own clock by then).
#[derive(Debug, Default)]
pub(crate) struct AckerState {
    current: FxHashMap<u64, Entry>,
    previous: FxHashMap<u64, Entry>,
}

impl AckerState {
    /// Applies one message; returns the spout task and outcome if the tree is now decided.
    pub(crate) fn apply(&mut self, msg: AckerMsg) -> Option<(u32, TreeOutcome)> {
        let root = match &msg {
            AckerMsg::Init { root, .. }
            | AckerMsg::Ack { root, .. }
            | AckerMsg::Fail { root, .. } => *root,
        };
        // One hash lookup for a tree already open (the common case), and no insert for a tree
        // that completes on the message that opens it here.
        match self.current.entry(root) {
            hash_map::Entry::Occupied(mut open) => {
                let decided = Self::update(open.get_mut(), root, msg)?;
                open.remove();
                Some(decided)
            }
            hash_map::Entry::Vacant(slot) => {
                let mut entry = if self.previous.is_empty() {
                    Entry::default()
                } else {
                    self.previous.remove(&root).unwrap_or_default()
                };
                match Self::update(&mut entry, root, msg) {
                    Some(decided) => Some(decided),
                    None => {
                        slot.insert(entry);
                        None
                    }
                }
            }
        }
    }

    /// Applies `msg` to the entry of its tree `root`; returns the spout task and outcome if
    /// decided.
    #[inline]
    fn update(entry: &mut Entry, root: u64, msg: AckerMsg) -> Option<(u32, TreeOutcome)> {
        match msg {
            AckerMsg::Init {
                xor, spout_task, ..
            } => {
                entry.val ^= xor;
                entry.spout_task = Some(spout_task);
            }
            AckerMsg::Ack { xor, .. } => entry.val ^= xor,
            AckerMsg::Fail { reason, .. } => {
                if entry.failed.is_none() {
                    entry.failed = Some(reason);
                }
            }
        }
        let spout_task = entry.spout_task?;
        if let Some(reason) = entry.failed.take() {
            Some((spout_task, TreeOutcome::Failed { root, reason }))
        } else if entry.val == 0 {
            Some((spout_task, TreeOutcome::Acked { root }))
        } else {
            None
        }
    }

    /// Drops the trees that have been open for more than one rotation period.
    pub(crate) fn rotate(&mut self) -> usize {
        let expired = self.previous.len();
        self.previous = std::mem::take(&mut self.current);
        expired
    }

    /// Number of open trees.
    pub(crate) fn open(&self) -> usize {
        self.current.len() + self.previous.len()
    }
}

/// Runs one acker executor until every producer of its queue has finished.
pub(crate) async fn run_acker(
    mut inbox: Inbox,
    transfer: Transfer,
    mut outbox: Outbox,
    timeout: Duration,
) {
    let mut state = AckerState::default();
    let mut rotate = tokio::time::interval_at(tokio::time::Instant::now() + timeout, timeout);
    loop {
        tokio::select! {
            env = inbox.recv() => {
                let Some(env) = env else { break };
                if let Payload::Acker(msgs) = env.payload {
                    for m in msgs {
                        if let Some((task, outcome)) = state.apply(m) {
                            outbox.push_outcome(task, outcome);
                        }
                    }
                }
                // Keep reading while batches are queued; flush once the queue is empty.
                if !inbox.is_empty() && outbox.ready.is_empty() {
                    continue;
                }
                outbox.flush();
                for env in outbox.ready.drain(..) {
                    // A spout task that has shut down no longer needs its outcomes.
                    let _ = transfer.send(env).await;
                }
            }
            _ = rotate.tick() => {
                let expired = state.rotate();
                if expired > 0 {
                    tracing::debug!(expired, open = state.open(), "acker dropped expired tuple trees");
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// The outcome of a tree failed by [`AckerMsg::test_fail`].
    fn failed(root: u64) -> TreeOutcome {
        let AckerMsg::Fail { reason, .. } = AckerMsg::test_fail(root) else {
            unreachable!()
        };
        TreeOutcome::Failed { root, reason }
    }

    /// A random tuple tree: node 0 is the spout; `parent[i]` is node i's parent (< i).
    /// Every non-spout node is a tuple delivered over an edge with a random id.
    fn messages(parents: &[usize], edge_ids: &[u64], root: u64) -> Vec<AckerMsg> {
        let n = parents.len() + 1;
        let mut children_xor = vec![0u64; n];
        for (i, &p) in parents.iter().enumerate() {
            children_xor[p] ^= edge_ids[i];
        }
        let mut msgs = vec![AckerMsg::Init {
            root,
            xor: children_xor[0],
            spout_task: 7,
        }];
        for i in 0..parents.len() {
            msgs.push(AckerMsg::Ack {
                root,
                xor: edge_ids[i] ^ children_xor[i + 1],
            });
        }
        msgs
    }

    fn tree() -> impl Strategy<Value = (Vec<usize>, Vec<u64>)> {
        (1usize..40).prop_flat_map(|n| {
            let parents = (0..n).map(|i| 0..=i).collect::<Vec<_>>();
            (parents, proptest::collection::vec(any::<u64>(), n))
        })
    }

    proptest! {
        #[test]
        fn completes_exactly_when_every_edge_is_acked(
            (parents, ids) in tree(), order_seed in any::<u64>(), root in any::<u64>()
        ) {
            let mut msgs = messages(&parents, &ids, root);
            fastrand::Rng::with_seed(order_seed).shuffle(&mut msgs);
            let mut acker = AckerState::default();
            let last = msgs.len() - 1;
            for (i, m) in msgs.into_iter().enumerate() {
                let out = acker.apply(m);
                if i == last {
                    prop_assert_eq!(out, Some((7, TreeOutcome::Acked { root })));
                } else {
                    prop_assert_eq!(out, None, "completed early at message {} of {}", i, last);
                }
            }
            prop_assert_eq!(acker.open(), 0);
        }

        #[test]
        fn acks_folded_by_the_outbox_complete_the_tree_exactly_once(
            (parents, ids) in tree(), order_seed in any::<u64>(), batch in 1usize..8
        ) {
            use crate::transfer::{Destinations, Outbox, Payload};
            let root = 11;
            let mut msgs = messages(&parents, &ids, root);
            fastrand::Rng::with_seed(order_seed).shuffle(&mut msgs);
            let mut outbox = Outbox::new(Destinations::of([0]), batch);
            for m in msgs {
                outbox.push_acker(0, m);
            }
            outbox.flush();
            let mut acker = AckerState::default();
            let mut outcomes = Vec::new();
            for env in outbox.ready.drain(..) {
                let Payload::Acker(batch) = env.payload else { unreachable!() };
                outcomes.extend(batch.into_iter().filter_map(|m| acker.apply(m)));
            }
            prop_assert_eq!(outcomes, vec![(7, TreeOutcome::Acked { root })]);
            prop_assert_eq!(acker.open(), 0);
        }

        #[test]
        fn a_fail_anywhere_fails_the_root_once(
            (parents, ids) in tree(), order_seed in any::<u64>(), fail_at in any::<prop::sample::Index>()
        ) {
            let root = 42;
            let mut msgs = messages(&parents, &ids, root);
            let victim = 1 + fail_at.index(msgs.len() - 1);
            msgs[victim] = AckerMsg::test_fail(root);
            fastrand::Rng::with_seed(order_seed).shuffle(&mut msgs);
            let mut acker = AckerState::default();
            let outcomes: Vec<_> = msgs.into_iter().filter_map(|m| acker.apply(m)).collect();
            prop_assert_eq!(outcomes, vec![(7, failed(root))]);
        }

        #[test]
        fn late_acks_after_completion_are_ignored(
            (parents, ids) in tree(), replay_seed in any::<u64>()
        ) {
            let root = 9;
            let msgs = messages(&parents, &ids, root);
            let mut acker = AckerState::default();
            let outcomes: Vec<_> = msgs.iter().filter_map(|m| acker.apply(m.clone())).collect();
            prop_assert_eq!(outcomes.len(), 1);
            // Duplicated acks and fails (e.g. a replayed batch) arrive after the tree completed.
            let mut rng = fastrand::Rng::with_seed(replay_seed);
            for m in msgs.iter().skip(1) {
                if rng.bool() {
                    prop_assert_eq!(acker.apply(m.clone()), None);
                }
            }
            prop_assert_eq!(acker.apply(AckerMsg::test_fail(root)), None);
        }
    }

    #[test]
    fn trees_spread_evenly_over_the_ackers_and_stay_in_their_range() {
        let ackers = 10..13;
        let mut per_acker = [0u32; 3];
        let mut rng = fastrand::Rng::with_seed(7);
        for _ in 0..30_000 {
            let a = acker_of(&ackers, rng.u64(1..));
            assert!(ackers.contains(&a), "acker {a} out of {ackers:?}");
            per_acker[(a - 10) as usize] += 1;
        }
        for n in per_acker {
            assert!((9_000..11_000).contains(&n), "uneven spread: {per_acker:?}");
        }
        assert_eq!(acker_of(&(4..5), u64::MAX), 4);
    }

    #[test]
    fn fail_before_init_fails_on_init() {
        let mut a = AckerState::default();
        assert_eq!(a.apply(AckerMsg::test_fail(1)), None);
        assert_eq!(
            a.apply(AckerMsg::Init {
                root: 1,
                xor: 5,
                spout_task: 3
            }),
            Some((3, failed(1)))
        );
    }

    #[test]
    fn the_first_failure_of_a_tree_is_its_reason() {
        use crate::failure::{BoltFailure, FailReason};
        let mut a = AckerState::default();
        let fail = |task| AckerMsg::Fail {
            root: 1,
            reason: Box::new(FailReason::bolt("count", task, BoltFailure::Panic, "boom")),
        };
        assert_eq!(a.apply(fail(4)), None, "the tree is not open yet");
        assert_eq!(a.apply(fail(5)), None);
        let Some((3, TreeOutcome::Failed { root: 1, reason })) = a.apply(AckerMsg::Init {
            root: 1,
            xor: 5,
            spout_task: 3,
        }) else {
            panic!("the tree did not fail on its init")
        };
        assert_eq!(
            *reason,
            FailReason::bolt("count", 4, BoltFailure::Panic, "boom")
        );
        assert_eq!(a.open(), 0);
    }

    #[test]
    fn open_trees_expire_after_two_rotations() {
        let mut a = AckerState::default();
        a.apply(AckerMsg::Init {
            root: 1,
            xor: 5,
            spout_task: 3,
        });
        assert_eq!(a.rotate(), 0);
        assert_eq!(a.open(), 1);
        assert_eq!(a.rotate(), 1);
        assert_eq!(a.open(), 0);
    }
}
