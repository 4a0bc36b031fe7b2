//! Users and roles against real processes: a Nimbus with `[nimbus.users]` (made by
//! `tempest users add`), two supervisors with three slots each, and two teams' topologies on five
//! workers. A viewer cannot kill, a submitter cannot kill another team's topology but can kill
//! its own, a user in `topology.users` can operate it, a missing or wrong token gets 401, an
//! admin can do everything, and every change and refusal is one line of the audit log, which
//! holds no credential.

use cluster_tests::{
    eventually, free_port, serial, workspace_bin, Cluster, ClusterOptions, SECRET,
};
use std::process::Command;
use std::time::Duration;

/// A user made by `tempest users add`: its token and its `[nimbus.users]` line.
struct User {
    token: String,
    line: String,
}

fn add_user(name: &str, role: &str) -> User {
    let out = Command::new(workspace_bin("tempest"))
        .args(["users", "add", name, "--role", role])
        .env_remove("TEMPEST_SECRET")
        .env_remove("TEMPEST_TOKEN")
        .output()
        .expect("run tempest users add");
    assert!(out.status.success(), "{out:?}");
    let text = String::from_utf8(out.stdout).unwrap();
    let lines: Vec<&str> = text.lines().filter(|l| !l.starts_with('#')).collect();
    assert_eq!(lines.len(), 2, "a token and a config line: {text}");
    assert!(lines[0].starts_with("tpt_"), "{text}");
    assert!(
        !lines[1].contains(lines[0]),
        "the config line holds the token's digest, not the token: {text}"
    );
    User {
        token: lines[0].to_string(),
        line: lines[1].to_string(),
    }
}

/// The `tempest` CLI run with `token` (in TEMPEST_TOKEN, never an argument) and no secret.
fn tempest_as(cluster: &Cluster, token: &str, args: &[String]) -> std::process::Output {
    let mut all = vec!["--nimbus".to_string(), cluster.url.clone()];
    all.extend(args.iter().cloned());
    Command::new(workspace_bin("tempest"))
        .args(&all)
        .env_remove("TEMPEST_SECRET")
        .env_remove("TEMPEST_NIMBUS")
        .env("TEMPEST_TOKEN", token)
        .output()
        .expect("run tempest")
}

/// `POST path` with `token` as a bearer token (none: no credential); status and body (an
/// error's message).
async fn post(cluster: &Cluster, path: &str, token: Option<&str>) -> (u16, String) {
    let mut rb = reqwest::Client::new().post(format!("{}{path}", cluster.url));
    if let Some(t) = token {
        rb = rb.bearer_auth(t);
    }
    let resp = rb.send().await.expect("request");
    let status = resp.status().as_u16();
    let text = resp.text().await.unwrap_or_default();
    // An error's message, unescaped.
    let message = serde_json::from_str::<serde_json::Value>(&text)
        .ok()
        .and_then(|v| v["error"].as_str().map(str::to_string));
    (status, message.unwrap_or(text))
}

/// The audit log's lines.
fn audit(cluster: &Cluster) -> Vec<serde_json::Value> {
    let text = std::fs::read_to_string(cluster.nimbuses[0].data_dir.join("audit.jsonl"))
        .unwrap_or_default();
    text.lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("bad audit line {l}: {e}")))
        .collect()
}

/// Whether the audit log has a line with these fields.
fn audited(
    lines: &[serde_json::Value],
    who: &str,
    action: &str,
    topology: &str,
    outcome: &str,
) -> bool {
    lines.iter().any(|l| {
        l["who"] == who
            && l["action"] == action
            && l["topology"] == topology
            && l["outcome"] == outcome
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn roles_owners_and_topology_users_decide_and_everything_is_audited() {
    let _turn = serial().await;
    let alice = add_user("alice", "submitter");
    let bob = add_user("bob", "submitter");
    let carol = add_user("carol", "submitter");
    let vic = add_user("vic", "viewer");
    let root = add_user("ops", "admin");
    let users = [&alice, &bob, &carol, &vic, &root];
    let conf_dir = cluster_tests::scratch_dir("authz-conf");
    let conf = conf_dir.join("tempest.toml");
    let mut text = String::from("[nimbus.users]\n");
    for u in users {
        text.push_str(&u.line);
        text.push('\n');
    }
    std::fs::write(&conf, text).unwrap();
    let ui_port = free_port();
    let opts = ClusterOptions {
        supervisors: 2,
        slots: 3,
        nimbus_args: vec![
            "--config".into(),
            conf.display().to_string(),
            "--ui-listen".into(),
            format!("127.0.0.1:{ui_port}"),
        ],
        ..ClusterOptions::default()
    };
    let cluster = Cluster::start("authz", opts).await;

    // alice's topology on 3 workers (so one supervisor runs two), carol may operate it.
    let out_dir = cluster.out_dir().display().to_string();
    let submit = |user: &User, name: &str, workers: u32, extra: &[&str]| {
        let mut args: Vec<String> = vec![
            "submit".into(),
            cluster_tests::topology_bin().display().to_string(),
            "--name".into(),
            name.into(),
            "--workers".into(),
            workers.to_string(),
            "-c".into(),
            format!("test.dir={out_dir}/{name}"),
            "-c".into(),
            "test.rate=50".into(),
        ];
        for e in extra {
            args.push("-c".into());
            args.push(e.to_string());
        }
        tempest_as(&cluster, &user.token, &args)
    };
    for name in ["team-a", "team-b"] {
        std::fs::create_dir_all(cluster.out_dir().join(name)).unwrap();
    }
    let out = submit(&alice, "team-a", 3, &[r#"topology.users=["carol"]"#]);
    assert!(out.status.success(), "alice submits: {out:?}");
    // bob claims to be alice: Nimbus records the credential's user instead.
    let out = submit(&bob, "team-b", 2, &["topology.submitter.user=alice"]);
    assert!(out.status.success(), "bob submits: {out:?}");
    let client = cluster.client();
    for (name, workers) in [("team-a", 3), ("team-b", 2)] {
        eventually(
            &format!("{name} on {workers} workers"),
            Duration::from_secs(60),
            || {
                let client = client.clone();
                async move {
                    let a = client.assignment(name).await.ok()?;
                    (a.workers.len() == workers).then_some(())
                }
            },
        )
        .await;
    }
    eventually("5 live workers", Duration::from_secs(60), || async {
        (cluster.live_workers().len() == 5).then_some(())
    })
    .await;
    // The workers' derived credential works: their heartbeats reach Nimbus (uptime is known)
    // and tuples cross workers (acks come back to the spout).
    let acked = std::path::PathBuf::from(format!("{out_dir}/team-a"));
    eventually(
        "team-a acks tuples across its workers",
        Duration::from_secs(60),
        || {
            let acked = acked.clone();
            async move {
                let n: usize = std::fs::read_dir(&acked)
                    .ok()?
                    .flatten()
                    .filter(|e| e.file_name().to_string_lossy().starts_with("acked-"))
                    .map(|e| {
                        std::fs::read_to_string(e.path())
                            .unwrap_or_default()
                            .lines()
                            .count()
                    })
                    .sum();
                (n >= 20).then_some(())
            }
        },
    )
    .await;
    let described = tempest_as(
        &cluster,
        &vic.token,
        &["describe".into(), "team-b".into(), "--json".into()],
    );
    assert!(described.status.success(), "a viewer reads: {described:?}");
    let json = String::from_utf8_lossy(&described.stdout);
    assert!(
        json.contains(r#""topology.submitter.user":"bob""#)
            || json.contains(r#""topology.submitter.user": "bob""#),
        "team-b's owner is bob, whatever it claimed: {json}"
    );

    // A viewer cannot kill.
    let (status, body) = post(&cluster, "/api/v1/topology/team-a/kill/0", Some(&vic.token)).await;
    assert_eq!(status, 403, "{body}");
    assert!(body.contains("vic") && body.contains("viewer"), "{body}");
    // The CLI says so too, and exits 1.
    let out = tempest_as(
        &cluster,
        &vic.token,
        &["kill".into(), "team-a".into(), "--wait".into(), "0".into()],
    );
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("403"),
        "{out:?}"
    );
    // bob cannot kill alice's topology.
    let (status, body) = post(&cluster, "/api/v1/topology/team-a/kill/0", Some(&bob.token)).await;
    assert_eq!(status, 403, "{body}");
    assert!(
        body.contains("\"alice\"") && body.contains("\"bob\""),
        "{body}"
    );
    // No token, a wrong token: 401.
    let (status, body) = post(&cluster, "/api/v1/topology/team-a/kill/0", None).await;
    assert_eq!(status, 401, "{body}");
    assert!(body.contains("no credential"), "{body}");
    let (status, body) = post(
        &cluster,
        "/api/v1/topology/team-a/kill/0",
        Some("tpt_guess"),
    )
    .await;
    assert_eq!(status, 401, "{body}");
    assert!(
        body.contains("unknown credential") && !body.contains("tpt_guess"),
        "{body}"
    );
    // The read-only listener is the viewer without a token: it reads, and refuses changes.
    let ui = format!("http://127.0.0.1:{ui_port}");
    let http = reqwest::Client::new();
    let resp = http
        .get(format!("{ui}/api/v1/topology/summary"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 200);
    let resp = http
        .post(format!("{ui}/api/v1/topology/team-a/kill/0"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 405);

    // carol, in team-a's topology.users, operates it.
    let (status, body) = post(
        &cluster,
        "/api/v1/topology/team-a/deactivate",
        Some(&carol.token),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let (status, body) = post(
        &cluster,
        "/api/v1/topology/team-a/activate",
        Some(&carol.token),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    // carol is not in team-b's.
    let (status, body) = post(
        &cluster,
        "/api/v1/topology/team-b/deactivate",
        Some(&carol.token),
    )
    .await;
    assert_eq!(status, 403, "{body}");
    // alice kills her own; the admin kills bob's.
    let out = tempest_as(
        &cluster,
        &alice.token,
        &["kill".into(), "team-a".into(), "--wait".into(), "0".into()],
    );
    assert!(out.status.success(), "alice kills her own: {out:?}");
    let (status, body) = post(
        &cluster,
        "/api/v1/topology/team-b/kill/0",
        Some(&root.token),
    )
    .await;
    assert_eq!(status, 200, "the admin kills bob's: {body}");
    eventually("every worker stopped", Duration::from_secs(60), || async {
        cluster.live_workers().is_empty().then_some(())
    })
    .await;

    // One audit line per change and per refusal, with the user.
    let lines = audit(&cluster);
    for (who, action, topology, outcome) in [
        ("alice", "submit", "team-a", "ok"),
        ("bob", "submit", "team-b", "ok"),
        ("vic", "kill", "team-a", "forbidden"),
        ("bob", "kill", "team-a", "forbidden"),
        ("unauthenticated", "kill", "team-a", "unauthorized"),
        ("carol", "deactivate", "team-a", "ok"),
        ("carol", "activate", "team-a", "ok"),
        ("carol", "deactivate", "team-b", "forbidden"),
        ("alice", "kill", "team-a", "ok"),
        ("ops", "kill", "team-b", "ok"),
    ] {
        assert!(
            audited(&lines, who, action, topology, outcome),
            "no audit line {who} {action} {topology} {outcome} in {lines:#?}"
        );
    }
    let unauthorized = lines
        .iter()
        .filter(|l| l["outcome"] == "unauthorized")
        .count();
    assert_eq!(
        unauthorized, 2,
        "the missing and the wrong token: {lines:#?}"
    );
    assert!(
        lines
            .iter()
            .any(|l| l["who"] == "alice" && l["action"] == "upload" && l["outcome"] == "ok"),
        "{lines:#?}"
    );
    for l in &lines {
        assert!(l["ts"].as_str().is_some_and(|t| t.ends_with('Z')), "{l}");
    }
    // No credential in the audit log or in any daemon's or worker's log.
    let audit_text =
        std::fs::read_to_string(cluster.nimbuses[0].data_dir.join("audit.jsonl")).unwrap();
    let mut logs = std::fs::read_to_string(&cluster.nimbuses[0].daemon.log).unwrap();
    for s in &cluster.supervisors {
        logs += &std::fs::read_to_string(&s.daemon.log).unwrap();
        for e in std::fs::read_dir(s.data_dir.join("logs"))
            .unwrap()
            .flatten()
        {
            logs += &std::fs::read_to_string(e.path()).unwrap_or_default();
        }
    }
    for secret in users
        .iter()
        .map(|u| u.token.as_str())
        .chain([SECRET, "tpt_guess"])
    {
        assert!(
            !audit_text.contains(secret),
            "a credential in the audit log"
        );
        assert!(!logs.contains(secret), "a credential in a log");
    }
    cluster_tests::remove_test_dir(&conf_dir);
}
