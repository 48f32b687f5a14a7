//! Bit-packed inference for `w1a1` MLPs: binary layers as XOR and popcount on 64-bit words.
//!
//! With activations `a` and weights `w` in {-1, +1}^K stored as bits (1 = +1), the dot product
//! is `K - 2 popcount(a XOR w)`: every mismatching position contributes -1 instead of +1.
//! Padding bits are 0 in both, so they never mismatch. The first layer reads 8-bit integer
//! pixels, so its sums are exact integers too (computed in f32: every partial sum is an integer
//! below 2^24). Batch norm uses the float network's own evaluation parameters and the same f32
//! operations, so the packed engine reproduces the float simulation exactly.

use crate::binary_gemm::{binary_gemm, BitMatrix};
use crate::error::NnError;
use crate::net::Net;
use crate::precision::Precision;
use ndarray::{Array2, ArrayView2};
use rayon::prelude::*;

/// Batch norm as applied at evaluation: `(z - mean) * scale + beta`, per unit, in f32.
struct Affine {
    mean: Vec<f32>,
    scale: Vec<f32>,
    beta: Vec<f32>,
}

/// A `w1a1` MLP ready for packed inference.
pub struct PackedMlp {
    /// First layer weights as ±1 floats (`input x out`), applied to 8-bit pixels.
    first: Array2<f32>,
    /// Binary layers: weight bits per output unit (rows = outputs, `k` = inputs).
    layers: Vec<BitMatrix>,
    norms: Vec<Affine>,
}

impl PackedMlp {
    /// Build from a trained `w1a1` network.
    pub fn from_net(m: &Net) -> Result<Self, NnError> {
        if m.config.precision != Precision::W1A1 {
            return Err(NnError::Unsupported(format!(
                "packed inference needs a w1a1 network, this one is {}",
                m.config.precision
            )));
        }
        let mut norms = Vec::new();
        let mut first = None;
        let mut layers = Vec::new();
        for (i, l) in m.blocks.iter().enumerate() {
            let w = l.w.as_tensor().to_vec2::<f32>()?;
            let (k, out) = (w.len(), w.first().map_or(0, |r| r.len()));
            if i == 0 {
                let signs: Vec<f32> = w
                    .iter()
                    .flatten()
                    .map(|&v| if v >= 0.0 { 1.0 } else { -1.0 })
                    .collect();
                first = Some(
                    Array2::from_shape_vec((k, out), signs)
                        .map_err(|e| candle_core::Error::Msg(e.to_string()))?,
                );
            } else {
                // Rows of the packed matrix are output units: pack Wᵀ.
                let wt: Vec<f32> = (0..out).flat_map(|j| w.iter().map(move |r| r[j])).collect();
                layers.push(BitMatrix::pack(&wt, out, k));
            }
            let (mean, scale, beta) = l.bn.eval_params()?;
            norms.push(Affine {
                mean: mean.to_vec1()?,
                scale: scale.to_vec1()?,
                beta: beta.to_vec1()?,
            });
        }
        Ok(PackedMlp {
            first: first.ok_or_else(|| NnError::Unsupported("network has no layers".into()))?,
            layers,
            norms,
        })
    }

    /// Integer dense outputs of every layer (before batch norm) and the logits, for a batch of
    /// images with pixels in [0, 1]. (strata-gpu's `GpuMlp` is the same engine on the GPU,
    /// checked against this one by `strata gpu check`.)
    pub fn run(&self, x: ArrayView2<f32>) -> (Vec<Array2<i32>>, Array2<f32>) {
        let n = x.nrows();
        let pixels = x.mapv(|v| (v * 255.0).round());
        // Integer pixels times ±1 weights: every partial sum is an integer below 2^24, so the
        // f32 product is exact in any summation order, and faer may block and thread it freely.
        let mut z0 = Array2::<f32>::zeros((n, self.first.ncols()));
        {
            let (r, c) = z0.dim();
            let dst = faer::MatMut::from_row_major_slice_mut(
                z0.as_slice_mut().expect("fresh array"),
                r,
                c,
            );
            let lhs = faer::MatRef::from_row_major_slice(
                pixels.as_slice().expect("fresh array"),
                n,
                pixels.ncols(),
            );
            let rhs = faer::MatRef::from_row_major_slice(
                self.first.as_slice().expect("built row-major"),
                self.first.nrows(),
                self.first.ncols(),
            );
            faer::linalg::matmul::matmul(
                dst,
                faer::Accum::Replace,
                lhs,
                rhs,
                1.0,
                faer::Par::rayon(0),
            );
        }
        let z0 = z0.mapv(|v| v as i32);
        let mut h = self.norm_and_binarize(&z0, 0);
        let mut zs = vec![z0];
        for (li, weights) in self.layers.iter().enumerate() {
            let acts = BitMatrix {
                rows: n,
                k: weights.k,
                words: weights.words,
                bits: std::mem::take(&mut h),
            };
            let z = Array2::from_shape_vec((n, weights.rows), binary_gemm(&acts, weights))
                .expect("binary_gemm returns rows x out values");
            if li + 1 < self.layers.len() {
                h = self.norm_and_binarize(&z, li + 1);
            }
            zs.push(z);
        }
        let last = zs.last().expect("at least one layer");
        let norm = self.norms.last().expect("one norm per layer");
        let logits = Array2::from_shape_fn(last.dim(), |(r, j)| {
            ((last[[r, j]] as f32 - norm.mean[j]) * norm.scale[j]) + norm.beta[j]
        });
        (zs, logits)
    }

    /// Batch norm then sign, packed: bit set where the normalized value is >= 0.
    fn norm_and_binarize(&self, z: &Array2<i32>, layer: usize) -> Vec<u64> {
        let norm = &self.norms[layer];
        let words = z.ncols().div_ceil(64).max(1);
        let mut bits = vec![0u64; z.nrows() * words];
        bits.par_chunks_mut(words)
            .zip(z.axis_iter(ndarray::Axis(0)).into_par_iter())
            .for_each(|(out, row)| {
                for (j, &v) in row.iter().enumerate() {
                    if ((v as f32 - norm.mean[j]) * norm.scale[j]) + norm.beta[j] >= 0.0 {
                        out[j / 64] |= 1u64 << (j % 64);
                    }
                }
            });
        bits
    }

    /// Predicted classes.
    pub fn predict(&self, x: ArrayView2<f32>) -> Vec<usize> {
        let (_, logits) = self.run(x);
        classes(&logits)
    }
}

/// Argmax of each row of the logits.
fn classes(logits: &Array2<f32>) -> Vec<usize> {
    logits
        .rows()
        .into_iter()
        .map(|r| crate::train::argmax(r.as_slice().expect("standard layout")))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use strata_data::rng::Rng;

    #[test]
    fn xor_popcount_dot_equals_the_plus_minus_one_dot() {
        let mut r = Rng::new(4);
        for k in [1, 63, 64, 65, 200, 1024] {
            let a: Vec<f32> = (0..k)
                .map(|_| if r.below(2) == 1 { 1.0 } else { -1.0 })
                .collect();
            let w: Vec<f32> = (0..k)
                .map(|_| if r.below(2) == 1 { 1.0 } else { -1.0 })
                .collect();
            let (pa, pw) = (BitMatrix::pack(&a, 1, k), BitMatrix::pack(&w, 1, k));
            let mism: u32 = pa
                .bits
                .iter()
                .zip(&pw.bits)
                .map(|(x, y)| (x ^ y).count_ones())
                .sum();
            let naive: f32 = a.iter().zip(&w).map(|(x, y)| x * y).sum();
            assert_eq!(k as i32 - 2 * mism as i32, naive as i32, "k = {k}");
        }
    }
}
