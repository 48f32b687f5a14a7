//! The membership-inference audit: design -> train -> logits -> score. A pool is drawn at
//! random from the data's training split; a balanced design of 1 + references models is drawn
//! over it (every example in half of them, strata_privacy::protocol), exactly as `mia design`
//! draws it; model 0 is the target. Each model set (a precision, with or without L2) trains its
//! own models; output defenses are applied to every model's released vectors; the scoring that
//! `mia score` runs on outside models' logits ([`strata_privacy::score`]) gives the figures.

use super::design::{draw_pool, DesignFile, PoolSource};
use super::models::{ModelSpec, Trained, Trainer};
use super::outputs::OutputKind;
use crate::progress::Progress;
use crate::setting::{Setting as UserSetting, SettingError};
use crate::train::load_data;
use anyhow::{Context, Result};
use serde::Serialize;
use std::path::PathBuf;
use strata_nn::net::Architecture;
use strata_nn::train::TrainConfig;
use strata_nn::Precision;
use strata_privacy::protocol::Design;
use strata_privacy::score::{score, ScoreConfig};
use strata_privacy::{attack_by_name, Defense, MembershipAttack, Released};

pub use strata_privacy::score::AttackResult;

/// Settings of `strata mia audit`.
#[derive(Clone, Debug)]
pub struct AuditArgs {
    /// Data set, as `--data` names it (`mnist`, `adult`, `csv:PATH`, ...).
    pub data: String,
    /// Label column of `csv:PATH` data.
    pub label: Option<String>,
    /// Pool size (default: the training split, at most 10,000).
    pub pool: Option<usize>,
    /// Network architecture of every model.
    pub architecture: Architecture,
    /// Hidden widths (MLPs only).
    pub widths: Vec<usize>,
    /// Precisions audited, each with its own target and reference models.
    pub precisions: Vec<Precision>,
    /// Reference models per model set, 1 to [`MAX_REFERENCES`].
    pub references: usize,
    /// Shadow models of Shokri et al.'s attack, 1 to `references`.
    pub shadows: usize,
    /// Attacks to run, by name.
    pub attacks: Vec<String>,
    /// Defenses: output ones applied to the released vectors, training-time ones (L2) as extra
    /// model sets.
    pub defenses: Vec<Defense>,
    /// Training settings of every model (seeds are derived per model from `seed`).
    pub train: TrainConfig,
    /// Learning rate of quantized models (they need a larger one); `None`: `train.lr`.
    pub lr_quantized: Option<f64>,
    /// Bootstrap resamples behind each 95% interval (within [`BOOTSTRAP_RANGE`]).
    pub bootstrap: usize,
    /// Seed of the pool, the membership masks and every model's training.
    pub seed: u64,
    /// Folder caching each model's logits on the pool (`None`: no cache).
    pub cache: Option<PathBuf>,
    /// Where the settings came from, so that errors name them as the user wrote them.
    pub origin: Origin,
}

/// Where an audit's settings came from: a front end's own options (`strata mia audit`'s flags)
/// or a spec's `[privacy]` section (whose training settings come from the audited `[[model]]`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Origin {
    /// A front end's options (the default): errors about them are [`SettingError`]s, which
    /// the front end words (the CLI as its flags).
    #[default]
    Cli,
    /// A spec's `[privacy]` section: errors name its keys.
    Spec,
}

impl Origin {
    /// How a spec writes setting `s`.
    fn spec_key(s: UserSetting) -> String {
        match s {
            UserSetting::Precision => "[[model]] precisions".into(),
            UserSetting::Epochs
            | UserSetting::BatchSize
            | UserSetting::LearningRate
            | UserSetting::Widths => format!("[[model]] {}", s.key()),
            s => format!("[privacy] {}", s.key()),
        }
    }

    /// The error whose message is `before`, setting `s` as the user wrote it, then `after`: a
    /// [`SettingError`] from a front end's options; with the spec key from a spec.
    pub fn invalid(
        self,
        s: UserSetting,
        before: impl Into<String>,
        after: impl Into<String>,
    ) -> anyhow::Error {
        match self {
            Origin::Cli => SettingError::within(s, before, after).into(),
            Origin::Spec => {
                anyhow::anyhow!("{}{}{}", before.into(), Origin::spec_key(s), after.into())
            }
        }
    }
}

/// Reference models an audit may train (LiRA's paper uses up to 256).
pub const MAX_REFERENCES: usize = 1024;
/// Bootstrap resamples: at least 2 for an interval to mean anything; beyond 100,000 the
/// interval's own Monte Carlo error is far below what any figure shows.
pub const BOOTSTRAP_RANGE: std::ops::RangeInclusive<usize> = 2..=100_000;

/// The limits every audit's counts obey, whichever front end set them; errors name the
/// settings as `origin` words them.
pub fn check_counts(
    references: usize,
    shadows: usize,
    bootstrap: usize,
    origin: Origin,
) -> Result<()> {
    if references == 0 || references > MAX_REFERENCES {
        return Err(origin.invalid(
            UserSetting::References,
            "",
            format!(" must be between 1 and {MAX_REFERENCES}, got {references}"),
        ));
    }
    if shadows == 0 || shadows > references {
        return Err(origin.invalid(
            UserSetting::Shadows,
            "",
            format!(
                " must be between 1 and the number of reference models ({references}), got \
                 {shadows}"
            ),
        ));
    }
    if !BOOTSTRAP_RANGE.contains(&bootstrap) {
        return Err(origin.invalid(
            UserSetting::Bootstrap,
            "",
            format!(
                " must be between {} and {} (resamples behind each 95% interval), got \
                 {bootstrap}",
                BOOTSTRAP_RANGE.start(),
                BOOTSTRAP_RANGE.end()
            ),
        ));
    }
    Ok(())
}

/// A target's accuracy and every attack's figures under one (precision, defense).
#[derive(Clone, Debug, Serialize)]
pub struct Setting {
    /// Precision of the model set.
    pub precision: String,
    /// "none", an output defense (top1, round2, temp5) or a training one (l2=0.001).
    pub defense: String,
    /// Accuracy of the (primary) target model on its training members, in [0, 1].
    pub train_accuracy: f64,
    /// Accuracy of the target on held-out examples, in [0, 1]: the data's test split for models
    /// strata trains, the pool's non-members for outside models.
    pub test_accuracy: f64,
    /// Mean held-out accuracy of the reference models (how well the attacker's copies match).
    pub reference_test_accuracy: f64,
    /// Every attack's result, in the order they ran.
    pub attacks: Vec<AttackResult>,
}

/// How the models of an audit were obtained, when strata trained them.
#[derive(Clone, Debug, Serialize)]
pub struct TrainedModels {
    /// Network architecture's name.
    pub architecture: String,
    /// Hidden widths (empty for CNNs).
    pub widths: Vec<usize>,
    /// Training settings (each model's seed is derived from the audit's seed).
    pub train: TrainConfig,
    /// Learning rate of quantized models (`None`: `train.lr`).
    pub lr_quantized: Option<f64>,
    /// Models trained in this run.
    pub models_trained: usize,
    /// Models read from the cache.
    pub models_cached: usize,
}

/// The whole audit: of models strata trained (`mia audit`) or of outside models' outputs
/// (`mia score`); the report reads both alike.
#[derive(Clone, Debug, Serialize)]
pub struct AuditResult {
    /// Data set, as given (for outside models: the design's data set, or `pool`).
    pub data: String,
    /// Classes in the data.
    pub classes: usize,
    /// Pool size: examples every model is scored on.
    pub pool: usize,
    /// Models in the design (target and references).
    pub models: usize,
    /// Models scored as the target, the primary one first.
    pub targets: Vec<usize>,
    /// Pool examples the primary target trains on (about half the pool).
    pub target_members: usize,
    /// Reference models each target is attacked with.
    pub references: usize,
    /// Shadow models of Shokri et al.'s attack.
    pub shadows: usize,
    /// How the models were trained, when strata trained them.
    #[serde(flatten, skip_serializing_if = "Option::is_none")]
    pub trained: Option<TrainedModels>,
    /// Output files scored, in model order (outside models).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub output_files: Vec<String>,
    /// What the output files hold (outside models).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub outputs: Option<OutputKind>,
    /// Bootstrap resamples behind each 95% interval.
    pub bootstrap: usize,
    /// The audit's seed.
    pub seed: u64,
    /// Seconds the whole audit took.
    pub seconds: f64,
    /// One entry per (precision, defense), in the order the model sets trained.
    pub settings: Vec<Setting>,
    /// The design, as written to design.json.
    #[serde(skip)]
    pub design_file: DesignFile,
    /// Membership masks of every model over the pool.
    #[serde(skip)]
    pub design: Design,
    /// Each model set's logits on the pool (`precision-defense`, one `pool x classes` array per
    /// model), for the report folder to export; empty for outside models.
    #[serde(skip)]
    pub logits: Vec<(String, Vec<Vec<f32>>)>,
    /// The pool's labels.
    #[serde(skip)]
    pub labels: Vec<u32>,
}

impl AuditResult {
    /// What was audited, in a few words: `mlp 256x256` or `outside models`.
    pub fn what(&self) -> String {
        match &self.trained {
            Some(t) if t.widths.is_empty() => t.architecture.clone(),
            Some(t) => format!(
                "{} {}",
                t.architecture,
                t.widths
                    .iter()
                    .map(|w| w.to_string())
                    .collect::<Vec<_>>()
                    .join("x")
            ),
            None => "outside models".into(),
        }
    }

    /// What the held-out accuracy is measured on.
    pub fn held_out(&self) -> &'static str {
        if self.trained.is_some() {
            "test"
        } else {
            "non-member"
        }
    }
}

/// The model sets an audit trains: every precision without L2, then every precision with each
/// L2 defense.
fn model_sets(a: &AuditArgs) -> Vec<(Precision, Defense)> {
    let mut v: Vec<(Precision, Defense)> =
        a.precisions.iter().map(|&p| (p, Defense::None)).collect();
    for d in a.defenses.iter().filter(|d| d.is_training_time()) {
        v.extend(a.precisions.iter().map(|&p| (p, *d)));
    }
    v
}

/// Seed of model `m` (0 = target) of a model set: distinct per model, fixed by the audit seed.
fn model_seed(seed: u64, m: usize) -> u64 {
    seed.wrapping_mul(1_000_003).wrapping_add(m as u64)
}

fn check(a: &AuditArgs, attacks: &[Box<dyn MembershipAttack>]) -> Result<()> {
    let o = a.origin;
    if a.precisions.is_empty() {
        return Err(o.invalid(UserSetting::Precision, "", ": name at least one precision"));
    }
    if a.attacks.is_empty() {
        return Err(o.invalid(UserSetting::Attacks, "", ": name at least one attack"));
    }
    check_counts(a.references, a.shadows, a.bootstrap, o)?;
    for at in attacks {
        if at.references_needed() > a.references {
            return Err(o.invalid(
                UserSetting::References,
                format!(
                    "attack '{}' needs at least {} reference models, ",
                    at.name(),
                    at.references_needed()
                ),
                format!(" is {}; raise it or drop the attack", a.references),
            ));
        }
    }
    let max_epochs = strata_nn::limits::MAX_EPOCHS;
    if a.train.epochs == 0 || a.train.epochs > max_epochs {
        return Err(o.invalid(
            UserSetting::Epochs,
            "",
            format!(" must be between 1 and {max_epochs}"),
        ));
    }
    let max_batch = strata_nn::limits::MAX_BATCH;
    if a.train.batch_size < 2 || a.train.batch_size > max_batch {
        return Err(o.invalid(
            UserSetting::BatchSize,
            "",
            format!(" must be between 2 and {max_batch}"),
        ));
    }
    if !(a.train.lr > 0.0 && a.train.lr.is_finite()) {
        return Err(o.invalid(UserSetting::LearningRate, "", " must be a positive number"));
    }
    Ok(())
}

/// Run an audit, reporting to `progress`.
pub fn run(a: &AuditArgs, progress: &dyn Progress) -> Result<AuditResult> {
    let t0 = std::time::Instant::now();
    let attacks: Vec<Box<dyn MembershipAttack>> = a
        .attacks
        .iter()
        .map(|n| attack_by_name(n, a.shadows, a.seed).map_err(anyhow::Error::from))
        .collect::<Result<_>>()?;
    check(a, &attacks)?;
    let data = load_data(&a.data, a.label.as_deref(), None, progress)?;
    let avail = data.train.len();
    let pool_n = a.pool.unwrap_or(avail.min(10_000));
    if pool_n > avail {
        return Err(a.origin.invalid(
            UserSetting::Pool,
            "",
            format!(" {pool_n}: '{}' has only {avail} training examples", a.data),
        ));
    }
    if pool_n < 20 {
        return Err(a.origin.invalid(
            UserSetting::Pool,
            "",
            format!(" {pool_n}: an audit needs a pool of at least 20 examples"),
        ));
    }
    // Every model's released vectors on the pool are held at once (f64 per class).
    let per_model = (pool_n as u64).saturating_mul(data.train.classes.max(1) as u64 * 8);
    let models = (a.references as u64 + 1).saturating_mul(model_sets(a).len() as u64);
    strata_data::memory::check_fits(
        per_model.saturating_mul(models),
        format!("keeping {models} models' outputs on a pool of {pool_n}"),
    )
    .map_err(|e| {
        a.origin.invalid(
            UserSetting::References,
            "",
            format!(" {}: {e}; use fewer or a smaller pool", a.references),
        )
    })?;
    // The same pool and design `mia design --pool DATA:N --models 1+R --seed S` writes.
    let idx = draw_pool(avail, Some(pool_n), a.seed);
    let pool = data.train.select(&idx);
    let design = Design::balanced(pool_n, 1 + a.references, a.seed)?;
    let trainer = Trainer::new(&data, &pool, &idx, a.cache.clone());
    let sets = model_sets(a);
    // Widths describe MLPs only.
    let widths = if a.architecture == Architecture::Mlp {
        a.widths.clone()
    } else {
        Vec::new()
    };
    let per_set = 1 + a.references;
    let total_models = sets.len() * per_set;
    progress.log(&format!(
        "mia audit: {} (pool {pool_n}, target trains on {}), {} model set(s) x (1 target + {} references) = {total_models} models, {} epochs each",
        a.data,
        design.members[0].iter().filter(|&&b| b).count(),
        sets.len(),
        a.references,
        a.train.epochs
    ));
    let steps_per_model = (pool_n / 2).div_ceil(a.train.batch_size.max(2)) * a.train.epochs;
    let pb = progress.task("train", "steps", (total_models * steps_per_model) as u64);
    let (mut trained, mut cached) = (0, 0);
    let mut settings = Vec::new();
    let mut all_logits = Vec::new();
    for (s, &(precision, training_defense)) in sets.iter().enumerate() {
        let mut train = a.train.clone();
        if precision != Precision::Float {
            train.lr = a.lr_quantized.unwrap_or(train.lr);
        }
        if let Defense::L2 { lambda } = training_defense {
            train.l2 = lambda;
        }
        let mut models: Vec<Trained> = Vec::with_capacity(per_set);
        for m in 0..per_set {
            let spec = ModelSpec {
                architecture: a.architecture,
                widths: widths.clone(),
                precision,
                train: TrainConfig {
                    seed: model_seed(a.seed, m),
                    ..train.clone()
                },
            };
            let role = if m == 0 {
                "target".to_string()
            } else {
                format!("reference {m}/{}", a.references)
            };
            let label = format!("{} {}", precision.name(), training_defense.name());
            pb.set_message(&format!("{label} {role}"));
            let start = pb.position();
            let t = trainer
                .train(&spec, &design.member_indices(m), &mut || pb.inc(1))
                .with_context(|| format!("training the {role} model ({label})"))?;
            pb.set_position(start + steps_per_model as u64);
            if t.cached {
                cached += 1;
            } else {
                trained += 1;
            }
            if m == 0 {
                progress.log(&format!(
                    "set {}/{}: {} {:<10} target train acc {:.2}%  test acc {:.2}%{}",
                    s + 1,
                    sets.len(),
                    precision.name(),
                    training_defense.name(),
                    100.0 * t.train_accuracy,
                    100.0 * t.test_accuracy,
                    if t.cached { "  (cached)" } else { "" }
                ));
            }
            models.push(t);
        }
        let output_defenses: Vec<Defense> = if training_defense.is_training_time() {
            vec![Defense::None]
        } else {
            let mut v = vec![Defense::None];
            v.extend(
                a.defenses
                    .iter()
                    .filter(|d| !d.is_training_time() && **d != Defense::None),
            );
            v
        };
        let logits: Vec<&[f32]> = models.iter().map(|m| m.logits.as_slice()).collect();
        for od in output_defenses {
            let defense_name = if training_defense.is_training_time() {
                training_defense.name()
            } else {
                od.name()
            };
            let released = release(&logits, pool.classes, &pool.y, &od)?;
            let cfg = ScoreConfig {
                attacks: &attacks,
                targets: &[0],
                references: None,
                bootstrap: a.bootstrap,
                seed: a.seed,
            };
            let attacks = score(&released, &design, &cfg)?;
            let refs = &models[1..];
            settings.push(Setting {
                precision: precision.name().into(),
                defense: defense_name,
                train_accuracy: models[0].train_accuracy,
                test_accuracy: models[0].test_accuracy,
                reference_test_accuracy: refs.iter().map(|m| m.test_accuracy).sum::<f64>()
                    / refs.len().max(1) as f64,
                attacks,
            });
        }
        all_logits.push((
            format!("{}-{}", precision.name(), training_defense.name()),
            models.into_iter().map(|m| m.logits).collect(),
        ));
    }
    pb.finish();
    let source = PoolSource {
        data: a.data.clone(),
        label: a.label.clone(),
        split: "train".into(),
        indices: idx,
    };
    let seeds = (0..per_set).map(|m| model_seed(a.seed, m)).collect();
    Ok(AuditResult {
        data: a.data.clone(),
        classes: pool.classes,
        pool: pool_n,
        models: per_set,
        targets: vec![0],
        target_members: design.members[0].iter().filter(|&&b| b).count(),
        references: a.references,
        shadows: a.shadows,
        trained: Some(TrainedModels {
            architecture: a.architecture.name().into(),
            widths,
            train: a.train.clone(),
            lr_quantized: a.lr_quantized,
            models_trained: trained,
            models_cached: cached,
        }),
        output_files: Vec::new(),
        outputs: None,
        bootstrap: a.bootstrap,
        seed: a.seed,
        seconds: t0.elapsed().as_secs_f64(),
        settings,
        design_file: DesignFile::new(&design, Some(source), Some(seeds)),
        design,
        logits: all_logits,
        labels: pool.y.clone(),
    })
}

/// Every model's released statistics under `defense`, from row-major `pool x classes` logits.
pub fn release(
    logits: &[&[f32]],
    classes: usize,
    labels: &[u32],
    defense: &Defense,
) -> Result<Vec<Released>> {
    use rayon::prelude::*;
    logits
        .par_iter()
        .enumerate()
        .map(|(m, l)| {
            Released::from_logits(l, classes, labels, defense)
                .with_context(|| format!("outputs of model {m}"))
        })
        .collect()
}
