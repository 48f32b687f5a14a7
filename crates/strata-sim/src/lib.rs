//! Similarity between neural network representations.
//!
//! A representation is an `n x p` matrix: `n` examples (rows, the same examples for every
//! representation compared), `p` features. This crate implements the Hilbert-Schmidt
//! Independence Criterion (HSIC) and Centered Kernel Alignment (CKA, Kornblith et al. 2019):
//!
//! * kernels: linear (`K = X Xᵀ`) and RBF with the bandwidth set from the median distance;
//! * estimators: biased (the centered Gram `tr(KHLH)/(n-1)²`) and debiased (the unbiased HSIC
//!   estimator of Song et al. 2012, U-centering in the terms of Székely & Rizzo);
//! * minibatch CKA (Nguyen, Raghu & Kornblith 2021): unbiased HSIC averaged over minibatches
//!   for all layer pairs at once, normalized once at the end, so memory does not grow with `n`;
//! * all pairs of layers of two models: each layer is centered (or turned into its Gram matrix)
//!   once, not once per pair.
//!
//! Beside CKA, the baselines of Kornblith et al.'s Table 2 (CCA `ρ̄` and `R²_CCA`, SVCCA,
//! PWCCA, linear regression `R²`, orthogonal Procrustes distance, linear HSIC) are computed
//! from a per-layer [`Basis`] (the thin SVD of the centered layer) through one [`Measure`]
//! trait, so that a layer is decomposed once for all the pairs it enters. The same trait
//! carries the measures of the examples' geometry: RSA ([`Rsa`]), mutual k-NN ([`MutualKnn`])
//! and CKNNA ([`Cknna`]), from the row statistics a [`Basis`] also keeps.
//!
//! Every measure can be tested against chance and given an interval: a seeded permutation
//! null (p-values, the chance level, z-scores) and bootstrap percentile intervals
//! ([`cka_null_all_pairs`], [`cka_bootstrap_all_pairs`], [`measure_null_all_pairs`],
//! [`measure_bootstrap_all_pairs`]); for CKA a permutation reorders a kernel matrix instead of
//! recomputing it.
//!
//! The linear kernel is computed in feature space (`‖YᵀX‖²_F`, `p² n` work) when a layer has
//! fewer features than examples, and through its `n x n` Gram matrix otherwise.

mod alignment;
mod basis;
mod cka;
mod error;
pub mod gemm;
mod measures;
mod moments;
mod null;
mod prepared;
mod special;

pub use alignment::{
    correlation_rdm, row_geometry_bytes, rsa_between_rdms, Cknna, MutualKnn, Rsa, DEFAULT_K,
    MAX_ROW_EXAMPLES, RDM_TIE_TOLERANCE,
};
pub use basis::{basis_bytes, Basis};
pub use cka::{
    cka, cka_all_pairs, cka_all_pairs_on, CkaMatrix, Cpu, HsicBackend, MinibatchCka, PairHsic,
    Progress,
};
pub use error::SimError;
pub use measures::{
    canonical_correlations, measure_by_name, pwcca_weights, similarity_matrix, value_range, Cca,
    LinearCka, LinearHsic, LinearRegression, Measure, Procrustes, Pwcca, PwccaParts, Svcca,
    MEASURE_NAMES, SVCCA_VARIANCE,
};
/// The analytic permutation null of linear (biased) CKA: the exact mean, variance and
/// skewness over all permutations (Kazi-Aoual et al. 1995) and a Pearson type III p-value,
/// for about the cost of the CKA matrix.
pub use moments::{cka_null_moments, cka_null_moments_all_pairs};
/// Is a similarity above chance, and how precisely is it known: a seeded permutation null
/// (p-values, the chance level, z-scores) and bootstrap percentile intervals, for CKA (a draw
/// permutes a kernel matrix instead of recomputing it) and for every [`Measure`]. See the
/// module for the definitions, the cost and the seed scheme.
pub use null::{
    cka_bootstrap, cka_bootstrap_all_pairs, cka_null_all_pairs, cka_permutation_test,
    cka_resampling_bytes, measure_bootstrap, measure_bootstrap_all_pairs, measure_null_all_pairs,
    measure_permutation_test, permutation, resample, BootstrapInterval, BootstrapMatrix,
    BootstrapOptions, NullMatrix, NullMethod, NullOptions, PermutationTest, DEFAULT_CONFIDENCE,
};
pub use prepared::{check_layer, hsic_estimate, prepared_bytes, LayerTerms, Prepared};
/// Special functions behind the moments null: `ln Γ`, the regularized incomplete gamma
/// functions, the normal tail and the standardized Pearson type III distribution.
pub use special::{
    ln_gamma, normal_upper_tail, pearson3_upper_quantile, pearson3_upper_tail, regularized_gamma_p,
    regularized_gamma_q,
};

use serde::Serialize;

/// The kernel applied to each representation before comparing.
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
pub enum Kernel {
    /// `K = X Xᵀ`.
    Linear,
    /// `K_ij = exp(-‖x_i - x_j‖² / (2 t² m))` with `m` the median of all `n²` squared distances
    /// (diagonal included, as in Kornblith et al.'s code) and `t` the threshold. The paper's
    /// default is `t = 0.5`; `0.2`, `0.4` and `0.8` appear in its Table 2.
    Rbf {
        /// `t`: the bandwidth as a fraction of the median distance, positive (0.5 in the paper).
        threshold: f64,
    },
}

impl Kernel {
    /// Short name for tables and JSON: `linear` or `rbf`.
    pub fn name(&self) -> &'static str {
        match self {
            Kernel::Linear => "linear",
            Kernel::Rbf { .. } => "rbf",
        }
    }
}

/// How HSIC is estimated from a finite sample.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub enum Estimator {
    /// `tr(K H L H) / (n-1)²`: the estimator of Gretton et al. 2005, biased by `O(1/n)`; its CKA
    /// is the one in Kornblith et al. 2019.
    Biased,
    /// The unbiased HSIC estimator (Song et al. 2012); needs `n >= 4`. Its CKA is "debiased CKA"
    /// and the building block of minibatch CKA.
    Debiased,
}

impl Estimator {
    /// Short name for tables and JSON: `biased` or `debiased`.
    pub fn name(&self) -> &'static str {
        match self {
            Estimator::Biased => "biased",
            Estimator::Debiased => "debiased",
        }
    }

    /// Fewest examples the estimator is defined for.
    pub fn min_examples(&self) -> usize {
        match self {
            Estimator::Biased => 2,
            Estimator::Debiased => 4,
        }
    }
}
