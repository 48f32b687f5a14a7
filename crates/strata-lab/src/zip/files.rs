//! compress / decompress / info / gen on files: atomic writes, no overwriting without --force,
//! never the input as the output, one error line on bad input.
//!
//! Outputs go through [`strata_report::write_atomic`]: the whole result is computed (and for
//! decompression verified against the CRC-32) in memory first, then written to a temporary file
//! beside the output, synced and renamed over it, so an output is either the old file or the
//! complete new one, and a failure leaves neither a partial output nor the temporary file.

use crate::progress::{Progress, Silent, Task};
use crate::setting::{Setting, SettingError};
use anyhow::{bail, Context, Result};
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use strata_zip::{gen, Alphabet, Options};

/// Refuses an output that is the input itself: the same file by (device, inode), so also through
/// a hard link, a symlink or another spelling of the path (`./x` and `x`). Writing it would
/// replace the input with its own transformation (or, with a failure half-way, lose it), so like
/// gzip this is refused before anything is read or written, with or without --force.
fn check_not_input(input: &Path, output: &Path) -> Result<()> {
    if crate::outset::same_file(input, output) {
        bail!(
            "{} and {} are the same file; refusing to overwrite the input",
            input.display(),
            output.display()
        );
    }
    Ok(())
}

/// Refuses to replace an existing file unless `force`.
fn check_output(out: &Path, force: bool) -> Result<()> {
    if out.exists() && !force {
        return Err(SettingError::within(
            Setting::Force,
            format!("{} already exists; overwrite it with ", out.display()),
            "",
        )
        .into());
    }
    Ok(())
}

fn read(path: &Path) -> Result<Vec<u8>> {
    std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))
}

/// What one compression did, for the terminal and `--json`.
pub struct Compressed {
    /// Input size, in bytes.
    pub input_len: u64,
    /// Compressed container size, in bytes.
    pub output_len: u64,
    /// How the input was split into symbols (`stored` when it was stored as is).
    pub alphabet: String,
    /// Predictor that coded it (`stored` when it was stored as is).
    pub model: String,
    /// Seconds compressing took.
    pub seconds: f64,
    /// Symbols coded (bases only, for DNA).
    pub symbols: u64,
}

impl Compressed {
    /// Coded bits per symbol, or None for an empty input: no symbols, no rate (the container's
    /// header alone would otherwise read as 88 bits for one imaginary symbol).
    pub fn bits_per_symbol(&self) -> Option<f64> {
        ratio(8.0 * self.output_len as f64, self.symbols as f64)
    }

    /// Coded bits per original byte, or None for an empty input.
    pub fn bits_per_byte(&self) -> Option<f64> {
        ratio(8.0 * self.output_len as f64, self.input_len as f64)
    }

    /// The line `strata zip compress` prints.
    pub fn summary(&self, input: &Path, output: &Path) -> String {
        let rate = match self.bits_per_symbol() {
            Some(bps) => format!(
                "{bps:.4} bits/symbol ({} symbols, {})",
                self.symbols, self.alphabet
            ),
            None => "no symbols (empty input)".to_string(),
        };
        format!(
            "{} -> {}: {} -> {} bytes, {rate}, model {}, {:.2} s ({:.1} KB/s)",
            input.display(),
            output.display(),
            self.input_len,
            self.output_len,
            self.model,
            self.seconds,
            kb_per_s(self.input_len, self.seconds)
        )
    }

    /// The `--json` record of `strata zip compress` (rates are null for an empty input).
    pub fn json(&self, input: &Path, output: &Path) -> serde_json::Value {
        serde_json::json!({
            "input": input, "output": output, "original_bytes": self.input_len,
            "compressed_bytes": self.output_len, "symbols": self.symbols,
            "bits_per_symbol": self.bits_per_symbol(),
            "bits_per_byte": self.bits_per_byte(),
            "alphabet": self.alphabet, "model": self.model, "seconds": self.seconds,
        })
    }
}

/// `num / den` when it is a finite number, else None (0/0, x/0): a rate of nothing is not a
/// number to print. A negative zero becomes zero, so nothing prints as "-0.0000".
pub fn ratio(num: f64, den: f64) -> Option<f64> {
    let r = num / den;
    (den > 0.0 && r.is_finite()).then_some(r + 0.0)
}

/// Throughput in KB/s; 0 for no bytes or no measurable time rather than NaN or infinity.
pub fn kb_per_s(bytes: u64, seconds: f64) -> f64 {
    ratio(bytes as f64 / 1000.0, seconds.max(1e-9)).unwrap_or(0.0)
}

/// A task for coding `len` bytes: none under 1 MiB, which codes too fast to watch.
fn coding_task(progress: &dyn Progress, label: &str, len: u64, total: u64) -> Box<dyn Task> {
    if len < 1 << 20 {
        Silent.task(label, "symbols", total)
    } else {
        progress.task(label, "symbols", total)
    }
}

/// Compresses `input` into `output` (written atomically), reporting to `progress`.
pub fn compress_file(
    input: &Path,
    output: &Path,
    opts: &Options,
    force: bool,
    progress: &dyn Progress,
) -> Result<Compressed> {
    check_not_input(input, output)?;
    check_output(output, force)?;
    let data = read(input)?;
    let alphabet = strata_zip::alphabet::detect(&data, opts.alphabet);
    let symbols = symbol_count(&data, &alphabet);
    let pb = coding_task(progress, "compressing", data.len() as u64, symbols);
    let done = AtomicU64::new(0);
    let t = std::time::Instant::now();
    let packed = strata_zip::compress_with_progress(&data, opts, &|n| {
        pb.set_position(done.fetch_add(n, Ordering::Relaxed) + n);
    })?;
    let seconds = t.elapsed().as_secs_f64();
    pb.finish();
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
    progress: &dyn Progress,
) -> Result<(u64, u64, f64)> {
    check_not_input(input, output)?;
    check_output(output, force)?;
    let packed = read(input)?;
    let info = strata_zip::info(&packed).with_context(|| format!("{}", input.display()))?;
    // The decoded bytes and the symbols they come from are held at once.
    strata_data::memory::check_fits(
        info.original_len.saturating_mul(2),
        format!("{}: decoding {} bytes", input.display(), info.original_len),
    )?;
    let len = info.original_len;
    let pb = coding_task(progress, "decompressing", len, len);
    let done = AtomicU64::new(0);
    let t = std::time::Instant::now();
    let data = strata_zip::decompress_with_progress(&packed, threads, &|n| {
        pb.set_position(done.fetch_add(n, Ordering::Relaxed) + n);
    })
    .with_context(|| format!("{}", input.display()))?;
    let seconds = t.elapsed().as_secs_f64();
    pb.finish();
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
    strata_data::memory::check_fits(n as u64, format!("generating {n} symbols"))?;
    let g = gen::generate(&src, n, seed)?;
    strata_report::write_atomic(output, &g.symbols)?;
    Ok(g)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn empty() -> Compressed {
        Compressed {
            input_len: 0,
            output_len: 11,
            alphabet: "stored".into(),
            model: "stored".into(),
            seconds: 0.0,
            symbols: 0,
        }
    }

    #[test]
    fn rates_of_nothing_are_none_and_never_negative_zero_or_nan() {
        assert_eq!(ratio(0.0, 0.0), None);
        assert_eq!(ratio(88.0, 0.0), None);
        assert_eq!(ratio(f64::NAN, 1.0), None);
        assert_eq!(format!("{:.4}", ratio(-0.0, 3.0).unwrap()), "0.0000");
        assert_eq!(ratio(88.0, 11.0), Some(8.0));
        assert_eq!(kb_per_s(0, 0.0), 0.0);
        assert!(kb_per_s(1000, 0.0).is_finite());
    }

    #[test]
    fn an_empty_input_reports_no_rate_in_text_or_json() {
        let c = empty();
        let (i, o) = (Path::new("e"), Path::new("e.stz"));
        let line = c.summary(i, o);
        assert!(line.contains("0 -> 11 bytes"), "{line}");
        for bad in ["bits/symbol", "NaN", "inf", "-0"] {
            assert!(!line.contains(bad), "{line}");
        }
        let j = c.json(i, o);
        assert!(
            j["bits_per_symbol"].is_null() && j["bits_per_byte"].is_null(),
            "{j}"
        );
        let full = Compressed {
            input_len: 100,
            output_len: 25,
            symbols: 100,
            ..empty()
        };
        assert!(full
            .summary(i, o)
            .contains("2.0000 bits/symbol (100 symbols"));
        assert_eq!(full.json(i, o)["bits_per_byte"], 2.0);
    }

    #[cfg(unix)]
    #[test]
    fn the_same_file_is_found_through_links_and_path_spellings() {
        let d = std::env::temp_dir().join(format!("strata-zip-same-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        let x = d.join("x");
        std::fs::write(&x, b"data").unwrap();
        std::fs::write(d.join("y"), b"data").unwrap();
        std::fs::hard_link(&x, d.join("hard")).unwrap();
        std::os::unix::fs::symlink(&x, d.join("soft")).unwrap();
        for other in [x.clone(), d.join(".").join("x"), d.join("hard")] {
            assert!(check_not_input(&x, &other).is_err(), "{}", other.display());
        }
        assert!(check_not_input(&d.join("soft"), &x).is_err());
        assert!(check_not_input(&x, &d.join("y")).is_ok());
        assert!(check_not_input(&x, &d.join("missing")).is_ok());
        let _ = std::fs::remove_dir_all(&d);
    }
}
