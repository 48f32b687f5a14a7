//! One fused pass over every parameter per step: Adam with decoupled weight decay (AdamW, the
//! same f32 arithmetic as candle-nn's `AdamW`, which strata used before), or SGD with momentum
//! and weight decay added to the gradient. Parameters live in one flat buffer, so a step is
//! one parallel loop instead of a dozen tensor operations per parameter.

use rayon::prelude::*;

/// Elements per parallel task.
const CHUNK: usize = 16 * 1024;

/// The optimizer's state.
pub(super) enum Optim {
    Adam {
        m: Vec<f32>,
        v: Vec<f32>,
        t: i32,
        weight_decay: f64,
    },
    Sgd {
        velocity: Vec<f32>,
        momentum: f64,
        weight_decay: f64,
    },
}

const BETA1: f64 = 0.9;
const BETA2: f64 = 0.999;
const EPS: f64 = 1e-8;

impl Optim {
    pub fn adam(len: usize, weight_decay: f64) -> Self {
        Optim::Adam {
            m: vec![0.0; len],
            v: vec![0.0; len],
            t: 0,
            weight_decay,
        }
    }

    pub fn sgd(len: usize, momentum: f64, weight_decay: f64) -> Self {
        Optim::Sgd {
            velocity: vec![0.0; len],
            momentum,
            weight_decay,
        }
    }

    /// One update of `theta` from `grad` at learning rate `lr`.
    pub fn step(&mut self, theta: &mut [f32], grad: &[f32], lr: f64) {
        match self {
            Optim::Adam {
                m,
                v,
                t,
                weight_decay,
            } => {
                *t += 1;
                let scale_m = (1.0 / (1.0 - BETA1.powi(*t))) as f32;
                let scale_v = (1.0 / (1.0 - BETA2.powi(*t))) as f32;
                let decay = (1.0 - lr * *weight_decay) as f32;
                let (b1, c1) = (BETA1 as f32, (1.0 - BETA1) as f32);
                let (b2, c2) = (BETA2 as f32, (1.0 - BETA2) as f32);
                let (eps, lr) = (EPS as f32, lr as f32);
                theta
                    .par_chunks_mut(CHUNK)
                    .zip(grad.par_chunks(CHUNK))
                    .zip(m.par_chunks_mut(CHUNK))
                    .zip(v.par_chunks_mut(CHUNK))
                    .for_each(|(((th, g), m), v)| {
                        for i in 0..th.len() {
                            let mi = m[i] * b1 + g[i] * c1;
                            let vi = v[i] * b2 + (g[i] * g[i]) * c2;
                            m[i] = mi;
                            v[i] = vi;
                            let adjusted = (mi * scale_m) / ((vi * scale_v).sqrt() + eps);
                            th[i] = th[i] * decay - adjusted * lr;
                        }
                    });
            }
            Optim::Sgd {
                velocity,
                momentum,
                weight_decay,
            } => {
                let (mo, wd, lr) = (*momentum as f32, *weight_decay as f32, lr as f32);
                theta
                    .par_chunks_mut(CHUNK)
                    .zip(grad.par_chunks(CHUNK))
                    .zip(velocity.par_chunks_mut(CHUNK))
                    .for_each(|((th, g), vel)| {
                        for i in 0..th.len() {
                            let gi = g[i] + th[i] * wd;
                            vel[i] = vel[i] * mo + gi;
                            th[i] -= vel[i] * lr;
                        }
                    });
            }
        }
    }
}

/// The weights a layer computes with, and the straight-through gradient's mask.
///
/// `bits = Some(1)`: `sign(w)` (`sign(0) = +1`), gradient passed as is. `Some(k)`: `w` clipped to
/// [-1, 1], divided by its largest magnitude `α`, rounded to `2^k - 1` steps over [-1, 1] and
/// multiplied back by `α`; the gradient passes where `|w| <= 1`. The f32 operations are those of
/// strata's tensor reference (`precision::quantize_weights`), so both give the same values.
pub(super) fn quantize(w: &[f32], bits: u32, out: &mut [f32]) {
    if bits == 1 {
        for (o, v) in out.iter_mut().zip(w) {
            *o = if *v >= 0.0 { 1.0 } else { -1.0 };
        }
        return;
    }
    // Sixteen running maxima, so the loop vectorizes (a single `f32::max` chain does not).
    let mut lanes = [0f32; 16];
    for chunk in w.chunks(16) {
        for (m, v) in lanes.iter_mut().zip(chunk) {
            let a = v.clamp(-1.0, 1.0).abs();
            *m = if a > *m { a } else { *m };
        }
    }
    let alpha = lanes.iter().fold(0f32, |m, &v| m.max(v)).max(1e-8);
    let inv_alpha = (1.0 / alpha as f64) as f32;
    let unit = 2.0 / ((1u64 << bits) - 1) as f64;
    let (inv_unit, unit_f) = ((1.0 / unit) as f32, unit as f32);
    for (o, v) in out.iter_mut().zip(w) {
        let x = v.clamp(-1.0, 1.0) * inv_alpha;
        let q = super::round_non_negative(x * inv_unit + inv_unit) * unit_f + (-1.0f32);
        *o = q * alpha;
    }
}

/// Zeroes the gradient of `k`-bit weights outside [-1, 1] (the clip's own gradient).
pub(super) fn mask_clipped(w: &[f32], grad: &mut [f32]) {
    for (g, v) in grad.iter_mut().zip(w) {
        if !(-1.0..=1.0).contains(v) {
            *g = 0.0;
        }
    }
}
