//! Errors of compression and decompression: each says what is wrong and, where it can, what to do.

/// What can go wrong; decoding never panics on any input, it returns one of these.
#[derive(Debug, thiserror::Error)]
pub enum ZipError {
    #[error("not a strata-zip file (no STZP magic at the start)")]
    NotAContainer,
    #[error("strata-zip format version {0} is not supported by this build (it reads version {v}; the model changed between versions, so decompress with the strata that wrote the file)", v = crate::VERSION)]
    UnsupportedVersion(u8),
    #[error("truncated strata-zip file: {0}")]
    Truncated(&'static str),
    #[error("corrupt strata-zip file: {0}")]
    Corrupt(String),
    /// The header claims more data than its coded stream could possibly hold (checked before
    /// decoding, so a forged length costs no time).
    #[error("corrupt strata-zip file: header claims {claimed} {unit} but the {stream_len}-byte {stream} can code at most {max}")]
    Oversized {
        claimed: u64,
        unit: &'static str,
        stream: &'static str,
        stream_len: u64,
        max: u64,
    },
    #[error("checksum mismatch: the decoded data's CRC-32 is {got:08x}, the file says {want:08x} (the file is corrupt)")]
    Checksum { want: u32, got: u32 },
    #[error("invalid model: {0}")]
    InvalidModel(String),
}

/// Result with a [`ZipError`].
pub type Result<T> = std::result::Result<T, ZipError>;
