//! `brigade demo`: an embedded coordinator, one local worker with every kind
//! of slot, and the HTTP target; runs a CPU-bound job (W_CPU) and an I/O-bound
//! job in each model plus a one-slot baseline, verifies every result, and
//! prints the comparison table.

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use brigade_coordinator::CoordinatorConfig;
use brigade_proto::v1::{InputsFormat, JobState, Model};
use brigade_worker::node::NodeConfig;
use brigade_worker::workload::{builtin_catalog, Registry};

use brigade_client::{state_name, total, Client};
use brigade_lab::cluster::{start_io_target, wait_for_workers};
use brigade_lab::{cluster_cpu_secs, sum_squares};

use crate::cluster::{self, url_of};
use crate::commands::SubmitArgs;

/// W_CPU from WORKLOADS.md.
const CPU_RANGE: (u64, u64) = (0, 60_000_000);
const CPU_CHUNK: u64 = 1_500_000;
const CPU_TOTAL: u128 = 71_999_998_200_000_010_000_000;
/// The I/O job: GETs of a page served after a 20 ms non-blocking delay.
const IO_TASKS: u64 = 100;
const IO_DELAY_MS: u64 = 20;
const BODY_LEN: u128 = 1024;

/// One measured run.
struct Run {
    workload: &'static str,
    model: &'static str,
    slots: usize,
    tasks: u64,
    wall: Duration,
    cpu_util: f64,
    correct: Result<(), String>,
}

/// Which workload a run checks its results against.
#[derive(Clone, Copy)]
enum Check {
    SumSquares,
    BodyLength,
}

fn verify(
    check: Check,
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
        let expected = match check {
            Check::SumSquares => {
                let start = a + i * args.chunk;
                sum_squares(start, (start + args.chunk).min(b))
            }
            Check::BodyLength => BODY_LEN,
        };
        if *v != expected {
            return Err(format!("task {i} returned {v}, expected {expected}"));
        }
    }
    if let Check::SumSquares = check {
        if info_total != CPU_TOTAL {
            return Err(format!("total {info_total}, expected {CPU_TOTAL}"));
        }
    }
    Ok(())
}

async fn run_one(
    client: &mut Client,
    workload: &'static str,
    label: &'static str,
    slots: usize,
    args: SubmitArgs,
    check: Check,
    target_pid: u32,
) -> anyhow::Result<Run> {
    let cpu0 = cluster_cpu_secs(Some(target_pid));
    let t0 = Instant::now();
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
    let cores = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1) as f64;
    let correct = if info.state != JobState::Succeeded as i32 {
        Err(format!("job {}: {}", state_name(info.state), info.error))
    } else {
        verify(check, &args, total(&info), &results)
    };
    Ok(Run {
        workload,
        model: label,
        slots,
        tasks: info.tasks_total,
        wall,
        cpu_util: cpu / (wall.as_secs_f64() * cores),
        correct,
    })
}

pub async fn run() -> anyhow::Result<()> {
    let cores = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1);
    let (procs, threads, async_slots) = (cores, cores, 256usize);
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
        "brigade demo: embedded coordinator + 1 worker ({procs} process, {threads} thread, {async_slots} async slots) \
         + HTTP target on {} cores; ready in {:.0} ms",
        cores,
        started.elapsed().as_secs_f64() * 1e3
    );
    let cpu_job = |model: Model, max_in_flight: u32| SubmitArgs {
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
        max_in_flight,
        allow_failures: 0,
        name: "demo".into(),
    };
    let io_job = |model: Model, max_in_flight: u32| SubmitArgs {
        workload: "http-get".into(),
        range: Some((0, IO_TASKS)),
        chunk: 1,
        args: vec![
            (
                "url".into(),
                format!("{}/slow?ms={IO_DELAY_MS}", target.url),
            ),
            ("expect-len".into(), BODY_LEN.to_string()),
        ],
        ..cpu_job(model, max_in_flight)
    };
    // Warm-up: every executor started and every connection path exercised.
    for model in Model::ALL {
        let mut warm = io_job(model, 0);
        warm.range = Some((0, 8));
        run_one(
            &mut client,
            "warm-up",
            "",
            0,
            warm,
            Check::BodyLength,
            target_pid,
        )
        .await?;
    }
    type JobFor<'a> = &'a dyn Fn(Model, u32) -> SubmitArgs;
    let plan: [(&'static str, JobFor, Check); 2] = [
        ("W_CPU sum-squares 40×1.5M", &cpu_job, Check::SumSquares),
        ("I/O http-get 100×/slow 20ms", &io_job, Check::BodyLength),
    ];
    let mut runs = Vec::new();
    for (name, job, check) in plan {
        eprintln!("running {name} ...");
        runs.push(
            run_one(
                &mut client,
                name,
                "1 slot",
                1,
                job(Model::Thread, 1),
                check,
                target_pid,
            )
            .await?,
        );
        for (model, slots) in [
            (Model::Process, procs),
            (Model::Thread, threads),
            (Model::Async, async_slots),
        ] {
            runs.push(
                run_one(
                    &mut client,
                    name,
                    model.name(),
                    slots,
                    job(model, 0),
                    check,
                    target_pid,
                )
                .await?,
            );
        }
    }
    print_table(&runs);
    let _ = stop_tx.send(true);
    let node_result = node.await?;
    server.await?.context("coordinator failed")?;
    node_result.context("demo worker failed")?;
    if runs.iter().any(|r| r.correct.is_err()) {
        bail!("some results were wrong (see the table)");
    }
    Ok(())
}

fn print_table(runs: &[Run]) {
    println!();
    println!(
        "{:<28} {:<8} {:>5} {:>6} {:>9} {:>10} {:>8} {:>8}  correct",
        "workload", "model", "slots", "tasks", "wall s", "tasks/s", "speedup", "CPU util",
    );
    let mut baseline = Duration::ZERO;
    for r in runs {
        if r.model == "1 slot" {
            baseline = r.wall;
        }
        let speedup = baseline.as_secs_f64() / r.wall.as_secs_f64().max(1e-9);
        println!(
            "{:<28} {:<8} {:>5} {:>6} {:>9.3} {:>10.0} {:>7.2}x {:>7.0}%  {}",
            r.workload,
            r.model,
            r.slots,
            r.tasks,
            r.wall.as_secs_f64(),
            r.tasks as f64 / r.wall.as_secs_f64().max(1e-9),
            speedup,
            r.cpu_util * 100.0,
            match &r.correct {
                Ok(()) => "yes".to_string(),
                Err(e) => format!("NO: {e}"),
            }
        );
    }
    println!();
    println!(
        "speedup: against the same job on one slot (a single thread running tasks one at a time)."
    );
    println!("CPU util: CPU time of coordinator, worker and executors / (wall × cores); the HTTP target is excluded.");
    println!(
        "async is one event-loop thread (like asyncio): it cannot use a second core for CPU work,"
    );
    println!("but it keeps every GET in flight at once, where process and thread slots wait one GET each.");
}
