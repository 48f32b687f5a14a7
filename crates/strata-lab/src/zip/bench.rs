//! `strata zip bench`: strata-zip beside gzip -9, bzip2 -9, xz -9e and zstd -19 on the same
//! files in the same run: compressed size, bits per byte (per base for DNA, per symbol for small
//! alphabets), compression and decompression speed, and a round-trip check of strata's output.

use super::files::{kb_per_s, ratio, symbol_count};
use crate::progress::Progress;
use anyhow::{bail, Context, Result};
use serde::Serialize;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Instant;
use strata_zip::Options;

/// What to benchmark.
pub struct BenchArgs {
    /// Files to compress, each benchmarked on its own.
    pub files: Vec<PathBuf>,
    /// strata's compression options.
    pub opts: Options,
    /// Also run the classic compressors found on PATH.
    pub classic: bool,
}

/// One compressor on one file.
#[derive(Serialize, Clone)]
pub struct Row {
    /// The file's name.
    pub file: String,
    /// Size of the file, in bytes.
    pub original_bytes: u64,
    /// "byte", "base" or "symbol": what `bits_per_unit` counts.
    pub unit: String,
    /// Units in the file (bytes, bases or symbols: see `unit`).
    pub units: u64,
    /// `strata MODEL`, or a classic compressor with its level (`gzip -9`, `xz -9e`, ...).
    pub compressor: String,
    /// Compressed size, in bytes.
    pub compressed_bytes: u64,
    /// None (JSON null, "n/a" in the tables) for an empty file: no units, no rate.
    pub bits_per_unit: Option<f64>,
    /// Compression speed, in KB of input per second.
    pub compress_kb_s: f64,
    /// Decompression speed, in KB of original data per second (`None` where not measured).
    pub decompress_kb_s: Option<f64>,
    /// Whether decompression gave back the input (strata only; classic tools are trusted).
    pub round_trip: Option<bool>,
}

/// Classic compressors: name, program, arguments to compress stdin to stdout, to decompress.
const CLASSIC: [(&str, &str, &[&str], &[&str]); 4] = [
    ("gzip -9", "gzip", &["-9", "-c"], &["-d", "-c"]),
    ("bzip2 -9", "bzip2", &["-9", "-c"], &["-d", "-c"]),
    ("xz -9e", "xz", &["-9e", "-c", "-T1"], &["-d", "-c"]),
    (
        "zstd -19",
        "zstd",
        &["-19", "-c", "-q"],
        &["-d", "-c", "-q"],
    ),
];

/// The label `strata zip bench` gives the classic compressor run as `program` (`xz` ->
/// `xz -9e`), if it is one of gzip, bzip2, xz, zstd.
pub fn classic_label(program: &str) -> Option<&'static str> {
    CLASSIC.iter().find(|c| c.1 == program).map(|c| c.0)
}

/// Whether `program` can be run (it answers `--version`).
pub fn program_exists(p: &str) -> bool {
    Command::new(p)
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok()
}

fn pipe(program: &str, args: &[&str], input: &[u8]) -> Result<Vec<u8>> {
    let mut child = Command::new(program)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .with_context(|| format!("cannot run {program}"))?;
    let mut stdin = child.stdin.take().context("no stdin")?;
    let data = input.to_vec();
    let writer = std::thread::spawn(move || stdin.write_all(&data));
    let out = child.wait_with_output()?;
    let _ = writer.join();
    if !out.status.success() {
        bail!("{program} failed ({})", out.status);
    }
    Ok(out.stdout)
}

fn kb_s(bytes: u64, seconds: f64) -> f64 {
    kb_per_s(bytes, seconds)
}

/// A rate for the tables: four decimals, or "n/a" where there is none.
fn rate_text(r: Option<f64>) -> String {
    r.map(|v| format!("{v:.4}")).unwrap_or_else(|| "n/a".into())
}

/// One classic compressor on some bytes, measured as `strata zip bench` measures it.
pub struct ClassicRun {
    /// The compressed size, in bytes.
    pub compressed_bytes: u64,
    /// Seconds compressing took (the program's run, from the first byte in to the last out).
    pub compress_seconds: f64,
    /// Seconds decompressing took.
    pub decompress_seconds: f64,
    /// Whether decompression gave back the input.
    pub round_trip: bool,
}

/// Compress `data` with the classic compressor `program` (gzip, bzip2, xz or zstd, at the
/// level [`classic_label`] names) and decompress it again; an error when `program` is not one of
/// them, cannot be run, or fails.
pub fn run_classic(program: &str, data: &[u8]) -> Result<ClassicRun> {
    let Some((_, program, cargs, dargs)) = CLASSIC.iter().find(|c| c.1 == program) else {
        bail!("{program} is not one of the classic compressors (gzip, bzip2, xz, zstd)");
    };
    let t = Instant::now();
    let out = pipe(program, cargs, data)?;
    let c = t.elapsed().as_secs_f64();
    let t = Instant::now();
    let back = pipe(program, dargs, &out)?;
    let d = t.elapsed().as_secs_f64();
    Ok(ClassicRun {
        compressed_bytes: out.len() as u64,
        compress_seconds: c,
        decompress_seconds: d,
        round_trip: back == data,
    })
}

/// What `bits_per_unit` counts for `data` under `alphabet` (`byte`, `base` for DNA, `symbol` for
/// a small alphabet), and how many of them it holds.
pub fn units_of(data: &[u8], alphabet: strata_zip::AlphabetChoice) -> (&'static str, u64) {
    let alphabet = strata_zip::alphabet::detect(data, alphabet);
    let unit = match alphabet {
        strata_zip::Alphabet::Dna => "base",
        strata_zip::Alphabet::Symbols(_) => "symbol",
        strata_zip::Alphabet::Bits | strata_zip::Alphabet::Bytes => "byte",
    };
    let units = if unit == "byte" {
        data.len() as u64
    } else {
        symbol_count(data, &alphabet)
    };
    (unit, units)
}

/// Runs the benchmark; logs one line per result as it comes.
pub fn bench(args: &BenchArgs, progress: &dyn Progress) -> Result<Vec<Row>> {
    if args.files.is_empty() {
        bail!("no files given: strata zip bench FILE...");
    }
    let classic: Vec<_> = if args.classic {
        CLASSIC.iter().filter(|c| program_exists(c.1)).collect()
    } else {
        Vec::new()
    };
    let mut rows = Vec::new();
    for path in &args.files {
        let data =
            std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?;
        let (unit, units) = units_of(&data, args.opts.alphabet);
        let name = file_label(path);
        let row = |compressor: String, size: u64, c: f64, d: Option<f64>, rt: Option<bool>| Row {
            file: name.clone(),
            original_bytes: data.len() as u64,
            unit: unit.into(),
            units,
            compressor,
            compressed_bytes: size,
            bits_per_unit: ratio(8.0 * size as f64, units as f64),
            compress_kb_s: kb_s(data.len() as u64, c),
            decompress_kb_s: d.map(|d| kb_s(data.len() as u64, d)),
            round_trip: rt,
        };
        let t = Instant::now();
        let packed = strata_zip::compress(&data, &args.opts)?;
        let c = t.elapsed().as_secs_f64();
        let t = Instant::now();
        let back = strata_zip::decompress(&packed);
        let d = t.elapsed().as_secs_f64();
        let ok = matches!(&back, Ok(b) if *b == data);
        let r = row(
            format!("strata {}", args.opts.model.name()),
            packed.len() as u64,
            c,
            Some(d),
            Some(ok),
        );
        report(&r, progress);
        rows.push(r);
        for (label, program, _, _) in &classic {
            let c = run_classic(program, &data)?;
            let r = row(
                label.to_string(),
                c.compressed_bytes,
                c.compress_seconds,
                Some(c.decompress_seconds),
                Some(c.round_trip),
            );
            report(&r, progress);
            rows.push(r);
        }
    }
    Ok(rows)
}

fn file_label(p: &Path) -> String {
    p.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| p.display().to_string())
}

fn report(r: &Row, progress: &dyn Progress) {
    progress.log(&format!(
        "  {:<24} {:<34} {:>10} bytes  {} bits/{}",
        r.file,
        r.compressor,
        r.compressed_bytes,
        rate_text(r.bits_per_unit),
        r.unit
    ));
}

/// Per compressor over all files: total compressed bytes and bits per original byte (None when
/// all files are empty).
pub fn totals(rows: &[Row]) -> Vec<(String, u64, u64, Option<f64>, f64)> {
    let mut out: Vec<(String, u64, u64, Option<f64>, f64)> = Vec::new();
    for r in rows {
        let secs = r.original_bytes as f64 / 1000.0 / r.compress_kb_s.max(1e-12);
        match out.iter_mut().find(|t| t.0 == r.compressor) {
            Some(t) => {
                t.1 += r.original_bytes;
                t.2 += r.compressed_bytes;
                t.4 += secs;
            }
            None => out.push((
                r.compressor.clone(),
                r.original_bytes,
                r.compressed_bytes,
                None,
                secs,
            )),
        }
    }
    for t in &mut out {
        t.3 = ratio(8.0 * t.2 as f64, t.1 as f64);
    }
    out
}

/// The results as a Markdown table (also what the terminal shows), with totals.
pub fn markdown(rows: &[Row]) -> String {
    let mut s = String::from(
        "| file | original | compressor | compressed | bits/unit | compress KB/s | decompress KB/s | round trip |\n\
         |---|---:|---|---:|---:|---:|---:|---|\n",
    );
    for r in rows {
        s += &format!(
            "| {} | {} | {} | {} | {} /{} | {:.1} | {} | {} |\n",
            r.file,
            r.original_bytes,
            r.compressor,
            r.compressed_bytes,
            rate_text(r.bits_per_unit),
            r.unit,
            r.compress_kb_s,
            r.decompress_kb_s
                .map(|v| format!("{v:.1}"))
                .unwrap_or_default(),
            match r.round_trip {
                Some(true) => "ok",
                Some(false) => "FAILED",
                None => "",
            }
        );
    }
    let files = rows
        .iter()
        .map(|r| r.file.as_str())
        .collect::<std::collections::BTreeSet<_>>()
        .len();
    if files > 1 {
        s += "\n| all files | original | compressed | bits/byte | compress KB/s |\n|---|---:|---:|---:|---:|\n";
        for (name, orig, comp, bpb, secs) in totals(rows) {
            s += &format!(
                "| {name} | {orig} | {comp} | {} | {:.1} |\n",
                rate_text(bpb),
                kb_s(orig, secs)
            );
        }
    }
    s
}

/// The results as CSV.
pub fn csv(rows: &[Row]) -> String {
    let mut s = String::from("file,original_bytes,unit,units,compressor,compressed_bytes,bits_per_unit,compress_kb_s,decompress_kb_s,round_trip\n");
    for r in rows {
        s += &format!(
            "{},{},{},{},{},{},{},{:.3},{},{}\n",
            r.file,
            r.original_bytes,
            r.unit,
            r.units,
            r.compressor,
            r.compressed_bytes,
            r.bits_per_unit
                .map(|v| format!("{v:.6}"))
                .unwrap_or_default(),
            r.compress_kb_s,
            r.decompress_kb_s
                .map(|v| format!("{v:.3}"))
                .unwrap_or_default(),
            r.round_trip.map(|b| b.to_string()).unwrap_or_default()
        );
    }
    s
}
