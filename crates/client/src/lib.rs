//! # tempest-client: the one HTTP client for Nimbus's API
//!
//! Used by the `tempest` CLI, supervisors, workers and the topology binary's `submit`. Every
//! call carries the cluster secret; every failure is a [`ClientError`] that says what went wrong
//! and where. [`submit`] is the one way a topology is submitted, from the CLI or from the
//! binary itself.
//!
//! A client takes a seed list: one Nimbus URL, or several (`"http://a:6627,http://b:6627"`).
//! With several it finds the leader and follows it through a failover ([`leader`]).

pub mod leader;
pub mod submit;

pub use leader::{DEFAULT_FAILOVER, LEADER_HEADER};
pub use submit::{submit_overrides, Submission, SubmitError, Submitted};

use leader::{Safety, Seeds};

use futures::TryStreamExt;
use reqwest::{Method, StatusCode, Url};
use serde::de::DeserializeOwned;
use serde::Serialize;
use sha2::{Digest, Sha256};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;
use tempest_protocol::auth::*;
use tempest_protocol::control::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// Why a call to Nimbus failed.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The URL is not usable.
    #[error("bad Nimbus URL {url:?}: {reason}")]
    BadUrl {
        /// The URL given.
        url: String,
        /// Why it is bad.
        reason: String,
    },
    /// No connection (Nimbus down, wrong address) or the request timed out.
    #[error("cannot reach Nimbus at {url}: {reason}")]
    Unreachable {
        /// The URL called.
        url: String,
        /// The transport error.
        reason: String,
    },
    /// No Nimbus of the seed list leads (an election is under way, or they are all down).
    #[error("no Nimbus leader among {seeds}: {detail}")]
    NoLeader {
        /// The seed list.
        seeds: String,
        /// What each seed said.
        detail: String,
    },
    /// Nimbus answered with an error status.
    #[error("Nimbus refused {what}: {message} (HTTP {status})")]
    Api {
        /// What was asked.
        what: String,
        /// The HTTP status.
        status: u16,
        /// Nimbus's explanation.
        message: String,
    },
    /// A local file could not be read or written.
    #[error("{path}: {reason}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The error.
        reason: String,
    },
    /// A downloaded artifact's content does not match its sha256.
    #[error("artifact {expected} downloaded with sha256 {actual}; refusing it")]
    HashMismatch {
        /// The hash asked for.
        expected: String,
        /// The hash of what arrived.
        actual: String,
    },
}

impl ClientError {
    /// The error of an answer with `status` and body `text` (`{"error": ...}` if JSON).
    pub(crate) fn api(what: &str, status: StatusCode, text: String) -> Self {
        let message = serde_json::from_str::<ErrorBody>(&text)
            .map(|b| b.error)
            .unwrap_or_else(|_| {
                if text.is_empty() {
                    status.canonical_reason().unwrap_or("error").to_string()
                } else {
                    text
                }
            });
        ClientError::Api {
            what: what.to_string(),
            status: status.as_u16(),
            message,
        }
    }

    /// The HTTP status Nimbus answered with, if it answered.
    pub fn status(&self) -> Option<u16> {
        match self {
            ClientError::Api { status, .. } => Some(*status),
            _ => None,
        }
    }
}

/// A piece of a worker's log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WorkerLog {
    /// The file's size when it was read.
    pub file_size: u64,
    /// The offset of the first byte of `bytes`.
    pub start: u64,
    /// The bytes.
    pub bytes: Vec<u8>,
}

/// A client for Nimbus: one, or the leader of several (a seed list). Clones share the leader
/// they found.
#[derive(Debug, Clone)]
pub struct NimbusClient {
    seeds: Arc<Seeds>,
    secret: Option<String>,
    http: reqwest::Client,
}

/// The sha256 of a file, in hex.
pub async fn sha256_file(path: &Path) -> Result<String, ClientError> {
    let io = |e: std::io::Error| ClientError::Io {
        path: path.to_path_buf(),
        reason: e.to_string(),
    };
    let mut f = tokio::fs::File::open(path).await.map_err(io)?;
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 1 << 16];
    loop {
        let n = f.read(&mut buf).await.map_err(io)?;
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
    }
    Ok(hex::encode(h.finalize()))
}

impl NimbusClient {
    /// A client for the Nimbus at `seeds` (e.g. `http://127.0.0.1:6627`, or several URLs
    /// separated by commas: `http://a:6627,http://b:6627`), sending `secret`. With several, a
    /// call keeps trying through a failover for [`DEFAULT_FAILOVER`]
    /// ([`NimbusClient::with_failover`]); with one, it is tried once, as before seed lists.
    pub fn new(seeds: &str, secret: Option<String>) -> Result<Self, ClientError> {
        let seeds = Seeds::parse(seeds)?;
        let http = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(5))
            .build()
            .map_err(|e| ClientError::BadUrl {
                url: seeds.list(),
                reason: e.to_string(),
            })?;
        Ok(NimbusClient {
            seeds: Arc::new(seeds),
            secret: secret.filter(|s| !s.is_empty()),
            http,
        })
    }

    /// The same client, whose calls keep trying through a failover for `deadline` (zero: each
    /// call is tried once, a follower's hint aside).
    pub fn with_failover(self, deadline: Duration) -> Self {
        let mut seeds = Seeds::parse(&self.seeds.list()).expect("the seeds parsed before");
        seeds.failover = deadline;
        NimbusClient {
            seeds: Arc::new(seeds),
            ..self
        }
    }

    /// Where calls go now: the leader last found, else the first seed.
    pub fn base(&self) -> Url {
        self.seeds
            .known_leader()
            .unwrap_or_else(|| self.seeds.urls[0].clone())
    }

    /// The seed list, in order.
    pub fn seeds(&self) -> &[Url] {
        &self.seeds.urls
    }

    fn request(&self, method: Method, url: Url, timeout: Duration) -> reqwest::RequestBuilder {
        let rb = self.http.request(method, url).timeout(timeout);
        match &self.secret {
            Some(s) => rb.header(SECRET_HEADER, s),
            None => rb,
        }
    }

    /// Sends a request built by `build` (from the base URL) to the leader, following it through
    /// a failover as `safety` allows; an error status is an error.
    async fn exchange<F>(
        &self,
        what: &str,
        safety: Safety,
        build: F,
    ) -> Result<reqwest::Response, ClientError>
    where
        F: Fn(&Url) -> Result<reqwest::RequestBuilder, ClientError>,
    {
        self.seeds
            .call(what, &self.http, self.secret.as_deref(), safety, |base| {
                let rb = build(&base);
                async move {
                    match rb {
                        Ok(rb) => Ok(rb.send().await),
                        Err(e) => Err(e),
                    }
                }
            })
            .await
    }

    /// A request of `method` to `segments` under the leader, with `query` pairs.
    async fn simple(
        &self,
        what: &str,
        safety: Safety,
        method: Method,
        segments: &[&str],
        query: &[(&str, String)],
        body: Option<&serde_json::Value>,
    ) -> Result<reqwest::Response, ClientError> {
        self.exchange(what, safety, |base| {
            let mut url = url_under(base, segments);
            if !query.is_empty() {
                let mut q = url.query_pairs_mut();
                for (k, v) in query {
                    q.append_pair(k, v);
                }
            }
            let rb = self.request(method.clone(), url, Duration::from_secs(30));
            Ok(match body {
                Some(b) => rb.json(b),
                None => rb,
            })
        })
        .await
    }

    async fn call<B: Serialize, R: DeserializeOwned>(
        &self,
        what: &str,
        method: Method,
        segments: &[&str],
        body: Option<&B>,
    ) -> Result<R, ClientError> {
        let safety = if method == Method::GET {
            Safety::Idempotent
        } else {
            Safety::NotAfterSend
        };
        self.call_with(what, safety, method, segments, &[], body)
            .await
    }

    async fn call_with<B: Serialize, R: DeserializeOwned>(
        &self,
        what: &str,
        safety: Safety,
        method: Method,
        segments: &[&str],
        query: &[(&str, String)],
        body: Option<&B>,
    ) -> Result<R, ClientError> {
        let body = body
            .map(serde_json::to_value)
            .transpose()
            .map_err(|e| ClientError::Io {
                path: PathBuf::from("<request body>"),
                reason: e.to_string(),
            })?;
        let resp = self
            .simple(what, safety, method, segments, query, body.as_ref())
            .await?;
        let url = resp.url().to_string();
        resp.json().await.map_err(|e| ClientError::Unreachable {
            url,
            reason: format!("bad answer: {}", error_chain(&e)),
        })
    }

    /// Uploads a topology binary to the leader; returns its sha256. Streams the file. The
    /// upload is content-addressed, so it is sent again through a failover.
    pub async fn upload_artifact(&self, path: &Path) -> Result<String, ClientError> {
        let sha = sha256_file(path).await?;
        let io = |e: std::io::Error| ClientError::Io {
            path: path.to_path_buf(),
            reason: e.to_string(),
        };
        let len = std::fs::metadata(path).map_err(io)?.len();
        self.exchange("the upload", Safety::Idempotent, |base| {
            let file = std::fs::File::open(path).map_err(io)?;
            let stream = tokio_util::io::ReaderStream::new(tokio::fs::File::from_std(file));
            Ok(self
                .request(
                    Method::PUT,
                    url_under(base, &["api", "v1", "artifacts", &sha]),
                    Duration::from_secs(600),
                )
                .header(reqwest::header::CONTENT_LENGTH, len)
                .body(reqwest::Body::wrap_stream(stream)))
        })
        .await?;
        Ok(sha)
    }

    /// Downloads artifact `sha` to `dest`, verifying its hash; the file appears only if it
    /// matches. With several seeds any Nimbus that holds it will do: the leader first, then
    /// each seed; the whole round is tried again through a failover.
    pub async fn download_artifact(&self, sha: &str, dest: &Path) -> Result<(), ClientError> {
        let round = || async {
            let mut failures = Vec::new();
            for base in self.seeds.holders(&self.http, self.secret.as_deref()).await {
                match self.download_from(&base, sha, dest).await {
                    Ok(()) => return Ok(()),
                    Err(e) => {
                        tracing::debug!(nimbus = %base, error = %e, "artifact download failed");
                        failures.push(e);
                    }
                }
            }
            Err(download_failure(failures))
        };
        let deadline = std::time::Instant::now() + self.seeds.failover;
        backon::Retryable::retry(round, leader::backoff())
            .sleep(tokio::time::sleep)
            .when(|e: &ClientError| {
                // Only when a holder could not be reached (it may be back, or another may have
                // the artifact by then); every holder saying it lacks it, or a corrupt copy, or
                // a local file problem is final.
                matches!(e, ClientError::Unreachable { .. }) && std::time::Instant::now() < deadline
            })
            .await
    }

    /// Downloads artifact `sha` from the Nimbus at `base` to `dest`, verifying its hash.
    async fn download_from(&self, base: &Url, sha: &str, dest: &Path) -> Result<(), ClientError> {
        let url = url_under(base, &["api", "v1", "artifacts", sha]);
        let unreachable = |e: reqwest::Error| ClientError::Unreachable {
            url: url.to_string(),
            reason: error_chain(&e.without_url()),
        };
        let resp = self
            .request(Method::GET, url.clone(), Duration::from_secs(600))
            .send()
            .await
            .map_err(unreachable)?;
        if !resp.status().is_success() {
            let status = resp.status();
            let text = resp.text().await.unwrap_or_default();
            return Err(ClientError::api("the download", status, text));
        }
        let tmp = dest.with_extension("part");
        let io = |e: std::io::Error| ClientError::Io {
            path: tmp.clone(),
            reason: e.to_string(),
        };
        let mut f = tokio::fs::File::create(&tmp).await.map_err(io)?;
        let mut h = Sha256::new();
        let mut stream = resp.bytes_stream();
        while let Some(chunk) = stream.try_next().await.map_err(unreachable)? {
            h.update(&chunk);
            f.write_all(&chunk).await.map_err(io)?;
        }
        f.flush().await.map_err(io)?;
        drop(f);
        let actual = hex::encode(h.finalize());
        if actual != sha {
            let _ = tokio::fs::remove_file(&tmp).await;
            return Err(ClientError::HashMismatch {
                expected: sha.to_string(),
                actual,
            });
        }
        tokio::fs::rename(&tmp, dest).await.map_err(io)
    }

    /// Submits a topology whose binary was uploaded.
    pub async fn submit(&self, req: &SubmitRequest) -> Result<ActionResponse, ClientError> {
        self.call(
            "the submission",
            Method::POST,
            &["api", "v1", "topologies"],
            Some(req),
        )
        .await
    }

    /// Every live topology.
    pub async fn list(&self) -> Result<TopologyList, ClientError> {
        self.call::<(), _>(
            "the list",
            Method::GET,
            &["api", "v1", "topology", "summary"],
            None,
        )
        .await
    }

    /// One topology in detail.
    pub async fn describe(&self, name: &str) -> Result<TopologyDetails, ClientError> {
        self.call::<(), _>(
            &format!("describe {name:?}"),
            Method::GET,
            &["api", "v1", "topology", name],
            None,
        )
        .await
    }

    /// One topology in detail, with its component statistics of `window` (`sys`: with the
    /// acker).
    pub async fn describe_window(
        &self,
        name: &str,
        window: stats::Window,
        sys: bool,
    ) -> Result<TopologyDetails, ClientError> {
        let query = [
            ("window", window.as_str().into_owned()),
            ("sys", if sys { "true" } else { "false" }.to_string()),
        ];
        self.get_json(
            &format!("describe {name:?}"),
            &["api", "v1", "topology", name],
            &query,
        )
        .await
    }

    /// A component of a topology: statistics per window, per task and per worker, errors.
    pub async fn component(
        &self,
        name: &str,
        component: &str,
        window: stats::Window,
    ) -> Result<stats::ComponentPage, ClientError> {
        self.get_json(
            &format!("component {component:?} of {name:?}"),
            &["api", "v1", "topology", name, "component", component],
            &[("window", window.as_str().to_string())],
        )
        .await
    }

    /// The Prometheus text of `GET /metrics`.
    pub async fn metrics_text(&self) -> Result<String, ClientError> {
        let resp = self
            .simple(
                "the metrics",
                Safety::Idempotent,
                Method::GET,
                &["metrics"],
                &[],
                None,
            )
            .await?;
        let url = resp.url().clone();
        resp.text().await.map_err(|e| ClientError::Unreachable {
            url: url.to_string(),
            reason: error_chain(&e),
        })
    }

    /// A byte range of the log of `name`'s worker on `host:port` (the last `length` bytes
    /// without `start`; 64 KiB without `length`), through Nimbus.
    pub async fn worker_log(
        &self,
        name: &str,
        host: &str,
        port: u16,
        start: Option<u64>,
        length: Option<u64>,
    ) -> Result<WorkerLog, ClientError> {
        let port_text = port.to_string();
        let mut query = Vec::new();
        if let Some(s) = start {
            query.push(("start", s.to_string()));
        }
        if let Some(l) = length {
            query.push(("length", l.to_string()));
        }
        let resp = self
            .simple(
                &format!("the log of {host}:{port}"),
                Safety::Idempotent,
                Method::GET,
                &[
                    "api",
                    "v1",
                    "topology",
                    name,
                    "worker-log",
                    host,
                    &port_text,
                ],
                &query,
                None,
            )
            .await?;
        let url = resp.url().clone();
        let header = |name: &str| {
            resp.headers()
                .get(name)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.parse().ok())
                .unwrap_or(0)
        };
        let (file_size, start) = (header("x-log-file-size"), header("x-log-start"));
        let bytes = resp.bytes().await.map_err(|e| ClientError::Unreachable {
            url: url.to_string(),
            reason: error_chain(&e),
        })?;
        Ok(WorkerLog {
            file_size,
            start,
            bytes: bytes.to_vec(),
        })
    }

    async fn get_json<R: DeserializeOwned>(
        &self,
        what: &str,
        segments: &[&str],
        query: &[(&str, String)],
    ) -> Result<R, ClientError> {
        self.call_with::<(), _>(what, Safety::Idempotent, Method::GET, segments, query, None)
            .await
    }

    /// The current assignment of a topology.
    pub async fn assignment(&self, name: &str) -> Result<Assignment, ClientError> {
        self.call::<(), _>(
            &format!("the assignment of {name:?}"),
            Method::GET,
            &["api", "v1", "topology", name, "assignment"],
            None,
        )
        .await
    }

    async fn action(
        &self,
        name: &str,
        segments: &[&str],
        body: Option<&RebalanceRequest>,
    ) -> Result<ActionResponse, ClientError> {
        let mut path = vec!["api", "v1", "topology", name];
        path.extend_from_slice(segments);
        self.call(
            &format!("{} {name:?}", segments[0]),
            Method::POST,
            &path,
            body,
        )
        .await
    }

    /// Lets the topology's spouts emit.
    pub async fn activate(&self, name: &str) -> Result<ActionResponse, ClientError> {
        self.action(name, &["activate"], None).await
    }

    /// Pauses the topology's spouts.
    pub async fn deactivate(&self, name: &str) -> Result<ActionResponse, ClientError> {
        self.action(name, &["deactivate"], None).await
    }

    /// Deactivates the spouts, waits `wait_secs`, then stops the workers and forgets the topology.
    pub async fn kill(&self, name: &str, wait_secs: u64) -> Result<ActionResponse, ClientError> {
        self.action(name, &["kill", &wait_secs.to_string()], None)
            .await
    }

    /// Deactivates the spouts, waits `wait_secs`, then reschedules with new workers/parallelism.
    pub async fn rebalance(
        &self,
        name: &str,
        wait_secs: u64,
        req: &RebalanceRequest,
    ) -> Result<ActionResponse, ClientError> {
        self.action(name, &["rebalance", &wait_secs.to_string()], Some(req))
            .await
    }

    /// Every supervisor Nimbus knows.
    pub async fn supervisors(&self) -> Result<SupervisorList, ClientError> {
        self.call::<(), _>(
            "the supervisor list",
            Method::GET,
            &["api", "v1", "supervisor", "summary"],
            None,
        )
        .await
    }

    /// A supervisor's heartbeat; answers with its assignments.
    pub async fn supervisor_heartbeat(
        &self,
        hb: &SupervisorHeartbeat,
    ) -> Result<SupervisorAssignments, ClientError> {
        // A heartbeat reports state: sending it twice is harmless.
        self.call_with(
            "the supervisor heartbeat",
            Safety::Idempotent,
            Method::POST,
            &["api", "v1", "supervisor", "heartbeat"],
            &[],
            Some(hb),
        )
        .await
    }

    /// A worker's heartbeat; answers with what the worker should do.
    pub async fn worker_heartbeat(
        &self,
        hb: &WorkerHeartbeat,
    ) -> Result<WorkerDirective, ClientError> {
        self.call_with(
            "the worker heartbeat",
            Safety::Idempotent,
            Method::POST,
            &["api", "v1", "worker", "heartbeat"],
            &[],
            Some(hb),
        )
        .await
    }
}

/// The error of a download round in which every holder failed: with one holder its error;
/// with several, [`ClientError::Unreachable`] if any could not be reached (worth another round),
/// else the first error, each naming what every holder said.
fn download_failure(mut failures: Vec<ClientError>) -> ClientError {
    if failures.len() <= 1 {
        return failures.pop().unwrap_or(ClientError::NoLeader {
            seeds: String::new(),
            detail: "no Nimbus to download from".into(),
        });
    }
    let all: Vec<String> = failures.iter().map(ToString::to_string).collect();
    let all = all.join("; ");
    match failures
        .iter()
        .position(|e| matches!(e, ClientError::Unreachable { .. }))
    {
        Some(i) => match failures.swap_remove(i) {
            ClientError::Unreachable { url, .. } => ClientError::Unreachable {
                url,
                reason: format!("no Nimbus served the artifact: {all}"),
            },
            other => other,
        },
        None => match failures.swap_remove(0) {
            ClientError::Api { what, status, .. } => ClientError::Api {
                what,
                status,
                message: format!("no Nimbus has it: {all}"),
            },
            other => other,
        },
    }
}

/// `segments` under `base`.
fn url_under(base: &Url, segments: &[&str]) -> Url {
    let mut u = base.clone();
    if let Ok(mut p) = u.path_segments_mut() {
        p.pop_if_empty().extend(segments);
    }
    u
}

/// An error with its sources, on one line.
pub(crate) fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut src = e.source();
    while let Some(inner) = src {
        let text = inner.to_string();
        if !s.contains(&text) {
            s.push_str(": ");
            s.push_str(&text);
        }
        src = inner.source();
    }
    s
}

/// True if `status` is a client error (4xx).
pub fn is_client_error(status: u16) -> bool {
    StatusCode::from_u16(status).is_ok_and(|s| s.is_client_error())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_are_built_under_the_base() {
        let c = NimbusClient::new("127.0.0.1:6627/", None).unwrap();
        assert_eq!(
            url_under(&c.base(), &["api", "v1", "topology", "a b"]).as_str(),
            "http://127.0.0.1:6627/api/v1/topology/a%20b"
        );
        assert!(NimbusClient::new("http://", None).is_err());
    }
}
