//! `mia score`: membership inference on outside models. A design says which pool examples each
//! of K models trained on; the user trained them (in PyTorch, on a GPU, anywhere) and saved each
//! model's logits on the pool; this scores every attack on one target, or on every model in
//! turn, and returns the same result `mia audit` does, so the same report follows.

use super::audit::{check_counts, AuditResult, Origin, Setting};
use super::design::DesignFile;
use super::outputs::{read_labels, OutputFiles, OutputKind};
use crate::progress::Progress;
use crate::setting::{Setting as UserSetting, SettingError};
use crate::train::load_data;
use anyhow::{bail, Context, Result};
use std::path::PathBuf;
use strata_privacy::score::{references_of, score, ScoreConfig};
use strata_privacy::{attack_by_name, Defense, MembershipAttack, Released};

/// Which models are attacked.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Targets {
    /// One model; the others are its references.
    One(usize),
    /// Every model in turn (the LiRA paper's evaluation): figures are reported as mean and
    /// spread over targets, beside the first target's intervals.
    All,
}

/// Settings of `strata mia score`.
#[derive(Clone, Debug)]
pub struct ScoreArgs {
    /// design.json.
    pub design: PathBuf,
    /// One output file per model in model order, or one stacked models x pool x classes file.
    pub outputs: Vec<PathBuf>,
    /// Logits or probabilities.
    pub kind: OutputKind,
    /// Integer labels of the pool (`None`: from the design's data set).
    pub labels: Option<PathBuf>,
    /// Which models are attacked.
    pub targets: Targets,
    /// Use only the first this many other models as references (`None`: all).
    pub references: Option<usize>,
    /// Shadow models of Shokri et al.'s attack (the first references; `None`: 4, or every
    /// reference when there are fewer).
    pub shadows: Option<usize>,
    /// Attacks, by name.
    pub attacks: Vec<String>,
    /// Output defenses applied to every model's released vectors (`none` always runs first).
    pub defenses: Vec<Defense>,
    /// Bootstrap resamples behind the primary target's intervals.
    pub bootstrap: usize,
    /// Seed of the bootstrap and of Shokri et al.'s attack models.
    pub seed: u64,
}

/// Accuracy of `r` on the examples where `mask` is `want`: a prediction is right when the true
/// class has the largest probability.
fn accuracy(r: &Released, mask: &[bool], want: bool) -> f64 {
    let (mut right, mut n) = (0usize, 0usize);
    for (i, &m) in mask.iter().enumerate() {
        if m == want {
            n += 1;
            right += usize::from(r.confidence(i) >= r.top(i));
        }
    }
    right as f64 / n.max(1) as f64
}

/// The pool's labels: from `--labels`, or from the data set the design's pool was drawn from.
fn labels(a: &ScoreArgs, file: &DesignFile, progress: &dyn Progress) -> Result<Vec<u32>> {
    if let Some(p) = &a.labels {
        return read_labels(p, file.pool);
    }
    let Some(src) = &file.source else {
        return Err(SettingError::within(
            UserSetting::Labels,
            "the design does not name a data set, so the pool's labels must be given (",
            ": a .npy file of integers, one per pool example)",
        )
        .into());
    };
    let data = load_data(&src.data, src.label.as_deref(), None, progress)
        .with_context(|| format!("reading the labels of the design's data set '{}'", src.data))?;
    src.indices
        .iter()
        .map(|&i| {
            data.train.y.get(i).copied().with_context(|| {
                format!(
                    "the design's pool names example {i} of '{}', which has {} training examples",
                    src.data,
                    data.train.len()
                )
            })
        })
        .collect()
}

/// Score outside models' outputs (see the module docs).
pub fn run(a: &ScoreArgs, progress: &dyn Progress) -> Result<AuditResult> {
    let t0 = std::time::Instant::now();
    let (file, design) = DesignFile::read(&a.design)?;
    let k = design.models();
    let targets: Vec<usize> = match a.targets {
        Targets::One(t) if t >= k => {
            return Err(SettingError::new(
                UserSetting::Target,
                format!(" {t}: the design has models 0 to {}", k - 1),
            )
            .into())
        }
        Targets::One(t) => vec![t],
        Targets::All => (0..k).collect(),
    };
    let references = a.references.unwrap_or(k - 1);
    if references > k - 1 {
        return Err(SettingError::new(
            UserSetting::References,
            format!(
                " {references}: the design has {k} models, so each target has at most {} \
                 references",
                k - 1
            ),
        )
        .into());
    }
    let shadows = a
        .shadows
        .unwrap_or(strata_privacy::shokri::default_shadows(references));
    check_counts(references, shadows, a.bootstrap, Origin::Cli)?;
    let attacks: Vec<Box<dyn MembershipAttack>> = a
        .attacks
        .iter()
        .map(|n| attack_by_name(n, shadows, a.seed).map_err(anyhow::Error::from))
        .collect::<Result<_>>()?;
    if attacks.is_empty() {
        return Err(SettingError::new(UserSetting::Attacks, ": name at least one attack").into());
    }
    for at in &attacks {
        if at.references_needed() > references {
            bail!(
                "attack '{}' needs at least {} reference models, each target has {references}; drop the attack or use more models",
                at.name(),
                at.references_needed()
            );
        }
    }
    if let Some(d) = a.defenses.iter().find(|d| d.is_training_time()) {
        return Err(SettingError::new(
            UserSetting::Defenses,
            format!(
                " {}: a training-time defense needs models trained with it; score those models' \
                 outputs on their own",
                d.name()
            ),
        )
        .into());
    }
    let labels = labels(a, &file, progress)?;
    let files = OutputFiles::open(&a.outputs, k, design.pool)?;
    progress.log(&format!(
        "mia score: {k} models x {} pool examples x {} classes; {} target(s), {references} reference(s) each, {} attack(s)",
        design.pool,
        files.classes,
        targets.len(),
        attacks.len()
    ));
    let mut defenses = vec![Defense::None];
    defenses.extend(a.defenses.iter().filter(|d| **d != Defense::None));
    let task = progress.task("score", "settings", defenses.len() as u64);
    let mut settings = Vec::new();
    let primary = targets[0];
    let mut accuracies = None;
    for d in &defenses {
        task.set_message(&format!("defense {}", d.name()));
        let released = files.released(&labels, a.kind, d)?;
        let (train_acc, test_acc, ref_acc) = *accuracies.get_or_insert_with(|| {
            let refs = references_of(&design, primary, Some(references));
            let ref_acc = refs
                .iter()
                .map(|&m| accuracy(&released[m], &design.members[m], false))
                .sum::<f64>()
                / refs.len().max(1) as f64;
            (
                accuracy(&released[primary], &design.members[primary], true),
                accuracy(&released[primary], &design.members[primary], false),
                ref_acc,
            )
        });
        let cfg = ScoreConfig {
            attacks: &attacks,
            targets: &targets,
            references: Some(references),
            bootstrap: a.bootstrap,
            seed: a.seed,
        };
        settings.push(Setting {
            precision: String::new(),
            defense: d.name(),
            train_accuracy: train_acc,
            test_accuracy: test_acc,
            reference_test_accuracy: ref_acc,
            attacks: score(&released, &design, &cfg)?,
        });
        task.inc(1);
    }
    task.finish();
    Ok(AuditResult {
        data: file
            .source
            .as_ref()
            .map_or_else(|| "pool".to_string(), |s| s.data.clone()),
        classes: files.classes,
        pool: design.pool,
        models: k,
        target_members: design.members[primary].iter().filter(|&&b| b).count(),
        targets,
        references,
        shadows,
        trained: None,
        output_files: a.outputs.iter().map(|p| p.display().to_string()).collect(),
        outputs: Some(a.kind),
        bootstrap: a.bootstrap,
        seed: a.seed,
        seconds: t0.elapsed().as_secs_f64(),
        settings,
        design_file: file,
        design,
        logits: Vec::new(),
        labels,
    })
}
