//! `strata bench ...`: benchmarks, each reported as ratios to a baseline measured in the same run.

use super::emit;
use crate::args::{at_least_one, fits, parse_repeat, DeviceArg, DeviceArgs, ModelArg, OutputArgs};
use crate::progress::Terminal;
use anyhow::{bail, Result};
use std::path::PathBuf;
use strata_lab::{bench, bench_mlp, bench_train, gpu};
use strata_nn::Precision;

/// Benchmarks, each reported as ratios to a baseline measured in the same run.
#[derive(clap::Args)]
pub struct BenchArgs {
    #[command(subcommand)]
    which: BenchCmd,
}

#[derive(clap::Subcommand)]
enum BenchCmd {
    BinaryGemm(BinaryGemmArgs),
    Gram(GramArgs),
    Mlp(MlpArgs),
    Cka(CkaArgs),
    Train(TrainBenchArgs),
}

/// Packed binary matrix product (XOR/popcount) vs faer's f32 GEMM on the same shapes:
/// 4096^3 and the w1a1 MLP's layers at batch 256.
#[derive(clap::Args)]
struct BinaryGemmArgs {
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
}

/// All-pairs linear CKA on the GPU: end to end vs the bare cuBLAS SGEMMs it needs, TF32
/// vs f32, and the CPU path on the same data (needs a GPU).
#[derive(clap::Args)]
struct GramArgs {
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
}

/// MLP inference throughput: a w1a1 MLP (float and bit-packed engines) against the float
/// MLP of the same shape, on the CPU and the GPU (when present) in one run. Networks are
/// freshly initialized (speed does not depend on the weights); images are the embedded
/// MNIST subset tiled to --rows.
#[derive(clap::Args)]
struct MlpArgs {
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
    #[command(flatten)]
    device: DeviceArgs,
    /// Skip the CPU engines.
    #[arg(long)]
    no_cpu: bool,
    /// Write bench-mlp.json and .md into DIR.
    #[arg(long, value_name = "DIR")]
    out: Option<PathBuf>,
    #[command(flatten)]
    output: OutputArgs,
}

/// All-pairs linear CKA vs the bare GEMMs it needs and vs Kornblith et al.'s NumPy
/// reference; minibatch CKA streamed from a large Arrow store, with its peak memory.
#[derive(clap::Args)]
struct CkaArgs {
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
    #[command(flatten)]
    output: OutputArgs,
}

/// Training and inference throughput of strata's networks beside PyTorch on the same
/// networks, in the same run.
///
/// Every --arch at every --precision is timed twice. train: --epochs epochs of strata's
/// training loop over the embedded MNIST subset's 6,000 training images (batch 100, Adam,
/// lr 1e-3, constant rate, seed 1; no test pass is timed). inference: strata's predict over
/// the same images (batches of 1,000). benches/train_torch.py builds the same networks in
/// PyTorch (conv/dense without bias, batch norm, ReLU or BinaryNet's sign with straight-through
/// gradients) and times them the same way on the same images, with as many threads as strata
/// uses; the ratio column is strata's images/s over PyTorch's (above 1: strata is faster).
/// Without a --python that imports torch, the PyTorch columns stay empty and the report says
/// why.
#[derive(clap::Args)]
#[command(after_help = "Examples:
      strata bench train --out benches/results
      strata bench train --arch mlp --precision w1a1 --epochs 3
      strata bench train --python ~/.venvs/torch/bin/python
      strata bench train --no-torch --arch cnn --images 1000

    PyTorch: pip install torch (the CPU is all it uses here).")]
struct TrainBenchArgs {
    /// Training epochs per timed run.
    #[arg(long, default_value_t = 1)]
    epochs: usize,
    /// Timed runs of every row, the fastest reported [default: 1 for train, 3 for inference].
    #[arg(long, value_parser = parse_repeat)]
    repeat: Option<usize>,
    /// Python interpreter with torch for the PyTorch side.
    #[arg(long, default_value = "python3")]
    python: String,
    /// Skip PyTorch: strata's figures only.
    #[arg(long)]
    no_torch: bool,
    /// Networks: mlp, cnn (LeNet-like), tiny10.
    #[arg(
        long,
        value_enum,
        value_delimiter = ',',
        default_value = "mlp,cnn,tiny10"
    )]
    arch: Vec<ModelArg>,
    /// Precisions: float, w1a1.
    #[arg(long, value_enum, value_delimiter = ',', default_value = "float,w1a1")]
    precision: Vec<BenchPrecision>,
    /// Hidden widths of the MLP.
    #[arg(long, value_delimiter = ',', default_value = "1024,1024")]
    widths: Vec<usize>,
    /// Only the first N training images of the subset (a quick run) [default: all 6,000].
    #[arg(long, value_name = "N")]
    images: Option<usize>,
    /// Write bench-train.json and bench-train.md into DIR.
    #[arg(long, value_name = "DIR")]
    out: Option<PathBuf>,
    #[command(flatten)]
    output: OutputArgs,
}

/// The precisions `bench train` compares (those the PyTorch script builds).
#[derive(Clone, Copy, clap::ValueEnum)]
enum BenchPrecision {
    Float,
    W1a1,
}

impl BenchArgs {
    pub fn exec(self) -> Result<()> {
        match self.which {
            BenchCmd::BinaryGemm(a) if a.device != DeviceArg::Cpu => a.exec_gpu(),
            BenchCmd::BinaryGemm(a) => a.exec_cpu(),
            BenchCmd::Gram(a) => a.exec(),
            BenchCmd::Mlp(a) => a.exec(),
            BenchCmd::Cka(a) => a.exec(),
            BenchCmd::Train(a) => a.exec(),
        }
    }
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

/// The GPU `--device` asks for (`None`: the CPU), named on stderr unless JSON owns the output.
fn gpu_for(device: DeviceArg, json: bool) -> Result<Option<std::sync::Arc<strata_gpu::Gpu>>> {
    let g = gpu::resolve(device.choice())?;
    if let (Some(g), false) = (&g, json) {
        eprintln!("{}", gpu::running_on(g));
    }
    Ok(g)
}

impl BinaryGemmArgs {
    fn exec_gpu(self) -> Result<()> {
        let Some(gpu) = gpu_for(self.device, self.json)? else {
            bail!("no GPU found: use --device cpu for the CPU benchmark");
        };
        let square = at_least_one(self.square.unwrap_or(8192), "--square")?;
        square_fits(square)?;
        let shapes = bench::binary_gemm_shapes(square);
        let rows = gpu::bench::binary_gemm(gpu.clone(), &shapes, self.repeat)?;
        let rec = gpu::record(&gpu, rows);
        let md = gpu::binary_markdown(&rec);
        emit(
            "bench-binary-gemm-cuda",
            self.out.as_deref(),
            self.json,
            &rec,
            &md,
        )
    }

    fn exec_cpu(self) -> Result<()> {
        let square = at_least_one(self.square.unwrap_or(4096), "--square")?;
        square_fits(square)?;
        let shapes = bench::binary_gemm_shapes(square);
        let rows = bench::binary_gemm(&shapes, self.repeat, 7);
        let md = bench::binary_gemm_markdown(&rows);
        emit(
            "bench-binary-gemm",
            self.out.as_deref(),
            self.json,
            &rows,
            &md,
        )
    }
}

impl GramArgs {
    fn exec(self) -> Result<()> {
        let Some(gpu) = gpu_for(self.device, self.json)? else {
            bail!("bench gram measures the GPU path and no GPU was found (strata gpu info)");
        };
        let (n, widths) = (self.n, &self.widths);
        if n < 2 || widths.is_empty() || widths.contains(&0) || self.repeat == 0 {
            bail!("--n must be at least 2, --widths positive, --repeat at least 1");
        }
        layers_fit(n, widths)?;
        let (a, b) = bench::synthetic_models(n, widths, 11);
        let r = gpu::bench::gram(gpu.clone(), a, b, self.repeat, !self.no_cpu)?;
        let rec = gpu::record(&gpu, r);
        let md = gpu::gram_markdown(&rec);
        emit("bench-gram-cuda", self.out.as_deref(), self.json, &rec, &md)
    }
}

impl MlpArgs {
    fn exec(self) -> Result<()> {
        let (rows, widths) = (self.rows, &self.widths);
        let widest = widths.iter().copied().max().unwrap_or(0).max(784) as u64;
        fits(
            (rows as u64).saturating_mul(widest).saturating_mul(4 * 3),
            format!("--rows {rows} with --widths {widths:?}"),
        )?;
        let args = bench_mlp::BenchMlpArgs {
            rows,
            widths: self.widths.clone(),
            batch: self.batch,
            repeat: self.repeat,
            device: self.device.choice(),
            no_cpu: self.no_cpu,
        };
        let r = bench_mlp::run(&args, &Terminal::new(self.output.silent()))?;
        let md = bench_mlp::markdown(&r);
        emit("bench-mlp", self.out.as_deref(), self.output.json, &r, &md)
    }
}

impl CkaArgs {
    fn exec(self) -> Result<()> {
        let (n, widths) = (self.n, &self.widths);
        if n < 2 || widths.is_empty() || widths.contains(&0) || self.repeat == 0 {
            bail!("--n must be at least 2, --widths positive, --repeat at least 1");
        }
        let (sn, sf, sb) = (self.stream_n, self.stream_features, self.stream_batch);
        if sn > 0 && sb < 4 {
            bail!("--stream-batch must be at least 4");
        }
        layers_fit(n, widths)?;
        fits(
            (sb as u64).saturating_mul(sf as u64).saturating_mul(4 * 4),
            format!("--stream-batch {sb} of --stream-features {sf}"),
        )?;
        let progress = Terminal::new(self.output.silent());
        let args = bench::BenchCkaArgs {
            n,
            widths: self.widths.clone(),
            repeat: self.repeat,
            seed: 2019,
            python: (!self.no_numpy).then_some(self.python),
            stream_n: sn,
            stream_features: sf,
            stream_batch: sb,
            scratch: self.scratch,
        };
        let report = bench::run(&args, &progress)?;
        let md = report.markdown();
        emit(
            "bench-cka",
            self.out.as_deref(),
            self.output.json,
            &report,
            &md,
        )
    }
}

impl TrainBenchArgs {
    fn exec(self) -> Result<()> {
        let mut arch = Vec::new();
        for a in self.arch.iter().map(|a| a.architecture()) {
            if !arch.contains(&a) {
                arch.push(a);
            }
        }
        let mut precisions = Vec::new();
        for p in &self.precision {
            let p = match p {
                BenchPrecision::Float => Precision::Float,
                BenchPrecision::W1a1 => Precision::W1A1,
            };
            if !precisions.contains(&p) {
                precisions.push(p);
            }
        }
        let args = bench_train::BenchTrainArgs {
            architectures: arch,
            precisions,
            widths: self.widths.clone(),
            epochs: at_least_one(self.epochs, "--epochs")?,
            images: self.images,
            train_repeat: self.repeat.unwrap_or(1),
            infer_repeat: self.repeat.unwrap_or(3),
            python: (!self.no_torch).then_some(self.python),
        };
        if matches!(self.images, Some(n) if n < 2) {
            bail!("--images must be at least 2 (batch norm needs two examples)");
        }
        if args.widths.is_empty() || args.widths.contains(&0) {
            bail!("--widths must be positive");
        }
        let r = bench_train::run(&args, &Terminal::new(self.output.silent()))?;
        let md = r.to_markdown();
        emit(
            "bench-train",
            self.out.as_deref(),
            self.output.json,
            &r,
            &md,
        )
    }
}
