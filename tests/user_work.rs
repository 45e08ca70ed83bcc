//! Users' own work end to end, as a user runs it with the real binary:
//! inputs files (text and JSON lines, from a file or stdin) through `echo`
//! and `exec` on every model, byte and integer outputs, bad inputs that
//! submit nothing, `--max-result-bytes`, `--reduce`, `results --follow`,
//! a coordinator SIGKILLed mid inputs-job, and 10,000 lines in one job.
//! Every output is checked exactly, in every format it is read in.

mod common;

use std::sync::mpsc::Receiver;

use common::{
    assert_error, assert_succeeded, csv_index_value, id_of, parse_json, stderr, stdout,
    sum_squares, without_run_fields, BackgroundRun, Cluster, Slots, CLI_DEADLINE, DEADLINE,
    FAST_LEASES,
};
use serde_json::{json, Value};

/// Every slot model, as `--model` spells it.
const MODELS: [&str; 3] = ["process", "thread", "async"];

/// A coordinator and one worker with every kind of slot that offers
/// `exec`.
fn cluster() -> Cluster {
    with_exec_worker(Cluster::start(&[]))
}

/// [`cluster`] whose coordinator keeps its state in a file (results are
/// then served from it).
fn cluster_with_state() -> Cluster {
    with_exec_worker(Cluster::start_durable(&[]).0)
}

fn with_exec_worker(mut c: Cluster) -> Cluster {
    c.spawn_worker_with("w1", Slots::new(2, 2, 8), &["--allow-exec", "--insecure"]);
    c.wait_workers(1);
    c
}

/// Writes `bytes` to `name` in the cluster's temp dir; returns its path.
fn write_inputs(c: &Cluster, name: &str, bytes: &[u8]) -> String {
    let path = c.dir().join(name);
    std::fs::write(&path, bytes)
        .unwrap_or_else(|e| panic!("could not write {}: {e}", path.display()));
    path.to_string_lossy().into_owned()
}

/// One row of `brigade results`: the task's index, its output as text
/// (`value`) and as a JSON value (`output`).
#[derive(Debug, Clone)]
struct Row {
    index: u64,
    value: String,
    output: Value,
}

/// A row whose output is text that is no JSON value: `output` is the
/// same text as a JSON string.
fn text_row(index: u64, value: &str) -> Row {
    Row {
        index,
        value: value.to_string(),
        output: Value::String(value.to_string()),
    }
}

/// A row whose output is read as the JSON value `output`.
fn json_row(index: u64, value: &str, output: Value) -> Row {
    Row {
        index,
        value: value.to_string(),
        output,
    }
}

/// A row of an integer output.
fn int_row(index: u64, v: u128) -> Row {
    Row {
        index,
        value: v.to_string(),
        output: json!(v),
    }
}

fn row_json(r: &Row) -> Value {
    json!({"index": r.index, "value": r.value, "output": r.output})
}

/// `results ID --format jsonl`, each line parsed (a line that is no JSON
/// fails the test).
fn jsonl_rows(c: &Cluster, id: u64) -> Vec<Value> {
    let args = ["results", &id.to_string(), "--format", "jsonl"];
    c.brigade_ok(&args)
        .lines()
        .map(|l| without_run_fields(parse_json(&args, l)))
        .collect()
}

/// Asserts `results ID` reads exactly `rows` as JSON lines and as one
/// JSON array.
fn assert_json_rows(c: &Cluster, id: u64, rows: &[Row]) {
    let want: Vec<Value> = rows.iter().map(row_json).collect();
    let got = jsonl_rows(c, id);
    assert_eq!(got.len(), want.len(), "job {id}: jsonl rows {got:?}");
    for (g, w) in got.iter().zip(&want) {
        assert_eq!(g, w, "job {id}: jsonl row");
    }
    let args = ["results", &id.to_string(), "--format", "json"];
    let all = parse_json(&args, &c.brigade_ok(&args));
    let all: Vec<Value> = match all {
        Value::Array(rows) => rows.into_iter().map(without_run_fields).collect(),
        other => panic!("job {id}: not an array: {other}"),
    };
    assert_eq!(all, want, "job {id}: json rows");
}

/// `results ID --format FORMAT`, exactly.
fn results_as(c: &Cluster, id: u64, format: &str) -> String {
    c.brigade_ok(&["results", &id.to_string(), "--format", format])
}

/// `submit ARGS... --wait --format json`, asserting the job succeeded with
/// `tasks` tasks; returns its id.
fn run_ok(c: &Cluster, args: &[&str], tasks: u64) -> u64 {
    let job = c.submit_json(&[args, &["--wait"]].concat());
    assert_succeeded(&job, tasks);
    id_of(&job)
}

/// The lines of the text inputs file: what every kind of text does in
/// CSV, JSON and the table (non-ASCII, quotes, commas, a backslash,
/// spaces kept around words, a CRLF ending, a last line with no newline),
/// with a spaces-only line and an empty line that are skipped.
const TEXT_INPUTS: &[u8] = "héllo wörld\n\
    say \"hi\", she said\n\
    a,b,c\n   \n\
    日本語 ✓\n\
    back\\slash and 'single'\n\
    \n\
    42\n  padded  \n\
    crlf line\r\n\
    no newline at the end"
    .as_bytes();

#[test]
fn echo_returns_text_inputs_exactly_on_every_model_in_every_format() {
    let c = cluster();
    let file = write_inputs(&c, "text.txt", TEXT_INPUTS);
    let one_per_task = [
        text_row(0, "héllo wörld"),
        text_row(1, "say \"hi\", she said"),
        text_row(2, "a,b,c"),
        text_row(3, "日本語 ✓"),
        text_row(4, "back\\slash and 'single'"),
        json_row(5, "42", json!(42)),
        text_row(6, "  padded  "),
        text_row(7, "crlf line"),
        text_row(8, "no newline at the end"),
    ];
    let one_csv = "index,value\n\
        0,héllo wörld\n\
        1,\"say \"\"hi\"\", she said\"\n\
        2,\"a,b,c\"\n\
        3,日本語 ✓\n\
        4,back\\slash and 'single'\n\
        5,42\n\
        6,  padded  \n\
        7,crlf line\n\
        8,no newline at the end\n";
    let one_table = "0\théllo wörld\n\
        1\tsay \"hi\", she said\n\
        2\ta,b,c\n\
        3\t日本語 ✓\n\
        4\tback\\\\slash and 'single'\n\
        5\t42\n\
        6\t  padded  \n\
        7\tcrlf line\n\
        8\tno newline at the end\n";
    // Three items a task: echo returns them one per line.
    let three_per_task = [
        text_row(0, "héllo wörld\nsay \"hi\", she said\na,b,c"),
        text_row(1, "日本語 ✓\nback\\slash and 'single'\n42"),
        text_row(2, "  padded  \ncrlf line\nno newline at the end"),
    ];
    let three_csv = "index,value\n\
        0,\"héllo wörld\nsay \"\"hi\"\", she said\na,b,c\"\n\
        1,\"日本語 ✓\nback\\slash and 'single'\n42\"\n\
        2,\"  padded  \ncrlf line\nno newline at the end\"\n";
    let three_table = "0\théllo wörld\\nsay \"hi\", she said\\na,b,c\n\
        1\t日本語 ✓\\nback\\\\slash and 'single'\\n42\n\
        2\t  padded  \\ncrlf line\\nno newline at the end\n";
    for model in MODELS {
        for (chunk, rows, csv, table) in [
            ("1", &one_per_task[..], one_csv, one_table),
            ("3", &three_per_task[..], three_csv, three_table),
        ] {
            let args = [
                "echo", "--inputs", &file, "--chunk", chunk, "--model", model,
            ];
            let id = run_ok(&c, &args, rows.len() as u64);
            let job = c.job_json(id);
            assert_eq!(job["model"], model, "job: {job}");
            assert_eq!(job["range"], json!([0, 9]), "9 items: {job}");
            assert_json_rows(&c, id, rows);
            let got = csv_index_value(&results_as(&c, id, "csv"));
            assert_eq!(got, csv, "{model}, chunk {chunk}");
            assert_eq!(results_as(&c, id, "table"), table, "{model}, chunk {chunk}");
        }
    }
}

#[test]
fn json_lines_and_standard_input_become_tasks_on_every_model() {
    let c = cluster();
    let file = write_inputs(
        &c,
        "values.jsonl",
        b"{\"name\": \"Pizza Hut\", \"tags\": [\"a\", \"b\"]}\n\
          7\n\
          \"a string, with \\\"quotes\\\"\"\n\
          \n\
          -1.5e3\n\
          null\n\
          [1, {\"x\": true}]\n",
    );
    let rows = [
        json_row(
            0,
            "{\"name\": \"Pizza Hut\", \"tags\": [\"a\", \"b\"]}",
            json!({"name": "Pizza Hut", "tags": ["a", "b"]}),
        ),
        json_row(1, "7", json!(7)),
        json_row(
            2,
            "\"a string, with \\\"quotes\\\"\"",
            json!("a string, with \"quotes\""),
        ),
        json_row(3, "-1.5e3", json!(-1500.0)),
        json_row(4, "null", Value::Null),
        json_row(5, "[1, {\"x\": true}]", json!([1, {"x": true}])),
    ];
    let stdin_text = "über\n\ny, z\n".as_bytes();
    let stdin_rows = [text_row(0, "über"), text_row(1, "y, z")];
    for model in MODELS {
        let args = [
            "echo",
            "--inputs",
            &file,
            "--inputs-format",
            "jsonl",
            "--model",
            model,
        ];
        let id = run_ok(&c, &args, rows.len() as u64);
        assert_json_rows(&c, id, &rows);

        let args = [
            "submit", "echo", "--inputs", "-", "--model", model, "--wait", "--format", "json",
        ];
        let o = c.brigade_with_stdin(&args, stdin_text);
        common::assert_success(&args, &o);
        let job = parse_json(&args, &stdout(&o));
        assert_succeeded(&job, 2);
        assert_json_rows(&c, id_of(&job), &stdin_rows);

        let args = [
            "submit",
            "echo",
            "--inputs",
            "-",
            "--inputs-format",
            "jsonl",
            "--model",
            model,
            "--wait",
            "--format",
            "json",
        ];
        let o = c.brigade_with_stdin(&args, b"{\"k\": [1, 2]}\n\"s\"\n");
        common::assert_success(&args, &o);
        let job = parse_json(&args, &stdout(&o));
        assert_succeeded(&job, 2);
        assert_json_rows(
            &c,
            id_of(&job),
            &[
                json_row(0, "{\"k\": [1, 2]}", json!({"k": [1, 2]})),
                json_row(1, "\"s\"", json!("s")),
            ],
        );
    }
}

#[test]
fn bad_inputs_name_the_file_and_line_and_submit_nothing() {
    let c = cluster();
    let missing = c.dir().join("missing.txt").to_string_lossy().into_owned();
    let not_utf8 = write_inputs(&c, "latin1.txt", b"fine\nalso fine\ncaf\xe9 au lait\nd\n");
    let bad_json = write_inputs(&c, "bad.jsonl", b"1\n\"two\"\n\n{\"a\": oops}\n5\n");
    let blank = write_inputs(&c, "blank.txt", b"\n   \n\n");
    let long_line = [b"short\n".as_slice(), &[b'y'; (1 << 20) + 1], b"\n"].concat();
    let too_long = write_inputs(&c, "too-long.txt", &long_line);
    // A bad line after two full upload messages (4,096 items each) went
    // to the coordinator: still nothing may be submitted.
    let mut late: String = (1..=10_000).map(|i| format!("{i}\n")).collect();
    late.push_str("{not json\n");
    let late_bad = write_inputs(&c, "late.jsonl", late.as_bytes());

    fn submit<'a>(rest: &[&'a str]) -> Vec<&'a str> {
        [&["submit", "echo"], rest].concat()
    }
    for (args, needles) in [
        (
            submit(&["--inputs", &missing]),
            vec![
                missing.as_str(),
                "cannot read the inputs file",
                "No such file",
            ],
        ),
        (
            submit(&["--inputs", &not_utf8, "--wait"]),
            vec![not_utf8.as_str(), "line 3", "not UTF-8"],
        ),
        (
            submit(&["--inputs", &bad_json, "--inputs-format", "jsonl"]),
            vec![
                bad_json.as_str(),
                "line 4",
                "not one JSON value",
                "column 7",
            ],
        ),
        (
            submit(&["--inputs", &late_bad, "--inputs-format", "jsonl"]),
            vec![late_bad.as_str(), "line 10001", "not one JSON value"],
        ),
        (
            submit(&["--inputs", &blank]),
            vec!["needs at least one input"],
        ),
        (
            submit(&["--inputs", &too_long]),
            vec![too_long.as_str(), "line 2", "longer than 1048576 bytes"],
        ),
    ] {
        let o = c.brigade(&args);
        assert_error(&o, &args, 2, &needles);
        assert_eq!(stdout(&o), "", "nothing on stdout: {args:?}");
        // The error names the line once, not serde's "line 1" of it too.
        assert!(!stderr(&o).contains("line 1 column"), "{}", stderr(&o));
    }
    let args = ["submit", "echo", "--inputs", "-"];
    let o = c.brigade_with_stdin(&args, b"ok\n\xc3\x28\nnever read\n");
    assert_error(&o, &args, 2, &["standard input, line 2", "not UTF-8"]);

    assert_eq!(
        c.json(&["jobs"]),
        json!([]),
        "a refused upload submits nothing"
    );
    // And the next good job is the coordinator's first. A line of the
    // longest length an input may have passes, with either line ending.
    let longest = "z".repeat(1 << 20);
    let good = write_inputs(
        &c,
        "good.txt",
        format!("x\n{longest}\n{longest}\r\n{longest}").as_bytes(),
    );
    assert_eq!(run_ok(&c, &["echo", "--inputs", &good], 4), 1);
    assert_json_rows(
        &c,
        1,
        &[
            text_row(0, "x"),
            text_row(1, &longest),
            text_row(2, &longest),
            text_row(3, &longest),
        ],
    );
}

/// `submit ARGS... --wait --format json` for a job that must fail; asserts
/// `submit` exits 1 and returns the job's JSON.
fn run_failing(c: &Cluster, args: &[&str]) -> Value {
    c.submit_failing(args).0
}

/// The failed tasks a job's JSON lists, as (index, error).
fn failed_tasks(job: &Value) -> Vec<(u64, String)> {
    job["failed_tasks"]
        .as_array()
        .unwrap_or_else(|| panic!("no failed_tasks in {job}"))
        .iter()
        .map(|f| {
            (
                f["index"].as_u64().expect("index"),
                f["error"].as_str().expect("error").to_string(),
            )
        })
        .collect()
}

/// Asserts `job` succeeded with `done` tasks done and one failed for good,
/// task `index`, whose error names every needle.
fn assert_one_failed(job: &Value, done: u64, index: u64, needles: &[&str]) {
    assert_eq!(job["state"], "succeeded", "job: {job}");
    assert_eq!(job["tasks_done"], done, "job: {job}");
    assert_eq!(job["tasks_failed"], 1, "job: {job}");
    let failed = failed_tasks(job);
    assert_eq!(failed.len(), 1, "job: {job}");
    assert_eq!(failed[0].0, index, "job: {job}");
    for n in needles {
        assert!(
            failed[0].1.contains(n),
            "the error should name {n:?}: {job}"
        );
    }
}

/// `exec --arg cmd=CMD --inputs FILE ARGS... --model MODEL`.
fn exec_args<'a>(cmd: &'a str, file: &'a str, args: &[&'a str], model: &'a str) -> Vec<&'a str> {
    [
        &["exec", "--arg", cmd, "--inputs", file],
        args,
        &["--model", model],
    ]
    .concat()
}

#[test]
fn exec_gets_its_input_in_the_command_or_on_stdin_on_every_model() {
    let c = cluster();
    let words = write_inputs(
        &c,
        "words.txt",
        "apple pie\nit's\n$(id)\na \"b\" c\nnaïve\n".as_bytes(),
    );
    let numbers = write_inputs(&c, "numbers.txt", b"3\n4\n100000\n");
    let verdicts = write_inputs(&c, "verdicts.txt", b"good\nbad\nfine\n");
    let stdin = ["--arg", "stdin=true", "--chunk", "2"];
    let cases: [(&str, &str, &[&str], Vec<Row>); 4] = [
        // `{}`: each item one shell word, whatever it holds; text out.
        (
            "cmd=printf '<%s>' {}",
            &words,
            &[],
            vec![
                text_row(0, "<apple pie>"),
                text_row(1, "<it's>"),
                text_row(2, "<$(id)>"),
                text_row(3, "<a \"b\" c>"),
                text_row(4, "<naïve>"),
            ],
        ),
        // An integer printed is an integer output.
        (
            "cmd=expr {} \\* {}",
            &numbers,
            &[],
            vec![int_row(0, 9), int_row(1, 16), int_row(2, 10_000_000_000)],
        ),
        // stdin=true: two items a task, one per line, on its standard input.
        (
            "cmd=tr a-z A-Z",
            &words,
            &stdin,
            vec![
                text_row(0, "APPLE PIE\nIT'S"),
                text_row(1, "$(ID)\nA \"B\" C"),
                text_row(2, "NAïVE"),
            ],
        ),
        (
            "cmd=awk '{ s += $1 } END { print s }'",
            &numbers,
            &stdin,
            vec![int_row(0, 7), int_row(1, 100_000)],
        ),
    ];
    for model in MODELS {
        for (cmd, file, args, rows) in &cases {
            let id = run_ok(&c, &exec_args(cmd, file, args, model), rows.len() as u64);
            assert_json_rows(&c, id, rows);
        }
        // A failing command: its task fails with the command's stderr; the
        // others' outputs stand.
        let cmd = "cmd=case {} in bad) echo refusing {} >&2; exit 4;; *) printf %s {};; esac";
        let once = ["--max-attempts", "1"];
        let tolerant = [&once[..], &["--allow-failures", "1", "--wait"]].concat();
        let job = c.submit_json(&exec_args(cmd, &verdicts, &tolerant, model));
        assert_one_failed(&job, 2, 1, &["exit status: 4", "refusing bad"]);
        assert_json_rows(&c, id_of(&job), &[text_row(0, "good"), text_row(2, "fine")]);
        // Beyond --allow-failures, the job fails naming it.
        let cmd = "cmd=echo cannot take {} >&2; exit 3";
        let job = run_failing(&c, &exec_args(cmd, &verdicts, &once, model));
        assert_eq!(job["state"], "failed", "job: {job}");
        let error = job["error"].as_str().unwrap_or_default();
        assert!(
            error.contains("exit status: 3") && error.contains("cannot take "),
            "job: {job}"
        );
    }
}

#[test]
fn an_output_over_max_result_bytes_fails_its_task_only() {
    let c = cluster();
    let file = write_inputs(
        &c,
        "lengths.txt",
        b"short\nexactly sixteen!\nthis line is longer than sixteen bytes\nok\n",
    );
    for model in MODELS {
        let job = c.submit_json(&[
            "echo",
            "--inputs",
            &file,
            "--max-result-bytes",
            "16",
            "--allow-failures",
            "1",
            "--model",
            model,
            "--wait",
        ]);
        assert_one_failed(
            &job,
            3,
            2,
            &[
                "limit of 16 bytes",
                "--max-result-bytes",
                "output too large",
            ],
        );
        // Another attempt would make the same output: none is made.
        assert_eq!(job["retries"], 0, "job: {job}");
        assert_json_rows(
            &c,
            id_of(&job),
            &[
                text_row(0, "short"),
                text_row(1, "exactly sixteen!"),
                text_row(3, "ok"),
            ],
        );
    }
    // The default bound is 1 MiB: exactly that much passes, a byte more
    // fails, at once (the default allows 3 attempts).
    let job = c.submit_json(&[
        "exec",
        "--arg",
        "cmd=head -c $((1048576 + {})) /dev/zero | tr '\\0' x",
        "--range",
        "0..2",
        "--allow-failures",
        "1",
        "--model",
        "thread",
        "--wait",
    ]);
    assert_one_failed(&job, 1, 1, &["limit of 1048576 bytes", "1 attempt"]);
    assert_eq!(job["retries"], 0, "job: {job}");
    assert_json_rows(&c, id_of(&job), &[text_row(0, &"x".repeat(1 << 20))]);
    // The coordinator's own limit is 32 MiB.
    let args = [
        "submit",
        "echo",
        "--range",
        "0..1",
        "--max-result-bytes",
        "33554433",
    ];
    assert_error(
        &c.brigade(&args),
        &args,
        2,
        &["max_result_bytes 33554433", "limit of 33554432"],
    );
}

#[test]
fn reductions_give_exact_totals_on_every_model() {
    let c = cluster();
    let mixed = write_inputs(&c, "mixed.txt", b"1\nx\n3\n");
    for model in MODELS {
        let m = ["--model", model];
        for (args, tasks, total) in [
            (
                vec!["noop", "--range", "0..1000", "--reduce", "sum"],
                1000,
                499_500,
            ),
            (
                vec!["noop", "--range", "0..1000", "--reduce", "count"],
                1000,
                1000,
            ),
            (
                vec!["noop", "--range", "0..1000", "--reduce", "max"],
                1000,
                999,
            ),
            (
                vec![
                    "sum-squares",
                    "--range",
                    "10..1000",
                    "--chunk",
                    "10",
                    "--reduce",
                    "min",
                ],
                99,
                sum_squares(10, 20),
            ),
            (
                vec![
                    "sum-squares",
                    "--range",
                    "10..1000",
                    "--chunk",
                    "10",
                    "--reduce",
                    "max",
                ],
                99,
                sum_squares(990, 1000),
            ),
            // sum-squares sums unless told otherwise.
            (
                vec!["sum-squares", "--range", "10..1000", "--chunk", "10"],
                99,
                sum_squares(10, 1000),
            ),
            (vec!["echo", "--range", "0..7", "--reduce", "count"], 7, 7),
        ] {
            let args = [&args[..], &m[..]].concat();
            let job = c.submit_json(&[&args[..], &["--wait"]].concat());
            assert_succeeded(&job, tasks);
            assert_eq!(job["total"], total.to_string(), "{args:?}: {job}");
            // `submit --wait` prints the total alone on stdout; `job ID`
            // after its summary.
            let wait = [&["submit"], &args[..], &["--wait"]].concat();
            assert_eq!(c.brigade_ok(&wait), format!("{total}\n"), "{wait:?}");
            let id = id_of(&job).to_string();
            let shown = c.brigade_ok(&["job", &id]);
            assert!(
                shown.ends_with(&format!("\ntotal: {total}\n")),
                "`job {id}`: {shown}"
            );
        }
        // No reduction: no total.
        let job = c.submit_json(&["noop", "--range", "0..3", "--model", model, "--wait"]);
        assert_eq!(job["total"], Value::Null, "job: {job}");
        // A byte output under --reduce sum fails its task; the integers
        // still add up.
        let args = [
            "exec",
            "--arg",
            "cmd=printf %s {}",
            "--inputs",
            &mixed,
            "--reduce",
            "sum",
            "--max-attempts",
            "1",
            "--model",
            model,
        ];
        let job = c.submit_json(&[&args[..], &["--allow-failures", "1", "--wait"]].concat());
        assert_one_failed(&job, 2, 1, &["not an unsigned integer", "--reduce sum"]);
        assert_eq!(job["total"], "4", "job: {job}");
        let job = run_failing(&c, &args);
        assert_eq!(job["state"], "failed", "job: {job}");
        assert!(
            job["error"]
                .as_str()
                .unwrap_or_default()
                .contains("--reduce sum"),
            "job: {job}"
        );
    }
}

/// A `results ID --follow` run and its stdout lines.
struct Follower {
    id: u64,
    run: BackgroundRun,
    lines: Receiver<String>,
    got: Vec<String>,
}

impl Follower {
    fn start(c: &Cluster, id: u64, format: &str) -> Follower {
        let mut run =
            c.spawn_brigade(&["results", &id.to_string(), "--follow", "--format", format]);
        let lines = run.stdout_lines();
        Follower {
            id,
            run,
            lines,
            got: Vec::new(),
        }
    }

    /// Waits for the first line and asserts the job still ran then: rows
    /// stream while the job runs, not only at its end.
    fn first_line_while_running(&mut self, c: &Cluster) {
        let first = self
            .lines
            .recv_timeout(DEADLINE)
            .expect("a first row while the job runs");
        let job = c.job_json(self.id);
        assert!(
            !common::ended(&job),
            "the first row came only once the job had ended: {job}"
        );
        self.got.push(first);
    }

    /// Every line it printed, once it exited (successfully).
    fn until_it_ends(mut self) -> Vec<String> {
        self.got.extend(self.lines.iter());
        let o = self.run.finish(CLI_DEADLINE);
        assert!(
            o.status.success(),
            "`results --follow` failed: {}",
            stderr(&o)
        );
        self.got
    }
}

#[test]
fn results_follow_prints_every_row_once_in_order_and_ends_with_the_job() {
    // Results served from the state file (durable ones only) here, from
    // memory for the job with a gap below.
    let c = cluster_with_state();
    // 30 tasks of 25 ms one at a time on each model (~0.75 s each, the
    // three at once): rows come in while the jobs run.
    let mut follows = Vec::new();
    for model in MODELS {
        let job = c.submit_json(&[
            "sleep",
            "--arg",
            "ms=25",
            "--range",
            "0..30",
            "--max-in-flight",
            "1",
            "--model",
            model,
        ]);
        follows.push((model, Follower::start(&c, id_of(&job), "jsonl")));
    }
    for (_, f) in &mut follows {
        f.first_line_while_running(&c);
    }
    let want: Vec<String> = (0..30u64)
        .map(|i| row_json(&int_row(i, u128::from(i))).to_string())
        .collect();
    for (model, f) in follows {
        let id = f.id;
        let got: Vec<String> = f
            .until_it_ends()
            .iter()
            .map(|l| without_run_fields(parse_json(&["results"], l)).to_string())
            .collect();
        assert_eq!(got, want, "{model}: `results {id} --follow`");
        assert_succeeded(&c.job_json(id), 30);
    }
    // A task that fails for good leaves a gap: the rows after it still
    // come, once each, and the follower ends with the job.
    let c = cluster();
    let job = c.submit_json(&[
        "exec",
        "--arg",
        "cmd=sleep 0.03; [ {} != 2 ] || exit 1; echo {}",
        "--range",
        "0..12",
        "--max-in-flight",
        "1",
        "--max-attempts",
        "1",
        "--allow-failures",
        "1",
        "--model",
        "thread",
    ]);
    let id = id_of(&job);
    let mut f = Follower::start(&c, id, "csv");
    f.first_line_while_running(&c);
    let got = f.until_it_ends();
    let want = std::iter::once("index,value".to_string())
        .chain((0..12).filter(|&i| i != 2).map(|i| format!("{i},{i}")))
        .collect::<Vec<_>>()
        .join("\n")
        + "\n";
    let got = csv_index_value(&(got.join("\n") + "\n"));
    assert_eq!(got, want, "`results {id} --follow --format csv`");
    // Following an ended job prints its rows and ends.
    let out = c.brigade_ok(&["results", &id.to_string(), "--follow", "--format", "csv"]);
    assert_eq!(csv_index_value(&out), want);
}

#[test]
fn an_inputs_job_survives_a_coordinator_sigkill_with_exact_outputs() {
    let (mut c, args) = Cluster::start_durable(&FAST_LEASES);
    c.spawn_worker_with("w1", Slots::new(0, 0, 4), &["--allow-exec", "--insecure"]);
    c.wait_workers(1);
    let lines: Vec<String> = (0..400)
        .map(|i| format!("item {i}: naïve, \"q\""))
        .collect();
    let file = write_inputs(&c, "items.txt", (lines.join("\n") + "\n").as_bytes());
    // 200 tasks of two items and ≥ 20 ms each, 4 at a time: ≥ 1 s.
    let job = c.submit_json(&[
        "exec",
        "--arg",
        "cmd=sleep 0.02; printf '%s!' {}",
        "--inputs",
        &file,
        "--chunk",
        "2",
        "--max-in-flight",
        "4",
        "--model",
        "async",
    ]);
    let id = id_of(&job);
    let rows: Vec<Row> = lines
        .chunks(2)
        .enumerate()
        .map(|(i, pair)| text_row(i as u64, &format!("{}!{}!", pair[0], pair[1])))
        .collect();
    c.wait_mid_job(id, 40);
    c.kill_coordinator();
    c.restart_coordinator(&args);
    let end = c.wait_job(id);
    assert_succeeded(&end, 200);
    assert_json_rows(&c, id, &rows);
    // Ended and durable: one more crash changes nothing.
    c.kill_coordinator();
    c.restart_coordinator(&args);
    assert_succeeded(&c.job_json(id), 200);
    assert_json_rows(&c, id, &rows);
}

#[test]
fn ten_thousand_lines_through_echo_on_async_slots_come_back_exactly() {
    let c = cluster();
    let lines: Vec<String> = (0..10_000)
        .map(|i| format!("line {i:05}, \"naïve\" ✓"))
        .collect();
    let file = write_inputs(&c, "ten-thousand.txt", (lines.join("\n") + "\n").as_bytes());
    let id = run_ok(
        &c,
        &[
            "echo", "--inputs", &file, "--model", "async", "--reduce", "count",
        ],
        10_000,
    );
    assert_eq!(c.job_json(id)["total"], "10000");
    let got = jsonl_rows(&c, id);
    assert_eq!(got.len(), lines.len());
    for (i, (g, line)) in got.iter().zip(&lines).enumerate() {
        assert_eq!(g, &row_json(&text_row(i as u64, line)), "row {i}");
    }
}

#[test]
fn concat_prints_the_outputs_one_per_line() {
    let c = cluster();
    let file = write_inputs(
        &c,
        "names.txt",
        "Pizza Hut\n\nDa Mario, Trattoria\nCafé\n".as_bytes(),
    );
    for model in MODELS {
        let args = [
            "submit", "echo", "--inputs", &file, "--reduce", "concat", "--model", model, "--wait",
        ];
        let out = c.brigade_ok(&args);
        assert_eq!(out, "Pizza Hut\nDa Mario, Trattoria\nCafé\n", "{args:?}");
        let job = c.submit_json(&[
            "noop", "--range", "0..5", "--reduce", "concat", "--model", model, "--wait",
        ]);
        assert_succeeded(&job, 5);
        assert_eq!(job["total"], Value::Null, "job: {job}");
        let shown = c.brigade_ok(&["job", &id_of(&job).to_string()]);
        assert!(
            shown.ends_with("\n0\n1\n2\n3\n4\n")
                && shown.starts_with(&format!("job {} noop succeeded", id_of(&job))),
            "`job ID` of a concat job: {shown}"
        );
    }
    // A task that failed for good leaves no line.
    let job = c.submit_json(&[
        "echo",
        "--inputs",
        &file,
        "--reduce",
        "concat",
        "--max-result-bytes",
        "10",
        "--max-attempts",
        "1",
        "--allow-failures",
        "1",
        "--wait",
    ]);
    assert_one_failed(&job, 2, 1, &["limit of 10 bytes"]);
    let shown = c.brigade_ok(&["job", &id_of(&job).to_string()]);
    assert!(shown.ends_with("\nPizza Hut\nCafé\n"), "{shown}");
}

#[test]
fn results_of_70_mib_stream_back_from_memory_and_from_the_state_file() {
    // 70 outputs of 1 MiB (the default bound) each: more than one gRPC
    // message may carry (64 MiB), so results must come in several.
    let row = |i: u64| format!("{i:07}{}", "x".repeat((1 << 20) - 7));
    let args = [
        "exec",
        "--arg",
        "cmd=printf %07d {}; head -c 1048569 /dev/zero | tr '\\0' x",
        "--range",
        "0..70",
        "--model",
        "thread",
    ];
    for c in [cluster(), cluster_with_state()] {
        let id = run_ok(&c, &args, 70);
        assert_big_text_rows(&c, id, 70, row);
    }
}

/// The job's `n` rows are the texts `row(0..n)`; a difference is reported
/// by index and size (the rows are too large to print).
fn assert_big_text_rows(c: &Cluster, id: u64, n: u64, row: impl Fn(u64) -> String) {
    let got = jsonl_rows(c, id);
    assert_eq!(got.len() as u64, n);
    for (i, g) in (0..n).zip(&got) {
        assert!(
            g == &row_json(&text_row(i, &row(i))),
            "row {i} differs: index {}, {} bytes",
            g["index"],
            g["value"].as_str().map_or(0, str::len)
        );
    }
}

#[test]
fn inputs_of_72_mib_reach_the_workers_in_bounded_messages_with_no_retry() {
    // 80 items of 900 KB: one assignment of them all would pass the link's
    // 64 MiB message limit, and so would one batch of their outputs; both
    // are sent in parts, so no link breaks and no task runs twice.
    let c = cluster();
    let line = |i: u64| format!("{i:06}{}", "y".repeat(900_000 - 6));
    let text: String = (0..80).map(|i| line(i) + "\n").collect();
    let file = write_inputs(&c, "big-items.txt", text.as_bytes());
    let id = run_ok(&c, &["echo", "--inputs", &file, "--model", "async"], 80);
    let job = c.job_json(id);
    assert_eq!(job["retries"], 0, "job: {job}");
    assert_big_text_rows(&c, id, 80, line);
}

#[test]
fn results_in_completion_order_say_how_each_task_ran() {
    // Served from memory, then from the state file.
    for c in [cluster(), cluster_with_state()] {
        // The later a task's line, the sooner it ends: 2, then 1, then 0.
        let file = write_inputs(&c, "sleeps.txt", b"0.8\n0.4\n0\n");
        let id = run_ok(
            &c,
            &exec_args("cmd=sleep {}; echo {}", &file, &[], "async"),
            3,
        );
        let args = [
            "results",
            &id.to_string(),
            "--order",
            "completion",
            "--format",
            "jsonl",
        ];
        let rows: Vec<Value> = c
            .brigade_ok(&args)
            .lines()
            .map(|l| parse_json(&args, l))
            .collect();
        let order: Vec<u64> = rows.iter().map(|r| r["index"].as_u64().unwrap()).collect();
        assert_eq!(order, [2, 1, 0], "{rows:?}");
        for r in &rows {
            let i = r["index"].as_u64().unwrap();
            assert_eq!(r["input"], format!("{i}..{}", i + 1), "{r}");
            assert_eq!(r["attempts"], 1, "{r}");
            assert_eq!(r["worker"], "w1", "{r}");
            assert_eq!(r["model"], "async", "{r}");
            // Each slept its line's seconds.
            let slept = [800.0, 400.0, 0.0][i as usize];
            let wall = r["wall_ms"].as_f64().unwrap();
            assert!(wall >= slept, "wall {wall} ms < {slept} ms: {r}");
            assert!(r["cpu_ms"].as_f64().unwrap() >= 0.0, "{r}");
        }
        // Index order is the default; csv carries the same columns.
        let csv = results_as(&c, id, "csv");
        assert_eq!(csv_index_value(&csv), "index,value\n0,0.8\n1,0.4\n2,0\n");
        // A bad order is refused, naming the allowed ones.
        let bad = c.brigade(&["results", &id.to_string(), "--order", "random"]);
        assert_error(&bad, &["results"], 2, &["index, completion"]);
    }
}
