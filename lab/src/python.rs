//! `--with-python`: the seed's three Python models (multiprocessing.Pool,
//! ThreadPoolExecutor, asyncio + aiohttp) on the same workloads and HTTP
//! target, from bench/python/baseline.py (embedded, so the binary needs no
//! checkout). Its JSON lines become rows of the same table and plots; a
//! machine without python3 gets a note, not a failure.

use std::io::{BufRead, BufReader, Read};
use std::process::{Command, Stdio};

use super::plan::{is_python, WorkloadId};
use super::report::RunRecord;

/// The script, as shipped in the repository.
const SCRIPT: &str = include_str!("../../bench/python/baseline.py");

/// What a Python baseline run brought back.
pub struct PythonRuns {
    pub runs: Vec<RunRecord>,
    /// The script's JSON lines as it wrote them (interpreter facts included).
    pub lines: Vec<serde_json::Value>,
    /// Why rows are missing (no python3, a crash, skipped workloads).
    pub notes: Vec<String>,
}

/// How the script is asked to run.
pub struct PythonArgs<'a> {
    pub target_url: &'a str,
    pub quick: bool,
    pub reps: u32,
    pub workloads: &'a [WorkloadId],
    pub cores: u32,
    pub io_in_flight: u32,
    pub async_in_flight: u32,
    /// Scale the rows are shown at (the first cluster size).
    pub scale: u32,
}

/// Parses one of the script's lines into a run; `None` for lines that are
/// not runs of a workload brigade knows.
pub fn parse_line(v: &serde_json::Value, scale: u32) -> Option<RunRecord> {
    if v["kind"] != "run" {
        return None;
    }
    let workload = WorkloadId::parse(v["workload"].as_str()?).ok()?;
    let label = v["label"].as_str()?.to_string();
    if !is_python(&label) {
        return None;
    }
    let verified = v["verified"].as_bool() == Some(true);
    let error = (!verified).then(|| {
        v["error"]
            .as_str()
            .unwrap_or("results not verified")
            .to_string()
    });
    let tasks = v["tasks"].as_u64()?;
    Some(RunRecord {
        scale,
        workload,
        label,
        // Not a brigade slot model: no tasks report their own times here.
        model: None,
        rep: v["rep"].as_u64().unwrap_or(0) as u32,
        in_flight: v["in_flight"].as_u64().unwrap_or(1) as u32,
        tasks,
        chunk: v["chunk"].as_u64().unwrap_or(1),
        represents: v["represents_tasks"].as_u64().unwrap_or(tasks),
        wall_s: v["wall_s"].as_f64().unwrap_or(0.0),
        cpu_s: None,
        cores: v["cores"].as_u64().unwrap_or(1) as usize,
        peak_rss_bytes: None,
        task_cpu_s: 0.0,
        task_wall_s: 0.0,
        error,
        routed_to: None,
        routing: None,
    })
}

/// Runs the script with `python3`, handing each of its progress lines to
/// `progress` as it comes; every problem becomes a note.
pub fn run(a: &PythonArgs, progress: impl Fn(&str)) -> PythonRuns {
    let mut out = PythonRuns {
        runs: Vec::new(),
        lines: Vec::new(),
        notes: Vec::new(),
    };
    let version = Command::new("python3")
        .arg("--version")
        .stdin(Stdio::null())
        .output();
    match version {
        Ok(v) if v.status.success() => {}
        _ => {
            out.notes.push(
                "--with-python: python3 is not on PATH, so the Python baseline was skipped \
                 (install python3, then `pip install -r bench/python/requirements.txt` for aiohttp)"
                    .into(),
            );
            return out;
        }
    }
    let dir = std::env::temp_dir().join(format!("brigade-bench-python-{}", std::process::id()));
    let script = dir.join("baseline.py");
    if let Err(e) = std::fs::create_dir_all(&dir).and_then(|()| std::fs::write(&script, SCRIPT)) {
        out.notes.push(format!(
            "--with-python: could not write the script to {}: {e}",
            script.display()
        ));
        return out;
    }
    let workloads: Vec<&str> = a.workloads.iter().map(|w| w.name()).collect();
    let mut cmd = Command::new("python3");
    cmd.arg(&script)
        .args(["--target", a.target_url])
        .args(["--reps", &a.reps.to_string()])
        .args(["--workloads", &workloads.join(",")])
        .args(["--cores", &a.cores.to_string()])
        .args(["--io-in-flight", &a.io_in_flight.to_string()])
        .args(["--async-in-flight", &a.async_in_flight.to_string()])
        .stdin(Stdio::null());
    if a.quick {
        cmd.arg("--quick");
    }
    let child = cmd.stdout(Stdio::piped()).stderr(Stdio::piped()).spawn();
    let mut child = match child {
        Ok(c) => c,
        Err(e) => {
            let _ = std::fs::remove_dir_all(&dir);
            out.notes
                .push(format!("--with-python: could not run python3: {e}"));
            return out;
        }
    };
    // stdout on its own thread, so that neither pipe can fill and stall it.
    let stdout = child.stdout.take().map(|mut o| {
        std::thread::spawn(move || {
            let mut s = String::new();
            let _ = o.read_to_string(&mut s);
            s
        })
    });
    let mut other = Vec::new();
    if let Some(err) = child.stderr.take() {
        for line in BufReader::new(err).lines().map_while(Result::ok) {
            match line.strip_prefix("python baseline: ") {
                // Progress shows now; notes stay for the reader.
                Some(n) if n.contains(" rep ") => progress(&line),
                Some(n) => out.notes.push(format!("python baseline: {n}")),
                None => other.push(line),
            }
        }
    }
    let status = child.wait();
    let stdout = stdout.and_then(|h| h.join().ok()).unwrap_or_default();
    let _ = std::fs::remove_dir_all(&dir);
    match status {
        Ok(s) if s.success() => {}
        failed => {
            out.notes.extend(
                other
                    .iter()
                    .rev()
                    .take(5)
                    .rev()
                    .map(|l| format!("python baseline: {l}")),
            );
            out.notes.push(format!(
                "python baseline: the script failed ({}); its rows are missing",
                failed.map_or_else(|e| e.to_string(), |s| s.to_string())
            ));
        }
    }
    for line in stdout.lines() {
        let Ok(v) = serde_json::from_str::<serde_json::Value>(line) else {
            out.notes
                .push(format!("python baseline: not a JSON line: {line:?}"));
            continue;
        };
        if let Some(r) = parse_line(&v, a.scale) {
            out.runs.push(r);
            out.lines.push(v);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn script_lines_become_runs_and_unverified_ones_fail() {
        let ok = json!({"kind": "run", "runtime": "python", "workload": "W_NOOP",
            "label": "py-async", "model": "async", "rep": 1, "in_flight": 32,
            "tasks": 2000, "chunk": 1, "represents_tasks": 2000, "wall_s": 0.05,
            "cores": 2, "verified": true, "error": null});
        let r = parse_line(&ok, 1).unwrap();
        assert_eq!(r.workload, WorkloadId::Noop);
        assert_eq!((r.label.as_str(), r.rep, r.in_flight), ("py-async", 1, 32));
        assert!(r.ok() && r.model.is_none());
        let mut bad = ok.clone();
        bad["verified"] = json!(false);
        bad["error"] = json!("task 3 returned 4, expected 3");
        assert_eq!(
            parse_line(&bad, 2).unwrap().error.as_deref(),
            Some("task 3 returned 4, expected 3")
        );
        let mut unknown = ok.clone();
        unknown["workload"] = json!("W_GPU");
        assert!(parse_line(&unknown, 1).is_none());
        let mut other = ok;
        other["kind"] = json!("startup");
        assert!(parse_line(&other, 1).is_none());
        assert!(is_python(super::super::plan::PYTHON_SERIAL) && !is_python("process"));
    }
}
