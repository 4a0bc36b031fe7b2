//! The cluster secret on HTTP servers: every request must carry it, in `x-tempest-secret` or
//! as `Authorization: Bearer <secret>`. It is compared in constant time (as sha256 digests, so
//! not even its length leaks); a refusal is a 401 with a JSON message, logged with the method,
//! path and peer, never with what was sent, and the unread body is drained first so the client
//! gets the answer instead of a reset.

use crate::linger;
use axum::extract::{ConnectInfo, Request, State};
use axum::http::{header, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::{Json, Router};
use std::net::SocketAddr;
use std::sync::Arc;
use tempest_protocol::auth::{presented_secret, SecretDigest, SECRET_HEADER};
use tempest_protocol::control::ErrorBody;

/// `routes`, with every request required to carry `secret` (none: open, as without a secret).
pub fn require<S: Clone + Send + Sync + 'static>(
    routes: Router<S>,
    secret: Option<SecretDigest>,
) -> Router<S> {
    match secret {
        Some(s) => routes.layer(axum::middleware::from_fn_with_state(
            Arc::new(s),
            require_secret,
        )),
        None => routes,
    }
}

async fn require_secret(
    State(secret): State<Arc<SecretDigest>>,
    req: Request,
    next: Next,
) -> Response {
    let headers = req.headers();
    let given = presented_secret(
        headers.get(SECRET_HEADER).map(|v| v.as_bytes()),
        headers.get(header::AUTHORIZATION).map(|v| v.as_bytes()),
    );
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
    linger::discard(req.into_body()).await;
    let body = ErrorBody::new("missing or wrong cluster secret");
    (StatusCode::UNAUTHORIZED, Json(body)).into_response()
}
