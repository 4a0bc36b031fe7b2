//! `GET /api/v1/topology/{id}/worker-log/{host}/{port}`: a worker's log, fetched from the log
//! server of the supervisor that offers its slot (with the cluster secret) and streamed back,
//! so a browser needs to reach Nimbus only.

use axum::body::Body;
use axum::http::StatusCode;
use axum::response::Response;
use futures::StreamExt;
use std::time::Duration;
use tempest_monitor::http::ApiError;
use tempest_protocol::auth::SECRET_HEADER;

/// Answers longer than this are cut (a supervisor answers at most 1 MiB).
const MAX_PROXIED_BYTES: usize = 2 << 20;
/// How long a supervisor has to answer.
const FETCH_TIMEOUT: Duration = Duration::from_secs(20);
/// Headers of the supervisor's answer passed on.
const PASSED_HEADERS: [&str; 4] = [
    "content-type",
    "content-length",
    "x-log-file-size",
    "x-log-start",
];

/// The HTTP client that fetches logs from supervisors, and the secret it sends.
#[derive(Debug)]
pub(crate) struct LogProxy {
    http: reqwest::Client,
    secret: Option<String>,
}

impl LogProxy {
    /// A proxy sending `secret` to the supervisors.
    pub(crate) fn new(secret: Option<String>) -> Result<Self, String> {
        let http = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(5))
            .build()
            .map_err(|e| e.to_string())?;
        Ok(LogProxy { http, secret })
    }

    /// Fetches `file` from the log server at `base` with the given range parameters.
    pub(crate) async fn fetch(
        &self,
        base: &str,
        file: &str,
        range: &[(&str, String)],
    ) -> Result<Response, ApiError> {
        let bad_gateway = |what: String| ApiError::new(StatusCode::BAD_GATEWAY, what);
        let mut url = reqwest::Url::parse(base)
            .and_then(|u| u.join("api/v1/log"))
            .map_err(|e| bad_gateway(format!("the supervisor's log server URL {base:?}: {e}")))?;
        url.query_pairs_mut()
            .append_pair("file", file)
            .extend_pairs(range.iter().map(|(k, v)| (*k, v.as_str())));
        let mut rb = self.http.get(url).timeout(FETCH_TIMEOUT);
        if let Some(s) = &self.secret {
            rb = rb.header(SECRET_HEADER, s);
        }
        let resp = rb.send().await.map_err(|e| {
            bad_gateway(format!(
                "cannot reach the log server of the supervisor at {base}: {}",
                e.without_url()
            ))
        })?;
        let status = resp.status().as_u16();
        if status == 401 {
            return Err(bad_gateway(format!(
                "the supervisor at {base} refused Nimbus's cluster secret; give both the same one"
            )));
        }
        let mut answer = Response::builder()
            .status(StatusCode::from_u16(status).unwrap_or(StatusCode::BAD_GATEWAY));
        for name in PASSED_HEADERS {
            if let Some(v) = resp.headers().get(name) {
                answer = answer.header(name, v.as_bytes());
            }
        }
        let body = resp.bytes_stream().scan(0usize, |seen, chunk| {
            let next = match chunk {
                Ok(b) => {
                    *seen += b.len();
                    (*seen <= MAX_PROXIED_BYTES).then_some(Ok(b))
                }
                Err(e) => Some(Err(e)),
            };
            futures::future::ready(next)
        });
        answer
            .body(Body::from_stream(body))
            .map_err(|e| bad_gateway(format!("cannot pass the supervisor's answer on: {e}")))
    }
}
