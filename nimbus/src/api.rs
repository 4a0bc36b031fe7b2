//! The HTTP API (`docs/design/control-plane.md`, `docs/design/rest-api.md`): the router and the
//! control-plane handlers (the monitoring ones are in `storm_api` and `log_proxy`). Handlers
//! only decode requests and encode answers; the work is done by [`Cluster`]. Every error answer
//! is a JSON `ErrorBody`, including those for bad paths, queries, bodies and methods.

use crate::artifacts::Stored;
use crate::auth::require_secret;
use crate::cluster::{Cluster, ClusterSummary};
use crate::error::ApiError;
use crate::linger;
use crate::log_proxy;
use crate::storm_api::{self, StormAction};
use axum::body::Body;
use axum::extract::{FromRequest, FromRequestParts, Path, Query, Request, State};
use axum::http::{header, request::Parts, HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use axum::{middleware, Json, Router};
use futures::StreamExt;
use serde::de::DeserializeOwned;
use std::collections::HashMap;
use std::sync::Arc;
use topology_api::control::{
    ActionResponse, Assignment, SecretDigest, SubmitRequest, SupervisorAssignments,
    SupervisorHeartbeat, SupervisorList, TopologyList, WorkerDirective, WorkerHeartbeat,
};
use tower_http::trace::TraceLayer;

/// The largest JSON request body.
pub(crate) const MAX_JSON_BODY: usize = 16 << 20;

type Shared = State<Arc<Cluster>>;
type ApiResult<T> = Result<Json<T>, ApiError>;

/// The API router; with a secret, every route requires it.
pub(crate) fn router(cluster: Arc<Cluster>, secret: Option<SecretDigest>) -> Router {
    let routes = Router::new()
        .route(
            "/api/v1/artifacts/{sha256}",
            put(upload_artifact).get(download_artifact),
        )
        .route("/api/v1/topologies", post(submit))
        .route("/api/v1/topology/summary", get(list))
        .route("/api/v1/topology/{name}", get(storm_api::topology))
        .route(
            "/api/v1/topology/{name}/component/{component}",
            get(storm_api::component),
        )
        .route(
            "/api/v1/topology/{name}/worker-log/{host}/{port}",
            get(log_proxy::worker_log),
        )
        .route("/api/v1/topology/{name}/assignment", get(assignment))
        .route("/api/v1/topology/{name}/activate", post(activate))
        .route("/api/v1/topology/{name}/deactivate", post(deactivate))
        .route("/api/v1/topology/{name}/kill/{wait_secs}", post(kill))
        .route(
            "/api/v1/topology/{name}/rebalance/{wait_secs}",
            post(rebalance),
        )
        .route("/api/v1/supervisor/summary", get(supervisors))
        .route("/api/v1/cluster/summary", get(cluster_summary))
        .route("/api/v1/supervisor/heartbeat", post(supervisor_heartbeat))
        .route("/api/v1/worker/heartbeat", post(worker_heartbeat))
        .route("/metrics", get(storm_api::metrics))
        .fallback(no_such_endpoint)
        .method_not_allowed_fallback(method_not_allowed)
        .with_state(cluster);
    let routes = match secret {
        Some(s) => routes.layer(middleware::from_fn_with_state(Arc::new(s), require_secret)),
        None => routes,
    };
    let routes = routes.merge(crate::ui::routes());
    routes.layer(TraceLayer::new_for_http())
}

/// Path parameters, with a JSON error naming the problem when they do not decode.
pub(crate) struct Params<T>(pub(crate) T);

impl<S: Send + Sync, T: DeserializeOwned + Send> FromRequestParts<S> for Params<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        Path::<T>::from_request_parts(parts, state)
            .await
            .map(|Path(t)| Params(t))
            .map_err(|e| ApiError::bad_request(format!("bad path {}: {e}", parts.uri.path())))
    }
}

/// The query parameters, with a JSON error when they do not decode.
pub(crate) struct QueryParams(pub(crate) HashMap<String, String>);

impl<S: Send + Sync> FromRequestParts<S> for QueryParams {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, ApiError> {
        Query::<HashMap<String, String>>::try_from_uri(&parts.uri)
            .map(|Query(q)| QueryParams(q))
            .map_err(|e| ApiError::bad_request(format!("bad query in {}: {e}", parts.uri)))
    }
}

/// A request body of at most [`MAX_JSON_BODY`] bytes.
struct SmallBody(Vec<u8>);

impl<S: Send + Sync> FromRequest<S> for SmallBody {
    type Rejection = ApiError;

    async fn from_request(req: Request, _: &S) -> Result<Self, ApiError> {
        let too_large = || {
            ApiError::too_large(format!(
                "the request body is larger than the limit of {} MiB",
                MAX_JSON_BODY >> 20
            ))
        };
        let declared = req
            .headers()
            .get(header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u64>().ok());
        if declared.is_some_and(|n| n > MAX_JSON_BODY as u64) {
            linger::discard(req.into_body()).await;
            return Err(too_large());
        }
        let mut stream = req.into_body().into_data_stream();
        let mut bytes = Vec::new();
        while let Some(chunk) = stream.next().await {
            let chunk = chunk.map_err(|e| {
                ApiError::bad_request(format!("could not read the request body: {e}"))
            })?;
            if bytes.len() + chunk.len() > MAX_JSON_BODY {
                linger::discard(Body::from_stream(stream)).await;
                return Err(too_large());
            }
            bytes.extend_from_slice(&chunk);
        }
        Ok(SmallBody(bytes))
    }
}

/// Decodes a JSON body; `what` names it in the error.
fn decode<T: DeserializeOwned>(body: &[u8], what: &str) -> Result<T, ApiError> {
    serde_json::from_slice(body)
        .map_err(|e| ApiError::bad_request(format!("the body is not a valid {what}: {e}")))
}

/// A wait time from a path.
fn wait_secs(text: &str) -> Result<u64, ApiError> {
    text.parse().map_err(|_| {
        ApiError::bad_request(format!(
            "wait time {text:?} is not a whole number of seconds"
        ))
    })
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
    body: SmallBody,
) -> Result<(StatusCode, Json<ActionResponse>), ApiError> {
    let req: SubmitRequest = decode(&body.0, "submit request")?;
    let answer = cluster.submit(req).await?;
    Ok((StatusCode::CREATED, Json(answer)))
}

async fn list(State(cluster): Shared) -> Json<TopologyList> {
    Json(cluster.list().await)
}

async fn assignment(State(cluster): Shared, Params(name): Params<String>) -> ApiResult<Assignment> {
    cluster.assignment(&name).await.map(Json)
}

async fn activate(State(cluster): Shared, Params(name): Params<String>) -> ApiResult<StormAction> {
    let answer = cluster.set_active(&name, true).await?;
    Ok(StormAction::new("activate", answer))
}

async fn deactivate(
    State(cluster): Shared,
    Params(name): Params<String>,
) -> ApiResult<StormAction> {
    let answer = cluster.set_active(&name, false).await?;
    Ok(StormAction::new("deactivate", answer))
}

async fn kill(
    State(cluster): Shared,
    Params((name, wait)): Params<(String, String)>,
) -> ApiResult<StormAction> {
    let wait = wait_secs(&wait)?;
    let answer = cluster.kill(&name, wait).await?;
    Ok(StormAction::new("kill", answer))
}

async fn rebalance(
    State(cluster): Shared,
    Params((name, wait)): Params<(String, String)>,
    body: SmallBody,
) -> ApiResult<StormAction> {
    let wait = wait_secs(&wait)?;
    let req = storm_api::rebalance_request(&body.0)?;
    let answer = cluster.rebalance(&name, wait, req).await?;
    Ok(StormAction::new("rebalance", answer))
}

async fn supervisors(State(cluster): Shared) -> Json<SupervisorList> {
    Json(cluster.supervisors().await)
}

async fn cluster_summary(State(cluster): Shared) -> Json<ClusterSummary> {
    Json(cluster.cluster_summary().await)
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

async fn no_such_endpoint(method: Method, uri: Uri) -> ApiError {
    ApiError::not_found(format!("no endpoint {method} {}", uri.path()))
}

async fn method_not_allowed(method: Method, uri: Uri) -> ApiError {
    ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        format!("{} does not accept {method}", uri.path()),
    )
}
