//! Event-time windows across two workers: the spout on one, the windowed bolt's tasks spread
//! over both (fields grouping on the key). Every key's count in every 1 s window is exact.

use cluster_tests::{eventually, serial, workspace_bin, Cluster, ClusterOptions};
use std::collections::BTreeMap;
use std::time::Duration;

/// The windows' results so far, merged over the tasks' files.
fn results(cluster: &Cluster) -> BTreeMap<String, u64> {
    let mut merged = BTreeMap::new();
    for e in std::fs::read_dir(cluster.out_dir())
        .into_iter()
        .flatten()
        .flatten()
    {
        let name = e.file_name().to_string_lossy().into_owned();
        if name.starts_with("windows-") && name.ends_with(".json") {
            let text = std::fs::read_to_string(e.path()).unwrap_or_default();
            if let Ok(m) = serde_json::from_str::<BTreeMap<String, u64>>(&text) {
                merged.extend(m);
            }
        }
    }
    merged
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn event_time_windows_across_two_workers_are_exact() {
    let _turn = serial().await;
    let cluster = Cluster::start("windows-across", ClusterOptions::default()).await;
    let bin = workspace_bin("cluster_windows").display().to_string();
    let out = cluster.out_dir().display().to_string();
    let args: Vec<String> = [
        "--nimbus",
        &cluster.url,
        "submit",
        &bin,
        "--name",
        "windows",
        "--workers",
        "2",
        "-c",
    ]
    .iter()
    .map(|s| s.to_string())
    .chain([
        format!("test.dir={out}"),
        "-c".into(),
        "test.events=3000".into(),
    ])
    .collect();
    let submitted = cluster.tempest(&args);
    assert!(submitted.status.success(), "submit: {}", submitted.stderr);
    let assignment = cluster.wait_running("windows", 2).await;
    let hosts_windows = assignment
        .workers
        .iter()
        .filter(|w| w.executors.iter().any(|e| e.component == "windows"))
        .count();
    assert_eq!(hosts_windows, 2, "the windowed bolt runs on both workers");

    // 3000 events 10 ms apart: 30 windows of 1 s, each with 20 events of each of 5 keys.
    let expected: BTreeMap<String, u64> = (0..30)
        .flat_map(|w| (0..5).map(move |k| (format!("{k}@{}", w * 1000), 20)))
        .collect();
    eventually(
        "every window's exact counts",
        Duration::from_secs(60),
        || async { (results(&cluster) == expected).then_some(()) },
    )
    .await;
}
