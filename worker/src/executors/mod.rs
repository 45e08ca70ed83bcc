//! The three executors that run tasks on a worker, side by side behind one
//! interface ([`Executors`]): `process` (executor child processes, one task at
//! a time each, `process.rs`; their main loop is [`child`]), `thread` (a pool
//! of OS threads, `thread.rs`) and `async` (one single-threaded tokio loop with
//! at most C tasks in flight, `async_loop.rs`). Every submitted task produces exactly one [`TaskDone`].

mod async_loop;
pub mod child;
mod frame;
mod process;
mod queue;
mod run_queue;
mod thread;

#[cfg(test)]
mod tests;

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use brigade_proto::v1::{Model, OutcomeStatus, TaskOutcome, U128};
use brigade_proto::Output;
use tokio::sync::mpsc::UnboundedSender;

use crate::workload::{thread_cpu_ns, BlockingContext, TaskInput, Workload};
use run_queue::RunQueueClock;

/// One task to run.
#[derive(Debug, Clone)]
pub struct TaskRun {
    pub job_id: u64,
    pub attempt: u32,
    pub input: TaskInput,
    pub workload: Arc<Workload>,
    pub timeout: Option<Duration>,
}

/// One task's outcome.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TaskDone {
    pub job_id: u64,
    pub index: u64,
    pub attempt: u32,
    pub model: Model,
    pub status: OutcomeStatus,
    pub value: Output,
    pub error: String,
    pub cpu_ns: u64,
    pub wall_ns: u64,
    /// Of `wall_ns`, time spent ready to run but queued for a CPU (0 when
    /// not measured).
    pub ready_ns: u64,
}

impl TaskDone {
    /// An outcome with no run behind it (cancelled, refused).
    pub(crate) fn unrun(
        task: &TaskRun,
        model: Model,
        status: OutcomeStatus,
        error: &str,
    ) -> TaskDone {
        TaskDone {
            job_id: task.job_id,
            index: task.input.index,
            attempt: task.attempt,
            model,
            status,
            value: Output::Int(0),
            error: error.to_string(),
            cpu_ns: 0,
            wall_ns: 0,
            ready_ns: 0,
        }
    }

    /// The outcome of a run that returned.
    pub(crate) fn ran(task: &TaskRun, model: Model, run: Measured) -> TaskDone {
        let (status, value, error) = task.workload.judge(run.result);
        TaskDone {
            value,
            error,
            cpu_ns: run.cpu_ns,
            wall_ns: run.wall_ns,
            ready_ns: run.ready_ns,
            ..TaskDone::unrun(task, model, status, "")
        }
    }

    pub fn into_proto(self) -> TaskOutcome {
        TaskOutcome {
            job_id: self.job_id,
            index: self.index,
            attempt: self.attempt,
            model: self.model as i32,
            status: self.status as i32,
            value: self.value.as_int().map(U128::from),
            output: match self.value {
                Output::Bytes(b) => Some(b),
                Output::Int(_) => None,
            },
            error: self.error,
            cpu_ns: self.cpu_ns,
            wall_ns: self.wall_ns,
            ready_ns: self.ready_ns,
        }
    }
}

/// A blocking run with its CPU time and wall time.
#[derive(Debug)]
pub(crate) struct Measured {
    pub result: Result<Output, String>,
    pub cpu_ns: u64,
    pub wall_ns: u64,
    pub ready_ns: u64,
}

/// A task that ran at least this long (wall time) is long: two reads of the
/// thread CPU clock are then under 2% of it, and an outcome held back for a
/// batch would wait as long for the next one.
pub(crate) const LONG_TASK_NS: u64 = 50_000;
/// A short task's CPU share is re-sampled at least every this many tasks.
const SAMPLE_EVERY: u32 = 64;

/// How one slot (a thread, or an executor process) measures its tasks' CPU
/// time: honestly, but without paying for it on every tiny task.
///
/// `wall_ns` is always read from `Instant` (the vDSO, ~20 ns), once per task
/// when the slot goes straight from one task to the next (the previous end is
/// the next start, so a task's wall time includes the slot's own work of
/// taking it and handing over the outcome), twice after the slot waited for
/// work ([`waited`](Self::waited)). The thread CPU
/// clock is a real syscall on Linux (the kernel takes the run-queue lock to
/// read it), and two reads per task cost more than a noop task itself. So a
/// task's `cpu_ns` comes from the clock when
/// - it is the first task of its job on this slot,
/// - the slot's previous task ran ≥ [`LONG_TASK_NS`] (wall), so the reads are
///   a small share of it,
/// - or [`SAMPLE_EVERY`] tasks have passed since the clock was last read;
///
/// otherwise (a short task of a job whose tasks so far were short: a job's
/// tasks are alike) it is the task's wall time scaled by the CPU share of
/// that job's clocked tasks on this slot (at most 1). A few-µs task that ran
/// without blocking so reports about its wall time, a short blocking one
/// (a fast HTTP GET) its sampled share, and a sleeping or long task its
/// exact CPU time — what `--model auto` routes by.
#[derive(Debug, Default)]
pub(crate) struct CpuMeter {
    /// The job of the slot's last task.
    job: Option<u64>,
    previous_long: bool,
    /// Tasks since the clock was last read.
    unclocked: u32,
    /// CPU and wall time of this job's clocked tasks on this slot.
    clocked_cpu_ns: u64,
    clocked_wall_ns: u64,
    /// This slot thread's run-queue wait, opened on first use (on the
    /// thread that runs the tasks).
    run_queue: Option<RunQueueClock>,
    /// When the previous task ended, while the slot has not waited since.
    chained: Option<Instant>,
}

impl CpuMeter {
    /// The slot thread's run-queue wait so far.
    fn waited_ns(&mut self) -> Option<u64> {
        self.run_queue
            .get_or_insert_with(RunQueueClock::for_this_thread)
            .waited_ns()
    }

    /// Whether to read the CPU clock around the next task, of job `job_id`.
    fn wants_clock(&mut self, job_id: u64) -> bool {
        if self.job != Some(job_id) {
            *self = CpuMeter {
                job: Some(job_id),
                run_queue: self.run_queue.take(),
                chained: self.chained.take(),
                ..CpuMeter::default()
            };
            return true;
        }
        self.previous_long || self.unclocked + 1 >= SAMPLE_EVERY
    }

    /// Records a task's wall time and, when the clock was read, its CPU
    /// time; returns the CPU time to report for it.
    fn record(&mut self, wall_ns: u64, clocked_cpu_ns: Option<u64>) -> u64 {
        self.previous_long = wall_ns >= LONG_TASK_NS;
        match clocked_cpu_ns {
            Some(cpu) => {
                self.unclocked = 0;
                self.clocked_cpu_ns = self.clocked_cpu_ns.saturating_add(cpu);
                self.clocked_wall_ns = self.clocked_wall_ns.saturating_add(wall_ns);
                cpu
            }
            None => {
                self.unclocked += 1;
                if self.clocked_wall_ns == 0 || self.clocked_cpu_ns >= self.clocked_wall_ns {
                    return wall_ns;
                }
                (u128::from(wall_ns) * u128::from(self.clocked_cpu_ns)
                    / u128::from(self.clocked_wall_ns)) as u64
            }
        }
    }

    /// The slot waits (or waited) for work: the next task's wall time starts
    /// when it starts.
    pub(crate) fn waited(&mut self) {
        self.chained = None;
    }

    /// Runs one task of job `job_id` on the calling thread, measuring it. A
    /// panicking workload fails its task instead of taking the slot down.
    pub(crate) fn run(
        &mut self,
        job_id: u64,
        workload: &Workload,
        input: &TaskInput,
        ctx: &mut BlockingContext,
    ) -> Measured {
        let clock = self.wants_clock(job_id);
        // Time queued for a CPU costs two more reads: taken only around
        // tasks that promise to be long (a job's first on this slot, or
        // after a long one), where it matters (`--model auto`'s probes).
        let waited = if clock && (self.previous_long || self.clocked_wall_ns == 0) {
            self.waited_ns()
        } else {
            None
        };
        let wall = self.chained.take().unwrap_or_else(Instant::now);
        let cpu = clock.then(thread_cpu_ns);
        let result = catch_unwind(AssertUnwindSafe(|| workload.run_blocking(input, ctx)))
            .unwrap_or_else(|panic| {
                // The HTTP connection may be mid-exchange; start clean.
                *ctx = BlockingContext::new();
                Err(format!(
                    "the {} workload panicked: {}",
                    workload.name(),
                    panic_message(&panic)
                ))
            });
        let cpu = cpu.map(|before| thread_cpu_ns().saturating_sub(before));
        let end = Instant::now();
        self.chained = Some(end);
        let wall_ns = duration_ns(end.duration_since(wall));
        let ready_ns = waited
            .and_then(|before| Some(self.waited_ns()?.saturating_sub(before)))
            .map_or(0, |w| w.min(wall_ns));
        Measured {
            result,
            cpu_ns: self.record(wall_ns, cpu),
            wall_ns,
            ready_ns,
        }
    }
}

fn panic_message(panic: &Box<dyn std::any::Any + Send>) -> &str {
    panic
        .downcast_ref::<&str>()
        .copied()
        .or_else(|| panic.downcast_ref::<String>().map(String::as_str))
        .unwrap_or("(no message)")
}

pub(crate) fn duration_ns(d: Duration) -> u64 {
    d.as_nanos().min(u64::MAX as u128) as u64
}

/// Hands outcomes to the node, a batch per send (one channel operation, and
/// at most one wake-up of the node, per batch rather than per task). A
/// closed receiver means the worker is going away; there is nobody left to
/// tell, so the outcomes are dropped.
#[derive(Clone)]
pub(crate) struct Outcomes(UnboundedSender<Vec<TaskDone>>);

impl Outcomes {
    pub fn send_all(&self, batch: Vec<TaskDone>) {
        if !batch.is_empty() {
            let _ = self.0.send(batch);
        }
    }
}

/// A slot holds at most this many outcomes before handing them over.
const FLUSH_TASKS: usize = 256;
/// A slot hands its outcomes over once the oldest has waited about this long.
const FLUSH_HELD_NS: u64 = 100_000;

/// The outcomes a slot (thread, process supervisor) has produced and not yet
/// handed to the node. The slot flushes when it would otherwise wait for
/// work, and [`add`](Self::add) flushes after a long task (the next is
/// likely as long; its outcome must not wait for it), after
/// [`FLUSH_TASKS`] outcomes, or when the oldest has been held ~[`FLUSH_HELD_NS`]
/// — so a lone task's outcome leaves at once while a stream of tiny tasks
/// costs one hand-off per batch. A held outcome's task still counts as
/// running in the queue, so a drain cannot end before it is handed over;
/// dropping the batch flushes it.
pub(crate) struct PendingOutcomes {
    done: Outcomes,
    queue: Arc<queue::TaskQueue>,
    held: Vec<TaskDone>,
    /// Roughly how long the oldest held outcome has waited: the run time of
    /// the tasks after it.
    held_ns: u64,
}

impl PendingOutcomes {
    pub fn new(done: Outcomes, queue: Arc<queue::TaskQueue>) -> PendingOutcomes {
        PendingOutcomes {
            done,
            queue,
            held: Vec::new(),
            held_ns: 0,
        }
    }

    pub fn is_empty(&self) -> bool {
        self.held.is_empty()
    }

    /// Adds the outcome of a task the slot spent `ran_ns` on.
    pub fn add(&mut self, done: TaskDone, ran_ns: u64) {
        if !self.held.is_empty() {
            self.held_ns = self.held_ns.saturating_add(ran_ns);
        }
        self.held.push(done);
        if ran_ns >= LONG_TASK_NS || self.held_ns >= FLUSH_HELD_NS || self.held.len() >= FLUSH_TASKS
        {
            self.flush();
        }
    }

    /// Hands every held outcome to the node, then marks their tasks answered.
    pub fn flush(&mut self) {
        if self.held.is_empty() {
            return;
        }
        let n = self.held.len();
        // The next batch is likely as big: no regrowing it from empty.
        let next = Vec::with_capacity(n);
        self.done.send_all(std::mem::replace(&mut self.held, next));
        self.held_ns = 0;
        self.queue.finished(n);
    }
}

impl Drop for PendingOutcomes {
    fn drop(&mut self) {
        self.flush();
    }
}

/// Error of every task answered because the worker drains.
pub const DRAINING: &str = "worker draining";
/// Error of every task answered because the worker shuts down.
pub const SHUTTING_DOWN: &str = "worker shutting down";
/// Error of every task answered because its job was cancelled.
pub const JOB_CANCELLED: &str = "job cancelled";

/// How many slots of each model to run, and how to start executor children.
#[derive(Debug, Clone)]
pub struct ExecutorConfig {
    pub procs: usize,
    pub threads: usize,
    pub async_slots: usize,
    pub executor_program: PathBuf,
    pub executor_args: Vec<String>,
}

/// The worker's executors. A model with 0 slots is absent: its tasks fail at
/// once with an error saying so.
pub struct Executors {
    done: Outcomes,
    process: Option<process::ProcessPool>,
    thread: Option<thread::ThreadPool>,
    async_loop: Option<async_loop::AsyncLoop>,
}

impl Executors {
    /// Starts P executor children (program+args, e.g. current_exe +
    /// ["executor"]), T threads, and the async loop on its own OS thread. Call
    /// inside a tokio runtime. A slot count of 0 means that model is absent.
    /// Outcomes arrive on `done` in batches.
    pub fn start(
        cfg: ExecutorConfig,
        done: UnboundedSender<Vec<TaskDone>>,
    ) -> std::io::Result<Executors> {
        let done = Outcomes(done);
        // Before any child starts: executors inherit both.
        crate::contain::init_worker();
        crate::reaper::start(&cfg.executor_program, &cfg.executor_args);
        let process = match cfg.procs {
            0 => None,
            n => Some(process::ProcessPool::start(
                n,
                cfg.executor_program,
                cfg.executor_args,
                done.clone(),
            )?),
        };
        let thread = match cfg.threads {
            0 => None,
            n => Some(thread::ThreadPool::start(n, done.clone())?),
        };
        let async_loop = match cfg.async_slots {
            0 => None,
            n => Some(async_loop::AsyncLoop::start(n, done.clone())?),
        };
        tracing::info!(
            procs = cfg.procs,
            threads = cfg.threads,
            async_slots = cfg.async_slots,
            "executors started"
        );
        Ok(Executors {
            done,
            process,
            thread,
            async_loop,
        })
    }

    fn queue(&self, model: Model) -> Option<&queue::TaskQueue> {
        match model {
            Model::Process => self.process.as_ref().map(|p| p.queue()),
            Model::Thread => self.thread.as_ref().map(|t| t.queue()),
            Model::Async => self.async_loop.as_ref().map(|a| a.queue()),
            Model::Unspecified | Model::Auto => None,
        }
    }

    fn queues(&self) -> impl Iterator<Item = (Model, &queue::TaskQueue)> {
        Model::ALL
            .into_iter()
            .filter_map(|m| self.queue(m).map(|q| (m, q)))
    }

    /// Never blocks. Queues the task for `model`; every submitted task
    /// produces exactly one TaskDone on `done`.
    pub fn submit(&self, model: Model, task: TaskRun) {
        self.submit_many(model, std::iter::once(task));
    }

    /// Never blocks. Queues the tasks for `model` in order, under one lock
    /// of its queue, waking at most one idle slot per task; every submitted
    /// task produces exactly one TaskDone on `done`.
    pub fn submit_many(&self, model: Model, tasks: impl IntoIterator<Item = TaskRun>) {
        let tasks: Vec<TaskRun> = tasks.into_iter().collect();
        let Some(queue) = self.queue(model) else {
            let why = format!("this worker has no {} slots", model.name());
            self.answer(&tasks, model, OutcomeStatus::Failed, &why);
            return;
        };
        if let Err(tasks) = queue.push_many(tasks) {
            self.answer(&tasks, model, OutcomeStatus::Cancelled, DRAINING);
        }
    }

    /// Answers tasks that will not run, in one batch.
    fn answer<'t>(
        &self,
        tasks: impl IntoIterator<Item = &'t TaskRun>,
        model: Model,
        status: OutcomeStatus,
        why: &str,
    ) -> usize {
        let batch: Vec<TaskDone> = tasks
            .into_iter()
            .map(|t| TaskDone::unrun(t, model, status, why))
            .collect();
        let n = batch.len();
        self.done.send_all(batch);
        n
    }

    /// Tasks of `job_id` not yet started are answered CANCELLED at once;
    /// running async tasks are aborted and running process tasks have their
    /// executor killed (and replaced), both answered CANCELLED; a running
    /// thread task is interrupted: a command it started is killed (and the
    /// task answered CANCELLED), other code finishes normally.
    pub fn cancel_job(&self, job_id: u64) {
        let mut cancelled = 0usize;
        for (model, queue) in self.queues() {
            let removed = queue.remove_job(job_id);
            cancelled += self.answer(&removed, model, OutcomeStatus::Cancelled, JOB_CANCELLED);
        }
        if let Some(a) = &self.async_loop {
            a.abort_job(job_id);
        }
        if let Some(p) = &self.process {
            p.cancel_running(job_id);
        }
        if let Some(t) = &self.thread {
            t.cancel_running(job_id);
        }
        tracing::debug!(
            job_id,
            queued_cancelled = cancelled,
            "job cancelled on executors"
        );
    }

    fn answer_queued(&self, close: bool, why: &str) {
        for (model, queue) in self.queues() {
            let queued = queue.stop(close);
            self.answer(&queued, model, OutcomeStatus::Cancelled, why);
        }
    }

    /// Graceful drain: start nothing new, answer every queued-but-not-started
    /// task CANCELLED with error "worker draining", and wait until running
    /// tasks finish.
    pub async fn drain(&self) {
        self.answer_queued(false, DRAINING);
        for (model, queue) in self.queues() {
            let running = queue.running();
            if running > 0 {
                tracing::info!(model = model.name(), running, "waiting for running tasks");
            }
            queue.wait_idle().await;
        }
    }

    /// Kill executor children (whole process groups) and stop threads / the
    /// loop. Tasks still queued or running on the loop or in children are
    /// answered CANCELLED ("worker shutting down"); a thread slot in the middle
    /// of a task cannot be stopped and is left to finish in the background.
    pub async fn shutdown(mut self) {
        self.answer_queued(true, SHUTTING_DOWN);
        if let Some(p) = self.process.take() {
            p.shutdown().await;
        }
        if let Some(a) = self.async_loop.take() {
            a.shutdown().await;
        }
        if let Some(t) = self.thread.take() {
            t.shutdown().await;
        }
        crate::contain::remove_empty_leaves();
        tracing::info!("executors stopped");
    }

    /// The most async tasks ever in flight at once (0 without async slots);
    /// shows whether the async cap was reached.
    pub fn peak_async_in_flight(&self) -> usize {
        self.async_loop.as_ref().map_or(0, |a| a.peak_in_flight())
    }

    /// Task frames sent to executor children so far, and the tasks in them
    /// (short tasks of one job share a frame).
    pub fn process_frames(&self) -> (u64, u64) {
        self.process.as_ref().map_or((0, 0), |p| p.frames())
    }

    /// PIDs of live executor children (for CPU accounting and tests).
    pub fn child_pids(&self) -> Vec<u32> {
        self.process
            .as_ref()
            .map(|p| p.child_pids())
            .unwrap_or_default()
    }
}

impl Drop for Executors {
    /// Dropped without `shutdown` (a panic, an early return): still make sure
    /// no executor child outlives the worker, and let slots stop.
    fn drop(&mut self) {
        for (_, queue) in self.queues() {
            queue.stop(true);
        }
        if let Some(p) = &self.process {
            p.kill_all();
        }
        if let Some(a) = &self.async_loop {
            a.request_stop();
        }
    }
}
