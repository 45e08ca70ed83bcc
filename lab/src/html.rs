//! report.html: the machine, the start-up, the table with verdicts, the plots
//! and what the outcome means in the seed's terms (kitchens, chefs, dishes).
//! One self-contained page that references the SVG files beside it.

use std::fmt::Write;

use super::outcome::{legend, startup_line, BenchOutcome, Plot, PYTHON_NOTE};
use super::overhead::{self, OverheadRow};
use super::plan::{WorkloadId, BASELINE, IN_PROCESS};
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
        .find(|r| r.workload == w && r.label == label && (r.scale == scale || label == BASELINE))
}

/// How `--model auto` did, in the seed's words: the head chef tastes a few
/// dishes cooked by thread cooks, then sends the rest of the order to the
/// kitchen he judges best.
pub fn explain_auto(a: &AutoVerdict) -> String {
    let tasted = match a.probe_cpu {
        Some((lo, hi)) => format!(
            "found the cooks busy {} of the time they spent on them ({})",
            match ((lo * 100.0).round(), (hi * 100.0).round()) {
                (l, h) if l == h => format!("{l:.0}%"),
                (l, h) => format!("{l:.0}-{h:.0}%"),
            },
            if lo >= 0.5 {
                "chopping, not waiting"
            } else if hi < 0.5 {
                "mostly waiting for the oven"
            } else {
                "chopping in some orders, waiting in others"
            }
        ),
        None => "timed them".to_string(),
    };
    let sent = match a.routed_to.as_deref() {
        Some("process") => {
            "sent the rest of the order to process cooks (a kitchen each)".to_string()
        }
        Some("async")
            if a.routing
                .as_deref()
                .is_some_and(|r| r.contains("too short")) =>
        {
            "sent the rest of the order to the async chef anyway (one cook who plates such \
             quick dishes himself): each took so little time that walking it over to another \
             kitchen would cost more than the cooking"
                .to_string()
        }
        Some("async") => {
            "sent the rest of the order to the async chef (one cook watching every oven)"
                .to_string()
        }
        Some(m) if a.mixed() => format!(
            "sent the rest of the order to different kitchens in different repetitions ({m}): \
             the tasting did not give the same answer every time"
        ),
        Some(m) => format!("sent the rest of the order to {m} cooks"),
        None => "could not say where the rest went".to_string(),
    };
    let mut s = format!(
        "Letting the head chef choose (--model auto): he had the first dishes cooked by thread \
         cooks, {tasted}, and {sent}."
    );
    match (&a.failed, a.ratio(), &a.best) {
        (Some(e), _, _) => {
            let _ = write!(s, " That run FAILED ({e}), so it has no figure.");
        }
        (None, Some(x), Some((best, _))) => {
            let who = if a.best_is_winner {
                format!("the winning cook ({best})")
            } else {
                format!(
                    "the best cook with the same {} dishes at once ({best})",
                    a.in_flight
                )
            };
            let _ = write!(s, " The order was done at {x:.2}x the pace of {who}");
            s.push_str(match a.picked_best() {
                Some(true) => ": he picked the right kitchen, the gap is the tasting.",
                Some(false) => ": he picked another kitchen than the best one.",
                None => " (the median of those repetitions).",
            });
        }
        _ => s.push_str(" No forced model ran beside it to compare with."),
    }
    s
}

/// The outcome in the seed's words, one paragraph per workload present.
/// Figures come from the rows; a missing or failed row leaves its sentence out.
pub fn explain(rows: &[Row], verdicts: &[Verdict]) -> Vec<String> {
    let mut out = vec![
        "The seed compares three ways to cook: multiprocessing is ten kitchens with a chef \
         each (separate processes), threading is one kitchen with ten chefs (threads sharing \
         one process), asyncio is one kitchen with one chef who moves to another dish whenever \
         one has to wait (an event loop). In brigade the coordinator is the head chef who \
         splits an order into dishes (tasks), each worker is a kitchen, and process, thread \
         and async slots are its cooks."
            .to_string(),
    ];
    let scale = rows.first().map_or(1, |r| r.scale);
    let eff = |w, l| find(rows, scale, w, l).and_then(|r| r.efficiency);
    let rate = |w, l| find(rows, scale, w, l).and_then(|r| r.rate);
    for v in verdicts.iter().filter(|v| v.scale == scale) {
        let w = v.workload;
        let mut s = format!("{}: {}.", w.name(), v.text());
        match w {
            WorkloadId::Cpu | WorkloadId::CpuHeavy => {
                s.push_str(
                    " Python's GIL lets only one chef in a kitchen cook at a time, which is \
                     why the seed sends CPU work to processes. Rust has no GIL, so thread \
                     slots cook on every core too:",
                );
                if let (Some(p), Some(t)) = (eff(w, "process"), eff(w, "thread")) {
                    let _ = write!(
                        s,
                        " parallel efficiency was {p:.2} on process slots and {t:.2} on thread slots"
                    );
                    if let Some(l) = eff(w, IN_PROCESS) {
                        let _ = write!(
                            s,
                            ", against {l:.2} for a plain thread pool in one process measured \
                             in the same run (the practical limit on this shared machine)"
                        );
                    }
                    s.push('.');
                } else {
                    s.push_str(" (the process or thread row is missing or failed).");
                }
                if let Some(a) = find(rows, scale, w, "async").and_then(|r| r.speedup) {
                    let _ = write!(
                        s,
                        " Async slots are one chef: a dish that needs constant chopping holds \
                         up every other dish, so async ran at {a:.2}x the serial speed (one core)."
                    );
                }
                s.push_str(
                    " Processes still buy what the seed's lesson is also about: a crashing \
                     dish takes down one kitchen, not all of them.",
                );
            }
            WorkloadId::Noop => s.push_str(
                " No-op dishes measure only the head chef's and the kitchens' bookkeeping: \
                 handing out tickets, collecting plates. Process slots pay a pipe round trip \
                 to another kitchen per dish; thread and async slots stay in the kitchen.",
            ),
            WorkloadId::FastIo => s.push_str(
                " Fast GETs are dishes that wait only a moment: every model spends most of \
                 its time in the network stack of this machine, so the gap is the cost of \
                 switching between dishes (the OS switching threads or processes, or the \
                 event loop switching tasks).",
            ),
            WorkloadId::Grain => s.push_str(
                " Small dishes show the head chef's cost per ticket: writing a ticket, \
                 carrying it to a kitchen and bringing the plate back costs the same whether \
                 the dish takes a second or a microsecond, so as dishes shrink that \
                 bookkeeping takes a growing share of the kitchen's time. The widths above \
                 are where it still stays under a tenth. Process slots add a pipe between \
                 kitchen and cook per dish; thread slots hand dishes over in memory; async \
                 slots are one chef, so their efficiency on two cores cannot pass 0.5.",
            ),
            WorkloadId::Spin => {}
            WorkloadId::Job(_) => {
                s.push_str(
                    " These are your own dishes: every kitchen cooked the whole order, and \
                     their plates were compared with each other, ticket by ticket (a row \
                     whose plates differ from the first complete order's is FAILED). Dishes \
                     that keep a cook chopping (CPU) go fastest with a process or thread cook \
                     per core; dishes that mostly wait (I/O) go fastest with the async chef, \
                     who watches many pots at once.",
                );
                if let Some(b) = find(rows, scale, w, BASELINE).filter(|b| b.rate.is_some()) {
                    if let Some(n) = b.scaled_from {
                        let _ = write!(
                            s,
                            " The `1 slot` baseline cooked the first {} of {} dishes; its \
                             speedups compare rates.",
                            report::thousands(b.tasks as f64),
                            report::thousands(n as f64)
                        );
                    }
                }
            }
            WorkloadId::SlowIo => {
                s.push_str(
                    " Slow GETs are dishes in the oven for 100 ms: a chef who stands by one \
                     oven serves at most 10 dishes a second, so process and thread slots \
                     reach p / 0.1 s at best, while one async chef watches thousands of ovens.",
                );
                if let Some(r) = find(rows, scale, w, "thread").filter(|r| r.rate.is_some()) {
                    let floor = f64::from(r.in_flight) / 0.1;
                    let _ = write!(
                        s,
                        " Thread slots (p = {}) reached {:.2} of their floor rate {} tasks/s.",
                        r.in_flight,
                        r.rate.unwrap_or(0.0) / floor,
                        report::thousands(floor)
                    );
                }
                if let Some(r) = rows.iter().find(|r| {
                    r.scale == scale
                        && r.workload == w
                        && r.label.starts_with("async C=")
                        && r.rate.is_some()
                }) {
                    // With every task in flight at once the floor is one delay.
                    let in_flight = r.in_flight.min(r.tasks as u32).max(1);
                    let floor_s = (r.tasks as f64 / f64::from(in_flight)).ceil() * 0.1;
                    let _ = write!(
                        s,
                        " One event loop with {} in flight reached {} tasks/s, {:.2} of the \
                         floor rate {} tasks/s. In Rust a thread per waiting dish would also \
                         work up to a point, but each costs a stack and a context switch; \
                         the event loop's cost per waiting dish is a few hundred bytes.",
                        r.in_flight,
                        report::thousands(r.rate.unwrap_or(0.0)),
                        r.rate.unwrap_or(0.0) * floor_s / r.tasks as f64,
                        report::thousands(r.tasks as f64 / floor_s)
                    );
                }
            }
        }
        if let Some(a) = &v.auto {
            s.push(' ');
            s.push_str(&explain_auto(a));
        }
        out.push(s);
    }
    if let Some(r) = rate(WorkloadId::SlowIo, BASELINE) {
        out.push(format!(
            "The W_SLOWIO serial baseline ran a prefix of the job (one slot would need about {:.0} s for all of it) at {:.1} tasks/s; its speedups compare rates.",
            find(rows, scale, WorkloadId::SlowIo, BASELINE)
                .and_then(|b| b.scaled_from)
                .map_or(0.0, |n| n as f64 / r),
            r
        ));
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
         .failed{{color:#c00;font-weight:bold}}figure{{margin:1.5em 0}}img{{max-width:100%}}\
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
            " This was a <b>--quick</b> run: a tenth of each workload, one repetition."
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
            "<p>The seed's own Python models on this machine (py- rows: {}): brigade's fastest model against Python's fastest row:</p>\n<ul>",
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
            failed: failed.map(str::to_string),
        }
    }

    #[test]
    fn auto_is_told_in_kitchen_terms_with_its_figure_or_its_failure() {
        let s = explain_auto(&auto(None, "process", "process"));
        assert!(s.contains("head chef"), "{s}");
        assert!(s.contains("busy 98%"), "{s}");
        assert!(s.contains("process cooks"), "{s}");
        assert!(
            s.ends_with("0.97x the pace of the winning cook (process): he picked the right kitchen, the gap is the tasting."),
            "{s}"
        );
        let s = explain_auto(&auto(None, "async", "process"));
        assert!(s.contains("picked another kitchen"), "{s}");
        let mixed = AutoVerdict {
            routed_to: Some("async/process".into()),
            probe_cpu: Some((0.17, 0.61)),
            ..auto(None, "process", "thread")
        };
        let s = explain_auto(&mixed);
        assert!(s.contains("busy 17-61%"), "{s}");
        assert!(
            s.contains("chopping in some orders, waiting in others"),
            "{s}"
        );
        assert!(
            s.contains("different kitchens in different repetitions"),
            "{s}"
        );
        assert!(s.ends_with("(the median of those repetitions)."), "{s}");
        let s = explain_auto(&auto(Some("timed out"), "process", "process"));
        assert!(s.contains("FAILED (timed out), so it has no figure"), "{s}");
        assert!(!s.contains("x the pace"), "{s}");
        // Busy cooks, but dishes too quick to carry to another kitchen.
        let tiny = AutoVerdict {
            routing: Some(
                "auto: 4 probe tasks on thread slots used 98% CPU per wall second, but took 2 \
                 \u{b5}s each: too short for a process slot's dispatch to pay off \u{2192} async slots"
                    .into(),
            ),
            ..auto(None, "async", "async")
        };
        let s = explain_auto(&tiny);
        assert!(
            s.contains("busy 98% of the time they spent on them (chopping"),
            "{s}"
        );
        assert!(s.contains("async chef anyway"), "{s}");
        assert!(s.contains("would cost more than the cooking"), "{s}");
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
