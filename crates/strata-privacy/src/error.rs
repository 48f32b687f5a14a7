/// Why an attack or a metric could not be computed.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum PrivacyError {
    /// Arrays that should describe the same examples do not.
    #[error("{what}: {got} values, expected {expected}")]
    Mismatched {
        what: &'static str,
        got: usize,
        expected: usize,
    },
    /// A score or an output that is NaN or infinite.
    #[error("{what} is not finite at example {example}")]
    NonFinite { what: &'static str, example: usize },
    /// A ROC curve needs at least one member and one non-member.
    #[error("need at least one member and one non-member, got {members} members and {non_members} non-members")]
    OneSided { members: usize, non_members: usize },
    /// The attack needs reference (shadow) models and was given too few.
    #[error("{attack} needs at least {need} reference models, got {got}; raise --references")]
    TooFewReferences {
        attack: String,
        need: usize,
        got: usize,
    },
    /// A label outside `0..classes`.
    #[error("label {label} at example {example} is not below the number of classes ({classes})")]
    BadLabel {
        label: u32,
        example: usize,
        classes: usize,
    },
    /// An invalid setting (unknown attack name, bad defense parameter).
    #[error("{0}")]
    Invalid(String),
}

pub type Result<T> = std::result::Result<T, PrivacyError>;
