//! The core's own words for what it reports: job states, task outcomes,
//! why a job waits, failed or runs where it does, and snapshots of jobs,
//! workers and the cluster. All typed: the actor/service edge renders them
//! for clients (and the store), so no protocol or CLI wording lives here.

use std::collections::BTreeMap;

use brigade_proto::SlotModel;

use super::{JobId, WorkerId};
use crate::admission::{JobKind, JobPlan};

/// Where a job is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JobState {
    Queued,
    Running,
    Succeeded,
    Failed,
    Cancelled,
}

impl JobState {
    /// Whether the job can change no more.
    pub fn is_terminal(self) -> bool {
        matches!(
            self,
            JobState::Succeeded | JobState::Failed | JobState::Cancelled
        )
    }
}

/// How a task's run ended, as its worker reported it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TaskStatus {
    Ok,
    /// The workload returned an error.
    Failed,
    /// The executor running it died.
    ExecutorDied,
    TimedOut,
    /// Handed back by a draining worker or aborted on request.
    Cancelled,
    /// Its output is over the job's limit: it fails for good, as another
    /// attempt would make the same output.
    OutputTooLarge,
    /// A status this build does not know (counts as a failure).
    Unknown,
}

/// Why a task failed for good.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TaskFailure {
    /// Its attempts ran out; `last` and `error` are the last one's.
    Attempts {
        index: u64,
        /// The task's input sub-range `[start, end)`.
        input: (u64, u64),
        attempts: u32,
        last: TaskStatus,
        error: String,
    },
    /// `losses` workers were lost while it was on their `model` slots
    /// (thread or async: slots sharing their worker's process), reaching
    /// the limit `limit` (`max_worker_losses`).
    WorkersLost {
        index: u64,
        input: (u64, u64),
        losses: u32,
        model: SlotModel,
        limit: u32,
    },
    /// As the store kept it, rendered when it happened.
    Stored(String),
}

/// Why a job failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum JobFailure {
    /// A task failed for good, beyond the failures the job allows, and the
    /// job was `fail_fast`.
    Task(TaskFailure),
    /// Every task finished, and `failed` of the job's `tasks` failed for
    /// good: more than the `allowed` (`allow_failures`); `first` is the
    /// one of lowest index.
    TooManyFailures {
        failed: u64,
        tasks: u64,
        allowed: u64,
        first: TaskFailure,
    },
    /// No worker offered slots of `model` for `waited_ms`
    /// (`fail_if_no_workers_ms`).
    NoWorkers { model: SlotModel, waited_ms: u64 },
    /// Every task succeeded but the job's total does not fit in 128 bits.
    TotalOverflow,
    /// As the store kept it, rendered when it happened.
    Stored(String),
}

/// Why a job with queued tasks hands none out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WaitingReason {
    /// No live, non-draining worker has slots of this model.
    NoWorkersWith(SlotModel),
    /// Workers have slots of its model, but none of them runs its workload.
    NoWorkerOffers,
}

/// What `--model auto`'s probes decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProbeVerdict {
    /// CPU-bound, but each task is shorter than a process slot's dispatch.
    TooShortForProcesses,
    CpuBound,
    MostlyWaiting,
}

/// Why a job runs on its model.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Routing {
    /// The model follows the job's kind.
    ByKind { kind: JobKind, model: SlotModel },
    /// The client named the model.
    Forced,
    /// `--model auto`: these many probe tasks run on thread slots first.
    Probing { probes: u32 },
    /// `--model auto` decided from what the probes measured.
    Probed {
        probes: u32,
        /// CPU time per running (not CPU-queued) wall time.
        cpu_share: f64,
        /// Of the probes' wall time, the share spent queued for a busy CPU.
        queued_share: f64,
        mean_wall_ns: u64,
        verdict: ProbeVerdict,
        model: SlotModel,
    },
}

/// A job as the core sees it now.
#[derive(Debug, Clone)]
pub struct JobView<'a> {
    pub id: JobId,
    /// What admission made of the job (its model and kind as routed now).
    pub plan: &'a JobPlan,
    pub state: JobState,
    pub tasks_done: u64,
    pub tasks_failed: u64,
    pub tasks_running: u64,
    pub retries: u64,
    pub late_results_dropped: u64,
    /// Sum of the done tasks' values; 0 once it no longer fits in u128.
    pub total: u128,
    pub error: Option<&'a JobFailure>,
    /// Every task that failed for good, by index.
    pub failed_tasks: &'a BTreeMap<u64, TaskFailure>,
    pub submitted_ms: u64,
    pub started_ms: u64,
    pub finished_ms: u64,
    pub cpu_ns: u64,
    pub wall_ns: u64,
    pub routing: Routing,
    pub waiting: Option<WaitingReason>,
}

/// A worker as the core sees it now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WorkerView {
    pub id: WorkerId,
    pub name: String,
    pub hostname: String,
    pub pid: u32,
    pub slots: super::SlotCounts,
    /// Tasks assigned and not yet answered, on every model.
    pub running_tasks: u32,
    pub tasks_done: u64,
    pub connected_unix_ms: u64,
    pub draining: bool,
}

/// Cluster-wide counts.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ClusterView {
    pub workers: u32,
    /// Slots of every live worker, per model.
    pub slots: super::SlotCounts,
    pub jobs_total: u32,
    pub jobs_active: u32,
    pub tasks_queued: u64,
    pub tasks_running: u64,
    pub late_results_dropped: u64,
}
