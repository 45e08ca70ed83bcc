//! The files of `brigade bench --out DIR`: results.jsonl (one line per run
//! and per start-up, every raw figure plus the machine facts), results.csv
//! (the same runs, flat), the SVG plots and report.html.

use std::collections::BTreeSet;
use std::path::Path;

use anyhow::Context;
use serde_json::json;

use super::plan::{WorkloadId, BASELINE, IN_PROCESS};
use super::report::{Row, RunRecord, Verdict};
use super::svg::{self, Bar, BarPanel, LinePanel, Series};
use super::{html, Outcome};

/// One plot file and what it shows.
pub struct Plot {
    pub file: &'static str,
    pub caption: String,
    pub svg: String,
}

pub fn run_json(o: &Outcome, r: &RunRecord) -> serde_json::Value {
    json!({
        "kind": "run",
        "scale": r.scale,
        "workload": r.workload.name(),
        "label": r.label,
        "model": r.model,
        "rep": r.rep,
        "in_flight": r.in_flight,
        "tasks": r.tasks,
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
        "quick": o.quick,
        "machine": o.facts,
        "args": o.args,
    })
}

const CSV_HEADER: &str = "scale,workload,label,model,rep,in_flight,tasks,represents_tasks,wall_s,tasks_per_s,cpu_s,cpu_util,peak_rss_bytes,task_cpu_s,task_wall_s,verified,error,brigade_version,kernel,cores,cpu_model";

/// Quotes a CSV field when it needs it.
fn csv_field(s: &str) -> String {
    if s.contains([',', '"', '\n']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_string()
    }
}

fn csv_line(o: &Outcome, r: &RunRecord) -> String {
    let opt = |v: Option<f64>| v.map(|x| format!("{x:.6}")).unwrap_or_default();
    [
        r.scale.to_string(),
        r.workload.name().to_string(),
        csv_field(&r.label),
        r.model.unwrap_or("").to_string(),
        r.rep.to_string(),
        r.in_flight.to_string(),
        r.tasks.to_string(),
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
    ]
    .join(",")
}

/// Builds every plot the runs support.
pub fn plots(rows: &[Row]) -> Vec<Plot> {
    let scales: BTreeSet<u32> = rows.iter().map(|r| r.scale).collect();
    let first_scale = scales.iter().next().copied().unwrap_or(1);
    let workloads: Vec<WorkloadId> = WorkloadId::ALL
        .into_iter()
        .filter(|w| rows.iter().any(|r| r.workload == *w))
        .collect();
    let at = |w: WorkloadId, scale: u32| {
        rows.iter()
            .filter(move |r| r.workload == w && (r.scale == scale || r.label == BASELINE))
    };
    let mut out = Vec::new();
    let throughput: Vec<BarPanel> = workloads
        .iter()
        .map(|&w| BarPanel {
            title: w.name().into(),
            bars: at(w, first_scale)
                .map(|r| Bar {
                    label: r.label.clone(),
                    value: r.rate,
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
            svg: svg::bar_panels("tasks/s per model", "tasks/s", &throughput),
        });
    }
    let efficiency: Vec<BarPanel> = workloads
        .iter()
        .filter(|w| w.is_cpu())
        .map(|&w| BarPanel {
            title: w.name().into(),
            bars: at(w, first_scale)
                .filter(|r| r.label != BASELINE)
                .map(|r| Bar {
                    label: format!("{} p={}", r.label, r.in_flight),
                    value: r.efficiency,
                })
                .collect(),
            reference: Some((1.0, "physical limit 1.0".into())),
        })
        .collect();
    if !efficiency.is_empty() {
        out.push(Plot {
            file: "efficiency.svg",
            caption: "Parallel efficiency T1/(p·Tp) of the CPU workloads on a linear axis, with the in-process thread pool measured beside them (the practical limit on this machine now).".into(),
            svg: svg::bar_panels("parallel efficiency T1/(p·Tp)", "efficiency", &efficiency),
        });
    }
    let latency: Vec<BarPanel> = workloads
        .iter()
        .filter(|w| w.is_io())
        .map(|&w| BarPanel {
            title: w.name().into(),
            bars: at(w, first_scale)
                .filter(|r| r.label != IN_PROCESS)
                .map(|r| Bar {
                    label: r.label.clone(),
                    value: r.mean_task_ms,
                })
                .collect(),
            reference: None,
        })
        .collect();
    if !latency.is_empty() {
        out.push(Plot {
            file: "latency.svg",
            caption: "Mean time of one GET as the tasks measured it (the sum of task wall times / tasks). The cluster records only that sum per job, so percentiles are not available.".into(),
            svg: svg::bar_panels("mean task latency, I/O", "ms per task", &latency),
        });
    }
    if scales.len() > 1 {
        let scaling: Vec<LinePanel> = workloads
            .iter()
            .map(|&w| {
                let mut labels: Vec<&str> = Vec::new();
                for r in rows.iter().filter(|r| r.workload == w && r.is_model_row()) {
                    if !labels.contains(&r.label.as_str()) {
                        labels.push(&r.label);
                    }
                }
                LinePanel {
                    title: w.name().into(),
                    series: labels
                        .iter()
                        .map(|&l| Series {
                            label: l.to_string(),
                            points: rows
                                .iter()
                                .filter(|r| r.workload == w && r.label == l)
                                .filter_map(|r| Some((f64::from(r.scale), r.speedup?)))
                                .collect(),
                        })
                        .collect(),
                }
            })
            .collect();
        out.push(Plot {
            file: "scaling.svg",
            caption: "Speedup over the shared serial baseline against the number of local workers (linear axes). All workers share this machine's cores, so CPU rows cannot rise past the core count.".into(),
            svg: svg::line_panels("speedup vs workers", "workers", "speedup", &scaling),
        });
    }
    out
}

pub fn write_all(
    dir: &Path,
    o: &Outcome,
    rows: &[Row],
    verdicts: &[Verdict],
) -> anyhow::Result<()> {
    std::fs::create_dir_all(dir)
        .with_context(|| format!("could not create the output directory {}", dir.display()))?;
    let write = |name: &str, text: &str| {
        let path = dir.join(name);
        std::fs::write(&path, text).with_context(|| format!("could not write {}", path.display()))
    };
    let mut jsonl = String::new();
    for r in &o.runs {
        jsonl.push_str(&run_json(o, r).to_string());
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
        csv.push_str(&csv_line(o, r));
        csv.push('\n');
    }
    write("results.csv", &csv)?;
    let plots = plots(rows);
    for p in &plots {
        write(p.file, &p.svg)?;
    }
    write("report.html", &html::page(o, rows, verdicts, &plots))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csv_fields_with_commas_or_quotes_are_quoted() {
        assert_eq!(csv_field("plain"), "plain");
        assert_eq!(csv_field("a,b"), "\"a,b\"");
        assert_eq!(csv_field("say \"hi\""), "\"say \"\"hi\"\"\"");
        assert_eq!(CSV_HEADER.split(',').count(), 21);
    }
}
