//! The group-commit ledger: what the next commit to the store will write,
//! the commits on their way to disk, and who waits for each — submissions
//! answered and job updates published only once what they show is durable.
//!
//! The policy lives in [`CommitLedger::must_flush_now`]; the actor tells
//! the ledger what happened (jobs accepted, results recorded, jobs ended,
//! updates to hold) and carries out what comes back from
//! [`CommitLedger::next_settled`], in order.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::time::Duration;

use brigade_proto::v1::{JobInfo, JobSpec};
use tokio::sync::mpsc;
use tokio::time::Instant;

use super::command::Ack;
use crate::inputs::Inputs;
use crate::sched::{JobId, Recorded, WorkerId};
use crate::store::{JobEnd, Store, StoreError, WriteBatch};
use crate::writer::{merge, Committed, StoreWriter};

/// Group commits handed to the writer before the actor waits for one.
const MAX_INFLIGHT_COMMITS: usize = 2;
/// Pause before writing again after the store failed, doubled after each
/// failure in a row up to [`MAX_WRITE_BACKOFF`].
const WRITE_BACKOFF: Duration = Duration::from_millis(250);
const MAX_WRITE_BACKOFF: Duration = Duration::from_secs(4);
/// Longest a recorded result waits for its group commit.
const FLUSH_INTERVAL: Duration = Duration::from_millis(5);
/// Results that trigger a commit without waiting for the interval.
const FLUSH_ROWS: usize = 65_536;

/// A job's new status, and whether it is its last.
pub(super) type HeldUpdate = (JobInfo, bool);

/// Results (count, sum of values) per job.
type ResultCounts = HashMap<JobId, (u64, u128)>;

/// A commit whose fate is known, for the actor to carry out.
pub(super) enum Settled {
    /// Durable: these new jobs may run now; answer these submissions,
    /// then publish these updates.
    Durable {
        new_jobs: Vec<JobId>,
        acks: Vec<(JobId, Ack)>,
        updates: HashMap<JobId, HeldUpdate>,
    },
    /// Not written: these jobs are not accepted (the actor cancels them)
    /// and their submitters are told why.
    Refused {
        new_jobs: Vec<JobId>,
        acks: Vec<(JobId, Ack)>,
        error: String,
    },
}

/// A group commit on its way to disk and who waits for it.
struct InflightCommit {
    seq: u64,
    /// The results this commit makes durable.
    durable: ResultCounts,
    new_jobs: Vec<JobId>,
    acks: Vec<(JobId, Ack)>,
    held: HashMap<JobId, HeldUpdate>,
}

/// Everything about commits the actor keeps between iterations.
pub(super) struct CommitLedger {
    /// The store's writer thread and where it reports commits.
    writer: Option<(StoreWriter, mpsc::UnboundedReceiver<Committed>)>,
    /// Group commits handed to the writer, oldest first.
    inflight: VecDeque<InflightCommit>,
    next_seq: u64,
    /// After a failed write, no new attempt before this.
    write_backoff: Option<Instant>,
    /// Failed writes in a row (0: the last one succeeded).
    failed_writes: u32,
    /// Written at the next group commit.
    unflushed: WriteBatch,
    /// Submissions answered once `unflushed` is durable.
    pending_acks: Vec<(JobId, Ack)>,
    /// Job status changes published once `unflushed` is durable.
    held: HashMap<JobId, HeldUpdate>,
    /// Per job: results recorded but not yet durable, left out of what
    /// clients are told so progress never goes backwards across a crash.
    not_durable: ResultCounts,
    /// When the pending group commit must happen at the latest.
    flush_due: Option<Instant>,
    /// Commits whose fate is known and not yet carried out, oldest first;
    /// a durable one's results still count as not durable until taken.
    settled: VecDeque<(Option<ResultCounts>, Settled)>,
}

impl CommitLedger {
    /// A ledger for a coordinator without a state file: every flush
    /// settles at once.
    pub(super) fn in_memory() -> Self {
        CommitLedger {
            writer: None,
            inflight: VecDeque::new(),
            next_seq: 0,
            write_backoff: None,
            failed_writes: 0,
            unflushed: WriteBatch::default(),
            pending_acks: Vec::new(),
            held: HashMap::new(),
            not_durable: HashMap::new(),
            flush_due: None,
            settled: VecDeque::new(),
        }
    }

    /// Hands `store` to a writer thread; commits go there from now on.
    pub(super) fn start_writer(&mut self, store: Store) -> Result<(), StoreError> {
        let path = store.path().to_path_buf();
        let (done, committed) = mpsc::unbounded_channel();
        let writer = StoreWriter::start(store, done).map_err(|e| StoreError::Open {
            path,
            what: format!("cannot start the writer thread: {e}"),
            hint: "check the process limits",
        })?;
        self.writer = Some((writer, committed));
        Ok(())
    }

    /// While the writer is behind, the actor takes no new work (results
    /// pile up nowhere; workers wait on their credits).
    pub(super) fn writer_behind(&self) -> bool {
        self.inflight.len() >= MAX_INFLIGHT_COMMITS
    }

    /// When the pending commit must happen at the latest.
    pub(super) fn flush_due(&self) -> Option<Instant> {
        self.flush_due
    }

    /// The writer's next report, or never when there is no store.
    pub(super) async fn report(&mut self) -> Option<Committed> {
        match &mut self.writer {
            Some((_, rx)) => rx.recv().await,
            None => std::future::pending().await,
        }
    }

    /// A job was admitted: it is written (and its submitter answered
    /// through `ack`) with the next commit.
    pub(super) fn accepted(
        &mut self,
        id: JobId,
        spec: JobSpec,
        owner: String,
        inputs: Option<Arc<Inputs>>,
        now_ms: u64,
        ack: Ack,
    ) {
        self.unflushed.new_jobs.push((id, spec, now_ms, owner));
        if let Some(inputs) = inputs {
            self.unflushed.new_inputs.push((id, inputs));
        }
        self.pending_acks.push((id, ack));
    }

    /// Whether commits go to a state file.
    pub(super) fn has_store(&self) -> bool {
        self.writer.is_some()
    }

    /// A worker linked: its name is written with the next commit (results
    /// name their worker by id).
    pub(super) fn worker_joined(&mut self, id: WorkerId, name: String) {
        self.unflushed.new_workers.push((id, name));
    }

    /// Queues results and failures the core just recorded for the next
    /// commit, counting the results as not durable until it is back.
    pub(super) fn recorded(&mut self, results: Vec<Recorded>, failures: Vec<(JobId, u64, String)>) {
        for r in results {
            let p = self.not_durable.entry(r.job).or_default();
            p.0 += 1;
            p.1 = p.1.wrapping_add(r.value.as_int().unwrap_or(0));
            self.unflushed.results.push(r);
        }
        self.unflushed.failures.extend(failures);
    }

    /// A job ended: its row is written with the next commit.
    pub(super) fn ended(&mut self, end: JobEnd) {
        self.unflushed.ends.push(end);
    }

    /// An ended job was purged: its rows go with the next commit (after
    /// anything of it still queued for that commit is written).
    pub(super) fn purged(&mut self, id: JobId) {
        self.unflushed.purged.push(id);
        self.held.remove(&id);
        self.flush_soon();
    }

    /// Holds a job's new status until the next commit.
    pub(super) fn hold(&mut self, id: JobId, update: HeldUpdate) {
        self.held.insert(id, update);
    }

    /// Results of `job` recorded but not yet durable (count, sum).
    pub(super) fn not_durable(&self, job: JobId) -> Option<(u64, u128)> {
        self.not_durable.get(&job).copied()
    }

    /// Group commit policy: someone waits on this commit (a submission, a
    /// job's end), or enough results piled up, or the interval is over.
    /// Results alone may wait a few ms: until committed they are merely
    /// re-run after a crash, never lost or recorded twice.
    pub(super) fn must_flush_now(&self) -> bool {
        if self
            .write_backoff
            .is_some_and(|until| Instant::now() < until)
        {
            return false;
        }
        self.writer.is_none()
            || !self.pending_acks.is_empty()
            || !self.unflushed.ends.is_empty()
            || !self.unflushed.new_jobs.is_empty()
            || self.unflushed.results.len() >= FLUSH_ROWS
            || self.flush_due.is_some_and(|due| Instant::now() >= due)
    }

    /// Makes sure what is pending is written within the flush interval.
    pub(super) fn flush_soon(&mut self) {
        if self.flush_due.is_none() {
            self.flush_due = Some(Instant::now() + FLUSH_INTERVAL);
        }
    }

    /// Hands what is pending to the writer as one group commit (or, in
    /// memory, settles it at once).
    pub(super) fn flush(&mut self) {
        self.flush_due = None;
        let Some((writer, _)) = &self.writer else {
            // In memory only: nothing to wait for.
            // Nothing is written: what was queued for the store goes.
            let settled = Settled::Durable {
                new_jobs: std::mem::take(&mut self.unflushed)
                    .new_jobs
                    .into_iter()
                    .map(|(id, ..)| id)
                    .collect(),
                acks: std::mem::take(&mut self.pending_acks),
                updates: std::mem::take(&mut self.held),
            };
            self.settled.push_back((None, settled));
            return;
        };
        if self.unflushed.is_empty() {
            // Nothing to write; updates must still not overtake earlier ones
            // waiting for their commit.
            let held = std::mem::take(&mut self.held);
            match self.inflight.back_mut() {
                Some(last) => last.held.extend(held),
                None => self.settled.push_back((
                    None,
                    Settled::Durable {
                        new_jobs: Vec::new(),
                        acks: Vec::new(),
                        updates: held,
                    },
                )),
            }
            return;
        }
        self.next_seq += 1;
        let batch = std::mem::take(&mut self.unflushed);
        let mut durable = ResultCounts::new();
        for r in &batch.results {
            let d = durable.entry(r.job).or_default();
            d.0 += 1;
            d.1 = d.1.wrapping_add(r.value.as_int().unwrap_or(0));
        }
        let commit = InflightCommit {
            seq: self.next_seq,
            durable,
            new_jobs: batch.new_jobs.iter().map(|(id, ..)| *id).collect(),
            acks: std::mem::take(&mut self.pending_acks),
            held: std::mem::take(&mut self.held),
        };
        if writer.submit(self.next_seq, batch) {
            self.inflight.push_back(commit);
        } else {
            self.refused(commit, "the state store writer stopped".to_string());
        }
    }

    /// A group commit came back from the writer.
    pub(super) fn committed(&mut self, (seqs, result): Committed) {
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
                if self.failed_writes > 0 {
                    tracing::info!(
                        failed = self.failed_writes,
                        "state store writes again; accepting jobs"
                    );
                    self.failed_writes = 0;
                    self.write_backoff = None;
                }
                for c in commits {
                    let settled = Settled::Durable {
                        new_jobs: c.new_jobs,
                        acks: c.acks,
                        updates: c.held,
                    };
                    self.settled.push_back((Some(c.durable), settled));
                }
            }
            Err((error, mut batch)) => {
                self.failed_writes += 1;
                let wait = WRITE_BACKOFF
                    .saturating_mul(1 << (self.failed_writes - 1).min(5))
                    .min(MAX_WRITE_BACKOFF);
                tracing::error!(%error, retry_in_ms = wait.as_millis() as u64, failed = self.failed_writes,
                    "state store write failed; retrying (submissions wait for the retry, and are refused if it fails)");
                // Jobs that are not durable are not accepted; results and
                // job ends go back to be written on the next attempt, their
                // updates held until then.
                batch.new_jobs.clear();
                batch.new_inputs.clear();
                merge(&mut batch, std::mem::take(&mut self.unflushed));
                self.unflushed = batch;
                for mut c in commits {
                    for (id, update) in std::mem::take(&mut c.held) {
                        self.held.entry(id).or_insert(update);
                    }
                    self.refused(c, error.clone());
                }
                let until = Instant::now() + wait;
                self.write_backoff = Some(until);
                self.flush_due = Some(until);
            }
        }
    }

    fn refused(&mut self, c: InflightCommit, error: String) {
        let settled = Settled::Refused {
            new_jobs: c.new_jobs,
            acks: c.acks,
            error,
        };
        self.settled.push_back((None, settled));
    }

    /// The oldest commit whose fate is known; a durable one's results count
    /// as durable from now on.
    pub(super) fn next_settled(&mut self) -> Option<Settled> {
        let (durable, settled) = self.settled.pop_front()?;
        for (job, (n, sum)) in durable.unwrap_or_default() {
            if let Some(p) = self.not_durable.get_mut(&job) {
                p.0 -= n;
                p.1 = p.1.wrapping_sub(sum);
                if p.0 == 0 {
                    self.not_durable.remove(&job);
                }
            }
        }
        Some(settled)
    }

    /// At shutdown: writes whatever is pending at once (no backoff), lets
    /// the writer finish and takes its last reports.
    pub(super) fn close(&mut self) {
        self.write_backoff = None;
        self.flush();
        if let Some((mut writer, mut reports)) = self.writer.take() {
            writer.finish();
            while let Ok(c) = reports.try_recv() {
                self.committed(c);
            }
        }
    }
}
