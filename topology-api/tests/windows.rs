//! Windowed bolts in local mode, end to end: count windows with exact sums and acks, event
//! time with two input tasks whose clocks are skewed, out-of-order input within the lag, late
//! tuples on the late stream, idle inputs not stalling the last windows, and the bound on
//! tuples held. (Every window shape is tested with simulated time in
//! `crates/runtime/src/window/manager.rs`.)

mod common;

use common::{lock, run};
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use topology_api::prelude::*;

/// `n` of the stragglers: emitted only once 10 of the task's tuples were acked, so the
/// watermark has passed their window.
const STRAGGLER: i64 = -1;

/// Emits `(n, ts)` for each of its events, each with a message id; records acks and fails.
struct Events {
    /// Per task index: the `(n, ts)` to emit, in order.
    plan: Arc<Vec<Vec<(i64, i64)>>>,
    mine: Vec<(i64, i64)>,
    next: usize,
    done: usize,
    outcomes: Arc<Mutex<BTreeMap<&'static str, u64>>>,
}

impl Events {
    fn new(
        plan: Arc<Vec<Vec<(i64, i64)>>>,
        outcomes: Arc<Mutex<BTreeMap<&'static str, u64>>>,
    ) -> Self {
        Events {
            plan,
            mine: Vec::new(),
            next: 0,
            done: 0,
            outcomes,
        }
    }
}

#[async_trait]
impl Spout for Events {
    fn declare_output_fields(&self, d: &mut OutputDeclarer) {
        d.declare(["n", "ts"]);
    }
    async fn open(&mut self, ctx: &TopologyContext) -> ComponentResult {
        self.mine = self.plan[ctx.task_index() as usize].clone();
        Ok(())
    }
    async fn next_tuple(&mut self, c: &mut SpoutOutputCollector) -> ComponentResult {
        if let Some(&(n, ts)) = self.mine.get(self.next) {
            if n == STRAGGLER && self.done < 10 {
                return Ok(());
            }
            c.emit(values![n, ts], Some(self.next as u64))?;
            self.next += 1;
        }
        Ok(())
    }
    async fn ack(&mut self, _: u64) {
        self.done += 1;
        *lock(&self.outcomes).entry("acked").or_default() += 1;
    }
    async fn fail(&mut self, _: u64) {
        self.done += 1;
        *lock(&self.outcomes).entry("failed").or_default() += 1;
    }
    fn is_finished(&self) -> bool {
        self.done == self.mine.len()
    }
}

/// What one evaluated window held: (start, end, the `n` values in it).
type Seen = (i64, i64, Vec<i64>);

/// Records every window it sees and emits the window's sum.
struct Record {
    seen: Arc<Mutex<Vec<Seen>>>,
}

#[async_trait]
impl WindowedBolt for Record {
    fn declare_output_fields(&self, d: &mut OutputDeclarer) {
        d.declare(["sum"]);
    }
    async fn execute(&mut self, w: &Window<'_>, c: &mut WindowCollector<'_>) -> ComponentResult {
        let ns: Vec<i64> = w
            .tuples()
            .iter()
            .map(|t| t.i64("n"))
            .collect::<Result<_, _>>()?;
        c.emit(values![ns.iter().sum::<i64>()])?;
        lock(&self.seen).push((w.start_ms(), w.end_ms(), ns));
        Ok(())
    }
}

/// What arrived on the late stream: (the original values, the timestamp).
type LateTuples = Arc<Mutex<Vec<(Vec<Value>, i64)>>>;

/// Keeps what arrives on the late stream.
struct LateSink {
    late: LateTuples,
}

#[async_trait]
impl BasicBolt for LateSink {
    fn declare_output_fields(&self, _: &mut OutputDeclarer) {}
    fn execute(&mut self, t: &Tuple, _: &mut BasicOutputCollector<'_>) -> ComponentResult {
        let Value::List(values) = t.value("tuple")? else {
            return Err("the late tuple's values are not a list".into());
        };
        lock(&self.late).push((values.to_vec(), t.i64("timestamp")?));
        Ok(())
    }
}

struct Harness {
    seen: Arc<Mutex<Vec<Seen>>>,
    outcomes: Arc<Mutex<BTreeMap<&'static str, u64>>>,
    late: LateTuples,
}

/// Runs the events of `plan` (one list per spout task) through a windowed bolt.
async fn run_windows(plan: Vec<Vec<(i64, i64)>>, windowing: Windowing) -> Harness {
    let h = Harness {
        seen: Arc::default(),
        outcomes: Arc::default(),
        late: Arc::default(),
    };
    let spouts = plan.len() as u32;
    let plan = Arc::new(plan);
    let mut b = TopologyBuilder::new("windows");
    let (p, o) = (plan.clone(), h.outcomes.clone());
    b.set_spout("events", move || Events::new(p.clone(), o.clone()), spouts);
    let late_stream = windowing.late_stream().map(str::to_string);
    let seen = h.seen.clone();
    b.set_windowed_bolt(
        "window",
        move || Record { seen: seen.clone() },
        1,
        windowing,
    )
    .global_grouping("events");
    if let Some(stream) = late_stream {
        let late = h.late.clone();
        b.set_basic_bolt("late", move || LateSink { late: late.clone() }, 1)
            .shuffle_grouping(("window", stream.as_str()));
    }
    run(&b.build().expect("valid topology")).await;
    h
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn count_windows_sum_exactly_and_every_tuple_is_acked_once_it_left_them() {
    let events: Vec<(i64, i64)> = (0..300).map(|n| (n, 0)).collect();
    let h = run_windows(vec![events], Windowing::tumbling(WindowSize::Count(100))).await;
    let seen = lock(&h.seen);
    let sums: Vec<i64> = seen.iter().map(|s| s.2.iter().sum()).collect();
    let expected: Vec<i64> = (0..3).map(|k| (k * 100..(k + 1) * 100).sum()).collect();
    assert_eq!(sums, expected);
    assert_eq!(lock(&h.outcomes).get("acked"), Some(&300));
    assert_eq!(lock(&h.outcomes).get("failed"), None);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn event_time_with_skewed_tasks_out_of_order_input_and_late_tuples() {
    // Task 0 runs 3 s ahead of task 1 in event time; each sends its events slightly out of
    // order (swapped pairs, 100 ms apart, within the 500 ms lag). Task 1 then sends two
    // tuples far behind everything: they are late.
    let shuffled = |base: i64, count: i64| -> Vec<(i64, i64)> {
        let mut v: Vec<(i64, i64)> = (0..count).map(|i| (1, base + i * 100)).collect();
        for pair in v.chunks_mut(2) {
            pair.reverse();
        }
        v
    };
    let fast = shuffled(3_000, 100);
    let mut slow = shuffled(0, 100);
    let (first_fast, last_slow) = (fast.clone(), slow.clone());
    slow.push((STRAGGLER, 50));
    slow.push((STRAGGLER, 60));
    let windowing = Windowing::tumbling(WindowSize::Duration(Duration::from_secs(1)))
        .with_timestamp_field("ts")
        .with_lag(Duration::from_millis(500))
        .with_watermark_interval(Duration::from_millis(10))
        .with_idle_timeout(Duration::from_millis(300))
        .with_late_tuple_stream("late");
    let h = run_windows(vec![fast, slow], windowing).await;

    // Every window is [k s, k+1 s): count the events each should hold.
    let mut expected: BTreeMap<i64, usize> = BTreeMap::new();
    for &(_, ts) in first_fast.iter().chain(&last_slow) {
        *expected.entry(ts.div_euclid(1_000) * 1_000).or_default() += 1;
    }
    let seen = lock(&h.seen);
    let got: BTreeMap<i64, usize> = seen.iter().map(|(s, _, ns)| (*s, ns.len())).collect();
    assert_eq!(
        got, expected,
        "exact counts per window, none lost to the skew"
    );
    let starts: Vec<i64> = seen.iter().map(|s| s.0).collect();
    assert!(
        starts.windows(2).all(|w| w[0] < w[1]),
        "in order: {starts:?}"
    );
    assert!(seen.iter().all(|(s, e, _)| e - s == 1_000));

    let late = lock(&h.late);
    let mut late_ts: Vec<i64> = late.iter().map(|(_, ts)| *ts).collect();
    late_ts.sort_unstable();
    assert_eq!(late_ts, vec![50, 60], "only the two stragglers are late");
    assert!(
        late.iter().all(|(v, _)| v[0] == Value::I64(STRAGGLER)),
        "{late:?}"
    );
    assert_eq!(
        lock(&h.outcomes).get("acked"),
        Some(&202),
        "late tuples are acked too"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_task_holds_at_most_its_limit_and_fails_the_rest() {
    // A lag larger than the whole input: nothing is released until the input goes idle.
    let events: Vec<(i64, i64)> = (0..30).map(|n| (n, n)).collect();
    let windowing = Windowing::tumbling(WindowSize::Duration(Duration::from_millis(100)))
        .with_timestamp_field("ts")
        .with_lag(Duration::from_secs(3_600))
        .with_watermark_interval(Duration::from_millis(10))
        .with_idle_timeout(Duration::from_millis(300))
        .with_max_tuples(10);
    let h = run_windows(vec![events], windowing).await;
    let outcomes = lock(&h.outcomes);
    assert_eq!(outcomes.get("acked"), Some(&10), "{outcomes:?}");
    assert_eq!(outcomes.get("failed"), Some(&20), "{outcomes:?}");
    let held: usize = lock(&h.seen).iter().map(|s| s.2.len()).sum();
    assert_eq!(held, 10);
}

#[test]
fn windows_that_cannot_work_are_refused_by_build() {
    let mut b = TopologyBuilder::new("t");
    let plan = Arc::new(vec![vec![]]);
    let o: Arc<Mutex<BTreeMap<&'static str, u64>>> = Arc::default();
    b.set_spout("events", move || Events::new(plan.clone(), o.clone()), 1);
    let seen: Arc<Mutex<Vec<Seen>>> = Arc::default();
    let s1 = seen.clone();
    b.set_windowed_bolt(
        "too-long",
        move || Record { seen: s1.clone() },
        1,
        Windowing::sliding(
            WindowSize::Duration(Duration::from_secs(25)),
            WindowSize::Duration(Duration::from_secs(10)),
        ),
    )
    .shuffle_grouping("events");
    let s2 = seen.clone();
    b.set_windowed_bolt(
        "too-many",
        move || Record { seen: s2.clone() },
        1,
        Windowing::tumbling(WindowSize::Count(3_000)),
    )
    .shuffle_grouping("events");
    let s3 = seen.clone();
    b.set_windowed_bolt(
        "no-such-field",
        move || Record { seen: s3.clone() },
        1,
        Windowing::tumbling(WindowSize::Count(10)).with_timestamp_field("time"),
    )
    .shuffle_grouping("events");
    let s4 = seen.clone();
    b.set_windowed_bolt(
        "late-without-event-time",
        move || Record { seen: s4.clone() },
        1,
        Windowing::tumbling(WindowSize::Count(10)).with_late_tuple_stream("late"),
    )
    .shuffle_grouping("events");
    let text = b.build().expect_err("refused").to_string();
    assert!(
        text.contains("windows of bolt \"too-long\": window duration (length + slide) 35000 ms is more than topology.message.timeout.secs (30 s)"),
        "{text}"
    );
    assert!(
        text.contains("windows of bolt \"too-many\": window count (length + slide) 6000 is more than topology.max.spout.pending (5000)"),
        "{text}"
    );
    assert!(
        text.contains("windows of bolt \"no-such-field\": timestamp field \"time\" is not declared by stream \"default\" of \"events\""),
        "{text}"
    );
    assert!(
        text.contains(
            "windows of bolt \"late-without-event-time\": a late tuple stream needs event time"
        ),
        "{text}"
    );
}
