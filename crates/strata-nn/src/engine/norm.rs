//! Batch normalization fused with the nonlinearity that follows it, forward and backward, over
//! a `rows x channels` matrix (channels-last, so a channel is a column).
//!
//! Statistics are summed in f64 over fixed blocks of [`ROWS`] rows, the blocks' partial sums
//! added in order: the result does not depend on how many threads ran, and long columns
//! (100 images x 28 x 28 positions) lose no precision.
//!
//! Training mode normalizes by the batch's mean and biased variance and moves the running
//! statistics by `momentum` (the variance's unbiased estimate, as PyTorch and strata's
//! reference network do). Evaluation mode computes `(z - mean) · scale + beta` with
//! `scale = gamma / sqrt(running_var + eps)`, the exact f32 operations the bit-packed engine
//! repeats.

use rayon::prelude::*;

/// Rows per block of the statistics' partial sums.
const ROWS: usize = 256;

/// The nonlinearity after batch norm, with its straight-through gradient.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(super) enum Act {
    /// The logits: batch norm's output as is.
    Identity,
    /// `max(y, 0)`; gradient `1` where `y >= 0`.
    Relu,
    /// `sign(clamp(y, -1, 1))` with `sign(0) = +1`; gradient `1` where `|y| <= 1`.
    Sign,
    /// `clamp(y, 0, 1)` rounded to `steps` uniform steps; gradient `1` where `0 <= y <= 1`.
    Levels {
        /// `1 / unit` as f32 (the grid's scale).
        inv_unit: f32,
        /// The grid's step as f32.
        unit: f32,
    },
}

impl Act {
    /// The activation for `bits` (`None`: ReLU).
    pub fn for_bits(bits: Option<u32>) -> Act {
        match bits {
            None => Act::Relu,
            Some(1) => Act::Sign,
            Some(k) => {
                let unit = 1.0 / ((1u64 << k) - 1) as f64;
                Act::Levels {
                    inv_unit: (1.0 / unit) as f32,
                    unit: unit as f32,
                }
            }
        }
    }
}

#[inline]
fn sign(y: f32) -> f32 {
    if y >= 0.0 {
        1.0
    } else {
        -1.0
    }
}

#[inline]
fn levels(y: f32, inv_unit: f32, unit: f32) -> f32 {
    super::round_non_negative(y.clamp(0.0, 1.0) * inv_unit) * unit
}

/// Per-channel sums of `x - shift` and of its square over `x`'s rows.
fn sums(x: &[f32], c: usize, shift: &[f64]) -> (Vec<f64>, Vec<f64>) {
    let shift = tile(shift);
    let parts: Vec<(Vec<f64>, Vec<f64>)> = x
        .par_chunks(ROWS * c)
        .map(|xb| {
            let (mut s1, mut s2) = (vec![0f64; TILE * c], vec![0f64; TILE * c]);
            for rows in xb.chunks(TILE * c) {
                let it = s1
                    .iter_mut()
                    .zip(s2.iter_mut())
                    .zip(rows.iter().zip(&shift));
                for ((a, q), (v, m)) in it {
                    let d = *v as f64 - m;
                    *a += d;
                    *q += d * d;
                }
            }
            (fold(&s1, c), fold(&s2, c))
        })
        .collect();
    add_parts(parts, c)
}

/// Rows per tile: per-channel vectors are repeated this many times, so inner loops run over
/// `TILE · c` contiguous values whatever the channel count (LeNet's 6 channels would otherwise
/// give loops of 6 that do not vectorize).
const TILE: usize = 16;

/// `v` repeated [`TILE`] times.
fn tile<T: Copy>(v: &[T]) -> Vec<T> {
    v.iter().cycle().take(v.len() * TILE).copied().collect()
}

/// Per-channel totals of a tiled accumulator, added in tile order.
fn fold<T: Copy + Into<f64>>(tiled: &[T], c: usize) -> Vec<f64> {
    let mut out = vec![0f64; c];
    for t in tiled.chunks_exact(c) {
        for (o, v) in out.iter_mut().zip(t) {
            *o += (*v).into();
        }
    }
    out
}

/// Adds the blocks' per-channel partial sums in block order.
fn add_parts(parts: Vec<(Vec<f64>, Vec<f64>)>, c: usize) -> (Vec<f64>, Vec<f64>) {
    let (mut t1, mut t2) = (vec![0f64; c], vec![0f64; c]);
    for (p1, p2) in parts {
        for j in 0..c {
            t1[j] += p1[j];
            t2[j] += p2[j];
        }
    }
    (t1, t2)
}

/// `out[r, j] = act(z[r, j] · a[j] + b[j])` over blocks of rows in parallel, with `act`
/// monomorphized so the inner loop vectorizes.
fn affine_act(z: &[f32], c: usize, a: &[f32], b: &[f32], act: Act, out: &mut [f32]) {
    fn run<F: Fn(f32) -> f32 + Sync>(
        z: &[f32],
        c: usize,
        a: &[f32],
        b: &[f32],
        out: &mut [f32],
        f: F,
    ) {
        let (a, b) = (tile(a), tile(b));
        z.par_chunks(ROWS * c)
            .zip(out.par_chunks_mut(ROWS * c))
            .for_each(|(zb, ob)| {
                for (zr, or) in zb.chunks(TILE * c).zip(ob.chunks_mut(TILE * c)) {
                    for (((o, v), s), t) in or.iter_mut().zip(zr).zip(&a).zip(&b) {
                        *o = f(v * s + t);
                    }
                }
            });
    }
    match act {
        Act::Identity => run(z, c, a, b, out, |y| y),
        Act::Relu => run(z, c, a, b, out, |y| y.max(0.0)),
        Act::Sign => run(z, c, a, b, out, sign),
        Act::Levels { inv_unit, unit } => run(z, c, a, b, out, move |y| levels(y, inv_unit, unit)),
    }
}

/// The parameters of one batch norm.
pub(super) struct Norm<'a> {
    pub gamma: &'a [f32],
    pub beta: &'a [f32],
    pub running_mean: &'a mut [f32],
    pub running_var: &'a mut [f32],
    pub momentum: f32,
    pub eps: f32,
}

/// Training-mode forward: `z` (`rows x c`) becomes the normalized `x̂` in place, `out` receives
/// `act(x̂ · gamma + beta)`, `invstd` each channel's `1 / sqrt(var + eps)`.
pub(super) fn forward_train(
    z: &mut [f32],
    c: usize,
    n: Norm<'_>,
    act: Act,
    invstd: &mut [f32],
    out: &mut [f32],
) {
    let rows = z.len() / c;
    // Shifted by the first row's values, then corrected: one pass, no cancellation.
    let shift: Vec<f64> = z[..c].iter().map(|&v| v as f64).collect();
    let (s1, s2) = sums(z, c, &shift);
    let inv_rows = 1.0 / rows as f64;
    let m = n.momentum as f64;
    let unbias = rows as f64 / (rows as f64 - 1.0).max(1.0);
    let (mut a, mut b) = (vec![0f32; c], vec![0f32; c]);
    for j in 0..c {
        let d = s1[j] * inv_rows;
        let mean = shift[j] + d;
        let var = (s2[j] * inv_rows - d * d).max(0.0);
        let is = 1.0 / (var + n.eps as f64).sqrt();
        invstd[j] = is as f32;
        a[j] = is as f32;
        b[j] = (-mean * is) as f32;
        n.running_mean[j] = ((1.0 - m) * n.running_mean[j] as f64 + m * mean) as f32;
        n.running_var[j] = ((1.0 - m) * n.running_var[j] as f64 + m * var * unbias) as f32;
    }
    // x̂ = z · invstd - mean · invstd, in place; then the activation of x̂ · gamma + beta.
    let (at, bt) = (tile(&a), tile(&b));
    z.par_chunks_mut(ROWS * c).for_each(|zb| {
        for zr in zb.chunks_mut(TILE * c) {
            for ((v, s), t) in zr.iter_mut().zip(&at).zip(&bt) {
                *v = *v * s + t;
            }
        }
    });
    affine_act(z, c, n.gamma, n.beta, act, out);
}

/// Evaluation-mode forward: `out = act((z - mean) · scale + beta)`, the f32 operations of the
/// tensor implementation and the bit-packed engine.
pub(super) fn forward_eval(z: &[f32], c: usize, n: &Norm<'_>, act: Act, out: &mut [f32]) {
    let scale: Vec<f32> = (0..c)
        .map(|j| n.gamma[j] / (n.running_var[j] + n.eps).sqrt())
        .collect();
    let (mean, beta) = (&*n.running_mean, n.beta);
    fn run<F: Fn(f32) -> f32 + Sync>(
        z: &[f32],
        c: usize,
        mean: &[f32],
        scale: &[f32],
        beta: &[f32],
        out: &mut [f32],
        f: F,
    ) {
        let (mean, scale, beta) = (tile(mean), tile(scale), tile(beta));
        z.par_chunks(ROWS * c)
            .zip(out.par_chunks_mut(ROWS * c))
            .for_each(|(zb, ob)| {
                for (zr, or) in zb.chunks(TILE * c).zip(ob.chunks_mut(TILE * c)) {
                    let it = or
                        .iter_mut()
                        .zip(zr)
                        .zip(mean.iter().zip(&scale).zip(&beta));
                    for ((o, v), ((m, s), b)) in it {
                        *o = f((v - m) * s + b);
                    }
                }
            });
    }
    match act {
        Act::Identity => run(z, c, mean, &scale, beta, out, |y| y),
        Act::Relu => run(z, c, mean, &scale, beta, out, |y| y.max(0.0)),
        Act::Sign => run(z, c, mean, &scale, beta, out, sign),
        Act::Levels { inv_unit, unit } => run(z, c, mean, &scale, beta, out, move |y| {
            levels(y, inv_unit, unit)
        }),
    }
}

/// Evaluation-mode backward: `d` (the gradient of `act((z - mean) · scale + beta)`) becomes the
/// gradient of `z`, `d · scale` where the activation passes its straight-through gradient and 0
/// elsewhere. The parameters are fixed, so nothing else is needed.
pub(super) fn backward_eval(d: &mut [f32], z: &[f32], c: usize, n: &Norm<'_>, act: Act) {
    let scale: Vec<f32> = (0..c)
        .map(|j| n.gamma[j] / (n.running_var[j] + n.eps).sqrt())
        .collect();
    fn run<F: Fn(f32) -> bool + Sync>(
        d: &mut [f32],
        z: &[f32],
        c: usize,
        mean: &[f32],
        scale: &[f32],
        beta: &[f32],
        pass: F,
    ) {
        let (mean, scale, beta) = (tile(mean), tile(scale), tile(beta));
        d.par_chunks_mut(ROWS * c)
            .zip(z.par_chunks(ROWS * c))
            .for_each(|(db, zb)| {
                for (dr, zr) in db.chunks_mut(TILE * c).zip(zb.chunks(TILE * c)) {
                    let it = dr
                        .iter_mut()
                        .zip(zr)
                        .zip(mean.iter().zip(&scale).zip(&beta));
                    for ((dv, v), ((m, s), b)) in it {
                        *dv = if pass((v - m) * s + b) { *dv * s } else { 0.0 };
                    }
                }
            });
    }
    let (mean, beta) = (&*n.running_mean, n.beta);
    match act {
        Act::Identity => run(d, z, c, mean, &scale, beta, |_| true),
        Act::Relu => run(d, z, c, mean, &scale, beta, |y| y >= 0.0),
        Act::Sign => run(d, z, c, mean, &scale, beta, |y| (-1.0..=1.0).contains(&y)),
        Act::Levels { .. } => run(d, z, c, mean, &scale, beta, |y| (0.0..=1.0).contains(&y)),
    }
}

/// `d *= slope(x̂ · gamma + beta)` and the per-channel sums of `d` and `d · x̂`, in one pass.
fn slope_and_sums(
    d: &mut [f32],
    xhat: &[f32],
    c: usize,
    gamma: &[f32],
    beta: &[f32],
    act: Act,
) -> (Vec<f64>, Vec<f64>) {
    fn run<F: Fn(f32) -> bool + Sync>(
        d: &mut [f32],
        xhat: &[f32],
        c: usize,
        gamma: &[f32],
        beta: &[f32],
        pass: F,
    ) -> (Vec<f64>, Vec<f64>) {
        let (gamma, beta) = (tile(gamma), tile(beta));
        let parts: Vec<(Vec<f64>, Vec<f64>)> = d
            .par_chunks_mut(ROWS * c)
            .zip(xhat.par_chunks(ROWS * c))
            .map(|(db, xb)| {
                let (mut s1, mut s2) = (vec![0f32; TILE * c], vec![0f32; TILE * c]);
                for (dr, xr) in db.chunks_mut(TILE * c).zip(xb.chunks(TILE * c)) {
                    let it = dr.iter_mut().zip(xr).zip(gamma.iter().zip(&beta));
                    for (((dv, xv), (g, b)), (a1, a2)) in it.zip(s1.iter_mut().zip(s2.iter_mut())) {
                        let dy = if pass(xv * g + b) { *dv } else { 0.0 };
                        *dv = dy;
                        *a1 += dy;
                        *a2 += dy * xv;
                    }
                }
                (fold(&s1, c), fold(&s2, c))
            })
            .collect();
        add_parts(parts, c)
    }
    match act {
        Act::Identity => run(d, xhat, c, gamma, beta, |_| true),
        Act::Relu => run(d, xhat, c, gamma, beta, |y| y >= 0.0),
        Act::Sign => run(d, xhat, c, gamma, beta, |y| (-1.0..=1.0).contains(&y)),
        Act::Levels { .. } => run(d, xhat, c, gamma, beta, |y| (0.0..=1.0).contains(&y)),
    }
}

/// Backward through `act(x̂ · gamma + beta)` and the batch statistics: `d` holds the gradient
/// of the activation's output and becomes the gradient of `z`; the gradients of gamma and beta
/// are written into `dgamma` and `dbeta`.
#[allow(clippy::too_many_arguments)]
pub(super) fn backward(
    d: &mut [f32],
    xhat: &[f32],
    c: usize,
    gamma: &[f32],
    beta: &[f32],
    invstd: &[f32],
    act: Act,
    dgamma: &mut [f32],
    dbeta: &mut [f32],
) {
    let rows = d.len() / c;
    let (sdy, sdyx) = slope_and_sums(d, xhat, c, gamma, beta, act);
    let inv_rows = 1.0 / rows as f64;
    let (mut k, mut mdy, mut mdyx) = (vec![0f32; c], vec![0f32; c], vec![0f32; c]);
    for j in 0..c {
        dbeta[j] = sdy[j] as f32;
        dgamma[j] = sdyx[j] as f32;
        k[j] = gamma[j] * invstd[j];
        mdy[j] = (sdy[j] * inv_rows) as f32;
        mdyx[j] = (sdyx[j] * inv_rows) as f32;
    }
    let (k, mdy, mdyx) = (tile(&k), tile(&mdy), tile(&mdyx));
    d.par_chunks_mut(ROWS * c)
        .zip(xhat.par_chunks(ROWS * c))
        .for_each(|(db, xb)| {
            for (dr, xr) in db.chunks_mut(TILE * c).zip(xb.chunks(TILE * c)) {
                let it = dr.iter_mut().zip(xr).zip(k.iter().zip(&mdy).zip(&mdyx));
                for ((dv, xv), ((kk, m1), m2)) in it {
                    *dv = kk * (*dv - m1 - xv * m2);
                }
            }
        });
}

/// A linear logits layer's forward, `out = z + beta` (no statistics, no activation): `z · 1 +
/// beta`, bit for bit the tensor implementation's `(z - 0) · 1 + beta`.
pub(super) fn bias_forward(z: &[f32], c: usize, beta: &[f32], out: &mut [f32]) {
    let ones = vec![1f32; c];
    affine_act(z, c, &ones, beta, Act::Identity, out);
}

/// A linear logits layer's backward: `d` passes unchanged to `z`, `dbeta` is its per-channel
/// sum (in f64 over fixed blocks, as the statistics are) and the fixed scale gets none.
pub(super) fn bias_backward(d: &[f32], c: usize, dgamma: &mut [f32], dbeta: &mut [f32]) {
    let (s1, _) = sums(d, c, &vec![0f64; c]);
    for j in 0..c {
        dbeta[j] = s1[j] as f32;
        dgamma[j] = 0.0;
    }
}
