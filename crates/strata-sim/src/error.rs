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
    /// CKA is 0/0 for this input: a constant representation, or a debiased self-similarity
    /// that is not positive. strata reports it instead of returning NaN.
    #[error("CKA is undefined: {0}")]
    Undefined(String),
}
