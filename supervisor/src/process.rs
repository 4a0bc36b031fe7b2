//! Worker processes: starting one (its own process group, output appended to its log, the
//! secret in its environment), signalling its group, and telling whether it still lives —
//! by reaping it if it is our child, by `/proc/<pid>` if it was adopted.

use nix::sys::signal::{kill, killpg, Signal};
use nix::unistd::Pid;
use std::ffi::OsString;
use std::os::unix::ffi::OsStringExt;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use tempest_protocol::auth::{worker_credential, SECRET_ENV, TOKEN_ENV};
use tokio::process::{Child, Command};

/// Everything needed to start one worker.
#[derive(Debug, Clone)]
pub struct WorkerLaunch {
    /// The topology binary.
    pub artifact: PathBuf,
    /// The topology's name (in the process title).
    pub topology: String,
    /// The assignment file passed as `--assignment`.
    pub assignment_file: PathBuf,
    /// `--host`.
    pub host: String,
    /// `--port`.
    pub port: u16,
    /// `--nimbus`.
    pub nimbus: String,
    /// The cluster secret: the worker gets the credential derived from it
    /// ([`worker_credential`]) as `TEMPEST_SECRET` in its environment (never on its command
    /// line), not the secret itself, which is admin on Nimbus.
    pub secret: Option<String>,
    /// Where stdout and stderr are appended.
    pub log_file: PathBuf,
    /// The worker's working directory (and `HOME` when it runs as `user`).
    pub work_dir: PathBuf,
    /// The unprivileged user it runs as, if any (the supervisor is root).
    pub user: Option<crate::isolation::WorkerUser>,
}

impl WorkerLaunch {
    /// The arguments after the program:
    /// `worker --assignment FILE --host H --port P --nimbus URL`.
    pub fn args(&self) -> Vec<OsString> {
        vec![
            "worker".into(),
            "--assignment".into(),
            self.assignment_file.clone().into_os_string(),
            "--host".into(),
            self.host.clone().into(),
            "--port".into(),
            self.port.to_string().into(),
            "--nimbus".into(),
            self.nimbus.clone().into(),
        ]
    }

    /// The worker's `argv[0]`, which `ps` shows: `tempest-worker:<topology>:<port>` (the binary
    /// itself is a sha256 path).
    pub fn title(&self) -> String {
        format!("tempest-worker:{}:{}", self.topology, self.port)
    }

    /// Starts the worker in its own process group, so that signals to the supervisor's group
    /// (a Ctrl-C, a crash) do not reach it.
    pub fn spawn(&self) -> std::io::Result<Child> {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log_file)?;
        let mut cmd = Command::new(&self.artifact);
        cmd.arg0(self.title())
            .args(self.args())
            .current_dir(&self.work_dir)
            .stdin(Stdio::null())
            .stdout(Stdio::from(log.try_clone()?))
            .stderr(Stdio::from(log))
            .process_group(0)
            .kill_on_drop(false);
        match &self.secret {
            Some(s) => cmd.env(SECRET_ENV, worker_credential(s)),
            None => cmd.env_remove(SECRET_ENV),
        };
        // A user's token the supervisor may have been started with is not the worker's.
        cmd.env_remove(TOKEN_ENV);
        if let Some(user) = &self.user {
            // std drops root's supplementary groups (setgroups) before setuid.
            cmd.uid(user.uid)
                .gid(user.gid)
                .env("HOME", &self.work_dir)
                .env("USER", &user.name)
                .env("LOGNAME", &user.name);
        }
        cmd.spawn()
    }
}

/// A running worker process: our child, or one adopted after a supervisor restart.
#[derive(Debug)]
pub enum WorkerProcess {
    /// Started by this supervisor; reaped with `try_wait`.
    Child {
        /// The handle.
        child: Child,
        /// Its pid (kept: `Child::id` forgets it once reaped).
        pid: u32,
    },
    /// Started by an earlier supervisor process; watched through `/proc`.
    Adopted {
        /// Its pid.
        pid: u32,
        /// Its start time (clock ticks after boot, `/proc/<pid>/stat` field 22), which tells
        /// it apart from a later process that reuses the pid.
        start_time: u64,
    },
}

impl WorkerProcess {
    /// Wraps a freshly spawned child.
    pub fn child(child: Child) -> Option<Self> {
        let pid = child.id()?;
        Some(WorkerProcess::Child { child, pid })
    }

    /// Its pid.
    pub fn pid(&self) -> u32 {
        match self {
            WorkerProcess::Child { pid, .. } | WorkerProcess::Adopted { pid, .. } => *pid,
        }
    }

    /// `None` while it lives; once it is gone, how it ended. Reaps a child, so no zombie stays.
    pub fn poll_exit(&mut self) -> Option<String> {
        match self {
            WorkerProcess::Child { child, pid } => match child.try_wait() {
                Ok(None) => None,
                Ok(Some(status)) => Some(status.to_string()),
                Err(e) => {
                    tracing::warn!(pid = *pid, error = %e, "cannot reap worker; checking /proc");
                    (!is_alive(*pid)).then(|| "gone".to_string())
                }
            },
            WorkerProcess::Adopted { pid, start_time } => match proc_stat(*pid) {
                Some(stat) if stat.state != 'Z' && stat.start_time == *start_time => None,
                _ => Some("gone".to_string()),
            },
        }
    }

    /// Sends `signal` to the worker's process group (the worker and whatever it started).
    /// Does nothing if the process is gone, or if an adopted pid now names another process.
    pub fn signal(&self, signal: Signal) {
        let result = match self {
            // Not reaped yet (we reap only in poll_exit), so the pid and group are still ours.
            WorkerProcess::Child { pid, .. } => killpg(Pid::from_raw(*pid as i32), signal),
            WorkerProcess::Adopted { pid, start_time } => match proc_stat(*pid) {
                Some(stat) if stat.start_time == *start_time => {
                    if stat.pgrp == *pid as i32 {
                        killpg(Pid::from_raw(*pid as i32), signal)
                    } else {
                        kill(Pid::from_raw(*pid as i32), signal)
                    }
                }
                _ => Ok(()),
            },
        };
        match result {
            Ok(()) | Err(nix::errno::Errno::ESRCH) => {}
            Err(e) => tracing::warn!(pid = self.pid(), %signal, error = %e, "cannot signal worker"),
        }
    }
}

/// The parts of `/proc/<pid>/stat` the supervisor uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProcStat {
    /// State letter (`R`, `S`, `Z`, ...).
    pub state: char,
    /// Process group id.
    pub pgrp: i32,
    /// Start time in clock ticks after boot.
    pub start_time: u64,
}

/// Reads `/proc/<pid>/stat`; `None` if there is no such process.
pub fn proc_stat(pid: u32) -> Option<ProcStat> {
    if pid == 0 {
        return None;
    }
    let text = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    parse_stat(&text)
}

/// Parses a `/proc/<pid>/stat` line. The command name (field 2) may hold spaces and
/// parentheses, so fields are counted from its last `)`.
pub fn parse_stat(text: &str) -> Option<ProcStat> {
    let rest = &text[text.rfind(')')? + 1..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // fields[0] is field 3 (state), fields[2] field 5 (pgrp), fields[19] field 22 (starttime).
    Some(ProcStat {
        state: fields.first()?.chars().next()?,
        pgrp: fields.get(2)?.parse().ok()?,
        start_time: fields.get(19)?.parse().ok()?,
    })
}

/// Whether a process with this pid exists and is not a zombie.
pub fn is_alive(pid: u32) -> bool {
    proc_stat(pid).is_some_and(|s| s.state != 'Z')
}

/// The command line of a process (`/proc/<pid>/cmdline`), one entry per argument.
pub fn proc_cmdline(pid: u32) -> Option<Vec<OsString>> {
    let bytes = std::fs::read(format!("/proc/{pid}/cmdline")).ok()?;
    if bytes.is_empty() {
        return None;
    }
    let trimmed = bytes.strip_suffix(&[0]).unwrap_or(&bytes);
    Some(
        trimmed
            .split(|b| *b == 0)
            .map(|a| OsString::from_vec(a.to_vec()))
            .collect(),
    )
}

/// The binary a process runs (`/proc/<pid>/exe`).
pub fn proc_exe(pid: u32) -> Option<PathBuf> {
    std::fs::read_link(format!("/proc/{pid}/exe")).ok()
}

/// Whether a process running `exe` with `cmdline` runs `artifact` in worker mode on `port`:
/// the artifact is the binary (its `argv[0]` is a title), or an interpreter's first or second
/// argument (a `#!` script); `worker` follows, with `--port <port>` among the rest.
pub fn is_worker_cmdline(
    exe: Option<&Path>,
    cmdline: &[OsString],
    artifact: &Path,
    port: u16,
) -> bool {
    let port = port.to_string();
    let same_file =
        |a: &Path| a == artifact || std::fs::canonicalize(artifact).is_ok_and(|c| c == a);
    let worker_args_from = |i: usize| {
        cmdline.get(i).is_some_and(|a| a == "worker")
            && cmdline[i + 1..]
                .windows(2)
                .any(|w| w[0] == "--port" && w[1] == port.as_str())
    };
    (exe.is_some_and(same_file) && worker_args_from(1))
        || (0..cmdline.len().min(3))
            .any(|i| Path::new(&cmdline[i]) == artifact && worker_args_from(i + 1))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_lines_with_odd_command_names_parse() {
        let line = "1234 (my (odd) worker) S 1 1234 1234 0 -1 4194560 100 0 0 0 5 3 0 0 20 0 \
                    4 0 987654 1000000 200 18446744073709551615";
        assert_eq!(
            parse_stat(line),
            Some(ProcStat {
                state: 'S',
                pgrp: 1234,
                start_time: 987654
            })
        );
        assert_eq!(parse_stat("garbage"), None);
        assert_eq!(parse_stat("1 (x) S 1"), None);
    }

    #[test]
    fn this_process_is_alive_and_has_a_command_line() {
        let me = std::process::id();
        assert!(is_alive(me));
        assert!(proc_cmdline(me).is_some_and(|c| !c.is_empty()));
        assert!(!is_alive(0));
    }

    #[test]
    fn worker_command_lines_are_recognised() {
        let art = Path::new("/d/artifacts/abc");
        let args = |v: &[&str]| v.iter().map(OsString::from).collect::<Vec<_>>();
        let titled = args(&[
            "tempest-worker:wc:6700",
            "worker",
            "--assignment",
            "f",
            "--port",
            "6700",
        ]);
        assert!(is_worker_cmdline(Some(art), &titled, art, 6700));
        assert!(!is_worker_cmdline(Some(art), &titled, art, 6701));
        let other_binary = Path::new("/d/artifacts/abd");
        assert!(!is_worker_cmdline(Some(other_binary), &titled, art, 6700));
        let direct = args(&["/d/artifacts/abc", "worker", "--port", "6700"]);
        assert!(is_worker_cmdline(None, &direct, art, 6700));
        let script = args(&["/bin/sh", "/d/artifacts/abc", "worker", "--port", "6700"]);
        assert!(is_worker_cmdline(
            Some(Path::new("/bin/sh")),
            &script,
            art,
            6700
        ));
        let local = args(&["/d/artifacts/abc", "local", "--port", "6700"]);
        assert!(!is_worker_cmdline(Some(art), &local, art, 6700));
        let other = args(&["sleep", "60"]);
        assert!(!is_worker_cmdline(None, &other, art, 6700));
        assert!(!is_worker_cmdline(None, &[], art, 6700));
    }
}
