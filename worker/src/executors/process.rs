//! Process slots: P executor children (`brigade executor`), each in its own
//! process group so killing it kills everything it started, each driven by a
//! supervisor task that feeds it task frames from the shared queue (the most
//! recently idle supervisor first, so a trickle of tasks keeps going to the
//! same warm children) and hands outcomes over in batches. A frame carries
//! one task, or several short tasks of one job (up to 200 µs of their recent
//! run time). A child that dies mid-task fails that task (EXECUTOR_DIED) and
//! is replaced (mid-frame, the unanswered tasks run again one at a time to
//! find the one); a task over its timeout gets its child's group killed
//! (TIMED_OUT) and the child replaced.

use std::os::unix::process::ExitStatusExt;
use std::path::PathBuf;
use std::process::{ExitStatus, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use brigade_proto::v1::{
    AssignBatch, InputsFormat, Model, OutcomeStatus, TaskAssignment, TaskOutcome,
};
use brigade_proto::Output;
use prost::Message;
use tokio::io::{AsyncWriteExt, BufReader};
use tokio::process::{Child, ChildStdin, ChildStdout, Command};
use tokio::sync::{broadcast, watch};
use tokio::task::JoinHandle;

use super::frame::read_frame;
use super::queue::{Takers, TaskQueue};
use super::{duration_ns, Outcomes, PendingOutcomes, TaskDone, TaskRun, SHUTTING_DOWN};
use crate::contain;
use crate::node::user_job_id;
use crate::reaper;
use crate::workload::Workload;

/// How long a child that closed its output gets to exit on its own before its
/// group is killed (so its real exit status can be reported).
const EXIT_GRACE: Duration = Duration::from_secs(1);
/// Cancels buffered per slot; a slot only ever needs the latest few.
const CANCEL_BACKLOG: usize = 256;
/// Pause before retrying a child that could not be started.
const RESPAWN_BACKOFF: Duration = Duration::from_millis(500);

/// Tasks of one job that go to a child in one frame: as many as fit in
/// [`BATCH_BUDGET`] of the job's recent task time, at most this many.
const MAX_BATCH: usize = 64;
/// Work one frame may carry. A frame's tasks run one after another on one
/// child while other children may idle, so this bounds that imbalance; it
/// saves a pipe round trip (two wake-ups) per task below it.
const BATCH_BUDGET: Duration = Duration::from_micros(200);

/// The answer to `task` from its child's outcome.
fn done_of(task: &TaskRun, o: TaskOutcome) -> TaskDone {
    let status = OutcomeStatus::try_from(o.status).unwrap_or(OutcomeStatus::Failed);
    let mut d = TaskDone::unrun(task, Model::Process, status, "");
    d.error = o.error;
    d.value = match o.output {
        Some(b) => Output::Bytes(b),
        None => Output::Int(o.value.map(u128::from).unwrap_or(0)),
    };
    d.cpu_ns = o.cpu_ns;
    d.wall_ns = o.wall_ns;
    d.ready_ns = o.ready_ns;
    d
}

/// PIDs of the live children, one entry per slot.
type Pids = Arc<Mutex<Vec<Option<u32>>>>;

/// Frames sent to children and the tasks they carried.
#[derive(Default)]
struct FrameCount {
    frames: AtomicU64,
    tasks: AtomicU64,
}

#[derive(Clone)]
struct Launcher {
    program: PathBuf,
    args: Vec<String>,
}

impl Launcher {
    fn spawn(&self) -> std::io::Result<ExecutorChild> {
        let mut cmd = Command::new(&self.program);
        cmd.args(&self.args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            // Its own group: `kill(-pgid)` then reaches any grandchild too,
            // and a terminal's Ctrl-C goes to the worker alone, which decides.
            .process_group(0)
            .kill_on_drop(true);
        // Dies with the worker; registers the commands it starts with the
        // worker's reaper; makes their cgroup leaves in the worker's directory.
        contain::die_with_parent(&mut cmd);
        reaper::inherit(&mut cmd);
        if let Some(dir) = contain::cgroup_dir() {
            cmd.env(contain::CGROUP_DIR_ENV, dir);
        }
        let mut child = cmd.spawn()?;
        let pid = child
            .id()
            .ok_or_else(|| std::io::Error::other("executor child exited at once"))?;
        let (Some(stdin), Some(stdout)) = (child.stdin.take(), child.stdout.take()) else {
            kill_group(pid);
            return Err(std::io::Error::other("executor child has no stdio pipes"));
        };
        Ok(ExecutorChild {
            child,
            pid,
            stdin,
            stdout: BufReader::new(stdout),
            frame: Vec::with_capacity(256),
            header: None,
        })
    }
}

/// SIGKILL to a child's whole process group, and to the commands it started
/// (their groups and cgroup leaves: see [`contain::kill_owner`]). Only
/// called while the leader is unreaped, so the group id cannot have been
/// reused.
fn kill_group(pid: u32) {
    let Ok(pgid) = i32::try_from(pid) else {
        return;
    };
    // SAFETY: plain syscall on an integer id; no memory is involved.
    unsafe {
        libc::kill(-pgid, libc::SIGKILL);
    }
    contain::kill_owner(pid);
}

/// Whether the child has exited, without reaping it (so its pid and group id
/// stay reserved until we have killed the group).
fn exited_unreaped(pid: u32) -> bool {
    contain::exited_unreaped(pid as i32)
}

fn describe(status: ExitStatus) -> String {
    match (status.code(), status.signal()) {
        (Some(code), _) => format!("exited with status {code}"),
        (None, Some(sig)) => format!("killed by signal {sig}"),
        _ => format!("ended ({status})"),
    }
}

/// Why feeding one task to a child brought no outcome.
enum Lost {
    /// The frame could not be written: the child was already gone and the
    /// task never started.
    NotDelivered(std::io::Error),
    /// The child stopped answering mid-task.
    Died(std::io::Error),
    TimedOut(Duration),
    Stopped,
    /// Its job was cancelled (or its link to the coordinator lost).
    Cancelled,
}

struct ExecutorChild {
    child: Child,
    pid: u32,
    stdin: ChildStdin,
    stdout: BufReader<ChildStdout>,
    frame: Vec<u8>,
    /// The encoded AssignBatch fields of the last spec (everything but the
    /// task), reused while tasks keep coming from the same job and workload.
    header: Option<(u64, Arc<Workload>, Vec<u8>)>,
}

impl ExecutorChild {
    /// Encodes `tasks` (all of one job and workload) as one AssignBatch
    /// frame into `self.frame`.
    fn encode(&mut self, tasks: &[TaskRun]) {
        let Some(first) = tasks.first() else {
            return;
        };
        let cached = self
            .header
            .as_ref()
            .is_some_and(|(job, w, _)| *job == first.job_id && Arc::ptr_eq(w, &first.workload));
        if !cached {
            let header = AssignBatch {
                job_id: first.job_id,
                model: Model::Process as i32,
                workload: first.workload.name().to_string(),
                args: first.workload.args().clone(),
                timeout_ms: 0,
                max_result_bytes: first.workload.max_output().unwrap_or(0),
                inputs_format: if first.input.items_are_json {
                    InputsFormat::Jsonl as i32
                } else {
                    InputsFormat::Text as i32
                },
                ..Default::default()
            }
            .encode_to_vec();
            self.header = Some((first.job_id, first.workload.clone(), header));
        }
        let header: &[u8] = self.header.as_ref().map_or(&[], |(_, _, h)| h);
        let assignment = |t: &TaskRun| TaskAssignment {
            index: t.input.index,
            attempt: t.attempt,
            start: t.input.start,
            end: t.input.end,
        };
        // Protobuf concatenation: the header's fields plus one `tasks` (field
        // 6) entry per task and an inputs job's items (field 9, in task
        // order) decode as a single AssignBatch.
        let items = || tasks.iter().flat_map(|t| &t.input.items);
        let body_len = header.len()
            + tasks
                .iter()
                .map(|t| prost::encoding::message::encoded_len(6, &assignment(t)))
                .sum::<usize>()
            + items()
                .map(|i| prost::encoding::bytes::encoded_len(9, i))
                .sum::<usize>();
        self.frame.clear();
        prost::encoding::encode_varint(body_len as u64, &mut self.frame);
        self.frame.extend_from_slice(header);
        for t in tasks {
            prost::encoding::message::encode(6, &assignment(t), &mut self.frame);
        }
        for item in items() {
            prost::encoding::bytes::encode(9, item, &mut self.frame);
        }
    }

    /// Sends `tasks` (one job's) in one frame and reads their outcomes, in
    /// order. Returns the outcomes read and, if not all came, why: the rest
    /// did not finish (the first of them may have been running). Only a
    /// lone task has its timeout applied.
    async fn feed(
        &mut self,
        tasks: &[TaskRun],
        stop: &mut watch::Receiver<bool>,
        cancels: &mut broadcast::Receiver<u64>,
    ) -> (Vec<TaskOutcome>, Option<Lost>) {
        let mut got = Vec::with_capacity(tasks.len());
        let Some(first) = tasks.first() else {
            return (got, None);
        };
        self.encode(tasks);
        let write = async {
            self.stdin.write_all(&self.frame).await?;
            self.stdin.flush().await
        };
        if let Err(e) = write.await {
            return (got, Some(Lost::NotDelivered(e)));
        }
        let (job, timeout) = (first.job_id, first.timeout.filter(|_| tasks.len() == 1));
        let lost = {
            let read = async {
                while got.len() < tasks.len() {
                    read_frame(&mut self.stdout, &mut self.frame).await?;
                    got.push(TaskOutcome::decode(&self.frame[..]).map_err(|e| {
                        std::io::Error::new(
                            std::io::ErrorKind::InvalidData,
                            format!("undecodable outcome: {e}"),
                        )
                    })?);
                }
                Ok::<(), std::io::Error>(())
            };
            let timed = async {
                match timeout {
                    Some(limit) => tokio::time::timeout(limit, read).await.map_err(|_| limit),
                    None => Ok(read.await),
                }
            };
            let cancelled = async {
                loop {
                    match cancels.recv().await {
                        Ok(j) if j == job => return,
                        // Another job's cancel, or cancels we fell behind on
                        // (only this frame's job matters here).
                        Ok(_) | Err(broadcast::error::RecvError::Lagged(_)) => {}
                        Err(broadcast::error::RecvError::Closed) => std::future::pending().await,
                    }
                }
            };
            tokio::select! {
                r = timed => match r {
                    Ok(Ok(())) => None,
                    Ok(Err(e)) => Some(Lost::Died(e)),
                    Err(limit) => Some(Lost::TimedOut(limit)),
                },
                _ = stop.wait_for(|s| *s) => Some(Lost::Stopped),
                () = cancelled => Some(Lost::Cancelled),
            }
        };
        (got, lost)
    }

    /// Kills the group and reaps the leader; returns how it ended.
    async fn kill(mut self) -> String {
        kill_group(self.pid);
        match self.child.wait().await {
            Ok(status) => describe(status),
            Err(e) => format!("could not be reaped: {e}"),
        }
    }

    /// After the child stopped answering: give it a moment to exit by itself
    /// (to report its own status, e.g. the signal that killed it), then kill
    /// whatever is left of its group and reap it.
    async fn bury(mut self) -> String {
        let deadline = tokio::time::Instant::now() + EXIT_GRACE;
        while !exited_unreaped(self.pid) && tokio::time::Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        // The leader is still unreaped here, so the group id is still ours.
        kill_group(self.pid);
        match self.child.wait().await {
            Ok(status) => describe(status),
            Err(e) => format!("could not be reaped: {e}"),
        }
    }
}

pub(crate) struct ProcessPool {
    queue: Arc<TaskQueue>,
    pids: Pids,
    sent: Arc<FrameCount>,
    stop: watch::Sender<bool>,
    /// Job ids whose running tasks must be stopped now.
    cancels: broadcast::Sender<u64>,
    supervisors: Vec<JoinHandle<()>>,
}

impl ProcessPool {
    pub fn start(
        n: usize,
        program: PathBuf,
        args: Vec<String>,
        done: Outcomes,
    ) -> std::io::Result<ProcessPool> {
        let launcher = Launcher { program, args };
        let queue = Arc::new(TaskQueue::new(n, Takers::Async));
        let pids: Pids = Arc::new(Mutex::new(vec![None; n]));
        let sent = Arc::new(FrameCount::default());
        let (stop, stop_rx) = watch::channel(false);
        let (cancels, _) = broadcast::channel(CANCEL_BACKLOG);
        // Start every child before any supervisor so a bad program is an
        // error here, not a stream of dead tasks later.
        let mut children = Vec::with_capacity(n);
        for _ in 0..n {
            match launcher.spawn() {
                Ok(c) => children.push(c),
                Err(e) => {
                    for c in &children {
                        kill_group(c.pid);
                    }
                    return Err(std::io::Error::new(
                        e.kind(),
                        format!("cannot start executor {}: {e}", launcher.program.display()),
                    ));
                }
            }
        }
        let supervisors = children
            .into_iter()
            .enumerate()
            .map(|(slot, child)| {
                set_pid(&pids, slot, Some(child.pid));
                let sup = Supervisor {
                    slot,
                    launcher: launcher.clone(),
                    queue: queue.clone(),
                    pids: pids.clone(),
                    done: done.clone(),
                    stop: stop_rx.clone(),
                    cancels: cancels.subscribe(),
                    recent: None,
                    sent: sent.clone(),
                };
                tokio::spawn(sup.run(child))
            })
            .collect();
        Ok(ProcessPool {
            queue,
            pids,
            sent,
            stop,
            cancels,
            supervisors,
        })
    }

    /// Kills the executors running tasks of `job_id` (each is replaced);
    /// those tasks are answered CANCELLED.
    pub fn cancel_running(&self, job_id: u64) {
        // No receiver means no supervisor: nothing runs.
        let _ = self.cancels.send(job_id);
    }

    pub fn queue(&self) -> &TaskQueue {
        &self.queue
    }

    pub fn frames(&self) -> (u64, u64) {
        (
            self.sent.frames.load(Ordering::Relaxed),
            self.sent.tasks.load(Ordering::Relaxed),
        )
    }

    pub fn child_pids(&self) -> Vec<u32> {
        lock(&self.pids).iter().flatten().copied().collect()
    }

    /// Kills every live child's group at once (Drop path; no reaping).
    pub fn kill_all(&self) {
        let _ = self.stop.send(true);
        for pid in lock(&self.pids).iter().flatten() {
            kill_group(*pid);
        }
    }

    pub async fn shutdown(self) {
        self.queue.stop(true);
        let _ = self.stop.send(true);
        for s in self.supervisors {
            if let Err(e) = s.await {
                tracing::error!(error = %e, "executor supervisor failed");
            }
        }
    }
}

fn lock(pids: &Pids) -> std::sync::MutexGuard<'_, Vec<Option<u32>>> {
    pids.lock().unwrap_or_else(|p| p.into_inner())
}

fn set_pid(pids: &Pids, slot: usize, pid: Option<u32>) {
    if let Some(entry) = lock(pids).get_mut(slot) {
        *entry = pid;
    }
}

/// Drives one child slot: takes tasks one at a time, replaces the child when
/// it dies or is killed.
struct Supervisor {
    slot: usize,
    launcher: Launcher,
    queue: Arc<TaskQueue>,
    pids: Pids,
    done: Outcomes,
    stop: watch::Receiver<bool>,
    cancels: broadcast::Receiver<u64>,
    /// The job of the latest outcome and its tasks' recent wall time (ns,
    /// a moving average): what sizes the next frame.
    recent: Option<(u64, u64)>,
    sent: Arc<FrameCount>,
}

impl Supervisor {
    async fn run(mut self, first: ExecutorChild) {
        let mut child = Some(first);
        let mut pending = PendingOutcomes::new(self.done.clone(), self.queue.clone());
        let mut batch = Vec::with_capacity(MAX_BATCH);
        loop {
            // Hand over what is held before waiting for work, never after.
            let next = match pending.is_empty() {
                true => None,
                false => self.queue.try_pop(),
            };
            let task = match next {
                Some(task) => Some(task),
                None => {
                    pending.flush();
                    tokio::select! {
                        t = self.queue.pop(self.slot) => t,
                        _ = self.stop.wait_for(|s| *s) => None,
                    }
                }
            };
            let Some(task) = task else { break };
            batch.push(task);
            let more = self.batch_size(&batch[0]) - 1;
            if more > 0 {
                let (job, workload) = (batch[0].job_id, batch[0].workload.clone());
                let like = |t: &TaskRun| {
                    t.job_id == job && Arc::ptr_eq(&t.workload, &workload) && t.timeout.is_none()
                };
                self.queue.try_pop_while(more, like, &mut batch);
            }
            if batch.len() == 1 {
                let started = Instant::now();
                let outcome = self.run_task(&mut child, &batch[0]).await;
                self.learn(&outcome);
                pending.add(outcome, duration_ns(started.elapsed()));
            } else {
                for outcome in self.run_batch(&mut child, &batch).await {
                    self.learn(&outcome);
                    let ran = outcome.wall_ns;
                    pending.add(outcome, ran);
                }
            }
            batch.clear();
        }
        pending.flush();
        if let Some(c) = child.take() {
            set_pid(&self.pids, self.slot, None);
            c.kill().await;
        }
    }

    fn count_frame(&self, tasks: usize) {
        self.sent.frames.fetch_add(1, Ordering::Relaxed);
        self.sent.tasks.fetch_add(tasks as u64, Ordering::Relaxed);
    }

    /// How many tasks of `first`'s job to send in its frame: one until the
    /// job's tasks have been timed on this slot, and always one for tasks
    /// with a timeout (a frame's tasks are timed as one).
    fn batch_size(&self, first: &TaskRun) -> usize {
        match self.recent {
            Some((job, ns)) if job == first.job_id && first.timeout.is_none() => {
                (BATCH_BUDGET.as_nanos() as u64 / ns.max(1_000)).clamp(1, MAX_BATCH as u64) as usize
            }
            _ => 1,
        }
    }

    /// Folds a task's wall time into its job's recent task time; anything
    /// that did not run for its whole time (a death, a cancel) counts as
    /// long, so frames shrink until the job proves short again.
    fn learn(&mut self, d: &TaskDone) {
        let ns = match d.status {
            OutcomeStatus::Ok | OutcomeStatus::Failed => d.wall_ns,
            _ => BATCH_BUDGET.as_nanos() as u64,
        };
        self.recent = Some(match self.recent {
            Some((job, avg)) if job == d.job_id => (job, (avg * 3 + ns) / 4),
            _ => (d.job_id, ns),
        });
    }

    /// Runs `tasks` (one job's, no timeouts) through one frame. If the child
    /// dies before answering them all, the unanswered ones run again one at
    /// a time on its replacement: its last outcomes may have died with it
    /// unwritten, so only a lone task's death says which task it was.
    async fn run_batch(
        &mut self,
        child: &mut Option<ExecutorChild>,
        tasks: &[TaskRun],
    ) -> Vec<TaskDone> {
        let mut out = Vec::with_capacity(tasks.len());
        let Some(mut c) = child.take() else {
            // No child (it could not be restarted): each task on its own
            // says why.
            for t in tasks {
                out.push(self.run_task(child, t).await);
            }
            return out;
        };
        let pid = c.pid;
        self.count_frame(tasks.len());
        let (got, lost) = c.feed(tasks, &mut self.stop, &mut self.cancels).await;
        out.extend(tasks.iter().zip(got).map(|(t, o)| done_of(t, o)));
        let Some(lost) = lost else {
            *child = Some(c);
            return out;
        };
        let rest = &tasks[out.len()..];
        set_pid(&self.pids, self.slot, None);
        let unrun = |t: &TaskRun, why: &str| {
            TaskDone::unrun(t, Model::Process, OutcomeStatus::Cancelled, why)
        };
        match lost {
            Lost::Stopped => {
                c.kill().await;
                out.extend(rest.iter().map(|t| unrun(t, SHUTTING_DOWN)));
            }
            Lost::Cancelled => {
                c.kill().await;
                tracing::info!(
                    slot = self.slot,
                    pid,
                    job_id = user_job_id(tasks[0].job_id),
                    "job cancelled; executor process killed"
                );
                let _ = self.respawn(child);
                let why = format!("job cancelled: executor process {pid} was killed and replaced");
                out.extend(rest.iter().map(|t| unrun(t, &why)));
            }
            Lost::NotDelivered(e) | Lost::Died(e) => {
                let how = c.bury().await;
                tracing::warn!(slot = self.slot, pid, job_id = user_job_id(tasks[0].job_id), unanswered = rest.len(), error = %e, exit = %how, "executor process died during a frame of tasks; running the unanswered ones one at a time");
                let _ = self.respawn(child);
                for t in rest {
                    out.push(self.run_task(child, t).await);
                }
            }
            // Frames of several tasks carry no timeout; were one to, its
            // tasks would still each get their own run.
            Lost::TimedOut(_) => {
                c.kill().await;
                let _ = self.respawn(child);
                for t in rest {
                    out.push(self.run_task(child, t).await);
                }
            }
        }
        out
    }

    /// Starts a replacement child, or says why it could not.
    fn respawn(&self, child: &mut Option<ExecutorChild>) -> Result<(), String> {
        match self.launcher.spawn() {
            Ok(c) => {
                tracing::info!(slot = self.slot, pid = c.pid, "executor process started");
                set_pid(&self.pids, self.slot, Some(c.pid));
                *child = Some(c);
                Ok(())
            }
            Err(e) => {
                tracing::error!(slot = self.slot, error = %e, "cannot start an executor process");
                Err(format!("cannot start an executor process: {e}"))
            }
        }
    }

    async fn run_task(&mut self, child: &mut Option<ExecutorChild>, task: &TaskRun) -> TaskDone {
        let answer = |status, error: String| {
            let mut d = TaskDone::unrun(task, Model::Process, status, "");
            d.error = error;
            d
        };
        // A write to a child that already died never reached it: retry once
        // on a fresh child before calling the task lost.
        for attempt in 0..2 {
            if child.is_none() {
                if let Err(why) = self.respawn(child) {
                    // Back off so a broken executor binary is not a hot loop.
                    tokio::select! {
                        () = tokio::time::sleep(RESPAWN_BACKOFF) => {}
                        _ = self.stop.wait_for(|s| *s) => {}
                    }
                    return answer(OutcomeStatus::ExecutorDied, why);
                }
            }
            let Some(c) = child.as_mut() else { continue };
            let pid = c.pid;
            // Cancels buffered while this slot was idle are harmless: one
            // naming this task's job means the job is cancelled anyway.
            self.count_frame(1);
            let (mut got, lost) = c
                .feed(
                    std::slice::from_ref(task),
                    &mut self.stop,
                    &mut self.cancels,
                )
                .await;
            let lost = match (got.pop(), lost) {
                (Some(o), _) => return done_of(task, o),
                (None, Some(lost)) => lost,
                (None, None) => Lost::Died(std::io::Error::other("no outcome")),
            };
            set_pid(&self.pids, self.slot, None);
            let Some(c) = child.take() else { continue };
            match lost {
                Lost::NotDelivered(e) => {
                    let how = c.bury().await;
                    tracing::warn!(slot = self.slot, pid, error = %e, exit = %how, "executor process was gone before its task");
                    if attempt == 1 {
                        return answer(
                            OutcomeStatus::ExecutorDied,
                            format!("executor process {pid} died before taking the task: {how}"),
                        );
                    }
                }
                Lost::Died(e) => {
                    let how = c.bury().await;
                    tracing::warn!(slot = self.slot, pid, job_id = user_job_id(task.job_id), index = task.input.index, error = %e, exit = %how, "executor process died mid-task; replacing it");
                    let _ = self.respawn(child);
                    return answer(
                        OutcomeStatus::ExecutorDied,
                        format!("executor process {pid} died: {how}"),
                    );
                }
                Lost::TimedOut(limit) => {
                    c.kill().await;
                    tracing::info!(
                        slot = self.slot,
                        pid,
                        job_id = user_job_id(task.job_id),
                        index = task.input.index,
                        timeout_ms = limit.as_millis() as u64,
                        "task timed out; executor process killed"
                    );
                    let _ = self.respawn(child);
                    return answer(
                        OutcomeStatus::TimedOut,
                        format!(
                            "task exceeded its {} ms timeout; executor process {pid} was killed and replaced",
                            limit.as_millis()
                        ),
                    );
                }
                Lost::Stopped => {
                    c.kill().await;
                    return answer(OutcomeStatus::Cancelled, SHUTTING_DOWN.to_string());
                }
                Lost::Cancelled => {
                    c.kill().await;
                    tracing::info!(
                        slot = self.slot,
                        pid,
                        job_id = user_job_id(task.job_id),
                        index = task.input.index,
                        "job cancelled; executor process killed"
                    );
                    let _ = self.respawn(child);
                    return answer(
                        OutcomeStatus::Cancelled,
                        format!("job cancelled: executor process {pid} was killed and replaced"),
                    );
                }
            }
        }
        answer(
            OutcomeStatus::ExecutorDied,
            "executor process could not take the task".to_string(),
        )
    }
}
