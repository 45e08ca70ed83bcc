//! The `brigade` CLI as the tests run it: one run with a deadline, checks
//! on its exit and output, and a [`Client`] pointed at one coordinator
//! with the commands the tests use, their output parsed.

use std::io::Write;
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use serde_json::Value;

use super::job::{done, ended};
use super::poll::{poll, DEADLINE, POLL_EVERY};
use super::proc::output_within;

/// The `brigade` binary under test.
pub const BIN: &str = env!("CARGO_BIN_EXE_brigade");

/// Deadline for one CLI run (a `--wait` run includes the whole job).
pub const CLI_DEADLINE: Duration = Duration::from_secs(120);

/// `brigade ARGS...` with stdio as the tests want it: no stdin, stdout and
/// stderr piped, no `BRIGADE_COORDINATOR` or `BRIGADE_FORMAT` from the test's environment.
pub fn brigade_command<S: AsRef<std::ffi::OsStr>>(args: &[S]) -> Command {
    let mut cmd = Command::new(BIN);
    cmd.args(args)
        .env_remove("BRIGADE_COORDINATOR")
        .env_remove("BRIGADE_FORMAT")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    cmd
}

/// Runs `brigade args...` with extra environment, killing it and panicking if
/// it does not finish within `deadline`.
pub fn run_brigade<S: AsRef<str>>(args: &[S], env: &[(&str, &str)], deadline: Duration) -> Output {
    let args = strs(args);
    let mut cmd = brigade_command(&args);
    cmd.envs(env.iter().copied());
    let child = cmd
        .spawn()
        .unwrap_or_else(|e| panic!("could not run {BIN}: {e}"));
    output_within(child, deadline).unwrap_or_else(|e| panic!("`brigade {}` {e}", args.join(" ")))
}

pub fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// Panics with the command's output unless it exited 0.
pub fn assert_success(args: &[&str], o: &Output) {
    assert!(
        o.status.success(),
        "`brigade {}` failed with {}\nstdout:\n{}\nstderr:\n{}",
        args.join(" "),
        o.status,
        stdout(o),
        stderr(o)
    );
}

/// `o` exited `code` with an `error: ` on stderr naming every needle.
pub fn assert_error(o: &Output, args: &[&str], code: i32, needles: &[&str]) {
    let err = stderr(o);
    assert_eq!(
        o.status.code(),
        Some(code),
        "`brigade {}` should exit {code}; stdout: {}\nstderr: {err}",
        args.join(" "),
        stdout(o)
    );
    assert!(
        err.starts_with("error: "),
        "`brigade {}` stderr should start with `error: `: {err}",
        args.join(" ")
    );
    for n in needles {
        assert!(
            err.contains(n),
            "`brigade {}` stderr should mention {n:?}: {err}",
            args.join(" ")
        );
    }
}

/// The JSON `brigade ARGS` printed as `out`.
pub fn parse_json(args: &[&str], out: &str) -> Value {
    serde_json::from_str(out.trim()).unwrap_or_else(|e| {
        panic!(
            "`brigade {}` printed no JSON ({e}): {out:?}",
            args.join(" ")
        )
    })
}

/// The CLI against one coordinator (`BRIGADE_COORDINATOR` set to its URL).
#[derive(Debug, Clone)]
pub struct Client {
    url: String,
    /// More environment for every run (credentials: BRIGADE_TOKEN_FILE,
    /// BRIGADE_TLS_CA).
    env: Vec<(String, String)>,
}

impl Client {
    pub fn new(url: impl Into<String>) -> Client {
        Client {
            url: url.into(),
            env: Vec::new(),
        }
    }

    /// A client whose every run also gets `env` (e.g. its credentials).
    pub fn with_env(url: impl Into<String>, env: &[(&str, &str)]) -> Client {
        Client {
            url: url.into(),
            env: env
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        }
    }

    /// The coordinator's URL.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// Runs `brigade ARGS...` against the coordinator.
    pub fn brigade<S: AsRef<str>>(&self, args: &[S]) -> Output {
        let mut env = vec![("BRIGADE_COORDINATOR", self.url.as_str())];
        env.extend(self.env.iter().map(|(k, v)| (k.as_str(), v.as_str())));
        run_brigade(args, &env, CLI_DEADLINE)
    }

    /// Runs `brigade ARGS...` against the coordinator with `input` on its
    /// standard input (written on a thread of its own, then closed).
    pub fn brigade_with_stdin<S: AsRef<str>>(&self, args: &[S], input: &[u8]) -> Output {
        let args = strs(args);
        let mut child = brigade_command(&args)
            .env("BRIGADE_COORDINATOR", &self.url)
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("could not run {BIN}: {e}"));
        let mut stdin = child.stdin.take().expect("piped stdin");
        let input = input.to_vec();
        // The CLI may stop reading early (a bad line): a broken pipe is fine.
        std::thread::spawn(move || {
            let _ = stdin.write_all(&input);
        });
        output_within(child, CLI_DEADLINE)
            .unwrap_or_else(|e| panic!("`brigade {}` {e}", args.join(" ")))
    }

    /// Runs `brigade ARGS...`, asserting it succeeds; returns stdout.
    pub fn brigade_ok<S: AsRef<str>>(&self, args: &[S]) -> String {
        let o = self.brigade(args);
        assert_success(&strs(args), &o);
        stdout(&o)
    }

    /// `brigade ARGS... --format json`, asserting success; the JSON.
    pub fn json(&self, args: &[&str]) -> Value {
        let all = [args, &["--format", "json"]].concat();
        parse_json(&all, &self.brigade_ok(&all))
    }

    /// `brigade submit ARGS... --format json`, asserting success; the job's
    /// JSON (the final one when ARGS has `--wait`).
    pub fn submit_json<S: AsRef<str>>(&self, args: &[S]) -> Value {
        self.json(&submit_args(args))
    }

    /// `brigade submit ARGS... --wait --format json` for a job that ends
    /// badly: asserts the exit code 1 and returns the job's JSON and stderr.
    pub fn submit_failing<S: AsRef<str>>(&self, args: &[S]) -> (Value, String) {
        let (o, job) = self.submit_wait(args);
        assert_eq!(
            o.status.code(),
            Some(1),
            "a job that ends badly makes `submit --wait` exit 1; job: {job}; stderr: {}",
            stderr(&o)
        );
        (job, stderr(&o))
    }

    /// `brigade submit ARGS... --wait --format json` whatever its exit: the
    /// run and the job's final JSON.
    pub fn submit_wait<S: AsRef<str>>(&self, args: &[S]) -> (Output, Value) {
        let all = [submit_args(args), vec!["--wait", "--format", "json"]].concat();
        let o = self.brigade(&all);
        let job = parse_json(&all, &stdout(&o));
        (o, job)
    }

    /// `brigade job ID --format json`.
    pub fn job_json(&self, id: u64) -> Value {
        self.json(&["job", &id.to_string()])
    }

    /// `brigade job ID --wait --format json`: the job once it ended. The
    /// exit says how: 0 if it succeeded, else 1.
    pub fn wait_job(&self, id: u64) -> Value {
        let args = ["job", &id.to_string(), "--wait", "--format", "json"];
        let o = self.brigade(&args);
        let job = parse_json(&args, &stdout(&o));
        let code = if job["state"] == "succeeded" { 0 } else { 1 };
        assert_eq!(
            o.status.code(),
            Some(code),
            "`brigade {}` exits {code} for a {} job; stderr: {}",
            args.join(" "),
            job["state"],
            stderr(&o)
        );
        job
    }

    /// Polls the job until `pred` holds; returns that JSON.
    pub fn wait_job_until(&self, id: u64, what: &str, pred: impl Fn(&Value) -> bool) -> Value {
        poll(&format!("job {id}: {what}"), DEADLINE, POLL_EVERY, || {
            let j = self.job_json(id);
            if pred(&j) {
                Ok(j)
            } else {
                Err(j.to_string())
            }
        })
    }

    /// Waits until `k` tasks of job `id` are done while it still runs, so
    /// that a fault can land mid-job; returns the job's JSON then.
    pub fn wait_mid_job(&self, id: u64, k: u64) -> Value {
        let seen = self.wait_job_until(id, &format!("{k} tasks done"), |j| done(j) >= k);
        assert!(
            !ended(&seen) && done(&seen) < seen["tasks_total"].as_u64().unwrap_or(0),
            "the job ended before the fault: {seen}"
        );
        seen
    }

    /// `brigade results ID` (table format), parsed into (index, value) rows.
    pub fn results(&self, id: u64) -> Vec<(u64, u128)> {
        let id = id.to_string();
        let out = self.brigade_ok(&["results", &id]);
        out.lines()
            .map(|l| {
                let (i, v) = l
                    .split_once('\t')
                    .unwrap_or_else(|| panic!("results line {l:?} is not INDEX\\tVALUE"));
                (
                    i.parse().unwrap_or_else(|_| panic!("bad index in {l:?}")),
                    v.parse().unwrap_or_else(|_| panic!("bad value in {l:?}")),
                )
            })
            .collect()
    }

    /// Asserts `results ID --format csv` is exactly `rows` (index, value):
    /// none missing, none twice, every value right; a failure names the
    /// first line that differs.
    pub fn assert_results(&self, id: u64, rows: impl IntoIterator<Item = (u64, u128)>) {
        let got = self.brigade_ok(&["results", &id.to_string(), "--format", "csv"]);
        let got = csv_index_value(&got);
        let want = results_csv(rows);
        if got != want {
            let got_lines: Vec<&str> = got.lines().collect();
            let want_lines: Vec<&str> = want.lines().collect();
            let first_diff = got_lines
                .iter()
                .zip(&want_lines)
                .position(|(g, w)| g != w)
                .unwrap_or(got_lines.len().min(want_lines.len()));
            panic!(
                "job {id}: results differ from the expected ones ({} lines, expected {}); \
                 first difference at line {first_diff}: got {:?}, expected {:?}",
                got_lines.len(),
                want_lines.len(),
                got_lines.get(first_diff),
                want_lines.get(first_diff)
            );
        }
    }

    /// `brigade workers --format json`.
    pub fn workers_json(&self) -> Vec<Value> {
        match self.json(&["workers"]) {
            Value::Array(v) => v,
            other => panic!("`brigade workers --format json` printed {other}, not an array"),
        }
    }

    /// Waits until exactly `n` workers are linked; returns them.
    pub fn wait_workers(&self, n: usize) -> Vec<Value> {
        let what = format!("{n} linked workers");
        poll(&what, Duration::from_secs(30), POLL_EVERY, || {
            let w = self.workers_json();
            if w.len() == n {
                Ok(w)
            } else {
                Err(format!("`workers` shows {}: {w:?}", w.len()))
            }
        })
    }
}

/// `args` as `&str`s.
pub fn strs<S: AsRef<str>>(args: &[S]) -> Vec<&str> {
    args.iter().map(AsRef::as_ref).collect()
}

/// `submit ARGS...`.
fn submit_args<S: AsRef<str>>(args: &[S]) -> Vec<&str> {
    [vec!["submit"], strs(args)].concat()
}

/// `results ID --format csv` as it must read for `rows` (index, value).
pub fn results_csv(rows: impl IntoIterator<Item = (u64, u128)>) -> String {
    let mut s = String::from("index,value\n");
    for (i, v) in rows {
        s.push_str(&format!("{i},{v}\n"));
    }
    s
}

/// The header of `results --format csv`.
pub const RESULTS_CSV_HEADER: &str = "index,value,input,attempts,worker,model,cpu_ms,wall_ms";

/// Checks the columns of a result row that say how its task ran — the
/// input range `A..B`, attempts ≥ 1, a worker's name, a model, times ≥ 0 —
/// and returns them as (input, attempts, worker, model).
pub fn check_run_fields(
    input: &str,
    attempts: &str,
    worker: &str,
    model: &str,
    cpu_ms: &str,
    wall_ms: &str,
) -> (String, u32, String, String) {
    let (a, b) = input.split_once("..").expect("input is A..B");
    assert!(
        a.parse::<u64>().unwrap() < b.parse::<u64>().unwrap(),
        "input range {input}"
    );
    let attempts: u32 = attempts.parse().expect("attempts is a number");
    assert!(attempts >= 1, "attempts {attempts}");
    assert!(!worker.is_empty(), "a worker name");
    assert!(
        ["process", "thread", "async"].contains(&model),
        "model {model:?}"
    );
    for t in [cpu_ms, wall_ms] {
        assert!(t.parse::<f64>().expect("a time in ms") >= 0.0, "time {t}");
    }
    (input.into(), attempts, worker.into(), model.into())
}

/// The records of a CSV text (quoted fields may hold line breaks).
fn csv_records(csv: &str) -> Vec<&str> {
    let (mut records, mut start, mut quoted) = (Vec::new(), 0, false);
    for (i, c) in csv.char_indices() {
        match c {
            '"' => quoted = !quoted,
            '\n' if !quoted => {
                records.push(&csv[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    records
}

/// `results --format csv` cut to its index and value columns (as
/// [`results_csv`] writes them), after checking the header and every
/// row's run columns.
pub fn csv_index_value(csv: &str) -> String {
    let records = csv_records(csv);
    assert_eq!(records.first().copied(), Some(RESULTS_CSV_HEADER), "{csv}");
    let mut out = String::from("index,value\n");
    for r in &records[1..] {
        // The run columns hold no comma (test workers' names have none).
        let f: Vec<&str> = r.rsplitn(7, ',').collect();
        assert_eq!(f.len(), 7, "a row of 8 columns: {r}");
        check_run_fields(f[5], f[4], f[3], f[2], f[1], f[0]);
        out.push_str(f[6]);
        out.push('\n');
    }
    out
}

/// A JSON result row without the fields that say how its task ran (input,
/// attempts, worker, model, cpu_ms, wall_ms), after checking them.
pub fn without_run_fields(mut row: Value) -> Value {
    let text = |v: &Value| match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    };
    let o = row.as_object_mut().expect("a row is an object");
    let mut take = |k: &str| text(&o.remove(k).unwrap_or_else(|| panic!("row has no {k}")));
    let (input, attempts, worker, model) = (
        take("input"),
        take("attempts"),
        take("worker"),
        take("model"),
    );
    let (cpu, wall) = (take("cpu_ms"), take("wall_ms"));
    check_run_fields(&input, &attempts, &worker, &model, &cpu, &wall);
    row
}
