//! Typed errors for building and training networks.
//!
//! Messages are one line and name the configuration field at fault in neutral terms ("hidden
//! widths", "input shape", "batch size"), never a command-line flag: each front end adds its own
//! words (the CLI names its flags, the analysis runner its spec line).

use strata_data::memory::human_bytes;

/// Why a network could not be built or trained.
#[derive(Debug, thiserror::Error)]
pub enum NnError {
    /// A size above one of the hard caps in [`crate::limits`]: refused whatever the machine,
    /// because such values are typos, not experiments.
    #[error("{what}: {value} is more than the {max} allowed")]
    TooLarge {
        /// The field, in neutral terms (`hidden layers`, `width of hidden layer 2`).
        what: String,
        /// The value asked for.
        value: u64,
        /// The cap it exceeds.
        max: u64,
    },
    /// A value that cannot describe a network (a zero dimension, an input too small for a
    /// convolution, a shape of the wrong rank).
    #[error("{what}: {msg}")]
    Invalid {
        /// The field at fault, in neutral terms (`input shape [1, 0, 28]`, `classes`).
        what: String,
        /// Why it cannot describe a network.
        msg: String,
    },
    /// The network would not fit in the memory this process may still claim.
    #[error(
        "{what}: the network needs {} of memory {action} but only {} is available; {hint}",
        human_bytes(*.need),
        human_bytes(*.available)
    )]
    Memory {
        /// What drives the size (`hidden widths [60000, 60000]`, `batch size 100000`).
        what: String,
        /// Bytes needed (by [`crate::limits::estimate`]).
        need: u64,
        /// Bytes this process may still claim ([`strata_data::memory::available_bytes`]).
        available: u64,
        /// `to build`, `to train`, `more to train`.
        action: &'static str,
        /// What to change, in neutral terms (`use narrower or fewer layers`).
        hint: &'static str,
    },
    /// An operation the network cannot do (packed inference of a network that is not `w1a1`).
    /// The message is the whole line.
    #[error("{0}")]
    Unsupported(String),
    /// A tensor operation failed: candle's error, unchanged (same message, same source chain),
    /// so that the functions which returned it before keep their messages.
    #[error(transparent)]
    Candle(#[from] candle_core::Error),
}

impl NnError {
    pub(crate) fn invalid(what: impl Into<String>, msg: impl Into<String>) -> Self {
        NnError::Invalid {
            what: what.into(),
            msg: msg.into(),
        }
    }
}
