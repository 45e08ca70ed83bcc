//! brigade-lab, `brigade bench`: the experiment lab. Starts (or reaches) a
//! cluster, runs a user's own job (`--job`) or the WORKLOADS.md yardsticks
//! (with the io-target) in every model with a shared serial baseline,
//! verifies every result, and prints the comparison table; `--out DIR` adds
//! results.jsonl, results.csv, SVG plots and report.html. W_GRAIN and
//! `--overhead` run on a second cluster whose workers have as many slots of
//! each model as there are cores (see [`plan::Caps`]).
//!
//! Code map: [`plan`] what runs and how it is checked, [`job`] a user's job
//! and one run of it, [`agree`] how a job's runs are checked against each
//! other, [`cluster`] the cluster, [`procfs`] CPU / memory / machine facts,
//! [`report`] the maths and the table, [`overhead`] the per-task overhead
//! experiment, [`python`] the Python baseline, [`output`] the files, [`svg`]
//! and [`html`] the plots and the page.

mod agree;
pub mod cluster;
mod html;
mod job;
mod outcome;
mod output;
mod overhead;
mod plan;
mod procfs;
mod python;
mod report;
mod svg;

use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use brigade_client::{
    parse_inputs_format, parse_kv, parse_range, state_name, total, Client, InputsFormat, RunEvent,
};
use brigade_proto::v1::{JobState, Kind, Model};
use futures::StreamExt;

use cluster::Slots;
use job::UserJob;
use outcome::{startup_line, BenchOutcome, Startup, PYTHON_NOTE};
use plan::{Caps, RunPlan, Size, WorkloadId};
use report::RunRecord;

pub use plan::sum_squares;
pub use procfs::cluster_cpu_secs;

/// `brigade bench` options.
#[derive(clap::Args, Debug, Clone)]
#[command(
    after_help = "Your own job in every model (verified: every model's outputs agree, index by index):
  brigade bench --job echo --inputs lines.txt --chunk 64
  brigade bench --job sum-squares --range 0..60000000 --chunk 1500000
  brigade bench --job my-task --inputs items.jsonl --inputs-format jsonl --coordinator http://127.0.0.1:7070
The yardsticks of WORKLOADS.md: brigade bench [--quick] [--workloads W_CPU,W_NOOP,...] [--overhead]"
)]
pub struct BenchArgs {
    /// Your own job: run WORKLOAD (a built-in such as echo or exec, or one
    /// your workers offer, with --coordinator) on every model and auto, with
    /// a `1 slot` baseline (its first 100 tasks, scaled), in the same table,
    /// plots and report as the yardsticks. Its tasks come from --inputs or
    /// --range; every task must succeed and every model's outputs must agree
    /// with the others', index by index. The models' cap is a task per core
    /// for a CPU workload, --io-in-flight for an I/O one (plus a wide async
    /// row, --async-in-flight).
    #[arg(long, value_name = "WORKLOAD", conflicts_with_all = ["workloads", "overhead", "with_python", "quick", "io_target"])]
    job: Option<String>,
    /// With --job: one task input per line of FILE (read again by every run,
    /// so not `-`); blank lines are skipped.
    #[arg(long, value_name = "FILE", requires = "job", conflicts_with = "range")]
    inputs: Option<PathBuf>,
    /// With --inputs: text (each line a string) or jsonl (each line one JSON
    /// value).
    #[arg(long, value_parser = parse_inputs_format, default_value = "text", requires = "inputs")]
    inputs_format: InputsFormat,
    /// With --job: the input range START..END (half-open) instead of a file.
    #[arg(long, value_parser = parse_range, requires = "job")]
    range: Option<(u64, u64)>,
    /// With --job: inputs per task (--inputs) or the width of a task's
    /// sub-range (--range).
    #[arg(long, default_value_t = 1, requires = "job")]
    chunk: u64,
    /// With --job: a workload argument KEY=VALUE (repeatable), e.g. --arg ms=10.
    #[arg(long = "arg", value_name = "KEY=VALUE", value_parser = parse_kv, requires = "job")]
    args: Vec<(String, String)>,
    /// Workloads, comma-separated: W_CPU, W_CPU_HEAVY, W_NOOP, W_FASTIO,
    /// W_SLOWIO, W_GRAIN. Default: the first five (plus W_GRAIN with
    /// --quick, where it is small); none with --overhead.
    #[arg(long, value_delimiter = ',', value_parser = WorkloadId::parse)]
    workloads: Vec<WorkloadId>,
    /// Measure per-task overhead = (wall - ideal) / tasks of no-op and 1 ms
    /// spin tasks on every model, and the single-task round trip (submit a
    /// 1-task job, wait for its result; median, p90, p99) per model (alone,
    /// unless --workloads is given too).
    #[arg(long)]
    overhead: bool,
    /// Also run the blog post's Python models (multiprocessing, threads,
    /// asyncio + aiohttp) on the same workloads and target with python3
    /// (bench/python/; `pip install -r bench/python/requirements.txt`).
    #[arg(long)]
    with_python: bool,
    /// Models, comma-separated: process, thread, async, auto (default: all
    /// four; auto rows are judged against the best forced model, they do
    /// not take part in the verdict).
    #[arg(long, value_delimiter = ',', value_parser = brigade_client::parse_model)]
    models: Vec<Model>,
    /// Repetitions of every run (default 3). Rows show the median and the
    /// range; models within the range of each other tie.
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..=50))]
    reps: Option<u32>,
    /// A run of about a minute: smaller I/O and no-op workloads; the CPU
    /// workloads keep tasks of their own size and a serial time of ≥ 0.5 s.
    #[arg(long)]
    quick: bool,
    /// Also write results.jsonl, results.csv, SVG plots and report.html here.
    #[arg(long)]
    out: Option<PathBuf>,
    /// Local worker counts to repeat the runs with, e.g. 1,2,4 (default 1).
    #[arg(long, value_delimiter = ',', value_parser = clap::value_parser!(u32).range(1..=64))]
    scale: Vec<u32>,
    /// Run against an existing cluster instead of an embedded one (its workers
    /// must reach the io-target: see --io-target).
    #[arg(long)]
    coordinator: Option<String>,
    /// Use this HTTP target (http://HOST:PORT serving /fast and /slow) instead
    /// of starting `brigade io-target` here.
    #[arg(long)]
    io_target: Option<String>,
    /// Tasks in flight for the no-op and I/O workloads (and an I/O job) on
    /// every model, per worker (local workers get this many process and
    /// thread slots).
    #[arg(long, default_value_t = 32, value_parser = clap::value_parser!(u32).range(1..=4096))]
    io_in_flight: u32,
    /// In flight on one event loop for the extra wide async row (W_SLOWIO's,
    /// an I/O job's), per worker (default 2000; 200 with --quick).
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..=20000))]
    async_in_flight: Option<u32>,
    /// A run taking longer than this is stopped and marked FAILED (s).
    #[arg(long, default_value_t = 300, value_parser = clap::value_parser!(u64).range(1..))]
    run_timeout_s: u64,
}

/// Where runs measure CPU and memory: the local cluster's processes.
#[derive(Clone, Copy)]
struct MeasuredProcs {
    /// `None` against a remote cluster: its processes are not ours to read.
    exclude: Option<Option<u32>>,
}

impl MeasuredProcs {
    /// (every cluster process for CPU time, the processes whose memory a run
    /// of `model` is charged with). Every local worker holds slots of all
    /// three models, so its executor children idle through thread and async
    /// runs: a worker with only thread or async slots would not have them, so
    /// only process-model runs count their memory. The in-process reference
    /// runs in this process alone.
    fn pids(self, model: Option<Model>) -> Option<(Vec<u32>, Vec<u32>)> {
        let tree = procfs::cluster_tree(self.exclude?);
        let max_depth = match model {
            // An auto job may be routed to process slots.
            Some(Model::Process | Model::Auto) => u32::MAX,
            Some(_) => 1,
            None => 0,
        };
        Some((
            tree.iter().map(|t| t.0).collect(),
            tree.iter()
                .filter(|t| t.1 <= max_depth)
                .map(|t| t.0)
                .collect(),
        ))
    }
}

/// Raises this process's open-file limit to the hard limit: thousands of
/// connections in flight need thousands of descriptors, and the workers and
/// io-target started from here inherit the limit.
pub fn raise_nofile_limit() {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit/setrlimit with a valid pointer to a local struct.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) == 0 && lim.rlim_cur < lim.rlim_max {
            lim.rlim_cur = lim.rlim_max;
            libc::setrlimit(libc::RLIMIT_NOFILE, &lim);
        }
    }
}

/// Shows which run is going: a bar on a terminal, a line per run otherwise.
struct RunProgress {
    bar: Option<indicatif::ProgressBar>,
    done: u64,
    total: u64,
}

impl RunProgress {
    fn new() -> RunProgress {
        let bar = std::io::stderr().is_terminal().then(|| {
            let b = indicatif::ProgressBar::new(0);
            b.set_style(
                indicatif::ProgressStyle::with_template(
                    "{spinner} [{bar:30}] {pos}/{len} runs {elapsed} {msg}",
                )
                .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar())
                .progress_chars("=> "),
            );
            b.enable_steady_tick(Duration::from_millis(120));
            b
        });
        RunProgress {
            bar,
            done: 0,
            total: 0,
        }
    }

    fn add(&mut self, n: u64) {
        self.total += n;
        if let Some(b) = &self.bar {
            b.set_length(self.total);
        }
    }

    fn starting(&self, what: &str) {
        match &self.bar {
            Some(b) => b.set_message(what.to_string()),
            None => eprintln!("[{}/{}] {what}", self.done + 1, self.total),
        }
    }

    fn finished(&mut self, r: &RunRecord) {
        self.done += 1;
        let how = match &r.error {
            None => format!("{:.3} s", r.wall_s),
            Some(e) => format!("FAILED: {e}"),
        };
        match &self.bar {
            Some(b) => {
                b.set_position(self.done);
                if r.error.is_some() {
                    b.println(format!("{} {}: {how}", r.workload.name(), r.label));
                }
            }
            None => eprintln!("    {how}"),
        }
    }

    fn finished_round_trip(&mut self, r: &overhead::RoundTripRow) {
        self.done += 1;
        let how = match (&r.failed, r.median_us) {
            (Some(e), _) => format!("FAILED: {e}"),
            (None, Some(m)) => format!("median {m:.0} us"),
            (None, None) => "FAILED".to_string(),
        };
        match &self.bar {
            Some(b) => {
                b.set_position(self.done);
                if r.failed.is_some() {
                    b.println(format!("round trip {}: {how}", r.model));
                }
            }
            None => eprintln!("    {how}"),
        }
    }

    fn note(&self, line: &str) {
        match &self.bar {
            Some(b) => b.println(line),
            None => eprintln!("{line}"),
        }
    }

    fn clear(self) {
        if let Some(b) = self.bar {
            b.finish_and_clear();
        }
    }
}

static JOB_SEQ: AtomicU64 = AtomicU64::new(0);

/// Where the coordinator ran a job: (JobInfo.model, JobInfo.routing).
type Routed = Option<(&'static str, String)>;

/// The job's results, checked; the error says what was wrong. Also where the
/// job ran, when the coordinator said so.
async fn run_cluster_job(
    client: &mut Client,
    plan: &RunPlan,
    target_url: &str,
    timeout: Duration,
) -> (Duration, Result<(f64, f64), String>, Routed) {
    let t0 = Instant::now();
    let job = async {
        let mut spec = plan.spec(target_url);
        spec.name = format!("{} #{}", spec.name, JOB_SEQ.fetch_add(1, Ordering::Relaxed));
        let id = client
            .submit(spec)
            .await
            .context("the coordinator refused a bench job")?
            .job_id;
        let info = match tokio::time::timeout(timeout, client.wait(id, |_| {})).await {
            Ok(info) => info?,
            Err(_) => {
                let _ = client.cancel(id).await;
                bail!("timed out after {timeout:?} (job {id} cancelled)");
            }
        };
        let results = client
            .fetch_results(id)
            .await
            .context("could not get results")?;
        anyhow::Ok((info, results))
    };
    let outcome = job.await;
    let wall = t0.elapsed();
    let routed = outcome.as_ref().ok().map(|(info, _)| routed_of(info));
    let checked = match outcome {
        Err(e) => Err(format!("{e:#}")),
        Ok((info, _)) if info.state != JobState::Succeeded as i32 => {
            Err(format!("job {}: {}", state_name(info.state), info.error))
        }
        Ok((info, results)) => plan::verify(plan, info.has_total.then(|| total(&info)), &results)
            .map(|()| task_times(&info)),
    };
    (wall, checked, routed)
}

/// Where the coordinator ran a job, from its final status.
fn routed_of(info: &brigade_client::JobInfo) -> (&'static str, String) {
    (
        Model::try_from(info.model).map_or("unknown", Model::name),
        info.routing.clone(),
    )
}

/// The CPU and wall seconds a job's tasks reported (sums over tasks).
fn task_times(info: &brigade_client::JobInfo) -> (f64, f64) {
    (
        info.task_cpu_ns as f64 / 1e9,
        info.task_wall_ns as f64 / 1e9,
    )
}

/// The same range as a CPU row, on a plain pool of `threads` OS threads in
/// this process pulling chunks from a shared counter: what the machine gives
/// parallel code with no scheduler, no messages and no other process.
fn run_in_process(plan: &RunPlan, threads: u32) -> (Duration, Result<(f64, f64), String>) {
    let tasks = plan.tasks();
    let next = AtomicU64::new(0);
    let t0 = Instant::now();
    let parts: Vec<Result<Vec<(u64, u128)>, String>> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..threads.max(1))
            .map(|_| {
                s.spawn(|| {
                    let mut mine = Vec::new();
                    loop {
                        let i = next.fetch_add(1, Ordering::Relaxed);
                        if i >= tasks {
                            return Ok(mine);
                        }
                        let a = plan.range.0 + i * plan.chunk;
                        let b = (a + plan.chunk).min(plan.range.1);
                        mine.push((i, brigade_worker::workload::sum_squares::run(a, b)?));
                    }
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| {
                h.join()
                    .unwrap_or_else(|_| Err("an in-process thread panicked".into()))
            })
            .collect()
    });
    let wall = t0.elapsed();
    let checked = parts
        .into_iter()
        .collect::<Result<Vec<_>, String>>()
        .and_then(|parts| {
            let mut results: Vec<(u64, u128)> = parts.into_iter().flatten().collect();
            results.sort_unstable_by_key(|r| r.0);
            let total = results.iter().map(|r| r.1).sum();
            plan::verify(plan, Some(total), &results)
        })
        .map(|()| (0.0, 0.0));
    (wall, checked)
}

/// One single-task noop job on `model` through the call a client makes to
/// run a job and get its results: RunJob (submit, status to the end, then
/// the results, on one stream); the result is checked after the clock stops.
async fn round_trip_once(
    client: &mut Client,
    model: Model,
    timeout: Duration,
) -> Result<overhead::RoundTrip, String> {
    let plan = RunPlan {
        workload: WorkloadId::Noop,
        label: format!("round trip {}", model.name()),
        model: Some(model),
        in_flight: 1,
        range: (0, 1),
        chunk: 1,
        scaled_from: None,
        uncapped: true,
    };
    let spec = plan.spec("");
    let job = async {
        let t0 = Instant::now();
        let mut events = client
            .run(spec, true)
            .await
            .context("the coordinator refused a round-trip job")?;
        let (mut accepted, mut ended, mut info) = (None, None, None);
        let mut results = Vec::new();
        while let Some(event) = events.next().await {
            match event.context("the round-trip job's event stream broke")? {
                RunEvent::Status(i) => {
                    accepted.get_or_insert_with(Instant::now);
                    if JobState::try_from(i.state).is_ok_and(JobState::is_terminal) {
                        ended = Some(Instant::now());
                        info = Some(i);
                    }
                }
                RunEvent::Results(rows) => results.extend(
                    rows.into_iter()
                        .map(|r| (r.index, r.output.as_int().unwrap_or(0))),
                ),
            }
        }
        let t3 = Instant::now();
        let (Some(t1), Some(t2), Some(info)) = (accepted, ended, info) else {
            bail!("the event stream ended before the round-trip job did");
        };
        // The floor under every phase: one unary call that only reads.
        client
            .job(info.job_id)
            .await
            .context("could not get the round-trip job")?;
        let t4 = Instant::now();
        let us = |a: Instant, b: Instant| (b - a).as_secs_f64() * 1e6;
        anyhow::Ok((
            overhead::RoundTrip {
                submit_us: us(t0, t1),
                watch_us: us(t1, t2),
                results_us: us(t2, t3),
                get_job_us: us(t3, t4),
            },
            info,
            results,
        ))
    };
    let (rt, info, results) = match tokio::time::timeout(timeout, job).await {
        Ok(r) => r.map_err(|e| format!("{e:#}"))?,
        Err(_) => return Err(format!("a round-trip job took over {timeout:?}")),
    };
    if info.state != JobState::Succeeded as i32 {
        return Err(format!("job {}: {}", state_name(info.state), info.error));
    }
    plan::verify(&plan, None, &results)?;
    Ok(rt)
}

/// Round trips of every model, one job at a time: warm-ups, then samples;
/// the first failure ends the model's row (FAILED, no figure).
async fn round_trips(
    url: &str,
    models: &[Model],
    size: Size,
    scale: u32,
    timeout: Duration,
    progress: &mut RunProgress,
) -> Vec<overhead::RoundTripRow> {
    let (n, warm) = overhead::round_trip_samples(size);
    let mut rows = Vec::new();
    for &m in models.iter().filter(|m| **m != Model::Auto) {
        progress.starting(&format!(
            "round trip {}: {warm} warm-up + {n} single-task jobs",
            m.name()
        ));
        // The client runs as `brigade submit --wait` does: on a thread of
        // its own with a current-thread runtime (its own connection), not
        // among the lab's coordinator threads.
        let url = url.to_string();
        let measured = tokio::task::spawn_blocking(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .on_thread_unpark(brigade_worker::idle_spin::arm)
                .build()
                .map_err(|e| format!("could not start the round-trip client's runtime: {e}"))?;
            rt.block_on(async move {
                let mut samples = Vec::with_capacity(n);
                let mut failed = None;
                let mut client = Client::connect(&url).await.map_err(|e| e.to_string())?;
                for i in 0..warm + n {
                    match round_trip_once(&mut client, m, timeout).await {
                        Ok(rt) if i >= warm => samples.push(rt),
                        Ok(_) => {}
                        Err(e) => {
                            failed = Some(e);
                            break;
                        }
                    }
                }
                Ok((samples, failed))
            })
        })
        .await;
        let (samples, failed) = match measured {
            Ok(Ok(measured)) => measured,
            Ok(Err(e)) => (Vec::new(), Some(e)),
            Err(e) => (
                Vec::new(),
                Some(format!("the round-trip client failed: {e}")),
            ),
        };
        let row = overhead::summarise_round_trips(scale, m.name(), warm, samples, failed);
        progress.finished_round_trip(&row);
        rows.push(row);
    }
    rows
}

/// Runs one plan once and records every figure. A user's job's run writes
/// its outputs to `spill` (they are compared with the other runs' later).
#[allow(clippy::too_many_arguments)]
async fn measure(
    client: &mut Client,
    plan: &RunPlan,
    scale: u32,
    rep: u32,
    target_url: &str,
    measured: MeasuredProcs,
    timeout: Duration,
    spill: Option<&Path>,
) -> RunRecord {
    let (pids, memory_pids) = measured.pids(plan.model).unzip();
    let sampler = memory_pids.map(procfs::RssSampler::start);
    let cpu0 = pids.as_deref().map(procfs::cpu_snapshot);
    let (wall, checked, routed) = match (plan.workload, plan.model, spill) {
        (WorkloadId::Job(user_job), Some(_), Some(spill)) => {
            let (wall, outcome) = job::run(client, user_job, plan, spill, timeout).await;
            let routed = outcome.as_ref().ok().map(routed_of);
            (wall, outcome.map(|info| task_times(&info)), routed)
        }
        (_, Some(_), _) => run_cluster_job(client, plan, target_url, timeout).await,
        (_, None, _) => {
            let p = plan.clone();
            let (wall, checked) =
                tokio::task::spawn_blocking(move || run_in_process(&p, p.in_flight))
                    .await
                    .unwrap_or_else(|e| {
                        (Duration::ZERO, Err(format!("in-process run failed: {e}")))
                    });
            (wall, checked, None)
        }
    };
    // Only an auto job's model is news: a forced one runs where it was sent.
    let (routed_to, routing) = routed.filter(|_| plan.model == Some(Model::Auto)).unzip();
    let cpu1 = pids.as_deref().map(procfs::cpu_snapshot);
    let peak = sampler.map(procfs::RssSampler::finish);
    let (task_cpu_s, task_wall_s, error) = match checked {
        Ok((c, w)) => (c, w, None),
        Err(e) => (0.0, 0.0, Some(e)),
    };
    RunRecord {
        scale,
        workload: plan.workload,
        label: plan.label.clone(),
        model: plan.model.map(Model::name),
        rep,
        in_flight: plan.in_flight,
        tasks: plan.tasks(),
        chunk: plan.chunk,
        represents: plan.scaled_from.unwrap_or(plan.tasks()),
        wall_s: wall.as_secs_f64(),
        cpu_s: cpu0.zip(cpu1).map(|(a, b)| procfs::cpu_delta(&a, &b)),
        cores: std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1),
        peak_rss_bytes: peak,
        task_cpu_s,
        task_wall_s,
        error,
        routed_to,
        routing,
    }
}

/// Exercises every model's slots (2 tasks per slot: executors, threads and
/// connections come up) and fails loudly if the cluster cannot run them.
/// `workload` is W_FASTIO on the wide cluster and W_NOOP on the core-sized one.
async fn warm_up(
    client: &mut Client,
    models: &[Model],
    caps: Caps,
    workload: WorkloadId,
    target_url: &str,
    timeout: Duration,
) -> anyhow::Result<()> {
    // Auto probes on thread slots and runs on process or async slots: with
    // auto in the set, every model's slots get their round.
    let mut warm: Vec<Model> = models
        .iter()
        .copied()
        .filter(|m| *m != Model::Auto)
        .collect();
    if models.contains(&Model::Auto) {
        for m in Model::ALL {
            if !warm.contains(&m) {
                warm.push(m);
            }
        }
    }
    for m in warm {
        let in_flight = if m == Model::Async {
            caps.io.max(caps.async_wide)
        } else {
            caps.io
        };
        let plan = RunPlan {
            workload,
            label: format!("warm-up {}", m.name()),
            model: Some(m),
            in_flight,
            range: (0, 2 * u64::from(in_flight)),
            chunk: 1,
            scaled_from: None,
            uncapped: false,
        };
        if let (_, Err(e), _) = run_cluster_job(client, &plan, target_url, timeout).await {
            bail!("the warm-up on {} slots failed: {e}", m.name());
        }
    }
    Ok(())
}

/// How long the first task takes to come back on a fresh cluster.
async fn first_task(client: &mut Client, timeout: Duration) -> anyhow::Result<()> {
    let plan = RunPlan {
        workload: WorkloadId::Noop,
        label: "first task".into(),
        model: Some(Model::Thread),
        in_flight: 1,
        range: (0, 1),
        chunk: 1,
        scaled_from: None,
        uncapped: false,
    };
    match run_cluster_job(client, &plan, "", timeout).await {
        (_, Ok(_), _) => Ok(()),
        (_, Err(e), _) => bail!("the first task failed: {e}"),
    }
}

/// A cluster the runs go to: started here, or the existing one.
struct Session {
    local: Option<cluster::LocalCluster>,
    client: Client,
    /// The coordinator's address, for clients of their own.
    url: String,
    workers: u32,
    startup: Startup,
}

impl Session {
    /// Starts (or reaches) the cluster, times its first task and warms up
    /// every model with `workload`; `caps_of(workers)` sizes the warm-up.
    /// Local workers offer `exec` only when `allow_exec` (a job of `exec`).
    #[allow(clippy::too_many_arguments)]
    async fn open(
        coordinator: Option<&str>,
        n: u32,
        slots: Slots,
        models: &[Model],
        caps_of: impl Fn(u32) -> Caps,
        workload: WorkloadId,
        target_url: &str,
        timeout: Duration,
        progress: &RunProgress,
        allow_exec: bool,
    ) -> anyhow::Result<Session> {
        let t0 = Instant::now();
        let each = format!(
            "{} process, {} thread, {} async slots each",
            slots.procs, slots.threads, slots.async_slots
        );
        let (local, mut client, workers) = match coordinator {
            Some(url) => {
                let mut c = Client::connect(url).await?;
                let w = cluster::wait_for_workers(&mut c, 1, Duration::from_secs(10))
                    .await
                    .context("the cluster at --coordinator has no workers")?;
                (None, c, w.len() as u32)
            }
            None => {
                progress.note(&format!(
                    "starting a coordinator and {n} worker(s) ({each})"
                ));
                let (cl, c) = cluster::LocalCluster::start(n as usize, slots, allow_exec).await?;
                (Some(cl), c, n)
            }
        };
        let url = match (&local, coordinator) {
            (Some(cl), _) => cl.url.clone(),
            (None, Some(url)) => url.to_string(),
            (None, None) => unreachable!("either local or at --coordinator"),
        };
        let ready = local.as_ref().map(|c| c.ready);
        let first = first_task(&mut client, timeout).await;
        let first_task_s = local.as_ref().map(|_| t0.elapsed().as_secs_f64());
        let w0 = Instant::now();
        let warmed = match first {
            Ok(()) => {
                warm_up(
                    &mut client,
                    models,
                    caps_of(workers),
                    workload,
                    target_url,
                    timeout,
                )
                .await
            }
            Err(e) => Err(e),
        };
        if let Err(e) = warmed {
            if let Some(cl) = local {
                cl.stop().await;
            }
            return Err(e);
        }
        Ok(Session {
            startup: Startup {
                workers,
                slots_each: local.as_ref().map(|_| each),
                ready_s: ready.map(|d| d.as_secs_f64()),
                first_task_s,
                warm_up_s: w0.elapsed().as_secs_f64(),
            },
            local,
            client,
            url,
            workers,
        })
    }

    /// Runs groups of plans; within a group the repetitions go round the
    /// rows so that a noisy moment hurts every model a little rather than
    /// one model a lot. A user's job's runs are checked against each other
    /// through `agreement` (a disagreement fails the run, or the earlier
    /// prefix run it settles).
    #[allow(clippy::too_many_arguments)]
    async fn run_groups(
        &mut self,
        groups: &[(String, Vec<RunPlan>)],
        reps: u32,
        target_url: &str,
        measured: MeasuredProcs,
        timeout: Duration,
        progress: &mut RunProgress,
        mut agreement: Option<&mut agree::Agreement>,
    ) -> Vec<RunRecord> {
        let mut out: Vec<RunRecord> = Vec::new();
        for (title, plans) in groups {
            for rep in 0..reps {
                for p in plans {
                    progress.starting(&format!(
                        "{title} workers={} {} rep {}/{reps}",
                        self.workers,
                        p.label,
                        rep + 1
                    ));
                    let spill = match (p.workload, agreement.as_deref_mut()) {
                        (WorkloadId::Job(_), Some(a)) => Some(a.spill_path()),
                        _ => None,
                    };
                    let mut r = measure(
                        &mut self.client,
                        p,
                        self.workers,
                        rep,
                        target_url,
                        measured,
                        timeout,
                        spill.as_deref(),
                    )
                    .await;
                    if let (Some(a), Some(path)) = (agreement.as_deref_mut(), spill) {
                        if r.ok() {
                            for (id, checked) in a.check(out.len(), &p.label, path, p.tasks()) {
                                if let Err(e) = checked {
                                    out.get_mut(id).unwrap_or(&mut r).error = Some(e);
                                }
                            }
                        } else {
                            a.discard(&path);
                        }
                    }
                    progress.finished(&r);
                    out.push(r);
                }
            }
        }
        if let Some(a) = agreement {
            for (id, why) in a.unsettled() {
                if let Some(r) = out.get_mut(id) {
                    r.error = Some(why);
                }
            }
        }
        out
    }

    async fn close(self) {
        if let Some(cl) = self.local {
            cl.stop().await;
        }
    }
}

pub async fn run(args: BenchArgs) -> anyhow::Result<()> {
    if args.coordinator.is_some() && !args.scale.is_empty() {
        bail!(
            "--scale starts local workers, so it cannot go with --coordinator; against an \
             existing cluster, size it yourself (e.g. docker-compose up --scale worker=N) \
             and run `brigade bench --coordinator URL` once per size"
        );
    }
    raise_nofile_limit();
    // A job's flags and inputs file are checked before any cluster starts.
    // The job lives as long as the bench: its rows' workload refers to it.
    let job: Option<&'static UserJob> = match &args.job {
        Some(workload) => {
            let inputs = args.inputs.clone().map(|p| (p, args.inputs_format));
            let job = UserJob::new(
                workload.clone(),
                args.args.clone(),
                inputs,
                args.range,
                args.chunk,
            )
            .await?;
            Some(Box::leak(Box::new(job)))
        }
        None => None,
    };
    let facts = procfs::machine_facts();
    let cores = facts.cores as u32;
    let size = if args.quick { Size::Quick } else { Size::Full };
    let reps = args.reps.unwrap_or(3);
    let workloads = match (args.workloads.is_empty(), args.overhead) {
        _ if job.is_some() => Vec::new(),
        (true, true) => Vec::new(),
        // A full W_GRAIN sweep takes minutes: asked for by name only.
        (true, false) if !args.quick => WorkloadId::ALL
            .into_iter()
            .filter(|w| *w != WorkloadId::Grain)
            .collect(),
        (true, false) => WorkloadId::ALL.to_vec(),
        (false, _) => args.workloads.clone(),
    };
    // W_GRAIN runs on the core-sized cluster, the rest on the wide one.
    let wide_workloads: Vec<WorkloadId> = workloads
        .iter()
        .copied()
        .filter(|w| *w != WorkloadId::Grain)
        .collect();
    let grain = workloads.contains(&WorkloadId::Grain);
    let models = if args.models.is_empty() {
        let mut all = Model::ALL.to_vec();
        all.push(Model::Auto);
        all
    } else {
        args.models.clone()
    };
    let io = args.io_in_flight;
    let wide = args
        .async_in_flight
        .unwrap_or(if args.quick { 200 } else { 2000 });
    let timeout = Duration::from_secs(args.run_timeout_s);
    // Every worker gets enough slots of each model for the largest cap it
    // will see; the caps (max_in_flight), not the slot counts, set how many
    // tasks a job runs at once.
    let slots = Slots {
        procs: io.max(cores) as usize,
        threads: io.max(cores) as usize,
        async_slots: wide.max(io) as usize,
    };
    let wide_caps = |workers: u32| Caps {
        cpu: cores * workers,
        io: io * workers,
        async_wide: wide * workers,
        slots_bound: false,
    };
    // The fine-grained cluster: a slot per core and model, no job caps, so
    // workers queue tasks ahead as they would for a user's job.
    let core_slots = Slots {
        procs: cores as usize,
        threads: cores as usize,
        async_slots: cores as usize,
    };
    let local = args.coordinator.is_none();
    let core_caps = |workers: u32| Caps {
        cpu: cores * workers,
        io: cores * workers,
        async_wide: cores * workers,
        slots_bound: local,
    };
    let local_target;
    let (target_url, target_pid) = match &args.io_target {
        // A user's job brings its own targets, if any.
        _ if job.is_some() => (String::new(), None),
        Some(u) => (u.trim_end_matches('/').to_string(), None),
        None => {
            local_target = cluster::start_io_target()?;
            (local_target.url.clone(), Some(local_target.pid()))
        }
    };
    let scales: Vec<u32> = if args.scale.is_empty() {
        vec![1]
    } else {
        args.scale.clone()
    };
    let measured = MeasuredProcs {
        exclude: local.then_some(target_pid),
    };
    let mut progress = RunProgress::new();
    let mut runs = Vec::new();
    let mut overhead_runs = Vec::new();
    let mut round_trip_rows = Vec::new();
    let mut startups = Vec::new();
    let mut notes = Vec::new();
    let mut agreement = job.map(|j| agree::Agreement::new(j.tasks())).transpose()?;
    let mut job_kind: Option<Kind> = None;
    for (si, &n) in scales.iter().enumerate() {
        // A user's job, or the yardsticks but W_GRAIN, on the wide cluster.
        if job.is_some() || !wide_workloads.is_empty() {
            let mut session = Session::open(
                args.coordinator.as_deref(),
                n,
                slots,
                &models,
                wide_caps,
                // A user's job needs no HTTP target, even to warm up.
                if job.is_some() {
                    WorkloadId::Noop
                } else {
                    WorkloadId::FastIo
                },
                &target_url,
                timeout,
                &progress,
                job.is_some_and(|j| j.workload == "exec"),
            )
            .await?;
            startups.push(session.startup.clone());
            let caps = wide_caps(session.workers);
            let groups: Vec<(String, Vec<RunPlan>)> = match (job, agreement.as_mut()) {
                (Some(job), Some(agreement)) => {
                    let kind = match job_kind {
                        Some(kind) => kind,
                        None => {
                            progress.note(&format!(
                                "your job: {}; trying its first tasks on thread slots",
                                job.describe()
                            ));
                            let spill = agreement.spill_path();
                            match job::probe(&mut session.client, job, &spill, timeout).await {
                                Ok(kind) => {
                                    notes.push(job_note(job, kind, caps));
                                    kind
                                }
                                Err(e) => {
                                    session.close().await;
                                    return Err(e);
                                }
                            }
                        }
                    };
                    job_kind = Some(kind);
                    vec![(
                        job.workload.clone(),
                        plan::plan_job(job, kind, &models, caps, si == 0),
                    )]
                }
                _ => wide_workloads
                    .iter()
                    .map(|&w| {
                        (
                            w.name().to_string(),
                            plan::plan_workload(w, size, &models, caps, si == 0),
                        )
                    })
                    .collect(),
            };
            progress.add(groups.iter().map(|g| g.1.len() as u64).sum::<u64>() * u64::from(reps));
            runs.extend(
                session
                    .run_groups(
                        &groups,
                        reps,
                        &target_url,
                        measured,
                        timeout,
                        &mut progress,
                        agreement.as_mut(),
                    )
                    .await,
            );
            session.close().await;
        }
        if grain || args.overhead {
            let mut session = Session::open(
                args.coordinator.as_deref(),
                n,
                core_slots,
                &models,
                core_caps,
                WorkloadId::Noop,
                &target_url,
                timeout,
                &progress,
                false,
            )
            .await?;
            startups.push(session.startup.clone());
            let caps = core_caps(session.workers);
            let mut groups = Vec::new();
            if grain {
                groups.push((
                    WorkloadId::Grain.name().to_string(),
                    plan::plan_grain(size, &models, caps, si == 0),
                ));
            }
            let grain_groups = groups.len();
            if args.overhead {
                groups.push(("overhead".to_string(), overhead::plans(size, &models, caps)));
                progress.add(models.iter().filter(|m| **m != Model::Auto).count() as u64);
            }
            progress.add(groups.iter().map(|g| g.1.len() as u64).sum::<u64>() * u64::from(reps));
            let done = session
                .run_groups(
                    &groups,
                    reps,
                    &target_url,
                    measured,
                    timeout,
                    &mut progress,
                    None,
                )
                .await;
            let grain_runs: usize = groups[..grain_groups]
                .iter()
                .map(|g| g.1.len() * reps as usize)
                .sum();
            let mut done = done.into_iter();
            runs.extend(done.by_ref().take(grain_runs));
            overhead_runs.extend(done);
            if args.overhead {
                round_trip_rows.extend(
                    round_trips(
                        &session.url,
                        &models,
                        size,
                        session.workers,
                        timeout,
                        &mut progress,
                    )
                    .await,
                );
            }
            session.close().await;
        }
    }
    let mut python_lines = Vec::new();
    if args.with_python {
        if wide_workloads.is_empty() {
            notes.push(
                "--with-python: no workload for Python to run (W_GRAIN is brigade's alone)".into(),
            );
        } else {
            progress.note("running the Python baseline (python3 bench/python/baseline.py)");
            let py_args = python::PythonArgs {
                target_url: &target_url,
                quick: args.quick,
                reps,
                workloads: &wide_workloads,
                cores,
                io_in_flight: io,
                async_in_flight: wide,
                scale: scales[0],
            };
            let py =
                tokio::task::block_in_place(|| python::run(&py_args, |line| progress.note(line)));
            runs.extend(py.runs);
            // Python rows join their workload's group (a stable sort keeps
            // brigade's rows first within it).
            runs.sort_by_key(|r| (r.scale, workloads.iter().position(|w| *w == r.workload)));
            python_lines = py.lines;
            notes.extend(py.notes);
        }
    }
    progress.clear();
    let outcome = BenchOutcome {
        facts,
        args: std::env::args().collect(),
        runs,
        overhead: overhead_runs,
        round_trips: round_trip_rows,
        startups,
        local,
        python_lines,
        notes,
        quick: args.quick,
    };
    let rows = report::summarise(&outcome.runs);
    let verdicts = report::verdicts(&rows);
    let overhead_rows = overhead::summarise(&outcome.overhead);
    print_outcome(&outcome, &rows, &verdicts, &overhead_rows);
    if let Some(dir) = &args.out {
        output::write_all(dir, &outcome, &rows, &verdicts, &overhead_rows)?;
        println!("wrote {}", dir.join("report.html").display());
    }
    // A failed Python row (say, aiohttp missing) is shown as FAILED but is
    // not brigade's failure: the exit status speaks for brigade's runs.
    let failed = outcome
        .runs
        .iter()
        .chain(&outcome.overhead)
        .filter(|r| !r.ok() && !plan::is_python(&r.label))
        .count()
        + outcome
            .round_trips
            .iter()
            .filter(|r| r.failed.is_some())
            .count();
    if failed > 0 {
        bail!("{failed} run(s) FAILED (see the table)");
    }
    Ok(())
}

/// What the report says about the job: what it was and the cap its kind set.
fn job_note(job: &UserJob, kind: Kind, caps: Caps) -> String {
    let (kind, cap) = if kind == Kind::Cpu {
        (
            "cpu",
            format!("{} in flight per model (a task per core)", caps.cpu),
        )
    } else {
        (
            "io",
            format!("{} in flight per model (--io-in-flight)", caps.io),
        )
    };
    format!(
        "your job: {}; kind {kind} (the workload's): {cap}; `1 slot` runs its first {} task(s)",
        job.describe(),
        plan::JOB_BASELINE_TASKS.min(job.tasks())
    )
}

fn print_outcome(
    o: &BenchOutcome,
    rows: &[report::Row],
    verdicts: &[report::Verdict],
    overhead_rows: &[overhead::OverheadRow],
) {
    let f = &o.facts;
    println!(
        "brigade bench {}: {} ({} cores, {} MB), {}, kernel {}",
        f.brigade_version, f.cpu_model, f.cores, f.memory_mb, f.os, f.kernel
    );
    if o.local {
        // A user's job alone needs no HTTP target.
        let target = if !rows.is_empty() && rows.iter().all(|r| r.workload.is_job()) {
            ""
        } else {
            "; HTTP target as a separate process"
        };
        println!("cluster: embedded coordinator + local worker process(es){target}");
    }
    if let Some(ns) = f.guest_halt_poll_ns {
        println!(
            "guest halt polling: {ns} ns (haltpoll.guest_halt_poll_ns; 0: idle vCPUs halt at once)"
        );
    }
    let spin = brigade_worker::idle_spin::process_window();
    if !spin.is_zero() {
        println!(
            "idle spinners: {} us after each wake-up (--spin-us), in this process{}; \
             CPU figures leave their time out",
            spin.as_micros(),
            if o.local { " and the workers" } else { "" }
        );
    }
    for s in &o.startups {
        println!("{}", startup_line(s));
    }
    if !rows.is_empty() {
        println!();
        print!("{}", report::render_table(rows, verdicts));
        println!();
        for line in outcome::legend(rows) {
            println!("{line}");
        }
        let scale = rows[0].scale;
        let vs_python = report::python_comparison(rows, scale);
        if !vs_python.is_empty() {
            println!();
            println!("brigade's fastest model against Python's fastest (py- rows: {PYTHON_NOTE}):");
            for line in vs_python {
                println!("  {line}");
            }
        }
    }
    for n in &o.notes {
        println!("note: {n}");
    }
    if !overhead_rows.is_empty() {
        println!();
        println!("per-task overhead:");
        print!("{}", overhead::render_table(overhead_rows));
        for line in overhead::LEGEND {
            println!("{line}");
        }
    }
    if !o.round_trips.is_empty() {
        println!();
        let (n, warm) = overhead::round_trip_samples(o.size());
        println!(
            "single-task round trip ({n} jobs one after another per model after {warm} warm-ups; target: median <= {:.0} us):",
            overhead::ROUND_TRIP_TARGET_US
        );
        print!("{}", overhead::render_round_trips(&o.round_trips));
        for line in overhead::ROUND_TRIP_LEGEND {
            println!("{line}");
        }
    }
}
