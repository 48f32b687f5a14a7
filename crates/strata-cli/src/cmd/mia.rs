//! `strata mia audit`: membership inference against models strata trains.

use crate::args::{
    command_line, parse_precision, DataArgs, ModelArg, OptArg, OutputArgs, ScheduleArg,
};
use crate::progress::Terminal;
use anyhow::Result;
use std::path::PathBuf;
use strata_lab::mia;
use strata_nn::train::TrainConfig;
use strata_nn::Precision;

/// Membership inference: how much a trained model reveals about who was in its training data.
#[derive(clap::Args)]
pub struct MiaArgs {
    #[command(subcommand)]
    which: MiaCmd,
}

#[derive(clap::Subcommand)]
enum MiaCmd {
    Audit(AuditArgs),
}

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
#[derive(clap::Args)]
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
struct AuditArgs {
    #[command(flatten)]
    data: DataArgs,
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
    #[command(flatten)]
    output: OutputArgs,
}

impl MiaArgs {
    pub fn exec(self) -> Result<()> {
        match self.which {
            MiaCmd::Audit(a) => a.exec(),
        }
    }
}

impl AuditArgs {
    /// The library's audit settings.
    fn audit(self) -> Result<mia::AuditArgs> {
        let defenses = self
            .defenses
            .iter()
            .map(|d| strata_privacy::Defense::parse(d))
            .collect::<Result<Vec<_>, _>>()?;
        let attacks = self.attacks.unwrap_or_else(|| {
            strata_privacy::ATTACK_NAMES
                .iter()
                .map(|s| s.to_string())
                .collect()
        });
        Ok(mia::AuditArgs {
            data: self.data.data,
            label: self.data.label,
            pool: self.pool,
            architecture: self.model.architecture(),
            widths: self.widths,
            precisions: self.precision,
            references: self.references,
            shadows: self.shadows.unwrap_or(self.references.clamp(1, 4)),
            attacks,
            defenses,
            train: TrainConfig {
                epochs: self.epochs,
                batch_size: self.batch_size,
                lr: self.lr,
                weight_decay: 0.0,
                optimizer: self.optimizer.kind(0.9),
                schedule: self.schedule.schedule(self.epochs),
                seed: self.seed,
                l2: 0.0,
            },
            lr_quantized: Some(self.lr_quantized),
            bootstrap: self.bootstrap,
            seed: self.seed,
            cache: self.cache,
            origin: mia::Origin::Cli,
        })
    }

    fn exec(self) -> Result<()> {
        let (out, json) = (self.out.clone(), self.output.json);
        let progress = Terminal::new(self.output.silent());
        let r = mia::run(&self.audit()?, &progress)?;
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
}
