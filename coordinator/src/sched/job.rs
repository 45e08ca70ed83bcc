//! One job inside the core: which of its tasks are fresh, queued for retry,
//! leased or done, and what their results are. Tasks of a range are not
//! materialised: a task that was never issued is just `index >= next_fresh`.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::hash::{BuildHasherDefault, Hasher};

use brigade_proto::Output;
use brigade_proto::SlotModel;

use super::outputs::Outputs;
use super::status::{
    JobFailure, JobState, JobView, ProbeVerdict, Routing, TaskFailure, TaskStatus, WaitingReason,
};
use super::{JobId, Outcome, Recorded, ResultRow, RunInfo, TaskLease, WorkerId};
use crate::admission::{JobKind, JobPlan, JobReduce, ModelChoice};

/// The current lease of a task.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Lease {
    pub worker: WorkerId,
    /// Lease epoch: bumped every time the task is handed out.
    pub attempt: u32,
    /// Failed attempts so far (a lost worker is not a failure of the task).
    pub failures: u32,
    /// Workers lost while they held this task on thread or async slots
    /// (slots that share their worker's process, which the task may have
    /// brought down).
    pub losses: u32,
}

/// Hashes a task index with one multiplication (as FxHash does). Task
/// indices are dense and picked by the scheduler, not by anyone who could
/// aim collisions at the map, so SipHash's flood resistance buys nothing
/// here; it cost more than a third of every transition (BENCHMARKS.md).
/// Consecutive indices land in distinct buckets: the factor is odd.
#[derive(Debug, Default, Clone, Copy)]
pub struct TaskIndexHasher(u64);

impl Hasher for TaskIndexHasher {
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.write_u64(u64::from(b));
        }
    }

    fn write_u64(&mut self, n: u64) {
        self.0 = (self.0.rotate_left(5) ^ n).wrapping_mul(0x51_7c_c1_b7_27_22_0a_95);
    }

    fn finish(&self) -> u64 {
        self.0
    }
}

/// The current lease of every leased task of a job, by task index.
pub type Leases = HashMap<u64, Lease, BuildHasherDefault<TaskIndexHasher>>;

/// What the store kept of a job, to rebuild it after a restart.
#[derive(Debug, Clone, Copy)]
pub struct RestoredJob<'a> {
    /// Its state when stored (`Queued` or `Running` alike mean it had not
    /// ended: what it resumes as follows from what was recorded).
    pub state: JobState,
    /// Why it failed, as rendered then ("" if it did not).
    pub error: &'a str,
    pub submitted_ms: u64,
    pub started_ms: u64,
    pub finished_ms: u64,
    pub results: &'a [Recorded],
    /// Tasks that failed for good, with their errors.
    pub failures: &'a [(u64, String)],
}

/// Tasks `--model auto` runs on thread slots before it routes the job.
pub const AUTO_PROBES: u32 = 4;
/// CPU time per wall time (leaving out time spent queued for a busy CPU) at
/// or above which probes call a job CPU-bound.
pub const AUTO_CPU_SHARE: f64 = 0.5;

/// Probes averaging less wall time than this are too short for process
/// slots: a task's trip through an executor's pipe (tens of µs,
/// BENCHMARKS.md "Per-task overhead") would cost more than the work, so
/// such jobs go to the event loop, which runs them inline, whatever their
/// CPU share.
pub const AUTO_TINY_TASK_NS: u64 = 100_000;

/// What `--model auto`'s probe tasks measured so far.
#[derive(Debug, Clone, Copy, Default)]
struct Probe {
    seen: u32,
    cpu_ns: u64,
    wall_ns: u64,
    ready_ns: u64,
}

/// A task going back to the queue.
#[derive(Debug, Clone, Copy)]
pub(super) struct Requeue {
    pub index: u64,
    pub attempt: u32,
    pub failures: u32,
    pub losses: u32,
}

#[derive(Debug)]
pub struct Job {
    pub id: JobId,
    pub plan: JobPlan,
    pub state: JobState,
    /// Tasks `next_fresh..plan.tasks` have never been issued in this run of
    /// the coordinator (some may be done already, restored from the store).
    next_fresh: u64,
    /// Done tasks at or beyond `next_fresh` (only after a restore).
    done_ahead: u64,
    retry: VecDeque<Requeue>,
    pub(super) leases: Leases,
    /// Finished tasks (done, or failed for good), one bit each.
    done: Vec<u64>,
    done_count: u64,
    /// Tasks that failed for good, and why.
    failed_tasks: BTreeMap<u64, TaskFailure>,
    /// Failures not yet handed to the store.
    pub(super) new_failures: Vec<(u64, TaskFailure)>,
    /// `--model auto` while probing.
    probe: Option<Probe>,
    /// Why the job runs on its model.
    routing: Routing,
    /// Set when probing just moved the job off this model.
    pub(super) rerouted_from: Option<SlotModel>,
    /// Every done task's output, when kept in memory (without a store);
    /// with a store, results are served from it and only the reduced value
    /// is here.
    values: Option<Outputs>,
    /// The reduction of the done tasks' outputs so far (`plan.reduce`);
    /// `None` once a sum no longer fits in u128.
    total: Option<u128>,
    retries: u64,
    pub(super) late_results_dropped: u64,
    error: Option<JobFailure>,
    submitted_ms: u64,
    started_ms: u64,
    finished_ms: u64,
    cpu_ns: u64,
    wall_ns: u64,
    /// Bytes of the done tasks' byte outputs (`max_job_result_bytes`).
    output_bytes: u64,
}

impl Job {
    pub(super) fn new(id: JobId, plan: JobPlan, now_ms: u64, keep_values: bool) -> Self {
        let n = plan.tasks as usize;
        Job {
            id,
            state: JobState::Queued,
            next_fresh: 0,
            done_ahead: 0,
            retry: VecDeque::new(),
            leases: Leases::default(),
            done: vec![0; n.div_ceil(64)],
            done_count: 0,
            failed_tasks: BTreeMap::new(),
            new_failures: Vec::new(),
            probe: (plan.choice == ModelChoice::Auto).then(Probe::default),
            routing: routing(&plan),
            rerouted_from: None,
            values: keep_values.then(|| Outputs::new(n)),
            total: match plan.reduce {
                JobReduce::Min => Some(u128::MAX),
                _ => Some(0),
            },
            retries: 0,
            late_results_dropped: 0,
            error: None,
            submitted_ms: now_ms,
            started_ms: 0,
            finished_ms: 0,
            cpu_ns: 0,
            wall_ns: 0,
            output_bytes: 0,
            plan,
        }
    }

    /// The slot model its tasks run on now.
    pub(super) fn model(&self) -> SlotModel {
        self.plan.model
    }

    pub fn is_terminal(&self) -> bool {
        self.state.is_terminal()
    }

    pub(super) fn has_queued(&self) -> bool {
        !self.is_terminal() && self.queued() > 0
    }

    pub fn queued(&self) -> u64 {
        if self.is_terminal() {
            return 0;
        }
        self.retry.len() as u64 + (self.plan.tasks - self.next_fresh - self.done_ahead)
    }

    /// Rebuilds a job from the store: its recorded results count as done,
    /// everything else is queued again (leases do not survive a restart).
    pub(super) fn restore(
        id: JobId,
        plan: JobPlan,
        stored: RestoredJob<'_>,
        keep_values: bool,
    ) -> Self {
        let mut job = Job::new(id, plan, stored.submitted_ms, keep_values);
        for r in stored.results {
            if r.index < job.plan.tasks && !job.is_finished(r.index) {
                job.mark_done(r.index, &r.value, r.run);
            }
        }
        for (index, error) in stored.failures {
            if *index < job.plan.tasks && !job.is_finished(*index) {
                job.mark_failed(*index, TaskFailure::Stored(error.clone()));
            }
        }
        job.new_failures.clear();
        job.done_ahead = job.finished_count();
        job.started_ms = stored.started_ms;
        if job.done_ahead > 0 || stored.started_ms > 0 {
            job.state = JobState::Running;
        }
        if stored.state.is_terminal() {
            let error = (!stored.error.is_empty()).then(|| JobFailure::Stored(stored.error.into()));
            job.finish(stored.state, error, stored.finished_ms);
        } else if job.plan.fail_fast && job.failed_tasks.len() as u64 > job.plan.allow_failures {
            // Its end is committed with the failure that caused it; should
            // it be missing, the job ends now all the same.
            let beyond = job
                .failed_tasks
                .values()
                .nth(job.plan.allow_failures as usize);
            let failure = beyond.cloned().map(JobFailure::Task);
            job.finish(
                JobState::Failed,
                failure,
                stored.finished_ms.max(stored.submitted_ms),
            );
        } else if job.finished_count() == job.plan.tasks {
            // Every result was stored but the end was not: it ends now.
            job.complete(stored.finished_ms.max(stored.submitted_ms));
        }
        job
    }

    /// Moves the failures recorded since the last call into `store` (the
    /// scheduler's list for the state file, when there is one), else drops
    /// them.
    pub(super) fn hand_over_failures(
        &mut self,
        store: Option<&mut Vec<(JobId, u64, TaskFailure)>>,
    ) {
        let id = self.id;
        match store {
            Some(store) => store.extend(self.new_failures.drain(..).map(|(i, e)| (id, i, e))),
            None => self.new_failures.clear(),
        }
    }

    fn mark_failed(&mut self, index: u64, failure: TaskFailure) {
        self.done[(index / 64) as usize] |= 1 << (index % 64);
        self.new_failures.push((index, failure.clone()));
        self.failed_tasks.insert(index, failure);
    }

    fn finished_count(&self) -> u64 {
        self.done_count + self.failed_tasks.len() as u64
    }

    /// Done or failed for good.
    fn is_finished(&self, index: u64) -> bool {
        self.done[(index / 64) as usize] & (1 << (index % 64)) != 0
    }

    fn mark_done(&mut self, index: u64, value: &Output, run: RunInfo) {
        self.done[(index / 64) as usize] |= 1 << (index % 64);
        self.done_count += 1;
        if value.as_int().is_none() {
            self.output_bytes += value.len() as u64;
        }
        if let Some(values) = &mut self.values {
            values.set(index, value, run);
        }
        let int = || value.as_int().unwrap_or(0);
        match self.plan.reduce {
            JobReduce::Sum => self.total = self.total.and_then(|t| t.checked_add(int())),
            JobReduce::Count => self.total = Some(u128::from(self.done_count)),
            JobReduce::Min => self.total = self.total.map(|t| t.min(int())),
            JobReduce::Max => self.total = self.total.map(|t| t.max(int())),
            JobReduce::None | JobReduce::Concat => {}
        }
        self.cpu_ns += run.cpu_ns;
        self.wall_ns += run.wall_ns;
    }

    /// Most tasks of this job leased at once: the job's own cap, and only
    /// the probes while `--model auto` probes.
    fn in_flight_cap(&self) -> Option<usize> {
        let own = self.plan.max_in_flight.map(|c| c as usize);
        match (own, self.probe.is_some()) {
            (Some(c), true) => Some(c.min(AUTO_PROBES as usize)),
            (None, true) => Some(AUTO_PROBES as usize),
            (own, false) => own,
        }
    }

    pub(super) fn at_in_flight_cap(&self) -> bool {
        self.in_flight_cap()
            .is_some_and(|cap| self.leases.len() >= cap)
    }

    /// Counts a probe's measurement; after the last one, routes the job to
    /// process slots (CPU-bound) or async slots (mostly waiting).
    fn probe_measured(&mut self, o: &Outcome) {
        let Some(p) = &mut self.probe else { return };
        p.seen += 1;
        p.cpu_ns += o.cpu_ns;
        p.wall_ns += o.wall_ns;
        p.ready_ns += o.ready_ns.min(o.wall_ns);
        if p.seen < AUTO_PROBES.min(self.plan.tasks as u32) {
            return;
        }
        // Time spent queued for a CPU is neither computing nor waiting on
        // I/O: on a busy machine it would make CPU-bound work look idle.
        let running = p.wall_ns - p.ready_ns;
        let share = p.cpu_ns as f64 / running.max(1) as f64;
        let queued = p.ready_ns as f64 / p.wall_ns.max(1) as f64;
        let mean_wall = p.wall_ns / u64::from(p.seen.max(1));
        let (model, kind, verdict) = if share >= AUTO_CPU_SHARE && mean_wall < AUTO_TINY_TASK_NS {
            (
                SlotModel::Async,
                JobKind::Cpu,
                ProbeVerdict::TooShortForProcesses,
            )
        } else if share >= AUTO_CPU_SHARE {
            (SlotModel::Process, JobKind::Cpu, ProbeVerdict::CpuBound)
        } else {
            (SlotModel::Async, JobKind::Io, ProbeVerdict::MostlyWaiting)
        };
        self.routing = Routing::Probed {
            probes: p.seen,
            cpu_share: share,
            queued_share: queued,
            mean_wall_ns: mean_wall,
            verdict,
            model,
        };
        self.probe = None;
        if model != self.plan.model {
            self.rerouted_from = Some(self.plan.model);
            self.plan.model = model;
            self.plan.kind = kind;
        }
    }

    /// Whether the task has a recorded result.
    pub fn is_done(&self, index: u64) -> bool {
        self.is_finished(index) && !self.failed_tasks.contains_key(&index)
    }

    pub fn done_count(&self) -> u64 {
        self.done_count
    }

    /// The job's reduced value so far (`--reduce`: the sum, count, min or
    /// max of the done tasks' outputs), if it fits in u128. A min over no
    /// output yet is `u128::MAX`.
    pub fn total(&self) -> Option<u128> {
        self.total
    }

    /// Ends the job once every task is finished: succeeded, unless more
    /// tasks failed for good than it allows, or its total is meant to be
    /// reported and does not fit.
    fn complete(&mut self, now_ms: u64) {
        let failed = self.failed_tasks.len() as u64;
        let first = self.failed_tasks.values().next();
        if let Some(first) = first.filter(|_| failed > self.plan.allow_failures) {
            let failure = JobFailure::TooManyFailures {
                failed,
                tasks: self.plan.tasks,
                allowed: self.plan.allow_failures,
                first: first.clone(),
            };
            self.finish(JobState::Failed, Some(failure), now_ms);
        } else if self.total.is_none() && self.plan.reduce == JobReduce::Sum {
            self.finish(JobState::Failed, Some(JobFailure::TotalOverflow), now_ms);
        } else {
            self.finish(JobState::Succeeded, None, now_ms);
        }
    }

    /// Leases up to `max` queued tasks (retries first) to `worker`.
    pub(super) fn lease_next(
        &mut self,
        worker: WorkerId,
        max: usize,
        now_ms: u64,
    ) -> Vec<TaskLease> {
        let mut n = max;
        if let Some(cap) = self.in_flight_cap() {
            n = n.min(cap.saturating_sub(self.leases.len()));
        }
        let mut out = Vec::with_capacity(n.min(self.queued() as usize));
        while out.len() < n {
            let next = match self.retry.pop_front() {
                Some(r) => r,
                None if self.next_fresh < self.plan.tasks => {
                    self.next_fresh += 1;
                    let index = self.next_fresh - 1;
                    if self.done_ahead > 0 && self.is_finished(index) {
                        self.done_ahead -= 1;
                        continue;
                    }
                    Requeue {
                        index,
                        attempt: 0,
                        failures: 0,
                        losses: 0,
                    }
                }
                None => break,
            };
            let attempt = next.attempt + 1;
            self.leases.insert(
                next.index,
                Lease {
                    worker,
                    attempt,
                    failures: next.failures,
                    losses: next.losses,
                },
            );
            out.push(TaskLease {
                index: next.index,
                attempt,
            });
        }
        if !out.is_empty() && self.state == JobState::Queued {
            self.state = JobState::Running;
            self.started_ms = now_ms;
        }
        out
    }

    /// Puts every task leased to `worker` back in the queue, in index order,
    /// without counting a failed attempt (a lost worker is not, as a rule,
    /// the task's fault). On thread and async slots, which share their
    /// worker's process, each counts a loss, and a task that reaches
    /// `max_losses` (0: no limit) fails instead of cycling through the
    /// workers it brings down. Returns how many went back and whether the
    /// job ended.
    pub(super) fn requeue_leases_of(
        &mut self,
        worker: WorkerId,
        max_losses: u32,
        now_ms: u64,
    ) -> (usize, bool) {
        let mut held: Vec<u64> = self
            .leases
            .iter()
            .filter(|(_, l)| l.worker == worker)
            .map(|(&index, _)| index)
            .collect();
        held.sort_unstable();
        let in_worker_process = self.plan.model != SlotModel::Process;
        let mut ended = false;
        for &index in &held {
            let lease = self.leases.remove(&index).expect("listed just above");
            if ended {
                continue;
            }
            let losses = lease.losses + u32::from(in_worker_process);
            if in_worker_process && max_losses > 0 && losses >= max_losses {
                let failure = TaskFailure::WorkersLost {
                    index,
                    input: self.plan.task_range(index),
                    losses,
                    model: self.plan.model,
                    limit: max_losses,
                };
                ended = self.fail_task(index, failure, now_ms);
                continue;
            }
            self.requeue(Requeue {
                index,
                attempt: lease.attempt,
                failures: lease.failures,
                losses,
            });
        }
        (held.len(), ended)
    }

    /// Fails a task for good. Beyond `allow_failures` a `fail_fast` job
    /// fails at once; any other job runs its remaining tasks and fails
    /// when the last one finishes ([`Job::complete`]). Returns whether the
    /// job ended.
    fn fail_task(&mut self, index: u64, failure: TaskFailure, now_ms: u64) -> bool {
        let tolerated = (self.failed_tasks.len() as u64) < self.plan.allow_failures;
        self.mark_failed(index, failure.clone());
        if !tolerated && self.plan.fail_fast {
            self.finish(JobState::Failed, Some(JobFailure::Task(failure)), now_ms);
            return true;
        }
        if self.finished_count() == self.plan.tasks {
            self.complete(now_ms);
            return true;
        }
        false
    }

    pub(super) fn requeue(&mut self, r: Requeue) {
        self.retries += 1;
        self.retry.push_back(r);
    }

    /// Applies the outcome of the task's current lease. Returns whether the
    /// job ended because of it.
    pub(super) fn record(
        &mut self,
        o: &mut Outcome,
        lease: Lease,
        run: RunInfo,
        now_ms: u64,
    ) -> bool {
        let index = o.index;
        if o.status != TaskStatus::Cancelled {
            self.probe_measured(o);
        }
        match o.status {
            TaskStatus::Ok => {
                debug_assert!(
                    !self.is_finished(index),
                    "a current lease is never finished"
                );
                if let Some(why) = self.refusal(&o.value) {
                    return self.fail_for_good(index, lease, TaskStatus::Failed, why, now_ms);
                }
                self.mark_done(index, &o.value, run);
                if self.finished_count() == self.plan.tasks {
                    self.complete(now_ms);
                    return true;
                }
            }
            // Another attempt would make the same output.
            TaskStatus::OutputTooLarge => {
                self.cpu_ns += o.cpu_ns;
                self.wall_ns += o.wall_ns;
                let error = std::mem::take(&mut o.error);
                return self.fail_for_good(index, lease, o.status, error, now_ms);
            }
            // Handed back by a draining worker or aborted on our request:
            // not the task's fault.
            TaskStatus::Cancelled => self.requeue(Requeue {
                index,
                attempt: lease.attempt,
                failures: lease.failures,
                losses: lease.losses,
            }),
            status => {
                self.cpu_ns += o.cpu_ns;
                self.wall_ns += o.wall_ns;
                let failures = lease.failures + 1;
                if failures >= self.plan.max_attempts {
                    let failure = TaskFailure::Attempts {
                        index,
                        input: self.plan.task_range(index),
                        attempts: failures,
                        last: status,
                        error: std::mem::take(&mut o.error),
                    };
                    return self.fail_task(index, failure, now_ms);
                }
                self.requeue(Requeue {
                    index,
                    attempt: lease.attempt,
                    failures,
                    losses: lease.losses,
                });
            }
        }
        false
    }

    pub(super) fn finish(&mut self, state: JobState, error: Option<JobFailure>, now_ms: u64) {
        self.state = state;
        self.error = error;
        self.finished_ms = now_ms;
        self.retry.clear();
    }

    /// Done tasks with index ≥ `from`, in index order: at most `max` of
    /// them, and no more once their outputs reach `max_bytes` (at least
    /// one); `None` when values are not kept in memory (the store has them).
    pub fn results_from(&self, from: u64, max: usize, max_bytes: usize) -> Option<Vec<ResultRow>> {
        let values = self.values.as_ref()?;
        let done = (from..self.plan.tasks).filter(|&i| self.is_done(i));
        Some(values.rows(done.map(|i| (i, None)), max, max_bytes))
    }

    /// The same in the order results were recorded, skipping the first
    /// `skip` of them.
    pub fn results_in_completion_order(
        &self,
        skip: u64,
        max: usize,
        max_bytes: usize,
    ) -> Option<Vec<ResultRow>> {
        let values = self.values.as_ref()?;
        Some(values.rows(values.completion_order(skip), max, max_bytes))
    }

    /// Whether an OK output can be recorded: a reduction over integers
    /// takes no byte output, and no output may be over the job's
    /// `max_result_bytes` (workers enforce it too; this holds for any
    /// worker). The task fails for good instead.
    pub fn accepts(&self, value: &Output) -> bool {
        self.refusal(value).is_none()
    }

    /// Why an OK output cannot be recorded, if it cannot.
    fn refusal(&self, value: &Output) -> Option<String> {
        if self.plan.reduce.needs_integers() && value.as_int().is_none() {
            return Some(format!(
                "the task's output is not an unsigned integer, and --reduce {} needs one",
                reduce_name(self.plan.reduce)
            ));
        }
        if value.as_int().is_some() {
            return None;
        }
        let len = value.len() as u64;
        if len > self.plan.max_result_bytes {
            return Some(format!(
                "the task's output of {len} bytes is over the job's limit of {} bytes \
                 (--max-result-bytes)",
                self.plan.max_result_bytes
            ));
        }
        let limit = self.plan.max_job_result_bytes;
        (self.output_bytes.saturating_add(len) > limit).then(|| {
            format!(
                "the task's output of {len} bytes would take the job's outputs past {limit} \
                 bytes, the limit per job (--max-result-bytes-per-job on the coordinator); \
                 they hold {} bytes",
                self.output_bytes
            )
        })
    }

    /// Fails a task at once, whatever attempts it has left: running it
    /// again would end the same way.
    fn fail_for_good(
        &mut self,
        index: u64,
        lease: Lease,
        last: TaskStatus,
        error: String,
        now_ms: u64,
    ) -> bool {
        let failure = TaskFailure::Attempts {
            index,
            input: self.plan.task_range(index),
            attempts: lease.failures + 1,
            last,
            error,
        };
        self.fail_task(index, failure, now_ms)
    }

    /// Retries so far (tasks queued again after a lease ended without a
    /// result).
    /// Done, failed-for-good and retried tasks: what the metrics count
    /// from one outcome is the change in these.
    pub(super) fn tallies(&self) -> (u64, u64, u64) {
        (
            self.done_count,
            self.failed_tasks.len() as u64,
            self.retries,
        )
    }

    pub fn retries(&self) -> u64 {
        self.retries
    }

    /// The job as the core sees it now (`waiting`: why its queued tasks go
    /// nowhere, which only the scheduler knows).
    pub(super) fn view(&self, waiting: Option<WaitingReason>) -> JobView<'_> {
        JobView {
            id: self.id,
            plan: &self.plan,
            state: self.state,
            tasks_done: self.done_count,
            tasks_failed: self.failed_tasks.len() as u64,
            tasks_running: self.leases.len() as u64,
            retries: self.retries,
            late_results_dropped: self.late_results_dropped,
            total: self.total.unwrap_or(0),
            error: self.error.as_ref(),
            failed_tasks: &self.failed_tasks,
            submitted_ms: self.submitted_ms,
            started_ms: self.started_ms,
            finished_ms: self.finished_ms,
            cpu_ns: self.cpu_ns,
            wall_ns: self.wall_ns,
            routing: self.routing,
            waiting,
        }
    }
}

/// Why a new job runs on its model.
fn routing(plan: &JobPlan) -> Routing {
    match plan.choice {
        ModelChoice::Auto => Routing::Probing {
            probes: AUTO_PROBES.min(plan.tasks as u32),
        },
        ModelChoice::ByKind => Routing::ByKind {
            kind: plan.kind,
            model: plan.model,
        },
        ModelChoice::Forced => Routing::Forced,
    }
}

/// The user-facing name of a reduction.
fn reduce_name(r: JobReduce) -> &'static str {
    match r {
        JobReduce::None => "none",
        JobReduce::Sum => "sum",
        JobReduce::Count => "count",
        JobReduce::Min => "min",
        JobReduce::Max => "max",
        JobReduce::Concat => "concat",
    }
}
