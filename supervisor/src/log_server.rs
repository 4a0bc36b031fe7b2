//! The supervisor's log server (Storm's logviewer): its workers' log files over HTTP, the tail
//! or a byte range, to holders of the cluster secret. Only names of regular files in the logs
//! directory are served (no paths, no symlinks). Endpoints in `docs/design/rest-api.md`.

use axum::extract::{Query, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde::Serialize;
use std::collections::HashMap;
use std::io::SeekFrom;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use tempest_protocol::auth::SecretDigest;
use tempest_protocol::control::ErrorBody;
use tokio::io::{AsyncReadExt, AsyncSeekExt};
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

/// Bytes answered when no `length` is given.
pub const DEFAULT_LENGTH: u64 = 64 * 1024;
/// The largest `length` accepted.
pub const MAX_LENGTH: u64 = 1024 * 1024;
/// Files listed at most by `GET /api/v1/logs`.
const MAX_LISTED: usize = 10_000;
/// Header: the file's size when it was read.
pub const FILE_SIZE_HEADER: &str = "x-log-file-size";
/// Header: the offset of the first byte of the body.
pub const START_HEADER: &str = "x-log-start";

/// A running log server.
#[derive(Debug)]
pub struct LogServer {
    url: String,
    task: JoinHandle<()>,
}

impl LogServer {
    /// Its base URL, as reported to Nimbus.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// Stops it.
    pub fn stop(self) {
        self.task.abort();
    }
}

/// Binds `listen` and serves the files of `logs_dir`; the URL names `host` instead of an
/// unspecified bind address (`0.0.0.0`, `[::]`).
pub async fn start(
    listen: &str,
    host: &str,
    logs_dir: PathBuf,
    secret: Option<&str>,
) -> std::io::Result<LogServer> {
    let listener = TcpListener::bind(listen).await?;
    let addr = listener.local_addr()?;
    let url = base_url(addr, host);
    let app = router(logs_dir, secret.map(SecretDigest::new));
    let task = tokio::spawn(async move {
        let app = app.into_make_service_with_connect_info::<SocketAddr>();
        if let Err(e) = axum::serve(listener, app).await {
            tracing::error!(error = %e, "the log server stopped");
        }
    });
    tracing::info!(%url, "serving worker logs");
    Ok(LogServer { url, task })
}

/// `http://ADDR:PORT` of a bound address, with `host` for an unspecified one.
fn base_url(addr: SocketAddr, host: &str) -> String {
    let ip = if addr.ip().is_unspecified() {
        host.to_string()
    } else {
        addr.ip().to_string()
    };
    if ip.contains(':') && !ip.starts_with('[') {
        format!("http://[{ip}]:{}", addr.port())
    } else {
        format!("http://{ip}:{}", addr.port())
    }
}

/// The routes; with a secret, each requires it.
pub fn router(logs_dir: PathBuf, secret: Option<SecretDigest>) -> Router {
    let routes = Router::new()
        .route("/api/v1/log", get(log))
        .route("/api/v1/logs", get(list))
        .fallback(|uri: Uri| async move {
            error(StatusCode::NOT_FOUND, format!("no endpoint {}", uri.path()))
        })
        .with_state(Arc::new(logs_dir));
    tempest_server::secret::require(routes, secret)
}

fn error(status: StatusCode, message: String) -> Response {
    (status, Json(ErrorBody::new(message))).into_response()
}

/// The regular file named `name` directly in `dir`, if there is one. Names with a path
/// separator or a leading dot are refused before looking; the name must then be one the
/// directory lists as a regular file (not a symlink).
async fn find(dir: &Path, name: &str) -> Option<PathBuf> {
    let plausible = !name.is_empty()
        && name.len() <= 255
        && !name.starts_with('.')
        && !name.contains(['/', '\\', '\0']);
    if !plausible {
        return None;
    }
    let mut entries = tokio::fs::read_dir(dir).await.ok()?;
    while let Ok(Some(entry)) = entries.next_entry().await {
        if entry.file_name().to_str() == Some(name) {
            let is_file = entry.file_type().await.is_ok_and(|t| t.is_file());
            return is_file.then(|| entry.path());
        }
    }
    None
}

/// A byte parameter; the message of a 400 naming it when it is not a number.
fn byte_param(query: &HashMap<String, String>, key: &str) -> Result<Option<u64>, String> {
    query
        .get(key)
        .map(|v| {
            v.trim()
                .parse::<u64>()
                .map_err(|_| format!("{key} {v:?} is not a whole number of bytes"))
        })
        .transpose()
}

/// Reads `length` bytes from `start` (the tail without one); answers the file's size, the
/// actual start and the bytes.
async fn read_range(
    path: &Path,
    start: Option<u64>,
    length: u64,
) -> std::io::Result<(u64, u64, Vec<u8>)> {
    let mut file = tokio::fs::File::open(path).await?;
    let size = file.metadata().await?.len();
    let start = match start {
        Some(s) => s.min(size),
        None => size.saturating_sub(length),
    };
    let len = length.min(size - start);
    file.seek(SeekFrom::Start(start)).await?;
    let mut bytes = Vec::with_capacity(len as usize);
    file.take(len).read_to_end(&mut bytes).await?;
    Ok((size, start, bytes))
}

/// `GET /api/v1/log?file=&start=&length=`.
async fn log(
    State(dir): State<Arc<PathBuf>>,
    query: Result<Query<HashMap<String, String>>, axum::extract::rejection::QueryRejection>,
) -> Response {
    let Ok(Query(query)) = query else {
        return error(StatusCode::BAD_REQUEST, "the query does not decode".into());
    };
    let Some(name) = query.get("file") else {
        return error(
            StatusCode::BAD_REQUEST,
            "give the log's name: ?file=<topology>-<port>.log".into(),
        );
    };
    let (start, length) = match (byte_param(&query, "start"), byte_param(&query, "length")) {
        (Ok(s), Ok(l)) => (s, l.unwrap_or(DEFAULT_LENGTH)),
        (Err(e), _) | (_, Err(e)) => return error(StatusCode::BAD_REQUEST, e),
    };
    if length > MAX_LENGTH {
        return error(
            StatusCode::BAD_REQUEST,
            format!("length {length} is more than the limit of {MAX_LENGTH} bytes"),
        );
    }
    let Some(path) = find(&dir, name).await else {
        return error(StatusCode::NOT_FOUND, format!("no log file {name:?}"));
    };
    match read_range(&path, start, length).await {
        Ok((size, start, bytes)) => {
            let mut headers = HeaderMap::new();
            headers.insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("text/plain; charset=utf-8"),
            );
            headers.insert(FILE_SIZE_HEADER, HeaderValue::from(size));
            headers.insert(START_HEADER, HeaderValue::from(start));
            (headers, bytes).into_response()
        }
        Err(e) => {
            tracing::warn!(file = %path.display(), error = %e, "cannot read a worker log");
            error(
                StatusCode::INTERNAL_SERVER_ERROR,
                format!("cannot read log file {name:?}: {e}"),
            )
        }
    }
}

/// One file of `GET /api/v1/logs`.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct LogFile {
    name: String,
    size: u64,
    modified_secs: u64,
}

/// `GET /api/v1/logs`: the log files, by name.
async fn list(State(dir): State<Arc<PathBuf>>) -> Response {
    let mut files = Vec::new();
    if let Ok(mut entries) = tokio::fs::read_dir(dir.as_path()).await {
        while let Ok(Some(entry)) = entries.next_entry().await {
            if files.len() == MAX_LISTED {
                break;
            }
            let (Some(name), Ok(meta)) = (
                entry.file_name().to_str().map(str::to_string),
                entry.metadata().await,
            ) else {
                continue;
            };
            let is_file = entry.file_type().await.is_ok_and(|t| t.is_file());
            if !is_file || name.starts_with('.') {
                continue;
            }
            let modified_secs = meta
                .modified()
                .ok()
                .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
                .map_or(0, |d| d.as_secs());
            files.push(LogFile {
                name,
                size: meta.len(),
                modified_secs,
            });
        }
    }
    files.sort_by(|a, b| a.name.cmp(&b.name));
    Json(serde_json::json!({ "files": files })).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_name_the_host_for_unspecified_addresses() {
        let a: SocketAddr = "0.0.0.0:8000".parse().unwrap();
        assert_eq!(base_url(a, "node-a"), "http://node-a:8000");
        let a: SocketAddr = "127.0.0.1:8001".parse().unwrap();
        assert_eq!(base_url(a, "node-a"), "http://127.0.0.1:8001");
        let a: SocketAddr = "[::1]:8002".parse().unwrap();
        assert_eq!(base_url(a, "x"), "http://[::1]:8002");
    }
}
