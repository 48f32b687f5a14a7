/// Why a similarity could not be computed.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum SimError {
    /// Fewer examples than the estimator needs (`n(n-3)` divides the unbiased estimator).
    #[error("the {estimator} estimator needs at least {need} examples, got {n}")]
    TooFewExamples {
        n: usize,
        need: usize,
        estimator: &'static str,
    },
    /// Two representations that do not describe the same examples.
    #[error("representations have different numbers of examples: {a} vs {b}")]
    MismatchedExamples { a: usize, b: usize },
    /// NaN or Inf in a representation.
    #[error("a representation holds NaN or Inf (first at example {example}, feature {feature})")]
    NonFinite { example: usize, feature: usize },
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
}
