//! Storm's UI daemon conventions around the REST API (`docs/design/rest-api.md`, "Storm
//! compatibility"): CORS and preflight `OPTIONS`, JSONP (`?callback=`), the cache headers, and
//! the fields Storm's answers carry that Tempest's typed views do not (`encoded*` ids,
//! `stormVersion`, the resource fields of a cluster without resource accounting, the effective
//! topology configuration). Pure functions over JSON plus one middleware.

use axum::body::Body;
use axum::extract::Request;
use axum::http::{header, HeaderValue, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use serde_json::{json, Map, Value};
use tempest_protocol::config::KNOWN_KEYS;
use tempest_protocol::control::ErrorBody;

/// The Storm release whose UI REST API this one follows: `stormVersion` and the Nimbus
/// `version` carry it, so tools that parse X.Y.Z pick the 2.x code paths. Tempest's own
/// version is `tempestVersion`.
pub const STORM_API_VERSION: &str = "2.8.8";

/// Storm's `topology.eventlogger.executors`: Tempest has no event loggers, which Storm's UI
/// reads as "debug sampling unavailable".
const EVENTLOGGER_EXECUTORS: &str = "topology.eventlogger.executors";

/// Storm's default `samplingPct` when debugging was never enabled.
const DEFAULT_SAMPLING_PCT: f64 = 10.0;

/// The longest JSON answer JSONP wraps.
const MAX_JSONP_BODY: usize = 64 << 20;

/// The headers Storm puts on every preflight and JSON answer.
const ALLOW_HEADERS: &str =
    "X-Requested-With, X-Auth-Token, Content-Type, Content-Length, Authorization, x-tempest-secret";
const ALLOW_METHODS: &str = "GET, POST, PUT, OPTIONS";

/// The middleware: answers preflight `OPTIONS` for `/api` paths, and puts Storm's CORS and
/// cache headers on every `/api` answer, wrapped as JSONP when `?callback=` names a valid
/// JavaScript function (`400` naming it otherwise). Apply it outside the secret check, so a
/// preflight (which carries no credentials) is answered.
pub async fn conventions(req: Request, next: Next) -> Response {
    if !req.uri().path().starts_with("/api/") {
        return next.run(req).await;
    }
    if req.method() == Method::OPTIONS {
        let mut answer = StatusCode::OK.into_response();
        add_headers(&mut answer);
        return answer;
    }
    let callback = req.uri().query().and_then(|q| {
        form_urlencoded::parse(q.as_bytes())
            .find(|(k, _)| k == "callback")
            .map(|(_, v)| v.into_owned())
    });
    if let Some(cb) = &callback {
        if !valid_callback(cb) {
            let mut answer = (
                StatusCode::BAD_REQUEST,
                axum::Json(ErrorBody::new(format!(
                    "callback {cb:?} is not a JavaScript function name \
                     (letters, digits, _ and $, dotted, at most 128 characters)"
                ))),
            )
                .into_response();
            add_headers(&mut answer);
            return answer;
        }
    }
    let mut answer = next.run(req).await;
    if let Some(cb) = callback {
        answer = jsonp(answer, &cb).await;
    }
    add_headers(&mut answer);
    answer
}

fn add_headers(answer: &mut Response) {
    let h = answer.headers_mut();
    h.insert(
        header::ACCESS_CONTROL_ALLOW_ORIGIN,
        HeaderValue::from_static("*"),
    );
    h.insert(
        header::ACCESS_CONTROL_ALLOW_METHODS,
        HeaderValue::from_static(ALLOW_METHODS),
    );
    h.insert(
        header::ACCESS_CONTROL_ALLOW_HEADERS,
        HeaderValue::from_static(ALLOW_HEADERS),
    );
    h.entry(header::CACHE_CONTROL)
        .or_insert(HeaderValue::from_static("no-cache, no-store"));
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
}

/// Storm's rule for a JSONP callback: dotted JavaScript identifiers, at most 128 characters.
fn valid_callback(name: &str) -> bool {
    name.len() <= 128
        && name.split('.').all(|part| {
            let mut chars = part.chars();
            chars
                .next()
                .is_some_and(|c| c.is_ascii_alphabetic() || c == '_' || c == '$')
                && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '$')
        })
}

/// A JSON answer as `cb(json);` of type `application/javascript`; other answers unchanged.
async fn jsonp(answer: Response, callback: &str) -> Response {
    let is_json = answer
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"));
    if !is_json {
        return answer;
    }
    let (mut parts, body) = answer.into_parts();
    let bytes = match axum::body::to_bytes(body, MAX_JSONP_BODY).await {
        Ok(b) => b,
        Err(e) => {
            return ApiErrorText(format!("could not wrap the answer for JSONP: {e}"))
                .into_response()
        }
    };
    let mut wrapped = Vec::with_capacity(bytes.len() + callback.len() + 3);
    wrapped.extend_from_slice(callback.as_bytes());
    wrapped.push(b'(');
    wrapped.extend_from_slice(&bytes);
    wrapped.extend_from_slice(b");");
    parts.headers.remove(header::CONTENT_LENGTH);
    parts.headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/javascript"),
    );
    Response::from_parts(parts, Body::from(wrapped))
}

struct ApiErrorText(String);

impl IntoResponse for ApiErrorText {
    fn into_response(self) -> Response {
        (
            StatusCode::INTERNAL_SERVER_ERROR,
            axum::Json(ErrorBody::new(self.0)),
        )
            .into_response()
    }
}

/// An id as Storm's `encoded*` fields carry it: percent-encoded for a URL query or path.
pub fn encoded(id: &str) -> String {
    form_urlencoded::byte_serialize(id.as_bytes()).collect()
}

/// Storm's `sanitizeStreamName` as the visualization uses it: every character but letters,
/// `_`, `-`, `:` and `.` becomes `_`; a name not starting with a letter gets `_s` in front.
pub fn sanitized_stream(stream: &str) -> String {
    let keep = |c: char| c.is_ascii_alphabetic() || matches!(c, '_' | '-' | ':' | '.');
    let starts_with_letter = stream
        .chars()
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic());
    let prefix = if starts_with_letter { "" } else { "_s" };
    prefix
        .chars()
        .chain(stream.chars().map(|c| if keep(c) { c } else { '_' }))
        .collect()
}

fn insert(map: &mut Map<String, Value>, pairs: Value) {
    if let Value::Object(extra) = pairs {
        for (k, v) in extra {
            map.entry(k).or_insert(v);
        }
    }
}

fn object(v: &mut Value) -> &mut Map<String, Value> {
    if !v.is_object() {
        *v = Value::Object(Map::new());
    }
    v.as_object_mut().expect("an object")
}

/// The resource fields of a cluster that does no resource accounting (Storm's UI hides them
/// when `schedulerDisplayResource` is false).
fn no_resources(prefixes: &[&str], suffixes: &[&str]) -> Value {
    let mut m = Map::new();
    for p in prefixes {
        for s in suffixes {
            m.insert(format!("{p}{s}"), json!(0.0));
        }
    }
    Value::Object(m)
}

/// `/cluster/summary`: Storm's version fields and the resource fields.
pub fn cluster_summary(v: &mut Value) {
    let m = object(v);
    insert(
        m,
        json!({
            "stormVersion": STORM_API_VERSION,
            "stormVersionInfo": [{"version": STORM_API_VERSION, "revision": "", "branch": "",
                "date": "", "user": "", "url": "", "srcChecksum": ""}],
            "alternativeWorkerVersions": [],
            "user": null,
            "schedulerDisplayResource": false,
            "memAssignedPercentUtil": "0.0",
            "cpuAssignedPercentUtil": "0.0",
            "bugtracker-url": null,
            "central-log-url": null,
        }),
    );
    insert(
        m,
        no_resources(&["total", "avail", "fragmented"], &["Mem", "Cpu"]),
    );
}

/// `/supervisor/summary` and `/supervisor?id=`: `slotsFree`, `version`, the resource fields.
pub fn supervisors(v: &mut Value) {
    let m = object(v);
    if let Some(Value::Array(list)) = m.get_mut("supervisors") {
        for s in list {
            let total = s["slotsTotal"].as_u64().unwrap_or(0);
            let used = s["slotsUsed"].as_u64().unwrap_or(0);
            let row = object(s);
            insert(
                row,
                json!({
                    "slotsFree": total.saturating_sub(used),
                    "version": STORM_API_VERSION,
                    "blacklisted": false,
                }),
            );
            insert(
                row,
                no_resources(&["total", "used", "avail"], &["Mem", "Cpu"]),
            );
        }
    }
    insert(
        m,
        json!({"schedulerDisplayResource": false, "logviewerScheme": "http"}),
    );
}

/// One topology's summary row (`/topology/summary`) or top level (`/topology/{id}`).
fn topology_summary_fields(row: &mut Map<String, Value>) {
    let id = row
        .get("id")
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_string();
    insert(
        row,
        json!({
            "encodedId": encoded(&id),
            "owner": "",
            "replicationCount": 1,
            "topologyVersion": "",
            "stormVersion": STORM_API_VERSION,
        }),
    );
    insert(
        row,
        no_resources(
            &["requested", "assigned"],
            &["MemOnHeap", "MemOffHeap", "TotalMem", "Cpu"],
        ),
    );
}

/// `/topology/summary`.
pub fn topologies(v: &mut Value) {
    let m = object(v);
    if let Some(Value::Array(list)) = m.get_mut("topologies") {
        for t in list {
            topology_summary_fields(object(t));
        }
    }
    insert(m, json!({"schedulerDisplayResource": false}));
}

/// The effective configuration: what the topology set, over the default of every key Tempest
/// reads (those with a plain value), with Storm's `storm.id` and `topology.name`.
pub fn effective_configuration(name: &str, set: &Value) -> Value {
    let mut conf = defaults();
    conf.insert("storm.id".into(), json!(name));
    conf.insert("topology.name".into(), json!(name));
    conf.insert(EVENTLOGGER_EXECUTORS.into(), json!(0));
    if let Value::Object(set) = set {
        for (k, v) in set {
            conf.insert(k.clone(), v.clone());
        }
    }
    Value::Object(conf)
}

/// The defaults of the keys Tempest reads that have one plain value (a number, a boolean or
/// one word); keys whose default is "none" or depends on the mode are left out.
pub fn defaults() -> Map<String, Value> {
    let mut m = Map::new();
    for k in KNOWN_KEYS {
        let d = k.default;
        let value = match serde_json::from_str::<Value>(d) {
            Ok(v @ (Value::Number(_) | Value::Bool(_))) => Some(v),
            _ if d != "none" && !d.contains([' ', '`', '(']) => Some(json!(d)),
            _ => None,
        };
        if let Some(v) = value {
            m.insert(k.name.to_string(), v);
        }
    }
    m
}

/// `/topology/{id}` (and `/topology/{id}/metrics`): Storm's top-level fields, `encodedSpoutId`
/// and `encodedBoltId`, the workers' resource fields, the effective configuration.
pub fn topology(v: &mut Value) {
    let m = object(v);
    topology_summary_fields(m);
    let id = m
        .get("id")
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_string();
    let conf = effective_configuration(&id, m.get("configuration").unwrap_or(&Value::Null));
    m.insert("configuration".into(), conf);
    insert(
        m,
        json!({
            "user": null,
            "debug": false,
            "samplingPct": DEFAULT_SAMPLING_PCT,
            "visualizationTable": [],
            "schedulerDisplayResource": false,
            "bugtracker-url": null,
            "central-log-url": null,
        }),
    );
    for (list, key, enc) in [
        ("spouts", "spoutId", "encodedSpoutId"),
        ("bolts", "boltId", "encodedBoltId"),
    ] {
        if let Some(Value::Array(rows)) = m.get_mut(list) {
            for r in rows {
                let id = r[key].as_str().unwrap_or("").to_string();
                insert(object(r), json!({ enc: encoded(&id) }));
            }
        }
    }
    if let Some(Value::Array(rows)) = m.get_mut("workers") {
        for r in rows {
            let row = object(r);
            insert(row, json!({"owner": ""}));
            insert(
                row,
                no_resources(&["assigned"], &["MemOnHeap", "MemOffHeap", "Cpu"]),
            );
        }
    }
}

/// `/topology/{id}/component/{c}`: Storm's top-level fields, `executorStats[].encodedId`, and
/// `spoutSummary[].completeLatency` as a number (Storm sends a double there).
pub fn component(v: &mut Value) {
    let m = object(v);
    let id = m
        .get("id")
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_string();
    let topology = m
        .get("topologyId")
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_string();
    insert(
        m,
        json!({
            "encodedId": encoded(&id),
            "encodedTopologyId": encoded(&topology),
            "user": null,
            "debug": false,
            "samplingPct": DEFAULT_SAMPLING_PCT,
            "eventLogLink": "",
            "profilingAndDebuggingCapable": false,
            "profileActionEnabled": false,
            "profilerActive": [],
            "schedulerDisplayResource": false,
        }),
    );
    insert(
        m,
        no_resources(&["requested"], &["MemOnHeap", "MemOffHeap", "Cpu"]),
    );
    if let Some(Value::Array(rows)) = m.get_mut("executorStats") {
        for r in rows {
            let id = r["id"].as_str().unwrap_or("").to_string();
            insert(object(r), json!({"encodedId": encoded(&id)}));
        }
    }
    if let Some(Value::Array(rows)) = m.get_mut("spoutSummary") {
        for r in rows {
            let ms = r["completeLatency"]
                .as_str()
                .and_then(|s| s.parse::<f64>().ok());
            if let Some(ms) = ms {
                r["completeLatency"] = json!(ms);
            }
        }
    }
}

/// `/topology/{id}/visualization`: Storm's map of component to `:type`, `:capacity`,
/// `:latency`, `:transferred`, `:stats` (per worker), `:link` and `:inputs`, from a topology
/// answer (`graph.edges` gives the inputs). Per-stream `:transferred` counts are not kept, so
/// each worker's `:transferred` is `null`, as Storm sends for executors without stats.
pub fn visualization(topology: &Value) -> Value {
    let id = topology["id"].as_str().unwrap_or("");
    let edges = topology["graph"]["edges"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let workers = topology["workers"].as_array().cloned().unwrap_or_default();
    let mut out = Map::new();
    for (list, key, kind, latency) in [
        ("spouts", "spoutId", "spout", "completeLatency"),
        ("bolts", "boltId", "bolt", "processLatency"),
    ] {
        for row in topology[list].as_array().into_iter().flatten() {
            let c = row[key].as_str().unwrap_or("");
            let number = |k: &str| {
                row[k]
                    .as_str()
                    .and_then(|s| s.parse::<f64>().ok())
                    .unwrap_or(0.0)
            };
            let inputs: Vec<Value> = edges
                .iter()
                .filter(|e| e["to"] == c)
                .map(|e| {
                    let stream = e["stream"].as_str().unwrap_or("");
                    json!({
                        ":component": e["from"],
                        ":stream": stream,
                        ":sani-stream": sanitized_stream(stream),
                        ":grouping": e["grouping"],
                    })
                })
                .collect();
            let stats: Vec<Value> = workers
                .iter()
                .filter(|w| {
                    w["components"]
                        .as_array()
                        .is_some_and(|cs| cs.iter().any(|x| x == c))
                })
                .map(|w| {
                    json!({
                        ":host": w["host"],
                        ":port": w["port"],
                        ":uptime_secs": w["uptimeSeconds"],
                        ":transferred": null,
                    })
                })
                .collect();
            out.insert(
                c.to_string(),
                json!({
                    ":type": kind,
                    ":capacity": if kind == "bolt" { number("capacity") } else { 0.0 },
                    ":latency": number(latency),
                    ":transferred": row["transferred"],
                    ":stats": stats,
                    ":link": format!(
                        "/component.html?id={}&topology_id={}",
                        encoded(c),
                        encoded(id)
                    ),
                    ":inputs": inputs,
                }),
            );
        }
    }
    Value::Object(out)
}

/// `/topology/{id}/visualization-init`: the stream check boxes, one row of
/// `{stream, sani-stream, checked}` per consumed stream (acker streams unchecked).
pub fn visualization_init(topology: &Value) -> Value {
    let mut streams: Vec<String> = topology["graph"]["edges"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|e| e["stream"].as_str().map(str::to_string))
        .collect();
    streams.sort();
    streams.dedup();
    let boxes: Vec<Value> = streams
        .iter()
        .map(|s| {
            json!({
                "stream": s,
                "sani-stream": sanitized_stream(s),
                "checked": !s.starts_with("__ack"),
            })
        })
        .collect();
    json!({ "visualizationTable": [boxes] })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn callbacks_follow_storms_rule() {
        assert!(valid_callback("cb"));
        assert!(valid_callback("jQuery_1.$x2"));
        assert!(!valid_callback("1cb"));
        assert!(!valid_callback("alert(1)"));
        assert!(!valid_callback("a..b"));
        assert!(!valid_callback(&"a".repeat(129)));
    }

    #[test]
    fn stream_names_are_sanitized_as_storm_does() {
        assert_eq!(sanitized_stream("default"), "default");
        assert_eq!(sanitized_stream("__ack_ack"), "_s__ack_ack");
        assert_eq!(sanitized_stream("kafka_stream_25"), "kafka_stream___");
        assert_eq!(sanitized_stream("a b"), "a_b");
    }

    #[test]
    fn the_effective_configuration_has_the_defaults_and_what_was_set() {
        let conf = effective_configuration("wc", &json!({"topology.workers": 3}));
        assert_eq!(conf["topology.workers"], 3);
        assert_eq!(conf["topology.message.timeout.secs"], 30);
        assert_eq!(conf["storm.id"], "wc");
        assert_eq!(conf[EVENTLOGGER_EXECUTORS], 0);
    }

    #[test]
    fn encoded_ids_escape_what_a_url_needs() {
        assert_eq!(encoded("word count/1"), "word+count%2F1");
        assert_eq!(encoded("wc"), "wc");
    }
}
