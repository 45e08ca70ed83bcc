//! What `/proc` tells the bench: the cluster's processes (this process and its
//! descendants, leaving out the io-target, which is the "web site" and not the
//! kitchen), their CPU time and resident memory, and the machine's facts.

use std::collections::HashMap;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

/// (ppid, utime + stime in clock ticks) of one process.
fn stat(pid: u32) -> Option<(u32, u64)> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name may hold spaces and parentheses: fields start after the last ')'.
    let f: Vec<&str> = s.get(s.rfind(')')? + 2..)?.split_whitespace().collect();
    let ppid = f.get(1)?.parse().ok()?;
    let ticks = f.get(11)?.parse::<u64>().ok()? + f.get(12)?.parse::<u64>().ok()?;
    Some((ppid, ticks))
}

/// This process and every live descendant with its depth below this process
/// (0 = this process, 1 = the workers, 2 = their executors), except
/// `exclude` and its subtree.
pub fn cluster_tree(exclude: Option<u32>) -> Vec<(u32, u32)> {
    let mut children: HashMap<u32, Vec<u32>> = HashMap::new();
    if let Ok(dir) = std::fs::read_dir("/proc") {
        for e in dir.flatten() {
            let Some(pid) = e.file_name().to_str().and_then(|n| n.parse::<u32>().ok()) else {
                continue;
            };
            if let Some((ppid, _)) = stat(pid) {
                children.entry(ppid).or_default().push(pid);
            }
        }
    }
    let mut out = vec![(std::process::id(), 0)];
    let mut i = 0;
    while i < out.len() {
        let (pid, depth) = out[i];
        for &c in children.get(&pid).into_iter().flatten() {
            if Some(c) != exclude {
                out.push((c, depth + 1));
            }
        }
        i += 1;
    }
    out
}

/// The pids of [`cluster_tree`].
pub fn cluster_pids(exclude: Option<u32>) -> Vec<u32> {
    cluster_tree(exclude).into_iter().map(|(p, _)| p).collect()
}

/// CPU time of one process at one moment, two ways: `/proc/PID/stat`
/// (every thread that ever ran, but truncated to clock ticks, 10 ms) and the
/// sum of its live threads' `schedstat` (nanoseconds, but without threads that
/// have exited). Thirty executors that each run a few ms lose it all to the
/// truncation, so a run's CPU time takes the larger of the two deltas.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct CpuTime {
    pub ticks_s: f64,
    pub threads_s: f64,
}

/// CPU seconds of `pid`'s threads: all of them, and its idle spinner's
/// (`--spin-us`), which only ever used CPU time nothing else wanted.
fn threads_cpu_s(pid: u32) -> (f64, f64) {
    let Ok(dir) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return (0.0, 0.0);
    };
    let (mut all, mut spin) = (0u64, 0u64);
    for t in dir.flatten() {
        let Some(ns) = std::fs::read_to_string(t.path().join("schedstat"))
            .ok()
            .and_then(|s| s.split_whitespace().next()?.parse::<u64>().ok())
        else {
            continue;
        };
        all += ns;
        if std::fs::read_to_string(t.path().join("comm"))
            .is_ok_and(|c| c.trim() == brigade_worker::spin::THREAD_NAME)
        {
            spin += ns;
        }
    }
    (all as f64 / 1e9, spin as f64 / 1e9)
}

/// CPU time of each of `pids` now.
pub fn cpu_snapshot(pids: &[u32]) -> HashMap<u32, CpuTime> {
    // SAFETY: sysconf has no preconditions.
    let tick = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as f64;
    pids.iter()
        .filter_map(|&p| {
            let (_, ticks) = stat(p)?;
            // Both measures leave the spinner out.
            let (threads_s, spin_s) = threads_cpu_s(p);
            Some((
                p,
                CpuTime {
                    ticks_s: ticks as f64 / tick - spin_s,
                    threads_s: threads_s - spin_s,
                },
            ))
        })
        .collect()
}

/// CPU seconds used between two snapshots, per process the larger of the two
/// measures' deltas (a process gone by `after` counts nothing).
pub fn cpu_delta(before: &HashMap<u32, CpuTime>, after: &HashMap<u32, CpuTime>) -> f64 {
    after
        .iter()
        .map(|(pid, a)| {
            let b = before.get(pid).copied().unwrap_or_default();
            (a.ticks_s - b.ticks_s)
                .max(a.threads_s - b.threads_s)
                .max(0.0)
        })
        .sum()
}

/// CPU seconds used so far by this process and its descendants, without
/// `exclude`'s subtree (the io-target).
pub fn cluster_cpu_secs(exclude: Option<u32>) -> f64 {
    cpu_delta(&HashMap::new(), &cpu_snapshot(&cluster_pids(exclude)))
}

/// Resident memory of one process in bytes (`/proc/PID/statm`, pages).
fn rss_bytes(pid: u32) -> Option<u64> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/statm")).ok()?;
    let pages: u64 = s.split_whitespace().nth(1)?.parse().ok()?;
    // SAFETY: sysconf has no preconditions.
    let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) }.max(1) as u64;
    Some(pages * page)
}

/// Samples the summed RSS of a fixed set of processes on a thread of its own
/// until stopped, keeping the peak. VmHWM would give each process's peak
/// over its whole life; sampling gives the peak of *this run* of the sum.
pub struct RssSampler {
    stop: Arc<AtomicBool>,
    handle: JoinHandle<u64>,
}

impl RssSampler {
    /// Sampling every 20 ms costs a few file reads per process: negligible
    /// beside the runs, and short spikes between samples are missed (said so
    /// in the report).
    pub fn start(pids: Vec<u32>) -> RssSampler {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let handle = std::thread::spawn(move || {
            let mut peak = 0;
            loop {
                let sum: u64 = pids.iter().filter_map(|&p| rss_bytes(p)).sum();
                peak = peak.max(sum);
                if flag.load(Ordering::Relaxed) {
                    return peak;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
        });
        RssSampler { stop, handle }
    }

    /// Stops sampling (one last sample is taken) and returns the peak.
    pub fn finish(self) -> u64 {
        self.stop.store(true, Ordering::Relaxed);
        self.handle.join().unwrap_or(0)
    }
}

/// The machine and version facts written with every result.
#[derive(Debug, Clone, serde::Serialize)]
pub struct MachineFacts {
    pub os: String,
    pub kernel: String,
    pub cores: usize,
    pub cpu_model: String,
    pub memory_mb: u64,
    pub brigade_version: String,
    pub hostname: String,
    /// The guest kernel's halt polling (`haltpoll.guest_halt_poll_ns`) on a
    /// VM that has it: 0 means idle vCPUs halt at once, and every wake-up
    /// onto one costs the single-task round trip tens of µs.
    pub guest_halt_poll_ns: Option<u64>,
    /// This process's `--spin-us` window (0: no idle spinner).
    pub spin_us: u64,
}

fn first_line_value(text: &str, key: &str) -> Option<String> {
    text.lines()
        .find(|l| l.starts_with(key))
        .and_then(|l| l.split_once(':').or_else(|| l.split_once('=')))
        .map(|(_, v)| v.trim().trim_matches('"').to_string())
}

pub fn machine_facts() -> MachineFacts {
    let read = |p: &str| std::fs::read_to_string(Path::new(p)).unwrap_or_default();
    let unknown = || "unknown".to_string();
    MachineFacts {
        os: first_line_value(&read("/etc/os-release"), "PRETTY_NAME").unwrap_or_else(unknown),
        kernel: read("/proc/sys/kernel/osrelease").trim().to_string(),
        cores: std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1),
        cpu_model: first_line_value(&read("/proc/cpuinfo"), "model name").unwrap_or_else(unknown),
        memory_mb: first_line_value(&read("/proc/meminfo"), "MemTotal")
            .and_then(|v| v.split_whitespace().next()?.parse::<u64>().ok())
            .map_or(0, |kb| kb / 1024),
        brigade_version: env!("CARGO_PKG_VERSION").to_string(),
        hostname: read("/proc/sys/kernel/hostname").trim().to_string(),
        guest_halt_poll_ns: read("/sys/module/haltpoll/parameters/guest_halt_poll_ns")
            .trim()
            .parse()
            .ok(),
        spin_us: brigade_worker::spin::process_window().as_micros() as u64,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_values_of_os_release_and_cpuinfo_parse() {
        assert_eq!(
            first_line_value(
                "ID=debian\nPRETTY_NAME=\"Debian GNU/Linux 13\"\n",
                "PRETTY_NAME"
            ),
            Some("Debian GNU/Linux 13".into())
        );
        assert_eq!(
            first_line_value(
                "processor\t: 0\nmodel name\t: Intel(R) Xeon(R)\n",
                "model name"
            ),
            Some("Intel(R) Xeon(R)".into())
        );
        assert_eq!(first_line_value("", "x"), None);
    }

    #[test]
    fn cpu_delta_takes_the_larger_measure_per_process() {
        let t = |ticks_s, threads_s| CpuTime { ticks_s, threads_s };
        let before = HashMap::from([(1, t(1.0, 1.004)), (2, t(0.5, 0.5))]);
        // pid 1: ticks truncated (+0.0) but threads ran 0.008 s; pid 2: a
        // thread exited, so ticks (+0.2) see more; pid 3 is new.
        let after = HashMap::from([(1, t(1.0, 1.012)), (2, t(0.7, 0.6)), (3, t(0.1, 0.0))]);
        assert!((cpu_delta(&before, &after) - (0.008 + 0.2 + 0.1)).abs() < 1e-9);
    }

    #[test]
    fn this_process_is_in_its_own_tree_and_uses_memory() {
        let pids = cluster_pids(None);
        assert_eq!(pids[0], std::process::id());
        assert!(rss_bytes(pids[0]).unwrap() > 0);
        let s = RssSampler::start(pids);
        assert!(s.finish() > 0);
        assert!(cluster_cpu_secs(None) >= 0.0);
    }
}
