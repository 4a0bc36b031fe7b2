//! Helpers shared by the integration tests: a deadline-guarded local run, and a finite numbered
//! spout that keeps a ledger of everything the runtime tells it.
#![allow(dead_code)]

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use topology_api::prelude::*;
use topology_api::{run_local, LocalOptions, LocalReport, RunError};

/// How long a topology may run before the test calls it a deadlock.
pub(crate) const DEADLINE: Duration = Duration::from_secs(60);

/// Runs `topology` in local mode until it ends by itself; panics on the deadline.
pub(crate) async fn try_run(topology: &Topology) -> Result<LocalReport, RunError> {
    let opts = LocalOptions::default();
    match tokio::time::timeout(DEADLINE, run_local(topology, opts)).await {
        Ok(r) => r,
        Err(_) => panic!(
            "topology {:?} did not finish within {DEADLINE:?} (deadlock, or a tree never completed)",
            topology.name()
        ),
    }
}

/// Runs `topology` and expects it to end without error.
pub(crate) async fn run(topology: &Topology) -> LocalReport {
    try_run(topology)
        .await
        .unwrap_or_else(|e| panic!("topology {:?} failed: {e}", topology.name()))
}

/// Locks a mutex, ignoring poisoning (a panicking bolt under test must not hide the results).
pub(crate) fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// One emit by a [`NumberSpout`].
#[derive(Debug, Clone, Copy)]
pub(crate) struct Emit {
    pub task: u32,
    pub id: u64,
    pub at: Instant,
    /// `collector.pending()` just before the emit.
    pub pending_before: usize,
    /// `collector.pending()` just after the emit.
    pub pending_after: usize,
}

/// What the runtime did to a [`NumberSpout`]'s tasks.
#[derive(Default)]
pub(crate) struct Ledger {
    /// Task ids seen in `open`.
    pub opened: Mutex<Vec<u32>>,
    pub emits: Mutex<Vec<Emit>>,
    /// (task that got the callback, msg id, when).
    pub acks: Mutex<Vec<(u32, u64, Instant)>>,
    pub fails: Mutex<Vec<(u32, u64, Instant)>>,
    /// Anything that should never happen (ack of an id this task has not in flight, ...).
    pub anomalies: Mutex<Vec<String>>,
    /// Largest `pending()` seen right after an emit.
    pub max_pending: AtomicUsize,
}

impl Ledger {
    pub(crate) fn new() -> Arc<Self> {
        Arc::new(Self::default())
    }

    /// How many times each id was acked.
    pub(crate) fn ack_counts(&self) -> BTreeMap<u64, usize> {
        let mut m = BTreeMap::new();
        for &(_, id, _) in lock(&self.acks).iter() {
            *m.entry(id).or_default() += 1;
        }
        m
    }

    /// How many times each id was failed.
    pub(crate) fn fail_counts(&self) -> BTreeMap<u64, usize> {
        let mut m = BTreeMap::new();
        for &(_, id, _) in lock(&self.fails).iter() {
            *m.entry(id).or_default() += 1;
        }
        m
    }

    /// The task that emitted each id (every emit of an id must come from the same task).
    pub(crate) fn emitter_of(&self) -> HashMap<u64, u32> {
        let mut m = HashMap::new();
        for e in lock(&self.emits).iter() {
            let prev = m.insert(e.id, e.task);
            assert!(
                prev.is_none() || prev == Some(e.task),
                "id {} emitted by tasks {prev:?} and {}",
                e.id,
                e.task
            );
        }
        m
    }

    /// Asserts every fail arrived less than `within` after the emit it failed: explicit fails
    /// must fail the tree at once, not when the message timeout expires.
    pub(crate) fn assert_fails_within(&self, within: Duration) {
        let emits = lock(&self.emits).clone();
        for &(_, id, failed_at) in lock(&self.fails).iter() {
            let emitted_at = emits
                .iter()
                .filter(|e| e.id == id && e.at <= failed_at)
                .map(|e| e.at)
                .max()
                .unwrap_or_else(|| panic!("fail({id}) before any emit of it"));
            let after = failed_at.duration_since(emitted_at);
            assert!(
                after < within,
                "fail({id}) came {after:?} after its emit; expected within {within:?}"
            );
        }
    }

    /// Asserts every id in `0..n` was acked exactly once, on the task that emitted it, and that
    /// nothing anomalous happened.
    pub(crate) fn assert_all_acked_once(&self, n: u64) {
        let anomalies = lock(&self.anomalies).clone();
        assert!(anomalies.is_empty(), "anomalies: {anomalies:#?}");
        let counts = self.ack_counts();
        let expected: BTreeMap<u64, usize> = (0..n).map(|id| (id, 1)).collect();
        if counts != expected {
            let missing: Vec<u64> = (0..n).filter(|id| !counts.contains_key(id)).collect();
            let extra: Vec<_> = counts
                .iter()
                .filter(|(id, c)| **id >= n || **c != 1)
                .collect();
            panic!("acks wrong: missing {missing:?}, duplicated or unknown {extra:?}");
        }
        let emitter = self.emitter_of();
        for &(task, id, _) in lock(&self.acks).iter() {
            assert_eq!(
                Some(&task),
                emitter.get(&id),
                "ack({id}) was called on task {task}, not on the task that emitted it"
            );
        }
        for &(task, id, _) in lock(&self.fails).iter() {
            assert_eq!(
                Some(&task),
                emitter.get(&id),
                "fail({id}) was called on task {task}, not on the task that emitted it"
            );
        }
    }
}

/// A finite spout over the ids `0..n`, split between its tasks by task index (task `i` of `k`
/// emits the ids with `id % k == i`), one id per `next_tuple`. With `reliable`, each emit carries
/// its id as message id and failed ids are replayed. Finished once it has nothing left to
/// emit; the runtime then waits for the pending trees itself.
pub(crate) struct NumberSpout {
    pub n: u64,
    pub reliable: bool,
    pub fields: &'static [&'static str],
    pub payload: fn(u64) -> Values,
    pub ledger: Arc<Ledger>,
    task: u32,
    queue: VecDeque<u64>,
    in_flight: HashSet<u64>,
}

impl NumberSpout {
    /// Emits `[id]` on the default stream with fields `["id"]`, reliably.
    pub(crate) fn new(n: u64, ledger: &Arc<Ledger>) -> Self {
        NumberSpout {
            n,
            reliable: true,
            fields: &["id"],
            payload: |id| values![id],
            ledger: ledger.clone(),
            task: 0,
            queue: VecDeque::new(),
            in_flight: HashSet::new(),
        }
    }

    /// Emits without message ids.
    pub(crate) fn unreliable(mut self) -> Self {
        self.reliable = false;
        self
    }

    /// Emits `payload(id)` with these fields.
    pub(crate) fn with_payload(
        mut self,
        fields: &'static [&'static str],
        payload: fn(u64) -> Values,
    ) -> Self {
        self.fields = fields;
        self.payload = payload;
        self
    }

    fn anomaly(&self, what: String) {
        lock(&self.ledger.anomalies).push(what);
    }
}

#[async_trait]
impl Spout for NumberSpout {
    fn declare_output_fields(&self, d: &mut OutputDeclarer) {
        d.declare(self.fields.iter().copied());
    }

    async fn open(&mut self, ctx: &TopologyContext) -> ComponentResult {
        self.task = ctx.task_id();
        let tasks = ctx.component_tasks();
        let k = u64::from(tasks.end - tasks.start);
        let i = u64::from(ctx.task_index());
        self.queue = (0..self.n).filter(|id| id % k == i).collect();
        lock(&self.ledger.opened).push(self.task);
        Ok(())
    }

    async fn next_tuple(&mut self, c: &mut SpoutOutputCollector) -> ComponentResult {
        let Some(id) = self.queue.pop_front() else {
            return Ok(());
        };
        if c.task_id() != self.task {
            self.anomaly(format!(
                "next_tuple of task {} got the collector of task {}",
                self.task,
                c.task_id()
            ));
        }
        let pending_before = c.pending();
        c.emit((self.payload)(id), self.reliable.then_some(id))?;
        let pending_after = c.pending();
        if self.reliable {
            self.in_flight.insert(id);
        }
        self.ledger
            .max_pending
            .fetch_max(pending_after, Ordering::SeqCst);
        lock(&self.ledger.emits).push(Emit {
            task: self.task,
            id,
            at: Instant::now(),
            pending_before,
            pending_after,
        });
        Ok(())
    }

    async fn ack(&mut self, id: u64) {
        if !self.in_flight.remove(&id) {
            self.anomaly(format!(
                "task {} got ack({id}) but has no such id in flight",
                self.task
            ));
        }
        lock(&self.ledger.acks).push((self.task, id, Instant::now()));
    }

    async fn fail(&mut self, id: u64) {
        if !self.in_flight.remove(&id) {
            self.anomaly(format!(
                "task {} got fail({id}) but has no such id in flight",
                self.task
            ));
        }
        lock(&self.ledger.fails).push((self.task, id, Instant::now()));
        self.queue.push_back(id);
    }

    fn is_finished(&self) -> bool {
        self.queue.is_empty()
    }
}

/// What a [`Recorder`] saw: (task id, the "id" field).
pub(crate) type Seen = Arc<Mutex<Vec<(u32, u64)>>>;

/// Records the `id` field of every input with its own task id, and acks it.
pub(crate) struct Recorder {
    pub seen: Seen,
    task: u32,
}

impl Recorder {
    pub(crate) fn new(seen: &Seen) -> Self {
        Recorder {
            seen: seen.clone(),
            task: 0,
        }
    }
}

#[async_trait]
impl Bolt for Recorder {
    fn declare_output_fields(&self, _d: &mut OutputDeclarer) {}
    async fn prepare(&mut self, ctx: &TopologyContext) -> ComponentResult {
        self.task = ctx.task_id();
        Ok(())
    }
    async fn execute(&mut self, input: Tuple, c: &mut OutputCollector) -> ComponentResult {
        let id = input.i64("id")? as u64;
        lock(&self.seen).push((self.task, id));
        c.ack(&input);
        Ok(())
    }
}

/// How many times each id was seen.
pub(crate) fn id_counts(seen: &Seen) -> BTreeMap<u64, usize> {
    let mut m = BTreeMap::new();
    for &(_, id) in lock(seen).iter() {
        *m.entry(id).or_default() += 1;
    }
    m
}
