//! `[[model]]`: families of networks, each expanded over its precisions and seeds into the
//! instances a spec trains.

use super::{is_clean, Ctx, DataSpec, SpecError, MAX_BATCH, MAX_EPOCHS, MAX_LAYERS, MAX_WIDTH};
use serde::{Deserialize, Deserializer, Serialize};
use std::collections::BTreeMap;
use std::ops::Range;
use strata_nn::net::{Architecture, LogitsLayer};
use strata_nn::train::{OptimizerKind, Schedule, TrainConfig};
use strata_nn::Precision;
use toml::Spanned;

/// Precision as written in a spec (`"w1a1"`), checked while parsing so the error carries the line.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct PrecisionName(pub Precision);

impl<'de> Deserialize<'de> for PrecisionName {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Precision::parse(&s).map(PrecisionName).ok_or_else(|| {
            serde::de::Error::custom(format!(
                "unknown precision '{s}': use float, w1a1, w1a2, w2a2, w4a4 or w8a8"
            ))
        })
    }
}

/// Optimizer as written in `[[model]] optimizer`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OptimizerName {
    /// Adam with decoupled weight decay (AdamW; the default).
    #[default]
    Adam,
    /// SGD with `momentum`; weight decay added to the gradient.
    Sgd,
}

/// Learning-rate schedule as written in `[[model]] schedule`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ScheduleName {
    /// The base rate at every epoch.
    Constant,
    /// Cosine decay to 1% of the base rate at the last epoch (the default).
    #[default]
    Cosine,
    /// The rate divided by 10 every third of the epochs.
    Step,
}

fn default_arch() -> Architecture {
    Architecture::Mlp
}
fn default_widths() -> Vec<usize> {
    vec![1024, 1024]
}
fn default_precisions() -> Vec<PrecisionName> {
    vec![PrecisionName(Precision::Float)]
}
fn default_seeds() -> Vec<u64> {
    vec![0]
}
fn default_epochs() -> usize {
    10
}
fn default_batch() -> usize {
    100
}
fn default_lr() -> f64 {
    1e-3
}
fn default_momentum() -> f64 {
    0.9
}

/// `[[model]]`: a family of networks, one per (precision, seed).
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelSpec {
    /// Family name; instances are named `NAME-PRECISION-sSEED`.
    pub name: String,
    /// Key of a `[data.NAME]` table.
    pub data: Spanned<String>,
    /// Network architecture (default `mlp`).
    #[serde(default = "default_arch")]
    pub architecture: Architecture,
    /// Hidden widths (MLP only).
    #[serde(default = "default_widths")]
    pub widths: Vec<usize>,
    /// How the logits are computed: `batchnorm` (dense -> batch norm, BinaryNet's choice; the
    /// default) or `linear` (dense + bias, as Kornblith et al.'s and most float networks).
    #[serde(default)]
    pub logits: LogitsLayer,
    /// Precisions to train, each once per seed (default `["float"]`).
    #[serde(default = "default_precisions")]
    pub precisions: Vec<PrecisionName>,
    /// Seeds, one network per seed and precision (default `[0]`).
    #[serde(default = "default_seeds")]
    pub seeds: Vec<u64>,
    /// Passes over the training set (default 10).
    #[serde(default = "default_epochs")]
    pub epochs: usize,
    /// Examples per training step, at least 2 (default 100).
    #[serde(default = "default_batch")]
    pub batch_size: usize,
    /// Base learning rate (float networks, and quantized ones unless `lr_quantized` is set).
    #[serde(default = "default_lr")]
    pub lr: f64,
    /// Base learning rate of the quantized precisions.
    pub lr_quantized: Option<f64>,
    /// Optimizer (default `adam`).
    #[serde(default)]
    pub optimizer: OptimizerName,
    /// SGD momentum, in [0, 1) (default 0.9; Adam ignores it).
    #[serde(default = "default_momentum")]
    pub momentum: f64,
    /// Weight decay, >= 0 (default 0): decoupled for Adam, L2 in the gradient for SGD.
    #[serde(default)]
    pub weight_decay: f64,
    /// Learning-rate schedule over epochs (default `cosine`).
    #[serde(default)]
    pub schedule: ScheduleName,
}

/// One network to train: a family at one precision and seed.
#[derive(Clone, Debug, Serialize)]
pub struct Instance {
    /// `family-precision-sSEED`.
    pub name: String,
    /// Name of the family it belongs to.
    pub family: String,
    /// Key of its `[data.NAME]` table.
    pub data: String,
    /// Network architecture.
    pub architecture: Architecture,
    /// Hidden widths (empty for CNNs).
    pub widths: Vec<usize>,
    /// How the logits are computed (left out of cache keys when it is the default).
    #[serde(skip_serializing_if = "LogitsLayer::is_batch_norm")]
    pub logits: LogitsLayer,
    /// Precision of weights and activations.
    pub precision: Precision,
    /// Training settings, the seed included.
    pub train: TrainConfig,
}

/// The checked `[[model]]` tables: families in spec order, the line of each one's header, and
/// every instance (family by family, precision by precision, seed by seed).
pub(super) struct Families {
    pub families: Vec<ModelSpec>,
    pub lines: Vec<usize>,
    pub instances: Vec<Instance>,
}

/// Check every `[[model]]` table and expand the families into instances; none is an error unless
/// the spec compares `[[store]]` files (`has_stores`).
pub(super) fn check(
    cx: &Ctx,
    raw: &[Spanned<ModelSpec>],
    data: &BTreeMap<String, DataSpec>,
    has_stores: bool,
) -> Result<Families, SpecError> {
    let mut out = Families {
        families: Vec::new(),
        lines: Vec::new(),
        instances: Vec::new(),
    };
    for m in raw {
        let span = m.span();
        let m = m.get_ref();
        check_identity(cx, &span, m, &out.families, data)?;
        check_shape(cx, &span, m)?;
        check_training(cx, &span, m)?;
        out.lines.push(cx.line(span.start));
        out.instances.extend(instances_of(m));
        out.families.push(m.clone());
    }
    if out.instances.is_empty() && !has_stores {
        return Err(cx.err(0..0, "the spec has no [[model]] to train".into()));
    }
    Ok(out)
}

/// An error about key `k` of family `m` (whose table starts at `span`), on that key's line.
fn at(cx: &Ctx, span: &Range<usize>, m: &ModelSpec, k: &str, msg: String) -> SpecError {
    cx.key_err(span, k, format!("[[model]] '{}' {k}: {msg}", m.name))
}

/// A clean name no earlier family has, and a data set of this spec.
fn check_identity(
    cx: &Ctx,
    span: &Range<usize>,
    m: &ModelSpec,
    earlier: &[ModelSpec],
    data: &BTreeMap<String, DataSpec>,
) -> Result<(), SpecError> {
    if !is_clean(&m.name) {
        let msg = "use letters, digits, '-', '_', '.' (not first)";
        return Err(at(cx, span, m, "name", msg.into()));
    }
    if earlier.iter().any(|f| f.name == m.name) {
        let msg = "another [[model]] has this name";
        return Err(at(cx, span, m, "name", msg.into()));
    }
    if !data.contains_key(m.data.get_ref()) {
        return Err(cx.err(
            m.data.span(),
            format!(
                "[[model]] '{}' data: '{}' is not a [data.NAME] table of this spec (have: {})",
                m.name,
                m.data.get_ref(),
                data.keys().cloned().collect::<Vec<_>>().join(", ")
            ),
        ));
    }
    Ok(())
}

/// Widths within the limits (MLPs), and non-empty precision and seed lists without repeats.
fn check_shape(cx: &Ctx, span: &Range<usize>, m: &ModelSpec) -> Result<(), SpecError> {
    let at = |k: &str, msg: String| at(cx, span, m, k, msg);
    if m.architecture == Architecture::Mlp {
        if m.widths.is_empty() || m.widths.contains(&0) {
            return Err(at(
                "widths",
                "give positive hidden layer widths, e.g. [256, 256]".into(),
            ));
        }
        if m.widths.len() > MAX_LAYERS || m.widths.iter().any(|&w| w > MAX_WIDTH) {
            return Err(at(
                "widths",
                format!("at most {MAX_LAYERS} hidden layers of at most {MAX_WIDTH} units"),
            ));
        }
    }
    if m.precisions.is_empty() {
        return Err(at("precisions", "must not be empty".into()));
    }
    if m.seeds.is_empty() {
        return Err(at("seeds", "must not be empty".into()));
    }
    for (i, p) in m.precisions.iter().enumerate() {
        if m.precisions[..i].contains(p) {
            return Err(at(
                "precisions",
                format!("'{}' is listed twice", p.0.name()),
            ));
        }
    }
    for (i, s) in m.seeds.iter().enumerate() {
        if m.seeds[..i].contains(s) {
            return Err(at("seeds", format!("{s} is listed twice")));
        }
    }
    Ok(())
}

/// Training settings within their ranges.
fn check_training(cx: &Ctx, span: &Range<usize>, m: &ModelSpec) -> Result<(), SpecError> {
    let at = |k: &str, msg: String| at(cx, span, m, k, msg);
    if m.epochs == 0 || m.epochs > MAX_EPOCHS {
        return Err(at("epochs", format!("must be between 1 and {MAX_EPOCHS}")));
    }
    if m.batch_size < 2 || m.batch_size > MAX_BATCH {
        return Err(at(
            "batch_size",
            format!("must be between 2 and {MAX_BATCH}"),
        ));
    }
    let lr_ok = |v: f64| v.is_finite() && v > 0.0;
    if !lr_ok(m.lr) {
        return Err(at("lr", "must be a positive number".into()));
    }
    if !m.lr_quantized.is_none_or(lr_ok) {
        return Err(at("lr_quantized", "must be a positive number".into()));
    }
    if !(m.weight_decay.is_finite() && m.weight_decay >= 0.0) {
        return Err(at("weight_decay", "must be >= 0".into()));
    }
    if !(m.momentum.is_finite() && (0.0..1.0).contains(&m.momentum)) {
        return Err(at("momentum", "must be in [0, 1)".into()));
    }
    Ok(())
}

/// The family's instances: one per (precision, seed), precisions outermost.
fn instances_of(m: &ModelSpec) -> Vec<Instance> {
    let mut out = Vec::new();
    for p in &m.precisions {
        for &seed in &m.seeds {
            out.push(Instance {
                name: format!("{}-{}-s{seed}", m.name, p.0.name()),
                family: m.name.clone(),
                data: m.data.get_ref().clone(),
                architecture: m.architecture,
                widths: if m.architecture == Architecture::Mlp {
                    m.widths.clone()
                } else {
                    Vec::new()
                },
                logits: m.logits,
                precision: p.0,
                train: train_config(m, p.0, seed),
            });
        }
    }
    out
}

/// How the family trains its network at precision `p` from `seed`.
fn train_config(m: &ModelSpec, p: Precision, seed: u64) -> TrainConfig {
    let lr = match p {
        Precision::Float => m.lr,
        _ => m.lr_quantized.unwrap_or(m.lr),
    };
    TrainConfig {
        epochs: m.epochs,
        batch_size: m.batch_size,
        lr,
        weight_decay: m.weight_decay,
        optimizer: match m.optimizer {
            OptimizerName::Adam => OptimizerKind::Adam,
            OptimizerName::Sgd => OptimizerKind::Sgd {
                momentum: m.momentum,
            },
        },
        schedule: match m.schedule {
            ScheduleName::Constant => Schedule::Constant,
            ScheduleName::Cosine => Schedule::Cosine,
            ScheduleName::Step => Schedule::Step {
                every: (m.epochs / 3).max(1),
                gamma: 0.1,
            },
        },
        seed,
        l2: 0.0,
    }
}
