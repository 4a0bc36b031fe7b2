//! Following the Nimbus leader through a seed list (Storm's `nimbus.seeds`).
//!
//! With several Nimbus hosts only the leader changes cluster state; a follower answers every
//! other request with HTTP 503, the leader's URL in the `x-tempest-leader` header and in the JSON
//! body's `leader`. A client keeps the leader it last found. Without one it asks the seeds in
//! order, `GET /api/v1/leader`, and takes the first answer naming a leader. Each call then goes
//! to the leader and, while a failover lasts, is tried again with backon's exponential back-off
//! until the client's failover deadline, but only when that is safe:
//! - a follower's 503 means the request was not executed: follow the hint at once;
//! - a connect error means it was not sent: ask the seeds again;
//! - any other transport error (a timeout, a reset mid-request) may come after Nimbus executed
//!   it: only idempotent calls ([`Safety::Idempotent`]) are tried again.
//!
//! With one seed nothing is retried (as before seed lists), except a follower's hint, which is
//! followed at once (a single URL may be a load balancer in front of several Nimbus hosts).

use crate::{error_chain, ClientError};
use backon::{ExponentialBuilder, Retryable};
use reqwest::{Response, Url};
use serde::Deserialize;
use std::future::Future;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// The header in which a follower names the leader's URL.
pub const LEADER_HEADER: &str = "x-tempest-leader";
/// How long a call with several seeds keeps trying through a failover, by default.
pub const DEFAULT_FAILOVER: Duration = Duration::from_secs(30);
/// How long asking one Nimbus who leads may take.
const ASK_TIMEOUT: Duration = Duration::from_secs(2);
/// The most 503 hints one call follows without a back-off delay (two followers naming each
/// other in the middle of an election must not spin).
const MAX_HINT_HOPS: usize = 3;

/// Whether a call may be sent again after an answer was lost.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Safety {
    /// Doing it twice is doing it once (reads, heartbeats, the content-addressed upload).
    Idempotent,
    /// Sent twice it may act twice (submit, kill, rebalance...): retried only when it was
    /// certainly not executed (a follower's 503, a connect error).
    NotAfterSend,
}

/// The seed list and the leader last found, shared by the clones of a client.
#[derive(Debug)]
pub(crate) struct Seeds {
    /// The URLs given, in order.
    pub(crate) urls: Vec<Url>,
    /// The leader last found (it may be a URL not in the seeds: a follower's hint).
    leader: Mutex<Option<Url>>,
    /// How long a call keeps trying through a failover.
    pub(crate) failover: Duration,
}

/// Why one attempt failed, and what may follow.
#[derive(Debug)]
pub(crate) enum Failure {
    /// Final: the answer stands (a 4xx, a 500, a lost answer of a non-idempotent call).
    Final(ClientError),
    /// A follower named another leader: go there at once.
    Redirected(ClientError),
    /// Nothing executed (no leader yet, a connect error): try again after a back-off.
    Later(ClientError),
}

impl Failure {
    fn into_error(self) -> ClientError {
        match self {
            Failure::Final(e) | Failure::Redirected(e) | Failure::Later(e) => e,
        }
    }
}

/// What `GET /api/v1/leader` says (the client needs only the leader's URL).
#[derive(Debug, Deserialize)]
struct LeaderAnswer {
    leader: Option<NimbusId>,
}

#[derive(Debug, Deserialize)]
struct NimbusId {
    url: String,
}

/// A follower's 503 body: `{"error": "...", "leader": URL | null}`.
#[derive(Debug, Deserialize)]
struct NotLeaderBody {
    error: String,
    leader: Option<String>,
}

/// Parses one seed URL (a missing scheme means `http://`).
pub(crate) fn parse_url(seed: &str) -> Result<Url, String> {
    let with_scheme = if seed.contains("://") {
        seed.to_string()
    } else {
        format!("http://{seed}")
    };
    let url = Url::parse(&with_scheme).map_err(|e| e.to_string())?;
    if url.cannot_be_a_base() || url.host_str().is_none_or(str::is_empty) {
        return Err("not a base URL (expected e.g. http://nimbus:6627)".into());
    }
    Ok(url)
}

impl Seeds {
    /// The seeds of `list` (one URL, or several separated by commas).
    pub(crate) fn parse(list: &str) -> Result<Seeds, ClientError> {
        let mut urls: Vec<Url> = Vec::new();
        for seed in tempest_protocol::seeds::split(list) {
            let url = parse_url(seed).map_err(|reason| ClientError::BadUrl {
                url: seed.to_string(),
                reason,
            })?;
            if !urls.contains(&url) {
                urls.push(url);
            }
        }
        if urls.is_empty() {
            return Err(ClientError::BadUrl {
                url: list.to_string(),
                reason: "no Nimbus URL given".into(),
            });
        }
        let failover = if urls.len() > 1 {
            DEFAULT_FAILOVER
        } else {
            Duration::ZERO
        };
        Ok(Seeds {
            urls,
            leader: Mutex::new(None),
            failover,
        })
    }

    /// The leader last found, if any.
    pub(crate) fn known_leader(&self) -> Option<Url> {
        self.leader.lock().map(|l| l.clone()).unwrap_or(None)
    }

    fn set_leader(&self, url: Option<Url>) {
        if let Ok(mut l) = self.leader.lock() {
            *l = url;
        }
    }

    /// The seeds, comma-separated (for messages).
    pub(crate) fn list(&self) -> String {
        let urls: Vec<&str> = self.urls.iter().map(|u| u.as_str()).collect();
        urls.join(", ")
    }

    /// Where the next call goes: the known leader; with one seed, that seed; else the first
    /// seed that names a leader.
    async fn target(&self, http: &reqwest::Client, secret: Option<&str>) -> Result<Url, Failure> {
        if let Some(leader) = self.known_leader() {
            return Ok(leader);
        }
        if let [only] = self.urls.as_slice() {
            return Ok(only.clone());
        }
        let mut problems = Vec::new();
        for seed in &self.urls {
            match ask(http, secret, seed).await {
                Ok(Some(leader)) => {
                    self.set_leader(Some(leader.clone()));
                    return Ok(leader);
                }
                Ok(None) => problems.push(format!("{seed}: no leader yet")),
                Err(reason) => problems.push(format!("{seed}: {reason}")),
            }
        }
        Err(Failure::Later(ClientError::NoLeader {
            seeds: self.list(),
            detail: problems.join("; "),
        }))
    }

    /// Nimbus hosts to try for a read any of them can serve (an artifact): the leader first
    /// (if known, or found now), then every seed.
    pub(crate) async fn holders(&self, http: &reqwest::Client, secret: Option<&str>) -> Vec<Url> {
        let mut order = Vec::new();
        if self.urls.len() > 1 {
            if let Ok(leader) = self.target(http, secret).await {
                order.push(leader);
            }
        }
        for seed in &self.urls {
            if !order.contains(seed) {
                order.push(seed.clone());
            }
        }
        order
    }

    /// Runs `attempt` against the leader, again through a failover where `safety` allows,
    /// until the failover deadline. `attempt` builds and sends the request to a base URL; its
    /// outer error is a local one (a file that cannot be read), which ends the call.
    pub(crate) async fn call<F, Fut>(
        &self,
        what: &str,
        http: &reqwest::Client,
        secret: Option<&str>,
        safety: Safety,
        attempt: F,
    ) -> Result<Response, ClientError>
    where
        F: Fn(Url) -> Fut,
        Fut: Future<Output = Result<Result<Response, reqwest::Error>, ClientError>>,
    {
        let deadline = Instant::now() + self.failover;
        let hops = AtomicUsize::new(0);
        let once = || async {
            let base = self.target(http, secret).await?;
            let result = attempt(base.clone()).await.map_err(Failure::Final)?;
            self.judge(what, &base, safety, result).await
        };
        once.retry(backoff())
            .sleep(tokio::time::sleep)
            .when(|f| match f {
                Failure::Final(_) => false,
                Failure::Redirected(_) => {
                    hops.fetch_add(1, Ordering::Relaxed) < MAX_HINT_HOPS
                        || Instant::now() < deadline
                }
                Failure::Later(_) => Instant::now() < deadline,
            })
            .adjust(|f, delay| match f {
                Failure::Redirected(_) if hops.load(Ordering::Relaxed) <= MAX_HINT_HOPS => {
                    Some(Duration::ZERO)
                }
                // Never sleep past the deadline.
                _ => delay.map(|d| d.min(deadline.saturating_duration_since(Instant::now()))),
            })
            .notify(|f, delay| {
                tracing::debug!(error = %DisplayFailure(f), ?delay, "Nimbus call failed; trying again");
            })
            .await
            .map_err(Failure::into_error)
    }

    /// Sorts the result of one attempt at `base`: success, a follower's hint, or why it failed.
    async fn judge(
        &self,
        what: &str,
        base: &Url,
        safety: Safety,
        result: Result<Response, reqwest::Error>,
    ) -> Result<Response, Failure> {
        let resp = match result {
            Ok(resp) => resp,
            Err(e) => {
                // Whoever we thought led is not answering: ask the seeds next time.
                self.set_leader(None);
                let not_sent = e.is_connect();
                // The URL called, in the error (the reason leaves it out).
                let url = e.url().map_or_else(|| base.to_string(), |u| u.to_string());
                let reason = error_chain(&e.without_url());
                return Err(if not_sent || safety == Safety::Idempotent {
                    Failure::Later(ClientError::Unreachable { url, reason })
                } else {
                    Failure::Final(ClientError::Unreachable {
                        url,
                        reason: format!(
                            "{reason}; the request may or may not have been carried out: check \
                             before sending it again"
                        ),
                    })
                });
            }
        };
        if resp.status().is_success() {
            if self.urls.len() > 1 {
                self.set_leader(Some(base.clone()));
            }
            return Ok(resp);
        }
        let status = resp.status();
        let hint = resp
            .headers()
            .get(LEADER_HEADER)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        let text = resp.text().await.unwrap_or_default();
        if status == reqwest::StatusCode::SERVICE_UNAVAILABLE {
            let body = serde_json::from_str::<NotLeaderBody>(&text).ok();
            let is_follower = hint.is_some() || body.is_some();
            if is_follower {
                let leader = hint
                    .or_else(|| body.as_ref().and_then(|b| b.leader.clone()))
                    .and_then(|u| parse_url(&u).ok());
                let message = body.map_or(text, |b| b.error);
                let error = ClientError::Api {
                    what: format!("{what} (at {base})"),
                    status: status.as_u16(),
                    message,
                };
                return Err(match leader {
                    Some(leader) if &leader != base => {
                        self.set_leader(Some(leader));
                        Failure::Redirected(error)
                    }
                    _ => {
                        self.set_leader(None);
                        Failure::Later(error)
                    }
                });
            }
        }
        Err(Failure::Final(ClientError::api(what, status, text)))
    }
}

/// The back-off between attempts: 50 ms doubling to 500 ms, plus a random jitter of up to as
/// much again (so at most 1 s), no limit on the count (the deadline ends it).
pub(crate) fn backoff() -> ExponentialBuilder {
    ExponentialBuilder::default()
        .with_min_delay(Duration::from_millis(50))
        .with_max_delay(Duration::from_millis(500))
        .with_jitter()
        .without_max_times()
}

/// Asks the Nimbus at `seed` who leads: `Some(url)`, `None` while nobody does (or an error).
async fn ask(
    http: &reqwest::Client,
    secret: Option<&str>,
    seed: &Url,
) -> Result<Option<Url>, String> {
    let mut url = seed.clone();
    if let Ok(mut p) = url.path_segments_mut() {
        p.pop_if_empty().extend(["api", "v1", "leader"]);
    }
    let mut rb = http.get(url).timeout(ASK_TIMEOUT);
    if let Some(s) = secret {
        rb = rb.header(tempest_protocol::auth::SECRET_HEADER, s);
    }
    let resp = rb.send().await.map_err(|e| error_chain(&e.without_url()))?;
    if resp.status() == reqwest::StatusCode::NOT_FOUND {
        // A Nimbus without HA (no leader route) leads alone.
        return Ok(Some(seed.clone()));
    }
    if !resp.status().is_success() {
        return Err(format!("HTTP {}", resp.status().as_u16()));
    }
    let answer: LeaderAnswer = resp
        .json()
        .await
        .map_err(|e| format!("bad answer to /api/v1/leader: {}", error_chain(&e)))?;
    match answer.leader {
        None => Ok(None),
        Some(id) => parse_url(&id.url)
            .map(Some)
            .map_err(|e| format!("it names the leader {:?}: {e}", id.url)),
    }
}

struct DisplayFailure<'a>(&'a Failure);

impl std::fmt::Display for DisplayFailure<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.0 {
            Failure::Final(e) | Failure::Redirected(e) | Failure::Later(e) => e.fmt(f),
        }
    }
}
