//! How the CLI fails: a usage error (exit 2, like clap's own) or a failed operation (exit 1),
//! each reported as one line on stderr.

use crate::config::NimbusSource;
use std::process::ExitCode;
use tempest_client::ClientError;

/// Why a command did not do what it was asked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum CliError {
    /// The command line or the config file is wrong: exit code 2.
    Usage(String),
    /// Nimbus refused, could not be reached, or a local step failed: exit code 1.
    Failed(String),
}

impl CliError {
    /// Prints `error: <message>` on one line of stderr and returns the exit code.
    pub(crate) fn report(&self) -> ExitCode {
        let (message, code) = match self {
            CliError::Usage(m) => (m, 2),
            CliError::Failed(m) => (m, 1),
        };
        eprintln!("error: {}", one_line(message));
        ExitCode::from(code)
    }

    /// A client error, with a hint on what to check where one helps.
    pub(crate) fn from_client(e: ClientError, nimbus_from: &NimbusSource) -> Self {
        match &e {
            ClientError::BadUrl { .. } => CliError::Usage(format!("{e} (from {nimbus_from})")),
            ClientError::Unreachable { url, reason } => CliError::Failed(format!(
                "cannot reach Nimbus at {url}: {} (is Nimbus running there? the address came \
                 from {nimbus_from})",
                transport_reason(url, reason)
            )),
            ClientError::Api { status: 401, .. } => CliError::Failed(format!(
                "{e}; set TEMPEST_TOKEN (or `token` in [client]) to your user token, or TEMPEST_SECRET (or `secret` in the config file) to the cluster's secret"
            )),
            _ => CliError::Failed(e.to_string()),
        }
    }
}

/// A transport error without what the client adds around it: the URL again (it is already in
/// the message) and hyper's `client error (Connect)`.
fn transport_reason(url: &str, reason: &str) -> String {
    let prefix = format!("error sending request for url ({url})");
    let reason = reason.strip_prefix(&prefix).unwrap_or(reason);
    let reason = reason.trim_start_matches(':').trim();
    reason.replace("client error (Connect): ", "")
}

/// Folds a multi-line message into one line: a line ending in `:` runs into the next, other
/// lines are separated by `; `, and list bullets (`- `) are dropped.
pub(crate) fn one_line(message: &str) -> String {
    let mut out = String::new();
    for line in message.lines() {
        let line = line.trim();
        let line = line.strip_prefix("- ").unwrap_or(line);
        if line.is_empty() {
            continue;
        }
        if !out.is_empty() {
            out.push_str(if out.ends_with(':') { " " } else { "; " });
        }
        out.push_str(line);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn multi_line_messages_become_one_line() {
        assert_eq!(
            one_line("invalid topology (2 problems):\n  - a is bad\n  - b is bad\n"),
            "invalid topology (2 problems): a is bad; b is bad"
        );
        assert_eq!(one_line("just one"), "just one");
        assert_eq!(one_line("x\r\n\r\ny"), "x; y");
    }

    #[test]
    fn unreachable_says_why_once() {
        let url = "http://127.0.0.1:1/api/v1/topology/summary";
        let e = CliError::from_client(
            ClientError::Unreachable {
                url: url.into(),
                reason: format!(
                    "error sending request for url ({url}): client error (Connect): tcp connect \
                     error: Connection refused (os error 111)"
                ),
            },
            &NimbusSource::Flag,
        );
        assert_eq!(
            e,
            CliError::Failed(format!(
                "cannot reach Nimbus at {url}: tcp connect error: Connection refused (os error \
                 111) (is Nimbus running there? the address came from --nimbus)"
            ))
        );
    }

    #[test]
    fn missing_secret_gets_a_hint() {
        let e = CliError::from_client(
            ClientError::Api {
                what: "the list".into(),
                status: 401,
                message: "missing or wrong cluster secret".into(),
            },
            &NimbusSource::Default,
        );
        let CliError::Failed(m) = e else {
            panic!("{e:?}")
        };
        assert!(
            m.contains("(HTTP 401); set TEMPEST_TOKEN") && m.contains("TEMPEST_SECRET"),
            "{m}"
        );
    }
}
