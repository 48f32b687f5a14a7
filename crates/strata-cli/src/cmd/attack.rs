//! `strata attack`: accuracy of a saved model under FGSM or PGD, budget by budget.

use crate::args::ExampleArgs;
use crate::progress::Terminal;
use anyhow::{bail, Context, Result};
use clap::ValueEnum;
use std::fmt::Write as _;
use std::path::PathBuf;
use strata_lab::attack::{self, AttackReport};
use strata_lab::robustness::{MethodKind, Plan};
use strata_nn::attack::Norm;

/// Attack a saved model with adversarial examples: accuracy under attack per budget.
///
/// FGSM (Goodfellow et al. 2015) takes one step of size eps along the sign of the loss
/// gradient (L-infinity) or along the gradient (L2). PGD (Madry et al. 2018) starts at a random
/// point of the eps-ball and takes --steps projected steps; an example counts as broken as soon
/// as one iterate fools the model. Inputs stay in [0, 1].
///
/// Quantized networks are attacked through the straight-through gradients they were trained
/// with. Their sign and rounding functions mask the true gradient, so a careful evaluation also
/// transfers adversarial examples from a float twin: give --transfer-from FLOAT_MODEL and the
/// stronger of the two attacks is reported per budget (the `crafted` column says which).
///
/// The table gives, per budget: accuracy under attack, the success rate (untargeted: share of
/// the examples classified right when clean that the attack breaks; targeted: share classified
/// as their target), and the mean size of the perturbation. With --out, the folder receives
/// attack.json, attack.csv, attack.md, layers.csv (per layer, linear CKA between clean and
/// adversarial activations: where the representation breaks) and adversarial.arrow (the
/// adversarial examples, one layer per budget).
#[derive(clap::Args)]
#[command(
    after_help = "Examples:\n  strata train --model mlp --precision w1a1 --out models/w1a1\n  strata attack --model models/w1a1 --limit 1000\n  strata attack --model models/w1a1 --transfer-from models/float --eps 0,0.1,0.2,0.3\n  strata attack --model models/float --attack fgsm --norm l2 --eps 0,1,2,3 --out reports/attack"
)]
pub struct AttackArgs {
    /// The saved model (PATH.safetensors, with PATH.json beside it).
    #[arg(long)]
    model: PathBuf,
    #[command(flatten)]
    examples: ExampleArgs,
    /// fgsm or pgd.
    #[arg(long, value_enum, default_value = "pgd")]
    attack: AttackArg,
    /// The norm of the budget and of the steps: linf or l2.
    #[arg(long, value_enum, default_value = "linf")]
    norm: NormArg,
    /// Budgets, comma-separated [default: 0,0.05,0.1,0.15,0.2,0.25,0.3 for linf;
    /// 0,0.5,1,1.5,2,2.5,3 for l2]. Pixels lie in [0, 1].
    #[arg(
        long,
        value_delimiter = ',',
        value_name = "LIST",
        allow_negative_numbers = true
    )]
    eps: Option<Vec<f32>>,
    /// PGD steps.
    #[arg(long, default_value_t = 20)]
    steps: usize,
    /// PGD step length [default: 2.5 x eps / steps].
    #[arg(long, value_name = "SIZE")]
    step_size: Option<f32>,
    /// Aim every example at a random other class (seeded) instead of any wrong class.
    #[arg(long)]
    targeted: bool,
    /// Also craft the attack on this saved model (a float twin) and report the stronger.
    #[arg(long, value_name = "MODEL")]
    transfer_from: Option<PathBuf>,
    /// Seed of PGD's random start and of the targets.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Folder for attack.{json,csv,md}, layers.csv and adversarial.arrow.
    #[arg(long, value_name = "DIR")]
    out: Option<PathBuf>,
    /// Print one JSON object on stdout instead of the table.
    #[arg(long)]
    json: bool,
    /// No progress bars.
    #[arg(long, short)]
    quiet: bool,
}

#[derive(Clone, Copy, ValueEnum, PartialEq)]
enum AttackArg {
    Fgsm,
    Pgd,
}

#[derive(Clone, Copy, ValueEnum, PartialEq)]
enum NormArg {
    Linf,
    L2,
}

impl AttackArgs {
    fn plan(&self) -> Result<Plan> {
        let norm = match self.norm {
            NormArg::Linf => Norm::Linf,
            NormArg::L2 => Norm::L2,
        };
        let eps = self.eps.clone().unwrap_or_else(|| match norm {
            Norm::Linf => vec![0.0, 0.05, 0.1, 0.15, 0.2, 0.25, 0.3],
            Norm::L2 => vec![0.0, 0.5, 1.0, 1.5, 2.0, 2.5, 3.0],
        });
        let plan = Plan {
            method: match self.attack {
                AttackArg::Fgsm => MethodKind::Fgsm,
                AttackArg::Pgd => MethodKind::Pgd,
            },
            steps: self.steps,
            step_size: self.step_size,
            norm,
            eps,
            targeted: self.targeted,
            seed: self.seed,
        };
        plan.validate()
            .map_err(|e| anyhow::anyhow!("{e} (check --eps, --steps and --step-size)"))?;
        Ok(plan)
    }

    pub fn exec(self) -> Result<()> {
        let plan = self.plan()?;
        if let Some(out) = &self.out {
            if out.is_file() {
                bail!("--out {} is a file; give a folder", out.display());
            }
        }
        let (report, advs) = attack::attack(
            &self.model,
            self.transfer_from.as_deref(),
            self.examples.examples(),
            &plan,
            &Terminal::new(self.quiet || self.json),
        )?;
        let md = markdown(&report);
        if let Some(dir) = &self.out {
            std::fs::create_dir_all(dir)
                .with_context(|| format!("cannot create --out {}", dir.display()))?;
            let (net, _) = strata_nn::file::load(&self.model)?;
            attack::write_adversarial(
                &dir.join("adversarial.arrow"),
                &report,
                &net.config.input_shape,
                &advs,
            )?;
            strata_report::write_atomic(&dir.join("attack.csv"), csv(&report).as_bytes())?;
            strata_report::write_atomic(&dir.join("layers.csv"), layers_csv(&report).as_bytes())?;
        }
        super::emit("attack", self.out.as_deref(), self.json, &report, &md)
    }
}

fn csv(r: &AttackReport) -> String {
    let mut s = String::from(
        "eps,accuracy,success_rate,mean_norm,crafted,white_box_accuracy,transfer_accuracy\n",
    );
    for (k, p) in r.points.iter().enumerate() {
        let tr = r
            .transfer
            .get(k)
            .map_or(String::new(), |t| t.accuracy.to_string());
        let _ = writeln!(
            s,
            "{},{},{},{},{},{},{}",
            p.eps, p.accuracy, p.success_rate, p.mean_norm, p.crafted, r.white_box[k].accuracy, tr
        );
    }
    s
}

fn layers_csv(r: &AttackReport) -> String {
    let mut s = String::from("eps,layer,cka\n");
    for b in &r.layers {
        for (name, v) in &b.cka {
            let _ = writeln!(
                s,
                "{},{},{}",
                b.eps,
                name,
                v.map_or(String::new(), |v| v.to_string())
            );
        }
    }
    s
}

fn markdown(r: &AttackReport) -> String {
    let p = &r.plan;
    let mut s = String::new();
    let how = match p.method {
        MethodKind::Fgsm => "FGSM".to_string(),
        MethodKind::Pgd => format!("PGD, {} steps", p.steps),
    };
    let _ = writeln!(
        s,
        "{} ({}) on {} {} ({} examples): {how}, {} budget{}, seed {}\n",
        r.model,
        r.precision,
        r.data,
        r.split,
        r.n,
        p.norm.name(),
        if p.targeted { ", targeted" } else { "" },
        p.seed
    );
    let transfer = !r.transfer.is_empty();
    s.push_str("| eps | accuracy (%) | success rate (%) | mean perturbation |");
    if transfer {
        s.push_str(" white-box (%) | transfer (%) | reported |");
    }
    s.push('\n');
    s.push_str("|---:|---:|---:|---:|");
    if transfer {
        s.push_str("---:|---:|---|");
    }
    s.push('\n');
    for (k, q) in r.points.iter().enumerate() {
        let _ = write!(
            s,
            "| {} | {:.2} | {:.1} | {:.4} |",
            q.eps as f32,
            100.0 * q.accuracy,
            100.0 * q.success_rate,
            q.mean_norm
        );
        if let Some(t) = r.transfer.get(k) {
            let _ = write!(
                s,
                " {:.2} | {:.2} | {} |",
                100.0 * r.white_box[k].accuracy,
                100.0 * t.accuracy,
                q.crafted
            );
        }
        s.push('\n');
    }
    if let Some(b) = r.layers.last() {
        let _ = writeln!(
            s,
            "\nWhere the representation breaks (linear CKA between clean and adversarial \
             activations, eps {}):\n",
            b.eps as f32
        );
        s.push_str("| layer | CKA |\n|---|---:|\n");
        for (name, v) in &b.cka {
            let _ = writeln!(
                s,
                "| {name} | {} |",
                v.map_or("n/a".into(), |v| format!("{v:.3}"))
            );
        }
    }
    let _ = writeln!(s, "\n{:.1} s", r.seconds);
    s
}
