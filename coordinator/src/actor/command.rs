//! The actor's vocabulary: the [`Request`]s gRPC handlers and worker links
//! send it, and how each is answered.

use brigade_proto::v1::{
    ClusterStatus, CoordinatorMessage, FailedTasks, JobInfo, JobSpec, ResultsChunk, ResultsOrder,
    WorkerInfo, WorkerMessage,
};
use tokio::sync::{mpsc, oneshot, watch};
use tonic::Status;

use std::sync::Arc;

use brigade_proto::catalog::WorkloadDef;

use crate::inputs::Inputs;
use crate::observe::dashboard::DashboardState;
use crate::observe::metrics::MetricsSnapshot;
use crate::sched::{JobId, WorkerHello, WorkerId};

/// Where the actor sends a worker's downstream messages.
pub type WorkerSink = mpsc::UnboundedSender<Result<CoordinatorMessage, Status>>;

/// Where the actor answers one request.
pub type Reply<T> = oneshot::Sender<Result<T, Status>>;

/// Requests to the actor.
#[derive(Debug)]
pub enum Request {
    /// Submit a job owned by the named client ("" without authentication).
    Submit(JobSpec, String, Reply<JobInfo>),
    /// Check an inputs job's spec before its items are uploaded (as if it
    /// had one item): a bad workload or argument is refused at once.
    CheckInputsSpec(JobSpec, Reply<()>),
    /// Submit an inputs job with its uploaded items.
    SubmitInputs(JobSpec, Arc<Inputs>, String, Reply<JobInfo>),
    /// Submit, answered (once durable) with a watch on the job's status
    /// rather than the status: one trip through the actor for RunJob.
    SubmitWatch(JobSpec, String, Reply<watch::Receiver<JobInfo>>),
    GetJob(JobId, Reply<JobInfo>),
    Watch(JobId, Reply<watch::Receiver<JobInfo>>),
    ListJobs(Reply<Vec<JobInfo>>),
    Results {
        job: JobId,
        from: u64,
        order: ResultsOrder,
        max: usize,
        reply: Reply<ResultsChunk>,
    },
    Cancel(JobId, Reply<JobInfo>),
    /// Forget the ended jobs of `owner` (every owner's for `None`) that
    /// ended at least `older_than_ms` ago; answered with their ids.
    Purge {
        owner: Option<String>,
        older_than_ms: u64,
        reply: Reply<Vec<JobId>>,
    },
    /// Failed tasks of `job` from task index `from` on: at most `max`, and
    /// no more once their errors reach `max_bytes` (at least one).
    FailedTasks {
        job: JobId,
        from: u64,
        max: usize,
        max_bytes: usize,
        reply: Reply<FailedTasks>,
    },
    ListWorkers(Reply<Vec<WorkerInfo>>),
    /// The recent events and a receiver of the later ones (`WatchEvents`).
    Events(Reply<super::events::EventsSince>),
    Status(Reply<ClusterStatus>),
    WorkerJoined {
        hello: WorkerHello,
        /// The definitions of the workloads it runs.
        workloads: Vec<WorkloadDef>,
        sink: WorkerSink,
        reply: oneshot::Sender<WorkerId>,
    },
    FromWorker(WorkerId, WorkerMessage),
    WorkerGone(WorkerId, String),
    /// The periodic tick: heartbeats down every link, expiries, unserved jobs.
    Tick,
    /// The actor's own wake-up at the next worker's lease deadline.
    Expire,
    /// Close every worker stream and watcher so the server can stop.
    Shutdown,
    /// What `/metrics` shows.
    Metrics(oneshot::Sender<MetricsSnapshot>),
    /// What the dashboard shows.
    Dashboard(oneshot::Sender<DashboardState>),
}

/// How an accepted submission is answered once it is durable.
#[derive(Debug)]
pub(crate) enum Ack {
    Info(Reply<JobInfo>),
    Watch(Reply<watch::Receiver<JobInfo>>),
}

impl Ack {
    /// Answers the submission with an error instead.
    pub(crate) fn refuse(self, status: Status) {
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
