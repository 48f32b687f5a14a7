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
        value: u64,
        max: u64,
    },
    /// A value that cannot describe a network (a zero dimension, an input too small for a
    /// convolution, a shape of the wrong rank).
    #[error("{what}: {msg}")]
    Invalid { what: String, msg: String },
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
    /// A tensor operation failed.
    #[error("{}", one_line(&.0.to_string()))]
    Candle(#[from] candle_core::Error),
}

impl NnError {
    pub(crate) fn invalid(what: impl Into<String>, msg: impl Into<String>) -> Self {
        NnError::Invalid {
            what: what.into(),
            msg: msg.into(),
        }
    }

    /// For the functions that keep candle's error type (their callers in other crates expect
    /// it): the same one-line message, or the original tensor error.
    pub fn into_candle(self) -> candle_core::Error {
        match self {
            NnError::Candle(e) => e,
            other => candle_core::Error::Msg(other.to_string()),
        }
    }
}

/// Candle errors can carry a backtrace on later lines; strata reports one line.
fn one_line(s: &str) -> String {
    s.lines().next().unwrap_or("").to_string()
}
