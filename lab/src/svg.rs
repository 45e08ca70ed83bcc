//! Hand-written SVG plots: small multiples of bar charts (one panel per
//! workload, each with its own linear axis, since tasks/s spans five orders
//! of magnitude between workloads) and line charts (scaling; W_GRAIN's
//! efficiency against chunk width on a log x axis). Pure: data in, a
//! well-formed SVG document out.

use std::fmt::Write;

/// One bar; `None` is a failed run, drawn as a FAILED mark rather than a bar.
#[derive(Debug, Clone, PartialEq)]
pub struct Bar {
    pub label: String,
    pub value: Option<f64>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct BarPanel {
    pub title: String,
    pub bars: Vec<Bar>,
    /// A dashed reference line (e.g. efficiency 1.0), if any.
    pub reference: Option<(f64, String)>,
}

/// A line series of (x, y) points.
#[derive(Debug, Clone, PartialEq)]
pub struct Series {
    pub label: String,
    pub points: Vec<(f64, f64)>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct LinePanel {
    pub title: String,
    pub series: Vec<Series>,
}

/// The size of one panel.
#[derive(Debug, Clone, Copy, PartialEq)]
struct PanelSize {
    w: f64,
    h: f64,
}

/// Small multiples, three to a row.
const SMALL: PanelSize = PanelSize { w: 320.0, h: 240.0 };
/// A chart on its own (W_GRAIN): room for several lines and their legend.
const LARGE: PanelSize = PanelSize { w: 640.0, h: 360.0 };
const PER_ROW: usize = 3;
const LEFT: f64 = 56.0;
const RIGHT: f64 = 12.0;
const TOP: f64 = 30.0;
const BOTTOM: f64 = 58.0;
const COLOURS: [&str; 6] = [
    "#4e79a7", "#f28e2b", "#59a14f", "#b07aa1", "#76b7b2", "#9c755f",
];

/// One colour per model in every plot (bars and lines alike), so that a
/// model is recognised across plots; other labels take `COLOURS[i]`.
pub fn colour_of(label: &str, i: usize) -> &'static str {
    // The Python baseline's rows: a lighter shade of the same model's hue.
    if let Some(model) = label.strip_prefix("py-") {
        return match model.split_whitespace().next().unwrap_or("") {
            "process" => "#a6c4e0",
            "thread" => "#f9c893",
            "async" => "#a9d3a2",
            _ => "#d4d4d4",
        };
    }
    let mut words = label.split_whitespace();
    let first = words.next().unwrap_or("");
    let capped = words.next().is_some_and(|w| w.starts_with("C="));
    match first {
        "process" => "#4e79a7",
        "thread" => "#f28e2b",
        "async" if capped => "#b07aa1",
        "async" => "#59a14f",
        "in-process" => "#76b7b2",
        "1" | "serial" => "#9d9d9d",
        _ => COLOURS[i % COLOURS.len()],
    }
}

/// Escapes text for XML content and attribute values.
pub fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// A "nice" axis step (1, 2 or 5 × 10^k) giving about four gridlines up to `max`.
pub fn nice_step(max: f64) -> f64 {
    if !(max.is_finite() && max > 0.0) {
        return 1.0;
    }
    let raw = max / 4.0;
    let mag = 10f64.powf(raw.log10().floor());
    let norm = raw / mag;
    let n = if norm <= 1.0 {
        1.0
    } else if norm <= 2.0 {
        2.0
    } else if norm <= 5.0 {
        5.0
    } else {
        10.0
    };
    n * mag
}

/// Short figure: 1.2M, 35k, 830, 0.97.
pub fn short(v: f64) -> String {
    let a = v.abs();
    if a >= 1e6 {
        format!("{:.1}M", v / 1e6)
    } else if a >= 1e4 {
        format!("{:.0}k", v / 1e3)
    } else if a >= 100.0 {
        format!("{v:.0}")
    } else if a >= 10.0 {
        format!("{v:.1}")
    } else {
        format!("{v:.2}")
    }
}

fn document(title: &str, panels: usize, size: PanelSize, body: &str) -> String {
    let cols = panels.clamp(1, PER_ROW);
    let rows = panels.div_ceil(PER_ROW).max(1);
    let w = cols as f64 * size.w;
    let h = rows as f64 * size.h + 28.0;
    format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n\
         <svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{w}\" height=\"{h}\" viewBox=\"0 0 {w} {h}\" \
         font-family=\"sans-serif\" font-size=\"11\">\n\
         <rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n\
         <text x=\"8\" y=\"18\" font-size=\"14\" font-weight=\"bold\">{}</text>\n{body}</svg>\n",
        escape(title)
    )
}

/// Panel origin (top-left) of panel `i`.
fn origin(i: usize, size: PanelSize) -> (f64, f64) {
    (
        (i % PER_ROW) as f64 * size.w,
        28.0 + (i / PER_ROW) as f64 * size.h,
    )
}

/// Axis frame, gridlines and tick labels for a linear axis [0, top]; returns
/// the y-mapping function's parameters (plot top, plot height, axis top).
fn y_axis(out: &mut String, ox: f64, oy: f64, max: f64, size: PanelSize) -> (f64, f64, f64) {
    let step = nice_step(max);
    let top = (max / step).ceil().max(1.0) * step;
    let (py, ph) = (oy + TOP, size.h - TOP - BOTTOM);
    let mut k = 0.0;
    while k <= top + step * 0.01 {
        let y = py + ph - k / top * ph;
        let _ = writeln!(
            out,
            "<line x1=\"{:.1}\" y1=\"{y:.1}\" x2=\"{:.1}\" y2=\"{y:.1}\" stroke=\"#ddd\"/>\
             <text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"end\" fill=\"#555\">{}</text>",
            ox + LEFT,
            ox + size.w - RIGHT,
            ox + LEFT - 4.0,
            y + 4.0,
            short(k)
        );
        k += step;
    }
    let _ = writeln!(
        out,
        "<line x1=\"{x:.1}\" y1=\"{py:.1}\" x2=\"{x:.1}\" y2=\"{b:.1}\" stroke=\"#333\"/>",
        x = ox + LEFT,
        b = py + ph
    );
    (py, ph, top)
}

/// A panel's title, its y label (vertical, beside the axis), the key of its
/// dashed reference line (top right, clear of the data) and its axis;
/// returns what [`y_axis`] returns.
fn panel_frame(
    out: &mut String,
    (ox, oy): (f64, f64),
    size: PanelSize,
    title: &str,
    y_label: &str,
    reference: Option<&(f64, String)>,
    max: f64,
) -> (f64, f64, f64) {
    let mid = oy + TOP + (size.h - TOP - BOTTOM) / 2.0;
    let _ = writeln!(
        out,
        "<text x=\"{:.1}\" y=\"{:.1}\" font-weight=\"bold\">{}</text>\
         <text x=\"{x:.1}\" y=\"{mid:.1}\" fill=\"#555\" font-size=\"10\" text-anchor=\"middle\" \
         transform=\"rotate(-90 {x:.1} {mid:.1})\">{}</text>",
        ox + LEFT,
        oy + 14.0,
        escape(title),
        escape(y_label),
        x = ox + 12.0,
    );
    if let Some((_, label)) = reference {
        let right = ox + size.w - RIGHT;
        let _ = writeln!(
            out,
            "<line x1=\"{:.1}\" y1=\"{y:.1}\" x2=\"{:.1}\" y2=\"{y:.1}\" stroke=\"#c00\" stroke-dasharray=\"4 3\"/>\
             <text x=\"{right:.1}\" y=\"{:.1}\" text-anchor=\"end\" fill=\"#c00\" font-size=\"10\">{}</text>",
            right - 6.0 * label.chars().count() as f64 - 22.0,
            right - 6.0 * label.chars().count() as f64 - 6.0,
            oy + 14.0,
            escape(label),
            y = oy + 10.5,
        );
    }
    y_axis(out, ox, oy, max, size)
}

/// Small multiples of bar charts, one panel per entry.
pub fn bar_panels(title: &str, y_label: &str, panels: &[BarPanel]) -> String {
    let size = SMALL;
    let mut body = String::new();
    for (i, p) in panels.iter().enumerate() {
        let (ox, oy) = origin(i, size);
        let max = p
            .bars
            .iter()
            .filter_map(|b| b.value)
            .chain(p.reference.as_ref().map(|r| r.0))
            .fold(0.0, f64::max);
        let (py, ph, top) = panel_frame(
            &mut body,
            (ox, oy),
            size,
            &p.title,
            y_label,
            p.reference.as_ref(),
            max,
        );
        let plot_w = size.w - LEFT - RIGHT;
        let slot = plot_w / p.bars.len().max(1) as f64;
        for (j, b) in p.bars.iter().enumerate() {
            let x = ox + LEFT + j as f64 * slot + slot * 0.15;
            let w = slot * 0.7;
            let base = py + ph;
            match b.value {
                Some(v) => {
                    let h = (v / top * ph).max(0.5);
                    let _ = writeln!(
                        body,
                        "<rect x=\"{x:.1}\" y=\"{:.1}\" width=\"{w:.1}\" height=\"{h:.1}\" fill=\"{}\"/>\
                         <text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"middle\" font-size=\"10\">{}</text>",
                        base - h,
                        colour_of(&b.label, j),
                        x + w / 2.0,
                        base - h - 3.0,
                        short(v)
                    );
                }
                None => {
                    let _ = writeln!(
                        body,
                        "<text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"middle\" fill=\"#c00\" font-weight=\"bold\">FAILED</text>",
                        x + w / 2.0,
                        base - 6.0
                    );
                }
            }
            let _ = writeln!(
                body,
                "<text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"end\" font-size=\"10\" transform=\"rotate(-30 {:.1} {:.1})\">{}</text>",
                x + w / 2.0,
                base + 14.0,
                x + w / 2.0,
                base + 14.0,
                escape(&b.label)
            );
        }
        if let Some((v, _)) = &p.reference {
            let y = py + ph - v / top * ph;
            let _ = writeln!(
                body,
                "<line x1=\"{:.1}\" y1=\"{y:.1}\" x2=\"{:.1}\" y2=\"{y:.1}\" stroke=\"#c00\" stroke-dasharray=\"4 3\"/>",
                ox + LEFT,
                ox + size.w - RIGHT,
            );
        }
        let _ = writeln!(
            body,
            "<line x1=\"{:.1}\" y1=\"{b:.1}\" x2=\"{:.1}\" y2=\"{b:.1}\" stroke=\"#333\"/>",
            ox + LEFT,
            ox + size.w - RIGHT,
            b = py + ph
        );
    }
    document(title, panels.len(), size, &body)
}

/// The axes of a line chart.
#[derive(Debug, Clone, PartialEq)]
pub struct LineAxes {
    pub x_label: String,
    pub y_label: String,
    /// Logarithmic x axis (decades labelled 10^k); linear from 0 otherwise.
    pub log_x: bool,
    /// A dashed horizontal reference line (e.g. efficiency 0.9), if any.
    pub reference: Option<(f64, String)>,
}

/// `10^k` as SVG text with a raised exponent.
fn power_of_ten(k: i32) -> String {
    format!("10<tspan dy=\"-4\" font-size=\"8\">{k}</tspan>")
}

/// Small multiples of line charts, linear y from 0; a legend of the series
/// under each panel.
pub fn line_panels(title: &str, axes: &LineAxes, panels: &[LinePanel]) -> String {
    let size = if panels.len() == 1 { LARGE } else { SMALL };
    let mut body = String::new();
    for (i, p) in panels.iter().enumerate() {
        let (ox, oy) = origin(i, size);
        let pts = p.series.iter().flat_map(|s| s.points.iter());
        let max_y = pts
            .clone()
            .map(|p| p.1)
            .chain(axes.reference.as_ref().map(|r| r.0))
            .fold(0.0, f64::max);
        let (py, ph, top) = panel_frame(
            &mut body,
            (ox, oy),
            size,
            &p.title,
            &axes.y_label,
            axes.reference.as_ref(),
            max_y,
        );
        let plot_w = size.w - LEFT - RIGHT;
        // Inset the x range a little so end points and their labels stay inside.
        let (x0, x1) = if axes.log_x {
            let logs = pts.clone().filter(|p| p.0 > 0.0).map(|p| p.0.log10());
            let lo = logs.clone().fold(f64::INFINITY, f64::min);
            let hi = logs.fold(f64::NEG_INFINITY, f64::max);
            if lo.is_finite() {
                (lo.floor(), hi.ceil().max(lo.floor() + 1.0))
            } else {
                (0.0, 1.0)
            }
        } else {
            (0.0, pts.clone().map(|p| p.0).fold(1.0, f64::max))
        };
        let inset = 10.0;
        let sx = |x: f64| {
            let v = if axes.log_x { x.max(1e-300).log10() } else { x };
            ox + LEFT + inset + (v - x0) / (x1 - x0) * (plot_w - 2.0 * inset)
        };
        let sy = |y: f64| py + ph - y / top * ph;
        let base = py + ph;
        let _ = writeln!(
            body,
            "<line x1=\"{:.1}\" y1=\"{base:.1}\" x2=\"{:.1}\" y2=\"{base:.1}\" stroke=\"#333\"/>\
             <text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"middle\" fill=\"#555\" font-size=\"10\">{}</text>",
            ox + LEFT,
            ox + size.w - RIGHT,
            ox + LEFT + plot_w / 2.0,
            base + 28.0,
            escape(&axes.x_label)
        );
        let ticks: Vec<(f64, String)> = if axes.log_x {
            (x0 as i32..=x1 as i32)
                .map(|k| (10f64.powi(k), power_of_ten(k)))
                .collect()
        } else {
            let mut xs: Vec<f64> = pts.map(|p| p.0).collect();
            xs.sort_by(f64::total_cmp);
            xs.dedup();
            xs.into_iter().map(|x| (x, short(x))).collect()
        };
        for (x, label) in ticks {
            let _ = writeln!(
                body,
                "<line x1=\"{x:.1}\" y1=\"{base:.1}\" x2=\"{x:.1}\" y2=\"{:.1}\" stroke=\"#333\"/>\
                 <text x=\"{x:.1}\" y=\"{:.1}\" text-anchor=\"middle\" font-size=\"10\">{label}</text>",
                base + 4.0,
                base + 15.0,
                x = sx(x),
            );
        }
        if let Some((v, _)) = &axes.reference {
            let y = sy(*v);
            let _ = writeln!(
                body,
                "<line x1=\"{:.1}\" y1=\"{y:.1}\" x2=\"{:.1}\" y2=\"{y:.1}\" stroke=\"#c00\" stroke-dasharray=\"4 3\"/>",
                ox + LEFT,
                ox + size.w - RIGHT,
            );
        }
        // Legend under the x label, wrapping onto a second line if needed.
        let (mut lx, mut ly) = (ox + LEFT, base + 42.0);
        for (j, s) in p.series.iter().enumerate() {
            let colour = colour_of(&s.label, j);
            let w = 22.0 + 6.0 * s.label.chars().count() as f64;
            if lx + w > ox + size.w && lx > ox + LEFT {
                lx = ox + LEFT;
                ly += 12.0;
            }
            let _ = writeln!(
                body,
                "<line x1=\"{lx:.1}\" y1=\"{:.1}\" x2=\"{:.1}\" y2=\"{:.1}\" stroke=\"{colour}\" stroke-width=\"2\"/>\
                 <text x=\"{:.1}\" y=\"{ly:.1}\" font-size=\"10\">{}</text>",
                ly - 3.5,
                lx + 12.0,
                ly - 3.5,
                lx + 15.0,
                escape(&s.label)
            );
            lx += w;
        }
        for (j, s) in p.series.iter().enumerate() {
            let colour = colour_of(&s.label, j);
            let path: Vec<String> = s
                .points
                .iter()
                .map(|&(x, y)| format!("{:.1},{:.1}", sx(x), sy(y)))
                .collect();
            let _ = writeln!(
                body,
                "<polyline points=\"{}\" fill=\"none\" stroke=\"{colour}\" stroke-width=\"2\"/>",
                path.join(" ")
            );
            for &(x, y) in &s.points {
                let _ = writeln!(
                    body,
                    "<circle cx=\"{:.1}\" cy=\"{:.1}\" r=\"3\" fill=\"{colour}\"><title>{}: {}</title></circle>",
                    sx(x),
                    sy(y),
                    escape(&s.label),
                    short(y)
                );
            }
        }
    }
    document(title, panels.len(), size, &body)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nice_steps_are_1_2_5_times_a_power_of_ten() {
        assert_eq!(nice_step(100.0), 50.0);
        assert_eq!(nice_step(1.0), 0.5);
        assert_eq!(nice_step(37_000.0), 10_000.0);
        assert_eq!(nice_step(0.0), 1.0);
        assert_eq!(nice_step(f64::NAN), 1.0);
    }

    #[test]
    fn short_figures() {
        assert_eq!(short(1_234_567.0), "1.2M");
        assert_eq!(short(35_400.0), "35k");
        assert_eq!(short(830.2), "830");
        assert_eq!(short(0.973), "0.97");
    }

    #[test]
    fn labels_are_escaped_and_failed_bars_are_marked() {
        let svg = bar_panels(
            "a <b> & \"c\"",
            "tasks/s",
            &[BarPanel {
                title: "W_CPU".into(),
                bars: vec![
                    Bar {
                        label: "process".into(),
                        value: Some(10.0),
                    },
                    Bar {
                        label: "thread".into(),
                        value: None,
                    },
                ],
                reference: Some((1.0, "limit".into())),
            }],
        );
        assert!(svg.contains("a &lt;b&gt; &amp; &quot;c&quot;"));
        assert!(svg.contains(">FAILED<"));
        assert!(svg.starts_with("<?xml"));
        assert!(svg.trim_end().ends_with("</svg>"));
        let axes = LineAxes {
            x_label: "workers".into(),
            y_label: "speedup".into(),
            log_x: false,
            reference: None,
        };
        let lines = line_panels(
            "scaling",
            &axes,
            &[LinePanel {
                title: "W_CPU".into(),
                series: vec![Series {
                    label: "process".into(),
                    points: vec![(1.0, 1.9), (2.0, 1.8)],
                }],
            }],
        );
        assert!(lines.contains("<polyline"));
        assert!(
            lines.contains(">process</text>"),
            "a legend names the series"
        );
    }

    #[test]
    fn a_log_x_axis_has_a_tick_per_decade_and_spaces_decades_evenly() {
        let axes = LineAxes {
            x_label: "chunk width".into(),
            y_label: "efficiency".into(),
            log_x: true,
            reference: Some((0.9, "0.9".into())),
        };
        let svg = line_panels(
            "grain",
            &axes,
            &[LinePanel {
                title: "W_GRAIN".into(),
                series: vec![Series {
                    label: "thread".into(),
                    points: vec![(1e3, 0.2), (1e4, 0.8), (1e5, 0.95)],
                }],
            }],
        );
        for k in 3..=5 {
            assert!(svg.contains(&format!(">10<tspan dy=\"-4\" font-size=\"8\">{k}</tspan>")));
        }
        let xs: Vec<f64> = svg
            .match_indices("<circle cx=\"")
            .map(|(i, m)| {
                let rest = &svg[i + m.len()..];
                rest[..rest.find('"').unwrap()].parse().unwrap()
            })
            .collect();
        assert_eq!(xs.len(), 3);
        assert!(((xs[1] - xs[0]) - (xs[2] - xs[1])).abs() < 0.2, "{xs:?}");
        assert!(svg.contains("stroke-dasharray"));
        // One chart on its own is drawn large.
        assert!(svg.contains("width=\"640\""));
        assert!(svg.contains(&format!("stroke=\"{}\"", colour_of("thread", 0))));
    }

    #[test]
    fn a_model_has_one_colour_in_every_plot() {
        assert_eq!(colour_of("process", 3), colour_of("process p=2", 0));
        assert_eq!(colour_of("async c=10^4", 0), colour_of("async", 5));
        assert_ne!(colour_of("async C=2000", 0), colour_of("async", 0));
        assert_eq!(colour_of("1 slot", 0), colour_of("serial c=10^3", 1));
        assert_eq!(colour_of("other", 1), COLOURS[1]);
        assert_ne!(colour_of("py-process", 0), colour_of("process", 0));
        assert_eq!(colour_of("py-async C=200", 0), colour_of("py-async", 3));
    }
}
