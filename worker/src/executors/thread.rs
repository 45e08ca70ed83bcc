//! Thread slots: T named OS threads taking tasks from one shared queue (the
//! most recently idle thread first), each keeping its own blocking HTTP
//! connection and handing its outcomes over in batches. A running thread
//! cannot be interrupted, so a timeout is judged after the fact.

use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use brigade_proto::v1::{Model, OutcomeStatus};
use brigade_proto::Output;

use super::queue::{Takers, TaskQueue};
use super::{duration_ns, CpuMeter, Outcomes, PendingOutcomes, TaskDone};
use crate::workload::BlockingContext;

/// How long `shutdown` waits for threads still finishing a task.
const JOIN_GRACE: Duration = Duration::from_secs(2);

pub(crate) struct ThreadPool {
    queue: Arc<TaskQueue>,
    threads: Vec<JoinHandle<()>>,
}

impl ThreadPool {
    pub fn start(n: usize, done: Outcomes) -> std::io::Result<ThreadPool> {
        let queue = Arc::new(TaskQueue::new(n, Takers::Blocking));
        let mut threads = Vec::with_capacity(n);
        for slot in 0..n {
            let (slot_queue, done) = (queue.clone(), done.clone());
            let spawned = std::thread::Builder::new()
                .name(format!("brigade-thread-{slot}"))
                .spawn(move || slot_loop(slot, slot_queue, done));
            match spawned {
                Ok(t) => threads.push(t),
                Err(e) => {
                    // Let the threads already started exit before failing.
                    queue.stop(true);
                    return Err(e);
                }
            }
        }
        Ok(ThreadPool { queue, threads })
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

fn slot_loop(slot: usize, queue: Arc<TaskQueue>, done: Outcomes) {
    let mut ctx = BlockingContext::new();
    let mut meter = CpuMeter::default();
    let mut pending = PendingOutcomes::new(done, queue.clone());
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
        let run = meter.run(task.job_id, &task.workload, &task.input, &mut ctx);
        let mut outcome = TaskDone::ran(&task, Model::Thread, run);
        if let Some(limit) = task.timeout {
            if outcome.wall_ns > duration_ns(limit) {
                outcome.status = OutcomeStatus::TimedOut;
                outcome.value = Output::Int(0);
                outcome.error = format!(
                    "task ran {} ms, exceeding its {} ms timeout; a thread slot cannot be \
                     interrupted, so it ran to completion",
                    outcome.wall_ns / 1_000_000,
                    limit.as_millis()
                );
            }
        }
        let ran_ns = outcome.wall_ns;
        pending.add(outcome, ran_ns);
    }
}
