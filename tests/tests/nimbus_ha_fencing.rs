//! Nimbus HA on a real etcd, with real Nimbus processes: followers answer with the leader (the
//! 503 contract and `GET /api/v1/leader`), a kill -9'd leader is replaced within its lease, a
//! SIGTERM'd one hands over at once, a paused (SIGSTOP) leader steps down and writes nothing
//! when it wakes, and a Nimbus with an empty data dir fetches every binary before it leads and
//! then serves a supervisor's download alone.
//!
//! Needs an etcd-capable nimbus binary: `cargo test --workspace` builds one (this package
//! enables nimbus's `etcd` feature); alone, run `cargo build -p nimbus --features etcd` first.

use cluster_tests::etcd::{etcd_bin, EtcdKey};
use cluster_tests::{ask_leader, eventually, serial, Cluster, ClusterOptions, SECRET};
use nix::sys::signal::Signal;
use std::collections::BTreeMap;
use std::time::{Duration, Instant};

const LEASE_SECS: u64 = 3;

fn ha(nimbuses: usize, supervisors: usize) -> ClusterOptions {
    ClusterOptions {
        nimbuses,
        supervisors,
        etcd_members: 1,
        leader_lease_secs: LEASE_SECS,
        ..ClusterOptions::default()
    }
}

fn have_etcd(test: &str) -> bool {
    if etcd_bin().is_none() {
        eprintln!(
            "SKIPPED {test}: no etcd binary; install Debian's etcd-server (scripts/deps.sh does)"
        );
        return false;
    }
    true
}

async fn post(url: &str) -> reqwest::Response {
    reqwest::Client::new()
        .post(url)
        .header("x-tempest-secret", SECRET)
        .header("content-type", "application/json")
        .body("{}")
        .send()
        .await
        .expect("a response")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn followers_name_the_leader_and_a_new_one_takes_over_on_kill_and_sigterm() {
    if !have_etcd("followers_name_the_leader") {
        return;
    }
    let _turn = serial().await;
    let mut cluster = Cluster::start("ha-election", ha(3, 0)).await;
    assert_eq!(cluster.leader().await, Some(0), "the first Nimbus leads");
    let leader_url = cluster.nimbuses[0].url.clone();

    // Every follower names the leader and lists the three.
    for i in 1..3 {
        let url = &cluster.nimbuses[i].url;
        let a = ask_leader(url).await.expect("leader answer");
        assert!(!a.is_leader);
        assert_eq!(a.leader.as_deref(), Some(leader_url.as_str()), "{}", a.json);
        assert_eq!(a.json["self"]["url"], url.as_str());
        let statuses: BTreeMap<String, String> = a.json["nimbuses"]
            .as_array()
            .expect("nimbuses")
            .iter()
            .map(|n| {
                (
                    n["url"].as_str().unwrap().to_string(),
                    n["status"].as_str().unwrap().to_string(),
                )
            })
            .collect();
        assert_eq!(statuses.len(), 3, "{}", a.json);
        assert_eq!(statuses[&leader_url], "Leader");
        assert_eq!(statuses[url], "Not a Leader");

        // A change, a read: 503 naming the leader, in the body and the header.
        for resp in [
            post(&format!("{url}/api/v1/topologies")).await,
            reqwest::Client::new()
                .get(format!("{url}/api/v1/topology/summary"))
                .header("x-tempest-secret", SECRET)
                .send()
                .await
                .unwrap(),
        ] {
            assert_eq!(resp.status(), 503);
            assert_eq!(
                resp.headers()["x-tempest-leader"].to_str().unwrap(),
                leader_url
            );
            let body: serde_json::Value = resp.json().await.unwrap();
            assert_eq!(
                body,
                serde_json::json!({
                    "error": format!("not the leader; the leader is {leader_url}"),
                    "leader": leader_url,
                })
            );
        }
        // Health and binaries are served; a missing binary is a 404, not a 503.
        let health = reqwest::get(format!("{url}/health")).await.unwrap();
        assert_eq!(health.status(), 200);
        let missing = reqwest::Client::new()
            .get(format!("{url}/api/v1/artifacts/{}", "0".repeat(64)))
            .header("x-tempest-secret", SECRET)
            .send()
            .await
            .unwrap();
        assert_eq!(missing.status(), 404);
    }
    // The secret still comes first.
    let refused = reqwest::Client::new()
        .post(format!("{}/api/v1/topologies", cluster.nimbuses[1].url))
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), 401);

    // kill -9 the leader: another one leads after the lease runs out (the time is printed; the
    // deadline leaves room for a loaded CI machine).
    let killed = Instant::now();
    cluster.kill9_nimbus_at(0);
    let next = cluster
        .wait_leader(Some(0), Duration::from_secs(LEASE_SECS + 10))
        .await;
    let took = killed.elapsed();
    println!(
        "MEASURED kill -9 -> new leader: {} ms (lease {LEASE_SECS} s)",
        took.as_millis()
    );
    let a = ask_leader(&cluster.nimbuses[next].url).await.unwrap();
    let offline = a.json["nimbuses"]
        .as_array()
        .unwrap()
        .iter()
        .find(|n| n["url"] == leader_url.as_str())
        .map(|n| n["status"].clone());
    assert_eq!(offline, Some("Offline".into()), "{}", a.json);

    // SIGTERM the new leader: the lease is revoked, the last one leads at once (printed;
    // well under the lease, which a kill -9 would have to wait out).
    let termed = Instant::now();
    cluster.signal_nimbus(next, Signal::SIGTERM);
    let last = cluster
        .wait_leader(Some(next), Duration::from_secs(5))
        .await;
    let took = termed.elapsed();
    println!("MEASURED SIGTERM -> new leader: {} ms", took.as_millis());
    assert!(last != 0 && last != next);
    let status = cluster.nimbuses[next]
        .daemon
        .exited(Duration::from_secs(10))
        .await;
    assert!(
        status.success(),
        "a SIGTERM'd Nimbus exits cleanly: {status}"
    );

    // The first one comes back as a follower of the last.
    cluster.respawn_nimbus_at(0);
    let url0 = cluster.nimbuses[0].url.clone();
    let last_url = cluster.nimbuses[last].url.clone();
    eventually(
        "the restarted Nimbus to follow",
        Duration::from_secs(20),
        || async {
            ask_leader(&url0)
                .await
                .filter(|a| !a.is_leader && a.leader.as_deref() == Some(last_url.as_str()))
        },
    )
    .await;
}

/// The state keys (topologies, assignments, the version) by key, with their mod revisions.
fn state_keys(cluster: &Cluster) -> BTreeMap<String, EtcdKey> {
    let etcd = cluster.etcd.as_ref().expect("etcd");
    ["topologies/", "assignments/", "meta/"]
        .iter()
        .flat_map(|p| etcd.keys(&format!("/tempest/tempest/{p}")))
        .map(|k| (k.key.clone(), k))
        .collect()
}

fn versions(keys: &BTreeMap<String, EtcdKey>) -> BTreeMap<String, u64> {
    keys.iter()
        .filter(|(k, _)| k.contains("/assignments/"))
        .map(|(k, v)| {
            let a: serde_json::Value = serde_json::from_str(&v.value).unwrap();
            (k.clone(), a["version"].as_u64().unwrap())
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_paused_leader_steps_down_and_writes_nothing() {
    if !have_etcd("a_paused_leader_steps_down") {
        return;
    }
    let _turn = serial().await;
    // A supervisor timeout far beyond the pause: no Nimbus declares a supervisor dead here,
    // so the only change due is the rebalance below.
    let cluster = Cluster::start(
        "ha-paused",
        ClusterOptions {
            supervisor_timeout_secs: 60,
            ..ha(2, 2)
        },
    )
    .await;
    cluster.submit_word_count("wc", 3, 1_000_000, 200);
    cluster.wait_running("wc", 3).await;
    cluster.wait_acked(100, Duration::from_secs(60)).await;
    cluster.wait_every_nimbus_holds_the_binaries().await;
    let before = state_keys(&cluster);

    // A rebalance falls due while the leader is paused: the new leader carries it out (or
    // records why not: the supervisors still heartbeat the paused one); the paused one still
    // has it due in memory when it wakes up, and its scheduler tries to carry it out again.
    let wait = LEASE_SECS + 3;
    let args: Vec<String> = [
        "--nimbus".to_string(),
        cluster.seeds(),
        "rebalance".into(),
        "wc".into(),
        "-n".into(),
        "2".into(),
        "--wait".into(),
        wait.to_string(),
    ]
    .into();
    let out = cluster.tempest(&args);
    assert!(out.status.success(), "rebalance: {}", out.stderr);
    cluster.signal_nimbus(0, Signal::SIGSTOP);
    let stopped = Instant::now();
    // What this test checks is that the paused leader writes nothing, not how fast the next one
    // takes over (the kill -9 tests time that): a generous wait, so a loaded CI machine does not
    // fail it (it timed out once at lease + 5 s while two other cluster tests ran).
    cluster
        .wait_leader(Some(0), Duration::from_secs(LEASE_SECS + 15))
        .await;
    println!(
        "MEASURED SIGSTOP -> new leader: {} ms",
        stopped.elapsed().as_millis()
    );
    eventually(
        "the new leader to carry out the rebalance",
        Duration::from_secs(30),
        || {
            let keys = state_keys(&cluster);
            let done = keys.get("/tempest/tempest/topologies/wc").is_some_and(|k| {
                let rec: serde_json::Value = serde_json::from_str(&k.value).unwrap();
                rec["deadline"].is_null() && rec["state"] != "REBALANCING"
            });
            async move { done.then_some(()) }
        },
    )
    .await;
    // Let the new leader's state settle.
    let mut settled = state_keys(&cluster);
    let mut since = Instant::now();
    eventually(
        "the new leader's state to settle",
        Duration::from_secs(30),
        || {
            let now = state_keys(&cluster);
            if now != settled {
                settled = now;
                since = Instant::now();
            }
            let done = since.elapsed() > Duration::from_secs(2);
            async move { done.then_some(()) }
        },
    )
    .await;
    let paused_for = stopped.elapsed();

    cluster.signal_nimbus(0, Signal::SIGCONT);
    let url0 = cluster.nimbuses[0].url.clone();
    let url1 = cluster.nimbuses[1].url.clone();
    eventually(
        "the woken Nimbus to follow the new leader",
        Duration::from_secs(10),
        || async {
            ask_leader(&url0)
                .await
                .filter(|a| !a.is_leader && a.leader.as_deref() == Some(url1.as_str()))
        },
    )
    .await;
    // Give it every chance to write.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let after = state_keys(&cluster);
    assert_eq!(
        after,
        settled,
        "the paused leader (stopped {paused_for:?}) wrote after it woke up\n{}",
        cluster.logs()
    );
    let log = std::fs::read_to_string(&cluster.nimbuses[0].daemon.log).unwrap();
    assert!(
        log.contains("stepping down") || log.contains("stepped down"),
        "the woken Nimbus says it stepped down\n{log}"
    );
    let now = versions(&after);
    for (key, v) in versions(&before) {
        let v_now = now.get(&key).copied().unwrap_or(0);
        assert!(v_now >= v, "{key}: version {v} went back to {v_now}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_empty_nimbus_fetches_every_binary_before_it_leads_then_serves_it_alone() {
    if !have_etcd("an_empty_nimbus_fetches_every_binary") {
        return;
    }
    let _turn = serial().await;
    let mut cluster = Cluster::start(
        "ha-catch-up",
        ClusterOptions {
            supervisor_timeout_secs: 3,
            ..ha(2, 1)
        },
    )
    .await;
    cluster.submit_word_count("wc", 1, 1_000_000, 200);
    let a = cluster.wait_running("wc", 1).await;
    let sha = a.artifact.clone();
    let dirs: Vec<_> = cluster
        .nimbuses
        .iter()
        .map(|n| n.data_dir.clone())
        .collect();
    let held_by = |i: usize| dirs[i].join("artifacts").join(&sha);
    eventually(
        "the follower to fetch the binary",
        Duration::from_secs(20),
        || {
            let there = held_by(1).exists();
            async move { there.then_some(()) }
        },
    )
    .await;

    // Nimbus 0 loses its disk: kill -9, empty data dir, restart. Nimbus 1 leads meanwhile.
    cluster.kill9_nimbus_at(0);
    cluster
        .wait_leader(Some(0), Duration::from_secs(LEASE_SECS + 10))
        .await;
    std::fs::remove_dir_all(&cluster.nimbuses[0].data_dir).unwrap();
    cluster.respawn_nimbus_at(0);
    let log0 = cluster.nimbuses[0].daemon.log.clone();
    eventually(
        "the empty Nimbus to fetch the binary",
        Duration::from_secs(20),
        || {
            let there = held_by(0).exists();
            async move { there.then_some(()) }
        },
    )
    .await;

    // Nimbus 1 goes: the caught-up one leads, alone.
    cluster.kill9_nimbus_at(1);
    let leader = cluster
        .wait_leader(Some(1), Duration::from_secs(LEASE_SECS + 10))
        .await;
    assert_eq!(leader, 0);
    let log = std::fs::read_to_string(&log0).unwrap();
    let fetched = log.find("fetched a topology binary").expect("fetched");
    let elected = log.find("elected leader").expect("elected");
    assert!(
        fetched < elected,
        "it fetched before it stood for election\n{log}"
    );
    assert!(
        !log.contains("standing for election anyway"),
        "no fallback was needed\n{log}"
    );

    // A supervisor that lost its disk downloads the binary from it and runs the worker again.
    let s = &mut cluster.supervisors[0];
    s.daemon.kill9();
    s.kill9_workers();
    std::fs::remove_dir_all(&s.data_dir).unwrap();
    cluster.restart_supervisor(0);
    let cached = cluster.supervisors[0].data_dir.join("artifacts").join(&sha);
    eventually(
        "the supervisor to download the binary from the last Nimbus",
        Duration::from_secs(40),
        || {
            let there = cached.exists() && !cluster.live_workers().is_empty();
            async move { there.then_some(()) }
        },
    )
    .await;
    let new_id = cluster.supervisor_id(0);
    let client = cluster.client_of(0);
    let moved = client.assignment("wc").await.expect("assignment");
    assert!(
        moved.workers.iter().all(|w| w.supervisor == new_id),
        "the worker moved to the new supervisor: {moved:?}"
    );
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(cluster.live_workers().len(), 1, "{}", cluster.logs());
}
