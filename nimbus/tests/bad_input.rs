//! Bad requests are refused with a status and a message naming the culprit, and change
//! nothing: no topology listed, no artifact file left behind.

mod common;

use common::*;
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;
use tempest_protocol::control::{RebalanceRequest, TopologyState};

fn sha(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

async fn topology_names(n: &TestNimbus) -> Vec<String> {
    let list = n.client.list().await.unwrap().topologies;
    list.into_iter().map(|t| t.name).collect()
}

/// A raw request with the secret; returns the status and the JSON error message.
async fn raw(n: &TestNimbus, method: reqwest::Method, path: &str, body: &str) -> (u16, String) {
    let resp = reqwest::Client::new()
        .request(method, format!("{}{path}", n.url))
        .header("x-tempest-secret", SECRET)
        .body(body.to_string())
        .send()
        .await
        .unwrap();
    let status = resp.status().as_u16();
    let body: serde_json::Value = resp.json().await.expect("a JSON error body");
    (
        status,
        body["error"]
            .as_str()
            .expect("an error message")
            .to_string(),
    )
}

#[tokio::test]
async fn a_spec_subscribing_to_an_unknown_component_is_refused() {
    let n = TestNimbus::start(|_| {}).await;
    let sha = n.upload(b"binary").await;
    let mut spec = spec(1);
    let count = spec
        .components
        .iter_mut()
        .find(|c| c.id == "count")
        .unwrap();
    count.inputs[0].component = "wrods".into();
    let (status, msg) = refused(n.client.submit(&submit_request("wc", spec, &sha)).await);
    assert_eq!(status, 400);
    assert!(
        msg.contains("\"wrods\"") && msg.contains("\"count\""),
        "{msg}"
    );
    assert!(topology_names(&n).await.is_empty());
}

#[tokio::test]
async fn a_submission_needs_an_uploaded_artifact_and_a_good_name() {
    let n = TestNimbus::start(|_| {}).await;
    let missing = sha(b"never uploaded");
    let (status, msg) = refused(
        n.client
            .submit(&submit_request("wc", spec(1), &missing))
            .await,
    );
    assert_eq!(status, 400);
    assert!(
        msg.contains(&missing) && msg.contains("upload it first"),
        "{msg}"
    );
    let (status, msg) = refused(
        n.client
            .submit(&submit_request("wc", spec(1), "../../etc/passwd"))
            .await,
    );
    assert_eq!(status, 400);
    assert!(msg.contains("../../etc/passwd"), "{msg}");
    let sha = n.upload(b"binary").await;
    for bad in ["../x", "", ".hidden", "a/b", "summary"] {
        let (status, msg) = refused(n.client.submit(&submit_request(bad, spec(1), &sha)).await);
        assert_eq!(status, 400, "{bad:?}: {msg}");
        assert!(msg.contains(&format!("{bad:?}")), "{msg}");
    }
    let mut zero = spec(1);
    zero.config.set("topology.workers", 0);
    let (status, msg) = refused(n.client.submit(&submit_request("wc", zero, &sha)).await);
    assert_eq!(status, 400);
    assert!(msg.contains("topology.workers"), "{msg}");
    assert!(topology_names(&n).await.is_empty());
}

#[tokio::test]
async fn an_upload_whose_content_does_not_match_its_sha_is_refused_and_not_kept() {
    let n = TestNimbus::start(|_| {}).await;
    let claimed = sha(b"what the path says");
    let actual = sha(b"what was sent");
    let resp = reqwest::Client::new()
        .put(format!("{}/api/v1/artifacts/{claimed}", n.url))
        .header("x-tempest-secret", SECRET)
        .body("what was sent")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 400);
    let msg = resp.json::<serde_json::Value>().await.unwrap()["error"].to_string();
    assert!(msg.contains(&claimed) && msg.contains(&actual), "{msg}");
    assert!(n.artifact_files().is_empty(), "{:?}", n.artifact_files());
    let (status, msg) = refused(
        n.client
            .download_artifact(&claimed, &n.dir.path().join("x"))
            .await,
    );
    assert_eq!(status, 404, "{msg}");
    assert!(msg.contains(&claimed), "{msg}");
    let (status, _) = raw(&n, reqwest::Method::PUT, "/api/v1/artifacts/NOTHEX", "x").await;
    assert_eq!(status, 400);
}

#[tokio::test]
async fn an_oversized_upload_is_refused_while_streaming_and_not_kept() {
    let n = TestNimbus::start(|c| c.max_upload_mb = 1).await;
    // With a Content-Length (the shared client sends one).
    let big = vec![42u8; 2 << 20];
    let path = n.dir.path().join("big");
    std::fs::write(&path, &big).unwrap();
    let (status, msg) = refused(n.client.upload_artifact(&path).await);
    assert_eq!(status, 413);
    assert!(msg.contains("1 MiB"), "{msg}");
    // Streamed in chunks without a length: counted while it arrives.
    let chunks: Vec<Result<bytes::Bytes, std::io::Error>> = (0..32)
        .map(|_| Ok(bytes::Bytes::from(vec![42u8; 64 << 10])))
        .collect();
    let resp = reqwest::Client::new()
        .put(format!("{}/api/v1/artifacts/{}", n.url, sha(&big)))
        .header("x-tempest-secret", SECRET)
        .body(reqwest::Body::wrap_stream(futures::stream::iter(chunks)))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 413);
    assert!(n.artifact_files().is_empty(), "{:?}", n.artifact_files());
    // Within the limit it is stored.
    let small = n.upload(&[1u8; 1000]).await;
    assert_eq!(n.artifact_files(), [small]);
}

#[tokio::test]
async fn a_duplicate_name_is_a_conflict() {
    let n = TestNimbus::start(|_| {}).await;
    n.submit("wc", spec(1)).await;
    let sha = n.upload(b"binary").await;
    let (status, msg) = refused(n.client.submit(&submit_request("wc", spec(1), &sha)).await);
    assert_eq!(status, 409);
    assert!(msg.contains("\"wc\"") && msg.contains("already"), "{msg}");
    assert_eq!(topology_names(&n).await, ["wc"]);
}

#[tokio::test]
async fn requests_without_the_secret_are_refused() {
    let n = TestNimbus::start(|_| {}).await;
    n.submit("wc", spec(1)).await;
    let path = n.dir.path().join("bin");
    std::fs::write(&path, b"another binary").unwrap();
    for (client, expected) in [
        (n.client_with(None), "no credential: "),
        (n.client_with(Some("wrong")), "unknown credential: "),
    ] {
        let checks = [
            refused(client.list().await),
            refused(client.describe("wc").await),
            refused(client.kill("wc", 0).await),
            refused(client.supervisor_heartbeat(&supervisor("s", &[6700])).await),
            refused(client.upload_artifact(&path).await),
            refused(
                client
                    .submit(&submit_request("x", spec(1), &sha(b"x")))
                    .await,
            ),
        ];
        for (status, msg) in checks {
            assert_eq!(status, 401, "{msg}");
            assert!(msg.starts_with(expected), "{msg}");
            assert!(
                !msg.contains("wrong"),
                "the credential sent is not echoed: {msg}"
            );
        }
    }
    assert_eq!(topology_names(&n).await, ["wc"]);
    assert_eq!(n.artifact_files().len(), 1);
    assert!(n.client.supervisors().await.unwrap().supervisors.is_empty());
}

#[tokio::test]
async fn a_refused_big_upload_still_gets_its_answer() {
    // The body is never read; without a lingering close the client would see a reset.
    let n = TestNimbus::start(|c| c.max_upload_mb = 1).await;
    let body = bytes::Bytes::from(vec![1u8; 24 << 20]);
    let http = reqwest::Client::new();
    for (secret, expected) in [("wrong", 401), (SECRET, 413)] {
        for _ in 0..3 {
            let resp = http
                .put(format!("{}/api/v1/artifacts/{}", n.url, sha(b"x")))
                .header("x-tempest-secret", secret)
                .body(body.clone())
                .send()
                .await
                .expect("an answer, not a reset connection");
            assert_eq!(resp.status().as_u16(), expected);
        }
    }
    assert!(n.artifact_files().is_empty());
}

#[tokio::test]
async fn a_cluster_without_a_secret_is_open() {
    let n = TestNimbus::start(|c| c.secret = None).await;
    assert!(n.client_with(None).list().await.is_ok());
}

#[tokio::test]
async fn names_that_could_escape_a_directory_are_refused() {
    let n = TestNimbus::start(|_| {}).await;
    n.submit("wc", spec(1)).await;
    for path in [
        "/api/v1/topology/..%2Fx",
        "/api/v1/topology/..%2F..%2Fetc%2Fpasswd/assignment",
        "/api/v1/topology/.hidden",
    ] {
        let (status, msg) = raw(&n, reqwest::Method::GET, path, "").await;
        assert_eq!(status, 400, "{path}: {msg}");
        assert!(msg.contains("not allowed"), "{msg}");
    }
    let (status, msg) = raw(
        &n,
        reqwest::Method::POST,
        "/api/v1/topology/..%2Fwc/kill/0",
        "",
    )
    .await;
    assert_eq!(status, 400, "{msg}");
    assert!(msg.contains("\"../wc\""), "{msg}");
    let (status, _) = refused(n.client.kill("../wc", 0).await);
    assert_eq!(status, 400);
    assert_eq!(topology_names(&n).await, ["wc"]);
}

#[tokio::test]
async fn a_bad_rebalance_is_refused_and_changes_nothing() {
    let n = TestNimbus::start(|_| {}).await;
    n.client
        .supervisor_heartbeat(&supervisor("s", &[6700, 6701]))
        .await
        .unwrap();
    n.submit("wc", spec(2)).await;
    let before = n.client.assignment("wc").await.unwrap();
    let too_many = RebalanceRequest {
        workers: None,
        parallelism: BTreeMap::from([("count".to_string(), 5)]),
    };
    let (status, msg) = refused(n.client.rebalance("wc", 0, &too_many).await);
    assert_eq!(status, 400);
    assert!(
        msg.contains("\"count\"") && msg.contains("4 tasks"),
        "{msg}"
    );
    let unknown = RebalanceRequest {
        workers: None,
        parallelism: BTreeMap::from([("cuont".to_string(), 1)]),
    };
    let (status, msg) = refused(n.client.rebalance("wc", 0, &unknown).await);
    assert_eq!(status, 400);
    assert!(msg.contains("\"cuont\""), "{msg}");
    let zero = RebalanceRequest {
        workers: Some(0),
        ..RebalanceRequest::default()
    };
    assert_eq!(refused(n.client.rebalance("wc", 0, &zero).await).0, 400);
    let (status, msg) = raw(
        &n,
        reqwest::Method::POST,
        "/api/v1/topology/wc/rebalance/soon",
        "{}",
    )
    .await;
    assert_eq!(status, 400);
    assert!(msg.contains("\"soon\""), "{msg}");
    let details = n.client.describe("wc").await.unwrap();
    assert_eq!(details.summary.status, TopologyState::Active);
    assert_eq!(n.client.assignment("wc").await.unwrap(), before);
}

#[tokio::test]
async fn unknown_topologies_are_not_found() {
    let n = TestNimbus::start(|_| {}).await;
    let checks = [
        refused(n.client.describe("ghost").await),
        refused(n.client.assignment("ghost").await),
        refused(n.client.kill("ghost", 0).await),
        refused(n.client.activate("ghost").await),
        refused(n.client.deactivate("ghost").await),
        refused(
            n.client
                .rebalance("ghost", 0, &RebalanceRequest::default())
                .await,
        ),
    ];
    for (status, msg) in checks {
        assert_eq!(status, 404, "{msg}");
        assert!(msg.contains("\"ghost\""), "{msg}");
    }
}

#[tokio::test]
async fn malformed_bodies_unknown_paths_and_methods_get_json_errors() {
    let n = TestNimbus::start(|_| {}).await;
    let (status, msg) = raw(
        &n,
        reqwest::Method::POST,
        "/api/v1/topologies",
        "{\"name\": 3}",
    )
    .await;
    assert_eq!(status, 400);
    assert!(msg.contains("submit request"), "{msg}");
    let (status, msg) = raw(
        &n,
        reqwest::Method::POST,
        "/api/v1/supervisor/heartbeat",
        "nope",
    )
    .await;
    assert_eq!(status, 400);
    assert!(msg.contains("supervisor heartbeat"), "{msg}");
    let bad_id = serde_json::to_string(&supervisor("../etc", &[1])).unwrap();
    let (status, msg) = raw(
        &n,
        reqwest::Method::POST,
        "/api/v1/supervisor/heartbeat",
        &bad_id,
    )
    .await;
    assert_eq!(status, 400);
    assert!(msg.contains("\"../etc\""), "{msg}");
    let (status, msg) = raw(&n, reqwest::Method::GET, "/api/v2/nothing", "").await;
    assert_eq!(status, 404);
    assert!(msg.contains("/api/v2/nothing"), "{msg}");
    let (status, msg) = raw(&n, reqwest::Method::DELETE, "/api/v1/topologies", "").await;
    assert_eq!(status, 405);
    assert!(msg.contains("DELETE"), "{msg}");
    let huge = "x".repeat(17 << 20);
    let (status, _) = raw(&n, reqwest::Method::POST, "/api/v1/topologies", &huge).await;
    assert_eq!(status, 413);
    assert!(topology_names(&n).await.is_empty());
}
