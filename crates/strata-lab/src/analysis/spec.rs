//! The analysis spec: a TOML file that says which data sets, which models (families expanded over
//! precisions and seeds), which comparisons and which report. `analyses/README.md` is the
//! reference for every key.
//!
//! Parsing is strict: an unknown key, a value of the wrong type or out of range, or a reference
//! to a data set or model that does not exist is one error naming the file, the line and the key,
//! and nothing runs.

use serde::{Deserialize, Deserializer, Serialize};
use std::collections::BTreeMap;
use std::ops::Range;
use std::path::Path;
use strata_nn::net::Architecture;
use strata_nn::train::{OptimizerKind, Schedule, TrainConfig};
use strata_nn::Precision;
use strata_sim::{Estimator, Kernel};
use toml::Spanned;

/// A spec that could not be read: file, 1-based line, message.
#[derive(Debug, thiserror::Error)]
#[error("{file}, line {line}: {msg}")]
pub struct SpecError {
    pub file: String,
    pub line: usize,
    pub msg: String,
}

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

/// A data set name as `strata train --data` takes it, checked while parsing.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(transparent)]
pub struct DataSource(pub String);

impl std::ops::Deref for DataSource {
    type Target = str;
    fn deref(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Display for DataSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for DataSource {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        let known = ["mnist", "mnist-small", "digits", "adult"].contains(&s.as_str())
            || ["mnist:", "adult:", "csv:"]
                .iter()
                .any(|p| s.starts_with(p) && s.len() > p.len());
        if known {
            Ok(DataSource(s))
        } else {
            Err(serde::de::Error::custom(format!(
                "unknown data source '{s}': use mnist, mnist:DIR, mnist-small, digits, adult, \
                 adult:DIR or csv:PATH"
            )))
        }
    }
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Split {
    Train,
    #[default]
    Test,
}

impl Split {
    pub fn name(self) -> &'static str {
        match self {
            Split::Train => "train",
            Split::Test => "test",
        }
    }
}

/// `[data.NAME]`: a data set and which of its examples the activations are collected on.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DataSpec {
    /// `mnist`, `mnist:DIR`, `mnist-small`, `digits`, `adult`, `adult:DIR` or `csv:PATH`.
    pub source: DataSource,
    /// Label column of a `csv:PATH` source.
    pub label: Option<String>,
    /// Train on the first N training examples only.
    pub train_limit: Option<usize>,
    /// Split the activations are collected on (and CKA computed over).
    #[serde(default)]
    pub collect_split: Split,
    /// Collect the first N examples of that split only.
    pub collect_limit: Option<usize>,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OptimizerName {
    #[default]
    Adam,
    Sgd,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ScheduleName {
    Constant,
    #[default]
    Cosine,
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
    #[serde(default = "default_arch")]
    pub architecture: Architecture,
    /// Hidden widths (MLP only).
    #[serde(default = "default_widths")]
    pub widths: Vec<usize>,
    #[serde(default = "default_precisions")]
    pub precisions: Vec<PrecisionName>,
    #[serde(default = "default_seeds")]
    pub seeds: Vec<u64>,
    #[serde(default = "default_epochs")]
    pub epochs: usize,
    #[serde(default = "default_batch")]
    pub batch_size: usize,
    /// Base learning rate (float networks, and quantized ones unless `lr_quantized` is set).
    #[serde(default = "default_lr")]
    pub lr: f64,
    /// Base learning rate of the quantized precisions.
    pub lr_quantized: Option<f64>,
    #[serde(default)]
    pub optimizer: OptimizerName,
    #[serde(default = "default_momentum")]
    pub momentum: f64,
    #[serde(default)]
    pub weight_decay: f64,
    #[serde(default)]
    pub schedule: ScheduleName,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum KernelName {
    #[default]
    Linear,
    Rbf,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum EstimatorName {
    #[default]
    Biased,
    Debiased,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ActivationPoint {
    /// Output of each block's nonlinearity (the logits block: its batch-norm output).
    #[default]
    Post,
    /// Input of each nonlinearity (batch-norm output).
    Pre,
}

fn default_threshold() -> f64 {
    0.5
}

/// `[cka]`: how every comparison measures similarity.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CkaSpec {
    #[serde(default)]
    pub kernel: KernelName,
    #[serde(default = "default_threshold")]
    pub rbf_threshold: f64,
    #[serde(default)]
    pub estimator: EstimatorName,
    #[serde(default)]
    pub activations: ActivationPoint,
    /// Minibatch CKA with this many examples per batch (debiased estimator).
    pub batch_size: Option<usize>,
    /// `cka` (default), or a baseline measure for every comparison: `cca_rho`, `cca_r2`,
    /// `svcca_rho`, `svcca_r2`, `pwcca`, `linreg`, `procrustes`, `hsic`, `cka_linear`.
    pub measure: Option<String>,
    /// Where linear CKA runs, and where MLP activations are collected (convolutional
    /// networks collect on the CPU): `cpu`, `cuda` or `auto` (default: the GPU when present).
    #[serde(default)]
    pub device: strata_gpu::DeviceChoice,
}

impl Default for CkaSpec {
    fn default() -> Self {
        CkaSpec {
            kernel: KernelName::Linear,
            rbf_threshold: default_threshold(),
            estimator: EstimatorName::Biased,
            activations: ActivationPoint::Post,
            batch_size: None,
            measure: None,
            device: strata_gpu::DeviceChoice::Auto,
        }
    }
}

impl CkaSpec {
    pub fn kernel(&self) -> Kernel {
        match self.kernel {
            KernelName::Linear => Kernel::Linear,
            KernelName::Rbf => Kernel::Rbf {
                threshold: self.rbf_threshold,
            },
        }
    }
    pub fn estimator(&self) -> Estimator {
        match self.estimator {
            EstimatorName::Biased => Estimator::Biased,
            EstimatorName::Debiased => Estimator::Debiased,
        }
    }
}

/// `[[compare]]`: one pair of model instances, every layer against every layer (a heatmap).
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CompareSpec {
    pub a: Spanned<String>,
    pub b: Spanned<String>,
}

/// `[twins]`: each quantized instance against the float instance of the same family and seed,
/// layer by layer, with the float seed-to-seed variation as the yardstick.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TwinsSpec {
    /// Families to include (default: every family with a float precision and another one).
    pub models: Option<Vec<Spanned<String>>>,
    /// Draw a full heatmap against the float twin for the first seed of each precision.
    #[serde(default = "yes")]
    pub heatmaps: bool,
}

/// Limits that keep a typo from allocating the machine away or training for ever: the network
/// library's, so a spec and every command obey the same ones.
pub use strata_nn::limits::{MAX_BATCH, MAX_EPOCHS, MAX_LAYERS, MAX_WIDTH};

fn yes() -> bool {
    true
}

/// `[identify]`: Kornblith et al.'s layer-identification test across the seeds of a family.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IdentifySpec {
    /// Families whose networks (one per seed, at `precision`) are compared with each other.
    pub models: Vec<Spanned<String>>,
    /// Which precision's networks (default float).
    pub precision: Option<PrecisionName>,
    /// Measures to test (default: every one, as in the paper's Table 2).
    pub measures: Option<Vec<Spanned<String>>>,
}

fn default_references() -> usize {
    16
}
fn default_bootstrap() -> usize {
    200
}

/// `[privacy]`: a membership-inference audit of each named family, every one of its precisions
/// training its own target and reference models (see `strata mia audit --help`).
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PrivacySpec {
    /// Families to audit; each uses its data, architecture, precisions and training settings,
    /// and its first seed as the audit's seed.
    pub models: Vec<Spanned<String>>,
    /// Pool size (default: the data's `train_limit`, else the training split up to 10,000).
    pub pool: Option<usize>,
    #[serde(default = "default_references")]
    pub references: usize,
    /// Shadow models of Shokri et al.'s attack (default: 4, or all references when fewer).
    pub shadows: Option<usize>,
    /// Attacks (default: all).
    pub attacks: Option<Vec<Spanned<String>>>,
    /// Defenses: none, topK, roundD, tempT, l2=LAMBDA (default: none).
    pub defenses: Option<Vec<Spanned<String>>>,
    #[serde(default = "default_bootstrap")]
    pub bootstrap: usize,
}

/// A checked `[privacy]` section.
#[derive(Clone, Debug, Serialize)]
pub struct PrivacyPlan {
    pub families: Vec<String>,
    pub pool: Option<usize>,
    pub references: usize,
    pub shadows: usize,
    pub attacks: Vec<String>,
    pub defenses: Vec<strata_privacy::Defense>,
    pub bootstrap: usize,
}

/// RBF CKA bandwidths of Kornblith et al.'s Table 2, tested by default as `cka_rbf_T`.
pub const RBF_THRESHOLDS: &[&str] = &["0.2", "0.4", "0.8"];

/// The identification test's default measures: linear CKA, RBF CKA at the paper's bandwidths,
/// then every baseline of `strata_sim` (whose names are the single list of them).
pub fn identify_measures() -> Vec<String> {
    std::iter::once("cka_linear".to_string())
        .chain(RBF_THRESHOLDS.iter().map(|t| format!("cka_rbf_{t}")))
        .chain(
            strata_sim::MEASURE_NAMES
                .iter()
                .filter(|m| **m != "cka_linear")
                .map(|m| m.to_string()),
        )
        .collect()
}

/// The threshold of a `cka_rbf_T` measure name.
pub fn rbf_threshold_of(name: &str) -> Option<f64> {
    let t: f64 = name.strip_prefix("cka_rbf_")?.parse().ok()?;
    (t.is_finite() && t > 0.0).then_some(t)
}

/// The whole file, as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct SpecFile {
    title: Option<String>,
    description: Option<String>,
    #[serde(default)]
    data: BTreeMap<String, Spanned<DataSpec>>,
    #[serde(default)]
    model: Vec<Spanned<ModelSpec>>,
    #[serde(default)]
    cka: Option<Spanned<CkaSpec>>,
    #[serde(default)]
    compare: Vec<Spanned<CompareSpec>>,
    twins: Option<Spanned<TwinsSpec>>,
    identify: Option<Spanned<IdentifySpec>>,
    privacy: Option<Spanned<PrivacySpec>>,
    /// Reserved for compression experiments (`strata zip` runs them from the command line).
    compression: Option<Spanned<toml::Table>>,
}

/// One network to train: a family at one precision and seed.
#[derive(Clone, Debug, Serialize)]
pub struct Instance {
    /// `family-precision-sSEED`.
    pub name: String,
    pub family: String,
    pub data: String,
    pub architecture: Architecture,
    /// Hidden widths (empty for CNNs).
    pub widths: Vec<usize>,
    pub precision: Precision,
    pub train: TrainConfig,
}

/// A checked spec, families expanded into instances.
#[derive(Clone, Debug, Serialize)]
pub struct Analysis {
    /// Report folder name (the spec's file stem).
    pub name: String,
    pub title: String,
    pub description: String,
    pub data: BTreeMap<String, DataSpec>,
    pub families: Vec<ModelSpec>,
    pub instances: Vec<Instance>,
    pub cka: CkaSpec,
    /// Pairs of instance indices.
    pub compare: Vec<(usize, usize)>,
    /// Families compared with their float twins.
    pub twins: Vec<String>,
    pub twin_heatmaps: bool,
    /// Identification test: (family, precision, measures).
    pub identify: Vec<(String, Precision, Vec<String>)>,
    /// Membership-inference audits (`[privacy]`).
    pub privacy: Option<PrivacyPlan>,
    /// Line of each family's `[[model]]` header, for errors found after parsing.
    pub family_lines: Vec<usize>,
    /// The spec file, for errors found after parsing.
    pub file: String,
}

impl Analysis {
    pub fn instance(&self, name: &str) -> Option<usize> {
        self.instances.iter().position(|i| i.name == name)
    }
}

fn line_of(text: &str, offset: usize) -> usize {
    text[..offset.min(text.len())]
        .bytes()
        .filter(|&b| b == b'\n')
        .count()
        + 1
}

/// The line of `key = ...` in the table that starts at `span` (its header up to the next
/// header), else the table's first line: so an error about one key points at that key.
fn key_line(text: &str, span: &Range<usize>, key: &str) -> usize {
    let start = span.start.min(text.len());
    let mut offset = start;
    for (k, l) in text[start..].split_inclusive('\n').enumerate() {
        let t = l.trim_start();
        if k > 0 && t.starts_with('[') && !t.starts_with("[\"") {
            break;
        }
        if let Some(rest) = t.strip_prefix(key) {
            if rest.trim_start().starts_with('=') {
                return line_of(text, offset);
            }
        }
        offset += l.len();
    }
    line_of(text, start)
}

/// The key an error on `line` (1-based) belongs to: `key = value` on that line, or, inside a
/// multi-line array, on the nearest line above; a `[table]` header stands for itself.
fn key_at(text: &str, line: usize) -> Option<String> {
    let lines: Vec<&str> = text.lines().collect();
    let mut i = line.checked_sub(1)?;
    loop {
        let here = lines.get(i)?.trim();
        if here.starts_with('[') && i + 1 == line {
            return Some(here.to_string());
        }
        if here.starts_with('[') && !here.starts_with("[\"") {
            return None;
        }
        if let Some((k, _)) = here.split_once('=') {
            let k = k.trim();
            if !k.is_empty() && !k.contains(['"', '[', ',']) {
                return Some(k.to_string());
            }
        }
        i = i.checked_sub(1)?;
    }
}

/// A clean file name part: letters, digits, `-`, `_`, `.`.
fn is_clean(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 64
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
        && !s.starts_with('.')
}

/// Read and check a spec file.
pub fn load(path: &Path) -> Result<Analysis, SpecError> {
    let text = std::fs::read_to_string(path).map_err(|e| SpecError {
        file: path.display().to_string(),
        line: 0,
        msg: format!("cannot read the analysis spec: {e}"),
    })?;
    let name = path
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_else(|| "analysis".into());
    parse(&text, &path.display().to_string(), &name)
}

/// Parse and check spec text; `file` names it in errors, `name` is the report folder.
pub fn parse(text: &str, file: &str, name: &str) -> Result<Analysis, SpecError> {
    let err_at = |line: usize, msg: String| SpecError {
        file: file.to_string(),
        line,
        msg,
    };
    let err = |span: Range<usize>, msg: String| err_at(line_of(text, span.start), msg);
    let raw: SpecFile = toml::from_str(text).map_err(|e| {
        let line = e.span().map_or(0, |s| line_of(text, s.start));
        let msg = e.message().trim().replace('\n', " ");
        // Serde's messages ("invalid type: string, expected usize") do not say which key; the
        // line does: `key = value`, the line that opened a multi-line array, or a header.
        let msg = match key_at(text, line) {
            Some(k) if !msg.contains(&k) => format!("{k}: {msg}"),
            _ => msg,
        };
        SpecError {
            file: file.to_string(),
            line,
            msg,
        }
    })?;
    if !is_clean(name) {
        return Err(err(
            0..0,
            format!(
                "the spec's file name '{name}' names the report folder: use letters, digits, '-', \
                 '_', '.' (not first)"
            ),
        ));
    }
    if let Some(c) = &raw.compression {
        return Err(err(
            c.span(),
            "[compression]: compression experiments are not yet part of analysis specs (use \
             `strata zip compress` and `strata zip bench` for now); remove the section"
                .into(),
        ));
    }
    let mut data = BTreeMap::new();
    for (key, d) in &raw.data {
        let span = d.span();
        let d = d.get_ref();
        if !is_clean(key) {
            return Err(err(
                span,
                format!("[data.{key}]: use letters, digits, '-', '_' in data set names"),
            ));
        }
        let at = |k: &str, msg: &str| {
            err_at(key_line(text, &span, k), format!("[data.{key}] {k}: {msg}"))
        };
        if d.label.is_some() && !d.source.starts_with("csv:") {
            return Err(at("label", "only csv:PATH sources take a label column"));
        }
        if d.train_limit.is_some_and(|n| n < 2) {
            return Err(at("train_limit", "must be at least 2"));
        }
        if d.collect_limit.is_some_and(|n| n < 4) {
            return Err(at(
                "collect_limit",
                "must be at least 4 (CKA's debiased estimator needs 4)",
            ));
        }
        data.insert(key.clone(), d.clone());
    }

    let mut families: Vec<ModelSpec> = Vec::new();
    let mut family_lines = Vec::new();
    let mut instances = Vec::new();
    for m in &raw.model {
        let span = m.span();
        let m = m.get_ref();
        let at = |k: &str, msg: String| {
            err_at(
                key_line(text, &span, k),
                format!("[[model]] '{}' {k}: {msg}", m.name),
            )
        };
        if !is_clean(&m.name) {
            return Err(at(
                "name",
                "use letters, digits, '-', '_', '.' (not first)".into(),
            ));
        }
        if families.iter().any(|f| f.name == m.name) {
            return Err(at("name", "another [[model]] has this name".into()));
        }
        if !data.contains_key(m.data.get_ref()) {
            return Err(err(
                m.data.span(),
                format!(
                    "[[model]] '{}' data: '{}' is not a [data.NAME] table of this spec (have: {})",
                    m.name,
                    m.data.get_ref(),
                    data.keys().cloned().collect::<Vec<_>>().join(", ")
                ),
            ));
        }
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
        family_lines.push(line_of(text, span.start));
        for p in &m.precisions {
            for &seed in &m.seeds {
                let lr = match p.0 {
                    Precision::Float => m.lr,
                    _ => m.lr_quantized.unwrap_or(m.lr),
                };
                instances.push(Instance {
                    name: format!("{}-{}-s{seed}", m.name, p.0.name()),
                    family: m.name.clone(),
                    data: m.data.get_ref().clone(),
                    architecture: m.architecture,
                    widths: if m.architecture == Architecture::Mlp {
                        m.widths.clone()
                    } else {
                        Vec::new()
                    },
                    precision: p.0,
                    train: TrainConfig {
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
                    },
                });
            }
        }
        families.push(m.clone());
    }
    if instances.is_empty() {
        return Err(err(0..0, "the spec has no [[model]] to train".into()));
    }

    let cka = match &raw.cka {
        Some(c) => {
            let span = c.span();
            let c = c.get_ref().clone();
            let at =
                |k: &str, msg: &str| err_at(key_line(text, &span, k), format!("[cka] {k}: {msg}"));
            if c.kernel == KernelName::Rbf
                && !(c.rbf_threshold.is_finite() && c.rbf_threshold > 0.0)
            {
                return Err(at("rbf_threshold", "must be a positive number"));
            }
            if let Some(m) = &c.measure {
                if m != "cka" && !strata_sim::MEASURE_NAMES.contains(&m.as_str()) {
                    let msg = format!(
                        "unknown measure '{m}': use cka, {}",
                        strata_sim::MEASURE_NAMES.join(", ")
                    );
                    return Err(at("measure", &msg));
                }
                if m != "cka" && c.batch_size.is_some() {
                    return Err(at(
                        "batch_size",
                        "minibatch applies to measure = \"cka\" only",
                    ));
                }
            }
            if let Some(bs) = c.batch_size {
                if bs < 4 {
                    return Err(at("batch_size", "must be at least 4"));
                }
                if c.estimator == EstimatorName::Biased {
                    return Err(at(
                        "batch_size",
                        "minibatch CKA averages the unbiased HSIC: also set estimator = \"debiased\"",
                    ));
                }
            }
            c
        }
        None => CkaSpec::default(),
    };

    let find = |s: &Spanned<String>, key: &str| -> Result<usize, SpecError> {
        instances
            .iter()
            .position(|i| &i.name == s.get_ref())
            .ok_or_else(|| {
                err(
                    s.span(),
                    format!(
                        "[[compare]] {key} = '{}' is not a model of this spec; models are named \
                         FAMILY-PRECISION-sSEED, e.g. '{}'",
                        s.get_ref(),
                        instances[0].name
                    ),
                )
            })
    };
    let mut compare = Vec::new();
    for c in &raw.compare {
        let c = c.get_ref();
        let (a, b) = (find(&c.a, "a")?, find(&c.b, "b")?);
        if data_of(&instances, a) != data_of(&instances, b) {
            return Err(err(
                c.b.span(),
                format!(
                    "[[compare]] '{}' and '{}' read different data sets: CKA compares two \
                     representations of the same examples",
                    c.a.get_ref(),
                    c.b.get_ref()
                ),
            ));
        }
        compare.push((a, b));
    }

    let has_twins = |f: &ModelSpec| {
        f.precisions.iter().any(|p| p.0 == Precision::Float) && f.precisions.len() > 1
    };
    let (twins, twin_heatmaps) = match &raw.twins {
        None => (Vec::new(), false),
        Some(t) => {
            let tspan = t.span();
            let t = t.get_ref();
            let names = match &t.models {
                None => families
                    .iter()
                    .filter(|f| has_twins(f))
                    .map(|f| f.name.clone())
                    .collect(),
                Some(list) => {
                    let mut v = Vec::new();
                    for s in list {
                        let f = families
                            .iter()
                            .find(|f| &f.name == s.get_ref())
                            .ok_or_else(|| {
                                err(
                                    s.span(),
                                    format!(
                                        "[twins] models: '{}' is not a [[model]] name",
                                        s.get_ref()
                                    ),
                                )
                            })?;
                        if !has_twins(f) {
                            return Err(err(
                                s.span(),
                                format!(
                                    "[twins] models: '{}' needs 'float' and at least one other precision",
                                    f.name
                                ),
                            ));
                        }
                        v.push(f.name.clone());
                    }
                    v
                }
            };
            if names.is_empty() {
                return Err(err(
                    tspan,
                    "[twins]: no [[model]] has both 'float' and a quantized precision".into(),
                ));
            }
            (names, t.heatmaps)
        }
    };

    let mut identify = Vec::new();
    if let Some(id) = &raw.identify {
        let ispan = id.span();
        let id = id.get_ref();
        let precision = id.precision.map_or(Precision::Float, |p| p.0);
        let measures: Vec<String> = match &id.measures {
            None => identify_measures(),
            Some(list) => {
                let mut v = Vec::new();
                for m in list {
                    let name = m.get_ref();
                    if !strata_sim::MEASURE_NAMES.contains(&name.as_str())
                        && rbf_threshold_of(name).is_none()
                    {
                        return Err(err(
                            m.span(),
                            format!(
                                "[identify] measures: unknown measure '{name}'; use {} (or \
                                 cka_rbf_T for any bandwidth T > 0)",
                                identify_measures().join(", ")
                            ),
                        ));
                    }
                    if !v.contains(name) {
                        v.push(name.clone());
                    }
                }
                v
            }
        };
        if measures.is_empty() || id.models.is_empty() {
            return Err(err(
                ispan,
                "[identify]: models and measures must not be empty".into(),
            ));
        }
        for f in &id.models {
            let fam = families
                .iter()
                .find(|x| &x.name == f.get_ref())
                .ok_or_else(|| {
                    err(
                        f.span(),
                        format!(
                            "[identify] models: '{}' is not a [[model]] name",
                            f.get_ref()
                        ),
                    )
                })?;
            let seeds = if fam.precisions.iter().any(|p| p.0 == precision) {
                fam.seeds.len()
            } else {
                0
            };
            if seeds < 2 {
                return Err(err(
                    f.span(),
                    format!(
                        "[identify] models: '{}' needs at least 2 seeds at precision {} (the test \
                         compares networks trained from different seeds)",
                        fam.name,
                        precision.name()
                    ),
                ));
            }
            identify.push((fam.name.clone(), precision, measures.clone()));
        }
    }

    let privacy = match &raw.privacy {
        None => None,
        Some(p) => Some(privacy_plan(p, &families, &err)?),
    };

    Ok(Analysis {
        name: name.to_string(),
        title: raw.title.unwrap_or_else(|| name.to_string()),
        description: raw.description.unwrap_or_default(),
        data,
        families,
        instances,
        cka,
        compare,
        twins,
        twin_heatmaps,
        identify,
        privacy,
        family_lines,
        file: file.to_string(),
    })
}

fn privacy_plan(
    p: &Spanned<PrivacySpec>,
    families: &[ModelSpec],
    err: &dyn Fn(Range<usize>, String) -> SpecError,
) -> Result<PrivacyPlan, SpecError> {
    let span = p.span();
    let p = p.get_ref();
    if p.models.is_empty() {
        return Err(err(
            span,
            "[privacy] models: name at least one [[model]]".into(),
        ));
    }
    let mut names = Vec::new();
    for f in &p.models {
        if !families.iter().any(|x| &x.name == f.get_ref()) {
            return Err(err(
                f.span(),
                format!(
                    "[privacy] models: '{}' is not a [[model]] name",
                    f.get_ref()
                ),
            ));
        }
        names.push(f.get_ref().clone());
    }
    let shadows = p.shadows.unwrap_or(p.references.clamp(1, 4));
    let attacks: Vec<String> = match &p.attacks {
        None => strata_privacy::ATTACK_NAMES
            .iter()
            .map(|s| s.to_string())
            .collect(),
        Some(list) => list.iter().map(|a| a.get_ref().clone()).collect(),
    };
    for (k, name) in attacks.iter().enumerate() {
        let at_span = p.attacks.as_ref().map_or(span.clone(), |l| l[k].span());
        let at = strata_privacy::attack_by_name(name, shadows, 0)
            .map_err(|e| err(at_span.clone(), format!("[privacy] attacks: {e}")))?;
        if at.references_needed() > p.references {
            return Err(err(
                at_span,
                format!(
                    "[privacy] attacks: '{name}' needs at least {} reference models, references is {}",
                    at.references_needed(),
                    p.references
                ),
            ));
        }
    }
    let mut defenses = Vec::new();
    for d in p.defenses.iter().flatten() {
        defenses.push(
            strata_privacy::Defense::parse(d.get_ref())
                .map_err(|e| err(d.span(), format!("[privacy] defenses: {e}")))?,
        );
    }
    if p.pool.is_some_and(|n| n < 20) {
        return Err(err(span, "[privacy] pool: at least 20 examples".into()));
    }
    crate::mia::audit::check_counts(p.references, shadows, p.bootstrap, &|k| {
        crate::mia::Origin::Spec.name(k)
    })
    .map_err(|e| err(span.clone(), e.to_string()))?;
    Ok(PrivacyPlan {
        families: names,
        pool: p.pool,
        references: p.references,
        shadows,
        attacks,
        defenses,
        bootstrap: p.bootstrap,
    })
}

fn data_of(instances: &[Instance], i: usize) -> &str {
    &instances[i].data
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = r#"
title = "t"
[data.d]
source = "digits"
collect_limit = 100

[[model]]
name = "mlp"
data = "d"
widths = [32, 16]
precisions = ["float", "w1a1"]
seeds = [0, 1]
epochs = 2

[[compare]]
a = "mlp-float-s0"
b = "mlp-w1a1-s1"

[twins]
"#;

    fn parse_err(text: &str) -> SpecError {
        parse(text, "x.toml", "x").expect_err("should fail")
    }

    #[test]
    fn expands_families_into_instances() {
        let a = parse(GOOD, "x.toml", "x").unwrap();
        let names: Vec<_> = a.instances.iter().map(|i| i.name.as_str()).collect();
        assert_eq!(
            names,
            ["mlp-float-s0", "mlp-float-s1", "mlp-w1a1-s0", "mlp-w1a1-s1"]
        );
        assert_eq!(a.compare, vec![(0, 3)]);
        assert_eq!(a.twins, vec!["mlp".to_string()]);
        assert_eq!(a.instances[3].train.seed, 1);
        assert_eq!(a.instances[2].precision, Precision::W1A1);
    }

    #[test]
    fn unknown_key_names_key_and_line() {
        let text = GOOD.replace("epochs = 2", "epochs = 2\nlearning_rate = 0.1");
        let e = parse_err(&text);
        assert!(e.msg.contains("learning_rate"), "{e}");
        let want = text
            .lines()
            .position(|l| l.starts_with("learning_rate"))
            .unwrap()
            + 1;
        assert_eq!(e.line, want, "{e}");
    }

    #[test]
    fn bad_values_name_their_line() {
        let text = GOOD.replace("\"w1a1\"]", "\"w3a3\"]");
        let e = parse_err(&text);
        assert!(e.msg.contains("w3a3"), "{e}");
        assert_eq!(e.line, 11, "{e}");

        let text = GOOD.replace("b = \"mlp-w1a1-s1\"", "b = \"mlp-w1a1-s7\"");
        let e = parse_err(&text);
        assert!(e.msg.contains("mlp-w1a1-s7"), "{e}");
        assert_eq!(e.line, 17, "{e}");

        let e = parse_err(&GOOD.replace("data = \"d\"", "data = \"nope\""));
        assert!(e.msg.contains("nope") && e.line == 9, "{e}");

        let e = parse_err(&GOOD.replace("epochs = 2", "epochs = 0"));
        assert!(e.msg.contains("epochs"), "{e}");

        let e = parse_err(&GOOD.replace("epochs = 2", "epochs = \"two\""));
        assert!(e.msg.starts_with("epochs: "), "{e}");
        assert_eq!(e.line, 13, "{e}");
    }

    #[test]
    fn each_bad_key_points_at_its_own_line() {
        let text = GOOD.replace("epochs = 2", "epochs = 2\nbatch_size = 1");
        let e = parse_err(&text);
        assert!(e.msg.contains("batch_size"), "{e}");
        assert_eq!(e.line, 14, "{e}");
        let text = GOOD.replace("collect_limit = 100", "collect_limit = 2");
        let e = parse_err(&text);
        assert!(e.msg.contains("collect_limit") && e.line == 5, "{e}");
        let text = GOOD.replace(
            "widths = [32, 16]",
            &format!("widths = [{}]", ["8"; 65].join(", ")),
        );
        let e = parse_err(&text);
        assert!(e.msg.contains("widths") && e.line == 10, "{e}");
        // Inside a multi-line array, the error names the key that opened it.
        let text = GOOD.replace("[\"float\", \"w1a1\"]", "[\n  \"float\",\n  \"w3a3\",\n]");
        let e = parse_err(&text);
        assert!(e.msg.starts_with("precisions: ") && e.line == 11, "{e}");
    }

    #[test]
    fn missing_keys_name_the_table() {
        let e = parse_err(&GOOD.replace("data = \"d\"\n", ""));
        assert!(e.msg.contains("data") && e.msg.contains("[[model]]"), "{e}");
        assert_eq!(e.line, 7, "{e}");
    }

    #[test]
    fn privacy_sections_are_checked() {
        let ok = parse(
            &format!("{GOOD}\n[privacy]\nmodels = [\"mlp\"]\nreferences = 4\ndefenses = [\"none\", \"top1\", \"l2=1e-3\"]\n"),
            "x.toml",
            "x",
        )
        .unwrap();
        let p = ok.privacy.unwrap();
        assert_eq!(p.families, ["mlp"]);
        assert_eq!((p.references, p.shadows), (4, 4));
        assert_eq!(p.attacks.len(), strata_privacy::ATTACK_NAMES.len());
        assert_eq!(p.defenses.len(), 3);
        let cases = [
            ("models = [\"cnn\"]", "'cnn' is not a [[model]] name", 22),
            (
                "models = [\"mlp\"]\nattacks = [\"lira\", \"nope\"]",
                "unknown attack 'nope'",
                23,
            ),
            (
                "models = [\"mlp\"]\nreferences = 1\nattacks = [\"lira\"]",
                "needs at least 2",
                24,
            ),
            (
                "models = [\"mlp\"]\ndefenses = [\"blur\"]",
                "defense 'blur'",
                23,
            ),
            ("attacks = [\"lira\"]", "models", 21),
        ];
        for (body, want, line) in cases {
            let e = parse_err(&format!("{GOOD}\n[privacy]\n{body}\n"));
            assert!(e.msg.contains(want), "{body}: {e}");
            assert_eq!(e.line, line, "{body}: {e}");
        }
    }

    #[test]
    fn twins_need_float_and_another_precision() {
        let text = GOOD.replace("[\"float\", \"w1a1\"]", "[\"w1a1\"]");
        let text = text.replace("a = \"mlp-float-s0\"", "a = \"mlp-w1a1-s0\"");
        let e = parse_err(&text);
        assert!(e.msg.contains("twins"), "{e}");
    }
}
