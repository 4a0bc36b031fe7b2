//! Errors: [`ApiError`] is what a handler answers with (a status and a JSON `ErrorBody` naming
//! the culprit); [`NimbusError`] is why Nimbus could not start or stopped.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use std::path::PathBuf;
use topology_api::control::ErrorBody;

/// Why Nimbus could not start, or why its server stopped.
#[derive(Debug, thiserror::Error)]
pub enum NimbusError {
    /// The configuration is unusable.
    #[error(transparent)]
    Config(#[from] crate::config::ConfigError),
    /// A file or directory under the data dir could not be used.
    #[error("{path}: {source}")]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The state store could not be opened or read.
    #[error("{0}")]
    Store(String),
    /// The HTTP server failed.
    #[error("HTTP server: {0}")]
    Server(std::io::Error),
    /// A background task panicked.
    #[error("{0} crashed: {1}")]
    Crashed(&'static str, String),
}

/// An error answer: an HTTP status and a message naming what was wrong.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ApiError {
    pub(crate) status: StatusCode,
    pub(crate) message: String,
}

impl ApiError {
    pub(crate) fn new(status: StatusCode, message: impl Into<String>) -> Self {
        ApiError {
            status,
            message: message.into(),
        }
    }

    /// 400: the request is wrong.
    pub(crate) fn bad_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, message)
    }

    /// 404: no such topology, artifact or endpoint.
    pub(crate) fn not_found(message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, message)
    }

    /// 404 for an unknown topology.
    pub(crate) fn unknown_topology(name: &str) -> Self {
        Self::not_found(format!(
            "topology {name:?} is not known to Nimbus; `tempest list` shows the live ones"
        ))
    }

    /// 409: a duplicate name, or an action the topology's state does not allow.
    pub(crate) fn conflict(message: impl Into<String>) -> Self {
        Self::new(StatusCode::CONFLICT, message)
    }

    /// 413: a body above its limit.
    pub(crate) fn too_large(message: impl Into<String>) -> Self {
        Self::new(StatusCode::PAYLOAD_TOO_LARGE, message)
    }

    /// 500: Nimbus failed (the state store, a file).
    pub(crate) fn internal(message: impl Into<String>) -> Self {
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
        (
            self.status,
            Json(ErrorBody {
                error: self.message,
            }),
        )
            .into_response()
    }
}

impl From<crate::store::StoreError> for ApiError {
    fn from(e: crate::store::StoreError) -> Self {
        ApiError::internal(format!(
            "could not save the change; nothing was changed: {e}"
        ))
    }
}

impl From<crate::state::StateError> for ApiError {
    fn from(e: crate::state::StateError) -> Self {
        use crate::state::StateError as E;
        let status = match e {
            E::BeingKilled { .. } | E::AlreadyRebalancing { .. } => StatusCode::CONFLICT,
            E::UnknownComponent { .. }
            | E::ParallelismOutOfRange { .. }
            | E::ZeroWorkers { .. }
            | E::TooManyWorkers { .. } => StatusCode::BAD_REQUEST,
        };
        ApiError::new(status, e.to_string())
    }
}

impl From<crate::artifacts::ArtifactError> for ApiError {
    fn from(e: crate::artifacts::ArtifactError) -> Self {
        use crate::artifacts::ArtifactError as E;
        let status = match e {
            E::BadId(_) | E::HashMismatch { .. } | E::Body(_) => StatusCode::BAD_REQUEST,
            E::TooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            E::NotFound { .. } => StatusCode::NOT_FOUND,
            E::Io { .. } => StatusCode::INTERNAL_SERVER_ERROR,
        };
        ApiError::new(status, e.to_string())
    }
}
