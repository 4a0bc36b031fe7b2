//! The commands against a stand-in Nimbus: submit runs `BINARY spec`, uploads the binary and
//! submits with the overrides; the config file supplies the address and secret; list, kill
//! and rebalance send what the contract says.

mod stub;

use sha2::{Digest, Sha256};
use std::os::unix::fs::PermissionsExt;
use stub::{scratch_dir, start, tempest, texts};
use tempest_protocol::TopologySpec;

/// A minimal valid spec: a spout and a bolt subscribed to it.
fn spec_json() -> String {
    let spec: TopologySpec = serde_json::from_value(serde_json::json!({
        "name": "from-the-binary",
        "config": { "topology.workers": 1 },
        "components": [
            { "id": "words", "kind": "spout", "parallelism": 1, "num_tasks": 1,
              "streams": { "default": { "fields": ["word"], "direct": false } },
              "inputs": [], "config": {} },
            { "id": "count", "kind": "bolt", "parallelism": 2, "num_tasks": 2,
              "streams": {},
              "inputs": [ { "component": "words", "stream": "default",
                            "grouping": { "type": "fields", "fields": ["word"] } } ],
              "config": {} }
        ]
    }))
    .expect("the test spec matches TopologySpec");
    serde_json::to_string(&spec).unwrap()
}

#[tokio::test]
async fn commands_send_what_the_contract_says() {
    let nimbus = start(Some("s3cret")).await;
    let dir = scratch_dir("commands");
    // Address and secret from ./tempest.toml.
    std::fs::write(
        dir.join("tempest.toml"),
        format!(
            "secret = \"s3cret\"\n[client]\nnimbus = \"{}\"\n[nimbus]\nlisten = \"127.0.0.1:6627\"\n",
            nimbus.url
        ),
    )
    .unwrap();
    // A stand-in topology binary: a script that prints the spec when asked for it.
    std::fs::write(dir.join("spec.json"), spec_json()).unwrap();
    let binary = dir.join("topology");
    std::fs::write(
        &binary,
        "#!/bin/sh\n[ \"$1\" = spec ] || exit 3\necho 'a log line on stdout'\ncat \"$(dirname \"$0\")/spec.json\"\n",
    )
    .unwrap();
    std::fs::set_permissions(&binary, std::fs::Permissions::from_mode(0o755)).unwrap();
    let sha = hex::encode(Sha256::digest(std::fs::read(&binary).unwrap()));

    let out = tempest(
        &dir,
        &[
            "submit",
            "topology",
            "--name",
            "wc",
            "--workers",
            "2",
            "-c",
            "topology.max.spout.pending=100",
            "-c",
            "my.label=blue",
        ],
        &[],
    )
    .await;
    let (stdout, stderr) = texts(&out);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    assert!(stdout.contains(&format!("as artifact {sha}")), "{stdout}");
    assert!(
        stdout.ends_with("wc: PENDING (waiting for slots: needs 2 workers, 1 free slot)\n"),
        "{stdout}"
    );
    {
        let rec = nimbus.recorded.lock().unwrap();
        assert_eq!(rec.uploads, vec![sha.clone()]);
        let sub = &rec.submissions[0];
        assert_eq!(sub.name, "wc");
        assert_eq!(sub.spec.name, "wc");
        assert_eq!(sub.artifact, sha);
        assert_eq!(sub.spec.components.len(), 2);
        assert_eq!(sub.config.u64_or("topology.workers", 0).unwrap(), 2);
        assert_eq!(
            sub.config.u64_or("topology.max.spout.pending", 0).unwrap(),
            100
        );
        assert_eq!(sub.config.str("my.label"), Some("blue"));
    }

    let out = tempest(&dir, &["list"], &[]).await;
    let (stdout, stderr) = texts(&out);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    assert_eq!(
        stdout,
        "NAME  STATUS  UPTIME  WORKERS  EXECUTORS  TASKS\n\
         wc    ACTIVE  3m 12s        2          7      9\n"
    );

    let out = tempest(&dir, &["kill", "wc", "--wait", "5"], &[]).await;
    let (stdout, stderr) = texts(&out);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    assert_eq!(stdout, "wc: KILLED (workers stop in 5s)\n");

    let out = tempest(
        &dir,
        &["rebalance", "wc", "-n", "3", "-e", "count=1", "-w", "10"],
        &[],
    )
    .await;
    let (stdout, stderr) = texts(&out);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    assert_eq!(stdout, "wc: REBALANCING\n");

    let rec = nimbus.recorded.lock().unwrap();
    assert_eq!(rec.actions, vec!["kill wc 5", "rebalance wc 10"]);
    assert_eq!(rec.rebalances[0].workers, Some(3));
    assert_eq!(rec.rebalances[0].parallelism.get("count"), Some(&1));
}

#[tokio::test]
async fn submit_refuses_a_binary_that_is_not_a_topology() {
    let nimbus = start(None).await;
    let dir = scratch_dir("not-a-topology");
    let out = tempest(
        &dir,
        &[
            "--nimbus",
            &nimbus.url,
            "submit",
            "/bin/false",
            "--name",
            "wc",
        ],
        &[],
    )
    .await;
    let (_, stderr) = texts(&out);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(
        stderr.starts_with("error: `/bin/false spec` failed"),
        "{stderr}"
    );
    assert!(nimbus.recorded.lock().unwrap().uploads.is_empty());
}

#[tokio::test]
async fn version_and_get_errors() {
    let nimbus = start(None).await;
    let dir = scratch_dir("version");
    let out = tempest(&dir, &["version", "--nimbus", &nimbus.url], &[]).await;
    let (stdout, stderr) = texts(&out);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    assert_eq!(
        stdout,
        format!(
            "Tempest {}\nStorm UI REST API 2.8.8\n",
            env!("CARGO_PKG_VERSION")
        )
    );
    // get-errors asks for the topology: an unknown one is named in the error.
    let out = tempest(&dir, &["get-errors", "nope", "--nimbus", &nimbus.url], &[]).await;
    let (_, stderr) = texts(&out);
    assert_ne!(out.status.code(), Some(0));
    assert!(stderr.contains("\"nope\""), "{stderr}");
}
