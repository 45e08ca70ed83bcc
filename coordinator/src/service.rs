//! The gRPC services: thin adapters that turn requests into actor
//! [`actor::Request`]s, plus [`serve`], which runs both services and the actor on a
//! listener until shutdown.

use std::future::Future;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use brigade_proto::v1::coordinator_server::{Coordinator as CoordinatorApi, CoordinatorServer};
use brigade_proto::v1::worker_link_server::{WorkerLink, WorkerLinkServer};
use brigade_proto::v1::{
    job_event, worker_message, ClusterStatus, CoordinatorMessage, FailedTasks, InputsUpload,
    JobEvent, JobInfo, JobRef, JobState, ListJobsRequest, ListJobsResponse, ListWorkersRequest,
    ListWorkersResponse, PurgeJobsRequest, PurgeJobsResponse, ResultsChunk, ResultsOrder,
    RunJobRequest, StatusRequest, SubmitJobRequest, SubmitJobResponse, WatchEventsRequest,
    WorkerMessage,
};
use brigade_proto::v1::{Event, EventKind};
use futures::{Stream, StreamExt};
use tokio::net::TcpListener;
use tokio::sync::{mpsc, oneshot, watch};
use tokio_stream::wrappers::UnboundedReceiverStream;
use tonic::service::interceptor::InterceptedService;
use tonic::transport::{Certificate, Identity, ServerTlsConfig};
use tonic::{Request, Response, Status, Streaming};

use crate::actor::{
    self, results_chunk, worker_hello, Actor, CoordinatorConfig, RESULTS_CHUNK_BYTES,
};
use crate::admission::AdmissionLimits;
use crate::auth::{Authenticator, Caller, Service};
use crate::inputs::Inputs;
use crate::store::{ReadError, StoreError, StoreReader};

type BoxStream<T> = Pin<Box<dyn Stream<Item = Result<T, Status>> + Send>>;

/// Results are streamed in chunks of at most this many tasks.
const RESULTS_CHUNK: usize = 32_768;
/// Failed tasks are listed in chunks of at most this many (and
/// [`RESULTS_CHUNK_BYTES`] of error text).
const FAILED_TASKS_CHUNK: usize = 10_000;

/// A cheap handle on the actor, shared by every handler.
#[derive(Clone)]
pub struct CoordinatorHandle {
    tx: mpsc::UnboundedSender<actor::Request>,
    /// The state file, whose read connections serve results.
    state: Option<PathBuf>,
    /// Bounds on what a submission may upload.
    limits: AdmissionLimits,
    /// One permit per results stream open ([`MAX_RESULT_STREAMS`]).
    result_streams: Arc<tokio::sync::Semaphore>,
}

/// Results streams open at once on a coordinator, whoever opened them. A
/// stream whose reader does not read pins one chunk (at most
/// [`RESULTS_CHUNK_BYTES`] of outputs, encoded) and its HTTP/2 window: the
/// cap bounds what readers that never read can hold, however many
/// connections they open. One more is refused (RESOURCE_EXHAUSTED).
pub const MAX_RESULT_STREAMS: usize = 64;

impl CoordinatorHandle {
    /// A job's results in `order`, in chunks (from the state file when
    /// there is one).
    async fn results_stream(
        &self,
        job: u64,
        from: u64,
        order: ResultsOrder,
    ) -> Result<BoxStream<ResultsChunk>, Status> {
        // Unknown jobs are refused before anything streams, and so are
        // damaged ones: nothing of theirs is served.
        let info = self.ask(|r| actor::Request::GetJob(job, r)).await?;
        if info.state == JobState::Failed as i32 && info.error.starts_with(actor::DAMAGED) {
            return Err(Status::data_loss(format!("job {job} is {}", info.error)));
        }
        self.results_of_known_job(job, from, order).await
    }

    /// [`Self::results_stream`] for a job known to exist (RunJob's own).
    async fn results_of_known_job(
        &self,
        job: u64,
        from: u64,
        order: ResultsOrder,
    ) -> Result<BoxStream<ResultsChunk>, Status> {
        let permit = self
            .result_streams
            .clone()
            .try_acquire_owned()
            .map_err(|_| {
                Status::resource_exhausted(format!(
                "{MAX_RESULT_STREAMS} results streams are open on this coordinator, its limit; \
                 retry once one has ended"
            ))
            })?;
        let source = match &self.state {
            Some(path) => {
                let path = path.clone();
                let reader = tokio::task::spawn_blocking(move || StoreReader::open(&path))
                    .await
                    .map_err(|e| Status::internal(e.to_string()))?
                    .map_err(|e| Status::unavailable(format!("cannot read the state file: {e}")))?;
                ResultSource::Store(Arc::new(Mutex::new(reader)))
            }
            None => ResultSource::Actor(self.clone()),
        };
        let first = source.fetch(job, from, order).await?;
        let stream = futures::stream::unfold(Some((first, from)), move |state| {
            let source = source.clone();
            async move {
                let (chunk, from) = state?;
                // A chunk stops at a row or byte bound, or where the done
                // tasks end: only an empty one says there is nothing more
                // (and is not sent, unless it is the first).
                let after = match (order, chunk.index.last()) {
                    (_, None) => None,
                    (ResultsOrder::Index, Some(&last)) => Some(last + 1),
                    (ResultsOrder::Completion, Some(_)) => Some(from + chunk.index.len() as u64),
                };
                let next = match after {
                    Some(after) => match source.fetch(job, after, order).await {
                        Ok(c) => (!c.index.is_empty()).then_some((c, after)),
                        Err(e) => return Some((Err(e), None)),
                    },
                    None => None,
                };
                Some((Ok(chunk), next))
            }
        });
        // The permit lives as long as the stream.
        Ok(Box::pin(stream.inspect(move |_| {
            let _ = &permit;
        })))
    }

    /// A job's status now, then on every change (coalesced), ending after
    /// the terminal one.
    async fn watch_stream(&self, id: u64) -> Result<BoxStream<JobInfo>, Status> {
        let rx = self.ask(|r| actor::Request::Watch(id, r)).await?;
        Ok(self.status_stream(id, rx))
    }

    /// The statuses a watch receiver yields, ending after the terminal one:
    /// the current one at once (a job accepted, or queued behind others,
    /// is shown before anything changes), then one per change.
    fn status_stream(&self, id: u64, rx: watch::Receiver<JobInfo>) -> BoxStream<JobInfo> {
        enum Watching {
            /// `first`: the current status has not been sent yet.
            Changes {
                rx: watch::Receiver<JobInfo>,
                first: bool,
            },
            Done,
        }
        let handle = self.clone();
        let stream = futures::stream::unfold(Watching::Changes { rx, first: true }, move |state| {
            let handle = handle.clone();
            async move {
                let Watching::Changes { mut rx, first } = state else {
                    return None;
                };
                if !first && rx.changed().await.is_err() {
                    // The actor dropped the channel (it ended the job)
                    // before we saw the terminal state: fetch it.
                    let last = handle.ask(|r| actor::Request::GetJob(id, r)).await;
                    return Some((last, Watching::Done));
                }
                let info = rx.borrow_and_update().clone();
                let next = if is_terminal(&info) {
                    Watching::Done
                } else {
                    Watching::Changes { rx, first: false }
                };
                Some((Ok(info), next))
            }
        });
        Box::pin(stream)
    }

    /// A job's status, if `caller` may see it. Another client's job is
    /// answered exactly as a job that does not exist (NOT_FOUND, same
    /// message): a client learns nothing of others' jobs, not even which
    /// ids are taken.
    async fn visible_job(&self, caller: &Caller, id: u64) -> Result<JobInfo, Status> {
        let info = self.ask(|r| actor::Request::GetJob(id, r)).await?;
        if caller.may_access(&info.owner) {
            Ok(info)
        } else {
            Err(Status::not_found(format!("no job with id {id}")))
        }
    }

    /// Refuses the call unless `caller` may see job `id` (no round trip when
    /// the caller sees every job).
    async fn check_access(&self, caller: &Caller, id: u64) -> Result<(), Status> {
        if !caller.sees_all() {
            self.visible_job(caller, id).await?;
        }
        Ok(())
    }

    async fn ask<T>(
        &self,
        make: impl FnOnce(oneshot::Sender<Result<T, Status>>) -> actor::Request,
    ) -> Result<T, Status> {
        let (tx, rx) = oneshot::channel();
        self.tx
            .send(make(tx))
            .map_err(|_| Status::unavailable("coordinator is shutting down"))?;
        rx.await
            .map_err(|_| Status::unavailable("coordinator is shutting down"))?
    }
}

/// Where finished tasks' values are read: the actor's memory, or (with a
/// state file) the store, through a read-only connection off the actor.
#[derive(Clone)]
enum ResultSource {
    Actor(CoordinatorHandle),
    Store(Arc<Mutex<StoreReader>>),
}

impl ResultSource {
    async fn fetch(
        &self,
        job: u64,
        from: u64,
        order: ResultsOrder,
    ) -> Result<ResultsChunk, Status> {
        match self {
            ResultSource::Actor(handle) => {
                handle
                    .ask(|reply| actor::Request::Results {
                        job,
                        from,
                        order,
                        max: RESULTS_CHUNK,
                        reply,
                    })
                    .await
            }
            ResultSource::Store(reader) => {
                let reader = reader.clone();
                let (rows, mut names) = tokio::task::spawn_blocking(move || {
                    reader
                        .lock()
                        .unwrap_or_else(|p| p.into_inner())
                        .results_from(job, from, order, RESULTS_CHUNK, RESULTS_CHUNK_BYTES)
                })
                .await
                .map_err(|e| Status::internal(e.to_string()))?
                .map_err(|e| match e {
                    ReadError::Damaged { .. } => Status::data_loss(e.to_string()),
                    ReadError::Sql(e) => {
                        Status::unavailable(format!("cannot read the state file: {e}"))
                    }
                })?;
                Ok(results_chunk(rows, |w| names.remove(&w)))
            }
        }
    }
}

/// Who made the call (the interceptor in front of each service put it there).
fn caller<T>(req: &Request<T>) -> Result<Caller, Status> {
    req.extensions()
        .get::<Caller>()
        .cloned()
        .ok_or_else(|| Status::internal("the call was not authenticated"))
}

/// Refuses a caller who is not an admin what `what` ("... needs") an
/// admin token for: every client's jobs.
fn admin_for_all(caller: &Caller, what: &str) -> Result<(), Status> {
    if caller.sees_all() {
        return Ok(());
    }
    Err(Status::permission_denied(format!(
        "{what} an admin token; the token presented is a client token (of {:?})",
        caller.name
    )))
}

/// Whether `caller` (asking for every client's jobs with `all`) sees
/// event `e`: a job's events go to its owner (and admins with `all`; to
/// everyone without authentication), a worker's to everyone, as
/// `ListWorkers` does.
fn sees_event(caller: &Caller, all: bool, e: &Event) -> bool {
    match EventKind::try_from(e.kind) {
        Ok(EventKind::JobSubmitted | EventKind::JobEnded) => {
            caller.role.is_none() || all || caller.name == e.owner
        }
        _ => true,
    }
}

fn job_ref(req: Request<JobRef>) -> Result<u64, Status> {
    match req.into_inner().job_id {
        0 => Err(Status::invalid_argument(
            "job_id must be a job id (≥ 1) from submit or `brigade jobs`",
        )),
        id => Ok(id),
    }
}

fn event(e: job_event::Event) -> JobEvent {
    JobEvent { event: Some(e) }
}

fn is_terminal(info: &JobInfo) -> bool {
    JobState::try_from(info.state).map_or(true, JobState::is_terminal)
}

#[tonic::async_trait]
impl CoordinatorApi for CoordinatorHandle {
    async fn submit_job(
        &self,
        req: Request<SubmitJobRequest>,
    ) -> Result<Response<SubmitJobResponse>, Status> {
        let owner = caller(&req)?.name;
        let spec = req
            .into_inner()
            .spec
            .ok_or_else(|| Status::invalid_argument("missing job spec"))?;
        let job = self.ask(|r| actor::Request::Submit(spec, owner, r)).await?;
        Ok(Response::new(SubmitJobResponse {
            job_id: job.job_id,
            job: Some(job),
        }))
    }

    async fn submit_with_inputs(
        &self,
        req: Request<Streaming<InputsUpload>>,
    ) -> Result<Response<SubmitJobResponse>, Status> {
        let owner = caller(&req)?.name;
        let mut upload = req.into_inner();
        let first = upload.message().await?.ok_or_else(|| {
            Status::invalid_argument("the upload is empty: it must start with the job spec")
        })?;
        let mut spec = first.spec.ok_or_else(|| {
            Status::invalid_argument("the upload's first message has no job spec")
        })?;
        // Refused before a byte of the items is read when the spec itself
        // is wrong (a workload nobody offers, a bad argument).
        let check = spec.clone();
        self.ask(|r| actor::Request::CheckInputsSpec(check, r))
            .await?;
        let chunk = spec.chunk.max(1);
        let max_items = self.limits.max_tasks_per_job.saturating_mul(chunk);
        let mut inputs = Inputs::default();
        let mut message = Some(InputsUpload {
            spec: None,
            ..first
        });
        let mut ended = None;
        while let Some(m) = message.take() {
            if m.spec.is_some() {
                return Err(Status::invalid_argument(
                    "only the upload's first message may carry a job spec",
                ));
            }
            if ended.is_some() {
                return Err(Status::invalid_argument(
                    "the upload went on after its end marker",
                ));
            }
            for item in &m.items {
                if item.len() > AdmissionLimits::MAX_INPUT_ITEM_BYTES {
                    return Err(Status::invalid_argument(format!(
                        "input {} is {} bytes, over the limit of {} bytes per input",
                        inputs.len(),
                        item.len(),
                        AdmissionLimits::MAX_INPUT_ITEM_BYTES
                    )));
                }
                if inputs.len() >= max_items {
                    return Err(Status::invalid_argument(format!(
                        "more than {max_items} inputs: at --chunk {chunk} that is over the \
                         coordinator's {} tasks per job (--max-tasks-per-job); use a larger --chunk",
                        self.limits.max_tasks_per_job
                    )));
                }
                if inputs.bytes() + item.len() as u64 > self.limits.max_input_bytes {
                    return Err(Status::invalid_argument(format!(
                        "the inputs are over the coordinator's limit of {} bytes per job",
                        self.limits.max_input_bytes
                    )));
                }
                inputs.push(item);
            }
            if m.end {
                ended = Some(m.total);
            }
            message = upload.message().await?;
        }
        match ended {
            None => {
                return Err(Status::cancelled(
                    "the upload ended without its end marker (the client stopped): nothing was submitted",
                ))
            }
            Some(total) if total != inputs.len() => {
                return Err(Status::invalid_argument(format!(
                    "the upload announced {total} inputs but carried {}",
                    inputs.len()
                )))
            }
            Some(_) => {}
        }
        spec.has_inputs = true;
        spec.range_start = 0;
        spec.range_end = inputs.len();
        let inputs = Arc::new(inputs);
        let job = self
            .ask(|r| actor::Request::SubmitInputs(spec, inputs, owner, r))
            .await?;
        Ok(Response::new(SubmitJobResponse {
            job_id: job.job_id,
            job: Some(job),
        }))
    }

    async fn get_job(&self, req: Request<JobRef>) -> Result<Response<JobInfo>, Status> {
        let caller = caller(&req)?;
        let id = job_ref(req)?;
        Ok(Response::new(self.visible_job(&caller, id).await?))
    }

    type WatchJobStream = BoxStream<JobInfo>;

    async fn watch_job(
        &self,
        req: Request<JobRef>,
    ) -> Result<Response<Self::WatchJobStream>, Status> {
        let caller = caller(&req)?;
        let id = job_ref(req)?;
        self.check_access(&caller, id).await?;
        Ok(Response::new(self.watch_stream(id).await?))
    }

    async fn list_jobs(
        &self,
        req: Request<ListJobsRequest>,
    ) -> Result<Response<ListJobsResponse>, Status> {
        let caller = caller(&req)?;
        if req.get_ref().all {
            admin_for_all(&caller, "listing every client's jobs (jobs --all) needs")?;
        }
        let mut jobs = self.ask(actor::Request::ListJobs).await?;
        // An admin sees every job with `all`, its own without; a client its
        // own; without authentication every job is everyone's.
        if caller.role.is_some() && !req.get_ref().all {
            jobs.retain(|j| j.owner == caller.name);
        }
        Ok(Response::new(ListJobsResponse { jobs }))
    }

    type WatchEventsStream = BoxStream<Event>;

    async fn watch_events(
        &self,
        req: Request<WatchEventsRequest>,
    ) -> Result<Response<Self::WatchEventsStream>, Status> {
        let caller = caller(&req)?;
        let WatchEventsRequest { follow, all } = *req.get_ref();
        if all {
            admin_for_all(&caller, "every client's job events (events --all) need")?;
        }
        let (recent, rx) = self.ask(actor::Request::Events).await?;
        let who = caller.clone();
        let recent = futures::stream::iter(
            recent
                .into_iter()
                .filter(move |e| sees_event(&who, all, e))
                .map(|e| Ok(Event::clone(&e))),
        );
        if !follow {
            return Ok(Response::new(Box::pin(recent)));
        }
        // Each later event, until the client hangs up (or falls so far
        // behind that events were lost: then it is told, and cut off).
        let later = futures::stream::unfold(Some(rx), move |rx| {
            let caller = caller.clone();
            async move {
                let mut rx = rx?;
                loop {
                    match rx.recv().await {
                        Ok(e) if sees_event(&caller, all, &e) => {
                            return Some((Ok(Event::clone(&e)), Some(rx)))
                        }
                        Ok(_) => continue,
                        Err(tokio::sync::broadcast::error::RecvError::Lagged(n)) => {
                            let why = format!(
                                "this follower fell {n} events behind and missed them; \
                                 follow again (the coordinator keeps the last {})",
                                actor::events::EventLog::KEPT
                            );
                            return Some((Err(Status::resource_exhausted(why)), None));
                        }
                        Err(tokio::sync::broadcast::error::RecvError::Closed) => return None,
                    }
                }
            }
        });
        Ok(Response::new(Box::pin(recent.chain(later))))
    }

    type GetResultsStream = BoxStream<ResultsChunk>;

    async fn get_results(
        &self,
        req: Request<JobRef>,
    ) -> Result<Response<Self::GetResultsStream>, Status> {
        let caller = caller(&req)?;
        let (from, order) = (req.get_ref().from, req.get_ref().order);
        let order = ResultsOrder::try_from(order).map_err(|_| {
            Status::invalid_argument(format!(
                "unknown results order {order}; allowed: 0 (index), 1 (completion)"
            ))
        })?;
        let job = job_ref(req)?;
        self.check_access(&caller, job).await?;
        Ok(Response::new(self.results_stream(job, from, order).await?))
    }

    type RunJobStream = BoxStream<JobEvent>;

    async fn run_job(
        &self,
        req: Request<RunJobRequest>,
    ) -> Result<Response<Self::RunJobStream>, Status> {
        let owner = caller(&req)?.name;
        let req = req.into_inner();
        let spec = req
            .spec
            .ok_or_else(|| Status::invalid_argument("missing job spec"))?;
        // One trip through the actor: accepted (once durable) and watched.
        let rx = self
            .ask(|r| actor::Request::SubmitWatch(spec, owner, r))
            .await?;
        let id = rx.borrow().job_id;
        // The watch's first status is the accepted job (or already later).
        let status = self
            .status_stream(id, rx)
            .map(|i| i.map(|info| event(job_event::Event::Status(info))));
        if !req.results {
            return Ok(Response::new(Box::pin(status)));
        }
        let handle = self.clone();
        let results = futures::stream::once(async move {
            handle
                .results_of_known_job(id, 0, ResultsOrder::Index)
                .await
        })
        .flat_map(|chunks| match chunks {
            Ok(chunks) => chunks,
            Err(e) => Box::pin(futures::stream::once(futures::future::ready(Err(e)))),
        })
        .map(|c| c.map(|chunk| event(job_event::Event::Results(chunk))));
        Ok(Response::new(Box::pin(status.chain(results))))
    }

    async fn cancel_job(&self, req: Request<JobRef>) -> Result<Response<JobInfo>, Status> {
        let caller = caller(&req)?;
        let id = job_ref(req)?;
        self.check_access(&caller, id).await?;
        Ok(Response::new(
            self.ask(|r| actor::Request::Cancel(id, r)).await?,
        ))
    }

    async fn purge_jobs(
        &self,
        req: Request<PurgeJobsRequest>,
    ) -> Result<Response<PurgeJobsResponse>, Status> {
        let caller = caller(&req)?;
        let PurgeJobsRequest { all, older_than_ms } = *req.get_ref();
        if all && !caller.sees_all() {
            return Err(Status::permission_denied(format!(
                "purging every client's jobs (jobs --purge --all) needs an admin token; \
                 the token presented is a client token (of {:?})",
                caller.name
            )));
        }
        // An admin purges every job with `all`, its own without; a client
        // its own; without authentication every job is everyone's.
        let owner = (caller.role.is_some() && !all).then(|| caller.name.clone());
        let job_ids = self
            .ask(|reply| actor::Request::Purge {
                owner,
                older_than_ms,
                reply,
            })
            .await?;
        Ok(Response::new(PurgeJobsResponse { job_ids }))
    }

    type ListFailedTasksStream = BoxStream<FailedTasks>;

    async fn list_failed_tasks(
        &self,
        req: Request<JobRef>,
    ) -> Result<Response<Self::ListFailedTasksStream>, Status> {
        let caller = caller(&req)?;
        let from = req.get_ref().from;
        let job = job_ref(req)?;
        self.check_access(&caller, job).await?;
        let handle = self.clone();
        let fetch = move |from| {
            let handle = handle.clone();
            async move {
                handle
                    .ask(|reply| actor::Request::FailedTasks {
                        job,
                        from,
                        max: FAILED_TASKS_CHUNK,
                        max_bytes: RESULTS_CHUNK_BYTES,
                        reply,
                    })
                    .await
            }
        };
        let first = fetch(from).await?;
        // A chunk that is not empty may have more after it; only an empty
        // one says there is nothing more (and is sent only if it is the
        // first).
        let stream = futures::stream::unfold(Some(first), move |chunk| {
            let fetch = fetch.clone();
            async move {
                let chunk = chunk?;
                let next = match chunk.tasks.last() {
                    Some(last) => match fetch(last.index + 1).await {
                        Ok(c) => (!c.tasks.is_empty()).then_some(c),
                        Err(e) => return Some((Err(e), None)),
                    },
                    None => None,
                };
                Some((Ok(chunk), next))
            }
        });
        Ok(Response::new(Box::pin(stream)))
    }

    async fn list_workers(
        &self,
        _req: Request<ListWorkersRequest>,
    ) -> Result<Response<ListWorkersResponse>, Status> {
        let workers = self.ask(actor::Request::ListWorkers).await?;
        Ok(Response::new(ListWorkersResponse { workers }))
    }

    async fn get_status(
        &self,
        _req: Request<StatusRequest>,
    ) -> Result<Response<ClusterStatus>, Status> {
        Ok(Response::new(self.ask(actor::Request::Status).await?))
    }
}

#[tonic::async_trait]
impl WorkerLink for CoordinatorHandle {
    type AttachStream = BoxStream<CoordinatorMessage>;

    async fn attach(
        &self,
        req: Request<Streaming<WorkerMessage>>,
    ) -> Result<Response<Self::AttachStream>, Status> {
        let mut inbound = req.into_inner();
        let hello = match inbound.message().await? {
            Some(WorkerMessage {
                msg: Some(worker_message::Msg::Hello(h)),
            }) => h,
            _ => {
                return Err(Status::invalid_argument(
                    "the first message on a worker link must be a hello",
                ))
            }
        };
        let connected_unix_ms = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_millis() as u64)
            .unwrap_or(0);
        let (hello, workloads) = worker_hello(hello, connected_unix_ms)?;
        let (sink, out) = mpsc::unbounded_channel();
        let (reply, id) = oneshot::channel();
        self.tx
            .send(actor::Request::WorkerJoined {
                hello,
                workloads,
                sink,
                reply,
            })
            .map_err(|_| Status::unavailable("coordinator is shutting down"))?;
        let id = id
            .await
            .map_err(|_| Status::unavailable("coordinator is shutting down"))?;
        let tx = self.tx.clone();
        tokio::spawn(async move {
            let reason = loop {
                match inbound.message().await {
                    Ok(Some(msg)) => {
                        if tx.send(actor::Request::FromWorker(id, msg)).is_err() {
                            return;
                        }
                    }
                    Ok(None) => break "stream closed by the worker".to_string(),
                    Err(e) => break format!("stream broken: {}", e.message()),
                }
            };
            let _ = tx.send(actor::Request::WorkerGone(id, reason));
        });
        Ok(Response::new(Box::pin(UnboundedReceiverStream::new(out))))
    }
}

/// Why the coordinator could not run.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("gRPC server failed: {0}")]
    Transport(#[from] tonic::transport::Error),
}

/// The HTTP/2 bounds of the coordinator's server (see ARCHITECTURE.md,
/// "HTTP/2 bounds"): what one connection may hold open and what a peer may
/// send ahead of what the coordinator has read.
pub mod http2 {
    use std::time::Duration;

    /// Bytes a peer may send on one stream ahead of what the handler read:
    /// 1 MiB (hyper's default, now explicit). A worker's 8 MiB result batch
    /// flows through it as the link reads; one stream per link, so the link
    /// is as fast as before.
    pub const STREAM_WINDOW: u32 = 1 << 20;
    /// Bytes a peer may send on all of a connection's streams ahead of what
    /// was read: 4 MiB, so four busy streams do not starve each other.
    pub const CONNECTION_WINDOW: u32 = 4 << 20;
    /// Streams one connection may have open at once (a worker link, a
    /// `RunJob` or a `WatchJob` is one stream each); more wait.
    pub const MAX_CONCURRENT_STREAMS: u32 = 256;
    /// Requests one connection may have in its handlers at once; more
    /// wait. A streaming call holds its place only until its response
    /// starts.
    pub const CONCURRENCY_PER_CONNECTION: usize = 256;
    /// Streams a peer may open and reset before the coordinator accepts
    /// them (the "rapid reset" flood) before the connection is closed.
    pub const MAX_PENDING_RESETS: usize = 32;
    /// How often an idle connection is pinged.
    pub const KEEPALIVE_INTERVAL: Duration = Duration::from_secs(10);
    /// How long a ping may go unanswered before the connection is closed.
    pub const KEEPALIVE_TIMEOUT: Duration = Duration::from_secs(20);
}

/// A coordinator whose state is loaded, ready to serve.
pub struct Coordinator {
    actor: Actor,
    config: CoordinatorConfig,
    /// The dashboard and metrics port, if any.
    http: Option<TcpListener>,
}

impl Coordinator {
    /// Opens the state file (if configured) and restores its jobs. A bad
    /// state file is an error here, before anything listens.
    pub fn open(config: CoordinatorConfig) -> Result<Self, StoreError> {
        Ok(Coordinator {
            actor: Actor::new(config.clone())?,
            config,
            http: None,
        })
    }

    /// Also serves HTTP on `listener` while the coordinator runs: the
    /// dashboard (`/`), its JSON (`/api/state`) and Prometheus metrics
    /// (`/metrics`). Unauthenticated and read-only: keep it on loopback or
    /// a private network.
    pub fn with_http(mut self, listener: TcpListener) -> Self {
        self.http = Some(listener);
        self
    }

    /// Runs both gRPC services and the scheduling actor on `listener` until
    /// `shutdown` completes; then flushes the store.
    pub async fn serve(
        self,
        listener: TcpListener,
        shutdown: impl Future<Output = ()> + Send,
    ) -> Result<(), tonic::transport::Error> {
        let (tx, rx) = mpsc::unbounded_channel();
        let tick_every = self.config.tick_every();
        let actor = tokio::spawn(self.actor.run(rx));
        let ticker = {
            let tx = tx.clone();
            tokio::spawn(async move {
                let mut every = tokio::time::interval(tick_every);
                every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
                loop {
                    every.tick().await;
                    if tx.send(actor::Request::Tick).is_err() {
                        return;
                    }
                }
            })
        };
        // gRPC health: SERVING from here (the state file is loaded before
        // the port is served), NOT_SERVING from the shutdown signal on.
        let (health, health_service) = tonic_health::server::health_reporter();
        health
            .set_serving::<CoordinatorServer<CoordinatorHandle>>()
            .await;
        health
            .set_serving::<WorkerLinkServer<CoordinatorHandle>>()
            .await;
        let shutdown = {
            let tx = tx.clone();
            async move {
                shutdown.await;
                tracing::info!("coordinator shutting down");
                health
                    .set_not_serving::<CoordinatorServer<CoordinatorHandle>>()
                    .await;
                health
                    .set_not_serving::<WorkerLinkServer<CoordinatorHandle>>()
                    .await;
                health
                    .set_service_status("", tonic_health::ServingStatus::NotServing)
                    .await;
                let _ = tx.send(actor::Request::Shutdown);
            }
        };
        let http = self
            .http
            .map(|listener| tokio::spawn(crate::observe::http::serve(listener, tx.clone())));
        let (reflection, reflection_alpha) = reflection_services();
        let handle = CoordinatorHandle {
            tx,
            state: self.config.state.clone(),
            limits: self.config.limits,
            result_streams: Arc::new(tokio::sync::Semaphore::new(MAX_RESULT_STREAMS)),
        };
        let incoming = crate::peers::accept(listener, self.config.max_connections_per_peer);
        let auth = Authenticator::new(self.config.auth.clone());
        let mut server = tonic::transport::Server::builder();
        if let Some(tls) = &self.config.tls {
            let mut config =
                ServerTlsConfig::new().identity(Identity::from_pem(&tls.cert_pem, &tls.key_pem));
            if let Some(ca) = &tls.client_ca_pem {
                config = config.client_ca_root(Certificate::from_pem(ca));
            }
            server = server.tls_config(config)?;
        }
        let result = server
            .initial_stream_window_size(http2::STREAM_WINDOW)
            .initial_connection_window_size(http2::CONNECTION_WINDOW)
            .max_concurrent_streams(http2::MAX_CONCURRENT_STREAMS)
            .concurrency_limit_per_connection(http2::CONCURRENCY_PER_CONNECTION)
            .http2_max_pending_accept_reset_streams(Some(http2::MAX_PENDING_RESETS))
            .http2_keepalive_interval(Some(http2::KEEPALIVE_INTERVAL))
            .http2_keepalive_timeout(Some(http2::KEEPALIVE_TIMEOUT))
            .add_service(InterceptedService::new(
                CoordinatorServer::new(handle.clone()).max_decoding_message_size(64 << 20),
                authenticate(auth.clone(), Service::Coordinator),
            ))
            .add_service(InterceptedService::new(
                WorkerLinkServer::new(handle).max_decoding_message_size(64 << 20),
                authenticate(auth, Service::WorkerLink),
            ))
            // Open to anyone who reaches the port, like the port itself:
            // they tell whether it serves and what the API is, nothing more.
            .add_service(health_service)
            .add_service(reflection)
            .add_service(reflection_alpha)
            .serve_with_incoming_shutdown(incoming, shutdown)
            .await;
        ticker.abort();
        if let Some(http) = http {
            // Ends its connections too: none keeps the actor alive.
            http.abort();
            let _ = http.await;
        }
        // Every sender is gone once the server's tasks are: the actor then
        // flushes the store and returns.
        let abort = actor.abort_handle();
        if tokio::time::timeout(Duration::from_secs(5), actor)
            .await
            .is_err()
        {
            tracing::warn!("the scheduling actor did not stop within 5 s");
            abort.abort();
        }
        result
    }
}

/// The interceptor in front of `service`: establishes the [`Caller`] (for
/// the handlers, in the request's extensions) or refuses the call.
fn authenticate(
    auth: Authenticator,
    service: Service,
) -> impl FnMut(Request<()>) -> Result<Request<()>, Status> + Clone {
    move |mut req: Request<()>| match auth.check(service, req.metadata()) {
        Ok(caller) => {
            req.extensions_mut().insert(caller);
            Ok(req)
        }
        Err(status) => {
            let peer = req.remote_addr().map(|a| a.to_string()).unwrap_or_default();
            tracing::info!(?service, %peer, code = ?status.code(), "call refused");
            Err(status)
        }
    }
}

/// Opens the state and runs the coordinator on `listener` until `shutdown`.
pub async fn serve(
    listener: TcpListener,
    config: CoordinatorConfig,
    shutdown: impl Future<Output = ()> + Send,
) -> Result<(), ServeError> {
    Coordinator::open(config)?.serve(listener, shutdown).await?;
    Ok(())
}

/// gRPC reflection (v1 and v1alpha, which older grpcurl builds ask for)
/// over brigade's services and the health service, so stock tools can list
/// and describe them.
fn reflection_services() -> (
    tonic_reflection::server::v1::ServerReflectionServer<
        impl tonic_reflection::server::v1::ServerReflection,
    >,
    tonic_reflection::server::v1alpha::ServerReflectionServer<
        impl tonic_reflection::server::v1alpha::ServerReflection,
    >,
) {
    let builder = || {
        tonic_reflection::server::Builder::configure()
            .register_encoded_file_descriptor_set(brigade_proto::FILE_DESCRIPTOR_SET)
            .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
    };
    // The descriptor sets are built into the binary: a failure here is a
    // build defect, not something a user or peer can cause.
    let v1 = builder()
        .build_v1()
        .expect("the embedded descriptor sets are valid");
    let alpha = builder()
        .build_v1alpha()
        .expect("the embedded descriptor sets are valid");
    (v1, alpha)
}
