//! Direct grouping: the emitter picks the consuming task with `emit_direct`, from a spout and from
//! a bolt (anchored), and naming a task that does not consume the stream is refused.

mod common;

use common::{lock, run, Ledger, Recorder, Seen};
use std::collections::{BTreeMap, HashSet, VecDeque};
use std::ops::Range;
use std::sync::{Arc, Mutex};
use topology_api::prelude::*;
use topology_api::EmitError;

const N: u64 = 40;

#[derive(Default)]
struct Shared {
    /// (task that received, id, intended target) at the "d" bolt.
    at_d: Mutex<Vec<(u32, u64, u32)>>,
    /// The refused emits: (task named, error).
    refused: Mutex<Vec<(u32, EmitError)>>,
    /// Task ids of the "other" bolt and of the spout itself, as the spout saw them.
    other_tasks: Mutex<Vec<u32>>,
    /// The "e" bolt's refusals (emit_direct from a bolt to a non-consumer).
    bolt_refused: Mutex<Vec<EmitError>>,
}

/// Emits id `i` directly to task `d[i % len]` on stream "to", reliably; also emits every id on
/// its default stream (consumed by "other" with a shuffle grouping).
struct DirectSpout {
    shared: Arc<Shared>,
    ledger: Arc<Ledger>,
    d_tasks: Range<u32>,
    queue: VecDeque<u64>,
    in_flight: HashSet<u64>,
    task: u32,
    tried_bad: bool,
}

#[async_trait]
impl Spout for DirectSpout {
    fn declare_output_fields(&self, d: &mut OutputDeclarer) {
        d.declare(["id"]);
        d.declare_direct_stream("to", ["id", "target"]);
    }
    async fn open(&mut self, ctx: &TopologyContext) -> ComponentResult {
        self.task = ctx.task_id();
        self.d_tasks = ctx.tasks_of("d");
        self.queue = (0..N).collect();
        let mut others: Vec<u32> = ctx.tasks_of("other").collect();
        others.push(ctx.task_id());
        *lock(&self.shared.other_tasks) = others;
        Ok(())
    }
    async fn next_tuple(&mut self, c: &mut SpoutOutputCollector) -> ComponentResult {
        if !self.tried_bad {
            self.tried_bad = true;
            let bad: Vec<u32> = lock(&self.shared.other_tasks).clone();
            for task in bad.into_iter().chain([10_000]) {
                match c.emit_direct(task, "to", values![999, task], Some(999)) {
                    Ok(()) => panic!("emit_direct to non-consumer task {task} was accepted"),
                    Err(e) => lock(&self.shared.refused).push((task, e)),
                }
            }
            assert_eq!(c.pending(), 0, "a refused emit must not start a tree");
        }
        let Some(id) = self.queue.pop_front() else {
            return Ok(());
        };
        let len = self.d_tasks.end - self.d_tasks.start;
        let target = self.d_tasks.start + (id % u64::from(len)) as u32;
        c.emit_direct(target, "to", values![id, target], Some(id))?;
        c.emit(values![id], None)?;
        self.in_flight.insert(id);
        lock(&self.ledger.emits).push(common::Emit {
            task: self.task,
            id,
            at: std::time::Instant::now(),
            pending_before: 0,
            pending_after: c.pending(),
        });
        Ok(())
    }
    async fn ack(&mut self, id: u64) {
        if !self.in_flight.remove(&id) {
            lock(&self.ledger.anomalies).push(format!("ack({id}) not in flight"));
        }
        lock(&self.ledger.acks).push((self.task, id, std::time::Instant::now()));
    }
    async fn fail(&mut self, id: u64) {
        self.in_flight.remove(&id);
        lock(&self.ledger.fails).push((self.task, id, std::time::Instant::now()));
        self.queue.push_back(id);
    }
    fn is_finished(&self) -> bool {
        self.queue.is_empty()
    }
}

/// Records where each direct tuple landed, then forwards it directly (anchored) to task
/// `e[id % len]` on its own direct stream "fwd".
struct DBolt {
    shared: Arc<Shared>,
    task: u32,
    e_tasks: Range<u32>,
}

#[async_trait]
impl Bolt for DBolt {
    fn declare_output_fields(&self, d: &mut OutputDeclarer) {
        d.declare_direct_stream("fwd", ["id"]);
    }
    async fn prepare(&mut self, ctx: &TopologyContext) -> ComponentResult {
        self.task = ctx.task_id();
        self.e_tasks = ctx.tasks_of("e");
        Ok(())
    }
    async fn execute(&mut self, input: Tuple, c: &mut OutputCollector) -> ComponentResult {
        let id = input.i64("id")? as u64;
        let target = input.i64("target")? as u32;
        lock(&self.shared.at_d).push((self.task, id, target));
        // Not a consumer of "fwd": refused.
        if let Err(e) = c.emit_direct(self.task, "fwd", &[&input], values![id]) {
            lock(&self.shared.bolt_refused).push(e);
        }
        let len = self.e_tasks.end - self.e_tasks.start;
        let e_target = self.e_tasks.start + (id % u64::from(len)) as u32;
        c.emit_direct(e_target, "fwd", &[&input], values![id])?;
        c.ack(&input);
        Ok(())
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn direct_emits_reach_exactly_the_named_task() {
    let shared = Arc::new(Shared::default());
    let ledger = Ledger::new();
    let e_seen: Seen = Arc::default();
    let other_seen: Seen = Arc::default();

    let mut b = TopologyBuilder::new("direct");
    let (s, l) = (shared.clone(), ledger.clone());
    b.set_spout(
        "src",
        move || DirectSpout {
            shared: s.clone(),
            ledger: l.clone(),
            d_tasks: 0..0,
            queue: VecDeque::new(),
            in_flight: HashSet::new(),
            task: 0,
            tried_bad: false,
        },
        1,
    );
    let s = shared.clone();
    // Four tasks on two executors: delivery must pick the task, not just the executor.
    b.set_bolt(
        "d",
        move || DBolt {
            shared: s.clone(),
            task: 0,
            e_tasks: 0..0,
        },
        2,
    )
    .set_num_tasks(4)
    .direct_grouping(("src", "to"));
    let s = e_seen.clone();
    b.set_bolt("e", move || Recorder::new(&s), 1)
        .set_num_tasks(3)
        .direct_grouping(("d", "fwd"));
    let s = other_seen.clone();
    b.set_bolt("other", move || Recorder::new(&s), 2)
        .shuffle_grouping("src");
    let topology = b.build().expect("valid topology");
    let report = run(&topology).await;

    // Spout -> d: each id exactly once, at the task it was sent to; all four tasks used.
    let at_d = lock(&shared.at_d).clone();
    let mut ids: Vec<u64> = at_d.iter().map(|&(_, id, _)| id).collect();
    ids.sort_unstable();
    assert_eq!(ids, (0..N).collect::<Vec<_>>());
    for &(task, id, target) in &at_d {
        assert_eq!(
            task, target,
            "id {id} meant for task {target} arrived at task {task}"
        );
    }
    let used: HashSet<u32> = at_d.iter().map(|&(t, _, _)| t).collect();
    assert_eq!(used.len(), 4);

    // d -> e (bolt emit_direct): each id once, at task e[id % 3].
    let e_tasks: Vec<u32> = report
        .tasks
        .iter()
        .filter(|t| t.component == "e")
        .map(|t| t.task_id)
        .collect();
    assert_eq!(e_tasks.len(), 3);
    let at_e: BTreeMap<u64, u32> = lock(&e_seen).iter().map(|&(t, id)| (id, t)).collect();
    assert_eq!(lock(&e_seen).len(), N as usize, "no duplicates at e");
    for id in 0..N {
        assert_eq!(
            at_e.get(&id),
            Some(&e_tasks[(id % 3) as usize]),
            "id {id} at e"
        );
    }
    // The anchored direct emits joined the trees: every id acked once, none failed.
    ledger.assert_all_acked_once(N);
    assert!(ledger.fail_counts().is_empty());
    assert_eq!(lock(&other_seen).len(), N as usize);

    // Refused spout emits: not-a-consumer, naming the task.
    let refused = lock(&shared.refused).clone();
    let mut named: Vec<u32> = lock(&shared.other_tasks).clone();
    named.push(10_000);
    assert_eq!(refused.iter().map(|(t, _)| *t).collect::<Vec<_>>(), named);
    for (task, e) in &refused {
        match e {
            EmitError::NotAConsumer {
                component,
                stream,
                task: t,
                consumers,
            } => {
                assert_eq!(component, "src");
                assert_eq!(stream, "to");
                assert_eq!(t, task);
                let d_tasks: Vec<u32> = report
                    .tasks
                    .iter()
                    .filter(|r| r.component == "d")
                    .map(|r| r.task_id)
                    .collect();
                assert_eq!(consumers, &d_tasks);
            }
            other => panic!("emit_direct to task {task}: expected NotAConsumer, got {other:?}"),
        }
        let msg = e.to_string();
        assert!(msg.contains(&format!("task {task}")), "{msg}");
        assert!(msg.contains("\"to\""), "{msg}");
    }

    // Refused bolt emits: one per tuple at d, each naming d's own task.
    let bolt_refused = lock(&shared.bolt_refused).clone();
    assert_eq!(bolt_refused.len(), N as usize);
    for e in &bolt_refused {
        assert!(
            matches!(e, EmitError::NotAConsumer { component, stream, .. } if component == "d" && stream == "fwd"),
            "{e:?}"
        );
    }
    // Nothing went wrong inside the components (a failed check in a callback is reported there).
    for t in &report.tasks {
        assert!(
            t.errors.is_empty(),
            "task {} errors {:?}",
            t.task_id,
            t.errors
        );
    }
    // Refused emits are not counted as emitted.
    let by = report.by_component();
    assert_eq!(by["src"].emitted, 2 * N);
    assert_eq!(by["d"].emitted, N);
}
