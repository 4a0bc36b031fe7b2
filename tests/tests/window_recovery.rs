//! Aggregating windows in exactly-once checkpoints, in local mode (one real process, killed
//! with `kill -9`): per-key counts of sliding event-time windows over a finite numbered
//! source (`windowed_count`) run, are killed once some windows are out and checkpoints are
//! saved in the redb store, and run again from the last completed checkpoint. Every result
//! the sink received, before and after the kill, must be the exact count of its window and
//! key: a window open at the kill whose panes were not restored would count fewer (its
//! tuples before the checkpoint are not replayed), one whose panes were restored along with
//! tuples counted after the checkpoint would count more. A result may arrive twice (the sink
//! is at least once), with the same count; every window and key must arrive.

use cluster_tests::{eventually, expected_window_counts, workspace_bin};
use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

const EVENTS: u64 = 40_000;
const RATE: u64 = 2_000;

type Window = (String, i64, i64);

/// Starts the test topology in local mode, exactly once; its log goes to `log`.
fn start(dir: &Path, log: &str) -> Child {
    Command::new(workspace_bin("windowed_count"))
        .arg("local")
        .args(["-c", &format!("test.dir={}", dir.display())])
        .args(["-c", &format!("test.events={EVENTS}")])
        .args(["-c", &format!("test.rate={RATE}")])
        .args(["-c", "topology.state.exactly.once=true"])
        .args([
            "-c",
            &format!("topology.state.redb.dir={}", dir.join("state").display()),
        ])
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(dir.join(log)).unwrap())
        .spawn()
        .expect("start windowed_count")
}

/// Every result the sinks wrote, in order, as (key, start, end) and count. A torn last line
/// (the kill) is skipped: it was never acknowledged to anyone.
fn results(dir: &Path) -> Vec<(Window, i64)> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).unwrap().flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        if !(name.starts_with("results-") && name.ends_with(".jsonl")) {
            continue;
        }
        let text = std::fs::read_to_string(e.path()).unwrap_or_default();
        for line in text.lines() {
            if let Ok((key, start, end, count)) =
                serde_json::from_str::<(String, i64, i64, i64)>(line)
            {
                out.push(((key, start, end), count));
            }
        }
    }
    out
}

fn distinct(results: &[(Window, i64)]) -> BTreeSet<Window> {
    results.iter().map(|(w, _)| w.clone()).collect()
}

#[tokio::test]
async fn exactly_once_window_counts_are_exact_after_kill_9() {
    let dir = tempfile::tempdir().unwrap();
    let dir = dir.path();
    let want = expected_window_counts(EVENTS);
    let n = want.len();

    let mut first = start(dir, "log-1");
    // A third of the windows out: several checkpoints (1 s apart) completed by then.
    eventually(
        "a third of the window results written",
        Duration::from_secs(90),
        || async move { (distinct(&results(dir)).len() > n / 3).then_some(()) },
    )
    .await;
    first.kill().expect("kill -9");
    first.wait().unwrap();
    let at_kill = distinct(&results(dir)).len();
    println!("killed with {at_kill} of {} window results out", want.len());
    assert!(
        at_kill < want.len(),
        "the kill came after every window was out: it tests nothing"
    );

    let mut second = start(dir, "log-2");
    let outcome = eventually(
        "every window result written after the restart",
        Duration::from_secs(120),
        || {
            let ended = second.try_wait().ok().flatten();
            let all = distinct(&results(dir)).len() >= n;
            async move {
                match ended {
                    Some(status) => Some(Err(status)),
                    None => all.then_some(Ok(())),
                }
            }
        },
    )
    .await;
    // Idle inputs flush the last windows; give nothing else a chance to come in after.
    second.kill().ok();
    second.wait().unwrap();
    if let Err(status) = outcome {
        panic!(
            "the restarted run ended ({status}): {}",
            std::fs::read_to_string(dir.join("log-2")).unwrap_or_default()
        );
    }
    let log = std::fs::read_to_string(dir.join("log-2")).unwrap_or_default();
    assert!(
        log.contains("windows restored"),
        "the restarted tasks restored their windows from a checkpoint: {log}"
    );

    let got = results(dir);
    let mut wrong: BTreeMap<&Window, (i64, i64)> = BTreeMap::new();
    let mut unexpected = Vec::new();
    for (w, n) in &got {
        match want.get(w) {
            Some(expected) if expected == n => {}
            Some(expected) => {
                wrong.insert(w, (*n, *expected));
            }
            None => unexpected.push((w, *n)),
        }
    }
    let twice = got.len() - distinct(&got).len();
    println!(
        "{} results, {} windows and keys, {twice} emitted again after the rollback",
        got.len(),
        distinct(&got).len()
    );
    assert!(
        unexpected.is_empty(),
        "results for windows that hold no event: {unexpected:?}"
    );
    assert!(
        wrong.is_empty(),
        "{} results are not the exact count (got, expected): {:?}",
        wrong.len(),
        wrong.iter().take(20).collect::<Vec<_>>()
    );
    assert_eq!(
        distinct(&got),
        want.keys().cloned().collect::<BTreeSet<_>>()
    );
}
