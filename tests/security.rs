//! Who may do what, checked against real processes: every RPC of both
//! services refused without the right credential (with the right status
//! code), jobs hidden from other clients, TLS and mTLS end to end with
//! `brigade certs` output, a plaintext client against a TLS port, the
//! refusal to listen beyond loopback unprotected, and `--allow-exec`
//! workers refusing a coordinator that does not authenticate them.

mod common;

use std::path::{Path, PathBuf};
use std::time::Duration;

use brigade_proto::connect::BearerToken;
use brigade_proto::v1::coordinator_client::CoordinatorClient;
use brigade_proto::v1::worker_link_client::WorkerLinkClient;
use brigade_proto::v1::{
    worker_message, EventKind, InputsUpload, JobRef, JobSpec, JobState, ListJobsRequest,
    ListWorkersRequest, Model, PurgeJobsRequest, RunJobRequest, StatusRequest, SubmitJobRequest,
    WatchEventsRequest, WorkerHello, WorkerMessage,
};
use common::{
    assert_error, assert_success, id_of, parse_json, run_brigade, stdout, strs, wait_until,
    Cluster, Slots, TempDir, CLI_DEADLINE, DEADLINE,
};
use tonic::service::interceptor::InterceptedService;
use tonic::transport::Channel;
use tonic::Code;

type Coord = CoordinatorClient<InterceptedService<Channel, BearerToken>>;
type Link = WorkerLinkClient<InterceptedService<Channel, BearerToken>>;

/// `brigade token create --role ROLE --name NAME --auth-file FILE`: the
/// secret it printed, also written to `DIR/NAME.token`.
fn create_token(dir: &Path, role: &str, name: &str) -> (String, PathBuf) {
    let auth = dir.join("auth");
    let args = [
        "token",
        "create",
        "--role",
        role,
        "--name",
        name,
        "--auth-file",
        auth.to_str().expect("utf-8 path"),
    ];
    let o = run_brigade(&args, &[], CLI_DEADLINE);
    assert_success(&args, &o);
    let secret = stdout(&o).trim().to_string();
    assert!(secret.starts_with("brigade_"), "{secret}");
    let file = dir.join(format!("{name}.token"));
    std::fs::write(&file, &secret).expect("write token file");
    (secret, file)
}

struct Tokens {
    alice: String,
    bob: String,
    admin: String,
    worker: String,
    worker_file: PathBuf,
    auth: PathBuf,
}

fn tokens(dir: &Path) -> Tokens {
    let (alice, _) = create_token(dir, "client", "alice");
    let (bob, _) = create_token(dir, "client", "bob");
    let (admin, _) = create_token(dir, "admin", "root");
    let (worker, worker_file) = create_token(dir, "worker", "w1");
    Tokens {
        alice,
        bob,
        admin,
        worker,
        worker_file,
        auth: dir.join("auth"),
    }
}

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime")
}

async fn channel(url: &str) -> Channel {
    Channel::from_shared(url.to_string())
        .expect("url")
        .connect()
        .await
        .expect("connect")
}

async fn coord(url: &str, token: Option<&str>) -> Coord {
    CoordinatorClient::with_interceptor(channel(url).await, BearerToken::new(token).unwrap())
}

async fn link(url: &str, token: Option<&str>) -> Link {
    WorkerLinkClient::with_interceptor(channel(url).await, BearerToken::new(token).unwrap())
}

fn small_job() -> JobSpec {
    JobSpec {
        workload: "sum-squares".into(),
        range_start: 0,
        range_end: 100,
        chunk: 10,
        model: Model::Thread as i32,
        ..Default::default()
    }
}

fn hello() -> WorkerMessage {
    WorkerMessage {
        msg: Some(worker_message::Msg::Hello(WorkerHello {
            protocol_version: brigade_proto::PROTOCOL_VERSION,
            name: "rogue".into(),
            thread_slots: 1,
            thread_credits: 1,
            ..Default::default()
        })),
    }
}

/// The code a call ended with (OK when it was accepted).
fn code_of<T>(r: Result<T, tonic::Status>) -> (Code, String) {
    match r {
        Ok(_) => (Code::Ok, String::new()),
        Err(s) => (s.code(), s.message().to_string()),
    }
}

/// Every RPC of the Coordinator service, called with `token` on job `job`;
/// (rpc name, status code, message) each.
async fn every_client_rpc(
    url: &str,
    token: Option<&str>,
    job: u64,
) -> Vec<(&'static str, Code, String)> {
    let mut c = coord(url, token).await;
    let r = JobRef {
        job_id: job,
        ..JobRef::default()
    };
    let upload = futures::stream::iter(vec![InputsUpload {
        spec: Some(JobSpec {
            workload: "echo".into(),
            chunk: 1,
            ..Default::default()
        }),
        items: vec![b"x".to_vec()],
        end: true,
        total: 1,
    }]);
    vec![
        (
            "SubmitJob",
            code_of(
                c.submit_job(SubmitJobRequest {
                    spec: Some(small_job()),
                })
                .await,
            ),
        ),
        (
            "SubmitWithInputs",
            code_of(c.submit_with_inputs(upload).await),
        ),
        ("GetJob", code_of(c.get_job(r).await)),
        ("WatchJob", code_of(c.watch_job(r).await)),
        (
            "ListJobs",
            code_of(c.list_jobs(ListJobsRequest { all: true }).await),
        ),
        ("GetResults", code_of(c.get_results(r).await)),
        (
            "RunJob",
            code_of(
                c.run_job(RunJobRequest {
                    spec: Some(small_job()),
                    results: true,
                })
                .await,
            ),
        ),
        ("CancelJob", code_of(c.cancel_job(r).await)),
        ("ListFailedTasks", code_of(c.list_failed_tasks(r).await)),
        (
            "PurgeJobs",
            code_of(
                c.purge_jobs(PurgeJobsRequest {
                    all: true,
                    older_than_ms: 0,
                })
                .await,
            ),
        ),
        (
            "ListWorkers",
            code_of(c.list_workers(ListWorkersRequest {}).await),
        ),
        ("GetStatus", code_of(c.get_status(StatusRequest {}).await)),
        (
            "WatchEvents",
            code_of(
                c.watch_events(WatchEventsRequest {
                    follow: false,
                    all: true,
                })
                .await,
            ),
        ),
    ]
    .into_iter()
    .map(|(name, (code, msg))| (name, code, msg))
    .collect()
}

/// The one WorkerLink RPC, Attach, with `token`.
async fn attach(url: &str, token: Option<&str>) -> (Code, String) {
    let mut l = link(url, token).await;
    code_of(l.attach(futures::stream::iter(vec![hello()])).await)
}

#[test]
fn every_rpc_refuses_the_wrong_credential_with_the_right_code() {
    let dir = TempDir::new("auth");
    let t = tokens(dir.path());
    let auth = t.auth.to_str().unwrap();
    let mut c = Cluster::start(&["--auth-file", auth]);
    let worker_token = t.worker_file.to_str().unwrap();
    c.spawn_worker_with("w1", Slots::new(0, 2, 4), &["--token-file", worker_token]);
    let url = c.url().to_string();
    let rt = rt();

    // Alice's job, run to its end, and a worker linked.
    let alice_job = rt.block_on(async {
        let mut a = coord(&url, Some(&t.alice)).await;
        let deadline = std::time::Instant::now() + DEADLINE;
        while a
            .list_workers(ListWorkersRequest {})
            .await
            .expect("alice lists workers")
            .into_inner()
            .workers
            .is_empty()
        {
            assert!(
                std::time::Instant::now() < deadline,
                "the worker never linked"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let job = a
            .submit_job(SubmitJobRequest {
                spec: Some(small_job()),
            })
            .await
            .expect("alice submits")
            .into_inner()
            .job_id;
        let mut watch = a
            .watch_job(JobRef {
                job_id: job,
                ..JobRef::default()
            })
            .await
            .unwrap()
            .into_inner();
        let mut last = None;
        while let Some(info) = watch.message().await.expect("watch") {
            last = Some(info);
        }
        let last = last.expect("a status");
        assert_eq!(last.state, JobState::Succeeded as i32, "{last:?}");
        assert_eq!(last.owner, "alice");
        job
    });

    let forged = format!("brigade_{}", "A".repeat(43));
    type Case<'a> = (&'a str, Option<&'a str>, Code, &'a str);
    let cases: [Case; 4] = [
        (
            "no credentials",
            None,
            Code::Unauthenticated,
            "requires a client (or admin) token",
        ),
        (
            "a wrong token",
            Some(&forged),
            Code::Unauthenticated,
            "not valid",
        ),
        (
            "a worker token",
            Some(&t.worker),
            Code::PermissionDenied,
            "worker token",
        ),
        (
            "another client's token",
            Some(&t.bob),
            Code::NotFound,
            "no job with id",
        ),
    ];
    for (what, token, want, needle) in cases {
        let calls = rt.block_on(every_client_rpc(&url, token, alice_job));
        assert_eq!(calls.len(), 13, "every RPC of the Coordinator service");
        for (rpc, code, msg) in calls {
            if let Some(secret) = token {
                assert!(
                    !msg.contains(secret),
                    "{rpc} with {what} echoed the secret: {msg}"
                );
            }
            let want = if what == "another client's token" {
                // Bob may submit and look around; he cannot touch Alice's
                // job nor list everyone's.
                match rpc {
                    "GetJob" | "WatchJob" | "GetResults" | "CancelJob" | "ListFailedTasks" => want,
                    "ListJobs" | "PurgeJobs" | "WatchEvents" => Code::PermissionDenied,
                    _ => Code::Ok,
                }
            } else {
                want
            };
            assert_eq!(code, want, "{rpc} with {what}: {msg}");
            if want == Code::NotFound {
                assert_eq!(
                    msg,
                    format!("no job with id {alice_job}"),
                    "{rpc}: same as no job at all"
                );
            } else if want != Code::Ok && what != "another client's token" {
                assert!(msg.contains(needle), "{rpc} with {what}: {msg}");
            }
        }
    }

    // The worker link: a worker token only.
    let link_cases: [(&str, Option<&str>, Code, &str); 4] = [
        (
            "no credentials",
            None,
            Code::Unauthenticated,
            "requires a worker token",
        ),
        (
            "a wrong token",
            Some(&forged),
            Code::Unauthenticated,
            "not valid",
        ),
        (
            "a client token",
            Some(&t.alice),
            Code::PermissionDenied,
            "presented is a client token",
        ),
        (
            "an admin token",
            Some(&t.admin),
            Code::PermissionDenied,
            "presented is an admin token",
        ),
    ];
    for (what, token, want, needle) in link_cases {
        let (code, msg) = rt.block_on(attach(&url, token));
        assert_eq!(code, want, "Attach with {what}: {msg}");
        assert!(msg.contains(needle), "Attach with {what}: {msg}");
    }

    rt.block_on(async {
        // Bob's list holds his own jobs only (the RPC table submitted some).
        let mut b = coord(&url, Some(&t.bob)).await;
        let bobs = b
            .list_jobs(ListJobsRequest { all: false })
            .await
            .unwrap()
            .into_inner()
            .jobs;
        assert!(
            !bobs.is_empty() && bobs.iter().all(|j| j.owner == "bob"),
            "{bobs:?}"
        );
        // Alice sees hers; the admin sees everyone's with `all`, and may
        // read and cancel Alice's job.
        let mut a = coord(&url, Some(&t.alice)).await;
        let hers = a
            .list_jobs(ListJobsRequest { all: false })
            .await
            .unwrap()
            .into_inner()
            .jobs;
        assert_eq!(
            hers.iter().map(|j| j.job_id).collect::<Vec<_>>(),
            [alice_job]
        );
        let mut root = coord(&url, Some(&t.admin)).await;
        let all = root
            .list_jobs(ListJobsRequest { all: true })
            .await
            .unwrap()
            .into_inner()
            .jobs;
        assert_eq!(all.len(), hers.len() + bobs.len(), "{all:?}");
        let r = JobRef {
            job_id: alice_job,
            ..JobRef::default()
        };
        assert_eq!(root.get_job(r).await.unwrap().into_inner().owner, "alice");
        let mut rows = root.get_results(r).await.unwrap().into_inner();
        let mut n = 0;
        while let Some(chunk) = rows.message().await.unwrap() {
            n += chunk.index.len();
        }
        assert_eq!(n, 10, "the admin reads Alice's 10 results");
        root.cancel_job(r)
            .await
            .expect("the admin may cancel (a no-op on an ended job)");

        // Events: each client sees its own jobs' (and every worker's), the
        // admin everyone's with `all`.
        let events = |mut c: Coord, all: bool| async move {
            let mut stream = c
                .watch_events(WatchEventsRequest { follow: false, all })
                .await
                .expect("events")
                .into_inner();
            let mut seen = Vec::new();
            while let Some(e) = stream.message().await.expect("an event") {
                seen.push(e);
            }
            seen
        };
        let job_owners = |seen: &[brigade_proto::v1::Event]| {
            let mut o: Vec<String> = seen
                .iter()
                .filter(|e| e.job_id != 0)
                .map(|e| e.owner.clone())
                .collect();
            o.dedup();
            o
        };
        let linked = |seen: &[brigade_proto::v1::Event]| {
            seen.iter()
                .any(|e| e.kind == EventKind::WorkerLinked as i32 && e.worker == "w1")
        };
        let hers = events(coord(&url, Some(&t.alice)).await, false).await;
        assert_eq!(job_owners(&hers), ["alice"], "{hers:?}");
        assert!(hers
            .iter()
            .any(|e| e.job_id == alice_job && e.kind == EventKind::JobEnded as i32));
        assert!(linked(&hers), "{hers:?}");
        let his = events(coord(&url, Some(&t.bob)).await, false).await;
        assert_eq!(job_owners(&his), ["bob"], "{his:?}");
        assert!(linked(&his), "{his:?}");
        let everyone = events(coord(&url, Some(&t.admin)).await, true).await;
        let mut owners = job_owners(&everyone);
        owners.sort();
        owners.dedup();
        assert_eq!(owners, ["alice", "bob"], "{everyone:?}");
    });

    // The CLI says the same: Bob cannot see job 1, a worker token cannot list.
    let bob_file = dir.path().join("bob.token");
    let args = ["job", "1", "--token-file", bob_file.to_str().unwrap()];
    assert_error(&c.brigade(&args), &args, 2, &["no job with id 1"]);
    let args = ["jobs", "--token-file", worker_token];
    assert_error(
        &c.brigade(&args),
        &args,
        2,
        &["needs a client (or admin) token", "worker token"],
    );
}

/// `brigade certs` output: TLS + mTLS + tokens, a worker and a client, an
/// exact result; then what a client without the right pieces is told.
#[test]
fn tls_and_mtls_end_to_end_with_generated_certificates() {
    let dir = TempDir::new("tls");
    let t = tokens(dir.path());
    let certs = dir.path().join("certs");
    let args = [
        "certs",
        "--out",
        certs.to_str().unwrap(),
        "--san",
        "coordinator",
    ];
    let o = run_brigade(&args, &[], CLI_DEADLINE);
    assert_success(&args, &o);
    let p = |f: &str| certs.join(f).to_string_lossy().into_owned();
    let (ca, ccert, ckey) = (p("ca.pem"), p("coordinator.pem"), p("coordinator-key.pem"));
    let (wcert, wkey, cl, clkey) = (
        p("worker.pem"),
        p("worker-key.pem"),
        p("client.pem"),
        p("client-key.pem"),
    );
    let auth = t.auth.to_string_lossy().into_owned();
    let mut c = Cluster::start(&[
        "--auth-file",
        &auth,
        "--tls-cert",
        &ccert,
        "--tls-key",
        &ckey,
        "--tls-client-ca",
        &ca,
    ]);
    assert!(c.url().starts_with("https://127.0.0.1:"), "{}", c.url());
    let wtoken = t.worker_file.to_string_lossy().into_owned();
    c.spawn_worker_with(
        "w1",
        Slots::new(1, 1, 4),
        &[
            "--tls-ca",
            &ca,
            "--tls-cert",
            &wcert,
            "--tls-key",
            &wkey,
            "--token-file",
            &wtoken,
            "--allow-exec",
        ],
    );
    let alice = dir
        .path()
        .join("alice.token")
        .to_string_lossy()
        .into_owned();
    let client_flags = [
        "--tls-ca",
        &ca,
        "--tls-cert",
        &cl,
        "--tls-key",
        &clkey,
        "--token-file",
        &alice,
    ];
    let workers = [&["workers", "--format", "json"][..], &client_flags].concat();
    common::wait_until("the TLS worker links", DEADLINE, || {
        let o = c.brigade(&workers);
        (o.status.success()
            && parse_json(&workers, &stdout(&o))
                .as_array()
                .is_some_and(|a| a.len() == 1))
        .then_some(())
    });
    let submit = [
        &[
            "submit",
            "sum-squares",
            "--range",
            "0..100000",
            "--chunk",
            "1000",
            "--wait",
            "--format",
            "json",
        ][..],
        &client_flags,
    ]
    .concat();
    let o = c.brigade(&submit);
    assert_success(&submit, &o);
    let job = parse_json(&submit, &stdout(&o));
    assert_eq!(job["state"], "succeeded", "{job}");
    assert_eq!(job["owner"], "alice", "{job}");
    // Σ i² for i < 100000 = (n-1)n(2n-1)/6.
    assert_eq!(job["total"], "333328333350000", "{job}");

    // Without a client certificate the handshake is refused, and said so.
    let status = ["status", "--tls-ca", &ca, "--token-file", &alice];
    // (No TLS connection, no coordinator: exit 3, as unreachable.)
    assert_error(
        &c.brigade(&status),
        &status,
        3,
        &["--tls-cert and --tls-key"],
    );
    // Without the CA the coordinator's certificate is not trusted.
    let status = [
        "status",
        "--tls-cert",
        &cl,
        "--tls-key",
        &clkey,
        "--token-file",
        &alice,
    ];
    assert_error(
        &c.brigade(&status),
        &status,
        3,
        &["UnknownIssuer", "--tls-ca"],
    );
    // Plaintext against the TLS port fails clearly.
    let plain = c.url().replace("https://", "http://");
    let args = ["status", "--coordinator", &plain, "--token-file", &alice];
    let o = run_brigade(&args, &[], CLI_DEADLINE);
    assert_error(&o, &args, 3, &["connect with https:// and --tls-ca"]);
}

#[test]
fn tls_without_client_certificates_serves_clients_that_trust_the_ca() {
    let dir = TempDir::new("tls-only");
    let certs = dir.path().join("certs");
    let args = ["certs", "--out", certs.to_str().unwrap()];
    assert_success(&args, &run_brigade(&args, &[], CLI_DEADLINE));
    let p = |f: &str| certs.join(f).to_string_lossy().into_owned();
    let mut c = Cluster::start(&[
        "--tls-cert",
        &p("coordinator.pem"),
        "--tls-key",
        &p("coordinator-key.pem"),
    ]);
    c.spawn_worker_with("w1", Slots::new(0, 1, 4), &["--tls-ca", &p("ca.pem")]);
    let ca = p("ca.pem");
    let submit = [
        "submit",
        "sum-squares",
        "--range",
        "0..10",
        "--model",
        "thread",
        "--wait",
        "--format",
        "json",
        "--tls-ca",
        &ca,
    ];
    let o = c.brigade(&submit);
    assert_success(&submit, &o);
    let job = parse_json(&submit, &stdout(&o));
    assert_eq!(
        (job["total"].as_str(), job["owner"].as_str()),
        (Some("285"), Some("")),
        "{job}"
    );
    // `brigade certs` never overwrites.
    let o = run_brigade(&args, &[], CLI_DEADLINE);
    assert_error(&o, &args, 1, &["exists", "does not overwrite"]);
}

#[test]
fn listening_beyond_loopback_needs_tls_and_tokens_or_insecure() {
    let dir = TempDir::new("expose");
    let t = tokens(dir.path());
    let auth = t.auth.to_string_lossy().into_owned();
    for (args, missing) in [
        (
            vec!["coordinator", "--listen", "0.0.0.0:0"],
            "without TLS and without tokens",
        ),
        (
            vec!["coordinator", "--listen", "0.0.0.0:0", "--auth-file", &auth],
            "without TLS",
        ),
        (
            vec![
                "up",
                "--listen",
                "0.0.0.0:0",
                "--state",
                ":memory:",
                "-w",
                "0",
            ],
            "without TLS and without tokens",
        ),
    ] {
        let o = run_brigade(&args, &[], CLI_DEADLINE);
        assert_error(
            &o,
            &args,
            1,
            &[
                "refusing to listen on 0.0.0.0:",
                missing,
                "--insecure",
                "--auth-file",
            ],
        );
    }
    // With --insecure it serves.
    let mut c = Cluster::empty();
    c.start_coordinator("0.0.0.0:0", &["--insecure"]);
    // Loopback needs nothing (what `up` and `demo` use by default).
    let _loopback = Cluster::start(&[]);
}

#[test]
fn an_allow_exec_worker_refuses_a_coordinator_that_does_not_authenticate_it() {
    let c = Cluster::start(&[]);
    let args = [
        "worker",
        "--coordinator",
        c.url(),
        "--allow-exec",
        "--procs",
        "0",
        "--threads",
        "1",
        "--async",
        "0",
        "--connect-timeout-s",
        "10",
    ];
    let o = run_brigade(&args, &[("BRIGADE_LOG", "error")], CLI_DEADLINE);
    assert_error(
        &o,
        &args,
        1,
        &[
            "does not authenticate its workers",
            "--auth-file",
            "--insecure",
        ],
    );

    // Authenticated with a worker token, it links and runs exec tasks.
    let dir = TempDir::new("exec");
    let t = tokens(dir.path());
    let mut c = Cluster::start(&["--auth-file", t.auth.to_str().unwrap()]);
    let wtoken = t.worker_file.to_string_lossy().into_owned();
    c.spawn_worker_with(
        "w1",
        Slots::new(1, 0, 0),
        &["--allow-exec", "--token-file", &wtoken],
    );
    let alice = dir
        .path()
        .join("alice.token")
        .to_string_lossy()
        .into_owned();
    let submit = [
        "submit",
        "exec",
        "--range",
        "0..3",
        "--arg",
        "cmd=echo {}",
        "--wait",
        "--format",
        "json",
        "--token-file",
        &alice,
    ];
    let o = c.brigade(&submit);
    assert_success(&submit, &o);
    let job = parse_json(&submit, &stdout(&o));
    assert_eq!(job["state"], "succeeded", "{job}");
    assert_eq!(job["tasks_done"], 3, "{job}");
}

/// `--default-task-timeout` bounds the tasks of jobs that set no timeout
/// (a task "over 0..2^64-1" can no longer hold a slot for hours), a job's
/// own `--timeout-ms` still wins, and `--max-active-tasks-per-client`
/// refuses a job that would take its client past the limit, naming it.
#[test]
fn a_default_task_timeout_and_the_active_tasks_quota_bound_what_a_client_holds() {
    let c = Cluster::with_workers(
        1,
        Slots::new(0, 1, 2),
        &[
            "--default-task-timeout",
            "1s",
            "--max-active-tasks-per-client",
            "1000",
        ],
    );
    let sleepy = [
        "sleep",
        "--arg",
        "ms=600000",
        "--range",
        "0..1",
        "--max-attempts",
        "1",
    ];
    let (job, _) = c.submit_failing(&sleepy);
    assert_eq!(job["state"], "failed", "job: {job}");
    let error = job["error"].as_str().unwrap_or_default();
    assert!(error.contains("exceeded its 1000 ms timeout"), "job: {job}");
    // Its own timeout wins over the default.
    let own = [&sleepy[..], &["--timeout-ms", "300"]].concat();
    let (job, _) = c.submit_failing(&own);
    let error = job["error"].as_str().unwrap_or_default();
    assert!(error.contains("exceeded its 300 ms timeout"), "job: {job}");
    // A job within the default runs to its end.
    let quick = c.submit_json(&["sleep", "--arg", "ms=10", "--range", "0..4", "--wait"]);
    assert_eq!(quick["state"], "succeeded", "job: {quick}");

    let args = ["submit", "noop", "--range", "0..1001"];
    assert_error(
        &c.brigade(&args),
        &args,
        2,
        &["this job has 1001", "--max-active-tasks-per-client 1000"],
    );
}

/// `--keep-finished 2` purges all but the two newest ended jobs, `jobs
/// --purge` the rest; a restarted coordinator brings none back from its
/// state file and gives no purged id again.
#[test]
fn ended_jobs_are_purged_by_retention_and_on_request_and_their_ids_stay_taken() {
    let (mut c, args) = Cluster::start_durable(&["--keep-finished", "2"]);
    c.spawn_worker("w1", Slots::new(0, 2, 0));
    let ids: Vec<u64> = (0..4)
        .map(|_| id_of(&c.submit_json(&["noop", "--range", "0..3", "--model", "thread", "--wait"])))
        .collect();
    let listed = |c: &Cluster| -> Vec<u64> {
        let jobs = c.json(&["jobs", "--history"]);
        let mut ids: Vec<u64> = jobs.as_array().expect("a list").iter().map(id_of).collect();
        ids.sort_unstable();
        ids
    };
    wait_until("the two oldest ended jobs purged", DEADLINE, || {
        (listed(&c) == ids[2..]).then_some(())
    });
    let args_gone = ["results".to_string(), ids[0].to_string()];
    assert_error(
        &c.brigade(&args_gone),
        &strs(&args_gone),
        2,
        &[&format!("no job with id {}", ids[0])],
    );
    let purged = c.json(&["jobs", "--purge"]);
    assert_eq!(purged, serde_json::json!({ "purged": ids[2..] }));
    assert_eq!(listed(&c), Vec::<u64>::new());

    c.stop_coordinator();
    c.restart_coordinator(&args);
    assert_eq!(listed(&c), Vec::<u64>::new(), "nothing purged comes back");
    let next = c.submit_json(&["noop", "--range", "0..3", "--model", "thread", "--wait"]);
    assert_eq!(id_of(&next), ids[3] + 1, "purged ids stay taken");
}

/// `--max-connections-per-peer 3`: with three idle connections held open
/// (raw TCP that never speaks HTTP/2), a client from the same address is
/// turned away (exit 3: unreachable); once one closes it is served.
#[test]
fn a_peer_holding_its_connection_limit_is_turned_away_until_one_closes() {
    let c = Cluster::start(&["--max-connections-per-peer", "3"]);
    let addr = c
        .url()
        .strip_prefix("http://")
        .expect("http URL")
        .to_string();
    let mut held: Vec<std::net::TcpStream> = (0..3)
        .map(|_| std::net::TcpStream::connect(&addr).expect("connect"))
        .collect();
    // The three are counted once accepted: poll until the fourth is refused.
    wait_until("a fourth connection refused", DEADLINE, || {
        (c.brigade(&["status"]).status.code() == Some(3)).then_some(())
    });
    held.pop();
    wait_until("served again under the limit", DEADLINE, || {
        c.brigade(&["status"]).status.success().then_some(())
    });
}
