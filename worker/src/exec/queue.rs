//! The pending-task queue each executor pulls from. A mutex-guarded deque
//! rather than a channel: `cancel_job` and `drain` must take queued tasks out
//! of the middle and answer them at once, which a channel cannot do. Blocking
//! takers (slot threads) wait on a condvar, async takers (the event loop,
//! process supervisors) on a `Notify`; the running count is kept here too so
//! that a drain can never miss a task between "taken" and "running".

use std::collections::VecDeque;
use std::pin::pin;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Condvar, Mutex, MutexGuard};

use tokio::sync::Notify;

use super::TaskRun;

#[derive(Default)]
struct State {
    tasks: VecDeque<TaskRun>,
    /// No more pushes (drain or shutdown).
    draining: bool,
    /// Takers return `None` (shutdown).
    closed: bool,
    /// Slot threads parked on the condvar; only then is a notify worth a syscall.
    sleeping: usize,
}

#[derive(Default)]
pub(crate) struct TaskQueue {
    state: Mutex<State>,
    ready: Condvar,
    ready_async: Notify,
    running: AtomicUsize,
    draining: AtomicBool,
    idle: Notify,
}

impl TaskQueue {
    fn lock(&self) -> MutexGuard<'_, State> {
        // A panic while holding this lock cannot leave the deque inconsistent
        // (every critical section is a single push/pop/retain), so recover.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Queues a task; gives it back when the queue no longer accepts work.
    pub fn push(&self, task: TaskRun) -> Result<(), TaskRun> {
        let mut s = self.lock();
        if s.draining {
            return Err(task);
        }
        s.tasks.push_back(task);
        let wake_thread = s.sleeping > 0;
        drop(s);
        if wake_thread {
            self.ready.notify_one();
        }
        self.ready_async.notify_one();
        Ok(())
    }

    fn take(&self, s: &mut State) -> Option<TaskRun> {
        let task = s.tasks.pop_front()?;
        // Counted while the lock is held, so `drain` sees it as running.
        self.running.fetch_add(1, Ordering::SeqCst);
        Some(task)
    }

    /// Takes the next task, blocking; `None` once the queue is closed.
    pub fn pop_blocking(&self) -> Option<TaskRun> {
        let mut s = self.lock();
        loop {
            if s.closed {
                return None;
            }
            if let Some(t) = self.take(&mut s) {
                return Some(t);
            }
            s.sleeping += 1;
            s = self.ready.wait(s).unwrap_or_else(|p| p.into_inner());
            s.sleeping -= 1;
        }
    }

    /// Takes the next task; `None` once the queue is closed. Cancel-safe: a
    /// task is only removed when this returns it.
    pub async fn pop(&self) -> Option<TaskRun> {
        loop {
            let mut notified = pin!(self.ready_async.notified());
            notified.as_mut().enable();
            {
                let mut s = self.lock();
                if s.closed {
                    return None;
                }
                if let Some(t) = self.take(&mut s) {
                    return Some(t);
                }
            }
            notified.await;
        }
    }

    /// Removes the queued tasks of `job_id`.
    pub fn remove_job(&self, job_id: u64) -> Vec<TaskRun> {
        let mut s = self.lock();
        let (removed, kept): (Vec<TaskRun>, Vec<TaskRun>) = std::mem::take(&mut s.tasks)
            .into_iter()
            .partition(|t| t.job_id == job_id);
        s.tasks = VecDeque::from(kept);
        removed
    }

    /// Stops accepting work and hands back everything queued. With `close`,
    /// takers also stop (shutdown); without, they just find nothing (drain).
    pub fn stop(&self, close: bool) -> VecDeque<TaskRun> {
        let mut s = self.lock();
        s.draining = true;
        self.draining.store(true, Ordering::SeqCst);
        s.closed |= close;
        let queued = std::mem::take(&mut s.tasks);
        drop(s);
        if close {
            self.ready.notify_all();
            self.ready_async.notify_waiters();
        }
        queued
    }

    /// Marks one taken task as answered.
    pub fn finished(&self) {
        if self.running.fetch_sub(1, Ordering::SeqCst) == 1 && self.draining.load(Ordering::SeqCst)
        {
            self.idle.notify_waiters();
        }
    }

    /// Tasks taken and not yet answered.
    pub fn running(&self) -> usize {
        self.running.load(Ordering::SeqCst)
    }

    /// Waits until no taken task is unanswered (call after `stop`).
    pub async fn wait_idle(&self) {
        loop {
            let mut idle = pin!(self.idle.notified());
            idle.as_mut().enable();
            if self.running() == 0 {
                return;
            }
            idle.await;
        }
    }
}
