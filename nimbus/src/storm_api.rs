//! Handlers of the monitoring endpoints that follow Apache Storm's UI REST API
//! (`docs/design/rest-api.md`): the topology and component pages with their `window` and `sys`
//! parameters, `/metrics`, Storm's fields on action answers and Storm's rebalance body.

use crate::api::{Params, QueryParams};
use crate::cluster::Cluster;
use crate::error::ApiError;
use axum::extract::State;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Serialize;
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use topology_api::control::stats::{ComponentPage, Window};
use topology_api::control::{ActionResponse, RebalanceRequest, TopologyDetails};

type Shared = State<Arc<Cluster>>;

/// The `window` parameter (default all time); 400 naming a bad value.
fn window(query: &HashMap<String, String>) -> Result<Window, ApiError> {
    query
        .get("window")
        .map_or(Ok(Window::AllTime), |w| Window::parse(w))
        .map_err(ApiError::bad_request)
}

/// The `sys` parameter (default false); 400 naming a bad value.
fn sys(query: &HashMap<String, String>) -> Result<bool, ApiError> {
    match query.get("sys").map(String::as_str) {
        None | Some("0" | "false") => Ok(false),
        Some("1" | "true") => Ok(true),
        Some(other) => Err(ApiError::bad_request(format!(
            "sys {other:?} is not one of 0, 1, false, true"
        ))),
    }
}

/// `GET /api/v1/topology/{name}?window=&sys=`.
pub(crate) async fn topology(
    State(cluster): Shared,
    Params(name): Params<String>,
    QueryParams(query): QueryParams,
) -> Result<Json<TopologyDetails>, ApiError> {
    let (window, sys) = (window(&query)?, sys(&query)?);
    cluster.describe(&name, window, sys).await.map(Json)
}

/// `GET /api/v1/topology/{name}/component/{component}?window=`.
pub(crate) async fn component(
    State(cluster): Shared,
    Params((name, component)): Params<(String, String)>,
    QueryParams(query): QueryParams,
) -> Result<Json<ComponentPage>, ApiError> {
    let window = window(&query)?;
    sys(&query)?;
    cluster.component(&name, &component, window).await.map(Json)
}

/// `GET /metrics`.
pub(crate) async fn metrics(State(cluster): Shared) -> Result<Response, ApiError> {
    let text = cluster.prometheus_text().await?;
    Ok((
        [(header::CONTENT_TYPE, crate::prometheus::CONTENT_TYPE)],
        text,
    )
        .into_response())
}

/// An action's answer with Storm's fields added.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct StormAction {
    #[serde(flatten)]
    response: ActionResponse,
    topology_operation: &'static str,
    topology_id: String,
    status: &'static str,
}

impl StormAction {
    /// `operation` ("activate", "kill", ...) succeeded with `response`.
    pub(crate) fn new(operation: &'static str, response: ActionResponse) -> Json<Self> {
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
pub(crate) fn rebalance_request(body: &[u8]) -> Result<RebalanceRequest, ApiError> {
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
    fn bad_windows_and_sys_are_refused() {
        let q = |k: &str, v: &str| HashMap::from([(k.to_string(), v.to_string())]);
        assert_eq!(window(&HashMap::new()).unwrap(), Window::AllTime);
        assert_eq!(window(&q("window", "600")).unwrap(), Window::TenMinutes);
        assert!(window(&q("window", "601")).is_err());
        assert!(sys(&q("sys", "1")).unwrap());
        assert!(sys(&q("sys", "yes")).is_err());
    }
}
