//! Figures drawn by strata-report's own code (the CLI's heatmaps).

use crate::{err, guarded};
use numpy::{PyReadonlyArray2, PyUntypedArrayMethods};
use pyo3::prelude::*;
use std::path::PathBuf;

/// Draw a heatmap of `values` (rows x cols, NaN drawn grey as n/a) to `path` (`.png` or
/// `.svg`), as `strata cka --out` does; colours span `[vmin, vmax]`.
#[pyfunction]
#[pyo3(signature = (values, rows, cols, title, path, x_label = "", y_label = "", colorbar_label = "", vmin = 0.0, vmax = 1.0))]
#[allow(clippy::too_many_arguments)]
fn heatmap(
    py: Python<'_>,
    values: PyReadonlyArray2<'_, f64>,
    rows: Vec<String>,
    cols: Vec<String>,
    title: String,
    path: PathBuf,
    x_label: &str,
    y_label: &str,
    colorbar_label: &str,
    vmin: f64,
    vmax: f64,
) -> PyResult<()> {
    guarded(|| {
        if !(vmin.is_finite() && vmax.is_finite() && vmin < vmax) {
            return Err(err(format!(
                "heatmap: vmin ({vmin}) must be below vmax ({vmax}), both finite"
            )));
        }
        let shape = values.shape();
        if shape != [rows.len(), cols.len()] {
            return Err(err(format!(
                "heatmap: values have shape ({}, {}) but there are {} row and {} column labels",
                shape[0],
                shape[1],
                rows.len(),
                cols.len()
            )));
        }
        let png = match path
            .extension()
            .and_then(|e| e.to_str())
            .map(|e| e.to_ascii_lowercase())
            .as_deref()
        {
            Some("png") => true,
            Some("svg") => false,
            _ => {
                return Err(err(format!(
                    "{}: a heatmap is written as .png or .svg",
                    path.display()
                )))
            }
        };
        let grid: Vec<Vec<Option<f64>>> = values
            .as_array()
            .rows()
            .into_iter()
            .map(|r| r.iter().map(|&v| v.is_finite().then_some(v)).collect())
            .collect();
        let (x_label, y_label, colorbar_label) = (
            x_label.to_string(),
            y_label.to_string(),
            colorbar_label.to_string(),
        );
        py.detach(|| {
            let hm = strata_report::Heatmap {
                title,
                rows: &rows,
                cols: &cols,
                values: &grid,
                x_label,
                y_label,
                colorbar_label,
                range: (vmin, vmax),
            };
            if png {
                strata_report::heatmap_png(&hm, &path)
            } else {
                strata_report::heatmap_svg(&hm, &path)
            }
        })
        .map_err(|e| err(e.to_string()))
    })
}

pub(crate) fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(heatmap, m)?)?;
    Ok(())
}
