//! What `/proc` tells the bench, read through the procfs crate: the
//! cluster's processes (this process and its descendants, leaving out the
//! io-target, which is the "web site" and not the kitchen), their CPU time
//! and resident memory, and the machine's facts.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use procfs::process::Process;
use procfs::{CpuInfo, Current, Meminfo};

/// The process of `pid`, if it is still there.
fn process(pid: u32) -> Option<Process> {
    Process::new(i32::try_from(pid).ok()?).ok()
}

/// This process and every live descendant with its depth below this process
/// (0 = this process, 1 = the workers, 2 = their executors), except
/// `exclude` and its subtree.
pub fn cluster_tree(exclude: Option<u32>) -> Vec<(u32, u32)> {
    let mut children: HashMap<u32, Vec<u32>> = HashMap::new();
    // Processes that end while the table is read are simply not listed.
    for stat in procfs::process::all_processes()
        .into_iter()
        .flatten()
        .filter_map(|p| p.ok()?.stat().ok())
    {
        if let (Ok(pid), Ok(ppid)) = (u32::try_from(stat.pid), u32::try_from(stat.ppid)) {
            children.entry(ppid).or_default().push(pid);
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

/// CPU seconds of a process's live threads: all of them, and its idle
/// spinner's (`--spin-us`), which only ever used CPU time nothing else wanted.
fn threads_cpu_s(p: &Process) -> (f64, f64) {
    let (mut all, mut spin) = (0u64, 0u64);
    for t in p.tasks().into_iter().flatten().flatten() {
        let Ok(s) = t.schedstat() else {
            continue;
        };
        all += s.sum_exec_runtime;
        if t.stat()
            .is_ok_and(|st| st.comm == brigade_worker::idle_spin::THREAD_NAME)
        {
            spin += s.sum_exec_runtime;
        }
    }
    (all as f64 / 1e9, spin as f64 / 1e9)
}

/// CPU time of each of `pids` now.
pub fn cpu_snapshot(pids: &[u32]) -> HashMap<u32, CpuTime> {
    let tick = procfs::ticks_per_second().max(1) as f64;
    pids.iter()
        .filter_map(|&pid| {
            let p = process(pid)?;
            let stat = p.stat().ok()?;
            // Both measures leave the spinner out.
            let (threads_s, spin_s) = threads_cpu_s(&p);
            Some((
                pid,
                CpuTime {
                    ticks_s: (stat.utime + stat.stime) as f64 / tick - spin_s,
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

/// Resident memory of one process in bytes (`statm`, in pages).
fn rss_bytes(p: &Process) -> Option<u64> {
    Some(p.statm().ok()?.resident * procfs::page_size())
}

/// Samples the summed RSS of a fixed set of processes on a thread of its own
/// until stopped, keeping the peak. VmHWM would give each process's peak
/// over its whole life; sampling gives the peak of *this run* of the sum.
pub struct RssSampler {
    stop: Arc<AtomicBool>,
    handle: JoinHandle<u64>,
}

impl RssSampler {
    /// Sampling every 20 ms costs one file read per process (each process's
    /// `/proc` directory is opened once, at the start): negligible beside
    /// the runs, and short spikes between samples are missed (said so in the
    /// report). A process that ends stops counting, even if its pid is reused.
    pub fn start(pids: Vec<u32>) -> RssSampler {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let handle = std::thread::spawn(move || {
            let procs: Vec<Process> = pids.into_iter().filter_map(process).collect();
            let mut peak = 0;
            loop {
                let sum: u64 = procs.iter().filter_map(rss_bytes).sum();
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

/// `PRETTY_NAME` of os-release(5) (`/etc/os-release`, not a `/proc` file,
/// so not procfs's): `KEY=value` lines, the value optionally quoted.
fn pretty_name(os_release: &str) -> Option<String> {
    os_release
        .lines()
        .find_map(|l| l.strip_prefix("PRETTY_NAME="))
        .map(|v| v.trim().trim_matches('"').to_string())
}

pub fn machine_facts() -> MachineFacts {
    // One-line files: the kernel release as `uname -r` prints it (procfs
    // parses it into numbers, dropping the rest), the host name, a module
    // parameter.
    let read = |p: &str| std::fs::read_to_string(p).unwrap_or_default();
    let unknown = || "unknown".to_string();
    MachineFacts {
        os: pretty_name(&read("/etc/os-release")).unwrap_or_else(unknown),
        kernel: read("/proc/sys/kernel/osrelease").trim().to_string(),
        cores: std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1),
        cpu_model: CpuInfo::current()
            .ok()
            .and_then(|c| c.model_name(0).map(str::to_string))
            .unwrap_or_else(unknown),
        memory_mb: Meminfo::current().map_or(0, |m| m.mem_total >> 20),
        brigade_version: env!("CARGO_PKG_VERSION").to_string(),
        hostname: read("/proc/sys/kernel/hostname").trim().to_string(),
        guest_halt_poll_ns: read("/sys/module/haltpoll/parameters/guest_halt_poll_ns")
            .trim()
            .parse()
            .ok(),
        spin_us: brigade_worker::idle_spin::process_window().as_micros() as u64,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pretty_name_of_os_release() {
        assert_eq!(
            pretty_name("ID=debian\nPRETTY_NAME=\"Debian GNU/Linux 13\"\n"),
            Some("Debian GNU/Linux 13".into())
        );
        assert_eq!(pretty_name("PRETTY_NAME=Plain\n"), Some("Plain".into()));
        assert_eq!(pretty_name("NAME=x\n"), None);
        assert_eq!(pretty_name(""), None);
    }

    #[test]
    fn machine_facts_are_this_machines() {
        let f = machine_facts();
        let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap();
        let model = cpuinfo
            .lines()
            .find_map(|l| l.strip_prefix("model name")?.split_once(':'))
            .map_or("unknown", |(_, v)| v.trim());
        assert_eq!(f.cpu_model, model);
        let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap();
        let kb: u64 = meminfo
            .lines()
            .find_map(|l| l.strip_prefix("MemTotal:"))
            .and_then(|v| v.split_whitespace().next()?.parse().ok())
            .unwrap();
        assert_eq!(f.memory_mb, kb / 1024);
        assert!(!f.kernel.is_empty() && !f.kernel.contains('\n'));
        assert!(f.cores >= 1);
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

    /// The CPU time a thread has used, by its own clock.
    fn thread_cpu_s() -> f64 {
        let mut ts = libc::timespec {
            tv_sec: 0,
            tv_nsec: 0,
        };
        // SAFETY: `ts` is a valid timespec to write into.
        unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
        ts.tv_sec as f64 + ts.tv_nsec as f64 / 1e9
    }

    #[test]
    fn the_spinners_cpu_time_is_told_apart() {
        let (done_tx, done_rx) = std::sync::mpsc::channel();
        let (burnt_tx, burnt_rx) = std::sync::mpsc::channel();
        let spinner = std::thread::Builder::new()
            .name(brigade_worker::idle_spin::THREAD_NAME.into())
            .spawn(move || {
                while thread_cpu_s() < 0.05 {
                    std::hint::spin_loop();
                }
                burnt_tx.send(thread_cpu_s()).unwrap();
                // Stay alive (and idle) while the test reads this thread.
                let _ = done_rx.recv();
            })
            .unwrap();
        let burnt = burnt_rx.recv().unwrap();
        let me = process(std::process::id()).unwrap();
        let (all, spin) = threads_cpu_s(&me);
        let snap = cpu_snapshot(&[std::process::id()]);
        done_tx.send(()).unwrap();
        spinner.join().unwrap();
        // The spinner's schedstat is its own clock: it idles since `burnt`.
        assert!(
            spin >= burnt - 1e-6 && spin < burnt + 0.01,
            "{spin} vs {burnt}"
        );
        assert!(all >= spin + thread_cpu_s() - 0.01, "{all} {spin}");
        // A snapshot counts this thread but leaves the spinner out.
        let mine = snap[&std::process::id()].threads_s;
        assert!(mine >= thread_cpu_s() - 0.01, "{mine}");
        // (Other tests' threads may run between the two reads: 2 cores for
        // a few ms at most, well under the spinner's 50 ms.)
        assert!(mine <= all - spin + 0.02, "{mine} {all} {spin}");
    }

    #[test]
    fn this_process_is_in_its_own_tree_and_uses_memory() {
        let pids = cluster_pids(None);
        assert_eq!(pids[0], std::process::id());
        let rss = rss_bytes(&process(pids[0]).unwrap()).unwrap();
        // No more than the peak the kernel kept for this process.
        // SAFETY: an all-zero rusage is valid, and getrusage writes into it.
        let usage = unsafe {
            let mut usage: libc::rusage = std::mem::zeroed();
            libc::getrusage(libc::RUSAGE_SELF, &mut usage);
            usage
        };
        assert!(rss > 0 && rss <= usage.ru_maxrss as u64 * 1024, "{rss}");
        let s = RssSampler::start(pids);
        assert!(s.finish() > 0);
        assert!(cluster_cpu_secs(None) > 0.0);
        // A child shows up one level down.
        let mut child = std::process::Command::new("sleep")
            .arg("5")
            .spawn()
            .unwrap();
        let tree = cluster_tree(None);
        let _ = child.kill();
        let _ = child.wait();
        assert!(tree.contains(&(child.id(), 1)), "{tree:?}");
        assert!(!cluster_tree(Some(child.id()))
            .iter()
            .any(|t| t.0 == child.id()));
    }
}
