//! The pending-task queue each executor pulls from. A mutex-guarded deque
//! rather than a channel: `cancel_job` and `drain` must take queued tasks out
//! of the middle and answer them at once, which a channel cannot do. The
//! running count is kept here too so that a drain can never miss a task
//! between "taken" and "answered".
//!
//! Each taker (a slot thread, a process supervisor, the event loop) has its
//! own wake-up signal: blocking takers a condvar, async takers a `Notify`.
//! Takers with nothing to do wait on a stack, and new work wakes the most
//! recently idle first (LIFO): when fewer tasks arrive than slots are idle —
//! a job capped at 2 in flight on a worker with 32 slots — the same warm
//! threads and executor processes keep getting them, instead of a cold one
//! each time. A batch of tasks takes the lock once and wakes as many takers
//! as it has tasks, no more.

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
    /// Takers waiting for work, the most recently idle last.
    idle: Vec<usize>,
}

impl State {
    /// Takes `taker` off the idle stack if it is still there (it woke
    /// without being picked, or stopped waiting).
    fn forget_idle(&mut self, taker: usize) {
        if let Some(i) = self.idle.iter().rposition(|&t| t == taker) {
            self.idle.remove(i);
        }
    }
}

/// How the queue's takers wait.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Takers {
    /// OS threads blocked in [`TaskQueue::pop_blocking`].
    Blocking,
    /// Tokio tasks awaiting [`TaskQueue::pop`].
    Async,
}

#[derive(Default)]
struct Signal {
    blocking: Condvar,
    notify: Notify,
}

pub(crate) struct TaskQueue {
    state: Mutex<State>,
    kind: Takers,
    /// One per taker, indexed by taker number.
    signals: Box<[Signal]>,
    running: AtomicUsize,
    draining: AtomicBool,
    all_answered: Notify,
}

impl TaskQueue {
    /// A queue for `takers` takers numbered `0..takers`, waiting as `kind`.
    pub fn new(takers: usize, kind: Takers) -> TaskQueue {
        TaskQueue {
            state: Mutex::new(State {
                idle: Vec::with_capacity(takers),
                ..State::default()
            }),
            kind,
            signals: (0..takers).map(|_| Signal::default()).collect(),
            running: AtomicUsize::new(0),
            draining: AtomicBool::new(false),
            all_answered: Notify::new(),
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // A panic while holding this lock cannot leave the state inconsistent
        // (every critical section is a few pushes/pops/retains), so recover.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn wake(&self, taker: usize) {
        let Some(signal) = self.signals.get(taker) else {
            return;
        };
        match self.kind {
            Takers::Blocking => signal.blocking.notify_one(),
            Takers::Async => signal.notify.notify_one(),
        }
    }

    /// Queues tasks in order under one lock, waking at most one idle taker
    /// per task (the most recently idle first); gives them all back when the
    /// queue no longer accepts work.
    pub fn push_many(&self, tasks: Vec<TaskRun>) -> Result<(), Vec<TaskRun>> {
        if tasks.is_empty() {
            return Ok(());
        }
        let mut s = self.lock();
        if s.draining {
            return Err(tasks);
        }
        let n = tasks.len();
        s.tasks.extend(tasks);
        let keep = s.idle.len().saturating_sub(n);
        // No allocation when nobody is idle (the common case under load).
        let woken = s.idle.split_off(keep);
        drop(s);
        for &taker in woken.iter().rev() {
            self.wake(taker);
        }
        Ok(())
    }

    fn take(&self, s: &mut State) -> Option<TaskRun> {
        let task = s.tasks.pop_front()?;
        // Counted while the lock is held, so `drain` sees it as running.
        self.running.fetch_add(1, Ordering::SeqCst);
        Some(task)
    }

    /// Takes the next task if one is queued, without waiting.
    pub fn try_pop(&self) -> Option<TaskRun> {
        let mut s = self.lock();
        if s.closed {
            return None;
        }
        self.take(&mut s)
    }

    /// Takes up to `max` queued tasks into `out` without waiting; false once
    /// the queue is closed.
    pub fn try_pop_many(&self, max: usize, out: &mut impl Extend<TaskRun>) -> bool {
        self.try_pop_while(max, |_| true, out)
    }

    /// Takes up to `max` queued tasks into `out` without waiting, only while
    /// the next one is `like(task)`; false once the queue is closed.
    pub fn try_pop_while(
        &self,
        max: usize,
        like: impl Fn(&TaskRun) -> bool,
        out: &mut impl Extend<TaskRun>,
    ) -> bool {
        let mut s = self.lock();
        if s.closed {
            return false;
        }
        let n = s.tasks.iter().take(max).take_while(|t| like(t)).count();
        self.running.fetch_add(n, Ordering::SeqCst);
        out.extend(s.tasks.drain(..n));
        true
    }

    /// Takes the next task as taker `taker`, blocking; `None` once the queue
    /// is closed.
    pub fn pop_blocking(&self, taker: usize) -> Option<TaskRun> {
        let mut s = self.lock();
        loop {
            if s.closed {
                return None;
            }
            if let Some(t) = self.take(&mut s) {
                return Some(t);
            }
            s.idle.push(taker);
            s = self.signals[taker]
                .blocking
                .wait(s)
                .unwrap_or_else(|p| p.into_inner());
            s.forget_idle(taker);
        }
    }

    /// Takes the next task as taker `taker`; `None` once the queue is
    /// closed. Cancel-safe: a task is only removed when this returns it, and
    /// a dropped wait leaves the idle stack.
    pub async fn pop(&self, taker: usize) -> Option<TaskRun> {
        loop {
            let mut notified = pin!(self.signals[taker].notify.notified());
            notified.as_mut().enable();
            {
                let mut s = self.lock();
                if s.closed {
                    return None;
                }
                if let Some(t) = self.take(&mut s) {
                    return Some(t);
                }
                s.idle.push(taker);
            }
            let _listed = Listed { queue: self, taker };
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
            for taker in 0..self.signals.len() {
                match self.kind {
                    Takers::Blocking => self.signals[taker].blocking.notify_all(),
                    // Stores a permit, so a taker between its check and its
                    // wait still sees it.
                    Takers::Async => self.signals[taker].notify.notify_one(),
                }
            }
        }
        queued
    }

    /// Marks `n` taken tasks as answered (their outcomes handed to the node).
    pub fn finished(&self, n: usize) {
        if n == 0 {
            return;
        }
        if self.running.fetch_sub(n, Ordering::SeqCst) == n && self.draining.load(Ordering::SeqCst)
        {
            self.all_answered.notify_waiters();
        }
    }

    /// Tasks taken and not yet answered.
    pub fn running(&self) -> usize {
        self.running.load(Ordering::SeqCst)
    }

    /// Waits until no taken task is unanswered (call after `stop`).
    pub async fn wait_idle(&self) {
        loop {
            let mut answered = pin!(self.all_answered.notified());
            answered.as_mut().enable();
            if self.running() == 0 {
                return;
            }
            answered.await;
        }
    }
}

/// An async taker on the idle stack; leaves it when the wait ends, however
/// it ends (a taker that stopped waiting must not be handed work).
struct Listed<'a> {
    queue: &'a TaskQueue,
    taker: usize,
}

impl Drop for Listed<'_> {
    fn drop(&mut self) {
        self.queue.lock().forget_idle(self.taker);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_support::{self, workload};

    /// Tasks 0..n of job `job_id`, no-ops.
    fn tasks(job_id: u64, n: u64) -> Vec<TaskRun> {
        test_support::tasks(job_id, n, &workload("noop", &[]))
    }

    #[test]
    fn work_goes_to_the_most_recently_idle_taker_first() {
        let mut s = State::default();
        s.idle.extend([0, 1, 2, 3]);
        let q = TaskQueue::new(4, Takers::Async);
        *q.lock() = s;
        q.push_many(tasks(1, 1)).unwrap();
        assert_eq!(q.lock().idle, [0, 1, 2], "taker 3 went idle last");
        q.push_many(tasks(1, 2)).unwrap();
        assert_eq!(q.lock().idle, [0], "one taker woken per task");
        q.push_many(tasks(1, 5)).unwrap();
        assert!(q.lock().idle.is_empty());
        assert_eq!(q.lock().tasks.len(), 8);
    }

    #[test]
    fn a_taker_that_woke_unpicked_leaves_the_idle_stack() {
        let mut s = State::default();
        s.idle.extend([2, 0, 1]);
        s.forget_idle(0);
        assert_eq!(s.idle, [2, 1]);
        s.forget_idle(7);
        assert_eq!(s.idle, [2, 1]);
    }

    #[test]
    fn a_draining_queue_refuses_a_batch_whole() {
        let q = TaskQueue::new(1, Takers::Blocking);
        q.push_many(tasks(1, 3)).unwrap();
        assert_eq!(q.stop(false).len(), 3);
        let back = q.push_many(tasks(2, 4)).unwrap_err();
        assert_eq!(back.len(), 4);
    }

    #[test]
    fn batch_pops_count_as_running_until_finished() {
        let q = TaskQueue::new(1, Takers::Async);
        q.push_many(tasks(1, 5)).unwrap();
        let mut out = Vec::new();
        assert!(q.try_pop_many(3, &mut out));
        assert_eq!(
            out.iter().map(|t| t.input.index).collect::<Vec<_>>(),
            [0, 1, 2]
        );
        assert_eq!(q.running(), 3);
        assert_eq!(q.try_pop().map(|t| t.input.index), Some(3));
        q.finished(4);
        assert_eq!(q.running(), 0);
        q.stop(true);
        assert!(!q.try_pop_many(3, &mut out));
        assert!(q.try_pop().is_none());
    }

    #[tokio::test(start_paused = true)]
    async fn an_abandoned_async_wait_is_not_handed_work() {
        let q = TaskQueue::new(2, Takers::Async);
        {
            let pop = q.pop(1);
            tokio::pin!(pop);
            assert!(futures_poll_once(pop.as_mut()).await.is_none());
            assert_eq!(q.lock().idle, [1]);
        }
        assert!(q.lock().idle.is_empty(), "dropped wait left the stack");
        let waiting = q.pop(0);
        tokio::pin!(waiting);
        assert!(futures_poll_once(waiting.as_mut()).await.is_none());
        q.push_many(tasks(3, 1)).unwrap();
        assert_eq!(waiting.await.map(|t| t.job_id), Some(3));
    }

    /// Polls `fut` once: `Some` if it completed.
    async fn futures_poll_once<F: std::future::Future + Unpin>(fut: F) -> Option<F::Output> {
        let mut fut = fut;
        std::future::poll_fn(|cx| {
            std::task::Poll::Ready(match std::pin::Pin::new(&mut fut).poll(cx) {
                std::task::Poll::Ready(v) => Some(v),
                std::task::Poll::Pending => None,
            })
        })
        .await
    }
}
