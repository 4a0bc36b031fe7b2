//! Keeping a worker from taking over its host (`docs/design/security.md`): when the supervisor
//! runs as root, workers run as an unprivileged user (`worker_user`, Storm's
//! `supervisor.run.worker.as.user`) in a directory of their own, and optionally under a cgroup
//! memory limit (`worker_memory_limit_mb`, the topology's `topology.worker.max.heap.size.mb`),
//! with cgroup v2 where the memory controller is enabled, else cgroup v1's memory hierarchy,
//! else no limit and a log line saying why.

use std::path::{Path, PathBuf};

/// The default `worker_user`.
pub const DEFAULT_WORKER_USER: &str = "tempest-worker";

/// The unprivileged user workers run as.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WorkerUser {
    /// Its name.
    pub name: String,
    /// Its uid (never 0).
    pub uid: u32,
    /// Its primary group.
    pub gid: u32,
}

/// The user workers run as: `None` when the supervisor is not root (workers run as the
/// supervisor's own user) or `run_worker_as_user` is off; an error naming what to do when the
/// user does not exist or is root.
pub fn worker_user(run_as_user: bool, name: &str) -> Result<Option<WorkerUser>, String> {
    if !nix::unistd::geteuid().is_root() {
        tracing::info!("the supervisor is not root: workers run as its own user");
        return Ok(None);
    }
    if !run_as_user {
        tracing::warn!(
            "run_worker_as_user = false: workers run as root, so a topology's code can take over this host"
        );
        return Ok(None);
    }
    let user = nix::unistd::User::from_name(name)
        .map_err(|e| format!("cannot look up worker_user {name:?}: {e}"))?
        .ok_or_else(|| {
            format!(
                "worker_user {name:?} does not exist on this host: create it \
                 (useradd --system --no-create-home --shell /usr/sbin/nologin {name}), name \
                 another one with worker_user, or set run_worker_as_user = false to run workers \
                 as root (their code could then take over this host)"
            )
        })?;
    if user.uid.is_root() {
        return Err(format!(
            "worker_user {name:?} is root (uid 0); name an unprivileged user"
        ));
    }
    tracing::info!(
        user = name,
        uid = user.uid.as_raw(),
        gid = user.gid.as_raw(),
        "workers run as an unprivileged user"
    );
    Ok(Some(WorkerUser {
        name: name.to_string(),
        uid: user.uid.as_raw(),
        gid: user.gid.as_raw(),
    }))
}

/// Makes `dir` (and its missing parents) owned by `user` with mode 700, so only that user
/// (and root) can enter it.
pub fn give_dir(dir: &Path, user: &WorkerUser) -> std::io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::create_dir_all(dir)?;
    std::os::unix::fs::chown(dir, Some(user.uid), Some(user.gid))?;
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))
}

/// Where worker memory limits are set.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MemoryCgroups {
    /// cgroup v2: `<dir>` is this supervisor's cgroup of workers, with the memory controller on
    /// for its children (`<dir>/<port>/memory.max`).
    V2(PathBuf),
    /// cgroup v1's memory hierarchy: `<dir>/<port>/memory.limit_in_bytes`.
    V1(PathBuf),
    /// No memory controller this supervisor can use: why.
    Unavailable(String),
}

/// The mount points of cgroup v2 and of cgroup v1's memory controller, from
/// `/proc/self/mountinfo` text.
fn cgroup_mounts(mountinfo: &str) -> (Option<PathBuf>, Option<PathBuf>) {
    let mut v2 = None;
    let mut v1_memory = None;
    for line in mountinfo.lines() {
        // ... mount_point ... - fstype source super_options
        let Some((left, right)) = line.split_once(" - ") else {
            continue;
        };
        let mount_point = left.split(' ').nth(4);
        let mut r = right.split(' ');
        let fstype = r.next();
        let options = r.nth(1).unwrap_or_default();
        match (fstype, mount_point) {
            (Some("cgroup2"), Some(m)) if v2.is_none() => v2 = Some(PathBuf::from(m)),
            (Some("cgroup"), Some(m))
                if v1_memory.is_none() && options.split(',').any(|o| o == "memory") =>
            {
                v1_memory = Some(PathBuf::from(m))
            }
            _ => {}
        }
    }
    (v2, v1_memory)
}

/// This process's cgroup paths from `/proc/self/cgroup` text: the v2 one (`0::PATH`) and the
/// v1 memory one (`N:...memory...:PATH`).
fn own_cgroups(text: &str) -> (Option<String>, Option<String>) {
    let mut v2 = None;
    let mut v1 = None;
    for line in text.lines() {
        let mut parts = line.splitn(3, ':');
        let (Some(_), Some(controllers), Some(path)) = (parts.next(), parts.next(), parts.next())
        else {
            continue;
        };
        if controllers.is_empty() {
            v2 = Some(path.to_string());
        } else if controllers.split(',').any(|c| c == "memory") {
            v1 = Some(path.to_string());
        }
    }
    (v2, v1)
}

/// `mount` joined with a cgroup path (`/a/b`).
fn under(mount: &Path, path: &str) -> PathBuf {
    mount.join(path.trim_start_matches('/'))
}

/// Finds a memory controller for this supervisor's workers and makes their parent cgroup,
/// `tempest-<supervisor id>` under the supervisor's own cgroup (so the workers stay inside
/// whatever limits the supervisor itself runs under).
pub fn memory_cgroups(supervisor_id: &str) -> MemoryCgroups {
    let name: String = supervisor_id
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' {
                c
            } else {
                '_'
            }
        })
        .collect();
    let name = format!("tempest-{name}");
    let mountinfo = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    let own = std::fs::read_to_string("/proc/self/cgroup").unwrap_or_default();
    let (v2_mount, v1_mount) = cgroup_mounts(&mountinfo);
    let (v2_path, v1_path) = own_cgroups(&own);
    let mut why = Vec::new();
    if let (Some(mount), Some(path)) = (&v2_mount, &v2_path) {
        let dir = under(mount, path);
        let controllers =
            std::fs::read_to_string(dir.join("cgroup.controllers")).unwrap_or_default();
        if controllers.split_whitespace().any(|c| c == "memory") {
            let parent = dir.join(&name);
            let made = std::fs::write(dir.join("cgroup.subtree_control"), "+memory")
                .and_then(|()| std::fs::create_dir_all(&parent))
                .and_then(|()| std::fs::write(parent.join("cgroup.subtree_control"), "+memory"));
            match made {
                Ok(()) => return MemoryCgroups::V2(parent),
                Err(e) => why.push(format!(
                    "cgroup v2 at {}: cannot enable the memory controller for children ({e}; a \
                     supervisor needs a cgroup of its own delegated to it, e.g. systemd's Delegate=yes)",
                    dir.display()
                )),
            }
        } else {
            why.push(format!(
                "cgroup v2 at {} has no memory controller (cgroup.controllers: {:?})",
                dir.display(),
                controllers.trim()
            ));
        }
    } else {
        why.push("no cgroup v2 mount".into());
    }
    if let (Some(mount), Some(path)) = (&v1_mount, &v1_path) {
        let parent = under(mount, path).join(&name);
        match std::fs::create_dir_all(&parent) {
            Ok(()) => return MemoryCgroups::V1(parent),
            Err(e) => why.push(format!(
                "cgroup v1 memory: cannot create {}: {e}",
                parent.display()
            )),
        }
    } else {
        why.push("no cgroup v1 memory hierarchy".into());
    }
    MemoryCgroups::Unavailable(why.join("; "))
}

impl MemoryCgroups {
    /// Puts process `pid` (the worker on `port`) under a limit of `limit_mb` MiB; the cgroup's
    /// directory.
    pub fn limit(&self, port: u16, pid: u32, limit_mb: u64) -> Result<PathBuf, String> {
        let bytes = limit_mb.saturating_mul(1 << 20).to_string();
        let (dir, files): (&Path, &[&str]) = match self {
            MemoryCgroups::V2(dir) => (dir, &["memory.max"]),
            // memsw (memory + swap) exists only with swap accounting; set after the memory
            // limit (it may not be below it), so swap does not lift the limit.
            MemoryCgroups::V1(dir) => (
                dir,
                &["memory.limit_in_bytes", "memory.memsw.limit_in_bytes"],
            ),
            MemoryCgroups::Unavailable(why) => return Err(why.clone()),
        };
        let cgroup = dir.join(port.to_string());
        let fail = |what: &str, e: std::io::Error| format!("{what} {}: {e}", cgroup.display());
        match std::fs::create_dir(&cgroup) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
            Err(e) => return Err(fail("cannot create", e)),
        }
        for (i, file) in files.iter().enumerate() {
            let path = cgroup.join(file);
            if i > 0 && !path.exists() {
                continue;
            }
            std::fs::write(&path, &bytes).map_err(|e| fail(&format!("cannot set {file} of"), e))?;
        }
        std::fs::write(cgroup.join("cgroup.procs"), pid.to_string())
            .map_err(|e| fail(&format!("cannot move worker {pid} into"), e))?;
        Ok(cgroup)
    }

    /// Logs, once at start, where limits go or why there are none.
    pub fn log(&self) {
        match self {
            MemoryCgroups::V2(dir) => tracing::info!(cgroup = %dir.display(), "worker memory limits: cgroup v2"),
            MemoryCgroups::V1(dir) => tracing::info!(cgroup = %dir.display(), "worker memory limits: cgroup v1 memory controller"),
            MemoryCgroups::Unavailable(why) => tracing::warn!(
                "worker memory limits are not available on this host, workers run without one: {why}"
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mounts_and_own_cgroups_are_found() {
        let mountinfo = "\
30 24 0:26 / /sys/fs/cgroup/unified rw,nosuid - cgroup2 cgroup2 rw,nsdelegate
31 24 0:27 / /sys/fs/cgroup/memory rw,nosuid - cgroup cgroup rw,memory
32 24 0:28 / /sys/fs/cgroup/cpu,cpuacct rw,nosuid - cgroup cgroup rw,cpu,cpuacct
";
        let (v2, v1) = cgroup_mounts(mountinfo);
        assert_eq!(v2, Some(PathBuf::from("/sys/fs/cgroup/unified")));
        assert_eq!(v1, Some(PathBuf::from("/sys/fs/cgroup/memory")));
        let own = "4:memory:/process_api/abc\n2:cpu,cpuacct:/\n0::/\n";
        assert_eq!(
            own_cgroups(own),
            (Some("/".to_string()), Some("/process_api/abc".to_string()))
        );
        assert_eq!(
            under(Path::new("/sys/fs/cgroup/memory"), "/process_api/abc"),
            PathBuf::from("/sys/fs/cgroup/memory/process_api/abc")
        );
        assert_eq!(cgroup_mounts("garbage\n"), (None, None));
    }

    #[test]
    fn without_a_controller_a_limit_says_why() {
        let none = MemoryCgroups::Unavailable("no cgroup v2 mount".into());
        assert_eq!(none.limit(6700, 1, 64).unwrap_err(), "no cgroup v2 mount");
    }
}
