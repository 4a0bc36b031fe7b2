//! Bad input to a real Nimbus process, each refused with a clear message and no state change:
//! unknown components in a spec, a binary whose hash does not match, a duplicate topology name,
//! a missing secret, an oversized upload.

use cluster_tests::{serial, topology_bin, Cluster, ClusterOptions, SECRET};
use tempest_client::NimbusClient;
use tempest_protocol::control::SubmitRequest;
use topology_api::spec::InputSpec;
use topology_api::GroupingSpec;

fn artifacts(cluster: &Cluster) -> usize {
    std::fs::read_dir(cluster.dir.join("nimbus/artifacts"))
        .map(|d| d.flatten().filter(|e| e.path().is_file()).count())
        .unwrap_or(0)
}

fn spec_of_test_topology() -> topology_api::TopologySpec {
    let out = std::process::Command::new(topology_bin())
        .arg("spec")
        .output()
        .expect("run spec");
    serde_json::from_slice(&out.stdout).expect("spec JSON")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_is_refused_without_state_change() {
    let _turn = serial().await;
    let opts = ClusterOptions {
        supervisors: 0,
        nimbus_args: vec!["--max-upload-mb".into(), "1".into()],
        ..Default::default()
    };
    let cluster = Cluster::start("bad-input", opts).await;
    let client = cluster.client();

    // Missing secret: 401 on the CLI, with a clear line.
    let out = std::process::Command::new(cluster_tests::workspace_bin("tempest"))
        .args(["--nimbus", &cluster.url, "list"])
        .env_remove("TEMPEST_SECRET")
        .output()
        .expect("run tempest");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        stderr.contains("401") && stderr.contains("secret"),
        "{stderr}"
    );
    let wrong = NimbusClient::new(&cluster.url, Some("not-the-secret".into())).unwrap();
    assert_eq!(wrong.list().await.unwrap_err().status(), Some(401));
    let log = std::fs::read_to_string(&cluster.nimbuses[0].daemon.log).unwrap_or_default();
    assert!(!log.contains(SECRET), "the secret must never be logged");

    // Oversized upload: the test topology binary is far above 1 MiB.
    let err = client.upload_artifact(&topology_bin()).await.unwrap_err();
    assert_eq!(err.status(), Some(413), "{err}");
    assert_eq!(artifacts(&cluster), 0, "nothing kept of a refused upload");

    // A binary whose hash does not match the one it is uploaded under.
    let small = cluster.dir.join("small.bin");
    std::fs::write(&small, b"not a topology").unwrap();
    let sha = client.upload_artifact(&small).await.expect("small upload");
    let claimed = "ab".repeat(32);
    let resp = reqwest_put(&cluster.url, &claimed, b"something else".to_vec()).await;
    assert_eq!(resp.0, 400, "{}", resp.1);
    assert!(
        resp.1.contains("hash") || resp.1.contains("sha256"),
        "{}",
        resp.1
    );
    assert!(
        resp.1.contains(&claimed),
        "names the claimed hash: {}",
        resp.1
    );
    assert_eq!(artifacts(&cluster), 1, "only the good upload is kept");

    // Unknown component in a spec.
    let mut spec = spec_of_test_topology();
    spec.components
        .iter_mut()
        .find(|c| c.id == "split")
        .unwrap()
        .inputs
        .push(InputSpec {
            component: "ghost".into(),
            stream: "default".into(),
            grouping: GroupingSpec::Shuffle,
        });
    let req = SubmitRequest {
        name: "wc".into(),
        spec,
        artifact: sha.clone(),
        config: Default::default(),
    };
    let err = client.submit(&req).await.unwrap_err();
    assert_eq!(err.status(), Some(400), "{err}");
    assert!(err.to_string().contains("ghost"), "{err}");
    assert!(client.list().await.unwrap().topologies.is_empty());

    // Duplicate name.
    let good = SubmitRequest {
        spec: spec_of_test_topology(),
        ..req
    };
    client.submit(&good).await.expect("first submit");
    let err = client.submit(&good).await.unwrap_err();
    assert_eq!(err.status(), Some(409), "{err}");
    assert!(err.to_string().contains("wc"), "{err}");
    assert_eq!(client.list().await.unwrap().topologies.len(), 1);
}

/// A raw upload under a given sha (the client always sends the right one).
async fn reqwest_put(url: &str, sha: &str, body: Vec<u8>) -> (u16, String) {
    let http = reqwest::Client::new();
    let resp = http
        .put(format!("{url}/api/v1/artifacts/{sha}"))
        .header("x-tempest-secret", SECRET)
        .body(body)
        .send()
        .await
        .expect("upload");
    (
        resp.status().as_u16(),
        resp.text().await.unwrap_or_default(),
    )
}
