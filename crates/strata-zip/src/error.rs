//! Errors of compression and decompression: each says what is wrong and, where it can, what to do.

/// What can go wrong; decoding never panics on any input, it returns one of these.
#[derive(Debug, thiserror::Error)]
pub enum ZipError {
    /// The input does not start with the container's magic bytes.
    #[error("not a strata-zip file (no STZP magic at the start)")]
    NotAContainer,
    /// The container was written by a strata with another format version (the version it says).
    #[error("strata-zip format version {0} is not supported by this build (it reads version {v}; the model changed between versions, so decompress with the strata that wrote the file)", v = crate::VERSION)]
    UnsupportedVersion(u8),
    /// The file ends before the named part is complete.
    #[error("truncated strata-zip file: {0}")]
    Truncated(&'static str),
    /// A header field or the coded stream is inconsistent (what is wrong).
    #[error("corrupt strata-zip file: {0}")]
    Corrupt(String),
    /// The header claims more data than its coded stream could possibly hold (checked before
    /// decoding, so a forged length costs no time).
    #[error("corrupt strata-zip file: header claims {claimed} {unit} but the {stream_len}-byte {stream} can code at most {max}")]
    Oversized {
        /// The length the header claims.
        claimed: u64,
        /// Its unit (`bytes`, `bases`).
        unit: &'static str,
        /// Which coded stream.
        stream: &'static str,
        /// Bytes of that stream in the file.
        stream_len: u64,
        /// Most `unit`s that many bytes can code.
        max: u64,
    },
    /// The decoded data's CRC-32 differs from the one the header recorded.
    #[error("checksum mismatch: the decoded data's CRC-32 is {got:08x}, the file says {want:08x} (the file is corrupt)")]
    Checksum {
        /// CRC-32 recorded in the header.
        want: u32,
        /// CRC-32 of the decoded data.
        got: u32,
    },
    /// A model spec that cannot be used (bad syntax or out-of-range sizes).
    #[error("invalid model: {0}")]
    InvalidModel(String),
}

/// Result with a [`ZipError`].
pub type Result<T> = std::result::Result<T, ZipError>;
