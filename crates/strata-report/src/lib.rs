//! Figures and tables for strata's results: CKA heatmaps and line/point charts (PNG and SVG, with
//! an embedded font so they render the same everywhere), matrices and result tables as CSV,
//! Parquet and JSON (result tables through polars), all written atomically, and report documents
//! rendered as GitHub Markdown and as one self-contained HTML page.
//!
//! This crate draws and writes; it computes no measure itself.

mod atomic;
mod document;
mod frame;
mod heatmap;
mod lines;
mod roc;
mod table;

pub use atomic::write_atomic;
pub use document::{render_html, render_markdown, Block, Document};
pub use frame::{write_table, Column, Table};
pub use heatmap::{heatmap_png, heatmap_svg, Heatmap};
pub use lines::{line_plot_png, line_plot_svg, LinePlot, Series, Style, XAxis};
/// polars, re-exported so callers can use the [`DataFrame`](polars::prelude::DataFrame) from
/// [`Table::to_dataframe`] (joins, group-bys) without a dependency of their own, at the same version.
pub use polars;
pub use roc::{roc_plot_png, roc_plot_svg, RocCurve, RocPlot};
pub use table::{matrix_csv, write_matrix_parquet};

/// Errors from rendering or writing a report file.
#[derive(Debug, thiserror::Error)]
pub enum ReportError {
    /// A file could not be read or written; `path` names it so the one-line CLI error is enough.
    #[error("{path}: {err}")]
    Io {
        /// The file concerned.
        path: std::path::PathBuf,
        /// The operating system's reason.
        err: std::io::Error,
    },
    /// A figure could not be drawn (backend or font failure, or its file could not be encoded).
    #[error("could not draw {what}: {msg}")]
    Draw {
        /// Which figure.
        what: String,
        /// The drawing library's message.
        msg: String,
    },
    /// Data could not be encoded into a file format (bad table shape, Parquet/CSV writer error,
    /// a figure that is not an image).
    #[error("could not write {path}: {msg}")]
    Encode {
        /// The file (or table) concerned.
        path: std::path::PathBuf,
        /// What was wrong.
        msg: String,
    },
}
