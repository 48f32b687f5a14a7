//! `[compression]`: every source compressed by every predictor (DeepZip's experiment, Goyal et
//! al. 2019: a model trained while it codes, beside the classic compressors), after the rest of
//! the analysis.
//!
//! Each container is decoded and compared with the input before any of its numbers is kept: a
//! mismatch is an error, never a row. Sizes and rates are measured as `strata zip bench` measures
//! them (the whole container, header included, against the units of the detected alphabet), with
//! the same strata-zip call, so the two always agree. The learning curve comes from the same
//! compression ([`strata_zip::compress_with_curve`] writes the same container as
//! [`strata_zip::compress`]).
//!
//! Each predictor's measurement is cached under the SHA-256 of the input's bytes, the model and
//! the curve's interval (`CACHE/compression/`), so a re-run decodes nothing again; `--force`
//! measures afresh. Classic compressors are rerun every time (they take a fraction of a second,
//! and an upgrade of the installed tool should show).

use super::cache;
use super::runner::Outcome;
use super::spec::{CompressionPlan, CompressionSource, SourceInput};
use crate::progress::Progress;
use crate::zip::bench;
use crate::zip::files::{kb_per_s, ratio};
use anyhow::{bail, Context, Result};
use serde::{Deserialize, Serialize};
use serde_json::json;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::time::Instant;
use strata_zip::{AlphabetChoice, Options};

/// Everything `[compression]` measured.
#[derive(Clone, Debug, Default)]
pub struct CompressionRun {
    /// The sources as read, in spec order.
    pub sources: Vec<SourceFacts>,
    /// One row per (source, predictor), then the source's baselines, source by source.
    pub rows: Vec<CompressionRow>,
    /// Baselines the spec names that are not installed here (noted in the report).
    pub missing_baselines: Vec<String>,
    /// Peak memory could be measured per row (Linux, whose peak RSS can be reset).
    pub memory_measured: bool,
    /// Seconds the section took.
    pub seconds: f64,
}

/// A source as read or generated.
#[derive(Clone, Debug, PartialEq)]
pub struct SourceFacts {
    /// Its name in the spec's tables.
    pub name: String,
    /// Where it came from, in words (`file PATH`, `xor:k=20, 100000 symbols, seed 1`).
    pub description: String,
    /// Its size, in bytes.
    pub bytes: u64,
    /// What bits per symbol count: `byte`, `base` (DNA) or `symbol` (a small alphabet).
    pub unit: String,
    /// Units in the input.
    pub units: u64,
    /// Entropy rate in bits per symbol, for synthetic sources.
    pub entropy_rate: Option<f64>,
    /// The entropy rate is exact (false: estimated, the HMM's).
    pub entropy_exact: bool,
    /// SHA-256 of the bytes compressed.
    pub sha256: String,
}

/// One compressor on one source.
#[derive(Clone, Debug, PartialEq)]
pub struct CompressionRow {
    /// The source's name.
    pub source: String,
    /// The predictor's name, or the classic compressor's label (`xz -9e`).
    pub compressor: String,
    /// The predictor's full model ([`strata_zip::ModelSpec::name`]), or the classic label.
    pub model: String,
    /// A classic compressor (gzip, bzip2, xz, zstd), not a strata predictor.
    pub baseline: bool,
    /// Bytes in.
    pub original_bytes: u64,
    /// What `bits_per_symbol` counts (`byte`, `base`, `symbol`).
    pub unit: String,
    /// Units in the input.
    pub units: u64,
    /// Bytes out: the whole container (header included), or the classic tool's output.
    pub compressed_bytes: u64,
    /// 8 x compressed bytes / units.
    pub bits_per_symbol: Option<f64>,
    /// 8 x compressed bytes / original bytes.
    pub bits_per_byte: Option<f64>,
    /// The source's entropy rate, bits per symbol (synthetic sources).
    pub entropy_rate: Option<f64>,
    /// Compression speed, KB of input per second.
    pub compress_kb_s: f64,
    /// Decompression speed, KB of output per second.
    pub decompress_kb_s: f64,
    /// Decoded and compared with the input: always true in a row (a mismatch is an error).
    pub verified: bool,
    /// Peak resident memory of the process while this row compressed and decoded (strata
    /// predictors on Linux; `None` elsewhere and for classic compressors, which run as
    /// processes of their own).
    pub peak_rss_bytes: Option<u64>,
    /// The learning curve (strata predictors): cumulative ideal code length after every
    /// `every` symbols.
    pub curve: Option<strata_zip::CodeLengthCurve>,
    /// Measured in an earlier run and read from the cache.
    pub cached: bool,
}

impl CompressionRow {
    /// Bits per symbol above the entropy rate (synthetic sources).
    pub fn gap(&self) -> Option<f64> {
        Some(self.bits_per_symbol? - self.entropy_rate?)
    }
}

/// What the cache keeps of one predictor on one input.
#[derive(Serialize, Deserialize)]
struct Measured {
    compressed_bytes: u64,
    compress_seconds: f64,
    decompress_seconds: f64,
    peak_rss_bytes: Option<u64>,
    curve_every: u64,
    /// (symbols, f64 bits of the cumulative code length): bit patterns, so a cached curve is
    /// the computed one exactly.
    curve: Vec<(u64, u64)>,
}

/// Run `[compression]` (nothing without the section).
pub fn run(o: &Outcome, p: &dyn Progress) -> Result<CompressionRun> {
    let Some(plan) = &o.analysis.compression else {
        return Ok(CompressionRun::default());
    };
    let t0 = Instant::now();
    let (available, missing): (Vec<&String>, Vec<&String>) = plan
        .baselines
        .iter()
        .partition(|b| bench::program_exists(b));
    let mut out = CompressionRun {
        missing_baselines: missing.into_iter().cloned().collect(),
        memory_measured: reset_peak_rss(),
        ..CompressionRun::default()
    };
    if !out.missing_baselines.is_empty() {
        p.log(&format!(
            "[compression] not installed, left out: {}",
            out.missing_baselines.join(", ")
        ));
    }
    let dir = o.args.cache.join("compression");
    let bar = p.task(
        "compression",
        "runs",
        (plan.sources.len() * (plan.predictors.len() + available.len())) as u64,
    );
    for s in &plan.sources {
        let (data, facts) = load(s, &o.analysis.file)?;
        let every = curve_every(facts.units, plan.curve_points);
        for pr in &plan.predictors {
            let key = cache_key(&facts.sha256, &pr.spec, every);
            let path = dir.join(format!("{}.json", &key[..16]));
            let cached = if o.args.force {
                None
            } else {
                read_cached(&path)
            };
            let (m, was_cached) = match cached {
                Some(m) => (m, true),
                None => {
                    let m = measure(&data, &pr.spec, every, out.memory_measured)
                        .with_context(|| format!("[compression] {} with {}", s.name, pr.name))?;
                    write_cached(&path, &m, p);
                    (m, false)
                }
            };
            let row = predictor_row(&facts, &pr.name, &pr.model, &m, was_cached);
            log(p, &row);
            out.rows.push(row);
            bar.inc(1);
        }
        for b in &available {
            let label = bench::classic_label(b).unwrap_or(b.as_str());
            let c = bench::run_classic(b, &data)
                .with_context(|| format!("[compression] {} with {label}", s.name))?;
            if !c.round_trip {
                bail!(
                    "[compression] {} with {label}: decompressing did not give back the input \
                     ({} bytes); no number is reported for it",
                    s.name,
                    facts.bytes
                );
            }
            let row = CompressionRow {
                source: facts.name.clone(),
                compressor: label.to_string(),
                model: label.to_string(),
                baseline: true,
                original_bytes: facts.bytes,
                unit: facts.unit.clone(),
                units: facts.units,
                compressed_bytes: c.compressed_bytes,
                bits_per_symbol: ratio(8.0 * c.compressed_bytes as f64, facts.units as f64),
                bits_per_byte: ratio(8.0 * c.compressed_bytes as f64, facts.bytes as f64),
                entropy_rate: facts.entropy_rate,
                compress_kb_s: kb_per_s(facts.bytes, c.compress_seconds),
                decompress_kb_s: kb_per_s(facts.bytes, c.decompress_seconds),
                verified: true,
                peak_rss_bytes: None,
                curve: None,
                cached: false,
            };
            log(p, &row);
            out.rows.push(row);
            bar.inc(1);
        }
        out.sources.push(facts);
    }
    bar.finish();
    out.seconds = t0.elapsed().as_secs_f64();
    Ok(out)
}

/// Symbols between two points of a curve of `points` points over `units` symbols.
pub fn curve_every(units: u64, points: usize) -> u64 {
    units.div_ceil(points.max(1) as u64).max(1)
}

/// The options every predictor compresses with: those of `strata zip compress --model MODEL`.
pub fn options(model: &strata_zip::ModelSpec) -> Options {
    Options {
        model: model.clone(),
        alphabet: AlphabetChoice::Auto,
        ..Options::default()
    }
}

/// The bytes of source `s` and what they are; `spec_file` names the spec in errors.
pub fn load(s: &CompressionSource, spec_file: &str) -> Result<(Vec<u8>, SourceFacts)> {
    let at = || format!("{spec_file}, line {}: [compression] sources", s.line);
    let (data, description, rate) = match &s.input {
        SourceInput::File { path, file, limit } => {
            let data = read_file(file, *limit).with_context(at)?;
            let description = match limit {
                Some(n) if (data.len() as u64) == *n => format!("file `{path}`, first {n} bytes"),
                _ => format!("file `{path}`"),
            };
            (data, description, None)
        }
        SourceInput::Generator {
            source,
            spec,
            length,
            seed,
        } => {
            strata_data::memory::check_fits(*length, format!("generating {length} symbols"))
                .with_context(at)?;
            let n = usize::try_from(*length).context("length does not fit in memory")?;
            let g = strata_zip::gen::generate(spec, n, *seed).with_context(at)?;
            let description = format!("`{source}`, {length} symbols, seed {seed}");
            (g.symbols, description, Some((g.entropy_rate, g.exact)))
        }
    };
    if data.is_empty() {
        bail!("{}: '{}' has no bytes to compress", at(), s.name);
    }
    let (unit, units) = bench::units_of(&data, AlphabetChoice::Auto);
    let facts = SourceFacts {
        name: s.name.clone(),
        description,
        bytes: data.len() as u64,
        unit: unit.to_string(),
        units,
        entropy_rate: rate.map(|r| r.0),
        entropy_exact: rate.is_some_and(|r| r.1),
        sha256: cache::sha256_hex(&data),
    };
    Ok((data, facts))
}

/// The first `limit` bytes of `file` (all without a limit), after checking they fit in memory.
fn read_file(file: &Path, limit: Option<u64>) -> Result<Vec<u8>> {
    let f = std::fs::File::open(file).with_context(|| format!("cannot read {}", file.display()))?;
    let len = f.metadata().map(|m| m.len()).unwrap_or(0);
    let want = limit.map_or(len, |n| n.min(len));
    // The input, its container and the decoded copy are held at once.
    strata_data::memory::check_fits(
        want.saturating_mul(3),
        format!("compressing {} ({want} bytes)", file.display()),
    )?;
    let mut data = Vec::new();
    f.take(limit.unwrap_or(u64::MAX))
        .read_to_end(&mut data)
        .with_context(|| format!("cannot read {}", file.display()))?;
    Ok(data)
}

/// Compress `data` with `model` (measuring the curve), decode it, compare: an error unless the
/// decoded bytes are the input.
fn measure(
    data: &[u8],
    model: &strata_zip::ModelSpec,
    every: u64,
    memory: bool,
) -> Result<Measured> {
    let opts = options(model);
    let memory = memory && reset_peak_rss();
    let t = Instant::now();
    let (packed, curve) = strata_zip::compress_with_curve(data, &opts, every)?;
    let compress_seconds = t.elapsed().as_secs_f64();
    let t = Instant::now();
    let back = strata_zip::decompress(&packed).context("decoding the container")?;
    let decompress_seconds = t.elapsed().as_secs_f64();
    if back != data {
        bail!(
            "decoding gave {} bytes that differ from the {}-byte input; no number is reported \
             for it",
            back.len(),
            data.len()
        );
    }
    Ok(Measured {
        compressed_bytes: packed.len() as u64,
        compress_seconds,
        decompress_seconds,
        peak_rss_bytes: if memory {
            crate::peak_rss_bytes()
        } else {
            None
        },
        curve_every: curve.every,
        curve: curve
            .points
            .iter()
            .map(|q| (q.symbols, q.bits.to_bits()))
            .collect(),
    })
}

fn predictor_row(
    facts: &SourceFacts,
    name: &str,
    model: &str,
    m: &Measured,
    cached: bool,
) -> CompressionRow {
    CompressionRow {
        source: facts.name.clone(),
        compressor: name.to_string(),
        model: model.to_string(),
        baseline: false,
        original_bytes: facts.bytes,
        unit: facts.unit.clone(),
        units: facts.units,
        compressed_bytes: m.compressed_bytes,
        bits_per_symbol: ratio(8.0 * m.compressed_bytes as f64, facts.units as f64),
        bits_per_byte: ratio(8.0 * m.compressed_bytes as f64, facts.bytes as f64),
        entropy_rate: facts.entropy_rate,
        compress_kb_s: kb_per_s(facts.bytes, m.compress_seconds),
        decompress_kb_s: kb_per_s(facts.bytes, m.decompress_seconds),
        verified: true,
        peak_rss_bytes: m.peak_rss_bytes,
        curve: Some(strata_zip::CodeLengthCurve {
            every: m.curve_every,
            points: m
                .curve
                .iter()
                .map(|&(symbols, bits)| strata_zip::CurvePoint {
                    symbols,
                    bits: f64::from_bits(bits),
                })
                .collect(),
        }),
        cached,
    }
}

/// Reset this process's peak resident memory (Linux `clear_refs`), so `VmHWM` read afterwards
/// is the peak since now; false where that is not possible.
fn reset_peak_rss() -> bool {
    std::fs::write("/proc/self/clear_refs", b"5").is_ok() && crate::peak_rss_bytes().is_some()
}

/// Key of one predictor's measurement: the bytes, the model, the curve's interval, and the
/// versions of the container and of the cache.
fn cache_key(data_sha256: &str, model: &strata_zip::ModelSpec, every: u64) -> String {
    let v = json!({
        "format": cache::FORMAT,
        "kind": "compression",
        "container": strata_zip::VERSION,
        "data": data_sha256,
        "model": model.name(),
        "alphabet": "auto",
        "curve_every": every,
    });
    cache::sha256_hex(v.to_string().as_bytes())
}

fn read_cached(path: &PathBuf) -> Option<Measured> {
    let text = std::fs::read(path).ok()?;
    serde_json::from_slice(&text).ok()
}

/// Keep a measurement; a cache that cannot be written only costs the next run time.
fn write_cached(path: &Path, m: &Measured, p: &dyn Progress) {
    let written = path
        .parent()
        .map_or(Ok(()), std::fs::create_dir_all)
        .map_err(anyhow::Error::from)
        .and_then(|()| Ok(serde_json::to_vec(m)?))
        .and_then(|bytes| Ok(strata_report::write_atomic(path, &bytes)?));
    if let Err(e) = written {
        p.warn(&format!(
            "warning: [compression] cannot cache a result in {}: {e}",
            path.display()
        ));
    }
}

fn log(p: &dyn Progress, r: &CompressionRow) {
    p.log(&format!(
        "compression {}: {} {} bytes, {} bits/{}{}{}",
        r.source,
        r.compressor,
        r.compressed_bytes,
        r.bits_per_symbol
            .map_or_else(|| "n/a".to_string(), |v| format!("{v:.4}")),
        r.unit,
        r.entropy_rate
            .map_or_else(String::new, |h| format!(" (entropy rate {h:.4})")),
        if r.cached { ", from the cache" } else { "" }
    ));
}

/// Rows of one source, in run order.
pub fn rows_of<'a>(c: &'a CompressionRun, source: &str) -> Vec<&'a CompressionRow> {
    c.rows.iter().filter(|r| r.source == source).collect()
}

/// The terminal summary's lines: bits per symbol of each compressor on each source.
pub fn summary_text(o: &Outcome) -> String {
    let c = &o.compression;
    if o.analysis.compression.is_none() || c.rows.is_empty() {
        return String::new();
    }
    let mut compressors: Vec<&str> = Vec::new();
    for r in &c.rows {
        if !compressors.contains(&r.compressor.as_str()) {
            compressors.push(&r.compressor);
        }
    }
    let mut rows = vec![["source", "unit", "entropy rate"]
        .map(String::from)
        .into_iter()
        .chain(compressors.iter().map(|s| s.to_string()))
        .collect::<Vec<_>>()];
    for s in &c.sources {
        let mine = rows_of(c, &s.name);
        let mut r = vec![
            s.name.clone(),
            s.unit.clone(),
            s.entropy_rate.map_or_else(
                || "-".to_string(),
                |h| format!("{h:.4}{}", if s.entropy_exact { "" } else { "~" }),
            ),
        ];
        for name in &compressors {
            r.push(
                mine.iter()
                    .find(|x| x.compressor == *name)
                    .and_then(|x| x.bits_per_symbol)
                    .map_or_else(|| "n/a".to_string(), |v| format!("{v:.4}")),
            );
        }
        rows.push(r);
    }
    let mut out = format!(
        "\ncompression (DeepZip-style, every output decoded and compared), bits per symbol:\n{}",
        super::summary::pad_rows(&rows)
    );
    if !c.missing_baselines.is_empty() {
        out.push_str(&format!(
            "  (not installed: {})\n",
            c.missing_baselines.join(", ")
        ));
    }
    out
}

/// `[compression]` as JSON: settings, sources and every row.
pub fn summary_json(o: &Outcome) -> serde_json::Value {
    let Some(plan) = &o.analysis.compression else {
        return serde_json::Value::Null;
    };
    let c = &o.compression;
    json!({
        "seed": plan.seed,
        "curve_points": plan.curve_points,
        "predictors": plan.predictors.iter().map(|p| json!({"name": p.name, "model": p.model}))
            .collect::<Vec<_>>(),
        "baselines": plan.baselines,
        "missing_baselines": c.missing_baselines,
        "sources": c.sources.iter().map(|s| json!({
            "name": s.name, "description": s.description, "bytes": s.bytes, "unit": s.unit,
            "units": s.units, "entropy_rate": s.entropy_rate, "entropy_exact": s.entropy_exact,
            "sha256": s.sha256,
        })).collect::<Vec<_>>(),
        "rows": c.rows.iter().map(row_json).collect::<Vec<_>>(),
    })
}

/// One row as JSON (the summary's and the manifest's).
pub fn row_json(r: &CompressionRow) -> serde_json::Value {
    json!({
        "source": r.source, "compressor": r.compressor, "model": r.model,
        "baseline": r.baseline, "original_bytes": r.original_bytes, "unit": r.unit,
        "units": r.units, "compressed_bytes": r.compressed_bytes,
        "bits_per_symbol": r.bits_per_symbol, "bits_per_byte": r.bits_per_byte,
        "entropy_rate": r.entropy_rate, "gap": r.gap(), "compress_kb_s": r.compress_kb_s,
        "decompress_kb_s": r.decompress_kb_s, "verified": r.verified,
        "peak_rss_bytes": r.peak_rss_bytes, "cached": r.cached,
    })
}

/// The manifest's `compression` entry: what was compressed (with checksums) and how long it
/// took; `None` without the section.
pub fn manifest(o: &Outcome) -> Option<serde_json::Value> {
    o.analysis.compression.as_ref()?;
    let c = &o.compression;
    Some(json!({
        "sources": c.sources.iter().map(|s| json!({
            "name": s.name, "description": s.description, "bytes": s.bytes, "sha256": s.sha256,
        })).collect::<Vec<_>>(),
        "rows": c.rows.iter().map(|r| json!({
            "source": r.source, "compressor": r.compressor, "model": r.model,
            "compressed_bytes": r.compressed_bytes, "cached": r.cached,
        })).collect::<Vec<_>>(),
        "missing_baselines": c.missing_baselines,
        "peak_memory_measured": c.memory_measured,
        "seconds": c.seconds,
    }))
}

/// The plan's file sources, for the check that none lies inside the report folder.
pub fn input_files(plan: Option<&CompressionPlan>) -> Vec<PathBuf> {
    plan.map_or_else(Vec::new, |p| {
        p.sources
            .iter()
            .filter_map(|s| match &s.input {
                SourceInput::File { file, .. } => Some(file.clone()),
                SourceInput::Generator { .. } => None,
            })
            .collect()
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::analysis::{run_text, RunArgs};

    #[test]
    fn curves_have_at_most_the_points_asked_for() {
        assert_eq!(curve_every(1000, 50), 20);
        assert_eq!(curve_every(1001, 50), 21);
        assert_eq!(curve_every(3, 50), 1);
        assert_eq!(curve_every(0, 50), 1);
        assert_eq!(curve_every(10, 0), 10);
    }

    /// A whole `strata run` of a tiny spec with `[compression]` alone: every source compressed by
    /// every predictor and baseline, each number equal to what `strata zip bench` (the library
    /// service) gives on the same bytes, the report's tables and summaries written, and the same
    /// numbers again from the cache and again with `--force`.
    #[test]
    fn a_spec_with_compression_runs_end_to_end_and_matches_zip_bench() {
        let dir = std::env::temp_dir().join(format!("strata-compression-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let words = ["the ", "whale ", "and ", "sea, ", "Ahab ", "of ", "white\n"];
        let text: String = (0..900).map(|i| words[(i * 7 + i / 5) % 7]).collect();
        std::fs::write(dir.join("t.txt"), &text).unwrap();
        let spec = dir.join("cz.toml");
        let body = r#"
title = "tiny compression"

[compression]
seed = 1
curve_points = 8
sources = [
  "t.txt",
  { generator = "xor", k = 6, length = 3000 },
  { generator = "markov", alphabet = 4, order = 1, length = 2000, seed = 4 },
]
predictors = ["cm", { model = "lstm", hidden = 8, bptt = 8 }, "cm+gru:hidden=4"]
baselines = ["gzip", "xz"]
"#;
        std::fs::write(&spec, body).unwrap();
        let args = RunArgs {
            reports: dir.join("reports"),
            cache: dir.join("cache"),
            jobs: 1,
            force: false,
            command: "test".into(),
        };
        let p = crate::progress::Silent;
        let (o, report) = run_text(body, &spec, "cz", args.clone(), &p).unwrap();
        let plan = o.analysis.compression.as_ref().unwrap();
        let c = &o.compression;
        let classic: Vec<&str> = ["gzip", "xz"]
            .into_iter()
            .filter(|b| bench::program_exists(b))
            .collect();
        assert_eq!(c.sources.len(), 3);
        assert_eq!(c.rows.len(), 3 * (3 + classic.len()));
        assert_eq!(c.missing_baselines.len(), 2 - classic.len());
        assert!(c.rows.iter().all(|r| r.verified && !r.cached));

        // The same bytes through the `strata zip bench` service: the same sizes and rates.
        for (k, s) in plan.sources.iter().enumerate() {
            let (data, facts) = load(s, "cz.toml").unwrap();
            assert_eq!(facts, c.sources[k]);
            let file = dir.join(format!("source-{k}.bin"));
            std::fs::write(&file, &data).unwrap();
            for (j, pr) in plan.predictors.iter().enumerate() {
                let b = bench::bench(
                    &bench::BenchArgs {
                        files: vec![file.clone()],
                        opts: options(&pr.spec),
                        classic: j == 0,
                    },
                    &p,
                )
                .unwrap();
                let mine = rows_of(c, &s.name);
                let row = mine.iter().find(|r| r.compressor == pr.name).unwrap();
                assert_eq!(b[0].compressor, format!("strata {}", row.model));
                assert_eq!(b[0].round_trip, Some(true));
                assert_eq!(row.compressed_bytes, b[0].compressed_bytes, "{}", pr.name);
                assert_eq!(row.bits_per_symbol, b[0].bits_per_unit, "{}", pr.name);
                assert_eq!(
                    (row.unit.as_str(), row.units),
                    (b[0].unit.as_str(), b[0].units)
                );
                for base in &classic {
                    let label = bench::classic_label(base).unwrap();
                    let theirs = b.iter().find(|r| r.compressor == label);
                    let ours = mine.iter().find(|r| r.compressor == label);
                    if let (Some(t), Some(o)) = (theirs, ours) {
                        assert_eq!(o.compressed_bytes, t.compressed_bytes, "{label}");
                        assert_eq!(o.bits_per_symbol, t.bits_per_unit, "{label}");
                    }
                }
                // The curve covers every symbol and adds up to about the coded payload.
                let curve = row.curve.as_ref().unwrap();
                assert_eq!(curve.symbols(), row.units);
                assert!(curve.points.len() <= 8);
                assert!(curve.bits() <= 8.0 * row.compressed_bytes as f64 + 64.0);
            }
        }
        // Synthetic sources carry their entropy rate, and the gap is taken from it.
        let xor = c.rows.iter().find(|r| r.source == "xor:k=6").unwrap();
        assert_eq!(xor.entropy_rate, Some(0.0));
        assert_eq!(xor.gap(), xor.bits_per_symbol);
        assert!(c
            .rows
            .iter()
            .filter(|r| r.source == "t.txt")
            .all(|r| r.gap().is_none()));

        let md = std::fs::read_to_string(report.join("report.md")).unwrap();
        assert!(md.contains("## Compression"), "{md}");
        for f in [
            "tables/compression.csv",
            "tables/compression.parquet",
            "tables/compression-curves.csv",
            "figures/compression-curve-1.png",
            "figures/compression-curve-3.svg",
        ] {
            assert!(report.join(f).is_file(), "{f}");
        }
        let csv = std::fs::read_to_string(report.join("tables/compression.csv")).unwrap();
        assert_eq!(csv.lines().count(), 1 + c.rows.len(), "{csv}");
        let j = crate::analysis::summary::json(&o, &report);
        assert_eq!(
            j["compression"]["rows"].as_array().unwrap().len(),
            c.rows.len()
        );
        assert_eq!(j["compression"]["sources"][1]["entropy_rate"], 0.0);
        let text = crate::analysis::summary::text(&o, &report);
        assert!(text.contains("compression (DeepZip-style"), "{text}");
        assert!(text.contains("xor:k=6"), "{text}");
        let m: serde_json::Value =
            serde_json::from_slice(&std::fs::read(report.join("manifest.json")).unwrap()).unwrap();
        assert_eq!(m["compression"]["sources"].as_array().unwrap().len(), 3);

        // Again: the predictors' numbers come from the cache, the same to the bit.
        let same = |a: &CompressionRun, b: &CompressionRun| {
            assert_eq!(a.sources, b.sources);
            for (x, y) in a.rows.iter().zip(&b.rows) {
                assert_eq!(
                    (
                        &x.source,
                        &x.compressor,
                        x.compressed_bytes,
                        x.bits_per_symbol
                    ),
                    (
                        &y.source,
                        &y.compressor,
                        y.compressed_bytes,
                        y.bits_per_symbol
                    )
                );
                assert_eq!(x.curve, y.curve);
            }
        };
        let (again, _) = run_text(body, &spec, "cz", args.clone(), &p).unwrap();
        assert!(again
            .compression
            .rows
            .iter()
            .all(|r| r.cached != r.baseline));
        same(c, &again.compression);
        // And measured afresh (`--force`): still the same.
        let forced = RunArgs {
            force: true,
            ..args
        };
        let (fresh, _) = run_text(body, &spec, "cz", forced, &p).unwrap();
        assert!(fresh.compression.rows.iter().all(|r| !r.cached));
        same(c, &fresh.compression);
        let _ = std::fs::remove_dir_all(&dir);
    }
}
