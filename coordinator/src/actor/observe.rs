//! The actor's side of metrics and the dashboard: copies of its counters
//! and views, taken when `/metrics` or `/api/state` asks (never on the
//! scheduling path).

use brigade_proto::v1::{self, JobInfo};
use brigade_proto::{PerModel, SlotModel};

use super::Actor;
use crate::observe::dashboard::{
    group_failures, DashboardState, JobRow, Models, Totals, WorkerRow, RECENT_JOBS,
};
use crate::observe::metrics::MetricsSnapshot;
use crate::sched::JobState;

/// Sums `f` of every live worker, per model.
fn per_model_sum<'a>(
    workers: impl Iterator<Item = &'a crate::sched::WorkerState>,
    f: impl Fn(&crate::sched::WorkerState, SlotModel) -> u32,
) -> PerModel<u64> {
    let mut sum = PerModel::<u64>::default();
    for w in workers {
        for model in SlotModel::ALL {
            sum[model] += u64::from(f(w, model));
        }
    }
    sum
}

fn to_u64(m: PerModel<u32>) -> PerModel<u64> {
    PerModel::from_fn(|model| u64::from(m[model]))
}

impl Actor {
    pub(super) fn metrics_snapshot(&self) -> MetricsSnapshot {
        let mut jobs = [
            ("queued", 0),
            ("running", 0),
            ("succeeded", 0),
            ("failed", 0),
            ("cancelled", 0),
        ];
        for job in self.sched.jobs() {
            let i = match job.state {
                JobState::Queued => 0,
                JobState::Running => 1,
                JobState::Succeeded => 2,
                JobState::Failed => 3,
                JobState::Cancelled => 4,
            };
            jobs[i].1 += 1;
        }
        let status = self.sched.status();
        MetricsSnapshot {
            counters: *self.sched.counters(),
            jobs,
            workers: u64::from(status.workers),
            slots: per_model_sum(self.sched.worker_states(), |w, m| w.slots[m]),
            credits: per_model_sum(self.sched.worker_states(), |w, m| w.credits[m]),
            in_flight: per_model_sum(self.sched.worker_states(), |w, m| w.in_flight[m]),
            tasks_queued: status.tasks_queued,
            commits: self.config.state.is_some().then(|| {
                crate::writer::COMMITS
                    .lock()
                    .map(|c| *c)
                    .unwrap_or_default()
            }),
        }
    }

    pub(super) fn dashboard_state(&self, now_ms: u64) -> DashboardState {
        let workers: Vec<WorkerRow> = self
            .sched
            .worker_states()
            .map(|w| WorkerRow {
                id: w.id,
                name: w.hello.name.clone(),
                hostname: w.hello.hostname.clone(),
                slots: to_u64(w.slots).into(),
                assigned: to_u64(w.in_flight).into(),
                busy: to_u64(PerModel::from_fn(|m| w.in_flight[m].min(w.slots[m]))).into(),
                tasks_done: w.tasks_done,
                draining: w.draining,
            })
            .collect();
        let active = self.sched.jobs().filter(|j| !j.state.is_terminal());
        let recent = self
            .sched
            .jobs()
            .rev()
            .filter(|j| j.state.is_terminal())
            .take(RECENT_JOBS);
        let shown: Vec<JobInfo> = active
            .chain(recent)
            .filter_map(|j| self.client_info(j.id).ok())
            .collect();
        let mut failed = Vec::new();
        for j in &shown {
            if let Ok(view) = self.sched.job_view(j.job_id) {
                let causes = view.failed_tasks.values().take(FAILURES_PER_JOB);
                failed.extend(causes.map(|f| (j.job_id, super::view::failure_cause(f))));
            }
        }
        let failures = group_failures(failed);
        let status = self.sched.status();
        let sum = |f: fn(&WorkerRow) -> Models| {
            workers
                .iter()
                .map(f)
                .fold(Models::default(), |a, b| Models {
                    process: a.process + b.process,
                    thread: a.thread + b.thread,
                    async_: a.async_ + b.async_,
                })
        };
        DashboardState {
            version: brigade_proto::VERSION,
            now_unix_ms: now_ms,
            uptime_ms: self.clock.origin.elapsed().as_millis() as u64,
            totals: Totals {
                workers: u64::from(status.workers),
                slots: sum(|w| w.slots),
                assigned: sum(|w| w.assigned),
                busy: sum(|w| w.busy),
                tasks_queued: status.tasks_queued,
                jobs_active: u64::from(status.jobs_active),
                jobs_total: u64::from(status.jobs_total),
            },
            jobs: shown.iter().map(job_row).collect(),
            workers,
            failures,
            tasks_per_second: self.throughput.rates(),
        }
    }
}

/// Failed tasks of one job the dashboard reads (a job with a million
/// failures costs a scan of this many per request).
const FAILURES_PER_JOB: usize = 1_000;

fn job_row(j: &JobInfo) -> JobRow {
    let spec = j.spec.clone().unwrap_or_default();
    JobRow {
        id: j.job_id,
        workload: spec.workload,
        owner: j.owner.clone(),
        state: v1::JobState::try_from(j.state)
            .unwrap_or(v1::JobState::Unspecified)
            .name(),
        model: v1::Model::try_from(j.model)
            .unwrap_or(v1::Model::Unspecified)
            .name(),
        tasks_total: j.tasks_total,
        tasks_done: j.tasks_done,
        tasks_failed: j.tasks_failed,
        tasks_running: j.tasks_running,
        submitted_unix_ms: j.submitted_unix_ms,
        finished_unix_ms: j.finished_unix_ms,
        waiting: j.waiting_reason.clone(),
        error: j.error.clone(),
    }
}
