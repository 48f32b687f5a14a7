//! Scoring a design's models: given every model's released outputs on the pool and the design
//! that says who trained on what, attack one model (the target) with the others as references,
//! or every model in turn (the LiRA paper's evaluation), and measure each attack against the
//! target's true membership. `mia audit` and `mia score` both end here, and so does
//! `strata.privacy.score` in Python: one path from outputs to figures.

use crate::attack::{AuditData, MembershipAttack};
use crate::metrics::{balanced_accuracy_at, metrics, Metrics, Roc, LOW_FPR};
use crate::outputs::Released;
use crate::protocol::Design;
use crate::{PrivacyError, Result};
use rayon::prelude::*;
use serde::Serialize;

/// One attack's result on one setting: the primary target's figures with bootstrap intervals,
/// its ROC and per-class AUC, and, when several targets were scored, the spread over them.
#[derive(Clone, Debug, Serialize)]
pub struct AttackResult {
    /// The attack's name.
    pub attack: String,
    /// AUC, TPR at low FPR and advantage on the primary (first) target, with bootstrap intervals.
    pub metrics: Metrics,
    /// Balanced accuracy at the attack's own decision threshold (shadow-calibrated), if any.
    pub threshold_accuracy: Option<f64>,
    /// AUC over the examples of each class (None where a class has no member or non-member).
    pub per_class_auc: Vec<Option<f64>>,
    /// ROC points (fpr, tpr) of the primary target, thinned for plotting; with several targets,
    /// the vertical average of their curves on a log-spaced FPR grid.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub roc: Vec<(f64, f64)>,
    /// Mean and spread of the figures over every scored target (`--all-targets`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub across_targets: Option<AcrossTargets>,
    /// The attack's score of every pool example on the primary target (higher = more likely a
    /// member): which examples leak. Not serialized (one number per example).
    #[serde(skip)]
    pub scores: Vec<f64>,
}

/// Mean, standard deviation (n - 1), minimum and maximum of one figure over targets.
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
pub struct Spread {
    /// Mean over targets.
    pub mean: f64,
    /// Sample standard deviation over targets (0 for one target).
    pub std: f64,
    /// Smallest value.
    pub min: f64,
    /// Largest value.
    pub max: f64,
}

impl Spread {
    /// The spread of `v` (empty: all NaN).
    pub fn of(v: &[f64]) -> Spread {
        let n = v.len() as f64;
        let mean = v.iter().sum::<f64>() / n;
        let var = if v.len() > 1 {
            v.iter().map(|x| (x - mean) * (x - mean)).sum::<f64>() / (n - 1.0)
        } else {
            0.0
        };
        Spread {
            mean,
            std: var.sqrt(),
            min: v.iter().copied().fold(f64::INFINITY, f64::min),
            max: v.iter().copied().fold(f64::NEG_INFINITY, f64::max),
        }
    }
}

/// One target's point figures (no interval).
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
pub struct TargetFigures {
    /// The target's index in the design.
    pub target: usize,
    /// Area under the ROC curve.
    pub auc: f64,
    /// TPR at FPR <= 0.1%.
    pub tpr_at_low_fpr: f64,
    /// TPR at FPR <= 1%.
    pub tpr_at_1pct_fpr: f64,
    /// max(TPR - FPR).
    pub advantage: f64,
}

/// An attack's figures over every scored target.
#[derive(Clone, Debug, Serialize)]
pub struct AcrossTargets {
    /// AUC over targets.
    pub auc: Spread,
    /// TPR at 0.1% FPR over targets.
    pub tpr_at_low_fpr: Spread,
    /// TPR at 1% FPR over targets.
    pub tpr_at_1pct_fpr: Spread,
    /// Advantage over targets.
    pub advantage: Spread,
    /// Each target's figures, in the order scored.
    pub per_target: Vec<TargetFigures>,
}

/// What to score and how.
pub struct ScoreConfig<'a> {
    /// The attacks, in the order reported.
    pub attacks: &'a [Box<dyn MembershipAttack>],
    /// Models attacked in turn; the first is the primary target (bootstrap, ROC, per-class).
    pub targets: &'a [usize],
    /// Use only the first this many other models as references (`None`: all of them).
    pub references: Option<usize>,
    /// Bootstrap resamples behind the primary target's intervals (0: none).
    pub bootstrap: usize,
    /// Seed of the bootstrap.
    pub seed: u64,
}

/// The reference models of `target`: every other model of the design, in index order, at most
/// `limit` of them.
pub fn references_of(design: &Design, target: usize, limit: Option<usize>) -> Vec<usize> {
    let mut r: Vec<usize> = (0..design.models()).filter(|&m| m != target).collect();
    if let Some(l) = limit {
        r.truncate(l);
    }
    r
}

/// Check that `released` (one entry per model of `design`) fits it and `cfg`'s targets exist.
fn check(released: &[Released], design: &Design, cfg: &ScoreConfig) -> Result<()> {
    design.validate()?;
    if released.len() != design.models() {
        return Err(PrivacyError::Mismatched {
            what: "models' outputs (one per model of the design)",
            got: released.len(),
            expected: design.models(),
        });
    }
    for (m, r) in released.iter().enumerate() {
        if r.len() != design.pool {
            return Err(PrivacyError::Invalid(format!(
                "model {m}'s outputs cover {} examples, the design's pool has {}",
                r.len(),
                design.pool
            )));
        }
        if r.classes != released[0].classes {
            return Err(PrivacyError::Invalid(format!(
                "model {m}'s outputs have {} classes, model 0's have {}",
                r.classes, released[0].classes
            )));
        }
        if r.labels != released[0].labels {
            return Err(PrivacyError::Invalid(format!(
                "model {m}'s outputs were built with other labels than model 0's"
            )));
        }
    }
    if cfg.targets.is_empty() {
        return Err(PrivacyError::Invalid("no target model to score".into()));
    }
    if let Some(&t) = cfg.targets.iter().find(|&&t| t >= design.models()) {
        return Err(PrivacyError::Invalid(format!(
            "target model {t} does not exist: the design has models 0 to {}",
            design.models() - 1
        )));
    }
    if cfg.references == Some(0) {
        return Err(PrivacyError::Invalid(
            "at least one reference model is needed".into(),
        ));
    }
    Ok(())
}

/// Scores of every attack on one target, or the first error (named after the attack).
fn attack_target(
    released: &[Released],
    design: &Design,
    cfg: &ScoreConfig,
    target: usize,
) -> Result<Vec<crate::AttackOutput>> {
    let refs = references_of(design, target, cfg.references);
    let references: Vec<&Released> = refs.iter().map(|&m| &released[m]).collect();
    let members: Vec<Vec<bool>> = refs.iter().map(|&m| design.members[m].clone()).collect();
    let data = AuditData {
        target: &released[target],
        references: &references,
        reference_members: &members,
    };
    cfg.attacks
        .iter()
        .map(|a| {
            if a.references_needed() > refs.len() {
                return Err(PrivacyError::TooFewReferences {
                    attack: a.name(),
                    need: a.references_needed(),
                    got: refs.len(),
                });
            }
            a.attack(&data)
        })
        .collect()
}

/// Figures of one target from an attack's scores, without intervals, and its TPR at each FPR
/// of `grid`.
fn point_figures(
    target: usize,
    scores: &[f64],
    members: &[bool],
    grid: &[f64],
) -> Result<(TargetFigures, Vec<f64>)> {
    let roc = Roc::new(scores, members)?;
    let f = TargetFigures {
        target,
        auc: roc.auc(),
        tpr_at_low_fpr: roc.tpr_at_fpr(LOW_FPR),
        tpr_at_1pct_fpr: roc.tpr_at_fpr(0.01),
        advantage: roc.advantage(),
    };
    // Points are in increasing fp and tp: the best TPR with at most `a` false positives is the
    // last point whose fp is <= a (the same figure as `Roc::tpr_at_fpr`, by binary search).
    let tpr = grid
        .iter()
        .map(|&x| {
            let allowed = roc.false_positives_allowed(x);
            let k = roc.points.partition_point(|p| p.fp <= allowed);
            roc.points[k.max(1) - 1].tp as f64 / roc.members as f64
        })
        .collect();
    Ok((f, tpr))
}

/// AUC of each class's examples.
fn per_class_auc(
    labels: &[u32],
    classes: usize,
    scores: &[f64],
    members: &[bool],
) -> Vec<Option<f64>> {
    let mut by_class: Vec<Vec<usize>> = vec![Vec::new(); classes];
    for (i, &y) in labels.iter().enumerate() {
        if let Some(c) = by_class.get_mut(y as usize) {
            c.push(i);
        }
    }
    by_class
        .iter()
        .map(|idx| {
            let s: Vec<f64> = idx.iter().map(|&i| scores[i]).collect();
            let m: Vec<bool> = idx.iter().map(|&i| members[i]).collect();
            Roc::new(&s, &m).ok().map(|r| r.auc())
        })
        .collect()
}

/// FPR grid of the averaged ROC: log-spaced from 1e-5 to 1.
fn fpr_grid() -> Vec<f64> {
    (0..=100)
        .map(|k| 10f64.powf(-5.0 + 5.0 * k as f64 / 100.0))
        .collect()
}

/// Score every attack on every target of `cfg` (see the module docs). `released[m]` is model
/// `m`'s released outputs on the pool; all share the pool's labels.
pub fn score(
    released: &[Released],
    design: &Design,
    cfg: &ScoreConfig,
) -> Result<Vec<AttackResult>> {
    check(released, design, cfg)?;
    let primary = cfg.targets[0];
    let outputs = attack_target(released, design, cfg, primary)?;
    let members = &design.members[primary];
    let labels = &released[primary].labels;
    let classes = released[primary].classes;
    let mut results: Vec<AttackResult> = Vec::with_capacity(outputs.len());
    for (a, out) in cfg.attacks.iter().zip(&outputs) {
        results.push(AttackResult {
            attack: a.name(),
            metrics: metrics(&out.scores, members, cfg.bootstrap, cfg.seed)?,
            threshold_accuracy: out
                .threshold
                .map(|t| balanced_accuracy_at(&out.scores, members, t)),
            per_class_auc: per_class_auc(labels, classes, &out.scores, members),
            roc: Roc::new(&out.scores, members)?.curve(300),
            across_targets: None,
            scores: out.scores.clone(),
        });
    }
    if cfg.targets.len() < 2 {
        return Ok(results);
    }
    let grid = fpr_grid();
    // Per target: every attack's point figures and TPR on the grid.
    let per_target: Vec<Vec<(TargetFigures, Vec<f64>)>> = cfg
        .targets
        .par_iter()
        .enumerate()
        .map(|(k, &t)| {
            let recomputed;
            let outs = if k == 0 {
                &outputs
            } else {
                recomputed = attack_target(released, design, cfg, t)?;
                &recomputed
            };
            outs.iter()
                .map(|o| point_figures(t, &o.scores, &design.members[t], &grid))
                .collect::<Result<Vec<_>>>()
        })
        .collect::<Result<_>>()?;
    for (k, r) in results.iter_mut().enumerate() {
        let figures: Vec<TargetFigures> = per_target.iter().map(|t| t[k].0).collect();
        let n = figures.len() as f64;
        r.roc = grid
            .iter()
            .enumerate()
            .map(|(g, &x)| (x, per_target.iter().map(|t| t[k].1[g]).sum::<f64>() / n))
            .collect();
        let col =
            |f: fn(&TargetFigures) -> f64| Spread::of(&figures.iter().map(f).collect::<Vec<_>>());
        r.across_targets = Some(AcrossTargets {
            auc: col(|f| f.auc),
            tpr_at_low_fpr: col(|f| f.tpr_at_low_fpr),
            tpr_at_1pct_fpr: col(|f| f.tpr_at_1pct_fpr),
            advantage: col(|f| f.advantage),
            per_target: figures,
        });
    }
    Ok(results)
}
