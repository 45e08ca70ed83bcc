//! `brigade bench --quick --overhead --workloads <all> --out DIR` end to end
//! with the real binary: every run verified, results.jsonl parses with the
//! machine facts, results.csv has a line per run, every workload but W_GRAIN
//! has a verified `--model auto` row routed to process or async slots and a
//! verdict line saying how it did, W_GRAIN has its rows, its verdict and its
//! plot, the overhead rows and single-task round trips are there, every SVG
//! is well-formed XML and report.html shows them. `brigade bench --job`: a
//! user's own job (echo over a generated inputs file) on every model with
//! its rows, verification and files, and a job whose models disagree failing
//! the rows that differ, naming the index.

mod common;

use std::process::{Command, Stdio};
use std::time::Duration;

use common::{assert_success, run_brigade, stdout, TempDir};

/// A small well-formedness check: one root element, every tag closed in
/// order, attribute values quoted, only the five named entities or numeric
/// references, no stray `<` or `&` in text.
fn check_xml(text: &str) -> Result<(), String> {
    let body = match text.strip_prefix("<?xml") {
        Some(rest) => &rest[rest.find("?>").ok_or("unterminated XML declaration")? + 2..],
        None => text,
    };
    let check_text = |t: &str| -> Result<(), String> {
        let mut rest = t;
        while let Some(i) = rest.find('&') {
            let end = rest[i..].find(';').ok_or(format!("bare & in {t:?}"))?;
            let ent = &rest[i + 1..i + end];
            let named = ["amp", "lt", "gt", "quot", "apos"].contains(&ent);
            let numeric = ent.strip_prefix('#').is_some_and(|n| {
                n.parse::<u32>().is_ok()
                    || n.strip_prefix('x')
                        .is_some_and(|h| u32::from_str_radix(h, 16).is_ok())
            });
            if !named && !numeric {
                return Err(format!("unknown entity &{ent};"));
            }
            rest = &rest[i + end + 1..];
        }
        Ok(())
    };
    let mut stack: Vec<&str> = Vec::new();
    let mut roots = 0;
    let mut rest = body;
    while let Some(open) = rest.find('<') {
        let before = &rest[..open];
        if stack.is_empty() && !before.trim().is_empty() {
            return Err(format!("text outside the root: {before:?}"));
        }
        check_text(before)?;
        let close = rest[open..].find('>').ok_or("unterminated tag")? + open;
        let tag = &rest[open + 1..close];
        if tag.contains('<') {
            return Err(format!("'<' inside tag {tag:?}"));
        }
        if let Some(name) = tag.strip_prefix('/') {
            match stack.pop() {
                Some(top) if top == name.trim() => {}
                top => return Err(format!("</{name}> closes {top:?}")),
            }
        } else if !tag.starts_with('!') && !tag.starts_with('?') {
            let self_closing = tag.ends_with('/');
            let inner = tag.trim_end_matches('/');
            let name = inner.split_whitespace().next().ok_or("empty tag")?;
            // Attributes: name="value" pairs, values quoted, entities valid.
            let mut attrs = inner[name.len()..].trim();
            while !attrs.is_empty() {
                let eq = attrs
                    .find('=')
                    .ok_or(format!("attribute without value in {tag:?}"))?;
                let q = attrs[eq + 1..].chars().next().ok_or("missing value")?;
                if q != '"' && q != '\'' {
                    return Err(format!("unquoted attribute in {tag:?}"));
                }
                let vend = attrs[eq + 2..].find(q).ok_or("unterminated attribute")? + eq + 2;
                check_text(&attrs[eq + 2..vend])?;
                attrs = attrs[vend + 1..].trim_start();
            }
            if stack.is_empty() {
                roots += 1;
            }
            if !self_closing {
                stack.push(name);
            }
        }
        rest = &rest[close + 1..];
    }
    if !rest.trim().is_empty() || !stack.is_empty() {
        return Err(format!("unclosed elements {stack:?}"));
    }
    if roots != 1 {
        return Err(format!("{roots} root elements"));
    }
    Ok(())
}

#[test]
fn the_xml_check_rejects_broken_documents() {
    assert_eq!(
        check_xml("<?xml version=\"1.0\"?>\n<svg a=\"1\"><g/><t>a &amp; b</t></svg>\n"),
        Ok(())
    );
    assert!(check_xml("<svg><g></svg>").is_err());
    assert!(check_xml("<svg a=1></svg>").is_err());
    assert!(check_xml("<svg>a & b</svg>").is_err());
    assert!(check_xml("<svg></svg><svg></svg>").is_err());
    assert!(check_xml("<svg><t>x</g></svg>").is_err());
}

#[test]
fn quick_bench_writes_verified_results_plots_and_report() {
    let tmp = TempDir::new("bench-test");
    let dir = tmp.path();
    let args = [
        "bench",
        "--quick",
        "--reps",
        "1",
        "--overhead",
        "--workloads",
        "W_CPU,W_CPU_HEAVY,W_NOOP,W_FASTIO,W_SLOWIO,W_GRAIN",
        "--out",
        &dir.to_string_lossy(),
    ];
    let out = run_brigade(&args, &[], Duration::from_secs(120));
    assert_success(&args, &out);
    let stdout = stdout(&out);
    for w in [
        "W_CPU",
        "W_CPU_HEAVY",
        "W_NOOP",
        "W_FASTIO",
        "W_SLOWIO",
        "W_GRAIN",
    ] {
        assert!(stdout.contains(w), "table lacks {w}:\n{stdout}");
    }
    assert!(
        stdout.contains("smallest chunk with efficiency >= 0.9"),
        "{stdout}"
    );
    assert!(stdout.contains("per-task overhead"), "{stdout}");
    assert!(stdout.contains("single-task round trip"), "{stdout}");
    // One auto line under each verdict but W_GRAIN's.
    let auto_lines: Vec<&str> = stdout
        .lines()
        .filter(|l| l.starts_with("  => auto: "))
        .collect();
    assert_eq!(auto_lines.len(), 5, "{stdout}");
    for l in &auto_lines {
        assert!(
            l.starts_with("  => auto: routed to process (probes: CPU ")
                || l.starts_with("  => auto: routed to async (probes: CPU "),
            "{l}"
        );
        // On a loaded machine every forced row may fail the physics checks
        // (the serial baseline ran slow): then there is nothing to compare.
        assert!(
            l.contains("x the ") || l.contains("measurement anomaly (not ranked)"),
            "{l}"
        );
    }
    assert!(stdout.contains("verdict"), "{stdout}");
    assert!(
        stdout
            .lines()
            .filter(|l| {
                l.starts_with("W_")
                    || l.contains("verdict")
                    || l.starts_with("noop")
                    || l.starts_with("spin")
                    || l.starts_with("  => auto")
            })
            .all(|l| !l.contains("FAILED")),
        "{stdout}"
    );

    let jsonl = std::fs::read_to_string(dir.join("results.jsonl")).expect("results.jsonl");
    let mut runs = 0;
    let mut grain_runs = 0;
    let mut overhead = Vec::new();
    let mut startups = 0;
    let mut auto_runs = Vec::new();
    let mut auto_verdicts = 0;
    let mut round_trips = Vec::new();
    for line in jsonl.lines() {
        let v: serde_json::Value = serde_json::from_str(line).expect("a JSON line");
        assert!(v["machine"]["cores"].as_u64().unwrap_or(0) >= 1, "{line}");
        assert!(!v["machine"]["kernel"].as_str().unwrap_or("").is_empty());
        assert!(!v["machine"]["brigade_version"]
            .as_str()
            .unwrap_or("")
            .is_empty());
        match v["kind"].as_str() {
            Some("run") => {
                runs += 1;
                assert_eq!(v["verified"], true, "{line}");
                assert!(v["error"].is_null(), "{line}");
                assert!(v["wall_s"].as_f64().unwrap() > 0.0, "{line}");
                assert!(v["tasks"].as_u64().unwrap() > 0, "{line}");
                if v["workload"] == "W_GRAIN" {
                    grain_runs += 1;
                    assert!(v["tasks"].as_u64().unwrap() <= 6_000, "{line}");
                }
                if v["label"] == "auto" {
                    assert_eq!(v["model"], "auto", "{line}");
                    let to = v["routed_to"].as_str().unwrap_or("");
                    assert!(to == "process" || to == "async", "{line}");
                    assert!(
                        v["routing"].as_str().unwrap_or("").contains("probe"),
                        "{line}"
                    );
                    auto_runs.push(v["workload"].as_str().unwrap_or("").to_string());
                } else {
                    assert!(v["routed_to"].is_null(), "{line}");
                }
            }
            Some("verdict") => {
                assert!(!v["text"].as_str().unwrap_or("").is_empty(), "{line}");
                if v["workload"] == "W_GRAIN" {
                    assert!(v["auto"].is_null(), "{line}");
                    continue;
                }
                // The verdict names a forced model; auto is judged against it.
                let winner = v["winner"].as_str().unwrap_or("");
                assert!(
                    ["process", "thread", "async"].contains(&winner.split(' ').next().unwrap()),
                    "{line}"
                );
                let a = &v["auto"];
                assert_eq!(a["verified"], true, "{line}");
                let to = a["routed_to"].as_str().unwrap_or("");
                assert!(to == "process" || to == "async", "{line}");
                let share = a["probe_cpu_share"].as_f64().unwrap();
                assert!((0.0..=1.5).contains(&share), "{line}");
                // The 50% rule on the probes (the share is printed rounded
                // to a percent, so a share of about 50% can go either way),
                // unless the probes were too short for process slots.
                let routing = a["routing"].as_str().unwrap_or("");
                if routing.contains("too short") {
                    assert_eq!(to, "async", "{line}");
                } else if (share - 0.5).abs() > 0.006 {
                    assert_eq!(to == "process", share >= 0.5, "{line}");
                }
                let ratio = a["vs_best"].as_f64().unwrap();
                let expected = a["tasks_per_s"].as_f64().unwrap()
                    / a["compared_tasks_per_s"].as_f64().unwrap();
                assert!(ratio > 0.0 && (ratio - expected).abs() < 1e-9, "{line}");
                assert_eq!(
                    a["picked_best_model"],
                    to == a["compared_with"].as_str().unwrap(),
                    "{line}"
                );
                auto_verdicts += 1;
            }
            Some("round_trip") => {
                assert_eq!(v["verified"], true, "{line}");
                assert_eq!(v["samples"], 50, "{line}");
                assert_eq!(v["samples_us"].as_array().map(Vec::len), Some(50));
                let median = v["median_us"].as_f64().unwrap();
                let p90 = v["p90_us"].as_f64().unwrap();
                let p99 = v["p99_us"].as_f64().unwrap();
                assert!(0.0 < median && median <= p90 && p90 <= p99, "{line}");
                round_trips.push(v["model"].as_str().unwrap_or("").to_string());
            }
            Some("overhead") => {
                assert_eq!(v["verified"], true, "{line}");
                assert!(v["ideal_s"].as_f64().unwrap() >= 0.0, "{line}");
                assert!(v["overhead_us_per_task"].as_f64().is_some(), "{line}");
                overhead.push((
                    v["workload"].as_str().unwrap_or("").to_string(),
                    v["model"].as_str().unwrap_or("").to_string(),
                ));
            }
            Some("startup") => {
                startups += 1;
                assert!(v["first_task_s"].as_f64().unwrap() > 0.0, "{line}");
            }
            other => panic!("unknown line kind {other:?}: {line}"),
        }
    }
    // 5 workloads: `1 slot` rows, 3 forced models and auto each, the true
    // serial and the in-process rows of the 2 CPU workloads, the wide async
    // row of W_SLOWIO; W_GRAIN: 3 widths of serial, 3 models and in-process
    // (no auto).
    assert_eq!(grain_runs, 3 * 5, "{jsonl}");
    assert_eq!(runs, 5 + 5 * 4 + 2 * 2 + 1 + grain_runs, "{jsonl}");
    assert_eq!(
        auto_runs,
        ["W_CPU", "W_CPU_HEAVY", "W_NOOP", "W_FASTIO", "W_SLOWIO"],
        "{jsonl}"
    );
    assert_eq!(auto_verdicts, 5, "{jsonl}");
    assert_eq!(round_trips, ["process", "thread", "async"], "{jsonl}");
    for task in ["W_NOOP", "spin"] {
        for model in ["process", "thread", "async"] {
            assert!(
                overhead.contains(&(task.to_string(), model.to_string())),
                "no overhead line for {task} on {model}: {overhead:?}"
            );
        }
    }
    // The wide cluster, then the one with a slot per core.
    assert_eq!(startups, 2);

    let csv = std::fs::read_to_string(dir.join("results.csv")).expect("results.csv");
    assert_eq!(csv.lines().count(), runs + 1);
    assert!(csv.lines().skip(1).all(|l| l.contains(",true,")), "{csv}");
    let auto_csv: Vec<&str> = csv.lines().filter(|l| l.contains(",auto,auto,")).collect();
    assert_eq!(auto_csv.len(), 5, "{csv}");
    for l in auto_csv {
        // routed_to, routing (quoted: it has commas), auto_vs_best.
        let ratio: f64 = l.rsplit(',').next().unwrap().parse().expect("auto_vs_best");
        assert!(ratio > 0.0, "{l}");
        assert!(
            l.contains(",process,\"auto: ") || l.contains(",async,\"auto: "),
            "{l}"
        );
    }

    let html = std::fs::read_to_string(dir.join("report.html")).expect("report.html");
    let mut svgs = 0;
    for entry in std::fs::read_dir(dir).expect("list the output dir") {
        let path = entry.expect("dir entry").path();
        if path.extension().is_some_and(|e| e == "svg") {
            svgs += 1;
            let text = std::fs::read_to_string(&path).expect("read svg");
            if let Err(e) = check_xml(&text) {
                panic!("{} is not well-formed XML: {e}", path.display());
            }
            let name = path.file_name().unwrap().to_string_lossy().into_owned();
            assert!(
                html.contains(&format!("src=\"{name}\"")),
                "report.html does not show {name}"
            );
        }
    }
    assert!(
        svgs >= 6,
        "expected throughput, efficiency, latency, grain, auto and overhead plots"
    );
    let grain = std::fs::read_to_string(dir.join("grain.svg")).expect("grain.svg");
    for s in ["process", "thread", "async", "in-process", "<polyline"] {
        assert!(grain.contains(s), "grain.svg lacks {s:?}");
    }
    assert!(dir.join("overhead.svg").exists());
    let auto_svg = std::fs::read_to_string(dir.join("auto.svg")).expect("auto.svg");
    // A bar per workload but W_GRAIN: every auto run has a figure.
    assert_eq!(auto_svg.matches("<rect x=").count(), 5, "{auto_svg}");
    assert!(!auto_svg.contains("FAILED"), "{auto_svg}");
    for w in [
        "kitchen",
        "GIL",
        "verdict",
        "W_GRAIN",
        "Per-task overhead",
        "With --model auto the coordinator",
        "Multiprocessing VS Threading VS AsyncIO in Python",
        "auto: routed to ",
        "Single-task round trip",
    ] {
        assert!(html.contains(w), "report.html lacks {w:?}");
    }
}

/// Why the Python baseline cannot run here, if it cannot.
fn python_missing() -> Option<String> {
    match Command::new("python3")
        .args(["-c", "import aiohttp"])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
    {
        Ok(s) if s.success() => None,
        Ok(_) => {
            Some("python3 has no aiohttp (pip install -r bench/python/requirements.txt)".into())
        }
        Err(e) => Some(format!("no python3 on PATH ({e})")),
    }
}

#[test]
fn python_baseline_rows_join_the_table_when_python_is_there() {
    if let Some(why) = python_missing() {
        eprintln!("skipped: {why}");
        return;
    }
    let tmp = TempDir::new("bench-py");
    let dir = tmp.path();
    let args = [
        "bench",
        "--quick",
        "--reps",
        "1",
        "--with-python",
        "--models",
        "thread",
        "--workloads",
        "W_CPU,W_FASTIO",
        "--out",
        &dir.to_string_lossy(),
    ];
    // Python's pools start slowly: a generous bound, but a bound.
    let out = run_brigade(&args, &[], Duration::from_secs(600));
    assert_success(&args, &out);
    let stdout = stdout(&out);
    for label in ["py-serial", "py-process", "py-thread", "py-async"] {
        assert!(stdout.contains(label), "table lacks {label}:\n{stdout}");
    }
    assert!(
        stdout.contains("W_FASTIO: brigade thread"),
        "no brigade-vs-Python line:\n{stdout}"
    );
    let jsonl = std::fs::read_to_string(dir.join("results.jsonl")).expect("results.jsonl");
    let py: Vec<serde_json::Value> = jsonl
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).expect("a JSON line"))
        .filter(|v| v["runtime"] == "python")
        .collect();
    // W_CPU: serial + 3 models; W_FASTIO: 3 models.
    assert_eq!(py.len(), 7, "{jsonl}");
    for v in &py {
        assert_eq!(v["verified"], true, "{v}");
        assert!(v["wall_s"].as_f64().unwrap() > 0.0, "{v}");
        assert!(!v["python"]["python_version"]
            .as_str()
            .unwrap_or("")
            .is_empty());
        assert!(v["machine"]["cores"].as_u64().unwrap_or(0) >= 1, "{v}");
    }
}

/// The runs of a bench's results.jsonl (`kind` = `run`).
fn run_lines(dir: &std::path::Path) -> Vec<serde_json::Value> {
    let jsonl = std::fs::read_to_string(dir.join("results.jsonl")).expect("results.jsonl");
    jsonl
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).expect("a JSON line"))
        .filter(|v| v["kind"] == "run")
        .collect()
}

#[test]
fn bench_job_runs_the_users_inputs_on_every_model_and_checks_they_agree() {
    let tmp = TempDir::new("bench-job");
    let dir = tmp.path().join("out");
    // 241 inputs with blank lines between them (skipped): 121 tasks of 2.
    let inputs = tmp.path().join("names.txt");
    let mut text = String::new();
    for i in 0..241 {
        text.push_str(&format!("restaurant \"{i}\" caf\u{e9}\n"));
        if i % 50 == 0 {
            text.push_str("\n   \n");
        }
    }
    std::fs::write(&inputs, text).expect("write the inputs");
    let args = [
        "bench",
        "--job",
        "echo",
        "--inputs",
        &inputs.to_string_lossy(),
        "--chunk",
        "2",
        "--reps",
        "2",
        "--async-in-flight",
        "64",
        "--out",
        &dir.to_string_lossy(),
    ];
    let out = run_brigade(&args, &[], Duration::from_secs(120));
    assert_success(&args, &out);
    let stdout = stdout(&out);
    assert!(stdout.contains("your job (--job)"), "{stdout}");
    assert!(!stdout.contains("FAILED"), "{stdout}");
    assert!(
        stdout.contains("  => verdict: ") && stdout.contains("  => auto: routed to "),
        "{stdout}"
    );
    // echo is an I/O workload: 32 in flight per model, plus the wide async row.
    let labels = [
        ("1 slot", "thread", 1),
        ("process", "process", 32),
        ("thread", "thread", 32),
        ("async", "async", 32),
        ("auto", "auto", 32),
        ("async C=64", "async", 64),
    ];
    let runs = run_lines(&dir);
    assert_eq!(runs.len(), 2 * labels.len(), "{runs:?}");
    for (label, model, in_flight) in labels {
        let rows: Vec<&serde_json::Value> = runs.iter().filter(|v| v["label"] == label).collect();
        assert_eq!(rows.len(), 2, "two repetitions of {label}");
        for v in rows {
            assert_eq!(v["workload"], "echo", "{v}");
            assert_eq!(v["model"], model, "{v}");
            assert_eq!(v["in_flight"], in_flight, "{v}");
            assert_eq!(v["verified"], true, "{v}");
            assert!(v["error"].is_null(), "{v}");
            assert_eq!(v["chunk"], 2, "{v}");
            // The baseline runs the first 100 tasks and stands for all 121.
            let tasks = if label == "1 slot" { 100 } else { 121 };
            assert_eq!(v["tasks"], tasks, "{v}");
            assert_eq!(v["represents_tasks"], 121, "{v}");
            assert!(v["wall_s"].as_f64().unwrap() > 0.0, "{v}");
            let job = &v["job"];
            assert_eq!(job["workload"], "echo", "{v}");
            assert_eq!(job["inputs"], inputs.to_string_lossy().as_ref(), "{v}");
            assert_eq!(job["inputs_format"], "text", "{v}");
            assert_eq!(job["inputs_items"], 241, "{v}");
            assert_eq!(
                (job["chunk"].as_u64(), job["tasks"].as_u64()),
                (Some(2), Some(121))
            );
        }
    }
    let csv = std::fs::read_to_string(dir.join("results.csv")).expect("results.csv");
    let lines: Vec<&str> = csv.lines().skip(1).collect();
    assert_eq!(lines.len(), 2 * labels.len(), "{csv}");
    for (label, _, _) in labels {
        let prefix = format!("1,echo,{label},");
        assert_eq!(
            lines
                .iter()
                .filter(|l| l.starts_with(&prefix) && l.contains(",true,,"))
                .count(),
            2,
            "{label} in {csv}"
        );
    }
    let html = std::fs::read_to_string(dir.join("report.html")).expect("report.html");
    assert!(
        html.contains("Every model ran your whole job"),
        "report.html"
    );
    // A panel titled echo, and auto's bar saying where it routed echo.
    for (svg, title) in [
        ("throughput.svg", ">\necho\n</text>"),
        ("latency.svg", ">\necho\n</text>"),
        ("auto.svg", ">\necho \u{2192} "),
    ] {
        let text = std::fs::read_to_string(dir.join(svg)).expect(svg);
        if let Err(e) = check_xml(&text) {
            panic!("{svg} is not well-formed XML: {e}");
        }
        assert!(text.contains(title), "{svg} lacks {title:?}");
    }
}

#[test]
fn bench_job_fails_the_models_whose_outputs_differ_naming_the_index() {
    let tmp = TempDir::new("bench-job-differ");
    let dir = tmp.path().join("out");
    let inputs = tmp.path().join("items.txt");
    std::fs::write(&inputs, "a\nb\nc\n").expect("write the inputs");
    // The shell's process id differs from task to task: no two runs agree.
    let args = [
        "bench",
        "--job",
        "exec",
        "--arg",
        "cmd=echo {} $$",
        "--inputs",
        &inputs.to_string_lossy(),
        "--models",
        "thread,async",
        "--reps",
        "1",
        "--out",
        &dir.to_string_lossy(),
    ];
    let out = run_brigade(&args, &[], Duration::from_secs(120));
    assert!(!out.status.success(), "{}", stdout(&out));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("2 run(s) FAILED"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let runs = run_lines(&dir);
    let labels: Vec<&str> = runs.iter().map(|v| v["label"].as_str().unwrap()).collect();
    // exec is a CPU workload: no wide async row.
    assert_eq!(labels, ["1 slot", "thread", "async"]);
    // The baseline ran the whole job (3 tasks): the others are held to it.
    assert_eq!(runs[0]["verified"], true, "{}", runs[0]);
    assert_eq!(runs[0]["tasks"], 3);
    for v in &runs[1..] {
        assert_eq!(v["verified"], false, "{v}");
        let e = v["error"].as_str().unwrap_or("");
        assert!(
            e.starts_with("outputs disagree at index 0: ") && e.ends_with(" in the 1 slot run"),
            "{e}"
        );
        assert!(e.contains("bytes \"a "), "{e}");
    }
}
