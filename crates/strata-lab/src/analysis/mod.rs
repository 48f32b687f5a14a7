//! Scripted analyses: `strata run analyses/NAME.toml` reads a spec ([`spec`]), trains and
//! collects what its cache lacks ([`cache`], [`runner`]), compares layers, and writes a report
//! ([`report`], [`manifest`]) from the summaries in [`stats`].

pub mod cache;
pub mod compression_run;
pub mod identify;
pub mod identify_run;
pub mod manifest;
pub mod ownership;
pub mod privacy_run;
pub mod report;
mod report_compression;
mod report_layers;
mod report_models;
mod report_privacy;
mod report_robustness;
mod report_significance;
pub mod robustness_run;
pub mod runner;
pub mod spec;
pub mod stats;

pub use runner::{run_file, run_text, Outcome, RunArgs};
pub mod summary;

/// `analyses/quickstart.toml`, compiled in so `strata quickstart` runs from any folder.
pub const QUICKSTART_SPEC: &str = include_str!("../../../../analyses/quickstart.toml");
