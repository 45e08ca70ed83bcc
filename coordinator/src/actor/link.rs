//! Worker links, wire ⇄ scheduler: a worker's hello and messages become
//! scheduler events (joined, seen, credits, outcomes, draining), and the
//! scheduler's actions become messages down the worker's stream (welcome,
//! task batches, cancellations, heartbeats, disconnects).

use brigade_proto::batch;
use brigade_proto::catalog::WorkloadDef;
use brigade_proto::v1::{
    coordinator_message, worker_message, AssignBatch, CancelTasks, CoordinatorMessage, Heartbeat,
    OutcomeStatus, Welcome, WorkerMessage,
};
use brigade_proto::Output;
use brigade_proto::SlotModel;
use tonic::Status;

use super::command::WorkerSink;
use super::Actor;
use crate::sched::{Action, Outcome, SlotCounts, TaskLease, TaskStatus, WorkerHello, WorkerId};

/// A task's outcome status as the worker reported it; values this build
/// does not know count as failures.
fn task_status(status: i32) -> TaskStatus {
    match OutcomeStatus::try_from(status) {
        Ok(OutcomeStatus::Ok) => TaskStatus::Ok,
        Ok(OutcomeStatus::Failed) => TaskStatus::Failed,
        Ok(OutcomeStatus::ExecutorDied) => TaskStatus::ExecutorDied,
        Ok(OutcomeStatus::TimedOut) => TaskStatus::TimedOut,
        Ok(OutcomeStatus::Cancelled) => TaskStatus::Cancelled,
        Ok(OutcomeStatus::OutputTooLarge) => TaskStatus::OutputTooLarge,
        Ok(OutcomeStatus::Unspecified) | Err(_) => TaskStatus::Unknown,
    }
}

/// A worker's stream down, and when anything last went down it (a link
/// kept busy needs no heartbeat).
pub(super) struct LinkOut {
    pub(super) sink: WorkerSink,
    last_sent_ms: u64,
}

/// What a worker's hello says of it, or why the coordinator will not take
/// it (another protocol version, no slots at all).
/// Item bytes above which an assignment is sent in several messages (well
/// under the link's 64 MiB message limit; one item is at most 1 MiB).
const MAX_ASSIGN_BYTES: usize = 8 << 20;

/// The most workloads one worker may announce.
const MAX_WORKLOADS: usize = 1024;

pub(crate) fn worker_hello(
    hello: brigade_proto::v1::WorkerHello,
    connected_unix_ms: u64,
) -> Result<(WorkerHello, Vec<WorkloadDef>), Status> {
    if hello.protocol_version != brigade_proto::PROTOCOL_VERSION {
        return Err(Status::failed_precondition(format!(
            "worker {:?} speaks brigade protocol version {}, this coordinator speaks version {}; \
             run the same brigade release on workers and coordinator",
            hello.name,
            hello.protocol_version,
            brigade_proto::PROTOCOL_VERSION
        )));
    }
    let slots = SlotCounts {
        process: hello.process_slots,
        thread: hello.thread_slots,
        async_: hello.async_slots,
    };
    if slots == SlotCounts::default() {
        return Err(Status::invalid_argument(
            "a worker must offer at least one slot (--procs, --threads or --async > 0)",
        ));
    }
    if hello.workloads.len() > MAX_WORKLOADS {
        return Err(Status::invalid_argument(format!(
            "a worker may offer at most {MAX_WORKLOADS} workloads ({} announced)",
            hello.workloads.len()
        )));
    }
    let defs = hello
        .workloads
        .iter()
        .map(WorkloadDef::from_wire)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| Status::invalid_argument(format!("worker {:?}: {e}", hello.name)))?;
    let hello = WorkerHello {
        name: hello.name,
        hostname: hello.hostname,
        pid: hello.pid,
        slots,
        credits: SlotCounts {
            process: hello.process_credits,
            thread: hello.thread_credits,
            async_: hello.async_credits,
        },
        connected_unix_ms,
        workloads: Some(defs.iter().map(|d| d.name.clone()).collect()),
    };
    Ok((hello, defs))
}

impl Actor {
    /// Registers a worker and welcomes it down its stream.
    pub(super) fn worker_joined(
        &mut self,
        hello: WorkerHello,
        workloads: Vec<WorkloadDef>,
        sink: WorkerSink,
        now: u64,
    ) -> WorkerId {
        let name = hello.name.clone();
        for def in workloads {
            // The latest definition wins: a worker rebuilt with new
            // arguments redefines its workload for later jobs.
            if self
                .config
                .workloads
                .lookup(&def.name)
                .is_ok_and(|known| *known != def)
            {
                tracing::warn!(worker = %name, workload = %def.name, "worker redefines a workload; later jobs are checked against its definition");
            }
            self.config.workloads.insert(def);
        }
        let id = self.sched.worker_joined(hello, now);
        if self.ledger.has_store() {
            self.ledger.worker_joined(id, name.clone());
        } else {
            // Results name their worker: kept for the results served from
            // memory (with a store, the store keeps them).
            self.worker_names.insert(id, name.clone());
        }
        let welcome = CoordinatorMessage {
            msg: Some(coordinator_message::Msg::Welcome(Welcome {
                worker_id: id,
                heartbeat_interval_ms: self.config.heartbeat_interval.as_millis() as u64,
                lease_timeout_ms: self.config.lease_timeout.as_millis() as u64,
                // The link's interceptor checked a worker token.
                authenticated: self.config.auth.is_some(),
            })),
        };
        if sink.send(Ok(welcome)).is_ok() {
            tracing::info!(worker = id, %name, "worker joined");
            let at = self.clock.now_us();
            self.events.worker_linked(at, id, &name);
            let link = LinkOut {
                sink,
                last_sent_ms: now,
            };
            self.sinks.insert(id, link);
        } else {
            self.sched.worker_lost(id, self.clock.now_ms());
        }
        id
    }

    pub(super) fn on_worker_message(&mut self, id: WorkerId, msg: WorkerMessage, now: u64) {
        match msg.msg {
            Some(worker_message::Msg::Results(batch)) => {
                // When these results are recorded (same clock as `now`).
                let now_us = self.clock.now_us().max(now * 1_000);
                for columns in &batch.ok {
                    let outcomes = match columns.outcomes() {
                        Ok(o) => o,
                        Err(e) => return self.disconnect(id, &format!("protocol error: {e}")),
                    };
                    let (job, model) = (columns.job_id, SlotModel::from_wire(columns.model));
                    let outcomes = outcomes.map(|o| Outcome {
                        job,
                        index: o.index,
                        attempt: o.attempt,
                        model,
                        status: TaskStatus::Ok,
                        value: o.value,
                        error: String::new(),
                        cpu_ns: o.cpu_ns,
                        wall_ns: o.wall_ns,
                        ready_ns: o.ready_ns,
                    });
                    self.sched.worker_job_outcomes_at(id, job, outcomes, now_us);
                }
                let outcomes = batch.outcomes.into_iter().map(|o| Outcome {
                    job: o.job_id,
                    index: o.index,
                    attempt: o.attempt,
                    model: SlotModel::from_wire(o.model),
                    status: task_status(o.status),
                    value: match o.output {
                        Some(b) => Output::Bytes(b),
                        None => Output::Int(o.value.map(u128::from).unwrap_or(0)),
                    },
                    error: o.error,
                    cpu_ns: o.cpu_ns,
                    wall_ns: o.wall_ns,
                    ready_ns: o.ready_ns,
                });
                self.sched.worker_outcomes_at(id, outcomes, now_us);
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
        if let Some(link) = self.sinks.remove(&id) {
            let _ = link.sink.send(Err(Status::unavailable(reason.to_string())));
        }
        tracing::warn!(worker = id, %reason, "worker disconnected; its tasks go back to the queue");
        self.worker_lost_event(id, reason);
        self.sched.worker_lost(id, self.clock.now_ms());
    }

    /// Heartbeats down every link that carried nothing for a while (a
    /// worker that hears nothing for a lease timeout ends its link; see
    /// [`CoordinatorConfig::heartbeat_after_ms`](super::CoordinatorConfig)).
    pub(super) fn heartbeat(&mut self, now: u64) {
        let quiet = self.config.heartbeat_after_ms();
        for link in self.sinks.values_mut() {
            if now.saturating_sub(link.last_sent_ms) < quiet {
                continue;
            }
            link.last_sent_ms = now;
            let _ = link.sink.send(Ok(CoordinatorMessage {
                msg: Some(coordinator_message::Msg::Heartbeat(Heartbeat { seq: now })),
            }));
        }
    }

    /// Sends what the core decided down the workers' streams.
    pub(super) fn carry_out(&mut self) {
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
                    let items = self.inputs.get(&job);
                    // An inputs job's items travel with their tasks, in the
                    // order the runs spell the tasks out; a batch whose
                    // items would pass MAX_ASSIGN_BYTES is sent in parts.
                    let mut parts: Vec<(&[TaskLease], Vec<Vec<u8>>)> = Vec::new();
                    let (mut from, mut inputs, mut bytes) = (0, Vec::new(), 0usize);
                    for (k, t) in tasks.iter().enumerate() {
                        let Some(items) = items else { break };
                        let (start, end) = j.plan.task_range(t.index);
                        let mine: Vec<Vec<u8>> = items.items(start, end).collect();
                        let size: usize = mine.iter().map(Vec::len).sum();
                        if k > from && bytes + size > MAX_ASSIGN_BYTES {
                            parts.push((&tasks[from..k], std::mem::take(&mut inputs)));
                            (from, bytes) = (k, 0);
                        }
                        bytes += size;
                        inputs.extend(mine);
                    }
                    parts.push((&tasks[from..], inputs));
                    let mut batches = Vec::with_capacity(parts.len());
                    for (tasks, inputs) in parts {
                        batches.push(AssignBatch {
                            job_id: job,
                            model: brigade_proto::v1::Model::from(model) as i32,
                            workload: spec.workload.clone(),
                            args: spec.args.clone(),
                            timeout_ms: spec.task_timeout_ms,
                            tasks: Vec::new(),
                            grid: Some(j.plan.grid()),
                            runs: batch::runs(tasks.iter().map(|t| (t.index, t.attempt))),
                            inputs,
                            max_result_bytes: j.plan.max_result_bytes,
                            inputs_format: spec.inputs_format,
                        });
                    }
                    for batch in batches {
                        self.send(worker, coordinator_message::Msg::Assign(batch));
                    }
                }
                Action::Cancel { worker, job } => {
                    let msg = CancelTasks {
                        job_id: job,
                        indices: Vec::new(),
                    };
                    self.send(worker, coordinator_message::Msg::Cancel(msg));
                }
                Action::Disconnect { worker, reason } => {
                    if let Some(link) = self.sinks.remove(&worker) {
                        let _ = link.sink.send(Err(Status::unavailable(reason.clone())));
                    }
                    tracing::warn!(worker, %reason, "worker expired; its tasks go back to the queue");
                    self.worker_lost_event(worker, &reason);
                }
            }
        }
    }

    /// A worker's link ended (`reason`): an event, naming it.
    pub(super) fn worker_lost_event(&mut self, id: WorkerId, reason: &str) {
        let at = self.clock.now_us();
        self.events.worker_lost(at, id, reason);
    }

    fn send(&mut self, worker: WorkerId, msg: coordinator_message::Msg) {
        let now = self.clock.now_ms();
        let failed = match self.sinks.get_mut(&worker) {
            Some(link) => {
                link.last_sent_ms = now;
                link.sink
                    .send(Ok(CoordinatorMessage { msg: Some(msg) }))
                    .is_err()
            }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_idle_link_hears_from_the_coordinator_at_least_three_times_per_lease() {
        use super::super::CoordinatorConfig;
        use std::time::Duration;
        // (lease ms, tick ms, quiet ms before a heartbeat, heartbeat every ms)
        let cases = [
            (100, 25, 13, 25),
            (1_000, 250, 125, 250),
            (2_000, 500, 250, 500),
            (3_000, 500, 750, 1_000),
            (4_000, 500, 750, 1_000),
            (10_000, 500, 2_750, 3_000),
        ];
        for (lease, tick, quiet, every) in cases {
            let c = CoordinatorConfig {
                lease_timeout: Duration::from_millis(lease),
                ..Default::default()
            };
            assert_eq!(c.tick_every(), Duration::from_millis(tick), "lease {lease}");
            assert_eq!(c.heartbeat_after_ms(), quiet, "lease {lease}");
            // Ticks a millisecond early or late still send at the same ones.
            let sent_at = |skew: i64| {
                let mut last = 0u64;
                let mut sent = Vec::new();
                for k in 1..=12u64 {
                    let now = (k * tick) as i64 + if k % 2 == 0 { skew } else { -skew };
                    let now = now as u64;
                    if now.saturating_sub(last) >= quiet {
                        last = now;
                        sent.push(k);
                    }
                }
                sent
            };
            let want: Vec<u64> = (1..=12u64).filter(|k| (k * tick) % every == 0).collect();
            for skew in [0, 1] {
                assert_eq!(sent_at(skew), want, "lease {lease}, skew {skew}");
            }
            assert!(3 * every <= lease, "lease {lease}: every {every}");
        }
    }

    #[test]
    fn outcome_statuses_this_build_does_not_know_count_as_unknown() {
        let pairs = [
            (OutcomeStatus::Ok, TaskStatus::Ok),
            (OutcomeStatus::Failed, TaskStatus::Failed),
            (OutcomeStatus::ExecutorDied, TaskStatus::ExecutorDied),
            (OutcomeStatus::TimedOut, TaskStatus::TimedOut),
            (OutcomeStatus::Cancelled, TaskStatus::Cancelled),
            (OutcomeStatus::OutputTooLarge, TaskStatus::OutputTooLarge),
            (OutcomeStatus::Unspecified, TaskStatus::Unknown),
        ];
        for (wire, status) in pairs {
            assert_eq!(task_status(wire as i32), status);
        }
        assert_eq!(task_status(99), TaskStatus::Unknown);
    }
}
