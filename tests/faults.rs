//! Real faults against real processes: a worker SIGKILLed mid-job, an
//! executor child SIGKILLed mid-task, a worker SIGTERMed mid-job, a worker
//! started before its coordinator, and jobs waiting with no suitable worker.
//! Every job must still end with exact results, each task recorded once.

mod common;

use common::{proc_stat, sum_squares, sum_squares_below, wait_until, Cluster, Slots, DEADLINE};
use serde_json::Value;

/// Quick fault detection so the tests stay short.
const FAST_LEASES: [&str; 4] = ["--lease-timeout-ms", "1000", "--heartbeat-ms", "200"];

fn id_of(job: &Value) -> u64 {
    job["job_id"]
        .as_u64()
        .unwrap_or_else(|| panic!("no job_id in {job}"))
}

fn done(job: &Value) -> u64 {
    job["tasks_done"].as_u64().unwrap_or(0)
}

fn assert_succeeded(job: &Value, tasks: u64) {
    assert_eq!(job["state"], "succeeded", "job: {job}");
    assert_eq!(job["tasks_total"], tasks, "job: {job}");
    assert_eq!(job["tasks_done"], tasks, "job: {job}");
    assert_eq!(job["tasks_failed"], 0, "job: {job}");
}

/// Results that are exactly index → index for 0..n.
fn identity(n: u64) -> Vec<(u64, u128)> {
    (0..n).map(|i| (i, i as u128)).collect()
}

#[test]
fn a_worker_sigkilled_mid_job_loses_no_task_and_duplicates_none() {
    let mut c = Cluster::with_workers(2, Slots::new(2, 0, 1), &FAST_LEASES);
    // 80 tasks of tens of ms each (debug build): the kill lands mid-job.
    const N: u64 = 400_000_000;
    const CHUNK: u64 = 5_000_000;
    let job = c.submit_json(&[
        "sum-squares",
        "--range",
        "0..400000000",
        "--chunk",
        "5000000",
        "--model",
        "process",
    ]);
    let id = id_of(&job);
    let seen = c.wait_job_until(id, "8 tasks done", |j| done(j) >= 8);
    assert!(done(&seen) < 80, "the job ended before the kill: {seen}");
    c.kill_worker(0);
    let at_kill = c.job_json(id);

    let end = c.wait_job(id);
    assert_succeeded(&end, 80);
    assert_eq!(
        end["total"],
        sum_squares_below(N).to_string().as_str(),
        "job: {end}"
    );
    assert!(
        end["retries"].as_u64().unwrap_or(0) >= 1,
        "the dead worker's leased tasks must have been retried; at the kill: {at_kill}; end: {end}"
    );
    let expected: Vec<(u64, u128)> = (0..N / CHUNK)
        .map(|i| (i, sum_squares(i * CHUNK, (i + 1) * CHUNK)))
        .collect();
    assert_eq!(c.results(id), expected, "every chunk exactly once");

    // The dead worker leaves the list; the survivor stays.
    let workers = c.wait_workers(1);
    assert_eq!(workers[0]["name"], "w2", "workers: {workers:?}");
    // The orphaned executors of the dead worker end on their own once their
    // current task is over (their stdin closed).
    for &pid in &c.orphan_pids() {
        wait_until(
            &format!("orphaned executor {pid} to exit"),
            DEADLINE,
            || (!proc_alive(pid)).then_some(()),
        );
    }
}

#[test]
fn a_worker_sigkilled_mid_job_on_async_slots_records_every_index_once() {
    let mut c = Cluster::with_workers(2, Slots::new(0, 0, 8), &FAST_LEASES);
    let job = c.submit_json(&[
        "sleep", "--arg", "ms=50", "--range", "0..200", "--model", "async",
    ]);
    let id = id_of(&job);
    let seen = c.wait_job_until(id, "20 tasks done", |j| done(j) >= 20);
    assert!(done(&seen) < 200, "the job ended before the kill: {seen}");
    c.kill_worker(1);
    let end = c.wait_job(id);
    assert_succeeded(&end, 200);
    assert!(end["retries"].as_u64().unwrap_or(0) >= 1, "job: {end}");
    assert_eq!(c.results(id), identity(200));
    let workers = c.wait_workers(1);
    assert_eq!(workers[0]["name"], "w1", "workers: {workers:?}");
}

#[test]
fn a_frozen_worker_loses_its_leases_and_its_late_results_are_not_recorded_twice() {
    let c = Cluster::with_workers(2, Slots::new(2, 0, 1), &FAST_LEASES);
    const N: u64 = 400_000_000;
    const CHUNK: u64 = 5_000_000;
    let job = c.submit_json(&[
        "sum-squares",
        "--range",
        "0..400000000",
        "--chunk",
        "5000000",
        "--model",
        "process",
    ]);
    let id = id_of(&job);
    let seen = c.wait_job_until(id, "8 tasks done", |j| done(j) >= 8);
    assert!(done(&seen) < 80, "the job ended before the freeze: {seen}");
    // Silent but connected: only missed heartbeats can reveal it. Its
    // executors (own process groups) keep computing meanwhile.
    c.freeze_worker(0);
    let workers = c.wait_workers(1);
    assert_eq!(workers[0]["name"], "w2", "workers: {workers:?}");
    let lost = c.job_json(id);
    c.thaw_worker(0);

    let end = c.wait_job(id);
    assert_succeeded(&end, 80);
    assert_eq!(
        end["total"],
        sum_squares_below(N).to_string().as_str(),
        "job: {end}"
    );
    assert!(
        end["retries"].as_u64().unwrap_or(0) >= 1,
        "the frozen worker's leases must have been retried; when it was dropped: {lost}; end: {end}"
    );
    let expected: Vec<(u64, u128)> = (0..N / CHUNK)
        .map(|i| (i, sum_squares(i * CHUNK, (i + 1) * CHUNK)))
        .collect();
    assert_eq!(c.results(id), expected, "every chunk exactly once");
    // The thawed worker links again and works.
    c.wait_workers(2);
    let job = c.submit_json(&["noop", "--range", "0..100", "--model", "process", "--wait"]);
    assert_succeeded(&job, 100);
    assert_eq!(c.results(id_of(&job)), identity(100));
}

#[test]
fn an_executor_sigkilled_mid_task_is_replaced_and_its_task_retried() {
    let c = Cluster::with_workers(1, Slots::new(1, 0, 1), &[]);
    let job = c.submit_json(&[
        "spin", "--arg", "ms=3000", "--range", "0..2", "--model", "process",
    ]);
    let id = id_of(&job);
    let worker = c.worker_pid(0);
    // The executor is mid-task once it has burnt 200 ms of CPU (an idle one
    // burns next to none).
    let victim = wait_until("the executor to be busy spinning", DEADLINE, || {
        let pids = c.executor_pids(worker);
        match pids.as_slice() {
            [pid] if proc_stat(*pid).is_some_and(|s| s.cpu_ticks >= 20) => Some(*pid),
            _ => None,
        }
    });
    // SAFETY: kill(2) on the executor's process group (it leads its own).
    unsafe {
        libc::kill(-(victim as i32), libc::SIGKILL);
    }

    let end = c.wait_job(id);
    assert_succeeded(&end, 2);
    assert!(
        end["retries"].as_u64().unwrap_or(0) >= 1,
        "the killed task must have been retried: {end}"
    );
    assert_eq!(end["late_results_dropped"], 0, "job: {end}");
    assert_eq!(c.results(id), identity(2));

    // The worker reaped the dead executor and runs a fresh one.
    wait_until("the killed executor to be reaped", DEADLINE, || {
        (!proc_alive(victim) && proc_stat(victim).is_none()).then_some(())
    });
    let now = wait_until("a replacement executor", DEADLINE, || {
        let pids = c.executor_pids(worker);
        (pids.len() == 1).then_some(pids)
    });
    assert_ne!(now, vec![victim]);
    // Still a working cluster.
    let job = c.submit_json(&[
        "sum-squares",
        "--range",
        "0..1000",
        "--chunk",
        "100",
        "--wait",
    ]);
    assert_succeeded(&job, 10);
    assert_eq!(job["total"], sum_squares_below(1000).to_string().as_str());
}

#[test]
fn a_worker_sigtermed_mid_job_drains_and_exits_0() {
    let mut c = Cluster::with_workers(2, Slots::new(1, 2, 1), &FAST_LEASES);
    let job = c.submit_json(&[
        "spin", "--arg", "ms=20", "--range", "0..100", "--model", "thread",
    ]);
    let id = id_of(&job);
    let seen = c.wait_job_until(id, "10 tasks done", |j| done(j) >= 10);
    assert!(done(&seen) < 100, "the job ended before the signal: {seen}");
    let status = c.terminate_worker(0);
    assert!(
        status.success(),
        "a SIGTERMed worker drains and exits 0, got {status}"
    );
    let end = c.wait_job(id);
    assert_succeeded(&end, 100);
    assert_eq!(end["late_results_dropped"], 0, "job: {end}");
    assert_eq!(c.results(id), identity(100));
    let workers = c.wait_workers(1);
    assert_eq!(workers[0]["name"], "w2", "workers: {workers:?}");
}

/// A loopback port outside the kernel's ephemeral range (so neither port-0
/// listeners nor outgoing connections of this suite can take it) that is
/// free right now.
fn port_outside_ephemeral_range() -> u16 {
    let low: u16 = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|s| s.split_whitespace().next()?.parse().ok())
        .unwrap_or(32768);
    assert!(
        low > 20_000,
        "ephemeral ports start at {low}: too low for this test"
    );
    let span = u32::from(low - 20_000);
    let seed = std::process::id() % span;
    (0..span)
        .map(|k| 20_000 + ((seed + k * 7919) % span) as u16)
        .find(|&p| std::net::TcpListener::bind(("127.0.0.1", p)).is_ok())
        .expect("a free port below the ephemeral range")
}

#[test]
fn a_worker_started_before_the_coordinator_links_once_it_is_up() {
    let port = port_outside_ephemeral_range();
    let addr = format!("127.0.0.1:{port}");
    let mut c = Cluster::empty();
    c.set_url(&format!("http://{addr}"));
    c.spawn_worker("early", Slots::new(1, 1, 4));
    wait_until(
        "the worker to report it is waiting for the coordinator",
        DEADLINE,
        || {
            c.worker_log(0)
                .contains("waiting for the coordinator")
                .then_some(())
        },
    );
    c.start_coordinator(&addr, &FAST_LEASES);
    let workers = c.wait_workers(1);
    assert_eq!(workers[0]["name"], "early");
    let job = c.submit_json(&["noop", "--range", "0..100", "--chunk", "1", "--wait"]);
    assert_succeeded(&job, 100);
    assert_eq!(c.results(id_of(&job)), identity(100));
}

#[test]
fn jobs_wait_visibly_for_missing_slots_and_run_once_a_worker_offers_them() {
    let mut c = Cluster::start(&FAST_LEASES);
    let cpu = c.submit_json(&["sum-squares", "--range", "0..1000000", "--chunk", "100000"]);
    let cpu_id = id_of(&cpu);
    let waiting = c.wait_job_until(cpu_id, "a waiting reason", |j| j["waiting_reason"] != "");
    let reason = waiting["waiting_reason"].as_str().unwrap_or_default();
    assert!(
        reason.contains("no workers with process slots") && reason.contains("start a worker"),
        "job: {waiting}"
    );
    assert_eq!(waiting["state"], "queued", "job: {waiting}");
    assert_eq!(waiting["tasks_done"], 0, "job: {waiting}");
    let table = c.brigade_ok(&["job", &cpu_id.to_string()]);
    assert!(
        table.contains("waiting: no workers with process slots"),
        "`job` printed: {table}"
    );

    // A worker with process slots only: the CPU job runs...
    c.spawn_worker("procs-only", Slots::new(1, 0, 0));
    let end = c.wait_job(cpu_id);
    assert_succeeded(&end, 10);
    assert_eq!(
        end["total"],
        sum_squares_below(1_000_000).to_string().as_str()
    );
    assert_eq!(end["waiting_reason"], "", "job: {end}");

    // ...but a thread job waits for thread slots, then runs on a new worker.
    let t = c.submit_json(&["noop", "--range", "0..10", "--model", "thread"]);
    let t_id = id_of(&t);
    let waiting = c.wait_job_until(t_id, "a waiting reason", |j| j["waiting_reason"] != "");
    assert!(
        waiting["waiting_reason"]
            .as_str()
            .unwrap_or_default()
            .contains("no workers with thread slots"),
        "job: {waiting}"
    );
    c.spawn_worker("threads-only", Slots::new(0, 1, 0));
    let end = c.wait_job(t_id);
    assert_succeeded(&end, 10);
    assert_eq!(c.results(t_id), identity(10));
}

fn proc_alive(pid: u32) -> bool {
    proc_stat(pid).is_some_and(|s| !s.zombie)
}

#[test]
fn a_worker_cut_off_from_its_coordinator_stops_its_running_tasks() {
    let mut c = Cluster::with_workers(1, Slots::new(1, 0, 1), &FAST_LEASES);
    // Ten minutes of CPU: only a real stop ends it within the deadline.
    c.submit_json(&[
        "spin",
        "--arg",
        "ms=600000",
        "--range",
        "0..1",
        "--model",
        "process",
    ]);
    let busy = c.busy_executors(0, 1, 20);
    c.kill_coordinator();
    let worker = c.worker_pid(0);
    wait_until(
        "the cut-off worker to stop the executor running its leased task",
        std::time::Duration::from_secs(30),
        || {
            let now = c.executor_pids(worker);
            (!now.contains(&busy[0])).then_some(())
        },
    );
}
