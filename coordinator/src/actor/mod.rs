//! The coordinator's single owner of state: one tokio task that holds the
//! [`Scheduler`], takes [`Request`]s from the gRPC handlers, feeds them to the
//! core in batches, and carries out the core's [`Action`](crate::sched::Action)s
//! (task batches and cancellations down worker streams, status updates to
//! watchers).
//!
//! - [`command`]: the request vocabulary and how requests are answered;
//! - [`commit`]: the group-commit ledger (what the store must write next and
//!   who waits for it);
//! - [`view`]: what clients are shown (job, worker and cluster status);
//! - [`link`]: worker links, wire messages ⇄ scheduler events and actions;
//! - [`observe`]: the metrics and dashboard snapshots.
//!
//! This file is the run loop that ties them together.
//!
//! Channels to workers are unbounded on purpose: the core never assigns a
//! worker more tasks than the credits it announced, so what waits in a
//! worker's channel is bounded by its credits.

mod command;
mod commit;
#[cfg(test)]
mod damage_table;
pub(crate) mod events;
mod link;
mod observe;
mod view;

use std::collections::{HashMap, HashSet};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use brigade_proto::catalog::Catalog;
use brigade_proto::v1::{JobInfo, JobSpec};
use tokio::sync::{mpsc, watch};
use tonic::Status;

use crate::admission::{
    admit, admit_as, AdmissionLimits, JobKind, JobPlan, JobReduce, ModelChoice,
};
use crate::auth::AuthFile;
use crate::inputs::Inputs;
use crate::observe::dashboard::Throughput;
use crate::sched::{JobId, RestoredJob, SchedConfig, Scheduler, WorkerId};
use crate::store::{JobEnd, OpenOptions, Store, StoreError, StoredJob};
use command::Ack;
#[cfg(test)]
use command::Reply;
pub(crate) use command::Request;
use commit::{CommitLedger, Settled};
pub(crate) use link::worker_hello;
use link::LinkOut;
pub(crate) use view::{results_chunk, RESULTS_CHUNK_BYTES};

/// Coordinator tunables.
#[derive(Debug, Clone)]
pub struct CoordinatorConfig {
    /// A worker silent for this long loses its leases.
    pub lease_timeout: Duration,
    /// How often workers must send a heartbeat.
    pub heartbeat_interval: Duration,
    pub limits: AdmissionLimits,
    /// Most tasks in one batch sent to a worker.
    pub max_batch: usize,
    /// The durable state file; `None` keeps everything in memory.
    pub state: Option<PathBuf>,
    /// `--state-recover`: start from what a damaged state file still holds
    /// (a copy of it kept beside it) instead of refusing it.
    pub state_recover: bool,
    /// Fail jobs that wait this long for a model no worker offers.
    pub fail_if_no_workers: Option<Duration>,
    /// Fail a task on thread or async slots once this many workers were
    /// lost while holding it (0: never).
    pub max_worker_losses: u32,
    /// The workloads jobs may name, with their definitions (the binary
    /// preloads brigade's built-in ones).
    pub workloads: Catalog,
    /// The tokens callers must present (`--auth-file`); `None` lets every
    /// caller do everything, as one anonymous owner.
    pub auth: Option<Arc<AuthFile>>,
    /// Serve TLS (`--tls-cert/--tls-key`, and `--tls-client-ca` to require
    /// client certificates); `None` serves plaintext.
    pub tls: Option<ServerTls>,
    /// How long ended jobs are kept (`--keep-finished`); `None`: for ever.
    pub keep_finished: Option<Retention>,
    /// Connections one IP address may have open at once (0: no limit).
    pub max_connections_per_peer: usize,
}

/// Which ended jobs a coordinator keeps; the others are purged (their
/// status, results and failures forgotten, in the state file too).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Retention {
    /// Those that ended less than this long ago.
    For(Duration),
    /// The newest this many (by when they ended).
    Newest(u64),
}

/// A coordinator's TLS identity, PEM-encoded, and the CA its clients'
/// certificates must chain to (mTLS), if any.
#[derive(Clone)]
pub struct ServerTls {
    pub cert_pem: Vec<u8>,
    pub key_pem: Vec<u8>,
    pub client_ca_pem: Option<Vec<u8>>,
}

impl std::fmt::Debug for ServerTls {
    // The private key stays out of logs.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServerTls")
            .field("client_ca", &self.client_ca_pem.is_some())
            .finish_non_exhaustive()
    }
}

impl CoordinatorConfig {
    /// Default [`Self::lease_timeout`].
    pub const DEFAULT_LEASE_TIMEOUT: Duration = Duration::from_secs(3);
    /// Default [`Self::heartbeat_interval`].
    pub const DEFAULT_HEARTBEAT_INTERVAL: Duration = Duration::from_millis(500);
    /// Default [`Self::max_batch`].
    pub const DEFAULT_MAX_BATCH: usize = 4_096;
    /// Default [`Self::max_worker_losses`]: generous, since losing a worker
    /// returns every task it had queued, not only the running ones.
    pub const DEFAULT_MAX_WORKER_LOSSES: u32 = crate::sched::DEFAULT_MAX_WORKER_LOSSES;
    /// Default [`Self::max_connections_per_peer`]: room for a host's many
    /// workers and clients; far below the process's file limit.
    pub const DEFAULT_MAX_CONNECTIONS_PER_PEER: usize = 1_024;
}

impl CoordinatorConfig {
    /// How often the actor ticks: expiry, heartbeats, the throughput sample
    /// (a quarter of the lease timeout, 20–500 ms).
    pub(crate) fn tick_every(&self) -> Duration {
        (self.lease_timeout / 4).clamp(Duration::from_millis(20), Duration::from_millis(500))
    }

    /// A link that carried nothing down for this long gets a heartbeat at
    /// the next tick: every k ticks with k·tick ≤ lease/3 (half a tick less,
    /// so a tick that comes a millisecond early still counts), so a worker
    /// hears from the coordinator at least three times per lease timeout
    /// (at the defaults every second, not every tick) and a busy link,
    /// which its assignments keep alive, gets none.
    pub(crate) fn heartbeat_after_ms(&self) -> u64 {
        let tick = self.tick_every().as_millis() as u64;
        let every = (self.lease_timeout.as_millis() as u64 / 3 / tick).max(1);
        every * tick - tick / 2
    }
}

impl Default for CoordinatorConfig {
    fn default() -> Self {
        CoordinatorConfig {
            lease_timeout: Self::DEFAULT_LEASE_TIMEOUT,
            heartbeat_interval: Self::DEFAULT_HEARTBEAT_INTERVAL,
            limits: AdmissionLimits::default(),
            max_batch: Self::DEFAULT_MAX_BATCH,
            state: None,
            state_recover: false,
            fail_if_no_workers: None,
            max_worker_losses: Self::DEFAULT_MAX_WORKER_LOSSES,
            workloads: Catalog::default(),
            auth: None,
            tls: None,
            keep_finished: None,
            max_connections_per_peer: Self::DEFAULT_MAX_CONNECTIONS_PER_PEER,
        }
    }
}

/// Milliseconds since the Unix epoch, advancing monotonically from start.
#[derive(Debug, Clone, Copy)]
struct Clock {
    origin: Instant,
    origin_unix_ms: u64,
}

impl Clock {
    fn new() -> Self {
        Clock {
            origin: Instant::now(),
            origin_unix_ms: SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map(|d| d.as_millis() as u64)
                .unwrap_or(0),
        }
    }

    fn now_ms(&self) -> u64 {
        self.origin_unix_ms + self.origin.elapsed().as_millis() as u64
    }

    /// [`now_ms`](Self::now_ms) in microseconds: when results are
    /// recorded (a job's timeline).
    fn now_us(&self) -> u64 {
        self.origin_unix_ms * 1_000 + self.origin.elapsed().as_micros() as u64
    }

    /// The instant at which [`now_ms`](Self::now_ms) reaches `ms`.
    fn instant_at(&self, ms: u64) -> tokio::time::Instant {
        let after = Duration::from_millis(ms.saturating_sub(self.origin_unix_ms));
        tokio::time::Instant::from_std(self.origin + after)
    }
}

pub(crate) struct Actor {
    sched: Scheduler,
    config: CoordinatorConfig,
    sinks: HashMap<WorkerId, LinkOut>,
    watchers: HashMap<JobId, watch::Sender<JobInfo>>,
    ended_logged: HashSet<JobId>,
    /// Jobs restored damaged: kept for a look, never purged.
    damaged: HashSet<JobId>,
    clock: Clock,
    ledger: CommitLedger,
    /// The items of inputs jobs that have not ended.
    inputs: HashMap<JobId, Arc<Inputs>>,
    /// Every worker that linked, by id, for the results served from memory
    /// (with a state file, its `workers` table answers).
    worker_names: HashMap<WorkerId, String>,
    /// The jobs that have not ended, with their owners, and how many each
    /// owner has: the `max_active_jobs_per_owner` quota.
    active: ActiveJobs,
    /// Tasks done per second, for the dashboard's chart.
    throughput: Throughput,
    /// Jobs submitted and ended, workers linked and lost (`WatchEvents`).
    events: events::EventLog,
}

/// Counts each owner's jobs that have not ended, and their tasks.
#[derive(Default)]
struct ActiveJobs {
    owners: HashMap<JobId, (String, u64)>,
    counts: HashMap<String, Active>,
}

/// One owner's jobs that have not ended.
#[derive(Debug, Clone, Copy, Default)]
struct Active {
    jobs: u64,
    tasks: u64,
}

impl ActiveJobs {
    fn of(&self, owner: &str) -> Active {
        self.counts.get(owner).copied().unwrap_or_default()
    }

    fn started(&mut self, id: JobId, owner: &str, tasks: u64) {
        if self.owners.insert(id, (owner.to_string(), tasks)).is_none() {
            let n = self.counts.entry(owner.to_string()).or_default();
            n.jobs += 1;
            n.tasks += tasks;
        }
    }

    /// Job `id` ended (again or for the first time: counted once).
    fn ended(&mut self, id: JobId) {
        let Some((owner, tasks)) = self.owners.remove(&id) else {
            return;
        };
        if let Some(n) = self.counts.get_mut(&owner) {
            n.jobs -= 1;
            n.tasks -= tasks;
            if n.jobs == 0 {
                self.counts.remove(&owner);
            }
        }
    }
}

/// Whether a job of `tasks` tasks would take its owner past
/// `max_active_tasks_per_owner` (0: no limit).
fn task_quota_exceeded(limits: &AdmissionLimits, active: Active, tasks: u64) -> bool {
    let quota = limits.max_active_tasks_per_owner;
    quota > 0 && active.tasks.saturating_add(tasks) > quota
}

impl Actor {
    /// Builds the actor, opening the state file (if any) and restoring its
    /// jobs: what was leased is queued again, recorded results stay done.
    pub(crate) fn new(config: CoordinatorConfig) -> Result<Self, StoreError> {
        let options = OpenOptions {
            recover: config.state_recover,
        };
        let store = config
            .state
            .as_deref()
            .map(|p| Store::open_with(p, options))
            .transpose()?;
        let mut actor = Actor {
            sched: Scheduler::new(SchedConfig {
                lease_timeout_ms: config.lease_timeout.as_millis() as u64,
                max_batch: config.max_batch,
                log_results: store.is_some(),
                fail_if_no_workers_ms: config.fail_if_no_workers.map(|d| d.as_millis() as u64),
                max_worker_losses: config.max_worker_losses,
            }),
            config,
            sinks: HashMap::new(),
            watchers: HashMap::new(),
            ended_logged: HashSet::new(),
            damaged: HashSet::new(),
            clock: Clock::new(),
            ledger: CommitLedger::in_memory(),
            inputs: HashMap::new(),
            worker_names: HashMap::new(),
            active: ActiveJobs::default(),
            throughput: Throughput::default(),
            events: events::EventLog::new(),
        };
        if let Some(mut store) = store {
            actor.restore(&mut store)?;
            actor.ledger.start_writer(store)?;
        }
        Ok(actor)
    }

    /// Restores every stored job. A stored job must pass today's
    /// structural admission checks (ranges, chunk, at most
    /// [`MAX_TASKS`](crate::admission::MAX_TASKS) tasks; not today's
    /// configurable limits, which applied when it was admitted) and its
    /// rows must be in range (task indices below its task count; a
    /// succeeded job has every task finished). One that fails stays
    /// visible as a *damaged* job: failed, with an error starting with
    /// [`DAMAGED`] and the reason; nothing of it runs or is served, and it
    /// is never written again (its rows stay as they are, for a look).
    fn restore(&mut self, store: &mut Store) -> Result<(), StoreError> {
        let limits = AdmissionLimits {
            max_tasks_per_job: u64::MAX,
            max_attempts_limit: u32::MAX,
            // A stored spec holds the timeout it was given.
            default_task_timeout_ms: 0,
            ..self.config.limits
        };
        self.sched.reserve_worker_ids(store.max_worker_id()?);
        self.sched.reserve_job_ids(store.purged_up_to()?);
        let (mut resumed, mut ended, mut damaged) = (0, 0, 0);
        for job in store.load()? {
            let def = self.config.workloads.lookup(&job.spec.workload).ok();
            let checked = match &job.damage {
                Some(why) => Err(why.clone()),
                None => admit_as(job.spec.clone(), def, &limits)
                    .map_err(|e| format!("its spec does not pass admission ({e})"))
                    .and_then(|plan| stored_rows_fit(&job, &plan).map(|()| plan)),
            };
            let plan = match checked {
                Ok(p) => JobPlan {
                    owner: job.owner.clone(),
                    ..p
                },
                Err(why) => {
                    tracing::error!(job_id = job.id, reason = %why, "stored job is damaged; shown as failed, not run, its results not served");
                    self.restore_damaged(&job, &why);
                    damaged += 1;
                    continue;
                }
            };
            let tasks = plan.tasks;
            self.sched.restore(
                job.id,
                plan,
                RestoredJob {
                    state: view::stored_state(job.state),
                    error: &job.error,
                    submitted_ms: job.submitted_ms,
                    started_ms: job.started_ms,
                    finished_ms: job.finished_ms,
                    results: &job.results,
                    failures: &job.failures,
                },
            );
            if job.state.is_terminal() {
                self.ended_logged.insert(job.id);
                ended += 1;
            } else {
                self.active.started(job.id, &job.owner, tasks);
                if let Some(inputs) = job.inputs {
                    self.inputs.insert(job.id, Arc::new(inputs));
                }
                resumed += 1;
            }
        }
        // A job whose every result was stored but not its end ends now.
        self.sched.take_dirty_jobs();
        tracing::info!(path = %store.path().display(), resumed, ended, damaged, "state loaded");
        Ok(())
    }

    /// A job that cannot be restored, kept visible: failed, no tasks, the
    /// reason as its error; its id stays taken.
    fn restore_damaged(&mut self, job: &StoredJob, why: &str) {
        let plan = JobPlan {
            spec: job.spec.clone(),
            kind: JobKind::Cpu,
            model: brigade_proto::SlotModel::Thread,
            choice: ModelChoice::Forced,
            reduce: JobReduce::None,
            max_result_bytes: 0,
            max_job_result_bytes: 0,
            tasks: 0,
            max_attempts: 1,
            max_in_flight: None,
            allow_failures: 0,
            fail_fast: false,
            owner: job.owner.clone(),
        };
        let error = format!(
            "{DAMAGED}: {why}; it is not run and its results are not served \
             (its rows are left as they are; see ARCHITECTURE.md, \"The state file\")"
        );
        self.sched.restore(
            job.id,
            plan,
            RestoredJob {
                state: crate::sched::JobState::Failed,
                error: &error,
                submitted_ms: job.submitted_ms,
                started_ms: job.started_ms,
                finished_ms: job.finished_ms.max(job.submitted_ms),
                results: &[],
                failures: &[],
            },
        );
        self.ended_logged.insert(job.id);
        self.damaged.insert(job.id);
    }

    /// Forgets the ended jobs of `owner` (every owner's for `None`) that
    /// ended at least `older_than_ms` before `now`, damaged ones aside
    /// (kept for a look); returns their ids, ascending.
    fn purge(&mut self, owner: Option<&str>, older_than_ms: u64, now: u64) -> Vec<JobId> {
        let ids: Vec<JobId> = self
            .sched
            .ended_jobs()
            .filter(|&(id, job_owner, finished_ms)| {
                owner.is_none_or(|o| o == job_owner)
                    && now.saturating_sub(finished_ms) >= older_than_ms
                    && !self.damaged.contains(&id)
            })
            .map(|(id, ..)| id)
            .collect();
        for &id in &ids {
            self.forget(id);
        }
        ids
    }

    fn forget(&mut self, id: JobId) {
        if self.sched.forget(id) {
            self.ended_logged.remove(&id);
            self.watchers.remove(&id);
            self.inputs.remove(&id);
            self.ledger.purged(id);
        }
    }

    /// `--keep-finished`: purges the ended jobs the retention no longer
    /// keeps (on every tick: a scan of the jobs, a few µs per thousand).
    fn retain(&mut self, now: u64) {
        let purged = match self.config.keep_finished {
            None => return,
            Some(Retention::For(age)) => {
                let age = u64::try_from(age.as_millis()).unwrap_or(u64::MAX);
                self.purge(None, age, now)
            }
            Some(Retention::Newest(keep)) => {
                let mut ended: Vec<(u64, JobId)> = self
                    .sched
                    .ended_jobs()
                    .filter(|(id, ..)| !self.damaged.contains(id))
                    .map(|(id, _, finished_ms)| (finished_ms, id))
                    .collect();
                let over = ended
                    .len()
                    .saturating_sub(usize::try_from(keep).unwrap_or(usize::MAX));
                if over == 0 {
                    return;
                }
                ended.sort_unstable();
                let mut ids: Vec<JobId> = ended[..over].iter().map(|&(_, id)| id).collect();
                ids.sort_unstable();
                for &id in &ids {
                    self.forget(id);
                }
                ids
            }
        };
        if !purged.is_empty() {
            tracing::info!(
                jobs = purged.len(),
                first = purged[0],
                "ended jobs purged (--keep-finished)"
            );
        }
    }

    /// Runs until every sender of `rx` is gone.
    pub(crate) async fn run(mut self, mut rx: mpsc::UnboundedReceiver<Request>) {
        let mut buf = Vec::with_capacity(256);
        loop {
            // Backpressure: while the writer is behind, take no new work
            // (results pile up nowhere; workers wait on their credits).
            let writer_behind = self.ledger.writer_behind();
            let due = if writer_behind {
                None
            } else {
                self.ledger.flush_due()
            };
            // Woken at the next lease deadline itself, not at the next
            // coarse tick: a silent worker is noticed on time.
            let expiry = self
                .sched
                .next_expiry_ms()
                .map(|ms| self.clock.instant_at(ms));
            let received = tokio::select! {
                n = rx.recv_many(&mut buf, 256), if !writer_behind => n,
                () = sleep_until_some(expiry), if !writer_behind => {
                    buf.push(Request::Expire);
                    1
                }
                Some(c) = self.ledger.report() => {
                    self.ledger.committed(c);
                    self.settle();
                    if self.ledger.must_flush_now() {
                        self.flush();
                    }
                    continue;
                }
                () = sleep_until_some(due) => {
                    self.flush();
                    continue;
                }
            };
            if received == 0 {
                break;
            }
            for request in buf.drain(..) {
                self.handle(request);
                // Before the next request can read a job's status: results
                // just recorded are not durable yet, and clients must not
                // count them (a GetJob behind results in the same batch).
                self.note_recorded();
            }
            self.sched.dispatch(self.clock.now_ms());
            self.carry_out();
            self.hold_job_updates();
            self.note_recorded();
            if self.ledger.must_flush_now() {
                self.flush();
            } else {
                self.ledger.flush_soon();
            }
        }
        // Whatever is still unwritten, then wait for the writer to finish.
        self.ledger.close();
        self.settle();
    }

    fn handle(&mut self, request: Request) {
        let now = self.clock.now_ms();
        match request {
            Request::Submit(spec, owner, reply) => {
                self.submit(spec, owner, None, now, Ack::Info(reply))
            }
            Request::SubmitInputs(spec, inputs, owner, reply) => {
                self.submit(spec, owner, Some(inputs), now, Ack::Info(reply))
            }
            Request::SubmitWatch(spec, owner, reply) => {
                self.submit(spec, owner, None, now, Ack::Watch(reply))
            }
            Request::CheckInputsSpec(spec, reply) => {
                let spec = JobSpec {
                    has_inputs: true,
                    range_start: 0,
                    range_end: 1,
                    ..spec
                };
                let checked = admit(spec, &self.config.workloads, &self.config.limits)
                    .map(drop)
                    .map_err(|e| Status::invalid_argument(e.to_string()));
                let _ = reply.send(checked);
            }
            Request::GetJob(id, reply) => {
                let _ = reply.send(self.client_info(id));
            }
            Request::Watch(id, reply) => {
                let _ = reply.send(self.watch(id));
            }
            Request::ListJobs(reply) => {
                let _ = reply.send(Ok(self.list_jobs()));
            }
            Request::Results {
                job,
                from,
                order,
                max,
                reply,
            } => {
                let _ = reply.send(self.results(job, from, order, max));
            }
            Request::FailedTasks {
                job,
                from,
                max,
                max_bytes,
                reply,
            } => {
                let _ = reply.send(self.failed_tasks(job, from, max, max_bytes));
            }
            Request::Cancel(id, reply) => {
                let res = self
                    .sched
                    .cancel(id, now)
                    .map_err(view::job_status)
                    .and_then(|()| self.client_info(id));
                if res.is_ok() {
                    tracing::info!(job_id = id, "job cancelled");
                }
                let _ = reply.send(res);
            }
            Request::Purge {
                owner,
                older_than_ms,
                reply,
            } => {
                let ids = self.purge(owner.as_deref(), older_than_ms, now);
                if !ids.is_empty() {
                    tracing::info!(
                        jobs = ids.len(),
                        first = ids[0],
                        "ended jobs purged on request"
                    );
                }
                let _ = reply.send(Ok(ids));
            }
            Request::ListWorkers(reply) => {
                let _ = reply.send(Ok(self.list_workers()));
            }
            Request::Events(reply) => {
                let _ = reply.send(Ok(self.events.since()));
            }
            Request::Status(reply) => {
                let _ = reply.send(Ok(self.cluster_status()));
            }
            Request::WorkerJoined {
                hello,
                workloads,
                sink,
                reply,
            } => {
                let _ = reply.send(self.worker_joined(hello, workloads, sink, now));
            }
            Request::FromWorker(id, msg) => self.on_worker_message(id, msg, now),
            Request::WorkerGone(id, reason) => {
                if self.sinks.remove(&id).is_some() {
                    tracing::warn!(worker = id, %reason, "worker left; its tasks go back to the queue");
                    self.worker_lost_event(id, &reason);
                }
                self.sched.worker_lost(id, self.clock.now_ms());
            }
            Request::Tick => {
                self.sched.tick(now);
                self.retain(now);
                self.heartbeat(now);
                let done = self.sched.counters().tasks_done.values().sum();
                self.throughput.sample(now, done);
            }
            Request::Metrics(reply) => {
                let _ = reply.send(self.metrics_snapshot());
            }
            Request::Dashboard(reply) => {
                let _ = reply.send(self.dashboard_state(now));
            }
            Request::Expire => self.sched.tick(now),
            Request::Shutdown => {
                for (_, link) in self.sinks.drain() {
                    let _ = link
                        .sink
                        .send(Err(Status::unavailable("coordinator shutting down")));
                }
                self.watchers.clear();
            }
        }
    }

    /// Admits a job; it is answered through `ack` once durable, or at
    /// once with what was wrong.
    fn submit(
        &mut self,
        spec: JobSpec,
        owner: String,
        inputs: Option<Arc<Inputs>>,
        now: u64,
        ack: Ack,
    ) {
        if spec.has_inputs != inputs.is_some() {
            return ack.refuse(Status::invalid_argument(
                "an inputs job is submitted with SubmitWithInputs, and only an inputs job",
            ));
        }
        let limits = &self.config.limits;
        let active = self.active.of(&owner);
        let who = || {
            if owner.is_empty() {
                "the coordinator has".to_string()
            } else {
                format!("client {owner:?} has")
            }
        };
        let quota = limits.max_active_jobs_per_owner;
        if quota > 0 && active.jobs >= quota {
            return ack.refuse(Status::resource_exhausted(format!(
                "{} {quota} jobs that have not ended, the limit per client \
                 (--max-active-jobs-per-client {quota}); wait for some to end or cancel some",
                who()
            )));
        }
        match admit(spec, &self.config.workloads, limits) {
            Ok(plan) if task_quota_exceeded(limits, active, plan.tasks) => {
                let quota = limits.max_active_tasks_per_owner;
                ack.refuse(Status::resource_exhausted(format!(
                    "{} {} tasks in jobs that have not ended and this job has {}: over the \
                     limit per client of {quota} (--max-active-tasks-per-client {quota}); \
                     wait for some to end or cancel some",
                    who(),
                    active.tasks,
                    plan.tasks
                )))
            }
            Ok(mut plan) => {
                plan.owner = owner.clone();
                let (workload, tasks, model) = (plan.spec.workload.clone(), plan.tasks, plan.model);
                let spec = plan.spec.clone();
                // With a state file nothing of it runs before it is durable
                // (see `settle`): a job refused for a failed write never ran.
                let id = if self.ledger.has_store() {
                    self.sched.submit_held(plan, now)
                } else {
                    self.sched.submit(plan, now)
                };
                self.active.started(id, &owner, tasks);
                tracing::info!(job_id = id, %workload, tasks, model = model.name(), %owner, "job accepted");
                let detail = format!("{tasks} tasks on {} slots", model.name());
                let at = self.clock.now_us();
                self.events.job_submitted(at, id, &workload, &owner, detail);
                if let Some(inputs) = &inputs {
                    self.inputs.insert(id, inputs.clone());
                }
                // Acknowledged once durable (see `flush`).
                self.ledger.accepted(id, spec, owner, inputs, now, ack);
            }
            Err(e) => ack.refuse(Status::invalid_argument(e.to_string())),
        }
    }

    /// Hands the results and failures the core just recorded to the ledger.
    fn note_recorded(&mut self) {
        let failures = self.sched.take_failures().into_iter();
        let failures = failures
            .map(|(job, index, failure)| (job, index, view::task_failure_text(&failure)))
            .collect();
        self.ledger.recorded(self.sched.take_recorded(), failures);
    }

    /// Holds the new status of every job that changed until the next
    /// commit; jobs that just ended are logged and queued for the store.
    fn hold_job_updates(&mut self) {
        for id in self.sched.take_dirty_jobs() {
            let Ok(job) = self.sched.job_view(id) else {
                continue;
            };
            // Published only after the commit holding these results.
            let info = view::job_info(&job);
            let state = view::wire_state(job.state);
            let ended = state.is_terminal();
            if ended {
                // Nothing runs any more: its items are not needed.
                self.inputs.remove(&id);
                self.active.ended(id);
            }
            if ended && self.ended_logged.insert(id) {
                tracing::info!(
                    job_id = id,
                    state = state.name(),
                    error = %info.error,
                    "job ended"
                );
                let workload = info.spec.as_ref().map_or("", |s| s.workload.as_str());
                let at = self.clock.now_us();
                self.events
                    .job_ended(at, id, workload, &info.owner, state, &info.error);
                self.ledger.ended(JobEnd {
                    job: id,
                    state,
                    error: info.error.clone(),
                    started_ms: info.started_unix_ms,
                    finished_ms: info.finished_unix_ms,
                });
            }
            self.ledger.hold(id, (info, ended));
        }
    }

    /// A group commit now, and whatever it settles at once.
    fn flush(&mut self) {
        self.ledger.flush();
        self.settle();
    }

    /// Carries out every commit whose fate is known, oldest first.
    fn settle(&mut self) {
        let mut released = false;
        while let Some(settled) = self.ledger.next_settled() {
            match settled {
                Settled::Durable {
                    new_jobs,
                    acks,
                    updates,
                } => {
                    if self.ledger.has_store() && !new_jobs.is_empty() {
                        for &id in &new_jobs {
                            self.sched.release(id);
                        }
                        released = true;
                    }
                    for (id, ack) in acks {
                        self.answer(id, ack);
                    }
                    self.publish(updates);
                }
                Settled::Refused {
                    new_jobs,
                    acks,
                    error,
                } => {
                    let now = self.clock.now_ms();
                    for id in new_jobs {
                        let _ = self.sched.cancel(id, now);
                        self.ended_logged.insert(id);
                        self.active.ended(id);
                    }
                    for (_, ack) in acks {
                        ack.refuse(Status::unavailable(format!(
                            "the job could not be stored: {error}"
                        )));
                    }
                }
            }
        }
        if released {
            // Durable jobs start at once, not at the next request.
            self.sched.dispatch(self.clock.now_ms());
            self.carry_out();
            self.ledger.flush_soon();
        }
    }

    /// Answers an accepted submission (now durable).
    fn answer(&mut self, id: JobId, ack: Ack) {
        match ack {
            Ack::Info(reply) => {
                let _ = reply.send(self.client_info(id));
            }
            Ack::Watch(reply) => {
                let _ = reply.send(self.watch(id));
            }
        }
    }
}

/// How a damaged job's error starts (see [`Actor::restore`]).
pub(crate) const DAMAGED: &str = "damaged in the state file";

/// Whether a stored job's rows fit its plan: every index below its task
/// count, and a succeeded job with every task finished.
fn stored_rows_fit(job: &StoredJob, plan: &JobPlan) -> Result<(), String> {
    if let Some(r) = job.results.iter().find(|r| r.index >= plan.tasks) {
        return Err(format!(
            "it has a result for task {} but only {} tasks",
            r.index, plan.tasks
        ));
    }
    if let Some((i, _)) = job.failures.iter().find(|(i, _)| *i >= plan.tasks) {
        return Err(format!(
            "it has a failure for task {i} but only {} tasks",
            plan.tasks
        ));
    }
    if job.state == brigade_proto::v1::JobState::Succeeded {
        let failed_only = job
            .failures
            .iter()
            .filter(|(i, _)| job.results.binary_search_by_key(i, |r| r.index).is_err())
            .count() as u64;
        let finished = job.results.len() as u64 + failed_only;
        if finished != plan.tasks {
            return Err(format!(
                "it succeeded with {} tasks but {finished} are stored as finished",
                plan.tasks
            ));
        }
    }
    Ok(())
}

/// Sleeps until `due`, or forever without one.
async fn sleep_until_some(due: Option<tokio::time::Instant>) {
    match due {
        Some(due) => tokio::time::sleep_until(due).await,
        None => std::future::pending().await,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use brigade_proto::batch::{assigned_tasks, OkColumns, OkOutcome};
    use brigade_proto::v1::{
        coordinator_message, worker_message, JobState, Model, ResultBatch, WorkerMessage,
    };
    use brigade_proto::Output;
    use tokio::sync::oneshot;

    use crate::sched::{SlotCounts, WorkerHello};

    fn ask<T>(
        tx: &mpsc::UnboundedSender<Request>,
        make: impl FnOnce(Reply<T>) -> Request,
    ) -> oneshot::Receiver<Result<T, Status>> {
        let (reply, rx) = oneshot::channel();
        tx.send(make(reply)).expect("the actor runs");
        rx
    }

    /// With a state file, a status read right behind a batch of results (in
    /// the same round of commands) must not count them before their group
    /// commit: a client that saw them would see them undone by a crash.
    #[tokio::test(flavor = "current_thread")]
    async fn results_are_not_counted_before_their_commit_even_in_the_same_round() {
        let dir = std::env::temp_dir().join(format!(
            "brigade-actor-test-{}-{:?}",
            std::process::id(),
            Instant::now()
        ));
        std::fs::create_dir_all(&dir).expect("temp dir");
        let config = CoordinatorConfig {
            state: Some(dir.join("state.db")),
            workloads: crate::testing::catalog(),
            ..CoordinatorConfig::default()
        };
        let (tx, rx) = mpsc::unbounded_channel();
        let actor = tokio::spawn(Actor::new(config).expect("actor opens its store").run(rx));

        let (sink, mut down) = mpsc::unbounded_channel();
        let worker = {
            let (reply, rx) = oneshot::channel();
            tx.send(Request::WorkerJoined {
                workloads: Vec::new(),
                hello: WorkerHello {
                    name: "w".into(),
                    hostname: "h".into(),
                    pid: 1,
                    slots: SlotCounts {
                        process: 0,
                        thread: 4,
                        async_: 0,
                    },
                    credits: SlotCounts {
                        process: 0,
                        thread: 4,
                        async_: 0,
                    },
                    connected_unix_ms: 0,
                    workloads: None,
                },
                sink,
                reply,
            })
            .expect("the actor runs");
            rx.await.expect("joined")
        };
        let spec = JobSpec {
            workload: "noop".into(),
            range_start: 0,
            range_end: 4,
            chunk: 1,
            model: Model::Thread as i32,
            ..Default::default()
        };
        let job = ask(&tx, |r| Request::Submit(spec, String::new(), r))
            .await
            .expect("reply")
            .expect("accepted")
            .job_id;
        let assign = loop {
            match down
                .recv()
                .await
                .expect("the link stays")
                .expect("no error")
                .msg
            {
                Some(coordinator_message::Msg::Assign(a)) => break a,
                _ => continue,
            }
        };
        let mut ok = OkColumns::new(job, Model::Thread);
        for t in assigned_tasks(&assign).expect("a well-formed assignment") {
            ok.push(OkOutcome {
                index: t.index,
                attempt: t.attempt,
                value: Output::Int(u128::from(t.index)),
                cpu_ns: 1,
                wall_ns: 1,
                ready_ns: 0,
            });
        }
        assert_eq!(ok.len(), 4);
        // Results and a status read in one round: nothing awaits between
        // the two sends, so the actor takes both in one batch.
        tx.send(Request::FromWorker(
            worker,
            WorkerMessage {
                msg: Some(worker_message::Msg::Results(ResultBatch {
                    outcomes: Vec::new(),
                    ok: vec![ok.finish()],
                })),
            },
        ))
        .expect("the actor runs");
        let seen = ask(&tx, |r| Request::GetJob(job, r))
            .await
            .expect("reply")
            .expect("the job exists");
        assert_eq!(seen.tasks_done, 0, "counted before durable: {seen:?}");
        assert_eq!(seen.state, JobState::Running as i32, "{seen:?}");
        // Once committed, all four count and the job has ended.
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let info = ask(&tx, |r| Request::GetJob(job, r))
                .await
                .expect("reply")
                .expect("the job exists");
            if info.state == JobState::Succeeded as i32 {
                assert_eq!(info.tasks_done, 4);
                break;
            }
            assert!(Instant::now() < deadline, "never committed: {info:?}");
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        drop(tx);
        actor.await.expect("the actor stops");
        let _ = std::fs::remove_dir_all(&dir);
    }

    /// A client with `max_active_jobs_per_owner` jobs that have not ended
    /// is refused more (RESOURCE_EXHAUSTED naming the limit); others are
    /// not, and once one of its jobs ends it may submit again.
    #[tokio::test(flavor = "current_thread")]
    async fn a_client_at_its_active_jobs_quota_is_refused_until_one_ends() {
        let mut config = CoordinatorConfig {
            workloads: crate::testing::catalog(),
            ..CoordinatorConfig::default()
        };
        config.limits.max_active_jobs_per_owner = 2;
        let (tx, rx) = mpsc::unbounded_channel();
        let actor = tokio::spawn(Actor::new(config).expect("actor opens").run(rx));
        let submit = |owner: &str| submit_noop(&tx, owner, 4);
        let first = submit("alice").await.expect("reply").expect("accepted");
        submit("alice").await.expect("reply").expect("accepted");
        let refused = submit("alice").await.expect("reply").unwrap_err();
        assert_eq!(
            refused.code(),
            tonic::Code::ResourceExhausted,
            "{refused:?}"
        );
        assert!(
            refused.message().contains("client \"alice\" has 2 jobs")
                && refused.message().contains("--max-active-jobs-per-client 2"),
            "{refused:?}"
        );
        submit("bob")
            .await
            .expect("reply")
            .expect("another client is not limited");
        ask(&tx, |r| Request::Cancel(first.job_id, r))
            .await
            .expect("reply")
            .expect("cancelled");
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            match submit("alice").await.expect("reply") {
                Ok(_) => break,
                Err(e) => {
                    assert_eq!(e.code(), tonic::Code::ResourceExhausted, "{e:?}");
                    assert!(
                        Instant::now() < deadline,
                        "the ended job still counts: {e:?}"
                    );
                    tokio::time::sleep(Duration::from_millis(5)).await;
                }
            }
        }
        let refused = submit("alice").await.expect("reply").unwrap_err();
        assert_eq!(
            refused.code(),
            tonic::Code::ResourceExhausted,
            "{refused:?}"
        );
        drop(tx);
        actor.await.expect("the actor stops");
    }

    /// Submits a noop job of `tasks` tasks as `owner`.
    fn submit_noop(
        tx: &mpsc::UnboundedSender<Request>,
        owner: &str,
        tasks: u64,
    ) -> oneshot::Receiver<Result<JobInfo, Status>> {
        let spec = JobSpec {
            workload: "noop".into(),
            range_start: 0,
            range_end: tasks,
            chunk: 1,
            ..Default::default()
        };
        let owner = owner.to_string();
        ask(tx, move |r| Request::Submit(spec, owner, r))
    }

    /// A job that would take its client past `max_active_tasks_per_owner`
    /// tasks in jobs that have not ended is refused, naming the counts and
    /// the limit; a job that fits is not, nor is another client; once a
    /// job ends its tasks no longer count.
    #[tokio::test(flavor = "current_thread")]
    async fn a_client_at_its_active_tasks_quota_is_refused_until_a_job_ends() {
        let mut config = CoordinatorConfig {
            workloads: crate::testing::catalog(),
            ..CoordinatorConfig::default()
        };
        config.limits.max_active_tasks_per_owner = 10;
        let (tx, rx) = mpsc::unbounded_channel();
        let actor = tokio::spawn(Actor::new(config).expect("actor opens").run(rx));
        let first = submit_noop(&tx, "alice", 8)
            .await
            .expect("reply")
            .expect("accepted");
        let refused = submit_noop(&tx, "alice", 3)
            .await
            .expect("reply")
            .unwrap_err();
        assert_eq!(
            refused.code(),
            tonic::Code::ResourceExhausted,
            "{refused:?}"
        );
        let text = refused.message();
        assert!(
            text.contains("client \"alice\" has 8 tasks in jobs that have not ended")
                && text.contains("this job has 3")
                && text.contains("--max-active-tasks-per-client 10"),
            "{refused:?}"
        );
        submit_noop(&tx, "alice", 2)
            .await
            .expect("reply")
            .expect("exactly at the limit");
        submit_noop(&tx, "bob", 10)
            .await
            .expect("reply")
            .expect("another client");
        ask(&tx, |r| Request::Cancel(first.job_id, r))
            .await
            .expect("reply")
            .expect("cancelled");
        let deadline = Instant::now() + Duration::from_secs(10);
        while let Err(e) = submit_noop(&tx, "alice", 8).await.expect("reply") {
            assert_eq!(e.code(), tonic::Code::ResourceExhausted, "{e:?}");
            assert!(
                Instant::now() < deadline,
                "the ended job still counts: {e:?}"
            );
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        drop(tx);
        actor.await.expect("the actor stops");
    }

    /// `--keep-finished 2` purges all but the two newest ended jobs on a
    /// tick, never a running one; a purge on request takes the caller's
    /// ended jobs only; ids are never given again.
    #[tokio::test(flavor = "current_thread")]
    async fn retention_and_purge_forget_ended_jobs_only_and_ids_go_on() {
        let config = CoordinatorConfig {
            workloads: crate::testing::catalog(),
            keep_finished: Some(Retention::Newest(2)),
            ..CoordinatorConfig::default()
        };
        let (tx, rx) = mpsc::unbounded_channel();
        let actor = tokio::spawn(Actor::new(config).expect("actor opens").run(rx));
        let mut ids = Vec::new();
        for owner in ["alice", "alice", "bob", "alice", "alice"] {
            ids.push(
                submit_noop(&tx, owner, 4)
                    .await
                    .expect("reply")
                    .expect("accepted")
                    .job_id,
            );
        }
        // The first four end (cancelled); the fifth stays queued.
        for &id in &ids[..4] {
            ask(&tx, |r| Request::Cancel(id, r))
                .await
                .expect("reply")
                .expect("cancelled");
        }
        let listed = |tx: &mpsc::UnboundedSender<Request>| {
            let rx = ask(tx, Request::ListJobs);
            async move {
                let mut ids: Vec<u64> = rx
                    .await
                    .expect("reply")
                    .expect("jobs")
                    .iter()
                    .map(|j| j.job_id)
                    .collect();
                ids.sort_unstable();
                ids
            }
        };
        // Ended jobs are noticed as their status settles: tick until the
        // retention has run over all four.
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            tx.send(Request::Tick).expect("the actor runs");
            if listed(&tx).await == ids[2..] {
                break;
            }
            assert!(Instant::now() < deadline, "jobs: {:?}", listed(&tx).await);
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        let gone = ask(&tx, |r| Request::GetJob(ids[0], r))
            .await
            .expect("reply")
            .unwrap_err();
        assert_eq!(gone.code(), tonic::Code::NotFound, "{gone:?}");
        // Alice's purge takes her ended job (4th), not Bob's nor her queued one.
        let purge = |owner: Option<&str>| {
            let owner = owner.map(str::to_string);
            ask(&tx, move |reply| Request::Purge {
                owner,
                older_than_ms: 0,
                reply,
            })
        };
        assert_eq!(
            purge(Some("alice")).await.expect("reply").expect("purged"),
            [ids[3]]
        );
        assert_eq!(listed(&tx).await, [ids[2], ids[4]]);
        // Not old enough: nothing goes.
        let young = ask(&tx, |reply| Request::Purge {
            owner: None,
            older_than_ms: 3_600_000,
            reply,
        });
        assert_eq!(
            young.await.expect("reply").expect("purged"),
            Vec::<u64>::new()
        );
        assert_eq!(purge(None).await.expect("reply").expect("purged"), [ids[2]]);
        let next = submit_noop(&tx, "alice", 4)
            .await
            .expect("reply")
            .expect("accepted");
        assert_eq!(next.job_id, ids[4] + 1, "a purged id is not given again");
        drop(tx);
        actor.await.expect("the actor stops");
    }

    /// A job whose commit fails is refused and never ran: nothing of it is
    /// assigned before its commit is durable (the disk-full ghost jobs).
    #[tokio::test(flavor = "current_thread")]
    async fn a_job_whose_commit_fails_is_refused_and_never_assigned() {
        let dir = std::env::temp_dir().join(format!(
            "brigade-actor-ghost-{}-{:?}",
            std::process::id(),
            Instant::now()
        ));
        std::fs::create_dir_all(&dir).expect("temp dir");
        let path = dir.join("state.db");
        let config = CoordinatorConfig {
            state: Some(path.clone()),
            workloads: crate::testing::catalog(),
            ..CoordinatorConfig::default()
        };
        let (tx, rx) = mpsc::unbounded_channel();
        let actor = tokio::spawn(Actor::new(config).expect("actor opens its store").run(rx));
        let (sink, mut down) = mpsc::unbounded_channel();
        let slots = SlotCounts {
            process: 0,
            thread: 4,
            async_: 0,
        };
        let (reply, joined) = oneshot::channel();
        tx.send(Request::WorkerJoined {
            workloads: Vec::new(),
            hello: WorkerHello {
                name: "w".into(),
                hostname: "h".into(),
                pid: 1,
                slots,
                credits: slots,
                connected_unix_ms: 0,
                workloads: None,
            },
            sink,
            reply,
        })
        .expect("the actor runs");
        joined.await.expect("joined");
        // Another writer took job id 1: the job's commit fails.
        let c = rusqlite::Connection::open(&path).expect("second connection");
        c.execute(
            "INSERT INTO jobs (id, spec, submitted_ms, state) VALUES (1, x'', 0, 1)",
            [],
        )
        .expect("insert");
        drop(c);
        let spec = JobSpec {
            workload: "noop".into(),
            range_start: 0,
            range_end: 4,
            chunk: 1,
            model: Model::Thread as i32,
            ..Default::default()
        };
        let refused = ask(&tx, |r| Request::Submit(spec, String::new(), r))
            .await
            .expect("reply")
            .expect_err("not stored");
        assert_eq!(refused.code(), tonic::Code::Unavailable, "{refused:?}");
        assert!(
            refused.message().contains("could not be stored"),
            "{refused:?}"
        );
        // Let the actor carry out anything it would; nothing is assigned.
        ask(&tx, Request::Status)
            .await
            .expect("reply")
            .expect("status");
        while let Ok(msg) = down.try_recv() {
            let msg = msg.expect("no error").msg;
            assert!(
                !matches!(msg, Some(coordinator_message::Msg::Assign(_))),
                "a refused job was assigned: {msg:?}"
            );
        }
        drop(tx);
        actor.await.expect("the actor stops");
        let _ = std::fs::remove_dir_all(&dir);
    }
}
