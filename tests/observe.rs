//! The coordinator's HTTP port (`--http-listen`) against real processes:
//! `/metrics` parses as Prometheus text and counts exactly what a job did,
//! `/api/state` shows the workers and jobs with exact fields, `/` is the
//! dashboard page with the state of the moment in it. `promtool check
//! metrics` runs on a scrape where Debian's prometheus package is installed
//! (bench/observe-check.sh installs it); skipped with a message otherwise.

mod common;

use std::collections::HashMap;

use common::http::http_get;
use common::{
    assert_succeeded, free_port_below_ephemeral_range, id_of, Cluster, Slots, DEADLINE, POLL_EVERY,
};
use serde_json::Value;

const SLOTS: Slots = Slots::new(1, 2, 4);

/// A coordinator with a state file and `--http-listen`, and one worker.
fn cluster() -> (Cluster, String) {
    let http = format!("127.0.0.1:{}", free_port_below_ephemeral_range());
    let (mut c, _) = Cluster::start_durable(&["--http-listen", &http]);
    c.spawn_worker("w1", SLOTS);
    (c, http)
}

/// Every line of Prometheus text format 0.0.4, checked strictly: `# HELP`
/// and `# TYPE` comments with a valid name (TYPE before the samples of its
/// family, one of the five types), samples `name{labels} value` with valid
/// names, quoted label values and a float value.
fn check_syntax(text: &str) {
    let name_ok = |n: &str| {
        !n.is_empty()
            && n.chars().enumerate().all(|(i, ch)| {
                ch.is_ascii_alphabetic() || ch == '_' || ch == ':' || (i > 0 && ch.is_ascii_digit())
            })
    };
    let mut typed: HashMap<String, String> = HashMap::new();
    assert!(text.ends_with('\n'), "the last line ends with a newline");
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("# ") {
            let mut parts = rest.splitn(3, ' ');
            let (kind, name, tail) = (parts.next(), parts.next(), parts.next());
            let name = name.unwrap_or_else(|| panic!("a comment without a name: {line:?}"));
            assert!(name_ok(name), "bad metric name in {line:?}");
            match kind {
                Some("HELP") => assert!(tail.is_some_and(|t| !t.is_empty()), "{line:?}"),
                Some("TYPE") => {
                    let t = tail.unwrap_or_default();
                    assert!(
                        ["counter", "gauge", "histogram", "summary", "untyped"].contains(&t),
                        "bad type in {line:?}"
                    );
                    assert!(
                        typed.insert(name.to_string(), t.to_string()).is_none(),
                        "TYPE twice: {line:?}"
                    );
                }
                _ => panic!("an unknown comment {line:?}"),
            }
            continue;
        }
        let (series, value) = line
            .rsplit_once(' ')
            .unwrap_or_else(|| panic!("a sample without a value: {line:?}"));
        assert!(
            value.parse::<f64>().is_ok() || ["+Inf", "-Inf", "NaN"].contains(&value),
            "bad value in {line:?}"
        );
        let (name, labels) = match series.split_once('{') {
            Some((n, l)) => (
                n,
                Some(l.strip_suffix('}').unwrap_or_else(|| panic!("{line:?}"))),
            ),
            None => (series, None),
        };
        assert!(name_ok(name), "bad sample name in {line:?}");
        let family = ["_bucket", "_sum", "_count"]
            .iter()
            .find_map(|s| {
                name.strip_suffix(s)
                    .filter(|f| typed.get(*f).is_some_and(|t| t == "histogram"))
            })
            .unwrap_or(name);
        assert!(
            typed.contains_key(family),
            "a sample before its TYPE: {line:?}"
        );
        for label in labels.into_iter().flat_map(|l| l.split(',')) {
            let (k, v) = label
                .split_once('=')
                .unwrap_or_else(|| panic!("bad label in {line:?}"));
            assert!(name_ok(k), "bad label name in {line:?}");
            assert!(
                v.len() >= 2 && v.starts_with('"') && v.ends_with('"'),
                "unquoted label value in {line:?}"
            );
        }
    }
}

/// The value of the sample `series` exactly as written (name and labels).
fn sample(text: &str, series: &str) -> f64 {
    text.lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
        .unwrap_or_else(|| panic!("no sample {series} in:\n{text}"))
}

#[test]
fn metrics_parse_as_prometheus_text_and_count_a_job_exactly() {
    let (mut c, http) = cluster();
    let io = c.start_io_target();
    let job = c.submit_json(&[
        "noop", "--range", "0..500", "--chunk", "1", "--model", "thread", "--wait",
    ]);
    assert_succeeded(&job, 500);
    // One task that fails both attempts: one failure, one retry.
    let url_arg = format!("url={io}/fast");
    let (failed, _) = c.submit_failing(&[
        "http-get",
        "--range",
        "0..1",
        "--model",
        "async",
        "--arg",
        &url_arg,
        "--arg",
        "expect-len=999",
        "--max-attempts",
        "2",
    ]);
    assert_eq!(failed["tasks_failed"], 1, "job: {failed}");

    let r = http_get(&http, "/metrics");
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(
        r.header("content-type"),
        Some("text/plain; version=0.0.4; charset=utf-8")
    );
    let text = r.body;
    check_syntax(&text);
    let parsed = prometheus_parse::Scrape::parse(text.lines().map(|l| Ok(l.to_string())))
        .expect("prometheus-parse reads it");
    assert!(
        parsed.samples.len() > 40,
        "{} samples",
        parsed.samples.len()
    );

    assert_eq!(
        sample(&text, "brigade_tasks_done_total{model=\"thread\"}"),
        500.0
    );
    assert_eq!(
        sample(&text, "brigade_tasks_done_total{model=\"process\"}"),
        0.0
    );
    assert_eq!(
        sample(&text, "brigade_tasks_failed_total{model=\"async\"}"),
        1.0
    );
    assert_eq!(
        sample(&text, "brigade_tasks_retried_total{model=\"async\"}"),
        1.0
    );
    assert_eq!(
        sample(&text, "brigade_tasks_failed_total{model=\"thread\"}"),
        0.0
    );
    assert_eq!(
        sample(&text, "brigade_task_run_seconds_count{model=\"thread\"}"),
        500.0
    );
    assert_eq!(
        sample_any_order(
            &text,
            "brigade_task_run_seconds_bucket",
            &["model=\"thread\"", "le=\"+Inf\""]
        ),
        500.0
    );
    assert_eq!(sample(&text, "brigade_jobs{state=\"succeeded\"}"), 1.0);
    assert_eq!(sample(&text, "brigade_jobs{state=\"failed\"}"), 1.0);
    assert_eq!(sample(&text, "brigade_jobs{state=\"running\"}"), 0.0);
    assert_eq!(sample(&text, "brigade_workers"), 1.0);
    assert_eq!(sample(&text, "brigade_slots{model=\"process\"}"), 1.0);
    assert_eq!(sample(&text, "brigade_slots{model=\"thread\"}"), 2.0);
    assert_eq!(sample(&text, "brigade_slots{model=\"async\"}"), 4.0);
    assert_eq!(
        sample(&text, "brigade_credits_in_flight{model=\"thread\"}"),
        0.0
    );
    assert_eq!(sample(&text, "brigade_tasks_queued"), 0.0);
    assert_eq!(sample(&text, "brigade_late_results_dropped_total"), 0.0);
    assert_eq!(
        sample(&text, "brigade_worker_losses_total{cause=\"silent\"}"),
        0.0
    );
    assert_eq!(sample(&text, "brigade_leases_expired_total"), 0.0);
    // Every result went through a group commit (the 500 done ones).
    assert_eq!(sample(&text, "brigade_store_commit_results_sum"), 500.0);
    assert!(sample(&text, "brigade_store_commit_seconds_count") >= 1.0);
    assert_eq!(sample(&text, "brigade_store_commit_failures_total"), 0.0);

    let promtool = std::process::Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn();
    match promtool {
        Err(e) => eprintln!("promtool not run ({e}): install Debian's prometheus package to check the scrape with it"),
        Ok(mut child) => {
            use std::io::Write;
            child
                .stdin
                .take()
                .expect("piped stdin")
                .write_all(text.as_bytes())
                .expect("feed promtool");
            let out = child.wait_with_output().expect("promtool ends");
            let said = format!(
                "{}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
            assert!(out.status.success() && said.trim().is_empty(), "promtool check metrics: {said}");
        }
    }
}

/// A sample of `name` whose labels are exactly `labels` in any order.
fn sample_any_order(text: &str, name: &str, labels: &[&str]) -> f64 {
    text.lines()
        .filter_map(|l| {
            let (series, value) = l.rsplit_once(' ')?;
            let inner = series
                .strip_prefix(name)?
                .strip_prefix('{')?
                .strip_suffix('}')?;
            let mut got: Vec<&str> = inner.split(',').collect();
            let mut want = labels.to_vec();
            got.sort_unstable();
            want.sort_unstable();
            (got == want).then(|| value.parse().ok())?
        })
        .next()
        .unwrap_or(-1.0)
}

#[test]
fn api_state_shows_the_workers_and_jobs_exactly_and_the_page_embeds_it() {
    let (c, http) = cluster();
    let job = c.submit_json(&[
        "noop", "--range", "0..300", "--chunk", "1", "--model", "async", "--wait",
    ]);
    assert_succeeded(&job, 300);
    let id = id_of(&job);
    // A poison task (it aborts its executor process) fails the next job.
    let (poisoned, _) = c.submit_failing(&[
        "spin",
        "--range",
        "0..2",
        "--arg",
        "ms=1",
        "--arg",
        "crash-index=1",
        "--model",
        "process",
        "--max-attempts",
        "1",
    ]);
    assert_eq!(poisoned["tasks_failed"], 1, "job: {poisoned}");
    let poisoned = id_of(&poisoned);

    let r = http_get(&http, "/api/state");
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.header("content-type"), Some("application/json"));
    let st: Value = serde_json::from_str(&r.body).expect("JSON");
    let workers = st["workers"].as_array().expect("workers");
    assert_eq!(workers.len(), 1, "{st}");
    let w = &workers[0];
    assert_eq!(w["name"], "w1");
    assert_eq!(
        w["slots"],
        serde_json::json!({"process": 1, "thread": 2, "async": 4})
    );
    assert_eq!(
        w["assigned"],
        serde_json::json!({"process": 0, "thread": 0, "async": 0})
    );
    assert_eq!(w["busy"], w["assigned"], "{st}");
    assert_eq!(st["totals"]["busy"]["async"], 0, "{st}");
    assert_eq!(
        w["tasks_done"], 301,
        "the noop job's and the spin job's good task"
    );
    assert_eq!(w["draining"], false);
    assert_eq!(st["totals"]["workers"], 1);
    assert_eq!(st["totals"]["slots"]["async"], 4);
    assert_eq!(st["totals"]["jobs_total"], 2);
    assert_eq!(st["totals"]["jobs_active"], 0);
    assert_eq!(st["totals"]["tasks_queued"], 0);
    let jobs = st["jobs"].as_array().expect("jobs");
    assert_eq!(jobs.len(), 2, "{st}");
    // Ended jobs newest first.
    assert_eq!(jobs[0]["id"], poisoned);
    assert_eq!(jobs[0]["state"], "failed");
    assert_eq!(jobs[0]["model"], "process");
    assert_eq!(
        (
            jobs[0]["tasks_done"].as_u64(),
            jobs[0]["tasks_failed"].as_u64()
        ),
        (Some(1), Some(1))
    );
    let j = &jobs[1];
    assert_eq!(j["id"], id);
    assert_eq!(j["workload"], "noop");
    assert_eq!(j["state"], "succeeded");
    assert_eq!(j["model"], "async");
    assert_eq!(
        (j["tasks_total"].as_u64(), j["tasks_done"].as_u64()),
        (Some(300), Some(300))
    );
    assert_eq!(
        (j["tasks_failed"].as_u64(), j["tasks_running"].as_u64()),
        (Some(0), Some(0))
    );
    assert!(j["finished_unix_ms"].as_u64() >= j["submitted_unix_ms"].as_u64());
    let failures = st["failures"].as_array().expect("failures");
    assert_eq!(failures.len(), 1, "{st}");
    assert_eq!(failures[0]["tasks"], 1);
    assert_eq!(failures[0]["jobs"], serde_json::json!([poisoned]));
    let message = failures[0]["message"].as_str().unwrap_or_default();
    assert!(
        message.starts_with("executor died: ") && !message.contains("task 1"),
        "the cause, without the task: {message}"
    );
    assert!(st["tasks_per_second"].is_array(), "{st}");
    assert_eq!(st["version"], env!("CARGO_PKG_VERSION"));

    // The chart fills with one rate a second (on the actor's tick).
    let deadline = std::time::Instant::now() + DEADLINE;
    loop {
        let st: Value = serde_json::from_str(&http_get(&http, "/api/state").body).expect("JSON");
        if st["tasks_per_second"]
            .as_array()
            .is_some_and(|a| a.len() >= 2)
        {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no tasks/s history: {st}"
        );
        std::thread::sleep(POLL_EVERY);
    }

    let page = http_get(&http, "/");
    assert_eq!(page.status, 200);
    assert_eq!(
        page.header("content-type"),
        Some("text/html; charset=utf-8")
    );
    assert!(
        page.body.contains("<title>brigade</title>"),
        "{}",
        page.body
    );
    assert!(
        !page.body.contains("/*STATE*/"),
        "the state is rendered into the page"
    );
    assert!(
        page.body
            .contains(&format!("\"id\":{id},\"workload\":\"noop\"")),
        "{}",
        page.body
    );

    let missing = http_get(&http, "/nope");
    assert_eq!(missing.status, 404);
    assert!(missing.body.contains("/metrics"), "{}", missing.body);
}

/// `--log-format json`: every line the coordinator and a worker log is one
/// JSON object with a timestamp, a level and the event's fields; the
/// coordinator's "job accepted" event carries the job id as a field.
#[test]
fn log_format_json_writes_one_object_per_line() {
    let mut c = Cluster::start(&["--log-format", "json"]);
    c.spawn_worker_with("w1", SLOTS, &["--log-format", "json"]);
    let job = c.submit_json(&["noop", "--range", "0..3", "--model", "thread", "--wait"]);
    assert_succeeded(&job, 3);
    let read = |name: &str| std::fs::read_to_string(c.dir().join(name)).expect("log file");
    let accepted = common::wait_until("the job's acceptance logged", DEADLINE, || {
        let log = read("coordinator.log");
        let lines: Vec<Value> = log
            .lines()
            .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
            .collect();
        lines
            .into_iter()
            .find(|l| l["fields"]["message"] == "job accepted")
    });
    assert_eq!(accepted["level"], "INFO", "{accepted}");
    assert!(accepted["timestamp"].is_string(), "{accepted}");
    assert_eq!(accepted["fields"]["job_id"], id_of(&job), "{accepted}");
    let worker = c.worker_log(0);
    assert!(!worker.is_empty(), "the worker logged nothing");
    for l in worker.lines() {
        let v: Value = serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}"));
        assert!(v["level"].is_string() && v["fields"].is_object(), "{v}");
    }
}
