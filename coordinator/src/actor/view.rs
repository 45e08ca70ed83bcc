//! What clients are shown: a job's status (counting only durable results),
//! watches on it, the job list, results, workers and the cluster status.
//! The scheduling core reports in its own types; this is where they become
//! wire messages, and where reasons become the text users read (including
//! which flag to use).

use std::collections::{BTreeMap, HashMap};

use brigade_proto::v1::{
    self, ClusterStatus, FailedTask, FailedTasks, FailureGroup, JobInfo, Kind, Model, Reduce,
    ResultsChunk, ResultsOrder, WorkerInfo,
};
use brigade_proto::{Output, SlotModel};
use tokio::sync::watch;
use tonic::Status;

use super::commit::HeldUpdate;
use super::Actor;
use crate::admission::JobReduce;
use crate::observe::dashboard::group_by_message;
use crate::sched::{
    ClusterView, JobError, JobFailure, JobId, JobState, JobView, ProbeVerdict, ResultRow, Routing,
    TaskFailure, TaskStatus, WaitingReason, WorkerId, WorkerView,
};

/// At most this many failed tasks are listed in a job's status.
const LISTED_FAILURES: usize = 100;
/// Failed tasks of a job that its status groups by cause (a job with a
/// million failures costs a scan of this many per status).
const GROUPED_FAILURES: usize = 10_000;
/// Groups of causes a job's status shows.
const FAILURE_GROUPS: usize = 10;
/// Task indices each group names.
const GROUP_EXAMPLES: usize = 5;

/// A results chunk takes no more rows once its outputs reach this many
/// bytes: 32,768 rows of a few kilobytes each would not fit the 64 MiB a
/// message may have (one output, at most 32 MiB, always does), and what a
/// reader that stops reading pins stays small (`MAX_RESULT_STREAMS`).
pub(crate) const RESULTS_CHUNK_BYTES: usize = 1 << 20;

/// Packs rows into the wire chunk (the `hi` column only when some value
/// needs it), with the names of the workers they name (`name_of`).
pub(crate) fn results_chunk(
    rows: Vec<ResultRow>,
    mut name_of: impl FnMut(WorkerId) -> Option<String>,
) -> ResultsChunk {
    let mut chunk = ResultsChunk::default();
    let bytes = rows.iter().any(|r| r.value.as_int().is_none());
    let wide = rows
        .iter()
        .any(|r| r.value.as_int().is_some_and(|v| v > u64::MAX as u128));
    let ended = rows.iter().any(|r| r.run.ended_us != 0);
    let mut last_ended = 0i64;
    for ResultRow { index, value, run } in rows {
        if ended {
            let at = i64::try_from(run.ended_us).unwrap_or(0);
            chunk.ended_us.push(at.wrapping_sub(last_ended));
            last_ended = at;
        }
        chunk.index.push(index);
        chunk.attempts.push(run.attempts);
        chunk.worker.push(run.worker);
        chunk
            .model
            .push(run.model.map_or(Model::Unspecified, Model::from) as i32);
        chunk.cpu_ns.push(run.cpu_ns);
        chunk.wall_ns.push(run.wall_ns);
        if run.worker != 0 && !chunk.worker_names.contains_key(&run.worker) {
            if let Some(name) = name_of(run.worker) {
                chunk.worker_names.insert(run.worker, name);
            }
        }
        if bytes {
            // Byte outputs: one data entry per row, integers as their text.
            chunk.is_int.push(value.as_int().is_some());
            chunk.data.push(match value {
                Output::Int(n) => n.to_string().into_bytes(),
                Output::Bytes(b) => b,
            });
        } else {
            let v = value.as_int().unwrap_or(0);
            chunk.lo.push(v as u64);
            if wide {
                chunk.hi.push((v >> 64) as u64);
            }
        }
    }
    chunk
}

/// A request about a job the core does not know.
pub(super) fn job_status(e: JobError) -> Status {
    Status::not_found(e.to_string())
}

impl Actor {
    /// A job's status as clients may see it: only durable results count
    /// (with a store), so what a client saw is never undone by a crash.
    pub(super) fn client_info(&self, id: JobId) -> Result<JobInfo, Status> {
        let mut view = self.sched.job_view(id).map_err(job_status)?;
        if let Some((n, sum)) = self.ledger.not_durable(id) {
            view.tasks_done -= n;
            match view.plan.reduce {
                JobReduce::Sum => view.total = view.total.wrapping_sub(sum),
                JobReduce::Count => view.total = view.total.wrapping_sub(u128::from(n)),
                // Not subtractable: shown once the job ended (durably).
                JobReduce::Min | JobReduce::Max | JobReduce::None | JobReduce::Concat => {}
            }
            // Its end is in the same pending commit as those results.
            if view.state.is_terminal() {
                view.state = JobState::Running;
                view.finished_ms = 0;
            }
        }
        Ok(job_info(&view))
    }

    /// Every job as clients may see it, in id order.
    pub(super) fn list_jobs(&self) -> Vec<JobInfo> {
        self.sched
            .jobs()
            .filter_map(|j| self.client_info(j.id).ok())
            .collect()
    }

    /// A watch on a job's status as clients may see it.
    pub(super) fn watch(&mut self, id: JobId) -> Result<watch::Receiver<JobInfo>, Status> {
        let info = self.client_info(id)?;
        Ok(self
            .watchers
            .entry(id)
            .or_insert_with(|| watch::channel(info).0)
            .subscribe())
    }

    /// Sends job updates to watchers (after the store has them).
    pub(super) fn publish(&mut self, updates: HashMap<JobId, HeldUpdate>) {
        for (id, (info, ended)) in updates {
            if let Some(tx) = self.watchers.get(&id) {
                tx.send_replace(info);
                if ended {
                    self.watchers.remove(&id);
                }
            }
        }
    }

    /// Done tasks of `job` from index `from` on, when the values are kept in
    /// memory (without a state file).
    pub(super) fn results(
        &self,
        job: JobId,
        from: u64,
        order: ResultsOrder,
        max: usize,
    ) -> Result<ResultsChunk, Status> {
        self.sched.job(job).map_err(job_status).and_then(|j| {
            // Without values in memory the service reads the store;
            // asking here is a bug, said so rather than answered empty.
            let rows = match order {
                ResultsOrder::Index => j.results_from(from, max, RESULTS_CHUNK_BYTES),
                ResultsOrder::Completion => {
                    j.results_in_completion_order(from, max, RESULTS_CHUNK_BYTES)
                }
            };
            let name_of = |w| self.worker_names.get(&w).cloned();
            rows.map(|rows| results_chunk(rows, name_of))
                .ok_or_else(|| {
                    Status::internal("results of this coordinator live in its state file")
                })
        })
    }

    /// Failed tasks of `job` from index `from` on, in index order: at most
    /// `max`, and no more once their errors reach `max_bytes` (at least
    /// one).
    pub(super) fn failed_tasks(
        &self,
        job: JobId,
        from: u64,
        max: usize,
        max_bytes: usize,
    ) -> Result<FailedTasks, Status> {
        let view = self.sched.job_view(job).map_err(job_status)?;
        let mut tasks = Vec::new();
        let mut bytes = 0;
        for (&index, failure) in view.failed_tasks.range(from..).take(max) {
            if bytes >= max_bytes {
                break;
            }
            let error = task_failure_text(failure);
            bytes += error.len();
            tasks.push(FailedTask { index, error });
        }
        Ok(FailedTasks { tasks })
    }

    /// Every live worker.
    pub(super) fn list_workers(&self) -> Vec<WorkerInfo> {
        self.sched.workers().into_iter().map(worker_info).collect()
    }

    /// The cluster's counters, with this coordinator's version and uptime.
    pub(super) fn cluster_status(&self) -> ClusterStatus {
        let ClusterView {
            workers,
            slots,
            jobs_total,
            jobs_active,
            tasks_queued,
            tasks_running,
            late_results_dropped,
        } = self.sched.status();
        ClusterStatus {
            workers,
            process_slots: slots.process,
            thread_slots: slots.thread,
            async_slots: slots.async_,
            jobs_total,
            jobs_active,
            tasks_queued,
            tasks_running,
            late_results_dropped,
            version: brigade_proto::VERSION.to_string(),
            protocol_version: brigade_proto::PROTOCOL_VERSION,
            uptime_ms: self.clock.origin.elapsed().as_millis() as u64,
        }
    }
}

/// A job's status on the wire.
pub(super) fn job_info(v: &JobView<'_>) -> JobInfo {
    JobInfo {
        job_id: v.id,
        spec: Some(v.plan.spec.clone()),
        model: Model::from(v.plan.model) as i32,
        kind: Kind::from(v.plan.kind) as i32,
        state: wire_state(v.state) as i32,
        tasks_total: v.plan.tasks,
        tasks_done: v.tasks_done,
        tasks_failed: v.tasks_failed,
        tasks_running: v.tasks_running,
        retries: v.retries,
        late_results_dropped: v.late_results_dropped,
        error: v.error.map(job_failure_text).unwrap_or_default(),
        has_total: match v.plan.reduce {
            JobReduce::Sum | JobReduce::Count => true,
            // A min or max is final only at the end (and undefined over
            // no output at all).
            JobReduce::Min | JobReduce::Max => v.state == JobState::Succeeded && v.tasks_done > 0,
            JobReduce::None | JobReduce::Concat => false,
        },
        total: Some(v.total.into()),
        reduce: Reduce::from(v.plan.reduce) as i32,
        owner: v.plan.owner.clone(),
        submitted_unix_ms: v.submitted_ms,
        started_unix_ms: v.started_ms,
        finished_unix_ms: v.finished_ms,
        task_cpu_ns: v.cpu_ns,
        task_wall_ns: v.wall_ns,
        waiting_reason: v
            .waiting
            .map(|w| waiting_text(w, &v.plan.spec.workload))
            .unwrap_or_default(),
        routing: routing_text(&v.routing),
        failed_tasks: v
            .failed_tasks
            .iter()
            .take(LISTED_FAILURES)
            .map(|(&index, failure)| FailedTask {
                index,
                error: task_failure_text(failure),
            })
            .collect(),
        failure_groups: failure_groups(v.failed_tasks),
    }
}

fn worker_info(w: WorkerView) -> WorkerInfo {
    WorkerInfo {
        worker_id: w.id,
        name: w.name,
        hostname: w.hostname,
        pid: w.pid,
        process_slots: w.slots.process,
        thread_slots: w.slots.thread,
        async_slots: w.slots.async_,
        running_tasks: w.running_tasks,
        tasks_done: w.tasks_done,
        connected_unix_ms: w.connected_unix_ms,
        draining: w.draining,
    }
}

/// A job state as the wire (and the store) spell it.
pub(super) fn wire_state(s: JobState) -> v1::JobState {
    match s {
        JobState::Queued => v1::JobState::Queued,
        JobState::Running => v1::JobState::Running,
        JobState::Succeeded => v1::JobState::Succeeded,
        JobState::Failed => v1::JobState::Failed,
        JobState::Cancelled => v1::JobState::Cancelled,
    }
}

/// A stored job's state for the core. One that had not ended resumes as
/// what its recorded results make it, so an unknown value reads as queued.
pub(super) fn stored_state(s: v1::JobState) -> JobState {
    match s {
        v1::JobState::Unspecified | v1::JobState::Queued => JobState::Queued,
        v1::JobState::Running => JobState::Running,
        v1::JobState::Succeeded => JobState::Succeeded,
        v1::JobState::Failed => JobState::Failed,
        v1::JobState::Cancelled => JobState::Cancelled,
    }
}

/// The flag that gives a worker slots of `model`.
fn slots_flag(model: SlotModel) -> &'static str {
    match model {
        SlotModel::Process => "--procs N",
        SlotModel::Thread => "--threads N",
        SlotModel::Async => "--async N",
    }
}

fn waiting_text(reason: WaitingReason, workload: &str) -> String {
    match reason {
        WaitingReason::NoWorkersWith(model) => format!(
            "no workers with {} slots; start a worker with {}",
            model.name(),
            slots_flag(model)
        ),
        // Only workers started with --allow-exec offer exec.
        WaitingReason::NoWorkerOffers if workload == "exec" => {
            "no linked worker runs workload exec; start a worker with --allow-exec".into()
        }
        WaitingReason::NoWorkerOffers => {
            format!("no linked worker runs workload {workload}; start a worker that offers it")
        }
    }
}

pub(super) fn outcome_name(s: TaskStatus) -> &'static str {
    match s {
        TaskStatus::Ok => "ok",
        TaskStatus::Failed => "failed",
        TaskStatus::ExecutorDied => "executor died",
        TaskStatus::TimedOut => "timed out",
        TaskStatus::Cancelled => "cancelled",
        TaskStatus::OutputTooLarge => "output too large",
        TaskStatus::Unknown => "unknown outcome",
    }
}

/// Why a task failed, as users (and the store) read it.
pub(super) fn task_failure_text(f: &TaskFailure) -> String {
    match f {
        TaskFailure::Attempts {
            index,
            input: (start, end),
            attempts,
            last,
            error,
        } => format!(
            "task {index} (input {start}..{end}) failed after {attempts} attempt(s); last: {}: {error}",
            outcome_name(*last)
        ),
        TaskFailure::WorkersLost {
            index,
            input: (start, end),
            losses,
            model,
            limit,
        } => format!(
            "task {index} (input {start}..{end}) failed: {losses} workers were lost \
             while it was on their {} slots (crashed, killed or cut off); it may have \
             brought them down, or shared them with a task that did (a task that \
             brings down its worker's process fails after {limit}, \
             --max-worker-losses)",
            model.name()
        ),
        TaskFailure::Stored(text) => text.clone(),
    }
}

/// Why a task failed, without which task it was: what failures are grouped
/// by (`group_by_message` also takes numbers, such as pids, as alike). The
/// same for a failure of this run and one read back from the store.
pub(super) fn failure_cause(f: &TaskFailure) -> String {
    let text = match f {
        TaskFailure::Stored(text) => std::borrow::Cow::Borrowed(text.as_str()),
        live => std::borrow::Cow::Owned(task_failure_text(live)),
    };
    // "task N (input A..B) failed after K attempt(s); last: CAUSE", or
    // "task N (input A..B) failed: CAUSE".
    let rest = text
        .strip_prefix("task ")
        .and_then(|t| t.split_once(") failed"))
        .map(|(_, rest)| rest);
    match rest {
        Some(rest) => match rest.split_once("; last: ") {
            Some((_, cause)) => cause.to_string(),
            None => rest.trim_start_matches(": ").to_string(),
        },
        None => text.into_owned(),
    }
}

/// A job's failed tasks grouped by cause, most first: [`FAILURE_GROUPS`]
/// groups at most, over its first [`GROUPED_FAILURES`] failed tasks, each
/// with the indices of its first [`GROUP_EXAMPLES`] tasks.
fn failure_groups(failed: &BTreeMap<u64, TaskFailure>) -> Vec<FailureGroup> {
    let causes = failed
        .iter()
        .take(GROUPED_FAILURES)
        .map(|(&index, f)| (index, failure_cause(f)));
    let mut groups = group_by_message(causes, GROUP_EXAMPLES);
    groups.truncate(FAILURE_GROUPS);
    groups
        .into_iter()
        .map(|g| FailureGroup {
            cause: g.message,
            tasks: g.count,
            examples: g.members,
        })
        .collect()
}

fn job_failure_text(f: &JobFailure) -> String {
    match f {
        JobFailure::Task(task) => task_failure_text(task),
        JobFailure::TooManyFailures {
            failed,
            tasks,
            allowed,
            first,
        } => format!(
            "{failed} of {tasks} tasks failed for good, more than the {allowed} the job allows \
             (--allow-failures); first: {}",
            task_failure_text(first)
        ),
        JobFailure::NoWorkers { model, waited_ms } => format!(
            "no workers with {} slots for {:.1} s (--fail-if-no-workers-for)",
            model.name(),
            *waited_ms as f64 / 1e3
        ),
        JobFailure::TotalOverflow => "every task succeeded but the job total does not fit in \
                                      128 bits; the per-task results are exact (`brigade results`)"
            .to_string(),
        JobFailure::Stored(text) => text.clone(),
    }
}

fn routing_text(r: &Routing) -> String {
    match *r {
        Routing::ByKind { kind, model } => format!("{} job → {} slots", kind.name(), model.name()),
        Routing::Forced => "forced by --model".to_string(),
        Routing::Probing { probes } => format!("auto: probing {probes} tasks on thread slots"),
        Routing::Probed {
            probes,
            cpu_share,
            queued_share,
            mean_wall_ns,
            verdict,
            model,
        } => {
            let busy = if queued_share >= 0.01 {
                format!(
                    " (not counting the {:.0}% of it they waited for a busy CPU)",
                    queued_share * 100.0
                )
            } else {
                String::new()
            };
            let why = match verdict {
                ProbeVerdict::TooShortForProcesses => format!(
                    "but took {} µs each: too short for a process slot's dispatch to pay off",
                    mean_wall_ns / 1_000
                ),
                ProbeVerdict::CpuBound => "CPU-bound".to_string(),
                ProbeVerdict::MostlyWaiting => "mostly waiting".to_string(),
            };
            format!(
                "auto: {probes} probe tasks on thread slots used {:.0}% CPU per wall second{busy}, \
                 {why} → {} slots",
                cpu_share * 100.0,
                model.name()
            )
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::admission::JobKind;
    use crate::testing::probed;

    #[test]
    fn a_waiting_job_names_the_flag_that_would_serve_it() {
        assert_eq!(
            waiting_text(WaitingReason::NoWorkerOffers, "rate"),
            "no linked worker runs workload rate; start a worker that offers it"
        );
        let text = |m| waiting_text(WaitingReason::NoWorkersWith(m), "noop");
        assert_eq!(
            text(SlotModel::Process),
            "no workers with process slots; start a worker with --procs N"
        );
        assert_eq!(
            text(SlotModel::Thread),
            "no workers with thread slots; start a worker with --threads N"
        );
        assert_eq!(
            text(SlotModel::Async),
            "no workers with async slots; start a worker with --async N"
        );
    }

    #[test]
    fn failures_read_as_they_always_did() {
        let attempts = |index, last| TaskFailure::Attempts {
            index,
            input: (index * 10, index * 10 + 10),
            attempts: 2,
            last,
            error: "boom".into(),
        };
        assert_eq!(
            task_failure_text(&attempts(0, TaskStatus::Failed)),
            "task 0 (input 0..10) failed after 2 attempt(s); last: failed: boom"
        );
        assert_eq!(
            task_failure_text(&attempts(2, TaskStatus::ExecutorDied)),
            "task 2 (input 20..30) failed after 2 attempt(s); last: executor died: boom"
        );
        assert_eq!(
            task_failure_text(&attempts(1, TaskStatus::Unknown)),
            "task 1 (input 10..20) failed after 2 attempt(s); last: unknown outcome: boom"
        );
        let lost = TaskFailure::WorkersLost {
            index: 0,
            input: (0, 1),
            losses: 3,
            model: SlotModel::Thread,
            limit: 3,
        };
        assert_eq!(
            job_failure_text(&JobFailure::Task(lost)),
            "task 0 (input 0..1) failed: 3 workers were lost while it was on their thread \
             slots (crashed, killed or cut off); it may have brought them down, or shared \
             them with a task that did (a task that brings down its worker's process fails \
             after 3, --max-worker-losses)"
        );
        assert_eq!(
            job_failure_text(&JobFailure::NoWorkers {
                model: SlotModel::Process,
                waited_ms: 1_000
            }),
            "no workers with process slots for 1.0 s (--fail-if-no-workers-for)"
        );
        assert_eq!(
            job_failure_text(&JobFailure::TotalOverflow),
            "every task succeeded but the job total does not fit in 128 bits; \
             the per-task results are exact (`brigade results`)"
        );
        assert_eq!(
            job_failure_text(&JobFailure::TooManyFailures {
                failed: 3,
                tasks: 20,
                allowed: 2,
                first: attempts(4, TaskStatus::Failed),
            }),
            "3 of 20 tasks failed for good, more than the 2 the job allows (--allow-failures); \
             first: task 4 (input 40..50) failed after 2 attempt(s); last: failed: boom"
        );
        assert_eq!(job_failure_text(&JobFailure::Stored("gone".into())), "gone");
        assert_eq!(
            task_failure_text(&TaskFailure::Stored("kept".into())),
            "kept"
        );
    }

    #[test]
    fn a_jobs_failures_group_by_cause_with_counts_and_example_tasks() {
        let attempts = |index: u64, error: &str| TaskFailure::Attempts {
            index,
            input: (index, index + 1),
            attempts: 3,
            last: TaskStatus::Failed,
            error: error.into(),
        };
        let mut failed = BTreeMap::new();
        for i in 0..8 {
            failed.insert(
                i * 2,
                attempts(i * 2, &format!("exit status {}", 1 + i % 2)),
            );
        }
        failed.insert(3, attempts(3, "no such file"));
        failed.insert(
            5,
            TaskFailure::Stored(
                "task 5 (input 5..6) failed after 1 attempt(s); last: failed: no such file".into(),
            ),
        );
        let groups = failure_groups(&failed);
        assert_eq!(
            groups,
            vec![
                FailureGroup {
                    cause: "failed: exit status 1".into(),
                    tasks: 8,
                    examples: vec![0, 2, 4, 6, 8],
                },
                FailureGroup {
                    cause: "failed: no such file".into(),
                    tasks: 2,
                    examples: vec![3, 5],
                },
            ]
        );
        // Ten groups at most, the largest.
        let many: BTreeMap<u64, TaskFailure> = (0..30)
            .map(|i| (i, attempts(i, &"x".repeat(1 + (i % 12) as usize))))
            .collect();
        let groups = failure_groups(&many);
        assert_eq!(groups.len(), 10);
        assert_eq!(groups.iter().map(|g| g.tasks).sum::<u64>(), 6 * 3 + 4 * 2);
    }

    #[test]
    fn routing_says_why_a_job_runs_where_it_does() {
        let by_kind = Routing::ByKind {
            kind: JobKind::Cpu,
            model: SlotModel::Process,
        };
        assert_eq!(routing_text(&by_kind), "cpu job → process slots");
        assert_eq!(routing_text(&Routing::Forced), "forced by --model");
        assert_eq!(
            routing_text(&Routing::Probing { probes: 4 }),
            "auto: probing 4 tasks on thread slots"
        );
        let cases = [
            (
                probed(
                    0.9,
                    0.0,
                    10_000_000,
                    ProbeVerdict::CpuBound,
                    SlotModel::Process,
                ),
                "auto: 4 probe tasks on thread slots used 90% CPU per wall second, \
                 CPU-bound → process slots",
            ),
            (
                probed(
                    0.001,
                    0.0,
                    100_000_000,
                    ProbeVerdict::MostlyWaiting,
                    SlotModel::Async,
                ),
                "auto: 4 probe tasks on thread slots used 0% CPU per wall second, \
                 mostly waiting → async slots",
            ),
            (
                probed(
                    16e6 / 18e6,
                    0.55,
                    10_000_000,
                    ProbeVerdict::CpuBound,
                    SlotModel::Process,
                ),
                "auto: 4 probe tasks on thread slots used 89% CPU per wall second (not \
                 counting the 55% of it they waited for a busy CPU), CPU-bound → process slots",
            ),
            (
                probed(
                    0.75,
                    0.0,
                    4_000,
                    ProbeVerdict::TooShortForProcesses,
                    SlotModel::Async,
                ),
                "auto: 4 probe tasks on thread slots used 75% CPU per wall second, but took \
                 4 µs each: too short for a process slot's dispatch to pay off → async slots",
            ),
        ];
        for (routing, text) in cases {
            assert_eq!(routing_text(&routing), text);
        }
    }

    #[test]
    fn job_states_round_trip_through_the_store() {
        for s in [
            JobState::Queued,
            JobState::Running,
            JobState::Succeeded,
            JobState::Failed,
            JobState::Cancelled,
        ] {
            assert_eq!(stored_state(wire_state(s)), s);
            assert_eq!(wire_state(s).is_terminal(), s.is_terminal());
        }
        assert_eq!(stored_state(v1::JobState::Unspecified), JobState::Queued);
    }
}
