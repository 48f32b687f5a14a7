//! `strata zip compress|decompress|info|gen|bench`: lossless compression with learned predictors.

use super::emit;
use crate::args::OutputArgs;
use crate::progress::Terminal;
use anyhow::{bail, Result};
use clap::ValueEnum;
use std::path::PathBuf;
use strata_lab::zip;

/// Lossless compression with a learned predictor driving an arithmetic coder (DeepZip and
/// beyond): context mixing, LSTM/GRU trained while coding, or both mixed.
#[derive(clap::Args)]
pub struct ZipArgs {
    #[command(subcommand)]
    which: ZipCmd,
}

#[derive(clap::Subcommand)]
enum ZipCmd {
    Compress(CompressArgs),
    Decompress(DecompressArgs),
    Info(InfoArgs),
    Gen(GenArgs),
    Bench(BenchArgs),
}

/// Compress IN into OUT (a strata-zip container: magic, version, model spec, length, CRC-32).
///
/// The default model (cm) mixes hashed order-1..8, word, sparse, match and lag-relation
/// models; lstm/gru train a recurrent network while coding (DeepZip's adaptive mode: nothing
/// is stored but its spec); cm+lstm/cm+gru feed the network's prediction to the mixer.
/// The alphabet is detected: DNA packs A/C/G/T to 2 bits (other bytes kept exactly), a file
/// of at most 16 distinct byte values is coded in ceil(log2 k) bits per symbol.
#[derive(clap::Args)]
#[command(after_help = "Models (--model):\n  \
    cm                          context mixing (default; fastest)\n  \
    lstm | gru                  a recurrent network alone, trained while coding\n  \
    cm+lstm | cm+gru            both, mixed\n  \
    ...:layers=L,hidden=H,bptt=T,lr=R,seed=S   network settings, e.g. cm+lstm:hidden=64\n\n\
    Examples:\n  \
    strata zip compress book.txt book.stz\n  \
    strata zip compress genome.fa genome.stz --model cm+gru:hidden=32\n  \
    strata zip decompress book.stz book.txt")]
struct CompressArgs {
    #[command(flatten)]
    files: Files,
    /// Predictor (see below).
    #[arg(long, default_value = "cm")]
    model: String,
    /// auto, bytes, bits (a packed bit stream: 8 binary symbols per byte) or dna.
    #[arg(long, value_enum, default_value = "auto")]
    alphabet: AlphabetArg,
}

/// Decompress a strata-zip container; OUT is written only after its CRC-32 verifies.
#[derive(clap::Args)]
struct DecompressArgs {
    #[command(flatten)]
    files: Files,
}

/// The file in, the file out, and how: shared by compress and decompress.
#[derive(clap::Args)]
struct Files {
    input: PathBuf,
    output: PathBuf,
    /// Streams coded at once (DNA codes bases and other bytes as two); the output is the same
    /// for any value.
    #[arg(long, default_value_t = 2)]
    threads: usize,
    /// Overwrite OUT if it exists.
    #[arg(long)]
    force: bool,
    #[command(flatten)]
    term: OutputArgs,
}

/// Print a container's header: original length, checksum, alphabet, model.
#[derive(clap::Args)]
struct InfoArgs {
    input: PathBuf,
}

/// Write a synthetic source (one symbol per byte) and print its entropy rate.
#[derive(clap::Args)]
#[command(after_help = "Sources:\n  \
    iid:alphabet=2,entropy=0.5          i.i.d. with the given entropy (bits/symbol)\n  \
    markov:alphabet=4,order=2           random order-k Markov chain\n  \
    xor:k=20                            x[n] = x[n-1] XOR x[n-k] (DeepZip's binary source)\n  \
    hmm:states=4,alphabet=4             hidden Markov source (entropy rate estimated)\n  \
    lfib:j=24,k=55,bits=8               lagged Fibonacci x[n] = x[n-j] + x[n-k] mod 2^bits\n\n\
    Example:\n  strata zip gen xor:k=60 --n 10000000 xor60.bin && strata zip bench xor60.bin")]
struct GenArgs {
    /// The source (see below).
    source: String,
    output: PathBuf,
    /// Symbols to generate.
    #[arg(long, default_value_t = 1_000_000)]
    n: usize,
    #[arg(long, default_value_t = 0)]
    seed: u64,
    #[arg(long)]
    force: bool,
    #[arg(long)]
    json: bool,
}

/// Compress FILES with strata and with gzip -9, bzip2 -9, xz -9e and zstd -19 (those on
/// PATH), and with the neural compressors lstm-compress, cmix and nncp where they are on PATH, in
/// the same run: size, bits per byte (base, symbol), speeds, round trip.
#[derive(clap::Args)]
#[command(after_help = "Compressors (--baselines, comma-separated):\n  \
    gzip, bzip2, xz, zstd          classic, run at -9, -9, -9e, -19 through pipes\n  \
    lstm-compress, cmix, nncp      neural / context mixing, run through temp files and checked\n  \
    none                           strata alone\n\
    Default: the classic four, then any neural tool found on PATH (those not found are named in\n\
    a note; strata never installs them). Neural tools run at a few KB/s: bound them with\n\
    --neural-timeout or --neural-max-bytes. A neural row whose output does not decompress to\n\
    the input is FAILED, with no size.\n\n\
    Examples:\n  \
    strata zip bench ../shared/datasets/text/*.txt --out benches/results/zip-text\n  \
    strata zip bench book.txt --baselines xz,lstm-compress --neural-timeout 600")]
struct BenchArgs {
    #[arg(required = true)]
    files: Vec<PathBuf>,
    #[arg(long, default_value = "cm")]
    model: String,
    #[arg(long, value_enum, default_value = "auto")]
    alphabet: AlphabetArg,
    /// Skip the classic compressors (neural ones found still run; --baselines none: strata alone).
    #[arg(long, conflicts_with = "baselines")]
    no_classic: bool,
    /// Compressors to run beside strata, in order (see below).
    #[arg(long, value_name = "LIST", value_delimiter = ',')]
    baselines: Option<Vec<String>>,
    /// Stop a neural tool's compression or decompression after SECS (its row says so).
    #[arg(long, value_name = "SECS")]
    neural_timeout: Option<f64>,
    /// Leave files over BYTES out of the neural tools' runs.
    #[arg(long, value_name = "BYTES")]
    neural_max_bytes: Option<u64>,
    /// A preprocessing dictionary for lstm-compress and cmix (e.g. their dictionary/english.dic);
    /// their rows are labelled "+dict".
    #[arg(long, value_name = "FILE")]
    neural_dictionary: Option<PathBuf>,
    /// Write bench-zip.json, .csv and .md into DIR.
    #[arg(long, value_name = "DIR")]
    out: Option<PathBuf>,
    #[arg(long)]
    json: bool,
    #[arg(long, short)]
    quiet: bool,
}

#[derive(Clone, Copy, ValueEnum)]
enum AlphabetArg {
    Auto,
    Bytes,
    Bits,
    Dna,
}

impl AlphabetArg {
    fn choice(self) -> strata_zip::AlphabetChoice {
        match self {
            AlphabetArg::Auto => strata_zip::AlphabetChoice::Auto,
            AlphabetArg::Bytes => strata_zip::AlphabetChoice::Bytes,
            AlphabetArg::Bits => strata_zip::AlphabetChoice::Bits,
            AlphabetArg::Dna => strata_zip::AlphabetChoice::Dna,
        }
    }
}

fn options(model: &str, alphabet: AlphabetArg, threads: usize) -> Result<strata_zip::Options> {
    Ok(strata_zip::Options {
        model: strata_zip::ModelSpec::parse(model)?,
        alphabet: alphabet.choice(),
        threads,
    })
}

impl ZipArgs {
    pub fn exec(self) -> Result<()> {
        match self.which {
            ZipCmd::Compress(a) => a.exec(),
            ZipCmd::Decompress(a) => a.exec(),
            ZipCmd::Info(a) => a.exec(),
            ZipCmd::Gen(a) => a.exec(),
            ZipCmd::Bench(a) => a.exec(),
        }
    }
}

impl CompressArgs {
    fn exec(self) -> Result<()> {
        let f = &self.files;
        let opts = options(&self.model, self.alphabet, f.threads)?;
        let c = zip::compress_file(
            &f.input,
            &f.output,
            &opts,
            f.force,
            &Terminal::new(f.term.silent()),
        )?;
        if f.term.json {
            println!("{}", c.json(&f.input, &f.output));
        } else {
            println!("{}", c.summary(&f.input, &f.output));
        }
        Ok(())
    }
}

impl DecompressArgs {
    fn exec(self) -> Result<()> {
        let f = &self.files;
        let (input, output) = (&f.input, &f.output);
        let (packed, len, secs) = zip::decompress_file(
            input,
            output,
            f.threads,
            f.force,
            &Terminal::new(f.term.silent()),
        )?;
        if f.term.json {
            println!(
                "{}",
                serde_json::json!({"input": input, "output": output,
                    "compressed_bytes": packed, "original_bytes": len, "seconds": secs,
                    "checksum": "ok"})
            );
        } else {
            println!(
                "{} -> {}: {} -> {} bytes, CRC-32 ok, {:.2} s ({:.1} KB/s)",
                input.display(),
                output.display(),
                packed,
                len,
                secs,
                len as f64 / 1000.0 / secs.max(1e-9)
            );
        }
        Ok(())
    }
}

impl InfoArgs {
    fn exec(self) -> Result<()> {
        let i = zip::info_file(&self.input)?;
        println!("file:         {}", self.input.display());
        println!("original:     {} bytes", i.original_len);
        println!("crc32:        {:08x}", i.crc32);
        println!("header:       {} bytes", i.header_len);
        match (i.alphabet, i.model) {
            (Some(a), Some(m)) => {
                println!("alphabet:     {}", a.name());
                println!("model:        {}", m.name());
            }
            _ => println!("method:       stored (the model could not shrink it)"),
        }
        Ok(())
    }
}

impl GenArgs {
    fn exec(self) -> Result<()> {
        let (source, output, n, seed) = (&self.source, &self.output, self.n, self.seed);
        let g = zip::gen_file(source, n, seed, output, self.force)?;
        if self.json {
            println!(
                "{}",
                serde_json::json!({"source": source, "output": output, "symbols": n,
                    "alphabet": g.alphabet, "entropy_rate": g.entropy_rate,
                    "entropy_rate_exact": g.exact, "total_bits": g.total_bits, "seed": seed})
            );
        } else {
            let how = if g.exact { "exact" } else { "estimated" };
            println!(
                "{}: {} symbols over {} letters, entropy rate {:.6} bits/symbol ({how}), {:.0} bits in all",
                output.display(), n, g.alphabet, g.entropy_rate, g.total_bits
            );
        }
        Ok(())
    }
}

impl BenchArgs {
    fn exec(self) -> Result<()> {
        let time_limit = match self.neural_timeout {
            None => None,
            Some(t) if t > 0.0 => Some(std::time::Duration::try_from_secs_f64(t)?),
            Some(t) => bail!("--neural-timeout {t}: give a positive number of seconds"),
        };
        let how = zip::Baselines {
            names: self.baselines.clone(),
            search_path: None,
            time_limit,
            max_bytes: self.neural_max_bytes,
            dictionary: self.neural_dictionary.clone(),
        };
        let args = zip::BenchArgs {
            opts: options(&self.model, self.alphabet, 2)?,
            files: self.files,
            classic: !self.no_classic,
        };
        let report = zip::bench_with(&args, &how, &Terminal::new(self.quiet || self.json))?;
        let rows = &report.rows;
        // The table as before unless a neural tool ran or the compressors were chosen: then the
        // notes (tools not on PATH, slowness, files left out) follow it.
        let md = if self.baselines.is_some() || !report.neural.is_empty() {
            zip::bench::markdown_with_notes(rows, &report.notes)
        } else {
            zip::bench::markdown(rows)
        };
        if let Some(dir) = &self.out {
            std::fs::create_dir_all(dir)?;
            strata_report::write_atomic(
                &dir.join("bench-zip.csv"),
                zip::bench::csv(rows).as_bytes(),
            )?;
        }
        emit("bench-zip", self.out.as_deref(), self.json, rows, &md)?;
        if rows.iter().any(|r| r.round_trip == Some(false)) {
            bail!("a round trip FAILED (see the table)");
        }
        Ok(())
    }
}
