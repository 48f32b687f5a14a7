//! Figures and tables for strata's results: CKA heatmaps (PNG and SVG, with an embedded font so
//! they render the same everywhere), matrices as CSV, Parquet and JSON, all written atomically.
//!
//! This crate draws and writes; it computes no measure itself.

mod atomic;
mod heatmap;
mod table;

pub use atomic::write_atomic;
pub use heatmap::{heatmap_png, heatmap_svg, Heatmap};
pub use table::{matrix_csv, write_matrix_parquet};

/// Errors from rendering or writing a report file.
#[derive(Debug, thiserror::Error)]
pub enum ReportError {
    #[error("{path}: {err}")]
    Io {
        path: std::path::PathBuf,
        err: std::io::Error,
    },
    #[error("could not draw {what}: {msg}")]
    Draw { what: String, msg: String },
    #[error("could not write {path}: {msg}")]
    Encode {
        path: std::path::PathBuf,
        msg: String,
    },
}
