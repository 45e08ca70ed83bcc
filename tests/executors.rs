//! The process executor against the real `brigade executor` child: exact
//! results, a child SIGKILLed mid-task, per-task timeouts, and that shutdown
//! leaves no child behind.

mod common;

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use brigade_proto::v1::{Model, OutcomeStatus};
use brigade_proto::Output;
use brigade_worker::executors::{ExecutorConfig, Executors, TaskDone, TaskRun};
use brigade_worker::workload::{TaskInput, Workload};
use common::{proc_gone, proc_stat, BIN};
use tokio::sync::mpsc::{unbounded_channel, UnboundedReceiver};

/// The outcome channel, one outcome at a time (they travel in batches).
struct Answers {
    rx: UnboundedReceiver<Vec<TaskDone>>,
    ready: std::collections::VecDeque<TaskDone>,
}

fn start(procs: usize) -> (Executors, Answers) {
    let (tx, rx) = unbounded_channel();
    let cfg = ExecutorConfig {
        procs,
        threads: 0,
        async_slots: 0,
        executor_program: PathBuf::from(BIN),
        executor_args: vec!["executor".into()],
    };
    let answers = Answers {
        rx,
        ready: Default::default(),
    };
    (Executors::start(cfg, tx).expect("executors start"), answers)
}

fn workload(name: &str, args: &[(&str, &str)]) -> Arc<Workload> {
    let args: HashMap<String, String> = args
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    Arc::new(Workload::from_spec(name, &args).expect("valid spec"))
}

fn task(job_id: u64, index: u64, w: &Arc<Workload>) -> TaskRun {
    TaskRun {
        job_id,
        attempt: 1,
        input: TaskInput::range(index, 0, 0),
        workload: w.clone(),
        timeout: None,
    }
}

async fn next(rx: &mut Answers) -> TaskDone {
    loop {
        if let Some(d) = rx.ready.pop_front() {
            return d;
        }
        let batch = tokio::time::timeout(Duration::from_secs(60), rx.rx.recv())
            .await
            .expect("an outcome within 60 s")
            .expect("outcome channel open");
        rx.ready.extend(batch);
    }
}

/// Waits (polling, with a deadline) until `pid` has burnt `ticks` of CPU:
/// proof that it is running the spin task, not just starting up.
async fn wait_until_busy(pid: u32, ticks: u64) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while proc_stat(pid).map_or(0, |s| s.cpu_ticks) < ticks {
        assert!(Instant::now() < deadline, "executor {pid} never got busy");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn process_slots_sum_w_cpu_exactly() {
    let (ex, mut rx) = start(2);
    assert_eq!(ex.child_pids().len(), 2);
    let w = workload("sum-squares", &[]);
    for c in 0..40u64 {
        let mut t = task(1, c, &w);
        t.input.start = c * 1_500_000;
        t.input.end = (c + 1) * 1_500_000;
        ex.submit(Model::Process, t);
    }
    let mut total = 0u128;
    let mut seen = [false; 40];
    for _ in 0..40 {
        let d = next(&mut rx).await;
        assert_eq!(
            (d.status, d.model),
            (OutcomeStatus::Ok, Model::Process),
            "{d:?}"
        );
        assert!(d.cpu_ns > 0 && d.wall_ns > 0, "{d:?}");
        assert!(!std::mem::replace(&mut seen[d.index as usize], true));
        total += d.value.as_int().expect("an integer output");
    }
    assert_eq!(total, 71_999_998_200_000_010_000_000);
    let pids = ex.child_pids();
    ex.shutdown().await;
    for pid in pids {
        assert!(proc_gone(pid), "executor {pid} survived shutdown");
    }
}

/// Receives `n` outcomes, each task once, and checks each with `check`.
async fn each_once(rx: &mut Answers, n: u64, check: impl Fn(&TaskDone)) {
    let mut seen = vec![false; n as usize];
    for _ in 0..n {
        let d = next(rx).await;
        assert!(
            !std::mem::replace(&mut seen[d.index as usize], true),
            "twice: {d:?}"
        );
        check(&d);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn short_tasks_share_frames_and_each_comes_back_once_with_its_value() {
    let (ex, mut rx) = start(2);
    let w = workload("noop", &[]);
    let n = 4_000u64;
    ex.submit_many(Model::Process, (0..n).map(|i| task(7, i, &w)));
    each_once(&mut rx, n, |d| {
        let want = (OutcomeStatus::Ok, Output::Int(u128::from(d.index)));
        assert_eq!((d.status, d.value.clone()), want, "{d:?}");
    })
    .await;
    let (frames, tasks) = ex.process_frames();
    assert_eq!(tasks, n, "every task went to a child once");
    // The first task of the job on each slot goes alone (not yet timed);
    // after that, noops fill frames.
    assert!(frames * 4 < n, "{frames} frames for {n} noops");
    ex.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_child_dying_mid_frame_fails_only_the_task_that_killed_it() {
    let (ex, mut rx) = start(1);
    let old = ex.child_pids()[0];
    let w = workload("spin", &[("ms", "0"), ("crash-index", "150")]);
    let n = 400u64;
    ex.submit_many(Model::Process, (0..n).map(|i| task(8, i, &w)));
    each_once(&mut rx, n, |d| {
        if d.index == 150 {
            assert_eq!(d.status, OutcomeStatus::ExecutorDied, "{d:?}");
            assert!(d.error.contains("signal 6"), "{}", d.error);
        } else {
            let want = (OutcomeStatus::Ok, Output::Int(u128::from(d.index)));
            assert_eq!((d.status, d.value.clone()), want, "{d:?}");
        }
    })
    .await;
    let (frames, _) = ex.process_frames();
    assert!(
        frames < n / 2,
        "task 150 died in a frame of several: {frames} frames"
    );
    assert_ne!(ex.child_pids(), vec![old], "the child was replaced");
    ex.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_child_killed_mid_task_fails_that_task_and_is_replaced() {
    let (ex, mut rx) = start(1);
    let old = ex.child_pids()[0];
    ex.submit(
        Model::Process,
        task(1, 0, &workload("spin", &[("ms", "5000")])),
    );
    wait_until_busy(old, 10).await;
    // SAFETY: signalling our own child by pid.
    assert_eq!(unsafe { libc::kill(old as i32, libc::SIGKILL) }, 0);
    let d = next(&mut rx).await;
    assert_eq!(d.status, OutcomeStatus::ExecutorDied, "{d:?}");
    assert!(
        d.error.contains(&format!("executor process {old} died")) && d.error.contains("signal 9"),
        "{}",
        d.error
    );
    // The replacement takes the next task.
    ex.submit(Model::Process, task(1, 1, &workload("noop", &[])));
    let d = next(&mut rx).await;
    assert_eq!(
        (d.status, d.value.clone()),
        (OutcomeStatus::Ok, Output::Int(1)),
        "{d:?}"
    );
    let pids = ex.child_pids();
    assert_eq!(pids.len(), 1);
    assert_ne!(pids[0], old);
    ex.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_timeout_kills_the_child_and_a_fresh_one_carries_on() {
    let (ex, mut rx) = start(1);
    let old = ex.child_pids()[0];
    let mut t = task(2, 0, &workload("spin", &[("ms", "60000")]));
    t.timeout = Some(Duration::from_millis(200));
    ex.submit(Model::Process, t);
    let d = next(&mut rx).await;
    assert_eq!(d.status, OutcomeStatus::TimedOut, "{d:?}");
    assert!(d.error.contains("200 ms timeout"), "{}", d.error);
    assert!(
        proc_gone(old),
        "the timed-out executor {old} is still alive"
    );
    let mut t = task(2, 1, &workload("sum-squares", &[]));
    t.input.end = 4;
    t.timeout = Some(Duration::from_secs(60));
    ex.submit(Model::Process, t);
    let d = next(&mut rx).await;
    assert_eq!(
        (d.status, d.value.clone()),
        (OutcomeStatus::Ok, Output::Int(14)),
        "{d:?}"
    );
    assert_ne!(ex.child_pids(), vec![old]);
    ex.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn process_slots_get_over_http_and_report_failures() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let (stop, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let target = tokio::spawn(brigade_worker::io_target::serve(listener, async {
        let _ = stop_rx.await;
    }));
    let (ex, mut rx) = start(2);
    let fast = workload(
        "http-get",
        &[
            ("url", &format!("http://127.0.0.1:{port}/fast")),
            ("expect-len", "1024"),
        ],
    );
    for i in 0..20 {
        ex.submit(Model::Process, task(3, i, &fast));
    }
    for _ in 0..20 {
        let d = next(&mut rx).await;
        assert_eq!(
            (d.status, d.value.clone()),
            (OutcomeStatus::Ok, Output::Int(1024)),
            "{d:?}"
        );
    }
    let missing = workload(
        "http-get",
        &[("url", &format!("http://127.0.0.1:{port}/nope"))],
    );
    ex.submit(Model::Process, task(4, 0, &missing));
    let d = next(&mut rx).await;
    assert_eq!(d.status, OutcomeStatus::Failed);
    assert!(d.error.contains("status 404"), "{}", d.error);
    ex.shutdown().await;
    let _ = stop.send(());
    target.await.unwrap().unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_answers_the_running_task_and_kills_its_child() {
    let (ex, mut rx) = start(1);
    let pid = ex.child_pids()[0];
    ex.submit(
        Model::Process,
        task(5, 0, &workload("spin", &[("ms", "60000")])),
    );
    wait_until_busy(pid, 5).await;
    ex.shutdown().await;
    let d = next(&mut rx).await;
    assert_eq!(d.status, OutcomeStatus::Cancelled, "{d:?}");
    assert!(proc_gone(pid));
}

#[tokio::test]
async fn a_missing_executor_program_is_an_error_at_start() {
    let (tx, _rx) = unbounded_channel();
    let cfg = ExecutorConfig {
        procs: 1,
        threads: 0,
        async_slots: 0,
        executor_program: PathBuf::from("/nonexistent/brigade"),
        executor_args: vec![],
    };
    let e = Executors::start(cfg, tx).err().expect("start fails");
    assert!(e.to_string().contains("/nonexistent/brigade"), "{e}");
}
