//! What one `brigade bench` measured and what every view of it shares: the
//! terminal table (the crate root), the files (`output`) and the page
//! (`html`) read it from here, so none of them depends on another through it.

use crate::overhead;
use crate::plan::{Size, WorkloadId};
use crate::procfs;
use crate::report::{Row, RunRecord};

/// Cluster start-up, measured apart from the steady-state runs.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Startup {
    pub workers: u32,
    /// Slots of each local worker (`None`: existing cluster).
    pub slots_each: Option<String>,
    /// Coordinator bound → every worker linked (`None`: existing cluster).
    pub ready_s: Option<f64>,
    /// Coordinator bound → the first task's result is in the client's hands.
    pub first_task_s: Option<f64>,
    /// The warm-up round (every model's slots exercised) that follows.
    pub warm_up_s: f64,
}

/// Everything one `brigade bench` measured.
pub struct BenchOutcome {
    pub facts: procfs::MachineFacts,
    pub args: Vec<String>,
    pub runs: Vec<RunRecord>,
    /// The `--overhead` runs (kept apart: they are not workload rows).
    pub overhead: Vec<RunRecord>,
    /// `--overhead`: single-task round trips per model.
    pub round_trips: Vec<overhead::RoundTripRow>,
    pub startups: Vec<Startup>,
    /// The cluster was started here (not reached with --coordinator).
    pub local: bool,
    /// The Python baseline's own JSON lines (its rows are in `runs` too).
    pub python_lines: Vec<serde_json::Value>,
    /// What the reader must know that is not a row (skipped parts).
    pub notes: Vec<String>,
    pub quick: bool,
}

impl BenchOutcome {
    pub fn size(&self) -> Size {
        if self.quick {
            Size::Quick
        } else {
            Size::Full
        }
    }
}

/// One plot file and what it shows.
pub struct Plot {
    pub file: &'static str,
    pub caption: String,
    pub svg: String,
}

/// The start-up line of the table and the page.
pub fn startup_line(s: &Startup) -> String {
    match (s.ready_s, s.first_task_s) {
        (Some(r), Some(f)) => format!(
            "start-up with {} worker(s) ({}): linked in {:.0} ms, first task result at {:.0} ms; warm-up {:.2} s (not in any figure)",
            s.workers,
            s.slots_each.as_deref().unwrap_or("?"),
            r * 1e3,
            f * 1e3,
            s.warm_up_s
        ),
        _ => format!(
            "existing cluster with {} worker(s): start-up not measured; warm-up {:.2} s",
            s.workers, s.warm_up_s
        ),
    }
}

/// The legend's line on the in-process row (the yardsticks' CPU limit).
const IN_PROCESS_LINE: &str = "in-process: the same range on a plain pool of p threads in this process, measured beside the rows: its efficiency is the practical CPU limit here.";
/// The legend's line on how the yardsticks' results are checked.
const EXACT_LINE: &str = "Every run's results are checked exactly (each task's value and the total); a wrong or failed run is FAILED, never a number.";

/// What the columns mean, printed under the table and shown in the report.
pub const LEGEND: &[&str] = &[
    "p: tasks the job may run at once. wall: first task submitted until the last result is in hand.",
    "speedup: tasks/s over the baseline T1; eff = speedup / p. CPU workloads: T1 is `serial`, the same function over the same range in one",
    "  plain loop in this process (no scheduler); `1 slot` is one thread slot through brigade, paying its per-task cost. Others: T1 is `1 slot`.",
    "eff ending in `!`: a measurement anomaly (efficiency > 1.05, or async > 1.1x serial on CPU work), never ranked; the note says the likely cause.",
    "verdict: the fastest model and the next; models whose tasks/s ranges over the repetitions overlap (or are < 3% apart) tie.",
    IN_PROCESS_LINE,
    "CPU: CPU time of coordinator, workers and executors / (wall x cores), the HTTP target excluded. RSS: peak of their summed resident memory, sampled every 20 ms",
    "  (executor processes count only in process-model rows: thread and async rows would not need them; in-process counts this process).",
    EXACT_LINE,
];

/// The legend under `rows`: [`LEGEND`] (without the yardsticks' lines when
/// only a user's job ran), then W_GRAIN's and the job's when they ran.
pub fn legend(rows: &[Row]) -> Vec<&'static str> {
    let yardsticks = rows.iter().any(|r| !r.workload.is_job());
    let grain = rows.iter().any(|r| r.workload == WorkloadId::Grain);
    let job = rows.iter().any(|r| r.workload.is_job());
    LEGEND
        .iter()
        .filter(|l| yardsticks || ![IN_PROCESS_LINE, EXACT_LINE].contains(l))
        .chain(GRAIN_LEGEND.iter().filter(|_| grain))
        .chain(JOB_LEGEND.iter().filter(|_| job))
        .copied()
        .collect()
}

/// What the Python rows are.
pub const PYTHON_NOTE: &str = "CPython's multiprocessing.Pool, ThreadPoolExecutor and asyncio (+ aiohttp) with the same in-flight caps, speedup over its own serial loop";

/// What a user's job's rows mean (`--job`), printed when it ran.
pub const JOB_LEGEND: &[&str] = &[
    "your job (--job): a run is verified when every task succeeded and every output equals, index by index,",
    "  the output of the first run that completed the whole job (full outputs, bytes or integers, streamed to",
    "  files and compared after the clock stops). Its `1 slot` baseline runs the job's first 100 tasks and its",
    "  rate stands for the whole job; there is no in-process row (your code runs only in your workers).",
];

/// What W_GRAIN's rows mean, printed when it ran.
pub const GRAIN_LEGEND: &[&str] = &[
    "W_GRAIN: W_CPU_HEAVY's range in chunks of width c, on workers with one slot per core and model and no job cap",
    "  (workers queue tasks ahead). Its baseline `serial c=...` is the same range in one plain loop in this process:",
    "  eff = T1 / (p x Tp) measured on the same range. Narrow widths run a prefix of the range (at most 200,000",
    "  tasks; with --quick, widths 10^5..10^7 over [0, 6*10^8)), which leaves the ratio honest because T1 is measured on that prefix too.",
];
