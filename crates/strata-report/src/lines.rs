//! Line and point charts: one value per x position for each series (accuracy per epoch, CKA of
//! matching layers, agreement per precision), with an optional spread (min/max over seeds, a
//! confidence interval) drawn as a band or as error bars.
//!
//! Drawn with the same embedded font as the heatmap and written atomically to PNG and SVG, so a
//! report's figures look alike and a reader never sees half a file. Bad numbers (NaN, infinities,
//! missing entries) are gaps, never panics: the data come from user runs.

use crate::heatmap::{write_png_atomic, write_svg_atomic};
use crate::ReportError;
use plotters::coord::ranged1d::{DefaultFormatting, KeyPointHint, Ranged};
use plotters::coord::Shift;
use plotters::element::DashedPathElement;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};
use std::path::Path;

/// What the x axis shows, which decides where the values of a series sit.
pub enum XAxis {
    /// Named, unordered-in-value positions (layer names, precisions): series value `i` sits at
    /// position `i`, evenly spaced and labelled with the `i`-th name, so layers line up across
    /// series even when the names are not numbers.
    Categories(Vec<String>),
    /// Numeric positions (epochs, widths): series value `i` sits at `x[i]`, so uneven spacing
    /// shows as such. Non-finite entries drop the values at that index.
    Numeric(Vec<f64>),
}

/// How a series is drawn; pick by what the x axis means.
pub enum Style {
    /// A connected line with circle markers, spread as a translucent band: for ordered x (epochs,
    /// depth), where the trend between points means something. Gaps (`None`) break the line.
    Line,
    /// Markers only, spread as vertical error bars with caps: for categories where joining the
    /// points would suggest an order that is not there. Several `Points` series at the same x are
    /// nudged apart horizontally so their bars stay readable.
    Points,
}

/// One named sequence of values, aligned with the x axis by index.
pub struct Series {
    /// Legend entry; name the run (model, seed set, precision).
    pub name: String,
    /// `y[i]` is the value at x position `i`; `None` (or a non-finite value) is a gap. A series
    /// shorter than the x axis is missing the rest; values beyond the x axis are not drawn.
    pub y: Vec<Option<f64>>,
    /// `spread[i] = (low, high)` around `y[i]`, e.g. min/max over seeds; `None` draws none.
    pub spread: Option<Vec<Option<(f64, f64)>>>,
    /// Line or markers; see [`Style`].
    pub style: Style,
    /// Draw the line dashed (for a `Points` series: hollow markers), to tell a reference (float
    /// model, baseline) from the runs it is compared with beyond colour alone.
    pub dashed: bool,
}

/// A whole chart: titles, x axis, series and an optional fixed y range.
pub struct LinePlot {
    /// Title line above the chart (say what is compared, on which data).
    pub title: String,
    /// Title under the x axis (name the unit: "epoch", "layer").
    pub x_label: String,
    /// Title beside the y axis (name the measure: "linear CKA", "test accuracy").
    pub y_label: String,
    /// Positions of the values; see [`XAxis`].
    pub x: XAxis,
    /// Drawn in order, coloured from a 10-colour palette (Tableau 10) in the same order.
    pub series: Vec<Series>,
    /// Fixed y range, e.g. `(0.0, 1.0)` for CKA so figures compare at a glance; parts of the data
    /// outside it are clipped. `None` fits the data, spreads included, with a 5% margin.
    pub y_range: Option<(f64, f64)>,
}

/// Pixel size of every line chart: wide enough for a legend column beside the plot, small enough
/// to sit in a report page at full size.
const SIZE: (u32, u32) = (900, 520);
/// Tableau 10 (matplotlib's `tab10`): ten colours that stay distinct from each other, familiar to
/// readers of Python plots.
pub(crate) const PALETTE: [RGBColor; 10] = [
    RGBColor(31, 119, 180),
    RGBColor(255, 127, 14),
    RGBColor(44, 160, 44),
    RGBColor(214, 39, 40),
    RGBColor(148, 103, 189),
    RGBColor(140, 86, 75),
    RGBColor(227, 119, 194),
    RGBColor(127, 127, 127),
    RGBColor(188, 189, 34),
    RGBColor(23, 190, 207),
];
const TICK_FONT: f64 = 12.0;
const LEGEND_FONT: f64 = 13.0;
/// Longest category label drawn; longer names lose their start (see [`shorten`]).
const LABEL_CHARS: usize = 26;

/// Render `p` as a PNG at `path` (atomically: drawn to a temporary `.png` beside it, then renamed).
pub fn line_plot_png(p: &LinePlot, path: &Path) -> Result<(), ReportError> {
    write_png_atomic(path, SIZE, "line plot", |area| draw(p, area))
}

/// Render `p` as an SVG at `path` (atomically), with its text as text so it stays searchable and
/// sharp at any zoom.
pub fn line_plot_svg(p: &LinePlot, path: &Path) -> Result<(), ReportError> {
    write_svg_atomic(path, SIZE, "line plot", |area| draw(p, area))
}

fn finite(v: f64) -> Option<f64> {
    v.is_finite().then_some(v)
}

/// A series reduced to what can be drawn: one entry per x position, non-finite values removed,
/// spreads ordered low <= high.
struct Clean {
    y: Vec<Option<f64>>,
    spread: Vec<Option<(f64, f64)>>,
    /// Horizontal nudge (in x units) that keeps `Points` series apart.
    offset: f64,
}

/// Everything about the chart that does not depend on the backend.
struct Prepared {
    /// x coordinate of each position (`None` for a non-finite numeric x).
    xs: Vec<Option<f64>>,
    x_range: (f64, f64),
    x_ticks: Vec<f64>,
    x_decimals: usize,
    y_range: (f64, f64),
    y_ticks: Vec<f64>,
    y_decimals: usize,
    series: Vec<Clean>,
}

impl Prepared {
    fn new(p: &LinePlot) -> Self {
        let xs: Vec<Option<f64>> = match &p.x {
            XAxis::Categories(names) => (0..names.len()).map(|i| Some(i as f64)).collect(),
            XAxis::Numeric(v) => v.iter().map(|&x| finite(x)).collect(),
        };
        let n = xs.len();
        // Spacing between neighbouring x positions, the unit of the Points nudge.
        let unit = match &p.x {
            XAxis::Categories(_) => 1.0,
            XAxis::Numeric(_) => {
                let mut v: Vec<f64> = xs.iter().flatten().copied().collect();
                v.sort_by(f64::total_cmp);
                v.windows(2)
                    .map(|w| w[1] - w[0])
                    .filter(|d| *d > 0.0 && d.is_finite())
                    .fold(f64::INFINITY, f64::min)
            }
        };
        let unit = if unit.is_finite() { unit } else { 1.0 };
        let k = p
            .series
            .iter()
            .filter(|s| matches!(s.style, Style::Points))
            .count();
        let step = if k > 1 {
            (0.6 / k as f64).min(0.15)
        } else {
            0.0
        };
        let mut j = 0;
        let series: Vec<Clean> = p
            .series
            .iter()
            .map(|s| {
                let y = (0..n)
                    .map(|i| s.y.get(i).copied().flatten().and_then(finite))
                    .collect();
                let spread = (0..n)
                    .map(|i| {
                        let (a, b) = s.spread.as_ref()?.get(i).copied().flatten()?;
                        Some((finite(a)?.min(b), finite(b)?.max(a)))
                    })
                    .collect();
                let offset = if matches!(s.style, Style::Points) {
                    j += 1;
                    (j as f64 - 1.0 - (k as f64 - 1.0) / 2.0) * step * unit
                } else {
                    0.0
                };
                Clean { y, spread, offset }
            })
            .collect();

        let x_range = match &p.x {
            XAxis::Categories(_) => (-0.5, n.max(1) as f64 - 0.5),
            XAxis::Numeric(_) => {
                let nudge = series.iter().map(|s| s.offset.abs()).fold(0.0, f64::max);
                let (lo, hi) = bounds(xs.iter().flatten().copied());
                padded(lo, hi, 0.03, nudge * 1.5)
            }
        };
        let y_range = match p.y_range {
            Some((a, b)) if a.is_finite() && b.is_finite() && a != b => (a.min(b), a.max(b)),
            _ => {
                let mut vals = Vec::new();
                for s in &series {
                    for (i, x) in xs.iter().enumerate() {
                        if x.is_some() {
                            vals.extend(s.y[i]);
                            if let Some((a, b)) = s.spread[i] {
                                vals.extend([a, b]);
                            }
                        }
                    }
                }
                let (lo, hi) = bounds(vals.into_iter());
                padded(lo, hi, 0.05, 0.0)
            }
        };
        let (x_ticks, x_decimals) = match &p.x {
            XAxis::Categories(names) => {
                // At most ~60 labels; beyond that every k-th category is named.
                let every = names.len().div_ceil(60).max(1);
                ((0..n).step_by(every).map(|i| i as f64).collect(), 0)
            }
            XAxis::Numeric(_) => nice_ticks(x_range, 10),
        };
        let (y_ticks, y_decimals) = nice_ticks(y_range, 8);
        Prepared {
            xs,
            x_range,
            x_ticks,
            x_decimals,
            y_range,
            y_ticks,
            y_decimals,
            series,
        }
    }
}

/// Smallest and largest of `vals`, `(0, 1)` when there are none.
fn bounds(vals: impl Iterator<Item = f64>) -> (f64, f64) {
    let (lo, hi) = vals.fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), v| {
        (lo.min(v), hi.max(v))
    });
    if lo > hi {
        (0.0, 1.0)
    } else {
        (lo, hi)
    }
}

/// `[lo, hi]` widened by `frac` of its span (at least `min_pad`) on each side. A single value gets
/// a range around it; spans too wide for f64 are narrowed so axis arithmetic stays finite (data
/// beyond are clipped).
fn padded(lo: f64, hi: f64, frac: f64, min_pad: f64) -> (f64, f64) {
    const BIG: f64 = f64::MAX / 8.0;
    let (lo, hi) = (lo.max(-BIG), hi.min(BIG));
    let span = hi - lo;
    let pad = if span > 0.0 {
        (span * frac).max(min_pad)
    } else {
        (lo.abs() * 0.05).max(0.5).max(min_pad)
    };
    ((lo - pad).max(-BIG * 2.0), (hi + pad).min(BIG * 2.0))
}

/// Round tick positions (1, 2 or 5 times a power of ten) inside `range`, about `target` of them,
/// and the decimals needed to print them distinctly.
fn nice_ticks(range: (f64, f64), target: usize) -> (Vec<f64>, usize) {
    let (lo, hi) = range;
    let span = hi - lo;
    if !(span.is_finite() && span > 0.0) {
        return (vec![lo], 0);
    }
    let raw = span / target as f64;
    let mag = 10f64.powf(raw.log10().floor());
    let step = [1.0, 2.0, 5.0, 10.0]
        .iter()
        .map(|m| m * mag)
        .find(|s| span / s <= target as f64)
        .unwrap_or(10.0 * mag);
    let first = (lo / step).ceil();
    let ticks: Vec<f64> = (0..=target * 2 + 2)
        .map(|i| (first + i as f64) * step)
        .take_while(|t| *t <= hi + step * 1e-9)
        // Print -0 as 0.
        .map(|t| if t.abs() < step * 1e-9 { 0.0 } else { t })
        .collect();
    let decimals = (-step.log10().floor()).clamp(0.0, 12.0) as usize;
    (ticks, decimals)
}

/// A tick label: fixed decimals for ordinary magnitudes, scientific beyond.
fn tick_label(v: f64, decimals: usize) -> String {
    let a = v.abs();
    if a != 0.0 && !(1e-4..1e7).contains(&a) {
        format!("{v:.2e}")
    } else {
        format!("{v:.decimals$}")
    }
}

/// `s` cut to `max` characters by dropping its start: names in one model share their prefix and
/// differ at the end (`encoder.layers.10.self_attn.out_proj`), so the end is what tells them apart.
fn shorten(s: &str, max: usize) -> String {
    let n = s.chars().count();
    if n <= max {
        return s.to_string();
    }
    let mut t = String::from("…");
    t.extend(s.chars().skip(n + 1 - max.max(1)));
    t
}

/// `s` cut to `max` characters, with an ellipsis when cut.
fn truncate(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        s.to_string()
    } else {
        let mut t: String = s.chars().take(max.saturating_sub(1)).collect();
        t.push('…');
        t
    }
}

/// The parts of the polyline through `pts` that lie within `lo <= y <= hi`, each a polyline.
fn clip_polyline(pts: &[(f64, f64)], lo: f64, hi: f64) -> Vec<Vec<(f64, f64)>> {
    let mut runs: Vec<Vec<(f64, f64)>> = Vec::new();
    let inside = |y: f64| (lo..=hi).contains(&y);
    if pts.len() == 1 && inside(pts[0].1) {
        return vec![pts.to_vec()];
    }
    for w in pts.windows(2) {
        let ((x0, y0), (x1, y1)) = (w[0], w[1]);
        // Parametric clip of the segment against the two horizontal lines.
        let (mut t0, mut t1) = (0.0f64, 1.0f64);
        let dy = y1 - y0;
        if dy == 0.0 {
            if !inside(y0) {
                continue;
            }
        } else {
            let (ta, tb) = ((lo - y0) / dy, (hi - y0) / dy);
            t0 = t0.max(ta.min(tb));
            t1 = t1.min(ta.max(tb));
            if t0.is_nan() || t1.is_nan() || t0 > t1 {
                continue;
            }
        }
        let at = |t: f64| {
            let (x, y) = if t <= 0.0 {
                (x0, y0)
            } else if t >= 1.0 {
                (x1, y1)
            } else {
                (x0 + (x1 - x0) * t, y0 + dy * t)
            };
            // Rounding (or overflow with extreme values) must not leave the strip.
            (x, y.clamp(lo, hi))
        };
        let (a, b) = (at(t0), at(t1));
        match runs.last_mut() {
            Some(run) if run.last() == Some(&a) => run.push(b),
            _ => runs.push(vec![a, b]),
        }
    }
    runs
}

/// The polygon `pts` clipped to the horizontal strip `lo <= y <= hi` (Sutherland-Hodgman).
fn clip_polygon(pts: &[(f64, f64)], lo: f64, hi: f64) -> Vec<(f64, f64)> {
    let mut poly = pts.to_vec();
    for (bound, keep_above) in [(lo, true), (hi, false)] {
        let inside = |y: f64| if keep_above { y >= bound } else { y <= bound };
        let mut out = Vec::with_capacity(poly.len() + 2);
        for i in 0..poly.len() {
            let (p, q) = (poly[i], poly[(i + 1) % poly.len()]);
            let cross = || {
                let t = (bound - p.1) / (q.1 - p.1);
                (p.0 + (q.0 - p.0) * t, bound)
            };
            match (inside(p.1), inside(q.1)) {
                (true, true) => out.push(q),
                (true, false) => out.push(cross()),
                (false, true) => {
                    out.push(cross());
                    out.push(q);
                }
                (false, false) => {}
            }
        }
        poly = out;
    }
    poly
}

/// Runs of consecutive indices where `f` gives a value, as `(index, value)` lists.
fn runs<T: Copy>(n: usize, f: impl Fn(usize) -> Option<T>) -> Vec<Vec<(usize, T)>> {
    let mut out: Vec<Vec<(usize, T)>> = Vec::new();
    let mut open = false;
    for i in 0..n {
        match f(i) {
            Some(v) if open => out.last_mut().into_iter().for_each(|r| r.push((i, v))),
            Some(v) => {
                out.push(vec![(i, v)]);
                open = true;
            }
            None => open = false,
        }
    }
    out
}

/// A linear axis whose ticks (and grid lines) sit exactly at the given positions: category
/// centres, or round numbers chosen by [`nice_ticks`], rather than plotters' own choice.
struct Axis {
    lo: f64,
    hi: f64,
    ticks: Vec<f64>,
}

impl Ranged for Axis {
    type FormatOption = DefaultFormatting;
    type ValueType = f64;

    fn map(&self, v: &f64, limit: (i32, i32)) -> i32 {
        let t = (v - self.lo) / (self.hi - self.lo);
        let px = limit.0 as f64 + t * (limit.1 - limit.0) as f64;
        // Far outside values (clipped before drawing anyway) must not overflow pixel arithmetic.
        px.round().clamp(-1e6, 1e6) as i32
    }

    fn key_points<Hint: KeyPointHint>(&self, hint: Hint) -> Vec<f64> {
        // Bold (labelled) points only: no minor grid.
        if hint.weight().allow_light_points() {
            Vec::new()
        } else {
            self.ticks.clone()
        }
    }

    fn range(&self) -> std::ops::Range<f64> {
        self.lo..self.hi
    }
}

fn font(size: f64) -> FontDesc<'static> {
    ("sans-serif", size).into_font()
}

/// Top margin of the plot: room for the title.
const TOP: i32 = 44;

fn draw<DB: DrawingBackend>(p: &LinePlot, root: &DrawingArea<DB, Shift>) -> Result<(), String> {
    let prep = Prepared::new(p);
    root.fill(&WHITE).map_err(|x| x.to_string())?;
    draw_title(p, root)?;
    let layout = Layout::new(p, &prep, root)?;
    let chart = draw_axes(p, &prep, &layout, root)?;
    if layout.rotate {
        draw_rotated_labels(p, &prep, &chart, root)?;
    }
    let area = chart.plotting_area();
    draw_bands(p, &prep, area)?;
    draw_series(p, &prep, area)?;
    draw_legend(p, &layout, root)
}

/// Width in pixels of `text` in the embedded font at `size`: labels get the room they need and
/// no more.
fn text_width<DB: DrawingBackend>(
    root: &DrawingArea<DB, Shift>,
    text: &str,
    size: f64,
) -> Result<i32, String> {
    let style = TextStyle::from(font(size));
    Ok(root
        .estimate_text_size(text, &style)
        .map_err(|x| x.to_string())?
        .0 as i32)
}

/// `text` shortened (by `cut`, one character at a time) until it fits in `max` pixels. Nothing
/// this figure draws fits 160 characters, so start there whatever the input's length.
fn fit<DB: DrawingBackend>(
    root: &DrawingArea<DB, Shift>,
    text: &str,
    size: f64,
    max: i32,
    cut: fn(&str, usize) -> String,
) -> Result<String, String> {
    let mut n = text.chars().count().min(160);
    let mut t = cut(text, n);
    while n > 1 && text_width(root, &t, size)? > max {
        n -= 1;
        t = cut(text, n);
    }
    Ok(t)
}

/// The title line, centred above the plot.
fn draw_title<DB: DrawingBackend>(
    p: &LinePlot,
    root: &DrawingArea<DB, Shift>,
) -> Result<(), String> {
    let w = root.dim_in_pixel().0 as i32;
    root.draw_text(
        &fit(root, &p.title, 17.0, w - 40, truncate)?,
        &font(17.0)
            .color(&BLACK)
            .pos(Pos::new(HPos::Center, VPos::Center)),
        (w / 2, 22),
    )
    .map_err(|x| x.to_string())
}

/// Sizes decided by the text the chart holds: the legend column, and the label areas of the axes.
struct Layout {
    /// Legend entries, shortened to fit the legend column.
    names: Vec<String>,
    /// Width of the legend column, as the longest name needs (within limits).
    legend_w: i32,
    /// Category names too wide for their slot are drawn vertically, reading up to the axis.
    rotate: bool,
    /// Height of the area under the plot (tick labels and the x title).
    x_area: i32,
    /// Width of the area left of the plot (tick labels and the y title).
    y_area: i32,
}

impl Layout {
    fn new<DB: DrawingBackend>(
        p: &LinePlot,
        prep: &Prepared,
        root: &DrawingArea<DB, Shift>,
    ) -> Result<Self, String> {
        let w = root.dim_in_pixel().0 as i32;
        let width = |text: &str, size: f64| text_width(root, text, size);
        // Legend column to the right of the plot, as wide as the longest name needs.
        let names = p
            .series
            .iter()
            .map(|s| fit(root, &s.name, LEGEND_FONT, 250 - 52, truncate))
            .collect::<Result<Vec<_>, _>>()?;
        let mut legend_w = 0;
        for name in &names {
            legend_w = legend_w.max((width(name, LEGEND_FONT)? + 52).clamp(120, 250));
        }
        let plot_w = w - legend_w - 12;
        let (rotate, label_w) = match &p.x {
            XAxis::Categories(names) => {
                let mut max = 0;
                for &t in &prep.x_ticks {
                    let name = names.get(t as usize).map(String::as_str).unwrap_or("");
                    max = max.max(width(&shorten(name, LABEL_CHARS), TICK_FONT)?);
                }
                let slot = (plot_w - 90) as f64 / prep.x_ticks.len().max(1) as f64;
                (max as f64 > slot * 0.9, max)
            }
            XAxis::Numeric(_) => (false, 0),
        };
        let x_area = if rotate { label_w + 44 } else { 44 };
        let mut y_w = 0;
        for v in &prep.y_ticks {
            y_w = y_w.max(width(&tick_label(*v, prep.y_decimals), TICK_FONT)?);
        }
        let y_area = (y_w + 36).clamp(50, 140);
        Ok(Layout {
            names,
            legend_w,
            rotate,
            x_area,
            y_area,
        })
    }
}

/// The plot area with its grid, tick labels and axis titles (rotated category names excepted).
fn draw_axes<'c, DB: DrawingBackend>(
    p: &LinePlot,
    prep: &Prepared,
    layout: &Layout,
    root: &DrawingArea<DB, Shift>,
) -> Result<ChartContext<'c, DB, Cartesian2d<Axis, Axis>>, String> {
    let plot_area = root.margin(TOP as u32, 10, 8, (layout.legend_w + 16) as u32);
    let (x0, x1) = prep.x_range;
    let (y0, y1) = prep.y_range;
    let mut chart = ChartBuilder::on(&plot_area)
        .x_label_area_size(layout.x_area)
        .y_label_area_size(layout.y_area)
        .build_cartesian_2d(
            Axis {
                lo: x0,
                hi: x1,
                ticks: prep.x_ticks.clone(),
            },
            Axis {
                lo: y0,
                hi: y1,
                ticks: prep.y_ticks.clone(),
            },
        )
        .map_err(|x| x.to_string())?;
    let x_label = |v: &f64| match &p.x {
        XAxis::Categories(_) if layout.rotate => String::new(),
        XAxis::Categories(names) => names
            .get(v.round().max(0.0) as usize)
            .map(|s| shorten(s, LABEL_CHARS))
            .unwrap_or_default(),
        XAxis::Numeric(_) => tick_label(*v, prep.x_decimals),
    };
    let y_label = |v: &f64| tick_label(*v, prep.y_decimals);
    chart
        .configure_mesh()
        .x_desc(p.x_label.as_str())
        .y_desc(p.y_label.as_str())
        .axis_desc_style(font(14.0))
        .label_style(font(TICK_FONT))
        .x_label_formatter(&x_label)
        .y_label_formatter(&y_label)
        .bold_line_style(RGBColor(228, 228, 228))
        .light_line_style(TRANSPARENT)
        .draw()
        .map_err(|x| x.to_string())?;
    Ok(chart)
}

/// Category names drawn vertically under their ticks, reading up to the axis.
fn draw_rotated_labels<DB: DrawingBackend>(
    p: &LinePlot,
    prep: &Prepared,
    chart: &ChartContext<'_, DB, Cartesian2d<Axis, Axis>>,
    root: &DrawingArea<DB, Shift>,
) -> Result<(), String> {
    let XAxis::Categories(names) = &p.x else {
        return Ok(());
    };
    let style = font(TICK_FONT)
        .transform(FontTransform::Rotate270)
        .color(&BLACK)
        .pos(Pos::new(HPos::Right, VPos::Center));
    for &t in &prep.x_ticks {
        let name = names.get(t as usize).map(String::as_str).unwrap_or("");
        let (px, py) = chart.backend_coord(&(t, prep.y_range.0));
        root.draw_text(&shorten(name, LABEL_CHARS), &style, (px, py + 8))
            .map_err(|x| x.to_string())?;
    }
    Ok(())
}

/// The colour of series `i`.
fn color(i: usize) -> RGBColor {
    PALETTE[i % PALETTE.len()]
}

/// The x coordinate of value `i` of a series, nudged by the series' offset.
fn x_at(prep: &Prepared, i: usize, s: &Clean) -> Option<f64> {
    prep.xs[i].map(|x| x + s.offset)
}

/// The spreads of `Line` series as translucent bands (a wide bar for a lone value), drawn first
/// so lines and markers of every series stay on top of them.
fn draw_bands<DB: DrawingBackend>(
    p: &LinePlot,
    prep: &Prepared,
    area: &DrawingArea<DB, Cartesian2d<Axis, Axis>>,
) -> Result<(), String> {
    let e = |x: DrawingAreaErrorKind<DB::ErrorType>| x.to_string();
    let (y0, y1) = prep.y_range;
    for (si, (s, c)) in p.series.iter().zip(&prep.series).enumerate() {
        if !matches!(s.style, Style::Line) {
            continue;
        }
        let fill = color(si).mix(0.18).filled();
        for run in runs(prep.xs.len(), |i| Some((x_at(prep, i, c)?, c.spread[i]?))) {
            if run.len() == 1 {
                let (_, (x, (a, b))) = run[0];
                let (a, b) = (a.max(y0), b.min(y1));
                if a <= b {
                    let wide = color(si).mix(0.3).stroke_width(6);
                    area.draw(&PathElement::new(vec![(x, a), (x, b)], wide))
                        .map_err(e)?;
                }
                continue;
            }
            let mut poly: Vec<(f64, f64)> = run.iter().map(|&(_, (x, (_, b)))| (x, b)).collect();
            poly.extend(run.iter().rev().map(|&(_, (x, (a, _)))| (x, a)));
            let poly = clip_polygon(&poly, y0, y1);
            if poly.len() >= 3 {
                area.draw(&Polygon::new(poly, fill)).map_err(e)?;
            }
        }
    }
    Ok(())
}

/// Every series' values: lines with markers, or markers with error bars.
fn draw_series<DB: DrawingBackend>(
    p: &LinePlot,
    prep: &Prepared,
    area: &DrawingArea<DB, Cartesian2d<Axis, Axis>>,
) -> Result<(), String> {
    for (si, (s, c)) in p.series.iter().zip(&prep.series).enumerate() {
        match s.style {
            Style::Line => draw_line(prep, area, c, color(si), s.dashed)?,
            Style::Points => draw_points(prep, area, c, color(si), s.dashed)?,
        }
    }
    Ok(())
}

/// A `Line` series: its runs of values as (dashed) lines clipped to the y range, then markers
/// that shrink, then go, as points crowd (long training curves).
fn draw_line<DB: DrawingBackend>(
    prep: &Prepared,
    area: &DrawingArea<DB, Cartesian2d<Axis, Axis>>,
    c: &Clean,
    col: RGBColor,
    dashed: bool,
) -> Result<(), String> {
    let e = |x: DrawingAreaErrorKind<DB::ErrorType>| x.to_string();
    let (y0, y1) = prep.y_range;
    let n = prep.xs.len();
    let stroke = col.stroke_width(2);
    for run in runs(n, |i| Some((x_at(prep, i, c)?, c.y[i]?))) {
        let pts: Vec<(f64, f64)> = run.iter().map(|&(_, p)| p).collect();
        for part in clip_polyline(&pts, y0, y1) {
            if part.len() < 2 {
                continue;
            }
            if dashed {
                area.draw(&DashedPathElement::new(part, 7, 5, stroke))
                    .map_err(e)?;
            } else {
                area.draw(&PathElement::new(part, stroke)).map_err(e)?;
            }
        }
    }
    let count = c.y.iter().flatten().count();
    let r = match count {
        0..=50 => 3,
        51..=150 => 2,
        _ => 0,
    };
    for i in 0..n {
        if let (Some(x), Some(y)) = (x_at(prep, i, c), c.y[i]) {
            if r > 0 && (y0..=y1).contains(&y) {
                area.draw(&Circle::new((x, y), r, col.filled()))
                    .map_err(e)?;
            }
        }
    }
    Ok(())
}

/// A `Points` series: at each x its error bar (capped only where the bar really ends, not where
/// it is clipped), then its marker.
fn draw_points<DB: DrawingBackend>(
    prep: &Prepared,
    area: &DrawingArea<DB, Cartesian2d<Axis, Axis>>,
    c: &Clean,
    col: RGBColor,
    hollow: bool,
) -> Result<(), String> {
    let e = |x: DrawingAreaErrorKind<DB::ErrorType>| x.to_string();
    let (y0, y1) = prep.y_range;
    let stroke = col.stroke_width(2);
    for i in 0..prep.xs.len() {
        let Some(x) = x_at(prep, i, c) else { continue };
        if let Some((a, b)) = c.spread[i] {
            let (ca, cb) = (a.max(y0), b.min(y1));
            if ca <= cb {
                area.draw(&PathElement::new(vec![(x, ca), (x, cb)], stroke))
                    .map_err(e)?;
                for (v, clipped) in [(a, a < y0), (b, b > y1)] {
                    if !clipped {
                        let cap = EmptyElement::at((x, v))
                            + PathElement::new(vec![(-5, 0), (5, 0)], stroke);
                        area.draw(&cap).map_err(e)?;
                    }
                }
            }
        }
        if let Some(y) = c.y[i].filter(|y| (y0..=y1).contains(y)) {
            marker(area, (x, y), col, hollow).map_err(e)?;
        }
    }
    Ok(())
}

/// The legend column: for each series a swatch drawn like the series, then its name; an
/// "… and N more" row where the column runs out of room.
fn draw_legend<DB: DrawingBackend>(
    p: &LinePlot,
    layout: &Layout,
    root: &DrawingArea<DB, Shift>,
) -> Result<(), String> {
    let e = |x: DrawingAreaErrorKind<DB::ErrorType>| x.to_string();
    let (w, h) = root.dim_in_pixel();
    let (w, h) = (w as i32, h as i32);
    let lx = w - layout.legend_w - 4;
    let max_rows = ((h - TOP - 30) / 22).max(1) as usize;
    let text_style = font(LEGEND_FONT)
        .color(&BLACK)
        .pos(Pos::new(HPos::Left, VPos::Center));
    for (si, s) in p.series.iter().enumerate() {
        let y = TOP + 16 + si as i32 * 22;
        if si + 1 == max_rows && p.series.len() > max_rows {
            let more = format!("… and {} more", p.series.len() - si);
            root.draw_text(&more, &text_style, (lx, y)).map_err(e)?;
            break;
        }
        draw_swatch(root, s, color(si), (lx, y))?;
        root.draw_text(&layout.names[si], &text_style, (lx + 38, y))
            .map_err(e)?;
    }
    Ok(())
}

/// A legend swatch for `s` whose row starts at `(lx, y)`: a short (dashed) line with a marker,
/// or a marker with a bar when the series has error bars.
fn draw_swatch<DB: DrawingBackend>(
    root: &DrawingArea<DB, Shift>,
    s: &Series,
    col: RGBColor,
    (lx, y): (i32, i32),
) -> Result<(), String> {
    let e = |x: DrawingAreaErrorKind<DB::ErrorType>| x.to_string();
    match s.style {
        Style::Line => {
            let seg = vec![(lx, y), (lx + 30, y)];
            if s.dashed {
                root.draw(&DashedPathElement::new(seg, 7, 5, col.stroke_width(2)))
                    .map_err(e)?;
            } else {
                root.draw(&PathElement::new(seg, col.stroke_width(2)))
                    .map_err(e)?;
            }
            root.draw(&Circle::new((lx + 15, y), 3, col.filled()))
                .map_err(e)?;
        }
        Style::Points => {
            if s.spread.is_some() {
                let bar = vec![(lx + 15, y - 7), (lx + 15, y + 7)];
                root.draw(&PathElement::new(bar, col.stroke_width(2)))
                    .map_err(e)?;
            }
            marker(root, (lx + 15, y), col, s.dashed).map_err(e)?;
        }
    }
    Ok(())
}

/// A point marker: filled, or hollow (white inside) for a dashed `Points` series.
fn marker<DB: DrawingBackend, CT: CoordTranslate>(
    area: &DrawingArea<DB, CT>,
    at: CT::From,
    col: RGBColor,
    hollow: bool,
) -> Result<(), DrawingAreaErrorKind<DB::ErrorType>>
where
    CT::From: Clone,
{
    if hollow {
        area.draw(&Circle::new(at.clone(), 4, WHITE.filled()))?;
        area.draw(&Circle::new(at, 4, col.stroke_width(2)))
    } else {
        area.draw(&Circle::new(at, 4, col.filled()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tmp_dir(tag: &str) -> std::path::PathBuf {
        let d = std::env::temp_dir().join(format!("strata-lines-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        d
    }

    fn series(name: &str, y: Vec<Option<f64>>, style: Style) -> Series {
        Series {
            name: name.into(),
            y,
            spread: None,
            style,
            dashed: false,
        }
    }

    fn plot(x: XAxis, series: Vec<Series>) -> LinePlot {
        LinePlot {
            title: "CKA of matching layers".into(),
            x_label: "layer".into(),
            y_label: "linear CKA".into(),
            x,
            series,
            y_range: None,
        }
    }

    fn sample() -> LinePlot {
        let mut a = series(
            "float32",
            vec![Some(1.0), Some(0.9), None, Some(0.7)],
            Style::Line,
        );
        a.spread = Some(vec![
            Some((0.95, 1.0)),
            Some((0.85, 0.93)),
            None,
            Some((0.6, 0.8)),
        ]);
        let mut b = series(
            "binary",
            vec![Some(0.8), Some(0.6), Some(0.5), Some(0.4)],
            Style::Points,
        );
        b.spread = Some(vec![Some((0.7, 0.9)); 4]);
        let mut c = series("int4", vec![Some(0.85), Some(0.7)], Style::Points);
        c.dashed = true;
        plot(
            XAxis::Categories(vec![
                "input".into(),
                "fc1".into(),
                "fc2".into(),
                "fc3".into(),
            ]),
            vec![a, b, c],
        )
    }

    fn leftovers(dir: &Path) -> Vec<String> {
        std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|n| n.contains("tmp"))
            .collect()
    }

    #[test]
    fn writes_png_and_svg_with_names_and_title() {
        let dir = tmp_dir("basic");
        let p = sample();
        let (png, svg) = (dir.join("cka.png"), dir.join("cka.svg"));
        line_plot_png(&p, &png).unwrap();
        line_plot_svg(&p, &svg).unwrap();
        let bytes = std::fs::read(&png).unwrap();
        assert_eq!(&bytes[..8], b"\x89PNG\r\n\x1a\n");
        // Width and height from the IHDR chunk.
        let dim = |o: usize| u32::from_be_bytes(bytes[o..o + 4].try_into().unwrap());
        assert_eq!((dim(16), dim(20)), SIZE);
        let text = std::fs::read_to_string(&svg).unwrap();
        assert!(text.contains("<svg"));
        for s in [
            "CKA of matching layers",
            "float32",
            "binary",
            "int4",
            "fc2",
            "linear CKA",
        ] {
            assert!(text.contains(s), "{s} missing from the SVG");
        }
        assert!(leftovers(&dir).is_empty(), "{:?}", leftovers(&dir));
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn svg_escapes_markup_in_names() {
        let dir = tmp_dir("escape");
        let mut p = sample();
        p.series[0].name = "a<b & c".into();
        let svg = dir.join("e.svg");
        line_plot_svg(&p, &svg).unwrap();
        let text = std::fs::read_to_string(&svg).unwrap();
        assert!(text.contains("a&lt;b &amp; c"));
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn edge_cases_draw_without_panicking() {
        let dir = tmp_dir("edges");
        let nan = f64::NAN;
        let cases = vec![
            plot(XAxis::Categories(vec![]), vec![]),
            LinePlot {
                title: "t".repeat(100_000),
                ..plot(
                    XAxis::Categories(vec![String::new(), "x".repeat(10_000)]),
                    vec![series(&"n".repeat(100_000), vec![Some(1.0)], Style::Points)],
                )
            },
            plot(
                XAxis::Numeric(vec![]),
                vec![series("e", vec![], Style::Line)],
            ),
            plot(
                XAxis::Numeric(vec![3.0]),
                vec![series("one", vec![Some(0.5)], Style::Line)],
            ),
            plot(
                XAxis::Categories(vec!["a".into(), "b".into(), "c".into()]),
                vec![
                    series("none", vec![None, None], Style::Line),
                    series("nan", vec![Some(nan), Some(f64::INFINITY)], Style::Points),
                ],
            ),
            plot(
                XAxis::Numeric(vec![1.0, nan, 3.0, f64::NEG_INFINITY]),
                vec![series("const", vec![Some(2.0); 6], Style::Line)],
            ),
            plot(
                XAxis::Numeric(vec![0.0, 1.0, 2.0]),
                vec![series(
                    "huge",
                    vec![Some(f64::MAX), Some(-f64::MAX), Some(1e-300)],
                    Style::Line,
                )],
            ),
            plot(
                XAxis::Numeric(vec![5.0, 5.0, 5.0]),
                vec![
                    series("zero", vec![Some(0.0); 3], Style::Points),
                    series("zero2", vec![Some(0.0); 3], Style::Points),
                ],
            ),
            // Many long category names (rotated labels, thinned ticks) and many series.
            plot(
                XAxis::Categories(
                    (0..150)
                        .map(|i| format!("encoder.block{i}.attention.out"))
                        .collect(),
                ),
                (0..25)
                    .map(|k| {
                        series(
                            &format!("a rather long series name number {k}"),
                            (0..150).map(|i| Some((i * k) as f64)).collect(),
                            Style::Line,
                        )
                    })
                    .collect(),
            ),
        ];
        for (i, mut p) in cases.into_iter().enumerate() {
            for yr in [None, Some((0.0, 1.0)), Some((1.0, 1.0)), Some((nan, 1.0))] {
                p.y_range = yr;
                for s in &mut p.series {
                    s.spread = Some(vec![Some((nan, 1.0)), Some((3.0, -3.0))]);
                }
                line_plot_png(&p, &dir.join(format!("{i}.png"))).unwrap();
                line_plot_svg(&p, &dir.join(format!("{i}.svg"))).unwrap();
            }
        }
        assert!(leftovers(&dir).is_empty());
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn unwritable_path_is_an_error_and_leaves_nothing() {
        let dir = tmp_dir("unwritable");
        let missing = dir.join("no-such-dir");
        assert!(line_plot_png(&sample(), &missing.join("x.png")).is_err());
        assert!(line_plot_svg(&sample(), &missing.join("x.svg")).is_err());
        assert!(std::fs::read_dir(&dir).unwrap().next().is_none());
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn fitted_range_covers_values_and_spreads_with_margin() {
        let mut p = sample();
        p.series.truncate(1);
        let prep = Prepared::new(&p);
        // Values span [0.6, 1.0] including the spread; 5% of 0.4 on each side.
        let (lo, hi) = prep.y_range;
        assert!(
            (lo - 0.58).abs() < 1e-12 && (hi - 1.02).abs() < 1e-12,
            "{lo} {hi}"
        );
        p.y_range = Some((1.0, 0.0));
        assert_eq!(Prepared::new(&p).y_range, (0.0, 1.0));
    }

    #[test]
    fn points_series_are_nudged_apart_symmetrically() {
        let prep = Prepared::new(&sample());
        let off: Vec<f64> = prep.series.iter().map(|s| s.offset).collect();
        assert_eq!(off[0], 0.0, "a Line series is not moved");
        assert!(off[1] < 0.0 && off[2] > 0.0);
        assert!((off[1] + off[2]).abs() < 1e-12);
    }

    #[test]
    fn cleaning_drops_non_finite_and_pads_short_series() {
        let p = plot(
            XAxis::Numeric(vec![0.0, 1.0, 2.0, 3.0]),
            vec![Series {
                name: "s".into(),
                y: vec![Some(1.0), Some(f64::NAN), Some(2.0)],
                spread: Some(vec![Some((3.0, 1.0)), Some((0.0, f64::INFINITY))]),
                style: Style::Line,
                dashed: false,
            }],
        );
        let c = &Prepared::new(&p).series[0];
        assert_eq!(c.y, vec![Some(1.0), None, Some(2.0), None]);
        assert_eq!(c.spread, vec![Some((1.0, 3.0)), None, None, None]);
    }

    #[test]
    fn nice_ticks_are_round_and_inside() {
        let (t, d) = nice_ticks((-0.05, 1.05), 8);
        assert_eq!(t.len(), 6);
        for (a, b) in t.iter().zip([0.0, 0.2, 0.4, 0.6, 0.8, 1.0]) {
            assert!((a - b).abs() < 1e-12, "{t:?}");
        }
        assert_eq!(d, 1);
        let (t, d) = nice_ticks((0.5, 98.0), 10);
        assert_eq!((t[0], *t.last().unwrap(), d), (10.0, 90.0, 0));
        let (t, _) = nice_ticks((-0.05, 1.05), 8);
        assert!(t[0].is_sign_positive(), "no '-0' label");
        assert_eq!(tick_label(2.5e-7, 3), "2.50e-7");
    }

    #[test]
    fn polyline_clipping_cuts_at_the_bounds() {
        // Up through the top bound and back down: two pieces, each ending on y = 1.
        let parts = clip_polyline(&[(0.0, 0.0), (1.0, 2.0), (2.0, 0.0)], 0.0, 1.0);
        assert_eq!(
            parts,
            vec![vec![(0.0, 0.0), (0.5, 1.0)], vec![(1.5, 1.0), (2.0, 0.0)]]
        );
        // Entirely inside stays one piece; entirely outside disappears.
        let inside = [(0.0, 0.2), (1.0, 0.4), (2.0, 0.3)];
        assert_eq!(clip_polyline(&inside, 0.0, 1.0), vec![inside.to_vec()]);
        assert!(clip_polyline(&[(0.0, 5.0), (1.0, 6.0)], 0.0, 1.0).is_empty());
    }

    #[test]
    fn polygon_clipping_keeps_the_strip() {
        // A square from y = -1 to 2 clipped to [0, 1] keeps area 1 of 3.
        let sq = [(0.0, -1.0), (1.0, -1.0), (1.0, 2.0), (0.0, 2.0)];
        let c = clip_polygon(&sq, 0.0, 1.0);
        let area: f64 = (0..c.len())
            .map(|i| {
                let (p, q) = (c[i], c[(i + 1) % c.len()]);
                p.0 * q.1 - q.0 * p.1
            })
            .sum::<f64>()
            .abs()
            / 2.0;
        assert!((area - 1.0).abs() < 1e-12, "{c:?}");
        assert!(c.iter().all(|p| (0.0..=1.0).contains(&p.1)));
    }

    #[test]
    fn long_labels_keep_their_end() {
        assert_eq!(shorten("fc1", 26), "fc1");
        let s = shorten("encoder.layers.10.self_attn.out_proj", 26);
        assert_eq!(s.chars().count(), 26);
        assert_eq!(s, "…ers.10.self_attn.out_proj");
        assert_eq!(truncate("abcdef", 4), "abc…");
    }

    #[test]
    fn runs_split_at_gaps() {
        let v = [Some(1), None, Some(2), Some(3), None];
        let r = runs(v.len(), |i| v[i]);
        assert_eq!(r, vec![vec![(0, 1)], vec![(2, 2), (3, 3)]]);
    }
}
