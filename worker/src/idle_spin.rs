//! The idle spinner: after the process wakes up, one lowest-priority thread
//! keeps a core busy for a short window, so that the next message's wake-up
//! lands on a running CPU instead of a halted one.
//!
//! Why: on a VM whose idle vCPUs halt (this project's 2-vCPU machines run
//! with the guest's halt polling off), waking a thread onto the idle vCPU
//! costs about 40 µs before it runs, against a few µs onto a busy one; a
//! single-task round trip crosses six such wake-ups (client, coordinator,
//! worker link, slot, link, coordinator). BENCHMARKS.md has the figures.
//!
//! How: the spinner runs under `SCHED_IDLE`, so any ordinary thread that
//! becomes runnable on its CPU preempts it at once, and the scheduler
//! counts a CPU running only `SCHED_IDLE` threads as idle when it places a
//! wake-up. It spins only until `window` after the latest [`Spinner::arm`]
//! (the runtimes arm it each time their thread unparks), then sleeps until
//! armed again. It only ever uses CPU time nobody else wanted, but that time
//! shows in the process's CPU figures, and on a laptop it is power: off
//! unless asked for (`--spin-us`).

use std::sync::atomic::{AtomicBool, AtomicI32, AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::thread::{JoinHandle, Thread};
use std::time::{Duration, Instant};

/// The spinner thread's name (what `/proc/PID/task/*/comm` shows), by which
/// the bench leaves its CPU time out.
pub const THREAD_NAME: &str = "brigade-spin";

/// Longest window `--spin-us` accepts: past a few ms a window stops saving
/// wake-ups and only burns idle CPU.
pub const MAX_WINDOW: Duration = Duration::from_millis(10);

struct Inner {
    epoch: Instant,
    window_ns: u64,
    /// Spin until this (ns since `epoch`).
    deadline: AtomicU64,
    /// Set by the spinner before it parks; `arm` unparks it when set.
    sleeping: AtomicBool,
    stop: AtomicBool,
    /// The spinner thread's kernel id, once it runs (0 before).
    tid: AtomicI32,
    /// Wall time spent spinning, and how many windows it spun.
    spun_ns: AtomicU64,
    windows: AtomicU64,
}

impl Inner {
    fn now_ns(&self) -> u64 {
        self.epoch.elapsed().as_nanos() as u64
    }
}

/// The handle to one spinner thread; dropping it stops the thread.
pub struct Spinner {
    inner: Arc<Inner>,
    thread: Thread,
    join: Option<JoinHandle<()>>,
}

/// What a spinner has done so far.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SpinStats {
    /// Wall time spent spinning (CPU time when nothing preempted it).
    pub spun: Duration,
    /// Windows that ended with the spinner going back to sleep.
    pub windows: u64,
    pub sleeping: bool,
}

impl Spinner {
    /// Starts a spinner with this window; `None` for a zero window. Fails
    /// where the thread cannot run as `SCHED_IDLE` (then it would compete
    /// with real work, so there is none).
    pub fn start(window: Duration) -> std::io::Result<Option<Spinner>> {
        if window.is_zero() {
            return Ok(None);
        }
        if window > MAX_WINDOW {
            return Err(std::io::Error::new(
                std::io::ErrorKind::InvalidInput,
                format!("a spin window of {window:?} is over the maximum of {MAX_WINDOW:?}"),
            ));
        }
        let inner = Arc::new(Inner {
            epoch: Instant::now(),
            window_ns: window.as_nanos() as u64,
            deadline: AtomicU64::new(0),
            sleeping: AtomicBool::new(false),
            stop: AtomicBool::new(false),
            tid: AtomicI32::new(0),
            spun_ns: AtomicU64::new(0),
            windows: AtomicU64::new(0),
        });
        let (ready_tx, ready_rx) = std::sync::mpsc::channel();
        let theirs = inner.clone();
        let join = std::thread::Builder::new()
            .name(THREAD_NAME.into())
            .spawn(move || {
                let lowered = lower_to_idle_priority();
                let ok = lowered.is_ok();
                theirs.tid.store(current_tid(), Ordering::Release);
                let _ = ready_tx.send(lowered);
                if ok {
                    spin_loop(&theirs);
                }
            })?;
        let thread = join.thread().clone();
        match ready_rx.recv() {
            Ok(Ok(())) => Ok(Some(Spinner {
                inner,
                thread,
                join: Some(join),
            })),
            Ok(Err(e)) => {
                let _ = join.join();
                Err(e)
            }
            Err(_) => Err(std::io::Error::other("the spinner thread died at start")),
        }
    }

    /// Spin until `window` from now (cheap: a clock read and two atomics,
    /// plus one unpark when the spinner was asleep).
    pub fn arm(&self) {
        let i = &self.inner;
        i.deadline.store(i.now_ns() + i.window_ns, Ordering::SeqCst);
        if i.sleeping.load(Ordering::SeqCst) {
            self.thread.unpark();
        }
    }

    pub fn stats(&self) -> SpinStats {
        SpinStats {
            spun: Duration::from_nanos(self.inner.spun_ns.load(Ordering::Relaxed)),
            windows: self.inner.windows.load(Ordering::Relaxed),
            sleeping: self.inner.sleeping.load(Ordering::SeqCst),
        }
    }

    /// The spinner thread's kernel thread id.
    pub fn tid(&self) -> i32 {
        self.inner.tid.load(Ordering::Acquire)
    }
}

impl Drop for Spinner {
    fn drop(&mut self) {
        self.inner.stop.store(true, Ordering::SeqCst);
        self.thread.unpark();
        if let Some(j) = self.join.take() {
            let _ = j.join();
        }
    }
}

fn spin_loop(i: &Inner) {
    while !i.stop.load(Ordering::Relaxed) {
        let start = i.now_ns();
        let mut now = start;
        while now < i.deadline.load(Ordering::Relaxed) && !i.stop.load(Ordering::Relaxed) {
            for _ in 0..64 {
                std::hint::spin_loop();
            }
            now = i.now_ns();
        }
        if now > start {
            i.spun_ns.fetch_add(now - start, Ordering::Relaxed);
            i.windows.fetch_add(1, Ordering::Relaxed);
        }
        // Announce the sleep, then look once more: an `arm` either stored
        // its deadline before this load (we see it and spin) or loads
        // `sleeping` after our store (and unparks us). Both sides SeqCst.
        i.sleeping.store(true, Ordering::SeqCst);
        if i.now_ns() >= i.deadline.load(Ordering::SeqCst) && !i.stop.load(Ordering::SeqCst) {
            std::thread::park();
        }
        i.sleeping.store(false, Ordering::SeqCst);
    }
}

#[cfg(target_os = "linux")]
fn lower_to_idle_priority() -> std::io::Result<()> {
    let param = libc::sched_param { sched_priority: 0 };
    // SAFETY: pid 0 is the calling thread; `param` outlives the call.
    if unsafe { libc::sched_setscheduler(0, libc::SCHED_IDLE, &param) } == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error())
    }
}

#[cfg(not(target_os = "linux"))]
fn lower_to_idle_priority() -> std::io::Result<()> {
    Err(std::io::Error::new(
        std::io::ErrorKind::Unsupported,
        "an idle spinner needs Linux's SCHED_IDLE",
    ))
}

#[cfg(target_os = "linux")]
fn current_tid() -> i32 {
    // SAFETY: gettid has no preconditions.
    unsafe { libc::gettid() }
}

#[cfg(not(target_os = "linux"))]
fn current_tid() -> i32 {
    0
}

static PROCESS: OnceLock<Spinner> = OnceLock::new();

/// Starts this process's spinner (once; later calls keep the first).
pub fn start_process_spinner(window: Duration) -> std::io::Result<()> {
    if PROCESS.get().is_some() {
        return Ok(());
    }
    if let Some(s) = Spinner::start(window)? {
        let _ = PROCESS.set(s);
    }
    Ok(())
}

/// Arms this process's spinner, if it has one: the runtimes' unpark hook.
pub fn arm() {
    if let Some(s) = PROCESS.get() {
        s.arm();
    }
}

/// This process's spin window (zero without a spinner), for the workers a
/// process starts.
pub fn process_window() -> Duration {
    PROCESS
        .get()
        .map_or(Duration::ZERO, |s| Duration::from_nanos(s.inner.window_ns))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Polls `f` until it holds, for at most 120 s (an idle-priority thread
    /// waits for a busy machine to leave it a moment).
    fn eventually(what: &str, mut f: impl FnMut() -> bool) {
        // Other tests of this binary may keep both CPUs busy for half a
        // minute; only once they are done does an idle thread surely run.
        let deadline = Instant::now() + Duration::from_secs(120);
        while !f() {
            assert!(Instant::now() < deadline, "timed out waiting for {what}");
            std::thread::sleep(Duration::from_millis(1));
        }
    }

    #[test]
    fn no_window_no_thread_and_a_window_over_the_maximum_is_refused() {
        assert!(Spinner::start(Duration::ZERO).unwrap().is_none());
        let e = Spinner::start(MAX_WINDOW + Duration::from_nanos(1))
            .err()
            .expect("refused");
        assert_eq!(e.kind(), std::io::ErrorKind::InvalidInput);
        assert!(e.to_string().contains("maximum"), "{e}");
    }

    #[test]
    fn an_armed_spinner_spins_its_window_then_sleeps_until_armed_again() {
        let s = Spinner::start(Duration::from_millis(2)).unwrap().unwrap();
        // What is checked here is the window, not the priority (the test
        // below): at normal priority the thread runs on a machine kept busy
        // by other builds and tests, where an idle one may starve for
        // minutes.
        #[cfg(target_os = "linux")]
        {
            let normal = libc::sched_param { sched_priority: 0 };
            // SAFETY: sets the policy of a thread of this process.
            let r = unsafe { libc::sched_setscheduler(s.tid(), libc::SCHED_OTHER, &normal) };
            assert_eq!(r, 0, "{}", std::io::Error::last_os_error());
        }
        eventually("the first sleep", || s.stats().sleeping);
        assert_eq!(s.stats().windows, 0, "nothing armed it yet");
        let mut spun = Duration::ZERO;
        for round in 1..=3u64 {
            // A window the thread wakes up too late for (a loaded machine)
            // is not spun at all: arm again until one is.
            let before = s.stats().windows;
            let mut armed: Option<Instant> = None;
            eventually("a window to be spun", || {
                let st = s.stats();
                if st.windows > before && st.sleeping {
                    return true;
                }
                if st.sleeping && armed.is_none_or(|t| t.elapsed() > Duration::from_millis(100)) {
                    s.arm();
                    armed = Some(Instant::now());
                }
                false
            });
            // Each window spins from the wake-up to the deadline.
            let st = s.stats();
            assert!(st.spun > spun, "round {round}: {st:?}");
            spun = st.spun;
        }
        let st = s.stats();
        // Asleep, it spins no more.
        std::thread::sleep(Duration::from_millis(5));
        assert_eq!(s.stats().spun, st.spun);
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn the_spinner_runs_at_idle_priority() {
        let s = Spinner::start(Duration::from_millis(1)).unwrap().unwrap();
        // SAFETY: a query on a thread id of this process.
        let policy = unsafe { libc::sched_getscheduler(s.tid()) };
        assert_eq!(policy, libc::SCHED_IDLE);
    }

    #[test]
    fn dropping_a_spinner_stops_its_thread_while_it_spins() {
        let s = Spinner::start(MAX_WINDOW).unwrap().unwrap();
        s.arm();
        drop(s); // joins: the test would hang if the thread kept going
    }
}
