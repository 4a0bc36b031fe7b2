//! Why a tuple failed: a failed tree's reason reaches the spout task that emitted it — the
//! bolt and task that failed it with its message (`fail`, `fail_because`, an `Err` or a panic
//! in `execute`, also two levels down the tree), or the timeout — and is counted per reason;
//! a spout that implements only Storm's `fail(msg_id)` still gets every failure.

mod common;

use common::{lock, run};
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use topology_api::config::TOPOLOGY_MESSAGE_TIMEOUT_SECS;
use topology_api::prelude::*;
use topology_api::BoltFailure;

const N: u64 = 12;

/// What a spout learned: message id -> the reason (`None`: `fail` without a reason).
type Fails = Arc<Mutex<BTreeMap<u64, Option<FailReason>>>>;

/// Emits `[id]` for the ids `0..N` once each (no replay).
struct Numbers {
    next: u64,
    fails: Fails,
    acks: Arc<Mutex<Vec<u64>>>,
}

impl Numbers {
    fn emit(&mut self, c: &mut SpoutOutputCollector) -> ComponentResult {
        if self.next < N {
            c.emit(values![self.next], Some(self.next))?;
            self.next += 1;
        }
        Ok(())
    }
}

/// [`Numbers`] that wants the reason.
struct ReasonSpout(Numbers);

#[async_trait]
impl Spout for ReasonSpout {
    fn declare_output_fields(&self, d: &mut OutputDeclarer) {
        d.declare(["id"]);
    }
    async fn next_tuple(&mut self, c: &mut SpoutOutputCollector) -> ComponentResult {
        self.0.emit(c)
    }
    async fn ack(&mut self, id: u64) {
        lock(&self.0.acks).push(id);
    }
    async fn fail(&mut self, id: u64) {
        panic!("fail({id}) called although fail_with_reason is implemented");
    }
    async fn fail_with_reason(&mut self, id: u64, reason: &FailReason) {
        let before = lock(&self.0.fails).insert(id, Some(reason.clone()));
        assert!(before.is_none(), "{id} failed twice");
    }
    fn is_finished(&self) -> bool {
        self.0.next >= N
    }
}

/// [`Numbers`] as a Storm spout: only `fail(msg_id)`.
struct PlainSpout(Numbers);

#[async_trait]
impl Spout for PlainSpout {
    fn declare_output_fields(&self, d: &mut OutputDeclarer) {
        d.declare(["id"]);
    }
    async fn next_tuple(&mut self, c: &mut SpoutOutputCollector) -> ComponentResult {
        self.0.emit(c)
    }
    async fn ack(&mut self, id: u64) {
        lock(&self.0.acks).push(id);
    }
    async fn fail(&mut self, id: u64) {
        lock(&self.0.fails).insert(id, None);
    }
    fn is_finished(&self) -> bool {
        self.0.next >= N
    }
}

/// By `id % 6`: 0 acks; 1 `fail_because`; 2 returns an error; 3 panics; 4 and 5 pass it on
/// (anchored) to [`Sink`] and ack.
struct Judge;

#[async_trait]
impl Bolt for Judge {
    fn declare_output_fields(&self, d: &mut OutputDeclarer) {
        d.declare(["id"]);
    }
    async fn execute(&mut self, input: Tuple, c: &mut OutputCollector) -> ComponentResult {
        let id = input.i64("id")?;
        match id % 6 {
            1 => c.fail_because(&input, format!("odd id {id}")),
            2 => return Err(format!("bad id {id}").into()),
            3 => panic!("cannot bear id {id}"),
            4 | 5 => {
                c.emit_anchored(&input, values![id])?;
                c.ack(&input);
            }
            _ => c.ack(&input),
        }
        Ok(())
    }
}

/// Fails `id % 6 == 4` with a plain `fail`; holds `5` (neither acks nor fails: it times out).
struct Sink;

#[async_trait]
impl Bolt for Sink {
    fn declare_output_fields(&self, _: &mut OutputDeclarer) {}
    async fn execute(&mut self, input: Tuple, c: &mut OutputCollector) -> ComponentResult {
        if input.i64("id")? % 6 == 4 {
            c.fail(&input);
        }
        Ok(())
    }
}

fn numbers(fails: &Fails, acks: &Arc<Mutex<Vec<u64>>>) -> Numbers {
    Numbers {
        next: 0,
        fails: fails.clone(),
        acks: acks.clone(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_spout_learns_who_failed_each_tree_and_why_and_counts_it() {
    type Acks = Arc<Mutex<Vec<u64>>>;
    let (fails, acks): (Fails, Acks) = Default::default();
    let (plain_fails, plain_acks): (Fails, Acks) = Default::default();
    let mut b = TopologyBuilder::new("fail-reasons");
    b.config().set(TOPOLOGY_MESSAGE_TIMEOUT_SECS, 1);
    let (f, a) = (fails.clone(), acks.clone());
    b.set_spout("reasons", move || ReasonSpout(numbers(&f, &a)), 1);
    let (f, a) = (plain_fails.clone(), plain_acks.clone());
    b.set_spout("plain", move || PlainSpout(numbers(&f, &a)), 1);
    b.set_bolt("judge", || Judge, 2)
        .shuffle_grouping("reasons")
        .shuffle_grouping("plain");
    b.set_bolt("sink", || Sink, 1).shuffle_grouping("judge");
    let topology = b.build().expect("a valid topology");
    let judge_tasks = topology_api::spec::TaskLayout::of(topology.spec()).tasks("judge");
    let sink_task = topology_api::spec::TaskLayout::of(topology.spec())
        .tasks("sink")
        .start;

    let report = run(&topology).await;

    let fails = lock(&fails).clone();
    let expected_ids: Vec<u64> = (0..N).filter(|id| id % 6 != 0).collect();
    assert_eq!(fails.keys().copied().collect::<Vec<_>>(), expected_ids);
    for (id, reason) in &fails {
        let reason = reason.as_ref().expect("a reason");
        let judged = |how, message: String| match reason {
            FailReason::Bolt {
                component,
                task,
                how: h,
                message: m,
            } => {
                assert_eq!(
                    (component.as_str(), *h, m),
                    ("judge", how, &message),
                    "{id}"
                );
                assert!(judge_tasks.contains(task), "{id}: task {task}");
            }
            other => panic!("{id}: expected judge's failure, got {other}"),
        };
        match id % 6 {
            1 => judged(BoltFailure::Failed, format!("odd id {id}")),
            2 => judged(BoltFailure::Error, format!("bad id {id}")),
            3 => judged(BoltFailure::Panic, format!("cannot bear id {id}")),
            4 => assert_eq!(
                reason,
                &FailReason::Bolt {
                    component: "sink".into(),
                    task: sink_task,
                    how: BoltFailure::Failed,
                    message: String::new(),
                },
                "{id}"
            ),
            _ => assert_eq!(
                reason,
                &FailReason::Timeout {
                    after: Duration::from_secs(1)
                },
                "{id}"
            ),
        }
    }
    assert_eq!(lock(&acks).clone(), vec![0, 6]);

    // Storm's fail(msg_id) gets the same failures.
    let plain: BTreeMap<u64, Option<FailReason>> =
        expected_ids.iter().map(|&id| (id, None)).collect();
    assert_eq!(lock(&plain_fails).clone(), plain);

    // Counted by reason per spout task, summing to `failed`.
    let by = report.by_component();
    for spout in ["reasons", "plain"] {
        let s = &by[spout];
        let f = s.failures;
        assert_eq!(
            (f.failed, f.error, f.panic, f.timeout, f.undelivered),
            (4, 2, 2, 2, 0),
            "{spout}: {f:?}"
        );
        assert_eq!(s.failed, f.total(), "{spout}");
    }
}
