//! A [`Cluster`] of real `brigade` processes (a coordinator, workers, an
//! io-target) started from the binary under test, and [`BackgroundRun`]s of
//! the CLI against it.
//!
//! Every process the harness starts gets its own process group and is
//! SIGKILLed on drop together with its executor children, so no process
//! outlives a test. Each process writes stderr to its own file in a temp dir;
//! when a test panics, the tail of every log is printed and the dir is kept.

use std::fs::File;
use std::io::Read;
use std::ops::Deref;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::Duration;

use super::client::{strs, Client, BIN};
use super::poll::{poll, wait_until, DEADLINE, POLL_EVERY};
use super::proc::{
    child_pids, first_line_in_background, free_port_below_ephemeral_range, kill_group,
    output_within, proc_stat, send_signal,
};
use super::tempdir::TempDir;

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

    /// `--procs P --threads T --async A`.
    pub fn args(&self) -> Vec<String> {
        [
            ("--procs", self.procs),
            ("--threads", self.threads),
            ("--async", self.async_slots),
        ]
        .into_iter()
        .flat_map(|(flag, n)| [flag.to_string(), n.to_string()])
        .collect()
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
            kill_group(self.pid());
            let _ = self.child.wait();
            self.reaped = true;
        }
    }

    /// Sends SIGTERM and waits (up to [`DEADLINE`]) for the exit status.
    fn terminate(&mut self) -> std::process::ExitStatus {
        send_signal(self.pid() as i32, libc::SIGTERM);
        let what = format!("{} to exit after SIGTERM", self.name);
        let status = poll(&what, DEADLINE, POLL_EVERY, || {
            self.child
                .try_wait()
                .expect("try_wait")
                .ok_or_else(String::new)
        });
        self.reaped = true;
        status
    }
}

/// Real `brigade` processes for one test; everything dies on drop.
///
/// A cluster is a [`Client`] of its coordinator (through `Deref`): the CLI
/// helpers run against whichever coordinator it runs now.
pub struct Cluster {
    dir: TempDir,
    client: Option<Client>,
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

impl Deref for Cluster {
    type Target = Client;

    fn deref(&self) -> &Client {
        self.client.as_ref().expect("no coordinator URL yet")
    }
}

impl Cluster {
    /// No processes yet; logs go to a fresh temp dir.
    pub fn empty() -> Cluster {
        Cluster {
            dir: TempDir::new("test"),
            client: None,
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

    /// A coordinator whose state is `state.db` in the cluster's dir, with
    /// extra `args` (e.g. [`super::FAST_LEASES`]), on a port outside the
    /// ephemeral range (nothing else can take it while the coordinator is
    /// down). Returns the cluster and the coordinator's arguments, for
    /// [`Cluster::restart_coordinator`].
    pub fn start_durable(args: &[&str]) -> (Cluster, Vec<String>) {
        let mut c = Cluster::empty();
        let state = c.dir().join("state.db").to_string_lossy().into_owned();
        let all: Vec<String> = ["--state", state.as_str()]
            .iter()
            .chain(args)
            .map(|s| s.to_string())
            .collect();
        let listen = format!("127.0.0.1:{}", free_port_below_ephemeral_range());
        c.start_coordinator(&listen, &strs(&all));
        (c, all)
    }

    /// Sets the coordinator URL workers and CLI runs use before a coordinator
    /// runs (to start workers first).
    pub fn set_url(&mut self, url: &str) {
        self.client = Some(Client::new(url));
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
    pub fn restart_coordinator<S: AsRef<str>>(&mut self, args: &[S]) {
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
        self.launch_coordinator(&label, &listen, &strs(args));
    }

    fn launch_coordinator(&mut self, label: &str, listen: &str, args: &[&str]) {
        let all = [&["coordinator", "--listen", listen], args].concat();
        let (proc_, url) = self.spawn_announcing(label, &all, "brigade coordinator listening on ");
        self.coordinator = Some(proc_);
        self.client = Some(Client::new(url));
    }

    /// Starts `brigade io-target` and returns its base URL.
    pub fn start_io_target(&mut self) -> String {
        assert!(self.io_target.is_none(), "an io-target is already running");
        let (proc_, url) = self.spawn_announcing(
            "io-target",
            &["io-target", "--listen", "127.0.0.1:0"],
            "brigade io-target listening on ",
        );
        self.io_target = Some((proc_, url.clone()));
        url
    }

    /// The io-target's base URL.
    pub fn io_url(&self) -> &str {
        &self.io_target.as_ref().expect("no io-target started").1
    }

    /// Starts `brigade worker NAME` against this cluster; returns its index.
    pub fn spawn_worker(&mut self, name: &str, slots: Slots) -> usize {
        self.spawn_worker_with(name, slots, &[])
    }

    /// Starts `brigade worker --name NAME` with `slots` and `extra` flags
    /// against this cluster; returns its index.
    pub fn spawn_worker_with(&mut self, name: &str, slots: Slots, extra: &[&str]) -> usize {
        self.launch_worker(Path::new(BIN), &["worker"], name, slots, extra)
    }

    /// Starts a user's worker binary (`brigade::worker::main`: `brigade
    /// worker`'s flags, no subcommand) as `--name NAME` with `slots` against
    /// this cluster; returns its index.
    pub fn spawn_user_worker(&mut self, program: &Path, name: &str, slots: Slots) -> usize {
        self.launch_worker(program, &[], name, slots, &[])
    }

    fn launch_worker(
        &mut self,
        program: &Path,
        subcommand: &[&str],
        name: &str,
        slots: Slots,
        extra: &[&str],
    ) -> usize {
        let head = ["--name", name, "--coordinator", self.url()].map(String::from);
        let all: Vec<String> = (subcommand.iter().map(|s| s.to_string()))
            .chain(head)
            .chain(slots.args())
            .chain(extra.iter().map(|s| s.to_string()))
            .collect();
        let label = format!("worker-{}-{name}", self.workers.len());
        let log = self.dir.path().join(format!("{label}.log"));
        let child = self
            .command_of(program, &strs(&all), &log)
            .stdout(Stdio::null())
            .spawn();
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
        self.command_of(Path::new(BIN), args, log)
    }

    fn command_of(&self, program: &Path, args: &[&str], log: &Path) -> Command {
        let err =
            File::create(log).unwrap_or_else(|e| panic!("could not create {}: {e}", log.display()));
        let mut cmd = Command::new(program);
        cmd.args(args)
            .env_remove("BRIGADE_COORDINATOR")
            .stdin(Stdio::null())
            .stderr(err)
            // Its own group: killing -pid reaches anything it started in it.
            .process_group(0);
        cmd
    }

    /// Spawns a process whose first stdout line is `announce` and its
    /// address; reads that line with a deadline and keeps draining stdout
    /// afterwards. Returns the process and the address.
    fn spawn_announcing(&mut self, label: &str, args: &[&str], announce: &str) -> (Proc, String) {
        let log = self.dir.path().join(format!("{label}.log"));
        let mut child = self
            .command(args, &log)
            .stdout(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("could not start {label}: {e}"));
        let first_line = first_line_in_background(child.stdout.take().expect("piped stdout"));
        let mut proc_ = Proc {
            name: label.to_string(),
            child,
            log,
            reaped: false,
        };
        let line = first_line.recv_timeout(DEADLINE);
        match line
            .as_deref()
            .map(str::trim)
            .map(|l| l.strip_prefix(announce))
        {
            // The address is the first word (a note may follow).
            Ok(Some(address)) => (
                proc_,
                address
                    .split_whitespace()
                    .next()
                    .unwrap_or_default()
                    .to_string(),
            ),
            _ => {
                let status = proc_.child.try_wait().ok().flatten();
                proc_.kill_and_reap();
                panic!(
                    "{label} printed no `{announce}ADDRESS` line within {DEADLINE:?} \
                     (got {line:?}, exit {status:?}); its stderr:\n{}",
                    read_log(&proc_.log)
                );
            }
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
        send_signal(pid as i32, libc::SIGKILL);
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
        send_signal(self.worker_pid(i) as i32, libc::SIGSTOP);
    }

    /// SIGCONTs worker `i`.
    pub fn thaw_worker(&self, i: usize) {
        send_signal(self.worker_pid(i) as i32, libc::SIGCONT);
    }

    /// SIGKILLs the coordinator and reaps it.
    pub fn kill_coordinator(&mut self) {
        if let Some(c) = &mut self.coordinator {
            c.kill_and_reap();
        }
    }

    /// Sends SIGTERM to the coordinator and waits for its exit status.
    pub fn stop_coordinator(&mut self) -> std::process::ExitStatus {
        self.coordinator
            .as_mut()
            .expect("no coordinator")
            .terminate()
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
        self.dir.path()
    }

    /// Starts `brigade ARGS...` against this cluster's coordinator without
    /// waiting for it; see [`BackgroundRun::finish`].
    pub fn spawn_brigade<S: AsRef<str>>(&self, args: &[S]) -> BackgroundRun {
        let args = strs(args);
        let child = super::client::brigade_command(&args)
            .env("BRIGADE_COORDINATOR", self.url())
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
        self.workers[i].terminate()
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
        output_within(child, deadline)
            .unwrap_or_else(|e| panic!("`brigade {}` {e}", self.args.join(" ")))
    }

    /// Its standard output line by line as it is printed (read on a thread
    /// of its own); [`BackgroundRun::finish`] then returns no stdout.
    pub fn stdout_lines(&mut self) -> std::sync::mpsc::Receiver<String> {
        let out = self
            .child
            .as_mut()
            .and_then(|c| c.stdout.take())
            .expect("a running child whose stdout was not taken yet");
        lines_of(out)
    }

    /// The same for its standard error; the receiver ends once the run
    /// has exited (and [`BackgroundRun::finish`] returns no stderr).
    pub fn stderr_lines(&mut self) -> std::sync::mpsc::Receiver<String> {
        let err = self
            .child
            .as_mut()
            .and_then(|c| c.stderr.take())
            .expect("a running child whose stderr was not taken yet");
        lines_of(err)
    }

    /// Its pid.
    pub fn pid(&self) -> u32 {
        self.child.as_ref().expect("a running child").id()
    }

    /// Sends it signal `sig` (e.g. SIGINT, as Ctrl-C does).
    pub fn signal(&self, sig: i32) {
        send_signal(self.pid() as i32, sig);
    }

    /// Waits until it catches `sig` (its handler is installed), then sends
    /// it: a signal sent earlier would end it as the default action does.
    pub fn signal_once_caught(&self, sig: i32) {
        let pid = self.pid();
        wait_until(
            &format!("`brigade {}` to catch signal {sig}", self.args.join(" ")),
            DEADLINE,
            || super::proc::catches_signal(pid, sig).then_some(()),
        );
        self.signal(sig);
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

/// The lines `from` yields, read on a thread of their own.
fn lines_of(from: impl Read + Send + 'static) -> std::sync::mpsc::Receiver<String> {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in std::io::BufRead::lines(std::io::BufReader::new(from)) {
            let Ok(line) = line else { return };
            if tx.send(line).is_err() {
                return;
            }
        }
    });
    rx
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
            send_signal(w.pid() as i32, libc::SIGSTOP);
            for e in child_pids(w.pid()) {
                kill_group(e);
            }
            w.kill_and_reap();
        }
        for &(pid, start) in &self.orphans {
            if proc_stat(pid).is_some_and(|s| s.start_time == start) {
                kill_group(pid);
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
        }
        // The temp dir goes (or stays, on a panic) after this.
    }
}
