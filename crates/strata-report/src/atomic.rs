use crate::ReportError;
use std::path::Path;

/// Write `bytes` to `path` through a temporary file in the same directory and a rename, so a
/// reader never sees a half-written file and a failure leaves the previous version in place
/// ([`strata_data::fsutil::write_atomic`], the one implementation strata's crates share).
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), ReportError> {
    strata_data::fsutil::write_atomic(path, |w| w.write_all(bytes)).map_err(|err| ReportError::Io {
        path: path.to_path_buf(),
        err,
    })
}
