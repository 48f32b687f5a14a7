//! The report's compression section (`[compression]`): per source, the bits per symbol of every
//! predictor and classic compressor beside the source's entropy rate, and the predictors'
//! learning curves (bits per symbol over the position in the input, as DeepZip, Goyal et al.
//! 2019, plots them); the numbers as `tables/compression.{csv,parquet}` and the curves as
//! `tables/compression-curves.{csv,parquet}`.

use super::compression_run::{rows_of, CompressionRow, CompressionRun, SourceFacts};
use super::report::{f64_col, i64_col, s, str_col, Writer};
use super::runner::Outcome;
use super::spec::CompressionPlan;
use anyhow::Result;
use strata_report::{Block, LinePlot, Series, Style, Table, XAxis};

pub(super) fn compression_section(
    o: &Outcome,
    w: &mut Writer,
    blocks: &mut Vec<Block>,
) -> Result<()> {
    let Some(plan) = &o.analysis.compression else {
        return Ok(());
    };
    let c = &o.compression;
    if c.rows.is_empty() {
        return Ok(());
    }
    blocks.push(Block::Heading {
        level: 2,
        text: s("Compression"),
    });
    blocks.push(Block::Paragraph(intro(plan, c)));
    blocks.push(Block::List(
        c.sources
            .iter()
            .map(|f| {
                format!(
                    "`{}`: {}; {} bytes{}{}.",
                    f.name,
                    f.description,
                    f.bytes,
                    if f.unit == "byte" {
                        String::new()
                    } else {
                        format!(", {} {}s", f.units, f.unit)
                    },
                    f.entropy_rate.map_or_else(String::new, |h| format!(
                        ", entropy rate {h:.4} bits/{}{}",
                        f.unit,
                        if f.entropy_exact { "" } else { " (estimated)" }
                    ))
                )
            })
            .collect(),
    ));
    let files = tables(c, w)?;
    blocks.push(Block::Table {
        caption: s(
            "Every compressor on every source: the container's size (header included), bits per \
             symbol of the source's unit and per byte, the source's entropy rate and the gap \
             above it, speeds, the peak resident memory of strata's runs, and whether the output \
             was decoded and compared with the input (the learning curves below are in \
             `tables/compression-curves.csv`)",
        ),
        header: [
            "source",
            "compressor",
            "bytes",
            "bits/symbol",
            "bits/byte",
            "entropy rate",
            "gap",
            "compress KB/s",
            "decompress KB/s",
            "peak memory",
            "verified",
        ]
        .map(s)
        .to_vec(),
        rows: c.rows.iter().map(table_row).collect(),
        numeric: vec![
            false, false, true, true, true, true, true, true, true, true, false,
        ],
        files: files.clone(),
    });
    for (k, f) in c.sources.iter().enumerate() {
        if let Some(plot) = curve_plot(f, &rows_of(c, &f.name)) {
            blocks.push(w.figure_line(&format!("compression-curve-{}", k + 1), &plot)?);
        }
    }
    Ok(())
}

fn intro(plan: &CompressionPlan, c: &CompressionRun) -> String {
    let predictors: Vec<String> = plan
        .predictors
        .iter()
        .map(|p| {
            if p.name == p.model {
                format!("`{}`", p.name)
            } else {
                format!("`{}` (`{}`)", p.name, p.model)
            }
        })
        .collect();
    let cached = c.rows.iter().filter(|r| r.cached).count();
    let mut t = format!(
        "Each source is compressed by strata's predictors {} (an arithmetic coder driven by \
         context mixing and/or a recurrent network trained while it codes, DeepZip's adaptive \
         mode, Goyal et al. 2019) and by the classic compressors, as `strata zip bench` runs \
         them. Every output was decoded and compared with the input before its numbers were \
         kept. Bits per symbol count the whole output (strata's container header included) \
         against the source's symbols: bytes, DNA bases, or the symbols of a small alphabet \
         (a synthetic source has one symbol per byte); the gap is bits per symbol minus the \
         entropy rate, which no compressor can beat on average. Speeds are KB of input per \
         second on this machine.",
        predictors.join(", ")
    );
    t.push_str(if c.memory_measured {
        " Peak memory is the resident-set peak of the whole process while one predictor \
         compressed and decoded one source (Linux `VmHWM`, reset before each run), so it \
         includes the runner itself; classic compressors run as processes of their own and \
         are not measured."
    } else {
        " Peak memory could not be measured on this system (it needs Linux's resettable \
         `VmHWM`) and is left out."
    });
    if cached > 0 {
        t.push_str(&format!(
            " {cached} of the strata rows come from the cache (measured, decoded and compared \
             by an earlier run on the same bytes with the same model; `--force` measures \
             again, speeds included)."
        ));
    }
    if !c.missing_baselines.is_empty() {
        t.push_str(&format!(
            " Not installed here, so left out: {}.",
            c.missing_baselines.join(", ")
        ));
    }
    t
}

fn num(v: Option<f64>, d: usize) -> String {
    v.map_or_else(|| s("n/a"), |v| format!("{v:.d$}"))
}

fn table_row(r: &CompressionRow) -> Vec<String> {
    vec![
        r.source.clone(),
        r.compressor.clone(),
        r.compressed_bytes.to_string(),
        format!("{} /{}", num(r.bits_per_symbol, 4), r.unit),
        num(r.bits_per_byte, 4),
        num(r.entropy_rate, 4),
        r.gap().map_or_else(|| s("-"), |g| format!("{g:+.4}")),
        format!("{:.1}", r.compress_kb_s),
        format!("{:.1}", r.decompress_kb_s),
        r.peak_rss_bytes.map_or_else(|| s("-"), crate::human_bytes),
        s(if r.verified { "yes" } else { "no" }),
    ]
}

/// Bits per symbol within each stretch of the input, one line per predictor, and the entropy
/// rate as a dashed line where it is known.
fn curve_plot(f: &SourceFacts, rows: &[&CompressionRow]) -> Option<LinePlot> {
    let curves: Vec<(&CompressionRow, Vec<(u64, f64)>)> = rows
        .iter()
        .filter_map(|r| Some((*r, r.curve.as_ref()?.interval_rates())))
        .filter(|(_, c)| !c.is_empty())
        .collect();
    let (_, first) = curves.first()?;
    let x: Vec<f64> = first.iter().map(|&(n, _)| n as f64).collect();
    let mut series: Vec<Series> = curves
        .iter()
        .map(|(r, c)| Series {
            name: r.compressor.clone(),
            y: x.iter()
                .map(|&at| c.iter().find(|q| q.0 as f64 == at).map(|q| q.1))
                .collect(),
            spread: None,
            style: Style::Line,
            dashed: false,
        })
        .collect();
    if let Some(h) = f.entropy_rate {
        series.push(Series {
            name: format!(
                "entropy rate{}",
                if f.entropy_exact { "" } else { " (est.)" }
            ),
            y: vec![Some(h); x.len()],
            spread: None,
            style: Style::Line,
            dashed: true,
        });
    }
    let every = rows
        .iter()
        .find_map(|r| r.curve.as_ref().map(|c| c.every))
        .unwrap_or(1);
    Some(LinePlot {
        title: format!(
            "{}: learning curves, bits per {} over each stretch of {every} {}s",
            f.name, f.unit, f.unit
        ),
        x_label: format!("position in the input ({}s)", f.unit),
        y_label: format!("bits per {} (ideal code length)", f.unit),
        x: XAxis::Numeric(x),
        series,
        y_range: None,
    })
}

/// `tables/compression.{csv,parquet}` (one row per compressor and source) and
/// `tables/compression-curves.{csv,parquet}` (one row per curve point); returns the first's
/// paths and the second's.
fn tables(c: &CompressionRun, w: &mut Writer) -> Result<Vec<String>> {
    let rows = &c.rows;
    let col_s = |f: &dyn Fn(&CompressionRow) -> String| rows.iter().map(f).collect::<Vec<_>>();
    let col_f = |f: &dyn Fn(&CompressionRow) -> Option<f64>| rows.iter().map(f).collect();
    let col_i = |f: &dyn Fn(&CompressionRow) -> Option<i64>| rows.iter().map(f).collect();
    let t = Table {
        columns: vec![
            str_col("source", col_s(&|r| r.source.clone())),
            str_col("compressor", col_s(&|r| r.compressor.clone())),
            str_col("model", col_s(&|r| r.model.clone())),
            str_col("baseline", col_s(&|r| r.baseline.to_string())),
            i64_col("original_bytes", col_i(&|r| Some(r.original_bytes as i64))),
            str_col("unit", col_s(&|r| r.unit.clone())),
            i64_col("units", col_i(&|r| Some(r.units as i64))),
            i64_col(
                "compressed_bytes",
                col_i(&|r| Some(r.compressed_bytes as i64)),
            ),
            f64_col("bits_per_symbol", col_f(&|r| r.bits_per_symbol)),
            f64_col("bits_per_byte", col_f(&|r| r.bits_per_byte)),
            f64_col("entropy_rate", col_f(&|r| r.entropy_rate)),
            f64_col("gap", col_f(&|r| r.gap())),
            f64_col("compress_kb_s", col_f(&|r| Some(r.compress_kb_s))),
            f64_col("decompress_kb_s", col_f(&|r| Some(r.decompress_kb_s))),
            i64_col(
                "peak_rss_bytes",
                col_i(&|r| r.peak_rss_bytes.map(|b| b as i64)),
            ),
            str_col("verified", col_s(&|r| r.verified.to_string())),
            str_col("cached", col_s(&|r| r.cached.to_string())),
        ],
    };
    let files = w.table("compression", &t)?;
    let (mut src, mut comp, mut at, mut bits, mut rate) = (vec![], vec![], vec![], vec![], vec![]);
    for r in rows {
        let Some(curve) = &r.curve else { continue };
        let rates = curve.interval_rates();
        for q in &curve.points {
            src.push(r.source.clone());
            comp.push(r.compressor.clone());
            at.push(Some(q.symbols as i64));
            bits.push(Some(q.bits));
            rate.push(rates.iter().find(|x| x.0 == q.symbols).map(|x| x.1));
        }
    }
    let t = Table {
        columns: vec![
            str_col("source", src),
            str_col("compressor", comp),
            i64_col("symbols", at),
            f64_col("cumulative_bits", bits),
            f64_col("interval_bits_per_symbol", rate),
        ],
    };
    w.table("compression-curves", &t)?;
    Ok(files)
}
