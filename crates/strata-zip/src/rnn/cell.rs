//! One time step of an LSTM or GRU layer, forward and backward, on pre-computed gate inputs.
//!
//! The caller computes the two halves of every gate pre-activation: `px` (bias + symbol
//! embedding + input weights times the layer below) and `ph` (recurrent weights times the
//! previous hidden state). Keeping them apart is what the GRU needs (its reset gate multiplies
//! only the recurrent half of the candidate), and for the LSTM it costs nothing.
//!
//! All activations go through [`crate::detmath`], so these functions are bit-reproducible.

use crate::detmath::{sigmoid, tanh};

/// LSTM step. Gate blocks of `n = h.len()` units in the order `[i | f | g | o]` (input, forget,
/// candidate, output). Writes the post-activation gates to `acts` (kept for backward), the
/// new cell state to `c` and the new hidden state `h = o * tanh(c)`.
pub(super) fn lstm_forward(
    px: &[f32],
    ph: &[f32],
    c_prev: &[f32],
    acts: &mut [f32],
    c: &mut [f32],
    h: &mut [f32],
) {
    let n = h.len();
    for (k, ((a, &x), &y)) in acts.iter_mut().zip(px).zip(ph).enumerate() {
        let z = x + y;
        *a = if k / n == 2 { tanh(z) } else { sigmoid(z) };
    }
    let (i, rest) = acts.split_at(n);
    let (f, rest) = rest.split_at(n);
    let (g, o) = rest.split_at(n);
    for j in 0..n {
        c[j] = f[j] * c_prev[j] + i[j] * g[j];
        h[j] = o[j] * tanh(c[j]);
    }
}

/// LSTM backward for one step.
///
/// `dh` is dLoss/dh_t. `dc` holds dLoss/dc_t coming from step t+1 on entry and is replaced by
/// dLoss/dc_{t-1}. `dz` receives dLoss/d(pre-activation) for the four gate blocks; for the LSTM
/// the input and recurrent halves of a pre-activation get the same gradient.
pub(super) fn lstm_backward(
    acts: &[f32],
    c_prev: &[f32],
    c: &[f32],
    dh: &[f32],
    dc: &mut [f32],
    dz: &mut [f32],
) {
    let n = dh.len();
    let (i, rest) = acts.split_at(n);
    let (f, rest) = rest.split_at(n);
    let (g, o) = rest.split_at(n);
    let (dzi, rest) = dz.split_at_mut(n);
    let (dzf, rest) = rest.split_at_mut(n);
    let (dzg, dzo) = rest.split_at_mut(n);
    for j in 0..n {
        // Recomputed rather than stored: same function, same input, same bits.
        let tc = tanh(c[j]);
        let dcj = dc[j] + dh[j] * o[j] * (1.0 - tc * tc);
        dzi[j] = dcj * g[j] * i[j] * (1.0 - i[j]);
        dzf[j] = dcj * c_prev[j] * f[j] * (1.0 - f[j]);
        dzg[j] = dcj * i[j] * (1.0 - g[j] * g[j]);
        dzo[j] = dh[j] * tc * o[j] * (1.0 - o[j]);
        dc[j] = dcj * f[j];
    }
}

/// GRU step (the cuDNN/PyTorch variant, whose reset gate scales the recurrent product, so one
/// matrix-vector product covers all three recurrent blocks). Gate blocks `[z | r | n]`:
/// `z = σ(px_z + ph_z)`, `r = σ(px_r + ph_r)`, `n = tanh(px_n + r * ph_n)`,
/// `h = (1 - z) * n + z * h_prev`.
pub(super) fn gru_forward(px: &[f32], ph: &[f32], h_prev: &[f32], acts: &mut [f32], h: &mut [f32]) {
    let n = h.len();
    for k in 0..2 * n {
        acts[k] = sigmoid(px[k] + ph[k]);
    }
    for j in 0..n {
        let (z, r) = (acts[j], acts[n + j]);
        let cand = tanh(px[2 * n + j] + r * ph[2 * n + j]);
        acts[2 * n + j] = cand;
        h[j] = (1.0 - z) * cand + z * h_prev[j];
    }
}

/// GRU backward for one step.
///
/// `ph_n` is the recurrent half of the candidate's pre-activation (`U_n h_prev`), kept from the
/// forward pass. Writes dLoss/d(input half) to `dzx`, dLoss/d(recurrent half) to `dzh` (they
/// differ only in the candidate block, by the factor `r`) and the direct path
/// dLoss/dh_prev = dh * z to `dh_prev` (the caller adds the `Uᵀ dzh` part).
pub(super) fn gru_backward(
    acts: &[f32],
    ph_n: &[f32],
    h_prev: &[f32],
    dh: &[f32],
    dzx: &mut [f32],
    dzh: &mut [f32],
    dh_prev: &mut [f32],
) {
    let n = dh.len();
    for j in 0..n {
        let (z, r, cand) = (acts[j], acts[n + j], acts[2 * n + j]);
        let dn = dh[j] * (1.0 - z);
        let dan = dn * (1.0 - cand * cand);
        let daz = dh[j] * (h_prev[j] - cand) * z * (1.0 - z);
        let dar = dan * ph_n[j] * r * (1.0 - r);
        dzx[j] = daz;
        dzx[n + j] = dar;
        dzx[2 * n + j] = dan;
        dzh[j] = daz;
        dzh[n + j] = dar;
        dzh[2 * n + j] = dan * r;
        dh_prev[j] = dh[j] * z;
    }
}
