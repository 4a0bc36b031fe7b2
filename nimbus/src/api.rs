//! The HTTP API (`docs/design/control-plane.md`, `docs/design/rest-api.md`): the router and the
//! control-plane handlers. The monitoring routes are tempest-monitor's [`http::routes`], answered
//! by [`Cluster`]'s `Monitor` impl. Handlers only decode requests and encode answers; the work is
//! done by [`Cluster`]. Every error answer is a JSON `ErrorBody`, including those for bad paths,
//! queries, bodies and methods. A follower (HA with etcd) serves only artifact downloads,
//! `GET /api/v1/leader` and `GET /health`, and answers everything else with the 503 of
//! [`Leadership::refusal`](crate::leadership::Leadership::refusal).

use crate::artifacts::Stored;
use crate::authz::{self, Principal, SubmittedName};
use crate::cluster::Cluster;
use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{header, HeaderMap, Method, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use axum::{Json, Router};
use std::sync::Arc;
use tempest_monitor::http::{self, decode, ApiError, Params, SmallBody};
use tempest_protocol::control::{
    Assignment, SubmitRequest, SupervisorAssignments, SupervisorHeartbeat, WorkerDirective,
    WorkerHeartbeat,
};
use tower_http::trace::TraceLayer;

type Shared = State<Arc<Cluster>>;
type ApiResult<T> = Result<Json<T>, ApiError>;

/// The API router; every route but `/health` and the UI's files goes through the
/// [`authz::require`] gate (credentials, roles, owners, the audit log).
pub(crate) fn router(cluster: Arc<Cluster>, gate: authz::Gate) -> Router {
    let control = Router::new()
        .route(
            "/api/v1/artifacts/{sha256}",
            put(upload_artifact).get(download_artifact),
        )
        .route("/api/v1/topologies", post(submit))
        .route("/api/v1/topology/{name}/assignment", get(assignment))
        .route("/api/v1/supervisor/heartbeat", post(supervisor_heartbeat))
        .route("/api/v1/worker/heartbeat", post(worker_heartbeat))
        .route("/api/v1/leader", get(leader))
        .with_state(cluster.clone());
    let routes = control
        .merge(http::routes(cluster.clone()))
        .fallback(http::no_such_endpoint)
        .method_not_allowed_fallback(http::method_not_allowed)
        .layer(middleware::from_fn_with_state(cluster.clone(), leader_gate));
    let routes = routes.layer(middleware::from_fn_with_state(gate, authz::require));
    let health = Router::new()
        .route("/health", get(health))
        .with_state(cluster);
    let routes = routes.merge(health).merge(tempest_monitor::ui_routes());
    routes
        .layer(axum::middleware::from_fn(
            tempest_monitor::storm::conventions,
        ))
        .layer(TraceLayer::new_for_http())
}

/// The read-only router of `ui_listen`: the monitoring API's GET routes, `/metrics` and the UI's
/// files, without the secret; any other method is a 405 saying where changes go.
pub(crate) fn read_only_router(cluster: Arc<Cluster>) -> Router {
    http::routes(cluster)
        .fallback(http::no_such_endpoint)
        .method_not_allowed_fallback(http::method_not_allowed)
        .merge(tempest_monitor::ui_routes())
        .layer(axum::middleware::from_fn(read_only))
        .layer(axum::middleware::from_fn(
            tempest_monitor::storm::conventions,
        ))
        .layer(TraceLayer::new_for_http())
}

/// Lets GET and HEAD through; refuses the rest.
async fn read_only(req: axum::extract::Request, next: axum::middleware::Next) -> Response {
    if matches!(
        *req.method(),
        axum::http::Method::GET | axum::http::Method::HEAD
    ) {
        return next.run(req).await;
    }
    ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        format!(
            "{} {}: this is Nimbus's read-only listener (ui_listen), which takes GET only; \
             send changes to its API address with the cluster secret",
            req.method(),
            req.uri().path()
        ),
    )
    .into_response()
}

/// What a follower serves: binaries, who leads, health.
fn followers_serve(method: &Method, path: &str) -> bool {
    (method == Method::GET || method == Method::HEAD)
        && (path.starts_with("/api/v1/artifacts/") || path == "/api/v1/leader")
}

/// Lets a request through only on the leader (but for what followers serve); a leader that
/// lost the lead while answering (a fenced write: 503) answers as a follower.
async fn leader_gate(State(cluster): Shared, req: Request, next: Next) -> Response {
    let leadership = &cluster.leadership;
    if followers_serve(req.method(), req.uri().path()) {
        return next.run(req).await;
    }
    if !leadership.is_leader() {
        return leadership.refusal();
    }
    let resp = next.run(req).await;
    if resp.status() == StatusCode::SERVICE_UNAVAILABLE {
        return leadership.refusal();
    }
    resp
}

async fn leader(State(cluster): Shared) -> Json<crate::leadership::LeaderAnswer> {
    Json(cluster.leadership.answer().await)
}

async fn health(State(cluster): Shared) -> Json<serde_json::Value> {
    let leadership = &cluster.leadership;
    Json(serde_json::json!({
        "status": "ok",
        "is_leader": leadership.is_leader(),
        "leader": leadership.leader().map(|l| l.url),
    }))
}

async fn upload_artifact(
    State(cluster): Shared,
    Params(sha): Params<String>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    let status = match cluster.artifacts.put(&sha, declared, body).await? {
        Stored::Created => StatusCode::CREATED,
        Stored::Existed => StatusCode::OK,
    };
    cluster.artifact_stored.notify_one();
    Ok((status, Json(serde_json::json!({ "sha256": sha }))).into_response())
}

async fn download_artifact(
    State(cluster): Shared,
    Params(sha): Params<String>,
) -> Result<Response, ApiError> {
    let (file, len) = cluster.artifacts.open_file(&sha).await?;
    let body = Body::from_stream(tokio_util::io::ReaderStream::new(file));
    Ok((
        [
            (header::CONTENT_TYPE, "application/octet-stream".to_string()),
            (header::CONTENT_LENGTH, len.to_string()),
        ],
        body,
    )
        .into_response())
}

async fn submit(
    State(cluster): Shared,
    axum::Extension(who): axum::Extension<Principal>,
    body: SmallBody,
) -> Result<Response, ApiError> {
    let req: SubmitRequest = decode(&body.0, "submit request")?;
    let name = SubmittedName(req.name.clone());
    let mut resp = match cluster.submit(req, &who.name).await {
        Ok(answer) => (StatusCode::CREATED, Json(answer)).into_response(),
        Err(e) => e.into_response(),
    };
    resp.extensions_mut().insert(name);
    Ok(resp)
}

async fn assignment(State(cluster): Shared, Params(name): Params<String>) -> ApiResult<Assignment> {
    cluster.assignment(&name).await.map(Json)
}

async fn supervisor_heartbeat(
    State(cluster): Shared,
    body: SmallBody,
) -> ApiResult<SupervisorAssignments> {
    let hb: SupervisorHeartbeat = decode(&body.0, "supervisor heartbeat")?;
    cluster.supervisor_heartbeat(hb).await.map(Json)
}

async fn worker_heartbeat(State(cluster): Shared, body: SmallBody) -> ApiResult<WorkerDirective> {
    let hb: WorkerHeartbeat = decode(&body.0, "worker heartbeat")?;
    cluster.worker_heartbeat(hb).await.map(Json)
}
