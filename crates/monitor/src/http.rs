//! The monitoring REST API over any [`Monitor`] (`docs/design/rest-api.md`): Storm's UI paths
//! and field names, the `window` and `sys` parameters, Storm's fields on action answers and
//! Storm's rebalance body. Nimbus and local mode (`local --ui`) serve it with these routes.
//! Every error answer is a JSON [`ErrorBody`], including those for bad paths, queries, bodies
//! and methods.

use super::{storm, Monitor};
use axum::body::Body;
use axum::extract::{FromRequest, FromRequestParts, Path, Query, Request, State};
use axum::http::{header, request::Parts, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use futures::StreamExt;
use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_json::{json, Value};
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use tempest_protocol::control::stats::{pretty_duration, ComponentPage, Window};
use tempest_protocol::control::{
    ActionResponse, ClusterSummary, ErrorBody, RebalanceRequest, SpoutLag, SupervisorList,
    TopologyDetails, TopologyLag, TopologyList,
};
use tempest_server::linger;

/// The largest JSON request body.
pub const MAX_JSON_BODY: usize = 16 << 20;

/// An error answer: an HTTP status and a message naming what was wrong.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    /// The status.
    pub status: StatusCode,
    /// What was wrong.
    pub message: String,
}

impl ApiError {
    /// An answer of `status` saying `message`.
    pub fn new(status: StatusCode, message: impl Into<String>) -> Self {
        ApiError {
            status,
            message: message.into(),
        }
    }

    /// 400: the request is wrong.
    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, message)
    }

    /// 404: no such topology, component, artifact or endpoint.
    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, message)
    }

    /// 409: a duplicate name, or an action the topology's state does not allow.
    pub fn conflict(message: impl Into<String>) -> Self {
        Self::new(StatusCode::CONFLICT, message)
    }

    /// 413: a body above its limit.
    pub fn too_large(message: impl Into<String>) -> Self {
        Self::new(StatusCode::PAYLOAD_TOO_LARGE, message)
    }

    /// 500: the server failed (a store, a file).
    pub fn internal(message: impl Into<String>) -> Self {
        Self::new(StatusCode::INTERNAL_SERVER_ERROR, message)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        if self.status.is_server_error() {
            tracing::error!(status = self.status.as_u16(), "{}", self.message);
        } else {
            tracing::debug!(status = self.status.as_u16(), "{}", self.message);
        }
        (self.status, Json(ErrorBody::new(self.message))).into_response()
    }
}

/// Path parameters, with a JSON error naming the problem when they do not decode.
#[derive(Debug)]
pub struct Params<T>(pub T);

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
#[derive(Debug)]
pub struct QueryParams(pub HashMap<String, String>);

impl<S: Send + Sync> FromRequestParts<S> for QueryParams {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, ApiError> {
        Query::<HashMap<String, String>>::try_from_uri(&parts.uri)
            .map(|Query(q)| QueryParams(q))
            .map_err(|e| ApiError::bad_request(format!("bad query in {}: {e}", parts.uri)))
    }
}

/// A request body of at most [`MAX_JSON_BODY`] bytes.
#[derive(Debug)]
pub struct SmallBody(pub Vec<u8>);

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
pub fn decode<T: DeserializeOwned>(body: &[u8], what: &str) -> Result<T, ApiError> {
    serde_json::from_slice(body)
        .map_err(|e| ApiError::bad_request(format!("the body is not a valid {what}: {e}")))
}

/// The monitoring and action routes of the REST API, answered by `monitor`. Without fallbacks:
/// the server sets [`no_such_endpoint`] and [`method_not_allowed`] once on its whole router.
pub fn routes<M: Monitor>(monitor: Arc<M>) -> Router {
    Router::new()
        .route("/api/v1/cluster/summary", get(cluster_summary::<M>))
        .route(
            "/api/v1/cluster/configuration",
            get(cluster_configuration::<M>),
        )
        .route("/api/v1/nimbus/summary", get(nimbus_summary::<M>))
        .route("/api/v1/history/summary", get(history_summary::<M>))
        .route("/api/v1/supervisor/summary", get(supervisors::<M>))
        .route("/api/v1/supervisor", get(supervisor::<M>))
        .route("/api/v1/topology/summary", get(topologies::<M>))
        .route("/api/v1/topology/{name}", get(topology::<M>))
        .route("/api/v1/topology/{name}/metrics", get(topology::<M>))
        .route(
            "/api/v1/topology-workers/{name}",
            get(topology_workers::<M>),
        )
        .route(
            "/api/v1/topology/{name}/visualization",
            get(visualization::<M>),
        )
        .route(
            "/api/v1/topology/{name}/visualization-init",
            get(visualization_init::<M>),
        )
        .route(
            "/api/v1/topology/{name}/debug/{action}/{pct}",
            post(debug::<M>),
        )
        .route(
            "/api/v1/topology/{name}/component/{component}/debug/{action}/{pct}",
            post(component_debug::<M>),
        )
        .route(
            "/api/v1/topology/{name}/profiling/{action}/{worker}",
            get(profiling::<M>).post(profiling::<M>),
        )
        .route(
            "/api/v1/topology/{name}/profiling/start/{worker}/{minutes}",
            get(profiling_start::<M>).post(profiling_start::<M>),
        )
        .route(
            "/api/v1/topology/{name}/component/{component}",
            get(component::<M>),
        )
        .route("/api/v1/topology/{name}/lag", get(lag::<M>))
        .route(
            "/api/v1/topology/{name}/worker-log/{host}/{port}",
            get(worker_log::<M>),
        )
        .route("/api/v1/topology/{name}/activate", post(activate::<M>))
        .route("/api/v1/topology/{name}/deactivate", post(deactivate::<M>))
        .route("/api/v1/topology/{name}/kill/{wait_secs}", post(kill::<M>))
        .route(
            "/api/v1/topology/{name}/rebalance/{wait_secs}",
            post(rebalance::<M>),
        )
        .route("/metrics", get(metrics::<M>))
        .with_state(monitor)
}

/// The answer to a path no route takes: 404 naming it.
pub async fn no_such_endpoint(method: Method, uri: Uri) -> ApiError {
    ApiError::not_found(format!("no endpoint {method} {}", uri.path()))
}

/// The answer to a method a route does not take: 405 naming both.
pub async fn method_not_allowed(method: Method, uri: Uri) -> ApiError {
    ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        format!("{} does not accept {method}", uri.path()),
    )
}

type Shared<M> = State<Arc<M>>;
type ApiResult<T> = Result<Json<T>, ApiError>;

/// The `window` parameter (default all time), as Storm takes it: any value answers
/// ([`Window::storm`]).
fn window(query: &HashMap<String, String>) -> Result<Window, ApiError> {
    Ok(query
        .get("window")
        .map_or(Window::AllTime, |w| Window::storm(w)))
}

/// The `sys` parameter (default false), as Storm's Jersey parses a boolean: only `true`, in
/// any case, is true (so `sys=1` is false, as in Storm).
fn sys(query: &HashMap<String, String>) -> Result<bool, ApiError> {
    Ok(query
        .get("sys")
        .is_some_and(|v| v.eq_ignore_ascii_case("true")))
}

/// Serializes a typed answer so Storm's extra fields can be added.
fn to_json<T: Serialize>(answer: &T) -> Result<Value, ApiError> {
    serde_json::to_value(answer)
        .map_err(|e| ApiError::internal(format!("could not encode the answer: {e}")))
}

/// A wait time from a path.
fn wait_secs(text: &str) -> Result<u64, ApiError> {
    text.parse().map_err(|_| {
        ApiError::bad_request(format!(
            "wait time {text:?} is not a whole number of seconds"
        ))
    })
}

async fn cluster_summary<M: Monitor>(State(m): Shared<M>) -> ApiResult<Value> {
    let summary: ClusterSummary = m.cluster_summary().await;
    let mut v = to_json(&summary)?;
    storm::cluster_summary(&mut v);
    Ok(Json(v))
}

/// `GET /api/v1/cluster/configuration`.
async fn cluster_configuration<M: Monitor>(State(m): Shared<M>) -> Json<Value> {
    Json(Value::Object(m.cluster_configuration().await))
}

/// `GET /api/v1/nimbus/summary`: Storm's `{nimbuses: [...]}`.
async fn nimbus_summary<M: Monitor>(State(m): Shared<M>) -> Json<Value> {
    let nimbuses: Vec<Value> = m
        .nimbuses()
        .await
        .into_iter()
        .map(|n| {
            let (secs, pretty) = match n.uptime_secs {
                Some(s) => (json!(s), json!(pretty_duration(s))),
                None => (json!("Not applicable"), json!("Not applicable")),
            };
            json!({
                "host": n.host,
                "port": n.port,
                "status": n.role.as_storm(),
                "version": storm::STORM_API_VERSION,
                "nimbusUpTime": pretty,
                "nimbusUpTimeSeconds": secs,
                "nimbusLogLink": "",
            })
        })
        .collect();
    Json(json!({ "nimbuses": nimbuses }))
}

/// `GET /api/v1/history/summary`: Storm's `{"topo-history": [ids]}`. Tempest keeps no
/// history of dead topologies, so these are the live ones.
async fn history_summary<M: Monitor>(State(m): Shared<M>) -> Json<Value> {
    let ids: Vec<String> = m
        .topologies()
        .await
        .topologies
        .into_iter()
        .map(|t| t.id)
        .collect();
    Json(json!({ "topo-history": ids }))
}

async fn supervisors<M: Monitor>(State(m): Shared<M>) -> ApiResult<Value> {
    let list: SupervisorList = m.supervisors().await;
    let mut v = to_json(&list)?;
    storm::supervisors(&mut v);
    Ok(Json(v))
}

/// `GET /api/v1/supervisor?id=|host=`: the supervisors with that id or on that host, and the
/// workers they run (the `workers[]` rows of their topologies).
async fn supervisor<M: Monitor>(
    State(m): Shared<M>,
    QueryParams(query): QueryParams,
) -> ApiResult<Value> {
    let (id, host) = (query.get("id"), query.get("host"));
    if id.is_none() && host.is_none() {
        return Err(ApiError::bad_request(
            "GET /api/v1/supervisor needs ?id=SUPERVISOR or ?host=HOST",
        ));
    }
    let sys = sys(&query)?;
    let mut list: SupervisorList = m.supervisors().await;
    list.supervisors
        .retain(|s| id.is_some_and(|i| *i == s.id) || host.is_some_and(|h| *h == s.host));
    if list.supervisors.is_empty() {
        return Err(ApiError::not_found(match id {
            Some(i) => format!("no supervisor with id {i:?}"),
            None => format!(
                "no supervisor on host {:?}",
                host.cloned().unwrap_or_default()
            ),
        }));
    }
    let ids: Vec<String> = list.supervisors.iter().map(|s| s.id.clone()).collect();
    let mut workers = Vec::new();
    for t in m.topologies().await.topologies {
        let Ok(details) = m.topology(&t.id, Window::AllTime, sys).await else {
            continue;
        };
        let mut v = to_json(&details)?;
        storm::topology(&mut v);
        for w in v["workers"].as_array().into_iter().flatten() {
            if w["supervisorId"]
                .as_str()
                .is_some_and(|s| ids.iter().any(|i| i == s))
            {
                workers.push(w.clone());
            }
        }
    }
    let mut v = to_json(&list)?;
    storm::supervisors(&mut v);
    v["workers"] = Value::Array(workers);
    Ok(Json(v))
}

async fn topologies<M: Monitor>(State(m): Shared<M>) -> ApiResult<Value> {
    let list: TopologyList = m.topologies().await;
    let mut v = to_json(&list)?;
    storm::topologies(&mut v);
    Ok(Json(v))
}

/// A topology answer with Storm's fields.
async fn topology_json<M: Monitor>(
    m: &M,
    name: &str,
    query: &HashMap<String, String>,
) -> Result<Value, ApiError> {
    let (window, sys) = (window(query)?, sys(query)?);
    let details: TopologyDetails = m.topology(name, window, sys).await?;
    let mut v = to_json(&details)?;
    storm::topology(&mut v);
    Ok(v)
}

/// `GET /api/v1/topology/{name}?window=&sys=`, and `.../metrics` (Storm 2.x answers the same).
async fn topology<M: Monitor>(
    State(m): Shared<M>,
    Params(name): Params<String>,
    QueryParams(query): QueryParams,
) -> ApiResult<Value> {
    topology_json(&*m, &name, &query).await.map(Json)
}

/// `GET /api/v1/topology-workers/{name}`: where its workers run.
async fn topology_workers<M: Monitor>(
    State(m): Shared<M>,
    Params(name): Params<String>,
) -> ApiResult<Value> {
    let details = m.topology(&name, Window::AllTime, false).await?;
    let hosts: Vec<Value> = details
        .view
        .workers
        .iter()
        .map(|w| json!({"host": w.host, "port": w.port}))
        .collect();
    let supervisors = m.supervisors().await.supervisors;
    let logviewer_port = supervisors
        .iter()
        .filter_map(|s| s.http.as_deref())
        .filter_map(|u| {
            u.rsplit(':')
                .next()?
                .trim_end_matches('/')
                .parse::<u16>()
                .ok()
        })
        .next();
    Ok(Json(json!({
        "hostPortList": hosts,
        "logviewerPort": logviewer_port,
        "logviewerScheme": "http",
    })))
}

/// `GET /api/v1/topology/{name}/visualization?window=&sys=`.
async fn visualization<M: Monitor>(
    State(m): Shared<M>,
    Params(name): Params<String>,
    QueryParams(query): QueryParams,
) -> ApiResult<Value> {
    let v = topology_json(&*m, &name, &query).await?;
    Ok(Json(storm::visualization(&v)))
}

/// `GET /api/v1/topology/{name}/visualization-init`.
async fn visualization_init<M: Monitor>(
    State(m): Shared<M>,
    Params(name): Params<String>,
    QueryParams(query): QueryParams,
) -> ApiResult<Value> {
    let v = topology_json(&*m, &name, &query).await?;
    Ok(Json(storm::visualization_init(&v)))
}

/// The answer to Storm's event-logger debug sampling: Tempest has no event loggers, so a
/// 400 saying so (after checking the topology exists).
async fn debug_unsupported<M: Monitor>(m: &M, name: &str, what: &str) -> ApiError {
    if let Err(e) = m.topology(name, Window::AllTime, false).await {
        return e;
    }
    ApiError::bad_request(format!(
        "debug sampling ({what}) is not supported: Tempest has no event loggers \
         (topology.eventlogger.executors is 0); topology.debug logs every emitted tuple"
    ))
}

/// `POST /api/v1/topology/{name}/debug/{enable|disable}/{pct}`.
async fn debug<M: Monitor>(
    State(m): Shared<M>,
    Params((name, action, _pct)): Params<(String, String, String)>,
) -> ApiError {
    debug_unsupported(&*m, &name, &format!("debug/{action}")).await
}

/// `POST /api/v1/topology/{name}/component/{c}/debug/{enable|disable}/{pct}`.
async fn component_debug<M: Monitor>(
    State(m): Shared<M>,
    Params((name, component, action, _pct)): Params<(String, String, String, String)>,
) -> ApiError {
    debug_unsupported(&*m, &name, &format!("{component}: debug/{action}")).await
}

/// `/api/v1/topology/{name}/profiling/{action}/{host:port}`: JVM profiling does not apply to
/// Rust workers.
async fn profiling<M: Monitor>(
    State(m): Shared<M>,
    Params((name, action, worker)): Params<(String, String, String)>,
) -> ApiError {
    if let Err(e) = m.topology(&name, Window::AllTime, false).await {
        return e;
    }
    ApiError::bad_request(format!(
        "profiling/{action} of {worker} is not supported: Tempest workers are not JVMs"
    ))
}

/// `/api/v1/topology/{name}/profiling/start/{host:port}/{minutes}`.
async fn profiling_start<M: Monitor>(
    State(m): Shared<M>,
    Params((name, worker, _minutes)): Params<(String, String, String)>,
) -> ApiError {
    if let Err(e) = m.topology(&name, Window::AllTime, false).await {
        return e;
    }
    ApiError::bad_request(format!(
        "profiling/start of {worker} is not supported: Tempest workers are not JVMs"
    ))
}

/// `GET /api/v1/topology/{name}/lag`: each Kafka spout's committed offset and log end per
/// partition, from its tasks' latest reports.
async fn lag<M: Monitor>(
    State(m): Shared<M>,
    Params(name): Params<String>,
) -> ApiResult<TopologyLag> {
    let details = m.topology(&name, Window::AllTime, false).await?;
    Ok(Json(SpoutLag::of_tasks(&details.tasks)))
}

/// `GET /api/v1/topology/{name}/component/{component}?window=`.
async fn component<M: Monitor>(
    State(m): Shared<M>,
    Params((name, component)): Params<(String, String)>,
    QueryParams(query): QueryParams,
) -> ApiResult<Value> {
    let window = window(&query)?;
    let page: ComponentPage = m.component(&name, &component, window).await?;
    let mut v = to_json(&page)?;
    storm::component(&mut v);
    Ok(Json(v))
}

/// `GET /api/v1/topology/{name}/worker-log/{host}/{port}?start=&length=`.
async fn worker_log<M: Monitor>(
    State(m): Shared<M>,
    Params((name, host, port)): Params<(String, String, String)>,
    QueryParams(query): QueryParams,
) -> Result<Response, ApiError> {
    let port: u16 = port
        .parse()
        .map_err(|_| ApiError::bad_request(format!("port {port:?} is not a port number")))?;
    let range: Vec<(&str, String)> = ["start", "length"]
        .into_iter()
        .filter_map(|k| query.get(k).map(|v| (k, v.clone())))
        .collect();
    m.worker_log(&name, &host, port, &range).await
}

async fn activate<M: Monitor>(
    State(m): Shared<M>,
    Params(name): Params<String>,
) -> ApiResult<StormAction> {
    let answer = m.set_active(&name, true).await?;
    Ok(StormAction::new("activate", answer))
}

async fn deactivate<M: Monitor>(
    State(m): Shared<M>,
    Params(name): Params<String>,
) -> ApiResult<StormAction> {
    let answer = m.set_active(&name, false).await?;
    Ok(StormAction::new("deactivate", answer))
}

async fn kill<M: Monitor>(
    State(m): Shared<M>,
    Params((name, wait)): Params<(String, String)>,
) -> ApiResult<StormAction> {
    let wait = wait_secs(&wait)?;
    let answer = m.kill(&name, wait).await?;
    Ok(StormAction::new("kill", answer))
}

async fn rebalance<M: Monitor>(
    State(m): Shared<M>,
    Params((name, wait)): Params<(String, String)>,
    body: SmallBody,
) -> ApiResult<StormAction> {
    let wait = wait_secs(&wait)?;
    let req = rebalance_request(&body.0)?;
    let answer = m.rebalance(&name, wait, req).await?;
    Ok(StormAction::new("rebalance", answer))
}

/// `GET /metrics`.
async fn metrics<M: Monitor>(State(m): Shared<M>) -> Result<Response, ApiError> {
    let text = m.prometheus_text().await?;
    Ok((
        [(header::CONTENT_TYPE, super::prometheus::CONTENT_TYPE)],
        text,
    )
        .into_response())
}

/// An action's answer with Storm's fields added.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct StormAction {
    #[serde(flatten)]
    response: ActionResponse,
    topology_operation: &'static str,
    topology_id: String,
    status: &'static str,
}

impl StormAction {
    /// `operation` ("activate", "kill", ...) succeeded with `response`.
    fn new(operation: &'static str, response: ActionResponse) -> Json<Self> {
        Json(StormAction {
            topology_id: response.name.clone(),
            response,
            topology_operation: operation,
            status: "success",
        })
    }
}

/// A rebalance body: ours (`{"workers", "parallelism"}`), Storm's
/// (`{"rebalanceOptions": {"numWorkers", "executors"}}`, numbers or numeric strings), or
/// nothing.
fn rebalance_request(body: &[u8]) -> Result<RebalanceRequest, ApiError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(RebalanceRequest::default());
    }
    let bad = |e: String| {
        ApiError::bad_request(format!("the body is not a valid rebalance request: {e}"))
    };
    let value: serde_json::Value = serde_json::from_slice(body).map_err(|e| bad(e.to_string()))?;
    let Some(storm) = value.get("rebalanceOptions") else {
        return serde_json::from_value(value).map_err(|e| bad(e.to_string()));
    };
    let number = |v: &serde_json::Value, what: &str| -> Result<u32, ApiError> {
        v.as_u64()
            .or_else(|| v.as_str().and_then(|s| s.trim().parse().ok()))
            .and_then(|n| u32::try_from(n).ok())
            .ok_or_else(|| bad(format!("{what} is {v}, not a whole number")))
    };
    let workers = match storm.get("numWorkers") {
        Some(v) => Some(number(v, "numWorkers")?),
        None => None,
    };
    let mut parallelism = BTreeMap::new();
    if let Some(executors) = storm.get("executors") {
        let map = executors
            .as_object()
            .ok_or_else(|| bad(format!("executors is {executors}, not an object")))?;
        for (component, n) in map {
            parallelism.insert(
                component.clone(),
                number(n, &format!("executors of {component:?}"))?,
            );
        }
    }
    Ok(RebalanceRequest {
        workers,
        parallelism,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rebalance_bodies_of_both_forms() {
        let ours = rebalance_request(br#"{"workers": 3, "parallelism": {"split": 4}}"#).unwrap();
        assert_eq!(ours.workers, Some(3));
        assert_eq!(ours.parallelism["split"], 4);
        let storm = rebalance_request(
            br#"{"rebalanceOptions": {"numWorkers": 2, "executors": {"spout": "5", "count": 7}}, "callback": "foo"}"#,
        )
        .unwrap();
        assert_eq!(storm.workers, Some(2));
        assert_eq!(storm.parallelism["spout"], 5);
        assert_eq!(storm.parallelism["count"], 7);
        assert!(rebalance_request(b" ").unwrap().workers.is_none());
        let e = rebalance_request(br#"{"rebalanceOptions": {"numWorkers": "x"}}"#).unwrap_err();
        assert!(format!("{e:?}").contains("numWorkers"), "{e:?}");
        assert!(rebalance_request(b"{").is_err());
    }

    #[test]
    fn windows_and_sys_are_parsed_as_storm_does() {
        let q = |k: &str, v: &str| HashMap::from([(k.to_string(), v.to_string())]);
        assert_eq!(window(&HashMap::new()).unwrap(), Window::AllTime);
        assert_eq!(window(&q("window", "600")).unwrap(), Window::TenMinutes);
        assert_eq!(window(&q("window", "601")).unwrap(), Window::Secs(601));
        assert_eq!(window(&q("window", "foo")).unwrap(), Window::Secs(0));
        assert!(sys(&q("sys", "TRUE")).unwrap());
        assert!(!sys(&q("sys", "1")).unwrap());
        assert!(!sys(&q("sys", "yes")).unwrap());
    }
}
