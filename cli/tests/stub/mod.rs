//! A stand-in Nimbus for the CLI's tests: an axum server on a free loopback port that answers
//! the endpoints the CLI calls (as the contract says) and records what it was sent.

#![allow(dead_code)] // each test file uses part of it

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use axum::{Json, Router};
use sha2::{Digest, Sha256};
use std::path::PathBuf;
use std::process::Output;
use std::sync::{Arc, Mutex};
use tempest_protocol::auth::SECRET_HEADER;
use tempest_protocol::control::{
    ActionResponse, RebalanceRequest, SubmitRequest, TopologyList, TopologyState, TopologySummary,
};

/// What the stub was sent.
#[derive(Debug, Default)]
pub(crate) struct Recorded {
    /// sha256 of each uploaded artifact, as computed from its content.
    pub uploads: Vec<String>,
    /// Each submission.
    pub submissions: Vec<SubmitRequest>,
    /// Each action: "kill wc 5", "rebalance wc 10".
    pub actions: Vec<String>,
    /// Each rebalance body.
    pub rebalances: Vec<RebalanceRequest>,
}

#[derive(Clone)]
struct Stub {
    secret: Option<String>,
    recorded: Arc<Mutex<Recorded>>,
}

/// A running stub Nimbus.
pub(crate) struct StubNimbus {
    /// Its base URL.
    pub url: String,
    /// What it was sent.
    pub recorded: Arc<Mutex<Recorded>>,
}

fn error(status: StatusCode, message: &str) -> Response {
    (status, Json(serde_json::json!({ "error": message }))).into_response()
}

impl Stub {
    /// The 401 answer if the request lacks the secret.
    fn refusal(&self, headers: &HeaderMap) -> Option<Response> {
        match &self.secret {
            Some(s) if headers.get(SECRET_HEADER).and_then(|v| v.to_str().ok()) != Some(s) => Some(
                error(StatusCode::UNAUTHORIZED, "missing or wrong cluster secret"),
            ),
            _ => None,
        }
    }
}

/// Starts a stub that knows one topology, "wc", and requires `secret` if given.
pub(crate) async fn start(secret: Option<&str>) -> StubNimbus {
    let stub = Stub {
        secret: secret.map(str::to_string),
        recorded: Arc::default(),
    };
    let recorded = stub.recorded.clone();
    let app = Router::new()
        .route("/api/v1/topology/summary", get(list))
        .route("/api/v1/topology/{name}", get(describe))
        .route("/api/v1/artifacts/{sha}", put(upload))
        .route("/api/v1/topologies", post(submit))
        .route("/api/v1/topology/{name}/kill/{wait}", post(kill))
        .route("/api/v1/topology/{name}/rebalance/{wait}", post(rebalance))
        .with_state(stub);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind a loopback port");
    let url = format!("http://{}", listener.local_addr().expect("local addr"));
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    StubNimbus { url, recorded }
}

async fn list(State(s): State<Stub>, headers: HeaderMap) -> Response {
    if let Some(r) = s.refusal(&headers) {
        return r;
    }
    Json(TopologyList {
        topologies: vec![TopologySummary {
            id: "wc".into(),
            name: "wc".into(),
            status: TopologyState::Active,
            uptime_seconds: 192,
            uptime: "3m 12s".into(),
            workers_total: 2,
            executors_total: 7,
            tasks_total: 9,
            requested_workers: 2,
            scheduler_info: String::new(),
        }],
    })
    .into_response()
}

async fn describe(State(s): State<Stub>, headers: HeaderMap, Path(name): Path<String>) -> Response {
    if let Some(r) = s.refusal(&headers) {
        return r;
    }
    error(
        StatusCode::NOT_FOUND,
        &format!("no topology named {name:?}"),
    )
}

async fn upload(
    State(s): State<Stub>,
    headers: HeaderMap,
    Path(sha): Path<String>,
    body: Bytes,
) -> Response {
    if let Some(r) = s.refusal(&headers) {
        return r;
    }
    let actual = hex::encode(Sha256::digest(&body));
    if actual != sha {
        return error(
            StatusCode::BAD_REQUEST,
            &format!("content has sha256 {actual}, not {sha}"),
        );
    }
    s.recorded.lock().unwrap().uploads.push(actual.clone());
    (
        StatusCode::CREATED,
        Json(serde_json::json!({ "sha256": actual })),
    )
        .into_response()
}

async fn submit(State(s): State<Stub>, headers: HeaderMap, body: Bytes) -> Response {
    if let Some(r) = s.refusal(&headers) {
        return r;
    }
    let req: SubmitRequest = match serde_json::from_slice(&body) {
        Ok(r) => r,
        Err(e) => return error(StatusCode::BAD_REQUEST, &e.to_string()),
    };
    let name = req.name.clone();
    s.recorded.lock().unwrap().submissions.push(req);
    (
        StatusCode::CREATED,
        Json(ActionResponse {
            name,
            state: TopologyState::Pending,
            message: "waiting for slots: needs 2 workers, 1 free slot".into(),
        }),
    )
        .into_response()
}

async fn kill(
    State(s): State<Stub>,
    headers: HeaderMap,
    Path((name, wait)): Path<(String, u64)>,
) -> Response {
    if let Some(r) = s.refusal(&headers) {
        return r;
    }
    s.recorded
        .lock()
        .unwrap()
        .actions
        .push(format!("kill {name} {wait}"));
    Json(ActionResponse {
        name,
        state: TopologyState::Killed,
        message: format!("workers stop in {wait}s"),
    })
    .into_response()
}

async fn rebalance(
    State(s): State<Stub>,
    headers: HeaderMap,
    Path((name, wait)): Path<(String, u64)>,
    Json(req): Json<RebalanceRequest>,
) -> Response {
    if let Some(r) = s.refusal(&headers) {
        return r;
    }
    let mut rec = s.recorded.lock().unwrap();
    rec.actions.push(format!("rebalance {name} {wait}"));
    rec.rebalances.push(req);
    Json(ActionResponse {
        name,
        state: TopologyState::Rebalancing,
        message: String::new(),
    })
    .into_response()
}

/// A fresh, empty directory for one test (the CLI runs in it, so no stray ./tempest.toml).
pub(crate) fn scratch_dir(test: &str) -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
        .join("cli-tests")
        .join(format!("{test}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("create a scratch dir");
    dir
}

/// Runs the built `tempest` in `dir` with `args`, with no Nimbus or secret in its environment
/// except those in `env`.
pub(crate) async fn tempest(dir: &std::path::Path, args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut cmd = tokio::process::Command::new(env!("CARGO_BIN_EXE_tempest"));
    cmd.args(args)
        .current_dir(dir)
        .env_remove("TEMPEST_NIMBUS")
        .env_remove("TEMPEST_SECRET")
        .env_remove("RUST_LOG");
    for (k, v) in env {
        cmd.env(k, v);
    }
    let run = cmd.output();
    tokio::time::timeout(std::time::Duration::from_secs(60), run)
        .await
        .expect("tempest finishes within 60 s")
        .expect("tempest runs")
}

/// stdout and stderr as text.
pub(crate) fn texts(out: &Output) -> (String, String) {
    (
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}
