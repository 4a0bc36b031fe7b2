//! One running subprocess of a shell component: started in its working directory, greeted
//! with the handshake, its stdout read as framed messages by a reader task, its stderr copied
//! into the worker's log (the last lines kept for error reports).

use crate::protocol::{self, ShellMsg, END};
use crate::ShellCommand;
use futures_util::StreamExt;
use serde_json::Value as Json;
use std::collections::VecDeque;
use std::path::PathBuf;
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::io::AsyncWriteExt;
use tokio::process::{Child, ChildStdin, Command};
use tokio::sync::mpsc;
use tokio_util::codec::{FramedRead, LinesCodec};
use topology_api::TopologyContext;

/// The longest line read from a subprocess (a longer one is a fault, not a memory problem).
const MAX_LINE: usize = 16 * 1024 * 1024;
/// Messages read ahead of the component.
const INCOMING_QUEUE: usize = 256;
/// The shortest wait for a subprocess's pid answer.
const HANDSHAKE_MIN: Duration = Duration::from_secs(30);
/// How many of the last stderr lines a fault report quotes.
const STDERR_TAIL: usize = 20;

/// What the reader task passes on.
#[derive(Debug)]
pub(crate) enum Incoming {
    /// A well-formed command.
    Msg(Box<ShellMsg>),
    /// A message that is not one: the offending text and why.
    Malformed { text: String, error: String },
    /// Stdout ended or failed: the subprocess is gone (or closed it).
    Closed { error: String },
}

/// Something that wants to hear when a message is waiting (the bolt's event queue).
pub(crate) type Waker = Box<dyn Fn() + Send + Sync>;

/// A live subprocess.
pub(crate) struct ShellProcess {
    pub child: Child,
    pub pid: u32,
    pub stdin: ChildStdin,
    pub incoming: mpsc::Receiver<Incoming>,
    stderr_tail: Arc<Mutex<VecDeque<String>>>,
    pub started: tokio::time::Instant,
}

impl std::fmt::Debug for ShellProcess {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ShellProcess")
            .field("pid", &self.pid)
            .finish_non_exhaustive()
    }
}

/// Why a subprocess could not be started.
#[derive(Debug, thiserror::Error)]
pub enum LaunchError {
    /// The program could not be run.
    #[error("cannot start {command} in {dir}: {source}")]
    Spawn {
        /// The command line.
        command: String,
        /// Its working directory.
        dir: String,
        /// The OS error.
        source: std::io::Error,
    },
    /// The handshake did not complete.
    #[error(
        "{command} (pid {pid}) did not complete the handshake: {reason}; last stderr: {stderr}"
    )]
    Handshake {
        /// The command line.
        command: String,
        /// Its pid.
        pid: u32,
        /// What went wrong.
        reason: String,
        /// Its last stderr lines.
        stderr: String,
    },
    /// The component's files could not be put in place.
    #[error("cannot prepare the working directory {dir}: {source}")]
    Dir {
        /// The directory.
        dir: String,
        /// The error.
        source: std::io::Error,
    },
}

impl ShellProcess {
    /// Starts `command` in `dir`, sends the handshake and waits for its `{"pid": N}` (at most
    /// `timeout`, and no less than [`HANDSHAKE_MIN`]: interpreters start slowly on a busy host).
    pub(crate) async fn launch(
        command: &ShellCommand,
        dir: PathBuf,
        ctx: &TopologyContext,
        timeout: Duration,
        waker: Option<Arc<Waker>>,
    ) -> Result<ShellProcess, LaunchError> {
        let component = ctx.component_id().to_string();
        let task = ctx.task_id();
        let pid_dir = dir.join(".pids").join(task.to_string());
        std::fs::create_dir_all(&pid_dir).map_err(|source| LaunchError::Dir {
            dir: pid_dir.display().to_string(),
            source,
        })?;
        let mut child = Command::new(&command.program)
            .args(&command.args)
            .current_dir(&dir)
            .envs(command.env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .map_err(|source| LaunchError::Spawn {
                command: command.to_string(),
                dir: dir.display().to_string(),
                source,
            })?;
        let os_pid = child.id().unwrap_or(0);
        let stdin = child.stdin.take().expect("stdin was piped");
        let stdout = child.stdout.take().expect("stdout was piped");
        let stderr = child.stderr.take().expect("stderr was piped");
        let stderr_tail = Arc::new(Mutex::new(VecDeque::new()));
        tokio::spawn(copy_stderr(
            stderr,
            component.clone(),
            task,
            os_pid,
            stderr_tail.clone(),
        ));
        let (tx, incoming) = mpsc::channel(INCOMING_QUEUE);
        let (pid_tx, pid_rx) = tokio::sync::oneshot::channel();
        tokio::spawn(read_stdout(stdout, tx, pid_tx, waker));
        let mut p = ShellProcess {
            child,
            pid: os_pid,
            stdin,
            incoming,
            stderr_tail,
            started: tokio::time::Instant::now(),
        };
        let hello = protocol::frame(&protocol::handshake(ctx, &pid_dir.display().to_string()));
        let fail = |p: &ShellProcess, reason: String| LaunchError::Handshake {
            command: command.to_string(),
            pid: os_pid,
            reason,
            stderr: p.stderr_tail(),
        };
        if let Err(e) = p.stdin.write_all(&hello).await {
            return Err(fail(&p, format!("writing the handshake failed: {e}")));
        }
        let timeout = timeout.max(HANDSHAKE_MIN);
        let answer = match tokio::time::timeout(timeout, pid_rx).await {
            Err(_) => Err(format!("no {{\"pid\": N}} within {timeout:?}")),
            Ok(Err(_)) => Err("its stdout closed before it sent its pid".to_string()),
            Ok(Ok(Err(e))) => Err(e),
            Ok(Ok(Ok(json))) => match json.get("pid").and_then(Json::as_u64) {
                Some(pid) => Ok(pid as u32),
                None => Err(format!("expected {{\"pid\": N}}, got {json}")),
            },
        };
        match answer {
            Ok(pid) => {
                p.pid = pid;
                if !pid_dir.join(pid.to_string()).exists() {
                    tracing::warn!(component, task, pid, dir = %pid_dir.display(), "the subprocess did not create its pid file");
                }
                tracing::info!(component, task, pid, command = %command, "launched subprocess");
                Ok(p)
            }
            Err(reason) => {
                let _ = p.child.start_kill();
                // Let the stderr copier catch the subprocess's last words.
                tokio::time::sleep(Duration::from_millis(50)).await;
                Err(fail(&p, reason))
            }
        }
    }

    /// Writes one framed message.
    pub(crate) async fn write(&mut self, msg: &Json) -> std::io::Result<()> {
        self.stdin.write_all(&protocol::frame(msg)).await
    }

    /// The last lines the subprocess wrote to stderr, joined (or "(none)").
    pub(crate) fn stderr_tail(&self) -> String {
        let tail = self.stderr_tail.lock().unwrap_or_else(|e| e.into_inner());
        if tail.is_empty() {
            "(none)".to_string()
        } else {
            tail.iter().cloned().collect::<Vec<_>>().join(" | ")
        }
    }

    /// Kills the subprocess; says how it ended (its exit status if it had exited) and what
    /// its last stderr lines were.
    pub(crate) async fn kill(mut self) -> (String, String) {
        let status = match self.child.try_wait() {
            Ok(Some(status)) => format!("it had exited ({status})"),
            _ => {
                let _ = self.child.start_kill();
                match tokio::time::timeout(Duration::from_secs(2), self.child.wait()).await {
                    Ok(Ok(status)) => format!("killed ({status})"),
                    _ => "kill sent".to_string(),
                }
            }
        };
        // Give the stderr copier a moment to take the last lines.
        tokio::time::sleep(Duration::from_millis(20)).await;
        (status, self.stderr_tail())
    }
}

/// Reads stdout: frames of lines up to `end`; the first is the handshake answer (any JSON),
/// the rest commands.
async fn read_stdout(
    stdout: tokio::process::ChildStdout,
    tx: mpsc::Sender<Incoming>,
    pid_tx: tokio::sync::oneshot::Sender<Result<Json, String>>,
    waker: Option<Arc<Waker>>,
) {
    let mut lines = FramedRead::new(stdout, LinesCodec::new_with_max_length(MAX_LINE));
    let mut pid_tx = Some(pid_tx);
    let mut text = String::new();
    loop {
        let incoming = match lines.next().await {
            None => Incoming::Closed {
                error: if text.is_empty() {
                    "its stdout closed (the subprocess exited?)".to_string()
                } else {
                    format!("its stdout closed in the middle of a message: {text:?}")
                },
            },
            Some(Err(e)) => Incoming::Closed {
                error: format!("reading its stdout failed: {e}"),
            },
            Some(Ok(line)) if line == END => {
                let msg = std::mem::take(&mut text);
                if let Some(pid_tx) = pid_tx.take() {
                    let _ =
                        pid_tx
                            .send(serde_json::from_str(&msg).map_err(|e| {
                                format!("its first message {msg:?} is not JSON: {e}")
                            }));
                    continue;
                }
                match ShellMsg::parse(&msg) {
                    Ok(m) => Incoming::Msg(Box::new(m)),
                    Err(e) => Incoming::Malformed {
                        text: msg,
                        error: e.to_string(),
                    },
                }
            }
            Some(Ok(line)) => {
                if !text.is_empty() {
                    text.push('\n');
                }
                text.push_str(&line);
                continue;
            }
        };
        let closed = matches!(incoming, Incoming::Closed { .. });
        if let (Some(pid_tx), Incoming::Closed { error }) = (pid_tx.take(), &incoming) {
            let _ = pid_tx.send(Err(error.clone()));
            return;
        }
        if tx.send(incoming).await.is_err() {
            return;
        }
        if let Some(w) = &waker {
            w();
        }
        if closed {
            return;
        }
    }
}

/// Copies stderr into the worker's log, line by line, keeping the last lines.
async fn copy_stderr(
    stderr: tokio::process::ChildStderr,
    component: String,
    task: u32,
    pid: u32,
    tail: Arc<Mutex<VecDeque<String>>>,
) {
    let mut lines = FramedRead::new(stderr, LinesCodec::new_with_max_length(64 * 1024));
    while let Some(line) = lines.next().await {
        let line = match line {
            Ok(l) => l,
            Err(tokio_util::codec::LinesCodecError::MaxLineLengthExceeded) => {
                "(a stderr line longer than 64 KiB was cut)".to_string()
            }
            Err(_) => break,
        };
        tracing::warn!(component, task, pid, "subprocess stderr: {line}");
        let mut t = tail.lock().unwrap_or_else(|e| e.into_inner());
        if t.len() == STDERR_TAIL {
            t.pop_front();
        }
        t.push_back(line);
    }
}
