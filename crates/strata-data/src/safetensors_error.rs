//! Plain-English messages for the `safetensors` crate's errors.
//!
//! The library's errors print as its internal names (`TensorInvalidInfo`, `InvalidOffset("fc2")`,
//! `InvalidHeaderLength`), which tell a user neither what is wrong with their file nor what to
//! do. Every reader of `.safetensors` files in strata (activations here, model weights in
//! strata-nn) goes through these functions so that the same fault reads the same way everywhere.

use safetensors::tensor::TensorInfo;
use safetensors::SafeTensorError;
use std::collections::BTreeMap;

/// The largest header the safetensors format allows (the library's own limit).
pub(crate) const MAX_HEADER_BYTES: u64 = 100_000_000;

/// One line of plain English for a safetensors error, without the file name: callers prefix
/// it with the file (`"{path}: {message}"`). Tensors are named where the error names one.
///
/// Prefer [`safetensors_error_message_in`] when the file's bytes are at hand: it also names the
/// tensor for the errors that the library reports without one.
pub fn safetensors_error_message(err: &SafeTensorError) -> String {
    message(err, None)
}

/// Like [`safetensors_error_message`], but looks into `file` (the whole safetensors file, or at
/// least its length prefix and header) to name the offending tensor and the sizes involved when
/// the library's error does not.
pub fn safetensors_error_message_in(err: &SafeTensorError, file: &[u8]) -> String {
    message(err, Some(file))
}

fn message(err: &SafeTensorError, file: Option<&[u8]>) -> String {
    use SafeTensorError as E;
    let diag = file.and_then(diagnose);
    let named = |fallback: &str| -> String {
        match &diag {
            Some(d) => d.clone(),
            None => fallback.to_string(),
        }
    };
    match err {
        E::InvalidHeader(_) => {
            "its header is not valid UTF-8 text (corrupt file, or not a safetensors file)".into()
        }
        E::InvalidHeaderDeserialization(e) => format!(
            "its JSON header is malformed ({}); the file is corrupt or not a safetensors file",
            one_line(&e.to_string())
        ),
        E::HeaderTooLarge => format!(
            "its header claims to be larger than the {} MB that safetensors allows (corrupt \
             file, or not a safetensors file)",
            MAX_HEADER_BYTES / 1_000_000
        ),
        E::HeaderTooSmall => {
            "is shorter than the 8-byte length prefix every safetensors file starts with \
             (truncated or empty file)"
                .into()
        }
        E::InvalidHeaderLength => match file.and_then(header_len) {
            Some(n) => format!(
                "its header claims {n} bytes but only {} follow the length prefix \
                 (truncated or corrupt file)",
                file.map_or(0, |f| f.len().saturating_sub(8))
            ),
            None => {
                "its header length runs past the end of the file (truncated or corrupt file)".into()
            }
        },
        E::TensorNotFound(name) => format!("has no tensor named '{}'", one_line(name)),
        E::TensorInvalidInfo => {
            named("a tensor's data offsets disagree with its shape and dtype (corrupt file)")
        }
        E::InvalidOffset(name) => format!(
            "tensor '{}': its data offsets do not start where the previous tensor's data ends \
             (overlapping, out of order or with gaps: corrupt file)",
            one_line(name)
        ),
        E::IoError(e) => format!("could not be read: {}", one_line(&e.to_string())),
        E::JsonError(e) => format!(
            "its metadata is not valid JSON ({})",
            one_line(&e.to_string())
        ),
        E::InvalidTensorView(dtype, shape, len) => format!(
            "a {dtype:?} tensor of shape {shape:?} cannot be built from {len} bytes \
             (the byte count does not match the shape)"
        ),
        E::MetadataIncompleteBuffer => match (file, file.and_then(data_end)) {
            (Some(f), Some(end)) => {
                let have = f.len() as u64;
                if end > have {
                    format!(
                        "its tensors' data should end at byte {end} but the file has only \
                         {have} bytes (truncated file)"
                    )
                } else {
                    format!(
                        "its tensors' data ends at byte {end} but the file has {have} bytes \
                         (extra bytes appended, or a corrupt header)"
                    )
                }
            }
            _ => "its tensors' data does not end where the file ends (truncated file, or extra \
                  bytes appended)"
                .into(),
        },
        E::ValidationOverflow => named("a tensor's shape is too large to address (corrupt file)"),
        E::MisalignedSlice => {
            "a tensor of sub-byte elements (F4/F6) does not fill whole bytes; strata cannot \
             read it"
                .into()
        }
    }
}

/// Keep library text on one line.
fn one_line(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

fn header_len(file: &[u8]) -> Option<u64> {
    Some(u64::from_le_bytes(file.get(..8)?.try_into().ok()?))
}

/// The header's tensors, by name, when it parses.
fn tensors(file: &[u8]) -> Option<BTreeMap<String, TensorInfo>> {
    let n = usize::try_from(header_len(file)?).ok()?;
    if n as u64 > MAX_HEADER_BYTES {
        return None;
    }
    let text = std::str::from_utf8(file.get(8..8usize.checked_add(n)?)?).ok()?;
    let raw: BTreeMap<String, serde_json::Value> = serde_json::from_str(text).ok()?;
    let mut out = BTreeMap::new();
    for (k, v) in raw {
        if k == "__metadata__" {
            continue;
        }
        out.insert(k, serde_json::from_value(v).ok()?);
    }
    Some(out)
}

/// Byte offset (from the start of the file) where the header says the data ends.
fn data_end(file: &[u8]) -> Option<u64> {
    let n = header_len(file)?;
    let end = tensors(file)?
        .values()
        .map(|t| t.data_offsets.1 as u64)
        .max()
        .unwrap_or(0);
    8u64.checked_add(n)?.checked_add(end)
}

/// The first tensor whose shape, dtype and offsets disagree, in a message naming it.
fn diagnose(file: &[u8]) -> Option<String> {
    for (name, t) in tensors(file)? {
        let name = one_line(&name);
        let bytes = t
            .shape
            .iter()
            .try_fold(1usize, |a, &d| a.checked_mul(d))
            .and_then(|n| n.checked_mul(t.dtype.bitsize()))
            .map(|bits| bits.div_ceil(8));
        let Some(bytes) = bytes else {
            return Some(format!(
                "tensor '{name}': its shape {:?} is too large to address (corrupt file)",
                t.shape
            ));
        };
        let (s, e) = t.data_offsets;
        if e < s || e - s != bytes {
            return Some(format!(
                "tensor '{name}': a {:?} tensor of shape {:?} needs {bytes} bytes but its data \
                 offsets [{s}, {e}] span {} (corrupt file)",
                t.dtype,
                t.shape,
                if e < s {
                    "a negative range".to_string()
                } else {
                    format!("{}", e - s)
                }
            ));
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use safetensors::Dtype;

    #[test]
    fn every_error_is_one_plain_line() {
        let bytes = vec![0xff_u8, 0xfe];
        let utf8 = std::str::from_utf8(&bytes).unwrap_err();
        let json = || serde_json::from_str::<u8>("{").unwrap_err();
        let errors = vec![
            SafeTensorError::InvalidHeader(utf8),
            SafeTensorError::InvalidHeaderDeserialization(json()),
            SafeTensorError::HeaderTooLarge,
            SafeTensorError::HeaderTooSmall,
            SafeTensorError::InvalidHeaderLength,
            SafeTensorError::TensorNotFound("fc9".into()),
            SafeTensorError::TensorInvalidInfo,
            SafeTensorError::InvalidOffset("fc2".into()),
            SafeTensorError::IoError(std::io::Error::other("disk on fire")),
            SafeTensorError::JsonError(json()),
            SafeTensorError::InvalidTensorView(Dtype::F32, vec![2, 3], 20),
            SafeTensorError::MetadataIncompleteBuffer,
            SafeTensorError::ValidationOverflow,
            SafeTensorError::MisalignedSlice,
        ];
        for e in &errors {
            let debug = format!("{e:?}");
            let variant = debug.split(['(', ' ']).next().unwrap_or_default();
            for m in [
                safetensors_error_message(e),
                safetensors_error_message_in(e, b"junk"),
            ] {
                assert!(!m.is_empty() && !m.contains('\n'), "{m}");
                assert!(!m.contains(variant), "{variant} leaks into: {m}");
            }
        }
        assert!(safetensors_error_message(&errors[7]).starts_with("tensor 'fc2': "));
        assert!(safetensors_error_message(&errors[5]).contains("'fc9'"));
    }
}
