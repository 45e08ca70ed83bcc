//! The worker's reaper: a small process of its own (the executor program in
//! the `reaper` role, detached from the worker so it is nobody's child) that
//! outlives the worker just long enough to kill what its tasks started.
//!
//! It reads one pipe. Every command a task starts (in the worker or in an
//! executor child) writes `w PID OWNER LEAF` into it from the child, after
//! fork and before it leaves its parent's process group; `u PID` once it was
//! killed and reaped; the worker writes `d OWNER` after killing an executor
//! (kill what that executor started). When the pipe ends — every holder of
//! its write end is gone: the worker, however it ended, and its executors,
//! which die with it (PR_SET_PDEATHSIG) — the reaper SIGKILLs every group
//! (and cgroup leaf) still registered, and exits. Lines are shorter than
//! PIPE_BUF, so writers never interleave.

use std::collections::HashMap;
use std::io::BufRead;
use std::os::fd::{FromRawFd, RawFd};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::atomic::{AtomicI32, Ordering};
use std::sync::OnceLock;

use crate::contain;

/// Set (to `reaper`) when the executor program is started as the reaper.
pub const ROLE_ENV: &str = "BRIGADE_EXECUTOR_ROLE";
/// The reaper role's value of [`ROLE_ENV`].
pub const ROLE: &str = "reaper";
/// The write end's fd number, handed to executor children.
pub const FD_ENV: &str = "BRIGADE_REAPER_FD";

/// The pipe's write end in this process (-1: no reaper).
static FD: AtomicI32 = AtomicI32::new(-1);
/// Longest line a child writes (PIPE_BUF is at least 4096 on Linux).
const MAX_LINE: usize = 4000;

/// Starts the reaper for this worker process (once; later calls do
/// nothing). Without one, commands that outlive a SIGKILLed worker are not
/// killed: that is logged.
pub fn start(program: &Path, args: &[String]) {
    static STARTED: OnceLock<()> = OnceLock::new();
    STARTED.get_or_init(|| match spawn(program, args) {
        Ok(fd) => {
            FD.store(fd, Ordering::SeqCst);
            tracing::debug!(program = %program.display(), "reaper started");
        }
        Err(e) => tracing::error!(program = %program.display(), error = %e, "cannot start the reaper: commands tasks start will outlive this worker if it is killed"),
    });
}

fn spawn(program: &Path, args: &[String]) -> std::io::Result<RawFd> {
    let mut fds = [-1; 2];
    // SAFETY: pipe2 fills two fds into a valid array.
    if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: fresh fds nobody else owns.
    let read = unsafe { std::fs::File::from_raw_fd(fds[0]) };
    let mut cmd = std::process::Command::new(program);
    if let Some(dir) = contain::cgroup_dir() {
        // Removed by the reaper once empty, after the worker.
        cmd.env(contain::CGROUP_DIR_ENV, dir);
    }
    let status = cmd
        .args(args)
        .env(ROLE_ENV, ROLE)
        .stdin(Stdio::from(read))
        .stdout(Stdio::null())
        // Terminal signals to the worker's group must not reach it.
        .process_group(0)
        .status();
    match status {
        // It detached itself: its first process exits at once.
        Ok(s) if s.success() => Ok(fds[1]),
        other => {
            // SAFETY: our own fd, closed once.
            unsafe {
                libc::close(fds[1]);
            }
            Err(match other {
                Ok(s) => std::io::Error::other(format!("it exited with {s}")),
                Err(e) => e,
            })
        }
    }
}

/// In an executor child: take over the write end the worker handed down,
/// closed on exec so the commands it starts do not hold it.
pub fn init_executor() {
    let Some(fd) = std::env::var(FD_ENV)
        .ok()
        .and_then(|v| v.parse::<RawFd>().ok())
    else {
        return;
    };
    // SAFETY: fcntl on an fd number; fails harmlessly if it is not open.
    if unsafe { libc::fcntl(fd, libc::F_SETFD, libc::FD_CLOEXEC) } == 0 {
        FD.store(fd, Ordering::SeqCst);
    }
}

/// Hands the write end to an executor child (open across its exec).
pub fn inherit(cmd: &mut tokio::process::Command) {
    let fd = FD.load(Ordering::SeqCst);
    if fd < 0 {
        return;
    }
    cmd.env(FD_ENV, fd.to_string());
    // SAFETY: the closure only calls fcntl, async-signal-safe, on the
    // child's own copy of the fd table.
    unsafe {
        cmd.pre_exec(move || {
            if libc::fcntl(fd, libc::F_SETFD, 0) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
}

fn send(line: &str) {
    let fd = FD.load(Ordering::SeqCst);
    if fd >= 0 {
        // SAFETY: writes a valid buffer; one write of < PIPE_BUF is atomic.
        unsafe {
            libc::write(fd, line.as_ptr().cast(), line.len());
        }
    }
}

/// The command `pid` was killed and reaped.
pub fn unwatch(pid: u32) {
    send(&format!("u {pid}\n"));
}

/// The executor `owner` is gone: kill what it started.
pub fn owner_gone(owner: u32) {
    send(&format!("d {owner}\n"));
}

/// A command's registration, prepared before fork and sent from the child.
#[derive(Debug)]
pub struct Registration {
    fd: RawFd,
    /// ` OWNER LEAF\n`, after the child's pid.
    tail: Vec<u8>,
}

impl Registration {
    pub fn new(leaf: Option<&Path>) -> Registration {
        let leaf = leaf
            .and_then(|l| l.to_str())
            .filter(|l| l.len() < MAX_LINE - 64 && !l.contains(char::is_whitespace))
            .unwrap_or("-");
        Registration {
            fd: FD.load(Ordering::SeqCst),
            tail: format!(" {} {leaf}\n", std::process::id()).into_bytes(),
        }
    }

    /// In the child after fork: `w PID OWNER LEAF`. Async-signal-safe: a
    /// stack buffer, getpid, one write.
    pub fn send_from_child(&self) {
        if self.fd < 0 {
            return;
        }
        let mut buf = [0u8; MAX_LINE];
        buf[0] = b'w';
        buf[1] = b' ';
        let mut len = 2;
        // SAFETY: getpid has no preconditions.
        let mut pid = unsafe { libc::getpid() } as u32;
        let mut digits = [0u8; 10];
        let mut n = 0;
        loop {
            digits[n] = b'0' + (pid % 10) as u8;
            n += 1;
            pid /= 10;
            if pid == 0 {
                break;
            }
        }
        for d in digits[..n].iter().rev() {
            buf[len] = *d;
            len += 1;
        }
        let tail = &self.tail[..self.tail.len().min(MAX_LINE - len)];
        buf[len..len + tail.len()].copy_from_slice(tail);
        len += tail.len();
        // SAFETY: writes `len` initialised bytes of a stack buffer.
        unsafe {
            libc::write(self.fd, buf.as_ptr().cast(), len);
        }
    }
}

/// The reaper's main loop (the executor program with [`ROLE_ENV`] set):
/// detaches from the worker, then reads registrations until the pipe ends
/// and kills what is still registered. Returns the exit code.
pub fn serve() -> i32 {
    // SAFETY: still single-threaded here; the parent only calls _exit.
    match unsafe { libc::fork() } {
        -1 => return 1,
        0 => {}
        // SAFETY: _exit is always safe to call.
        _ => unsafe { libc::_exit(0) },
    }
    // SAFETY: setsid and signal(SIG_IGN) have no memory preconditions.
    unsafe {
        libc::setsid();
        for sig in [libc::SIGINT, libc::SIGTERM, libc::SIGHUP, libc::SIGQUIT] {
            libc::signal(sig, libc::SIG_IGN);
        }
    }
    let mut watched: HashMap<u32, (u32, Option<PathBuf>)> = HashMap::new();
    for line in std::io::stdin().lock().split(b'\n') {
        let Ok(line) = line else { break };
        let line = String::from_utf8_lossy(&line);
        let mut f = line.split(' ');
        let num = |s: Option<&str>| s.and_then(|s| s.parse::<u32>().ok());
        match f.next() {
            Some("w") => {
                if let (Some(pid), Some(owner)) = (num(f.next()), num(f.next())) {
                    let leaf = f.next().filter(|l| *l != "-").map(PathBuf::from);
                    watched.insert(pid, (owner, leaf));
                }
            }
            Some("u") => {
                if let Some(pid) = num(f.next()) {
                    watched.remove(&pid);
                }
            }
            Some("d") => {
                if let Some(owner) = num(f.next()) {
                    let theirs: Vec<u32> = watched
                        .iter()
                        .filter(|(_, (o, _))| *o == owner)
                        .map(|(p, _)| *p)
                        .collect();
                    for pid in theirs {
                        if let Some((_, leaf)) = watched.remove(&pid) {
                            kill(pid, leaf.as_deref());
                        }
                    }
                }
            }
            _ => {}
        }
    }
    for (pid, (_, leaf)) in watched {
        kill(pid, leaf.as_deref());
    }
    if let Some(dir) = std::env::var_os(contain::CGROUP_DIR_ENV).map(PathBuf::from) {
        for leaf in std::fs::read_dir(&dir).into_iter().flatten().flatten() {
            if leaf.path().is_dir() {
                contain::kill_cgroup(&leaf.path());
                contain::remove_when_empty(&leaf.path());
            }
        }
        let _ = std::fs::remove_dir(&dir);
    }
    0
}

fn kill(pid: u32, leaf: Option<&Path>) {
    if let Some(leaf) = leaf {
        contain::kill_cgroup(leaf);
    }
    if let Ok(pgid) = i32::try_from(pid) {
        // SAFETY: kill(2) on a process group id; no memory involved.
        unsafe {
            libc::kill(-pgid, libc::SIGKILL);
        }
    }
    if let Some(leaf) = leaf {
        contain::remove_when_empty(leaf);
    }
}
