//! report.html: the machine, the start-up, the table with verdicts, the plots
//! and what the numbers show per workload, in a few plain sentences.
//! One self-contained page that references the SVG files beside it.

use std::fmt::Write;

use super::outcome::{legend, startup_line, BenchOutcome, Plot, PYTHON_NOTE};
use super::overhead::{self, OverheadRow};
use super::plan::{is_baseline, WorkloadId, BASELINE, IN_PROCESS};
use super::report::{self, AutoVerdict, Row, Verdict};

/// Escapes text for HTML content and attribute values.
pub fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// Legend lines as list items: a line indented by two spaces continues the
/// one before it (the terminal wraps by hand; the page wraps by itself).
pub fn legend_items<'a>(lines: impl IntoIterator<Item = &'a str>) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for l in lines {
        match (l.strip_prefix("  "), out.last_mut()) {
            (Some(more), Some(last)) => {
                last.push(' ');
                last.push_str(more.trim_start());
            }
            _ => out.push(l.trim().to_string()),
        }
    }
    out
}

fn find<'a>(rows: &'a [Row], scale: u32, w: WorkloadId, label: &str) -> Option<&'a Row> {
    rows.iter()
        .find(|r| r.workload == w && r.label == label && (r.scale == scale || is_baseline(label)))
}

/// The blog post the comparison comes from (see the README).
pub const SOURCE: &str =
    "Lei Mao's blog post \u{201c}Multiprocessing VS Threading VS AsyncIO in Python\u{201d}";

/// How `--model auto` did, in one sentence: where the coordinator routed the
/// job after its probe tasks, and its pace against the best forced model.
pub fn explain_auto(a: &AutoVerdict) -> String {
    let probes = report::probes_text(a.probe_cpu)
        .map(|p| format!(" ({p})"))
        .unwrap_or_default();
    let routed = match a.routed_to.as_deref() {
        Some(m) if a.mixed() => format!(
            "routed its repetitions to different models ({m}){probes}: the probes did not give the same answer every time"
        ),
        Some(m) => format!("routed the job to {m} slots{probes}"),
        None => "could not say where the job went".to_string(),
    };
    let mut s =
        format!("With --model auto the coordinator ran probe tasks on thread slots and {routed}");
    match (&a.failed, a.ratio(), &a.best) {
        (Some(e), _, _) => {
            let _ = write!(s, "; that run FAILED ({e}), so it has no figure.");
        }
        (None, Some(x), Some((best, _))) => {
            let who = if a.best_is_winner {
                format!("the winner ({best})")
            } else {
                format!(
                    "the best model with the same {} in flight ({best})",
                    a.in_flight
                )
            };
            let _ = write!(s, "; it ran at {x:.2}x the pace of {who}");
            s.push_str(match a.picked_best() {
                Some(true) => ", the gap being the probes.",
                Some(false) => ", having picked another model.",
                None => " (the median of those repetitions).",
            });
        }
        _ if a.forced_anomalous => {
            let _ = write!(s, "; {}.", crate::report::NO_COMPARISON_ANOMALOUS);
        }
        _ => s.push_str("; no forced model ran beside it to compare with."),
    }
    s
}

/// "1.93x (eff 0.97)" for a row, or `None` without a figure or when the
/// physics checks flagged it.
fn speed_of(r: Option<&Row>) -> Option<String> {
    let r = r.filter(|r| r.anomaly.is_none())?;
    Some(format!(
        "{:.2}x (efficiency {:.2})",
        r.speedup?, r.efficiency?
    ))
}

/// What the numbers of one workload show, in two or three sentences, every
/// figure taken from the rows (a missing, failed or flagged row leaves its
/// clause out), then how auto did.
pub fn explain(rows: &[Row], verdicts: &[Verdict]) -> Vec<String> {
    let mut out = vec![format!(
        "The comparison comes from {SOURCE}: processes for CPU-bound work, threads for fast \
         I/O, asyncio for slow I/O (its picture: many kitchens, many cooks in one kitchen, or \
         one cook who never stands waiting). Rust has no GIL, so here thread slots can use \
         every core too; the rows below show where the rest of the lesson still holds."
    )];
    let scale = rows.first().map_or(1, |r| r.scale);
    let row = |w, l: &str| find(rows, scale, w, l);
    for v in verdicts.iter().filter(|v| v.scale == scale) {
        let w = v.workload;
        let mut s = format!("{}: {}.", w.name(), v.text());
        let flagged: Vec<&Row> = rows
            .iter()
            .filter(|r| r.workload == w && (r.scale == scale || is_baseline(&r.label)))
            .filter(|r| r.anomaly.is_some())
            .collect();
        match w {
            WorkloadId::Cpu | WorkloadId::CpuHeavy => {
                let (p, t) = (speed_of(row(w, "process")), speed_of(row(w, "thread")));
                let cores = row(w, "process")
                    .or(row(w, "thread"))
                    .map_or(0, |r| r.in_flight);
                if p.is_some() || t.is_some() {
                    let mut parts = Vec::new();
                    if let Some(p) = p {
                        parts.push(format!("process slots {p}"));
                    }
                    if let Some(t) = t {
                        parts.push(format!("thread slots {t}"));
                    }
                    let _ = write!(
                        s,
                        " Against the serial loop, {} on {cores} slots",
                        parts.join(" and ")
                    );
                    match row(w, IN_PROCESS)
                        .filter(|r| r.anomaly.is_none())
                        .and_then(|r| r.efficiency)
                    {
                        Some(l) => {
                            let _ = write!(
                                s,
                                ", where a plain in-process pool reached efficiency {l:.2}, the \
                                 practical limit on this machine now."
                            );
                        }
                        None => s.push('.'),
                    }
                }
                if let Some(a) = row(w, "async")
                    .filter(|r| r.anomaly.is_none())
                    .and_then(|r| r.speedup)
                {
                    let _ = write!(
                        s,
                        " Async ran at {a:.2}x serial: one event loop is one thread on one core, \
                         so it cannot speed up CPU work."
                    );
                }
            }
            WorkloadId::Noop => {
                if let (Some(win), Some(b)) = (
                    v.winner.as_ref().and_then(|(l, _)| row(w, l)),
                    row(w, BASELINE).and_then(|b| b.rate),
                ) {
                    let _ = write!(
                        s,
                        " No-op tasks measure only scheduling: {} ran {} tasks/s, {:.1}x one slot \
                         waiting for each result in turn.",
                        win.label,
                        report::thousands(win.rate.unwrap_or(0.0)),
                        win.rate.unwrap_or(0.0) / b
                    );
                }
            }
            WorkloadId::FastIo => {
                let sp = |l| row(w, l).and_then(|r| r.speedup);
                if let (Some(t), Some(a)) = (sp("thread"), sp("async")) {
                    let _ = write!(
                        s,
                        " Each GET waits only a moment: with {} in flight, thread slots ran {t:.1}x \
                         one slot and async {a:.1}x, so the gap is the cost of switching between \
                         waiting tasks.",
                        row(w, "thread").map_or(0, |r| r.in_flight)
                    );
                }
            }
            WorkloadId::SlowIo => {
                if let Some(r) = row(w, "thread").filter(|r| r.rate.is_some()) {
                    let floor = f64::from(r.in_flight) / 0.1;
                    let _ = write!(
                        s,
                        " Each GET waits 100 ms, so {} thread slots can reach at most {} tasks/s; \
                         they reached {:.2} of that.",
                        r.in_flight,
                        report::thousands(floor),
                        r.rate.unwrap_or(0.0) / floor
                    );
                }
                if let Some(r) = rows.iter().find(|r| {
                    r.scale == scale
                        && r.workload == w
                        && r.label.starts_with("async C=")
                        && r.rate.is_some()
                }) {
                    let thread = row(w, "thread").and_then(|t| t.rate);
                    let _ = write!(
                        s,
                        " One event loop with {} GETs in flight reached {} tasks/s{}: waiting \
                         costs it a few hundred bytes per GET, not a thread.",
                        r.in_flight,
                        report::thousands(r.rate.unwrap_or(0.0)),
                        thread
                            .map(|t| format!(
                                ", {:.1}x the thread slots",
                                r.rate.unwrap_or(0.0) / t
                            ))
                            .unwrap_or_default()
                    );
                }
            }
            WorkloadId::Grain => s.push_str(
                " Every task costs the same bookkeeping however short it is, so as tasks \
                 shrink that cost takes a growing share; async slots are one thread, so \
                 their efficiency stays near 1/p.",
            ),
            WorkloadId::Spin => {}
            WorkloadId::Job(_) => {
                s.push_str(
                    " Every model ran your whole job and their outputs were compared index by \
                     index (a row that differs from the first complete run is FAILED).",
                );
                if let Some(b) = row(w, BASELINE).filter(|b| b.rate.is_some()) {
                    if let Some(n) = b.scaled_from {
                        let _ = write!(
                            s,
                            " The `1 slot` row ran the first {} of {} tasks; speedups compare rates.",
                            report::thousands(b.tasks as f64),
                            report::thousands(n as f64)
                        );
                    }
                }
            }
        }
        if let Some(first) = flagged.first() {
            let _ = write!(
                s,
                " Flagged and left out of the verdict ({}): {}.",
                flagged
                    .iter()
                    .map(|r| r.label.as_str())
                    .collect::<Vec<_>>()
                    .join(", "),
                first.anomaly.as_deref().unwrap_or("")
            );
        }
        if let Some(a) = &v.auto {
            s.push(' ');
            s.push_str(&explain_auto(a));
        }
        out.push(s);
    }
    if let Some(b) = row(WorkloadId::SlowIo, BASELINE).filter(|b| b.rate.is_some()) {
        if let (Some(n), Some(r)) = (b.scaled_from, b.rate) {
            out.push(format!(
                "The W_SLOWIO `1 slot` row ran a prefix of the job (all of it would take about \
                 {:.0} s) at {r:.1} tasks/s; its speedups compare rates.",
                n as f64 / r
            ));
        }
    }
    out
}

pub fn page(
    o: &BenchOutcome,
    rows: &[Row],
    verdicts: &[Verdict],
    overhead_rows: &[OverheadRow],
    plots: &[Plot],
) -> String {
    let f = &o.facts;
    let mut h = String::new();
    let _ = write!(
        h,
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <title>brigade bench</title><style>\
         body{{font-family:sans-serif;max-width:1100px;margin:2em auto;padding:0 1em;color:#222}}\
         table{{border-collapse:collapse;font-size:13px}}td,th{{border:1px solid #ccc;padding:3px 6px}}\
         td.n{{text-align:right;font-variant-numeric:tabular-nums}}td:nth-child(2){{white-space:nowrap}}tr.v td{{background:#f4f7fb;font-style:italic}}\
         .failed{{color:#c00;font-weight:bold}}.anomaly{{color:#a04000;font-weight:bold}}figure{{margin:1.5em 0}}img{{max-width:100%}}\
         </style></head><body>\n<h1>brigade bench: processes, threads or async?</h1>\n"
    );
    let _ = write!(
        h,
        "<p>brigade {} on {} ({} cores, {} MB), {}, kernel {}, host {}.{}</p>\n<ul>\n",
        escape(&f.brigade_version),
        escape(&f.cpu_model),
        f.cores,
        f.memory_mb,
        escape(&f.os),
        escape(&f.kernel),
        escape(&f.hostname),
        if o.quick {
            " This was a <b>--quick</b> run: smaller no-op and I/O workloads; the CPU workloads keep tasks of their own size and a serial time of at least 0.5 s."
        } else {
            ""
        }
    );
    for s in &o.startups {
        let _ = writeln!(h, "<li>{}</li>", escape(&startup_line(s)));
    }
    let _ = writeln!(
        h,
        "</ul>\n<p>Command: <code>{}</code></p>",
        escape(&o.args.join(" "))
    );
    h.push_str("<h2>What the runs show</h2>\n");
    for p in explain(rows, verdicts) {
        let _ = writeln!(h, "<p>{}</p>", escape(&p));
    }
    let vs_python = rows
        .first()
        .map(|r| report::python_comparison(rows, r.scale))
        .unwrap_or_default();
    if !vs_python.is_empty() {
        let _ = writeln!(
            h,
            "<p>The blog post's own Python models on this machine (py- rows: {}): brigade's fastest model against Python's fastest row:</p>\n<ul>",
            escape(PYTHON_NOTE)
        );
        for l in vs_python {
            let _ = writeln!(h, "<li>{}</li>", escape(&l));
        }
        h.push_str("</ul>\n");
    }
    for n in &o.notes {
        let _ = writeln!(h, "<p class=\"note\">Note: {}</p>", escape(n));
    }
    if !rows.is_empty() {
        results_table(&mut h, rows, verdicts);
    }
    if !overhead_rows.is_empty() {
        h.push_str("<h2>Per-task overhead</h2>\n<table>\n<tr>");
        for c in overhead::HEADERS {
            let _ = write!(h, "<th>{}</th>", escape(c));
        }
        h.push_str("<th>workers</th></tr>\n");
        for r in overhead_rows {
            h.push_str("<tr>");
            for (i, c) in overhead::cells(r).iter().enumerate() {
                let class = if c.starts_with("FAILED") {
                    " class=\"failed\""
                } else if i >= 2 {
                    " class=\"n\""
                } else {
                    ""
                };
                let _ = write!(h, "<td{class}>{}</td>", escape(c));
            }
            let _ = writeln!(h, "<td class=\"n\">{}</td></tr>", r.scale);
        }
        h.push_str("</table>\n<ul>\n");
        for l in legend_items(overhead::LEGEND.iter().copied()) {
            let _ = writeln!(h, "<li>{}</li>", escape(&l));
        }
        h.push_str("</ul>\n");
    }
    if !o.round_trips.is_empty() {
        let (jobs, warm_ups) = overhead::round_trip_samples(o.size());
        let _ = writeln!(
            h,
            "<h2>Single-task round trip</h2>\n<p>{} single-task noop jobs one after another per \
             model, after {} warm-ups: how long one dish takes from the order to the plate in \
             the customer's hands when the kitchen is idle (target: median &le; {:.0} &micro;s).</p>\n<table>\n<tr>",
            jobs,
            warm_ups,
            overhead::ROUND_TRIP_TARGET_US
        );
        for c in overhead::ROUND_TRIP_HEADERS {
            let _ = write!(h, "<th>{}</th>", escape(c));
        }
        h.push_str("</tr>\n");
        for r in &o.round_trips {
            h.push_str("<tr>");
            for (i, c) in overhead::round_trip_cells(r).iter().enumerate() {
                let class = if c.starts_with("FAILED") {
                    " class=\"failed\""
                } else if i >= 1 {
                    " class=\"n\""
                } else {
                    ""
                };
                let _ = write!(h, "<td{class}>{}</td>", escape(c));
            }
            h.push_str("</tr>\n");
        }
        h.push_str("</table>\n<ul>\n");
        for l in legend_items(overhead::ROUND_TRIP_LEGEND.iter().copied()) {
            let _ = writeln!(h, "<li>{}</li>", escape(&l));
        }
        h.push_str("</ul>\n");
    }
    h.push_str("<h2>Plots</h2>\n");
    for p in plots {
        let _ = writeln!(
            h,
            "<figure><img src=\"{}\" alt=\"{}\"><figcaption>{}</figcaption></figure>",
            p.file,
            escape(&p.caption),
            escape(&p.caption)
        );
    }
    h.push_str(
        "<p>Raw figures: <a href=\"results.jsonl\">results.jsonl</a> (one line per run, with the \
         machine facts), <a href=\"results.csv\">results.csv</a>.</p>\n</body></html>\n",
    );
    h
}

fn results_table(h: &mut String, rows: &[Row], verdicts: &[Verdict]) {
    h.push_str("<h2>Results</h2>\n<table>\n<tr>");
    for c in report::HEADERS {
        let _ = write!(h, "<th>{}</th>", escape(c));
    }
    h.push_str("<th>workers</th></tr>\n");
    let mut last: Option<(u32, WorkloadId)> = None;
    let verdict_row = |h: &mut String, key: Option<(u32, WorkloadId)>| {
        if let Some(v) = key.and_then(|k| verdicts.iter().find(|v| (v.scale, v.workload) == k)) {
            let _ = writeln!(
                h,
                "<tr class=\"v\"><td colspan=\"12\">verdict {}: {}</td></tr>",
                v.workload.name(),
                escape(&v.text())
            );
            if let Some(a) = &v.auto {
                let class = if a.failed.is_some() { " failed" } else { "" };
                let _ = writeln!(
                    h,
                    "<tr class=\"v{class}\"><td colspan=\"12\">{}</td></tr>",
                    escape(&a.text())
                );
            }
        }
    };
    for r in rows {
        if last != Some((r.scale, r.workload)) {
            verdict_row(h, last);
            last = Some((r.scale, r.workload));
        }
        h.push_str("<tr>");
        for (i, c) in report::cells(r).iter().enumerate() {
            let class = if c.starts_with("FAILED") {
                " class=\"failed\""
            } else if r.anomaly.is_some() && i == 7 {
                " class=\"n anomaly\""
            } else if r.anomaly.is_some() && i == 10 {
                " class=\"anomaly\""
            } else if (2..10).contains(&i) {
                " class=\"n\""
            } else {
                ""
            };
            let _ = write!(h, "<td{class}>{}</td>", escape(c));
        }
        let _ = writeln!(h, "<td class=\"n\">{}</td></tr>", r.scale);
    }
    verdict_row(h, last);
    h.push_str("</table>\n<ul>\n");
    for l in legend_items(legend(rows)) {
        let _ = writeln!(h, "<li>{}</li>", escape(&l));
    }
    h.push_str("</ul>\n");
}

#[cfg(test)]
mod tests {
    use super::*;

    fn auto(failed: Option<&str>, routed_to: &str, best: &str) -> AutoVerdict {
        AutoVerdict {
            label: "auto".into(),
            rate: failed.is_none().then_some(97.0),
            in_flight: 2,
            routed_to: Some(routed_to.into()),
            routing: Some(format!(
                "auto: 4 probe tasks on thread slots used 98% CPU per wall second, CPU-bound \u{2192} {routed_to} slots"
            )),
            probe_cpu: Some((0.98, 0.98)),
            best: Some((best.into(), 100.0)),
            best_is_winner: true,
            forced_anomalous: false,
            failed: failed.map(str::to_string),
        }
    }

    #[test]
    fn auto_says_when_every_forced_row_it_would_compare_with_is_an_anomaly() {
        let a = AutoVerdict {
            best: None,
            forced_anomalous: true,
            ..auto(None, "process", "process")
        };
        let told = explain_auto(&a);
        assert!(
            told.contains(crate::report::NO_COMPARISON_ANOMALOUS),
            "{told}"
        );
        assert!(
            a.text().ends_with(crate::report::NO_COMPARISON_ANOMALOUS),
            "{}",
            a.text()
        );
        let none_ran = AutoVerdict {
            forced_anomalous: false,
            ..a
        };
        assert!(none_ran
            .text()
            .ends_with("no forced model ran to compare with"));
    }

    #[test]
    fn auto_is_told_in_one_sentence_with_its_figure_or_its_failure() {
        let s = explain_auto(&auto(None, "process", "process"));
        assert!(
            s.contains("routed the job to process slots (probes: CPU 98% of wall)"),
            "{s}"
        );
        assert!(
            s.ends_with("0.97x the pace of the winner (process), the gap being the probes."),
            "{s}"
        );
        let s = explain_auto(&auto(None, "async", "process"));
        assert!(s.contains("having picked another model"), "{s}");
        let mixed = AutoVerdict {
            routed_to: Some("async/process".into()),
            probe_cpu: Some((0.17, 0.61)),
            ..auto(None, "process", "thread")
        };
        let s = explain_auto(&mixed);
        assert!(
            s.contains("different models (async/process) (probes: CPU 17-61% of wall)"),
            "{s}"
        );
        assert!(s.ends_with("(the median of those repetitions)."), "{s}");
        let s = explain_auto(&auto(Some("timed out"), "process", "process"));
        assert!(s.contains("FAILED (timed out), so it has no figure"), "{s}");
        assert!(!s.contains("x the pace"), "{s}");
    }

    #[test]
    fn the_text_names_the_blog_post_and_flags_anomalies_with_their_cause() {
        use crate::report::tests::run;
        let mut runs = vec![
            run("serial", None, 1, 40, 0.2),
            run("1 slot", Some("thread"), 1, 40, 0.21),
            run("process", Some("process"), 2, 40, 0.104),
            run("thread", Some("thread"), 2, 40, 0.105),
            run("async", Some("async"), 2, 40, 0.09),
            run("in-process", None, 2, 40, 0.102),
        ];
        runs.iter_mut().for_each(|r| r.workload = WorkloadId::Cpu);
        let rows = report::summarise(&runs);
        let text = explain(&rows, &report::verdicts(&rows));
        assert!(text[0].contains("Multiprocessing VS Threading VS AsyncIO in Python"));
        assert!(!text.join(" ").contains("seed"));
        let cpu = &text[1];
        assert!(cpu.starts_with("W_CPU: process and thread tie"), "{cpu}");
        assert!(
            cpu.contains("process slots 1.92x (efficiency 0.96)"),
            "{cpu}"
        );
        assert!(
            cpu.contains("in-process pool reached efficiency 0.98"),
            "{cpu}"
        );
        // The impossible async figure is not told as a result but flagged.
        assert!(!cpu.contains("Async ran at"), "{cpu}");
        assert!(cpu.contains("Flagged and left out of the verdict (async): measurement anomaly: async at 2.22x serial"), "{cpu}");
        assert!(cpu.contains("too short to time against"), "{cpu}");
    }

    #[test]
    fn text_is_escaped_for_html() {
        assert_eq!(escape("a <b> & \"c\""), "a &lt;b&gt; &amp; &quot;c&quot;");
    }

    #[test]
    fn indented_legend_lines_continue_the_item_before() {
        let items = legend_items(["a: one", "  and more", "b: two", "  c", "  d"]);
        assert_eq!(items, ["a: one and more", "b: two c d"]);
        assert_eq!(legend_items(["  lone"]), ["lone"]);
    }
}
