//! Job admission: turns a client's `JobSpec` into a validated [`JobPlan`]
//! (workload known, arguments valid, range non-empty, chunk positive, task
//! count within the limit, model routed) or a [`AdmissionError`] that says what
//! was wrong and what is allowed. Pure: no I/O.
//!
//! This is where the wire ends on the way in: the plan's typed fields are
//! all the scheduling core reads; the spec rides along untouched for the
//! actor (assignments, client views, the store).

use brigade_proto::catalog::{Catalog, CatalogError, Reduction, WorkloadDef};
use brigade_proto::convert::{KIND_NAMES, MODEL_NAMES};
use brigade_proto::v1::{JobSpec, Kind, Model, Reduce, TaskGrid};
use brigade_proto::SlotModel;

/// What a job's tasks mostly do; it picks the model unless one is named.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JobKind {
    Cpu,
    Io,
}

impl JobKind {
    /// The user-facing name (`cpu`, `io`).
    pub fn name(self) -> &'static str {
        Kind::from(self).name()
    }
}

impl From<JobKind> for Kind {
    fn from(k: JobKind) -> Kind {
        match k {
            JobKind::Cpu => Kind::Cpu,
            JobKind::Io => Kind::Io,
        }
    }
}

/// How a job's task outputs combine into its result (`--reduce`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JobReduce {
    /// The outputs are the result.
    None,
    /// The exact sum of integer outputs.
    Sum,
    /// How many tasks succeeded.
    Count,
    /// The smallest integer output.
    Min,
    /// The largest integer output.
    Max,
    /// The outputs in index order, one per line (clients join them).
    Concat,
}

impl JobReduce {
    /// Whether the reduction reads integer outputs (a byte output then
    /// fails its task).
    pub fn needs_integers(self) -> bool {
        matches!(self, JobReduce::Sum | JobReduce::Min | JobReduce::Max)
    }

    /// Whether the job has a single reduced value (its total).
    pub fn has_value(self) -> bool {
        matches!(
            self,
            JobReduce::Sum | JobReduce::Count | JobReduce::Min | JobReduce::Max
        )
    }
}

impl From<JobReduce> for Reduce {
    fn from(r: JobReduce) -> Reduce {
        match r {
            JobReduce::None => Reduce::None,
            JobReduce::Sum => Reduce::Sum,
            JobReduce::Count => Reduce::Count,
            JobReduce::Min => Reduce::Min,
            JobReduce::Max => Reduce::Max,
            JobReduce::Concat => Reduce::Concat,
        }
    }
}

/// How a job's model was picked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ModelChoice {
    /// By its kind: cpu → process slots, io → async slots.
    ByKind,
    /// The client named it.
    Forced,
    /// `--model auto`: probe on thread slots first, then route by what
    /// the probes measured.
    Auto,
}

/// A job that passed admission: everything the scheduler needs to run it.
#[derive(Debug, Clone)]
pub struct JobPlan {
    /// The spec as submitted, for the edge (assignments, client views, the
    /// store); the scheduling core reads only the fields below.
    pub spec: JobSpec,
    pub kind: JobKind,
    pub model: SlotModel,
    pub choice: ModelChoice,
    /// How the task outputs combine into the job's result.
    pub reduce: JobReduce,
    /// Bytes one task's output may have.
    pub max_result_bytes: u64,
    /// Most bytes of byte outputs the job's done tasks may hold together
    /// (`max_result_bytes_per_job`): past it a task's output is refused.
    pub max_job_result_bytes: u64,
    pub tasks: u64,
    pub max_attempts: u32,
    /// Most tasks of the job leased at once (`None`: no cap).
    pub max_in_flight: Option<u32>,
    /// Tasks that may fail for good with the job still succeeding.
    pub allow_failures: u64,
    /// A failure beyond `allow_failures` ends the job at once (its other
    /// tasks dropped) instead of when every task has finished.
    pub fail_fast: bool,
    /// The name of the client that submitted the job ("" without
    /// authentication): for the edge, which shows the job only to its owner
    /// and admins; the core never reads it.
    pub owner: String,
}

impl JobPlan {
    /// The job's input grid, as assignments carry it to workers.
    pub fn grid(&self) -> TaskGrid {
        TaskGrid {
            start: self.spec.range_start,
            end: self.spec.range_end,
            chunk: self.spec.chunk,
        }
    }

    /// The input sub-range `[start, end)` of task `index`.
    pub fn task_range(&self, index: u64) -> (u64, u64) {
        self.grid().range(index)
    }
}

/// Limits applied at admission.
#[derive(Debug, Clone, Copy)]
pub struct AdmissionLimits {
    /// Jobs with more tasks are refused.
    pub max_tasks_per_job: u64,
    /// Attempts per task when a job does not say.
    pub default_max_attempts: u32,
    /// The most attempts per task a job may ask for.
    pub max_attempts_limit: u32,
    /// Bytes one task's output may have when a job does not say.
    pub default_max_result_bytes: u64,
    /// The most bytes per task output a job may ask for.
    pub max_result_bytes_limit: u64,
    /// Most bytes of byte outputs one job's results may hold together; a
    /// task whose output would take the job past it fails for good.
    pub max_result_bytes_per_job: u64,
    /// The most bytes of items one inputs job may upload.
    pub max_input_bytes: u64,
    /// The longest a job's name (its free-form label) may be, in bytes.
    pub max_name_bytes: usize,
    /// The longest a workload's name may be, in bytes.
    pub max_workload_name_bytes: usize,
    /// The most arguments one job may carry.
    pub max_args: usize,
    /// The longest one argument's name or value may be, in bytes.
    pub max_arg_bytes: usize,
    /// Jobs one client (owner) may have that have not ended; more are
    /// refused until some end (0: no limit). Checked by the actor, which
    /// keeps the count.
    pub max_active_jobs_per_owner: u64,
    /// Tasks in one owner's jobs that have not ended, at most (0: no
    /// limit): a job that would go past it is refused.
    pub max_active_tasks_per_owner: u64,
    /// The per-task timeout of jobs that set none (0: none), written into
    /// their spec when admitted.
    pub default_task_timeout_ms: u64,
}

impl AdmissionLimits {
    /// Default [`Self::max_tasks_per_job`].
    pub const DEFAULT_MAX_TASKS_PER_JOB: u64 = 10_000_000;
    /// Default [`Self::default_max_attempts`].
    pub const DEFAULT_MAX_ATTEMPTS: u32 = 3;
    /// Default [`Self::max_attempts_limit`].
    pub const DEFAULT_MAX_ATTEMPTS_LIMIT: u32 = 100;
    /// Default [`Self::default_max_result_bytes`]: 1 MiB.
    pub const DEFAULT_MAX_RESULT_BYTES: u64 = 1 << 20;
    /// Default [`Self::max_result_bytes_per_job`]: 1 GiB.
    pub const DEFAULT_MAX_RESULT_BYTES_PER_JOB: u64 = 1 << 30;
    /// Default [`Self::max_result_bytes_limit`]: 32 MiB (half a link message).
    pub const DEFAULT_MAX_RESULT_BYTES_LIMIT: u64 = 32 << 20;
    /// Default [`Self::max_input_bytes`]: 1 GiB.
    pub const DEFAULT_MAX_INPUT_BYTES: u64 = 1 << 30;
    /// The longest one input item may be.
    pub const MAX_INPUT_ITEM_BYTES: usize = 1 << 20;
    /// Default [`Self::max_name_bytes`]: 4 KiB.
    pub const DEFAULT_MAX_NAME_BYTES: usize = 4 << 10;
    /// Default [`Self::max_workload_name_bytes`].
    pub const DEFAULT_MAX_WORKLOAD_NAME_BYTES: usize = 256;
    /// Default [`Self::max_args`].
    pub const DEFAULT_MAX_ARGS: usize = 64;
    /// Default [`Self::max_arg_bytes`]: 4 KiB.
    pub const DEFAULT_MAX_ARG_BYTES: usize = 4 << 10;
    /// Default [`Self::max_active_jobs_per_owner`].
    pub const DEFAULT_MAX_ACTIVE_JOBS_PER_OWNER: u64 = 1_000;
    /// Default [`Self::max_active_tasks_per_owner`]: ten of the largest
    /// jobs `--max-tasks-per-job` allows by default.
    pub const DEFAULT_MAX_ACTIVE_TASKS_PER_OWNER: u64 = 100_000_000;
}

impl Default for AdmissionLimits {
    fn default() -> Self {
        AdmissionLimits {
            max_tasks_per_job: Self::DEFAULT_MAX_TASKS_PER_JOB,
            default_max_attempts: Self::DEFAULT_MAX_ATTEMPTS,
            max_attempts_limit: Self::DEFAULT_MAX_ATTEMPTS_LIMIT,
            default_max_result_bytes: Self::DEFAULT_MAX_RESULT_BYTES,
            max_result_bytes_limit: Self::DEFAULT_MAX_RESULT_BYTES_LIMIT,
            max_result_bytes_per_job: Self::DEFAULT_MAX_RESULT_BYTES_PER_JOB,
            max_input_bytes: Self::DEFAULT_MAX_INPUT_BYTES,
            max_name_bytes: Self::DEFAULT_MAX_NAME_BYTES,
            max_workload_name_bytes: Self::DEFAULT_MAX_WORKLOAD_NAME_BYTES,
            max_args: Self::DEFAULT_MAX_ARGS,
            max_arg_bytes: Self::DEFAULT_MAX_ARG_BYTES,
            max_active_jobs_per_owner: Self::DEFAULT_MAX_ACTIVE_JOBS_PER_OWNER,
            max_active_tasks_per_owner: Self::DEFAULT_MAX_ACTIVE_TASKS_PER_OWNER,
            default_task_timeout_ms: 0,
        }
    }
}

/// Why a job was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AdmissionError {
    #[error(
        "unknown workload {name:?}: no worker has defined it; start a worker that offers it \
         (workers announce their workloads when they link), then submit; known workloads: {known}"
    )]
    UnknownWorkload { name: String, known: String },
    #[error(transparent)]
    Workload(#[from] CatalogError),
    #[error("empty range {start}..{end}: the range must be start..end with start < end")]
    EmptyRange { start: u64, end: u64 },
    #[error("chunk must be at least 1 (got 0)")]
    ZeroChunk,
    #[error(
        "the job would have {tasks} tasks, more than the limit of {limit} per job; \
         use a larger --chunk (at least {min_chunk}) or raise the coordinator's --max-tasks-per-job"
    )]
    TooManyTasks {
        tasks: u64,
        limit: u64,
        min_chunk: u64,
    },
    #[error("unknown model value {0}; allowed: {allowed}", allowed = MODEL_NAMES.join(", "))]
    UnknownModel(i32),
    #[error("unknown kind value {0}; allowed: {allowed}", allowed = KIND_NAMES.join(", "))]
    UnknownKind(i32),
    #[error("unknown reduction value {0}; allowed: sum, count, min, max, concat, none")]
    UnknownReduce(i32),
    #[error("an inputs job needs at least one input")]
    NoInputs,
    #[error("max_result_bytes {got} is above the limit of {limit}")]
    ResultBytesTooLarge { got: u64, limit: u64 },
    #[error("max_attempts {got} is above the limit of {limit}")]
    TooManyAttempts { got: u32, limit: u32 },
    #[error("the job name is {len} bytes, over the limit of {limit} bytes")]
    NameTooLong { len: usize, limit: usize },
    #[error("the workload name is {len} bytes, over the limit of {limit} bytes")]
    WorkloadNameTooLong { len: usize, limit: usize },
    #[error("the job has {count} arguments, over the limit of {limit} per job")]
    TooManyArgs { count: usize, limit: usize },
    #[error("an argument name is {len} bytes, over the limit of {limit} bytes")]
    ArgNameTooLong { len: usize, limit: usize },
    #[error("the value of argument {arg} is {len} bytes, over the limit of {limit} bytes")]
    ArgValueTooLong {
        /// The argument's name, quoted (shortened when long).
        arg: String,
        len: usize,
        limit: usize,
    },
}

/// `s` quoted for an error message, cut to its first 64 bytes (at a
/// character boundary) so an error never echoes a large input.
fn quoted_prefix(s: &str) -> String {
    const SHOWN: usize = 64;
    if s.len() <= SHOWN {
        return format!("{s:?}");
    }
    let mut end = SHOWN;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    format!("{:?}… ({} bytes)", &s[..end], s.len())
}

/// Refuses a spec whose strings or argument count are over `limits`:
/// checked before anything else reads (or echoes) them.
fn check_sizes(spec: &JobSpec, limits: &AdmissionLimits) -> Result<(), AdmissionError> {
    if spec.workload.len() > limits.max_workload_name_bytes {
        return Err(AdmissionError::WorkloadNameTooLong {
            len: spec.workload.len(),
            limit: limits.max_workload_name_bytes,
        });
    }
    if spec.name.len() > limits.max_name_bytes {
        return Err(AdmissionError::NameTooLong {
            len: spec.name.len(),
            limit: limits.max_name_bytes,
        });
    }
    if spec.args.len() > limits.max_args {
        return Err(AdmissionError::TooManyArgs {
            count: spec.args.len(),
            limit: limits.max_args,
        });
    }
    for (key, value) in &spec.args {
        if key.len() > limits.max_arg_bytes {
            return Err(AdmissionError::ArgNameTooLong {
                len: key.len(),
                limit: limits.max_arg_bytes,
            });
        }
        if value.len() > limits.max_arg_bytes {
            return Err(AdmissionError::ArgValueTooLong {
                arg: quoted_prefix(key),
                len: value.len(),
                limit: limits.max_arg_bytes,
            });
        }
    }
    Ok(())
}

/// The most tasks any job has, whatever `--max-tasks-per-job` says.
pub const MAX_TASKS: u64 = u32::MAX as u64;

/// Validates `spec` against the workload's definition in `workloads` and
/// routes it: `model` if forced, else kind `cpu` → process slots and `io` →
/// async slots, the kind defaulting to the workload's. A workload nobody
/// defined is refused, naming the known ones.
pub fn admit(
    spec: JobSpec,
    workloads: &Catalog,
    limits: &AdmissionLimits,
) -> Result<JobPlan, AdmissionError> {
    check_sizes(&spec, limits)?;
    let def = workloads.lookup(&spec.workload).map_err(|e| match e {
        CatalogError::UnknownWorkload { name, known } => {
            AdmissionError::UnknownWorkload { name, known }
        }
        e => AdmissionError::Workload(e),
    })?;
    admit_as(spec, Some(def), limits)
}

/// [`admit`] with the definition at hand: `None` for a stored job whose
/// workload no worker has defined since the restart (its arguments were
/// checked when it was submitted, and its spec carries its effective kind
/// and reduction, which admission writes into it).
pub fn admit_as(
    mut spec: JobSpec,
    def: Option<&WorkloadDef>,
    limits: &AdmissionLimits,
) -> Result<JobPlan, AdmissionError> {
    if let Some(def) = def {
        def.validate(&spec.args)?;
    }
    if spec.has_inputs && spec.range_end == 0 {
        return Err(AdmissionError::NoInputs);
    }
    if spec.range_start >= spec.range_end {
        return Err(AdmissionError::EmptyRange {
            start: spec.range_start,
            end: spec.range_end,
        });
    }
    if spec.chunk == 0 {
        return Err(AdmissionError::ZeroChunk);
    }
    let width = spec.range_end - spec.range_start;
    let tasks = width.div_ceil(spec.chunk);
    // Whatever the configured limit: a task index must fit in 32 bits
    // (the scheduler keeps completion order that way).
    let limit = limits.max_tasks_per_job.min(MAX_TASKS);
    if tasks > limit {
        return Err(AdmissionError::TooManyTasks {
            tasks,
            limit,
            min_chunk: width.div_ceil(limit.max(1)),
        });
    }
    let kind = match Kind::try_from(spec.kind) {
        Ok(Kind::Unspecified) => def.map_or(Kind::Cpu, |d| d.kind),
        Ok(k) => k,
        Err(_) => return Err(AdmissionError::UnknownKind(spec.kind)),
    };
    let kind = match kind {
        Kind::Io => JobKind::Io,
        Kind::Cpu | Kind::Unspecified => JobKind::Cpu,
    };
    let Ok(model) = Model::try_from(spec.model) else {
        return Err(AdmissionError::UnknownModel(spec.model));
    };
    let (model, choice) = match SlotModel::try_from(model) {
        Ok(m) => (m, ModelChoice::Forced),
        // Probes run on thread slots: the model closest to plain code.
        Err(Model::Auto) => (SlotModel::Thread, ModelChoice::Auto),
        Err(_) => match kind {
            JobKind::Io => (SlotModel::Async, ModelChoice::ByKind),
            JobKind::Cpu => (SlotModel::Process, ModelChoice::ByKind),
        },
    };
    let reduce = match Reduce::try_from(spec.reduce) {
        Ok(Reduce::Unspecified) => match def.map(|d| d.reduction) {
            Some(Reduction::Sum) => JobReduce::Sum,
            Some(Reduction::List) | None => JobReduce::None,
        },
        Ok(Reduce::None) => JobReduce::None,
        Ok(Reduce::Sum) => JobReduce::Sum,
        Ok(Reduce::Count) => JobReduce::Count,
        Ok(Reduce::Min) => JobReduce::Min,
        Ok(Reduce::Max) => JobReduce::Max,
        Ok(Reduce::Concat) => JobReduce::Concat,
        Err(_) => return Err(AdmissionError::UnknownReduce(spec.reduce)),
    };
    let max_result_bytes = match spec.max_result_bytes {
        0 => limits.default_max_result_bytes,
        n if n > limits.max_result_bytes_limit => {
            return Err(AdmissionError::ResultBytesTooLarge {
                got: n,
                limit: limits.max_result_bytes_limit,
            })
        }
        n => n,
    };
    if spec.max_attempts > limits.max_attempts_limit {
        return Err(AdmissionError::TooManyAttempts {
            got: spec.max_attempts,
            limit: limits.max_attempts_limit,
        });
    }
    let max_attempts = match spec.max_attempts {
        0 => limits.default_max_attempts,
        n => n,
    };
    // The stored spec carries what the definition decided, so a restart
    // needs no definition to resume the job the same way.
    spec.kind = Kind::from(kind) as i32;
    spec.reduce = Reduce::from(reduce) as i32;
    if spec.task_timeout_ms == 0 {
        spec.task_timeout_ms = limits.default_task_timeout_ms;
    }
    Ok(JobPlan {
        reduce,
        max_result_bytes,
        max_job_result_bytes: limits.max_result_bytes_per_job,
        kind,
        model,
        choice,
        tasks,
        max_attempts,
        max_in_flight: (spec.max_in_flight > 0).then_some(spec.max_in_flight),
        allow_failures: spec.allow_failures,
        fail_fast: spec.fail_fast,
        owner: String::new(),
        spec,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    pub(crate) fn spec(workload: &str, start: u64, end: u64, chunk: u64) -> JobSpec {
        JobSpec {
            workload: workload.into(),
            range_start: start,
            range_end: end,
            chunk,
            ..Default::default()
        }
    }

    #[test]
    fn a_job_without_a_task_timeout_gets_the_default_one_in_its_spec() {
        let limits = AdmissionLimits {
            default_task_timeout_ms: 30_000,
            ..AdmissionLimits::default()
        };
        let catalog = crate::testing::catalog();
        let plan = admit(spec("noop", 0, 4, 1), &catalog, &limits).unwrap();
        assert_eq!(plan.spec.task_timeout_ms, 30_000);
        let own = JobSpec {
            task_timeout_ms: 5,
            ..spec("noop", 0, 4, 1)
        };
        let plan = admit(own, &catalog, &limits).unwrap();
        assert_eq!(plan.spec.task_timeout_ms, 5, "a job's own timeout stays");
        let plan = admit(spec("noop", 0, 4, 1), &catalog, &AdmissionLimits::default()).unwrap();
        assert_eq!(plan.spec.task_timeout_ms, 0, "no default: no timeout");
    }

    #[test]
    fn splits_a_range_into_chunks_with_a_short_last_one() {
        let plan = admit(
            spec("sum-squares", 10, 35, 10),
            &crate::testing::catalog(),
            &AdmissionLimits::default(),
        )
        .unwrap();
        assert_eq!(plan.tasks, 3);
        assert_eq!(plan.task_range(0), (10, 20));
        assert_eq!(plan.task_range(1), (20, 30));
        assert_eq!(plan.task_range(2), (30, 35));
    }

    #[test]
    fn a_chunk_wider_than_the_range_is_one_task() {
        let plan = admit(
            spec("sum-squares", 0, 5, 1_000),
            &crate::testing::catalog(),
            &AdmissionLimits::default(),
        )
        .unwrap();
        assert_eq!(plan.tasks, 1);
        assert_eq!(plan.task_range(0), (0, 5));
    }

    #[test]
    fn w_cpu_is_forty_tasks_on_process_slots() {
        let plan = admit(
            spec("sum-squares", 0, 60_000_000, 1_500_000),
            &crate::testing::catalog(),
            &AdmissionLimits::default(),
        )
        .unwrap();
        assert_eq!(plan.tasks, 40);
        assert_eq!(plan.model, SlotModel::Process);
        assert_eq!(plan.kind, JobKind::Cpu);
        assert_eq!(plan.reduce, JobReduce::Sum);
    }

    #[test]
    fn routes_by_kind_unless_a_model_is_forced() {
        let l = AdmissionLimits::default();
        let mut s = spec("sleep", 0, 10, 1);
        assert_eq!(
            admit(s.clone(), &crate::testing::catalog(), &l)
                .unwrap()
                .model,
            SlotModel::Async
        );
        s.kind = Kind::Cpu as i32;
        assert_eq!(
            admit(s.clone(), &crate::testing::catalog(), &l)
                .unwrap()
                .model,
            SlotModel::Process
        );
        s.model = Model::Thread as i32;
        assert_eq!(
            admit(s, &crate::testing::catalog(), &l).unwrap().model,
            SlotModel::Thread
        );
    }

    #[test]
    fn bad_input_is_refused_with_what_is_allowed() {
        let l = AdmissionLimits::default();
        let e = admit(spec("sum-squares", 5, 5, 1), &crate::testing::catalog(), &l).unwrap_err();
        assert!(e.to_string().contains("start < end"), "{e}");
        let e = admit(spec("sum-squares", 9, 5, 1), &crate::testing::catalog(), &l).unwrap_err();
        assert_eq!(e, AdmissionError::EmptyRange { start: 9, end: 5 });
        assert_eq!(
            admit(spec("sum-squares", 0, 5, 0), &crate::testing::catalog(), &l).unwrap_err(),
            AdmissionError::ZeroChunk
        );
        let e = admit(spec("nope", 0, 5, 1), &crate::testing::catalog(), &l)
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("unknown workload \"nope\"")
                && e.contains("start a worker that offers it")
                && e.contains("known workloads"),
            "{e}"
        );
        let mut s = spec("noop", 0, 5, 1);
        s.model = 42;
        let e = admit(s, &crate::testing::catalog(), &l)
            .unwrap_err()
            .to_string();
        assert!(e.contains("process, thread, async"), "{e}");
        let mut s = spec("noop", 0, 5, 1);
        s.kind = 9;
        let e = admit(s, &crate::testing::catalog(), &l)
            .unwrap_err()
            .to_string();
        assert!(e.contains("cpu, io"), "{e}");
    }

    #[test]
    fn too_many_tasks_names_the_limit_and_a_chunk_that_fits() {
        let l = AdmissionLimits {
            max_tasks_per_job: 100,
            ..Default::default()
        };
        let e = admit(spec("noop", 0, 1_000, 1), &crate::testing::catalog(), &l).unwrap_err();
        assert_eq!(
            e,
            AdmissionError::TooManyTasks {
                tasks: 1_000,
                limit: 100,
                min_chunk: 10
            }
        );
        assert!(admit(spec("noop", 0, 1_000, 10), &crate::testing::catalog(), &l).is_ok());
    }

    #[test]
    fn oversized_strings_and_too_many_args_are_refused_without_echoing_them() {
        let (l, cat) = (AdmissionLimits::default(), crate::testing::catalog());
        let huge = "x".repeat(1 << 20);
        let mut s = spec("noop", 0, 5, 1);
        s.name = "n".repeat(4096);
        assert!(admit(s.clone(), &cat, &l).is_ok(), "4 KiB is allowed");
        s.name.push('n');
        let e = admit(s, &cat, &l).unwrap_err();
        assert_eq!(
            e,
            AdmissionError::NameTooLong {
                len: 4097,
                limit: 4096
            }
        );
        assert!(e.to_string().contains("limit of 4096 bytes"), "{e}");

        let e = admit(spec(&huge, 0, 5, 1), &cat, &l).unwrap_err();
        assert_eq!(
            e,
            AdmissionError::WorkloadNameTooLong {
                len: 1 << 20,
                limit: 256
            }
        );
        assert!(e.to_string().len() < 200, "{e}");

        let mut s = spec("noop", 0, 5, 1);
        s.args = (0..65).map(|i| (format!("a{i}"), String::new())).collect();
        let e = admit(s, &cat, &l).unwrap_err();
        assert_eq!(
            e,
            AdmissionError::TooManyArgs {
                count: 65,
                limit: 64
            }
        );

        let mut s = spec("noop", 0, 5, 1);
        s.args.insert(huge.clone(), "1".into());
        let e = admit(s, &cat, &l).unwrap_err();
        assert_eq!(
            e,
            AdmissionError::ArgNameTooLong {
                len: 1 << 20,
                limit: 4096
            }
        );
        assert!(e.to_string().len() < 200, "{e}");

        let mut s = spec("sleep", 0, 5, 1);
        s.args.insert("ms".into(), huge.clone());
        let e = admit(s, &cat, &l).unwrap_err().to_string();
        assert!(
            e.contains("argument \"ms\"") && e.contains("limit of 4096 bytes") && e.len() < 200,
            "{e}"
        );
        let mut s = spec("sleep", 0, 5, 1);
        s.args.insert("é".repeat(100), huge);
        let e = admit(s, &cat, &l).unwrap_err().to_string();
        assert!(e.contains("(200 bytes)") && e.len() < 200, "{e}");
    }

    #[test]
    fn size_limits_come_from_the_limits() {
        let l = AdmissionLimits {
            max_name_bytes: 3,
            max_args: 0,
            ..Default::default()
        };
        let mut s = spec("noop", 0, 5, 1);
        s.name = "abcd".into();
        assert_eq!(
            admit(s, &crate::testing::catalog(), &l).unwrap_err(),
            AdmissionError::NameTooLong { len: 4, limit: 3 }
        );
        let mut s = spec("noop", 0, 5, 1);
        s.args.insert("a".into(), "1".into());
        assert_eq!(
            admit(s, &crate::testing::catalog(), &l).unwrap_err(),
            AdmissionError::TooManyArgs { count: 1, limit: 0 }
        );
    }
}
