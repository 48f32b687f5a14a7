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
    /// The kernel to compute with (the RBF one carries `rbf_threshold`).
    pub fn kernel(&self) -> Kernel {
        match self.kernel {
            KernelName::Linear => Kernel::Linear,
            KernelName::Rbf => Kernel::Rbf {
                threshold: self.rbf_threshold,
            },
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
    Ok(c)
}
