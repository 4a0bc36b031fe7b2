//! Checkpoint barriers at a bolt task: every upstream task sends each barrier to every task of
//! its consumers, in order with its tuples, so a barrier cuts each input channel (one upstream
//! task) into before and after. The task takes checkpoint `n` once every channel has passed
//! barrier `n`.
//!
//! Exactly-once mode **aligns**: a channel that has passed a barrier the task has not yet
//! checkpointed is blocked, its tuples buffered, until the others catch up; so checkpoint `n`
//! holds exactly the effects of the tuples before barrier `n` on every channel (Flink's aligned
//! checkpoints). Beyond `max_buffered` tuples the checkpoint is abandoned: its barriers are
//! failed (so it never completes) and everything buffered is executed in order.
//!
//! At-least-once mode does not block (Storm's behaviour): the checkpoint may include a few
//! tuples from after the barrier, which is harmless when acks wait for the checkpoint.
//!
//! A pure state machine: [`Aligner::offer`] takes tuples as they arrive, [`Aligner::next`]
//! says what to do.

use crate::tuple::Tuple;
use rustc_hash::FxHashMap;
use std::collections::VecDeque;

/// What the executor does next.
#[derive(Debug)]
pub(crate) enum Step {
    /// Execute this tuple.
    Execute(Tuple),
    /// Take checkpoint `id`, then pass it on anchored to `barriers` and ack them.
    Checkpoint {
        /// The checkpoint.
        id: u64,
        /// The barrier tuples it completes.
        barriers: Vec<Tuple>,
    },
    /// Fail these barriers: their checkpoints are abandoned here (or stale).
    Fail(Vec<Tuple>),
}

#[derive(Debug, Default)]
struct Channel {
    /// The last barrier this channel passed.
    epoch: u64,
    /// Tuples and barriers held while the channel is blocked, in arrival order.
    held: VecDeque<Tuple>,
}

/// Barrier bookkeeping of one bolt task.
#[derive(Debug)]
pub(crate) struct Aligner {
    align: bool,
    max_buffered: usize,
    channels: FxHashMap<u32, Channel>,
    /// The last checkpoint taken (or abandoned).
    done: u64,
    /// Barriers passed, not yet handed out with a checkpoint.
    barriers: Vec<(u64, Tuple)>,
    /// Data tuples held, over every channel.
    buffered: usize,
    steps: VecDeque<Step>,
}

impl Aligner {
    /// Bookkeeping for a task whose inputs come from `upstream` tasks, starting after
    /// checkpoint `restored` (0: none).
    pub(crate) fn new(
        upstream: impl IntoIterator<Item = u32>,
        restored: u64,
        align: bool,
        max_buffered: usize,
    ) -> Self {
        Aligner {
            align,
            max_buffered,
            channels: upstream
                .into_iter()
                .map(|t| {
                    (
                        t,
                        Channel {
                            epoch: restored,
                            held: VecDeque::new(),
                        },
                    )
                })
                .collect(),
            done: restored,
            barriers: Vec::new(),
            buffered: 0,
            steps: VecDeque::new(),
        }
    }

    /// Number of data tuples held back now.
    #[cfg(test)]
    pub(crate) fn buffered(&self) -> usize {
        self.buffered
    }

    /// The common case first: a data tuple on a channel that is not blocked, with nothing
    /// queued before it, is handed back to execute at once (`Ok`); anything else is taken
    /// (`Err(())`: see [`Aligner::next`]).
    #[inline]
    pub(crate) fn admit(&mut self, tuple: Tuple) -> Result<Tuple, ()> {
        if self.steps.is_empty() && barrier_id(&tuple).is_none() {
            let free = match self.channels.get(&tuple.source_task()) {
                Some(ch) => !(self.align && ch.epoch > self.done),
                None => true,
            };
            if free {
                return Ok(tuple);
            }
        }
        self.offer(tuple);
        Err(())
    }

    /// Takes an arriving tuple (data or barrier).
    pub(crate) fn offer(&mut self, tuple: Tuple) {
        let source = tuple.source_task();
        let Some(ch) = self.channels.get_mut(&source) else {
            // Not from an upstream task (a tick): never held.
            self.steps.push_back(match barrier_id(&tuple) {
                Some(_) => Step::Fail(vec![tuple]),
                None => Step::Execute(tuple),
            });
            return;
        };
        let blocked = self.align && ch.epoch > self.done;
        if blocked {
            if barrier_id(&tuple).is_none() {
                self.buffered += 1;
            }
            ch.held.push_back(tuple);
            if self.buffered > self.max_buffered {
                self.abandon();
            }
            return;
        }
        match barrier_id(&tuple) {
            None => self.steps.push_back(Step::Execute(tuple)),
            Some(id) => {
                self.pass(source, id, tuple);
                self.advance();
            }
        }
    }

    /// The next thing to do, if any.
    pub(crate) fn next(&mut self) -> Option<Step> {
        self.steps.pop_front()
    }

    /// Channel `source` passes barrier `id`.
    fn pass(&mut self, source: u32, id: u64, tuple: Tuple) {
        let ch = self.channels.get_mut(&source).expect("known channel");
        if id <= ch.epoch || id <= self.done {
            // From before a restore or an abandoned checkpoint.
            self.steps.push_back(Step::Fail(vec![tuple]));
            return;
        }
        ch.epoch = id;
        self.barriers.push((id, tuple));
    }

    /// Takes every checkpoint all channels have passed, releasing what they unblock.
    fn advance(&mut self) {
        loop {
            let Some(min) = self.channels.values().map(|c| c.epoch).min() else {
                return;
            };
            if min <= self.done {
                return;
            }
            self.done = min;
            let (now, later): (Vec<_>, Vec<_>) =
                self.barriers.drain(..).partition(|(id, _)| *id <= min);
            self.barriers = later;
            self.steps.push_back(Step::Checkpoint {
                id: min,
                barriers: now.into_iter().map(|(_, t)| t).collect(),
            });
            // Channels at `min` are unblocked: replay what they hold until the next barrier.
            let sources: Vec<u32> = self.channels.keys().copied().collect();
            for s in sources {
                while self.channels[&s].epoch <= self.done {
                    let Some(t) = self.channels.get_mut(&s).and_then(|c| c.held.pop_front()) else {
                        break;
                    };
                    match barrier_id(&t) {
                        None => {
                            self.buffered -= 1;
                            self.steps.push_back(Step::Execute(t));
                        }
                        Some(id) => self.pass(s, id, t),
                    }
                }
            }
        }
    }

    /// Too much held: give up every checkpoint up to the newest barrier seen, fail those
    /// barriers, and execute everything held in channel order.
    fn abandon(&mut self) {
        let mut failed: Vec<Tuple> = self.barriers.drain(..).map(|(_, t)| t).collect();
        let mut newest = self.done;
        for ch in self.channels.values_mut() {
            newest = newest.max(ch.epoch);
            for t in ch.held.drain(..) {
                match barrier_id(&t) {
                    Some(id) => {
                        newest = newest.max(id);
                        failed.push(t);
                    }
                    None => self.steps.push_back(Step::Execute(t)),
                }
            }
        }
        for ch in self.channels.values_mut() {
            ch.epoch = newest;
        }
        self.done = newest;
        self.buffered = 0;
        tracing::warn!(
            checkpoint = newest,
            "more than {} tuples held while aligning barriers: checkpoints up to {newest} abandoned at this task",
            self.max_buffered
        );
        self.steps.push_back(Step::Fail(failed));
    }
}

/// The checkpoint id of a barrier tuple; `None` for data.
pub(crate) fn barrier_id(t: &Tuple) -> Option<u64> {
    if t.source_stream() != tempest_protocol::spec::CHECKPOINT_STREAM {
        return None;
    }
    match t.values().first() {
        Some(crate::value::Value::I64(id)) => Some(*id as u64),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tuple::{Anchors, Fields, StreamMeta};
    use crate::values;
    use tempest_protocol::spec::CHECKPOINT_STREAM;

    fn data(source: u32, n: i64) -> Tuple {
        let meta = StreamMeta::intern("up", "default", &Fields::from(["n"]));
        Tuple::new(meta, values![n], source, Anchors::new())
    }

    fn barrier(source: u32, id: u64) -> Tuple {
        let meta = StreamMeta::intern("up", CHECKPOINT_STREAM, &Fields::from(["id"]));
        Tuple::new(meta, values![id as i64], source, Anchors::new())
    }

    /// The steps as text: "7" executes data 7 from its channel, "c5[1,2]" checkpoints 5 with
    /// the barriers of channels 1 and 2, "f[2]" fails channel 2's barrier.
    fn steps(a: &mut Aligner) -> Vec<String> {
        let mut out = Vec::new();
        while let Some(s) = a.next() {
            out.push(match s {
                Step::Execute(t) => t.values()[0].to_string(),
                Step::Checkpoint { id, barriers } => format!(
                    "c{id}{:?}",
                    barriers.iter().map(|b| b.source_task()).collect::<Vec<_>>()
                ),
                Step::Fail(b) => {
                    format!(
                        "f{:?}",
                        b.iter().map(|b| b.source_task()).collect::<Vec<_>>()
                    )
                }
            });
        }
        out
    }

    #[test]
    fn aligned_two_inputs_one_ahead_holds_the_fast_one_until_the_slow_one_passes() {
        let mut a = Aligner::new([1, 2], 0, true, 100);
        a.offer(data(1, 10));
        a.offer(barrier(1, 1));
        // Channel 1 is ahead: its next tuples wait.
        a.offer(data(1, 11));
        a.offer(data(1, 12));
        a.offer(data(2, 20));
        a.offer(data(2, 21));
        assert_eq!(steps(&mut a), ["10", "20", "21"]);
        assert_eq!(a.buffered(), 2);
        a.offer(barrier(2, 1));
        // The checkpoint holds exactly 10, 20, 21; then channel 1's tuples follow.
        assert_eq!(steps(&mut a), ["c1[1, 2]", "11", "12"]);
        assert_eq!(a.buffered(), 0);
    }

    #[test]
    fn a_channel_two_barriers_ahead_is_released_one_checkpoint_at_a_time() {
        let mut a = Aligner::new([1, 2], 0, true, 100);
        a.offer(barrier(1, 1));
        a.offer(data(1, 11));
        a.offer(barrier(1, 2));
        a.offer(data(1, 12));
        a.offer(data(2, 20));
        a.offer(barrier(2, 1));
        assert_eq!(steps(&mut a), ["20", "c1[1, 2]", "11"]);
        a.offer(data(2, 21));
        a.offer(barrier(2, 2));
        assert_eq!(steps(&mut a), ["21", "c2[1, 2]", "12"]);
    }

    #[test]
    fn unaligned_mode_never_holds_and_checkpoints_when_the_last_channel_passes() {
        let mut a = Aligner::new([1, 2], 0, false, 100);
        a.offer(barrier(1, 1));
        a.offer(data(1, 11));
        a.offer(barrier(2, 1));
        a.offer(data(2, 21));
        assert_eq!(steps(&mut a), ["11", "c1[1, 2]", "21"]);
        assert_eq!(a.buffered(), 0);
    }

    #[test]
    fn too_much_held_abandons_the_checkpoint_and_fails_its_barriers() {
        let mut a = Aligner::new([1, 2], 0, true, 2);
        a.offer(barrier(1, 1));
        a.offer(data(1, 11));
        a.offer(data(1, 12));
        assert_eq!(steps(&mut a), Vec::<String>::new());
        a.offer(data(1, 13));
        assert_eq!(steps(&mut a), ["11", "12", "13", "f[1]"]);
        // The slow channel's barrier 1 is now stale; barrier 2 is a normal checkpoint again.
        a.offer(barrier(2, 1));
        assert_eq!(steps(&mut a), ["f[2]"]);
        a.offer(barrier(1, 2));
        a.offer(barrier(2, 2));
        assert_eq!(steps(&mut a), ["c2[1, 2]"]);
    }

    #[test]
    fn barriers_from_before_a_restore_are_failed_and_ticks_pass() {
        let mut a = Aligner::new([1], 5, true, 10);
        a.offer(barrier(1, 4));
        a.offer(data(0, 1)); // not from an upstream task
        a.offer(barrier(1, 6));
        assert_eq!(steps(&mut a), ["f[1]", "1", "c6[1]"]);
    }
}
