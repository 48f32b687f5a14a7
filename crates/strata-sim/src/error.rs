/// Why a similarity could not be computed.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum SimError {
    /// Fewer examples than the estimator needs (`n(n-3)` divides the unbiased estimator).
    #[error("the {estimator} estimator needs at least {need} examples, got {n}")]
    TooFewExamples {
        /// Examples given.
        n: usize,
        /// Examples the estimator needs at least.
        need: usize,
        /// The estimator (`biased`, `debiased`).
        estimator: &'static str,
    },
    /// Two representations that do not describe the same examples.
    #[error("representations have different numbers of examples: {a} vs {b}")]
    MismatchedExamples {
        /// Examples (rows) of the first representation.
        a: usize,
        /// Examples (rows) of the second.
        b: usize,
    },
    /// NaN or Inf in a representation.
    #[error("a representation holds NaN or Inf (first at example {example}, feature {feature})")]
    NonFinite {
        /// Row of the first non-finite value (0-based).
        example: usize,
        /// Column of the first non-finite value (0-based).
        feature: usize,
    },
    /// A representation with no features.
    #[error("a representation has no features")]
    NoFeatures,
    /// The measure is undefined for this input (e.g. 0/0 for a constant representation, or
    /// a debiased self-similarity that is not positive); the message names the measure and
    /// why. strata reports it instead of returning NaN.
    #[error("{0}")]
    Undefined(String),
    /// A matrix decomposition (SVD, symmetric eigendecomposition) did not converge; reported
    /// instead of returning an inaccurate basis.
    #[error("the {0} did not converge")]
    NoConvergence(&'static str),
    /// The backend (a GPU) could not run the computation: no device memory left, a kernel
    /// unsupported there, a driver error. The message says what to do instead.
    #[error("{0}")]
    Backend(String),
    /// An option of a resampling statistic out of its range (no permutations or resamples, a
    /// confidence level outside `(0, 1)`); the message names the option and the range.
    #[error("{0}")]
    InvalidOption(String),
    /// Matrices whose shapes do not fit the product asked of [`crate::gemm`] (inner dimensions
    /// that differ, a non-square kernel matrix, two shapes where one is needed), or a result
    /// too large to address.
    #[error("{op}: {msg}")]
    Shape {
        /// The function refused (`gemm::xt_y`, ...).
        op: &'static str,
        /// The shapes it was given and what it needs.
        msg: String,
    },
}
