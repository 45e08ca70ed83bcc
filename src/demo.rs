//! `brigade demo`: an embedded coordinator, one local worker with every kind
//! of slot, and the HTTP target; runs the lesson of Lei Mao's blog post
//! "Multiprocessing VS Threading VS AsyncIO in Python" as three jobs — a
//! CPU-bound job (against a true serial loop in this process), a fast I/O job
//! and a slow I/O job (against one slot) — on every model, verifies every
//! result, prints the table and ends with what its own numbers show.

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use brigade_coordinator::CoordinatorConfig;
use brigade_proto::v1::{InputsFormat, JobState, Model};
use brigade_worker::node::NodeConfig;
use brigade_worker::workload::{builtin_catalog, Registry};

use brigade_client::{state_name, total, Client};
use brigade_lab::cluster::{start_io_target, wait_for_workers};
use brigade_lab::{cluster_cpu_secs, raise_nofile_limit, sum_squares};

use crate::cluster::{self, url_of};
use crate::commands::SubmitArgs;

/// The CPU job: W_CPU_HEAVY's shape at 30% of its range, 40 tasks of ~25 ms
/// (~1 s in one serial loop on this machine kind with a release build): long
/// enough that two cores against one is a measurement, not noise.
const CPU_RANGE: (u64, u64) = (0, 1_200_000_000);
const CPU_CHUNK: u64 = 30_000_000;
/// The fast I/O job: GETs of a 1 KiB page served at once.
const FAST_TASKS: u64 = 3_000;
/// The slow I/O job: GETs of the page served after a 100 ms non-blocking delay.
const SLOW_TASKS: u64 = 2_000;
const SLOW_DELAY_MS: u64 = 100;
/// Slow GETs that the runs with few slots make (one slot: 10 s of waiting
/// per 100 tasks); their rate stands for the whole job.
const SLOW_PREFIX_ONE_SLOT: u64 = 10;
const SLOW_PREFIX_PROCESS: u64 = 20;
/// Thread slots: wide enough for I/O (a thread per GET in flight).
const THREAD_SLOTS: usize = 32;
/// Async slots: what one event loop keeps in flight on the slow job (all of it).
const ASYNC_SLOTS: usize = 2_000;
/// The physics checks of the CPU job (as `brigade bench`'s): p cores cannot
/// do more than p times the work of one, one event loop runs on one core.
const MAX_EFFICIENCY: f64 = 1.05;
const MAX_ASYNC_CPU_SPEEDUP: f64 = 1.1;
const BODY_LEN: u128 = 1024;

/// One measured run (a row of the table).
struct Run {
    job: Job,
    label: String,
    /// Tasks the run may have in flight.
    in_flight: usize,
    /// Tasks the run ran, and of how many the job has (a prefix's rate
    /// stands for the whole job).
    tasks: u64,
    of_tasks: u64,
    wall: Duration,
    cpu_util: f64,
    correct: Result<(), String>,
}

impl Run {
    fn rate(&self) -> f64 {
        self.tasks as f64 / self.wall.as_secs_f64().max(1e-9)
    }
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Job {
    Cpu,
    FastIo,
    SlowIo,
}

impl Job {
    fn title(self) -> &'static str {
        match self {
            Job::Cpu => "CPU: sum-squares 40 x 30M",
            Job::FastIo => "fast I/O: 3,000 GETs",
            Job::SlowIo => "slow I/O: 2,000 GETs (100 ms)",
        }
    }

    /// The row speedups are measured against.
    fn baseline(self) -> &'static str {
        match self {
            Job::Cpu => "serial",
            Job::FastIo | Job::SlowIo => "1 slot",
        }
    }
}

fn verify(
    job: Job,
    args: &SubmitArgs,
    info_total: u128,
    results: &[(u64, u128)],
) -> Result<(), String> {
    let (a, b) = args.range.unwrap_or_default();
    let tasks = (b - a).div_ceil(args.chunk);
    if results.len() as u64 != tasks {
        return Err(format!("{} results for {tasks} tasks", results.len()));
    }
    for (k, (i, v)) in results.iter().enumerate() {
        if *i != k as u64 {
            return Err(format!("result {k} has index {i}"));
        }
        let expected = match job {
            Job::Cpu => {
                let start = a + i * args.chunk;
                sum_squares(start, (start + args.chunk).min(b))
            }
            Job::FastIo | Job::SlowIo => BODY_LEN,
        };
        if *v != expected {
            return Err(format!("task {i} returned {v}, expected {expected}"));
        }
    }
    if job == Job::Cpu && info_total != sum_squares(a, b) {
        return Err(format!(
            "total {info_total}, expected {}",
            sum_squares(a, b)
        ));
    }
    Ok(())
}

fn cores() -> usize {
    std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1)
}

/// One job through the cluster: submitted, followed to its end, every
/// result fetched (the clock stops there) and checked.
async fn run_one(
    client: &mut Client,
    job: Job,
    label: &str,
    args: SubmitArgs,
    of_tasks: u64,
    target_pid: u32,
) -> anyhow::Result<Run> {
    let cpu0 = cluster_cpu_secs(Some(target_pid));
    let t0 = Instant::now();
    let in_flight = args.max_in_flight as usize;
    let job_id = client
        .submit(args.spec())
        .await
        .context("the coordinator refused a demo job")?
        .job_id;
    let info = client.wait(job_id, |_| {}).await?;
    let results = client
        .fetch_results(job_id)
        .await
        .context("could not get results")?;
    let wall = t0.elapsed();
    let cpu = cluster_cpu_secs(Some(target_pid)) - cpu0;
    let correct = if info.state != JobState::Succeeded as i32 {
        Err(format!("job {}: {}", state_name(info.state), info.error))
    } else {
        verify(job, &args, total(&info), &results)
    };
    Ok(Run {
        job,
        label: label.to_string(),
        in_flight,
        tasks: info.tasks_total,
        of_tasks,
        wall,
        cpu_util: cpu / (wall.as_secs_f64() * cores() as f64),
        correct,
    })
}

/// The CPU job's true serial time: the same function over the same range,
/// one chunk after another on one thread of this process, no scheduler.
async fn run_serial(target_pid: u32) -> anyhow::Result<Run> {
    let cpu0 = cluster_cpu_secs(Some(target_pid));
    let (wall, correct) = tokio::task::spawn_blocking(|| {
        let t0 = Instant::now();
        let (a, b) = CPU_RANGE;
        let mut sum: u128 = 0;
        let mut start = a;
        while start < b {
            match brigade_worker::workload::sum_squares::run(start, (start + CPU_CHUNK).min(b)) {
                Ok(v) => sum += v,
                Err(e) => return (t0.elapsed(), Err(e)),
            }
            start += CPU_CHUNK;
        }
        let wall = t0.elapsed();
        let expected = sum_squares(a, b);
        (
            wall,
            (sum == expected)
                .then_some(())
                .ok_or_else(|| format!("total {sum}, expected {expected}")),
        )
    })
    .await
    .context("the serial loop panicked")?;
    let cpu = cluster_cpu_secs(Some(target_pid)) - cpu0;
    let tasks = (CPU_RANGE.1 - CPU_RANGE.0).div_ceil(CPU_CHUNK);
    Ok(Run {
        job: Job::Cpu,
        label: "serial".into(),
        in_flight: 1,
        tasks,
        of_tasks: tasks,
        wall,
        cpu_util: cpu / (wall.as_secs_f64() * cores() as f64),
        correct,
    })
}

pub async fn run() -> anyhow::Result<()> {
    // A thousand GETs in flight need a thousand descriptors here and in the
    // io-target (which inherits the limit).
    raise_nofile_limit();
    let cores = cores();
    let (procs, threads, async_slots) = (cores, THREAD_SLOTS.max(cores), ASYNC_SLOTS);
    let target = start_io_target()?;
    let target_pid = target.pid();
    let listener = cluster::bind("127.0.0.1:0").await?;
    let url = url_of(listener.local_addr()?);
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let server = {
        let mut rx = stop_rx.clone();
        tokio::spawn(brigade_coordinator::serve(
            listener,
            CoordinatorConfig {
                workloads: builtin_catalog(),
                ..CoordinatorConfig::default()
            },
            async move {
                let _ = rx.wait_for(|s| *s).await;
            },
        ))
    };
    let node = {
        let mut rx = stop_rx.clone();
        let config = NodeConfig {
            coordinator: url.clone(),
            name: "demo".into(),
            procs,
            threads,
            async_slots,
            prefetch: 2,
            executor_program: cluster::executor_program()?,
            executor_args: vec!["executor".into()],
            first_connect_timeout: Some(Duration::from_secs(10)),
            allow_exec: false,
            exec_unauthenticated: false,
            credentials: Default::default(),
            workloads: Arc::new(Registry::builtin()),
        };
        tokio::spawn(brigade_worker::node::run(config, async move {
            let _ = rx.wait_for(|s| *s).await;
        }))
    };
    let started = Instant::now();
    let mut client = Client::connect(&url).await?;
    wait_for_workers(&mut client, 1, Duration::from_secs(15))
        .await
        .context("the demo worker did not register")?;
    println!(
        "brigade demo: embedded coordinator + 1 worker ({procs} process, {threads} thread, \
         {async_slots} async slots) + HTTP target on {cores} cores; ready in {:.0} ms",
        started.elapsed().as_secs_f64() * 1e3
    );
    let cpu_job = |model: Model, max_in_flight: usize| SubmitArgs {
        workload: "sum-squares".into(),
        range: Some(CPU_RANGE),
        inputs: None,
        inputs_format: InputsFormat::Text,
        max_result_bytes: 0,
        reduce: None,
        chunk: CPU_CHUNK,
        args: vec![],
        kind: None,
        model: Some(model),
        max_attempts: 0,
        timeout_ms: 0,
        max_in_flight: max_in_flight as u32,
        allow_failures: 0,
        fail_fast: false,
        name: "demo".into(),
    };
    let get_job = |path: String, tasks: u64, model: Model, max_in_flight: usize| SubmitArgs {
        workload: "http-get".into(),
        range: Some((0, tasks)),
        chunk: 1,
        args: vec![
            ("url".into(), format!("{}{path}", target.url)),
            ("expect-len".into(), BODY_LEN.to_string()),
        ],
        ..cpu_job(model, max_in_flight)
    };
    let fast = |tasks, model, n| get_job("/fast".into(), tasks, model, n);
    let slow = |tasks, model, n| get_job(format!("/slow?ms={SLOW_DELAY_MS}"), tasks, model, n);
    // Warm-up: every executor started and every connection path exercised.
    for (model, n) in [
        (Model::Process, procs),
        (Model::Thread, threads),
        (Model::Async, THREAD_SLOTS),
    ] {
        run_one(
            &mut client,
            Job::FastIo,
            "warm-up",
            fast(2 * n as u64, model, n),
            0,
            target_pid,
        )
        .await?;
    }
    let mut runs = Vec::new();
    eprintln!("running {} ...", Job::Cpu.title());
    runs.push(run_serial(target_pid).await?);
    let tasks = (CPU_RANGE.1 - CPU_RANGE.0).div_ceil(CPU_CHUNK);
    // Every model gets one task per core: async's one event loop can only
    // use one of them.
    for (label, model, n) in [
        ("1 slot", Model::Thread, 1),
        ("process", Model::Process, cores),
        ("thread", Model::Thread, cores),
        ("async", Model::Async, cores),
    ] {
        runs.push(
            run_one(
                &mut client,
                Job::Cpu,
                label,
                cpu_job(model, n),
                tasks,
                target_pid,
            )
            .await?,
        );
    }
    eprintln!("running {} ...", Job::FastIo.title());
    for (label, model, n) in [
        ("1 slot", Model::Thread, 1),
        ("process", Model::Process, procs),
        ("thread", Model::Thread, threads),
        ("async", Model::Async, threads),
    ] {
        runs.push(
            run_one(
                &mut client,
                Job::FastIo,
                label,
                fast(FAST_TASKS, model, n),
                FAST_TASKS,
                target_pid,
            )
            .await?,
        );
    }
    eprintln!("running {} ...", Job::SlowIo.title());
    for (label, model, n, tasks) in [
        ("1 slot", Model::Thread, 1, SLOW_PREFIX_ONE_SLOT),
        ("process", Model::Process, procs, SLOW_PREFIX_PROCESS),
        ("thread", Model::Thread, threads, SLOW_TASKS),
        ("async", Model::Async, async_slots, SLOW_TASKS),
    ] {
        runs.push(
            run_one(
                &mut client,
                Job::SlowIo,
                label,
                slow(tasks, model, n),
                SLOW_TASKS,
                target_pid,
            )
            .await?,
        );
    }
    print_table(&runs);
    println!();
    for line in conclusions(&runs, cores) {
        println!("{line}");
    }
    let _ = stop_tx.send(true);
    let node_result = node.await?;
    server.await?.context("coordinator failed")?;
    node_result.context("demo worker failed")?;
    if runs.iter().any(|r| r.correct.is_err()) {
        bail!("some results were wrong (see the table)");
    }
    Ok(())
}

/// Why a CPU run's figure is impossible on real cores, if it is.
fn anomaly(runs: &[Run], r: &Run) -> Option<String> {
    if r.job != Job::Cpu || r.label == "serial" {
        return None;
    }
    let s = speedup(runs, r)?;
    if r.label == "async" && s > MAX_ASYNC_CPU_SPEEDUP {
        Some(format!("async at {s:.2}x serial"))
    } else if s / r.in_flight as f64 > MAX_EFFICIENCY {
        Some(format!(
            "{} at {s:.2}x serial on {} slot(s)",
            r.label, r.in_flight
        ))
    } else {
        None
    }
}

/// A run's speedup over its job's baseline row (by rate, so a prefix run
/// compares with the whole job).
fn speedup(runs: &[Run], r: &Run) -> Option<f64> {
    let b = runs
        .iter()
        .find(|b| b.job == r.job && b.label == r.job.baseline() && b.correct.is_ok())?;
    Some(r.rate() / b.rate())
}

fn print_table(runs: &[Run]) {
    println!();
    println!(
        "{:<30} {:<8} {:>9} {:>12} {:>8} {:>9} {:>8} {:>8}  correct",
        "job", "model", "in flight", "tasks", "wall s", "tasks/s", "speedup", "CPU util",
    );
    for r in runs {
        let tasks = if r.tasks == r.of_tasks {
            r.tasks.to_string()
        } else {
            format!("{} of {}", r.tasks, r.of_tasks)
        };
        println!(
            "{:<30} {:<8} {:>9} {:>12} {:>8.3} {:>9.0} {:>8} {:>7.0}%  {}",
            r.job.title(),
            r.label,
            r.in_flight,
            tasks,
            r.wall.as_secs_f64(),
            r.rate(),
            // `!`: the physics checks reject the figure (see the end).
            speedup(runs, r).map_or("-".into(), |s| format!(
                "{s:.2}x{}",
                if anomaly(runs, r).is_some() { "!" } else { "" }
            )),
            r.cpu_util * 100.0,
            match &r.correct {
                Ok(()) => "yes".to_string(),
                Err(e) => format!("NO: {e}"),
            }
        );
    }
    println!();
    println!("speedup: CPU job against `serial`, the same function over the same range in one plain loop in this");
    println!("  process (no scheduler); I/O jobs against `1 slot` (one thread slot, one GET at a time). `1 slot` on");
    println!("  the CPU job pays brigade's per-task cost. `N of M` tasks: a prefix, its rate stands for the whole job.");
    println!("CPU util: CPU time of this process (coordinator, worker) and executors / (wall x cores); the HTTP target is excluded.");
}

/// Two or three plain sentences of what this run's own numbers show.
fn conclusions(runs: &[Run], cores: usize) -> Vec<String> {
    let sp = |job: Job, label: &str| {
        runs.iter()
            .find(|r| r.job == job && r.label == label && r.correct.is_ok())
            .and_then(|r| speedup(runs, r))
    };
    let mut out = Vec::new();
    let flagged: Vec<String> = runs.iter().filter_map(|r| anomaly(runs, r)).collect();
    // How much of a core the serial loop got: 1.0 on a quiet machine.
    let serial_cores = runs
        .iter()
        .find(|r| r.job == Job::Cpu && r.label == "serial")
        .map(|r| r.cpu_util * cores as f64);
    if !flagged.is_empty() {
        out.push(format!(
            "CPU job: not a measurement — {} {} impossible on real cores{}; rerun on a quieter \
             machine (there, process and thread slots come near {cores}x and async stays near 1x).",
            flagged.join(" and "),
            if flagged.len() > 1 { "are" } else { "is" },
            serial_cores
                .filter(|c| *c < 0.9)
                .map(|c| format!(
                    ", and the serial loop got only {c:.2} of a core: other programs were using this machine"
                ))
                .unwrap_or_default()
        ));
    } else if let (Some(p), Some(t), Some(a)) = (
        sp(Job::Cpu, "process"),
        sp(Job::Cpu, "thread"),
        sp(Job::Cpu, "async"),
    ) {
        let used = if p.min(t) >= 0.8 * cores as f64 {
            format!("both used the {cores} cores")
        } else {
            format!("short of the {cores}x the cores allow: the machine was busy")
        };
        out.push(format!(
            "CPU job: process and thread slots ran {p:.2}x and {t:.2}x the serial loop ({used}); \
             async ran {a:.2}x, because one event loop is one thread on one core \
             (in Python the GIL holds threads there too; Rust has no GIL)."
        ));
    }
    if let (Some(pr), Some(t), Some(a)) = (
        sp(Job::FastIo, "process"),
        sp(Job::FastIo, "thread"),
        sp(Job::FastIo, "async"),
    ) {
        let verb = if t >= 2.0 {
            "helped"
        } else {
            "did not help much"
        };
        out.push(format!(
            "Fast I/O: {THREAD_SLOTS} thread slots {verb}, at {t:.1}x one slot (async with as many \
             in flight {a:.1}x, {cores} process slots {pr:.1}x), since each GET waits only a moment."
        ));
    }
    let rate = |label: &str| {
        runs.iter()
            .find(|r| r.job == Job::SlowIo && r.label == label && r.correct.is_ok())
            .map(Run::rate)
    };
    if let (Some(a), Some(t)) = (rate("async"), rate("thread")) {
        out.push(format!(
            "Slow I/O: async with {ASYNC_SLOTS} GETs in flight on one event loop finished \
             {:.1}x faster than {THREAD_SLOTS} thread slots: when each task waits {SLOW_DELAY_MS} ms, \
             what counts is how many can wait at once, and an async wait costs no thread.",
            a / t
        ));
    }
    out
}
