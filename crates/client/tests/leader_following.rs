//! The client's leader-following through a seed list, against tiny in-test HTTP servers: they
//! produce the edge cases a real Nimbus cannot be made to produce on demand (a follower that
//! names a leader, an election with no leader yet, a connection dropped after the request was
//! read). The failover of real Nimbus processes is tested in tests/tests/nimbus_ha_failover.rs.

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::Router;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tempest_client::{ClientError, NimbusClient, LEADER_HEADER};

/// How a fake Nimbus answers.
#[derive(Clone)]
enum Role {
    /// Answers the topology list and serves the artifacts it has.
    Leader { artifacts: Vec<(String, Vec<u8>)> },
    /// 503 naming `leader` (read at each request, so a test can change it) on everything but
    /// `/api/v1/leader` and artifact downloads.
    Follower {
        leader: Arc<Mutex<Option<String>>>,
        artifacts: Vec<(String, Vec<u8>)>,
    },
}

struct Fake {
    role: Role,
    url: String,
    /// Requests seen, by path.
    seen: Mutex<Vec<String>>,
}

impl Fake {
    fn count(&self, path: &str) -> usize {
        self.seen
            .lock()
            .unwrap()
            .iter()
            .filter(|p| *p == path)
            .count()
    }
}

async fn handle(State(fake): State<Arc<Fake>>, uri: Uri, _body: Bytes) -> Response {
    let path = uri.path().to_string();
    fake.seen.lock().unwrap().push(path.clone());
    let artifact = |artifacts: &[(String, Vec<u8>)]| {
        let sha = path.strip_prefix("/api/v1/artifacts/")?;
        Some(
            artifacts
                .iter()
                .find(|(s, _)| s == sha)
                .map_or(StatusCode::NOT_FOUND.into_response(), |(_, b)| {
                    b.clone().into_response()
                }),
        )
    };
    match &fake.role {
        Role::Leader { artifacts } => {
            if let Some(r) = artifact(artifacts) {
                return r;
            }
            match path.as_str() {
                "/api/v1/leader" => axum::Json(serde_json::json!({
                    "leader": {"id": "leader", "url": fake.url},
                    "self": {"id": "leader", "url": fake.url},
                    "is_leader": true, "nimbuses": []
                }))
                .into_response(),
                "/api/v1/topology/summary" => {
                    axum::Json(serde_json::json!({"topologies": []})).into_response()
                }
                _ => StatusCode::NOT_FOUND.into_response(),
            }
        }
        Role::Follower { leader, artifacts } => {
            if let Some(r) = artifact(artifacts) {
                return r;
            }
            let leader = leader.lock().unwrap().clone();
            if path == "/api/v1/leader" {
                let leader = leader.map(|url| serde_json::json!({"id": "l", "url": url}));
                return axum::Json(serde_json::json!({
                    "leader": leader, "self": {"id": "f", "url": fake.url},
                    "is_leader": false, "nimbuses": []
                }))
                .into_response();
            }
            let mut headers = HeaderMap::new();
            if let Some(l) = &leader {
                headers.insert(LEADER_HEADER, l.parse().unwrap());
            }
            let body = serde_json::json!({
                "error": format!("not the leader; the leader is {}", leader.clone().unwrap_or_default()),
                "leader": leader,
            });
            (StatusCode::SERVICE_UNAVAILABLE, headers, axum::Json(body)).into_response()
        }
    }
}

/// Starts a fake Nimbus on a free loopback port.
async fn start(role: Role) -> Arc<Fake> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let fake = Arc::new(Fake {
        role,
        url,
        seen: Mutex::new(Vec::new()),
    });
    let app = Router::new().fallback(handle).with_state(fake.clone());
    tokio::spawn(async move { axum::serve(listener, app).await });
    fake
}

/// A loopback URL nobody listens on.
fn dead_url() -> String {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    format!("http://{}", l.local_addr().unwrap())
}

fn follower_of(leader: Option<&str>) -> Role {
    Role::Follower {
        leader: Arc::new(Mutex::new(leader.map(str::to_string))),
        artifacts: Vec::new(),
    }
}

#[tokio::test]
async fn a_seed_list_finds_the_leader_past_a_dead_seed_and_a_follower() {
    let leader = start(Role::Leader { artifacts: vec![] }).await;
    let follower = start(follower_of(Some(&leader.url))).await;
    let seeds = format!("{},{},{}", dead_url(), follower.url, leader.url);
    let client = NimbusClient::new(&seeds, None).unwrap();
    assert_eq!(client.seeds().len(), 3);
    client
        .list()
        .await
        .expect("the leader answers through the seeds");
    assert_eq!(client.base().as_str(), format!("{}/", leader.url));
    // The follower was asked who leads, and was not sent the call itself.
    assert_eq!(follower.count("/api/v1/leader"), 1);
    assert_eq!(follower.count("/api/v1/topology/summary"), 0);
    // The leader is remembered: the next call goes straight there.
    client.list().await.unwrap();
    assert_eq!(follower.count("/api/v1/leader"), 1);
    assert_eq!(leader.count("/api/v1/topology/summary"), 2);
}

#[tokio::test]
async fn one_url_follows_a_followers_hint_at_once() {
    let leader = start(Role::Leader { artifacts: vec![] }).await;
    let follower = start(follower_of(Some(&leader.url))).await;
    // One URL (e.g. a load balancer that reached a follower): no retries, but the hint counts.
    let client = NimbusClient::new(&follower.url, None).unwrap();
    let started = Instant::now();
    client.list().await.expect("the hint is followed");
    assert!(started.elapsed() < Duration::from_secs(1));
    assert_eq!(follower.count("/api/v1/topology/summary"), 1);
    assert_eq!(
        follower.count("/api/v1/leader"),
        0,
        "one seed: no discovery"
    );
    assert_eq!(leader.count("/api/v1/topology/summary"), 1);
}

#[tokio::test]
async fn a_call_waits_out_an_election_until_its_deadline() {
    let leader = start(Role::Leader { artifacts: vec![] }).await;
    let slot = Arc::new(Mutex::new(None));
    let follower = start(Role::Follower {
        leader: slot.clone(),
        artifacts: vec![],
    })
    .await;
    let seeds = format!("{},{}", dead_url(), follower.url);
    // Nobody leads: the call gives up at its deadline, saying so.
    let client = NimbusClient::new(&seeds, None)
        .unwrap()
        .with_failover(Duration::from_millis(800));
    let started = Instant::now();
    let e = client.list().await.unwrap_err();
    let took = started.elapsed();
    assert!(matches!(e, ClientError::NoLeader { .. }), "{e}");
    assert!(e.to_string().contains("no leader yet"), "{e}");
    assert!(
        took >= Duration::from_millis(700) && took < Duration::from_secs(3),
        "{took:?}"
    );
    assert!(
        follower.count("/api/v1/leader") >= 3,
        "asked again with back-off"
    );

    // A leader is elected while a call waits: it goes through.
    let client = NimbusClient::new(&seeds, None)
        .unwrap()
        .with_failover(Duration::from_secs(10));
    let elect = {
        let (slot, url) = (slot.clone(), leader.url.clone());
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(500)).await;
            *slot.lock().unwrap() = Some(url);
        })
    };
    client
        .list()
        .await
        .expect("goes through once a leader is named");
    elect.await.unwrap();
    assert_eq!(leader.count("/api/v1/topology/summary"), 1);
}

#[tokio::test]
async fn one_url_is_tried_once_as_before_seed_lists() {
    let url = dead_url();
    let client = NimbusClient::new(&url, None).unwrap();
    let started = Instant::now();
    let e = client.list().await.unwrap_err();
    assert!(matches!(e, ClientError::Unreachable { .. }), "{e}");
    assert!(started.elapsed() < Duration::from_secs(1));
    // A follower with no leader to name: its 503 is the answer.
    let follower = start(follower_of(None)).await;
    let client = NimbusClient::new(&follower.url, None).unwrap();
    let e = client.list().await.unwrap_err();
    assert_eq!(e.status(), Some(503), "{e}");
    assert_eq!(follower.count("/api/v1/topology/summary"), 1);
}

/// A server that reads each request and closes the connection without answering; counts them.
async fn start_dropper() -> (String, Arc<AtomicUsize>) {
    use tokio::io::AsyncReadExt;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let count = Arc::new(AtomicUsize::new(0));
    let seen = count.clone();
    tokio::spawn(async move {
        while let Ok((mut conn, _)) = listener.accept().await {
            let seen = seen.clone();
            tokio::spawn(async move {
                let mut buf = vec![0u8; 64 * 1024];
                let mut got = Vec::new();
                while let Ok(n) = conn.read(&mut buf).await {
                    if n == 0 {
                        break;
                    }
                    got.extend_from_slice(&buf[..n]);
                    if got.windows(4).any(|w| w == b"\r\n\r\n") {
                        seen.fetch_add(1, Ordering::SeqCst);
                        break;
                    }
                }
                drop(conn);
            });
        }
    });
    (url, count)
}

#[tokio::test]
async fn a_lost_answer_is_retried_only_for_idempotent_calls() {
    let (url, count) = start_dropper().await;
    // One seed with a failover deadline: each request is read and then the connection drops,
    // so its answer is lost after it was sent.
    let client = NimbusClient::new(&url, None)
        .unwrap()
        .with_failover(Duration::from_millis(600));
    let request = tempest_protocol::control::SubmitRequest {
        name: "t".into(),
        spec: tempest_protocol::spec::TopologySpec {
            name: "t".into(),
            config: Default::default(),
            components: vec![],
        },
        artifact: "0".repeat(64),
        config: Default::default(),
    };
    let e = client.submit(&request).await.unwrap_err();
    assert!(
        e.to_string()
            .contains("may or may not have been carried out"),
        "{e}"
    );
    assert_eq!(count.load(Ordering::SeqCst), 1, "a submit is sent once");

    count.store(0, Ordering::SeqCst);
    let e = client.list().await.unwrap_err();
    assert!(matches!(e, ClientError::Unreachable { .. }), "{e}");
    assert!(
        count.load(Ordering::SeqCst) >= 2,
        "a read is sent again: {}",
        count.load(Ordering::SeqCst)
    );
}

#[tokio::test]
async fn an_artifact_comes_from_any_nimbus_that_has_it_leader_first() {
    use sha2::Digest;
    let body = b"#!/bin/sh\necho a topology\n".to_vec();
    let sha = hex::encode(sha2::Sha256::digest(&body));
    // The leader lacks it; a follower has it.
    let leader = start(Role::Leader { artifacts: vec![] }).await;
    let holder = start(Role::Follower {
        leader: Arc::new(Mutex::new(Some(leader.url.clone()))),
        artifacts: vec![(sha.clone(), body.clone())],
    })
    .await;
    let seeds = format!("{},{},{}", dead_url(), holder.url, leader.url);
    let client = NimbusClient::new(&seeds, None).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let dest = dir.path().join(&sha);
    client.download_artifact(&sha, &dest).await.unwrap();
    assert_eq!(std::fs::read(&dest).unwrap(), body);
    let path = format!("/api/v1/artifacts/{sha}");
    assert_eq!(leader.count(&path), 1, "the leader was asked first");
    assert_eq!(holder.count(&path), 1);

    // A holder that cannot be reached and one that lacks it: tried again until the deadline
    // (the first may come back), and the error says what each said.
    let lacking = start(follower_of(Some(&leader.url))).await;
    let client2 = NimbusClient::new(&format!("{},{}", dead_url(), lacking.url), None)
        .unwrap()
        .with_failover(Duration::from_millis(600));
    let started = Instant::now();
    let e = client2
        .download_artifact(&sha, &dir.path().join("y"))
        .await
        .unwrap_err();
    assert!(matches!(e, ClientError::Unreachable { .. }), "{e}");
    assert!(e.to_string().contains("HTTP 404"), "{e}");
    assert!(started.elapsed() >= Duration::from_millis(500));
    assert!(lacking.count(&path) >= 2, "asked again");

    // Every holder answers and none has it: a clear 404, not a wait for the deadline.
    let client = NimbusClient::new(&format!("{},{}", holder.url, leader.url), None).unwrap();
    let missing = "1".repeat(64);
    let started = Instant::now();
    let e = client
        .download_artifact(&missing, &dir.path().join("x"))
        .await
        .unwrap_err();
    assert_eq!(e.status(), Some(404), "{e}");
    assert!(e.to_string().contains("no Nimbus has it"), "{e}");
    assert!(started.elapsed() < Duration::from_secs(5));
}
