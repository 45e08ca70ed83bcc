//! Bad input is refused with a non-zero exit and a message that names the
//! problem and what is allowed, and the coordinator keeps serving good jobs.
//! Also: workers of another protocol version, malformed worker links, and a
//! worker that cannot reach any coordinator.

mod common;

use brigade_proto::v1::worker_link_client::WorkerLinkClient;
use brigade_proto::v1::{
    coordinator_message, worker_message, Heartbeat, OkOutcomes, ResultBatch, WorkerHello,
    WorkerMessage,
};
use common::{assert_error, run_brigade, stderr, Cluster, Slots, SumSquares, CLI_DEADLINE};
use std::time::Duration;

/// Runs `brigade submit ARGS...`-like commands expecting a refusal: exit
/// `code`, every needle in stderr; then checks a good job still runs.
fn assert_refused(c: &Cluster, args: &[&str], code: i32, needles: &[&str]) {
    assert_error(&c.brigade(args), args, code, needles);
    assert_still_serves(c);
}

/// Runs `brigade ARGS...` with `env` (no cluster) expecting a refusal.
fn assert_cli_refused(args: &[&str], env: &[(&str, &str)], code: i32, needles: &[&str]) {
    assert_error(&run_brigade(args, env, CLI_DEADLINE), args, code, needles);
}

fn assert_still_serves(c: &Cluster) {
    let job = c.submit_json(&SumSquares::new(10, 10).args(&["--model", "async", "--wait"]));
    assert_eq!(job["state"], "succeeded", "job: {job}");
    assert_eq!(job["total"], "328350", "job: {job}");
}

#[test]
fn bad_submissions_name_the_problem_and_what_is_allowed() {
    let c = Cluster::with_workers(1, Slots::new(1, 1, 8), &["--max-tasks-per-job", "1000"]);
    let submit = |rest: &[&'static str]| -> Vec<&'static str> {
        let mut v = vec!["submit"];
        v.extend_from_slice(rest);
        v
    };

    assert_refused(
        &c,
        &submit(&["squares", "--range", "0..10"]),
        2,
        &[
            "unknown workload \"squares\"",
            "echo, exec, http-get, noop, sleep, spin, sum-squares",
        ],
    );
    assert_refused(
        &c,
        &submit(&["noop", "--range", "5..5"]),
        2,
        &["5..5", "START must be less than END"],
    );
    assert_refused(
        &c,
        &submit(&["noop", "--range", "9..5"]),
        2,
        &["9..5", "reversed", "START must be less than END"],
    );
    assert_refused(&c, &submit(&["noop", "--range", "0-5"]), 2, &["START..END"]);
    assert_refused(
        &c,
        &submit(&["noop", "--range", "0..10", "--chunk", "0"]),
        2,
        &["chunk must be at least 1"],
    );
    assert_refused(
        &c,
        &submit(&["noop", "--range", "0..5000", "--chunk", "1"]),
        2,
        &[
            "5000 tasks",
            "limit of 1000",
            "--chunk (at least 5)",
            "--max-tasks-per-job",
        ],
    );
    // At the limit is fine.
    let job = c.submit_json(&[
        "noop", "--range", "0..1000", "--chunk", "1", "--model", "async", "--wait",
    ]);
    assert_eq!(job["state"], "succeeded", "job: {job}");
    assert_eq!(job["tasks_total"], 1000, "job: {job}");

    assert_refused(
        &c,
        &submit(&["spin", "--range", "0..10"]),
        2,
        &["spin needs argument ms", "milliseconds"],
    );
    assert_refused(
        &c,
        &submit(&["spin", "--range", "0..10", "--arg", "ms=abc"]),
        2,
        &["ms=\"abc\"", "invalid", "expected an integer"],
    );
    assert_refused(
        &c,
        &submit(&[
            "spin", "--range", "0..10", "--arg", "ms=1", "--arg", "speed=9",
        ]),
        2,
        &["no argument \"speed\"", "allowed: ms"],
    );
    assert_refused(
        &c,
        &submit(&["noop", "--range", "0..10", "--model", "fiber"]),
        2,
        &["unknown model \"fiber\"", "process, thread, async"],
    );
    assert_refused(
        &c,
        &submit(&["noop", "--range", "0..10", "--kind", "gpu"]),
        2,
        &["unknown kind \"gpu\"", "cpu, io"],
    );
    assert_refused(
        &c,
        &submit(&["noop", "--range", "0..10", "--arg", "foo"]),
        2,
        &["\"foo\"", "KEY=VALUE"],
    );
    assert_refused(&c, &["job", "999"], 2, &["no job with id 999", "NotFound"]);
    assert_refused(&c, &["results", "999"], 2, &["no job with id 999"]);
    assert_refused(&c, &["cancel", "999"], 2, &["no job with id 999"]);
}

#[test]
fn unreachable_or_invalid_coordinator_urls_say_what_to_do() {
    let none = [("BRIGADE_COORDINATOR", "http://127.0.0.1:1")];
    for args in [
        &["jobs"][..],
        &["submit", "noop", "--range", "0..10"][..],
        &["status"][..],
    ] {
        let o = run_brigade(args, &none, CLI_DEADLINE);
        let err = stderr(&o);
        assert_eq!(o.status.code(), Some(3), "`brigade {args:?}`: {err}");
        assert!(
            err.contains("could not reach the coordinator at http://127.0.0.1:1")
                && err.contains("--coordinator or BRIGADE_COORDINATOR"),
            "`brigade {args:?}` stderr: {err}"
        );
    }
    // The flag wins over the environment.
    let o = run_brigade(
        &["jobs", "--coordinator", "http://127.0.0.1:1"],
        &[("BRIGADE_COORDINATOR", "http://127.0.0.1:2")],
        CLI_DEADLINE,
    );
    assert!(
        stderr(&o).contains("http://127.0.0.1:1"),
        "stderr: {}",
        stderr(&o)
    );

    assert_cli_refused(
        &["jobs", "--coordinator", "http://[::"],
        &[],
        2,
        &["invalid coordinator URL \"http://[::\"", "http://HOST:PORT"],
    );
    assert_cli_refused(
        &["jobs", "--coordinator", "coordinator-host"],
        &[],
        2,
        &[
            "invalid coordinator URL \"coordinator-host\"",
            "http://HOST:PORT",
        ],
    );
}

#[test]
fn out_of_range_spin_windows_and_worker_loss_limits_are_refused_with_the_range() {
    let range = ["--spin-us", "0..=10000"];
    assert_cli_refused(&["jobs", "--spin-us", "10001"], &[], 2, &range);
    assert_cli_refused(&["worker", "--spin-us=-1"], &[], 2, &["--spin-us"]);
    assert_cli_refused(&["jobs"], &[("BRIGADE_SPIN_US", "lots")], 2, &["--spin-us"]);
    assert_cli_refused(
        &["coordinator", "--max-worker-losses", "1001"],
        &[],
        2,
        &["--max-worker-losses", "0..=1000"],
    );
}

/// `brigade worker` with `slots` and `extra` flags, linking to a port no
/// coordinator listens on.
fn worker_without_coordinator(slots: Slots, extra: &[&str]) -> std::process::Output {
    let head = ["worker", "--coordinator", "http://127.0.0.1:1"].map(String::from);
    let args: Vec<String> = head
        .into_iter()
        .chain(extra.iter().map(|s| s.to_string()))
        .chain(slots.args())
        .collect();
    run_brigade(&args, &[], Duration::from_secs(60))
}

#[test]
fn a_worker_that_reaches_no_coordinator_gives_up_with_a_clear_message() {
    let o = worker_without_coordinator(Slots::new(1, 0, 0), &["--connect-timeout-s", "1"]);
    let err = stderr(&o);
    assert_eq!(o.status.code(), Some(1), "stderr: {err}");
    let last = err.lines().last().unwrap_or_default();
    assert!(
        last.starts_with("error: ")
            && last.contains("no coordinator answered at http://127.0.0.1:1"),
        "the last stderr line should be the error naming the URL: {err}"
    );

    let o = worker_without_coordinator(Slots::new(0, 0, 0), &[]);
    let err = stderr(&o);
    assert_eq!(o.status.code(), Some(2), "a usage error; stderr: {err}");
    assert!(
        err.contains("at least one slot") && err.contains("--procs, --threads or --async"),
        "stderr: {err}"
    );
}

fn hello(protocol_version: u32) -> WorkerMessage {
    WorkerMessage {
        msg: Some(worker_message::Msg::Hello(WorkerHello {
            protocol_version,
            name: "stranger".into(),
            hostname: "test".into(),
            pid: std::process::id(),
            process_slots: 1,
            process_credits: 1,
            ..Default::default()
        })),
    }
}

/// A cluster with one real worker, and a raw worker-link client to it.
async fn cluster_and_raw_link() -> (Cluster, WorkerLinkClient<tonic::transport::Channel>) {
    let c = tokio::task::spawn_blocking(|| Cluster::with_workers(1, Slots::new(0, 0, 4), &[]))
        .await
        .expect("cluster starts");
    let link = WorkerLinkClient::connect(c.url().to_string())
        .await
        .expect("connect to the coordinator");
    (c, link)
}

#[tokio::test(flavor = "current_thread")]
async fn worker_links_with_another_protocol_or_no_hello_are_refused() {
    let (c, mut link) = cluster_and_raw_link().await;

    let status = link
        .attach(futures::stream::iter(vec![hello(999)]))
        .await
        .expect_err("a worker of protocol 999 must be refused");
    assert_eq!(status.code(), tonic::Code::FailedPrecondition, "{status:?}");
    let want_other = format!(
        "protocol version 999, this coordinator speaks version {}",
        brigade_proto::PROTOCOL_VERSION
    );
    assert!(
        status.message().contains(&want_other) && status.message().contains("\"stranger\""),
        "message should name both versions and the worker: {}",
        status.message()
    );

    let heartbeat = WorkerMessage {
        msg: Some(worker_message::Msg::Heartbeat(Heartbeat { seq: 1 })),
    };
    let status = link
        .attach(futures::stream::iter(vec![heartbeat]))
        .await
        .expect_err("a link that does not start with hello must be refused");
    assert_eq!(status.code(), tonic::Code::InvalidArgument, "{status:?}");
    assert!(
        status.message().contains("first message") && status.message().contains("hello"),
        "{}",
        status.message()
    );

    let status = link
        .attach(futures::stream::iter(Vec::<WorkerMessage>::new()))
        .await
        .expect_err("an empty link must be refused");
    assert_eq!(status.code(), tonic::Code::InvalidArgument, "{status:?}");

    let mut no_slots = hello(brigade_proto::PROTOCOL_VERSION);
    if let Some(worker_message::Msg::Hello(h)) = &mut no_slots.msg {
        h.process_slots = 0;
    }
    let status = link
        .attach(futures::stream::iter(vec![no_slots]))
        .await
        .expect_err("a worker with no slots must be refused");
    assert_eq!(status.code(), tonic::Code::InvalidArgument, "{status:?}");
    assert!(status.message().contains("at least one slot"), "{status:?}");

    // None of them joined, and the real worker still serves.
    tokio::task::spawn_blocking(move || {
        let workers = c.workers_json();
        assert_eq!(workers.len(), 1, "workers: {workers:?}");
        assert_eq!(workers[0]["name"], "w1");
        assert_still_serves(&c);
    })
    .await
    .expect("checks pass");
}

#[tokio::test(flavor = "current_thread")]
async fn a_worker_sending_ragged_result_columns_is_disconnected_with_the_reason() {
    let (c, mut link) = cluster_and_raw_link().await;
    let (tx, rx) = futures::channel::mpsc::unbounded();
    tx.unbounded_send(hello(brigade_proto::PROTOCOL_VERSION))
        .expect("queue hello");
    let mut inbound = link
        .attach(rx)
        .await
        .expect("a good hello is accepted")
        .into_inner();
    let welcome = inbound.message().await.expect("welcome arrives");
    assert!(
        matches!(
            welcome.and_then(|m| m.msg),
            Some(coordinator_message::Msg::Welcome(_))
        ),
        "the first message down a link is the welcome"
    );
    // Two task indices but one value: the columns do not line up.
    let ragged = OkOutcomes {
        job_id: 1,
        model: 1,
        index_delta: vec![0, 1],
        attempt: vec![1, 1],
        value_lo: vec![0],
        cpu_ns: vec![1, 1],
        wall_ns: vec![1, 1],
        ..Default::default()
    };
    tx.unbounded_send(WorkerMessage {
        msg: Some(worker_message::Msg::Results(ResultBatch {
            outcomes: Vec::new(),
            ok: vec![ragged],
        })),
    })
    .expect("queue results");
    let status = loop {
        match inbound.message().await {
            Ok(Some(_)) => continue, // heartbeats
            Ok(None) => panic!("the link ended without saying why"),
            Err(status) => break status,
        }
    };
    assert_eq!(status.code(), tonic::Code::Unavailable, "{status:?}");
    assert!(
        status
            .message()
            .contains("protocol error: result columns of job 1 differ in length: 2 indices")
            && status.message().contains("1 values"),
        "{}",
        status.message()
    );
    drop(tx);
    tokio::task::spawn_blocking(move || assert_still_serves(&c))
        .await
        .expect("the coordinator still serves");
}

#[test]
fn an_inputs_job_with_a_bad_spec_is_refused_before_its_upload_ends() {
    let c = Cluster::with_workers(1, Slots::new(0, 1, 8), &[]);
    for (args, needle) in [
        (
            &["submit", "squares", "--inputs", "-"][..],
            "unknown workload \"squares\"",
        ),
        (
            &["submit", "spin", "--inputs", "-", "--arg", "ms=x"][..],
            "ms",
        ),
    ] {
        // Standard input stays open: the upload never ends by itself.
        let mut cmd = common::brigade_command(args);
        cmd.env("BRIGADE_COORDINATOR", c.url())
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped());
        let mut child = cmd.spawn().expect("brigade runs");
        let stdin = child.stdin.take();
        let out = common::output_within(child, CLI_DEADLINE)
            .unwrap_or_else(|e| panic!("`brigade {}` hung on an open upload: {e}", args.join(" ")));
        drop(stdin);
        assert_error(&out, args, 2, &[needle]);
    }
    assert_still_serves(&c);
}

#[test]
fn oversized_names_and_arguments_are_refused_naming_the_limit_without_echoing_them() {
    let c = Cluster::with_workers(1, Slots::new(1, 1, 8), &[]);
    let long_name = "n".repeat(5_000);
    let long_value = format!("ms={}", "9".repeat(5_000));
    let long_workload = "w".repeat(300);
    for (args, needles) in [
        (
            vec![
                "submit",
                "noop",
                "--range",
                "0..1",
                "--name",
                long_name.as_str(),
            ],
            ["the job name is 5000 bytes", "limit of 4096 bytes"],
        ),
        (
            vec![
                "submit",
                "sleep",
                "--range",
                "0..1",
                "--arg",
                long_value.as_str(),
            ],
            ["argument \"ms\" is 5000 bytes", "limit of 4096 bytes"],
        ),
        (
            vec!["submit", long_workload.as_str(), "--range", "0..1"],
            ["the workload name is 300 bytes", "limit of 256 bytes"],
        ),
    ] {
        let o = c.brigade(&args);
        assert_error(&o, &args, 2, &needles);
        let err = stderr(&o);
        assert!(err.len() < 1_000, "the refusal echoes the input: {err}");
        assert!(err.contains("InvalidArgument"), "{err}");
    }
    assert_still_serves(&c);
}
