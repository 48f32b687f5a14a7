//! The CKA heatmap: layers of A down the side, layers of B along the bottom, viridis over the
//! measure's range ([0, 1] for CKA, [-1, 1] for correlations) with a colorbar, the value printed in each cell when cells are large enough to read.

use crate::{write_atomic, ReportError};
use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::colors::colormaps::ViridisRGB;
use plotters::style::text_anchor::{HPos, Pos, VPos};
use std::path::Path;
use std::sync::Once;

static FONT: &[u8] = include_bytes!("../../../fixtures/fonts/DejaVuSans.ttf");
static REGISTER: Once = Once::new();

/// Register the embedded DejaVu Sans as "sans-serif" once per process, so every figure renders
/// with the same glyphs on machines without system fonts (shared by all figure modules).
pub(crate) fn register_font() {
    REGISTER.call_once(|| {
        // The font is compiled in and valid; a failure here would only mean text-less figures.
        let _ = plotters::style::register_font("sans-serif", FontStyle::Normal, FONT);
    });
}

/// What a heatmap shows.
pub struct Heatmap<'a> {
    /// Title line above the grid (name both inputs and the measure).
    pub title: String,
    /// Row labels, top to bottom (layers of A).
    pub rows: &'a [String],
    /// Column labels, left to right (layers of B).
    pub cols: &'a [String],
    /// `values[i][j]` for row `i`, column `j`; `None` is drawn grey and marked n/a.
    pub values: &'a [Vec<Option<f64>>],
    /// Title under the columns (what B is).
    pub x_label: String,
    /// Title beside the rows (what A is).
    pub y_label: String,
    /// What the colour encodes, printed beside the colorbar.
    pub colorbar_label: String,
    /// The values the colour scale spans, `(low, high)`: `(0.0, 1.0)` for CKA and the other
    /// similarities in [0, 1], `(-1.0, 1.0)` for measures that can be negative (RSA's rank
    /// correlation, CKNNA), so a negative value is not drawn as 0. Values outside are clamped.
    pub range: (f64, f64),
}

struct Geometry {
    cell: i32,
    font: f64,
    left: i32,
    top: i32,
    bottom: i32,
    right: i32,
}

impl Heatmap<'_> {
    /// The colour range, `(0, 1)` when the given one is empty, reversed or not finite.
    fn span(&self) -> (f64, f64) {
        let (lo, hi) = self.range;
        if lo.is_finite() && hi.is_finite() && hi > lo {
            (lo, hi)
        } else {
            (0.0, 1.0)
        }
    }

    /// `v`'s place on the colour scale, in [0, 1].
    fn unit(&self, v: f64) -> f64 {
        let (lo, hi) = self.span();
        ((v - lo) / (hi - lo)).clamp(0.0, 1.0)
    }

    fn geometry(&self) -> Geometry {
        let k = self.rows.len().max(self.cols.len()).max(1) as i32;
        let cell = (640 / k).clamp(16, 72);
        let font = (cell as f64 * 0.42).clamp(11.0, 15.0);
        let chars = |v: &[String]| v.iter().map(|s| s.chars().count()).max().unwrap_or(1) as f64;
        let left = (chars(self.rows) * font * 0.62) as i32 + 56;
        let bottom = (chars(self.cols) * font * 0.62) as i32 + 56;
        Geometry {
            cell,
            font,
            left,
            top: 64,
            bottom,
            right: 140,
        }
    }

    /// Width of the grid with its labels and colorbar, before any centering.
    fn content_width(&self, g: &Geometry) -> i32 {
        g.left + g.cell * self.cols.len() as i32 + g.right
    }

    /// Pixel size of the figure.
    pub fn size(&self) -> (u32, u32) {
        let g = self.geometry();
        let w = self.content_width(&g);
        let h = g.top + g.cell * self.rows.len() as i32 + g.bottom;
        let title_w = (self.title.chars().count() as f64 * 17.0 * 0.58) as i32 + 40;
        (w.max(title_w).max(360) as u32, h.max(300) as u32)
    }

    fn draw<DB: DrawingBackend>(&self, area: &DrawingArea<DB, Shift>) -> Result<(), String> {
        let e = |x: DrawingAreaErrorKind<DB::ErrorType>| x.to_string();
        let mut g = self.geometry();
        let (w, _) = self.size();
        // A title wider than the grid widens the figure; keep the grid centered under it.
        let shift = (w as i32 - self.content_width(&g)) / 2;
        g.left += shift;
        area.fill(&WHITE).map_err(e)?;
        let font = |size: f64| ("sans-serif", size).into_font();
        let anchored = |size: f64, h: HPos, v: VPos| font(size).color(&BLACK).pos(Pos::new(h, v));
        area.draw_text(
            &self.title,
            &anchored(17.0, HPos::Center, VPos::Center),
            (w as i32 / 2, g.top / 2),
        )
        .map_err(e)?;
        let (nr, nc) = (self.rows.len() as i32, self.cols.len() as i32);
        let (x0, y0, c) = (g.left, g.top, g.cell);
        for (i, row) in self.values.iter().enumerate() {
            for (j, v) in row.iter().enumerate() {
                let (x, y) = (x0 + j as i32 * c, y0 + i as i32 * c);
                let fill = match v {
                    Some(v) => ViridisRGB::get_color(self.unit(*v)),
                    None => RGBColor(200, 200, 200),
                };
                area.draw(&Rectangle::new([(x, y), (x + c, y + c)], fill.filled()))
                    .map_err(e)?;
                if c >= 34 {
                    let (text, ink) = match v {
                        Some(v) => (
                            format!("{v:.2}"),
                            if self.unit(*v) < 0.55 { WHITE } else { BLACK },
                        ),
                        None => ("n/a".to_string(), BLACK),
                    };
                    let style = font(g.font * 0.9)
                        .color(&ink)
                        .pos(Pos::new(HPos::Center, VPos::Center));
                    area.draw_text(&text, &style, (x + c / 2, y + c / 2))
                        .map_err(e)?;
                }
            }
        }
        area.draw(&Rectangle::new(
            [(x0, y0), (x0 + nc * c, y0 + nr * c)],
            BLACK.stroke_width(1),
        ))
        .map_err(e)?;
        for (i, name) in self.rows.iter().enumerate() {
            let y = y0 + i as i32 * c + c / 2;
            area.draw_text(
                name,
                &anchored(g.font, HPos::Right, VPos::Center),
                (x0 - 6, y),
            )
            .map_err(e)?;
        }
        for (j, name) in self.cols.iter().enumerate() {
            let x = x0 + j as i32 * c + c / 2;
            let style = font(g.font)
                .transform(FontTransform::Rotate270)
                .color(&BLACK)
                .pos(Pos::new(HPos::Right, VPos::Center));
            area.draw_text(name, &style, (x, y0 + nr * c + 6))
                .map_err(e)?;
        }
        area.draw_text(
            &self.x_label,
            &anchored(14.0, HPos::Center, VPos::Bottom),
            (x0 + nc * c / 2, g.top + nr * c + g.bottom - 8),
        )
        .map_err(e)?;
        let ylab = font(14.0)
            .transform(FontTransform::Rotate270)
            .color(&BLACK)
            .pos(Pos::new(HPos::Center, VPos::Top));
        area.draw_text(&self.y_label, &ylab, (8 + shift, y0 + nr * c / 2))
            .map_err(e)?;

        // Colorbar over the range.
        let bx = x0 + nc * c + 28;
        let bh = (nr * c).max(160);
        let steps = 128;
        for s in 0..steps {
            let v0 = s as f64 / steps as f64;
            let ya = y0 + bh - ((s + 1) * bh) / steps;
            let yb = y0 + bh - (s * bh) / steps;
            area.draw(&Rectangle::new(
                [(bx, ya), (bx + 18, yb)],
                ViridisRGB::get_color(v0 + 0.5 / steps as f64).filled(),
            ))
            .map_err(e)?;
        }
        area.draw(&Rectangle::new(
            [(bx, y0), (bx + 18, y0 + bh)],
            BLACK.stroke_width(1),
        ))
        .map_err(e)?;
        let (lo, hi) = self.span();
        for t in 0..=4 {
            let v = t as f64 / 4.0;
            let y = y0 + bh - (v * bh as f64) as i32;
            let v = lo + v * (hi - lo);
            area.draw(&PathElement::new(vec![(bx + 18, y), (bx + 23, y)], BLACK))
                .map_err(e)?;
            area.draw_text(
                &format!("{v:.2}"),
                &anchored(11.0, HPos::Left, VPos::Center),
                (bx + 26, y),
            )
            .map_err(e)?;
        }
        let cb = font(12.0)
            .transform(FontTransform::Rotate270)
            .color(&BLACK)
            .pos(Pos::new(HPos::Center, VPos::Top));
        area.draw_text(&self.colorbar_label, &cb, (bx + 66, y0 + bh / 2))
            .map_err(e)?;
        Ok(())
    }
}

/// Draw a figure of `size` pixels with `draw` and write it as PNG at `path`, atomically: drawn to a
/// temporary `.png` beside it (the encoder picks the format from the extension), then renamed, so
/// a reader never sees half a figure. `what` names the figure in errors. Shared by every figure.
pub(crate) fn write_png_atomic(
    path: &Path,
    size: (u32, u32),
    what: &str,
    draw: impl FnOnce(&DrawingArea<BitMapBackend, Shift>) -> Result<(), String>,
) -> Result<(), ReportError> {
    register_font();
    // The backend opens the file itself, so it gets the temporary name (ending in `.png`)
    // rather than a writer.
    let tmp = strata_data::fsutil::tmp_path(path).with_extension("tmp.png");
    let drawn = (|| {
        let area = BitMapBackend::new(&tmp, size).into_drawing_area();
        draw(&area)?;
        area.present().map_err(|e| e.to_string())
    })();
    if let Err(msg) = drawn {
        let _ = std::fs::remove_file(&tmp);
        return Err(ReportError::Draw {
            what: format!("{what} {}", path.display()),
            msg,
        });
    }
    strata_data::fsutil::commit(&tmp, path).map_err(|err| ReportError::Io {
        path: path.to_path_buf(),
        err,
    })
}

/// Draw a figure of `size` pixels with `draw` into an SVG string and write it atomically at
/// `path` (see [`write_atomic`]). `what` names the figure in errors.
pub(crate) fn write_svg_atomic(
    path: &Path,
    size: (u32, u32),
    what: &str,
    draw: impl FnOnce(&DrawingArea<SVGBackend, Shift>) -> Result<(), String>,
) -> Result<(), ReportError> {
    register_font();
    let mut svg = String::new();
    {
        let area = SVGBackend::with_string(&mut svg, size).into_drawing_area();
        let err = |msg| ReportError::Draw {
            what: what.to_string(),
            msg,
        };
        draw(&area).map_err(err)?;
        area.present().map_err(|e| err(e.to_string()))?;
    }
    write_atomic(path, svg.as_bytes())
}

/// Render as PNG at `path` (atomically: drawn to a temporary `.png` beside it, then renamed).
pub fn heatmap_png(h: &Heatmap, path: &Path) -> Result<(), ReportError> {
    write_png_atomic(path, h.size(), "heatmap", |area| h.draw(area))
}

/// Render as SVG at `path` (atomically).
pub fn heatmap_svg(h: &Heatmap, path: &Path) -> Result<(), ReportError> {
    write_svg_atomic(path, h.size(), "heatmap", |area| h.draw(area))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map(range: (f64, f64)) -> Heatmap<'static> {
        Heatmap {
            title: String::new(),
            rows: &[],
            cols: &[],
            values: &[],
            x_label: String::new(),
            y_label: String::new(),
            colorbar_label: String::new(),
            range,
        }
    }

    #[test]
    fn colours_span_the_given_range() {
        let cka = map((0.0, 1.0));
        assert_eq!(cka.unit(0.25), 0.25);
        // Below the range is clamped: a negative value would read as 0 on a [0, 1] scale...
        assert_eq!(cka.unit(-0.5), 0.0);
        // ...and is told apart on a [-1, 1] one.
        let rho = map((-1.0, 1.0));
        assert_eq!(rho.unit(-1.0), 0.0);
        assert_eq!(rho.unit(0.0), 0.5);
        assert_eq!(rho.unit(-0.5), 0.25);
        assert_eq!(rho.unit(2.0), 1.0);
        // An unusable range falls back to [0, 1].
        for bad in [
            (1.0, 1.0),
            (1.0, 0.0),
            (f64::NAN, 1.0),
            (0.0, f64::INFINITY),
        ] {
            assert_eq!(map(bad).unit(0.25), 0.25, "{bad:?}");
        }
    }
}
