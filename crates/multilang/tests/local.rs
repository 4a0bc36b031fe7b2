//! Shell components in a local topology, with real Python subprocesses (standard library
//! only): a split bolt between Rust components, a reliable spout whose message ids are JSON
//! objects, and faults (kill -9, garbage, a hang, an exit) that restart the subprocess while
//! every message id is still acked.

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tempest_multilang::{resources, ShellBolt, ShellCommand, ShellSpout};
use topology_api::config::{TOPOLOGY_MAX_SPOUT_PENDING, TOPOLOGY_MESSAGE_TIMEOUT_SECS};
use topology_api::prelude::*;
use topology_api::{run_local, LocalOptions, LocalReport};

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// A reliable spout of `n` sentences; replays failed ones; finished once all are acked.
struct Sentences {
    n: u64,
    next: u64,
    replay: VecDeque<u64>,
    acked: Arc<Mutex<HashSet<u64>>>,
    fails: Arc<Mutex<u64>>,
}

fn sentence(i: u64) -> String {
    if i == 7 {
        "the poison pill w7".to_string()
    } else {
        format!("the cow w{}", i % 10)
    }
}

#[async_trait]
impl Spout for Sentences {
    fn declare_output_fields(&self, d: &mut OutputDeclarer) {
        d.declare(["sentence"]);
    }
    async fn next_tuple(&mut self, c: &mut SpoutOutputCollector) -> ComponentResult {
        let id = match self.replay.pop_front() {
            Some(id) => id,
            None if self.next < self.n => {
                self.next += 1;
                self.next - 1
            }
            None => {
                tokio::time::sleep(Duration::from_millis(1)).await;
                return Ok(());
            }
        };
        c.emit(values![sentence(id)], Some(id))?;
        Ok(())
    }
    async fn ack(&mut self, id: u64) {
        assert!(lock(&self.acked).insert(id), "id {id} acked twice");
    }
    async fn fail(&mut self, id: u64) {
        *lock(&self.fails) += 1;
        self.replay.push_back(id);
    }
    fn is_finished(&self) -> bool {
        lock(&self.acked).len() as u64 == self.n
    }
}

/// Counts words (and remembers every tuple it got on "done" or with a map value).
#[derive(Clone, Default)]
struct Sink {
    words: Arc<Mutex<HashMap<String, u64>>>,
    seen: Arc<Mutex<Vec<(String, Value)>>>,
}

#[async_trait]
impl Bolt for Sink {
    fn declare_output_fields(&self, _: &mut OutputDeclarer) {}
    async fn execute(&mut self, t: Tuple, c: &mut OutputCollector) -> ComponentResult {
        if t.source_component() == "split" {
            *lock(&self.words).entry(t.str(0)?.to_string()).or_default() += 1;
        } else {
            lock(&self.seen).push((t.source_stream().to_string(), t.values()[0].clone()));
        }
        c.ack(&t);
        Ok(())
    }
}

struct Run {
    report: LocalReport,
    acked: usize,
    fails: u64,
    words: HashMap<String, u64>,
}

/// Word count: Rust spout -> Python split (2 tasks) -> Rust counter, as topology `name`;
/// `fault` sets MULTILANG_FAULT.
async fn word_count(name: &str, n: u64, fault: Option<&str>, timeout_secs: u64) -> Run {
    let acked: Arc<Mutex<HashSet<u64>>> = Arc::default();
    let fails: Arc<Mutex<u64>> = Arc::default();
    let sink = Sink::default();
    let mut b = TopologyBuilder::new(name);
    b.config()
        .set(TOPOLOGY_MESSAGE_TIMEOUT_SECS, 30)
        .set(TOPOLOGY_MAX_SPOUT_PENDING, 50)
        .set("topology.subprocess.timeout.secs", timeout_secs);
    let (a, f) = (acked.clone(), fails.clone());
    b.set_spout(
        "sentences",
        move || Sentences {
            n,
            next: 0,
            replay: VecDeque::new(),
            acked: a.clone(),
            fails: f.clone(),
        },
        1,
    );
    let mut cmd = ShellCommand::new("python3", ["split_stdlib.py"]);
    if let Some(fault) = fault {
        cmd = cmd.env("MULTILANG_FAULT", fault);
    }
    let split = ShellBolt::new(
        cmd,
        resources!["split_stdlib.py" => "../../../examples/python/split_stdlib.py"],
    )
    .output_fields(["word"]);
    b.set_bolt("split", move || split.clone(), 2)
        .shuffle_grouping("sentences");
    let s = sink.clone();
    b.set_bolt("count", move || s.clone(), 1)
        .fields_grouping("split", ["word"]);
    let report = tokio::time::timeout(
        Duration::from_secs(50),
        run_local(&b.build().expect("valid topology"), LocalOptions::default()),
    )
    .await
    .expect("the topology finishes: every id acked")
    .expect("runs");
    let acked = lock(&acked).len();
    let fails = *lock(&fails);
    let words = lock(&sink.words).clone();
    Run {
        report,
        acked,
        fails,
        words,
    }
}

fn errors_of(report: &LocalReport, component: &str) -> Vec<String> {
    report
        .tasks
        .iter()
        .filter(|t| t.component == component)
        .flat_map(|t| t.errors.clone())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_python_split_bolt_counts_words_exactly() {
    let r = word_count("ml-plain", 300, None, 10).await;
    assert_eq!(r.acked, 300);
    assert_eq!(r.fails, 0);
    assert_eq!(r.words["the"], 300);
    assert_eq!(r.words["cow"], 299);
    assert_eq!(r.words["poison"], 1);
    assert_eq!(r.words["w3"], 30);
    assert!(
        errors_of(&r.report, "split").is_empty(),
        "{:?}",
        errors_of(&r.report, "split")
    );
}

async fn faulty(mode: &str, expect: &str) {
    let started = Instant::now();
    // A short timeout makes the hang test quick; the others keep a safe one on a busy host.
    let timeout = if mode == "hang" { 3 } else { 10 };
    let r = word_count(&format!("ml-{mode}"), 100, Some(mode), timeout).await;
    assert_eq!(r.acked, 100, "every id acked despite the {mode} fault");
    assert!(
        r.fails >= 1,
        "the sentence in flight failed and was replayed"
    );
    let errors = errors_of(&r.report, "split");
    let hit: Vec<_> = errors.iter().filter(|e| e.contains(expect)).collect();
    // The poison sentence faults each split task's first process once (a replay may go to the
    // other task): one or two faults, each restarted.
    assert!(
        (1..=2).contains(&hit.len()),
        "one fault per task at most, reported with {expect:?}: {errors:?}"
    );
    if mode == "garbage" {
        assert!(
            hit[0].contains("\"this is not json\""),
            "quotes the line: {}",
            hit[0]
        );
    }
    assert!(
        hit[0].contains("split task"),
        "names the component: {}",
        hit[0]
    );
    assert!(
        hit[0].contains("about to misbehave"),
        "quotes its stderr: {}",
        hit[0]
    );
    assert!(hit[0].contains("restarting it"), "{}", hit[0]);
    assert!(started.elapsed() < Duration::from_secs(40));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_subprocess_writing_garbage_is_restarted_and_names_the_line() {
    faulty("garbage", "malformed message (not JSON").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hung_subprocess_times_out_and_is_restarted() {
    faulty("hang", "topology.subprocess.timeout.secs").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_subprocess_that_exits_is_restarted() {
    faulty("exit", "stdout closed").await;
}

/// The pid files the split subprocesses of topology `name` in this process wrote.
fn split_pids(name: &str) -> Vec<i32> {
    let worker = std::env::temp_dir()
        .join("tempest-multilang")
        .join(name)
        .join(format!("worker-{}", std::process::id()));
    let mut pids = Vec::new();
    for task in std::fs::read_dir(worker).into_iter().flatten().flatten() {
        for dir in std::fs::read_dir(task.path().join(".pids"))
            .into_iter()
            .flatten()
            .flatten()
        {
            for f in std::fs::read_dir(dir.path())
                .into_iter()
                .flatten()
                .flatten()
            {
                if let Ok(pid) = f.file_name().to_string_lossy().parse() {
                    pids.push(pid);
                }
            }
        }
    }
    pids
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_of_a_python_bolt_mid_run_loses_no_message_id() {
    let killer = tokio::spawn(async {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let pids = split_pids("ml-kill");
            if let Some(&pid) = pids.first() {
                // Let it get going, then kill -9 for real.
                tokio::time::sleep(Duration::from_millis(300)).await;
                let status = std::process::Command::new("kill")
                    .args(["-9", &pid.to_string()])
                    .status()
                    .expect("kill runs");
                // It may have ended meanwhile (the run is short): then kill the next one.
                if status.success() {
                    return pid;
                }
            }
            assert!(Instant::now() < deadline, "no split subprocess appeared");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    });
    let r = word_count("ml-kill", 3000, None, 10).await;
    let killed = killer.await.unwrap();
    assert_eq!(r.acked, 3000, "every message id acked after the kill -9");
    let errors = errors_of(&r.report, "split");
    assert!(
        errors
            .iter()
            .any(|e| e.contains(&format!("pid {killed}")) && e.contains("restarting it")),
        "the killed subprocess was reported and restarted: {errors:?}"
    );
    assert!(r.words["the"] >= 3000);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_python_spout_gets_its_json_object_ids_back_exactly() {
    let sink = Sink::default();
    let mut b = TopologyBuilder::new("ml-spout");
    b.config().set("test.count", 60);
    let spout = ShellSpout::new(
        ShellCommand::new("python3", ["objects_spout_stdlib.py"]),
        resources!["objects_spout_stdlib.py" => "../../../examples/python/objects_spout_stdlib.py"],
    )
    .output_fields(["obj"])
    .stream("done", ["acked"]);
    b.set_spout("objects", move || spout.clone(), 1);
    let s = sink.clone();
    b.set_bolt("sink", move || s.clone(), 1)
        .shuffle_grouping("objects")
        .shuffle_grouping(("objects", "done"));
    let topology = b.build().expect("valid");
    let seen = sink.seen.clone();
    let run = tokio::spawn(async move {
        run_local(
            &topology,
            LocalOptions {
                duration: Some(Duration::from_secs(4)),
                ..Default::default()
            },
        )
        .await
    });
    let report = run.await.unwrap().unwrap();
    let seen = lock(&seen).clone();
    let objs: Vec<&Value> = seen
        .iter()
        .filter(|(s, _)| s == "default")
        .map(|(_, v)| v)
        .collect();
    assert_eq!(objs.len(), 60);
    assert_eq!(objs[5].get("seq"), Some(&Value::I64(5)));
    assert_eq!(
        objs[5].get("words"),
        Some(&Value::from(vec![Value::from("a"), Value::from("b")]))
    );
    assert_eq!(
        seen.iter()
            .filter(|(s, _)| s == "done")
            .map(|(_, v)| v.clone())
            .collect::<Vec<_>>(),
        vec![Value::I64(60)],
        "the spout saw all 60 acks with the ids it emitted"
    );
    assert!(
        errors_of(&report, "objects").is_empty(),
        "{:?}",
        errors_of(&report, "objects")
    );
}
