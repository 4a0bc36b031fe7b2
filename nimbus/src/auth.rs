//! The cluster secret: every request must carry it, in `x-tempest-secret` or as
//! `Authorization: Bearer <secret>`. It is compared in constant time (as sha256 digests, so not
//! even its length leaks); a refusal is logged with the method, path and peer, never with what
//! was sent.

use axum::extract::{ConnectInfo, Request, State};
use axum::http::{header, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use std::net::SocketAddr;
use std::sync::Arc;
use topology_api::control::{presented_secret, SecretDigest, SECRET_HEADER};
use topology_api::monitor::http::ApiError;

/// Middleware: lets a request through only with the secret.
pub(crate) async fn require_secret(
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
    topology_api::monitor::linger::discard(req.into_body()).await;
    ApiError::new(StatusCode::UNAUTHORIZED, "missing or wrong cluster secret").into_response()
}
