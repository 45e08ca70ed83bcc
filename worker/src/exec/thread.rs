//! Thread slots: T named OS threads taking tasks from one shared queue, each
//! keeping its own blocking HTTP connection. A running thread cannot be
//! interrupted, so a timeout is judged after the fact.

use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use brigade_proto::v1::{Model, OutcomeStatus};

use super::queue::TaskQueue;
use super::{duration_ns, run_measured, Outcomes, TaskDone};
use crate::workload::BlockingContext;

/// How long `shutdown` waits for threads still finishing a task.
const JOIN_GRACE: Duration = Duration::from_secs(2);

pub(crate) struct ThreadPool {
    queue: Arc<TaskQueue>,
    threads: Vec<JoinHandle<()>>,
}

impl ThreadPool {
    pub fn start(n: usize, done: Outcomes) -> std::io::Result<ThreadPool> {
        let queue = Arc::new(TaskQueue::default());
        let mut threads = Vec::with_capacity(n);
        for slot in 0..n {
            let (slot_queue, done) = (queue.clone(), done.clone());
            let spawned = std::thread::Builder::new()
                .name(format!("brigade-thread-{slot}"))
                .spawn(move || slot_loop(&slot_queue, &done));
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

fn slot_loop(queue: &TaskQueue, done: &Outcomes) {
    let mut ctx = BlockingContext::new();
    while let Some(task) = queue.pop_blocking() {
        let run = run_measured(&task.workload, &task.input, &mut ctx);
        let mut outcome = TaskDone::ran(&task, Model::Thread, run);
        if let Some(limit) = task.timeout {
            if outcome.wall_ns > duration_ns(limit) {
                outcome.status = OutcomeStatus::TimedOut;
                outcome.value = 0;
                outcome.error = format!(
                    "task ran {} ms, exceeding its {} ms timeout; a thread slot cannot be \
                     interrupted, so it ran to completion",
                    outcome.wall_ns / 1_000_000,
                    limit.as_millis()
                );
            }
        }
        done.send(outcome);
        queue.finished();
    }
}
