//! Builders the worker's unit tests share: a workload from its spec, the
//! tasks an executor runs ([`TaskRun`]) and a process executor's frame
//! ([`AssignBatch`]). Test-only (`cfg(test)`).

use std::collections::HashMap;
use std::sync::Arc;

use brigade_proto::v1::{AssignBatch, Model, TaskAssignment};

use crate::executors::TaskRun;
use crate::workload::{TaskInput, Workload};

/// A job's arguments from (KEY, VALUE) pairs.
pub(crate) fn args(kv: &[(&str, &str)]) -> HashMap<String, String> {
    kv.iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

/// The workload `name` with `args` (KEY, VALUE), which must be valid.
pub(crate) fn workload(name: &str, kv: &[(&str, &str)]) -> Arc<Workload> {
    Arc::new(Workload::from_spec(name, &args(kv)).expect("valid spec"))
}

/// Task `index` of job `job_id` running `w`: its first attempt, an empty
/// input range (set `input.start` / `input.end` for workloads that read
/// it), no timeout.
pub(crate) fn task(job_id: u64, index: u64, w: &Arc<Workload>) -> TaskRun {
    TaskRun {
        job_id,
        attempt: 1,
        input: TaskInput::range(index, 0, 0),
        workload: w.clone(),
        timeout: None,
    }
}

/// Tasks 0..n of job `job_id`, each a [`task`] running `w`.
pub(crate) fn tasks(job_id: u64, n: u64, w: &Arc<Workload>) -> Vec<TaskRun> {
    (0..n).map(|index| task(job_id, index, w)).collect()
}

/// A frame for an executor child: job 7's tasks `(index, start, end)` on
/// process slots, each at attempt 2, running `workload` with `args`.
pub(crate) fn assign_batch(
    workload: &str,
    args: &[(&str, &str)],
    tasks: &[(u64, u64, u64)],
) -> AssignBatch {
    AssignBatch {
        job_id: 7,
        model: Model::Process as i32,
        workload: workload.into(),
        args: args
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
        timeout_ms: 0,
        tasks: tasks
            .iter()
            .map(|&(index, start, end)| TaskAssignment {
                index,
                attempt: 2,
                start,
                end,
            })
            .collect(),
        ..Default::default()
    }
}
