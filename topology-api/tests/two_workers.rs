//! Workers in one test process, exchanging tuples over real TCP on loopback: two with a reliable
//! spout on one and the acker and part of the bolts on the other, and six with one executor
//! each (so some workers only send tuples on a lane and others only receive on it). Every tuple
//! crosses workers and every tree completes. Nimbus is unreachable (the workers run on without
//! it).

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tempest_protocol::control::{Assignment, WorkerSlot};
use tempest_protocol::spec::TaskLayout;
use tempest_protocol::spec::{plan_executors, ExecutorPlan};
use topology_api::cluster::{run_worker, WorkerOptions};
use topology_api::config::{
    TOPOLOGY_EXECUTOR_RECEIVE_BUFFER_SIZE, TOPOLOGY_MAX_SPOUT_PENDING, TOPOLOGY_TRANSFER_BATCH_SIZE,
};
use topology_api::prelude::*;

const SENTENCES: [&str; 3] = ["a b c", "b c d", "the cow jumped"];
const TOTAL: u64 = 3_000;

struct Sentences {
    next: u64,
    acked: Arc<Mutex<BTreeMap<u64, u32>>>,
}

#[async_trait]
impl Spout for Sentences {
    fn declare_output_fields(&self, d: &mut OutputDeclarer) {
        d.declare(["sentence"]);
    }
    async fn next_tuple(&mut self, c: &mut SpoutOutputCollector) -> ComponentResult {
        if self.next < TOTAL {
            c.emit(
                values![SENTENCES[(self.next % 3) as usize]],
                Some(self.next),
            )?;
            self.next += 1;
        }
        Ok(())
    }
    async fn ack(&mut self, id: u64) {
        *self.acked.lock().unwrap().entry(id).or_default() += 1;
    }
}

struct Split;

#[async_trait]
impl BasicBolt for Split {
    fn declare_output_fields(&self, d: &mut OutputDeclarer) {
        d.declare(["word"]);
    }
    fn execute(&mut self, t: &Tuple, c: &mut BasicOutputCollector<'_>) -> ComponentResult {
        for w in t.str("sentence")?.split(' ') {
            c.emit(values![w])?;
        }
        Ok(())
    }
}

/// Counts words; records which task saw which word.
struct Count {
    task: u32,
    seen: Arc<Mutex<HashMap<String, (u32, u64)>>>,
}

#[async_trait]
impl BasicBolt for Count {
    fn declare_output_fields(&self, _: &mut OutputDeclarer) {}
    async fn prepare(&mut self, ctx: &TopologyContext) -> ComponentResult {
        self.task = ctx.task_id();
        Ok(())
    }
    fn execute(&mut self, t: &Tuple, _: &mut BasicOutputCollector<'_>) -> ComponentResult {
        let mut seen = self.seen.lock().unwrap();
        let e = seen
            .entry(t.str("word")?.to_string())
            .or_insert((self.task, 0));
        assert_eq!(e.0, self.task, "fields grouping sent a word to two tasks");
        e.1 += 1;
        Ok(())
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tuples_and_acks_cross_workers_over_tcp() {
    run_two_workers(&[], |p| p.component != "__acker").await;
}

/// Regression: with more than two workers some host no spout or acker (nothing to send on the
/// control lane) or only those (nothing on the data lane); such a link used to close its
/// connection at once, the peer redialed in a loop, and no tree completed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_executor_on_its_own_worker() {
    run_workers(&[], 6, |i, _| i).await;
}

/// Queues of one batch of one tuple, with the spout and a counter on one worker and the
/// splitter and the acker on the other, so tuples and acks flow both ways between the two.
/// (This is the arrangement in which acks waiting behind tuples could deadlock; on loopback the
/// kernel's socket buffers are too large for this test to provoke it, so it checks correctness
/// under backpressure, not the lanes themselves: see transport.rs.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tiny_queues_across_workers_do_not_deadlock() {
    let config = [
        (TOPOLOGY_EXECUTOR_RECEIVE_BUFFER_SIZE, 1),
        (TOPOLOGY_TRANSFER_BATCH_SIZE, 1),
        (TOPOLOGY_MAX_SPOUT_PENDING, 1_000),
    ];
    run_two_workers(&config, |p| {
        p.component == "spout" || p.component == "count"
    })
    .await;
}

/// Runs the topology on two workers: the first executor of each component for which
/// `on_first` holds goes to worker A, everything else to worker B.
async fn run_two_workers(config: &[(&str, u64)], on_first: impl Fn(&ExecutorPlan) -> bool) {
    let mut seen_component = HashMap::new();
    run_workers(config, 2, |_, p| {
        let n = seen_component.entry(p.component.clone()).or_insert(0);
        *n += 1;
        if *n == 1 && on_first(p) {
            0
        } else {
            1
        }
    })
    .await;
}

/// Runs the topology on `workers` workers: executor `i` (in plan order) goes to worker
/// `worker_of(i, plan)`.
async fn run_workers(
    config: &[(&str, u64)],
    workers: usize,
    mut worker_of: impl FnMut(usize, &ExecutorPlan) -> usize,
) {
    let acked = Arc::new(Mutex::new(BTreeMap::new()));
    let seen = Arc::new(Mutex::new(HashMap::new()));
    let mut b = TopologyBuilder::new("two-workers");
    for (k, v) in config {
        b.config().set(*k, *v);
    }
    let a = acked.clone();
    b.set_spout(
        "spout",
        move || Sentences {
            next: 0,
            acked: a.clone(),
        },
        1,
    );
    b.set_basic_bolt("split", || Split, 2)
        .shuffle_grouping("spout");
    let s = seen.clone();
    b.set_basic_bolt(
        "count",
        move || Count {
            task: 0,
            seen: s.clone(),
        },
        2,
    )
    .fields_grouping("split", ["word"]);
    let topology = b.build().unwrap();
    let spec = topology.spec().clone();

    let plans = plan_executors(&spec, &TaskLayout::of(&spec));
    let mut placed = vec![Vec::new(); workers];
    for (i, p) in plans.into_iter().enumerate() {
        let w = worker_of(i, &p);
        placed[w].push(p);
    }
    let ports: Vec<u16> = (0..workers).map(|_| free_port()).collect();
    let assignment = Assignment {
        topology: "two-workers".into(),
        version: 1,
        artifact: "0".repeat(64),
        spec,
        workers: ports
            .iter()
            .zip(placed)
            .map(|(&port, executors)| WorkerSlot {
                supervisor: "s".into(),
                host: "127.0.0.1".into(),
                port,
                executors,
            })
            .collect(),
    };
    let dir = std::env::temp_dir().join(format!("tempest-workers-{}", ports[0]));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("assignment.json");
    std::fs::write(&file, serde_json::to_string(&assignment).unwrap()).unwrap();

    let workers: Vec<_> = ports
        .iter()
        .copied()
        .map(|port| {
            let opts = WorkerOptions {
                assignment: file.clone(),
                host: "127.0.0.1".into(),
                port,
                nimbus: "http://127.0.0.1:1".into(),
            };
            tokio::spawn(run_worker(topology.clone(), opts))
        })
        .collect();

    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    loop {
        if acked.lock().unwrap().len() as u64 == TOTAL {
            break;
        }
        for w in &workers {
            assert!(!w.is_finished(), "a worker stopped: {w:?}");
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "only {} of {TOTAL} trees completed",
            acked.lock().unwrap().len()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    for w in &workers {
        w.abort();
    }
    let acked = acked.lock().unwrap();
    assert!(acked.values().all(|&n| n == 1), "an id was acked twice");
    let seen = seen.lock().unwrap();
    let count = |w: &str| seen.get(w).map_or(0, |e| e.1);
    assert_eq!(count("b"), 2 * TOTAL / 3);
    assert_eq!(count("c"), 2 * TOTAL / 3);
    assert_eq!(count("cow"), TOTAL / 3);
    let tasks: std::collections::HashSet<u32> = seen.values().map(|e| e.0).collect();
    assert_eq!(tasks.len(), 2, "both count tasks got words");
    let _ = std::fs::remove_dir_all(&dir);
}
