//! MNIST in the IDX format of LeCun et al. (gzipped or not): `train-images-idx3-ubyte[.gz]`,
//! `train-labels-idx1-ubyte[.gz]`, `t10k-images-idx3-ubyte[.gz]`, `t10k-labels-idx1-ubyte[.gz]`.

use crate::{DataError, Result};
use flate2::read::GzDecoder;
use ndarray::Array2;
use std::io::Read;
use std::path::{Path, PathBuf};

/// Images (rows of 784 pixels scaled to [0, 1]) and labels of one split.
#[derive(Clone, Debug)]
pub struct Idx {
    /// One row of 784 pixels (28x28, row by row) per image, scaled from 0-255 to [0, 1].
    pub images: Array2<f32>,
    /// The digit (0-9) of each image.
    pub labels: Vec<u8>,
}

fn read_maybe_gz(path: &Path) -> Result<Vec<u8>> {
    let raw = std::fs::read(path).map_err(|e| DataError::io(path, e))?;
    if raw.starts_with(&[0x1f, 0x8b]) {
        let mut out = Vec::new();
        GzDecoder::new(&raw[..])
            .read_to_end(&mut out)
            .map_err(|e| DataError::corrupt(path, format!("bad gzip stream: {e}")))?;
        Ok(out)
    } else {
        Ok(raw)
    }
}

fn be_u32(b: &[u8], at: usize) -> Option<usize> {
    b.get(at..at + 4)
        .map(|s| u32::from_be_bytes([s[0], s[1], s[2], s[3]]) as usize)
}

/// Parse an IDX image file (magic 0x803) into `n x (rows*cols)` pixels in [0, 1].
pub fn parse_images(path: &Path, bytes: &[u8]) -> Result<(Array2<f32>, [usize; 2])> {
    let bad = |m: &str| DataError::corrupt(path, m);
    if be_u32(bytes, 0) != Some(0x803) {
        return Err(bad("not an IDX image file (magic 0x00000803)"));
    }
    let n = be_u32(bytes, 4).ok_or_else(|| bad("truncated header"))?;
    let r = be_u32(bytes, 8).ok_or_else(|| bad("truncated header"))?;
    let c = be_u32(bytes, 12).ok_or_else(|| bad("truncated header"))?;
    let need = n
        .checked_mul(r)
        .and_then(|v| v.checked_mul(c))
        .ok_or_else(|| bad("image dimensions overflow"))?;
    let data = bytes
        .get(16..16 + need)
        .ok_or_else(|| bad("truncated: fewer pixels than the header promises"))?;
    let px: Vec<f32> = data.iter().map(|&v| v as f32 / 255.0).collect();
    let m = Array2::from_shape_vec((n, r * c), px).map_err(|e| bad(&e.to_string()))?;
    Ok((m, [r, c]))
}

/// Parse an IDX label file (magic 0x801).
pub fn parse_labels(path: &Path, bytes: &[u8]) -> Result<Vec<u8>> {
    let bad = |m: &str| DataError::corrupt(path, m);
    if be_u32(bytes, 0) != Some(0x801) {
        return Err(bad("not an IDX label file (magic 0x00000801)"));
    }
    let n = be_u32(bytes, 4).ok_or_else(|| bad("truncated header"))?;
    let data = bytes
        .get(8..8 + n)
        .ok_or_else(|| bad("truncated: fewer labels than the header promises"))?;
    Ok(data.to_vec())
}

fn find(dir: &Path, stem: &str) -> Result<PathBuf> {
    for name in [format!("{stem}.gz"), stem.to_string()] {
        let p = dir.join(name);
        if p.exists() {
            return Ok(p);
        }
    }
    Err(DataError::invalid(
        dir,
        format!("no {stem}[.gz] here; expected the four MNIST IDX files"),
    ))
}

/// Load one split (`train` or `t10k`) from a directory of IDX files.
pub fn load_split(dir: &Path, prefix: &str) -> Result<Idx> {
    let ip = find(dir, &format!("{prefix}-images-idx3-ubyte"))?;
    let lp = find(dir, &format!("{prefix}-labels-idx1-ubyte"))?;
    let (images, _) = parse_images(&ip, &read_maybe_gz(&ip)?)?;
    let labels = parse_labels(&lp, &read_maybe_gz(&lp)?)?;
    if images.nrows() != labels.len() {
        return Err(DataError::invalid(
            dir,
            format!("{} images but {} labels", images.nrows(), labels.len()),
        ));
    }
    if let Some(bad) = labels.iter().find(|&&l| l > 9) {
        return Err(DataError::invalid(&lp, format!("label {bad} outside 0-9")));
    }
    Ok(Idx { images, labels })
}
