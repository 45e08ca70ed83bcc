//! Test harness: a [`Cluster`] of real `brigade` processes (a coordinator,
//! workers, an io-target) started from `CARGO_BIN_EXE_brigade`, CLI runs
//! against it with deadlines, and `/proc` helpers to find executor children.
//!
//! Every process the harness starts gets its own process group and is
//! SIGKILLed on drop together with its executor children, so no process
//! outlives a test. Each process writes stderr to its own file in a temp dir;
//! when a test panics, the tail of every log is printed and the dir is kept.

#![allow(dead_code)]

use std::fs::File;
use std::io::{BufRead, BufReader, Read};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use serde_json::Value;

/// The `brigade` binary under test.
pub const BIN: &str = env!("CARGO_BIN_EXE_brigade");

/// How long any single wait in the harness may take before the test fails.
pub const DEADLINE: Duration = Duration::from_secs(60);

/// Deadline for one CLI run (a `--wait` run includes the whole job).
pub const CLI_DEADLINE: Duration = Duration::from_secs(120);

/// Polls `probe` every 20 ms until it returns `Some`, or panics after
/// `deadline` saying what was awaited.
pub fn wait_until<T>(what: &str, deadline: Duration, mut probe: impl FnMut() -> Option<T>) -> T {
    let start = Instant::now();
    loop {
        if let Some(v) = probe() {
            return v;
        }
        assert!(
            start.elapsed() < deadline,
            "timed out after {deadline:?} waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Runs `brigade args...` with extra environment, killing it and panicking if
/// it does not finish within `deadline`.
pub fn run_brigade(args: &[&str], env: &[(&str, &str)], deadline: Duration) -> Output {
    let mut cmd = Command::new(BIN);
    cmd.args(args)
        .env_remove("BRIGADE_COORDINATOR")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    for (k, v) in env {
        cmd.env(k, v);
    }
    let child = cmd
        .spawn()
        .unwrap_or_else(|e| panic!("could not run {BIN}: {e}"));
    let pid = child.id();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(child.wait_with_output());
    });
    match rx.recv_timeout(deadline) {
        Ok(out) => out.unwrap_or_else(|e| panic!("brigade {args:?}: {e}")),
        Err(_) => {
            signal(pid as i32, libc::SIGKILL);
            panic!(
                "`brigade {}` did not finish within {deadline:?}",
                args.join(" ")
            );
        }
    }
}

pub fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// Panics with the command's output unless it exited 0.
pub fn assert_success(args: &[&str], o: &Output) {
    assert!(
        o.status.success(),
        "`brigade {}` failed with {}\nstdout:\n{}\nstderr:\n{}",
        args.join(" "),
        o.status,
        stdout(o),
        stderr(o)
    );
}

/// Σ i² for i in [0, n), exactly.
pub fn sum_squares_below(n: u64) -> u128 {
    if n == 0 {
        return 0;
    }
    let n = n as u128;
    (n - 1) * n * (2 * n - 1) / 6
}

/// Σ i² for i in [a, b), exactly.
pub fn sum_squares(a: u64, b: u64) -> u128 {
    sum_squares_below(b) - sum_squares_below(a)
}

/// Sends `sig` to `pid` (a negative pid: its process group), ignoring
/// errors (the process may be gone already).
pub fn send_signal(pid: i32, sig: i32) {
    signal(pid, sig);
}

fn signal(pid: i32, sig: i32) {
    // 0 and -1 would reach this process's group or every process: never.
    if pid != 0 && pid != -1 {
        // SAFETY: kill(2) has no memory-safety preconditions.
        unsafe {
            libc::kill(pid, sig);
        }
    }
}

/// The fields of `/proc/PID/stat` the harness needs.
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

/// Slots a worker offers.
#[derive(Debug, Clone, Copy)]
pub struct Slots {
    pub procs: usize,
    pub threads: usize,
    pub async_slots: usize,
}

impl Slots {
    pub const fn new(procs: usize, threads: usize, async_slots: usize) -> Slots {
        Slots {
            procs,
            threads,
            async_slots,
        }
    }
}

/// A long-running process the harness started.
struct Proc {
    name: String,
    child: Child,
    log: PathBuf,
    /// Set once the harness killed and reaped it.
    reaped: bool,
}

impl Proc {
    fn pid(&self) -> u32 {
        self.child.id()
    }

    fn kill_and_reap(&mut self) {
        if !self.reaped {
            signal(-(self.pid() as i32), libc::SIGKILL);
            signal(self.pid() as i32, libc::SIGKILL);
            let _ = self.child.wait();
            self.reaped = true;
        }
    }
}

static NEXT_DIR: AtomicU64 = AtomicU64::new(0);

/// Real `brigade` processes for one test; everything dies on drop.
pub struct Cluster {
    dir: PathBuf,
    url: Option<String>,
    coordinator: Option<Proc>,
    /// Coordinators killed and replaced by [`Cluster::restart_coordinator`],
    /// kept for their logs.
    retired: Vec<Proc>,
    workers: Vec<Proc>,
    io_target: Option<(Proc, String)>,
    /// Executors of killed workers, as (pid, start time), killed on drop if
    /// still the same process.
    orphans: Vec<(u32, u64)>,
}

impl Cluster {
    /// No processes yet; logs go to a fresh temp dir.
    pub fn empty() -> Cluster {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0);
        let dir = std::env::temp_dir().join(format!(
            "brigade-test-{}-{}-{nanos}",
            std::process::id(),
            NEXT_DIR.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::create_dir_all(&dir)
            .unwrap_or_else(|e| panic!("could not create log dir {}: {e}", dir.display()));
        Cluster {
            dir,
            url: None,
            coordinator: None,
            retired: Vec::new(),
            workers: Vec::new(),
            io_target: None,
            orphans: Vec::new(),
        }
    }

    /// A coordinator on 127.0.0.1:0 with extra `coordinator` args.
    pub fn start(coordinator_args: &[&str]) -> Cluster {
        let mut c = Cluster::empty();
        c.start_coordinator("127.0.0.1:0", coordinator_args);
        c
    }

    /// A coordinator plus `n` workers with `slots` each (named w1, w2, ...),
    /// all linked before this returns.
    pub fn with_workers(n: usize, slots: Slots, coordinator_args: &[&str]) -> Cluster {
        let mut c = Cluster::start(coordinator_args);
        for i in 0..n {
            c.spawn_worker(&format!("w{}", i + 1), slots);
        }
        c.wait_workers(n);
        c
    }

    /// Sets the coordinator URL workers and CLI runs use before a coordinator
    /// runs (to start workers first).
    pub fn set_url(&mut self, url: &str) {
        self.url = Some(url.to_string());
    }

    /// Starts `brigade coordinator --listen ADDR ARGS...` and takes its URL
    /// from the first stdout line.
    pub fn start_coordinator(&mut self, listen: &str, args: &[&str]) {
        assert!(
            self.coordinator.is_none(),
            "a coordinator is already running"
        );
        self.launch_coordinator("coordinator", listen, args);
    }

    /// After [`Cluster::kill_coordinator`] or [`Cluster::stop_coordinator`]:
    /// starts a new coordinator with `args` on the address the old one
    /// listened on (so workers and waiting clients find it again).
    pub fn restart_coordinator(&mut self, args: &[&str]) {
        let old = self.coordinator.take().expect("no coordinator to restart");
        assert!(
            old.reaped,
            "restart_coordinator: the coordinator still runs"
        );
        self.retired.push(old);
        let listen = self
            .url()
            .strip_prefix("http://")
            .expect("coordinator URL is http://HOST:PORT")
            .to_string();
        let label = format!("coordinator-{}", self.retired.len() + 1);
        self.launch_coordinator(&label, &listen, args);
    }

    fn launch_coordinator(&mut self, label: &str, listen: &str, args: &[&str]) {
        let mut all = vec!["coordinator", "--listen", listen];
        all.extend_from_slice(args);
        let (proc_, line) = self.spawn_announcing(label, &all);
        self.coordinator = Some(proc_);
        let url = line
            .strip_prefix("brigade coordinator listening on ")
            .unwrap_or_else(|| {
                panic!(
                    "coordinator's first line {line:?} is not `brigade coordinator listening on URL`"
                )
            })
            .to_string();
        self.url = Some(url);
    }

    /// Starts `brigade io-target` and returns its base URL.
    pub fn start_io_target(&mut self) -> String {
        assert!(self.io_target.is_none(), "an io-target is already running");
        let (proc_, line) =
            self.spawn_announcing("io-target", &["io-target", "--listen", "127.0.0.1:0"]);
        let url = line
            .strip_prefix("brigade io-target listening on ")
            .unwrap_or_else(|| {
                panic!(
                    "io-target's first line {line:?} is not `brigade io-target listening on URL`"
                )
            })
            .to_string();
        self.io_target = Some((proc_, url.clone()));
        url
    }

    /// The coordinator's URL.
    pub fn url(&self) -> &str {
        self.url.as_deref().expect("no coordinator URL yet")
    }

    /// The io-target's base URL.
    pub fn io_url(&self) -> &str {
        &self.io_target.as_ref().expect("no io-target started").1
    }

    /// Starts `brigade worker NAME` against this cluster; returns its index.
    pub fn spawn_worker(&mut self, name: &str, slots: Slots) -> usize {
        let url = self.url().to_string();
        self.spawn_worker_args(
            name,
            &[
                "--coordinator",
                &url,
                "--procs",
                &slots.procs.to_string(),
                "--threads",
                &slots.threads.to_string(),
                "--async",
                &slots.async_slots.to_string(),
            ],
        )
    }

    /// Starts `brigade worker --name NAME ARGS...`; returns its index.
    pub fn spawn_worker_args(&mut self, name: &str, args: &[&str]) -> usize {
        let mut all = vec!["worker", "--name", name];
        all.extend_from_slice(args);
        let label = format!("worker-{}-{name}", self.workers.len());
        let log = self.dir.join(format!("{label}.log"));
        let child = self.command(&all, &log).stdout(Stdio::null()).spawn();
        let child = child.unwrap_or_else(|e| panic!("could not start {label}: {e}"));
        self.workers.push(Proc {
            name: label,
            child,
            log,
            reaped: false,
        });
        self.workers.len() - 1
    }

    fn command(&self, args: &[&str], log: &Path) -> Command {
        let err =
            File::create(log).unwrap_or_else(|e| panic!("could not create {}: {e}", log.display()));
        let mut cmd = Command::new(BIN);
        cmd.args(args)
            .env_remove("BRIGADE_COORDINATOR")
            .stdin(Stdio::null())
            .stderr(err)
            // Its own group: killing -pid reaches anything it started in it.
            .process_group(0);
        cmd
    }

    /// Spawns a process whose first stdout line announces its address; reads
    /// that line with a deadline and keeps draining stdout afterwards.
    fn spawn_announcing(&mut self, label: &str, args: &[&str]) -> (Proc, String) {
        let log = self.dir.join(format!("{label}.log"));
        let mut child = self
            .command(args, &log)
            .stdout(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("could not start {label}: {e}"));
        let out = child.stdout.take().expect("piped stdout");
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            let mut r = BufReader::new(out);
            let mut line = String::new();
            let _ = r.read_line(&mut line);
            let _ = tx.send(line);
            // Keep the pipe from filling up.
            let _ = std::io::copy(&mut r, &mut std::io::sink());
        });
        let mut proc_ = Proc {
            name: label.to_string(),
            child,
            log,
            reaped: false,
        };
        match rx.recv_timeout(DEADLINE) {
            Ok(line) if !line.trim().is_empty() => (proc_, line.trim().to_string()),
            other => {
                let status = proc_.child.try_wait().ok().flatten();
                proc_.kill_and_reap();
                panic!(
                    "{label} printed no address line within {DEADLINE:?} (got {other:?}, exit {status:?}); \
                     its stderr:\n{}",
                    read_log(&proc_.log)
                );
            }
        }
    }

    /// Runs `brigade ARGS...` against this cluster's coordinator.
    pub fn brigade(&self, args: &[&str]) -> Output {
        run_brigade(args, &[("BRIGADE_COORDINATOR", self.url())], CLI_DEADLINE)
    }

    /// Runs `brigade ARGS...`, asserting it succeeds; returns stdout.
    pub fn brigade_ok(&self, args: &[&str]) -> String {
        let o = self.brigade(args);
        assert_success(args, &o);
        stdout(&o)
    }

    /// `brigade submit ARGS... --format json`, asserting success; the job's
    /// JSON (the final one when ARGS has `--wait`).
    pub fn submit_json(&self, args: &[&str]) -> Value {
        let mut all = vec!["submit"];
        all.extend_from_slice(args);
        all.extend_from_slice(&["--format", "json"]);
        parse_json(&all, &self.brigade_ok(&all))
    }

    /// `brigade job ID --format json`.
    pub fn job_json(&self, id: u64) -> Value {
        let id = id.to_string();
        let args = ["job", &id, "--format", "json"];
        parse_json(&args, &self.brigade_ok(&args))
    }

    /// `brigade job ID --wait --format json`: the job once it ended.
    pub fn wait_job(&self, id: u64) -> Value {
        let id = id.to_string();
        let args = ["job", &id, "--wait", "--format", "json"];
        parse_json(&args, &self.brigade_ok(&args))
    }

    /// Polls the job until `pred` holds; returns that JSON.
    pub fn wait_job_until(&self, id: u64, what: &str, pred: impl Fn(&Value) -> bool) -> Value {
        let start = Instant::now();
        loop {
            let j = self.job_json(id);
            if pred(&j) {
                return j;
            }
            assert!(
                start.elapsed() < DEADLINE,
                "timed out after {DEADLINE:?} waiting for job {id}: {what}; last seen: {j}"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// `brigade results ID` (table format), parsed into (index, value) rows.
    pub fn results(&self, id: u64) -> Vec<(u64, u128)> {
        let id = id.to_string();
        let out = self.brigade_ok(&["results", &id]);
        out.lines()
            .map(|l| {
                let (i, v) = l
                    .split_once('\t')
                    .unwrap_or_else(|| panic!("results line {l:?} is not INDEX\\tVALUE"));
                (
                    i.parse().unwrap_or_else(|_| panic!("bad index in {l:?}")),
                    v.parse().unwrap_or_else(|_| panic!("bad value in {l:?}")),
                )
            })
            .collect()
    }

    /// `brigade workers --format json`.
    pub fn workers_json(&self) -> Vec<Value> {
        let args = ["workers", "--format", "json"];
        match parse_json(&args, &self.brigade_ok(&args)) {
            Value::Array(v) => v,
            other => panic!("`brigade workers --format json` printed {other}, not an array"),
        }
    }

    /// Waits until exactly `n` workers are linked; returns them.
    pub fn wait_workers(&self, n: usize) -> Vec<Value> {
        let start = Instant::now();
        loop {
            let w = self.workers_json();
            if w.len() == n {
                return w;
            }
            assert!(
                start.elapsed() < Duration::from_secs(30),
                "timed out after 30 s waiting for {n} linked workers; `workers` shows {}: {w:?}",
                w.len()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// The pid of worker `i`.
    pub fn worker_pid(&self, i: usize) -> u32 {
        self.workers[i].pid()
    }

    /// The executor children of a worker process.
    pub fn executor_pids(&self, worker_pid: u32) -> Vec<u32> {
        child_pids(worker_pid)
    }

    /// The stderr written so far by worker `i`.
    pub fn worker_log(&self, i: usize) -> String {
        read_log(&self.workers[i].log)
    }

    /// SIGKILLs worker `i` (only the worker, like a crash) and reaps it; its
    /// executors are remembered and killed on drop if still alive.
    pub fn kill_worker(&mut self, i: usize) {
        let pid = self.workers[i].pid();
        for e in child_pids(pid) {
            if let Some(s) = proc_stat(e) {
                self.orphans.push((e, s.start_time));
            }
        }
        signal(pid as i32, libc::SIGKILL);
        let _ = self.workers[i].child.wait();
        self.workers[i].reaped = true;
    }

    /// Executors of workers killed with [`Cluster::kill_worker`], as they
    /// were at the kill.
    pub fn orphan_pids(&self) -> Vec<u32> {
        self.orphans.iter().map(|&(pid, _)| pid).collect()
    }

    /// SIGSTOPs worker `i`: it stays connected but goes silent, like a
    /// worker behind a network partition.
    pub fn freeze_worker(&self, i: usize) {
        signal(self.worker_pid(i) as i32, libc::SIGSTOP);
    }

    /// SIGCONTs worker `i`.
    pub fn thaw_worker(&self, i: usize) {
        signal(self.worker_pid(i) as i32, libc::SIGCONT);
    }

    /// SIGKILLs the coordinator and reaps it.
    pub fn kill_coordinator(&mut self) {
        if let Some(c) = &mut self.coordinator {
            c.kill_and_reap();
        }
    }

    /// Sends SIGTERM to the coordinator and waits for its exit status.
    pub fn stop_coordinator(&mut self) -> std::process::ExitStatus {
        let c = self.coordinator.as_mut().expect("no coordinator");
        signal(c.pid() as i32, libc::SIGTERM);
        let start = Instant::now();
        loop {
            if let Some(s) = c.child.try_wait().expect("try_wait") {
                c.reaped = true;
                return s;
            }
            assert!(
                start.elapsed() < DEADLINE,
                "the coordinator did not exit within {DEADLINE:?} of SIGTERM"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// The running coordinator's pid.
    pub fn coordinator_pid(&self) -> u32 {
        self.coordinator.as_ref().expect("no coordinator").pid()
    }

    /// Indexes of the workers the harness started and has not killed.
    pub fn live_workers(&self) -> Vec<usize> {
        (0..self.workers.len())
            .filter(|&i| !self.workers[i].reaped)
            .collect()
    }

    /// This cluster's temp dir (logs; tests may put state files there).
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Starts `brigade ARGS...` against this cluster's coordinator without
    /// waiting for it; see [`BackgroundRun::finish`].
    pub fn spawn_brigade(&self, args: &[&str]) -> BackgroundRun {
        let child = Command::new(BIN)
            .args(args)
            .env("BRIGADE_COORDINATOR", self.url())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("could not run {BIN}: {e}"));
        BackgroundRun {
            args: args.iter().map(|a| a.to_string()).collect(),
            child: Some(child),
        }
    }

    /// Waits until worker `i` has `n` executor children, each having burnt at
    /// least `ticks` clock ticks of CPU (so each is mid-task); returns them.
    pub fn busy_executors(&self, i: usize, n: usize, ticks: u64) -> Vec<u32> {
        let worker = self.worker_pid(i);
        wait_until(
            &format!("{n} busy executor(s) of worker {i}"),
            DEADLINE,
            || {
                let pids = child_pids(worker);
                let busy = pids.len() == n
                    && pids
                        .iter()
                        .all(|&p| proc_stat(p).is_some_and(|s| s.cpu_ticks >= ticks));
                busy.then_some(pids)
            },
        )
    }

    /// Sends SIGTERM to worker `i` and waits for its exit status.
    pub fn terminate_worker(&mut self, i: usize) -> std::process::ExitStatus {
        let w = &mut self.workers[i];
        signal(w.pid() as i32, libc::SIGTERM);
        let start = Instant::now();
        loop {
            if let Some(s) = w.child.try_wait().expect("try_wait") {
                w.reaped = true;
                return s;
            }
            assert!(
                start.elapsed() < DEADLINE,
                "worker {} did not exit within {DEADLINE:?} of SIGTERM",
                w.name
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn all_procs(&self) -> impl Iterator<Item = &Proc> {
        self.retired
            .iter()
            .chain(self.coordinator.iter())
            .chain(self.workers.iter())
            .chain(self.io_target.iter().map(|(p, _)| p))
    }
}

/// A CLI run in the background (e.g. `job ID --wait` across a coordinator
/// restart); killed on drop unless finished.
pub struct BackgroundRun {
    args: Vec<String>,
    child: Option<Child>,
}

impl BackgroundRun {
    /// Waits for the run to end (killing it and panicking after
    /// `deadline`); returns its output.
    pub fn finish(mut self, deadline: Duration) -> Output {
        let child = self.child.take().expect("finished once");
        let pid = child.id();
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            let _ = tx.send(child.wait_with_output());
        });
        match rx.recv_timeout(deadline) {
            Ok(out) => out.unwrap_or_else(|e| panic!("brigade {:?}: {e}", self.args)),
            Err(_) => {
                signal(pid as i32, libc::SIGKILL);
                panic!(
                    "`brigade {}` did not finish within {deadline:?}",
                    self.args.join(" ")
                );
            }
        }
    }

    /// Whether it is still running.
    pub fn running(&mut self) -> bool {
        self.child
            .as_mut()
            .is_some_and(|c| matches!(c.try_wait(), Ok(None)))
    }
}

impl Drop for BackgroundRun {
    fn drop(&mut self) {
        if let Some(c) = &mut self.child {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// A loopback port outside the kernel's ephemeral range that is free right
/// now: a coordinator restarted on it finds it still free (no outgoing
/// connection or port-0 listener can take it meanwhile).
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

fn parse_json(args: &[&str], out: &str) -> Value {
    serde_json::from_str(out.trim()).unwrap_or_else(|e| {
        panic!(
            "`brigade {}` printed no JSON ({e}): {out:?}",
            args.join(" ")
        )
    })
}

fn read_log(path: &Path) -> String {
    let mut s = String::new();
    if let Ok(mut f) = File::open(path) {
        let _ = f.read_to_string(&mut s);
    }
    s
}

impl Drop for Cluster {
    fn drop(&mut self) {
        for w in &mut self.workers {
            if w.reaped {
                continue;
            }
            // Frozen, the worker cannot replace the executors killed next.
            signal(w.pid() as i32, libc::SIGSTOP);
            for e in child_pids(w.pid()) {
                signal(-(e as i32), libc::SIGKILL);
                signal(e as i32, libc::SIGKILL);
            }
            w.kill_and_reap();
        }
        for &(pid, start) in &self.orphans {
            if proc_stat(pid).is_some_and(|s| s.start_time == start) {
                signal(-(pid as i32), libc::SIGKILL);
                signal(pid as i32, libc::SIGKILL);
            }
        }
        if let Some(c) = &mut self.coordinator {
            c.kill_and_reap();
        }
        if let Some((p, _)) = &mut self.io_target {
            p.kill_and_reap();
        }
        if std::thread::panicking() {
            for p in self.all_procs() {
                let log = read_log(&p.log);
                let lines: Vec<&str> = log.lines().collect();
                let tail = &lines[lines.len().saturating_sub(40)..];
                eprintln!(
                    "---- {} (pid {}) stderr, last {} lines of {} ----\n{}",
                    p.name,
                    p.pid(),
                    tail.len(),
                    p.log.display(),
                    tail.join("\n")
                );
            }
        } else {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}
