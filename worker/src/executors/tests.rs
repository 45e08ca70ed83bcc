//! Thread and async executor tests (the process executor needs the real
//! binary and is tested in the root crate's `tests/executors.rs`).

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use brigade_proto::v1::{Model, OutcomeStatus};
use brigade_proto::Output;
use tokio::sync::mpsc::{unbounded_channel, UnboundedReceiver};

use super::*;
use crate::test_support::{task, tasks, workload};

/// The outcome channel, one outcome at a time (they travel in batches).
struct Answers {
    rx: UnboundedReceiver<Vec<TaskDone>>,
    ready: VecDeque<TaskDone>,
}

impl Answers {
    /// Everything already handed over, without waiting.
    fn handed_over(&mut self) -> Vec<TaskDone> {
        while let Ok(batch) = self.rx.try_recv() {
            assert!(!batch.is_empty(), "empty batches are never sent");
            self.ready.extend(batch);
        }
        self.ready.drain(..).collect()
    }
}

fn start(threads: usize, async_slots: usize) -> (Executors, Answers) {
    let (tx, rx) = unbounded_channel();
    let cfg = ExecutorConfig {
        procs: 0,
        threads,
        async_slots,
        executor_program: PathBuf::from("/nonexistent"),
        executor_args: Vec::new(),
    };
    let answers = Answers {
        rx,
        ready: VecDeque::new(),
    };
    (Executors::start(cfg, tx).expect("executors start"), answers)
}

async fn collect(rx: &mut Answers, n: usize) -> Vec<TaskDone> {
    let mut got = Vec::with_capacity(n);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    while got.len() < n {
        if let Some(d) = rx.ready.pop_front() {
            got.push(d);
            continue;
        }
        match tokio::time::timeout_at(deadline, rx.rx.recv()).await {
            Ok(Some(batch)) => {
                assert!(!batch.is_empty(), "empty batches are never sent");
                rx.ready.extend(batch);
            }
            Ok(None) => panic!("outcome channel closed after {} of {n}", got.len()),
            Err(_) => panic!("only {} of {n} outcomes within 60 s", got.len()),
        }
    }
    got
}

/// Polls `cond` until it holds (no fixed sleeps to wait for state).
async fn wait_until(what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while !cond() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
}

async fn every_noop_comes_back_once(model: Model, ex: &Executors, rx: &mut Answers) {
    const N: u64 = 10_000;
    let noop = workload("noop", &[]);
    for i in 0..N {
        ex.submit(model, task(9, i, &noop));
    }
    let got = collect(rx, N as usize).await;
    let mut seen = vec![false; N as usize];
    for d in got {
        assert_eq!(
            (d.status, d.model, d.job_id),
            (OutcomeStatus::Ok, model, 9),
            "{d:?}"
        );
        assert_eq!(d.value, Output::Int(d.index as u128));
        assert!(
            !std::mem::replace(&mut seen[d.index as usize], true),
            "index {} twice",
            d.index
        );
    }
    assert!(seen.iter().all(|&s| s));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn thread_executor_answers_every_noop_exactly_once() {
    let (ex, mut rx) = start(4, 0);
    every_noop_comes_back_once(Model::Thread, &ex, &mut rx).await;
    ex.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn async_executor_answers_every_noop_exactly_once() {
    let (ex, mut rx) = start(0, 64);
    every_noop_comes_back_once(Model::Async, &ex, &mut rx).await;
    ex.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sum_squares_chunks_are_exact_on_threads_and_async() {
    let (ex, mut rx) = start(2, 2);
    let w = workload("sum-squares", &[]);
    for (model, job) in [(Model::Thread, 1), (Model::Async, 2)] {
        for c in 0..40u64 {
            let mut t = task(job, c, &w);
            t.input.start = c * 1_500_000;
            t.input.end = (c + 1) * 1_500_000;
            ex.submit(model, t);
        }
    }
    let got = collect(&mut rx, 80).await;
    for job in [1, 2] {
        let total: u128 = got
            .iter()
            .filter(|d| d.job_id == job)
            .inspect(|d| assert_eq!(d.status, OutcomeStatus::Ok, "{d:?}"))
            .map(|d| d.value.as_int().expect("an integer"))
            .sum();
        assert_eq!(total, 71_999_998_200_000_010_000_000);
    }
    assert!(got.iter().all(|d| d.cpu_ns > 0 && d.wall_ns > 0));
    ex.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancel_job_answers_queued_thread_tasks_at_once() {
    let (ex, mut rx) = start(1, 0);
    // The only thread is busy for a second; job 2 waits behind it.
    ex.submit(
        Model::Thread,
        task(1, 0, &workload("sleep", &[("ms", "1000")])),
    );
    let noop = workload("noop", &[]);
    for i in 0..10 {
        ex.submit(Model::Thread, task(2, i, &noop));
    }
    ex.cancel_job(2);
    let first = collect(&mut rx, 10).await;
    for d in &first {
        assert_eq!((d.job_id, d.status), (2, OutcomeStatus::Cancelled), "{d:?}");
        assert_eq!(d.error, JOB_CANCELLED);
    }
    // The running task is not interrupted.
    let last = collect(&mut rx, 1).await;
    assert_eq!((last[0].job_id, last[0].status), (1, OutcomeStatus::Ok));
    ex.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancel_job_aborts_running_async_tasks_and_drops_queued_ones() {
    let (ex, mut rx) = start(0, 1);
    let long = workload("sleep", &[("ms", "3600000")]);
    ex.submit(Model::Async, task(5, 0, &long));
    let a = ex.async_loop.as_ref().expect("async loop");
    wait_until("the sleep to start", || a.queue().running() == 1).await;
    for i in 1..4 {
        ex.submit(Model::Async, task(5, i, &long));
    }
    ex.submit(Model::Async, task(6, 0, &workload("noop", &[])));
    ex.cancel_job(5);
    let got = collect(&mut rx, 5).await;
    let cancelled: Vec<_> = got.iter().filter(|d| d.job_id == 5).collect();
    assert_eq!(cancelled.len(), 4);
    assert!(cancelled
        .iter()
        .all(|d| d.status == OutcomeStatus::Cancelled && d.error == JOB_CANCELLED));
    // The slot the aborted task held is free again: job 6 ran.
    assert!(got
        .iter()
        .any(|d| d.job_id == 6 && d.status == OutcomeStatus::Ok));
    ex.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn async_loop_never_runs_more_than_its_cap() {
    let (ex, mut rx) = start(0, 4);
    let sleep = workload("sleep", &[("ms", "100")]);
    let t0 = Instant::now();
    for i in 0..16 {
        ex.submit(Model::Async, task(1, i, &sleep));
    }
    let got = collect(&mut rx, 16).await;
    assert!(got.iter().all(|d| d.status == OutcomeStatus::Ok));
    assert_eq!(ex.peak_async_in_flight(), 4);
    // 16 tasks, 4 at a time, 100 ms each: at least four rounds.
    assert!(
        t0.elapsed() >= Duration::from_millis(400),
        "{:?}",
        t0.elapsed()
    );
    // Waiting is not CPU: an honest per-poll count stays far below the wall time.
    assert!(got.iter().all(|d| d.cpu_ns < d.wall_ns / 2), "{got:?}");
    ex.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn async_cpu_time_counts_only_the_task_own_polls() {
    let (ex, mut rx) = start(0, 2);
    ex.submit(Model::Async, task(1, 0, &workload("spin", &[("ms", "30")])));
    let got = collect(&mut rx, 1).await;
    assert_eq!(got[0].status, OutcomeStatus::Ok);
    assert!(got[0].cpu_ns >= 30_000_000, "{:?}", got[0]);
    ex.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn timeouts_on_threads_and_async() {
    let (ex, mut rx) = start(1, 1);
    let mut t = task(1, 0, &workload("sleep", &[("ms", "50")]));
    t.timeout = Some(Duration::from_millis(10));
    ex.submit(Model::Thread, t);
    let mut t = task(2, 0, &workload("sleep", &[("ms", "3600000")]));
    t.timeout = Some(Duration::from_millis(20));
    ex.submit(Model::Async, t);
    let mut t = task(3, 0, &workload("noop", &[]));
    t.timeout = Some(Duration::from_secs(60));
    ex.submit(Model::Async, t);
    let got = collect(&mut rx, 3).await;
    let by_job = |j| got.iter().find(|d| d.job_id == j).expect("outcome");
    let th = by_job(1);
    assert_eq!(th.status, OutcomeStatus::TimedOut);
    assert!(
        th.error.contains("exceeding its 10 ms timeout"),
        "{}",
        th.error
    );
    assert!(th.error.contains("cannot be"), "{}", th.error);
    let asy = by_job(2);
    assert_eq!(asy.status, OutcomeStatus::TimedOut);
    assert!(asy.error.contains("20 ms timeout"), "{}", asy.error);
    assert_eq!(by_job(3).status, OutcomeStatus::Ok);
    ex.shutdown().await;
}

/// A thread slot's `exec` ends its command at the task's timeout or its
/// job's cancel, and answers at once (not when the command would have ended).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thread_slot_command_is_killed_at_its_timeout_and_its_cancel() {
    let (ex, mut rx) = start(2, 0);
    let sleeper = workload("exec", &[("cmd", "sleep 30 & sleep 30")]);
    let started = std::time::Instant::now();
    let mut t = task(1, 0, &sleeper);
    t.timeout = Some(Duration::from_millis(100));
    ex.submit(Model::Thread, t);
    ex.submit(Model::Thread, task(2, 0, &sleeper));
    let timed = collect(&mut rx, 1).await;
    assert_eq!(timed[0].job_id, 1);
    assert_eq!(timed[0].status, OutcomeStatus::TimedOut, "{:?}", timed[0]);
    assert!(timed[0].error.contains("were killed"), "{}", timed[0].error);
    ex.cancel_job(2);
    let cancelled = collect(&mut rx, 1).await;
    assert_eq!(
        cancelled[0].status,
        OutcomeStatus::Cancelled,
        "{:?}",
        cancelled[0]
    );
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "answered after {:?}",
        started.elapsed()
    );
    ex.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn drain_cancels_queued_waits_for_running_and_refuses_new_work() {
    let (ex, mut rx) = start(1, 0);
    ex.submit(
        Model::Thread,
        task(1, 0, &workload("sleep", &[("ms", "200")])),
    );
    let t = ex.thread.as_ref().expect("threads");
    wait_until("the sleep to start", || t.queue().running() == 1).await;
    let noop = workload("noop", &[]);
    for i in 1..6 {
        ex.submit(Model::Thread, task(1, i, &noop));
    }
    ex.drain().await;
    // Drain returned only after the running task answered.
    let got = collect(&mut rx, 6).await;
    let ok: Vec<_> = got
        .iter()
        .filter(|d| d.status == OutcomeStatus::Ok)
        .collect();
    assert_eq!(ok.len(), 1);
    assert_eq!(ok[0].index, 0);
    assert!(got
        .iter()
        .filter(|d| d.index > 0)
        .all(|d| d.status == OutcomeStatus::Cancelled && d.error == "worker draining"));
    ex.submit(Model::Thread, task(1, 9, &noop));
    let late = collect(&mut rx, 1).await;
    assert_eq!(
        (late[0].status, late[0].error.as_str()),
        (OutcomeStatus::Cancelled, "worker draining")
    );
    ex.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn absent_models_fail_at_once_and_shutdown_answers_running_async_tasks() {
    let (ex, mut rx) = start(0, 2);
    let noop = workload("noop", &[]);
    ex.submit(Model::Thread, task(1, 0, &noop));
    ex.submit(Model::Process, task(1, 1, &noop));
    let got = collect(&mut rx, 2).await;
    assert!(got.iter().all(|d| d.status == OutcomeStatus::Failed
        && d.error.contains("has no")
        && d.error.contains("slots")));
    ex.submit(
        Model::Async,
        task(2, 0, &workload("sleep", &[("ms", "3600000")])),
    );
    let a = ex.async_loop.as_ref().expect("async loop");
    wait_until("the sleep to start", || a.queue().running() == 1).await;
    ex.shutdown().await;
    let got = collect(&mut rx, 1).await;
    assert_eq!(
        (got[0].status, got[0].error.as_str()),
        (OutcomeStatus::Cancelled, SHUTTING_DOWN)
    );
}

#[test]
fn task_done_converts_to_the_wire_type() {
    let d = TaskDone {
        job_id: 1,
        index: 2,
        attempt: 3,
        model: Model::Thread,
        status: OutcomeStatus::Ok,
        value: Output::Int((7u128 << 64) | 9),
        error: String::new(),
        cpu_ns: 10,
        wall_ns: 11,
        ready_ns: 4,
    };
    let p = d.into_proto();
    assert_eq!(p.ready_ns, 4);
    assert_eq!((p.job_id, p.index, p.attempt), (1, 2, 3));
    assert_eq!(p.model, Model::Thread as i32);
    assert_eq!(p.status, OutcomeStatus::Ok as i32);
    assert_eq!(p.value.map(u128::from), Some((7u128 << 64) | 9));
    assert_eq!((p.cpu_ns, p.wall_ns), (10, 11));
}

#[test]
fn cpu_meter_clocks_first_long_and_sampled_tasks_and_scales_the_rest() {
    let mut m = CpuMeter::default();
    // The first task of a job is clocked: it reported 400 of 1,000 ns.
    assert!(m.wants_clock(1));
    assert_eq!(m.record(1_000, Some(400)), 400);
    // Short tasks of the same job after it are not; they report their wall
    // time at the job's sampled CPU share.
    for _ in 0..SAMPLE_EVERY - 1 {
        assert!(!m.wants_clock(1));
        assert_eq!(m.record(2_000, None), 800);
    }
    // Every SAMPLE_EVERY-th task is clocked again.
    assert!(m.wants_clock(1));
    assert_eq!(m.record(1_000, Some(1_000)), 1_000);
    assert!(!m.wants_clock(1));
    assert_eq!(
        m.record(1_000, None),
        700,
        "share of all samples: 1400/2000"
    );
    // After a long task the next one is clocked.
    assert!(!m.wants_clock(1));
    assert_eq!(m.record(LONG_TASK_NS, None), LONG_TASK_NS * 7 / 10);
    assert!(m.wants_clock(1));
    assert_eq!(m.record(LONG_TASK_NS, Some(10)), 10);
    // Another job starts over: clocked, with no share from the last job.
    assert!(m.wants_clock(2));
    assert_eq!(m.record(500, Some(900)), 900);
    assert!(!m.wants_clock(2));
    assert_eq!(
        m.record(500, None),
        500,
        "a share above 1 is capped at wall time"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sleeping_job_after_a_noop_job_on_the_same_thread_shows_little_cpu() {
    let (ex, mut rx) = start(1, 0);
    let noop = workload("noop", &[]);
    ex.submit_many(Model::Thread, tasks(1, 1_000, &noop));
    let sleep = workload("sleep", &[("ms", "20")]);
    ex.submit_many(Model::Thread, tasks(2, 3, &sleep));
    let got = collect(&mut rx, 1_003).await;
    let sleeps: Vec<_> = got.iter().filter(|d| d.job_id == 2).collect();
    assert_eq!(sleeps.len(), 3);
    assert!(
        sleeps
            .iter()
            .all(|d| d.status == OutcomeStatus::Ok && d.cpu_ns < d.wall_ns / 2),
        "{sleeps:?}"
    );
    ex.shutdown().await;
}

/// Noops flooding a model's slots, far more than a slot's batch holds.
const FLOOD: u64 = 20_000;

/// Executors with 2 thread or 64 async slots and [`FLOOD`] noops of job 4
/// submitted to `model`.
fn flooded(model: Model) -> (Executors, Answers) {
    let (ex, rx) = match model {
        Model::Thread => start(2, 0),
        Model::Async => start(0, 64),
        other => unreachable!("no flood on {other:?} slots here"),
    };
    ex.submit_many(model, tasks(4, FLOOD, &workload("noop", &[])));
    (ex, rx)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn drain_returns_only_after_every_batched_outcome_is_handed_over() {
    for model in [Model::Thread, Model::Async] {
        let (ex, mut rx) = flooded(model);
        ex.drain().await;
        // Nothing may still be held in a slot's batch: all of them are in
        // the channel already, each once.
        let got = rx.handed_over();
        assert_eq!(got.len(), FLOOD as usize, "{model:?}");
        let mut seen = vec![false; FLOOD as usize];
        for d in &got {
            assert!(
                d.status == OutcomeStatus::Ok
                    || (d.status == OutcomeStatus::Cancelled && d.error == DRAINING),
                "{d:?}"
            );
            assert!(!std::mem::replace(&mut seen[d.index as usize], true));
        }
        ex.shutdown().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_hands_over_every_outcome_it_owes() {
    for model in [Model::Thread, Model::Async] {
        let (ex, mut rx) = flooded(model);
        ex.shutdown().await;
        let got = collect(&mut rx, FLOOD as usize).await;
        assert!(got.iter().all(|d| d.status == OutcomeStatus::Ok
            || (d.status == OutcomeStatus::Cancelled && d.error == SHUTTING_DOWN)));
        assert!(rx.handed_over().is_empty(), "{model:?}: an outcome twice");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cancel_answers_inline_async_tasks_taken_but_not_started_once() {
    let (ex, mut rx) = start(0, 8);
    // 2 ms each: the loop's inline streak ends after the first, leaving
    // the rest taken but not started when the cancel arrives (or the cancel
    // finds them still queued).
    let spin = workload("spin", &[("ms", "2")]);
    ex.submit_many(Model::Async, tasks(1, 8, &spin));
    ex.cancel_job(1);
    let got = collect(&mut rx, 8).await;
    let mut seen = [false; 8];
    for d in &got {
        assert!(
            d.status == OutcomeStatus::Ok
                || (d.status == OutcomeStatus::Cancelled && d.error == JOB_CANCELLED),
            "{d:?}"
        );
        assert!(!std::mem::replace(&mut seen[d.index as usize], true));
    }
    ex.shutdown().await;
    assert!(rx.handed_over().is_empty(), "an outcome twice");
}
