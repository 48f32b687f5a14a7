//! compress / decompress / info / gen on files: atomic writes, no overwriting without --force,
//! one error line on bad input.

use crate::progress;
use anyhow::{bail, Context, Result};
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use strata_zip::{gen, Alphabet, Options};

/// Refuses to replace an existing file unless `force`.
fn check_output(out: &Path, force: bool) -> Result<()> {
    if out.exists() && !force {
        bail!(
            "{} already exists; pass --force to overwrite it",
            out.display()
        );
    }
    Ok(())
}

fn read(path: &Path) -> Result<Vec<u8>> {
    std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))
}

/// What one compression did, for the terminal and `--json`.
pub struct Compressed {
    pub input_len: u64,
    pub output_len: u64,
    pub alphabet: String,
    pub model: String,
    pub seconds: f64,
    pub symbols: u64,
}

/// Compresses `input` into `output` (written atomically).
pub fn compress_file(
    input: &Path,
    output: &Path,
    opts: &Options,
    force: bool,
    quiet: bool,
) -> Result<Compressed> {
    check_output(output, force)?;
    let data = read(input)?;
    let alphabet = strata_zip::alphabet::detect(&data, opts.alphabet);
    let symbols = symbol_count(&data, &alphabet);
    let pb = progress::bar(
        symbols,
        "compressing",
        "symbols",
        quiet || data.len() < 1 << 20,
    );
    let done = AtomicU64::new(0);
    let t = std::time::Instant::now();
    let packed = strata_zip::compress_with_progress(&data, opts, &|n| {
        pb.set_position(done.fetch_add(n, Ordering::Relaxed) + n);
    })?;
    let seconds = t.elapsed().as_secs_f64();
    pb.finish_and_clear();
    strata_report::write_atomic(output, &packed)?;
    let info = strata_zip::info(&packed)?;
    Ok(Compressed {
        input_len: data.len() as u64,
        output_len: packed.len() as u64,
        alphabet: info
            .alphabet
            .map(|a| a.name())
            .unwrap_or_else(|| "stored".into()),
        model: info
            .model
            .map(|m| m.name())
            .unwrap_or_else(|| "stored".into()),
        seconds,
        symbols,
    })
}

/// Number of symbols the models code for `data` (bases only, for DNA).
pub fn symbol_count(data: &[u8], a: &Alphabet) -> u64 {
    match a {
        Alphabet::Dna => data
            .iter()
            .filter(|b| matches!(b, b'A' | b'C' | b'G' | b'T'))
            .count() as u64,
        a => strata_zip::alphabet::symbol_count(data.len() as u64, a),
    }
}

/// Decompresses `input` into `output`; nothing is written unless the checksum verifies.
pub fn decompress_file(
    input: &Path,
    output: &Path,
    threads: usize,
    force: bool,
    quiet: bool,
) -> Result<(u64, u64, f64)> {
    check_output(output, force)?;
    let packed = read(input)?;
    let info = strata_zip::info(&packed).with_context(|| format!("{}", input.display()))?;
    let pb = progress::bar(
        info.original_len,
        "decompressing",
        "symbols",
        quiet || info.original_len < 1 << 20,
    );
    let done = AtomicU64::new(0);
    let t = std::time::Instant::now();
    let data = strata_zip::decompress_with_progress(&packed, threads, &|n| {
        pb.set_position(done.fetch_add(n, Ordering::Relaxed) + n);
    })
    .with_context(|| format!("{}", input.display()))?;
    let seconds = t.elapsed().as_secs_f64();
    pb.finish_and_clear();
    strata_report::write_atomic(output, &data)?;
    Ok((packed.len() as u64, data.len() as u64, seconds))
}

/// A container's header, as lines of text.
pub fn info_file(input: &Path) -> Result<strata_zip::Info> {
    let packed = read(input)?;
    strata_zip::info(&packed).with_context(|| format!("{}", input.display()))
}

/// Writes `n` symbols of `source` (one per byte) to `output`; returns what was generated.
pub fn gen_file(
    source: &str,
    n: usize,
    seed: u64,
    output: &Path,
    force: bool,
) -> Result<gen::Generated> {
    check_output(output, force)?;
    let src = gen::parse_source(source)?;
    let g = gen::generate(&src, n, seed)?;
    strata_report::write_atomic(output, &g.symbols)?;
    Ok(g)
}
