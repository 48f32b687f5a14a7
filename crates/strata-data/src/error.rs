use std::path::PathBuf;

/// Everything that can go wrong reading or writing data. Each variant renders as one line that
/// names the file and says what to do about it.
#[derive(Debug, thiserror::Error)]
pub enum DataError {
    /// The file could not be opened, read or written.
    #[error("{path}: {err}")]
    Io {
        /// The file.
        path: PathBuf,
        /// What the operating system said.
        err: std::io::Error,
    },
    /// The file's first bytes match none of the formats strata reads.
    #[error("{path}: unknown format (expected .npy, .npz, .safetensors, an Arrow IPC file or a Parquet file)")]
    UnknownFormat {
        /// The file.
        path: PathBuf,
    },
    /// The file claims a format but its contents break it (truncated, corrupt, unsupported).
    #[error("{path}: {msg}")]
    Corrupt {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        msg: String,
    },
    /// A layer name that the file does not hold.
    #[error("{path}: no layer named '{name}' (layers: {available})")]
    NoSuchLayer {
        /// The file.
        path: PathBuf,
        /// The layer asked for.
        name: String,
        /// The layers the file does hold, comma-separated.
        available: String,
    },
    /// Data that is well-formed but cannot be used as activations (NaN, empty, wrong shape).
    #[error("{path}: {msg}")]
    Invalid {
        /// The file.
        path: PathBuf,
        /// What makes the data unusable.
        msg: String,
    },
    /// Reading the file would need more memory than this process may still claim. Checked
    /// before allocating, so a file that claims a huge array gets this line instead of an
    /// out-of-memory abort.
    #[error("{path}: {err}; {hint}")]
    TooLarge {
        /// The file.
        path: PathBuf,
        /// How much was needed and how much is left.
        err: crate::memory::MemoryError,
        /// What the user can do about it.
        hint: String,
    },
}

impl DataError {
    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        DataError::Io {
            path: path.into(),
            err: source,
        }
    }
    pub(crate) fn corrupt(path: impl Into<PathBuf>, msg: impl std::fmt::Display) -> Self {
        DataError::Corrupt {
            path: path.into(),
            msg: msg.to_string(),
        }
    }
    /// Refuse an allocation of `need` bytes for `what` that would not fit in memory.
    pub(crate) fn check_fits(
        path: &std::path::Path,
        need: u64,
        what: impl Into<String>,
        hint: &str,
    ) -> Result<(), Self> {
        crate::memory::check_fits(need, what).map_err(|err| DataError::TooLarge {
            path: path.to_path_buf(),
            err,
            hint: hint.to_string(),
        })
    }
    pub(crate) fn invalid(path: impl Into<PathBuf>, msg: impl std::fmt::Display) -> Self {
        DataError::Invalid {
            path: path.into(),
            msg: msg.to_string(),
        }
    }
}
