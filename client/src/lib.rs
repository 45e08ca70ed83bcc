//! brigade-client: a typed connection to a brigade coordinator.
//!
//! [`Client`] connects with errors that say what to do, submits jobs, follows
//! them to their end (reconnecting when the coordinator restarts), streams
//! their results and failed tasks, cancels them and lists jobs and workers. The `brigade` CLI,
//! the experiment lab and users' programs all go through it; the raw gRPC
//! client stays reachable through [`Client::raw`].

#![deny(missing_docs)]

mod error;
pub mod inputs;
mod names;

use std::time::{Duration, Instant};

use brigade_proto::connect::{self, BearerToken};
use brigade_proto::convert::join_u128;
use brigade_proto::v1::coordinator_client::CoordinatorClient;
use brigade_proto::v1::{
    job_event, InputsUpload, JobRef, ListJobsRequest, ListWorkersRequest, PurgeJobsRequest,
    ResultsChunk, ResultsOrder, RunJobRequest, StatusRequest, SubmitJobRequest, WatchEventsRequest,
};
use futures::stream::{self, BoxStream, StreamExt, TryStreamExt};
use tonic::service::interceptor::InterceptedService;
use tonic::transport::Channel;
use tonic::Streaming;

pub use brigade_proto::connect::Credentials;
pub use brigade_proto::v1::{
    ClusterStatus, Event, EventKind, FailedTask, FailureGroup, InputsFormat, JobInfo, JobSpec,
    JobState, Kind, Model, Reduce, WorkerInfo,
};
pub use brigade_proto::Output;
pub use error::ClientError;
pub use names::{
    model_name, parse_inputs_format, parse_kind, parse_kv, parse_model, parse_range, state_name,
    total,
};

/// The order [`Client::results_in`] streams rows in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Order {
    /// By task index.
    #[default]
    Index,
    /// As the coordinator recorded them.
    Completion,
}

/// The default coordinator address for client commands.
pub const DEFAULT_COORDINATOR: &str = "http://127.0.0.1:7070";

/// How long [`Client::wait`] keeps trying to get back to a coordinator it lost.
const RECONNECT_FOR: Duration = Duration::from_secs(60);
/// The pause between two attempts to follow a job again.
const RECONNECT_EVERY: Duration = Duration::from_millis(500);

/// A job's status updates, from [`Client::watch`].
pub type JobUpdates = BoxStream<'static, Result<JobInfo, ClientError>>;
/// What [`Client::run`] streams back.
pub type RunEvents = BoxStream<'static, Result<RunEvent, ClientError>>;
/// A job's rows in index order, from [`Client::results`].
pub type ResultRows = BoxStream<'static, Result<ResultRow, ClientError>>;
/// A job's failed tasks in index order, from [`Client::failed_tasks`].
pub type FailedTaskRows = BoxStream<'static, Result<FailedTask, ClientError>>;
/// The coordinator's events, from [`Client::events`].
pub type Events = BoxStream<'static, Result<Event, ClientError>>;

/// One done task's output, and how the task ran.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResultRow {
    /// The task's index in its job.
    pub index: u64,
    /// What it produced.
    pub output: Output,
    /// How it ran.
    pub run: RunInfo,
}

/// How a done task ran, as the coordinator recorded it. Fields it did not
/// record (results stored by an older brigade, or sent by one) are zero,
/// empty or `None`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RunInfo {
    /// The attempt that made the output: 1 for a first run; more when
    /// earlier attempts failed, timed out or were lost with their worker.
    pub attempts: u32,
    /// The worker's id (0: not known).
    pub worker_id: u64,
    /// The worker's name (`--name`; empty: not known).
    pub worker: String,
    /// The model it ran on.
    pub model: Option<Model>,
    /// CPU time the task used, as its worker measured it.
    pub cpu: Duration,
    /// Wall time the task took.
    pub wall: Duration,
    /// When the coordinator recorded the result, in µs since the Unix
    /// epoch (0: not known; a coordinator without a state file knows it
    /// in completion order only: [`Order::Completion`]). It ran from
    /// about `wall` before then: the worker reports results in batches.
    pub ended_unix_us: u64,
}

/// The most items one upload message carries, and the most bytes (an item
/// larger than that travels alone).
pub const UPLOAD_CHUNK_ITEMS: usize = 4_096;
/// See [`UPLOAD_CHUNK_ITEMS`].
pub const UPLOAD_CHUNK_BYTES: usize = 1 << 20;

/// One message of a [`Client::run`] stream.
// Status events are most of a stream: boxing them would allocate for each.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq)]
pub enum RunEvent {
    /// The job's status: first when it is accepted, then as it changes, last
    /// when it ends.
    Status(JobInfo),
    /// After the job ended (when results were asked for): its rows in index
    /// order.
    Results(Vec<ResultRow>),
}

/// What [`Client::wait`] reports while it follows a job.
#[derive(Debug, Clone, Copy)]
pub enum WaitEvent<'a> {
    /// The job's status changed.
    Status(&'a JobInfo),
    /// The coordinator went away (`why`); waiting tries again shortly.
    Reconnecting {
        /// What broke the status stream.
        why: &'a str,
    },
}

/// A connection to a coordinator.
///
/// Cloning is cheap: clones share one HTTP/2 connection.
///
/// ```no_run
/// use brigade_client::{Client, JobSpec, Model};
///
/// #[tokio::main(flavor = "current_thread")]
/// async fn main() -> Result<(), brigade_client::ClientError> {
///     let mut client = Client::connect(brigade_client::DEFAULT_COORDINATOR).await?;
///     let job = client
///         .submit(JobSpec {
///             workload: "sum-squares".into(),
///             range_start: 0,
///             range_end: 60_000_000,
///             chunk: 1_500_000,
///             model: Model::Process as i32,
///             ..Default::default()
///         })
///         .await?;
///     let done = client.wait(job.job_id, |_| {}).await?;
///     println!(
///         "job {} {}: total {}",
///         done.job_id,
///         brigade_client::state_name(done.state),
///         brigade_client::total(&done)
///     );
///     for (index, value) in client.fetch_results(job.job_id).await? {
///         println!("{index}\t{value}");
///     }
///     Ok(())
/// }
/// ```
#[derive(Debug, Clone)]
pub struct Client {
    inner: CoordinatorClient<Transport>,
    /// The connection, for the services beside brigade's (health).
    channel: Channel,
}

/// The channel under a [`Client`]: one HTTP/2 connection (TLS with
/// `https://`), every call carrying the token, if any.
pub type Transport = InterceptedService<Channel, BearerToken>;

impl Client {
    /// Connects to the coordinator at `url` (`http://HOST:PORT`), with no
    /// credentials, or explains why not.
    pub async fn connect(url: &str) -> Result<Client, ClientError> {
        Client::connect_with(url, &Credentials::default()).await
    }

    /// Connects to the coordinator at `url` (`http://HOST:PORT`, or
    /// `https://HOST:PORT` for TLS) presenting `creds`, or explains why not.
    pub async fn connect_with(url: &str, creds: &Credentials) -> Result<Client, ClientError> {
        let bad_url = |why: String| ClientError::BadUrl {
            url: url.to_string(),
            why,
        };
        let endpoint = connect::endpoint(url, creds).map_err(bad_url)?;
        let token = BearerToken::new(creds.token.as_deref()).map_err(ClientError::Protocol)?;
        let channel = endpoint.connect().await.map_err(|e| {
            let mut why = e.to_string();
            let mut src = std::error::Error::source(&e);
            while let Some(s) = src {
                why = format!("{why}: {s}");
                src = s.source();
            }
            if let Some(hint) = connect::transport_hint(url, &why) {
                why = format!("{why}\n{hint}");
            }
            ClientError::Unreachable {
                url: url.to_string(),
                why,
            }
        })?;
        Ok(Client {
            inner: CoordinatorClient::with_interceptor(channel.clone(), token)
                .max_decoding_message_size(64 << 20),
            channel,
        })
    }

    /// Whether the coordinator serves `service` (`""`: as a whole), by the
    /// standard gRPC health protocol (which needs no token). An unknown
    /// service is an error.
    pub async fn health(&mut self, service: &str) -> Result<bool, ClientError> {
        use tonic_health::pb::health_check_response::ServingStatus;
        use tonic_health::pb::{health_client::HealthClient, HealthCheckRequest};
        let status = HealthClient::new(self.channel.clone())
            .check(HealthCheckRequest {
                service: service.to_string(),
            })
            .await?
            .into_inner()
            .status;
        Ok(status == ServingStatus::Serving as i32)
    }

    /// The generated gRPC client, for calls this type does not wrap.
    pub fn raw(&mut self) -> &mut CoordinatorClient<Transport> {
        &mut self.inner
    }

    /// Submits a job; the coordinator answers once it is accepted (durably,
    /// with a state file).
    pub async fn submit(&mut self, spec: JobSpec) -> Result<JobInfo, ClientError> {
        self.inner
            .submit_job(SubmitJobRequest { spec: Some(spec) })
            .await?
            .into_inner()
            .job
            .ok_or_else(|| ClientError::Protocol("the coordinator returned no job".into()))
    }

    /// Submits an inputs job: `spec` (its range is ignored; `chunk` items
    /// make a task) and its items, uploaded in bounded messages as `items`
    /// yields them, so an input of any size costs bounded memory here. The
    /// job is accepted only once the whole upload arrived: if `items` yields
    /// an error, nothing is submitted and that error is returned.
    pub async fn submit_inputs<S>(
        &mut self,
        spec: JobSpec,
        items: S,
    ) -> Result<JobInfo, ClientError>
    where
        S: futures::Stream<Item = Result<Vec<u8>, ClientError>> + Send + 'static,
    {
        let failed = std::sync::Arc::new(std::sync::Mutex::new(None::<ClientError>));
        let upload = upload_messages(spec, items, failed.clone());
        let answer = self.inner.submit_with_inputs(upload).await;
        if let Some(e) = failed.lock().ok().and_then(|mut f| f.take()) {
            return Err(e);
        }
        answer?
            .into_inner()
            .job
            .ok_or_else(|| ClientError::Protocol("the coordinator returned no job".into()))
    }

    /// Submits a job and streams its status to the end, then (if
    /// `with_results`) its results, on one call.
    pub async fn run(
        &mut self,
        spec: JobSpec,
        with_results: bool,
    ) -> Result<RunEvents, ClientError> {
        let events = self
            .inner
            .run_job(RunJobRequest {
                spec: Some(spec),
                results: with_results,
            })
            .await?
            .into_inner();
        Ok(events
            .map_err(ClientError::from)
            .try_filter_map(|e| {
                futures::future::ready(Ok(e.event.map(|event| match event {
                    job_event::Event::Status(info) => RunEvent::Status(info),
                    job_event::Event::Results(chunk) => RunEvent::Results(chunk_rows(chunk)),
                })))
            })
            .boxed())
    }

    /// One job's status.
    pub async fn job(&mut self, job_id: u64) -> Result<JobInfo, ClientError> {
        Ok(self
            .inner
            .get_job(JobRef {
                job_id,
                ..JobRef::default()
            })
            .await?
            .into_inner())
    }

    /// A job's status now and at every change until it ends.
    pub async fn watch(&mut self, job_id: u64) -> Result<JobUpdates, ClientError> {
        let updates = self
            .inner
            .watch_job(JobRef {
                job_id,
                ..JobRef::default()
            })
            .await?
            .into_inner();
        Ok(updates.map_err(ClientError::from).boxed())
    }

    /// Follows a job until it ends and returns its final status, telling
    /// `observe` every update. If the coordinator goes away (a restart, the
    /// network), the job is followed again every half second for up to a
    /// minute before giving up with [`ClientError::Lost`].
    pub async fn wait(
        &mut self,
        job_id: u64,
        mut observe: impl FnMut(WaitEvent<'_>),
    ) -> Result<JobInfo, ClientError> {
        // Set while the coordinator is unreachable: when we lost it.
        let mut lost_since: Option<Instant> = None;
        loop {
            match self.follow(job_id, &mut observe).await {
                Ok(info) => return Ok(info),
                Err(Follow::Fatal(e)) => return Err(e),
                Err(Follow::Lost(why)) => {
                    let since = *lost_since.get_or_insert_with(Instant::now);
                    if since.elapsed() > RECONNECT_FOR {
                        return Err(ClientError::Lost {
                            job_id,
                            within: RECONNECT_FOR,
                            why,
                        });
                    }
                    observe(WaitEvent::Reconnecting { why: &why });
                    tokio::time::sleep(RECONNECT_EVERY).await;
                }
            }
        }
    }

    /// Follows one watch stream to the job's end.
    async fn follow(
        &mut self,
        job_id: u64,
        observe: &mut impl FnMut(WaitEvent<'_>),
    ) -> Result<JobInfo, Follow> {
        let classify = |s: tonic::Status| {
            if error::is_lost(&s) {
                Follow::Lost(s.message().to_string())
            } else if s.code() == tonic::Code::NotFound {
                Follow::Fatal(ClientError::JobForgotten(s))
            } else {
                Follow::Fatal(ClientError::Status(s))
            }
        };
        let mut stream = self
            .inner
            .watch_job(JobRef {
                job_id,
                ..JobRef::default()
            })
            .await
            .map_err(classify)?
            .into_inner();
        while let Some(info) = stream.message().await.map_err(classify)? {
            observe(WaitEvent::Status(&info));
            if JobState::try_from(info.state).is_ok_and(JobState::is_terminal) {
                return Ok(info);
            }
        }
        Err(Follow::Lost(
            "the status stream ended before the job did".into(),
        ))
    }

    /// The caller's own jobs (every job, when the coordinator does not
    /// authenticate).
    pub async fn jobs(&mut self) -> Result<Vec<JobInfo>, ClientError> {
        self.list_jobs(false).await
    }

    /// Every client's jobs: needs an admin token on a coordinator with
    /// `--auth-file` (PERMISSION_DENIED otherwise).
    pub async fn all_jobs(&mut self) -> Result<Vec<JobInfo>, ClientError> {
        self.list_jobs(true).await
    }

    async fn list_jobs(&mut self, all: bool) -> Result<Vec<JobInfo>, ClientError> {
        Ok(self
            .inner
            .list_jobs(ListJobsRequest { all })
            .await?
            .into_inner()
            .jobs)
    }

    /// A job's results as they stream in: every done task's row, in index
    /// order.
    pub async fn results(&mut self, job_id: u64) -> Result<ResultRows, ClientError> {
        self.results_from(job_id, 0).await
    }

    /// [`Client::results`] from task index `from` on.
    pub async fn results_from(
        &mut self,
        job_id: u64,
        from: u64,
    ) -> Result<ResultRows, ClientError> {
        self.results_in(job_id, Order::Index, from).await
    }

    /// A job's done tasks' rows in `order`: in index order from task index
    /// `from` on, or in the order they were recorded after skipping the
    /// first `from` of them (a follower passes how many it has seen: that
    /// count only grows while the job runs).
    ///
    /// ```no_run
    /// # async fn show(client: &mut brigade_client::Client) -> Result<(), brigade_client::ClientError> {
    /// use brigade_client::Order;
    /// use futures::StreamExt;
    ///
    /// let mut rows = client.results_in(7, Order::Completion, 0).await?;
    /// while let Some(row) = rows.next().await {
    ///     let row = row?;
    ///     println!("task {} took {:?} on {}", row.index, row.run.wall, row.run.worker);
    /// }
    /// # Ok(()) }
    /// ```
    pub async fn results_in(
        &mut self,
        job_id: u64,
        order: Order,
        from: u64,
    ) -> Result<ResultRows, ClientError> {
        let chunks = self.result_chunks(job_id, from, order).await?;
        Ok(chunks
            .map_err(ClientError::from)
            .map_ok(|chunk| stream::iter(chunk_rows(chunk).into_iter().map(Ok)))
            .try_flatten()
            .boxed())
    }

    /// Every done task's `(index, value)`, in index order, in one vector, for
    /// a job whose outputs are integers (a byte output is an error).
    pub async fn fetch_results(&mut self, job_id: u64) -> Result<Vec<(u64, u128)>, ClientError> {
        let mut chunks = self.result_chunks(job_id, 0, Order::Index).await?;
        let mut out = Vec::new();
        while let Some(chunk) = chunks.message().await? {
            for row in chunk_rows(chunk) {
                let v = row.output.as_int().ok_or_else(|| {
                    ClientError::Protocol(format!(
                        "task {} of job {job_id} has a byte output, not an integer",
                        row.index
                    ))
                })?;
                out.push((row.index, v));
            }
        }
        Ok(out)
    }

    async fn result_chunks(
        &mut self,
        job_id: u64,
        from: u64,
        order: Order,
    ) -> Result<Streaming<ResultsChunk>, ClientError> {
        let order = match order {
            Order::Index => ResultsOrder::Index,
            Order::Completion => ResultsOrder::Completion,
        } as i32;
        Ok(self
            .inner
            .get_results(JobRef {
                job_id,
                from,
                order,
            })
            .await?
            .into_inner())
    }

    /// Every task of a job that failed for good, with its error, in index
    /// order, as they stream in (a job's status lists only the first 100).
    pub async fn failed_tasks(&mut self, job_id: u64) -> Result<FailedTaskRows, ClientError> {
        let chunks = self
            .inner
            .list_failed_tasks(JobRef {
                job_id,
                ..JobRef::default()
            })
            .await?
            .into_inner();
        Ok(chunks
            .map_err(ClientError::from)
            .map_ok(|chunk| stream::iter(chunk.tasks.into_iter().map(Ok)))
            .try_flatten()
            .boxed())
    }

    /// Cancels a job; returns its status after the cancellation.
    pub async fn cancel(&mut self, job_id: u64) -> Result<JobInfo, ClientError> {
        Ok(self
            .inner
            .cancel_job(JobRef {
                job_id,
                ..JobRef::default()
            })
            .await?
            .into_inner())
    }

    /// Purges your jobs that ended at least `older_than` ago (every
    /// client's with `all`, which needs an admin token on a coordinator with
    /// `--auth-file`): their status and results are forgotten, in the state
    /// file too, and their ids are never given again. Jobs still queued or
    /// running are kept. Returns the ids purged, ascending.
    pub async fn purge(
        &mut self,
        all: bool,
        older_than: std::time::Duration,
    ) -> Result<Vec<u64>, ClientError> {
        let older_than_ms = u64::try_from(older_than.as_millis()).unwrap_or(u64::MAX);
        Ok(self
            .inner
            .purge_jobs(PurgeJobsRequest { all, older_than_ms })
            .await?
            .into_inner()
            .job_ids)
    }

    /// The coordinator's events (jobs submitted and ended, workers linked
    /// and lost): the recent ones it keeps, then with `follow` each new
    /// one as it happens, until the stream is dropped. Job events are of
    /// the caller's own jobs, or with `all` (an admin token, on a
    /// coordinator with `--auth-file`) of every client's.
    pub async fn events(&mut self, follow: bool, all: bool) -> Result<Events, ClientError> {
        let events = self
            .inner
            .watch_events(WatchEventsRequest { follow, all })
            .await?
            .into_inner();
        Ok(events.map_err(ClientError::from).boxed())
    }

    /// The workers linked to the coordinator.
    pub async fn workers(&mut self) -> Result<Vec<WorkerInfo>, ClientError> {
        Ok(self
            .inner
            .list_workers(ListWorkersRequest {})
            .await?
            .into_inner()
            .workers)
    }

    /// The cluster's status: version, workers and slots, jobs and tasks.
    pub async fn status(&mut self) -> Result<ClusterStatus, ClientError> {
        Ok(self.inner.get_status(StatusRequest {}).await?.into_inner())
    }
}

/// Why one attempt to follow a job stopped short of its end.
enum Follow {
    /// The coordinator went away (restart, network): try again.
    Lost(String),
    Fatal(ClientError),
}

/// A results chunk's rows: integers in columns, or (when the chunk holds
/// byte outputs) one data entry per row, moved out of the chunk (a chunk of
/// large outputs is not held twice); each with how its task ran.
fn chunk_rows(chunk: ResultsChunk) -> Vec<ResultRow> {
    let ResultsChunk {
        index,
        lo,
        hi,
        data,
        is_int,
        attempts,
        worker,
        model,
        cpu_ns,
        wall_ns,
        worker_names,
        ended_us,
    } = chunk;
    let mut ended = 0i64;
    let ended: Vec<u64> = ended_us
        .iter()
        .map(|&d| {
            ended = ended.wrapping_add(d);
            u64::try_from(ended).unwrap_or(0)
        })
        .collect();
    let outputs: Vec<Output> = if data.is_empty() {
        join_u128(&lo, &hi).map(Output::Int).collect()
    } else {
        data.into_iter()
            .enumerate()
            .map(|(i, data)| {
                let int = is_int.get(i).copied().unwrap_or(false);
                match std::str::from_utf8(&data).ok().filter(|_| int) {
                    Some(text) => text.parse().map(Output::Int).ok(),
                    None => None,
                }
                .unwrap_or(Output::Bytes(data))
            })
            .collect()
    };
    let at = |col: &[u64], i: usize| col.get(i).copied().unwrap_or(0);
    index
        .into_iter()
        .zip(outputs)
        .enumerate()
        .map(|(i, (index, output))| {
            let worker_id = at(&worker, i);
            let worker = worker_names.get(&worker_id).cloned().unwrap_or_default();
            ResultRow {
                index,
                output,
                run: RunInfo {
                    attempts: attempts.get(i).copied().unwrap_or(0),
                    worker_id,
                    worker,
                    model: model
                        .get(i)
                        .and_then(|&m| Model::try_from(m).ok())
                        .filter(|&m| m != Model::Unspecified),
                    cpu: Duration::from_nanos(at(&cpu_ns, i)),
                    wall: Duration::from_nanos(at(&wall_ns, i)),
                    ended_unix_us: at(&ended, i),
                },
            }
        })
        .collect()
}

/// The messages of an inputs upload: the spec, the items in bounded
/// batches, the end marker with the count. An error from `items` is kept
/// in `failed` and ends the upload without its end marker.
fn upload_messages<S>(
    spec: JobSpec,
    items: S,
    failed: std::sync::Arc<std::sync::Mutex<Option<ClientError>>>,
) -> impl futures::Stream<Item = InputsUpload> + Send + 'static
where
    S: futures::Stream<Item = Result<Vec<u8>, ClientError>> + Send + 'static,
{
    struct State<S> {
        items: std::pin::Pin<Box<S>>,
        spec: Option<JobSpec>,
        total: u64,
        done: bool,
        failed: std::sync::Arc<std::sync::Mutex<Option<ClientError>>>,
        held: Option<Vec<u8>>,
    }
    let state = State {
        items: Box::pin(items),
        spec: Some(spec),
        total: 0,
        done: false,
        failed,
        held: None,
    };
    stream::unfold(state, |mut st| async move {
        if st.done {
            return None;
        }
        // The spec goes alone, at once: the coordinator checks it before
        // any item arrives (a slow or endless source is refused early).
        if let Some(spec) = st.spec.take() {
            let msg = InputsUpload {
                spec: Some(spec),
                ..Default::default()
            };
            return Some((msg, st));
        }
        let mut msg = InputsUpload::default();
        let mut bytes = 0usize;
        if let Some(item) = st.held.take() {
            bytes += item.len();
            msg.items.push(item);
        }
        while msg.items.len() < UPLOAD_CHUNK_ITEMS && bytes < UPLOAD_CHUNK_BYTES {
            match st.items.next().await {
                Some(Ok(item)) => {
                    if !msg.items.is_empty() && bytes + item.len() > UPLOAD_CHUNK_BYTES {
                        st.held = Some(item);
                        break;
                    }
                    bytes += item.len();
                    msg.items.push(item);
                }
                Some(Err(e)) => {
                    if let Ok(mut f) = st.failed.lock() {
                        *f = Some(e);
                    }
                    return None;
                }
                None => {
                    msg.end = true;
                    st.done = true;
                    break;
                }
            }
        }
        st.total += msg.items.len() as u64;
        if msg.end {
            msg.total = st.total;
        }
        Some((msg, st))
    })
}
