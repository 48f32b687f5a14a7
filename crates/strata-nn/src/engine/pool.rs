//! Max pooling (window = stride = `p`, the remainder dropped) and global average pooling over
//! channels-last activations, forward and backward.
//!
//! Max pooling sends a window's gradient to its first largest entry (in row-major window
//! order), as PyTorch does; every other entry of the window gets zero.

use rayon::prelude::*;

/// Geometry of one max pooling, per example.
#[derive(Clone, Copy, Debug)]
pub(super) struct PoolGeo {
    pub c: usize,
    pub h: usize,
    pub w: usize,
    pub p: usize,
}

impl PoolGeo {
    fn out_hw(&self) -> (usize, usize) {
        (self.h / self.p, self.w / self.p)
    }

    /// Output elements of one example.
    pub fn out_len(&self) -> usize {
        let (oh, ow) = self.out_hw();
        oh * ow * self.c
    }

    /// `out` gets each window's maximum, `arg` the window offset (`dy · p + dx`) it came from.
    pub fn forward(&self, x: &[f32], out: &mut [f32], arg: &mut [u8]) {
        let (oh, ow) = self.out_hw();
        let (c, p, w) = (self.c, self.p, self.w);
        let in_len = self.h * w * c;
        out.par_chunks_mut(self.out_len())
            .zip(arg.par_chunks_mut(self.out_len()))
            .zip(x.par_chunks(in_len))
            .for_each(|((o, a), img)| {
                for py in 0..oh {
                    for px in 0..ow {
                        let base = (py * ow + px) * c;
                        for j in 0..c {
                            let mut best = f32::NEG_INFINITY;
                            let mut at = 0u8;
                            let mut first = true;
                            for dy in 0..p {
                                for dx in 0..p {
                                    let v = img[((py * p + dy) * w + px * p + dx) * c + j];
                                    if first || v > best {
                                        best = v;
                                        at = (dy * p + dx) as u8;
                                        first = false;
                                    }
                                }
                            }
                            o[base + j] = best;
                            a[base + j] = at;
                        }
                    }
                }
            });
    }

    /// `dx` (overwritten) gets each output gradient at the position its maximum came from.
    pub fn backward(&self, d: &[f32], arg: &[u8], dx: &mut [f32]) {
        let (oh, ow) = self.out_hw();
        let (c, p, w) = (self.c, self.p, self.w);
        let in_len = self.h * w * c;
        dx.par_chunks_mut(in_len)
            .zip(d.par_chunks(self.out_len()))
            .zip(arg.par_chunks(self.out_len()))
            .for_each(|((img, dd), aa)| {
                img.fill(0.0);
                for py in 0..oh {
                    for px in 0..ow {
                        let base = (py * ow + px) * c;
                        for j in 0..c {
                            let a = aa[base + j] as usize;
                            let (dy, dxx) = (a / p, a % p);
                            img[((py * p + dy) * w + px * p + dxx) * c + j] = dd[base + j];
                        }
                    }
                }
            });
    }
}

/// Mean over the `positions` rows of each example: `x` is `(n · positions) x c`, `out` `n x c`.
pub(super) fn gap_forward(x: &[f32], positions: usize, c: usize, out: &mut [f32]) {
    out.par_chunks_mut(c)
        .zip(x.par_chunks(positions * c))
        .for_each(|(o, img)| {
            let mut s = vec![0f64; c];
            for row in img.chunks_exact(c) {
                for (a, v) in s.iter_mut().zip(row) {
                    *a += *v as f64;
                }
            }
            for (o, a) in o.iter_mut().zip(s) {
                *o = (a / positions as f64) as f32;
            }
        });
}

/// The adjoint of [`gap_forward`]: every position of an example gets its mean's gradient
/// divided by `positions`.
pub(super) fn gap_backward(d: &[f32], positions: usize, c: usize, dx: &mut [f32]) {
    let inv = 1.0 / positions as f32;
    dx.par_chunks_mut(positions * c)
        .zip(d.par_chunks(c))
        .for_each(|(img, g)| {
            for row in img.chunks_exact_mut(c) {
                for (r, v) in row.iter_mut().zip(g) {
                    *r = v * inv;
                }
            }
        });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn max_pool_picks_the_first_maximum_and_routes_its_gradient() {
        // One example, 2 channels, 4 x 5 (the last column is dropped), window 2.
        let g = PoolGeo {
            c: 2,
            h: 4,
            w: 5,
            p: 2,
        };
        let mut rng = strata_data::rng::Rng::new(3);
        let mut x: Vec<f32> = (0..40).map(|_| (rng.below(4) as f32) - 1.0).collect();
        x[0] = 9.0; // channel 0, (0, 0)
        let mut out = vec![0f32; g.out_len()];
        let mut arg = vec![0u8; g.out_len()];
        g.forward(&x, &mut out, &mut arg);
        let at = |y: usize, xx: usize, j: usize| x[(y * 5 + xx) * 2 + j];
        for py in 0..2 {
            for px in 0..2 {
                for j in 0..2 {
                    let win = [
                        at(2 * py, 2 * px, j),
                        at(2 * py, 2 * px + 1, j),
                        at(2 * py + 1, 2 * px, j),
                        at(2 * py + 1, 2 * px + 1, j),
                    ];
                    let m = win.iter().cloned().fold(f32::NEG_INFINITY, f32::max);
                    let first = win.iter().position(|&v| v == m).unwrap();
                    let o = (py * 2 + px) * 2 + j;
                    assert_eq!(out[o], m);
                    assert_eq!(arg[o] as usize, first);
                }
            }
        }
        let d: Vec<f32> = (0..g.out_len()).map(|i| i as f32 + 1.0).collect();
        let mut dx = vec![7f32; 40];
        g.backward(&d, &arg, &mut dx);
        // Each output gradient lands once; the dropped column gets nothing.
        assert_eq!(dx.iter().sum::<f32>(), d.iter().sum::<f32>());
        assert_eq!(dx[0], 1.0);
        for y in 0..4 {
            assert_eq!(dx[(y * 5 + 4) * 2], 0.0);
        }
    }

    #[test]
    fn global_average_pooling_and_its_adjoint() {
        let (n, pos, c) = (3, 6, 4);
        let x: Vec<f32> = (0..n * pos * c).map(|i| (i % 7) as f32 - 2.5).collect();
        let mut out = vec![0f32; n * c];
        gap_forward(&x, pos, c, &mut out);
        for e in 0..n {
            for j in 0..c {
                let want: f64 = (0..pos)
                    .map(|s| x[(e * pos + s) * c + j] as f64)
                    .sum::<f64>()
                    / pos as f64;
                assert!((out[e * c + j] as f64 - want).abs() < 1e-6);
            }
        }
        let d: Vec<f32> = (0..n * c).map(|i| i as f32 * 0.5 - 1.0).collect();
        let mut dx = vec![0f32; x.len()];
        gap_backward(&d, pos, c, &mut dx);
        let lhs: f64 = out.iter().zip(&d).map(|(a, b)| (*a * *b) as f64).sum();
        let rhs: f64 = x.iter().zip(&dx).map(|(a, b)| (*a * *b) as f64).sum();
        assert!((lhs - rhs).abs() < 1e-4 * (1.0 + lhs.abs()));
    }
}
