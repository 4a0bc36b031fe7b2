//! Asks a topology binary for its spec: runs `BINARY spec`, which prints the
//! `tempest_protocol::TopologySpec` as JSON on stdout. Bounded in time and output, since the binary
//! is whatever the user named.

use crate::error::CliError;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;
use tempest_protocol::TopologySpec;
use tokio::io::{AsyncRead, AsyncReadExt};

/// How long `BINARY spec` may take.
const SPEC_TIMEOUT: Duration = Duration::from_secs(60);
/// Most stdout read from `BINARY spec` (a spec is a few KiB).
const MAX_SPEC_BYTES: u64 = 16 << 20;
/// Most stderr kept from `BINARY spec` (for the error message).
const MAX_STDERR_BYTES: u64 = 64 << 10;

/// Runs `binary spec` and parses the spec it prints.
pub(crate) async fn read_spec(binary: &Path) -> Result<TopologySpec, CliError> {
    let shown = binary.display();
    if !binary.is_file() {
        return Err(CliError::Usage(format!(
            "topology binary {shown} is not a file; build it first (e.g. cargo build --release)"
        )));
    }
    let mut child = tokio::process::Command::new(runnable(binary))
        .arg("spec")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| CliError::Failed(format!("cannot run `{shown} spec`: {e}")))?;
    let (Some(stdout), Some(stderr)) = (child.stdout.take(), child.stderr.take()) else {
        return Err(CliError::Failed(format!(
            "cannot run `{shown} spec`: no pipes to it"
        )));
    };
    let run = async {
        let (out, err, status) = tokio::join!(
            read_bounded(stdout, MAX_SPEC_BYTES),
            read_bounded(stderr, MAX_STDERR_BYTES),
            child.wait()
        );
        (out, err, status)
    };
    let (out, err, status) = tokio::time::timeout(SPEC_TIMEOUT, run).await.map_err(|_| {
        CliError::Failed(format!(
            "`{shown} spec` did not finish within {}s; is it a Tempest topology binary?",
            SPEC_TIMEOUT.as_secs()
        ))
    })?;
    let status = status.map_err(|e| CliError::Failed(format!("cannot run `{shown} spec`: {e}")))?;
    let io = |e: std::io::Error| CliError::Failed(format!("reading from `{shown} spec`: {e}"));
    let (out, err) = (out.map_err(io)?, err.map_err(io)?);
    if !status.success() {
        let why = telling_line(&String::from_utf8_lossy(&err.bytes));
        return Err(CliError::Failed(format!(
            "`{shown} spec` failed ({status}){}; a topology binary must end its main with \
             topology_api::entry::main, which provides `spec`",
            if why.is_empty() {
                String::new()
            } else {
                format!(": {why}")
            }
        )));
    }
    if out.truncated {
        return Err(CliError::Failed(format!(
            "`{shown} spec` printed more than {} MiB; is it a Tempest topology binary?",
            MAX_SPEC_BYTES >> 20
        )));
    }
    parse_spec(&String::from_utf8_lossy(&out.bytes))
        .map_err(|e| CliError::Failed(format!("`{shown} spec` {e}")))
}

/// `binary` as a path `Command` will not look up in `PATH` (`word_count` -> `./word_count`).
fn runnable(binary: &Path) -> PathBuf {
    if binary.components().count() == 1 && binary.is_relative() {
        Path::new(".").join(binary)
    } else {
        binary.to_path_buf()
    }
}

/// What was read from a pipe, and whether there was more than the limit.
struct Bounded {
    bytes: Vec<u8>,
    truncated: bool,
}

/// Reads at most `limit` bytes, then drains (and drops) the rest so the child never blocks.
async fn read_bounded(mut r: impl AsyncRead + Unpin, limit: u64) -> std::io::Result<Bounded> {
    let mut bytes = Vec::new();
    (&mut r).take(limit).read_to_end(&mut bytes).await?;
    let rest = tokio::io::copy(&mut r, &mut tokio::io::sink()).await?;
    Ok(Bounded {
        bytes,
        truncated: rest > 0,
    })
}

/// Parses the spec from the binary's stdout. The whole output should be the JSON; if log lines
/// came first, the JSON is taken from the first line that starts with `{`.
pub(crate) fn parse_spec(stdout: &str) -> Result<TopologySpec, String> {
    let text = stdout.trim();
    if text.is_empty() {
        return Err("printed nothing; expected the topology spec as JSON".to_string());
    }
    let first_error = match serde_json::from_str::<TopologySpec>(text) {
        Ok(spec) => return Ok(spec),
        Err(e) => e,
    };
    let mut offset = 0;
    for line in stdout.split_inclusive('\n') {
        if offset > 0 && line.trim_start().starts_with('{') {
            if let Ok(spec) = serde_json::from_str::<TopologySpec>(stdout[offset..].trim()) {
                return Ok(spec);
            }
        }
        offset += line.len();
    }
    Err(format!(
        "did not print a topology spec as JSON: {first_error} (output began with {:?})",
        text.chars().take(60).collect::<String>()
    ))
}

/// The line of a failed run's stderr that says most: the first mentioning an error, else the
/// first non-empty one; without terminal colour codes.
fn telling_line(stderr: &str) -> String {
    let plain = strip_ansi(stderr);
    let lines: Vec<&str> = plain
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect();
    lines
        .iter()
        .find(|l| l.to_ascii_lowercase().contains("error"))
        .or(lines.first())
        .map(|l| l.chars().take(300).collect())
        .unwrap_or_default()
}

/// Removes ANSI escape sequences (`ESC [ ... letter`).
fn strip_ansi(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            if chars.peek() == Some(&'[') {
                chars.next();
                for c in chars.by_ref() {
                    if c.is_ascii_alphabetic() {
                        break;
                    }
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use tempest_protocol::Config;

    fn spec_json() -> String {
        serde_json::to_string_pretty(&TopologySpec {
            name: "wc".into(),
            config: Config::new().with_workers(2),
            components: vec![],
        })
        .unwrap()
    }

    #[test]
    fn the_spec_is_the_whole_output() {
        let spec = parse_spec(&format!("{}\n", spec_json())).unwrap();
        assert_eq!(spec.name, "wc");
    }

    #[test]
    fn log_lines_before_the_spec_are_skipped() {
        let out = format!(
            "2026-01-01T00:00:00Z  INFO starting {{not json\n{}\n",
            spec_json()
        );
        assert_eq!(parse_spec(&out).unwrap().name, "wc");
    }

    #[test]
    fn anything_else_is_refused_with_what_it_printed() {
        let e = parse_spec("hello world\n").unwrap_err();
        assert!(e.contains("did not print a topology spec"), "{e}");
        assert!(e.contains("hello world"), "{e}");
        assert!(parse_spec("  \n").unwrap_err().contains("printed nothing"));
    }

    #[test]
    fn the_error_line_of_stderr_is_kept_without_colours() {
        let stderr = "\n\u{1b}[31merror:\u{1b}[0m unrecognized subcommand 'spec'\n\nUsage: x\n";
        assert_eq!(
            telling_line(stderr),
            "error: unrecognized subcommand 'spec'"
        );
        assert_eq!(telling_line("boom\n"), "boom");
        assert_eq!(telling_line(""), "");
    }

    #[test]
    fn bare_names_run_from_the_current_directory() {
        assert_eq!(runnable(Path::new("wc")), PathBuf::from("./wc"));
        assert_eq!(runnable(Path::new("/bin/wc")), PathBuf::from("/bin/wc"));
        assert_eq!(runnable(Path::new("t/wc")), PathBuf::from("t/wc"));
    }
}
