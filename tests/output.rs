//! The CLI's output as scripts read it, with the real binary: every client
//! command in every format (json: exactly one value, arrays for listings;
//! csv: a header and rows of as many fields; `--quiet`: the essential
//! value alone), `BRIGADE_FORMAT`, and errors in JSON mode
//! (`{"error": {...}}` on stdout with the documented exit code).

mod common;

use common::{run_brigade, stderr, stdout, Cluster, Slots, CLI_DEADLINE};
use serde_json::Value;

/// `brigade ARGS...` against `c`, asserting it succeeds; its stdout.
fn ok(c: &Cluster, args: &[&str]) -> String {
    let o = c.brigade(args);
    assert!(
        o.status.success(),
        "`brigade {}` failed with {}: {}{}",
        args.join(" "),
        o.status,
        stdout(&o),
        stderr(&o)
    );
    stdout(&o)
}

/// The one JSON value `out` holds (serde refuses anything after it).
fn one_value(args: &[&str], out: &str) -> Value {
    serde_json::from_str(out).unwrap_or_else(|e| {
        panic!(
            "`brigade {}` printed not exactly one JSON value ({e}): {out:?}",
            args.join(" ")
        )
    })
}

/// A CSV text's rows (no quoted fields here), after checking that each has
/// as many fields as the header, which is `header_starts` at its start.
fn csv_rows(args: &[&str], out: &str, header_starts: &str) -> Vec<Vec<String>> {
    let mut lines = out.lines();
    let header = lines.next().unwrap_or_default();
    assert!(
        header.starts_with(header_starts),
        "`brigade {}`: header {header:?}",
        args.join(" ")
    );
    let width = header.split(',').count();
    lines
        .map(|l| {
            let f: Vec<String> = l.split(',').map(String::from).collect();
            assert_eq!(f.len(), width, "`brigade {}`: row {l:?}", args.join(" "));
            f
        })
        .collect()
}

/// A JSON value's shape: an object's keys, an array's length (uptimes
/// and such change between two runs).
fn shape(v: &Value) -> String {
    match v {
        Value::Object(o) => format!("{:?}", o.keys().collect::<Vec<_>>()),
        Value::Array(a) => format!("[{}]", a.len()),
        other => other.to_string(),
    }
}

#[test]
fn every_client_command_prints_each_format_and_quiet_prints_the_essential_value() {
    let c = Cluster::with_workers(1, Slots::new(0, 2, 0), &[]);
    let first = ok(
        &c,
        &[
            "submit", "noop", "--range", "0..3", "--model", "thread", "--quiet",
        ],
    );
    assert_eq!(first, "1\n", "--quiet prints the job id alone");
    let end = one_value(&[], &ok(&c, &["job", "1", "--wait", "--format", "json"]));
    assert_eq!(end["state"], "succeeded", "{end}");

    // (command, whether its JSON is a listing, its CSV header's start)
    let commands: [(&[&str], bool, &str); 8] = [
        (&["status"], false, "version,protocol_version,workers"),
        (&["health"], false, "service,status"),
        (&["jobs", "--history"], true, "job_id,workload"),
        (&["job", "1"], false, "job_id,workload"),
        (&["results", "1"], true, "index,value,input"),
        (&["tasks", "1", "--state", "failed"], true, "index,error"),
        (&["cancel", "1"], false, "job_id,workload"),
        (&["workers"], true, "worker_id,name"),
    ];
    for (args, listing, header) in commands {
        let json_args = [args, &["--format", "json"]].concat();
        let v = one_value(&json_args, &ok(&c, &json_args));
        assert_eq!(v.is_array(), listing, "`brigade {json_args:?}`: {v}");
        let csv_args = [args, &["--format", "csv"]].concat();
        csv_rows(&csv_args, &ok(&c, &csv_args), header);
        let jsonl_args = [args, &["--format", "jsonl"]].concat();
        for line in ok(&c, &jsonl_args).lines() {
            one_value(&jsonl_args, line);
        }
        // BRIGADE_FORMAT stands in for the flag.
        let o = run_brigade(
            args,
            &[("BRIGADE_COORDINATOR", c.url()), ("BRIGADE_FORMAT", "json")],
            CLI_DEADLINE,
        );
        assert_eq!(
            shape(&one_value(args, &stdout(&o))),
            shape(&v),
            "{}",
            stderr(&o)
        );
        assert!(
            !ok(&c, args).is_empty(),
            "`brigade {args:?}` prints a table"
        );
    }
    // The listings' contents, exactly.
    let rows = csv_rows(&[], &ok(&c, &["results", "1", "--format", "csv"]), "index");
    let values: Vec<(&str, &str)> = rows
        .iter()
        .map(|r| (r[0].as_str(), r[1].as_str()))
        .collect();
    assert_eq!(values, [("0", "0"), ("1", "1"), ("2", "2")]);
    let jobs = one_value(&[], &ok(&c, &["jobs", "--history", "--format", "json"]));
    assert_eq!(jobs.as_array().map(Vec::len), Some(1), "{jobs}");
    assert_eq!(jobs[0]["job_id"], 1);
    let status = one_value(&[], &ok(&c, &["status", "--format", "json"]));
    assert_eq!(status["json_schema"], 1, "{status}");
    assert_eq!(status["jobs_total"], 1, "{status}");

    // --quiet: the essential value alone, and nothing on stderr.
    let quiet: [(&[&str], &str); 9] = [
        (&["job", "1"], "succeeded\n"),
        (&["jobs", "--history"], "1\n"),
        (&["results", "1"], "0\n1\n2\n"),
        (&["tasks", "1", "--state", "failed"], ""),
        (&["workers"], "w1\n"),
        (&["status"], ""),
        (&["health"], ""),
        // Ended already: nothing was cancelled, so no id.
        (&["cancel", "1"], ""),
        (&["jobs", "--purge"], "1\n"),
    ];
    for (args, want) in quiet {
        let all = [args, &["-q"]].concat();
        let o = c.brigade(&all);
        assert!(o.status.success(), "{all:?}: {}", stderr(&o));
        assert_eq!(stdout(&o), want, "`brigade {all:?}`");
        assert_eq!(stderr(&o), "", "`brigade {all:?}` says nothing on stderr");
    }
    // submit --wait --quiet: the id once accepted, then nothing; the exit
    // code says how the job ended.
    let o = c.brigade(&[
        "submit", "noop", "--range", "0..2", "--model", "thread", "--wait", "--quiet",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!((stdout(&o).as_str(), stderr(&o).as_str()), ("2\n", ""));
}

#[test]
fn errors_in_json_mode_are_one_json_value_on_stdout_with_the_documented_exit_code() {
    let c = Cluster::with_workers(1, Slots::new(0, 1, 0), &[]);
    let error = |args: &[&str], env: &[(&str, &str)], code: i32| -> Value {
        let o = run_brigade(args, env, CLI_DEADLINE);
        assert_eq!(
            o.status.code(),
            Some(code),
            "`brigade {args:?}`: {}",
            stderr(&o)
        );
        assert_eq!(stderr(&o), "", "`brigade {args:?}`: the error is on stdout");
        let v = one_value(args, &stdout(&o));
        assert_eq!(v["error"]["exit"], code, "{v}");
        assert!(
            v["error"]["message"]
                .as_str()
                .is_some_and(|m| !m.is_empty()),
            "{v}"
        );
        v["error"].clone()
    };
    let at = [("BRIGADE_COORDINATOR", c.url())];
    // A job that does not exist: refused by the coordinator (exit 2).
    let e = error(&["job", "999", "--format", "json"], &at, 2);
    assert_eq!(e["code"], "not_found", "{e}");
    assert!(
        e["message"].as_str().unwrap_or_default().contains("999"),
        "{e}"
    );
    // An invalid job, refused at admission.
    let e = error(
        &["submit", "spin", "--range", "0..5", "--format", "json"],
        &at,
        2,
    );
    assert_eq!(e["code"], "invalid_argument", "{e}");
    // A command line clap refuses, JSON asked for by BRIGADE_FORMAT.
    let json_env = [("BRIGADE_COORDINATOR", c.url()), ("BRIGADE_FORMAT", "json")];
    let e = error(&["submit", "noop", "--range", "9..5"], &json_env, 2);
    assert_eq!(e["code"], "usage", "{e}");
    assert!(
        e["message"].as_str().unwrap_or_default().contains("9..5"),
        "{e}"
    );
    let e = error(&["jobs", "--no-such-flag", "--format", "json"], &at, 2);
    assert_eq!(e["code"], "usage", "{e}");
    // A flag our own checks refuse.
    let e = error(
        &[
            "jobs",
            "--token-file",
            "/nonexistent/token",
            "--format",
            "json",
        ],
        &at,
        2,
    );
    assert_eq!(e["code"], "usage", "{e}");
    // Nobody there (exit 3).
    let e = error(
        &["jobs", "--format", "json"],
        &[("BRIGADE_COORDINATOR", "http://127.0.0.1:1")],
        3,
    );
    assert_eq!(e["code"], "unreachable", "{e}");
    // Help is still help, on stdout, exit 0.
    let o = run_brigade(&["jobs", "--help", "--format", "json"], &at, CLI_DEADLINE);
    assert!(
        o.status.success() && stdout(&o).contains("Usage:"),
        "{}",
        stdout(&o)
    );
}

/// The ids in a JSON listing of jobs.
fn ids(v: &Value) -> Vec<u64> {
    v.as_array()
        .unwrap_or_else(|| panic!("a listing: {v}"))
        .iter()
        .map(|j| j["job_id"].as_u64().unwrap_or(0))
        .collect()
}

#[test]
fn selectors_name_jobs_by_id_last_all_range_and_list_and_jobs_filter_by_state() {
    let c = Cluster::with_workers(1, Slots::new(0, 2, 4), &[]);
    for range in ["0..2", "0..2", "0..4"] {
        ok(
            &c,
            &[
                "submit", "noop", "--range", range, "--model", "thread", "--wait",
            ],
        );
    }
    // Commands about one job take an id or `last`.
    assert_eq!(ok(&c, &["results", "last", "-q"]), "0\n1\n2\n3\n");
    assert_eq!(ok(&c, &["results", "2", "-q"]), "0\n1\n");
    assert_eq!(ok(&c, &["tasks", "last", "--state", "failed", "-q"]), "");
    for args in [
        &["results", "1-2"][..],
        &["results", "all"],
        &["tasks", "1,2", "--state", "failed"],
    ] {
        let all = [args, &["--format", "json"]].concat();
        let o = c.brigade(&all);
        assert_eq!(o.status.code(), Some(2), "{all:?}: {}", stdout(&o));
        let e = one_value(&all, &stdout(&o));
        assert_eq!(e["error"]["code"], "usage", "{e}");
        assert!(
            e["error"]["message"]
                .as_str()
                .unwrap_or_default()
                .contains("takes one job: its id or last"),
            "{e}"
        );
    }
    // Two jobs that keep running.
    for _ in 0..2 {
        ok(
            &c,
            &[
                "submit", "sleep", "--arg", "ms=60000", "--range", "0..1", "--model", "async",
            ],
        );
    }
    let json = |args: &[&str]| one_value(args, &ok(&c, &[args, &["--format", "json"]].concat()));
    // One job by its form: an object; many: an array, whatever matches.
    assert_eq!(json(&["job", "last"])["job_id"], 5);
    assert_eq!(json(&["job", "2"])["job_id"], 2);
    assert_eq!(ids(&json(&["job", "all"])), [1, 2, 3, 4, 5]);
    assert_eq!(ids(&json(&["job", "1-3"])), [1, 2, 3]);
    assert_eq!(ids(&json(&["job", "1,3,5-8"])), [1, 3, 5]);
    assert_eq!(ids(&json(&["job", "4-4"])), [4]);
    assert_eq!(ok(&c, &["job", "1,4", "-q"]), "succeeded\nrunning\n");
    // Nothing matches, a job named alone does not exist, a bad selector.
    for (args, code) in [
        (&["job", "7-9"][..], "not_found"),
        (&["job", "1,99"], "not_found"),
        (&["job", "3-1"], "usage"),
        (&["cancel", "x"], "usage"),
    ] {
        let all = [args, &["--format", "json"]].concat();
        let o = c.brigade(&all);
        assert_eq!(o.status.code(), Some(2), "{all:?}: {}", stdout(&o));
        assert_eq!(
            one_value(&all, &stdout(&o))["error"]["code"],
            code,
            "{all:?}"
        );
    }
    let o = c.brigade(&["job", "3-1"]);
    assert!(
        stderr(&o).contains("the range 3-1 runs backwards; expected a job id (3), a range (1-10)"),
        "{}",
        stderr(&o)
    );

    // `jobs` lists the active jobs; --history and --state the others.
    assert_eq!(ids(&json(&["jobs"])), [4, 5]);
    assert_eq!(ids(&json(&["jobs", "--history"])), [1, 2, 3, 4, 5]);
    assert_eq!(ids(&json(&["jobs", "--state", "succeeded"])), [1, 2, 3]);
    assert_eq!(ids(&json(&["jobs", "--state", "running,failed"])), [4, 5]);
    assert_eq!(ids(&json(&["jobs", "--state", "ended"])), [1, 2, 3]);
    let o = c.brigade(&["jobs", "--state", "done"]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("\"done\" is not one of: queued, running"),
        "{}",
        stderr(&o)
    );
    let o = c.brigade(&["jobs", "--state", "any", "--history"]);
    assert_eq!(o.status.code(), Some(2), "--state and --history conflict");

    // cancel: one job, then `all` of those still running, then ended ones.
    let last = json(&["cancel", "last"]);
    assert_eq!(
        (last["job_id"].as_u64(), last["state"].as_str()),
        (Some(5), Some("cancelled"))
    );
    assert_eq!(
        ok(&c, &["cancel", "all", "-q"]),
        "4\n",
        "only the job still running"
    );
    assert_eq!(ids(&json(&["jobs", "--state", "cancelled"])), [4, 5]);
    let o = c.brigade(&["jobs"]);
    assert_eq!(
        stdout(&o).lines().count(),
        1,
        "the header alone: {}",
        stdout(&o)
    );
    assert!(
        stderr(&o).contains("`brigade jobs --history` lists the 5 that ended"),
        "{}",
        stderr(&o)
    );
    let o = c.brigade(&["cancel", "1,2"]);
    assert!(o.status.success(), "{}", stderr(&o));
    for id in [1, 2] {
        assert!(
            stderr(&o).contains(&format!("job {id} had already ended: it succeeded")),
            "{}",
            stderr(&o)
        );
    }
    let o = c.brigade(&["cancel", "all"]);
    assert!(
        o.status.success() && stderr(&o).contains("nothing was cancelled"),
        "{}",
        stderr(&o)
    );
}

#[test]
fn completions_for_bash_zsh_and_fish_name_every_subcommand_and_bash_parses_them() {
    let dir = common::TempDir::new("completions");
    for shell in ["bash", "zsh", "fish"] {
        let args = ["completions", shell];
        let o = run_brigade(&args, &[], CLI_DEADLINE);
        assert!(o.status.success(), "{shell}: {}", stderr(&o));
        let script = stdout(&o);
        assert!(script.len() > 1_000, "{shell}: {script:?}");
        for sub in [
            "submit",
            "jobs",
            "job",
            "results",
            "tasks",
            "cancel",
            "workers",
            "status",
            "coordinator",
            "worker",
            "completions",
        ] {
            assert!(script.contains(sub), "{shell}: no {sub}");
        }
        // Flags and their values complete too.
        for word in ["format", "quiet", "history", "token-file"] {
            assert!(script.contains(word), "{shell}: no {word}");
        }
        let file = dir.path().join(format!("brigade.{shell}"));
        std::fs::write(&file, &script).expect("write the script");
        // Each shell checks its script's syntax where it is installed
        // (bash always is); `-n` reads without running.
        match std::process::Command::new(shell)
            .arg("-n")
            .arg(&file)
            .output()
        {
            Ok(check) => assert!(
                check.status.success(),
                "`{shell} -n` refuses the script: {}",
                String::from_utf8_lossy(&check.stderr)
            ),
            Err(e) if shell == "bash" => panic!("bash is needed to check the script: {e}"),
            Err(e) => eprintln!("{shell} not installed ({e}): its script's syntax is not checked"),
        }
    }
    let o = run_brigade(&["completions", "tcsh"], &[], CLI_DEADLINE);
    assert_eq!(o.status.code(), Some(2));
    assert!(
        stderr(&o).contains("possible values: bash,"),
        "{}",
        stderr(&o)
    );
}

/// Checks `brigade timeline ID --out FILE` of a finished job of `tasks`
/// tasks on `slots` thread slots of one worker against its results: the
/// Chrome trace shape, one complete event per done task lasting the
/// task's wall time, at most `slots` rows that never overlap, each task
/// ending within the job's run.
fn check_timeline(c: &Cluster, id: u64, tasks: u64, slots: usize) {
    let dir = common::TempDir::new("timeline");
    let file = dir.path().join("trace.json");
    let path = file.display().to_string();
    let said = ok(
        c,
        &[
            "timeline",
            &id.to_string(),
            "--out",
            &path,
            "--format",
            "json",
        ],
    );
    assert_eq!(
        one_value(&[], &said),
        serde_json::json!({"job_id": id, "out": path, "tasks": tasks})
    );
    let text = std::fs::read_to_string(&file).expect("the trace file");
    let trace: Value = serde_json::from_str(&text).expect("the trace is JSON");
    let events = trace["traceEvents"]
        .as_array()
        .expect("traceEvents is an array");
    let boxes: Vec<&Value> = events.iter().filter(|e| e["ph"] == "X").collect();
    assert_eq!(
        boxes.len() as u64,
        tasks,
        "one complete event per done task"
    );
    for e in events {
        assert!(["X", "M"].contains(&e["ph"].as_str().unwrap_or("")), "{e}");
        assert!(
            e["pid"].is_u64() && e["tid"].is_u64() && e["name"].is_string(),
            "{e}"
        );
    }
    // Each row's wall time, from `results`.
    let rows = one_value(
        &[],
        &ok(c, &["results", &id.to_string(), "--format", "json"]),
    );
    let wall_us: std::collections::HashMap<u64, f64> = rows
        .as_array()
        .expect("rows")
        .iter()
        .map(|r| {
            (
                r["index"].as_u64().unwrap(),
                (r["wall_ms"].as_f64().unwrap() * 1e3).round(),
            )
        })
        .collect();
    let job = one_value(&[], &ok(c, &["job", &id.to_string(), "--format", "json"]));
    let mut seen = std::collections::BTreeSet::new();
    let mut by_row: std::collections::BTreeMap<u64, Vec<(u64, u64)>> = Default::default();
    for b in &boxes {
        let index = b["args"]["index"].as_u64().expect("args.index");
        assert_eq!(b["name"], format!("task {index}"));
        assert!(seen.insert(index), "task {index} twice");
        assert_eq!(b["cat"], "thread", "{b}");
        let (ts, dur) = (
            b["ts"].as_u64().expect("ts in µs"),
            b["dur"].as_u64().expect("dur in µs"),
        );
        assert_eq!(
            dur as f64, wall_us[&index],
            "task {index}: its wall time, in µs"
        );
        // Tasks of `sleep --arg ms=20` last 20 ms at least.
        assert!(dur >= 20_000, "{b}");
        by_row
            .entry(b["tid"].as_u64().unwrap())
            .or_default()
            .push((ts, ts + dur));
        let recorded = b["args"]["recorded_unix_us"]
            .as_u64()
            .expect("when it was recorded");
        let ms = |k: &str| job[k].as_u64().expect(k) * 1_000;
        assert!(
            recorded >= ms("submitted_unix_ms") && recorded <= ms("finished_unix_ms") + 1_000,
            "task {index} recorded at {recorded}, outside the job's run: {job}"
        );
    }
    assert_eq!(seen, (0..tasks).collect());
    assert!(
        (1..=slots).contains(&by_row.len()),
        "rows: {:?}",
        by_row.keys()
    );
    for (tid, mut spans) in by_row {
        spans.sort_unstable();
        for w in spans.windows(2) {
            assert!(
                w[0].1 <= w[1].0,
                "row {tid}: {:?} overlaps {:?}",
                w[0],
                w[1]
            );
        }
    }
    let names: Vec<&str> = events
        .iter()
        .filter(|e| e["name"] == "thread_name")
        .filter_map(|e| e["args"]["name"].as_str())
        .collect();
    assert!(
        names.iter().all(|n| n.starts_with("thread slot ")),
        "{names:?}"
    );
}

#[test]
fn a_jobs_timeline_is_a_chrome_trace_with_a_box_per_task_as_long_as_its_wall_time() {
    // In memory (rows in completion order say when they were recorded) ...
    let c = Cluster::with_workers(1, Slots::new(0, 2, 0), &[]);
    let sleep = [
        "submit", "sleep", "--arg", "ms=20", "--range", "0..12", "--model", "thread", "--wait",
    ];
    ok(&c, &sleep);
    check_timeline(&c, 1, 12, 2);
    // ... and from a state file, where each row keeps it.
    let (mut d, _) = Cluster::start_durable(&[]);
    d.spawn_worker("w1", Slots::new(0, 3, 0));
    d.wait_workers(1);
    ok(&d, &sleep);
    check_timeline(&d, 1, 12, 3);
    // Without --out the trace itself is the one value on stdout; `last`.
    let trace = one_value(&[], &ok(&d, &["timeline", "last"]));
    assert_eq!(trace["otherData"]["job_id"], 1);
    let o = d.brigade(&["timeline", "1-2"]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
}

/// The next `n` events a `brigade events --follow --format jsonl` run
/// prints (within the test deadline).
fn next_events(lines: &std::sync::mpsc::Receiver<String>, n: usize) -> Vec<Value> {
    (0..n)
        .map(|k| {
            let line = lines
                .recv_timeout(common::DEADLINE)
                .unwrap_or_else(|e| panic!("event {k} of {n} never came: {e}"));
            one_value(&["events"], &line)
        })
        .collect()
}

/// An event's kind and what it is about (a job id or a worker name).
fn what(e: &Value) -> (String, String) {
    let about = match &e["job_id"] {
        Value::Null => e["worker"].as_str().unwrap_or_default().to_string(),
        id => id.to_string(),
    };
    (e["kind"].as_str().unwrap_or_default().to_string(), about)
}

#[test]
fn events_say_what_happened_to_jobs_and_workers_and_follow_new_ones() {
    let mut c = Cluster::with_workers(1, Slots::new(0, 2, 0), &[]);
    ok(
        &c,
        &[
            "submit", "noop", "--range", "0..3", "--model", "thread", "--wait",
        ],
    );
    let recent = one_value(&[], &ok(&c, &["events", "--format", "json"]));
    let recent = recent.as_array().expect("an array").clone();
    let got: Vec<(String, String)> = recent.iter().map(what).collect();
    let want = [
        ("worker_linked", "w1"),
        ("job_submitted", "1"),
        ("job_ended", "1"),
    ];
    assert_eq!(got, want.map(|(k, a)| (k.to_string(), a.to_string())));
    let seqs: Vec<u64> = recent.iter().map(|e| e["seq"].as_u64().unwrap()).collect();
    assert_eq!(seqs, [1, 2, 3]);
    assert_eq!(recent[2]["state"], "succeeded", "{}", recent[2]);
    assert_eq!(
        recent[1]["detail"], "3 tasks on thread slots",
        "{}",
        recent[1]
    );
    // When: within the job's run, in µs, and as text.
    let job = one_value(&[], &ok(&c, &["job", "1", "--format", "json"]));
    let (sub, fin) = (
        job["submitted_unix_ms"].as_u64().unwrap(),
        job["finished_unix_ms"].as_u64().unwrap(),
    );
    let at = |e: &Value| e["unix_us"].as_u64().unwrap() / 1_000;
    assert!(
        at(&recent[1]) >= sub && at(&recent[1]) <= fin + 1,
        "{} {job}",
        recent[1]
    );
    assert!(
        at(&recent[2]) >= at(&recent[1]) && at(&recent[2]) <= fin + 1,
        "{} {job}",
        recent[2]
    );
    assert!(
        recent[2]["time"].as_str().unwrap().ends_with('Z'),
        "{}",
        recent[2]
    );
    let text = ok(&c, &["events"]);
    assert!(text.contains("  worker w1 (id 1) linked\n"), "{text}");
    assert!(
        text.contains("  job 1 submitted: noop, 3 tasks on thread slots\n"),
        "{text}"
    );
    assert!(text.contains("  job 1 noop succeeded\n"), "{text}");
    let csv = ok(&c, &["events", "--format", "csv"]);
    assert_eq!(csv.lines().count(), 4, "{csv}");
    assert!(csv.starts_with("seq,time,unix_us,kind,job_id"), "{csv}");

    // Following: the recent ones, then each new one as it happens.
    let mut run = c.spawn_brigade(&["events", "--follow", "--format", "jsonl"]);
    let lines = run.stdout_lines();
    assert_eq!(
        next_events(&lines, 3).iter().map(what).collect::<Vec<_>>(),
        got
    );
    let w2 = c.spawn_worker("w2", Slots::new(0, 1, 0));
    let linked = next_events(&lines, 1);
    assert_eq!(what(&linked[0]), ("worker_linked".into(), "w2".into()));
    ok(
        &c,
        &[
            "submit", "noop", "--range", "0..2", "--model", "thread", "--wait",
        ],
    );
    let job2 = next_events(&lines, 2);
    assert_eq!(
        job2.iter().map(what).collect::<Vec<_>>(),
        [
            ("job_submitted".to_string(), "2".to_string()),
            ("job_ended".into(), "2".into())
        ]
    );
    c.kill_worker(w2);
    let lost = next_events(&lines, 1);
    assert_eq!(what(&lost[0]), ("worker_lost".into(), "w2".into()));
    assert!(
        lost[0]["reason"].as_str().is_some_and(|r| !r.is_empty()),
        "{}",
        lost[0]
    );
    assert_eq!(lost[0]["seq"], 7);
    // Ctrl-C ends following.
    run.signal_once_caught(libc::SIGINT);
    let o = run.finish(common::DEADLINE);
    assert_eq!(o.status.code(), Some(130), "{}", stderr(&o));

    // One JSON value per command: a stream is jsonl.
    let o = c.brigade(&["events", "--follow", "--format", "json"]);
    assert_eq!(o.status.code(), Some(2));
    let e = one_value(&[], &stdout(&o));
    assert_eq!(e["error"]["code"], "usage", "{e}");
    assert!(
        e["error"]["message"]
            .as_str()
            .unwrap_or_default()
            .contains("--format jsonl"),
        "{e}"
    );
}
