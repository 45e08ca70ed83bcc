//! End to end against real processes: a coordinator and two workers run the
//! CPU, no-op and I/O workloads in every model with exact results, and the
//! client commands (workers, jobs, job, status, cancel) report what happened.

mod common;

use common::{
    assert_succeeded, csv_index_value, id_of, identity, parse_json, stderr, stdout, sum_squares,
    wait_until, without_run_fields, Client, Cluster, Slots, SumSquares, W_CPU_TOTAL,
};
use serde_json::{json, Value};
use std::time::Duration;

const SLOTS: Slots = Slots::new(2, 2, 64);
const W_CPU: SumSquares = SumSquares::W_CPU;

#[test]
fn w_cpu_is_exact_in_every_model_and_cpu_routes_to_process_slots() {
    let c = Cluster::with_workers(2, SLOTS, &[]);
    assert_eq!(W_CPU.total(), W_CPU_TOTAL, "the test's own arithmetic");
    for model in ["process", "thread", "async"] {
        let job = c.submit_json(&W_CPU.args(&["--model", model, "--wait"]));
        assert_succeeded(&job, 40);
        assert_eq!(job["model"], model, "job: {job}");
        assert_eq!(job["total"], W_CPU_TOTAL, "model {model}: {job}");
        assert_eq!(job["late_results_dropped"], 0, "job: {job}");
    }

    // Default routing: sum-squares is cpu → process slots.
    let job = c.submit_json(&W_CPU.args(&["--wait"]));
    assert_succeeded(&job, 40);
    assert_eq!(job["model"], "process", "job: {job}");
    assert_eq!(job["kind"], "cpu", "job: {job}");
    assert_eq!(job["total"], W_CPU_TOTAL);

    // Table format prints the total alone on stdout.
    let args = [
        vec!["submit".into()],
        W_CPU.args(&["--wait", "--model", "thread"]),
    ]
    .concat();
    assert_eq!(c.brigade_ok(&args).trim(), W_CPU_TOTAL);
}

#[test]
fn w_noop_results_are_exactly_every_index_in_order_on_async_and_thread() {
    let c = Cluster::with_workers(2, SLOTS, &[]);
    for model in ["async", "thread"] {
        let job = c.submit_json(&[
            "noop", "--range", "0..20000", "--chunk", "1", "--model", model, "--wait",
        ]);
        assert_succeeded(&job, 20_000);
        assert_eq!(job["model"], model);
        let results = c.results(id_of(&job));
        assert_eq!(results.len(), 20_000, "model {model}");
        for (i, &(index, value)) in results.iter().enumerate() {
            assert_eq!(
                (index, value),
                (i as u64, i as u128),
                "model {model}: row {i}"
            );
        }
    }
}

/// `results` as JSON, JSON lines and CSV: every row read back (JSON by
/// serde_json) holds the task's exact sum (a JSON number below 2^53, a
/// string above), its input range, and the same run facts in all three.
#[test]
fn results_read_back_the_same_rows_as_json_json_lines_and_csv() {
    let c = Cluster::with_workers(1, SLOTS, &[]);
    // 40 tasks of 50,000: the first sums fit in 2^53, the last do not.
    let (chunk, tasks) = (50_000u64, 40u64);
    let range = format!("0..{}", chunk * tasks);
    let chunk_arg = chunk.to_string();
    let job = c.submit_json(&[
        "sum-squares",
        "--range",
        &range,
        "--chunk",
        &chunk_arg,
        "--model",
        "thread",
        "--wait",
    ]);
    assert_succeeded(&job, tasks);
    let id = id_of(&job).to_string();
    let results = |format: &str| c.brigade_ok(&["results", &id, "--format", format]);

    let array = match parse_json(&["results", "--format", "json"], &results("json")) {
        Value::Array(rows) => rows,
        other => panic!("results --format json is not an array: {other}"),
    };
    let lines: Vec<Value> = results("jsonl")
        .lines()
        .map(|l| parse_json(&["results", "--format", "jsonl"], l))
        .collect();
    assert_eq!(
        lines, array,
        "JSON lines and the JSON array hold the same rows"
    );
    let csv = results("csv");
    let mut csv = csv.lines();
    assert_eq!(csv.next(), Some(common::RESULTS_CSV_HEADER));
    let csv: Vec<Vec<&str>> = csv.map(|l| l.split(',').collect()).collect();
    assert_eq!((array.len(), csv.len()), (tasks as usize, tasks as usize));

    let (mut small, mut large) = (0, 0);
    for (i, (row, csv)) in array.iter().zip(&csv).enumerate() {
        let (a, b) = (i as u64 * chunk, (i as u64 + 1) * chunk);
        let sum = sum_squares(a, b);
        let output = if sum < 1 << 53 {
            small += 1;
            json!(sum as u64)
        } else {
            large += 1;
            json!(sum.to_string())
        };
        let keys: Vec<&str> = row
            .as_object()
            .unwrap()
            .keys()
            .map(String::as_str)
            .collect();
        assert_eq!(
            keys,
            [
                "attempts", "cpu_ms", "index", "input", "model", "output", "value", "wall_ms",
                "worker"
            ],
            "row {i}: {row}"
        );
        assert_eq!(row["index"], i, "row {i}: {row}");
        assert_eq!(row["value"], sum.to_string(), "row {i}: {row}");
        assert_eq!(row["output"], output, "row {i}: {row}");
        assert_eq!(row["input"], format!("{a}..{b}"), "row {i}: {row}");
        assert_eq!(row["model"], "thread", "row {i}: {row}");
        let worker = row["worker"].as_str().unwrap_or_default();
        assert!(!worker.is_empty(), "row {i}: {row}");
        let attempts = row["attempts"].as_u64().unwrap_or_default();
        assert!(attempts >= 1, "row {i}: {row}");
        let (cpu, wall) = (row["cpu_ms"].as_f64(), row["wall_ms"].as_f64());
        assert!(
            cpu.is_some_and(|t| t >= 0.0) && wall.is_some_and(|t| t >= 0.0),
            "{row}"
        );
        let csv_row = [
            i.to_string(),
            sum.to_string(),
            format!("{a}..{b}"),
            attempts.to_string(),
            worker.to_string(),
            "thread".to_string(),
        ];
        assert_eq!(csv[..6], csv_row, "row {i}: csv {csv:?}, json {row}");
        let time = |t: &str| t.parse::<f64>().ok();
        assert_eq!(
            (time(csv[6]), time(csv[7])),
            (cpu, wall),
            "row {i}: csv {csv:?}, json {row}"
        );
    }
    assert!(
        small > 0 && large > 0,
        "outputs on both sides of 2^53: {small} and {large}"
    );
}

/// Scheduling policy of each of `pid`'s threads named `name` (field 41 of
/// /proc/PID/task/TID/stat; 5 is SCHED_IDLE).
fn thread_policies(pid: u32, name: &str) -> Vec<u32> {
    let tasks = std::fs::read_dir(format!("/proc/{pid}/task")).expect("proc task dir");
    tasks
        .flatten()
        .filter(|t| std::fs::read_to_string(t.path().join("comm")).is_ok_and(|c| c.trim() == name))
        .filter_map(|t| {
            let stat = std::fs::read_to_string(t.path().join("stat")).ok()?;
            // Fields after the command name, which ends at the last ')'.
            let rest = &stat[stat.rfind(')')? + 2..];
            rest.split_whitespace().nth(41 - 3)?.parse().ok()
        })
        .collect()
}

#[test]
fn with_a_spin_window_every_process_has_one_idle_priority_spinner_and_jobs_stay_exact() {
    let mut c = Cluster::start(&["--spin-us", "500"]);
    c.spawn_worker_with("w1", Slots::new(2, 2, 256), &["--spin-us", "500"]);
    c.wait_workers(1);
    for pid in [c.coordinator_pid(), c.worker_pid(0)] {
        assert_eq!(thread_policies(pid, "brigade-spin"), [5], "pid {pid}");
    }
    for model in ["process", "thread", "async"] {
        let job = c.submit_json(&[
            "noop",
            "--range",
            "0..2000",
            "--chunk",
            "1",
            "--model",
            model,
            "--wait",
            "--spin-us",
            "500",
        ]);
        assert_succeeded(&job, 2_000);
        assert_eq!(c.results(id_of(&job)), identity(2_000), "model {model}");
    }
    // Without the flag, no spinner.
    let plain = Cluster::start(&[]);
    assert!(thread_policies(plain.coordinator_pid(), "brigade-spin").is_empty());
}

#[test]
fn http_get_against_the_io_target_returns_every_body_length_in_every_model() {
    let mut c = Cluster::with_workers(2, SLOTS, &[]);
    let io = c.start_io_target();
    for path in ["/fast", "/slow?ms=5"] {
        let url_arg = format!("url={io}{path}");
        for model in ["process", "thread", "async"] {
            let job = c.submit_json(&[
                "http-get",
                "--range",
                "0..200",
                "--arg",
                &url_arg,
                "--arg",
                "expect-len=1024",
                "--model",
                model,
                "--wait",
            ]);
            assert_succeeded(&job, 200);
            assert_eq!(job["model"], model, "{path}: {job}");
            let results = c.results(id_of(&job));
            let expected: Vec<(u64, u128)> = (0..200).map(|i| (i, 1024)).collect();
            assert_eq!(results, expected, "{path} on {model}");
        }
    }
    // http-get is io by default → async slots.
    let url_arg = format!("url={io}/fast");
    let job = c.submit_json(&["http-get", "--range", "0..10", "--arg", &url_arg, "--wait"]);
    assert_succeeded(&job, 10);
    assert_eq!(job["model"], "async", "job: {job}");
    assert_eq!(job["kind"], "io", "job: {job}");
}

#[test]
fn workers_jobs_job_status_and_cancel_report_the_cluster() {
    let c = Cluster::with_workers(2, SLOTS, &[]);

    let mut workers = c.workers_json();
    workers.sort_by_key(|w| w["name"].as_str().unwrap_or_default().to_string());
    assert_eq!(workers.len(), 2, "workers: {workers:?}");
    for (w, name) in workers.iter().zip(["w1", "w2"]) {
        assert_eq!(w["name"], name, "worker: {w}");
        assert_eq!(w["process_slots"], 2, "worker: {w}");
        assert_eq!(w["thread_slots"], 2, "worker: {w}");
        assert_eq!(w["async_slots"], 64, "worker: {w}");
        assert_eq!(w["draining"], false, "worker: {w}");
    }
    let mut pids: Vec<u64> = workers.iter().filter_map(|w| w["pid"].as_u64()).collect();
    pids.sort_unstable();
    let mut expected_pids = vec![c.worker_pid(0) as u64, c.worker_pid(1) as u64];
    expected_pids.sort_unstable();
    assert_eq!(pids, expected_pids, "workers report their own pids");

    let status = c.json(&["status"]);
    assert_eq!(status["workers"], 2, "status: {status}");
    assert_eq!(status["process_slots"], 4, "status: {status}");
    assert_eq!(status["thread_slots"], 4, "status: {status}");
    assert_eq!(status["async_slots"], 128, "status: {status}");
    assert_eq!(status["jobs_total"], 0, "status: {status}");
    assert!(c.brigade_ok(&["status"]).contains("workers      2"));

    // A finished job shows up in `jobs` and `job`.
    let done = c.submit_json(&SumSquares::QUICK.args(&["--wait"]));
    let done_id = id_of(&done);
    SumSquares::QUICK.assert_total(&done);
    let expected_total = SumSquares::QUICK.total();
    let table = c.brigade_ok(&["job", &done_id.to_string()]);
    assert!(
        table.contains(&format!("total: {expected_total}")) && table.contains("succeeded"),
        "`job {done_id}` printed: {table}"
    );

    // Cancel a long job while a `submit --wait` in another process follows it.
    let client = Client::clone(&c);
    let waiter = std::thread::spawn(move || {
        client.submit_failing(&[
            "sleep",
            "--arg",
            "ms=200",
            "--range",
            "0..1000",
            "--model",
            "async",
            "--max-in-flight",
            "2",
        ])
    });
    let long_id = wait_until("the sleep job to be listed", common::DEADLINE, || {
        c.json(&["jobs"])
            .as_array()?
            .iter()
            .find(|j| j["workload"] == "sleep")
            .and_then(|j| j["job_id"].as_u64())
    });
    c.wait_job_until(long_id, "a task done", |j| {
        j["tasks_done"].as_u64().unwrap_or(0) >= 1
    });
    let out = c.brigade_ok(&["cancel", &long_id.to_string()]);
    assert!(out.contains("cancelled"), "`cancel` printed: {out}");
    let cancelled = c.job_json(long_id);
    assert_eq!(cancelled["state"], "cancelled", "job: {cancelled}");
    let done_before = cancelled["tasks_done"].as_u64().unwrap_or(u64::MAX);
    assert!(done_before < 1000, "job: {cancelled}");
    // `job --wait` on an ended job returns at once with the same state.
    assert_eq!(c.wait_job(long_id)["state"], "cancelled");
    // The waiting submit saw the cancellation and failed.
    let (seen, err) = waiter.join().expect("the waiting submit ran");
    assert_eq!(seen["job_id"], long_id);
    assert_eq!(seen["state"], "cancelled", "submit --wait printed {seen}");
    assert!(
        err.contains(&format!("job {long_id} was cancelled")),
        "stderr: {err}"
    );

    let jobs = c.json(&["jobs", "--history"]);
    let states: Vec<(u64, String)> = jobs
        .as_array()
        .expect("jobs is an array")
        .iter()
        .map(|j| {
            (
                id_of(j),
                j["state"].as_str().unwrap_or_default().to_string(),
            )
        })
        .collect();
    assert_eq!(
        states,
        vec![
            (done_id, "succeeded".to_string()),
            (long_id, "cancelled".to_string())
        ]
    );
    let table = c.brigade_ok(&["jobs", "--history"]);
    assert!(
        table.contains("sum-squares") && table.contains("cancelled"),
        "`jobs` printed: {table}"
    );

    // The cluster still runs a later job, and every slot is free again.
    let after = c.submit_json(&[
        "sleep", "--arg", "ms=1", "--range", "0..50", "--model", "async", "--wait",
    ]);
    assert_succeeded(&after, 50);
    assert_eq!(c.results(id_of(&after)), identity(50));

    let status = c.json(&["status"]);
    assert_eq!(status["jobs_total"], 3, "status: {status}");
    assert_eq!(status["jobs_active"], 0, "status: {status}");
}

#[test]
fn a_chunk_wider_than_the_range_is_one_task_with_the_exact_total() {
    let c = Cluster::with_workers(1, SLOTS, &[]);
    let job = c.submit_json(&[
        "sum-squares",
        "--range",
        "1000..3000",
        "--chunk",
        "1000000",
        "--wait",
    ]);
    assert_succeeded(&job, 1);
    assert_eq!(job["total"], sum_squares(1000, 3000).to_string().as_str());
    let v = sum_squares(1000, 3000);
    assert_eq!(c.results(id_of(&job)), vec![(0, v)]);

    // The other result formats say the same.
    let id = id_of(&job).to_string();
    assert_eq!(
        csv_index_value(&c.brigade_ok(&["results", &id, "--format", "csv"])),
        format!("index,value\n0,{v}\n")
    );
    let json = match c.json(&["results", &id]) {
        serde_json::Value::Array(rows) => {
            serde_json::Value::Array(rows.into_iter().map(without_run_fields).collect())
        }
        other => panic!("not an array: {other}"),
    };
    assert_eq!(
        json,
        // `value` is the output as text (an integer in decimal), `output`
        // the output as a JSON value (a number when it fits 2^53).
        serde_json::json!([{"index": 0, "value": v.to_string(), "output": v as u64}])
    );
    let csv = c.brigade_ok(&["job", &id, "--format", "csv"]);
    let lines: Vec<&str> = csv.lines().collect();
    assert_eq!(lines.len(), 2, "job --format csv: {csv}");
    assert!(lines[0].starts_with("job_id,workload,model,state"), "{csv}");
    assert!(
        lines[1].starts_with(&format!("{id},sum-squares,process,succeeded,1,1,"))
            && lines[1].ends_with(&format!(",{v}")),
        "{csv}"
    );
}

#[test]
fn cancel_stops_the_running_tasks_of_a_process_job() {
    let c = Cluster::with_workers(1, Slots::new(2, 0, 1), &[]);
    // Ten minutes per task: only a real stop frees the slots in time.
    let job = c.submit_json(&[
        "spin",
        "--arg",
        "ms=600000",
        "--range",
        "0..2",
        "--model",
        "process",
    ]);
    let id = id_of(&job);
    let busy = c.busy_executors(0, 2, 20);
    c.brigade_ok(&["cancel", &id.to_string()]);
    assert_eq!(c.job_json(id)["state"], "cancelled");

    let worker = c.worker_pid(0);
    wait_until(
        "the executors running the cancelled tasks to be stopped",
        Duration::from_secs(30),
        || {
            let now = c.executor_pids(worker);
            now.iter().all(|p| !busy.contains(p)).then_some(())
        },
    );
    wait_until(
        "the worker to report no running task",
        Duration::from_secs(30),
        || {
            let w = c.workers_json();
            (w.len() == 1 && w[0]["running_tasks"] == 0).then_some(())
        },
    );
    SumSquares::QUICK
        .assert_total(&c.submit_json(&SumSquares::QUICK.args(&["--model", "process", "--wait"])));
}

#[test]
fn failing_and_timed_out_tasks_fail_the_job_with_their_cause() {
    let mut c = Cluster::with_workers(1, Slots::new(1, 1, 4), &[]);
    let io = c.start_io_target();

    // A wrong body length fails every attempt.
    let url_arg = format!("url={io}/fast");
    let (job, err) = c.submit_failing(&[
        "http-get",
        "--range",
        "0..1",
        "--arg",
        &url_arg,
        "--arg",
        "expect-len=999",
        "--max-attempts",
        "2",
    ]);
    assert_eq!(job["state"], "failed", "job: {job}");
    assert_eq!(job["tasks_failed"], 1, "job: {job}");
    assert_eq!(job["tasks_done"], 0, "job: {job}");
    assert_eq!(job["retries"], 1, "job: {job}");
    let error = job["error"].as_str().unwrap_or_default();
    assert!(
        error.contains("failed after 2 attempt(s)")
            && error.contains("returned a body of 1024 bytes, expected 999"),
        "job: {job}"
    );
    assert!(
        err.contains(&format!("job {} failed", id_of(&job))),
        "stderr: {err}"
    );

    // A 404 in table format.
    let url_arg = format!("url={io}/nope");
    let o = c.brigade(&[
        "submit",
        "http-get",
        "--range",
        "0..3",
        "--arg",
        &url_arg,
        "--max-attempts",
        "1",
        "--wait",
    ]);
    assert_eq!(o.status.code(), Some(1), "stderr: {}", stderr(&o));
    assert!(
        stderr(&o).contains("returned status 404, expected 200"),
        "stderr: {}",
        stderr(&o)
    );
    assert_eq!(stdout(&o), "", "no total for a failed job");

    // Per-task timeouts stop process and async tasks.
    for (workload, model, cause) in [
        ("spin", "process", "exceeded its 300 ms timeout"),
        ("sleep", "async", "exceeded its 300 ms timeout"),
    ] {
        let (job, _) = c.submit_failing(&[
            workload,
            "--arg",
            "ms=600000",
            "--range",
            "0..1",
            "--timeout-ms",
            "300",
            "--max-attempts",
            "1",
            "--model",
            model,
        ]);
        assert_eq!(job["state"], "failed", "job: {job}");
        assert!(
            job["error"].as_str().unwrap_or_default().contains(cause),
            "{model}: job: {job}"
        );
        // The slot is free again for a good job.
        SumSquares::QUICK
            .assert_total(&c.submit_json(&SumSquares::QUICK.args(&["--model", model, "--wait"])));
    }
}

/// Near the top of u64 each i² is close to 2¹²⁸: one task's sum may not fit
/// in u128, and neither may a job's total over tasks that each fit.
#[test]
fn sums_that_do_not_fit_in_128_bits_fail_instead_of_wrapping() {
    let c = Cluster::with_workers(1, Slots::new(1, 1, 8), &[]);
    let range = "18446744073709551000..18446744073709551615";

    // One task's sum overflows: the task says so.
    let (job, _) = c.submit_failing(&[
        "sum-squares",
        "--range",
        range,
        "--chunk",
        "100",
        "--model",
        "async",
        "--max-attempts",
        "1",
    ]);
    assert_eq!(job["state"], "failed", "job: {job}");
    assert!(
        job["error"]
            .as_str()
            .unwrap_or_default()
            .contains("does not fit in 128 bits"),
        "job: {job}"
    );

    // Every task fits (one element each) but the total does not: Σ i² over
    // the range is 209273655656377148018921363475748245457115 > 2¹²⁸.
    let (o, job) = c.submit_wait(&[
        "sum-squares",
        "--range",
        range,
        "--chunk",
        "1",
        "--model",
        "async",
    ]);
    if job["state"] == "succeeded" {
        assert_eq!(
            job["total"], "209273655656377148018921363475748245457115",
            "a succeeded job must report the exact total, not one wrapped modulo 2^128: {job}"
        );
    } else {
        assert_eq!(job["state"], "failed", "job: {job}");
        assert_eq!(o.status.code(), Some(1), "stderr: {}", stderr(&o));
        assert!(
            job["error"]
                .as_str()
                .unwrap_or_default()
                .contains("128 bits"),
            "the error should say the total does not fit in 128 bits: {job}"
        );
    }
    // Each task's own result is exact.
    let results = c.results(id_of(&job));
    assert_eq!(results.len(), 615);
    let first: u128 = 18_446_744_073_709_551_000;
    assert_eq!(results[0], (0, first * first));
}

/// `--model auto` probes on thread slots and sends CPU-bound work to process
/// slots and waiting work to async slots, saying why; results stay exact.
#[test]
fn auto_routes_cpu_work_to_processes_and_waiting_work_to_the_event_loop() {
    let c = Cluster::with_workers(1, Slots::new(2, 2, 16), &[]);
    for (workload, arg, model, why) in [
        ("spin", "ms=20", "process", "CPU-bound"),
        ("sleep", "ms=20", "async", "mostly waiting"),
    ] {
        let job = c.submit_json(&[
            workload, "--range", "0..20", "--arg", arg, "--model", "auto", "--wait",
        ]);
        assert_succeeded(&job, 20);
        assert_eq!(job["model"], model, "job: {job}");
        let routing = job["routing"].as_str().unwrap_or_default();
        assert!(
            routing.contains("4 probe tasks on thread slots") && routing.contains(why),
            "job: {job}"
        );
        assert_eq!(c.results(id_of(&job)), identity(20));
    }
}

/// RunJob submits, streams the status to the end and then the results, on
/// one stream; a bad job is refused on the call itself.
#[tokio::test(flavor = "current_thread")]
async fn run_job_streams_status_then_exact_results_in_one_call() {
    use brigade_proto::v1::coordinator_client::CoordinatorClient;
    use brigade_proto::v1::{job_event, JobSpec, JobState, RunJobRequest};

    let c = tokio::task::spawn_blocking(|| Cluster::with_workers(1, Slots::new(0, 2, 0), &[]))
        .await
        .expect("cluster starts");
    let mut client = CoordinatorClient::connect(c.url().to_string())
        .await
        .expect("connect to the coordinator");
    // 1,000 tasks of 40 squares each: more than one status, results checked.
    let spec = JobSpec {
        workload: "sum-squares".into(),
        range_start: 0,
        range_end: 40_000,
        chunk: 40,
        model: 2, // thread
        ..Default::default()
    };
    let mut events = client
        .run_job(RunJobRequest {
            spec: Some(spec.clone()),
            results: true,
        })
        .await
        .expect("the job is accepted")
        .into_inner();
    let (mut statuses, mut results, mut ended) = (Vec::new(), Vec::new(), false);
    while let Some(e) = events.message().await.expect("the stream holds") {
        match e.event.expect("every event says something") {
            job_event::Event::Status(info) => {
                assert!(results.is_empty(), "no status after the results");
                assert!(!ended, "no status after the end: {info:?}");
                ended = JobState::try_from(info.state).is_ok_and(JobState::is_terminal);
                statuses.push(info);
            }
            job_event::Event::Results(chunk) => {
                assert!(ended, "results only once the job ended");
                assert!(chunk.hi.is_empty(), "every value fits in 64 bits");
                results.extend(chunk.index.into_iter().zip(chunk.lo));
            }
        }
    }
    let last = statuses.last().expect("at least one status");
    assert_eq!(last.state, JobState::Succeeded as i32, "{last:?}");
    assert!(statuses.iter().all(|s| s.job_id == last.job_id));
    assert_eq!(results.len(), 1_000);
    for (k, (i, v)) in results.iter().enumerate() {
        assert_eq!(*i, k as u64);
        assert_eq!(u128::from(*v), sum_squares(i * 40, i * 40 + 40), "task {i}");
    }
    // Without `results`, the stream ends with the job.
    let mut events = client
        .run_job(RunJobRequest {
            spec: Some(spec),
            results: false,
        })
        .await
        .expect("the job is accepted")
        .into_inner();
    let mut last = None;
    while let Some(e) = events.message().await.expect("the stream holds") {
        match e.event {
            Some(job_event::Event::Status(info)) => last = Some(info),
            other => panic!("only statuses were asked for: {other:?}"),
        }
    }
    assert_eq!(last.expect("a status").state, JobState::Succeeded as i32);
    // A bad job is refused before anything streams, saying what is allowed.
    let status = client
        .run_job(RunJobRequest {
            spec: Some(JobSpec {
                workload: "no-such-workload".into(),
                range_end: 1,
                chunk: 1,
                ..Default::default()
            }),
            results: true,
        })
        .await
        .expect_err("an unknown workload is refused");
    assert_eq!(status.code(), tonic::Code::InvalidArgument, "{status:?}");
    assert!(
        status.message().contains("no-such-workload") && status.message().contains("noop"),
        "{}",
        status.message()
    );
    drop(c);
}

/// More long-lived streams on one connection than the coordinator's
/// per-connection stream and request limits (256 each): the ones over the
/// limit wait, none fails, and all of them see the job end.
#[tokio::test(flavor = "current_thread")]
async fn more_watch_streams_on_one_connection_than_its_stream_limit_all_see_the_end() {
    use brigade_proto::v1::coordinator_client::CoordinatorClient;
    use brigade_proto::v1::{JobRef, JobSpec, JobState, SubmitJobRequest};

    const WATCHES: usize = 300;
    let c = tokio::task::spawn_blocking(|| Cluster::with_workers(1, Slots::new(0, 0, 8), &[]))
        .await
        .expect("cluster starts");
    let channel = tonic::transport::Endpoint::from_shared(c.url().to_string())
        .expect("a valid url")
        .connect()
        .await
        .expect("connect to the coordinator");
    let mut client = CoordinatorClient::new(channel.clone());
    // 8 tasks of 1.5 s on 8 async slots: the job outlives the opening of
    // every watch.
    let job = client
        .submit_job(SubmitJobRequest {
            spec: Some(JobSpec {
                workload: "sleep".into(),
                args: [("ms".to_string(), "1500".to_string())].into(),
                range_start: 0,
                range_end: 8,
                chunk: 1,
                ..Default::default()
            }),
        })
        .await
        .expect("the job is accepted")
        .into_inner()
        .job_id;
    let watches = (0..WATCHES).map(|_| {
        let mut client = CoordinatorClient::new(channel.clone());
        async move {
            let mut stream = client
                .watch_job(JobRef {
                    job_id: job,
                    ..Default::default()
                })
                .await?
                .into_inner();
            let mut last = None;
            while let Some(info) = stream.message().await? {
                last = Some(info.state);
            }
            Ok::<_, tonic::Status>(last)
        }
    });
    let ends = tokio::time::timeout(Duration::from_secs(60), futures::future::join_all(watches))
        .await
        .expect("every watch ends within 60 s");
    for end in ends {
        assert_eq!(
            end.expect("no watch is refused"),
            Some(JobState::Succeeded as i32)
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_and_reflection_answer_stock_clients() {
    use tonic_reflection::pb::v1::server_reflection_client::ServerReflectionClient;
    use tonic_reflection::pb::v1::server_reflection_request::MessageRequest;
    use tonic_reflection::pb::v1::server_reflection_response::MessageResponse;
    use tonic_reflection::pb::v1::ServerReflectionRequest;

    let c = Cluster::with_workers(1, Slots::new(0, 1, 0), &[]);
    // `brigade health`: the whole coordinator and each of its services.
    for service in ["", "brigade.v1.Coordinator", "brigade.v1.WorkerLink"] {
        let out = c.brigade(&["health", "--service", service]);
        assert!(out.status.success(), "health {service:?}: {}", stderr(&out));
        assert_eq!(stdout(&out), "SERVING\n");
    }
    let out = c.brigade(&["health", "--service", "no.such.Service"]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(stderr(&out).contains("no.such.Service"), "{}", stderr(&out));

    // Reflection lists every service (what `grpcurl list` asks).
    let channel = tonic::transport::Endpoint::from_shared(c.url().to_string())
        .unwrap()
        .connect()
        .await
        .unwrap();
    let request = ServerReflectionRequest {
        host: String::new(),
        message_request: Some(MessageRequest::ListServices(String::new())),
    };
    let mut answers = ServerReflectionClient::new(channel)
        .server_reflection_info(futures::stream::iter([request]))
        .await
        .unwrap()
        .into_inner();
    let answer = answers.message().await.unwrap().expect("one answer");
    let Some(MessageResponse::ListServicesResponse(list)) = answer.message_response else {
        panic!("not a service list: {answer:?}");
    };
    let mut names: Vec<String> = list.service.into_iter().map(|s| s.name).collect();
    names.sort();
    assert_eq!(
        names,
        [
            "brigade.v1.Coordinator",
            "brigade.v1.WorkerLink",
            "grpc.health.v1.Health",
            "grpc.reflection.v1.ServerReflection"
        ]
    );
}
