//! The bench's charts, drawn with plotters' SVG backend: small multiples of
//! bar charts (one panel per workload, each with its own linear axis, since
//! tasks/s spans five orders of magnitude between workloads) and line charts
//! (speedup against workers on linear axes; W_GRAIN's efficiency against
//! chunk width, whose decades need a log x axis). Pure: data in, SVG text out.
//!
//! What is ours is the layout: one colour per model in every chart, bars
//! drawn across so that every label fits beside its bar, and legends in a
//! strip of their own under each panel, never over a title or the data.
//! Text is laid out with plotters' built-in size estimate (no system fonts:
//! the browser draws the text).

use plotters::chart::MeshStyle;
use plotters::coord::combinators::LogCoord;
use plotters::coord::ranged1d::{DefaultFormatting, KeyPointHint};
use plotters::coord::types::RangedCoordf64;
use plotters::coord::Shift;
use plotters::element::DashedPathElement;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

/// What drawing a chart can fail with (writing into a `String` does not:
/// this is plotters' error type).
pub type ChartError = DrawingAreaErrorKind<std::io::Error>;

type Area<'a> = DrawingArea<SVGBackend<'a>, Shift>;

/// One bar; `None` is drawn as a mark rather than a bar: `mark` (e.g.
/// `ANOMALY` for a figure the physics checks rejected), else `FAILED`.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Bar {
    pub label: String,
    pub value: Option<f64>,
    pub mark: Option<String>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct BarPanel {
    pub title: String,
    pub bars: Vec<Bar>,
    /// A dashed reference line (e.g. efficiency 1.0) and its legend, if any.
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

/// The axes of a line chart.
#[derive(Debug, Clone, PartialEq)]
pub struct LineAxes {
    pub x_label: String,
    pub y_label: String,
    /// Logarithmic x axis (a tick per decade); linear from 0 otherwise.
    pub log_x: bool,
    /// A dashed horizontal reference line (e.g. efficiency 0.9), if any.
    pub reference: Option<(f64, String)>,
}

/// Panels of a small-multiples chart side by side.
const PER_ROW: usize = 3;
/// Width of one small-multiple panel: three fill the report's 1100 px.
const PANEL_W: u32 = 360;
/// A line chart on its own (W_GRAIN): room for several lines.
const LARGE: (u32, u32) = (720, 300);
/// Plot height of a small line panel.
const SMALL_PLOT_H: u32 = 170;
/// The chart's title row.
const TITLE_H: u32 = 30;
/// A panel's caption row (its title).
const CAPTION_H: u32 = 24;
/// One bar's row in a bar panel.
const BAR_ROW: u32 = 22;
/// The value axis: tick labels and the axis title.
const X_AXIS_H: u32 = 38;
/// Left of a line panel: the y tick labels and the rotated axis title.
const Y_AXIS_W: u32 = 56;
/// One row of a legend strip.
const LEGEND_ROW: u32 = 16;
/// A legend entry's line sample and the gap after its label.
const SAMPLE_W: i32 = 18;
const ENTRY_GAP: i32 = 14;
const MARGIN: u32 = 8;

/// Text sizes in CSS pixels: plotters' SVG backend writes `font-size` as
/// the style's size / 1.24, so styles are built through [`font`].
const TICK_PX: f64 = 11.0;
const CAPTION_PX: f64 = 13.0;
const TITLE_PX: f64 = 15.0;

const REFERENCE: RGBColor = RGBColor(0xcc, 0x00, 0x00);
const AXIS: RGBColor = RGBColor(0x33, 0x33, 0x33);
const GRID: RGBColor = RGBColor(0xe0, 0xe0, 0xe0);
const TEXT: RGBColor = RGBColor(0x22, 0x22, 0x22);
const MUTED: RGBColor = RGBColor(0x55, 0x55, 0x55);

fn font(px: f64) -> TextStyle<'static> {
    ("sans-serif", px * 1.24).into_font().color(&TEXT)
}

fn bold(px: f64) -> TextStyle<'static> {
    ("sans-serif", px * 1.24, FontStyle::Bold)
        .into_font()
        .color(&TEXT)
}

/// What a label's colour depends on: (a Python row, the model, async with a
/// wide cap). The model is `process` of `process p=2`, the model auto routed
/// to in `W_CPU → process`, `async` (wide) of `py-async C=200`.
fn model_key(label: &str) -> (bool, &str, bool) {
    let label = label.rsplit('\u{2192}').next().unwrap_or(label).trim();
    let (python, rest) = match label.strip_prefix("py-") {
        Some(r) => (true, r),
        None => (false, label),
    };
    let mut words = rest.split_whitespace();
    // `async/process`: auto routed repetitions differently; the first names it.
    let first = words.next().unwrap_or("").split('/').next().unwrap_or("");
    let wide = words.next().is_some_and(|w| w.starts_with("C="));
    (python, first, wide)
}

/// One colour per model in every chart (bars and lines alike), so that a
/// model is recognised across charts: brigade's models in full colour, the
/// Python baseline's rows in a lighter shade of the same hue, the serial
/// baselines grey.
pub fn colour_of(label: &str) -> RGBColor {
    let (python, model, wide) = model_key(label);
    let rgb = |full: u32, light: u32| {
        let c = if python { light } else { full };
        RGBColor((c >> 16) as u8, (c >> 8) as u8, c as u8)
    };
    match model {
        "process" => rgb(0x4e79a7, 0xa6c4e0),
        "thread" => rgb(0xf28e2b, 0xf9c893),
        "async" if wide => rgb(0x2f6b2a, 0x7fb27a),
        "async" => rgb(0x59a14f, 0xa9d3a2),
        "auto" => rgb(0xb07aa1, 0xd9bcd1),
        "in-process" => rgb(0x76b7b2, 0xb5dcd9),
        "1" | "serial" => rgb(0x8c8c8c, 0xc8c8c8),
        _ => rgb(0x9c755f, 0xd1b9a8),
    }
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

/// A linear axis from 0 whose top is a tick at or above `max`: (top, ticks).
fn linear_ticks(max: f64) -> (f64, Vec<f64>) {
    let step = nice_step(max);
    let n = (max / step).ceil().max(1.0) as u32;
    (
        f64::from(n) * step,
        (0..=n).map(|k| f64::from(k) * step).collect(),
    )
}

/// An f64 axis with the ticks we choose. plotters' own `with_key_points`
/// keeps f64's formatting option but not its formatter, so a mesh cannot be
/// drawn on it; every tick here gets its label from our formatter anyway.
struct Ticked<R> {
    inner: R,
    ticks: Vec<f64>,
}

fn ticked<R: Ranged<ValueType = f64>>(inner: impl Into<R>, ticks: Vec<f64>) -> Ticked<R> {
    Ticked {
        inner: inner.into(),
        ticks,
    }
}

impl<R: Ranged<ValueType = f64>> Ranged for Ticked<R> {
    type FormatOption = DefaultFormatting;
    type ValueType = f64;

    fn map(&self, value: &f64, limit: (i32, i32)) -> i32 {
        self.inner.map(value, limit)
    }

    /// The chosen ticks are the bold grid; there are no light lines.
    fn key_points<H: KeyPointHint>(&self, hint: H) -> Vec<f64> {
        if hint.weight().allow_light_points() {
            Vec::new()
        } else {
            self.ticks.clone()
        }
    }

    fn range(&self) -> std::ops::Range<f64> {
        self.inner.range()
    }
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

/// A tick label: as many decimals as the step needs (0, 0.5, 1.0, not
/// 0.50), thousands as `k` and `M`.
fn tick(v: f64, step: f64) -> String {
    if v.abs() >= 1e4 {
        return short(v);
    }
    let decimals = (-step.log10().floor()).max(0.0) as usize;
    format!("{v:.decimals$}")
}

/// `10^k` with a superscript exponent: `10³`.
fn power_of_ten(k: i32) -> String {
    const SUP: [char; 10] = ['⁰', '¹', '²', '³', '⁴', '⁵', '⁶', '⁷', '⁸', '⁹'];
    let digits: String = k
        .unsigned_abs()
        .to_string()
        .chars()
        .filter_map(|d| d.to_digit(10).map(|d| SUP[d as usize]))
        .collect();
    format!("10{}{digits}", if k < 0 { "⁻" } else { "" })
}

/// Estimated width in pixels of `text` in `style` (plotters' estimate).
fn text_w(text: &str, style: &TextStyle) -> u32 {
    style.font.box_size(text).map_or(0, |(w, _)| w)
}

/// One legend entry: a line sample (dashed for a reference) and its label.
struct Entry<'a> {
    label: &'a str,
    colour: RGBColor,
    dashed: bool,
}

/// Where each entry of a legend goes in a strip `width` wide: (row, x).
fn legend_layout(entries: &[Entry], width: u32) -> Vec<(u32, i32)> {
    let (mut row, mut x) = (0, 0);
    entries
        .iter()
        .map(|e| {
            let w = SAMPLE_W + 4 + text_w(e.label, &font(TICK_PX)) as i32;
            if x > 0 && x + w > width as i32 {
                row += 1;
                x = 0;
            }
            let at = (row, x);
            x += w + ENTRY_GAP;
            at
        })
        .collect()
}

/// Height of the legend strip the entries need (0 for none).
fn legend_h(entries: &[Entry], width: u32) -> u32 {
    legend_layout(entries, width)
        .last()
        .map_or(0, |(rows, _)| (rows + 1) * LEGEND_ROW + 4)
}

/// Draws a legend into its strip, from `left` pixels in to a margin short
/// of the right edge.
fn draw_legend(area: &Area, entries: &[Entry], left: i32) -> Result<(), ChartError> {
    let width = area.dim_in_pixel().0.saturating_sub(left as u32 + MARGIN);
    let style = font(TICK_PX).pos(Pos::new(HPos::Left, VPos::Center));
    for (e, (row, x)) in entries.iter().zip(legend_layout(entries, width)) {
        let (x, y) = (left + x, (row * LEGEND_ROW + LEGEND_ROW / 2 + 2) as i32);
        let sample = [(x, y), (x + SAMPLE_W, y)];
        if e.dashed {
            area.draw(&DashedPathElement::new(
                sample,
                4,
                3,
                e.colour.stroke_width(2),
            ))?;
        } else {
            area.draw(&PathElement::new(sample, e.colour.stroke_width(2)))?;
            area.draw(&Circle::new((x + SAMPLE_W / 2, y), 3, e.colour.filled()))?;
        }
        area.draw_text(e.label, &style, (x + SAMPLE_W + 4, y))?;
    }
    Ok(())
}

/// The document: the chart's title on top of its panels, on no background
/// of its own (the report's page shows through, and every `<rect>` of a
/// chart is a bar). `draw` gets one area per panel, `rows` × up to
/// [`PER_ROW`] of `panel` size each.
fn document(
    title: &str,
    panels: usize,
    panel: (u32, u32),
    draw: impl Fn(usize, &Area) -> Result<(), ChartError>,
) -> Result<String, ChartError> {
    let cols = panels.clamp(1, PER_ROW);
    let rows = panels.div_ceil(PER_ROW).max(1);
    let mut out = String::new();
    {
        // As wide as the panels, or the title if that is wider.
        let title_w = text_w(title, &bold(TITLE_PX));
        let size = (
            (cols as u32 * panel.0).max(title_w + 2 * MARGIN),
            TITLE_H + rows as u32 * panel.1,
        );
        let root = SVGBackend::with_string(&mut out, size).into_drawing_area();
        let (head, body) = root.split_vertically(TITLE_H);
        head.draw_text(
            title,
            &bold(TITLE_PX).pos(Pos::new(HPos::Left, VPos::Center)),
            (MARGIN as i32, TITLE_H as i32 / 2),
        )?;
        for (i, area) in body
            .split_evenly((rows, cols))
            .iter()
            .enumerate()
            .take(panels)
        {
            draw(i, area)?;
        }
        root.present()?;
    }
    Ok(out)
}

/// Small multiples of bar charts, one panel per entry; bars run across, one
/// row per bar with its label on the left, on a linear `value_label` axis
/// from 0. The reference line's legend goes in a strip under the axis.
pub fn bar_panels(
    title: &str,
    value_label: &str,
    panels: &[BarPanel],
) -> Result<String, ChartError> {
    let most = panels
        .iter()
        .map(|p| p.bars.len())
        .max()
        .unwrap_or(0)
        .max(1) as u32;
    let with_reference = panels.iter().any(|p| p.reference.is_some());
    let legend = if with_reference { LEGEND_ROW + 4 } else { 0 };
    let height = CAPTION_H + most * BAR_ROW + X_AXIS_H + legend + 2 * MARGIN;
    document(title, panels.len(), (PANEL_W, height), |i, area| {
        bar_panel(area, &panels[i], value_label, legend)
    })
}

fn bar_panel(area: &Area, p: &BarPanel, value_label: &str, legend: u32) -> Result<(), ChartError> {
    let h = area.dim_in_pixel().1;
    let (chart_area, legend_area) = area.split_vertically(h - legend - MARGIN);
    let max = p
        .bars
        .iter()
        .filter_map(|b| b.value)
        .chain(p.reference.as_ref().map(|r| r.0))
        .fold(0.0, f64::max);
    let (top, ticks) = linear_ticks(max);
    let step = ticks.get(1).copied().unwrap_or(top);
    let n = p.bars.len();
    let label_w = p
        .bars
        .iter()
        .map(|b| text_w(&b.label, &font(TICK_PX)))
        .max()
        .unwrap_or(0)
        + 10;
    // The first bar on top: row j sits at y = n - 1 - j.
    let row_of = |j: usize| (n - 1 - j) as f64;
    let mut chart = ChartBuilder::on(&chart_area)
        .caption(&p.title, bold(CAPTION_PX))
        .margin(MARGIN)
        // Room for the longest bar's figure past the axis end.
        .margin_right(40)
        .x_label_area_size(X_AXIS_H)
        .y_label_area_size(label_w)
        .build_cartesian_2d(
            ticked::<RangedCoordf64>(0.0..top, ticks),
            ticked::<RangedCoordf64>(-0.5..n.max(1) as f64 - 0.5, (0..n).map(row_of).collect()),
        )?;
    let label_of = |y: &f64| {
        let j = n as f64 - 1.0 - y.round();
        p.bars
            .get(j as usize)
            .filter(|_| j >= 0.0)
            .map_or(String::new(), |b| b.label.clone())
    };
    let x_fmt = |x: &f64| tick(*x, step);
    styled(&mut chart.configure_mesh())
        .disable_y_mesh()
        .x_desc(value_label)
        .x_label_formatter(&x_fmt)
        .y_label_formatter(&label_of)
        .draw()?;
    // The reference line first: bars and their figures are drawn over it.
    if let Some((v, _)) = &p.reference {
        chart.draw_series(std::iter::once(DashedPathElement::new(
            [(*v, -0.5), (*v, n.max(1) as f64 - 0.5)],
            5,
            3,
            REFERENCE.stroke_width(2),
        )))?;
    }
    let figure = font(TICK_PX - 1.0).pos(Pos::new(HPos::Left, VPos::Center));
    for (j, b) in p.bars.iter().enumerate() {
        let y = row_of(j);
        match b.value {
            Some(v) => {
                chart.draw_series(std::iter::once(Rectangle::new(
                    [(0.0, y - 0.35), (v, y + 0.35)],
                    colour_of(&b.label).filled(),
                )))?;
                chart.draw_series(std::iter::once(
                    EmptyElement::at((v, y)) + Text::new(short(v), (3, 0), figure.clone()),
                ))?;
            }
            None => {
                let failed = bold(TICK_PX - 1.0)
                    .color(&REFERENCE)
                    .pos(Pos::new(HPos::Left, VPos::Center));
                let text = b.mark.clone().unwrap_or_else(|| "FAILED".to_string());
                chart.draw_series(std::iter::once(
                    EmptyElement::at((0.0, y)) + Text::new(text, (3, 0), failed),
                ))?;
            }
        }
    }
    if let Some((_, label)) = &p.reference {
        let entry = [Entry {
            label,
            colour: REFERENCE,
            dashed: true,
        }];
        draw_legend(&legend_area, &entry, (MARGIN + label_w) as i32)?;
    }
    Ok(())
}

/// The legend entries of a line panel: its series, then the reference.
fn line_entries<'a>(p: &'a LinePanel, axes: &'a LineAxes) -> Vec<Entry<'a>> {
    p.series
        .iter()
        .map(|s| Entry {
            label: &s.label,
            colour: colour_of(&s.label),
            dashed: false,
        })
        .chain(axes.reference.as_ref().map(|(_, label)| Entry {
            label,
            colour: REFERENCE,
            dashed: true,
        }))
        .collect()
}

/// Small multiples of line charts, linear y from 0; the x axis linear from 0
/// or, with `log_x`, a tick per decade. A legend of the series (and the
/// reference line) in a strip under each panel.
pub fn line_panels(
    title: &str,
    axes: &LineAxes,
    panels: &[LinePanel],
) -> Result<String, ChartError> {
    let (w, plot_h) = if panels.len() == 1 {
        LARGE
    } else {
        (PANEL_W, SMALL_PLOT_H)
    };
    // Every panel gets the strip its longest legend needs, so rows line up.
    let strip = w - 2 * MARGIN - Y_AXIS_W;
    let legend = panels
        .iter()
        .map(|p| legend_h(&line_entries(p, axes), strip))
        .max()
        .unwrap_or(0);
    let height = CAPTION_H + plot_h + X_AXIS_H + legend + 2 * MARGIN;
    document(title, panels.len(), (w, height), |i, area| {
        line_panel(area, &panels[i], axes, legend)
    })
}

fn line_panel(area: &Area, p: &LinePanel, axes: &LineAxes, legend: u32) -> Result<(), ChartError> {
    let h = area.dim_in_pixel().1;
    let (chart_area, legend_area) = area.split_vertically(h - legend - MARGIN);
    let points = || p.series.iter().flat_map(|s| s.points.iter().copied());
    let max_y = points()
        .map(|(_, y)| y)
        .chain(axes.reference.as_ref().map(|r| r.0))
        .fold(0.0, f64::max);
    let (top, y_ticks) = linear_ticks(max_y);
    let y_step = y_ticks.get(1).copied().unwrap_or(top);
    let y_range = ticked::<RangedCoordf64>(0.0..top, y_ticks);
    let y_fmt = |y: &f64| tick(*y, y_step);
    let mut builder = ChartBuilder::on(&chart_area);
    builder
        .caption(&p.title, bold(CAPTION_PX))
        .margin(MARGIN)
        .margin_right(16)
        .x_label_area_size(X_AXIS_H)
        .y_label_area_size(Y_AXIS_W);
    if axes.log_x {
        let logs = points().filter(|q| q.0 > 0.0).map(|q| q.0.log10());
        let lo = logs.clone().fold(f64::INFINITY, f64::min);
        let hi = logs.fold(f64::NEG_INFINITY, f64::max);
        let (lo, hi) = if lo.is_finite() {
            (
                lo.floor() as i32,
                (hi.ceil() as i32).max(lo.floor() as i32 + 1),
            )
        } else {
            (0, 1)
        };
        // A little room past the outer decades so end points clear the frame.
        let x_range = ticked::<LogCoord<f64>>(
            (10f64.powf(f64::from(lo) - 0.15)..10f64.powf(f64::from(hi) + 0.15)).log_scale(),
            (lo..=hi).map(|k| 10f64.powi(k)).collect(),
        );
        let x_fmt = |x: &f64| power_of_ten(x.log10().round() as i32);
        line_chart(&mut builder, (x_range, &x_fmt), (y_range, &y_fmt), p, axes)?;
    } else {
        let mut xs: Vec<f64> = points().map(|q| q.0).collect();
        xs.sort_by(f64::total_cmp);
        xs.dedup();
        let max_x = xs.last().copied().unwrap_or(1.0).max(1.0);
        let x_range = ticked::<RangedCoordf64>(0.0..max_x * 1.05, xs);
        // Ticks sit at the data's x values (worker counts): 2, not 2.0.
        let x_fmt = |x: &f64| {
            if x.fract() == 0.0 {
                format!("{x:.0}")
            } else {
                short(*x)
            }
        };
        line_chart(&mut builder, (x_range, &x_fmt), (y_range, &y_fmt), p, axes)?;
    }
    draw_legend(
        &legend_area,
        &line_entries(p, axes),
        (MARGIN + Y_AXIS_W) as i32,
    )
}

/// An axis: its coordinate and its tick labels.
type Axis<'f, R> = (R, &'f dyn Fn(&f64) -> String);

/// The axes, grid and lines of one line panel.
fn line_chart<X: Ranged<ValueType = f64>>(
    builder: &mut ChartBuilder<SVGBackend>,
    (x_range, x_fmt): Axis<Ticked<X>>,
    (y_range, y_fmt): Axis<Ticked<RangedCoordf64>>,
    p: &LinePanel,
    axes: &LineAxes,
) -> Result<(), ChartError> {
    let mut chart = builder.build_cartesian_2d(x_range, y_range)?;
    styled(&mut chart.configure_mesh())
        .x_desc(axes.x_label.as_str())
        .y_desc(axes.y_label.as_str())
        .x_label_formatter(x_fmt)
        .y_label_formatter(y_fmt)
        .draw()?;
    if let Some((v, _)) = &axes.reference {
        let (x0, x1) = (chart.x_range().start, chart.x_range().end);
        chart.draw_series(std::iter::once(DashedPathElement::new(
            [(x0, *v), (x1, *v)],
            5,
            3,
            REFERENCE.stroke_width(2),
        )))?;
    }
    for s in &p.series {
        let colour = colour_of(&s.label);
        chart.draw_series(
            LineSeries::new(s.points.iter().copied(), colour.stroke_width(2)).point_size(3),
        )?;
    }
    Ok(())
}

/// The look shared by every chart's axes: light grid, dark axis lines,
/// the tick and axis title fonts.
fn styled<'m, 'a, 'b, X: Ranged, Y: Ranged>(
    mesh: &'m mut MeshStyle<'a, 'b, X, Y, SVGBackend<'a>>,
) -> &'m mut MeshStyle<'a, 'b, X, Y, SVGBackend<'a>> {
    mesh.bold_line_style(GRID)
        .axis_style(AXIS)
        .label_style(font(TICK_PX))
        .axis_desc_style(font(TICK_PX).color(&MUTED))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bar(label: &str, value: Option<f64>) -> Bar {
        Bar {
            label: label.into(),
            value,
            mark: None,
        }
    }

    fn series(label: &str, points: &[(f64, f64)]) -> Series {
        Series {
            label: label.into(),
            points: points.to_vec(),
        }
    }

    /// Every `<text>` element in order: its attributes and its text, unescaped.
    fn texts(svg: &str) -> Vec<(String, String)> {
        svg.split("<text")
            .skip(1)
            .filter_map(|t| {
                let (attrs, body) = t.split_once('>')?;
                let text = body[..body.find("</text>")?]
                    .trim()
                    .replace("&lt;", "<")
                    .replace("&gt;", ">")
                    .replace("&quot;", "\"")
                    .replace("&#39;", "'")
                    .replace("&amp;", "&");
                Some((attrs.to_string(), text))
            })
            .collect()
    }

    fn has(t: &[(String, String)], want: &str) -> bool {
        t.iter().any(|(_, s)| s == want)
    }

    /// A numeric attribute of the first `<text>` reading `text`.
    fn attr_of(t: &[(String, String)], text: &str, name: &str) -> f64 {
        let (attrs, _) = t
            .iter()
            .find(|(_, s)| s == text)
            .unwrap_or_else(|| panic!("no text {text:?} in {t:?}"));
        let v = &attrs[attrs.find(&format!(" {name}=\"")).unwrap() + name.len() + 3..];
        v[..v.find('"').unwrap()].parse().unwrap()
    }

    /// Opening and closing tags balance (self-closing ones count as both).
    fn assert_well_formed(svg: &str) {
        assert!(svg.starts_with("<svg"), "{}", &svg[..svg.len().min(80)]);
        assert!(svg.trim_end().ends_with("</svg>"));
        let mut open: Vec<&str> = Vec::new();
        for tag in svg.split('<').skip(1) {
            let end = tag.find('>').expect("a tag closes");
            let inner = &tag[..end];
            if let Some(name) = inner.strip_prefix('/') {
                assert_eq!(open.pop(), Some(name.trim()), "closing {name} in {svg}");
            } else if !inner.ends_with('/') && !inner.starts_with('?') {
                open.push(inner.split_whitespace().next().unwrap_or(""));
            }
        }
        assert!(open.is_empty(), "unclosed {open:?}");
    }

    /// The fill colour as plotters writes it.
    fn hex(c: RGBColor) -> String {
        format!("#{:02X}{:02X}{:02X}", c.0, c.1, c.2)
    }

    #[test]
    fn nice_steps_are_1_2_5_times_a_power_of_ten() {
        assert_eq!(nice_step(100.0), 50.0);
        assert_eq!(nice_step(1.0), 0.5);
        assert_eq!(nice_step(37_000.0), 10_000.0);
        assert_eq!(nice_step(0.0), 1.0);
        assert_eq!(nice_step(f64::NAN), 1.0);
        assert_eq!(linear_ticks(1.2), (1.5, vec![0.0, 0.5, 1.0, 1.5]));
        assert_eq!(linear_ticks(0.0), (1.0, vec![0.0, 1.0]));
    }

    #[test]
    fn short_figures_and_tick_labels() {
        assert_eq!(short(1_234_567.0), "1.2M");
        assert_eq!(short(35_400.0), "35k");
        assert_eq!(short(830.2), "830");
        assert_eq!(short(0.973), "0.97");
        assert_eq!(tick(1.0, 0.5), "1.0");
        assert_eq!(tick(0.25, 0.05), "0.25");
        assert_eq!(tick(2000.0, 1000.0), "2000");
        assert_eq!(tick(30_000.0, 10_000.0), "30k");
        assert_eq!(power_of_ten(3), "10³");
        assert_eq!(power_of_ten(12), "10¹²");
        assert_eq!(power_of_ten(-1), "10⁻¹");
    }

    #[test]
    fn a_bar_chart_names_every_bar_its_axis_and_its_reference() {
        let svg = bar_panels(
            "a <b> & \"c\"",
            "tasks/s",
            &[
                BarPanel {
                    title: "W_CPU".into(),
                    bars: vec![
                        bar("process", Some(1500.0)),
                        bar("thread", None),
                        bar("async C=2000", Some(20.0)),
                    ],
                    reference: Some((1000.0, "physical limit".into())),
                },
                BarPanel {
                    title: "W_NOOP".into(),
                    bars: vec![bar("py-thread", Some(0.5))],
                    reference: None,
                },
            ],
        )
        .unwrap();
        assert_well_formed(&svg);
        let t = texts(&svg);
        // The title, escaped by plotters, reads back whole.
        assert!(svg.contains("a &lt;b&gt; &amp;"), "{svg}");
        assert_eq!(t[0].1, "a <b> & \"c\"");
        for want in [
            "W_CPU",
            "W_NOOP",
            "process",
            "thread",
            "async C=2000",
            "py-thread",
            "tasks/s",
            "physical limit",
            "1500",
            "20.0",
            "0.50",
            "FAILED",
        ] {
            assert!(has(&t, want), "{want:?} in {t:?}");
        }
        // W_CPU's axis runs to 1500 in steps of 500; W_NOOP's to 0.6.
        for want in ["0", "500", "1000", "1500", "0.0", "0.2", "0.4", "0.6"] {
            assert!(has(&t, want), "tick {want:?} in {t:?}");
        }
        // Bars in their model's colour; the Python row a lighter shade.
        assert!(svg.contains(&format!("fill=\"{}\"", hex(colour_of("process")))));
        assert!(svg.contains(&format!("fill=\"{}\"", hex(colour_of("async C=2000")))));
        assert!(svg.contains(&format!("fill=\"{}\"", hex(colour_of("py-thread")))));
        assert!(!svg.contains(&format!("fill=\"{}\"", hex(colour_of("thread")))));
        // A rect per bar that has a figure, nothing else.
        assert_eq!(svg.matches("<rect").count(), 3, "{svg}");
        // Two panels side by side, each PANEL_W wide.
        assert!(svg.contains(&format!("width=\"{}\"", 2 * PANEL_W)), "{svg}");
    }

    #[test]
    fn bars_keep_their_order_top_down_and_labels_fit_their_area() {
        let labels = ["1 slot", "in-process p=2", "W_CPU_HEAVY \u{2192} process"];
        let svg = bar_panels(
            "t",
            "x",
            &[BarPanel {
                title: "p".into(),
                bars: labels.iter().map(|l| bar(l, Some(1.0))).collect(),
                reference: None,
            }],
        )
        .unwrap();
        let t = texts(&svg);
        let ys: Vec<f64> = labels.iter().map(|l| attr_of(&t, l, "y")).collect();
        assert!(ys.windows(2).all(|w| w[0] < w[1]), "{ys:?}");
        // Labels end at the axis, and the longest starts inside the panel.
        let (_, tag) = t.iter().find(|(_, s)| s == labels[2]).unwrap();
        assert!(
            t.iter()
                .any(|(a, s)| s == labels[2] && a.contains("text-anchor=\"end\"")),
            "{tag}"
        );
        let x = attr_of(&t, labels[2], "x");
        assert!(
            x - f64::from(text_w(labels[2], &font(TICK_PX))) >= 0.0,
            "{x}"
        );
    }

    #[test]
    fn a_title_wider_than_its_panels_widens_the_chart() {
        let title = "--model auto against the best forced model of every workload";
        let panel = BarPanel {
            title: "auto / best".into(),
            bars: vec![bar("W_CPU \u{2192} process", Some(0.9))],
            reference: None,
        };
        let svg = bar_panels(title, "x", &[panel]).unwrap();
        let width = text_w(title, &bold(TITLE_PX)) + 2 * MARGIN;
        assert!(width > PANEL_W);
        assert!(svg.starts_with(&format!("<svg width=\"{width}\"")), "{svg}");
    }

    #[test]
    fn a_line_chart_has_its_axes_series_and_a_legend_under_the_plot() {
        let axes = LineAxes {
            x_label: "workers".into(),
            y_label: "speedup".into(),
            log_x: false,
            reference: None,
        };
        let panel = |title: &str| LinePanel {
            title: title.into(),
            series: vec![
                series("process", &[(1.0, 0.9), (2.0, 1.7), (4.0, 1.9)]),
                series("py-async", &[(1.0, 0.9), (2.0, 1.0), (4.0, 1.1)]),
            ],
        };
        let svg = line_panels(
            "speedup vs workers",
            &axes,
            &[panel("W_CPU"), panel("W_NOOP")],
        )
        .unwrap();
        assert_well_formed(&svg);
        let t = texts(&svg);
        for want in [
            "speedup vs workers",
            "W_CPU",
            "W_NOOP",
            "workers",
            "speedup",
            "process",
            "py-async",
            // Ticks at the data's worker counts; speedup linear from 0.
            "1",
            "2",
            "4",
            "0.0",
            "2.0",
        ] {
            assert!(has(&t, want), "{want:?} in {t:?}");
        }
        assert_eq!(t.iter().filter(|(_, s)| s == "process").count(), 2);
        // Linear x: worker counts 1, 2, 4 sit at proportional distances.
        let xs: Vec<f64> = ["1", "2", "4"]
            .iter()
            .map(|k| attr_of(&t, k, "x"))
            .collect();
        let ratio = (xs[2] - xs[1]) / (xs[1] - xs[0]);
        assert!((ratio - 2.0).abs() < 0.1, "{xs:?}");
        // Each series is a line in its model's colour.
        for label in ["process", "py-async"] {
            assert!(
                svg.contains(&format!(
                    "<polyline fill=\"none\" opacity=\"1\" stroke=\"{}\"",
                    hex(colour_of(label))
                )),
                "{label}: {svg}"
            );
        }
        // The legend sits under the x axis title, not over the panel title.
        let y_of = |text: &str| attr_of(&t, text, "y");
        assert!(y_of("process") > y_of("workers"));
        assert!(y_of("W_CPU") < y_of("speedup"));
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
                series: vec![series("thread", &[(1e3, 0.2), (1e4, 0.8), (1e5, 0.95)])],
            }],
        )
        .unwrap();
        assert_well_formed(&svg);
        let t = texts(&svg);
        for want in [
            "10³",
            "10⁴",
            "10⁵",
            "chunk width",
            "efficiency",
            "thread",
            "0.9",
            "1.0",
        ] {
            assert!(has(&t, want), "{want:?} in {t:?}");
        }
        let xs: Vec<f64> = svg
            .match_indices("<circle cx=\"")
            .map(|(i, m)| {
                let rest = &svg[i + m.len()..];
                rest[..rest.find('"').unwrap()].parse().unwrap()
            })
            .collect();
        // The legend's sample circle, then the three points.
        assert_eq!(xs.len(), 4, "{svg}");
        let xs = &xs[..3];
        assert!(((xs[1] - xs[0]) - (xs[2] - xs[1])).abs() <= 1.0, "{xs:?}");
        // One chart on its own is drawn large.
        assert!(svg.contains(&format!("width=\"{}\"", LARGE.0)));
        assert!(svg.contains(&format!("stroke=\"{}\"", hex(colour_of("thread")))));
        assert!(svg.contains(&format!("stroke=\"{}\"", hex(REFERENCE))));
    }

    #[test]
    fn a_model_has_one_colour_in_every_plot() {
        assert_eq!(colour_of("process"), colour_of("process p=2"));
        assert_eq!(colour_of("async c=10^4"), colour_of("async"));
        assert_ne!(colour_of("async C=2000"), colour_of("async"));
        assert_eq!(colour_of("1 slot"), colour_of("serial c=10^3"));
        assert_eq!(colour_of("auto"), colour_of("auto p=2"));
        assert_eq!(colour_of("in-process"), colour_of("in-process p=2"));
        // Auto's bars take the colour of the model it routed to.
        assert_eq!(colour_of("W_CPU \u{2192} process"), colour_of("process"));
        assert_eq!(
            colour_of("W_CPU \u{2192} async/process"),
            colour_of("async")
        );
        assert_ne!(colour_of("py-process"), colour_of("process"));
        assert_eq!(colour_of("py-async C=200"), colour_of("py-async C=2000"));
        assert_ne!(colour_of("py-async C=200"), colour_of("py-async"));
        let models = [
            "process",
            "thread",
            "async",
            "async C=2000",
            "auto",
            "in-process",
            "1 slot",
            "py-process",
            "py-thread",
            "py-async",
            "py-serial",
        ];
        for (i, a) in models.iter().enumerate() {
            for b in &models[i + 1..] {
                assert_ne!(colour_of(a), colour_of(b), "{a} and {b}");
            }
        }
    }
}
