//! How long a thread has waited, ready to run, for a CPU: the second field
//! of the kernel's per-thread schedstat (`/proc/thread-self/schedstat`:
//! nanoseconds on a CPU, nanoseconds waiting on a run queue, time slices).
//! On a loaded machine a CPU-bound task spends part of its wall time in
//! that queue; without this figure it would look like it was waiting on
//! I/O. The file stays open per thread and is read with `pread` at offset
//! 0, one syscall per reading. Kernels without schedstats give `None`.

use std::fs::File;
use std::os::unix::fs::FileExt;

/// Reads the run-queue wait of the thread that opened it.
#[derive(Debug)]
pub(crate) struct RunQueueClock {
    file: Option<File>,
}

impl RunQueueClock {
    /// Opens the calling thread's schedstat (the clock then measures this
    /// thread, wherever it is read from).
    pub fn for_this_thread() -> Self {
        RunQueueClock {
            file: File::open("/proc/thread-self/schedstat").ok(),
        }
    }

    /// Total nanoseconds this thread has waited on a run queue so far.
    pub fn waited_ns(&self) -> Option<u64> {
        let mut buf = [0u8; 96];
        let n = self.file.as_ref()?.read_at(&mut buf, 0).ok()?;
        parse(&buf[..n])
    }
}

/// The run-queue wait (second field) of a schedstat line.
fn parse(line: &[u8]) -> Option<u64> {
    std::str::from_utf8(line)
        .ok()?
        .split_ascii_whitespace()
        .nth(1)?
        .parse()
        .ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_second_field() {
        assert_eq!(parse(b"758121 98887 2\n"), Some(98_887));
        assert_eq!(parse(b"758121"), None);
        assert_eq!(parse(b"a b c"), None);
    }

    #[test]
    fn reads_this_threads_wait_again_and_again() {
        let clock = RunQueueClock::for_this_thread();
        let Some(first) = clock.waited_ns() else {
            // A kernel without CONFIG_SCHEDSTATS / SCHED_INFO: nothing to read.
            assert!(std::fs::read("/proc/thread-self/schedstat").is_err());
            return;
        };
        // Yielding queues the thread again; the total never goes down.
        for _ in 0..100 {
            std::thread::yield_now();
        }
        let second = clock.waited_ns().expect("a second reading");
        assert!(second >= first, "{second} < {first}");
    }

    /// Pins the calling thread to CPU 0.
    fn pin_to_cpu0() {
        // SAFETY: a zeroed cpu_set_t is a valid empty set; CPU_SET and
        // sched_setaffinity(0 = this thread) only read and write it.
        unsafe {
            let mut set: libc::cpu_set_t = std::mem::zeroed();
            libc::CPU_SET(0, &mut set);
            assert_eq!(
                libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set),
                0,
                "pin to CPU 0"
            );
        }
    }

    /// A CPU-bound task sharing its CPU with a busy thread: half its wall
    /// time goes to waiting for the CPU, which the meter reports apart, so
    /// its CPU share of the time it could run stays near 1.
    #[test]
    fn a_cpu_bound_task_on_a_shared_cpu_reports_its_queueing() {
        use super::super::CpuMeter;
        use crate::test_support::workload;
        use crate::workload::{BlockingContext, TaskInput};
        if RunQueueClock::for_this_thread().waited_ns().is_none() {
            return; // no schedstats on this kernel
        }
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let hog = {
            let stop = stop.clone();
            std::thread::spawn(move || {
                pin_to_cpu0();
                while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                    std::hint::spin_loop();
                }
            })
        };
        pin_to_cpu0();
        let spin = workload("spin", &[("ms", "40")]);
        let input = TaskInput::range(0, 0, 1);
        let mut meter = CpuMeter::default();
        let run = meter.run(1, &spin, &input, &mut BlockingContext::new());
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
        hog.join().expect("hog stops");
        assert!(run.result.is_ok(), "{:?}", run.result);
        let running = run.wall_ns - run.ready_ns;
        assert!(
            run.ready_ns * 5 >= run.wall_ns,
            "sharing one CPU with a busy thread, the task should wait at least a fifth of \
             its wall time for it: {run:?}"
        );
        assert!(
            run.cpu_ns * 10 >= running * 8,
            "CPU time should be most of the time the task was not queued: {run:?}"
        );
    }
}
