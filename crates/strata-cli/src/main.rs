//! `strata`: what did this network learn, how does its quantized twin differ, what does it leak.

use anyhow::{bail, Result};
use clap::{Parser, Subcommand, ValueEnum};
use std::path::PathBuf;
use std::process::ExitCode;
use strata_lab::analysis::{self, RunArgs};
use strata_lab::{bench, compare, gpu, measure, mia, train, zip};
use strata_nn::net::Architecture;
use strata_nn::train::{OptimizerKind, Schedule, TrainConfig};
use strata_nn::Precision;
use strata_sim::{Estimator, Kernel};

#[derive(Parser)]
#[command(
    name = "strata",
    version,
    about = "Compare, audit and compress neural networks: CKA between layers, from the files PyTorch and NumPy write.",
    long_about = "strata trains float and quantized networks, compares their layers with Centered \
        Kernel Alignment (CKA), and writes reports.\n\n\
        Start with `strata quickstart` (no input needed), describe your own experiments in an \
        analysis spec for `strata run`, or point `strata cka` at your own activations: .npy, \
        .npz, .safetensors, or strata's Arrow/Parquet activation store.",
    after_help = "Examples:\n  strata quickstart\n  strata run analyses/float-vs-quantized.toml\n  strata cka float.npz w1a1.npz --out reports/float-vs-w1a1\n  strata cka acts.arrow acts.arrow --kernel rbf --json\n  strata layers acts.safetensors"
)]
struct Cli {
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Run the default analysis on embedded data: float, binary and low-bit MLPs trained on
    /// an MNIST subset compiled into the binary, their layers compared, a report written.
    ///
    /// The same as `strata run analyses/quickstart.toml`, from a copy of that spec embedded in
    /// the binary, so it works from any folder.
    Quickstart {
        #[command(flatten)]
        opts: RunOpts,
    },
    /// Run an analysis spec: train the models it names (or take them from the cache), collect
    /// their activations, compare their layers, and write a report in REPORTS/NAME/.
    ///
    /// The report holds index.html (self-contained: open it from disk), report.md, figures/
    /// (PNG, SVG), tables/ (CSV, Parquet) and manifest.json (spec, seeds, versions, git commit,
    /// timings, machine). Trained models and activation stores are cached by the hash of what
    /// produced them: a re-run is quick, changing one seed retrains one model, and an interrupted
    /// run resumes from the models that finished. The spec format is documented in
    /// analyses/README.md.
    #[command(after_help = "Examples:\n  strata run analyses/quickstart.toml\n  \
        strata run analyses/float-vs-quantized.toml --jobs 2\n  \
        strata run my.toml --force        # retrain everything")]
    Run {
        /// The analysis spec (TOML); its file name (without .toml) names the report folder.
        spec: PathBuf,
        #[command(flatten)]
        opts: RunOpts,
        /// Print one JSON summary object as the last line of stdout.
        #[arg(long)]
        json: bool,
    },
    /// CKA (or, with --measure, a baseline measure) between the layers of two activation files.
    ///
    /// Each file holds one or more layers, all over the same examples in the same order
    /// (first axis = examples; further axes are flattened into features). With one layer on each
    /// side, prints the CKA value; otherwise the matrix (rows = layers of A).
    #[command(after_help = "Formats (detected from the file's first bytes):\n  \
        .npy          one layer, named after the file\n  \
        .npz          one layer per array (np.savez / np.savez_compressed)\n  \
        .safetensors  one layer per tensor (F16/F32/F64)\n  \
        .arrow        strata's activation store, Arrow IPC (see README)\n  \
        .parquet      strata's activation store, Parquet\n\n\
        Examples:\n  strata cka a.npy b.npy\n  strata cka float.npz w1a1.npz --out out/ --json\n  \
        strata cka big.arrow big.arrow --batch-size 1024    # minibatch CKA, bounded memory")]
    Cka {
        /// Activations of model A (rows of the matrix).
        a: PathBuf,
        /// Activations of model B (columns); may be the same file as A.
        b: PathBuf,
        /// Similarity measure: cka, or a baseline of Kornblith et al. 2019: cca_rho (mean
        /// canonical correlation), cca_r2 (Yanai's R²_CCA), svcca_rho, svcca_r2 (SVD to 99% of
        /// the variance, then CCA), pwcca (Morcos et al. 2018, weights from A), linreg (R² of
        /// predicting B from A), procrustes (orthogonal Procrustes distance: 0 = same up to a
        /// rotation), hsic (unnormalized linear HSIC), cka_linear (linear CKA in f64).
        #[arg(long, default_value = "cka", value_name = "NAME")]
        measure: String,
        /// Kernel: linear (K = XXᵀ) or rbf (Gaussian, bandwidth from the median distance).
        #[arg(long, value_enum, default_value = "linear")]
        kernel: KernelArg,
        /// RBF bandwidth as a fraction of the median distance (Kornblith et al. use 0.2-0.8).
        #[arg(
            long,
            default_value_t = 0.5,
            value_name = "T",
            allow_negative_numbers = true
        )]
        rbf_threshold: f64,
        /// HSIC estimator [default: biased; debiased with --batch-size].
        #[arg(long, value_enum)]
        estimator: Option<EstimatorArg>,
        /// Minibatch CKA (Nguyen et al. 2021) with N examples per batch: memory stays bounded
        /// however many examples the files hold.
        #[arg(long, value_name = "N")]
        batch_size: Option<usize>,
        /// Only these layers of A (comma-separated names).
        #[arg(long, value_delimiter = ',', value_name = "NAMES")]
        layers_a: Option<Vec<String>>,
        /// Only these layers of B (comma-separated names).
        #[arg(long, value_delimiter = ',', value_name = "NAMES")]
        layers_b: Option<Vec<String>>,
        /// Print one JSON object on stdout instead of text.
        #[arg(long)]
        json: bool,
        /// Also write cka.csv, cka.parquet, cka.json, heatmap.png and heatmap.svg into DIR.
        #[arg(long, value_name = "DIR")]
        out: Option<PathBuf>,
        /// Where linear CKA runs: cpu, cuda (an error without a GPU) or auto (the GPU when
        /// present). The RBF kernel and the baseline measures run on the CPU.
        #[arg(long, value_enum, default_value = "auto")]
        device: DeviceArg,
        /// No progress bars.
        #[arg(long, short)]
        quiet: bool,
    },
    /// CUDA GPUs: what this machine has (`info`), and whether the GPU paths agree with the
    /// CPU on it (`check`). Every command runs without a GPU; `--device auto` uses one when
    /// present.
    Gpu {
        #[command(subcommand)]
        which: GpuCmd,
    },
    /// List the layers of an activation file: name, shape, features, examples.
    Layers {
        file: PathBuf,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Train a float or quantized network (MLP, LeNet-like CNN, Tiny-10) and save it.
    ///
    /// Quantized precisions train with straight-through estimators as in Hubara et al.:
    /// w1a1 = binary weights and activations (BinaryNet), w1a2, w2a2, w4a4, w8a8.
    #[command(
        after_help = "Data sets:\n  mnist        full MNIST from $STRATA_MNIST, ../shared/datasets/mnist or data/mnist\n  \
        mnist:DIR    MNIST IDX files in DIR\n  mnist-small  embedded subset (6,000 train / 1,000 test)\n  \
        digits       embedded 8x8 digits (1,438 / 359)\n  adult        UCI Adult from $STRATA_ADULT or ../shared/datasets/adult (adult:DIR)\n  \
        csv:PATH     any CSV with a header; --label names the class column (80/20 split)\n\n\
        Example:\n  strata train --data mnist --precision w1a1 --epochs 10 --out models/mlp-w1a1"
    )]
    Train {
        /// Data set (see below).
        #[arg(long, default_value = "mnist-small")]
        data: String,
        /// Label column for csv:PATH data.
        #[arg(long, value_name = "COLUMN")]
        label: Option<String>,
        /// Architecture: mlp, cnn (LeNet-like) or tiny10 (Kornblith et al. 2019, App. E).
        #[arg(long, value_enum, default_value = "mlp")]
        model: ModelArg,
        /// Hidden layer widths (mlp).
        #[arg(long, value_delimiter = ',', default_value = "1024,1024")]
        widths: Vec<usize>,
        /// float, w1a1, w1a2, w2a2, w4a4 or w8a8.
        #[arg(long, default_value = "float", value_parser = parse_precision)]
        precision: Precision,
        #[arg(long, default_value_t = 10)]
        epochs: usize,
        #[arg(long, default_value_t = 100)]
        batch_size: usize,
        /// Base learning rate.
        #[arg(long, default_value_t = 1e-3)]
        lr: f64,
        #[arg(long, value_enum, default_value = "adam")]
        optimizer: OptArg,
        /// Momentum for --optimizer sgd.
        #[arg(long, default_value_t = 0.9)]
        momentum: f64,
        /// Weight decay (decoupled for Adam, L2 for SGD).
        #[arg(long, default_value_t = 0.0)]
        weight_decay: f64,
        #[arg(long, value_enum, default_value = "cosine")]
        schedule: ScheduleArg,
        #[arg(long, default_value_t = 0)]
        seed: u64,
        /// Use only the first N training examples.
        #[arg(long)]
        limit: Option<usize>,
        /// Where to save the model (PATH.safetensors and PATH.json).
        #[arg(long)]
        out: PathBuf,
        /// Print one JSON object as the last line of stdout.
        #[arg(long)]
        json: bool,
        #[arg(long, short)]
        quiet: bool,
    },
    /// Accuracy of a saved model; `--engine packed` runs w1a1 layers as XOR/popcount.
    Eval {
        #[arg(long)]
        model: PathBuf,
        #[arg(long, default_value = "mnist-small")]
        data: String,
        /// Label column for csv:PATH data.
        #[arg(long, value_name = "COLUMN")]
        label: Option<String>,
        #[arg(long, default_value = "test")]
        split: String,
        #[arg(long)]
        limit: Option<usize>,
        #[arg(long, value_enum, default_value = "float")]
        engine: EngineArg,
        /// Where an MLP runs: cpu, cuda or auto (the GPU when present). On the GPU the float
        /// engine is cuBLAS SGEMM with batch-norm/activation kernels; the packed engine packs
        /// activations to bits on the device and runs the binary layers on its tensor-core
        /// kernel (compute capability 8.0 and newer) or XOR-popcount kernel. CNNs run on the CPU.
        #[arg(long, value_enum, default_value = "auto")]
        device: DeviceArg,
        /// Run the data through N times; images/s is the fastest pass's (a warm GPU).
        #[arg(long, default_value_t = 1, value_name = "N", value_parser = parse_repeat)]
        repeat: usize,
        #[arg(long)]
        json: bool,
    },
    /// Stream every layer's activations of a saved model into an activation store.
    Collect {
        #[arg(long)]
        model: PathBuf,
        #[arg(long, default_value = "mnist-small")]
        data: String,
        /// Label column for csv:PATH data.
        #[arg(long, value_name = "COLUMN")]
        label: Option<String>,
        #[arg(long, default_value = "test")]
        split: String,
        /// Only the first N examples.
        #[arg(long)]
        limit: Option<usize>,
        /// Record the input of each nonlinearity instead of its output.
        #[arg(long)]
        pre: bool,
        /// The store to write (.arrow or .parquet).
        #[arg(long)]
        out: PathBuf,
        /// Where an MLP runs: cpu, cuda or auto (the GPU when present: cuBLAS SGEMM and
        /// batch-norm/activation kernels; values equal the CPU's to f32 rounding, exactly for
        /// w1a1). CNNs run on the CPU.
        #[arg(long, value_enum, default_value = "auto")]
        device: DeviceArg,
        #[arg(long, short)]
        quiet: bool,
    },
    /// Membership inference: how much a trained model reveals about who was in its training data.
    Mia {
        #[command(subcommand)]
        which: MiaCmd,
    },
    /// Lossless compression with a learned predictor driving an arithmetic coder (DeepZip and
    /// beyond): context mixing, LSTM/GRU trained while coding, or both mixed.
    Zip {
        #[command(subcommand)]
        which: ZipCmd,
    },
    /// Benchmarks, each reported as ratios to a baseline measured in the same run.
    Bench {
        #[command(subcommand)]
        which: BenchCmd,
    },
}

#[derive(Subcommand)]
enum MiaCmd {
    /// Train a target and reference models on random halves of a data pool, attack the target,
    /// and report leakage (AUC, TPR at 0.1% and 1% FPR, advantage, with bootstrap intervals)
    /// beside train and test accuracy, for every precision and defense asked for.
    ///
    /// Protocol: a pool is drawn at random from the training split; the target trains on a random
    /// half (the members), the other half are the non-members; each reference model trains on
    /// its own random half, every example in half of them (Carlini et al. 2022). Shadow models for
    /// Shokri et al.'s attack are the first --shadows reference models; ML-Leaks uses the first.
    /// Output defenses (topK, roundD, tempT) are applied to every model's released vectors; l2=λ
    /// and each --precision train their own target and references.
    #[command(after_help = "Attacks (--attacks, comma-separated; default all):\n  \
        lira                 LiRA online, per-example variance (Carlini et al. 2022)\n  \
        lira-offline         LiRA offline (OUT models only)\n  \
        lira-global          LiRA online, one variance for all examples\n  \
        lira-offline-global  LiRA offline, global variance\n  \
        shokri               per-class attack models on shadow models' sorted vectors (Shokri et al. 2017)\n  \
        salem                ML-Leaks: top posterior, threshold from one shadow model (Salem et al. 2019)\n  \
        loss                 global loss threshold (Yeom et al. 2018)\n  \
        confidence, entropy  global thresholds on the true-class probability / the entropy\n  \
        mentr                modified entropy (Song & Mittal 2021)\n\n\
        Defenses (--defenses, comma-separated; default none):\n  \
        none  top1  top3  round1  round2  temp5  l2=1e-3\n\n\
        Examples:\n  \
        strata mia audit                                   # MNIST subset, 8 references, all attacks\n  \
        strata mia audit --data mnist --pool 10000 --references 16 --out reports/mia\n  \
        strata mia audit --precision float,w1a1,w4a4 --defenses none,top1,round2,l2=1e-3\n  \
        strata mia audit --data csv:my.csv --label income --model mlp --widths 64 --json")]
    Audit {
        /// Data set: mnist-small (embedded), mnist, digits, adult, csv:PATH (see `strata train --help`).
        #[arg(long, default_value = "mnist-small")]
        data: String,
        /// Label column for csv:PATH data.
        #[arg(long, value_name = "COLUMN")]
        label: Option<String>,
        /// Pool size: examples drawn from the training split; the target trains on half
        /// [default: the training split, at most 10000].
        #[arg(long, value_name = "N")]
        pool: Option<usize>,
        /// Architecture: mlp, cnn or tiny10.
        #[arg(long, value_enum, default_value = "mlp")]
        model: ModelArg,
        /// Hidden layer widths (mlp).
        #[arg(long, value_delimiter = ',', default_value = "256,256")]
        widths: Vec<usize>,
        /// Precisions to audit, comma-separated (float, w1a1, w1a2, w2a2, w4a4, w8a8); each
        /// trains its own target and references.
        #[arg(long, value_delimiter = ',', default_value = "float", value_parser = parse_precision)]
        precision: Vec<Precision>,
        /// Reference (shadow) models; LiRA online wants 16 or more (each example is IN for half).
        #[arg(long, default_value_t = 8)]
        references: usize,
        /// How many of the reference models train Shokri et al.'s attack models [default: 4, or
        /// all references when fewer].
        #[arg(long)]
        shadows: Option<usize>,
        /// Attacks, comma-separated (see below) [default: all].
        #[arg(long, value_delimiter = ',')]
        attacks: Option<Vec<String>>,
        /// Defenses, comma-separated (see below).
        #[arg(long, value_delimiter = ',', default_value = "none")]
        defenses: Vec<String>,
        /// Training epochs of every model (long training overfits: that is what is measured).
        #[arg(long, default_value_t = 30)]
        epochs: usize,
        #[arg(long, default_value_t = 64)]
        batch_size: usize,
        /// Learning rate of float models.
        #[arg(long, default_value_t = 1e-3)]
        lr: f64,
        /// Learning rate of quantized models.
        #[arg(long, default_value_t = 1e-2)]
        lr_quantized: f64,
        #[arg(long, value_enum, default_value = "adam")]
        optimizer: OptArg,
        #[arg(long, value_enum, default_value = "cosine")]
        schedule: ScheduleArg,
        /// Bootstrap resamples behind each 95% interval (2 to 100000).
        #[arg(long, default_value_t = 200)]
        bootstrap: usize,
        /// Fixes the pool, the splits, every model's initialization and the bootstrap.
        #[arg(long, default_value_t = 0)]
        seed: u64,
        /// Keep trained models' logits here, so a re-run (other attacks, other output defenses)
        /// trains nothing.
        #[arg(long, value_name = "DIR")]
        cache: Option<PathBuf>,
        /// Write a report folder: index.html, report.md, ROC figures (log-log), tables (CSV,
        /// Parquet), results.json and design.json (every split and seed).
        #[arg(long, value_name = "DIR")]
        out: Option<PathBuf>,
        /// Print one JSON object as the last line of stdout.
        #[arg(long)]
        json: bool,
        #[arg(long, short)]
        quiet: bool,
    },
}

#[derive(Subcommand)]
enum ZipCmd {
    /// Compress IN into OUT (a strata-zip container: magic, version, model spec, length, CRC-32).
    ///
    /// The default model (cm) mixes hashed order-1..8, word, sparse, match and lag-relation
    /// models; lstm/gru train a recurrent network while coding (DeepZip's adaptive mode: nothing
    /// is stored but its spec); cm+lstm/cm+gru feed the network's prediction to the mixer.
    /// The alphabet is detected: DNA packs A/C/G/T to 2 bits (other bytes kept exactly), a file
    /// of at most 16 distinct byte values is coded in ceil(log2 k) bits per symbol.
    #[command(after_help = "Models (--model):\n  \
        cm                          context mixing (default; fastest)\n  \
        lstm | gru                  a recurrent network alone, trained while coding\n  \
        cm+lstm | cm+gru            both, mixed\n  \
        ...:layers=L,hidden=H,bptt=T,lr=R,seed=S   network settings, e.g. cm+lstm:hidden=64\n\n\
        Examples:\n  \
        strata zip compress book.txt book.stz\n  \
        strata zip compress genome.fa genome.stz --model cm+gru:hidden=32\n  \
        strata zip decompress book.stz book.txt")]
    Compress {
        input: PathBuf,
        output: PathBuf,
        /// Predictor (see below).
        #[arg(long, default_value = "cm")]
        model: String,
        /// auto, bytes, bits (a packed bit stream: 8 binary symbols per byte) or dna.
        #[arg(long, value_enum, default_value = "auto")]
        alphabet: AlphabetArg,
        /// Streams coded at once (DNA codes bases and other bytes as two); never changes the output.
        #[arg(long, default_value_t = 2)]
        threads: usize,
        /// Overwrite OUT if it exists.
        #[arg(long)]
        force: bool,
        /// Print one JSON object on stdout.
        #[arg(long)]
        json: bool,
        #[arg(long, short)]
        quiet: bool,
    },
    /// Decompress a strata-zip container; OUT is written only after its CRC-32 verifies.
    Decompress {
        input: PathBuf,
        output: PathBuf,
        /// Streams decoded at once; the output is the same for any value.
        #[arg(long, default_value_t = 2)]
        threads: usize,
        #[arg(long)]
        force: bool,
        #[arg(long)]
        json: bool,
        #[arg(long, short)]
        quiet: bool,
    },
    /// Print a container's header: original length, checksum, alphabet, model.
    Info { input: PathBuf },
    /// Write a synthetic source (one symbol per byte) and print its entropy rate.
    #[command(after_help = "Sources:\n  \
        iid:alphabet=2,entropy=0.5          i.i.d. with the given entropy (bits/symbol)\n  \
        markov:alphabet=4,order=2           random order-k Markov chain\n  \
        xor:k=20                            x[n] = x[n-1] XOR x[n-k] (DeepZip's binary source)\n  \
        hmm:states=4,alphabet=4             hidden Markov source (entropy rate estimated)\n  \
        lfib:j=24,k=55,bits=8               lagged Fibonacci x[n] = x[n-j] + x[n-k] mod 2^bits\n\n\
        Example:\n  strata zip gen xor:k=60 --n 10000000 xor60.bin && strata zip bench xor60.bin")]
    Gen {
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
    },
    /// Compress FILES with strata and with gzip -9, bzip2 -9, xz -9e and zstd -19 (those on
    /// PATH), in the same run: size, bits per byte (base, symbol), speeds, round trip.
    #[command(
        after_help = "Example:\n  strata zip bench ../shared/datasets/text/*.txt --out benches/results/zip-text"
    )]
    Bench {
        #[arg(required = true)]
        files: Vec<PathBuf>,
        #[arg(long, default_value = "cm")]
        model: String,
        #[arg(long, value_enum, default_value = "auto")]
        alphabet: AlphabetArg,
        /// Skip the classic compressors.
        #[arg(long)]
        no_classic: bool,
        /// Write bench-zip.json, .csv and .md into DIR.
        #[arg(long, value_name = "DIR")]
        out: Option<PathBuf>,
        #[arg(long)]
        json: bool,
        #[arg(long, short)]
        quiet: bool,
    },
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

fn zip_options(model: &str, alphabet: AlphabetArg, threads: usize) -> Result<strata_zip::Options> {
    Ok(strata_zip::Options {
        model: strata_zip::ModelSpec::parse(model)?,
        alphabet: alphabet.choice(),
        threads,
    })
}

fn run_zip(which: ZipCmd) -> Result<()> {
    match which {
        ZipCmd::Compress {
            input,
            output,
            model,
            alphabet,
            threads,
            force,
            json,
            quiet,
        } => {
            let opts = zip_options(&model, alphabet, threads)?;
            let c = zip::compress_file(&input, &output, &opts, force, quiet || json)?;
            if json {
                println!("{}", c.json(&input, &output));
            } else {
                println!("{}", c.summary(&input, &output));
            }
            Ok(())
        }
        ZipCmd::Decompress {
            input,
            output,
            threads,
            force,
            json,
            quiet,
        } => {
            let (packed, len, secs) =
                zip::decompress_file(&input, &output, threads, force, quiet || json)?;
            if json {
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
        ZipCmd::Info { input } => {
            let i = zip::info_file(&input)?;
            println!("file:         {}", input.display());
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
        ZipCmd::Gen {
            source,
            output,
            n,
            seed,
            force,
            json,
        } => {
            let g = zip::gen_file(&source, n, seed, &output, force)?;
            if json {
                println!(
                    "{}",
                    serde_json::json!({"source": source, "output": output, "symbols": n,
                        "alphabet": g.alphabet, "entropy_rate": g.entropy_rate,
                        "entropy_rate_exact": g.exact, "total_bits": g.total_bits, "seed": seed})
                );
            } else {
                println!(
                    "{}: {} symbols over {} letters, entropy rate {:.6} bits/symbol ({}), {:.0} bits in all",
                    output.display(), n, g.alphabet, g.entropy_rate,
                    if g.exact { "exact" } else { "estimated" }, g.total_bits
                );
            }
            Ok(())
        }
        ZipCmd::Bench {
            files,
            model,
            alphabet,
            no_classic,
            out,
            json,
            quiet,
        } => {
            let args = zip::BenchArgs {
                files,
                opts: zip_options(&model, alphabet, 2)?,
                classic: !no_classic,
                quiet: quiet || json,
            };
            let rows = zip::bench(&args)?;
            let md = zip::bench::markdown(&rows);
            if let Some(dir) = &out {
                std::fs::create_dir_all(dir)?;
                strata_report::write_atomic(
                    &dir.join("bench-zip.csv"),
                    zip::bench::csv(&rows).as_bytes(),
                )?;
            }
            emit_bench("bench-zip", out.as_deref(), json, &rows, &md)?;
            if rows.iter().any(|r| r.round_trip == Some(false)) {
                bail!("a round trip FAILED (see the table)");
            }
            Ok(())
        }
    }
}

/// Options shared by `strata run` and `strata quickstart`.
#[derive(clap::Args)]
struct RunOpts {
    /// Where the report folder goes (REPORTS/NAME/).
    #[arg(long, default_value = "reports", value_name = "DIR")]
    reports: PathBuf,
    /// Cache of trained models and activation stores [default: REPORTS/.cache].
    #[arg(long, value_name = "DIR")]
    cache: Option<PathBuf>,
    /// Models trained at once (each also uses every core for its own products).
    #[arg(long, default_value_t = 1, value_name = "N")]
    jobs: usize,
    /// Ignore the cache: retrain and recollect everything.
    #[arg(long)]
    force: bool,
    /// No progress bars or log lines.
    #[arg(long, short)]
    quiet: bool,
}

impl RunOpts {
    /// The runner's settings; `quiet` also when another output (JSON) owns the terminal.
    fn args(self, quiet: bool) -> RunArgs {
        RunArgs {
            cache: self.cache.unwrap_or_else(|| self.reports.join(".cache")),
            reports: self.reports,
            jobs: self.jobs,
            force: self.force,
            quiet: self.quiet || quiet,
            command: command_line(),
        }
    }
}

#[derive(Subcommand)]
enum BenchCmd {
    /// Packed binary matrix product (XOR/popcount) vs faer's f32 GEMM on the same shapes:
    /// 4096^3 and the w1a1 MLP's layers at batch 256.
    BinaryGemm {
        /// Timed repetitions (the best is reported).
        #[arg(long, default_value_t = 3, value_parser = parse_repeat)]
        repeat: usize,
        /// Size N of the square N x N x N shape [default: 4096 on the CPU, 8192 on the GPU].
        #[arg(long, value_name = "N")]
        square: Option<usize>,
        /// cpu: packed kernel vs faer on the CPU. cuda: the XOR and tensor-core kernels vs
        /// cuBLAS SGEMM and FP16 GEMM, at 8192^3 and the MLP's shapes (written as
        /// bench-binary-gemm-cuda); every kernel's product is checked exactly on sampled rows.
        #[arg(long, value_enum, default_value = "cpu")]
        device: DeviceArg,
        /// Write bench-binary-gemm.json and .md into DIR.
        #[arg(long, value_name = "DIR")]
        out: Option<PathBuf>,
        #[arg(long)]
        json: bool,
    },
    /// All-pairs linear CKA on the GPU: end to end vs the bare cuBLAS SGEMMs it needs, TF32
    /// vs f32, and the CPU path on the same data (needs a GPU).
    Gram {
        /// Examples.
        #[arg(long, default_value_t = 20000)]
        n: usize,
        /// Layer widths of each of the two models.
        #[arg(long, value_delimiter = ',', default_value = "256,512,1024,2048,4096")]
        widths: Vec<usize>,
        #[arg(long, default_value_t = 3, value_parser = parse_repeat)]
        repeat: usize,
        /// Skip the CPU timing.
        #[arg(long)]
        no_cpu: bool,
        #[arg(long, value_enum, default_value = "cuda")]
        device: DeviceArg,
        /// Write bench-gram-cuda.json and .md into DIR.
        #[arg(long, value_name = "DIR")]
        out: Option<PathBuf>,
        #[arg(long)]
        json: bool,
    },
    /// MLP inference throughput: a w1a1 MLP (float and bit-packed engines) against the float
    /// MLP of the same shape, on the CPU and the GPU (when present) in one run. Networks are
    /// freshly initialized (speed does not depend on the weights); images are the embedded
    /// MNIST subset tiled to --rows.
    Mlp {
        /// Images per pass.
        #[arg(long, default_value_t = 60000)]
        rows: usize,
        /// Hidden widths.
        #[arg(long, value_delimiter = ',', default_value = "1024,1024")]
        widths: Vec<usize>,
        /// Rows per GPU batch (and per chunk of the CPU packed engine).
        #[arg(long, default_value_t = 8192)]
        batch: usize,
        /// Passes per engine (the fastest is reported).
        #[arg(long, default_value_t = 3, value_parser = parse_repeat)]
        repeat: usize,
        /// cpu, cuda (an error without a GPU) or auto (the GPU engines too when present).
        #[arg(long, value_enum, default_value = "auto")]
        device: DeviceArg,
        /// Skip the CPU engines.
        #[arg(long)]
        no_cpu: bool,
        /// Write bench-mlp.json and .md into DIR.
        #[arg(long, value_name = "DIR")]
        out: Option<PathBuf>,
        #[arg(long)]
        json: bool,
        #[arg(long, short)]
        quiet: bool,
    },
    /// All-pairs linear CKA vs the bare GEMMs it needs and vs Kornblith et al.'s NumPy
    /// reference; minibatch CKA streamed from a large Arrow store, with its peak memory.
    Cka {
        /// Examples.
        #[arg(long, default_value_t = 5000)]
        n: usize,
        /// Layer widths of each of the two models.
        #[arg(long, value_delimiter = ',', default_value = "256,512,1024,2048")]
        widths: Vec<usize>,
        /// Timed repetitions (the median is reported).
        #[arg(long, default_value_t = 3, value_parser = parse_repeat)]
        repeat: usize,
        /// Python with NumPy for the reference timing.
        #[arg(long, default_value = "python3")]
        python: String,
        /// Skip the NumPy reference.
        #[arg(long)]
        no_numpy: bool,
        /// Examples in the streaming test (0 skips it).
        #[arg(long, default_value_t = 200_000)]
        stream_n: usize,
        /// Features per layer in the streaming test.
        #[arg(long, default_value_t = 1024)]
        stream_features: usize,
        /// Minibatch size in the streaming test.
        #[arg(long, default_value_t = 1024)]
        stream_batch: usize,
        /// Folder for the streaming test's temporary store.
        #[arg(long, default_value_os_t = std::env::temp_dir())]
        scratch: PathBuf,
        /// Write bench-cka.json and bench-cka.md into DIR.
        #[arg(long, value_name = "DIR")]
        out: Option<PathBuf>,
        #[arg(long)]
        json: bool,
        #[arg(long, short)]
        quiet: bool,
    },
}

#[derive(Clone, Copy, ValueEnum)]
enum ModelArg {
    Mlp,
    Cnn,
    Tiny10,
}

#[derive(Clone, Copy, ValueEnum)]
enum OptArg {
    Adam,
    Sgd,
}

#[derive(Clone, Copy, ValueEnum)]
enum ScheduleArg {
    Constant,
    Cosine,
    Step,
}

impl ModelArg {
    fn architecture(self) -> Architecture {
        match self {
            ModelArg::Mlp => Architecture::Mlp,
            ModelArg::Cnn => Architecture::Cnn,
            ModelArg::Tiny10 => Architecture::Tiny10,
        }
    }
}

impl OptArg {
    fn kind(self, momentum: f64) -> OptimizerKind {
        match self {
            OptArg::Adam => OptimizerKind::Adam,
            OptArg::Sgd => OptimizerKind::Sgd { momentum },
        }
    }
}

impl ScheduleArg {
    fn schedule(self, epochs: usize) -> Schedule {
        match self {
            ScheduleArg::Constant => Schedule::Constant,
            ScheduleArg::Cosine => Schedule::Cosine,
            ScheduleArg::Step => Schedule::Step {
                every: (epochs / 3).max(1),
                gamma: 0.1,
            },
        }
    }
}

#[derive(Subcommand)]
enum GpuCmd {
    /// The CUDA devices, driver and libraries found; "no CUDA driver found" (exit 0) elsewhere.
    Info {
        #[arg(long)]
        json: bool,
    },
    /// Binary GEMM (both kernels, device and CPU packing) and linear CKA (biased, debiased,
    /// features and Gram forms) on the GPU against the CPU, on random inputs of awkward sizes:
    /// integers must be equal, CKA within 1e-5 relative. Prints a skip notice without a GPU.
    Check {
        /// Seed for the random inputs [default: from the clock].
        #[arg(long)]
        seed: Option<u64>,
        #[arg(long)]
        json: bool,
    },
}

#[derive(Clone, Copy, ValueEnum, PartialEq)]
enum DeviceArg {
    Cpu,
    Cuda,
    Auto,
}

impl DeviceArg {
    fn choice(self) -> strata_gpu::DeviceChoice {
        match self {
            DeviceArg::Cpu => strata_gpu::DeviceChoice::Cpu,
            DeviceArg::Cuda => strata_gpu::DeviceChoice::Cuda,
            DeviceArg::Auto => strata_gpu::DeviceChoice::Auto,
        }
    }
}

#[derive(Clone, Copy, ValueEnum, PartialEq)]
enum EngineArg {
    Float,
    Packed,
}

fn parse_precision(s: &str) -> Result<Precision, String> {
    Precision::parse(s).ok_or_else(|| {
        format!("unknown precision '{s}': use float, w1a1, w1a2, w2a2, w4a4 or w8a8")
    })
}

#[derive(Clone, Copy, ValueEnum)]
enum KernelArg {
    Linear,
    Rbf,
}

#[derive(Clone, Copy, ValueEnum)]
enum EstimatorArg {
    Biased,
    Debiased,
}

/// The command line as typed, for manifests.
fn command_line() -> String {
    std::env::args().collect::<Vec<_>>().join(" ")
}

/// Where the first panic happened, for the one-line internal-error report.
static PANIC_AT: std::sync::Mutex<Option<String>> = std::sync::Mutex::new(None);

#[global_allocator]
static ALLOC: strata_cli::oom::OneLineOom = strata_cli::oom::OneLineOom;

fn main() -> ExitCode {
    let cli = Cli::parse();
    // Every failure a user can cause is an error value. Should a bug panic anyway (in strata or
    // a dependency reading a malformed file), report it in one line like any other error, with
    // where it happened (the hook records it; the line is printed below).
    std::panic::set_hook(Box::new(|info| {
        if let Some(l) = info.location() {
            if let Ok(mut at) = PANIC_AT.lock() {
                at.get_or_insert_with(|| format!("{}:{}", l.file(), l.line()));
            }
        }
    }));
    let result = std::panic::catch_unwind(|| run(cli));
    match result {
        Ok(Ok(())) => ExitCode::SUCCESS,
        Ok(Err(e)) => {
            // One line: each cause's first line (some libraries append a backtrace to their
            // message when RUST_BACKTRACE is set).
            let causes: Vec<String> = e
                .chain()
                .map(|c| {
                    c.to_string()
                        .lines()
                        .next()
                        .unwrap_or("")
                        .trim()
                        .to_string()
                })
                .filter(|c| !c.is_empty())
                .collect();
            eprintln!("error: {}", causes.join(": "));
            ExitCode::FAILURE
        }
        Err(panic) => {
            let msg = panic
                .downcast_ref::<String>()
                .map(String::as_str)
                .or_else(|| panic.downcast_ref::<&str>().copied())
                .unwrap_or("unknown cause");
            let at = PANIC_AT
                .lock()
                .ok()
                .and_then(|a| a.clone())
                .unwrap_or_else(|| "an unknown place".into());
            eprintln!("error: internal error at {at} (a bug in strata; please report it): {msg}");
            ExitCode::FAILURE
        }
    }
}

/// A benchmark's results: `NAME.json` and `NAME.md` into `out` if given, then JSON or
/// Markdown on stdout.
fn emit_bench(
    name: &str,
    out: Option<&std::path::Path>,
    json: bool,
    value: &impl serde::Serialize,
    md: &str,
) -> Result<()> {
    if let Some(dir) = out {
        std::fs::create_dir_all(dir)?;
        strata_report::write_atomic(
            &dir.join(format!("{name}.json")),
            serde_json::to_string_pretty(value)?.as_bytes(),
        )?;
        strata_report::write_atomic(&dir.join(format!("{name}.md")), md.as_bytes())?;
    }
    if json {
        println!("{}", serde_json::to_string(value)?);
    } else {
        print!("{md}");
    }
    Ok(())
}

fn run(cli: Cli) -> Result<()> {
    match cli.command {
        Cmd::Quickstart { opts } => {
            let args = opts.args(false);
            let (o, dir) = analysis::run_text(
                analysis::QUICKSTART_SPEC,
                std::path::Path::new("analyses/quickstart.toml"),
                "quickstart",
                args,
            )?;
            print!("{}", analysis::summary::text(&o, &dir));
            Ok(())
        }
        Cmd::Run { spec, opts, json } => {
            let args = opts.args(json);
            let (o, dir) = analysis::run_file(&spec, args)?;
            if json {
                println!("{}", analysis::summary::json(&o, &dir));
            } else {
                print!("{}", analysis::summary::text(&o, &dir));
            }
            Ok(())
        }
        Cmd::Cka {
            a,
            b,
            measure,
            layers_a,
            layers_b,
            json,
            out,
            quiet,
            batch_size,
            ..
        } if measure != "cka" => {
            if batch_size.is_some() {
                bail!("--batch-size (minibatch CKA) applies to --measure cka only");
            }
            if let Some(dir) = &out {
                let names =
                    [".csv", ".parquet", ".json"].map(|e| dir.join(format!("{measure}{e}")));
                let heat = ["heatmap.png", "heatmap.svg"].map(|f| dir.join(f));
                let all: Vec<_> = names.into_iter().chain(heat).collect();
                strata_lab::outset::refuse_inputs_as_outputs(&all, &[&a, &b])?;
            }
            let r = measure::run(&a, &b, &measure, &layers_a, &layers_b, quiet || json)?;
            if r.is_single() && r.values[0][0].is_none() {
                bail!("{} is undefined: {}", r.measure, r.notes.join("; "));
            }
            for n in &r.notes {
                eprintln!("warning: {n}");
            }
            let written = match &out {
                Some(dir) => r.write_out(dir)?,
                None => Vec::new(),
            };
            let what = if r.higher_is_similar {
                "similarity"
            } else {
                "distance"
            };
            if json {
                println!("{}", serde_json::to_string(&r.json())?);
            } else if r.is_single() {
                println!("{:.6}", r.values[0][0].unwrap_or(f64::NAN));
                eprintln!(
                    "{} ({what}) between '{}' and '{}' over n = {} examples",
                    r.measure, r.layers_a[0], r.layers_b[0], r.n
                );
            } else {
                println!(
                    "{} ({what}) over n = {} examples (rows: {}, columns: {})\n",
                    r.measure,
                    r.n,
                    r.a.display(),
                    r.b.display()
                );
                print!(
                    "{}",
                    compare::matrix_table(&r.layers_a, &r.layers_b, &r.values)
                );
            }
            if !json && !written.is_empty() {
                let w: Vec<String> = written.iter().map(|p| p.display().to_string()).collect();
                eprintln!("wrote {}", w.join(", "));
            }
            Ok(())
        }
        Cmd::Cka {
            a,
            b,
            kernel,
            rbf_threshold,
            estimator,
            batch_size,
            layers_a,
            layers_b,
            json,
            out,
            device,
            quiet,
            ..
        } => {
            if let Some(dir) = &out {
                let all: Vec<_> = compare::CkaResult::OUT_FILES
                    .iter()
                    .map(|f| dir.join(f))
                    .collect();
                strata_lab::outset::refuse_inputs_as_outputs(&all, &[&a, &b])?;
            }
            let kernel = match kernel {
                KernelArg::Linear => Kernel::Linear,
                KernelArg::Rbf => {
                    if !(rbf_threshold.is_finite() && rbf_threshold > 0.0) {
                        bail!("--rbf-threshold must be a positive number, got {rbf_threshold}");
                    }
                    Kernel::Rbf {
                        threshold: rbf_threshold,
                    }
                }
            };
            let estimator = estimator.map(|e| match e {
                EstimatorArg::Biased => Estimator::Biased,
                EstimatorArg::Debiased => Estimator::Debiased,
            });
            let res = compare::run(&compare::CkaArgs {
                a,
                b,
                kernel,
                estimator,
                batch_size,
                layers_a,
                layers_b,
                quiet: quiet || json,
                device: device.choice(),
            })?;
            if res.is_single() && res.matrix.values[0][0].is_none() {
                bail!("CKA is undefined: {}", res.warnings().join("; "));
            }
            for w in res.warnings() {
                eprintln!("warning: {w}");
            }
            let written = match &out {
                Some(dir) => res.write_out(dir)?,
                None => Vec::new(),
            };
            if json {
                println!("{}", serde_json::to_string(&res.json())?);
            } else if res.is_single() {
                let v = res.matrix.values[0][0].unwrap_or(f64::NAN);
                println!("{v:.6}");
                eprintln!(
                    "{} between '{}' and '{}' over n = {} examples",
                    res.measure_name(),
                    res.layers_a[0],
                    res.layers_b[0],
                    res.matrix.n
                );
            } else {
                println!(
                    "{} over n = {} examples (rows: {}, columns: {})\n",
                    res.measure_name(),
                    res.matrix.n,
                    res.a.display(),
                    res.b.display()
                );
                print!("{}", res.table());
            }
            if !json && !written.is_empty() {
                eprintln!(
                    "wrote {}",
                    written
                        .iter()
                        .map(|p| p.display().to_string())
                        .collect::<Vec<_>>()
                        .join(", ")
                );
            }
            Ok(())
        }
        Cmd::Train {
            data,
            label,
            model,
            widths,
            precision,
            epochs,
            batch_size,
            lr,
            optimizer,
            momentum,
            weight_decay,
            schedule,
            seed,
            limit,
            out,
            json,
            quiet,
        } => {
            use strata_lab::analysis::spec::{MAX_BATCH, MAX_EPOCHS, MAX_LAYERS, MAX_WIDTH};
            if widths.is_empty() || widths.contains(&0) {
                bail!("--widths needs positive layer widths, e.g. 1024,1024");
            }
            if widths.len() > MAX_LAYERS || widths.iter().any(|&w| w > MAX_WIDTH) {
                bail!("--widths: at most {MAX_LAYERS} hidden layers of at most {MAX_WIDTH} units");
            }
            if epochs == 0 || epochs > MAX_EPOCHS {
                bail!("--epochs must be between 1 and {MAX_EPOCHS}");
            }
            if !(2..=MAX_BATCH).contains(&batch_size) {
                bail!("--batch-size must be between 2 and {MAX_BATCH}");
            }
            if !(lr > 0.0 && lr.is_finite()) {
                bail!("--lr must be a positive number");
            }
            if !(weight_decay.is_finite() && weight_decay >= 0.0) {
                bail!("--weight-decay must be >= 0");
            }
            if !(momentum.is_finite() && (0.0..1.0).contains(&momentum)) {
                bail!("--momentum must be in [0, 1)");
            }
            if limit.is_some_and(|n| n < 2) {
                bail!("--limit must be at least 2 (training needs examples)");
            }
            let cfg = TrainConfig {
                epochs,
                batch_size,
                lr,
                weight_decay,
                optimizer: optimizer.kind(momentum),
                schedule: schedule.schedule(epochs),
                seed,
                l2: 0.0,
            };
            let architecture = model.architecture();
            let t = train::train(&train::TrainArgs {
                architecture,
                data,
                label,
                widths,
                precision,
                train: cfg,
                limit,
                out,
                quiet,
            })?;
            let c = &t.card;
            if !json {
                println!(
                    "{} {} {:?} on {}: train accuracy {:.2}%, test accuracy {:.2}% ({:.1} s, {} threads)",
                    c.config.precision, c.config.architecture.name(), c.config.widths, c.data, 100.0 * c.train_accuracy, 100.0 * c.test_accuracy, c.seconds, c.threads
                );
                println!("saved {} and {}", t.files.0.display(), t.files.1.display());
            } else {
                println!(
                    "{}",
                    serde_json::json!({
                        "train_accuracy": c.train_accuracy, "test_accuracy": c.test_accuracy,
                        "architecture": c.config.architecture.name(),
                    "precision": c.config.precision.name(), "widths": c.config.widths, "data": c.data,
                        "epochs": c.train.epochs, "seed": c.train.seed, "seconds": c.seconds,
                        "model": t.files.0.display().to_string(), "config": t.files.1.display().to_string(),
                    })
                );
            }
            Ok(())
        }
        Cmd::Eval {
            model,
            data,
            label,
            split,
            limit,
            engine,
            device,
            repeat,
            json,
        } => {
            let ex = train::Examples {
                data: &data,
                label: label.as_deref(),
                split: &split,
                limit,
            };
            let v = train::eval(
                &model,
                ex,
                engine == EngineArg::Packed,
                device.choice(),
                repeat,
                json,
            )?;
            if json {
                println!("{v}");
            } else {
                println!(
                    "{} ({}) on {} {}: accuracy {:.2}% over {} examples, {:.0} images/s ({} engine)",
                    model.display(), v["precision"].as_str().unwrap_or("?"), data, split,
                    100.0 * v["accuracy"].as_f64().unwrap_or(f64::NAN), v["n"], v["images_per_second"].as_f64().unwrap_or(0.0),
                    v["engine"].as_str().unwrap_or("?")
                );
            }
            Ok(())
        }
        Cmd::Gpu { which } => match which {
            GpuCmd::Info { json } => gpu::info(json),
            GpuCmd::Check { seed, json } => {
                let seed = seed.unwrap_or_else(|| {
                    std::time::SystemTime::now()
                        .duration_since(std::time::UNIX_EPOCH)
                        .map(|d| d.as_nanos() as u64)
                        .unwrap_or(1)
                });
                gpu::check(seed, json)
            }
        },
        Cmd::Collect {
            model,
            data,
            label,
            split,
            limit,
            pre,
            out,
            device,
            quiet,
        } => {
            let ex = train::Examples {
                data: &data,
                label: label.as_deref(),
                split: &split,
                limit,
            };
            let rows = train::collect(&model, ex, pre, &out, device.choice(), quiet)?;
            println!(
                "wrote {} examples of every layer to {}",
                rows,
                out.display()
            );
            Ok(())
        }
        Cmd::Layers { file, json } => {
            let acts = strata_data::open(&file)?;
            if json {
                let layers: Vec<_> = acts
                    .layers()
                    .iter()
                    .map(|l| serde_json::json!({"name": l.name, "shape": l.shape, "features": l.features}))
                    .collect();
                println!(
                    "{}",
                    serde_json::json!({"file": file.display().to_string(), "format": acts.format().to_string(), "n": acts.n(), "layers": layers})
                );
            } else {
                println!(
                    "{} ({}, {} examples, {} layers)",
                    file.display(),
                    acts.format(),
                    acts.n(),
                    acts.layers().len()
                );
                let w = acts
                    .layers()
                    .iter()
                    .map(|l| l.name.chars().count())
                    .max()
                    .unwrap_or(4)
                    .max(5);
                println!("  {:<w$}  {:>14}  {:>9}", "layer", "shape", "features");
                for l in acts.layers() {
                    println!(
                        "  {:<w$}  {:>14}  {:>9}",
                        l.name,
                        format!("{:?}", l.shape),
                        l.features
                    );
                }
            }
            Ok(())
        }
        Cmd::Mia {
            which:
                MiaCmd::Audit {
                    data,
                    label,
                    pool,
                    model,
                    widths,
                    precision,
                    references,
                    shadows,
                    attacks,
                    defenses,
                    epochs,
                    batch_size,
                    lr,
                    lr_quantized,
                    optimizer,
                    schedule,
                    bootstrap,
                    seed,
                    cache,
                    out,
                    json,
                    quiet,
                },
        } => {
            let defenses = defenses
                .iter()
                .map(|d| strata_privacy::Defense::parse(d))
                .collect::<Result<Vec<_>, _>>()?;
            let args = mia::AuditArgs {
                data,
                label,
                pool,
                architecture: model.architecture(),
                widths,
                precisions: precision,
                references,
                shadows: shadows.unwrap_or(references.clamp(1, 4)),
                attacks: attacks.unwrap_or_else(|| {
                    strata_privacy::ATTACK_NAMES
                        .iter()
                        .map(|s| s.to_string())
                        .collect()
                }),
                defenses,
                train: TrainConfig {
                    epochs,
                    batch_size,
                    lr,
                    weight_decay: 0.0,
                    optimizer: optimizer.kind(0.9),
                    schedule: schedule.schedule(epochs),
                    seed,
                    l2: 0.0,
                },
                lr_quantized: Some(lr_quantized),
                bootstrap,
                seed,
                cache,
                quiet: quiet || json,
                origin: mia::Origin::Cli,
            };
            let r = mia::run(&args)?;
            if let Some(dir) = &out {
                mia::report::write(&r, dir, &command_line())?;
            }
            if json {
                println!("{}", mia::report::json_line(&r, out.as_deref()));
            } else {
                print!("{}", mia::report::text(&r, out.as_deref()));
            }
            Ok(())
        }
        Cmd::Zip { which } => run_zip(which),
        Cmd::Bench {
            which:
                BenchCmd::BinaryGemm {
                    repeat,
                    square,
                    device,
                    out,
                    json,
                },
        } if device != DeviceArg::Cpu => {
            let Some(gpu) = gpu::resolve(device.choice(), json)? else {
                bail!("no GPU found: use --device cpu for the CPU benchmark");
            };
            let square = at_least_one(square.unwrap_or(8192), "--square")?;
            square_fits(square)?;
            let shapes = bench::binary_gemm_shapes(square);
            let rows = strata_gpu::bench::binary_gemm(gpu.clone(), &shapes, repeat)?;
            let rec = gpu::record(&gpu, rows);
            let md = gpu::binary_markdown(&rec);
            emit_bench("bench-binary-gemm-cuda", out.as_deref(), json, &rec, &md)
        }
        Cmd::Bench {
            which:
                BenchCmd::Gram {
                    n,
                    widths,
                    repeat,
                    no_cpu,
                    device,
                    out,
                    json,
                },
        } => {
            let Some(gpu) = gpu::resolve(device.choice(), json)? else {
                bail!("bench gram measures the GPU path and no GPU was found (strata gpu info)");
            };
            if n < 2 || widths.is_empty() || widths.contains(&0) || repeat == 0 {
                bail!("--n must be at least 2, --widths positive, --repeat at least 1");
            }
            layers_fit(n, &widths)?;
            let (a, b) = bench::synthetic_models(n, &widths, 11);
            let r = strata_gpu::bench::gram(gpu.clone(), a, b, repeat, !no_cpu)?;
            let rec = gpu::record(&gpu, r);
            let md = gpu::gram_markdown(&rec);
            emit_bench("bench-gram-cuda", out.as_deref(), json, &rec, &md)
        }
        Cmd::Bench {
            which:
                BenchCmd::Mlp {
                    rows,
                    widths,
                    batch,
                    repeat,
                    device,
                    no_cpu,
                    out,
                    json,
                    quiet,
                },
        } => {
            let widest = widths.iter().copied().max().unwrap_or(0).max(784) as u64;
            fits(
                (rows as u64).saturating_mul(widest).saturating_mul(4 * 3),
                format!("--rows {rows} with --widths {widths:?}"),
            )?;
            let r = strata_lab::bench_mlp::run(&strata_lab::bench_mlp::BenchMlpArgs {
                rows,
                widths,
                batch,
                repeat,
                device: device.choice(),
                no_cpu,
                quiet: quiet || json,
            })?;
            let md = strata_lab::bench_mlp::markdown(&r);
            emit_bench("bench-mlp", out.as_deref(), json, &r, &md)
        }
        Cmd::Bench {
            which:
                BenchCmd::BinaryGemm {
                    repeat,
                    square,
                    out,
                    json,
                    ..
                },
        } => {
            let square = at_least_one(square.unwrap_or(4096), "--square")?;
            square_fits(square)?;
            let shapes = bench::binary_gemm_shapes(square);
            let rows = bench::binary_gemm(&shapes, repeat, 7);
            let md = bench::binary_gemm_markdown(&rows);
            emit_bench("bench-binary-gemm", out.as_deref(), json, &rows, &md)
        }
        Cmd::Bench {
            which:
                BenchCmd::Cka {
                    n,
                    widths,
                    repeat,
                    python,
                    no_numpy,
                    stream_n,
                    stream_features,
                    stream_batch,
                    scratch,
                    out,
                    json,
                    quiet,
                },
        } => {
            if n < 2 || widths.is_empty() || widths.contains(&0) || repeat == 0 {
                bail!("--n must be at least 2, --widths positive, --repeat at least 1");
            }
            if stream_n > 0 && stream_batch < 4 {
                bail!("--stream-batch must be at least 4");
            }
            layers_fit(n, &widths)?;
            fits(
                (stream_batch as u64)
                    .saturating_mul(stream_features as u64)
                    .saturating_mul(4 * 4),
                format!("--stream-batch {stream_batch} of --stream-features {stream_features}"),
            )?;
            let report = bench::run(&bench::BenchCkaArgs {
                n,
                widths,
                repeat,
                seed: 2019,
                python: (!no_numpy).then_some(python),
                stream_n,
                stream_features,
                stream_batch,
                scratch,
                quiet: quiet || json,
            })?;
            let md = report.markdown();
            emit_bench("bench-cka", out.as_deref(), json, &report, &md)
        }
    }
}

/// Refuse a benchmark whose data would not fit in memory (`what` names its flags).
fn fits(bytes: u64, what: String) -> Result<()> {
    strata_data::memory::check_fits(bytes, what)?;
    Ok(())
}

/// Three f32 N x N matrices (the operands and the product) of `bench binary-gemm --square N`.
fn square_fits(square: usize) -> Result<()> {
    let n = square as u64;
    fits(
        n.saturating_mul(n).saturating_mul(4 * 3),
        format!("--square {square}"),
    )
}

/// Two synthetic models' layers (n x width f32 each) and one n x n Gram matrix per layer.
fn layers_fit(n: usize, widths: &[usize]) -> Result<()> {
    let n64 = n as u64;
    let features: u64 = widths.iter().fold(0u64, |a, &w| a.saturating_add(w as u64));
    let layers = n64.saturating_mul(features).saturating_mul(4 * 2);
    let grams = n64
        .saturating_mul(n64)
        .saturating_mul(4)
        .saturating_mul(2 * widths.len() as u64);
    fits(
        layers.saturating_add(grams),
        format!("--n {n} with --widths {widths:?}"),
    )
}

/// A `--repeat` count: 1 to 1000 (more only multiplies the run time of a fastest-of-N figure).
fn parse_repeat(s: &str) -> Result<usize, String> {
    match s.parse::<usize>() {
        Ok(n) if (1..=1000).contains(&n) => Ok(n),
        _ => Err(format!("must be a whole number from 1 to 1000, got '{s}'")),
    }
}

/// `v`, or a one-line error naming the flag when it is 0.
fn at_least_one(v: usize, flag: &str) -> anyhow::Result<usize> {
    if v == 0 {
        bail!("{flag} must be at least 1");
    }
    Ok(v)
}
