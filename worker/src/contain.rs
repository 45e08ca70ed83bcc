//! What a task starts dies with it. Every command a workload starts (`exec`)
//! runs in a process group of its own and, where the machine allows it (root,
//! a writable cgroup v2 hierarchy), in a cgroup v2 leaf of its own, which also
//! holds whatever escapes the group (a double fork plus `setsid`). When the
//! command's shell exits, is cancelled or times out, the whole leaf
//! (`cgroup.kill`, or every pid in `cgroup.procs`) and the whole group get
//! SIGKILL before the shell is reaped (so the group id cannot have been
//! reused). Each command is also registered with the worker's reaper
//! ([`crate::reaper`]) from inside the child before it leaves its parent's
//! group, so it dies with the worker however the worker ends.
//!
//! The leaves live in `<own cgroup>/brigade-<worker pid>/<pid>-<n>`, where
//! `<pid>` is the process that started the command (the worker, or one of its
//! executor children), so killing an executor can take its commands' leaves
//! with it ([`kill_owner`]). A worker starting up removes the directories of
//! workers that are gone.

use std::ffi::CString;
use std::os::fd::{AsFd, AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use crate::reaper;

/// The environment variable that hands executor children the worker's
/// cgroup directory.
pub const CGROUP_DIR_ENV: &str = "BRIGADE_CGROUP_DIR";

/// Where this process makes its commands' cgroup leaves; `None`: process
/// groups only.
static CGROUP_DIR: OnceLock<Option<PathBuf>> = OnceLock::new();
static LEAF_SEQ: AtomicU64 = AtomicU64::new(0);
/// How long a killed leaf gets to empty before it is left for the next
/// worker start to remove.
const LEAF_EMPTY_WAIT: Duration = Duration::from_millis(500);

/// How commands are contained in this process.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Containment {
    /// A cgroup v2 leaf per command under this directory, plus its own group.
    Cgroup(PathBuf),
    /// A process group per command only, and why not a cgroup.
    ProcessGroups(String),
}

/// The worker's choice, made once per process: a cgroup directory of its
/// own if the machine allows it (logged either way). Later calls return the
/// first answer.
pub fn init_worker() -> Containment {
    let dir = CGROUP_DIR.get_or_init(|| match worker_cgroup_dir() {
        Ok(dir) => {
            tracing::info!(cgroup = %dir.display(), "commands tasks start run in cgroup v2 leaves of their own");
            Some(dir)
        }
        Err(why) => {
            tracing::warn!(reason = %why, "no cgroup v2 containment: commands tasks start run in process groups of their own (a command that calls setsid escapes them)");
            PROCESS_GROUPS_WHY.get_or_init(|| why);
            None
        }
    });
    containment(dir)
}

static PROCESS_GROUPS_WHY: OnceLock<String> = OnceLock::new();

fn containment(dir: &Option<PathBuf>) -> Containment {
    match dir {
        Some(d) => Containment::Cgroup(d.clone()),
        None => Containment::ProcessGroups(
            PROCESS_GROUPS_WHY
                .get()
                .cloned()
                .unwrap_or_else(|| "not set up in this process".into()),
        ),
    }
}

/// An executor child's choice: the worker's directory, if it handed one over.
pub fn init_executor() {
    CGROUP_DIR.get_or_init(|| {
        let dir = PathBuf::from(std::env::var_os(CGROUP_DIR_ENV)?);
        dir.join("cgroup.procs").exists().then_some(dir)
    });
}

/// The directory of this process's leaves, if it has one.
pub fn cgroup_dir() -> Option<&'static Path> {
    CGROUP_DIR.get().and_then(|d| d.as_deref())
}

fn worker_cgroup_dir() -> Result<PathBuf, String> {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        return Err("not running as root".into());
    }
    let mountinfo = std::fs::read_to_string("/proc/self/mountinfo")
        .map_err(|e| format!("cannot read /proc/self/mountinfo: {e}"))?;
    let (root, mount) = cgroup2_mount(&mountinfo)
        .ok_or("no cgroup v2 hierarchy is mounted (cgroup v1 only, or none)")?;
    let own = std::fs::read_to_string("/proc/self/cgroup")
        .map_err(|e| format!("cannot read /proc/self/cgroup: {e}"))?;
    let own = own
        .lines()
        .find_map(|l| l.strip_prefix("0::"))
        .ok_or("this process is in no cgroup v2 group")?;
    let rel = own.strip_prefix(root.as_str()).unwrap_or(own);
    let parent = Path::new(&mount).join(rel.trim_start_matches('/'));
    if !parent.join("cgroup.procs").exists() {
        return Err(format!("{} is not a cgroup v2 directory", parent.display()));
    }
    remove_stale(&parent);
    let dir = parent.join(format!("brigade-{}", std::process::id()));
    match std::fs::create_dir(&dir) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
        Err(e) => return Err(format!("cannot create {}: {e}", dir.display())),
    }
    if let Err(why) = probe(&dir) {
        let _ = std::fs::remove_dir(&dir);
        return Err(why);
    }
    Ok(dir)
}

/// The cgroup v2 mount to use (root within the hierarchy, mount point),
/// `/sys/fs/cgroup` first.
fn cgroup2_mount(mountinfo: &str) -> Option<(String, String)> {
    // ID PARENT MAJ:MIN ROOT MOUNT-POINT OPTIONS... - FSTYPE SOURCE ...
    let mut found: Vec<(String, String)> = mountinfo
        .lines()
        .filter_map(|line| {
            let (fields, fs) = line.split_once(" - ")?;
            if fs.split_whitespace().next()? != "cgroup2" {
                return None;
            }
            let f: Vec<&str> = fields.split_whitespace().collect();
            Some((f.get(3)?.to_string(), f.get(4)?.to_string()))
        })
        .collect();
    found.sort_by_key(|(_, mount)| mount != "/sys/fs/cgroup");
    found.into_iter().next()
}

/// Moves a short-lived child into a leaf of `dir`, the way commands will be:
/// a hierarchy where that fails (delegation, the no-internal-process rule)
/// is no use.
fn probe(dir: &Path) -> Result<(), String> {
    let leaf = Leaf::create_in(dir).map_err(|e| format!("cannot create a leaf cgroup: {e}"))?;
    let mut cmd = std::process::Command::new("/bin/true");
    let procs = leaf.procs.clone();
    // SAFETY: the closure only calls async-signal-safe functions.
    unsafe {
        cmd.pre_exec(move || join_leaf(&procs));
    }
    let ran = cmd.status();
    leaf.remove();
    match ran {
        Ok(s) if s.success() => Ok(()),
        Ok(s) => Err(format!(
            "a probe process could not join a leaf cgroup ({s})"
        )),
        Err(e) => Err(format!("a probe process could not join a leaf cgroup: {e}")),
    }
}

/// Kills what is left in the directories of brigade workers that are gone
/// and removes them.
fn remove_stale(parent: &Path) {
    let Ok(entries) = std::fs::read_dir(parent) else {
        return;
    };
    for e in entries.flatten() {
        let name = e.file_name();
        let Some(pid) = name
            .to_str()
            .and_then(|n| n.strip_prefix("brigade-"))
            .and_then(|p| p.parse::<u32>().ok())
        else {
            continue;
        };
        if Path::new(&format!("/proc/{pid}")).exists() {
            continue;
        }
        let dir = e.path();
        if let Ok(leaves) = std::fs::read_dir(&dir) {
            for leaf in leaves.flatten().filter(|l| l.path().is_dir()) {
                kill_cgroup(&leaf.path());
                remove_when_empty(&leaf.path());
            }
        }
        match std::fs::remove_dir(&dir) {
            Ok(()) => {
                tracing::info!(cgroup = %dir.display(), "removed the cgroup of a worker that is gone")
            }
            Err(e) => {
                tracing::warn!(cgroup = %dir.display(), error = %e, "cannot remove the cgroup of a worker that is gone")
            }
        }
    }
}

/// SIGKILL to every process in the cgroup `dir` and below: `cgroup.kill`
/// where the kernel has it (5.14+), else each pid in `cgroup.procs` (and
/// in the leaves below) until none is left.
pub fn kill_cgroup(dir: &Path) {
    if std::fs::write(dir.join("cgroup.kill"), b"1").is_ok() {
        return;
    }
    let deadline = Instant::now() + LEAF_EMPTY_WAIT;
    loop {
        let mut found = false;
        for d in std::iter::once(dir.to_path_buf()).chain(subdirs(dir)) {
            let procs = std::fs::read_to_string(d.join("cgroup.procs")).unwrap_or_default();
            for pid in procs.lines().filter_map(|l| l.trim().parse::<i32>().ok()) {
                found = true;
                // SAFETY: kill(2) on a pid read from the cgroup; no memory involved.
                unsafe {
                    libc::kill(pid, libc::SIGKILL);
                }
            }
        }
        if !found || Instant::now() >= deadline {
            return;
        }
        std::thread::sleep(Duration::from_millis(1));
    }
}

fn subdirs(dir: &Path) -> Vec<PathBuf> {
    std::fs::read_dir(dir)
        .map(|r| {
            r.flatten()
                .map(|e| e.path())
                .filter(|p| p.is_dir())
                .collect()
        })
        .unwrap_or_default()
}

/// Removes a cgroup once its killed processes are gone (bounded wait).
pub fn remove_when_empty(dir: &Path) {
    let deadline = Instant::now() + LEAF_EMPTY_WAIT;
    while std::fs::remove_dir(dir).is_err() && dir.exists() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(1));
    }
}

/// Kills the commands `owner` (an executor child, killed or dead) started:
/// their leaves, and through the reaper their process groups.
pub fn kill_owner(owner: u32) {
    reaper::owner_gone(owner);
    let Some(dir) = cgroup_dir() else {
        return;
    };
    let prefix = format!("{owner}-");
    for leaf in subdirs(dir) {
        let mine = leaf
            .file_name()
            .and_then(|n| n.to_str())
            .is_some_and(|n| n.starts_with(&prefix));
        if mine {
            // The reaper removes it once empty; never wait here (callers
            // are on the event loop).
            kill_cgroup(&leaf);
            let _ = std::fs::remove_dir(&leaf);
        }
    }
}

/// Removes this process's empty leaves (a clean shutdown).
pub fn remove_empty_leaves() {
    if let Some(dir) = cgroup_dir() {
        for leaf in subdirs(dir) {
            let _ = std::fs::remove_dir(leaf);
        }
    }
}

/// One command's cgroup leaf.
#[derive(Debug)]
struct Leaf {
    path: PathBuf,
    /// `path/cgroup.procs`, ready for the child to open after fork.
    procs: CString,
}

impl Leaf {
    fn create_in(dir: &Path) -> std::io::Result<Leaf> {
        let n = LEAF_SEQ.fetch_add(1, Ordering::Relaxed);
        let path = dir.join(format!("{}-{n}", std::process::id()));
        std::fs::create_dir(&path)?;
        let procs = CString::new(path.join("cgroup.procs").as_os_str().as_bytes())
            .map_err(std::io::Error::other)?;
        Ok(Leaf { path, procs })
    }

    fn remove(&self) {
        remove_when_empty(&self.path);
    }
}

/// In the child after fork: moves itself into the leaf. Async-signal-safe.
fn join_leaf(procs: &CString) -> std::io::Result<()> {
    // SAFETY: open/write/close on a NUL-terminated path and a stack buffer.
    unsafe {
        let fd = libc::open(procs.as_ptr(), libc::O_WRONLY | libc::O_CLOEXEC);
        if fd < 0 {
            return Err(std::io::Error::last_os_error());
        }
        let rc = libc::write(fd, b"0".as_ptr().cast(), 1);
        let err = std::io::Error::last_os_error();
        libc::close(fd);
        if rc != 1 {
            return Err(err);
        }
    }
    Ok(())
}

/// A command about to be spawned: its leaf (if any) and the message that
/// registers it with the reaper, written from the child.
#[derive(Debug)]
pub struct Prepared {
    leaf: Option<Leaf>,
}

/// Sets `cmd` up to be contained: in the child, after fork and before exec,
/// it joins a fresh cgroup leaf (where there are cgroups), registers with
/// the reaper, and only then leaves its parent's process group for one of
/// its own — so a parent killed at any moment in between leaves nothing
/// behind. Spawn it, then hand the child's pid to [`Prepared::spawned`].
pub fn prepare(cmd: &mut std::process::Command) -> Prepared {
    let leaf = cgroup_dir().and_then(|dir| match Leaf::create_in(dir) {
        Ok(l) => Some(l),
        Err(e) => {
            tracing::warn!(cgroup = %dir.display(), error = %e, "cannot create a cgroup leaf for a command; it runs in its own process group only");
            None
        }
    });
    let procs = leaf.as_ref().map(|l| l.procs.clone());
    let registration = reaper::Registration::new(leaf.as_ref().map(|l| l.path.as_path()));
    // SAFETY: the closure only calls async-signal-safe functions (open,
    // write, close, getpid, setpgid) on data prepared before the fork.
    unsafe {
        cmd.pre_exec(move || {
            if let Some(procs) = &procs {
                join_leaf(procs)?;
            }
            registration.send_from_child();
            if libc::setpgid(0, 0) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    Prepared { leaf }
}

impl Prepared {
    /// The spawned command, contained: dropping it kills what is left.
    pub fn spawned(self, pid: u32) -> Contained {
        Contained {
            pid: pid as i32,
            leaf: self.leaf,
            pidfd: pidfd_open(pid),
            group_killed: AtomicBool::new(false),
        }
    }

    /// The spawn failed: remove the leaf.
    pub fn abandon(self) {
        if let Some(l) = self.leaf {
            l.remove();
        }
    }
}

fn pidfd_open(pid: u32) -> Option<OwnedFd> {
    // SAFETY: pidfd_open takes a pid and flags and returns a new fd or -1.
    let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid as libc::pid_t, 0) };
    // SAFETY: a non-negative result is a fresh fd nobody else owns.
    (fd >= 0).then(|| unsafe { OwnedFd::from_raw_fd(fd as RawFd) })
}

/// How waiting for a command's shell ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ended {
    Exited,
    TimedOut,
    Interrupted,
}

/// A running command's shell (the leader of its group) and its leaf. Kill
/// it (and all it started) with [`Contained::kill`] before reaping the
/// shell; dropping it kills it too (if not yet killed) and removes the leaf.
#[derive(Debug)]
pub struct Contained {
    pid: i32,
    leaf: Option<Leaf>,
    pidfd: Option<OwnedFd>,
    group_killed: AtomicBool,
}

impl Contained {
    /// SIGKILL to everything the command started: its leaf and its group.
    /// Call while the shell is still unreaped (its pid, the group's id,
    /// cannot have been reused): after it exited, or instead of waiting.
    pub fn kill(&self) {
        if let Some(leaf) = &self.leaf {
            kill_cgroup(&leaf.path);
        }
        if !self.group_killed.swap(true, Ordering::Relaxed) {
            // SAFETY: kill(2) on our own unreaped child's group.
            unsafe {
                libc::kill(-self.pid, libc::SIGKILL);
            }
        }
    }

    /// Blocks until the shell exits (without reaping it), `deadline` passes
    /// or `interrupt` is raised.
    pub fn wait_exit(&self, deadline: Option<Instant>, interrupt: Option<&Interrupt>) -> Ended {
        loop {
            if interrupt.is_some_and(Interrupt::is_raised) {
                return Ended::Interrupted;
            }
            let left = match deadline {
                Some(d) => match d.checked_duration_since(Instant::now()) {
                    Some(left) if !left.is_zero() => Some(left),
                    _ => return Ended::TimedOut,
                },
                None => None,
            };
            let Some(pidfd) = &self.pidfd else {
                // No pidfd (a kernel before 5.3): look every few ms.
                if exited_unreaped(self.pid) {
                    return Ended::Exited;
                }
                std::thread::sleep(left.map_or(Duration::from_millis(5), |l| {
                    l.min(Duration::from_millis(5))
                }));
                continue;
            };
            let mut fds = [
                libc::pollfd {
                    fd: pidfd.as_raw_fd(),
                    events: libc::POLLIN,
                    revents: 0,
                },
                libc::pollfd {
                    fd: interrupt.map_or(-1, |i| i.fd.as_raw_fd()),
                    events: libc::POLLIN,
                    revents: 0,
                },
            ];
            let ms = left.map_or(-1, |l| l.as_millis().clamp(1, i32::MAX as u128) as i32);
            // SAFETY: `fds` is a valid array of two pollfds for the call.
            let n = unsafe { libc::poll(fds.as_mut_ptr(), 2, ms) };
            if n > 0 && fds[0].revents != 0 {
                return Ended::Exited;
            }
        }
    }

    /// Completes when the shell exits (without reaping it).
    pub async fn exited(&self) {
        if let Some(pidfd) = &self.pidfd {
            // SAFETY: the pidfd stays open, the same file, for longer than
            // the AsyncFd (dropped at the end of this call; `self` owns it).
            let registered = unsafe {
                tokio::io::unix::AsyncFd::register_with_interest(
                    pidfd.as_fd(),
                    tokio::io::Interest::READABLE,
                )
            };
            if let Ok(fd) = registered {
                let _ = fd.readable().await;
                return;
            }
        }
        while !exited_unreaped(self.pid) {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }
}

impl Drop for Contained {
    fn drop(&mut self) {
        self.kill();
        reaper::unwatch(self.pid as u32);
        if let Some(leaf) = &self.leaf {
            leaf.remove();
        }
    }
}

/// Whether `pid` (our child) has exited, without reaping it.
pub(crate) fn exited_unreaped(pid: i32) -> bool {
    // SAFETY: siginfo_t is plain data; zeroed is a valid value for it.
    let mut info: libc::siginfo_t = unsafe { std::mem::zeroed() };
    // SAFETY: `info` is valid and writable for the call.
    let rc = unsafe {
        libc::waitid(
            libc::P_PID,
            pid as libc::id_t,
            &mut info,
            libc::WEXITED | libc::WNOHANG | libc::WNOWAIT,
        )
    };
    // SAFETY: si_pid is set by waitid (0 when nothing has exited).
    rc == 0 && unsafe { info.si_pid() } != 0
}

/// A signal from outside to a blocking slot's running task: its job was
/// cancelled. An eventfd, so a command's wait can poll it with the shell.
#[derive(Debug)]
pub struct Interrupt {
    fd: OwnedFd,
    raised: AtomicBool,
}

impl Interrupt {
    pub fn new() -> std::io::Result<Interrupt> {
        // SAFETY: eventfd returns a new fd or -1.
        let fd = unsafe { libc::eventfd(0, libc::EFD_CLOEXEC | libc::EFD_NONBLOCK) };
        if fd < 0 {
            return Err(std::io::Error::last_os_error());
        }
        Ok(Interrupt {
            // SAFETY: a fresh fd nobody else owns.
            fd: unsafe { OwnedFd::from_raw_fd(fd) },
            raised: AtomicBool::new(false),
        })
    }

    pub fn raise(&self) {
        self.raised.store(true, Ordering::SeqCst);
        let one = 1u64.to_ne_bytes();
        // SAFETY: writes 8 bytes from a valid buffer to our eventfd.
        unsafe {
            libc::write(self.fd.as_raw_fd(), one.as_ptr().cast(), 8);
        }
    }

    pub fn is_raised(&self) -> bool {
        self.raised.load(Ordering::SeqCst)
    }

    /// Lowers it for the next task. Called before every task on a thread
    /// slot: the eventfd is read (a syscall) only when it was raised.
    /// `raise` and `reset` run under the slot's job lock, so the flag and
    /// the eventfd's count change together.
    pub fn reset(&self) {
        if !self.raised.swap(false, Ordering::SeqCst) {
            return;
        }
        let mut buf = [0u8; 8];
        // SAFETY: reads up to 8 bytes into a valid buffer (non-blocking).
        unsafe {
            libc::read(self.fd.as_raw_fd(), buf.as_mut_ptr().cast(), 8);
        }
    }
}

/// Ties a child to the thread that spawns it: PR_SET_PDEATHSIG(SIGKILL) in
/// the child, then a check that the parent did not die before that (the
/// signal would never come). For children that must not outlive their
/// parent: executors, `brigade up`'s workers.
pub fn die_with_parent(cmd: &mut tokio::process::Command) {
    // SAFETY: getpid has no preconditions.
    let parent = unsafe { libc::getpid() };
    // SAFETY: the closure only calls prctl and getppid, both async-signal-safe.
    unsafe {
        cmd.pre_exec(move || {
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL, 0, 0, 0) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            if libc::getppid() != parent {
                return Err(std::io::Error::other(
                    "the parent died before the child started",
                ));
            }
            Ok(())
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_cgroup2_mount_is_found_with_its_root() {
        let hybrid = "30 22 0:26 / /sys/fs/cgroup rw - tmpfs tmpfs rw\n\
                      35 30 0:30 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw\n\
                      36 30 0:31 / /sys/fs/cgroup/cpu rw - cgroup cgroup rw,cpu\n";
        assert_eq!(
            cgroup2_mount(hybrid),
            Some(("/".into(), "/sys/fs/cgroup/unified".into()))
        );
        let pure = "35 30 0:30 /kubepods /sys/fs/cgroup rw - cgroup2 cgroup2 rw\n\
                    36 30 0:30 / /mnt/other rw - cgroup2 cgroup2 rw\n";
        assert_eq!(
            cgroup2_mount(pure),
            Some(("/kubepods".into(), "/sys/fs/cgroup".into()))
        );
        assert_eq!(cgroup2_mount("1 2 0:1 / / rw - ext4 /dev/x rw\n"), None);
    }

    #[test]
    fn an_interrupt_ends_a_wait_and_is_lowered_for_the_next_task() {
        let i = Interrupt::new().unwrap();
        let mut cmd = std::process::Command::new("/bin/sleep");
        cmd.arg("30");
        let prepared = prepare(&mut cmd);
        let child = cmd.spawn().unwrap();
        let c = prepared.spawned(child.id());
        i.raise();
        assert_eq!(c.wait_exit(None, Some(&i)), Ended::Interrupted);
        i.reset();
        let soon = Instant::now() + Duration::from_millis(50);
        assert_eq!(c.wait_exit(Some(soon), Some(&i)), Ended::TimedOut);
        c.kill();
        assert_eq!(c.wait_exit(None, Some(&i)), Ended::Exited);
        drop(c);
        let mut child = child;
        assert!(!child.wait().unwrap().success());
    }
}
