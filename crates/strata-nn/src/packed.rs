//! Bit-packed inference for `w1a1` MLPs: binary layers as XOR and popcount on 64-bit words.
//!
//! With activations `a` and weights `w` in {-1, +1}^K stored as bits (1 = +1), the dot product
//! is `K - 2 popcount(a XOR w)`: every mismatching position contributes -1 instead of +1.
//! Padding bits are 0 in both, so they never mismatch. The first layer reads 8-bit integer
//! pixels, so its sums are exact integers too (computed in f32: every partial sum is an integer
//! below 2^24). Batch norm uses the float network's own evaluation parameters and the same f32
//! operations, so the packed engine reproduces the float simulation exactly.

use crate::binary_gemm::{binary_gemm, BitMatrix};
use crate::net::Net;
use crate::precision::Precision;
use ndarray::{Array2, ArrayView2};
use rayon::prelude::*;

/// One binary layer: weight bits per output unit, `words` u64 each.
struct BinLayer {
    k: usize,
    words: usize,
    bits: Vec<u64>,
    out: usize,
}

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
    layers: Vec<BinLayer>,
    norms: Vec<Affine>,
}

fn words(k: usize) -> usize {
    k.div_ceil(64)
}

/// Pack a row of ±1 values (`>= 0` means +1) into bits.
fn pack_row(v: impl Iterator<Item = f32>, k: usize, out: &mut Vec<u64>) {
    let start = out.len();
    out.resize(start + words(k), 0);
    for (i, x) in v.enumerate() {
        if x >= 0.0 {
            out[start + i / 64] |= 1u64 << (i % 64);
        }
    }
}

impl PackedMlp {
    /// Build from a trained `w1a1` network.
    pub fn from_net(m: &Net) -> candle_core::Result<Self> {
        if m.config.precision != Precision::W1A1 {
            candle_core::bail!(
                "packed inference needs a w1a1 network, this one is {}",
                m.config.precision
            );
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
                let mut bits = Vec::with_capacity(out * words(k));
                for j in 0..out {
                    pack_row(w.iter().map(|r| r[j]), k, &mut bits);
                }
                layers.push(BinLayer {
                    k,
                    words: words(k),
                    bits,
                    out,
                });
            }
            let (mean, scale, beta) = l.bn.eval_params()?;
            norms.push(Affine {
                mean: mean.to_vec1()?,
                scale: scale.to_vec1()?,
                beta: beta.to_vec1()?,
            });
        }
        Ok(PackedMlp {
            first: first.ok_or_else(|| candle_core::Error::Msg("network has no layers".into()))?,
            layers,
            norms,
        })
    }

    /// Integer dense outputs of every layer (before batch norm) and the logits, for a batch of
    /// images with pixels in [0, 1].
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
        let mut zs = vec![z0.mapv(|v| v as i32)];
        let mut bits = Vec::new();
        let mut k = z0.ncols();
        let mut h = self.norm_and_binarize(&z0.mapv(|v| v as i32), 0, &mut bits);
        for (li, layer) in self.layers.iter().enumerate() {
            debug_assert_eq!(layer.k, k);
            let acts = BitMatrix {
                rows: n,
                k: layer.k,
                words: layer.words,
                bits: std::mem::take(&mut h),
            };
            let weights = BitMatrix {
                rows: layer.out,
                k: layer.k,
                words: layer.words,
                bits: layer.bits.clone(),
            };
            let z = Array2::from_shape_vec((n, layer.out), binary_gemm(&acts, &weights))
                .expect("binary_gemm returns rows x out values");
            k = layer.out;
            if li + 1 < self.layers.len() {
                h = self.norm_and_binarize(&z, li + 1, &mut bits);
            }
            zs.push(z);
        }
        let _ = k;
        let last = zs.last().expect("at least one layer");
        let norm = self.norms.last().expect("one norm per layer");
        let logits = Array2::from_shape_fn(last.dim(), |(r, j)| {
            ((last[[r, j]] as f32 - norm.mean[j]) * norm.scale[j]) + norm.beta[j]
        });
        (zs, logits)
    }

    /// Batch norm then sign, packed: bit set where the normalized value is >= 0.
    fn norm_and_binarize(&self, z: &Array2<i32>, layer: usize, scratch: &mut Vec<u64>) -> Vec<u64> {
        let norm = &self.norms[layer];
        let k = z.ncols();
        let words = k.div_ceil(64);
        scratch.clear();
        scratch.resize(z.nrows() * words, 0);
        scratch
            .par_chunks_mut(words.max(1))
            .zip(z.axis_iter(ndarray::Axis(0)).into_par_iter())
            .for_each(|(out, row)| {
                for (j, &v) in row.iter().enumerate() {
                    if ((v as f32 - norm.mean[j]) * norm.scale[j]) + norm.beta[j] >= 0.0 {
                        out[j / 64] |= 1u64 << (j % 64);
                    }
                }
            });
        std::mem::take(scratch)
    }

    /// Predicted classes.
    pub fn predict(&self, x: ArrayView2<f32>) -> Vec<usize> {
        let (_, logits) = self.run(x);
        logits
            .rows()
            .into_iter()
            .map(|r| crate::train::argmax(r.as_slice().expect("standard layout")))
            .collect()
    }
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
            let (mut pa, mut pw) = (Vec::new(), Vec::new());
            pack_row(a.iter().copied(), k, &mut pa);
            pack_row(w.iter().copied(), k, &mut pw);
            let mism: u32 = pa.iter().zip(&pw).map(|(x, y)| (x ^ y).count_ones()).sum();
            let naive: f32 = a.iter().zip(&w).map(|(x, y)| x * y).sum();
            assert_eq!(k as i32 - 2 * mism as i32, naive as i32, "k = {k}");
        }
    }
}
