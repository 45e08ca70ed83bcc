//! Builders shared by the coordinator's unit tests and the criterion bench
//! (`benches/sched.rs`): admitted job plans, worker hellos and outcomes.
//! Compiled into the library because a bench is a crate of its own and sees
//! only public items; it reaches them through the hidden `bench_api`.

use brigade_proto::catalog::{ArgDef, Catalog, Reduction, WorkloadDef};
use brigade_proto::v1::{JobSpec, Kind, Model};
use brigade_proto::{Output, SlotModel};

use crate::admission::{admit, AdmissionLimits, JobPlan};
use crate::sched::{JobId, Outcome, SlotCounts, TaskLease, TaskStatus, WorkerHello};

/// Definitions shaped like brigade's built-in workloads (which live in the
/// worker crate, where each is defined with its code).
pub fn catalog() -> Catalog {
    [
        WorkloadDef::new("sum-squares", Kind::Cpu, Reduction::Sum, ""),
        WorkloadDef::new("noop", Kind::Io, Reduction::List, ""),
        WorkloadDef::new("sleep", Kind::Io, Reduction::List, "")
            .arg(ArgDef::u64("ms", 0, 3_600_000, "").default("100")),
        WorkloadDef::new("spin", Kind::Cpu, Reduction::List, "")
            .arg(ArgDef::u64("ms", 0, 3_600_000, "").required()),
    ]
    .into_iter()
    .collect()
}

fn admitted(workload: &str, end: u64, chunk: u64, model: Model) -> JobPlan {
    let spec = JobSpec {
        workload: workload.into(),
        range_start: 0,
        range_end: end,
        chunk,
        model: model as i32,
        ..Default::default()
    };
    admit(spec, &catalog(), &AdmissionLimits::default()).expect("a valid test job")
}

/// A job of `workload` over `0..end` in tasks of `chunk`, on `model` slots.
pub fn plan(workload: &str, end: u64, chunk: u64, model: SlotModel) -> JobPlan {
    admitted(workload, end, chunk, model.into())
}

/// The same, routed by the workload's kind.
#[cfg(test)]
pub fn plan_by_kind(workload: &str, end: u64, chunk: u64) -> JobPlan {
    admitted(workload, end, chunk, Model::Unspecified)
}

/// `tasks` noop tasks with `--model auto`.
#[cfg(test)]
pub fn auto_plan(tasks: u64) -> JobPlan {
    admitted("noop", tasks, 1, Model::Auto)
}

/// A worker with these slots per model and `credits` credits per slot.
pub fn hello(process: u32, thread: u32, async_: u32, credits: u32) -> WorkerHello {
    let slots = SlotCounts {
        process,
        thread,
        async_,
    };
    WorkerHello {
        name: "w".into(),
        slots,
        credits: slots.map(|n| n * credits),
        ..Default::default()
    }
}

/// A successful outcome of `t` with `value`.
pub fn ok(job: JobId, t: &TaskLease, model: SlotModel, value: u128) -> Outcome {
    let value = Output::Int(value);
    Outcome {
        job,
        index: t.index,
        attempt: t.attempt,
        model: Some(model),
        status: TaskStatus::Ok,
        value,
        error: String::new(),
        cpu_ns: 0,
        wall_ns: 0,
        ready_ns: 0,
    }
}

/// What 4 `--model auto` probes of `mean_wall_ns` each decided.
#[cfg(test)]
pub(crate) fn probed(
    cpu_share: f64,
    queued_share: f64,
    mean_wall_ns: u64,
    verdict: crate::sched::ProbeVerdict,
    model: SlotModel,
) -> crate::sched::Routing {
    crate::sched::Routing::Probed {
        probes: 4,
        cpu_share,
        queued_share,
        mean_wall_ns,
        verdict,
        model,
    }
}
