//! The worker node: starts the executors once, then keeps a link to the
//! coordinator — hello with slots and credits, task batches in, outcome batches
//! and heartbeats out — reconnecting with backoff when the link drops, and
//! draining gracefully on shutdown.
//!
//! Outcomes of a link that is gone must never be reported on the next one (a
//! restarted in-memory coordinator reuses job ids). So every job id handed to
//! the executors carries the link's session number in its top bits; an outcome
//! tagged with an older session is dropped here.

use std::collections::HashSet;
use std::future::Future;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::FutureExt;

use brigade_proto::batch::{self, OkColumns, OkOutcome};
use brigade_proto::connect::{self, BearerToken};
use brigade_proto::v1::worker_link_client::WorkerLinkClient;
use brigade_proto::v1::{
    coordinator_message, worker_message, AssignBatch, CoordinatorMessage, Credits, Drain,
    Heartbeat, InputsFormat, Model, OutcomeStatus, ResultBatch, TaskOutcome, WorkerHello,
    WorkerMessage,
};
use brigade_proto::{PerModel, SlotModel};
use tokio::sync::mpsc;
use tokio_stream::wrappers::UnboundedReceiverStream;
use tonic::transport::Channel;
use tonic::{Code, Status, Streaming};

use crate::executors::{ExecutorConfig, Executors, TaskDone, TaskRun};
use crate::workload::{exec, Registry, TaskInput};

/// Job ids from the coordinator live in the low bits; the session in the top.
const SESSION_SHIFT: u32 = 44;
const JOB_MASK: u64 = (1 << SESSION_SHIFT) - 1;

/// The coordinator's (the user's) id of a job whose id the executors carry
/// tagged with a link's session: what logs show.
pub fn user_job_id(tagged: u64) -> u64 {
    tagged & JOB_MASK
}

/// How a worker node runs.
#[derive(Debug, Clone)]
pub struct NodeConfig {
    /// `http://host:port` of the coordinator.
    pub coordinator: String,
    pub name: String,
    pub procs: usize,
    pub threads: usize,
    pub async_slots: usize,
    /// Credits per slot: how many tasks a slot may hold queued beyond the one
    /// it runs, so it never idles waiting for the next batch.
    pub prefetch: u32,
    /// The executor child command (normally this binary + `executor`).
    pub executor_program: PathBuf,
    pub executor_args: Vec<String>,
    /// Give up if no coordinator answers for this long before the first link
    /// is up (`None`: keep trying). Once linked, the node always reconnects.
    pub first_connect_timeout: Option<Duration>,
    /// Run `exec` tasks (arbitrary shell commands from whoever can submit).
    /// The node then refuses a coordinator whose welcome says it did not
    /// authenticate this worker, unless `exec_unauthenticated`.
    pub allow_exec: bool,
    /// With `allow_exec`, link to a coordinator that does not authenticate
    /// workers anyway (`--insecure`: a coordinator on loopback one runs
    /// oneself, as `brigade up` does).
    pub exec_unauthenticated: bool,
    /// The token and TLS settings the link presents.
    pub credentials: brigade_proto::connect::Credentials,
    /// The workloads this worker offers (exec is left out unless
    /// `allow_exec`); executor children must be able to prepare the same.
    pub workloads: Arc<Registry>,
}

/// Why a node stopped with an error.
#[derive(Debug, thiserror::Error)]
pub enum NodeError {
    #[error("invalid coordinator URL {url:?}: {why} (expected http://HOST:PORT, or https://HOST:PORT for TLS)")]
    BadUrl { url: String, why: String },
    #[error(
        "no coordinator answered at {url} within {:.1} s: {last_error}; \
         start one there (`brigade coordinator`) or raise --connect-timeout-s",
        waited.as_secs_f64()
    )]
    Unreachable {
        url: String,
        waited: Duration,
        last_error: String,
    },
    #[error("coordinator at {url} refused this worker: {message}")]
    Refused { url: String, message: String },
    #[error("could not start executors: {0}")]
    Executors(#[from] std::io::Error),
}

enum LinkEnd {
    /// Shutdown was requested and the drain finished.
    Drained,
    /// The link broke; reconnect.
    Lost(String),
    /// The coordinator will never take us (protocol version, bad slots).
    Refused(String),
}

/// Runs the node until `shutdown` completes (then drains: stops taking work,
/// finishes what runs, hands back what was queued, and returns).
pub async fn run(config: NodeConfig, shutdown: impl Future<Output = ()>) -> Result<(), NodeError> {
    let bad_url = |why| NodeError::BadUrl {
        url: config.coordinator.clone(),
        why,
    };
    let token = BearerToken::new(config.credentials.token.as_deref()).map_err(bad_url)?;
    let endpoint = connect::endpoint(&config.coordinator, &config.credentials)
        .map_err(bad_url)?
        .connect_timeout(Duration::from_secs(2))
        .http2_keep_alive_interval(Duration::from_secs(5))
        .keep_alive_timeout(Duration::from_secs(5));
    let (done_tx, mut done_rx) = mpsc::unbounded_channel();
    let execs = Executors::start(
        ExecutorConfig {
            procs: config.procs,
            threads: config.threads,
            async_slots: config.async_slots,
            executor_program: config.executor_program.clone(),
            executor_args: config.executor_args.clone(),
        },
        done_tx,
    )?;
    tokio::pin!(shutdown);
    let started = Instant::now();
    let mut linked_once = false;
    let mut backoff = Backoff::new();
    let mut session: u64 = 0;
    let result = loop {
        let channel = tokio::select! {
            c = endpoint.connect() => c,
            () = &mut shutdown => break Ok(()),
        };
        let channel = match channel {
            Ok(c) => c,
            Err(e) => {
                let mut last_error = error_chain(&e);
                if let Some(hint) = connect::transport_hint(&config.coordinator, &last_error) {
                    last_error = format!("{last_error} ({hint})");
                }
                if let (false, Some(limit)) = (linked_once, config.first_connect_timeout) {
                    if started.elapsed() >= limit {
                        break Err(NodeError::Unreachable {
                            url: config.coordinator.clone(),
                            waited: started.elapsed(),
                            last_error,
                        });
                    }
                }
                let wait = backoff.next();
                tracing::warn!(coordinator = %config.coordinator, error = %last_error, retry_in_ms = wait.as_millis() as u64, "waiting for the coordinator");
                tokio::select! {
                    () = tokio::time::sleep(wait) => continue,
                    () = &mut shutdown => break Ok(()),
                }
            }
        };
        session += 1;
        let mut link = Link {
            config: &config,
            execs: &execs,
            session,
            welcomed: false,
            jobs: HashSet::new(),
            windows: CreditWindows::new(&config),
        };
        let end = link
            .run(channel, token.clone(), &mut done_rx, &mut shutdown)
            .await;
        match end {
            LinkEnd::Drained => break Ok(()),
            LinkEnd::Refused(message) => {
                break Err(NodeError::Refused {
                    url: config.coordinator.clone(),
                    message,
                })
            }
            LinkEnd::Lost(mut reason) => {
                if let Some(hint) = connect::transport_hint(&config.coordinator, &reason) {
                    reason = format!("{reason} ({hint})");
                }
                if link.welcomed {
                    linked_once = true;
                    backoff = Backoff::new();
                } else if let (false, Some(limit)) = (linked_once, config.first_connect_timeout) {
                    // It answers but never welcomes us (a TLS mismatch, say).
                    if started.elapsed() >= limit {
                        break Err(NodeError::Unreachable {
                            url: config.coordinator.clone(),
                            waited: started.elapsed(),
                            last_error: reason,
                        });
                    }
                }
                tracing::warn!(coordinator = %config.coordinator, %reason, "lost the coordinator; reconnecting");
                // Nobody will take these results: stop the work (the
                // coordinator re-queues it elsewhere).
                for job in link.jobs {
                    execs.cancel_job(job);
                }
                let wait = backoff.next();
                tokio::select! {
                    () = tokio::time::sleep(wait) => {},
                    () = &mut shutdown => break Ok(()),
                }
            }
        }
    };
    execs.drain().await;
    execs.shutdown().await;
    result
}

pub(crate) fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut src = e.source();
    while let Some(inner) = src {
        s.push_str(": ");
        s.push_str(&inner.to_string());
        src = inner.source();
    }
    s
}

struct Link<'a> {
    config: &'a NodeConfig,
    execs: &'a Executors,
    session: u64,
    welcomed: bool,
    /// Session-tagged ids of the jobs this link handed to the executors.
    jobs: HashSet<u64>,
    windows: CreditWindows,
}

/// Bytes of byte outputs and errors above which outcomes go in several
/// result messages (well under the link's 64 MiB message limit; one output
/// is at most 32 MiB).
const MAX_RESULT_BATCH_BYTES: usize = 8 << 20;

impl Link<'_> {
    fn hello(&self) -> WorkerHello {
        let c = self.config;
        let [process_credits, thread_credits, async_credits] = self.windows.announced.into();
        WorkerHello {
            protocol_version: brigade_proto::PROTOCOL_VERSION,
            name: c.name.clone(),
            hostname: hostname(),
            pid: std::process::id(),
            process_slots: c.procs as u32,
            thread_slots: c.threads as u32,
            async_slots: c.async_slots as u32,
            process_credits,
            thread_credits,
            async_credits,
            workloads: c
                .workloads
                .catalog()
                .iter()
                .filter(|d| c.allow_exec || d.name != exec::NAME)
                .map(|d| d.to_wire())
                .collect(),
        }
    }

    async fn run(
        &mut self,
        channel: Channel,
        token: BearerToken,
        done_rx: &mut mpsc::UnboundedReceiver<Vec<TaskDone>>,
        shutdown: &mut (impl Future<Output = ()> + Unpin),
    ) -> LinkEnd {
        let (out, out_rx) = mpsc::unbounded_channel();
        let _ = out.send(msg(worker_message::Msg::Hello(self.hello())));
        let mut client =
            WorkerLinkClient::with_interceptor(channel, token).max_decoding_message_size(64 << 20);
        let mut inbound = match client.attach(UnboundedReceiverStream::new(out_rx)).await {
            Ok(r) => r.into_inner(),
            Err(s) => return refused_or_lost(s),
        };
        let welcome = match inbound.message().await {
            Ok(Some(CoordinatorMessage {
                msg: Some(coordinator_message::Msg::Welcome(w)),
            })) => w,
            Ok(_) => return LinkEnd::Lost("the coordinator did not welcome us".into()),
            Err(s) => return refused_or_lost(s),
        };
        if self.config.allow_exec && !welcome.authenticated && !self.config.exec_unauthenticated {
            // Anyone who can reach such a coordinator could run commands here.
            return LinkEnd::Refused(
                "this worker runs exec tasks (--allow-exec), but the coordinator does not \
                 authenticate its workers, so anyone who reaches it could run shell commands \
                 here; start the coordinator with --auth-file and give this worker a worker \
                 token (--token-file or BRIGADE_TOKEN), or pass --insecure for a coordinator \
                 you run yourself on loopback"
                    .into(),
            );
        }
        self.welcomed = true;
        tracing::info!(
            worker_id = welcome.worker_id,
            coordinator = %self.config.coordinator,
            procs = self.config.procs,
            threads = self.config.threads,
            async_slots = self.config.async_slots,
            "linked to the coordinator"
        );
        // Heartbeats go out from their own task so nothing here can delay them.
        let heartbeat = {
            let out = out.clone();
            let every = Duration::from_millis(welcome.heartbeat_interval_ms.max(10));
            tokio::spawn(async move {
                let mut seq = 0;
                let mut tick = tokio::time::interval(every);
                loop {
                    tick.tick().await;
                    seq += 1;
                    if out
                        .send(msg(worker_message::Msg::Heartbeat(Heartbeat { seq })))
                        .is_err()
                    {
                        return;
                    }
                }
            })
        };
        let lease = Duration::from_millis(welcome.lease_timeout_ms.max(100));
        let end = self
            .serve(&out, &mut inbound, done_rx, shutdown, lease)
            .await;
        heartbeat.abort();
        end
    }

    async fn serve(
        &mut self,
        out: &mpsc::UnboundedSender<WorkerMessage>,
        inbound: &mut Streaming<CoordinatorMessage>,
        done_rx: &mut mpsc::UnboundedReceiver<Vec<TaskDone>>,
        shutdown: &mut (impl Future<Output = ()> + Unpin),
        lease: Duration,
    ) -> LinkEnd {
        let mut buf = Vec::with_capacity(1024);
        // The coordinator heartbeats several times per lease timeout; hearing
        // nothing for a whole lease means we are cut off and our leases are
        // gone, so our tasks must stop rather than run twice.
        let silence = tokio::time::sleep(lease);
        tokio::pin!(silence);
        loop {
            let inbound_message = tokio::select! {
                () = &mut silence => {
                    // A worker whose event loop did not run for a while (a
                    // machine out of CPU) finds the timer and the
                    // coordinator's messages ready together: only if nothing
                    // waits to be read was the coordinator silent.
                    match inbound.message().now_or_never() {
                        Some(m) => m,
                        None => {
                            return LinkEnd::Lost(format!(
                                "no word from the coordinator for {} ms (the lease timeout); stopping held tasks",
                                lease.as_millis()
                            ))
                        }
                    }
                }
                m = inbound.message() => m,
                n = done_rx.recv_many(&mut buf, 8192) => {
                    if n == 0 {
                        return LinkEnd::Lost("executors stopped".into());
                    }
                    self.report(&mut buf, out);
                    continue;
                }
                () = &mut *shutdown => break,
            };
            match inbound_message {
                Ok(Some(m)) => {
                    silence.as_mut().reset(tokio::time::Instant::now() + lease);
                    if let Err(e) = self.on_message(m, out, false) {
                        return LinkEnd::Lost(e);
                    }
                }
                Ok(None) => return LinkEnd::Lost("the coordinator closed the link".into()),
                Err(s) => return LinkEnd::Lost(format!("link broken: {}", s.message())),
            }
        }
        // Drain: the coordinator stops assigning; what is queued here is
        // handed back, what runs finishes and is reported.
        tracing::info!("draining: finishing running tasks, handing back queued ones");
        let _ = out.send(msg(worker_message::Msg::Drain(Drain {})));
        {
            let execs = self.execs;
            let drain = execs.drain();
            tokio::pin!(drain);
            loop {
                tokio::select! {
                    () = &mut drain => break,
                    m = inbound.message() => match m {
                        Ok(Some(m)) => {
                            if let Err(e) = self.on_message(m, out, true) {
                                return LinkEnd::Lost(e);
                            }
                        }
                        _ => return LinkEnd::Drained,
                    },
                    n = done_rx.recv_many(&mut buf, 8192) => {
                        if n == 0 { break; }
                        self.report(&mut buf, out);
                    }
                }
            }
        }
        while let Ok(d) = done_rx.try_recv() {
            buf.push(d);
        }
        self.report(&mut buf, out);
        LinkEnd::Drained
    }

    fn on_message(
        &mut self,
        m: CoordinatorMessage,
        out: &mpsc::UnboundedSender<WorkerMessage>,
        draining: bool,
    ) -> Result<(), String> {
        match m.msg {
            Some(coordinator_message::Msg::Assign(batch)) => {
                return self.assign(batch, out, draining)
            }
            Some(coordinator_message::Msg::Cancel(c)) => {
                self.execs.cancel_job(self.tag(c.job_id));
            }
            Some(coordinator_message::Msg::Welcome(_))
            | Some(coordinator_message::Msg::Heartbeat(_))
            | None => {}
        }
        Ok(())
    }

    fn tag(&self, job_id: u64) -> u64 {
        (self.session << SESSION_SHIFT) | (job_id & JOB_MASK)
    }

    /// Hands an assignment's tasks to the executors (or refuses them);
    /// an error is a malformed batch, which ends the link.
    fn assign(
        &mut self,
        mut batch: AssignBatch,
        out: &mpsc::UnboundedSender<WorkerMessage>,
        draining: bool,
    ) -> Result<(), String> {
        let model = Model::try_from(batch.model).unwrap_or(Model::Unspecified);
        let slots = match model {
            Model::Process => self.config.procs,
            Model::Thread => self.config.threads,
            Model::Async => self.config.async_slots,
            Model::Unspecified | Model::Auto => 0,
        };
        let tasks = match batch::assigned_tasks(&batch) {
            Ok(t) => t,
            Err(e) => {
                // Nothing here can be trusted, not even which tasks to
                // refuse: drop the link; the coordinator requeues its leases.
                return Err(format!("protocol error in an assignment: {e}"));
            }
        };
        let items = batch::split_inputs(
            tasks.iter().map(|t| (t.start, t.end)),
            std::mem::take(&mut batch.inputs),
        )
        .map_err(|e| format!("protocol error in an assignment: {e}"))?;
        let refuse = |status: OutcomeStatus, error: String| {
            let outcomes = tasks
                .iter()
                .map(|t| TaskOutcome {
                    job_id: batch.job_id,
                    index: t.index,
                    attempt: t.attempt,
                    model: batch.model,
                    status: status as i32,
                    error: error.clone(),
                    ..Default::default()
                })
                .collect();
            let _ = out.send(msg(worker_message::Msg::Results(ResultBatch {
                outcomes,
                ok: Vec::new(),
            })));
            Ok(())
        };
        if draining {
            return refuse(OutcomeStatus::Cancelled, "worker draining".into());
        }
        if slots == 0 {
            return refuse(
                OutcomeStatus::Failed,
                format!("this worker has no {} slots", model.name()),
            );
        }
        if batch.workload == exec::NAME && !self.config.allow_exec {
            return refuse(
                OutcomeStatus::Failed,
                "this worker does not run exec tasks; start it with --allow-exec".into(),
            );
        }
        let max_output = (batch.max_result_bytes > 0).then_some(batch.max_result_bytes);
        let items_are_json = batch.inputs_format == InputsFormat::Jsonl as i32;
        let workload = match self.config.workloads.prepare(&batch.workload, &batch.args) {
            Ok(w) => Arc::new(w.with_max_output(max_output)),
            Err(e) => return refuse(OutcomeStatus::Failed, e),
        };
        let timeout = (batch.timeout_ms > 0).then(|| Duration::from_millis(batch.timeout_ms));
        let job_id = self.tag(batch.job_id);
        self.jobs.insert(job_id);
        // A range job has no items: no list per task to build.
        let mut items = items.map(Vec::into_iter);
        let tasks = tasks.into_iter().map(move |t| TaskRun {
            job_id,
            attempt: t.attempt,
            input: TaskInput {
                index: t.index,
                start: t.start,
                end: t.end,
                items: items.as_mut().and_then(Iterator::next).unwrap_or_default(),
                items_are_json,
                output_limit: workload.max_output(),
            },
            workload: workload.clone(),
            timeout,
        });
        self.execs.submit_many(model, tasks);
        Ok(())
    }

    /// Sends the outcomes in `buf` that belong to this link as one batch
    /// (several when their byte outputs and errors pass
    /// [`MAX_RESULT_BATCH_BYTES`]).
    fn report(&mut self, buf: &mut Vec<Vec<TaskDone>>, out: &mpsc::UnboundedSender<WorkerMessage>) {
        let windows = &mut self.windows;
        let mut outcomes: Vec<TaskOutcome> = Vec::new();
        // OK outcomes go column-wise, one set of columns per job and model
        // (a batch nearly always holds one).
        let mut ok: Vec<OkColumns> = Vec::new();
        let mut bytes = 0usize;
        let send = |outcomes: &mut Vec<TaskOutcome>, ok: &mut Vec<OkColumns>| {
            if !outcomes.is_empty() || !ok.is_empty() {
                let ok = ok.drain(..).map(OkColumns::finish).collect();
                let _ = out.send(msg(worker_message::Msg::Results(ResultBatch {
                    outcomes: std::mem::take(outcomes),
                    ok,
                })));
            }
        };
        for mut d in buf.drain(..).flatten() {
            if d.job_id >> SESSION_SHIFT != self.session {
                continue;
            }
            windows.observe(d.model, d.wall_ns);
            d.job_id &= JOB_MASK;
            let size = d.error.len()
                + if d.value.as_int().is_some() {
                    0
                } else {
                    d.value.len()
                };
            if bytes > 0 && bytes + size > MAX_RESULT_BATCH_BYTES {
                send(&mut outcomes, &mut ok);
                bytes = 0;
            }
            bytes += size;
            if d.status != OutcomeStatus::Ok {
                outcomes.push(d.into_proto());
                continue;
            }
            let model = d.model as i32;
            let columns = match ok
                .iter()
                .position(|c| c.job_id() == d.job_id && c.model() == model)
            {
                Some(i) => &mut ok[i],
                None => {
                    ok.push(OkColumns::new(d.job_id, d.model));
                    ok.last_mut().expect("just pushed")
                }
            };
            columns.push(OkOutcome {
                index: d.index,
                attempt: d.attempt,
                value: d.value,
                cpu_ns: d.cpu_ns,
                wall_ns: d.wall_ns,
                ready_ns: d.ready_ns,
            });
        }
        send(&mut outcomes, &mut ok);
        if let Some([process, thread, r#async]) = windows.resize().map(<[u32; 3]>::from) {
            let _ = out.send(msg(worker_message::Msg::Credits(Credits {
                process,
                thread,
                r#async,
            })));
        }
    }
}

/// Work each slot should have queued beyond the task it runs, so it never
/// waits a coordinator round trip for the next one.
const QUEUED_WORK_PER_SLOT_NS: f64 = 2_000_000.0;
/// The deepest window per model (one assignment batch's worth).
const MAX_WINDOW: u32 = 4_096;

/// Credit windows sized from how long tasks take: `prefetch` per slot for
/// long tasks (so a worker does not hoard work others could run), up to
/// [`MAX_WINDOW`] for tasks so short that only a deep pipeline keeps slots busy.
#[derive(Debug)]
struct CreditWindows {
    slots: PerModel<u32>,
    prefetch: u32,
    /// Moving average of task wall time per model (ns); 0 until observed.
    task_ns: PerModel<f64>,
    /// What the coordinator was last told.
    announced: PerModel<u32>,
}

impl CreditWindows {
    fn new(c: &NodeConfig) -> Self {
        let slots = PerModel::from([c.procs as u32, c.threads as u32, c.async_slots as u32]);
        let prefetch = c.prefetch.max(1);
        CreditWindows {
            slots,
            prefetch,
            task_ns: PerModel::default(),
            announced: slots.map(|s| s.saturating_mul(prefetch)),
        }
    }

    fn observe(&mut self, model: Model, wall_ns: u64) {
        let Ok(m) = SlotModel::try_from(model) else {
            return;
        };
        let t = &mut self.task_ns[m];
        // At least 1 µs: a zero would ask for an infinite window.
        let x = (wall_ns as f64).max(1_000.0);
        *t = if *t == 0.0 { x } else { 0.9 * *t + 0.1 * x };
    }

    fn wanted(&self, m: SlotModel) -> u32 {
        let min = self.slots[m].saturating_mul(self.prefetch);
        if self.task_ns[m] == 0.0 {
            return min;
        }
        let per_slot = (QUEUED_WORK_PER_SLOT_NS / self.task_ns[m]).ceil() as u32;
        self.slots[m]
            .saturating_mul(per_slot)
            .clamp(min, MAX_WINDOW.max(min))
    }

    /// New windows when one moved by more than a quarter from what was
    /// announced (so the coordinator is not told of every wobble).
    fn resize(&mut self) -> Option<PerModel<u32>> {
        let wanted = PerModel::from_fn(|m| self.wanted(m));
        let moved = wanted
            .values()
            .zip(self.announced.values())
            .any(|(&w, &a)| w.abs_diff(a) * 4 > a.max(1));
        if !moved {
            return None;
        }
        self.announced = wanted;
        Some(wanted)
    }
}

fn msg(m: worker_message::Msg) -> WorkerMessage {
    WorkerMessage { msg: Some(m) }
}

fn refused_or_lost(s: Status) -> LinkEnd {
    match s.code() {
        // A wrong or missing token does not get better by retrying.
        Code::FailedPrecondition
        | Code::InvalidArgument
        | Code::Unauthenticated
        | Code::PermissionDenied => LinkEnd::Refused(s.message().to_string()),
        _ => LinkEnd::Lost(error_chain(&s)),
    }
}

/// This machine's host name (a container's id in docker).
pub fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|s| s.trim().to_string())
        .unwrap_or_else(|_| "unknown".into())
}

/// Exponential backoff with jitter: 100 ms doubling up to 5 s, each wait
/// drawn from [d/2, d) so reconnecting workers do not stampede.
struct Backoff {
    next_ms: u64,
    seed: u64,
}

impl Backoff {
    fn new() -> Self {
        let seed = (std::process::id() as u64) << 32
            ^ std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.subsec_nanos() as u64)
                .unwrap_or(1);
        Backoff {
            next_ms: 100,
            seed: seed | 1,
        }
    }

    fn next(&mut self) -> Duration {
        // xorshift64: plenty for jitter.
        self.seed ^= self.seed << 13;
        self.seed ^= self.seed >> 7;
        self.seed ^= self.seed << 17;
        let d = self.next_ms;
        self.next_ms = (self.next_ms * 2).min(5_000);
        Duration::from_millis(d / 2 + self.seed % (d / 2).max(1))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_to_a_cap_with_jitter_in_range() {
        let mut b = Backoff::new();
        let mut caps = vec![];
        for _ in 0..10 {
            let cap = b.next_ms;
            let d = b.next().as_millis() as u64;
            assert!(d >= cap / 2 && d < cap, "{d} not in [{}, {cap})", cap / 2);
            caps.push(cap);
        }
        assert_eq!(caps[..4], [100, 200, 400, 800]);
        assert_eq!(*caps.last().unwrap(), 5_000);
    }

    fn config(procs: usize, threads: usize, async_slots: usize) -> NodeConfig {
        NodeConfig {
            coordinator: "http://127.0.0.1:1".into(),
            name: "t".into(),
            procs,
            threads,
            async_slots,
            prefetch: 2,
            executor_program: PathBuf::from("brigade"),
            executor_args: vec![],
            first_connect_timeout: None,
            allow_exec: false,
            exec_unauthenticated: false,
            credentials: Default::default(),
            workloads: Arc::new(Registry::builtin()),
        }
    }

    #[test]
    fn credit_windows_deepen_for_short_tasks_and_stay_shallow_for_long_ones() {
        let mut w = CreditWindows::new(&config(2, 2, 256));
        assert_eq!(w.announced, PerModel::from([4, 4, 512]));
        assert_eq!(w.resize(), None, "nothing observed yet");
        for _ in 0..50 {
            w.observe(Model::Thread, 2_000); // 2 µs noop-like tasks
            w.observe(Model::Process, 80_000_000); // 80 ms CPU tasks
        }
        assert_eq!(w.resize(), Some(PerModel::from([4, 2_000, 512])));
        assert_eq!(w.resize(), None, "unchanged windows are not re-announced");
        // Tasks get long: the thread window shrinks back to its floor.
        for _ in 0..200 {
            w.observe(Model::Thread, 50_000_000);
        }
        assert_eq!(w.resize(), Some(PerModel::from([4, 4, 512])));
    }

    #[test]
    fn session_tags_round_trip_job_ids() {
        let (s, j) = (7u64, 123_456u64);
        let tagged = (s << SESSION_SHIFT) | j;
        assert_eq!(tagged >> SESSION_SHIFT, s);
        assert_eq!(tagged & JOB_MASK, j);
        assert_eq!(user_job_id(tagged), j, "logs show the user's id");
        assert_eq!(user_job_id(j), j);
    }
}
