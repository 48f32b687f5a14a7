//! `[cka]`: how every comparison measures similarity.

use super::{Ctx, SpecError};
use serde::{Deserialize, Serialize};
use strata_sim::{Estimator, Kernel};
use toml::Spanned;

/// Kernel as written in `[cka] kernel`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum KernelName {
    /// Linear kernel, `K = X Xᵀ` (the default).
    #[default]
    Linear,
    /// Gaussian (RBF) kernel, bandwidth set by `rbf_threshold`.
    Rbf,
}

/// HSIC estimator as written in `[cka] estimator`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum EstimatorName {
    /// The biased estimator of Kornblith et al. 2019 (the default).
    #[default]
    Biased,
    /// The unbiased estimator ("debiased CKA"; needs at least 4 examples).
    Debiased,
}

/// Where in each block activations are collected (`[cka] activations`).
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

/// How `[cka] null` obtains the permutation null.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum NullName {
    /// `permutations` seeded draws (the default; any measure).
    #[default]
    Draws,
    /// The exact permutation moments of linear biased CKA (the RV coefficient) and a Pearson
    /// type III p-value: no draws, about the cost of the matrix again.
    Moments,
}

impl NullName {
    /// True for the default (left out of manifests).
    pub fn is_draws(&self) -> bool {
        *self == NullName::Draws
    }
}

fn is_zero(v: &u64) -> bool {
    *v == 0
}

/// Largest `permutations` or `bootstrap` a spec may ask for.
pub const MAX_DRAWS: usize = 1_000_000;

/// `[cka]`: how every comparison measures similarity.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CkaSpec {
    /// Kernel applied to each layer's activations (default `linear`).
    #[serde(default)]
    pub kernel: KernelName,
    /// RBF bandwidth as a fraction of the median distance, positive (default 0.5).
    #[serde(default = "default_threshold")]
    pub rbf_threshold: f64,
    /// HSIC estimator (default `biased`; minibatch CKA is always debiased).
    #[serde(default)]
    pub estimator: EstimatorName,
    /// Activations compared: after (`post`, default) or before (`pre`) each nonlinearity.
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
    /// A permutation null per comparison with this many seeded draws: a p-value, the null's
    /// mean and 95% quantile, a z-score and the null-corrected value per pair of layers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub permutations: Option<usize>,
    /// `draws` (default: `permutations` draws, any measure) or `moments` (the analytic null of
    /// linear biased CKA; no `permutations`).
    #[serde(default, skip_serializing_if = "NullName::is_draws")]
    pub null: NullName,
    /// Bootstrap percentile intervals per pair of layers, over this many resamples of the
    /// examples.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bootstrap: Option<usize>,
    /// Confidence level of the bootstrap intervals, in (0, 1) (default 0.95).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub confidence: Option<f64>,
    /// Seed of the permutations and resamples (default 0).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub seed: u64,
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
            permutations: None,
            null: NullName::Draws,
            bootstrap: None,
            confidence: None,
            seed: 0,
        }
    }
}

impl CkaSpec {
    /// The kernel to compute with (the RBF one carries `rbf_threshold`).
    pub fn kernel(&self) -> Kernel {
        match self.kernel {
            KernelName::Linear => Kernel::Linear,
            KernelName::Rbf => Kernel::Rbf {
                threshold: self.rbf_threshold,
            },
        }
    }
    /// The significance statistics every comparison gets (none unless `permutations`,
    /// `null = "moments"` or `bootstrap` is set).
    pub fn significance(&self) -> crate::compare::Significance {
        crate::compare::Significance {
            permutations: self.permutations,
            null: match self.null {
                NullName::Draws => strata_sim::NullMethod::Draws,
                NullName::Moments => strata_sim::NullMethod::Moments,
            },
            bootstrap: self.bootstrap,
            confidence: self.confidence.unwrap_or(strata_sim::DEFAULT_CONFIDENCE),
            seed: self.seed,
        }
    }

    /// The HSIC estimator to compute with.
    pub fn estimator(&self) -> Estimator {
        match self.estimator {
            EstimatorName::Biased => Estimator::Biased,
            EstimatorName::Debiased => Estimator::Debiased,
        }
    }
}

/// Check the `[cka]` table (the defaults when there is none).
pub(super) fn check(cx: &Ctx, raw: Option<&Spanned<CkaSpec>>) -> Result<CkaSpec, SpecError> {
    let Some(c) = raw else {
        return Ok(CkaSpec::default());
    };
    let span = c.span();
    let c = c.get_ref().clone();
    let at = |k: &str, msg: &str| cx.key_err(&span, k, format!("[cka] {k}: {msg}"));
    if c.kernel == KernelName::Rbf && !(c.rbf_threshold.is_finite() && c.rbf_threshold > 0.0) {
        return Err(at("rbf_threshold", "must be a positive number"));
    }
    if let Some(m) = &c.measure {
        if m != "cka" && strata_sim::measure_by_name(m).is_none() {
            let msg = format!(
                "unknown measure '{m}': use cka, {} (mutual_knn and cknna take another \
                 neighbour count as mutual_knn:k=20)",
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
    check_significance(&c, &at)?;
    Ok(c)
}

/// `permutations`, `null`, `bootstrap`, `confidence` and `seed`: counts within range, and only
/// what the measure and the estimator support.
fn check_significance(c: &CkaSpec, at: &dyn Fn(&str, &str) -> SpecError) -> Result<(), SpecError> {
    for (k, v) in [("permutations", c.permutations), ("bootstrap", c.bootstrap)] {
        if let Some(b) = v {
            if b == 0 || b > MAX_DRAWS {
                let msg = format!(
                    "must be between 1 and {MAX_DRAWS} (999 resolve p = 0.001; a few thousand \
                     resamples give stable 95% bounds)"
                );
                return Err(at(k, &msg));
            }
        }
    }
    let asked = c.permutations.is_some() || c.bootstrap.is_some() || c.null == NullName::Moments;
    if asked && c.batch_size.is_some() {
        return Err(at(
            "batch_size",
            "minibatch CKA has no permutation null or bootstrap here: drop batch_size or the \
             significance keys",
        ));
    }
    if c.null == NullName::Moments {
        if c.permutations.is_some() {
            return Err(at(
                "permutations",
                "null = \"moments\" is analytic and draws no permutations: drop permutations, or \
                 use null = \"draws\"",
            ));
        }
        let cka = c.measure.as_deref().is_none_or(|m| m == "cka");
        if !cka || c.kernel != KernelName::Linear || c.estimator != EstimatorName::Biased {
            return Err(at(
                "null",
                "the moments null is exact for linear biased CKA only (kernel = \"linear\", \
                 estimator = \"biased\", measure = \"cka\"): use null = \"draws\" with \
                 permutations",
            ));
        }
    }
    if let Some(conf) = c.confidence {
        if c.bootstrap.is_none() {
            return Err(at(
                "confidence",
                "applies to bootstrap intervals: also set bootstrap",
            ));
        }
        if !(conf > 0.0 && conf < 1.0) {
            return Err(at(
                "confidence",
                "must lie strictly between 0 and 1 (0.95 for 95% intervals)",
            ));
        }
    }
    Ok(())
}
