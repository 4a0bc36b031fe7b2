//! Tick tuples: a bolt with `topology.tick.tuple.freq.secs` = 1 gets a tick on every task about
//! once a second; a bolt without it gets none.

mod common;

use common::{lock, run, Ledger, NumberSpout, Recorder, Seen};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use topology_api::config::TOPOLOGY_TICK_TUPLE_FREQ_SECS;
use topology_api::prelude::*;
use topology_api::TICK_STREAM;

const TICKED_TASKS: usize = 2;
const N: u64 = 10;

#[derive(Default)]
struct Ticks {
    /// Per task: when it was prepared, and when each tick arrived.
    by_task: Mutex<HashMap<u32, (Instant, Vec<Instant>)>>,
    /// Problems seen in tick tuples.
    problems: Mutex<Vec<String>>,
    /// Ordinary tuples the ticked bolt received.
    normal: Mutex<Vec<u64>>,
}

struct Ticked {
    ticks: Arc<Ticks>,
    task: u32,
}

#[async_trait]
impl Bolt for Ticked {
    fn declare_output_fields(&self, _d: &mut OutputDeclarer) {}
    async fn prepare(&mut self, ctx: &TopologyContext) -> ComponentResult {
        self.task = ctx.task_id();
        // The component's own config overlays the topology's.
        if ctx.config().u64_or(TOPOLOGY_TICK_TUPLE_FREQ_SECS, 0)? != 1 {
            lock(&self.ticks.problems).push("component config not visible".to_string());
        }
        lock(&self.ticks.by_task).insert(self.task, (Instant::now(), Vec::new()));
        Ok(())
    }
    async fn execute(&mut self, input: Tuple, c: &mut OutputCollector) -> ComponentResult {
        if input.is_tick() {
            let mut problems = Vec::new();
            if input.source_stream() != TICK_STREAM {
                problems.push(format!("tick on stream {:?}", input.source_stream()));
            }
            if input.source_component() == "numbers" {
                problems.push("tick from the spout".to_string());
            }
            if input.is_tracked() {
                problems.push("tick is tracked".to_string());
            }
            match input.i64("rate_secs") {
                Ok(1) => {}
                other => problems.push(format!("rate_secs {other:?}")),
            }
            lock(&self.ticks.problems).extend(problems);
            if let Some((_, t)) = lock(&self.ticks.by_task).get_mut(&self.task) {
                t.push(Instant::now());
            }
        } else {
            lock(&self.ticks.normal).push(input.i64("id")? as u64);
        }
        c.ack(&input);
        Ok(())
    }
}

/// Emits `0..N`, then stays unfinished until every ticked task has seen two ticks.
struct WaitForTicks {
    inner: NumberSpout,
    ticks: Arc<Ticks>,
}

#[async_trait]
impl Spout for WaitForTicks {
    fn declare_output_fields(&self, d: &mut OutputDeclarer) {
        self.inner.declare_output_fields(d)
    }
    async fn open(&mut self, ctx: &TopologyContext) -> ComponentResult {
        self.inner.open(ctx).await
    }
    async fn next_tuple(&mut self, c: &mut SpoutOutputCollector) -> ComponentResult {
        self.inner.next_tuple(c).await
    }
    async fn ack(&mut self, id: u64) {
        self.inner.ack(id).await
    }
    async fn fail(&mut self, id: u64) {
        self.inner.fail(id).await
    }
    fn is_finished(&self) -> bool {
        let by_task = lock(&self.ticks.by_task);
        self.inner.is_finished()
            && by_task.len() == TICKED_TASKS
            && by_task.values().all(|(_, t)| t.len() >= 2)
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ticked_bolt_gets_ticks_and_others_do_not() {
    let ledger = Ledger::new();
    let ticks = Arc::new(Ticks::default());
    let plain_seen: Seen = Arc::default();

    let mut b = TopologyBuilder::new("ticks");
    let (l, t) = (ledger.clone(), ticks.clone());
    b.set_spout(
        "numbers",
        move || WaitForTicks {
            inner: NumberSpout::new(N, &l),
            ticks: t.clone(),
        },
        1,
    );
    let t = ticks.clone();
    b.set_bolt(
        "ticked",
        move || Ticked {
            ticks: t.clone(),
            task: 0,
        },
        TICKED_TASKS as u32,
    )
    .shuffle_grouping("numbers")
    .add_config(TOPOLOGY_TICK_TUPLE_FREQ_SECS, 1);
    let s = plain_seen.clone();
    // A plain bolt: a tick would reach `Recorder`, fail its `i64("id")` and show up as an error.
    b.set_bolt("plain", move || Recorder::new(&s), 1)
        .shuffle_grouping("numbers");
    let report = run(&b.build().expect("valid topology")).await;

    let problems = lock(&ticks.problems).clone();
    assert!(problems.is_empty(), "{problems:?}");
    let by_task = lock(&ticks.by_task).clone();
    assert_eq!(by_task.len(), TICKED_TASKS);
    for (task, (prepared, times)) in &by_task {
        assert!(times.len() >= 2, "task {task} saw {} ticks", times.len());
        // About a second apart, starting about a second after prepare (not a burst at start).
        let first = times[0].duration_since(*prepared);
        let gap = times[1].duration_since(times[0]);
        let near_a_second =
            |d: Duration| d >= Duration::from_millis(900) && d < Duration::from_secs(3);
        assert!(
            near_a_second(first),
            "task {task}: first tick after {first:?}"
        );
        assert!(near_a_second(gap), "task {task}: ticks {gap:?} apart");
    }
    let mut normal = lock(&ticks.normal).clone();
    normal.sort_unstable();
    assert_eq!(normal, (0..N).collect::<Vec<_>>());
    ledger.assert_all_acked_once(N);

    let mut plain: Vec<u64> = lock(&plain_seen).iter().map(|&(_, id)| id).collect();
    plain.sort_unstable();
    assert_eq!(
        plain,
        (0..N).collect::<Vec<_>>(),
        "the plain bolt saw no tick"
    );
    for t in &report.tasks {
        assert!(
            t.errors.is_empty(),
            "task {} errors {:?}",
            t.task_id,
            t.errors
        );
    }
}
