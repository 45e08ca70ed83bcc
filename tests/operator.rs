//! The operator's experience with the real binary: failures that explain
//! themselves (every task runs, failures grouped by cause, `--fail-fast`,
//! `brigade tasks ID --state failed`), the documented exit codes, Ctrl-C
//! during `--wait`, submissions that return once accepted, partial
//! results, cancelling an ended job, `submit --wait`'s summary line, and
//! logs that show real addresses and the user's job ids.

mod common;

use std::process::Stdio;
use std::time::{Duration, Instant};

use common::{
    first_line_in_background, id_of, identity, parse_json, run_brigade, stderr, stdout, Cluster,
    Slots, CLI_DEADLINE, DEADLINE, FAST_LEASES,
};
use serde_json::json;

/// An exec command that prints its input, except for input 7, which fails
/// with exit status 3 and a message on stderr.
const POISON_7: &str =
    "cmd=if [ {} = 7 ]; then echo \"no such file: input-{}\" >&2; exit 3; fi; echo {}";

/// What the poison task's failure reads as, once grouped by cause.
const CAUSE_7: &str = "failed: command exit status: 3: no such file: input-7";

/// A cluster with one exec worker of `procs` process slots.
fn exec_cluster(procs: usize, coordinator_args: &[&str]) -> Cluster {
    let mut c = Cluster::start(coordinator_args);
    c.spawn_worker_with(
        "w1",
        Slots::new(procs, 0, 0),
        &["--allow-exec", "--insecure"],
    );
    c.wait_workers(1);
    c
}

/// `submit exec --range 0..20` with [`POISON_7`] and `extra` flags.
fn poison_job(extra: &[&str]) -> Vec<String> {
    let head = [
        "submit",
        "exec",
        "--range",
        "0..20",
        "--arg",
        POISON_7,
        "--max-attempts",
        "2",
    ];
    head.iter().chain(extra).map(|s| s.to_string()).collect()
}

#[test]
fn a_poison_task_leaves_the_other_19_to_run_and_the_job_fails_with_its_errors_grouped() {
    let c = exec_cluster(2, &[]);
    let o = c.brigade(&poison_job(&["--wait"]));
    let (out, err) = (stdout(&o), stderr(&o));
    assert_eq!(o.status.code(), Some(1), "stderr: {err}");
    assert_eq!(out, "", "a failed job prints no total");
    assert!(
        err.contains("job 1 exec failed: 19/20 tasks done on process slots"),
        "{err}"
    );
    assert!(
        err.contains(
            "\n1 of 20 tasks failed for good, more than the 0 the job allows (--allow-failures):\n  \
             1 × failed: command exit status: 3: no such file: input-7  (task 7)\n\
             every failed task: brigade tasks 1 --state failed\n"
        ),
        "the failures, grouped, and the command that lists them: {err}"
    );
    assert_eq!(
        err.matches("no such file").count(),
        1,
        "the error is printed once: {err}"
    );
    assert!(!err.contains("error:"), "{err}");
    let last = err.lines().last().unwrap_or_default();
    assert!(
        last.starts_with("summary: 20 tasks (19 done, 1 failed) in "),
        "the summary line comes last: {err}"
    );

    // Every other task ran, with its exact output.
    let job = c.job_json(1);
    assert_eq!(job["state"], "failed", "job: {job}");
    assert_eq!(
        (job["tasks_done"].as_u64(), job["tasks_failed"].as_u64()),
        (Some(19), Some(1))
    );
    assert_eq!(
        job["failure_groups"],
        json!([{"cause": CAUSE_7, "tasks": 1, "examples": [7]}]),
        "job: {job}"
    );
    assert!(
        job["error"].as_str().is_some_and(
            |e| e.starts_with("1 of 20 tasks failed for good") && e.contains("task 7 ")
        ),
        "job: {job}"
    );
    c.assert_results(1, identity(20).into_iter().filter(|&(i, _)| i != 7));

    // The command it named lists every failed task with its whole error.
    let csv = c.brigade_ok(&["tasks", "1", "--state", "failed", "--format", "csv"]);
    assert_eq!(
        csv,
        "index,error\n7,task 7 (input 7..8) failed after 2 attempt(s); last: failed: command \
         exit status: 3: no such file: input-7\n"
    );
    let table = c.brigade_ok(&["tasks", "1", "--state", "failed"]);
    assert_eq!(table.lines().count(), 2, "{table}");
    assert!(table.starts_with("INDEX\tERROR\n7\ttask 7 "), "{table}");

    // `job ID --wait` of the failed job says the same, and exits 1.
    let o = c.brigade(&["job", "1", "--wait"]);
    assert_eq!(o.status.code(), Some(1), "stderr: {}", stderr(&o));
    assert!(
        stdout(&o)
            .contains("  1 × failed: command exit status: 3: no such file: input-7  (task 7)"),
        "{}",
        stdout(&o)
    );
    assert_eq!(stdout(&o).matches("no such file").count(), 1);
    // Without --wait it only shows the job: exit 0.
    assert!(c.brigade(&["job", "1"]).status.success());
}

#[test]
fn fail_fast_ends_the_job_at_the_first_failure_for_good() {
    let c = exec_cluster(1, &[]);
    // One task at a time, in order: tasks 0..7 done, 7 fails, the rest never run.
    let all = poison_job(&[
        "--fail-fast",
        "--max-in-flight",
        "1",
        "--wait",
        "--format",
        "json",
    ]);
    let o = c.brigade(&all);
    assert_eq!(o.status.code(), Some(1), "stderr: {}", stderr(&o));
    let job = parse_json(&common::strs(&all), &stdout(&o));
    assert_eq!(job["state"], "failed", "job: {job}");
    assert_eq!(job["fail_fast"], true, "job: {job}");
    assert_eq!(job["tasks_done"], 7, "stopped early: {job}");
    assert_eq!(job["tasks_failed"], 1, "job: {job}");
    assert!(
        job["error"]
            .as_str()
            .is_some_and(|e| e.starts_with("task 7 (input 7..8) failed after 2 attempt(s)")),
        "job: {job}"
    );
    // In JSON the job is on stdout; stderr has one error line, then the summary.
    let err = stderr(&o);
    assert_eq!(err.matches("error: ").count(), 1, "{err}");
    assert!(err.contains("error: job 1 failed: task 7 "), "{err}");
    c.assert_results(1, identity(7));
    // Within --allow-failures the job runs on and succeeds.
    let all = poison_job(&[
        "--fail-fast",
        "--allow-failures",
        "1",
        "--wait",
        "--format",
        "json",
    ]);
    let job = parse_json(&common::strs(&all), &c.brigade_ok(&all));
    assert_eq!(job["state"], "succeeded", "job: {job}");
    assert_eq!(
        (job["tasks_done"].as_u64(), job["tasks_failed"].as_u64()),
        (Some(19), Some(1))
    );
}

#[test]
fn a_restarted_coordinator_keeps_a_jobs_fail_fast_policy() {
    let (mut c, args) = Cluster::start_durable(&FAST_LEASES);
    c.spawn_worker_with("w1", Slots::new(1, 0, 0), &["--allow-exec", "--insecure"]);
    c.wait_workers(1);
    // Task 0 takes a while, task 2 fails, the others are quick; one at a time.
    let job = c.submit_json(&[
        "exec",
        "--range",
        "0..6",
        "--arg",
        "cmd=case {} in 0) sleep 2;; 2) exit 3;; esac; echo {}",
        "--max-attempts",
        "1",
        "--max-in-flight",
        "1",
        "--fail-fast",
    ]);
    let id = id_of(&job);
    c.wait_job_until(id, "task 0 running", |j| j["tasks_running"] == 1);
    c.kill_coordinator();
    c.restart_coordinator(&args);
    let end = c.wait_job(id);
    assert_eq!(end["state"], "failed", "job: {end}");
    assert_eq!(end["fail_fast"], true, "job: {end}");
    // Had the policy been lost, tasks 3..6 would have run too.
    assert_eq!(end["tasks_done"], 2, "job: {end}");
    assert_eq!(end["tasks_failed"], 1, "job: {end}");
    c.assert_results(id, identity(2));
}

#[test]
fn failed_tasks_beyond_the_first_hundred_are_counted_grouped_and_all_listed() {
    let c = exec_cluster(2, &[]);
    let all = [
        "submit",
        "exec",
        "--range",
        "0..150",
        "--arg",
        "cmd=echo \"bad input {} at pid $$\" >&2; exit 1",
        "--max-attempts",
        "1",
        "--allow-failures",
        "150",
        "--wait",
        "--format",
        "json",
    ];
    let job = parse_json(&all, &c.brigade_ok(&all));
    assert_eq!(job["state"], "succeeded", "all 150 allowed: {job}");
    assert_eq!(job["tasks_failed"], 150);
    assert_eq!(job["failed_tasks"].as_array().map(Vec::len), Some(100));
    let groups = job["failure_groups"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    assert_eq!(groups.len(), 1, "numbers aside, one cause: {job}");
    assert_eq!(groups[0]["tasks"], 150);
    assert_eq!(groups[0]["examples"], json!([0, 1, 2, 3, 4]));
    let listed = c.json(&["tasks", "1", "--state", "failed"]);
    let listed = listed.as_array().cloned().unwrap_or_default();
    let indices: Vec<u64> = listed.iter().filter_map(|t| t["index"].as_u64()).collect();
    assert_eq!(indices, (0..150).collect::<Vec<_>>());
    for t in &listed {
        let i = t["index"].as_u64().unwrap_or(u64::MAX);
        let error = t["error"].as_str().unwrap_or_default();
        assert!(
            error.starts_with(&format!(
                "task {i} (input {i}..{}) failed after 1 attempt(s)",
                i + 1
            )) && error.contains(&format!("bad input {i} at pid")),
            "{t}"
        );
    }
    // The table says the failures were allowed, and how many.
    let table = c.brigade_ok(&["job", "1"]);
    assert!(
        table.contains("\n150 tasks failed for good (--allow-failures 150):\n  150 × "),
        "{table}"
    );
    // A job without failures lists none.
    let ok = c.submit_json(&["noop", "--range", "0..3", "--model", "process", "--wait"]);
    let none = c.brigade(&["tasks", &id_of(&ok).to_string(), "--state", "failed"]);
    assert_eq!(stdout(&none), "INDEX\tERROR\n");
    assert!(stderr(&none).contains("has no task that failed for good"));
}

#[test]
fn every_documented_exit_code_is_what_the_binary_exits_with() {
    let c = exec_cluster(2, &[]);
    // 0: success.
    let o = c.brigade(&[
        "submit", "noop", "--range", "0..5", "--model", "process", "--wait",
    ]);
    assert_eq!(o.status.code(), Some(0), "stderr: {}", stderr(&o));
    // 1: the job failed.
    let o = c.brigade(&poison_job(&["--wait"]));
    assert_eq!(o.status.code(), Some(1), "stderr: {}", stderr(&o));
    // 2: usage errors (clap's and ours) and refused jobs or requests.
    for args in [
        &["submit", "noop", "--range", "9..5"][..],
        &["submit", "noop", "--range", "0..5", "--wait", "--detach"][..],
        &["tasks", "1", "--state", "running"][..],
        &["submit", "squares", "--range", "0..5"][..],
        &["submit", "spin", "--range", "0..5"][..],
        &["job", "999"][..],
        &["cancel", "999"][..],
    ] {
        let o = c.brigade(args);
        assert_eq!(
            o.status.code(),
            Some(2),
            "`brigade {args:?}`: {}",
            stderr(&o)
        );
        assert!(stderr(&o).starts_with("error: "), "{}", stderr(&o));
    }
    let o = run_brigade(
        &["jobs", "--token-file", "/nonexistent/token"],
        &[],
        CLI_DEADLINE,
    );
    assert_eq!(
        o.status.code(),
        Some(2),
        "an unreadable file a flag names: {}",
        stderr(&o)
    );
    // 3: the coordinator is unreachable.
    for args in [
        &["jobs"][..],
        &["submit", "noop", "--range", "0..5", "--wait"][..],
    ] {
        let o = run_brigade(
            args,
            &[("BRIGADE_COORDINATOR", "http://127.0.0.1:1")],
            CLI_DEADLINE,
        );
        assert_eq!(
            o.status.code(),
            Some(3),
            "`brigade {args:?}`: {}",
            stderr(&o)
        );
        assert!(stderr(&o).contains("could not reach the coordinator at http://127.0.0.1:1"));
    }
    // 130: interrupted (the Ctrl-C test below checks what it says).
    let run = c.spawn_brigade(&[
        "submit", "sleep", "--arg", "ms=60000", "--range", "0..1", "--model", "async", "--wait",
    ]);
    run.signal_once_caught(libc::SIGINT);
    let o = run.finish(DEADLINE);
    assert_eq!(o.status.code(), Some(130), "stderr: {}", stderr(&o));
}

#[test]
fn ctrl_c_during_wait_leaves_the_job_running_and_prints_the_command_that_cancels_it() {
    let c = Cluster::with_workers(1, Slots::new(0, 0, 4), &[]);
    let mut run = c.spawn_brigade(&[
        "submit", "sleep", "--arg", "ms=60000", "--range", "0..2", "--model", "async", "--wait",
    ]);
    // Once it says the job was accepted, it follows it.
    let lines = run.stderr_lines();
    let first = lines.recv_timeout(DEADLINE).expect("a first line");
    assert_eq!(first, "job 1 accepted: 2 tasks on async slots");
    wait_running(&c, 1, 2);
    run.signal_once_caught(libc::SIGINT);
    let o = run.finish(DEADLINE);
    let err: String = lines.iter().map(|l| l + "\n").collect();
    assert_eq!(o.status.code(), Some(130), "stderr: {err}");
    let url = c.url();
    let cancel = format!("brigade cancel 1 --coordinator {url}");
    assert!(
        err.contains("interrupted: job 1 keeps running on the coordinator.")
            && err.contains(&format!("cancel it:          {cancel}\n"))
            && err.contains(&format!(
                "follow it again:    brigade job 1 --wait --coordinator {url}"
            )),
        "stderr: {err}"
    );
    // It does keep running ...
    let job = c.job_json(1);
    assert_eq!(job["state"], "running", "job: {job}");
    // ... until the command it printed cancels it.
    let words: Vec<&str> = cancel.split_whitespace().skip(1).collect();
    let o = run_brigade(&words, &[], CLI_DEADLINE);
    assert!(o.status.success(), "`{cancel}`: {}", stderr(&o));
    assert_eq!(c.job_json(1)["state"], "cancelled");

    // `job ID --wait` and `results --follow` are interrupted the same way.
    c.submit_json(&[
        "sleep", "--arg", "ms=60000", "--range", "0..1", "--model", "async",
    ]);
    for args in [
        &["job", "2", "--wait"][..],
        &["results", "2", "--follow"][..],
    ] {
        let run = c.spawn_brigade(args);
        run.signal_once_caught(libc::SIGINT);
        let o = run.finish(DEADLINE);
        assert_eq!(o.status.code(), Some(130), "{args:?}: {}", stderr(&o));
        assert!(stderr(&o).contains("job 2 keeps running"), "{}", stderr(&o));
    }
    assert_eq!(c.job_json(2)["state"], "running");
}

/// Waits until job `id` exists (a CLI run in the background submits it)
/// with `n` tasks running.
fn wait_running(c: &Cluster, id: u64, n: u64) {
    let args = ["job", &id.to_string(), "--format", "json"].map(String::from);
    let what = format!("job {id} with {n} tasks running");
    common::poll(&what, DEADLINE, common::POLL_EVERY, || {
        let o = c.brigade(&args);
        let out = stdout(&o);
        match serde_json::from_str::<serde_json::Value>(&out) {
            Ok(j) if j["tasks_running"] == n => Ok(()),
            _ => Err(format!("{out}{}", stderr(&o))),
        }
    });
}

#[test]
fn submit_returns_once_accepted_even_when_queued_behind_other_jobs() {
    let c = Cluster::with_workers(1, Slots::new(1, 0, 0), &[]);
    // A job holding the one process slot for a minute.
    let busy = c.submit_json(&[
        "spin", "--arg", "ms=60000", "--range", "0..1", "--model", "process",
    ]);
    c.wait_job_until(id_of(&busy), "the slot busy", |j| j["tasks_running"] == 1);
    for extra in [&[][..], &["--detach"][..]] {
        let args = [
            &["submit", "noop", "--range", "0..5", "--model", "process"][..],
            extra,
        ]
        .concat();
        let start = Instant::now();
        let o = run_brigade(
            &args,
            &[("BRIGADE_COORDINATOR", c.url())],
            Duration::from_secs(30),
        );
        assert!(o.status.success(), "{args:?}: {}", stderr(&o));
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "returned only after {:?}",
            start.elapsed()
        );
        let out = stdout(&o);
        assert!(
            out.starts_with("job ") && out.contains(" accepted: 5 tasks on process slots"),
            "{out}"
        );
        let id: u64 = out["job ".len()..]
            .split_whitespace()
            .next()
            .and_then(|w| w.trim_end_matches(':').parse().ok())
            .unwrap_or_else(|| panic!("no job id in {out:?}"));
        // Behind the busy job: accepted, nothing of it done.
        let job = c.job_json(id);
        assert!(!common::ended(&job) && job["tasks_done"] == 0, "job: {job}");
    }
    assert_eq!(c.job_json(1)["state"], "running");
    c.brigade_ok(&["cancel", "1"]);
}

#[test]
fn results_of_a_running_job_are_partial_and_cancel_of_an_ended_job_says_how_it_ended() {
    let c = exec_cluster(1, &[]);
    // Tasks 0 and 1 are quick, task 2 waits a minute; one at a time.
    let job = c.submit_json(&[
        "exec",
        "--range",
        "0..3",
        "--max-in-flight",
        "1",
        "--arg",
        "cmd=if [ {} = 2 ]; then sleep 60; fi; echo {}",
    ]);
    let id = id_of(&job).to_string();
    c.wait_job_until(id_of(&job), "tasks 0 and 1 done", |j| j["tasks_done"] == 2);
    let o = c.brigade(&["results", &id]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert_eq!(stdout(&o), "0\t0\n1\t1\n");
    assert_eq!(
        stderr(&o),
        format!(
            "job {id} is still running: these 2 results are partial, the ones done so far (of 3 \
             tasks); `brigade results {id} --wait` prints them all once the job ends, \
             `--follow` as they come\n"
        )
    );
    c.brigade_ok(&["cancel", &id]);

    // A finished job: its results are whole, with no note.
    let done = c.submit_json(&["noop", "--range", "0..3", "--model", "process", "--wait"]);
    let done_id = id_of(&done).to_string();
    let o = c.brigade(&["results", &done_id]);
    assert_eq!(stdout(&o), "0\t0\n1\t1\n2\t2\n");
    assert_eq!(stderr(&o), "");
    // `results --wait` of an ended job prints them at once.
    assert_eq!(
        c.brigade_ok(&["results", &done_id, "--wait"]),
        "0\t0\n1\t1\n2\t2\n"
    );

    // Cancelling a job that ended leaves it as it ended, and says so.
    for (job, how) in [(&done_id, "it succeeded"), (&id, "it was cancelled")] {
        let o = c.brigade(&["cancel", job]);
        assert!(o.status.success(), "{}", stderr(&o));
        let err = stderr(&o);
        assert!(
            err.contains(&format!("job {job} had already ended: {how} "))
                && err.contains(" ago; nothing was cancelled"),
            "{err}"
        );
    }
    assert_eq!(c.job_json(id_of(&done))["state"], "succeeded");
}

#[test]
fn every_submit_wait_ends_with_a_summary_line_and_warns_of_overhead_once() {
    let c = Cluster::with_workers(1, Slots::new(0, 4, 0), &[]);
    // Tasks of 100 ms: the overhead is a small part of them.
    let o = c.brigade(&[
        "submit", "sleep", "--arg", "ms=100", "--range", "0..8", "--model", "thread", "--wait",
    ]);
    let err = stderr(&o);
    assert!(o.status.success(), "{err}");
    let last = err.lines().last().unwrap_or_default();
    assert!(
        last.starts_with("summary: 8 tasks in ")
            && last.contains(" tasks/s, mean task ")
            && last.contains(" ms, overhead ")
            && last.ends_with(" per task (4 thread slots)"),
        "{err}"
    );
    assert!(!err.contains("warning"), "{err}");
    // No-op tasks: the overhead is all there is, said once, with a chunk.
    let o = c.brigade(&[
        "submit", "noop", "--range", "0..4000", "--model", "thread", "--wait",
    ]);
    let err = stderr(&o);
    assert!(o.status.success(), "{err}");
    let lines: Vec<&str> = err.lines().collect();
    assert!(
        lines[lines.len() - 1].starts_with("summary: 4000 tasks in "),
        "{err}"
    );
    assert_eq!(err.matches("warning:").count(), 1, "{err}");
    let warning = lines[lines.len() - 2];
    assert!(
        warning.starts_with("warning: the per-task overhead (") && warning.contains("try --chunk "),
        "{err}"
    );
    // In JSON too: stdout holds the job alone.
    let all = [
        "submit", "noop", "--range", "0..3", "--model", "thread", "--wait", "--format", "json",
    ];
    let o = c.brigade(&all);
    assert_eq!(parse_json(&all, &stdout(&o))["state"], "succeeded");
    assert!(stderr(&o)
        .lines()
        .last()
        .unwrap_or_default()
        .starts_with("summary: 3 tasks in "));
}

/// A coordinator process started here, killed on drop.
struct Server(std::process::Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn a_coordinator_on_every_interface_says_so_with_the_port_it_got() {
    let mut child =
        common::brigade_command(&["coordinator", "--listen", "0.0.0.0:0", "--insecure"])
            .stderr(Stdio::null())
            .spawn()
            .expect("brigade runs");
    let line = first_line_in_background(child.stdout.take().expect("piped stdout"));
    let _server = Server(child);
    let line = line.recv_timeout(DEADLINE).expect("a first line");
    let rest = line
        .trim()
        .strip_prefix("brigade coordinator listening on http://0.0.0.0:")
        .unwrap_or_else(|| panic!("the address it is bound to: {line:?}"));
    let (port, note) = rest.split_once(' ').expect("a note after the URL");
    let port: u16 = port.parse().expect("a port");
    assert_ne!(port, 0, "the port it got, not the one asked for");
    let local = format!("http://127.0.0.1:{port}");
    assert_eq!(note, format!("(every interface; from this host: {local})"));
    let o = run_brigade(
        &["status"],
        &[("BRIGADE_COORDINATOR", &local)],
        CLI_DEADLINE,
    );
    assert!(o.status.success(), "{}", stderr(&o));
}

#[test]
fn worker_logs_show_the_users_job_id() {
    let c = Cluster::with_workers(1, Slots::new(1, 0, 0), &[]);
    let (job, _) = c.submit_failing(&[
        "spin",
        "--arg",
        "ms=1",
        "--arg",
        "crash-index=1",
        "--range",
        "0..3",
        "--model",
        "process",
        "--max-attempts",
        "1",
    ]);
    assert_eq!(job["tasks_done"], 2, "job: {job}");
    let log = c.worker_log(0);
    let died: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("executor process died"))
        .collect();
    assert!(!died.is_empty(), "{log}");
    for line in died {
        assert!(line.contains(" job_id=1 "), "the user's job id: {line}");
    }
    // The session tag (1 << 44) never shows.
    assert!(!log.contains(&(1u64 << 44 | 1).to_string()), "{log}");
}
