//! The files of `brigade bench --out DIR`: results.jsonl (one line per run,
//! per verdict (with how `--model auto` did), per `--overhead` run, per
//! model's single-task round trips and per start-up, every raw figure plus
//! the machine facts), results.csv (the workload runs, flat), the SVG plots
//! and report.html.

use std::collections::BTreeSet;
use std::path::Path;

use anyhow::Context;
use serde_json::json;

use brigade_client::InputsFormat;

use super::html;
use super::job::{JobInput, UserJob};
use super::outcome::{BenchOutcome, Plot};
use super::overhead::{self, OverheadRow, RoundTripRow};
use super::plan::{is_baseline, is_python, label_model, WorkloadId, IN_PROCESS, PYTHON_SERIAL};
use super::report::{probe_cpu_share, Row, RunRecord, Verdict, GRAIN_EFFICIENCY};
use super::svg::{self, Bar, BarPanel, LineAxes, LinePanel, Series};

pub fn run_json(o: &BenchOutcome, r: &RunRecord) -> serde_json::Value {
    let mut v = json!({
        "kind": "run",
        "scale": r.scale,
        "workload": r.workload.name(),
        "label": r.label,
        "model": r.model,
        "rep": r.rep,
        "in_flight": r.in_flight,
        "tasks": r.tasks,
        "chunk": r.chunk,
        "represents_tasks": r.represents,
        "wall_s": r.wall_s,
        "tasks_per_s": r.tasks as f64 / r.wall_s.max(1e-9),
        "cpu_s": r.cpu_s,
        "cpu_util": r.cpu_util(),
        "cores": r.cores,
        "peak_rss_bytes": r.peak_rss_bytes,
        "task_cpu_s": r.task_cpu_s,
        "task_wall_s": r.task_wall_s,
        "verified": r.ok(),
        "error": r.error,
        "routed_to": r.routed_to,
        "routing": r.routing,
        "quick": o.quick,
        "machine": o.facts,
        "args": o.args,
    });
    if let (WorkloadId::Job(job), Some(m)) = (r.workload, v.as_object_mut()) {
        m.insert("job".into(), job_json(job));
    }
    v
}

/// What a user's job ran (`--job`), beside each of its runs.
fn job_json(job: &UserJob) -> serde_json::Value {
    let (inputs, format, items) = match &job.input {
        JobInput::Inputs {
            path,
            format,
            items,
        } => (
            Some(path.display().to_string()),
            Some(if *format == InputsFormat::Jsonl {
                "jsonl"
            } else {
                "text"
            }),
            Some(*items),
        ),
        JobInput::Range(..) => (None, None, None),
    };
    json!({
        "workload": job.workload,
        "args": job.args.iter().map(|(k, v)| (k.clone(), json!(v))).collect::<serde_json::Map<_, _>>(),
        "inputs": inputs,
        "inputs_format": format,
        "inputs_items": items,
        "range": matches!(job.input, JobInput::Range(..)).then(|| job.range()),
        "chunk": job.chunk,
        "tasks": job.tasks(),
    })
}

/// A workload's verdict: the winning forced model and by how much, and the
/// auto row against the best forced model with its cap.
pub fn verdict_json(o: &BenchOutcome, v: &Verdict) -> serde_json::Value {
    let auto = v.auto.as_ref().map(|a| {
        json!({
            "label": a.label,
            "tasks_per_s": a.rate,
            "in_flight": a.in_flight,
            "routed_to": a.routed_to,
            "routing": a.routing,
            "probe_cpu_share": a.routing.as_deref().and_then(probe_cpu_share),
            "probe_cpu_share_min": a.probe_cpu.map(|p| p.0),
            "probe_cpu_share_max": a.probe_cpu.map(|p| p.1),
            "compared_with": a.best.as_ref().map(|b| &b.0),
            "compared_tasks_per_s": a.best.as_ref().map(|b| b.1),
            "compared_with_winner": a.best_is_winner,
            "vs_best": a.ratio(),
            "picked_best_model": a.picked_best(),
            "verified": a.failed.is_none(),
            "error": a.failed,
            "text": a.text(),
        })
    });
    json!({
        "kind": "verdict",
        "scale": v.scale,
        "workload": v.workload.name(),
        "winner": v.winner.as_ref().map(|w| &w.0),
        "winner_tasks_per_s": v.winner.as_ref().map(|w| w.1),
        "runner_up": v.runner_up.as_ref().map(|w| &w.0),
        "runner_up_tasks_per_s": v.runner_up.as_ref().map(|w| w.1),
        "margin": v.margin(),
        "tie": v.tie,
        "anomalies": v.anomalies,
        "failed": v.failed,
        "text": v.text(),
        "auto": auto,
        "quick": o.quick,
        "machine": o.facts,
    })
}

/// An `--overhead` run: the run's figures plus its ideal time and overhead.
pub fn overhead_json(o: &BenchOutcome, r: &RunRecord) -> serde_json::Value {
    let mut v = run_json(o, r);
    let (ideal, us) = overhead::of_run(r);
    if let Some(m) = v.as_object_mut() {
        m.insert("kind".into(), json!("overhead"));
        m.insert("workload".into(), json!(r.workload.name()));
        m.insert("task_s".into(), json!(overhead::task_s(r.workload)));
        m.insert(
            "slots_at_once".into(),
            json!(overhead::slots_at_once(
                r.workload,
                r.model,
                r.in_flight,
                r.scale
            )),
        );
        m.insert("ideal_s".into(), json!(ideal));
        m.insert("overhead_us_per_task".into(), json!(us));
    }
    v
}

/// `--overhead`'s single-task round trips of one model: percentiles, phase
/// medians and every sample (µs).
pub fn round_trip_json(o: &BenchOutcome, r: &RoundTripRow) -> serde_json::Value {
    json!({
        "kind": "round_trip",
        "scale": r.scale,
        "model": r.model,
        "workload": "noop",
        "tasks_per_job": 1,
        "warm_ups": r.warm_ups,
        "samples": r.samples.len(),
        "median_us": r.median_us,
        "p90_us": r.p90_us,
        "p99_us": r.p99_us,
        "submit_median_us": r.phase_us.map(|p| p[0]),
        "watch_median_us": r.phase_us.map(|p| p[1]),
        "results_median_us": r.phase_us.map(|p| p[2]),
        "get_job_median_us": r.phase_us.map(|p| p[3]),
        "target_median_us": overhead::ROUND_TRIP_TARGET_US,
        "samples_us": r.samples,
        "verified": r.failed.is_none(),
        "error": r.failed,
        "quick": o.quick,
        "machine": o.facts,
        "args": o.args,
    })
}

const CSV_HEADER: &str = "scale,workload,label,model,rep,in_flight,tasks,chunk,represents_tasks,wall_s,tasks_per_s,cpu_s,cpu_util,peak_rss_bytes,task_cpu_s,task_wall_s,verified,error,brigade_version,kernel,cores,cpu_model,routed_to,routing,auto_vs_best";

/// Quotes a CSV field when it needs it.
fn csv_field(s: &str) -> String {
    if s.contains([',', '"', '\n']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_string()
    }
}

/// `auto_vs_best`: on auto runs, the auto row's median tasks/s over the best
/// forced row's with the same cap (the verdict's figure), else empty.
fn csv_line(o: &BenchOutcome, r: &RunRecord, verdicts: &[Verdict]) -> String {
    let vs_best = verdicts
        .iter()
        .filter(|v| v.scale == r.scale && v.workload == r.workload)
        .filter_map(|v| v.auto.as_ref())
        .find(|a| a.label == r.label)
        .and_then(|a| a.ratio());
    let opt = |v: Option<f64>| v.map(|x| format!("{x:.6}")).unwrap_or_default();
    [
        r.scale.to_string(),
        r.workload.name().to_string(),
        csv_field(&r.label),
        r.model.unwrap_or("").to_string(),
        r.rep.to_string(),
        r.in_flight.to_string(),
        r.tasks.to_string(),
        r.chunk.to_string(),
        r.represents.to_string(),
        format!("{:.6}", r.wall_s),
        format!("{:.3}", r.tasks as f64 / r.wall_s.max(1e-9)),
        opt(r.cpu_s),
        opt(r.cpu_util()),
        r.peak_rss_bytes.map(|b| b.to_string()).unwrap_or_default(),
        format!("{:.6}", r.task_cpu_s),
        format!("{:.6}", r.task_wall_s),
        r.ok().to_string(),
        csv_field(r.error.as_deref().unwrap_or("")),
        o.facts.brigade_version.clone(),
        csv_field(&o.facts.kernel),
        o.facts.cores.to_string(),
        csv_field(&o.facts.cpu_model),
        r.routed_to.unwrap_or("").to_string(),
        csv_field(r.routing.as_deref().unwrap_or("")),
        opt(vs_best),
    ]
    .join(",")
}

/// W_GRAIN: efficiency against chunk width per model, on a log x axis.
fn grain_plot(rows: &[Row], scale: u32) -> anyhow::Result<Option<Plot>> {
    let grain: Vec<&Row> = rows
        .iter()
        .filter(|r| {
            r.scale == scale
                && r.workload == WorkloadId::Grain
                && !r.label.starts_with(super::plan::SERIAL)
        })
        .collect();
    let mut models: Vec<&str> = Vec::new();
    for r in &grain {
        if !models.contains(&label_model(&r.label)) {
            models.push(label_model(&r.label));
        }
    }
    if models.is_empty() {
        return Ok(None);
    }
    let series = models
        .iter()
        .map(|&m| Series {
            label: m.to_string(),
            points: grain
                .iter()
                .filter(|r| label_model(&r.label) == m && r.anomaly.is_none())
                .filter_map(|r| Some((r.chunk as f64, r.efficiency?)))
                .collect(),
        })
        .collect();
    let axes = LineAxes {
        x_label: "chunk width (numbers per task, log scale)".into(),
        y_label: "efficiency".into(),
        log_x: true,
        reference: Some((GRAIN_EFFICIENCY, format!("{GRAIN_EFFICIENCY}"))),
    };
    Ok(Some(Plot {
        file: "grain.svg",
        caption: format!(
            "W_GRAIN: parallel efficiency T1/(p·Tp) against task size (linear y, log x), T1 the same range in one plain loop; the dashed line is {GRAIN_EFFICIENCY}. A failed width leaves a gap in its line."
        ),
        svg: svg::line_panels(
            "W_GRAIN: efficiency vs chunk width",
            &axes,
            &[LinePanel {
                title: format!("W_GRAIN, p = {}", grain[0].in_flight),
                series,
            }],
        )?,
    }))
}

/// `--overhead`: µs per task beyond the ideal, per model, noop and spin.
fn overhead_plot(rows: &[OverheadRow]) -> anyhow::Result<Option<Plot>> {
    let Some(scale) = rows.first().map(|r| r.scale) else {
        return Ok(None);
    };
    let panels: Vec<BarPanel> = [WorkloadId::Noop, WorkloadId::Spin]
        .into_iter()
        .filter_map(|w| {
            let bars: Vec<Bar> = rows
                .iter()
                .filter(|r| r.scale == scale && r.workload == w)
                .map(|r| Bar {
                    label: r.model.clone(),
                    value: r.overhead_us,
                    mark: None,
                })
                .collect();
            let title = rows.iter().find(|r| r.workload == w)?.task_name();
            (!bars.is_empty()).then_some(BarPanel {
                title,
                bars,
                reference: None,
            })
        })
        .collect();
    if panels.is_empty() {
        return Ok(None);
    }
    Ok(Some(Plot {
        file: "overhead.svg",
        caption: "Per-task overhead (wall − ideal) / tasks in microseconds, one slot per core and model, no job cap (each panel has its own linear axis).".into(),
        svg: svg::bar_panels("per-task overhead", "µs per task", &panels)?,
    }))
}

/// `--model auto` against the best forced model of each workload: one bar
/// per workload, 1.0 = as fast as the best model a user could have forced.
fn auto_plot(verdicts: &[Verdict]) -> anyhow::Result<Option<Plot>> {
    let Some(scale) = verdicts.iter().find(|v| v.auto.is_some()).map(|v| v.scale) else {
        return Ok(None);
    };
    let bars: Vec<Bar> = verdicts
        .iter()
        .filter(|v| v.scale == scale)
        .filter_map(|v| {
            let a = v.auto.as_ref()?;
            Some(Bar {
                label: format!(
                    "{} \u{2192} {}",
                    v.workload.name(),
                    a.routed_to.as_deref().unwrap_or("?")
                ),
                value: a.ratio(),
                mark: None,
            })
        })
        .collect();
    Ok(Some(Plot {
        file: "auto.svg",
        caption: format!(
            "--model auto against the best forced model of each workload with the same cap ({scale} worker(s)): auto's tasks/s over that model's, on a linear axis; each bar says where auto routed the job. A failed auto run shows FAILED, not a bar."
        ),
        svg: svg::bar_panels(
            "--model auto vs the best forced model",
            "x the best forced model",
            &[BarPanel {
                title: "auto / best forced model".into(),
                bars,
                reference: Some((1.0, "the best forced model".into())),
            }],
        )?,
    }))
}

/// A row's line in the scaling plot: its label, except that the wide async
/// row's cap grows with the workers (`async C=200` on one, `async C=400` on
/// two): one line, `async C=200/worker`.
fn scaling_label(r: &Row) -> String {
    match r.label.split_once(" C=") {
        Some((model, _)) => format!("{model} C={}/worker", r.in_flight / r.scale.max(1)),
        None => r.label.clone(),
    }
}

/// Builds every plot the runs support.
pub fn plots(
    rows: &[Row],
    verdicts: &[Verdict],
    overhead_rows: &[OverheadRow],
) -> anyhow::Result<Vec<Plot>> {
    let scales: BTreeSet<u32> = rows.iter().map(|r| r.scale).collect();
    let first_scale = scales.iter().next().copied().unwrap_or(1);
    // W_GRAIN has its own plot: its rows are per width, not per model. A
    // user's job comes after the yardsticks.
    let mut workloads: Vec<WorkloadId> = WorkloadId::ALL
        .into_iter()
        .filter(|w| *w != WorkloadId::Grain && rows.iter().any(|r| r.workload == *w))
        .collect();
    for r in rows.iter().filter(|r| r.workload.is_job()) {
        if !workloads.contains(&r.workload) {
            workloads.push(r.workload);
        }
    }
    let job = workloads.iter().any(|w| w.is_job());
    let at = |w: WorkloadId, scale: u32| {
        rows.iter()
            .filter(move |r| r.workload == w && (r.scale == scale || is_baseline(&r.label)))
    };
    let mut out = Vec::new();
    let throughput: Vec<BarPanel> = workloads
        .iter()
        .map(|&w| BarPanel {
            title: w.name().into(),
            bars: at(w, first_scale)
                .map(|r| Bar {
                    // The rate was measured; what it is compared with is not
                    // believable: the label says so.
                    label: if r.anomaly.is_some() {
                        format!("{} (anomaly)", r.label)
                    } else {
                        r.label.clone()
                    },
                    value: r.rate,
                    mark: None,
                })
                .collect(),
            reference: None,
        })
        .collect();
    if !throughput.is_empty() {
        out.push(Plot {
            file: "throughput.svg",
            caption: format!(
                "Tasks per second per model and workload ({first_scale} worker(s), median of the repetitions; each panel has its own linear axis)."
            ),
            svg: svg::bar_panels("tasks/s per model", "tasks/s", &throughput)?,
        });
    }
    let efficiency: Vec<BarPanel> = workloads
        .iter()
        .filter(|w| w.is_cpu())
        .map(|&w| {
            // The limit drawn is the in-process pool's measured efficiency
            // (when it is believable), not the ideal 1.0.
            let limit = at(w, first_scale)
                .find(|r| label_model(&r.label) == IN_PROCESS && r.anomaly.is_none())
                .and_then(|r| r.efficiency);
            BarPanel {
                title: w.name().into(),
                bars: at(w, first_scale)
                    .filter(|r| {
                        !is_baseline(&r.label)
                            && r.label != PYTHON_SERIAL
                            && (limit.is_none() || label_model(&r.label) != IN_PROCESS)
                    })
                    .map(|r| Bar {
                        label: format!("{} p={}", r.label, r.in_flight),
                        value: r.efficiency.filter(|_| r.anomaly.is_none()),
                        mark: r
                            .anomaly
                            .as_ref()
                            .map(|_| "ANOMALY (see table)".to_string()),
                    })
                    .collect(),
                reference: Some(match limit {
                    Some(l) => (l, format!("in-process pool {l:.2}: the practical limit")),
                    None => (1.0, "ideal 1.0".into()),
                }),
            }
        })
        .collect();
    if !efficiency.is_empty() {
        out.push(Plot {
            file: "efficiency.svg",
            caption: "Parallel efficiency T1/(p·Tp) of the CPU workloads on a linear axis, T1 the same range in one plain loop in this process. The dashed line is what a plain in-process pool of p threads reached in the same run: the practical limit on this machine now. A figure the physics checks reject is marked ANOMALY, not drawn.".into(),
            svg: svg::bar_panels("parallel efficiency T1/(p·Tp)", "efficiency", &efficiency)?,
        });
    }
    let latency: Vec<BarPanel> = workloads
        .iter()
        .filter(|w| w.is_io() || w.is_job())
        .map(|&w| BarPanel {
            title: w.name().into(),
            bars: at(w, first_scale)
                // Python tasks do not report their own times.
                .filter(|r| r.label != IN_PROCESS && !is_python(&r.label))
                .map(|r| Bar {
                    label: r.label.clone(),
                    value: r.mean_task_ms,
                    mark: None,
                })
                .collect(),
            reference: None,
        })
        .collect();
    if !latency.is_empty() {
        out.push(Plot {
            file: "latency.svg",
            caption: format!("Mean time of one {} as the tasks measured it (the sum of task wall times / tasks). The cluster records only that sum per job, so percentiles are not available.", if job { "task" } else { "GET" }),
            svg: svg::bar_panels(
                if job { "mean task latency" } else { "mean task latency, I/O" },
                "ms per task",
                &latency,
            )?,
        });
    }
    out.extend(grain_plot(rows, first_scale)?);
    if scales.len() > 1 && !workloads.is_empty() {
        let scaling: Vec<LinePanel> = workloads
            .iter()
            .map(|&w| {
                let of_w = || {
                    rows.iter()
                        .filter(move |r| r.workload == w && r.is_model_row())
                };
                let mut labels: Vec<String> = Vec::new();
                for l in of_w().map(scaling_label) {
                    if !labels.contains(&l) {
                        labels.push(l);
                    }
                }
                LinePanel {
                    title: w.name().into(),
                    series: labels
                        .into_iter()
                        .map(|l| Series {
                            points: of_w()
                                .filter(|r| scaling_label(r) == l)
                                .filter_map(|r| Some((f64::from(r.scale), r.speedup?)))
                                .collect(),
                            label: l,
                        })
                        .collect(),
                }
            })
            .collect();
        out.push(Plot {
            file: "scaling.svg",
            caption: "Speedup over the shared serial baseline against the number of local workers (linear axes). All workers share this machine's cores, so CPU rows cannot rise past the core count.".into(),
            svg: svg::line_panels(
                "speedup vs workers",
                &LineAxes {
                    x_label: "workers".into(),
                    y_label: "speedup".into(),
                    log_x: false,
                    reference: None,
                },
                &scaling,
            )?,
        });
    }
    out.extend(auto_plot(verdicts)?);
    out.extend(overhead_plot(overhead_rows)?);
    Ok(out)
}

pub fn write_all(
    dir: &Path,
    o: &BenchOutcome,
    rows: &[Row],
    verdicts: &[Verdict],
    overhead_rows: &[OverheadRow],
) -> anyhow::Result<()> {
    std::fs::create_dir_all(dir)
        .with_context(|| format!("could not create the output directory {}", dir.display()))?;
    let write = |name: &str, text: &str| {
        let path = dir.join(name);
        std::fs::write(&path, text).with_context(|| format!("could not write {}", path.display()))
    };
    let mut jsonl = String::new();
    for r in o.runs.iter().filter(|r| !is_python(&r.label)) {
        jsonl.push_str(&run_json(o, r).to_string());
        jsonl.push('\n');
    }
    // The Python lines as the script wrote them, with this machine's facts.
    for line in &o.python_lines {
        let mut v = line.clone();
        if let Some(m) = v.as_object_mut() {
            m.insert("machine".into(), json!(o.facts));
        }
        jsonl.push_str(&v.to_string());
        jsonl.push('\n');
    }
    for v in verdicts {
        jsonl.push_str(&verdict_json(o, v).to_string());
        jsonl.push('\n');
    }
    for r in &o.overhead {
        jsonl.push_str(&overhead_json(o, r).to_string());
        jsonl.push('\n');
    }
    for r in &o.round_trips {
        jsonl.push_str(&round_trip_json(o, r).to_string());
        jsonl.push('\n');
    }
    for s in &o.startups {
        let mut v = json!({"kind": "startup", "machine": o.facts});
        if let (Some(m), Ok(serde_json::Value::Object(f))) =
            (v.as_object_mut(), serde_json::to_value(s))
        {
            m.extend(f);
        }
        jsonl.push_str(&v.to_string());
        jsonl.push('\n');
    }
    write("results.jsonl", &jsonl)?;
    let mut csv = String::from(CSV_HEADER);
    csv.push('\n');
    for r in &o.runs {
        csv.push_str(&csv_line(o, r, verdicts));
        csv.push('\n');
    }
    write("results.csv", &csv)?;
    let plots = plots(rows, verdicts, overhead_rows).context("could not draw the plots")?;
    for p in &plots {
        write(p.file, &p.svg)?;
    }
    write(
        "report.html",
        &html::page(o, rows, verdicts, overhead_rows, &plots),
    )?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::BASELINE;
    use crate::report::{self, summarise, verdicts, RunRecord};

    fn run(
        scale: u32,
        w: WorkloadId,
        label: &str,
        model: Option<&'static str>,
        wall: f64,
    ) -> RunRecord {
        let p = if label == BASELINE { 1 } else { 2 * scale };
        let auto = model == Some("auto");
        RunRecord {
            scale,
            workload: w,
            routed_to: auto.then_some("process"),
            routing: auto.then(|| {
                "auto: 4 probe tasks on thread slots used 98% CPU per wall second, CPU-bound \u{2192} process slots".into()
            }),
            ..report::tests::run(label, model, p, 100, wall)
        }
    }

    /// Every chart the runs support is drawn: an SVG document naming each
    /// row it plots, with its axis titles.
    #[test]
    fn plots_draw_every_row_with_its_axes() {
        let mut runs = vec![
            run(1, WorkloadId::Cpu, BASELINE, Some("thread"), 8.0),
            run(1, WorkloadId::FastIo, BASELINE, Some("thread"), 4.0),
            run(1, WorkloadId::SlowIo, BASELINE, Some("thread"), 10.0),
        ];
        for scale in [1, 2] {
            let k = f64::from(scale);
            // The wide async row's cap grows with the workers.
            let wide = format!("async C={}", 200 * scale);
            runs.push(RunRecord {
                in_flight: 200 * scale,
                ..run(scale, WorkloadId::SlowIo, &wide, Some("async"), 0.1 / k)
            });
            runs.extend([
                run(scale, WorkloadId::Cpu, "process", Some("process"), 4.4 / k),
                run(scale, WorkloadId::Cpu, "thread", Some("thread"), 4.2 / k),
                run(scale, WorkloadId::Cpu, "async", Some("async"), 8.1),
                run(scale, WorkloadId::Cpu, "auto", Some("auto"), 4.6 / k),
                run(scale, WorkloadId::Cpu, IN_PROCESS, None, 4.1 / k),
                run(scale, WorkloadId::FastIo, "thread", Some("thread"), 1.0 / k),
                run(scale, WorkloadId::FastIo, "async", Some("async"), 0.5 / k),
            ]);
        }
        let rows = summarise(&runs);
        let verdicts = verdicts(&rows);
        let plots = plots(&rows, &verdicts, &[]).unwrap();
        let files: Vec<&str> = plots.iter().map(|p| p.file).collect();
        assert_eq!(
            files,
            [
                "throughput.svg",
                "efficiency.svg",
                "latency.svg",
                "scaling.svg",
                "auto.svg"
            ]
        );
        let svg = |file: &str| &plots.iter().find(|p| p.file == file).unwrap().svg;
        let has = |file: &str, text: &str| {
            let doc = svg(file);
            assert!(doc.starts_with("<svg"), "{file}");
            assert!(doc.trim_end().ends_with("</svg>"), "{file}");
            assert!(
                doc.contains(&format!(">\n{text}\n</text>")),
                "{file} lacks {text:?}: {doc}"
            );
        };
        for text in [
            "tasks/s per model",
            "tasks/s",
            "W_CPU",
            "W_FASTIO",
            BASELINE,
            "process",
            "thread",
            "async",
            "auto",
            IN_PROCESS,
        ] {
            has("throughput.svg", text);
        }
        for text in ["efficiency", "process p=2", "thread p=2", "async p=2"] {
            has("efficiency.svg", text);
        }
        // The pool is the dashed limit line (its measured efficiency), not
        // a bar beside the models; the ideal 1.0 is not the line drawn.
        assert!(!svg("efficiency.svg").contains("in-process p=2"));
        assert!(!svg("efficiency.svg").contains("ideal 1.0"));
        assert!(svg("efficiency.svg").contains(": the practical limit"));
        for text in ["ms per task", "W_FASTIO", BASELINE, "thread", "async"] {
            has("latency.svg", text);
        }
        has("scaling.svg", "async C=200/worker");
        assert!(!svg("scaling.svg").contains("C=400"));
        for text in [
            "speedup vs workers",
            "workers",
            "speedup",
            "process",
            "thread",
            "async",
        ] {
            has("scaling.svg", text);
        }
        for text in [
            "x the best forced model",
            "W_CPU \u{2192} process",
            "the best forced model",
        ] {
            has("auto.svg", text);
        }
        // The scaling plot draws the forced models only, the efficiency plot
        // leaves the baseline out; auto's bar takes the colour of the model
        // it routed to.
        assert!(!svg("scaling.svg").contains(">\nauto\n<"));
        assert!(!svg("efficiency.svg").contains(&format!(">\n{BASELINE}")));
        let process = svg::colour_of("process");
        let fill = format!(
            "fill=\"#{:02X}{:02X}{:02X}\"",
            process.0, process.1, process.2
        );
        assert!(svg("auto.svg").contains(&fill));
    }

    #[test]
    fn csv_fields_with_commas_or_quotes_are_quoted() {
        assert_eq!(csv_field("plain"), "plain");
        assert_eq!(csv_field("a,b"), "\"a,b\"");
        assert_eq!(csv_field("say \"hi\""), "\"say \"\"hi\"\"\"");
        assert_eq!(CSV_HEADER.split(',').count(), 25);
    }
}
