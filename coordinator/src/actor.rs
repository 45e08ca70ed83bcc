//! The coordinator's single owner of state: one tokio task that holds the
//! [`Scheduler`], takes [`Command`]s from the gRPC handlers, feeds them to the
//! core in batches, and carries out the core's [`Action`]s (task batches and
//! cancellations down worker streams, status updates to watchers).
//!
//! Channels to workers are unbounded on purpose: the core never assigns a
//! worker more tasks than the credits it announced, so what waits in a
//! worker's channel is bounded by its credits.

use std::collections::{HashMap, HashSet, VecDeque};
use std::path::PathBuf;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use brigade_proto::batch;
use brigade_proto::catalog::Catalog;
use brigade_proto::v1::{
    coordinator_message, worker_message, AssignBatch, CancelTasks, ClusterStatus,
    CoordinatorMessage, Heartbeat, JobInfo, JobSpec, JobState, Model, OutcomeStatus, ResultsChunk,
    Welcome, WorkerInfo, WorkerMessage,
};
use tokio::sync::{mpsc, oneshot, watch};
use tonic::Status;

use crate::admission::{admit, AdmissionLimits};
use crate::sched::{
    Action, JobError, JobId, Outcome, RestoredJob, SchedConfig, Scheduler, SlotCounts, WorkerHello,
    WorkerId,
};
use crate::store::{JobEnd, Store, StoreError, WriteBatch};
use crate::writer::{merge, Committed, StoreWriter};

/// A model as a worker reported it (unknown values are kept apart as
/// `Unspecified`, which no slot has).
fn model_of(m: i32) -> Model {
    Model::try_from(m).unwrap_or(Model::Unspecified)
}

/// Where the actor sends a worker's downstream messages.
pub type WorkerSink = mpsc::UnboundedSender<Result<CoordinatorMessage, Status>>;
type Reply<T> = oneshot::Sender<Result<T, Status>>;

/// How an accepted submission is answered once it is durable.
#[derive(Debug)]
enum Ack {
    Info(Reply<JobInfo>),
    Watch(Reply<watch::Receiver<JobInfo>>),
}

impl Ack {
    fn refuse(self, status: Status) {
        match self {
            Ack::Info(reply) => {
                let _ = reply.send(Err(status));
            }
            Ack::Watch(reply) => {
                let _ = reply.send(Err(status));
            }
        }
    }
}

/// Requests to the actor.
#[derive(Debug)]
pub enum Command {
    Submit(JobSpec, Reply<JobInfo>),
    /// Submit, answered (once durable) with a watch on the job's status
    /// rather than the status: one trip through the actor for RunJob.
    SubmitWatch(JobSpec, Reply<watch::Receiver<JobInfo>>),
    GetJob(JobId, Reply<JobInfo>),
    Watch(JobId, Reply<watch::Receiver<JobInfo>>),
    ListJobs(Reply<Vec<JobInfo>>),
    Results {
        job: JobId,
        from: u64,
        max: usize,
        reply: Reply<ResultsChunk>,
    },
    Cancel(JobId, Reply<JobInfo>),
    ListWorkers(Reply<Vec<WorkerInfo>>),
    Status(Reply<ClusterStatus>),
    WorkerJoined {
        hello: WorkerHello,
        sink: WorkerSink,
        reply: oneshot::Sender<WorkerId>,
    },
    FromWorker(WorkerId, WorkerMessage),
    WorkerGone(WorkerId, String),
    Tick,
    /// Close every worker stream and watcher so the server can stop.
    Shutdown,
}

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
    /// Fail jobs that wait this long for a model no worker offers.
    pub fail_if_no_workers: Option<Duration>,
    /// Fail a task on thread or async slots once this many workers were
    /// lost while holding it (0: never).
    pub max_worker_losses: u32,
    /// The workloads jobs may name, with their definitions (the binary
    /// preloads brigade's built-in ones).
    pub workloads: Catalog,
}

impl Default for CoordinatorConfig {
    fn default() -> Self {
        CoordinatorConfig {
            lease_timeout: Duration::from_secs(3),
            heartbeat_interval: Duration::from_millis(500),
            limits: AdmissionLimits::default(),
            max_batch: 4_096,
            state: None,
            fail_if_no_workers: None,
            max_worker_losses: crate::sched::DEFAULT_MAX_WORKER_LOSSES,
            workloads: Catalog::default(),
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
}

pub(crate) struct Actor {
    sched: Scheduler,
    config: CoordinatorConfig,
    sinks: HashMap<WorkerId, WorkerSink>,
    watchers: HashMap<JobId, watch::Sender<JobInfo>>,
    ended_logged: HashSet<JobId>,
    clock: Clock,
    /// The store's writer thread and where it reports commits.
    writer: Option<(StoreWriter, mpsc::UnboundedReceiver<Committed>)>,
    /// Group commits handed to the writer, oldest first.
    inflight: VecDeque<InflightCommit>,
    next_seq: u64,
    /// After a failed write, no new attempt before this.
    write_backoff: Option<tokio::time::Instant>,
    /// Written at the next group commit.
    unflushed: WriteBatch,
    /// Submissions answered once `unflushed` is durable.
    pending_acks: Vec<(JobId, Ack)>,
    /// Job status changes published once `unflushed` is durable.
    held: HashMap<JobId, (JobInfo, bool)>,
    /// Per job: results recorded but not yet durable (count, sum), left
    /// out of what clients are told so progress never goes backwards
    /// across a crash.
    not_durable: HashMap<JobId, (u64, u128)>,
    /// When the pending group commit must happen at the latest.
    flush_due: Option<tokio::time::Instant>,
}

/// A group commit on its way to disk and who waits for it.
struct InflightCommit {
    seq: u64,
    /// Per job: the results this commit makes durable (count, sum).
    durable: HashMap<JobId, (u64, u128)>,
    new_jobs: Vec<JobId>,
    acks: Vec<(JobId, Ack)>,
    held: HashMap<JobId, (JobInfo, bool)>,
}

/// Group commits handed to the writer before the actor waits for one.
const MAX_INFLIGHT_COMMITS: usize = 2;
/// Pause before writing again after the store failed.
const WRITE_BACKOFF: Duration = Duration::from_secs(1);
/// Longest a recorded result waits for its group commit.
const FLUSH_INTERVAL: Duration = Duration::from_millis(5);
/// Results that trigger a commit without waiting for the interval.
const FLUSH_ROWS: usize = 65_536;

/// Packs (index, value) rows into the wire chunk (the `hi` column only
/// when some value needs it).
pub(crate) fn results_chunk(rows: Vec<(u64, u128)>) -> ResultsChunk {
    let mut chunk = ResultsChunk::default();
    let wide = rows.iter().any(|(_, v)| *v > u64::MAX as u128);
    for (i, v) in rows {
        chunk.index.push(i);
        chunk.lo.push(v as u64);
        if wide {
            chunk.hi.push((v >> 64) as u64);
        }
    }
    chunk
}

fn job_status(e: JobError) -> Status {
    Status::not_found(e.to_string())
}

impl Actor {
    /// Builds the actor, opening the state file (if any) and restoring its
    /// jobs: what was leased is queued again, recorded results stay done.
    pub(crate) fn new(config: CoordinatorConfig) -> Result<Self, StoreError> {
        let store = config.state.as_deref().map(Store::open).transpose()?;
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
            clock: Clock::new(),
            writer: None,
            inflight: VecDeque::new(),
            next_seq: 0,
            write_backoff: None,
            unflushed: WriteBatch::default(),
            pending_acks: Vec::new(),
            held: HashMap::new(),
            not_durable: HashMap::new(),
            flush_due: None,
        };
        if let Some(store) = store {
            actor.restore(&store)?;
            let (done, committed) = mpsc::unbounded_channel();
            let writer = StoreWriter::start(store, done).map_err(|e| StoreError::Open {
                path: actor.config.state.clone().unwrap_or_default(),
                what: format!("cannot start the writer thread: {e}"),
                hint: "check the process limits",
            })?;
            actor.writer = Some((writer, committed));
        }
        Ok(actor)
    }

    fn restore(&mut self, store: &Store) -> Result<(), StoreError> {
        // A stored job was admitted once; today's limits do not apply to it.
        let limits = AdmissionLimits {
            max_tasks_per_job: u64::MAX,
            max_attempts_limit: u32::MAX,
            ..self.config.limits
        };
        let (mut resumed, mut ended) = (0, 0);
        for job in store.load()? {
            let plan = match admit(job.spec.clone(), &self.config.workloads, &limits) {
                Ok(p) => p,
                Err(e) => {
                    tracing::error!(job_id = job.id, error = %e, "stored job cannot run on this brigade; left as it is");
                    continue;
                }
            };
            self.sched.restore(
                job.id,
                plan,
                RestoredJob {
                    state: job.state,
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
                resumed += 1;
            }
        }
        // A job whose every result was stored but not its end ends now.
        self.sched.take_dirty_jobs();
        tracing::info!(path = %store.path().display(), resumed, ended, "state loaded");
        Ok(())
    }

    /// Runs until every sender of `rx` is gone.
    pub(crate) async fn run(mut self, mut rx: mpsc::UnboundedReceiver<Command>) {
        let mut buf = Vec::with_capacity(256);
        loop {
            // Backpressure: while the writer is behind, take no new work
            // (results pile up nowhere; workers wait on their credits).
            let writer_behind = self.inflight.len() >= MAX_INFLIGHT_COMMITS;
            let due = if writer_behind { None } else { self.flush_due };
            let received = tokio::select! {
                n = rx.recv_many(&mut buf, 256), if !writer_behind => n,
                Some(c) = recv_committed(&mut self.writer) => {
                    self.committed(c);
                    if self.must_flush_now() {
                        self.flush_and_publish();
                    }
                    continue;
                }
                () = sleep_until_some(due) => {
                    self.flush_and_publish();
                    continue;
                }
            };
            if received == 0 {
                break;
            }
            for cmd in buf.drain(..) {
                self.handle(cmd);
                // Before the next command can read a job's status: results
                // just recorded are not durable yet, and clients must not
                // count them (a GetJob behind results in the same batch).
                self.note_recorded();
            }
            self.sched.dispatch(self.clock.now_ms());
            self.carry_out();
            self.hold_job_updates();
            self.note_recorded();
            if self.must_flush_now() {
                self.flush_and_publish();
            } else if self.flush_due.is_none() {
                self.flush_due = Some(tokio::time::Instant::now() + FLUSH_INTERVAL);
            }
        }
        // Whatever is still unwritten, then wait for the writer to finish.
        self.write_backoff = None;
        self.flush_and_publish();
        if let Some((mut writer, mut committed)) = self.writer.take() {
            writer.finish();
            while let Ok(c) = committed.try_recv() {
                self.committed(c);
            }
        }
    }

    /// Queues the results and failures the core just recorded for the next
    /// group commit, counting the results as not durable until it is back.
    fn note_recorded(&mut self) {
        for r in self.sched.take_recorded() {
            let p = self.not_durable.entry(r.job).or_default();
            p.0 += 1;
            p.1 = p.1.wrapping_add(r.value);
            self.unflushed.results.push(r);
        }
        self.unflushed.failures.extend(self.sched.take_failures());
    }

    /// Group commit policy: someone waits on this commit (a submission, a
    /// job's end), or enough results piled up, or the interval is over.
    /// Results alone may wait a few ms: until committed they are merely
    /// re-run after a crash, never lost or recorded twice.
    fn must_flush_now(&self) -> bool {
        if self
            .write_backoff
            .is_some_and(|until| tokio::time::Instant::now() < until)
        {
            return false;
        }
        self.writer.is_none()
            || !self.pending_acks.is_empty()
            || !self.unflushed.ends.is_empty()
            || !self.unflushed.new_jobs.is_empty()
            || self.unflushed.results.len() >= FLUSH_ROWS
            || self
                .flush_due
                .is_some_and(|due| tokio::time::Instant::now() >= due)
    }

    fn flush_and_publish(&mut self) {
        self.flush_due = None;
        let Some((writer, _)) = &self.writer else {
            // In memory only: nothing to wait for.
            for (id, ack) in std::mem::take(&mut self.pending_acks) {
                self.answer(id, ack);
            }
            let held = std::mem::take(&mut self.held);
            self.publish(held);
            return;
        };
        if self.unflushed.is_empty() {
            // Nothing to write; updates must still not overtake earlier ones
            // waiting for their commit.
            let held = std::mem::take(&mut self.held);
            match self.inflight.back_mut() {
                Some(last) => last.held.extend(held),
                None => self.publish(held),
            }
            return;
        }
        self.next_seq += 1;
        let batch = std::mem::take(&mut self.unflushed);
        let mut durable: HashMap<JobId, (u64, u128)> = HashMap::new();
        for r in &batch.results {
            let d = durable.entry(r.job).or_default();
            d.0 += 1;
            d.1 = d.1.wrapping_add(r.value);
        }
        let commit = InflightCommit {
            seq: self.next_seq,
            durable,
            new_jobs: batch.new_jobs.iter().map(|(id, _, _)| *id).collect(),
            acks: std::mem::take(&mut self.pending_acks),
            held: std::mem::take(&mut self.held),
        };
        if writer.submit(self.next_seq, batch) {
            self.inflight.push_back(commit);
        } else {
            self.refuse(commit, "the state store writer stopped");
        }
    }

    /// A group commit came back from the writer.
    fn committed(&mut self, (seqs, result): Committed) {
        let mut commits = Vec::with_capacity(seqs.len());
        for seq in seqs {
            match self.inflight.pop_front() {
                Some(c) if c.seq == seq => commits.push(c),
                other => {
                    tracing::error!(seq, expected = ?other.map(|c| c.seq), "store commits out of order");
                    return;
                }
            }
        }
        match result {
            Ok(()) => {
                for c in commits {
                    for (job, (n, sum)) in c.durable {
                        if let Some(p) = self.not_durable.get_mut(&job) {
                            p.0 -= n;
                            p.1 = p.1.wrapping_sub(sum);
                            if p.0 == 0 {
                                self.not_durable.remove(&job);
                            }
                        }
                    }
                    for (id, ack) in c.acks {
                        self.answer(id, ack);
                    }
                    self.publish(c.held);
                }
            }
            Err((error, mut batch)) => {
                tracing::error!(%error, "state store write failed; retrying in 1 s, refusing new jobs meanwhile");
                // Jobs that are not durable are not accepted; results and
                // job ends go back to be written on the next attempt, their
                // updates held until then.
                batch.new_jobs.clear();
                merge(&mut batch, std::mem::take(&mut self.unflushed));
                self.unflushed = batch;
                for mut c in commits {
                    let held = std::mem::take(&mut c.held);
                    for (id, update) in held {
                        self.held.entry(id).or_insert(update);
                    }
                    self.refuse(c, &error);
                }
                let until = tokio::time::Instant::now() + WRITE_BACKOFF;
                self.write_backoff = Some(until);
                self.flush_due = Some(until);
            }
        }
    }

    /// Refuses the submissions of a commit that did not happen.
    fn refuse(&mut self, c: InflightCommit, error: &str) {
        let now = self.clock.now_ms();
        for id in c.new_jobs {
            let _ = self.sched.cancel(id, now);
            self.ended_logged.insert(id);
        }
        for (_, ack) in c.acks {
            ack.refuse(Status::unavailable(format!(
                "the job could not be stored: {error}"
            )));
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

    /// A watch on a job's status as clients may see it.
    fn watch(&mut self, id: JobId) -> Result<watch::Receiver<JobInfo>, Status> {
        let info = self.client_info(id)?;
        Ok(self
            .watchers
            .entry(id)
            .or_insert_with(|| watch::channel(info).0)
            .subscribe())
    }

    /// Admits a job; it is answered through `ack` once durable, or at
    /// once with what was wrong.
    fn submit(&mut self, spec: JobSpec, now: u64, ack: Ack) {
        match admit(spec, &self.config.workloads, &self.config.limits) {
            Ok(plan) => {
                let (workload, tasks, model) = (plan.spec.workload.clone(), plan.tasks, plan.model);
                let spec = plan.spec.clone();
                let id = self.sched.submit(plan, now);
                tracing::info!(job_id = id, %workload, tasks, model = model.name(), "job accepted");
                // Acknowledged once durable (see `flush`).
                self.unflushed.new_jobs.push((id, spec, now));
                self.pending_acks.push((id, ack));
            }
            Err(e) => ack.refuse(Status::invalid_argument(e.to_string())),
        }
    }

    fn handle(&mut self, cmd: Command) {
        let now = self.clock.now_ms();
        match cmd {
            Command::Submit(spec, reply) => self.submit(spec, now, Ack::Info(reply)),
            Command::SubmitWatch(spec, reply) => self.submit(spec, now, Ack::Watch(reply)),
            Command::GetJob(id, reply) => {
                let _ = reply.send(self.client_info(id));
            }
            Command::Watch(id, reply) => {
                let _ = reply.send(self.watch(id));
            }
            Command::ListJobs(reply) => {
                let ids: Vec<JobId> = self.sched.jobs().map(|j| j.id).collect();
                let infos = ids
                    .into_iter()
                    .filter_map(|id| self.client_info(id).ok())
                    .collect();
                let _ = reply.send(Ok(infos));
            }
            Command::Results {
                job,
                from,
                max,
                reply,
            } => {
                let res = self.sched.job(job).map_err(job_status).and_then(|j| {
                    // Without values in memory the service reads the store;
                    // asking here is a bug, said so rather than answered empty.
                    j.results_from(from, max).map(results_chunk).ok_or_else(|| {
                        Status::internal("results of this coordinator live in its state file")
                    })
                });
                let _ = reply.send(res);
            }
            Command::Cancel(id, reply) => {
                let res = self
                    .sched
                    .cancel(id, now)
                    .map_err(job_status)
                    .and_then(|()| self.client_info(id));
                if res.is_ok() {
                    tracing::info!(job_id = id, "job cancelled");
                }
                let _ = reply.send(res);
            }
            Command::ListWorkers(reply) => {
                let _ = reply.send(Ok(self.sched.workers()));
            }
            Command::Status(reply) => {
                let mut s = self.sched.status();
                s.version = brigade_proto::VERSION.to_string();
                s.protocol_version = brigade_proto::PROTOCOL_VERSION;
                s.uptime_ms = self.clock.origin.elapsed().as_millis() as u64;
                let _ = reply.send(Ok(s));
            }
            Command::WorkerJoined { hello, sink, reply } => {
                let name = hello.name.clone();
                let id = self.sched.worker_joined(hello, now);
                let welcome = CoordinatorMessage {
                    msg: Some(coordinator_message::Msg::Welcome(Welcome {
                        worker_id: id,
                        heartbeat_interval_ms: self.config.heartbeat_interval.as_millis() as u64,
                        lease_timeout_ms: self.config.lease_timeout.as_millis() as u64,
                    })),
                };
                if sink.send(Ok(welcome)).is_ok() {
                    tracing::info!(worker = id, %name, "worker joined");
                    self.sinks.insert(id, sink);
                } else {
                    self.sched.worker_lost(id, self.clock.now_ms());
                }
                let _ = reply.send(id);
            }
            Command::FromWorker(id, msg) => self.on_worker_message(id, msg, now),
            Command::WorkerGone(id, reason) => {
                if self.sinks.remove(&id).is_some() {
                    tracing::warn!(worker = id, %reason, "worker left; its tasks go back to the queue");
                }
                self.sched.worker_lost(id, self.clock.now_ms());
            }
            Command::Tick => {
                self.sched.tick(now);
                for sink in self.sinks.values() {
                    let _ = sink.send(Ok(CoordinatorMessage {
                        msg: Some(coordinator_message::Msg::Heartbeat(Heartbeat { seq: now })),
                    }));
                }
            }
            Command::Shutdown => {
                for (_, sink) in self.sinks.drain() {
                    let _ = sink.send(Err(Status::unavailable("coordinator shutting down")));
                }
                self.watchers.clear();
            }
        }
    }

    fn on_worker_message(&mut self, id: WorkerId, msg: WorkerMessage, now: u64) {
        match msg.msg {
            Some(worker_message::Msg::Results(batch)) => {
                for columns in &batch.ok {
                    let outcomes = match columns.outcomes() {
                        Ok(o) => o,
                        Err(e) => return self.disconnect(id, &format!("protocol error: {e}")),
                    };
                    let (job, model) = (columns.job_id, model_of(columns.model));
                    let outcomes = outcomes.map(|o| Outcome {
                        job,
                        index: o.index,
                        attempt: o.attempt,
                        model,
                        status: OutcomeStatus::Ok,
                        value: o.value,
                        error: String::new(),
                        cpu_ns: o.cpu_ns,
                        wall_ns: o.wall_ns,
                        ready_ns: o.ready_ns,
                    });
                    self.sched.worker_outcomes(id, outcomes, now);
                }
                let outcomes = batch.outcomes.into_iter().map(|o| Outcome {
                    job: o.job_id,
                    index: o.index,
                    attempt: o.attempt,
                    model: model_of(o.model),
                    status: OutcomeStatus::try_from(o.status).unwrap_or(OutcomeStatus::Unspecified),
                    value: o.value.map(u128::from).unwrap_or(0),
                    error: o.error,
                    cpu_ns: o.cpu_ns,
                    wall_ns: o.wall_ns,
                    ready_ns: o.ready_ns,
                });
                self.sched.worker_outcomes(id, outcomes, now);
            }
            Some(worker_message::Msg::Heartbeat(_)) => self.sched.worker_seen(id, now),
            Some(worker_message::Msg::Credits(c)) => {
                self.sched.worker_seen(id, now);
                self.sched.worker_credits(
                    id,
                    SlotCounts {
                        process: c.process,
                        thread: c.thread,
                        async_: c.r#async,
                    },
                );
            }
            Some(worker_message::Msg::Drain(_)) => {
                tracing::info!(worker = id, "worker draining");
                self.sched.worker_seen(id, now);
                self.sched.worker_draining(id);
            }
            Some(worker_message::Msg::Hello(_)) | None => {
                self.disconnect(id, "protocol error: hello sent twice or empty message");
            }
        }
    }

    fn disconnect(&mut self, id: WorkerId, reason: &str) {
        if let Some(sink) = self.sinks.remove(&id) {
            let _ = sink.send(Err(Status::unavailable(reason.to_string())));
        }
        tracing::warn!(worker = id, %reason, "worker disconnected; its tasks go back to the queue");
        self.sched.worker_lost(id, self.clock.now_ms());
    }

    fn carry_out(&mut self) {
        for action in self.sched.take_actions() {
            match action {
                Action::Assign {
                    worker,
                    job,
                    model,
                    tasks,
                } => {
                    let Ok(j) = self.sched.job(job) else { continue };
                    let spec = &j.plan.spec;
                    let batch = AssignBatch {
                        job_id: job,
                        model: model as i32,
                        workload: spec.workload.clone(),
                        args: spec.args.clone(),
                        timeout_ms: spec.task_timeout_ms,
                        tasks: Vec::new(),
                        grid: Some(j.plan.grid()),
                        runs: batch::runs(tasks.iter().map(|t| (t.index, t.attempt))),
                    };
                    self.send(worker, coordinator_message::Msg::Assign(batch));
                }
                Action::Cancel { worker, job } => {
                    let msg = CancelTasks {
                        job_id: job,
                        indices: Vec::new(),
                    };
                    self.send(worker, coordinator_message::Msg::Cancel(msg));
                }
                Action::Disconnect { worker, reason } => {
                    if let Some(sink) = self.sinks.remove(&worker) {
                        let _ = sink.send(Err(Status::unavailable(reason.clone())));
                    }
                    tracing::warn!(worker, %reason, "worker expired; its tasks go back to the queue");
                }
            }
        }
    }

    /// A job's status as clients may see it: only durable results count
    /// (with a store), so what a client saw is never undone by a crash.
    fn client_info(&self, id: JobId) -> Result<JobInfo, Status> {
        let mut info = self.sched.job_info(id).map_err(job_status)?;
        if let Some(&(n, sum)) = self.not_durable.get(&id) {
            info.tasks_done -= n;
            if let Some(total) = info.total {
                info.total = Some(u128::from(total).wrapping_sub(sum).into());
            }
            // Its end is in the same pending commit as those results.
            if JobState::try_from(info.state).is_ok_and(JobState::is_terminal) {
                info.state = JobState::Running as i32;
                info.finished_unix_ms = 0;
            }
        }
        Ok(info)
    }

    /// Holds the new status of every job that changed until the next
    /// commit; jobs that just ended are logged and queued for the store.
    fn hold_job_updates(&mut self) {
        for id in self.sched.take_dirty_jobs() {
            let Ok(info) = self.sched.job_info(id) else {
                continue;
            };
            // Published only after the commit holding these results.
            let state = JobState::try_from(info.state).unwrap_or(JobState::Unspecified);
            let ended = state.is_terminal();
            if ended && self.ended_logged.insert(id) {
                tracing::info!(
                    job_id = id,
                    state = state.name(),
                    error = %info.error,
                    "job ended"
                );
                self.unflushed.ends.push(JobEnd {
                    job: id,
                    state,
                    error: info.error.clone(),
                    started_ms: info.started_unix_ms,
                    finished_ms: info.finished_unix_ms,
                });
            }
            self.held.insert(id, (info, ended));
        }
    }

    /// Sends job updates to watchers (after the store has them).
    fn publish(&mut self, updates: HashMap<JobId, (JobInfo, bool)>) {
        for (id, (info, ended)) in updates {
            if let Some(tx) = self.watchers.get(&id) {
                tx.send_replace(info);
                if ended {
                    self.watchers.remove(&id);
                }
            }
        }
    }

    fn send(&mut self, worker: WorkerId, msg: coordinator_message::Msg) {
        let failed = match self.sinks.get(&worker) {
            Some(sink) => sink
                .send(Ok(CoordinatorMessage { msg: Some(msg) }))
                .is_err(),
            None => true,
        };
        if failed {
            // The stream is gone; the reader task will report it, but make
            // sure its tasks are not stranded meanwhile.
            self.sinks.remove(&worker);
            self.sched.worker_lost(worker, self.clock.now_ms());
        }
    }
}

/// The writer's next report, or never when there is no store.
async fn recv_committed(
    writer: &mut Option<(StoreWriter, mpsc::UnboundedReceiver<Committed>)>,
) -> Option<Committed> {
    match writer {
        Some((_, rx)) => rx.recv().await,
        None => std::future::pending().await,
    }
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
    use brigade_proto::v1::ResultBatch;

    fn ask<T>(
        tx: &mpsc::UnboundedSender<Command>,
        make: impl FnOnce(Reply<T>) -> Command,
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
            workloads: crate::admission::test_catalog(),
            ..CoordinatorConfig::default()
        };
        let (tx, rx) = mpsc::unbounded_channel();
        let actor = tokio::spawn(Actor::new(config).expect("actor opens its store").run(rx));

        let (sink, mut down) = mpsc::unbounded_channel();
        let worker = {
            let (reply, rx) = oneshot::channel();
            tx.send(Command::WorkerJoined {
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
        let job = ask(&tx, |r| Command::Submit(spec, r))
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
                value: u128::from(t.index),
                cpu_ns: 1,
                wall_ns: 1,
                ready_ns: 0,
            });
        }
        assert_eq!(ok.len(), 4);
        // Results and a status read in one round: nothing awaits between
        // the two sends, so the actor takes both in one batch.
        tx.send(Command::FromWorker(
            worker,
            WorkerMessage {
                msg: Some(worker_message::Msg::Results(ResultBatch {
                    outcomes: Vec::new(),
                    ok: vec![ok.finish()],
                })),
            },
        ))
        .expect("the actor runs");
        let seen = ask(&tx, |r| Command::GetJob(job, r))
            .await
            .expect("reply")
            .expect("the job exists");
        assert_eq!(seen.tasks_done, 0, "counted before durable: {seen:?}");
        assert_eq!(seen.state, JobState::Running as i32, "{seen:?}");
        // Once committed, all four count and the job has ended.
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let info = ask(&tx, |r| Command::GetJob(job, r))
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
}
