//! The cluster secret: every request must carry it in `x-tempest-secret`. It is compared in
//! constant time (as sha256 digests, so not even its length leaks); a refusal is logged with
//! the method, path and peer, never with what was sent.

use crate::error::ApiError;
use axum::extract::{ConnectInfo, Request, State};
use axum::http::StatusCode;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use sha2::{Digest, Sha256};
use std::fmt;
use std::net::SocketAddr;
use std::sync::Arc;
use subtle::ConstantTimeEq;
use topology_api::control::SECRET_HEADER;

/// The secret, kept only as its digest.
#[derive(Clone)]
pub(crate) struct Secret {
    digest: [u8; 32],
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(<redacted>)")
    }
}

impl Secret {
    pub(crate) fn new(secret: &str) -> Self {
        Secret {
            digest: Sha256::digest(secret.as_bytes()).into(),
        }
    }

    /// Whether `given` is the secret, in constant time.
    pub(crate) fn matches(&self, given: &[u8]) -> bool {
        let digest: [u8; 32] = Sha256::digest(given).into();
        digest.ct_eq(&self.digest).into()
    }
}

/// Middleware: lets a request through only with the secret.
pub(crate) async fn require_secret(
    State(secret): State<Arc<Secret>>,
    req: Request,
    next: Next,
) -> Response {
    let given = req.headers().get(SECRET_HEADER).map(|v| v.as_bytes());
    if given.is_some_and(|g| secret.matches(g)) {
        return next.run(req).await;
    }
    let peer = req
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|c| c.0.to_string())
        .unwrap_or_else(|| "unknown".to_string());
    tracing::warn!(
        method = %req.method(),
        path = %req.uri().path(),
        peer = %peer,
        header_present = given.is_some(),
        "refused a request without the cluster secret"
    );
    crate::linger::discard(req.into_body()).await;
    ApiError::new(StatusCode::UNAUTHORIZED, "missing or wrong cluster secret").into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_secret_matches() {
        let s = Secret::new("s3cret");
        assert!(s.matches(b"s3cret"));
        assert!(!s.matches(b"s3cre"));
        assert!(!s.matches(b"s3cret "));
        assert!(!s.matches(b""));
        assert!(!format!("{s:?}").contains("s3cret"));
    }
}
