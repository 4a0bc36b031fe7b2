//! The audit log: one JSON line per change made through the API (submit, upload, kill,
//! rebalance, activate, deactivate, debug, log levels...) and per refused request, with who,
//! what, which topology, the outcome and when. Appended to `<data_dir>/audit.jsonl` and logged
//! under the tracing target `audit`. Credentials never appear in it: only the name they
//! belong to.

use serde::Serialize;
use std::path::{Path, PathBuf};
use std::time::SystemTime;
use tokio::io::AsyncWriteExt;
use tokio::sync::Mutex;

/// The file name of the audit log in Nimbus's data dir.
pub(crate) const AUDIT_FILE: &str = "audit.jsonl";

/// One audited request.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct AuditLine {
    /// The user (`cluster-secret`, `worker`, `anonymous` on an open cluster, `unauthenticated`
    /// when no known credential was sent).
    pub(crate) who: String,
    /// Its role, if it was identified.
    pub(crate) role: Option<String>,
    /// What was asked: submit, upload, kill, rebalance, activate, deactivate, ...
    pub(crate) action: String,
    /// The topology it was about, if any.
    pub(crate) topology: Option<String>,
    /// The HTTP method.
    pub(crate) method: String,
    /// The path (without the query).
    pub(crate) path: String,
    /// `ok`, `failed` (the change was allowed but did not happen), `forbidden` (403) or
    /// `unauthorized` (401).
    pub(crate) outcome: String,
    /// The HTTP status answered.
    pub(crate) status: u16,
    /// The peer's address.
    pub(crate) peer: String,
    /// Why it was refused.
    pub(crate) detail: Option<String>,
}

#[derive(Serialize)]
struct Stamped<'a> {
    /// RFC 3339, UTC, milliseconds.
    ts: String,
    #[serde(flatten)]
    line: &'a AuditLine,
}

/// The audit log of one Nimbus.
#[derive(Debug)]
pub(crate) struct Audit {
    path: PathBuf,
    file: Mutex<tokio::fs::File>,
}

impl Audit {
    /// Opens (appends to) `<data_dir>/audit.jsonl`.
    pub(crate) async fn open(data_dir: &Path) -> std::io::Result<Self> {
        let path = data_dir.join(AUDIT_FILE);
        let file = tokio::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .await?;
        Ok(Audit {
            path,
            file: Mutex::new(file),
        })
    }

    /// Writes `line`, stamped now, to the file and to the `audit` tracing target. A failed
    /// write is logged as an error and does not fail the request.
    pub(crate) async fn write(&self, line: AuditLine) {
        let stamped = Stamped {
            ts: humantime::format_rfc3339_millis(SystemTime::now()).to_string(),
            line: &line,
        };
        let Ok(mut text) = serde_json::to_string(&stamped) else {
            return;
        };
        tracing::info!(target: "audit", "{text}");
        text.push('\n');
        let mut f = self.file.lock().await;
        let written = async {
            f.write_all(text.as_bytes()).await?;
            f.flush().await
        }
        .await;
        if let Err(e) = written {
            tracing::error!(path = %self.path.display(), error = %e, "cannot write the audit log");
        }
    }
}
