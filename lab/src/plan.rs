//! What `brigade bench` runs: the WORKLOADS.md yardsticks (sizes for the full
//! and the `--quick` run, W_GRAIN's chunk widths) or a user's job (`--job`),
//! the in-flight cap each model gets, and how every yardstick run's results
//! are checked (a job's runs are checked against each other: `agree`). Pure:
//! no I/O.

use brigade_proto::v1::Model;

use brigade_proto::v1::{JobSpec, Kind};

use crate::job::UserJob;

/// The body length every `http-get` task must return (the target's page).
pub const BODY_LEN: u128 = 1024;

/// A benchmark workload from WORKLOADS.md.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum WorkloadId {
    Cpu,
    CpuHeavy,
    Noop,
    FastIo,
    SlowIo,
    /// W_CPU_HEAVY's range at chunk widths 10^3 .. 10^8.
    Grain,
    /// `spin ms=1`: a synthetic task of known CPU time for `--overhead`; not
    /// a WORKLOADS.md yardstick, so not in [`WorkloadId::ALL`].
    Spin,
    /// A user's job (`--job`): any workload, with their inputs or range. It
    /// lives as long as the bench (one per `brigade bench`).
    Job(&'static UserJob),
}

impl WorkloadId {
    pub const ALL: [WorkloadId; 6] = [
        WorkloadId::Cpu,
        WorkloadId::CpuHeavy,
        WorkloadId::Noop,
        WorkloadId::FastIo,
        WorkloadId::SlowIo,
        WorkloadId::Grain,
    ];

    /// The id used in WORKLOADS.md and in every output file.
    pub fn name(self) -> &'static str {
        match self {
            WorkloadId::Cpu => "W_CPU",
            WorkloadId::CpuHeavy => "W_CPU_HEAVY",
            WorkloadId::Noop => "W_NOOP",
            WorkloadId::FastIo => "W_FASTIO",
            WorkloadId::SlowIo => "W_SLOWIO",
            WorkloadId::Grain => "W_GRAIN",
            WorkloadId::Spin => "spin",
            WorkloadId::Job(job) => &job.workload,
        }
    }

    /// Accepts `W_CPU`, `w_cpu`, `cpu`, `cpu-heavy`, `fastio`, ...
    pub fn parse(s: &str) -> Result<WorkloadId, String> {
        let norm = s.trim().to_ascii_uppercase().replace('-', "_");
        let norm = norm.strip_prefix("W_").unwrap_or(&norm);
        WorkloadId::ALL
            .into_iter()
            .find(|w| &w.name()[2..] == norm)
            .ok_or_else(|| {
                format!(
                    "unknown workload {s:?}; allowed: W_CPU, W_CPU_HEAVY, W_NOOP, W_FASTIO, W_SLOWIO, W_GRAIN"
                )
            })
    }

    /// The sum-squares workloads (a total to check, an in-process limit).
    pub fn is_cpu(self) -> bool {
        matches!(
            self,
            WorkloadId::Cpu | WorkloadId::CpuHeavy | WorkloadId::Grain
        )
    }

    pub fn is_io(self) -> bool {
        matches!(self, WorkloadId::FastIo | WorkloadId::SlowIo)
    }

    /// A user's job (`--job`).
    pub fn is_job(self) -> bool {
        matches!(self, WorkloadId::Job(_))
    }
}

/// How big the runs are.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Size {
    /// Exactly the WORKLOADS.md sizes.
    Full,
    /// Same shapes, about a tenth of the work, so a debug build finishes fast.
    Quick,
}

/// The in-flight caps of a bench run. The same cap holds for every model of a
/// workload (an honest comparison), except the one extra async row that is
/// explicitly about caps.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Caps {
    /// CPU workloads: one task per core per worker.
    pub cpu: u32,
    /// No-op and I/O workloads on every model (the slots of a worker's
    /// process and thread pools).
    pub io: u32,
    /// The wide async row of W_SLOWIO: what one event loop keeps in flight.
    pub async_wide: u32,
    /// Every worker has exactly `cpu / workers` slots of each model (the
    /// fine-grained cluster of W_GRAIN and `--overhead`): those jobs then set
    /// no job cap, the slots bound them and workers may queue tasks ahead, as
    /// they would for a user's job. Otherwise (an existing cluster) the job
    /// cap `cpu` bounds them and every task waits for a coordinator round trip.
    pub slots_bound: bool,
}

/// One job to run and check.
#[derive(Debug, Clone, PartialEq)]
pub struct RunPlan {
    pub workload: WorkloadId,
    /// Row label: `1 slot`, `process`, `thread`, `async`, `async C=2000`.
    pub label: String,
    /// `None` for the in-process reference run (no cluster involved).
    pub model: Option<Model>,
    /// Slots the job may use at once (the `p` of efficiency).
    pub in_flight: u32,
    pub range: (u64, u64),
    pub chunk: u64,
    /// The total of the full workload this run's rate stands for, when the run
    /// measures only a prefix (the slow serial baseline).
    pub scaled_from: Option<u64>,
    /// Submit without a job cap: the cluster's slots (`in_flight` of them)
    /// bound the job (see [`Caps::slots_bound`]).
    pub uncapped: bool,
}

/// Label of the one-slot row: one thread slot through brigade, one task at a
/// time (it pays brigade's per-task cost). The speedup baseline of workloads
/// that have no [`SERIAL`] row (no-op and I/O).
pub const BASELINE: &str = "1 slot";
/// Label of the in-process reference row beside the CPU workloads.
pub const IN_PROCESS: &str = "in-process";
/// Label (prefix, for W_GRAIN's `serial c=...`) of the true serial baseline
/// T1 of the CPU workloads: the range in one plain loop in this process, one
/// chunk after another (no scheduler at all).
pub const SERIAL: &str = "serial";

/// Label prefix of the Python baseline's rows (`--with-python`).
pub const PYTHON_PREFIX: &str = "py-";
/// Python's own serial loop: the baseline of the Python rows.
pub const PYTHON_SERIAL: &str = "py-serial";

/// Whether a row comes from the Python baseline.
pub fn is_python(label: &str) -> bool {
    label.starts_with(PYTHON_PREFIX)
}

/// Label of the `--model auto` row (the coordinator picks the model).
pub const AUTO: &str = "auto";

/// Whether a row is a `--model auto` run.
pub fn is_auto(label: &str) -> bool {
    label_model(label) == AUTO
}

/// Whether a row label is a baseline row: the true serial run ([`SERIAL`])
/// or the one-slot run ([`BASELINE`]). Neither takes part in a verdict.
pub fn is_baseline(label: &str) -> bool {
    label == BASELINE || is_serial(label)
}

/// Whether a row label is a true serial run (no scheduler): the speedup
/// baseline T1 wherever one was measured.
pub fn is_serial(label: &str) -> bool {
    label.split_whitespace().next() == Some(SERIAL)
}

/// The model (or reference) part of a label: `process` of `process c=10^4`,
/// `async` of `async C=2000`.
pub fn label_model(label: &str) -> &str {
    if label == BASELINE {
        return label;
    }
    label.split_whitespace().next().unwrap_or(label)
}

/// `10^5` for powers of ten (W_GRAIN's widths), digits otherwise.
pub fn width_label(w: u64) -> String {
    let mut n = w;
    let mut k = 0;
    while n >= 10 && n % 10 == 0 {
        n /= 10;
        k += 1;
    }
    if n == 1 && k > 0 {
        format!("10^{k}")
    } else {
        w.to_string()
    }
}

impl RunPlan {
    pub fn tasks(&self) -> u64 {
        (self.range.1 - self.range.0).div_ceil(self.chunk)
    }

    /// The job to submit (`url` is the io-target's base URL).
    pub fn spec(&self, url: &str) -> JobSpec {
        let (workload, args) = match self.workload {
            WorkloadId::Job(job) => return job.spec(self),
            WorkloadId::Cpu | WorkloadId::CpuHeavy | WorkloadId::Grain => ("sum-squares", vec![]),
            WorkloadId::Noop => ("noop", vec![]),
            WorkloadId::Spin => ("spin", vec![("ms".to_string(), SPIN_MS.to_string())]),
            WorkloadId::FastIo | WorkloadId::SlowIo => (
                "http-get",
                vec![
                    (
                        "url".to_string(),
                        if self.workload == WorkloadId::FastIo {
                            format!("{url}/fast")
                        } else {
                            format!("{url}/slow?ms=100")
                        },
                    ),
                    ("expect-len".to_string(), BODY_LEN.to_string()),
                ],
            ),
        };
        JobSpec {
            workload: workload.into(),
            args: args.into_iter().collect(),
            range_start: self.range.0,
            range_end: self.range.1,
            chunk: self.chunk,
            kind: Kind::Unspecified as i32,
            model: self.model.unwrap_or(Model::Unspecified) as i32,
            max_attempts: 0,
            task_timeout_ms: 0,
            max_in_flight: if self.uncapped { 0 } else { self.in_flight },
            allow_failures: 0,
            name: format!("bench {} {}", self.workload.name(), self.label),
            ..Default::default()
        }
    }
}

/// The range and chunk of a workload at `size`; `wide` is W_SLOWIO with at
/// least 1,000 in flight, which WORKLOADS.md runs with 10,000 tasks so that the
/// run lasts long enough to measure.
pub fn shape(w: WorkloadId, size: Size, wide: bool) -> ((u64, u64), u64) {
    match (w, size) {
        (WorkloadId::Cpu, Size::Full) => ((0, 60_000_000), 1_500_000),
        // W_CPU's own task (1.5M), 500 of them: ~0.5-0.7 s serial in a
        // release build (a debug build runs a tenth: its loop is ~10x slower).
        (WorkloadId::Cpu, Size::Quick) => ((0, QUICK_CPU_END / DEBUG_SLOWDOWN), 1_500_000),
        (WorkloadId::CpuHeavy, Size::Full) => ((0, 4_000_000_000), 100_000_000),
        // 40 tasks of ~25 ms: ~1 s serial in a release build.
        (WorkloadId::CpuHeavy, Size::Quick) => (
            (0, QUICK_HEAVY_END / DEBUG_SLOWDOWN),
            QUICK_HEAVY_END / DEBUG_SLOWDOWN / 40,
        ),
        (WorkloadId::Noop, Size::Full) => ((0, 20_000), 1),
        (WorkloadId::Noop, Size::Quick) => ((0, 2_000), 1),
        (WorkloadId::FastIo, Size::Full) => ((0, 5_000), 1),
        (WorkloadId::FastIo, Size::Quick) => ((0, 500), 1),
        (WorkloadId::SlowIo, Size::Full) => ((0, if wide { 10_000 } else { 2_000 }), 1),
        (WorkloadId::SlowIo, Size::Quick) => ((0, if wide { 1_000 } else { 200 }), 1),
        // W_GRAIN's own shapes are per width: see `grain_shape`.
        (WorkloadId::Grain, _) => {
            let w = grain_widths(size);
            grain_shape(size, w[w.len() - 1])
        }
        (WorkloadId::Spin, Size::Full) => ((0, 2_000), 1),
        (WorkloadId::Spin, Size::Quick) => ((0, 200), 1),
        // A user's job has the one size they gave it.
        (WorkloadId::Job(job), _) => (job.range(), job.chunk),
    }
}

/// The end of W_CPU's `--quick` range: 500 of W_CPU's 1.5M tasks, so that
/// its serial time (≥ 0.5 s on this machine kind) is long enough to time two
/// cores against it; a quick run keeps W_CPU's task size and runs more of
/// them rather than tasks too small to say anything.
pub const QUICK_CPU_END: u64 = 750_000_000;
/// The end of W_CPU_HEAVY's `--quick` range: 40 tasks of 30M (~1 s serial).
pub const QUICK_HEAVY_END: u64 = 1_200_000_000;
/// The end of W_GRAIN's `--quick` range (every width runs all of it).
pub const QUICK_GRAIN_END: u64 = 600_000_000;
/// How much slower the sum-squares loop is in a debug build (~10x): quick
/// CPU ranges are divided by it there, so their serial time stays about the
/// same and the end-to-end tests stay short.
pub const DEBUG_SLOWDOWN: u64 = if cfg!(debug_assertions) { 10 } else { 1 };

/// CPU time one `spin` task of `--overhead` burns.
pub const SPIN_MS: u32 = 1;

/// W_GRAIN's chunk widths: decades from 10^3 up to W_CPU_HEAVY's 10^8;
/// with `--quick`, 10^5 to 10^7 (fewer rows rather than serial runs too
/// short to time: narrower widths would need more tasks than a quick run
/// has time for to reach its ≥ 0.5 s of serial work).
pub fn grain_widths(size: Size) -> Vec<u64> {
    let (bottom, top) = match size {
        Size::Full => (3, 8),
        Size::Quick => (5, 7),
    };
    (bottom..=top).map(|k| 10u64.pow(k)).collect()
}

/// The most tasks one W_GRAIN run may have: 4e9 in chunks of 10^3 would be
/// 4,000,000 tasks, so narrow widths run a prefix of the range. Efficiency
/// is a ratio whose T1 is measured on the very same prefix, so this keeps
/// the figure honest and the run bounded.
pub fn grain_max_tasks(size: Size) -> u64 {
    match size {
        Size::Full => 200_000,
        Size::Quick => 6_000,
    }
}

/// W_GRAIN's range and chunk at `width`: W_CPU_HEAVY's range (with
/// `--quick`, [0, 600,000,000): ~0.5 s serial per width in a release build,
/// a tenth of it in a debug build), cut to [`grain_max_tasks`] tasks.
pub fn grain_shape(size: Size, width: u64) -> ((u64, u64), u64) {
    let (a, b): (u64, u64) = match size {
        Size::Full => (0, 4_000_000_000),
        Size::Quick => (0, QUICK_GRAIN_END / DEBUG_SLOWDOWN),
    };
    let end = b.min(a.saturating_add(width.saturating_mul(grain_max_tasks(size))));
    ((a, end), width)
}

/// W_GRAIN's runs, per width in increasing order: the serial baseline (only
/// when `with_baseline`; one plain loop in this process over the same range),
/// each model with `caps.cpu` slots, and the in-process pool of as many
/// threads (the practical limit beside them).
pub fn plan_grain(size: Size, models: &[Model], caps: Caps, with_baseline: bool) -> Vec<RunPlan> {
    let mut out = Vec::new();
    for width in grain_widths(size) {
        let (range, chunk) = grain_shape(size, width);
        let w = width_label(width);
        let full = 4_000_000_000u64.div_ceil(width);
        // A prefix says how much of the full range it stands for (full runs).
        let prefix_of =
            (size == Size::Full && (range.1 - range.0).div_ceil(chunk) < full).then_some(full);
        let job = |label: String, model: Option<Model>, in_flight: u32| RunPlan {
            workload: WorkloadId::Grain,
            label,
            model,
            in_flight,
            range,
            chunk,
            scaled_from: prefix_of,
            uncapped: model.is_some() && caps.slots_bound,
        };
        if with_baseline {
            out.push(job(format!("{SERIAL} c={w}"), None, 1));
        }
        // Routing by probes answers nothing W_GRAIN asks (how small a task
        // each model runs efficiently): no auto rows here.
        for &m in models.iter().filter(|m| **m != Model::Auto) {
            out.push(job(format!("{} c={w}", m.name()), Some(m), caps.cpu));
        }
        out.push(job(format!("{IN_PROCESS} c={w}"), None, caps.cpu));
    }
    out
}

/// How many W_SLOWIO tasks the serial baseline runs: the whole job would take
/// tasks × 0.1 s (200 s), so it runs a prefix and its rate stands for the
/// whole (one slot runs tasks one after another, so time is linear in tasks).
const SLOWIO_BASELINE_TASKS: u64 = 20;

/// The runs of one workload at one cluster size, in row order: the serial
/// baseline (only when `with_baseline`), each model (`auto` among them: the
/// coordinator probes and routes it, with the same cap as the forced
/// models), the wide async row for W_SLOWIO (no auto twin: it is about the
/// cap, not the model), and the in-process reference for CPU workloads.
pub fn plan_workload(
    w: WorkloadId,
    size: Size,
    models: &[Model],
    caps: Caps,
    with_baseline: bool,
) -> Vec<RunPlan> {
    if w == WorkloadId::Grain {
        return plan_grain(size, models, caps, with_baseline);
    }
    let (range, chunk) = shape(w, size, false);
    let mut out = Vec::new();
    if with_baseline && w.is_cpu() {
        // The true T1: the same function over the same range, one chunk
        // after another in this process, no scheduler.
        out.push(RunPlan {
            workload: w,
            label: SERIAL.into(),
            model: None,
            in_flight: 1,
            range,
            chunk,
            scaled_from: None,
            uncapped: false,
        });
    }
    if with_baseline {
        let (range, scaled_from) = if w == WorkloadId::SlowIo {
            (
                (range.0, range.0 + SLOWIO_BASELINE_TASKS * chunk),
                Some(range.1 - range.0),
            )
        } else {
            (range, None)
        };
        out.push(RunPlan {
            workload: w,
            label: BASELINE.into(),
            // A single thread slot runs tasks one at a time in the worker:
            // the cheapest serial path, shared by every model's speedup.
            model: Some(Model::Thread),
            in_flight: 1,
            range,
            chunk,
            scaled_from,
            uncapped: false,
        });
    }
    let cap = if w.is_cpu() { caps.cpu } else { caps.io };
    for &m in models {
        out.push(RunPlan {
            workload: w,
            label: m.name().into(),
            model: Some(m),
            in_flight: cap,
            range,
            chunk,
            scaled_from: None,
            uncapped: false,
        });
    }
    if w == WorkloadId::SlowIo && models.contains(&Model::Async) && caps.async_wide > caps.io {
        let (range, chunk) = shape(w, size, caps.async_wide >= 1000);
        out.push(RunPlan {
            workload: w,
            label: format!("async C={}", caps.async_wide),
            model: Some(Model::Async),
            in_flight: caps.async_wide,
            range,
            chunk,
            scaled_from: None,
            uncapped: false,
        });
    }
    if w.is_cpu() {
        out.push(RunPlan {
            workload: w,
            label: IN_PROCESS.into(),
            model: None,
            in_flight: caps.cpu,
            range,
            chunk,
            scaled_from: None,
            uncapped: false,
        });
    }
    out
}

/// The most tasks a job's `1 slot` baseline runs: one slot runs tasks one
/// after another, so its time is linear in tasks and a prefix's rate stands
/// for the whole job (as W_SLOWIO's baseline does), while a user's job may
/// have a million tasks or tasks of seconds.
pub const JOB_BASELINE_TASKS: u64 = 100;

/// A user's job's runs, in row order: the serial baseline (only when
/// `with_baseline`; the job's first [`JOB_BASELINE_TASKS`] tasks on one
/// thread slot), each model (auto among them) with the cap of the job's
/// kind (`Kind::Cpu`: a task per core, else the I/O cap), and for an I/O job
/// the wide async row. A user's code cannot run in this process, so there is
/// no in-process row.
pub fn plan_job(
    job: &'static UserJob,
    kind: Kind,
    models: &[Model],
    caps: Caps,
    with_baseline: bool,
) -> Vec<RunPlan> {
    let w = WorkloadId::Job(job);
    let (range, chunk) = (job.range(), job.chunk);
    let tasks = job.tasks();
    let run = |label: String, model: Model, in_flight: u32, range: (u64, u64)| RunPlan {
        workload: w,
        label,
        model: Some(model),
        in_flight,
        range,
        chunk,
        scaled_from: None,
        uncapped: false,
    };
    let mut out = Vec::new();
    if with_baseline {
        let prefix = tasks.min(JOB_BASELINE_TASKS);
        out.push(RunPlan {
            scaled_from: (prefix < tasks).then_some(tasks),
            ..run(
                BASELINE.into(),
                Model::Thread,
                1,
                (range.0, range.1.min(range.0 + prefix * chunk)),
            )
        });
    }
    let io = kind != Kind::Cpu;
    let cap = if io { caps.io } else { caps.cpu };
    for &m in models {
        out.push(run(m.name().into(), m, cap, range));
    }
    if io && models.contains(&Model::Async) && caps.async_wide > caps.io {
        out.push(run(
            format!("async C={}", caps.async_wide),
            Model::Async,
            caps.async_wide,
            range,
        ));
    }
    out
}

/// Σ i² for a ≤ i < b by the closed form (the check for the workers' loop).
pub fn sum_squares(a: u64, b: u64) -> u128 {
    let prefix = |n: u128| {
        if n == 0 {
            0
        } else {
            (n - 1) * n * (2 * n - 1) / 6
        }
    };
    prefix(b as u128) - prefix(a as u128)
}

/// Checks a run's results exactly: one result per task in index order, every
/// value the one the workload must return, and for sum-squares the job's total.
pub fn verify(plan: &RunPlan, total: Option<u128>, results: &[(u64, u128)]) -> Result<(), String> {
    let (a, b) = plan.range;
    let tasks = plan.tasks();
    if results.len() as u64 != tasks {
        return Err(format!("{} results for {tasks} tasks", results.len()));
    }
    for (k, &(i, v)) in results.iter().enumerate() {
        if i != k as u64 {
            return Err(format!("result {k} has index {i}"));
        }
        let expected = match plan.workload {
            WorkloadId::Cpu | WorkloadId::CpuHeavy | WorkloadId::Grain => {
                let start = a + i * plan.chunk;
                sum_squares(start, (start + plan.chunk).min(b))
            }
            WorkloadId::Noop | WorkloadId::Spin => i as u128,
            WorkloadId::FastIo | WorkloadId::SlowIo => BODY_LEN,
            WorkloadId::Job(_) => {
                return Err("a job's outputs have no formula: they are checked against the other models' outputs".into())
            }
        };
        if v != expected {
            return Err(format!("task {i} returned {v}, expected {expected}"));
        }
    }
    if plan.workload.is_cpu() {
        let expected = sum_squares(a, b);
        match total {
            Some(t) if t == expected => {}
            Some(t) => return Err(format!("total {t}, expected {expected}")),
            None => return Err(format!("no total, expected {expected}")),
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const CAPS: Caps = Caps {
        cpu: 2,
        io: 32,
        async_wide: 2000,
        slots_bound: false,
    };

    /// The rows of an I/O workload with every model, auto and the wide row.
    const WIDE_ROWS: [&str; 6] = [
        "1 slot",
        "process",
        "thread",
        "async",
        "auto",
        "async C=2000",
    ];

    fn labels(p: &[RunPlan]) -> Vec<&str> {
        p.iter().map(|j| j.label.as_str()).collect()
    }

    #[test]
    fn workload_names_parse_loosely_and_refuse_unknowns() {
        assert_eq!(WorkloadId::parse("W_CPU"), Ok(WorkloadId::Cpu));
        assert_eq!(WorkloadId::parse("cpu-heavy"), Ok(WorkloadId::CpuHeavy));
        assert_eq!(WorkloadId::parse("w_slowio"), Ok(WorkloadId::SlowIo));
        assert!(WorkloadId::parse("W_GPU").unwrap_err().contains("W_NOOP"));
    }

    #[test]
    fn full_sizes_are_the_published_ones() {
        let tasks = |w, wide| {
            let ((a, b), c) = shape(w, Size::Full, wide);
            (b - a).div_ceil(c)
        };
        assert_eq!(tasks(WorkloadId::Cpu, false), 40);
        assert_eq!(tasks(WorkloadId::CpuHeavy, false), 40);
        assert_eq!(tasks(WorkloadId::Noop, false), 20_000);
        assert_eq!(tasks(WorkloadId::FastIo, false), 5_000);
        assert_eq!(tasks(WorkloadId::SlowIo, false), 2_000);
        assert_eq!(tasks(WorkloadId::SlowIo, true), 10_000);
        assert_eq!(sum_squares(0, 60_000_000), 71_999_998_200_000_010_000_000);
        assert_eq!(
            sum_squares(0, 4_000_000_000),
            21_333_333_325_333_333_334_000_000_000
        );
    }

    #[test]
    fn cpu_plan_has_baseline_models_and_the_in_process_limit() {
        let p = plan_workload(WorkloadId::CpuHeavy, Size::Full, &Model::ALL, CAPS, true);
        let labels: Vec<_> = p.iter().map(|j| j.label.as_str()).collect();
        assert_eq!(
            labels,
            [
                "serial",
                "1 slot",
                "process",
                "thread",
                "async",
                "in-process"
            ]
        );
        // The true serial run has no model (no scheduler) and p = 1; the
        // one-slot run goes through brigade on one thread slot.
        assert_eq!((p[0].model, p[0].in_flight), (None, 1));
        assert_eq!((p[1].model, p[1].in_flight), (Some(Model::Thread), 1));
        assert!(p[2..].iter().all(|j| j.in_flight == 2));
        assert!(p[5].model.is_none());
        assert!(is_serial("serial") && is_baseline("serial") && !is_serial("1 slot"));
        // No serial row without the baseline (later cluster sizes) or for I/O.
        let later = plan_workload(WorkloadId::Cpu, Size::Full, &Model::ALL, CAPS, false);
        assert!(later.iter().all(|j| !is_baseline(&j.label)));
        let io = plan_workload(WorkloadId::FastIo, Size::Full, &Model::ALL, CAPS, true);
        assert_eq!(io[0].label, "1 slot");
        assert!(io.iter().all(|j| !is_serial(&j.label)));
    }

    #[test]
    fn quick_cpu_sizes_keep_the_task_and_a_serial_time_worth_timing() {
        let ((a, b), c) = shape(WorkloadId::Cpu, Size::Quick, false);
        // W_CPU's own task width in a release build; 500 tasks of it.
        assert_eq!(c, 1_500_000);
        assert_eq!((b - a) * DEBUG_SLOWDOWN, QUICK_CPU_END);
        let ((a, b), c) = shape(WorkloadId::CpuHeavy, Size::Quick, false);
        assert_eq!((b - a).div_ceil(c), 40);
        assert_eq!((b - a) * DEBUG_SLOWDOWN, QUICK_HEAVY_END);
    }

    #[test]
    fn auto_gets_a_row_with_the_forced_models_cap_but_no_wide_or_grain_twin() {
        let mut models = Model::ALL.to_vec();
        models.push(Model::Auto);
        let p = plan_workload(WorkloadId::SlowIo, Size::Full, &models, CAPS, true);
        assert_eq!(labels(&p), WIDE_ROWS);
        let auto = &p[4];
        assert_eq!(auto.model, Some(Model::Auto));
        assert_eq!((auto.in_flight, auto.tasks()), (32, 2_000));
        assert_eq!(auto.spec("").model, Model::Auto as i32);
        assert!(is_auto("auto") && !is_auto("async C=2000") && !is_auto("1 slot"));
        let cpu = plan_workload(WorkloadId::Cpu, Size::Quick, &models, CAPS, false);
        assert_eq!(cpu[3].label, "auto");
        assert_eq!(cpu[3].in_flight, 2);
        let grain = plan_grain(Size::Quick, &models, CAPS, false);
        assert!(grain.iter().all(|j| j.model != Some(Model::Auto)));
        assert_eq!(grain.len(), 3 * 4);
    }

    #[test]
    fn slowio_baseline_is_a_scaled_prefix_and_the_wide_row_has_10k_tasks() {
        let p = plan_workload(WorkloadId::SlowIo, Size::Full, &Model::ALL, CAPS, true);
        assert_eq!(p[0].tasks(), 20);
        assert_eq!(p[0].scaled_from, Some(2_000));
        assert_eq!(p[1].tasks(), 2_000);
        assert_eq!(p[1].in_flight, 32);
        let wide = p.last().unwrap();
        assert_eq!(wide.label, "async C=2000");
        assert_eq!(wide.tasks(), 10_000);
        // Without the baseline (later cluster sizes) and without async.
        let p = plan_workload(
            WorkloadId::SlowIo,
            Size::Full,
            &[Model::Thread],
            CAPS,
            false,
        );
        assert_eq!(p.len(), 1);
    }

    #[test]
    fn grain_runs_every_decade_with_at_most_the_task_cap() {
        assert_eq!(width_label(1_000), "10^3");
        assert_eq!(width_label(100_000_000), "10^8");
        assert_eq!(width_label(1_500), "1500");
        assert_eq!(width_label(1), "1");
        let p = plan_grain(Size::Full, &Model::ALL, CAPS, true);
        // 6 widths x (serial, 3 models, in-process).
        assert_eq!(p.len(), 30);
        assert!(p.iter().all(|j| j.tasks() <= grain_max_tasks(Size::Full)));
        let at = |w: &str| -> Vec<&RunPlan> {
            p.iter()
                .filter(|j| j.label.ends_with(&format!("c={w}")))
                .collect()
        };
        // 10^3 and 10^4 run a prefix of the range; from 10^5 up, all of it.
        let narrow = at("10^3");
        assert_eq!(narrow[0].label, "serial c=10^3");
        assert_eq!(narrow[0].in_flight, 1);
        assert!(narrow[0].model.is_none());
        assert_eq!(narrow[0].range, (0, 200_000_000));
        assert_eq!(narrow[0].scaled_from, Some(4_000_000));
        // Every row of a width runs the same range as its baseline.
        assert!(narrow.iter().all(|j| j.range == narrow[0].range));
        assert_eq!(at("10^4")[0].range, (0, 2_000_000_000));
        let wide = at("10^8");
        assert_eq!(wide[0].range, (0, 4_000_000_000));
        assert_eq!(wide[0].tasks(), 40);
        assert_eq!(wide[0].scaled_from, None);
        assert_eq!(wide.last().unwrap().label, "in-process c=10^8");
        assert_eq!(wide[2].label, "thread c=10^8");
        assert_eq!(wide[2].in_flight, 2);
        // On an existing cluster the job cap bounds a model run; on the
        // fine-grained cluster the slots do.
        assert_eq!(wide[2].spec("").max_in_flight, 2);
        let bound = Caps {
            slots_bound: true,
            ..CAPS
        };
        let q = plan_grain(Size::Quick, &[Model::Thread], bound, false);
        assert_eq!(q.len(), 2 * 3);
        assert_eq!(q[0].spec("").max_in_flight, 0);
        assert!(q[1].model.is_none() && !q[1].uncapped);
        assert!(q.iter().all(|j| j.tasks() <= 6_000));
        // Every quick width runs the whole quick range (≥ 0.5 s serial in a
        // release build).
        assert!(q
            .iter()
            .all(|j| j.range.1 * DEBUG_SLOWDOWN == QUICK_GRAIN_END));
        assert_eq!(label_model("async c=10^5"), "async");
        assert_eq!(label_model("1 slot"), "1 slot");
        assert!(is_baseline("serial c=10^5") && is_baseline("1 slot"));
        assert!(!is_baseline("in-process c=10^5"));
    }

    #[test]
    fn a_job_has_a_prefix_baseline_every_model_and_for_io_the_wide_row() {
        use crate::job::JobInput;
        use brigade_proto::v1::InputsFormat;
        let job: &'static UserJob = Box::leak(Box::new(UserJob {
            workload: "echo".into(),
            args: vec![("k".into(), "v".into())],
            input: JobInput::Inputs {
                path: "names.txt".into(),
                format: InputsFormat::Jsonl,
                items: 1_000,
            },
            chunk: 3,
        }));
        assert_eq!(WorkloadId::Job(job).name(), "echo");
        assert!(WorkloadId::Job(job).is_job() && !WorkloadId::Job(job).is_cpu());
        let mut models = Model::ALL.to_vec();
        models.push(Model::Auto);
        let p = plan_job(job, Kind::Io, &models, CAPS, true);
        assert_eq!(labels(&p), WIDE_ROWS);
        let base = &p[0];
        assert_eq!(base.model, Some(Model::Thread));
        assert_eq!(
            (base.in_flight, base.range, base.tasks()),
            (1, (0, 300), 100)
        );
        assert_eq!(base.scaled_from, Some(334));
        assert!(p[1..]
            .iter()
            .all(|j| j.tasks() == 334 && j.scaled_from.is_none()));
        assert_eq!(p[1].in_flight, 32);
        assert_eq!(p[5].in_flight, 2000);
        let spec = base.spec("");
        assert_eq!(spec.workload, "echo");
        assert!(spec.has_inputs);
        assert_eq!(spec.inputs_format, InputsFormat::Jsonl as i32);
        assert_eq!((spec.range_start, spec.range_end, spec.chunk), (0, 0, 3));
        assert_eq!((spec.model, spec.max_in_flight), (Model::Thread as i32, 1));
        assert_eq!(spec.args.get("k").map(String::as_str), Some("v"));
        // A CPU job: a task per core, no wide row, no baseline at a later scale.
        let cpu = plan_job(job, Kind::Cpu, &models, CAPS, false);
        assert_eq!(cpu.len(), 4);
        assert!(cpu.iter().all(|j| j.in_flight == 2));
        // A small range job: the baseline runs all of it.
        let range: &'static UserJob = Box::leak(Box::new(UserJob {
            workload: "sum-squares".into(),
            args: Vec::new(),
            input: JobInput::Range(10, 60),
            chunk: 1,
        }));
        let p = plan_job(range, Kind::Cpu, &[Model::Thread], CAPS, true);
        assert_eq!((p[0].range, p[0].scaled_from), ((10, 60), None));
        let spec = p[1].spec("");
        assert!(!spec.has_inputs);
        assert_eq!((spec.range_start, spec.range_end, spec.chunk), (10, 60, 1));
        let rows: Vec<(u64, u128)> = (0..50).map(|i| (i, 0)).collect();
        assert!(verify(&p[1], None, &rows)
            .unwrap_err()
            .contains("no formula"));
    }

    #[test]
    fn verification_catches_every_kind_of_wrong_result() {
        let plan = plan_workload(WorkloadId::Cpu, Size::Full, &[], CAPS, true).remove(0);
        let good: Vec<(u64, u128)> = (0..40u64)
            .map(|i| (i, sum_squares(i * 1_500_000, (i + 1) * 1_500_000)))
            .collect();
        let total = Some(sum_squares(0, 60_000_000));
        assert_eq!(verify(&plan, total, &good), Ok(()));
        assert!(verify(&plan, total, &good[..39])
            .unwrap_err()
            .contains("39 results"));
        let mut bad = good.clone();
        bad[7].1 += 1;
        assert!(verify(&plan, total, &bad).unwrap_err().contains("task 7"));
        let mut swapped = good.clone();
        swapped.swap(3, 4);
        assert!(verify(&plan, total, &swapped)
            .unwrap_err()
            .contains("index"));
        assert!(verify(&plan, Some(1), &good).unwrap_err().contains("total"));

        let noop = plan_workload(WorkloadId::Noop, Size::Quick, &[], CAPS, true).remove(0);
        let ok: Vec<(u64, u128)> = (0..2_000).map(|i| (i, i as u128)).collect();
        assert_eq!(verify(&noop, None, &ok), Ok(()));
        let mut off = ok.clone();
        off[5].1 = 6;
        assert!(verify(&noop, None, &off).is_err());

        let io = plan_workload(WorkloadId::FastIo, Size::Quick, &[], CAPS, true).remove(0);
        let mut bodies: Vec<(u64, u128)> = (0..500).map(|i| (i, 1024)).collect();
        assert_eq!(verify(&io, None, &bodies), Ok(()));
        bodies[499].1 = 1023;
        assert!(verify(&io, None, &bodies).unwrap_err().contains("1024"));
    }
}
