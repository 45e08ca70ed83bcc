//! Real faults against real processes: a worker SIGKILLed mid-job, an
//! executor child SIGKILLed mid-task, a worker SIGTERMed mid-job, a worker
//! started before its coordinator, and jobs waiting with no suitable worker.
//! Every job must still end with exact results, each task recorded once.

mod common;

use common::{
    assert_succeeded, free_port_below_ephemeral_range, id_of, identity, proc_alive, proc_gone,
    proc_stat, send_signal, wait_until, Cluster, Slots, SumSquares, DEADLINE, FAST_LEASES,
};
use serde_json::Value;

/// 80 sum-squares tasks of tens of ms each (debug build) on process slots:
/// long enough for a fault to land mid-job.
const LONG_JOB: SumSquares = SumSquares::new(80, 5_000_000);

/// Two workers with 2 process slots each, running [`LONG_JOB`] with 8 of
/// its tasks done; returns the cluster and the job id.
fn long_job_under_way() -> (Cluster, u64) {
    let c = Cluster::with_workers(2, Slots::new(2, 0, 1), &FAST_LEASES);
    let id = id_of(&c.submit_json(&LONG_JOB.args(&["--model", "process"])));
    c.wait_mid_job(id, 8);
    (c, id)
}

/// [`LONG_JOB`] ended exactly, some of its tasks retried after the fault
/// (`at_fault`: the job as the fault left it).
fn assert_long_job_exact_after_retries(c: &Cluster, id: u64, at_fault: &Value) {
    let end = c.wait_job(id);
    LONG_JOB.assert_exact(c, &end);
    assert!(
        end["retries"].as_u64().unwrap_or(0) >= 1,
        "the lost worker's leased tasks must have been retried; at the fault: {at_fault}; end: {end}"
    );
}

#[test]
fn a_worker_sigkilled_mid_job_loses_no_task_and_duplicates_none() {
    let (mut c, id) = long_job_under_way();
    c.kill_worker(0);
    let at_kill = c.job_json(id);
    assert_long_job_exact_after_retries(&c, id, &at_kill);

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
    c.wait_mid_job(id, 20);
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
    let (c, id) = long_job_under_way();
    // Silent but connected: only missed heartbeats can reveal it. Its
    // executors (own process groups) keep computing meanwhile.
    c.freeze_worker(0);
    let workers = c.wait_workers(1);
    assert_eq!(workers[0]["name"], "w2", "workers: {workers:?}");
    let lost = c.job_json(id);
    c.thaw_worker(0);
    assert_long_job_exact_after_retries(&c, id, &lost);
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
    // The executor's process group (it leads its own).
    send_signal(-(victim as i32), libc::SIGKILL);

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
        proc_gone(victim).then_some(())
    });
    let now = wait_until("a replacement executor", DEADLINE, || {
        let pids = c.executor_pids(worker);
        (pids.len() == 1).then_some(pids)
    });
    assert_ne!(now, vec![victim]);
    // Still a working cluster.
    SumSquares::QUICK.assert_total(&c.submit_json(&SumSquares::QUICK.args(&["--wait"])));
}

#[test]
fn a_worker_sigtermed_mid_job_drains_and_exits_0() {
    let mut c = Cluster::with_workers(2, Slots::new(1, 2, 1), &FAST_LEASES);
    let job = c.submit_json(&[
        "spin", "--arg", "ms=20", "--range", "0..100", "--model", "thread",
    ]);
    let id = id_of(&job);
    c.wait_mid_job(id, 10);
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

#[test]
fn a_worker_started_before_the_coordinator_links_once_it_is_up() {
    let port = free_port_below_ephemeral_range();
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
    let cpu_job = SumSquares::new(10, 100_000);
    let cpu_id = id_of(&c.submit_json(&cpu_job.args(&[])));
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
    cpu_job.assert_total(&end);
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
