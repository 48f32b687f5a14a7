//! `strata train`: a float or quantized network, trained and saved.

use crate::args::{
    parse_precision, DataArgs, LogitsArg, ModelArg, OptArg, OutputArgs, ScheduleArg,
};
use crate::progress::Terminal;
use anyhow::{bail, Result};
use std::path::PathBuf;
use strata_lab::analysis::spec::{MAX_BATCH, MAX_EPOCHS, MAX_LAYERS, MAX_WIDTH};
use strata_lab::train;
use strata_nn::train::TrainConfig;
use strata_nn::Precision;

/// Train a float or quantized network (MLP, LeNet-like CNN, Tiny-10) and save it.
///
/// Quantized precisions train with straight-through estimators as in Hubara et al.:
/// w1a1 = binary weights and activations (BinaryNet), w1a2, w2a2, w4a4, w8a8.
#[derive(clap::Args)]
#[command(
    after_help = "Data sets:\n  mnist        full MNIST from $STRATA_MNIST, ../shared/datasets/mnist or data/mnist\n  \
    mnist:DIR    MNIST IDX files in DIR\n  mnist-small  embedded subset (6,000 train / 1,000 test)\n  \
    digits       embedded 8x8 digits (1,438 / 359)\n  adult        UCI Adult from $STRATA_ADULT or ../shared/datasets/adult (adult:DIR)\n  \
    csv:PATH     any CSV with a header; --label names the class column (80/20 split)\n\n\
    Example:\n  strata train --data mnist --precision w1a1 --epochs 10 --out models/mlp-w1a1"
)]
pub struct TrainArgs {
    #[command(flatten)]
    data: DataArgs,
    /// Architecture: mlp, cnn (LeNet-like) or tiny10 (Kornblith et al. 2019, App. E).
    #[arg(long, value_enum, default_value = "mlp")]
    model: ModelArg,
    /// Hidden layer widths (mlp).
    #[arg(long, value_delimiter = ',', default_value = "1024,1024")]
    widths: Vec<usize>,
    /// How the logits are computed: batchnorm (dense -> batch norm, as BinaryNet) or linear
    /// (dense + bias, as most float networks; their hidden layers are more alike across seeds).
    #[arg(long, value_enum, default_value = "batchnorm")]
    logits: LogitsArg,
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
    #[command(flatten)]
    output: OutputArgs,
}

impl TrainArgs {
    /// The training settings, each checked against strata's limits.
    fn config(&self) -> Result<TrainConfig> {
        let widths = &self.widths;
        if widths.is_empty() || widths.contains(&0) {
            bail!("--widths needs positive layer widths, e.g. 1024,1024");
        }
        if widths.len() > MAX_LAYERS || widths.iter().any(|&w| w > MAX_WIDTH) {
            bail!("--widths: at most {MAX_LAYERS} hidden layers of at most {MAX_WIDTH} units");
        }
        if self.epochs == 0 || self.epochs > MAX_EPOCHS {
            bail!("--epochs must be between 1 and {MAX_EPOCHS}");
        }
        if !(2..=MAX_BATCH).contains(&self.batch_size) {
            bail!("--batch-size must be between 2 and {MAX_BATCH}");
        }
        if !(self.lr > 0.0 && self.lr.is_finite()) {
            bail!("--lr must be a positive number");
        }
        if !(self.weight_decay.is_finite() && self.weight_decay >= 0.0) {
            bail!("--weight-decay must be >= 0");
        }
        if !(self.momentum.is_finite() && (0.0..1.0).contains(&self.momentum)) {
            bail!("--momentum must be in [0, 1)");
        }
        if self.limit.is_some_and(|n| n < 2) {
            bail!("--limit must be at least 2 (training needs examples)");
        }
        Ok(TrainConfig {
            epochs: self.epochs,
            batch_size: self.batch_size,
            lr: self.lr,
            weight_decay: self.weight_decay,
            optimizer: self.optimizer.kind(self.momentum),
            schedule: self.schedule.schedule(self.epochs),
            seed: self.seed,
            l2: 0.0,
        })
    }

    pub fn exec(self) -> Result<()> {
        let cfg = self.config()?;
        let json = self.output.json;
        // Epoch lines go to stderr even with --json (stdout holds the JSON).
        let progress = Terminal::new(self.output.quiet);
        let args = train::TrainArgs {
            architecture: self.model.architecture(),
            data: self.data.data,
            label: self.data.label,
            widths: self.widths,
            logits: self.logits.layer(),
            precision: self.precision,
            train: cfg,
            limit: self.limit,
            out: self.out,
        };
        let t = train::train(&args, &progress)?;
        let c = &t.card;
        if !json {
            println!(
                "{} {} {:?} on {}: train accuracy {:.2}%, test accuracy {:.2}% ({:.1} s, {} threads)",
                c.config.precision, c.config.architecture.name(), c.config.widths, c.data,
                100.0 * c.train_accuracy, 100.0 * c.test_accuracy, c.seconds, c.threads
            );
            println!("saved {} and {}", t.files.0.display(), t.files.1.display());
        } else {
            println!(
                "{}",
                serde_json::json!({
                    "train_accuracy": c.train_accuracy, "test_accuracy": c.test_accuracy,
                    "architecture": c.config.architecture.name(),
                    "precision": c.config.precision.name(), "widths": c.config.widths,
                    "data": c.data, "epochs": c.train.epochs, "seed": c.train.seed,
                    "seconds": c.seconds, "model": t.files.0.display().to_string(),
                    "config": t.files.1.display().to_string(),
                })
            );
        }
        Ok(())
    }
}
