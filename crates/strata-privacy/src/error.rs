/// Why an attack or a metric could not be computed.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum PrivacyError {
    /// Arrays that should describe the same examples do not.
    #[error("{what}: {got} values, expected {expected}")]
    Mismatched {
        /// What was compared (`logits`, `membership labels`, ...).
        what: &'static str,
        /// Number of values given.
        got: usize,
        /// Number of values needed.
        expected: usize,
    },
    /// A score or an output that is NaN or infinite.
    #[error("{what} is not finite at example {example}")]
    NonFinite {
        /// Which value (`an attack score`, `a logit`).
        what: &'static str,
        /// Index of the first offending example.
        example: usize,
    },
    /// A ROC curve needs at least one member and one non-member.
    #[error("need at least one member and one non-member, got {members} members and {non_members} non-members")]
    OneSided {
        /// Number of members given.
        members: usize,
        /// Number of non-members given.
        non_members: usize,
    },
    /// The attack needs reference (shadow) models and was given too few.
    #[error(
        "{attack} needs at least {need} reference models, got {got}; train more reference models"
    )]
    TooFewReferences {
        /// The attack's name.
        attack: String,
        /// Reference models it needs.
        need: usize,
        /// Reference models it was given.
        got: usize,
    },
    /// A label outside `0..classes`.
    #[error("label {label} at example {example} is not below the number of classes ({classes})")]
    BadLabel {
        /// The label found.
        label: u32,
        /// Index of the example carrying it.
        example: usize,
        /// Number of classes of the released vectors.
        classes: usize,
    },
    /// An invalid setting (unknown attack name, bad defense parameter).
    #[error("{0}")]
    Invalid(String),
}

/// Result type of this crate.
pub type Result<T> = std::result::Result<T, PrivacyError>;
