//! # tempest-client: the one HTTP client for Nimbus's API
//!
//! Used by the `tempest` CLI, supervisors, workers and the topology binary's `submit`. Every
//! call carries the cluster secret; every failure is a [`ClientError`] that says what went wrong
//! and where. [`submit`] is the one way a topology is submitted, from the CLI or from the
//! binary itself.

pub mod submit;

pub use submit::{submit_overrides, Submission, SubmitError, Submitted};

use futures::TryStreamExt;
use reqwest::{Method, StatusCode, Url};
use serde::de::DeserializeOwned;
use serde::Serialize;
use sha2::{Digest, Sha256};
use std::path::{Path, PathBuf};
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

/// A client for one Nimbus.
#[derive(Debug, Clone)]
pub struct NimbusClient {
    base: Url,
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
    /// A client for the Nimbus at `base` (e.g. `http://127.0.0.1:6627`), sending `secret`.
    pub fn new(base: &str, secret: Option<String>) -> Result<Self, ClientError> {
        let bad = |reason: String| ClientError::BadUrl {
            url: base.to_string(),
            reason,
        };
        let with_scheme = if base.contains("://") {
            base.to_string()
        } else {
            format!("http://{base}")
        };
        let base_url = Url::parse(&with_scheme).map_err(|e| bad(e.to_string()))?;
        if base_url.cannot_be_a_base() {
            return Err(bad("not a base URL".into()));
        }
        let http = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(5))
            .build()
            .map_err(|e| bad(e.to_string()))?;
        Ok(NimbusClient {
            base: base_url,
            secret: secret.filter(|s| !s.is_empty()),
            http,
        })
    }

    /// The base URL.
    pub fn base(&self) -> &Url {
        &self.base
    }

    fn url(&self, segments: &[&str]) -> Url {
        let mut u = self.base.clone();
        if let Ok(mut p) = u.path_segments_mut() {
            p.pop_if_empty().extend(segments);
        }
        u
    }

    fn request(&self, method: Method, url: Url, timeout: Duration) -> reqwest::RequestBuilder {
        let rb = self.http.request(method, url).timeout(timeout);
        match &self.secret {
            Some(s) => rb.header(SECRET_HEADER, s),
            None => rb,
        }
    }

    async fn send(
        &self,
        what: &str,
        rb: reqwest::RequestBuilder,
        url: &Url,
    ) -> Result<reqwest::Response, ClientError> {
        let resp = rb.send().await.map_err(|e| ClientError::Unreachable {
            url: url.to_string(),
            reason: error_chain(&e.without_url()),
        })?;
        if resp.status().is_success() {
            return Ok(resp);
        }
        let status = resp.status();
        let text = resp.text().await.unwrap_or_default();
        let message = serde_json::from_str::<ErrorBody>(&text)
            .map(|b| b.error)
            .unwrap_or_else(|_| {
                if text.is_empty() {
                    status.canonical_reason().unwrap_or("error").to_string()
                } else {
                    text
                }
            });
        Err(ClientError::Api {
            what: what.to_string(),
            status: status.as_u16(),
            message,
        })
    }

    async fn call<B: Serialize, R: DeserializeOwned>(
        &self,
        what: &str,
        method: Method,
        segments: &[&str],
        body: Option<&B>,
    ) -> Result<R, ClientError> {
        let url = self.url(segments);
        let mut rb = self.request(method, url.clone(), Duration::from_secs(30));
        if let Some(b) = body {
            rb = rb.json(b);
        }
        let resp = self.send(what, rb, &url).await?;
        resp.json().await.map_err(|e| ClientError::Unreachable {
            url: url.to_string(),
            reason: format!("bad answer: {}", error_chain(&e)),
        })
    }

    /// Uploads a topology binary; returns its sha256. Streams the file.
    pub async fn upload_artifact(&self, path: &Path) -> Result<String, ClientError> {
        let sha = sha256_file(path).await?;
        let file = tokio::fs::File::open(path)
            .await
            .map_err(|e| ClientError::Io {
                path: path.to_path_buf(),
                reason: e.to_string(),
            })?;
        let len = file.metadata().await.map(|m| m.len()).unwrap_or(0);
        let body = reqwest::Body::wrap_stream(tokio_util::io::ReaderStream::new(file));
        let url = self.url(&["api", "v1", "artifacts", &sha]);
        let rb = self
            .request(Method::PUT, url.clone(), Duration::from_secs(600))
            .header(reqwest::header::CONTENT_LENGTH, len)
            .body(body);
        self.send("the upload", rb, &url).await?;
        Ok(sha)
    }

    /// Downloads artifact `sha` to `dest`, verifying its hash; the file appears only if it
    /// matches.
    pub async fn download_artifact(&self, sha: &str, dest: &Path) -> Result<(), ClientError> {
        let url = self.url(&["api", "v1", "artifacts", sha]);
        let rb = self.request(Method::GET, url.clone(), Duration::from_secs(600));
        let resp = self.send("the download", rb, &url).await?;
        let tmp = dest.with_extension("part");
        let io = |e: std::io::Error| ClientError::Io {
            path: tmp.clone(),
            reason: e.to_string(),
        };
        let mut f = tokio::fs::File::create(&tmp).await.map_err(io)?;
        let mut h = Sha256::new();
        let mut stream = resp.bytes_stream();
        while let Some(chunk) = stream
            .try_next()
            .await
            .map_err(|e| ClientError::Unreachable {
                url: url.to_string(),
                reason: error_chain(&e),
            })?
        {
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
        let mut url = self.url(&["api", "v1", "topology", name]);
        url.query_pairs_mut()
            .append_pair("window", window.as_str())
            .append_pair("sys", if sys { "1" } else { "0" });
        self.get_json(&format!("describe {name:?}"), url).await
    }

    /// A component of a topology: statistics per window, per task and per worker, errors.
    pub async fn component(
        &self,
        name: &str,
        component: &str,
        window: stats::Window,
    ) -> Result<stats::ComponentPage, ClientError> {
        let mut url = self.url(&["api", "v1", "topology", name, "component", component]);
        url.query_pairs_mut().append_pair("window", window.as_str());
        self.get_json(&format!("component {component:?} of {name:?}"), url)
            .await
    }

    /// The Prometheus text of `GET /metrics`.
    pub async fn metrics_text(&self) -> Result<String, ClientError> {
        let url = self.url(&["metrics"]);
        let rb = self.request(Method::GET, url.clone(), Duration::from_secs(30));
        let resp = self.send("the metrics", rb, &url).await?;
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
        let mut url = self.url(&[
            "api",
            "v1",
            "topology",
            name,
            "worker-log",
            host,
            &port_text,
        ]);
        {
            let mut q = url.query_pairs_mut();
            if let Some(s) = start {
                q.append_pair("start", &s.to_string());
            }
            if let Some(l) = length {
                q.append_pair("length", &l.to_string());
            }
        }
        let rb = self.request(Method::GET, url.clone(), Duration::from_secs(30));
        let resp = self
            .send(&format!("the log of {host}:{port}"), rb, &url)
            .await?;
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

    async fn get_json<R: DeserializeOwned>(&self, what: &str, url: Url) -> Result<R, ClientError> {
        let rb = self.request(Method::GET, url.clone(), Duration::from_secs(30));
        let resp = self.send(what, rb, &url).await?;
        resp.json().await.map_err(|e| ClientError::Unreachable {
            url: url.to_string(),
            reason: format!("bad answer: {}", error_chain(&e)),
        })
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
        self.call(
            "the supervisor heartbeat",
            Method::POST,
            &["api", "v1", "supervisor", "heartbeat"],
            Some(hb),
        )
        .await
    }

    /// A worker's heartbeat; answers with what the worker should do.
    pub async fn worker_heartbeat(
        &self,
        hb: &WorkerHeartbeat,
    ) -> Result<WorkerDirective, ClientError> {
        self.call(
            "the worker heartbeat",
            Method::POST,
            &["api", "v1", "worker", "heartbeat"],
            Some(hb),
        )
        .await
    }
}

/// An error with its sources, on one line.
fn error_chain(e: &dyn std::error::Error) -> String {
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
            c.url(&["api", "v1", "topology", "a b"]).as_str(),
            "http://127.0.0.1:6627/api/v1/topology/a%20b"
        );
        assert!(NimbusClient::new("http://", None).is_err());
    }
}
