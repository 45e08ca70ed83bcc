//! Processes seen from outside: signals, `/proc/PID/stat`, children found
//! by scanning `/proc`, running a command with a deadline, and a loopback
//! port that stays free.

use std::io::{BufRead, BufReader, Read};
use std::process::{Child, Output};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc;
use std::time::Duration;

/// Sends `sig` to `pid` (a negative pid: its process group), ignoring
/// errors (the process may be gone already).
pub fn send_signal(pid: i32, sig: i32) {
    // 0 and -1 would reach this process's group or every process: never.
    if pid != 0 && pid != -1 {
        // SAFETY: kill(2) has no memory-safety preconditions.
        unsafe {
            libc::kill(pid, sig);
        }
    }
}

/// SIGKILLs `pid` and the process group it leads.
pub fn kill_group(pid: u32) {
    send_signal(-(pid as i32), libc::SIGKILL);
    send_signal(pid as i32, libc::SIGKILL);
}

/// The fields of `/proc/PID/stat` the tests need.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProcStat {
    pub ppid: u32,
    /// utime + stime in clock ticks.
    pub cpu_ticks: u64,
    /// Start time in clock ticks since boot: tells a pid's reuse apart.
    pub start_time: u64,
    pub zombie: bool,
}

pub fn proc_stat(pid: u32) -> Option<ProcStat> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name is parenthesised and may contain spaces.
    let rest = &stat[stat.rfind(')')? + 1..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    // f[0] is field 3 (state) of proc(5).
    Some(ProcStat {
        zombie: f.first()? == &"Z",
        ppid: f.get(1)?.parse().ok()?,
        cpu_ticks: f.get(11)?.parse::<u64>().ok()? + f.get(12)?.parse::<u64>().ok()?,
        start_time: f.get(19)?.parse().ok()?,
    })
}

/// Whether `pid` has a handler installed for signal `sig` (the `SigCgt`
/// mask of `/proc/PID/status`): a CLI run that follows a job catches
/// SIGINT once it is ready to say what an interruption leaves behind.
pub fn catches_signal(pid: u32, sig: i32) -> bool {
    let Ok(status) = std::fs::read_to_string(format!("/proc/{pid}/status")) else {
        return false;
    };
    status
        .lines()
        .find_map(|l| l.strip_prefix("SigCgt:"))
        .and_then(|mask| u64::from_str_radix(mask.trim(), 16).ok())
        .is_some_and(|mask| mask & (1 << (sig - 1)) != 0)
}

/// Whether `pid` is a live process (not a zombie).
pub fn proc_alive(pid: u32) -> bool {
    proc_stat(pid).is_some_and(|s| !s.zombie)
}

/// Whether `pid` has no `/proc` entry: it exited and was reaped (barring
/// pid reuse in between).
pub fn proc_gone(pid: u32) -> bool {
    proc_stat(pid).is_none()
}

/// Live (non-zombie) children of `parent`, found by scanning `/proc`.
pub fn child_pids(parent: u32) -> Vec<u32> {
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    let mut pids: Vec<u32> = dir
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter(|&pid| proc_stat(pid).is_some_and(|s| s.ppid == parent && !s.zombie))
        .collect();
    pids.sort_unstable();
    pids
}

/// Waits for `child` (stdout and stderr piped) to exit and returns its
/// output; after `deadline` it is SIGKILLed and `Err` says so, with what it
/// printed until then.
pub fn output_within(mut child: Child, deadline: Duration) -> Result<Output, String> {
    let pid = child.id();
    let stdout = read_in_background(child.stdout.take());
    let stderr = read_in_background(child.stderr.take());
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(child.wait());
    });
    let status = match rx.recv_timeout(deadline) {
        Ok(status) => Some(status.unwrap_or_else(|e| panic!("waiting for process {pid}: {e}"))),
        Err(_) => {
            send_signal(pid as i32, libc::SIGKILL);
            let _ = rx.recv_timeout(Duration::from_secs(5));
            None
        }
    };
    // A grandchild holding a pipe open holds this up a few seconds at most.
    let collect =
        |rx: mpsc::Receiver<Vec<u8>>| rx.recv_timeout(Duration::from_secs(5)).unwrap_or_default();
    let (stdout, stderr) = (collect(stdout), collect(stderr));
    match status {
        Some(status) => Ok(Output {
            status,
            stdout,
            stderr,
        }),
        None => Err(format!(
            "did not finish within {deadline:?}\nstdout:\n{}\nstderr:\n{}",
            String::from_utf8_lossy(&stdout),
            String::from_utf8_lossy(&stderr)
        )),
    }
}

/// Reads `pipe` to its end on a thread of its own.
pub fn read_in_background(pipe: Option<impl Read + Send + 'static>) -> mpsc::Receiver<Vec<u8>> {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let mut bytes = Vec::new();
        if let Some(mut p) = pipe {
            let _ = p.read_to_end(&mut bytes);
        }
        let _ = tx.send(bytes);
    });
    rx
}

/// Reads the first line of `out` on a thread of its own, which then keeps
/// draining it so the pipe never fills up.
pub fn first_line_in_background(out: impl Read + Send + 'static) -> mpsc::Receiver<String> {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let mut r = BufReader::new(out);
        let mut line = String::new();
        let _ = r.read_line(&mut line);
        let _ = tx.send(line);
        let _ = std::io::copy(&mut r, &mut std::io::sink());
    });
    rx
}

/// A loopback port outside the kernel's ephemeral range that is free right
/// now: a coordinator started (or restarted) on it finds it still free (no
/// outgoing connection or port-0 listener can take it meanwhile).
pub fn free_port_below_ephemeral_range() -> u16 {
    static TAKEN: AtomicU64 = AtomicU64::new(0);
    let low: u16 = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|s| s.split_whitespace().next()?.parse().ok())
        .unwrap_or(32768);
    assert!(
        low > 20_000,
        "ephemeral ports start at {low}: too low for a fixed test port"
    );
    let span = u64::from(low - 20_000);
    // Tests of one binary share a pid: a counter keeps them apart.
    let seed = u64::from(std::process::id()) * 31 + TAKEN.fetch_add(1, Ordering::Relaxed) * 101;
    (0..span)
        .map(|k| 20_000 + ((seed + k * 7919) % span) as u16)
        .find(|&p| std::net::TcpListener::bind(("127.0.0.1", p)).is_ok())
        .expect("a free port below the ephemeral range")
}
