//! Async slots: one dedicated OS thread running a current_thread tokio runtime
//! and a LocalSet (one thread, cooperative, like asyncio), at most C tasks in
//! flight, the rest waiting in the queue. Timeouts via `tokio::time::timeout`,
//! cancellation by aborting the task.
//!
//! Tasks of workloads that never wait (noop, sum-squares, spin) run inline on
//! the loop instead of as tokio tasks of their own, measured like a thread
//! slot's tasks: their single poll would hold the loop just the same, and
//! could be neither interrupted nor timed out.
//!
//! Other tasks are charged CPU time per poll, so interleaved tasks each report
//! only the CPU they used: each poll its wall time (`Instant`, no syscall: a
//! poll that does not block is CPU), and once a task's polls turn out long,
//! its exact thread CPU time (see [`CpuCharged`]). Outcomes are handed to the
//! node in batches by a flusher task that runs after the tasks ready at the
//! time (see [`LoopState::hand_over`]).

use std::cell::{Cell, RefCell};
use std::collections::{HashMap, VecDeque};
use std::future::Future;
use std::pin::Pin;
use std::rc::Rc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use brigade_proto::v1::{Model, OutcomeStatus};
use brigade_proto::Output;
use tokio::sync::mpsc::error::TryRecvError;
use tokio::sync::{mpsc, Notify};
use tokio::task::{AbortHandle, LocalSet};

use super::queue::{Takers, TaskQueue};
use super::{
    duration_ns, CpuMeter, Outcomes, TaskDone, TaskRun, FLUSH_TASKS, JOB_CANCELLED, LONG_TASK_NS,
    SHUTTING_DOWN,
};
use crate::workload::{thread_cpu_ns, AsyncContext, BlockingContext, Workload};

/// Inline tasks run back to back for about this long before the loop lets
/// its other tasks, timers and control messages in.
const INLINE_STREAK_NS: u64 = 1_000_000;

/// How long `shutdown` waits for the loop thread to exit.
const JOIN_GRACE: Duration = Duration::from_secs(2);

enum Control {
    AbortJob(u64),
    Stop,
}

pub(crate) struct AsyncLoop {
    queue: Arc<TaskQueue>,
    control: mpsc::UnboundedSender<Control>,
    thread: Option<JoinHandle<()>>,
    peak: Arc<AtomicUsize>,
}

impl AsyncLoop {
    pub fn start(cap: usize, done: Outcomes) -> std::io::Result<AsyncLoop> {
        let queue = Arc::new(TaskQueue::new(1, Takers::Async));
        let (control, control_rx) = mpsc::unbounded_channel();
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .thread_name("brigade-async")
            .on_thread_unpark(crate::idle_spin::arm)
            .build()?;
        let loop_queue = queue.clone();
        let peak = Arc::new(AtomicUsize::new(0));
        let loop_peak = peak.clone();
        let thread = std::thread::Builder::new()
            .name("brigade-async".into())
            .spawn(move || {
                let local = LocalSet::new();
                let state = Rc::new(LoopState {
                    queue: loop_queue,
                    done,
                    in_flight: Cell::new(0),
                    slot_freed: Notify::new(),
                    running: RefCell::new(HashMap::with_capacity(cap.min(65_536))),
                    stopping: Cell::new(false),
                    peak: loop_peak,
                    held: RefCell::new(Vec::new()),
                    flush_due: Notify::new(),
                    long_polls_job: Cell::new(None),
                });
                rt.block_on(local.run_until(run_loop(cap, state.clone(), control_rx)));
                // Dropping the LocalSet drops the tasks still in it; their
                // reports answer them. Keep the runtime alive (and entered)
                // while that happens: their timers belong to it.
                let _entered = rt.enter();
                drop(local);
                state.flush();
            })?;
        Ok(AsyncLoop {
            queue,
            control,
            thread: Some(thread),
            peak,
        })
    }

    pub fn queue(&self) -> &TaskQueue {
        &self.queue
    }

    /// The most tasks ever in flight at once (never above the cap).
    pub fn peak_in_flight(&self) -> usize {
        self.peak.load(Ordering::Relaxed)
    }

    pub fn abort_job(&self, job_id: u64) {
        let _ = self.control.send(Control::AbortJob(job_id));
    }

    pub fn request_stop(&self) {
        let _ = self.control.send(Control::Stop);
    }

    pub async fn shutdown(mut self) {
        self.queue.stop(true);
        self.request_stop();
        if let Some(t) = self.thread.take() {
            let joined = tokio::task::spawn_blocking(move || t.join());
            if tokio::time::timeout(JOIN_GRACE, joined).await.is_err() {
                tracing::warn!("the async loop is still busy with a task; left to finish");
            }
        }
    }
}

/// State shared by the loop and its tasks (all on the loop thread).
struct LoopState {
    queue: Arc<TaskQueue>,
    done: Outcomes,
    in_flight: Cell<usize>,
    slot_freed: Notify,
    /// Running tasks by sequence number: their job and how to abort them.
    running: RefCell<HashMap<u64, (u64, AbortHandle)>>,
    stopping: Cell<bool>,
    peak: Arc<AtomicUsize>,
    /// Outcomes not yet handed to the node; their tasks still count as
    /// running in the queue, so a drain waits for them.
    held: RefCell<Vec<TaskDone>>,
    flush_due: Notify,
    /// The job whose last finished task ended with a long poll: its next
    /// task reads the CPU clock from its first poll.
    long_polls_job: Cell<Option<u64>>,
}

impl LoopState {
    /// Holds an outcome for the next flush. The first one held wakes the
    /// flusher task, which the loop runs after the tasks already ready, so
    /// every outcome of one round of ready tasks leaves in one batch and a
    /// lone task's outcome leaves as soon as the loop is free.
    fn hand_over(&self, done: TaskDone) {
        let held = {
            let mut held = self.held.borrow_mut();
            held.push(done);
            held.len()
        };
        if held == 1 {
            self.flush_due.notify_one();
        } else if held >= FLUSH_TASKS {
            self.flush();
        }
    }

    /// Hands every held outcome to the node, then marks their tasks answered.
    fn flush(&self) {
        let held = {
            let mut held = self.held.borrow_mut();
            // The next batch is likely as big: no regrowing it from empty.
            let next = Vec::with_capacity(held.len());
            std::mem::replace(&mut *held, next)
        };
        let n = held.len();
        self.done.send_all(held);
        self.queue.finished(n);
    }
}

async fn run_loop(cap: usize, state: Rc<LoopState>, mut control: mpsc::UnboundedReceiver<Control>) {
    let flusher = {
        let state = state.clone();
        tokio::task::spawn_local(async move {
            loop {
                state.flush_due.notified().await;
                state.flush();
            }
        })
    };
    let ctx = Rc::new(AsyncContext::new(cap));
    let mut seq = 0u64;
    // Tasks taken from the queue and not yet started (an inline streak ran
    // out of time): started first on the next round; counted as running.
    let mut taken = VecDeque::new();
    let mut meter = CpuMeter::default();
    let mut blocking = BlockingContext::new();
    loop {
        // Control messages first: an abort must not wait behind new work.
        match control.try_recv() {
            Ok(msg) => {
                if !handle(&state, Some(msg), &mut taken) {
                    break;
                }
                continue;
            }
            Err(TryRecvError::Disconnected) => break,
            Err(TryRecvError::Empty) => {}
        }
        if taken.is_empty() {
            let free = cap.saturating_sub(state.in_flight.get());
            if free == 0 {
                tokio::select! {
                    biased;
                    msg = control.recv() => if !handle(&state, msg, &mut taken) { break },
                    () = state.slot_freed.notified() => {}
                }
                continue;
            }
            // Whatever is queued, up to the free slots, under one lock.
            if !state.queue.try_pop_many(free, &mut taken) {
                break;
            }
            if taken.is_empty() {
                tokio::select! {
                    biased;
                    msg = control.recv() => if !handle(&state, msg, &mut taken) { break },
                    task = state.queue.pop(0) => match task {
                        Some(task) => taken.push_back(task),
                        None => break,
                    },
                }
                continue;
            }
        }
        let mut streak_ns = 0u64;
        // The loop did other things since the last streak.
        meter.waited();
        while let Some(task) = taken.pop_front() {
            if runs_inline(&task.workload) {
                streak_ns += run_inline(&state, &mut meter, &mut blocking, task);
                if streak_ns >= INLINE_STREAK_NS {
                    break;
                }
            } else {
                seq += 1;
                spawn_task(&state, &ctx, seq, task);
            }
        }
        if streak_ns > 0 {
            tokio::task::yield_now().await;
        }
    }
    for task in taken {
        state.hand_over(TaskDone::unrun(
            &task,
            Model::Async,
            OutcomeStatus::Cancelled,
            SHUTTING_DOWN,
        ));
    }
    state.stopping.set(true);
    let handles: Vec<AbortHandle> = state
        .running
        .borrow()
        .values()
        .map(|(_, h)| h.clone())
        .collect();
    for h in handles {
        h.abort();
    }
    flusher.abort();
}

/// Applies one control message; false when the loop must stop. An abort
/// also answers the job's tasks taken but not yet started.
fn handle(state: &LoopState, msg: Option<Control>, taken: &mut VecDeque<TaskRun>) -> bool {
    match msg {
        Some(Control::AbortJob(job_id)) => {
            let handles: Vec<AbortHandle> = state
                .running
                .borrow()
                .values()
                .filter(|(job, _)| *job == job_id)
                .map(|(_, h)| h.clone())
                .collect();
            tracing::debug!(
                job_id = crate::node::user_job_id(job_id),
                aborted = handles.len(),
                "aborting async tasks"
            );
            for h in handles {
                h.abort();
            }
            taken.retain(|task| {
                if task.job_id != job_id {
                    return true;
                }
                state.hand_over(TaskDone::unrun(
                    task,
                    Model::Async,
                    OutcomeStatus::Cancelled,
                    JOB_CANCELLED,
                ));
                false
            });
            true
        }
        Some(Control::Stop) | None => false,
    }
}

/// Workloads that never wait: their future completes in its first poll, so
/// a task of its own (a heap cell of the whole future, an abort handle)
/// buys nothing — it could be neither interrupted nor timed out.
fn runs_inline(workload: &Workload) -> bool {
    !workload.waits()
}

/// Runs a task that never waits right here on the loop (holding it, as
/// its single poll would), measured like a thread slot's task; returns its
/// wall time.
fn run_inline(
    state: &LoopState,
    meter: &mut CpuMeter,
    ctx: &mut BlockingContext,
    task: TaskRun,
) -> u64 {
    let in_flight = state.in_flight.get() + 1;
    if in_flight > state.peak.load(Ordering::Relaxed) {
        state.peak.store(in_flight, Ordering::Relaxed);
    }
    let run = meter.run(task.job_id, &task.workload, &task.input, ctx);
    let wall_ns = run.wall_ns;
    state.hand_over(TaskDone::ran(&task, Model::Async, run));
    wall_ns
}

fn spawn_task(state: &Rc<LoopState>, ctx: &Rc<AsyncContext>, seq: u64, task: TaskRun) {
    let in_flight = state.in_flight.get() + 1;
    state.in_flight.set(in_flight);
    // Only the loop thread writes it, so load-then-store cannot race.
    if in_flight > state.peak.load(Ordering::Relaxed) {
        state.peak.store(in_flight, Ordering::Relaxed);
    }
    let job_id = task.job_id;
    let mut report = Report {
        state: state.clone(),
        seq,
        started: Instant::now(),
        charge: PollCharge {
            cpu_ns: Cell::new(0),
            clock: Cell::new(state.long_polls_job.get() == Some(task.job_id)),
        },
        task: Some(task),
    };
    let ctx = ctx.clone();
    let handle = tokio::task::spawn_local(async move {
        let Some(task) = report.task.as_ref() else {
            return;
        };
        let work = CpuCharged {
            fut: task.workload.run_async(&task.input, &ctx),
            charge: &report.charge,
        };
        let (status, value, error) = match task.timeout {
            None => to_status(work.await),
            Some(limit) => match tokio::time::timeout(limit, work).await {
                Ok(r) => to_status(r),
                Err(_) => (
                    OutcomeStatus::TimedOut,
                    Output::Int(0),
                    format!(
                        "task exceeded its {} ms timeout and was stopped",
                        limit.as_millis()
                    ),
                ),
            },
        };
        report.send(status, value, error);
    });
    state
        .running
        .borrow_mut()
        .insert(seq, (job_id, handle.abort_handle()));
}

fn to_status(r: Result<Output, String>) -> (OutcomeStatus, Output, String) {
    match r {
        Ok(v) => (OutcomeStatus::Ok, v, String::new()),
        Err(e) => (OutcomeStatus::Failed, Output::Int(0), e),
    }
}

/// Answers its task exactly once: with the result, or, when the task is
/// dropped unfinished (aborted, or the loop stopped), CANCELLED. Also frees
/// the task's slot.
struct Report {
    state: Rc<LoopState>,
    seq: u64,
    task: Option<TaskRun>,
    started: Instant,
    charge: PollCharge,
}

impl Report {
    fn send(&mut self, status: OutcomeStatus, value: Output, error: String) {
        if let Some(task) = self.task.take() {
            // Whether the job's next task clocks its first poll: only while
            // its tasks' polls stay long.
            if self.charge.clock.get() {
                self.state.long_polls_job.set(Some(task.job_id));
            } else if self.state.long_polls_job.get() == Some(task.job_id) {
                self.state.long_polls_job.set(None);
            }
            self.state.hand_over(TaskDone {
                job_id: task.job_id,
                index: task.input.index,
                attempt: task.attempt,
                model: Model::Async,
                status,
                value,
                error,
                cpu_ns: self.charge.cpu_ns.get(),
                wall_ns: duration_ns(self.started.elapsed()),
                ready_ns: 0,
            });
        }
    }
}

impl Drop for Report {
    fn drop(&mut self) {
        if self.task.is_some() {
            let why = if self.state.stopping.get() {
                SHUTTING_DOWN
            } else {
                JOB_CANCELLED
            };
            self.send(OutcomeStatus::Cancelled, Output::Int(0), why.to_string());
        }
        self.state.running.borrow_mut().remove(&self.seq);
        self.state.in_flight.set(self.state.in_flight.get() - 1);
        self.state.slot_freed.notify_one();
    }
}

/// The CPU time charged to one task so far, and whether its next poll reads
/// the thread CPU clock.
struct PollCharge {
    cpu_ns: Cell<u64>,
    clock: Cell<bool>,
}

/// Charges each poll of `fut` to `charge`. A poll is charged its wall time:
/// on the loop's own thread a poll that does not block is CPU, and `Instant`
/// costs no syscall (the thread CPU clock is one, taking the kernel's
/// run-queue lock; two per poll cost more than a noop task). A poll of
/// [`LONG_TASK_NS`] or more may have blocked or been preempted, so the next
/// poll — or, after the task's last poll, the first poll of the job's next
/// task — is charged its exact thread CPU time instead, and so on while
/// polls stay long. Waiting between polls is never charged.
struct CpuCharged<'a, F> {
    fut: F,
    charge: &'a PollCharge,
}

impl<F: Future> Future for CpuCharged<'_, F> {
    type Output = F::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        // SAFETY: `fut` is structurally pinned: it is never moved out of
        // `self` nor accessed unpinned, and CpuCharged has no Drop impl.
        let this = unsafe { self.get_unchecked_mut() };
        let fut = unsafe { Pin::new_unchecked(&mut this.fut) };
        let started = Instant::now();
        let clocked = this.charge.clock.get().then(thread_cpu_ns);
        let out = fut.poll(cx);
        let wall_ns = duration_ns(started.elapsed());
        let used = match clocked {
            Some(before) => thread_cpu_ns().saturating_sub(before),
            None => wall_ns,
        };
        let charge = this.charge;
        charge.cpu_ns.set(charge.cpu_ns.get().saturating_add(used));
        charge.clock.set(wall_ns >= LONG_TASK_NS);
        out
    }
}
