//! ROC curves on log-log axes, as Carlini et al. 2022 draw them: the low-FPR corner, where an
//! attack that confidently identifies a few members shows, gets as much room as the rest. A
//! linear ROC plot hides exactly the region that matters for privacy.

use crate::heatmap::{write_png_atomic, write_svg_atomic};
use crate::lines::PALETTE;
use crate::ReportError;
use plotters::coord::Shift;
use plotters::element::DashedPathElement;
use plotters::prelude::*;
use std::path::Path;

/// One attack's curve: `(fpr, tpr)` points in increasing order.
pub struct RocCurve {
    /// Legend entry: the attack, with its AUC if you like.
    pub name: String,
    /// `(false positive rate, true positive rate)` pairs, each in [0, 1], by increasing FPR.
    pub points: Vec<(f64, f64)>,
}

/// A figure of several ROC curves with the chance diagonal.
pub struct RocPlot {
    /// Drawn above the plot.
    pub title: String,
    /// One curve per attack, in legend order (colours follow the shared palette).
    pub curves: Vec<RocCurve>,
    /// Smallest FPR and TPR shown (e.g. `1e-4`, or `1 / negatives`); points below are drawn at
    /// the floor so a curve that starts at 0 still shows where it leaves the axis.
    pub floor: f64,
}

const SIZE: (u32, u32) = (760, 600);

/// Render as PNG at `path` (atomically).
pub fn roc_plot_png(p: &RocPlot, path: &Path) -> Result<(), ReportError> {
    write_png_atomic(path, SIZE, "ROC plot", |area| draw(p, area))
}

/// Render as SVG at `path` (atomically).
pub fn roc_plot_svg(p: &RocPlot, path: &Path) -> Result<(), ReportError> {
    write_svg_atomic(path, SIZE, "ROC plot", |area| draw(p, area))
}

fn draw<DB: DrawingBackend>(p: &RocPlot, root: &DrawingArea<DB, Shift>) -> Result<(), String> {
    let e = |x: DrawingAreaErrorKind<DB::ErrorType>| x.to_string();
    root.fill(&WHITE).map_err(e)?;
    let floor = if p.floor.is_finite() && p.floor > 0.0 && p.floor < 0.5 {
        p.floor
    } else {
        1e-4
    };
    let mut chart = ChartBuilder::on(root)
        .caption(&p.title, ("sans-serif", 17).into_font())
        .margin(14)
        .x_label_area_size(44)
        .y_label_area_size(60)
        .build_cartesian_2d((floor..1.0).log_scale(), (floor..1.0).log_scale())
        .map_err(e)?;
    chart
        .configure_mesh()
        .x_desc("false-positive rate")
        .y_desc("true-positive rate")
        .label_style(("sans-serif", 12).into_font())
        .axis_desc_style(("sans-serif", 14).into_font())
        .x_label_formatter(&|v| format!("{v:e}"))
        .y_label_formatter(&|v| format!("{v:e}"))
        .light_line_style(RGBColor(235, 235, 235))
        .draw()
        .map_err(e)?;
    let diagonal = vec![(floor, floor), (1.0, 1.0)];
    chart
        .draw_series(std::iter::once(DashedPathElement::new(
            diagonal,
            5,
            4,
            RGBColor(150, 150, 150).stroke_width(1),
        )))
        .map_err(e)?
        .label("chance")
        .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 18, y)], RGBColor(150, 150, 150)));
    for (k, c) in p.curves.iter().enumerate() {
        let colour = PALETTE[k % PALETTE.len()];
        let pts: Vec<(f64, f64)> = c
            .points
            .iter()
            .filter(|(f, t)| f.is_finite() && t.is_finite())
            .map(|&(f, t)| (f.clamp(floor, 1.0), t.clamp(floor, 1.0)))
            .collect();
        chart
            .draw_series(LineSeries::new(pts, colour.stroke_width(2)))
            .map_err(e)?
            .label(c.name.clone())
            .legend(move |(x, y)| {
                PathElement::new(vec![(x, y), (x + 18, y)], colour.stroke_width(2))
            });
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::LowerRight)
        .background_style(WHITE.mix(0.85))
        .border_style(RGBColor(200, 200, 200))
        .label_font(("sans-serif", 12).into_font())
        .draw()
        .map_err(e)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn draws_png_and_svg_with_zeros_nans_and_empty_curves() {
        let d = std::env::temp_dir().join(format!("strata-roc-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        let p = RocPlot {
            title: "attacks".into(),
            curves: vec![
                RocCurve {
                    name: "lira".into(),
                    points: vec![(0.0, 0.0), (0.0, 0.05), (0.001, 0.1), (1.0, 1.0)],
                },
                RocCurve {
                    name: "broken".into(),
                    points: vec![(f64::NAN, 0.5), (0.5, f64::INFINITY)],
                },
                RocCurve {
                    name: "empty".into(),
                    points: Vec::new(),
                },
            ],
            floor: 0.0,
        };
        roc_plot_png(&p, &d.join("roc.png")).unwrap();
        roc_plot_svg(&p, &d.join("roc.svg")).unwrap();
        let png = std::fs::read(d.join("roc.png")).unwrap();
        assert_eq!(&png[..8], b"\x89PNG\r\n\x1a\n");
        let svg = std::fs::read_to_string(d.join("roc.svg")).unwrap();
        assert!(
            svg.starts_with("<svg") && svg.contains("lira") && svg.contains("false-positive rate")
        );
        // No temporary file left beside the figures.
        let names: Vec<_> = std::fs::read_dir(&d)
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names.len(), 2, "{names:?}");
        let _ = std::fs::remove_dir_all(&d);
    }
}
