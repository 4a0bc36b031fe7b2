//! Stateful bolts across crashes, in local mode (one real process, killed with `kill -9`):
//! a stateful word count over a finite numbered source runs, is killed mid-run once a few
//! checkpoints have been saved, and is started again until it finishes. Exactly once, the
//! final counts are exactly the expected ones; at least once, every count is at least the
//! expected one. Both state providers: redb files and a real Redis server. A damaged state
//! file is reported and does not crash the process.

use cluster_tests::redis::RedisServer;
use cluster_tests::{eventually, expected_counts, workspace_bin};
use std::collections::BTreeMap;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const SENTENCES: u64 = 60_000;
const RATE: u64 = 6_000;

/// Starts the test topology in local mode.
fn start(dir: &Path, extra: &[(&str, String)]) -> Child {
    let mut cmd = Command::new(workspace_bin("stateful_count"));
    cmd.arg("local")
        .arg("-c")
        .arg(format!("test.dir={}", dir.display()))
        .arg("-c")
        .arg(format!("test.sentences={SENTENCES}"))
        .arg("-c")
        .arg(format!("test.rate={RATE}"))
        .arg("-c")
        .arg(format!(
            "topology.state.redb.dir={}",
            dir.join("state").display()
        ));
    for (k, v) in extra {
        cmd.arg("-c").arg(format!("{k}={v}"));
    }
    cmd.stdout(Stdio::null())
        .stderr(std::fs::File::create(dir.join(format!("log-{}", fastrand::u32(..)))).unwrap())
        .spawn()
        .expect("start stateful_count")
}

/// The counts the count tasks last saved, merged.
fn saved_counts(dir: &Path) -> BTreeMap<String, u64> {
    let mut all = BTreeMap::new();
    for e in std::fs::read_dir(dir).unwrap().flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        if !(name.starts_with("counts-") && name.ends_with(".json")) {
            continue;
        }
        let text = std::fs::read_to_string(e.path()).unwrap_or_default();
        let counts: BTreeMap<String, u64> = serde_json::from_str(&text).unwrap_or_default();
        for (w, n) in counts {
            *all.entry(w).or_default() += n;
        }
    }
    all
}

fn total(counts: &BTreeMap<String, u64>) -> u64 {
    counts.values().sum()
}

/// Runs, kills with SIGKILL once a good part is counted, runs again to the end; returns the
/// final counts.
async fn crash_and_recover(dir: &Path, extra: &[(&str, String)]) -> BTreeMap<String, u64> {
    let expected_total = total(&expected_counts(SENTENCES));
    let mut first = start(dir, extra);
    eventually(
        "a third of the words counted in saved checkpoints",
        Duration::from_secs(60),
        || async { (total(&saved_counts(dir)) > expected_total / 3).then_some(()) },
    )
    .await;
    first.kill().expect("kill -9");
    first.wait().unwrap();
    let at_kill = total(&saved_counts(dir));
    println!("killed with {at_kill} of {expected_total} words in the last saved checkpoint");

    let mut second = start(dir, extra);
    let deadline = Instant::now() + Duration::from_secs(120);
    let status = loop {
        if let Some(s) = second.try_wait().unwrap() {
            break s;
        }
        assert!(
            Instant::now() < deadline,
            "the restarted run did not finish in 120 s"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert!(status.success(), "the restarted run failed: {status}");
    saved_counts(dir)
}

#[tokio::test]
async fn exactly_once_counts_are_exact_after_kill_9_with_redb() {
    let dir = tempfile::tempdir().unwrap();
    let got = crash_and_recover(
        dir.path(),
        &[("topology.state.exactly.once", "true".into())],
    )
    .await;
    let want = expected_counts(SENTENCES);
    println!(
        "exactly once (redb): counted {} words, expected {}",
        total(&got),
        total(&want)
    );
    assert_eq!(got, want, "every sentence counted exactly once");
}

#[tokio::test]
async fn at_least_once_counts_lose_nothing_after_kill_9_with_redb() {
    let dir = tempfile::tempdir().unwrap();
    let got = crash_and_recover(dir.path(), &[]).await;
    let want = expected_counts(SENTENCES);
    println!(
        "at least once (redb): counted {} words, expected {} ({} counted twice)",
        total(&got),
        total(&want),
        total(&got) - total(&want).min(total(&got))
    );
    assert_eq!(
        got.keys().collect::<Vec<_>>(),
        want.keys().collect::<Vec<_>>()
    );
    for (w, n) in &want {
        assert!(got[w] >= *n, "{w}: counted {} < {n}", got[w]);
    }
}

#[tokio::test]
async fn exactly_once_counts_are_exact_after_kill_9_with_redis() {
    let redis = RedisServer::start();
    let dir = tempfile::tempdir().unwrap();
    let got = crash_and_recover(
        dir.path(),
        &[
            ("topology.state.exactly.once", "true".into()),
            ("topology.state.provider", "redis".into()),
            ("topology.state.redis.url", redis.url()),
        ],
    )
    .await;
    assert!(
        !dir.path().join("state").exists(),
        "the redis provider wrote no redb files"
    );
    let want = expected_counts(SENTENCES);
    println!(
        "exactly once (redis): counted {} words, expected {}",
        total(&got),
        total(&want)
    );
    assert_eq!(got, want, "every sentence counted exactly once");
}

#[tokio::test]
async fn a_damaged_state_file_is_reported_and_the_process_keeps_running() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state/stateful-count");
    std::fs::create_dir_all(&state).unwrap();
    // The count tasks are tasks 2 and 3 (components in id order: __acker, count, ...).
    let damaged = state.join("count-2.redb");
    std::fs::write(&damaged, vec![0xAB; 4096]).unwrap();
    let out = Command::new(workspace_bin("stateful_count"))
        .args(["local", "--duration", "4", "-c"])
        .arg(format!("test.dir={}", dir.path().display()))
        .arg("-c")
        .arg(format!(
            "topology.state.redb.dir={}",
            dir.path().join("state").display()
        ))
        .output()
        .unwrap();
    let stderr = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stderr.contains("count-2.redb is unreadable") && stderr.contains("move it aside"),
        "the damaged file is named, with what to do: {stderr}"
    );
    assert!(
        stderr.contains("ran for 4"),
        "the run went on for its 4 s instead of crashing: {stderr}"
    );
    // The healthy task saved its checkpoints; the damaged file was left as it was.
    assert!(state.join("count-3.redb").exists());
    assert_eq!(std::fs::read(&damaged).unwrap(), vec![0xAB; 4096]);
}
