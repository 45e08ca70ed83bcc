//! Async slots: one dedicated OS thread running a current_thread tokio runtime
//! and a LocalSet (one thread, cooperative, like asyncio), at most C tasks in
//! flight, the rest waiting in the queue. Timeouts via `tokio::time::timeout`,
//! cancellation by aborting the task. CPU time is charged per poll, so
//! interleaved tasks each report only the CPU they used.

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::rc::Rc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use brigade_proto::v1::{Model, OutcomeStatus};
use tokio::sync::{mpsc, Notify};
use tokio::task::{AbortHandle, LocalSet};

use super::queue::TaskQueue;
use super::{duration_ns, Outcomes, TaskDone, TaskRun, JOB_CANCELLED, SHUTTING_DOWN};
use crate::workload::{thread_cpu_ns, AsyncContext};

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
        let queue = Arc::new(TaskQueue::default());
        let (control, control_rx) = mpsc::unbounded_channel();
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .thread_name("brigade-async")
            .build()?;
        let loop_queue = queue.clone();
        let peak = Arc::new(AtomicUsize::new(0));
        let loop_peak = peak.clone();
        let thread = std::thread::Builder::new()
            .name("brigade-async".into())
            .spawn(move || {
                let local = LocalSet::new();
                rt.block_on(
                    local.run_until(run_loop(cap, loop_queue, control_rx, done, loop_peak)),
                );
                // Dropping the LocalSet drops the tasks still in it; their
                // reports answer them. Keep the runtime alive (and entered)
                // while that happens: their timers belong to it.
                let _entered = rt.enter();
                drop(local);
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
}

async fn run_loop(
    cap: usize,
    queue: Arc<TaskQueue>,
    mut control: mpsc::UnboundedReceiver<Control>,
    done: Outcomes,
    peak: Arc<AtomicUsize>,
) {
    let state = Rc::new(LoopState {
        queue,
        done,
        in_flight: Cell::new(0),
        slot_freed: Notify::new(),
        running: RefCell::new(HashMap::with_capacity(cap.min(65_536))),
        stopping: Cell::new(false),
        peak,
    });
    let ctx = Rc::new(AsyncContext::new(cap));
    let mut seq = 0u64;
    loop {
        // Control messages first: an abort must not wait behind new work.
        if state.in_flight.get() >= cap {
            tokio::select! {
                biased;
                msg = control.recv() => if !handle(&state, msg) { break },
                () = state.slot_freed.notified() => {}
            }
            continue;
        }
        tokio::select! {
            biased;
            msg = control.recv() => if !handle(&state, msg) { break },
            task = state.queue.pop() => match task {
                Some(task) => {
                    seq += 1;
                    spawn_task(&state, &ctx, seq, task);
                }
                None => break,
            },
        }
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
}

/// Applies one control message; false when the loop must stop.
fn handle(state: &LoopState, msg: Option<Control>) -> bool {
    match msg {
        Some(Control::AbortJob(job_id)) => {
            let handles: Vec<AbortHandle> = state
                .running
                .borrow()
                .values()
                .filter(|(job, _)| *job == job_id)
                .map(|(_, h)| h.clone())
                .collect();
            tracing::debug!(job_id, aborted = handles.len(), "aborting async tasks");
            for h in handles {
                h.abort();
            }
            true
        }
        Some(Control::Stop) | None => false,
    }
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
        task: Some(task),
        started: Instant::now(),
        cpu_ns: Cell::new(0),
    };
    let ctx = ctx.clone();
    let handle = tokio::task::spawn_local(async move {
        let Some(task) = report.task.as_ref() else {
            return;
        };
        let work = CpuCharged {
            fut: task.workload.run_async(&task.input, &ctx),
            cpu_ns: &report.cpu_ns,
        };
        let (status, value, error) = match task.timeout {
            None => to_status(work.await),
            Some(limit) => match tokio::time::timeout(limit, work).await {
                Ok(r) => to_status(r),
                Err(_) => (
                    OutcomeStatus::TimedOut,
                    0,
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

fn to_status(r: Result<u128, String>) -> (OutcomeStatus, u128, String) {
    match r {
        Ok(v) => (OutcomeStatus::Ok, v, String::new()),
        Err(e) => (OutcomeStatus::Failed, 0, e),
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
    cpu_ns: Cell<u64>,
}

impl Report {
    fn send(&mut self, status: OutcomeStatus, value: u128, error: String) {
        if let Some(task) = self.task.take() {
            self.state.done.send(TaskDone {
                job_id: task.job_id,
                index: task.input.index,
                attempt: task.attempt,
                model: Model::Async,
                status,
                value,
                error,
                cpu_ns: self.cpu_ns.get(),
                wall_ns: duration_ns(self.started.elapsed()),
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
            self.send(OutcomeStatus::Cancelled, 0, why.to_string());
        }
        self.state.running.borrow_mut().remove(&self.seq);
        self.state.in_flight.set(self.state.in_flight.get() - 1);
        self.state.slot_freed.notify_one();
        self.state.queue.finished();
    }
}

/// Adds the thread CPU time each poll of `fut` takes to `cpu_ns`.
struct CpuCharged<'a, F> {
    fut: F,
    cpu_ns: &'a Cell<u64>,
}

impl<F: Future> Future for CpuCharged<'_, F> {
    type Output = F::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        // SAFETY: `fut` is structurally pinned: it is never moved out of
        // `self` nor accessed unpinned, and CpuCharged has no Drop impl.
        let this = unsafe { self.get_unchecked_mut() };
        let fut = unsafe { Pin::new_unchecked(&mut this.fut) };
        let before = thread_cpu_ns();
        let out = fut.poll(cx);
        this.cpu_ns
            .set(this.cpu_ns.get() + thread_cpu_ns().saturating_sub(before));
        out
    }
}
