//! `strata bench train`: training and inference throughput of strata's networks beside PyTorch
//! on the same networks, measured in the same run.
//!
//! Every architecture (the MLP, the LeNet-like CNN, Tiny-10) at every precision asked for
//! (float, w1a1) is timed twice: training (`train::train` for `epochs` epochs over the embedded
//! MNIST subset's training images, batch 100, Adam, lr 1e-3, constant schedule, a fixed seed
//! and an empty test set so that no accuracy pass is timed) and inference (`train::predict`
//! over the same images). `benches/train_torch.py` builds the same networks in PyTorch and
//! times them the same way on the same images, with as many threads as strata's rayon pool;
//! each row carries both figures and their ratio. Without a Python that imports torch the
//! PyTorch columns are empty and the report says why.

use crate::progress::Progress;
use anyhow::{bail, Context, Result};
use serde::Serialize;
use std::path::Path;
use std::process::Command;
use std::time::Instant;
use strata_data::dataset::{self, Dataset};
use strata_nn::net::{Architecture, Net, NetConfig};
use strata_nn::train::{self, OptimizerKind, Schedule, TrainConfig};
use strata_nn::Precision;

/// The PyTorch script, written to a temporary folder and run with the chosen interpreter.
const TORCH_SCRIPT: &str = include_str!("../../../benches/train_torch.py");

/// Images per training batch (strata and PyTorch alike).
pub const BATCH: usize = 100;
/// Adam's learning rate.
pub const LR: f64 = 1e-3;
/// Seed of the initial weights and of the order of examples.
pub const SEED: u64 = 1;

/// Settings of `strata bench train`.
#[derive(Clone, Debug)]
pub struct BenchTrainArgs {
    /// Networks to time, in this order.
    pub architectures: Vec<Architecture>,
    /// Precisions to time (`float`, `w1a1`: the two the PyTorch script builds).
    pub precisions: Vec<Precision>,
    /// Hidden widths of the MLP.
    pub widths: Vec<usize>,
    /// Training epochs per timed run.
    pub epochs: usize,
    /// Images: the first this many of the embedded MNIST subset's training images (`None`:
    /// all 6,000).
    pub images: Option<usize>,
    /// Timed training runs per row; the fastest counts.
    pub train_repeat: usize,
    /// Timed inference passes per row; the fastest counts.
    pub infer_repeat: usize,
    /// Python interpreter for the PyTorch side; `None` skips it.
    pub python: Option<String>,
}

impl Default for BenchTrainArgs {
    /// Every network, both precisions, one epoch over 6,000 images, best of 1 training run
    /// and 3 inference passes, PyTorch through `python3`.
    fn default() -> Self {
        Self {
            architectures: vec![Architecture::Mlp, Architecture::Cnn, Architecture::Tiny10],
            precisions: vec![Precision::Float, Precision::W1A1],
            widths: vec![1024, 1024],
            epochs: 1,
            images: None,
            train_repeat: 1,
            infer_repeat: 3,
            python: Some("python3".into()),
        }
    }
}

impl BenchTrainArgs {
    /// Refuse settings the benchmark cannot run, with a message naming the setting.
    pub fn validate(&self) -> Result<()> {
        if self.architectures.is_empty() || self.precisions.is_empty() {
            bail!("at least one architecture and one precision are needed");
        }
        if let Some(p) = self
            .precisions
            .iter()
            .find(|p| !matches!(p, Precision::Float | Precision::W1A1))
        {
            bail!("precision {p}: bench train compares float and w1a1 (the precisions the PyTorch script builds)");
        }
        if self.widths.is_empty() || self.widths.contains(&0) {
            bail!("the MLP widths must be positive");
        }
        if self.epochs == 0 || self.train_repeat == 0 || self.infer_repeat == 0 {
            bail!("epochs and repeats must be at least 1");
        }
        if self.epochs > strata_nn::limits::MAX_EPOCHS {
            bail!("epochs must be at most {}", strata_nn::limits::MAX_EPOCHS);
        }
        if matches!(self.images, Some(n) if n < 2) {
            bail!("images must be at least 2 (batch norm needs two examples)");
        }
        Ok(())
    }
}

/// One network, precision and mode.
#[derive(Clone, Debug, Serialize)]
pub struct TrainRow {
    /// `mlp`, `cnn` or `tiny10`.
    pub architecture: String,
    /// `float` or `w1a1`.
    pub precision: String,
    /// `train` or `inference`.
    pub mode: String,
    /// Images processed in one timed run (every epoch's for training).
    pub images: usize,
    /// strata's best seconds of one run.
    pub seconds: f64,
    /// strata's images per second in that run.
    pub images_per_second: f64,
    /// PyTorch's images per second on the same network (`None` without PyTorch).
    pub torch_images_per_second: Option<f64>,
    /// strata over PyTorch images/s: above 1, strata is faster (`None` without PyTorch).
    pub ratio: Option<f64>,
    /// Training rows: mean cross-entropy of the last epoch in strata (a check that it trained).
    pub loss: Option<f64>,
    /// Training rows: the same in PyTorch.
    pub torch_loss: Option<f64>,
}

/// Everything `strata bench train` measured.
#[derive(Clone, Debug, Serialize)]
pub struct BenchTrainReport {
    /// Images per epoch and per inference pass.
    pub images: usize,
    /// Training epochs per timed run.
    pub epochs: usize,
    /// Images per training batch.
    pub batch: usize,
    /// Images per inference batch (`strata_nn::limits::EVAL_BATCH`).
    pub eval_batch: usize,
    /// Adam's learning rate.
    pub lr: f64,
    /// Seed of weights and example order.
    pub seed: u64,
    /// MLP hidden widths.
    pub widths: Vec<usize>,
    /// Timed training runs per row (the fastest counts).
    pub train_repeat: usize,
    /// Timed inference passes per row (the fastest counts).
    pub infer_repeat: usize,
    /// CPU model name.
    pub cpu: String,
    /// Threads of strata's rayon pool, also given to PyTorch.
    pub threads: usize,
    /// The machine's 1-minute load average when the run started and when it ended (Linux;
    /// `None` elsewhere; the second counts this run's own threads, so about `threads` when
    /// nothing else ran): other work on the cores skews both sides, PyTorch's OpenMP threads
    /// most.
    pub load_average: Option<[f64; 2]>,
    /// PyTorch version (`None` when it did not run).
    pub torch: Option<String>,
    /// Threads PyTorch ran with (`None` when it did not run).
    pub torch_threads: Option<usize>,
    /// Why the PyTorch columns are empty (`None` when it ran).
    pub torch_note: Option<String>,
    /// One row per network, precision and mode.
    pub rows: Vec<TrainRow>,
}

impl BenchTrainReport {
    /// The report as Markdown: a line on the settings and machine, then one table row per
    /// network, precision and mode.
    pub fn to_markdown(&self) -> String {
        let widths: Vec<String> = self.widths.iter().map(|w| w.to_string()).collect();
        let mut s = format!(
            "### training and inference throughput, strata vs PyTorch\n\n\
             {} MNIST images (the embedded subset); training: {} epoch(s), batch {}, Adam lr {}, \
             best of {}; inference: batches of {}, best of {}; MLP widths {}\n\n\
             CPU: {} ({} threads)",
            self.images,
            self.epochs,
            self.batch,
            self.lr,
            self.train_repeat,
            self.eval_batch,
            self.infer_repeat,
            widths.join(","),
            self.cpu,
            self.threads
        );
        if let Some([a, b]) = self.load_average {
            s += &format!(
                "; load average {a:.2} before the run, {b:.2} after (its own threads included)"
            );
        }
        match (&self.torch, &self.torch_note) {
            (Some(v), _) => {
                s += &format!(
                    "; PyTorch {v} ({} threads)",
                    self.torch_threads.unwrap_or(0)
                )
            }
            (None, Some(n)) => s += &format!("; PyTorch not run: {n}"),
            (None, None) => s += "; PyTorch not run",
        }
        s += "\n\n| network | precision | mode | strata images/s | PyTorch images/s | strata / PyTorch |\n\
              |---|---|---|---:|---:|---:|\n";
        for r in &self.rows {
            s += &format!(
                "| {} | {} | {} | {:.0} | {} | {} |\n",
                r.architecture,
                r.precision,
                r.mode,
                r.images_per_second,
                r.torch_images_per_second
                    .map_or("-".to_string(), |v| format!("{v:.0}")),
                r.ratio.map_or("-".to_string(), |v| format!("{v:.2}x")),
            );
        }
        s += "\nstrata / PyTorch above 1: strata is faster.\n";
        s
    }

    /// The report as pretty-printed JSON.
    pub fn to_json(&self) -> Result<String> {
        Ok(serde_json::to_string_pretty(self)?)
    }
}

/// The embedded MNIST subset's training images, the first `images` of them.
fn images(n: Option<usize>) -> Result<Dataset> {
    let d = dataset::load("mnist-small")?.train;
    if d.len() < 2 {
        bail!("the embedded MNIST subset has fewer than two training images");
    }
    Ok(match n {
        Some(n) => d.head(n),
        None => d,
    })
}

fn config(args: &BenchTrainArgs, d: &Dataset, a: Architecture, p: Precision) -> NetConfig {
    NetConfig {
        architecture: a,
        input_shape: d.shape.clone(),
        widths: args.widths.clone(),
        classes: d.classes,
        precision: p,
        logits: Default::default(),
    }
}

fn train_config(epochs: usize) -> TrainConfig {
    TrainConfig {
        epochs,
        batch_size: BATCH,
        lr: LR,
        weight_decay: 0.0,
        optimizer: OptimizerKind::Adam,
        schedule: Schedule::Constant,
        seed: SEED,
        l2: 0.0,
    }
}

/// The 1-minute load average (`/proc/loadavg`; `None` off Linux).
fn load_average() -> Option<f64> {
    std::fs::read_to_string("/proc/loadavg")
        .ok()?
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

/// Images one epoch trains on: a last batch of one is dropped (batch norm needs two).
fn trained_per_epoch(n: usize) -> usize {
    if n % BATCH == 1 {
        n - 1
    } else {
        n
    }
}

/// PyTorch's figures, keyed by architecture, precision and mode.
struct Torch {
    version: String,
    threads: usize,
    rows: Vec<serde_json::Value>,
}

impl Torch {
    fn find(&self, arch: &str, prec: &str, mode: &str) -> Option<&serde_json::Value> {
        self.rows
            .iter()
            .find(|r| r["architecture"] == arch && r["precision"] == prec && r["mode"] == mode)
    }
}

/// Run the benchmark: PyTorch first (when asked for and present), then strata, logging each
/// figure as it comes.
pub fn run(args: &BenchTrainArgs, progress: &dyn Progress) -> Result<BenchTrainReport> {
    args.validate()?;
    let d = images(args.images)?;
    for &a in &args.architectures {
        for &p in &args.precisions {
            strata_nn::limits::check_training(&config(args, &d, a, p), &train_config(args.epochs))?;
        }
    }
    let threads = rayon::current_num_threads();
    let load_start = load_average();
    if let Some(l) = load_start.filter(|&l| l > (threads as f64 / 4.0).max(0.5)) {
        progress.warn(&format!(
            "note: the machine is busy (load average {l:.2} over {threads} threads): other work \
             slows both sides, PyTorch's OpenMP threads most; run on an idle machine"
        ));
    }
    let (torch, torch_note) = match &args.python {
        None => (None, Some("skipped (not asked for)".to_string())),
        Some(py) => match torch_side(py, args, &d, threads, progress)? {
            Ok(t) => (Some(t), None),
            Err(why) => {
                progress.warn(&format!("note: {why}; the PyTorch columns stay empty"));
                (None, Some(why))
            }
        },
    };
    let empty = d.head(0);
    let per_epoch = trained_per_epoch(d.len());
    let mut rows = Vec::new();
    for &a in &args.architectures {
        for &p in &args.precisions {
            let cfg = config(args, &d, a, p);
            // Untimed warm-up: one training step of a throwaway network.
            let mut warm = Net::new(cfg.clone(), SEED)?;
            train::train(
                &mut warm,
                &d.head(BATCH),
                &empty,
                &train_config(1),
                &mut |_, _, _, _| {},
                &mut |_| {},
            )?;
            drop(warm);

            let tc = train_config(args.epochs);
            let (mut best, mut net, mut loss) = (f64::INFINITY, None, f64::NAN);
            for run in 0..args.train_repeat {
                let pb = progress.task(
                    &format!(
                        "strata {} {} train ({}/{})",
                        a.name(),
                        p,
                        run + 1,
                        args.train_repeat
                    ),
                    "steps",
                    (per_epoch.div_ceil(BATCH) * args.epochs) as u64,
                );
                let mut n = Net::new(cfg.clone(), SEED)?;
                let t = Instant::now();
                let history = train::train(
                    &mut n,
                    &d,
                    &empty,
                    &tc,
                    &mut |_, _, _, _| pb.inc(1),
                    &mut |_| {},
                )?;
                best = best.min(t.elapsed().as_secs_f64());
                pb.finish();
                loss = history.last().map_or(f64::NAN, |e| e.loss);
                net = Some(n);
            }
            let mut net = net.context("the training repeat must be at least 1")?;
            let trained = per_epoch * args.epochs;
            rows.push(row(
                a,
                p,
                "train",
                trained,
                best,
                Some(loss),
                torch.as_ref(),
            ));
            progress.log(&line(rows.last()));

            let mut best = f64::INFINITY;
            for _ in 0..args.infer_repeat {
                let t = Instant::now();
                let pred = train::predict(&mut net, &d)?;
                best = best.min(t.elapsed().as_secs_f64());
                std::hint::black_box(pred);
            }
            rows.push(row(a, p, "inference", d.len(), best, None, torch.as_ref()));
            progress.log(&line(rows.last()));
        }
    }
    Ok(BenchTrainReport {
        images: d.len(),
        epochs: args.epochs,
        batch: BATCH,
        eval_batch: strata_nn::limits::EVAL_BATCH,
        lr: LR,
        seed: SEED,
        widths: args.widths.clone(),
        train_repeat: args.train_repeat,
        infer_repeat: args.infer_repeat,
        cpu: crate::bench::cpu_name(),
        threads,
        load_average: load_start.zip(load_average()).map(|(a, b)| [a, b]),
        torch: torch.as_ref().map(|t| t.version.clone()),
        torch_threads: torch.as_ref().map(|t| t.threads),
        torch_note,
        rows,
    })
}

fn row(
    a: Architecture,
    p: Precision,
    mode: &str,
    images: usize,
    seconds: f64,
    loss: Option<f64>,
    torch: Option<&Torch>,
) -> TrainRow {
    let ips = images as f64 / seconds;
    let theirs = torch.and_then(|t| t.find(a.name(), p.name(), mode));
    let tips = theirs.and_then(|r| r["images_per_second"].as_f64());
    TrainRow {
        architecture: a.name().into(),
        precision: p.name().into(),
        mode: mode.into(),
        images,
        seconds,
        images_per_second: ips,
        torch_images_per_second: tips,
        ratio: tips.map(|t| ips / t),
        loss,
        torch_loss: theirs.and_then(|r| r["loss"].as_f64()),
    }
}

fn line(r: Option<&TrainRow>) -> String {
    let Some(r) = r else {
        return String::new();
    };
    let mut s = format!(
        "strata {:<7} {:<6} {:<9} {:>10.0} images/s",
        r.architecture, r.precision, r.mode, r.images_per_second
    );
    if let (Some(t), Some(q)) = (r.torch_images_per_second, r.ratio) {
        s += &format!("  (PyTorch {t:.0}: {q:.2}x)");
    }
    s
}

/// PyTorch's run on the same images: `Ok(Err(why))` when the interpreter or torch is absent
/// (the comparison is skipped, with the reason), an error when torch is present but its run
/// fails.
fn torch_side(
    python: &str,
    args: &BenchTrainArgs,
    d: &Dataset,
    threads: usize,
    progress: &dyn Progress,
) -> Result<std::result::Result<Torch, String>> {
    let dir = std::env::temp_dir().join(format!("strata-bench-train-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let result = torch_in(python, args, d, threads, &dir, progress);
    let _ = std::fs::remove_dir_all(&dir);
    result
}

fn torch_in(
    python: &str,
    args: &BenchTrainArgs,
    d: &Dataset,
    threads: usize,
    dir: &Path,
    progress: &dyn Progress,
) -> Result<std::result::Result<Torch, String>> {
    let script = dir.join("train_torch.py");
    std::fs::write(&script, TORCH_SCRIPT)?;
    let check = match Command::new(python).arg(&script).arg("--check").output() {
        Ok(o) => o,
        Err(e) => return Ok(Err(format!("{python} could not be run ({e})"))),
    };
    if !check.status.success() {
        let why = String::from_utf8_lossy(&check.stderr);
        let why = why
            .trim()
            .lines()
            .last()
            .unwrap_or("no message")
            .to_string();
        return Ok(Err(format!("{python} cannot import torch ({why})")));
    }
    let x = d.x.as_standard_layout();
    let x = x.as_slice().context("image layout")?;
    strata_data::npy::write_f32(
        std::io::BufWriter::new(std::fs::File::create(dir.join("x.npy"))?),
        &[d.len(), d.x.ncols()],
        x,
    )?;
    let y: Vec<i64> = d.y.iter().map(|&v| i64::from(v)).collect();
    strata_data::npy::write_i64(
        std::io::BufWriter::new(std::fs::File::create(dir.join("y.npy"))?),
        &[d.len()],
        &y,
    )?;
    let join = |v: Vec<String>| v.join(",");
    let shape = join(d.shape.iter().map(|v| v.to_string()).collect());
    let archs = join(
        args.architectures
            .iter()
            .map(|a| a.name().to_string())
            .collect(),
    );
    let precs = join(
        args.precisions
            .iter()
            .map(|p| p.name().to_string())
            .collect(),
    );
    let widths = join(args.widths.iter().map(|v| v.to_string()).collect());
    progress.log(&format!(
        "running the PyTorch side ({} networks x {} precisions, {threads} threads)...",
        args.architectures.len(),
        args.precisions.len()
    ));
    let out = Command::new(python)
        .arg(&script)
        .arg("--data")
        .arg(dir)
        .args(["--shape", &shape, "--classes", &d.classes.to_string()])
        .args(["--arch", &archs, "--precision", &precs, "--widths", &widths])
        .args(["--epochs", &args.epochs.to_string()])
        .args(["--batch", &BATCH.to_string()])
        .args(["--eval-batch", &strata_nn::limits::EVAL_BATCH.to_string()])
        .args(["--lr", &LR.to_string(), "--seed", &SEED.to_string()])
        .args(["--repeat-train", &args.train_repeat.to_string()])
        .args(["--repeat-infer", &args.infer_repeat.to_string()])
        .args(["--threads", &threads.to_string()])
        .output()?;
    let stderr = String::from_utf8_lossy(&out.stderr);
    for l in stderr.lines().filter(|l| l.starts_with("torch ")) {
        progress.log(l);
    }
    if !out.status.success() {
        bail!(
            "the PyTorch side failed: {}",
            stderr.trim().lines().last().unwrap_or("no message")
        );
    }
    let v: serde_json::Value =
        serde_json::from_slice(&out.stdout).context("the PyTorch side printed no JSON")?;
    let rows = v["results"]
        .as_array()
        .context("the PyTorch side's JSON has no results")?
        .clone();
    Ok(Ok(Torch {
        version: v["torch"].as_str().unwrap_or("?").to_string(),
        threads: v["threads"].as_u64().unwrap_or(0) as usize,
        rows,
    }))
}
