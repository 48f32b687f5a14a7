//! `strata mia design | audit | score`: membership inference against models strata trains, and
//! against outside models whose logits follow a design strata wrote.

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
    Design(DesignArgs),
    Audit(AuditArgs),
    Score(ScoreArgs),
}

/// Write a balanced design for K models over a pool: which examples each model trains on.
///
/// Carlini et al. 2022's design: every pool example is in the training set of exactly half of
/// the models (one more or one fewer by a fair coin when K is odd), so that whichever model is
/// the target, each example has models trained with it and without it among the others. Train
/// model m on its members (any framework), save its logits on the whole pool in pool order, and
/// score them with `strata mia score`.
#[derive(clap::Args)]
#[command(after_help = "Writes into --out:\n  \
    design.json           pool size, seed, each model's member indices (and the data set's indices)\n  \
    members.npy           the same as a K x N boolean array (np.load(...)[m] is model m's mask)\n  \
    members/model-NNN.txt one pool index per line, for any language\n  \
    labels.npy            the pool's labels (when --pool names a data set)\n\n\
    Examples:\n  \
    strata mia design --pool 50000 --models 64 --out design/             # your own data, 50k examples\n  \
    strata mia design --pool mnist:10000 --models 17 --seed 0 --out d/   # 10k MNIST training images\n  \
    strata mia design --pool csv:people.csv:20000 --label income --models 16 --out d/  # a CSV's rows")]
struct DesignArgs {
    /// The pool: N (examples 0..N of your own data), DATA (a data set's whole training split:
    /// mnist, adult, csv:PATH) or DATA:N (N examples of it drawn at random, as mia audit draws
    /// its pool).
    #[arg(long, value_name = "N|DATA[:N]")]
    pool: String,
    /// Label column of csv:PATH data.
    #[arg(long)]
    label: Option<String>,
    /// Number of models K (at least 2; LiRA's paper uses 16 to 256).
    #[arg(long, value_name = "K")]
    models: usize,
    /// Fixes the pool drawn from a data set and every membership mask.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// The folder to write.
    #[arg(long, value_name = "DIR")]
    out: PathBuf,
    #[command(flatten)]
    output: OutputArgs,
}

/// Score membership-inference attacks on outside models' outputs, following a design.
///
/// Reads the design (strata mia design), each model's logits (or probabilities) on the pool and
/// the pool's labels, attacks the target with the other models as references, and reports as
/// mia audit does: AUC, TPR at 0.1% and 1% FPR with the false positives they rest on, bootstrap
/// intervals, log-log ROC, per-class AUC. --all-targets attacks every model in turn (the LiRA
/// paper's evaluation) and reports the mean and spread of each figure over targets.
#[derive(clap::Args)]
#[command(
    after_help = "Outputs (--logits): one file per model, in model order (model-000.npy model-001.npy ...,\n\
    a shell glob sorts them), each one pool x classes array; or one file with a stacked\n\
    models x pool x classes array. .npy, .npz, .safetensors, .arrow, .parquet, .pt;\n\
    float16, bfloat16, float32, float64.\n\n\
    Attacks (--attacks, comma-separated; default all):\n  \
    lira, lira-offline, lira-global, lira-offline-global   LiRA (Carlini et al. 2022)\n  \
    rmia, rmia-offline   RMIA (Zarifzadeh et al. 2024): Pr(x|target)/Pr(x) against population examples\n  \
    shokri, salem, loss, confidence, entropy, mentr        as in mia audit --help\n\n\
    Examples:\n  \
    strata mia score --design d/design.json --logits logits/model-*.npy --labels d/labels.npy\n  \
    strata mia score --design d/design.json --logits all.npy --all-targets --out reports/audit\n  \
    strata mia score --design d/design.json --logits probs.safetensors --outputs probs --target 3 --json"
)]
struct ScoreArgs {
    /// design.json written by strata mia design (or by mia audit --out).
    #[arg(long, value_name = "FILE")]
    design: PathBuf,
    /// Each model's outputs on the pool (see below).
    #[arg(long, value_name = "FILE", num_args = 1.., required = true)]
    logits: Vec<PathBuf>,
    /// What the files hold: logits (pre-softmax) or probs (softmax probabilities).
    #[arg(long, value_enum, default_value = "logits")]
    outputs: OutputsArg,
    /// The pool's labels: an integer .npy, one per pool example [default: from the data set
    /// the design's pool was drawn from].
    #[arg(long, value_name = "FILE")]
    labels: Option<PathBuf>,
    /// The model attacked; the others are its references.
    #[arg(long, default_value_t = 0, conflicts_with = "all_targets")]
    target: usize,
    /// Attack every model in turn and report the mean and spread over targets.
    #[arg(long)]
    all_targets: bool,
    /// Use only the first N other models as references [default: all K - 1].
    #[arg(long, value_name = "N")]
    references: Option<usize>,
    /// How many references train Shokri et al.'s attack models [default: 4, or fewer references].
    #[arg(long)]
    shadows: Option<usize>,
    /// Attacks, comma-separated (see below) [default: all].
    #[arg(long, value_delimiter = ',')]
    attacks: Option<Vec<String>>,
    /// Output defenses applied to every model's released vectors, comma-separated (none, top1,
    /// round2, temp5, ...).
    #[arg(long, value_delimiter = ',', default_value = "none")]
    defenses: Vec<String>,
    /// Bootstrap resamples behind each 95% interval (2 to 100000).
    #[arg(long, default_value_t = 200)]
    bootstrap: usize,
    /// Fixes the bootstrap and Shokri et al.'s attack models.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Write a report folder: index.html, report.md, ROC figures, tables, results.json.
    #[arg(long, value_name = "DIR")]
    out: Option<PathBuf>,
    #[command(flatten)]
    output: OutputArgs,
}

#[derive(Clone, Copy, clap::ValueEnum)]
enum OutputsArg {
    Logits,
    Probs,
}

/// Train a target and reference models on a data pool, attack the target, and report leakage
/// (AUC, TPR at 0.1% and 1% FPR, advantage, with bootstrap intervals) beside train and test
/// accuracy, for every precision and defense asked for.
///
/// Protocol: a pool is drawn at random from the training split and a balanced design of
/// 1 + --references models is drawn over it (every example in the training set of half of them,
/// Carlini et al. 2022), exactly as `strata mia design --pool DATA:N --models 1+R` draws it.
/// Model 0 is the target: its members and the rest of the pool are what the attacks must tell
/// apart; the other models are the attacker's references. Shadow models for Shokri et al.'s
/// attack are the first --shadows references; ML-Leaks uses the first. Output defenses (topK,
/// roundD, tempT) are applied to every model's released vectors; l2=λ and each --precision
/// train their own models. The scoring is the one `strata mia score` runs: --out exports every
/// model's logits (logits/SET/model-NNN.npy), the design and the labels, and scoring those
/// files gives the same figures.
#[derive(clap::Args)]
#[command(after_help = "Attacks (--attacks, comma-separated; default all):\n  \
    lira                 LiRA online, per-example variance (Carlini et al. 2022)\n  \
    lira-offline         LiRA offline (OUT models only)\n  \
    lira-global          LiRA online, one variance for all examples\n  \
    lira-offline-global  LiRA offline, global variance\n  \
    rmia                 RMIA (Zarifzadeh et al. 2024): Pr(x|target)/Pr(x) against other pool examples\n  \
    rmia-offline         RMIA with OUT references only (Pr(x) by the paper's offline approximation, a = 0.3)\n  \
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
    /// Pool size: examples drawn from the training split; the target trains on about half
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
            MiaCmd::Design(a) => a.exec(),
            MiaCmd::Audit(a) => a.exec(),
            MiaCmd::Score(a) => a.exec(),
        }
    }
}

impl AuditArgs {
    /// The library's audit settings.
    fn audit(self) -> Result<mia::AuditArgs> {
        let defenses = parse_defenses(&self.defenses)?;
        let attacks = self.attacks.unwrap_or_else(all_attacks);
        Ok(mia::AuditArgs {
            data: self.data.data,
            label: self.data.label,
            pool: self.pool,
            architecture: self.model.architecture(),
            widths: self.widths,
            precisions: self.precision,
            references: self.references,
            shadows: self
                .shadows
                .unwrap_or(strata_privacy::shokri::default_shadows(self.references)),
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

/// --defenses, parsed.
fn parse_defenses(names: &[String]) -> Result<Vec<strata_privacy::Defense>> {
    Ok(names
        .iter()
        .map(|d| strata_privacy::Defense::parse(d))
        .collect::<Result<_, _>>()?)
}

/// Every attack's name, the default of --attacks.
fn all_attacks() -> Vec<String> {
    strata_privacy::ATTACK_NAMES
        .iter()
        .map(|s| s.to_string())
        .collect()
}

impl DesignArgs {
    fn exec(self) -> Result<()> {
        let progress = Terminal::new(self.output.silent());
        let r = mia::design::design(
            &mia::design::DesignArgs {
                pool: self.pool,
                label: self.label,
                models: self.models,
                seed: self.seed,
                out: self.out,
            },
            &progress,
        )?;
        if self.output.json {
            println!("{}", serde_json::to_string(&r)?);
        } else {
            println!(
                "design: {} models over a pool of {}{}; each example in half of the models, each model trains on {} to {} examples",
                r.models,
                r.pool,
                r.data.as_ref().map_or(String::new(), |d| format!(" ({d})")),
                r.members_per_model.0,
                r.members_per_model.1
            );
            let files: Vec<&str> = r
                .files
                .iter()
                .map(String::as_str)
                .filter(|f| !f.ends_with('/'))
                .collect();
            println!(
                "wrote {}: {} and members/model-000.txt .. model-{:03}.txt",
                r.out.display(),
                files.join(", "),
                r.models - 1
            );
            println!(
                "next: train model m on its members, save its logits on the whole pool (pool order), then\n  strata mia score --design {} --logits model-*.npy{}",
                r.out.join("design.json").display(),
                if r.data.is_some() {
                    format!(" --labels {}", r.out.join("labels.npy").display())
                } else {
                    " --labels labels.npy".into()
                }
            );
        }
        Ok(())
    }
}

impl ScoreArgs {
    fn exec(self) -> Result<()> {
        let defenses = parse_defenses(&self.defenses)?;
        let (out, json) = (self.out.clone(), self.output.json);
        let progress = Terminal::new(self.output.silent());
        let args = mia::score::ScoreArgs {
            design: self.design,
            outputs: self.logits,
            kind: match self.outputs {
                OutputsArg::Logits => mia::outputs::OutputKind::Logits,
                OutputsArg::Probs => mia::outputs::OutputKind::Probs,
            },
            labels: self.labels,
            targets: if self.all_targets {
                mia::score::Targets::All
            } else {
                mia::score::Targets::One(self.target)
            },
            references: self.references,
            shadows: self.shadows,
            attacks: self.attacks.unwrap_or_else(all_attacks),
            defenses,
            bootstrap: self.bootstrap,
            seed: self.seed,
        };
        let r = mia::score::run(&args, &progress)?;
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
