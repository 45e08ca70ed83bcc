//! Thread slots: T named OS threads taking tasks from one shared queue (the
//! most recently idle thread first), each keeping its own blocking HTTP
//! connection and handing its outcomes over in batches. A running thread
//! cannot be interrupted, but the commands its task starts can: each slot
//! tells its task its deadline and an [`Interrupt`] raised when the task's
//! job is cancelled, and `exec` kills its command at either and returns at
//! once. Other code runs to its end, and its timeout is judged after the
//! fact.

use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use brigade_proto::v1::{Model, OutcomeStatus};
use brigade_proto::Output;

use super::queue::{Takers, TaskQueue};
use super::{duration_ns, CpuMeter, Outcomes, PendingOutcomes, TaskDone, JOB_CANCELLED};
use crate::contain::Interrupt;
use crate::workload::BlockingContext;

/// How long `shutdown` waits for threads still finishing a task.
const JOIN_GRACE: Duration = Duration::from_secs(2);

pub(crate) struct ThreadPool {
    queue: Arc<TaskQueue>,
    threads: Vec<JoinHandle<()>>,
    slots: Vec<Arc<SlotRun>>,
}

/// What runs on one slot, seen from outside: the job of its running task
/// and the interrupt that task's commands listen to.
struct SlotRun {
    job: Mutex<Option<u64>>,
    interrupt: Arc<Interrupt>,
}

impl SlotRun {
    fn job(&self) -> std::sync::MutexGuard<'_, Option<u64>> {
        self.job.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl ThreadPool {
    pub fn start(n: usize, done: Outcomes) -> std::io::Result<ThreadPool> {
        let queue = Arc::new(TaskQueue::new(n, Takers::Blocking));
        let mut threads = Vec::with_capacity(n);
        let mut slots = Vec::with_capacity(n);
        for slot in 0..n {
            let run = Arc::new(SlotRun {
                job: Mutex::new(None),
                interrupt: Arc::new(Interrupt::new()?),
            });
            slots.push(run.clone());
            let (slot_queue, done) = (queue.clone(), done.clone());
            let spawned = std::thread::Builder::new()
                .name(format!("brigade-thread-{slot}"))
                .spawn(move || slot_loop(slot, slot_queue, done, run));
            match spawned {
                Ok(t) => threads.push(t),
                Err(e) => {
                    // Let the threads already started exit before failing.
                    queue.stop(true);
                    return Err(e);
                }
            }
        }
        Ok(ThreadPool {
            queue,
            threads,
            slots,
        })
    }

    /// Interrupts the running tasks of `job_id`: the commands they started
    /// are killed and the tasks answered CANCELLED.
    pub fn cancel_running(&self, job_id: u64) {
        for slot in &self.slots {
            let job = slot.job();
            if *job == Some(job_id) {
                slot.interrupt.raise();
            }
        }
    }

    pub fn queue(&self) -> &TaskQueue {
        &self.queue
    }

    pub async fn shutdown(self) {
        self.queue.stop(true);
        let threads = self.threads;
        let joined = tokio::task::spawn_blocking(move || {
            for t in threads {
                let _ = t.join();
            }
        });
        if tokio::time::timeout(JOIN_GRACE, joined).await.is_err() {
            tracing::warn!(
                grace_ms = JOIN_GRACE.as_millis() as u64,
                "thread slots still running a task were left to finish in the background"
            );
        }
    }
}

fn slot_loop(slot: usize, queue: Arc<TaskQueue>, done: Outcomes, run: Arc<SlotRun>) {
    let mut ctx = BlockingContext::new();
    ctx.interrupt = Some(run.interrupt.clone());
    let mut meter = CpuMeter::default();
    let mut pending = PendingOutcomes::new(done, queue.clone());
    let mut current_job = None;
    loop {
        // Hand over what is held before waiting for work, never after.
        let next = match pending.is_empty() {
            true => None,
            false => queue.try_pop(),
        };
        let task = match next {
            Some(task) => task,
            None => {
                pending.flush();
                meter.waited();
                match queue.pop_blocking(slot) {
                    Some(task) => task,
                    None => break,
                }
            }
        };
        // The slot stays marked with its last task's job until a task of
        // another job comes (a lock and maybe a syscall, not paid per task):
        // a cancel of that job raised meanwhile interrupts the job's next
        // task here too, which is what a cancel asks for.
        if current_job != Some(task.job_id) {
            let mut job = run.job();
            *job = Some(task.job_id);
            run.interrupt.reset();
            current_job = Some(task.job_id);
        }
        ctx.deadline = task.timeout.map(|t| std::time::Instant::now() + t);
        let measured = meter.run(task.job_id, &task.workload, &task.input, &mut ctx);
        let cancelled = run.interrupt.is_raised();
        let mut outcome = TaskDone::ran(&task, Model::Thread, measured);
        if cancelled {
            outcome.status = OutcomeStatus::Cancelled;
            outcome.value = Output::Int(0);
            outcome.error = format!("{JOB_CANCELLED}: {}", outcome.error);
        } else if let Some(limit) = task.timeout {
            if outcome.wall_ns > duration_ns(limit) {
                outcome.status = OutcomeStatus::TimedOut;
                outcome.value = Output::Int(0);
                outcome.error = match outcome.error.as_str() {
                    // Nothing to stop (not a command): it ran to its end.
                    "" => format!(
                        "task ran {} ms, exceeding its {} ms timeout; a thread slot cannot be \
                         interrupted, so it ran to its end",
                        outcome.wall_ns / 1_000_000,
                        limit.as_millis()
                    ),
                    why => format!(
                        "task exceeded its {} ms timeout after {} ms: {why}",
                        limit.as_millis(),
                        outcome.wall_ns / 1_000_000
                    ),
                };
            }
        }
        let ran_ns = outcome.wall_ns;
        pending.add(outcome, ran_ns);
    }
}
