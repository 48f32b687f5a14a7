//! The report of an analysis run, in `reports/NAME/`: `index.html` (self-contained), `report.md`,
//! `figures/` (PNG + SVG), `tables/` (CSV + Parquet, via polars) and `manifest.json`.
//!
//! Assembled in `reports/.NAME.partial-PID/` and swapped in whole at the end: readers never see a
//! half-written report, and a failure leaves the previous one in place.

use super::runner::Outcome;
use super::{
    manifest, report_compression, report_layers, report_models, report_privacy, report_robustness,
    report_significance,
};
use anyhow::{Context, Result};
use std::path::{Path, PathBuf};
use strata_report::{Block, Column, Document, Heatmap, LinePlot, Table};

/// Files written so far, relative to the report folder.
pub(super) struct Writer {
    pub(super) root: PathBuf,
    pub(super) files: Vec<String>,
}

impl Writer {
    pub(super) fn figure_line(&mut self, stem: &str, p: &LinePlot) -> Result<Block> {
        let png = format!("figures/{stem}.png");
        let svg = format!("figures/{stem}.svg");
        strata_report::line_plot_png(p, &self.root.join(&png))?;
        strata_report::line_plot_svg(p, &self.root.join(&svg))?;
        self.files.push(png.clone());
        self.files.push(svg.clone());
        Ok(Block::Figure {
            png,
            svg: Some(svg),
            caption: p.title.clone(),
        })
    }

    pub(super) fn figure_heatmap(
        &mut self,
        stem: &str,
        h: &Heatmap,
        caption: String,
    ) -> Result<Block> {
        let png = format!("figures/{stem}.png");
        let svg = format!("figures/{stem}.svg");
        strata_report::heatmap_png(h, &self.root.join(&png))?;
        strata_report::heatmap_svg(h, &self.root.join(&svg))?;
        self.files.push(png.clone());
        self.files.push(svg.clone());
        Ok(Block::Figure {
            png,
            svg: Some(svg),
            caption,
        })
    }

    /// Write `tables/STEM.{csv,parquet}`; returns their relative paths.
    pub(super) fn table(&mut self, stem: &str, t: &Table) -> Result<Vec<String>> {
        let written = strata_report::write_table(t, &self.root.join("tables"), stem)?;
        let rel: Vec<String> = written
            .iter()
            .filter_map(|p| p.file_name())
            .map(|n| format!("tables/{}", n.to_string_lossy()))
            .collect();
        self.files.extend(rel.iter().cloned());
        Ok(rel)
    }
}

pub(super) fn s(v: impl Into<String>) -> String {
    v.into()
}

pub(super) fn str_col(name: &str, v: Vec<String>) -> Column {
    Column::Str(name.into(), v)
}

pub(super) fn f64_col(name: &str, v: Vec<Option<f64>>) -> Column {
    Column::F64(name.into(), v)
}

pub(super) fn i64_col(name: &str, v: Vec<Option<i64>>) -> Column {
    Column::I64(name.into(), v)
}

pub(super) fn measure_name(o: &Outcome) -> String {
    o.cka
        .values()
        .next()
        .map_or_else(|| s("linear CKA"), |r| r.measure.clone())
}

/// Tidy what killed runs left: a report moved aside but never replaced goes back in place;
/// folders of runs whose process is gone are removed (a concurrent run's are kept).
pub fn remove_stale(reports: &Path, name: &str) {
    let Ok(rd) = std::fs::read_dir(reports) else {
        return;
    };
    let fin = reports.join(name);
    for e in rd.flatten() {
        let f = e.file_name().to_string_lossy().into_owned();
        let owner = |prefix: &str| f.strip_prefix(prefix).and_then(|p| p.parse::<u32>().ok());
        if let Some(pid) = owner(&format!(".{name}.old-")) {
            if super::cache::process_alive(pid) {
                continue;
            }
            if !fin.exists() && std::fs::rename(e.path(), &fin).is_ok() {
                continue;
            }
            let _ = std::fs::remove_dir_all(e.path());
        } else if let Some(pid) = owner(&format!(".{name}.partial-")) {
            if !super::cache::process_alive(pid) {
                let _ = std::fs::remove_dir_all(e.path());
            }
        }
    }
}

/// Build the report and swap it into `reports/NAME/`.
pub fn write(o: &Outcome) -> Result<PathBuf> {
    let a = &o.analysis;
    let reports = &o.args.reports;
    std::fs::create_dir_all(reports)
        .with_context(|| format!("cannot create {}", reports.display()))?;
    let fin = reports.join(&a.name);
    let tmp = reports.join(format!(".{}.partial-{}", a.name, std::process::id()));
    let built = (|| -> Result<()> {
        std::fs::create_dir_all(tmp.join("figures"))?;
        std::fs::create_dir_all(tmp.join("tables"))?;
        let mut w = Writer {
            root: tmp.clone(),
            files: Vec::new(),
        };
        let mut blocks = Vec::new();
        if !a.description.trim().is_empty() {
            for para in a.description.split("\n\n") {
                blocks.push(Block::Paragraph(
                    para.split_whitespace().collect::<Vec<_>>().join(" "),
                ));
            }
        }
        blocks.push(Block::List(overview(o)));
        report_models::models_section(o, &mut w, &mut blocks)?;
        report_layers::twins_section(o, &mut w, &mut blocks)?;
        report_layers::heatmap_section(o, &mut w, &mut blocks)?;
        report_significance::significance_section(o, &mut w, &mut blocks)?;
        report_layers::identify_section(o, &mut w, &mut blocks)?;
        report_privacy::privacy_section(o, &mut w, &mut blocks)?;
        report_robustness::robustness_section(o, &mut w, &mut blocks)?;
        report_compression::compression_section(o, &mut w, &mut blocks)?;
        report_models::training_section(o, &mut w, &mut blocks)?;
        blocks.push(Block::Heading {
            level: 2,
            text: s("Reproduce"),
        });
        blocks.push(Block::Paragraph(format!(
            "Re-run with `strata run {}` (models and activations come from the cache; `--force` \
             retrains). Inputs, seeds, versions, machine and timings are in `manifest.json`. The \
             spec:",
            o.spec_path.display()
        )));
        blocks.push(Block::Code(o.spec_text.clone()));
        let doc = Document {
            title: a.title.clone(),
            subtitle: format!(
                "strata {} · {} · commit {} · {}",
                env!("CARGO_PKG_VERSION"),
                manifest::iso_utc(o.started),
                manifest::git_commit(&o.spec_path)
                    .map_or(s("unknown"), |c| c[..12.min(c.len())].to_string()),
                o.spec_path.display()
            ),
            blocks,
        };
        let md = strata_report::render_markdown(&doc);
        strata_report::write_atomic(&tmp.join("report.md"), md.as_bytes())?;
        let html = strata_report::render_html(&doc, &tmp)?;
        strata_report::write_atomic(&tmp.join("index.html"), html.as_bytes())?;
        w.files.push(s("report.md"));
        w.files.push(s("index.html"));
        let m = manifest::build(o, &w.files);
        strata_report::write_atomic(
            &tmp.join("manifest.json"),
            serde_json::to_string_pretty(&m)?.as_bytes(),
        )?;
        Ok(())
    })();
    if let Err(e) = built {
        let _ = std::fs::remove_dir_all(&tmp);
        return Err(e.context("writing the report (the previous report, if any, is untouched)"));
    }
    // Swap: old report aside, new one in, old one removed.
    // Checked at the start too; again here, in case a folder appeared at the name meanwhile.
    if let Err(e) = super::ownership::check_replaceable(&fin) {
        let _ = std::fs::remove_dir_all(&tmp);
        return Err(e);
    }
    let old = reports.join(format!(".{}.old-{}", a.name, std::process::id()));
    let had_old = std::fs::symlink_metadata(&fin).is_ok();
    if had_old {
        std::fs::rename(&fin, &old).with_context(|| format!("cannot replace {}", fin.display()))?;
    }
    if let Err(e) = std::fs::rename(&tmp, &fin) {
        if had_old {
            let _ = std::fs::rename(&old, &fin);
        }
        let _ = std::fs::remove_dir_all(&tmp);
        return Err(anyhow::anyhow!(
            "cannot move the report into {}: {e}",
            fin.display()
        ));
    }
    if had_old {
        let _ = std::fs::remove_dir_all(&old);
    }
    Ok(fin)
}

fn overview(o: &Outcome) -> Vec<String> {
    let a = &o.analysis;
    let trained = o.models.iter().filter(|m| !m.cached).count();
    let fams = a.families.len();
    let mut v = Vec::new();
    let compression_only = a.compression.is_some() && a.instances.is_empty() && a.stores.is_empty();
    if compression_only {
        v.push(format!(
            "Compression experiments only (no models): {} sources, run time {:.1} s.",
            o.compression.sources.len(),
            o.seconds
        ));
        return v;
    }
    if !a.instances.is_empty() || a.stores.is_empty() {
        v.push(format!(
            "{} models in {fams} {} (precisions × seeds): {} trained in this run, {} from the \
             cache; run time {:.1} s.",
            o.models.len(),
            if fams == 1 { "family" } else { "families" },
            trained,
            o.models.len() - trained,
            o.seconds
        ));
    }
    for (s, f) in a.stores.iter().zip(&o.stores) {
        v.push(format!(
            "Store `{}`: `{}`, {} examples, {} layers compared, SHA-256 `{}`.",
            s.name,
            s.path,
            f.examples,
            f.layers.len(),
            f.sha256
        ));
    }
    for (k, d) in &o.data {
        let spec = &a.data[k];
        v.push(format!(
            "Data `{k}`: `{}`, {} training and {} test examples; activations on the first {} \
             examples of the {} split.",
            spec.source,
            d.splits.train.len(),
            d.splits.test.len(),
            d.collect.len(),
            spec.collect_split.name()
        ));
    }
    v.push(format!(
        "Similarity: {} on {}; {} pairs of models compared.",
        measure_name(o),
        match a.cka.activations {
            super::spec::ActivationPoint::Post => "each layer's output, after its nonlinearity",
            super::spec::ActivationPoint::Pre =>
                "each layer's pre-activation, the batch-norm output",
        },
        o.cka.len()
    ));
    v
}
