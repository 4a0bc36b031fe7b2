//! Errors: [`NimbusError`] is why Nimbus could not start or stopped; the errors of its parts
//! become [`ApiError`] answers (a status and a JSON `ErrorBody` naming the culprit) here.

use axum::http::StatusCode;
use std::path::PathBuf;
use tempest_monitor::http::ApiError;

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

impl From<crate::store::StoreError> for ApiError {
    fn from(e: crate::store::StoreError) -> Self {
        match e {
            // The API's leader gate turns it into the follower's 503 naming the leader.
            crate::store::StoreError::NotLeader { .. } => {
                ApiError::new(StatusCode::SERVICE_UNAVAILABLE, e.to_string())
            }
            crate::store::StoreError::Etcd { .. } => ApiError::internal(
                format!("could not save the change (it may or may not have been written; check before trying again): {e}"),
            ),
            _ => ApiError::internal(format!(
                "could not save the change; nothing was changed: {e}"
            )),
        }
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
