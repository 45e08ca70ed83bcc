//! What clients are shown: a job's status (counting only durable results),
//! watches on it, the job list, results, workers and the cluster status,
//! built from the scheduler's state as wire messages.

use std::collections::HashMap;

use brigade_proto::v1::{ClusterStatus, JobInfo, JobState, ResultsChunk};
use tokio::sync::watch;
use tonic::Status;

use super::commit::HeldUpdate;
use super::Actor;
use crate::sched::{JobError, JobId};

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

/// A request about a job the core does not know.
pub(super) fn job_status(e: JobError) -> Status {
    Status::not_found(e.to_string())
}

impl Actor {
    /// A job's status as clients may see it: only durable results count
    /// (with a store), so what a client saw is never undone by a crash.
    pub(super) fn client_info(&self, id: JobId) -> Result<JobInfo, Status> {
        let mut info = self.sched.job_info(id).map_err(job_status)?;
        if let Some((n, sum)) = self.ledger.not_durable(id) {
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

    /// Every job as clients may see it, in id order.
    pub(super) fn list_jobs(&self) -> Vec<JobInfo> {
        self.sched
            .jobs()
            .filter_map(|j| self.client_info(j.id).ok())
            .collect()
    }

    /// A watch on a job's status as clients may see it.
    pub(super) fn watch(&mut self, id: JobId) -> Result<watch::Receiver<JobInfo>, Status> {
        let info = self.client_info(id)?;
        Ok(self
            .watchers
            .entry(id)
            .or_insert_with(|| watch::channel(info).0)
            .subscribe())
    }

    /// Sends job updates to watchers (after the store has them).
    pub(super) fn publish(&mut self, updates: HashMap<JobId, HeldUpdate>) {
        for (id, (info, ended)) in updates {
            if let Some(tx) = self.watchers.get(&id) {
                tx.send_replace(info);
                if ended {
                    self.watchers.remove(&id);
                }
            }
        }
    }

    /// Done tasks of `job` from index `from` on, when the values are kept in
    /// memory (without a state file).
    pub(super) fn results(
        &self,
        job: JobId,
        from: u64,
        max: usize,
    ) -> Result<ResultsChunk, Status> {
        self.sched.job(job).map_err(job_status).and_then(|j| {
            // Without values in memory the service reads the store;
            // asking here is a bug, said so rather than answered empty.
            j.results_from(from, max).map(results_chunk).ok_or_else(|| {
                Status::internal("results of this coordinator live in its state file")
            })
        })
    }

    /// The cluster's counters, with this coordinator's version and uptime.
    pub(super) fn cluster_status(&self) -> ClusterStatus {
        let mut s = self.sched.status();
        s.version = brigade_proto::VERSION.to_string();
        s.protocol_version = brigade_proto::PROTOCOL_VERSION;
        s.uptime_ms = self.clock.origin.elapsed().as_millis() as u64;
        s
    }
}
