//! The scheduling core: a pure state machine (no tokio, no tonic, no clock,
//! no wire types). Events come in as method calls carrying the current time
//! in milliseconds; what the I/O layer must do comes out as [`Action`]s from
//! [`Scheduler::take_actions`], and the jobs whose status changed from
//! [`Scheduler::take_dirty_jobs`]. What it reports is in its own types
//! (`status.rs`); the actor translates to and from the protocol.
//!
//! Invariants (checked by the unit and property tests in `tests.rs`):
//! - every task of a job is, at any time, exactly one of: never issued
//!   (`index >= next_fresh`), queued for retry, leased to one live worker, done,
//!   or (when the job ended) abandoned;
//! - a result counts only if it echoes the task's current lease (same worker,
//!   same attempt); anything else is dropped and counted as late, so a result is
//!   recorded exactly once however many times the task ran;
//! - a worker's `in_flight[model]` is what it was assigned minus the outcomes it
//!   returned; it never exceeds the credits it announced.

pub mod counters;
mod job;
mod outputs;
mod status;
mod worker;

#[cfg(test)]
mod tests;

use std::collections::hash_map::Entry;
use std::collections::{BTreeMap, BTreeSet};

use brigade_proto::Output;
use brigade_proto::{PerModel, SlotModel};

use crate::admission::JobPlan;
use counters::{Counters, LossCause};
pub use job::{Job, RestoredJob};
pub use status::{
    ClusterView, JobFailure, JobState, JobView, ProbeVerdict, Routing, TaskFailure, TaskStatus,
    WaitingReason, WorkerView,
};
pub use worker::{SlotCounts, WorkerHello, WorkerState};

pub type JobId = u64;
pub type WorkerId = u64;

/// One task handed to a worker (its input comes from the job's grid).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TaskLease {
    pub index: u64,
    pub attempt: u32,
}

/// A task's outcome as reported by a worker.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outcome {
    pub job: JobId,
    pub index: u64,
    pub attempt: u32,
    /// The slot model it ran on (`None`: the worker named none we know).
    pub model: Option<SlotModel>,
    pub status: TaskStatus,
    pub value: Output,
    pub error: String,
    pub cpu_ns: u64,
    pub wall_ns: u64,
    /// Of `wall_ns`, time the task was ready but waited for a CPU.
    pub ready_ns: u64,
}

/// How a recorded result's task ran.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RunInfo {
    /// The lease epoch that made it: 1 for a first run.
    pub attempts: u32,
    /// 0: not known (a result stored before this was kept).
    pub worker: WorkerId,
    /// `None`: not known (as for `worker`).
    pub model: Option<SlotModel>,
    pub cpu_ns: u64,
    pub wall_ns: u64,
    /// When the coordinator recorded it, in µs since the Unix epoch (0:
    /// not known). In memory it is kept per batch, not per task
    /// (`sched/outputs.rs`), and read back in completion order only.
    pub ended_us: u64,
}

/// What recording a worker's batch gives back to the worker: one credit
/// per outcome, and its count of done tasks.
#[derive(Debug, Default)]
struct Returned {
    credits: PerModel<u32>,
    tasks_done: u64,
}

/// A result that was just recorded (for the durable store).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Recorded {
    pub job: JobId,
    pub index: u64,
    pub value: Output,
    pub run: RunInfo,
    /// Its place in the order the job's results were recorded (0 first).
    pub seq: u64,
}

/// A done task as clients read it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResultRow {
    pub index: u64,
    pub value: Output,
    pub run: RunInfo,
}

/// What the I/O layer must do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Send these tasks of `job` to `worker`.
    Assign {
        worker: WorkerId,
        job: JobId,
        model: SlotModel,
        tasks: Vec<TaskLease>,
    },
    /// Tell `worker` to stop the tasks of `job` it holds (they no longer count).
    Cancel { worker: WorkerId, job: JobId },
    /// Close `worker`'s link: it missed its heartbeats.
    Disconnect { worker: WorkerId, reason: String },
}

/// Tunables of the core.
#[derive(Debug, Clone, Copy)]
pub struct SchedConfig {
    /// A worker silent for this long loses its leases.
    pub lease_timeout_ms: u64,
    /// At most this many tasks per `Assign` action.
    pub max_batch: usize,
    /// Hand every recorded result to [`Scheduler::take_recorded`] (the store
    /// persists and serves them) instead of keeping task values in memory.
    pub log_results: bool,
    /// Fail jobs that waited this long with no worker offering their model's
    /// slots; `None`: they wait (visibly) for as long as it takes.
    pub fail_if_no_workers_ms: Option<u64>,
    /// A task on thread or async slots fails once this many workers were
    /// lost while they held it (0: never).
    pub max_worker_losses: u32,
}

/// Workers a task may outlive on thread or async slots before it is taken
/// for the cause. Losing a worker also returns every task it had queued, not
/// only the ones running, so the limit leaves room for bad luck: in the
/// chaos suite (20 SIGKILLs in one job) a limit of 2 failed one run in nine;
/// Dask's `allowed-failures` is 3 and HyperQueue's crash limit 5, but both
/// count fewer tasks per loss.
pub const DEFAULT_MAX_WORKER_LOSSES: u32 = 10;

impl Default for SchedConfig {
    fn default() -> Self {
        SchedConfig {
            lease_timeout_ms: 3_000,
            max_batch: 4_096,
            log_results: false,
            fail_if_no_workers_ms: None,
            max_worker_losses: DEFAULT_MAX_WORKER_LOSSES,
        }
    }
}

/// Why a request about a job could not be served.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum JobError {
    #[error("no job with id {0}")]
    NotFound(JobId),
}

/// The scheduling core. See the module docs for its invariants.
#[derive(Debug)]
pub struct Scheduler {
    config: SchedConfig,
    jobs: BTreeMap<JobId, Job>,
    workers: BTreeMap<WorkerId, WorkerState>,
    /// Jobs that may have tasks to hand out, per model, in submission order.
    runnable: PerModel<BTreeSet<JobId>>,
    next_job: JobId,
    next_worker: WorkerId,
    /// Rotates the first worker considered by `dispatch`, so no worker is favoured.
    rotation: usize,
    actions: Vec<Action>,
    dirty: BTreeSet<JobId>,
    recorded: Vec<Recorded>,
    failures: Vec<(JobId, u64, TaskFailure)>,
    /// Per model: since when jobs have waited with no worker of that model.
    no_workers_since: PerModel<Option<u64>>,
    /// No worker expires before this (`None`: no worker): exact after each
    /// expiry pass, and a lower bound in between, since hearing from a
    /// worker only moves its deadline later. A message costs no pass over
    /// every worker.
    expiry_floor: Option<u64>,
    counters: Counters,
}

impl Scheduler {
    pub fn new(config: SchedConfig) -> Self {
        Scheduler {
            config,
            jobs: BTreeMap::new(),
            workers: BTreeMap::new(),
            runnable: Default::default(),
            next_job: 1,
            next_worker: 1,
            rotation: 0,
            actions: Vec::new(),
            dirty: BTreeSet::new(),
            recorded: Vec::new(),
            failures: Vec::new(),
            no_workers_since: PerModel::default(),
            expiry_floor: None,
            counters: Counters::default(),
        }
    }

    pub fn config(&self) -> &SchedConfig {
        &self.config
    }

    // ---- events ----

    /// Accepts an admitted job and queues all its tasks.
    pub fn submit(&mut self, plan: JobPlan, now_ms: u64) -> JobId {
        let id = self.submit_held(plan, now_ms);
        self.release(id);
        id
    }

    /// Accepts an admitted job but assigns none of its tasks until
    /// [`Self::release`]: with a state file, a job runs only once it is
    /// durable (one whose commit fails is cancelled, never having run).
    pub fn submit_held(&mut self, plan: JobPlan, now_ms: u64) -> JobId {
        let id = self.next_job;
        self.next_job += 1;
        let keep_values = !self.config.log_results;
        self.jobs
            .insert(id, Job::new(id, plan, now_ms, keep_values));
        self.dirty.insert(id);
        id
    }

    /// Lets a held job's tasks be assigned (nothing if it has ended).
    pub fn release(&mut self, id: JobId) {
        if let Some(job) = self.jobs.get(&id) {
            if !job.is_terminal() && job.has_queued() {
                self.runnable[job.model()].insert(id);
            }
        }
    }

    /// Registers a worker; it may be assigned tasks up to its credits.
    /// Ids up to `max` were used before (by a run of the coordinator on the
    /// same state file): new workers get ids above it.
    pub fn reserve_worker_ids(&mut self, max: WorkerId) {
        self.next_worker = self.next_worker.max(max + 1);
    }

    /// New jobs get ids above `max` (the highest id of a purged job).
    pub fn reserve_job_ids(&mut self, max: JobId) {
        self.next_job = self.next_job.max(max + 1);
    }

    /// Jobs that ended: (id, owner, when it ended), in id order.
    pub fn ended_jobs(&self) -> impl Iterator<Item = (JobId, &str, u64)> {
        self.jobs.values().filter(|j| j.is_terminal()).map(|j| {
            let v = j.view(None);
            (v.id, v.plan.owner.as_str(), v.finished_ms)
        })
    }

    /// Forgets an ended job (its status and results): true if it was one.
    /// A job still queued or running is kept. Its id is never given again.
    pub fn forget(&mut self, id: JobId) -> bool {
        if !self.jobs.get(&id).is_some_and(Job::is_terminal) {
            return false;
        }
        self.jobs.remove(&id);
        self.dirty.remove(&id);
        for model in SlotModel::ALL {
            self.runnable[model].remove(&id);
        }
        true
    }

    pub fn worker_joined(&mut self, hello: WorkerHello, now_ms: u64) -> WorkerId {
        let id = self.next_worker;
        self.next_worker += 1;
        self.workers.insert(id, WorkerState::new(id, hello, now_ms));
        let due = self.deadline(now_ms);
        self.expiry_floor = Some(self.expiry_floor.map_or(due, |f| f.min(due)));
        id
    }

    /// Any message from a worker proves it alive.
    pub fn worker_seen(&mut self, worker: WorkerId, now_ms: u64) {
        if let Some(w) = self.workers.get_mut(&worker) {
            w.last_seen_ms = now_ms;
        }
    }

    /// The worker resizes its credit windows (never below its slot counts).
    pub fn worker_credits(&mut self, worker: WorkerId, credits: SlotCounts) {
        if let Some(w) = self.workers.get_mut(&worker) {
            w.set_credits(credits);
        }
    }

    /// The worker takes no new tasks; its leased ones run to completion.
    pub fn worker_draining(&mut self, worker: WorkerId) {
        if let Some(w) = self.workers.get_mut(&worker) {
            w.draining = true;
        }
    }

    /// The worker is gone (stream closed or heartbeats missed): every task it
    /// held goes back to the queue without counting as a failed attempt,
    /// except that tasks on thread and async slots count the loss and fail
    /// at `max_worker_losses` (see [`SchedConfig`]).
    pub fn worker_lost(&mut self, worker: WorkerId, now_ms: u64) {
        self.lose_worker(worker, LossCause::Disconnected, now_ms);
    }

    fn lose_worker(&mut self, worker: WorkerId, cause: LossCause, now_ms: u64) {
        if self.workers.remove(&worker).is_none() {
            return;
        }
        let mut leases = 0;
        let max_losses = self.config.max_worker_losses;
        // Leases are found through the jobs rather than a per-worker set:
        // keeping that set cost two hash operations per task, a loss costs
        // one pass over the leases of the jobs that have any.
        let mut ended = Vec::new();
        for (&job_id, job) in &mut self.jobs {
            if job.leases.is_empty() {
                continue;
            }
            let failed = job.tallies().1;
            let (returned, job_ended) = job.requeue_leases_of(worker, max_losses, now_ms);
            if returned == 0 {
                continue;
            }
            leases += returned as u64;
            // At `max_worker_losses` a task fails for good here.
            self.counters.tasks_failed[job.model()] += job.tallies().1 - failed;
            job.hand_over_failures(self.config.log_results.then_some(&mut self.failures));
            self.dirty.insert(job_id);
            if job_ended {
                ended.push(job_id);
            } else {
                self.runnable[job.model()].insert(job_id);
            }
        }
        for job_id in ended {
            self.end_job_leases(job_id);
        }
        self.counters.worker_lost(cause, leases);
    }

    /// Expires workers silent for longer than the lease timeout, and fails
    /// jobs that waited too long for a model no worker offers.
    pub fn tick(&mut self, now_ms: u64) {
        self.expire_workers(now_ms);
        if let Some(limit) = self.config.fail_if_no_workers_ms {
            self.fail_unserved_jobs(now_ms, limit);
        }
    }

    fn fail_unserved_jobs(&mut self, now_ms: u64, limit: u64) {
        for model in SlotModel::ALL {
            let served = self.workers.values().any(|w| w.serves(model));
            if served || self.runnable[model].is_empty() {
                self.no_workers_since[model] = None;
                continue;
            }
            let since = *self.no_workers_since[model].get_or_insert(now_ms);
            if now_ms - since < limit {
                continue;
            }
            for job_id in std::mem::take(&mut self.runnable[model]) {
                let Some(job) = self.jobs.get_mut(&job_id) else {
                    continue;
                };
                let failure = JobFailure::NoWorkers {
                    model,
                    waited_ms: now_ms - since,
                };
                job.finish(JobState::Failed, Some(failure), now_ms);
                self.dirty.insert(job_id);
                self.end_job_leases(job_id);
            }
            self.no_workers_since[model] = None;
        }
    }

    /// No worker expires before this `now_ms` if it stays silent: the first
    /// time at which [`tick`](Self::tick) may find one over the lease
    /// timeout. The actor wakes then; the tick expires whoever is due and
    /// makes this the exact earliest deadline again (it is earlier only
    /// when that worker was heard from since), so detection is never later
    /// than the lease timeout after a worker's last message.
    pub fn next_expiry_ms(&self) -> Option<u64> {
        self.expiry_floor
    }

    /// When a worker last heard from at `last_seen_ms` expires.
    fn deadline(&self, last_seen_ms: u64) -> u64 {
        last_seen_ms
            .saturating_add(self.config.lease_timeout_ms)
            .saturating_add(1)
    }

    fn expire_workers(&mut self, now_ms: u64) {
        let timeout = self.config.lease_timeout_ms;
        let expired: Vec<(WorkerId, u64)> = self
            .workers
            .values()
            .filter(|w| now_ms.saturating_sub(w.last_seen_ms) > timeout)
            .map(|w| (w.id, now_ms - w.last_seen_ms))
            .collect();
        self.expiry_floor = self
            .workers
            .values()
            .filter(|w| now_ms.saturating_sub(w.last_seen_ms) <= timeout)
            .map(|w| self.deadline(w.last_seen_ms))
            .min();
        for (id, silent_ms) in expired {
            self.lose_worker(id, LossCause::Silent, now_ms);
            self.actions.push(Action::Disconnect {
                worker: id,
                reason: format!(
                    "no heartbeat for {silent_ms} ms (lease timeout {timeout} ms); leases revoked"
                ),
            });
        }
    }

    /// Records the outcomes a worker reported. Each outcome returns one credit
    /// of its model; it counts toward its task only if it matches the task's
    /// current lease held by this worker.
    pub fn worker_outcomes(
        &mut self,
        worker: WorkerId,
        outcomes: impl IntoIterator<Item = Outcome>,
        now_ms: u64,
    ) {
        self.worker_outcomes_at(worker, outcomes, now_ms * 1_000);
    }

    /// [`Self::worker_outcomes`] at `now_us` (µs; the results recorded
    /// say when).
    pub fn worker_outcomes_at(
        &mut self,
        worker: WorkerId,
        outcomes: impl IntoIterator<Item = Outcome>,
        now_us: u64,
    ) {
        let mut outcomes = outcomes.into_iter().peekable();
        let Some(mut returned) = self.outcomes_from(worker, now_us / 1_000) else {
            return self.late_outcomes(outcomes);
        };
        while let Some(job_id) = outcomes.peek().map(|o| o.job) {
            let mut of_job = std::iter::from_fn(|| outcomes.next_if(|o| o.job == job_id));
            self.job_outcomes(worker, job_id, &mut of_job, now_us, &mut returned);
        }
        self.credits_returned(worker, returned);
    }

    /// [`Self::worker_outcomes`] for outcomes that are all of one job (a
    /// batch of OK results), without looking at each one's job.
    pub fn worker_job_outcomes(
        &mut self,
        worker: WorkerId,
        job_id: JobId,
        outcomes: impl IntoIterator<Item = Outcome>,
        now_ms: u64,
    ) {
        self.worker_job_outcomes_at(worker, job_id, outcomes, now_ms * 1_000);
    }

    /// [`Self::worker_job_outcomes`] at `now_us` (µs).
    pub fn worker_job_outcomes_at(
        &mut self,
        worker: WorkerId,
        job_id: JobId,
        outcomes: impl IntoIterator<Item = Outcome>,
        now_us: u64,
    ) {
        let mut outcomes = outcomes.into_iter();
        let Some(mut returned) = self.outcomes_from(worker, now_us / 1_000) else {
            return self.late_outcomes(outcomes);
        };
        while self.job_outcomes(worker, job_id, &mut outcomes, now_us, &mut returned) {}
        self.credits_returned(worker, returned);
    }

    /// Notes that `worker` was heard from; `None` for a worker already
    /// dropped.
    fn outcomes_from(&mut self, worker: WorkerId, now_ms: u64) -> Option<Returned> {
        let w = self.workers.get_mut(&worker)?;
        w.last_seen_ms = now_ms;
        Some(Returned::default())
    }

    /// Outcomes from a worker already dropped: its results are late by
    /// definition.
    fn late_outcomes(&mut self, outcomes: impl Iterator<Item = Outcome>) {
        let n = outcomes.filter(|o| o.status == TaskStatus::Ok).count() as u64;
        self.counters.late_results_dropped += n;
    }

    /// Applies what recording a batch returned to its worker.
    fn credits_returned(&mut self, worker: WorkerId, returned: Returned) {
        let w = self
            .workers
            .get_mut(&worker)
            .expect("recording outcomes removes no worker");
        for model in SlotModel::ALL {
            w.in_flight[model] = w.in_flight[model].saturating_sub(returned.credits[model]);
        }
        w.tasks_done += returned.tasks_done;
    }

    /// Records outcomes of job `job_id` until they run out or the job ends:
    /// the job is found, marked dirty and runnable once, not per outcome.
    /// True when it stopped because the job ended and more may follow
    /// (they find no lease: late).
    fn job_outcomes(
        &mut self,
        worker: WorkerId,
        job_id: JobId,
        outcomes: &mut impl Iterator<Item = Outcome>,
        now_us: u64,
        returned: &mut Returned,
    ) -> bool {
        let now_ms = now_us / 1_000;
        let Some(job) = self.jobs.get_mut(&job_id) else {
            for o in outcomes {
                if let Some(model) = o.model {
                    returned.credits[model] += 1;
                }
                if o.status == TaskStatus::Ok {
                    self.counters.late_results_dropped += 1;
                }
            }
            return false;
        };
        let mut dirty = false;
        let mut ended = false;
        for mut o in outcomes.by_ref() {
            debug_assert_eq!(o.job, job_id);
            if let Some(model) = o.model {
                returned.credits[model] += 1;
            }
            let lease = match job.leases.entry(o.index) {
                Entry::Occupied(l) if l.get().worker == worker && l.get().attempt == o.attempt => {
                    l.remove()
                }
                _ => {
                    // A stale lease. Its result is dropped and counted; a
                    // stale failure or hand-back only returns its credit.
                    if o.status == TaskStatus::Ok {
                        job.late_results_dropped += 1;
                        self.counters.late_results_dropped += 1;
                        dirty = true;
                    }
                    continue;
                }
            };
            dirty = true;
            let ok = o.status == TaskStatus::Ok;
            returned.tasks_done += u64::from(ok);
            let run = RunInfo {
                attempts: o.attempt,
                worker,
                model: o.model.or(Some(job.model())),
                cpu_ns: o.cpu_ns,
                wall_ns: o.wall_ns,
                ended_us: now_us,
            };
            if self.config.log_results && ok && job.accepts(&o.value) {
                self.recorded.push(Recorded {
                    job: job_id,
                    index: o.index,
                    value: o.value.clone(),
                    run,
                    seq: job.done_count(),
                });
            }
            let model = run.model.unwrap_or(job.model());
            let before = job.tallies();
            ended = job.record(&mut o, lease, run, now_ms);
            self.counters
                .outcome(model, before, job.tallies(), o.wall_ns);
            if let Some(old) = job.rerouted_from.take() {
                // `--model auto` decided: the job moves to its model's queue.
                self.runnable[old].remove(&job_id);
            }
            if ended {
                break;
            }
        }
        job.hand_over_failures(self.config.log_results.then_some(&mut self.failures));
        let (model, has_queued) = (job.model(), job.has_queued());
        if dirty {
            self.dirty.insert(job_id);
        }
        if ended {
            self.end_job_leases(job_id);
        } else if has_queued {
            self.runnable[model].insert(job_id);
        }
        ended
    }

    /// Cancels a job: queued tasks are dropped, workers holding its tasks are
    /// told to stop them, late results are ignored.
    pub fn cancel(&mut self, job_id: JobId, now_ms: u64) -> Result<(), JobError> {
        let job = self
            .jobs
            .get_mut(&job_id)
            .ok_or(JobError::NotFound(job_id))?;
        if job.is_terminal() {
            return Ok(());
        }
        job.finish(JobState::Cancelled, None, now_ms);
        self.dirty.insert(job_id);
        self.end_job_leases(job_id);
        Ok(())
    }

    /// Hands queued tasks to workers with free credits: first up to each
    /// worker's idle slots, then prefetch in rounds (per worker per round:
    /// one task per slot, or up to a quarter of a deep window but no more
    /// than an even share of the queue), so a short queue is spread evenly
    /// instead of landing on whichever worker comes first.
    pub fn dispatch(&mut self, now_ms: u64) {
        // Most rounds (a heartbeat, a status read) have nothing to hand out:
        // no pass over the workers for them.
        if self.workers.is_empty() || self.runnable.values().all(BTreeSet::is_empty) {
            return;
        }
        self.rotation = self.rotation.wrapping_add(1);
        let workers = self.workers.len() as u64;
        for model in SlotModel::ALL {
            if self.runnable[model].is_empty() {
                continue;
            }
            // Only workers with a free credit can take anything: one pass to
            // find them, then the rounds visit those alone (with thousands
            // of workers most rounds find a few).
            let ids: Vec<WorkerId> = self
                .workers
                .values()
                .filter(|w| !w.draining && w.free_credits(model) > 0)
                .map(|w| w.id)
                .collect();
            if ids.is_empty() {
                continue;
            }
            let start = self.rotation % ids.len();
            let mut prefetch = false;
            while !self.runnable[model].is_empty() {
                let mut given = 0;
                // An even share (over every worker) of what is queued, so no
                // worker's deep window swallows a short queue.
                let queued: u64 = self.runnable[model]
                    .iter()
                    .filter_map(|j| self.jobs.get(j))
                    .map(Job::queued)
                    .sum();
                let share = queued.div_ceil(workers) as usize;
                for k in 0..ids.len() {
                    let wid = ids[(start + k) % ids.len()];
                    given += self.fill_worker(wid, model, prefetch, share, now_ms);
                    if self.runnable[model].is_empty() {
                        break;
                    }
                }
                if given == 0 {
                    if prefetch {
                        break;
                    }
                    prefetch = true;
                }
            }
        }
    }

    /// Gives `wid` up to its idle slots (or, with `prefetch`, one round more
    /// within its credits). Returns how many tasks it got.
    fn fill_worker(
        &mut self,
        wid: WorkerId,
        model: SlotModel,
        prefetch: bool,
        share: usize,
        now_ms: u64,
    ) -> usize {
        let max_batch = self.config.max_batch;
        let Some(w) = self.workers.get(&wid) else {
            return 0;
        };
        if w.draining {
            return 0;
        }
        let mut budget = if prefetch {
            // A round is a slot's worth, or more for a deep window (short
            // tasks travel in big batches), but no more than an even share.
            let deep = (w.credits[model] as usize / 4).min(share);
            let round = (w.slots[model] as usize).max(deep);
            w.free_credits(model).min(round.max(1))
        } else {
            w.idle_slots(model)
        };
        let mut given = 0;
        // Jobs of workloads this worker does not run are passed over (a
        // worker offering every workload takes the first, as before).
        let mut passed: Option<JobId> = None;
        while budget > 0 {
            let next = match passed {
                None => self.runnable[model].first(),
                Some(after) => self.runnable[model]
                    .range((std::ops::Bound::Excluded(after), std::ops::Bound::Unbounded))
                    .next(),
            };
            let Some(&job_id) = next else {
                break;
            };
            let offered = match (self.workers.get(&wid), self.jobs.get(&job_id)) {
                (Some(w), Some(j)) => w.offers(&j.plan.spec.workload),
                _ => false,
            };
            if !offered {
                passed = Some(job_id);
                continue;
            }
            let w = self.workers.get_mut(&wid).expect("checked above");
            let job = self.jobs.get_mut(&job_id).expect("runnable jobs exist");
            let tasks = job.lease_next(wid, budget.min(max_batch), now_ms);
            if !job.has_queued() || job.at_in_flight_cap() {
                self.runnable[model].remove(&job_id);
            }
            if tasks.is_empty() {
                continue;
            }
            budget -= tasks.len();
            given += tasks.len();
            w.in_flight[model] += tasks.len() as u32;
            self.dirty.insert(job_id);
            self.actions.push(Action::Assign {
                worker: wid,
                job: job_id,
                model: job.plan.model,
                tasks,
            });
        }
        given
    }

    fn end_job_leases(&mut self, job_id: JobId) {
        let Some(job) = self.jobs.get_mut(&job_id) else {
            return;
        };
        self.runnable[job.model()].remove(&job_id);
        let holders: BTreeSet<WorkerId> = std::mem::take(&mut job.leases)
            .into_values()
            .map(|lease| lease.worker)
            .filter(|w| self.workers.contains_key(w))
            .collect();
        for worker in holders {
            self.actions.push(Action::Cancel {
                worker,
                job: job_id,
            });
        }
    }

    /// Re-creates a job read back from the store under its old id.
    pub fn restore(&mut self, id: JobId, plan: JobPlan, stored: RestoredJob<'_>) {
        let job = Job::restore(id, plan, stored, !self.config.log_results);
        if job.has_queued() {
            self.runnable[job.model()].insert(id);
        }
        self.next_job = self.next_job.max(id + 1);
        self.jobs.insert(id, job);
    }

    // ---- outputs ----

    /// Results recorded since the last call (only with `log_results`).
    pub fn take_recorded(&mut self) -> Vec<Recorded> {
        std::mem::take(&mut self.recorded)
    }

    /// Tasks that failed for good since the last call, with their errors
    /// (only with `log_results`).
    pub fn take_failures(&mut self) -> Vec<(JobId, u64, TaskFailure)> {
        std::mem::take(&mut self.failures)
    }

    /// Actions produced since the last call, in order.
    pub fn take_actions(&mut self) -> Vec<Action> {
        std::mem::take(&mut self.actions)
    }

    /// Jobs whose status changed since the last call.
    pub fn take_dirty_jobs(&mut self) -> BTreeSet<JobId> {
        std::mem::take(&mut self.dirty)
    }

    // ---- queries ----

    pub fn job(&self, id: JobId) -> Result<&Job, JobError> {
        self.jobs.get(&id).ok_or(JobError::NotFound(id))
    }

    pub fn jobs(&self) -> impl DoubleEndedIterator<Item = &Job> {
        self.jobs.values()
    }

    /// The job as the core sees it, with a waiting reason when its tasks
    /// are queued but no worker has slots of its model.
    pub fn job_view(&self, id: JobId) -> Result<JobView<'_>, JobError> {
        let job = self.job(id)?;
        let model = job.model();
        let queued = !job.is_terminal() && job.has_queued();
        let workload = &job.plan.spec.workload;
        let waiting = if !queued {
            None
        } else if !self.workers.values().any(|w| w.serves(model)) {
            Some(WaitingReason::NoWorkersWith(model))
        } else if !self
            .workers
            .values()
            .any(|w| w.serves(model) && w.offers(workload))
        {
            Some(WaitingReason::NoWorkerOffers)
        } else {
            None
        };
        Ok(job.view(waiting))
    }

    pub fn workers(&self) -> Vec<WorkerView> {
        self.workers.values().map(WorkerState::view).collect()
    }

    /// What the core counted since it started (for the metrics).
    pub fn counters(&self) -> &Counters {
        &self.counters
    }

    /// Every live worker's state (slots, credits, tasks in flight).
    pub fn worker_states(&self) -> impl Iterator<Item = &WorkerState> {
        self.workers.values()
    }

    pub fn status(&self) -> ClusterView {
        let mut s = ClusterView {
            workers: self.workers.len() as u32,
            jobs_total: self.jobs.len() as u32,
            late_results_dropped: self.counters.late_results_dropped,
            ..Default::default()
        };
        for w in self.workers.values() {
            for (model, n) in w.slots.iter() {
                s.slots[model] += n;
            }
        }
        for j in self.jobs.values().filter(|j| !j.is_terminal()) {
            s.jobs_active += 1;
            s.tasks_queued += j.queued();
            s.tasks_running += j.leases.len() as u64;
        }
        s
    }
}
