//! `spin ms=M`: burns M milliseconds of the calling thread's CPU time.

use std::hint::black_box;
use std::time::Duration;

use brigade_proto::catalog::{ArgDef, Reduction, WorkloadDef};
use brigade_proto::v1::Kind;
use brigade_proto::Output;

use super::cpu_clock::thread_cpu_ns;
use super::{BlockingContext, BlockingTask, Registration, TaskBody, TaskInput, MS_ARG_MAX};

/// The definition and code of `spin`.
pub fn registration() -> Registration {
    Registration::new(
        WorkloadDef::new(
            "spin",
            Kind::Cpu,
            Reduction::List,
            "burns `ms` milliseconds of CPU time and returns the task's index \
             (with `crash-index`, that task aborts its process)",
        )
        .arg(ArgDef::u64("ms", 0, MS_ARG_MAX, "milliseconds of CPU to burn per task").required())
        .arg(ArgDef::u64(
            "crash-index",
            0,
            u64::MAX,
            "the task with this index aborts its process after burning (a poison task)",
        )),
        |args| {
            Ok(TaskBody::blocking(Spin {
                cpu: Duration::from_millis(args.required_u64("ms")?),
                crash_index: args.u64("crash-index"),
            }))
        },
    )
}

/// A spin job's tasks.
#[derive(Debug)]
pub struct Spin {
    pub cpu: Duration,
    /// The task with this index aborts its process (a poison task, for
    /// fault tests).
    pub crash_index: Option<u64>,
}

impl BlockingTask for Spin {
    fn run(&self, input: &TaskInput, _: &mut BlockingContext) -> Result<Output, String> {
        run(self.cpu, input.index, self.crash_index);
        Ok(Output::Int(input.index as u128))
    }
}

/// Busy-loops until this thread has used `cpu` of CPU time. Measured against
/// the thread CPU clock, not wall time, so a preempted spin still burns the full
/// amount of CPU (what CPU-bound benchmarks need).
///
/// The task whose index is `crash_index` then aborts the whole process: a
/// poison task. On a process slot that kills one executor; on thread and
/// async slots it takes the worker down — the isolation processes buy.
pub fn run(cpu: Duration, index: u64, crash_index: Option<u64>) {
    burn(cpu);
    if crash_index == Some(index) {
        std::process::abort();
    }
}

fn burn(cpu: Duration) {
    let target = thread_cpu_ns().saturating_add(cpu.as_nanos().min(u64::MAX as u128) as u64);
    let mut x = 0u64;
    while thread_cpu_ns() < target {
        // A few microseconds of work between clock reads keeps the clock's
        // own cost (a syscall) a small share of the burn.
        for i in 0..2_000u64 {
            x = x.wrapping_mul(31).wrapping_add(black_box(i));
        }
    }
    black_box(x);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn burns_at_least_the_requested_cpu() {
        let before = thread_cpu_ns();
        run(Duration::from_millis(20), 0, None);
        assert!(thread_cpu_ns() - before >= 20_000_000);
    }

    #[test]
    fn zero_returns_at_once() {
        run(Duration::ZERO, 0, Some(1));
    }
}
