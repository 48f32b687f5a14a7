//! Online-trained recurrent predictor (LSTM or GRU) for the arithmetic coder.
//!
//! [`Rnn`] predicts a distribution over the next symbol, is told the symbol that actually came,
//! learns from it and moves on, like NNCP or lstm-compress. The decoder runs the very same
//! computation, so it must reproduce every probability bit for bit on any machine. Hence:
//! * only IEEE basic operations, with activations from [`crate::detmath`], never libm;
//! * a fixed evaluation order everywhere: dot products keep a fixed number of partial sums
//!   (`linalg`), everything else is element-wise or serial; no threads, no hashing;
//! * no dependence on the target's vector width, so `-C target-cpu=native` gives the same bits.
//!
//! Model. Each of the `layers` stacked layers gets the previous symbol (one-hot, so its input
//! weights are an embedding column lookup), the hidden state of the layer below (for layers
//! above the first) and its own previous hidden state. The softmax output reads the hidden
//! states of all layers (skip connections shorten the gradient path, which speeds up online
//! learning). Training is truncated back-propagation through time: the forward pass stores
//! every step of the current window; after `bptt` steps the mean cross-entropy of the window
//! is back-propagated to the window's first state and all weights take one optimizer step
//! (Adam without momentum). Weights stay fixed inside a window, so the stored activations are
//! exactly those of the weights the gradient is taken for.
//!
//! Layout. All dense parameters live in one vector (per layer: input weights, recurrent
//! weights, bias; then output weights and bias), row-major with the gate blocks stacked, so the
//! optimizer is one loop and each gate row is contiguous for `linalg::dot`. Symbol embeddings
//! live apart because only the rows of symbols seen in a window get gradient: they take lazy
//! (sparse) steps, which keeps a 256-symbol alphabet cheap. All buffers, including the
//! window's history, are allocated once in [`Rnn::new`].

mod cell;
mod linalg;
#[cfg(test)]
mod tests;

use crate::detmath;
use linalg::{add, add_mat_t_vec, add_outer, mat_vec, sum};

/// Recurrent cell type. GRU has three gate blocks instead of four, so it runs about a quarter
/// faster at the same width, but wants a smaller learning rate; which one compresses better
/// depends on the data, so the choice is left to the caller.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Cell {
    /// Long short-term memory, gates `[input, forget, candidate, output]`, forget bias 1.
    Lstm,
    /// Gated recurrent unit (cuDNN variant: the reset gate scales `U_n h`), gates
    /// `[update, reset, candidate]`.
    Gru,
}

impl Cell {
    /// Number of gate blocks stacked in each weight matrix (rows per hidden unit): the cost of
    /// a step and the size of the model scale with it, which callers may want to estimate.
    pub fn gates(self) -> usize {
        match self {
            Cell::Lstm => 4,
            Cell::Gru => 3,
        }
    }
}

/// Everything that determines an [`Rnn`]: two predictors built from equal specs and fed the
/// same symbols produce bit-identical probabilities, which is what lets the decoder follow the
/// encoder.
#[derive(Clone, Debug, PartialEq)]
pub struct RnnSpec {
    /// Cell type of every layer.
    pub cell: Cell,
    /// Stacked layers, 1..=4 (values outside are clamped).
    pub layers: u32,
    /// Units per layer, 1..=1024 (values outside are clamped).
    pub hidden: u32,
    /// Alphabet size, 2..=256 (values outside are clamped). The input is the previous symbol
    /// (an embedding column), the output a softmax over the alphabet.
    pub symbols: u32,
    /// Truncated back-propagation length: every `bptt` symbols the last `bptt` steps are
    /// trained on (at least 1). 10..=32 is a good range; longer windows see longer
    /// dependencies but update less often.
    pub bptt: u32,
    /// Optimizer step size. About 1e-2 for LSTM and 5e-3 for GRU learned fastest online in our
    /// experiments (GRU turns unstable from about 1e-2, LSTM from about 3e-2). Gradients are
    /// clipped and weights bounded, so even absurd values stay finite, they just learn badly.
    pub lr: f32,
    /// Seed of the initial weights (SplitMix64).
    pub seed: u64,
}

/// The optimizer is Adam without momentum (first-moment decay 0), i.e. RMSprop with Adam's
/// bias correction: on text it learned clearly faster online than Adam's usual 0.9 (3.04
/// against 3.33 bits/byte over the first 100 kB of source code, LSTM 64, best learning rate
/// for each), since the source drifts and stale momentum hurts; it also saves a moment vector.
/// This is the second-moment decay: a long memory gives a steadier per-weight step size,
/// which beat 0.999 slightly in the same experiment.
const BETA2: f32 = 0.9999;
/// The optimizer's denominator guard, small against typical gradient magnitudes.
const ADAM_EPS: f32 = 1e-8;
/// Element-wise clip of the window's mean-loss gradient before the optimizer step, so one
/// freak window cannot blow up the second-moment estimates.
const GRAD_CLIP: f32 = 1.0;
/// Element-wise clip of dLoss/dh at each step of back-propagation: bounds the gradient through
/// the recurrence (exploding gradients) whatever the weights are.
const DH_CLIP: f32 = 1.0;
/// Bound on every weight. Saturates gates long before it binds in sane training; it only
/// guarantees that logits, and hence the softmax, stay finite with absurd learning rates.
const W_MAX: f32 = 64.0;
/// Lowest logit relative to the maximum that the softmax evaluates: `e^-80 / 256` is still a
/// normal `f32`, so every probability is strictly positive and denormals never occur.
const LOGIT_FLOOR: f32 = -80.0;
/// Half-width of the uniform initial embedding weights: large enough that the previous symbol
/// moves the gates from the start, small enough not to saturate them.
const EMB_INIT: f32 = 1.0;

/// Where one layer's dense parameters start inside [`Rnn::params`].
#[derive(Clone, Copy, Debug)]
struct LayerIdx {
    /// Input weights from the layer below, `G·H × inputs` (absent, `inputs == 0`, for layer 0).
    wx: usize,
    /// Recurrent weights, `G·H × H`.
    u: usize,
    /// Bias, `G·H`.
    b: usize,
    /// Width of the dense input (hidden size of the layer below, or 0).
    inputs: usize,
}

/// Online-trained recurrent next-symbol predictor; see the module documentation.
///
/// It owns the weights, the optimizer state and the current back-propagation window. The
/// encoder and the decoder each build one from the same [`RnnSpec`] and feed it the same
/// symbols, and then see the same probabilities. `Clone` forks the complete state, so a copy
/// continues exactly as the original would.
#[derive(Clone)]
pub struct Rnn {
    cell: Cell,
    layers: usize,
    hidden: usize,
    symbols: usize,
    bptt: usize,
    lr: f32,
    /// Rows of a layer's weight matrices: gate blocks times `hidden`.
    gate_rows: usize,
    lidx: Vec<LayerIdx>,
    /// Offset of the output weights (`symbols × layers·hidden`) in `params`.
    wo: usize,
    /// Offset of the output bias (`symbols`) in `params`.
    bo: usize,
    /// Dense parameters, their gradient and second moments, all the same length.
    params: Vec<f32>,
    grad: Vec<f32>,
    v: Vec<f32>,
    /// Embeddings `[layer][symbol][gate_rows]`, their gradient and second moments.
    emb: Vec<f32>,
    emb_grad: Vec<f32>,
    emb_v: Vec<f32>,
    /// Symbols whose embedding rows have gradient in the current window.
    touched: Vec<bool>,
    touched_list: Vec<usize>,
    /// `BETA2^t` for the bias correction, by repeated multiplication.
    b2_pow: f32,
    /// Steps stored in the current window (0 only before the first `update`).
    count: usize,
    /// Input symbol of each window step and the symbol that followed it.
    inputs: Vec<usize>,
    targets: Vec<usize>,
    /// Hidden states of all layers, `(bptt + 1) × layers·hidden`: slot 0 is the state the
    /// window started from, slot `t + 1` the state after step `t`.
    hs: Vec<f32>,
    /// LSTM cell states, same shape as `hs` (empty for GRU).
    cs: Vec<f32>,
    /// Post-activation gates, `bptt × layers × gate_rows`.
    acts: Vec<f32>,
    /// GRU only: recurrent half of the candidate pre-activation, `bptt × layers × hidden`.
    phn: Vec<f32>,
    /// Predicted distributions, `bptt × symbols`.
    out: Vec<f32>,
    /// The distribution before the first symbol (from the zero state).
    first: Vec<f32>,
    /// Scratch, sized once.
    px: Vec<f32>,
    ph: Vec<f32>,
    dlogits: Vec<f32>,
    dh_tot: Vec<f32>,
    dh_next: Vec<f32>,
    dc: Vec<f32>,
    dzx: Vec<f32>,
    dzh: Vec<f32>,
    dh_prev: Vec<f32>,
}

/// SplitMix64, a tiny full-period generator: enough for weight initialisation, and fixed here
/// so that the initial weights never depend on an external crate's version. Public for the
/// tests, which draw their own seeded inputs from it.
pub struct SplitMix64(pub u64);

impl SplitMix64 {
    /// The next 64 random bits.
    #[allow(clippy::should_implement_trait)] // an endless stream: `Iterator` would add nothing
    pub fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Uniform in `[-a, a)`: 24 random bits convert to `f32` exactly.
    fn uniform(&mut self, a: f32) -> f32 {
        let u = (self.next() >> 40) as f32 * (1.0 / 16_777_216.0);
        (2.0 * u - 1.0) * a
    }
}

impl Rnn {
    /// Builds the predictor with initial weights drawn from `spec.seed`.
    ///
    /// Out-of-range sizes are clamped to the documented ranges, and a negative or non-finite
    /// `lr` means no learning, instead of panicking (callers validate specs; a compressor must
    /// not crash on a corrupt header).
    pub fn new(spec: &RnnSpec) -> Rnn {
        debug_assert!((1..=4).contains(&spec.layers), "layers {}", spec.layers);
        debug_assert!((1..=1024).contains(&spec.hidden), "hidden {}", spec.hidden);
        debug_assert!(
            (2..=256).contains(&spec.symbols),
            "symbols {}",
            spec.symbols
        );
        debug_assert!(spec.bptt >= 1, "bptt {}", spec.bptt);
        debug_assert!(spec.lr.is_finite() && spec.lr >= 0.0, "lr {}", spec.lr);
        let layers = spec.layers.clamp(1, 4) as usize;
        let hidden = spec.hidden.clamp(1, 1024) as usize;
        let symbols = spec.symbols.clamp(2, 256) as usize;
        let bptt = spec.bptt.max(1) as usize;
        let cell = spec.cell;
        let gate_rows = cell.gates() * hidden;
        let lh = layers * hidden;

        let mut lidx = Vec::with_capacity(layers);
        let mut len = 0;
        for l in 0..layers {
            let inputs = if l == 0 { 0 } else { hidden };
            let wx = len;
            let u = wx + gate_rows * inputs;
            let b = u + gate_rows * hidden;
            len = b + gate_rows;
            lidx.push(LayerIdx { wx, u, b, inputs });
        }
        let wo = len;
        let bo = wo + symbols * lh;
        len = bo + symbols;

        // Initialisation in one fixed order. Uniform ±1/sqrt(fan-in) keeps pre-activations
        // O(1); the LSTM forget bias starts at 1 so memory is kept until learned otherwise.
        let mut rng = SplitMix64(spec.seed);
        let mut params = vec![0.0f32; len];
        let scale = 1.0 / (hidden as f32).sqrt();
        for li in &lidx {
            for w in &mut params[li.wx..li.b] {
                *w = rng.uniform(scale);
            }
            if cell == Cell::Lstm {
                params[li.b + hidden..li.b + 2 * hidden].fill(1.0);
            }
        }
        let out_scale = 1.0 / (lh as f32).sqrt();
        for w in &mut params[wo..bo] {
            *w = rng.uniform(out_scale);
        }
        let emb: Vec<f32> = (0..layers * symbols * gate_rows)
            .map(|_| rng.uniform(EMB_INIT))
            .collect();

        let mut rnn = Rnn {
            cell,
            layers,
            hidden,
            symbols,
            bptt,
            // A NaN or infinite rate would poison every weight; not learning is the safe
            // fallback (the probabilities stay valid).
            lr: if spec.lr.is_finite() && spec.lr > 0.0 {
                spec.lr
            } else {
                0.0
            },
            gate_rows,
            lidx,
            wo,
            bo,
            grad: vec![0.0; len],
            v: vec![0.0; len],
            params,
            emb_grad: vec![0.0; emb.len()],
            emb_v: vec![0.0; emb.len()],
            emb,
            touched: vec![false; symbols],
            touched_list: Vec::with_capacity(symbols),
            b2_pow: 1.0,
            count: 0,
            inputs: vec![0; bptt],
            targets: vec![0; bptt],
            hs: vec![0.0; (bptt + 1) * lh],
            cs: if cell == Cell::Lstm {
                vec![0.0; (bptt + 1) * lh]
            } else {
                Vec::new()
            },
            acts: vec![0.0; bptt * layers * gate_rows],
            phn: if cell == Cell::Gru {
                vec![0.0; bptt * lh]
            } else {
                Vec::new()
            },
            out: vec![0.0; bptt * symbols],
            first: vec![0.0; symbols],
            px: vec![0.0; gate_rows],
            ph: vec![0.0; gate_rows],
            dlogits: vec![0.0; symbols],
            dh_tot: vec![0.0; lh],
            dh_next: vec![0.0; lh],
            dc: vec![0.0; lh],
            dzx: vec![0.0; gate_rows],
            dzh: vec![0.0; gate_rows],
            dh_prev: vec![0.0; hidden],
        };
        let (first, hs) = (&mut rnn.first, &rnn.hs[..lh]);
        output_probs(first, &rnn.params[wo..bo], &rnn.params[bo..len], hs);
        rnn
    }

    /// Distribution over the next symbol: `symbols` entries, each > 0 (at least `e^-80/256`),
    /// summing to 1 up to rounding.
    pub fn probs(&self) -> &[f32] {
        match self.count.checked_sub(1) {
            None => &self.first,
            Some(t) => &self.out[t * self.symbols..(t + 1) * self.symbols],
        }
    }

    /// The symbol that actually came: learn from it and advance the state, so that
    /// [`Rnn::probs`] is then the prediction for the following symbol.
    ///
    /// `symbol` must be below `symbols`; larger values are treated as `symbols - 1` (checked
    /// in debug builds) so that a bad caller cannot make the predictor panic.
    pub fn update(&mut self, symbol: u32) {
        debug_assert!((symbol as usize) < self.symbols, "symbol {symbol}");
        let sym = (symbol as usize).min(self.symbols - 1);
        if let Some(t) = self.count.checked_sub(1) {
            self.targets[t] = sym;
        }
        if self.count == self.bptt {
            self.train();
        }
        self.forward(sym);
    }

    /// Number of trained parameters (dense weights plus all embedding rows), for reporting
    /// model size next to compression ratios.
    pub fn param_count(&self) -> usize {
        self.params.len() + self.emb.len()
    }

    /// One forward step into window slot `count`: input `sym`, state from slot `count`,
    /// new state and prediction into slot `count + 1` / `out[count]`.
    fn forward(&mut self, sym: usize) {
        let t = self.count;
        let (hn, gr, s) = (self.hidden, self.gate_rows, self.symbols);
        let lh = self.layers * hn;
        self.inputs[t] = sym;
        let (done, rest) = self.hs.split_at_mut((t + 1) * lh);
        let h_prev = &done[t * lh..];
        let h_cur = &mut rest[..lh];
        for (l, li) in self.lidx.iter().enumerate() {
            // Input half: bias + embedding column + input weights times the layer below.
            let px = &mut self.px;
            px.copy_from_slice(&self.params[li.b..li.b + gr]);
            add(px, &self.emb[(l * s + sym) * gr..][..gr]);
            let (below, here) = h_cur.split_at_mut(l * hn);
            if li.inputs > 0 {
                let x = &below[(l - 1) * hn..];
                let wx = &self.params[li.wx..li.u];
                for (p, row) in px.iter_mut().zip(wx.chunks_exact(li.inputs)) {
                    *p += linalg::dot(row, x);
                }
            }
            // Recurrent half.
            let hp = &h_prev[l * hn..(l + 1) * hn];
            mat_vec(&mut self.ph, &self.params[li.u..li.b], hp);
            let acts = &mut self.acts[(t * self.layers + l) * gr..][..gr];
            let h = &mut here[..hn];
            match self.cell {
                Cell::Lstm => {
                    let (cd, cr) = self.cs.split_at_mut((t + 1) * lh);
                    let c_prev = &cd[t * lh + l * hn..][..hn];
                    let c = &mut cr[l * hn..(l + 1) * hn];
                    cell::lstm_forward(px, &self.ph, c_prev, acts, c, h);
                }
                Cell::Gru => {
                    cell::gru_forward(px, &self.ph, hp, acts, h);
                    self.phn[(t * self.layers + l) * hn..][..hn]
                        .copy_from_slice(&self.ph[2 * hn..]);
                }
            }
        }
        let out = &mut self.out[t * s..(t + 1) * s];
        let (wo, bo) = (
            &self.params[self.wo..self.bo],
            &self.params[self.bo..self.bo + s],
        );
        output_probs(out, wo, bo, h_cur);
        self.count = t + 1;
    }

    /// Back-propagates the mean cross-entropy of the stored window (steps `0..count`, targets
    /// set) and accumulates its gradient into `grad` / `emb_grad`, marking touched symbols.
    fn backward(&mut self) {
        let (hn, gr, s, nl) = (self.hidden, self.gate_rows, self.symbols, self.layers);
        let lh = nl * hn;
        let steps = self.count;
        let scale = 1.0 / steps as f32;
        self.dh_next.fill(0.0);
        self.dc.fill(0.0);
        for t in (0..steps).rev() {
            let sym = self.inputs[t];
            // d(-ln p_y)/dlogits = p - onehot(y), scaled for the window mean.
            for (d, &p) in self.dlogits.iter_mut().zip(&self.out[t * s..(t + 1) * s]) {
                *d = p * scale;
            }
            self.dlogits[self.targets[t]] -= scale;
            let h_prev = &self.hs[t * lh..(t + 1) * lh];
            let h_cur = &self.hs[(t + 1) * lh..(t + 2) * lh];
            add_outer(&mut self.grad[self.wo..self.bo], &self.dlogits, h_cur);
            add(&mut self.grad[self.bo..self.bo + s], &self.dlogits);
            self.dh_tot.copy_from_slice(&self.dh_next);
            add_mat_t_vec(
                &mut self.dh_tot,
                &self.params[self.wo..self.bo],
                &self.dlogits,
            );

            for (l, li) in self.lidx.iter().enumerate().rev() {
                let (lower, upper) = self.dh_tot.split_at_mut(l * hn);
                let dh = &mut upper[..hn];
                for d in dh.iter_mut() {
                    *d = d.clamp(-DH_CLIP, DH_CLIP);
                }
                let acts = &self.acts[(t * nl + l) * gr..][..gr];
                let hp = &h_prev[l * hn..(l + 1) * hn];
                match self.cell {
                    Cell::Lstm => {
                        let c_prev = &self.cs[t * lh + l * hn..][..hn];
                        let c = &self.cs[(t + 1) * lh + l * hn..][..hn];
                        let dc = &mut self.dc[l * hn..(l + 1) * hn];
                        cell::lstm_backward(acts, c_prev, c, dh, dc, &mut self.dzx);
                        self.dzh.copy_from_slice(&self.dzx);
                        self.dh_prev.fill(0.0);
                    }
                    Cell::Gru => {
                        let phn = &self.phn[(t * nl + l) * hn..][..hn];
                        cell::gru_backward(
                            acts,
                            phn,
                            hp,
                            dh,
                            &mut self.dzx,
                            &mut self.dzh,
                            &mut self.dh_prev,
                        );
                    }
                }
                add(&mut self.grad[li.b..li.b + gr], &self.dzx);
                add(&mut self.emb_grad[(l * s + sym) * gr..][..gr], &self.dzx);
                if li.inputs > 0 {
                    let x = &h_cur[(l - 1) * hn..l * hn];
                    add_outer(&mut self.grad[li.wx..li.u], &self.dzx, x);
                    let dx = &mut lower[(l - 1) * hn..];
                    add_mat_t_vec(dx, &self.params[li.wx..li.u], &self.dzx);
                }
                add_outer(&mut self.grad[li.u..li.b], &self.dzh, hp);
                let dn = &mut self.dh_next[l * hn..(l + 1) * hn];
                dn.copy_from_slice(&self.dh_prev);
                add_mat_t_vec(dn, &self.params[li.u..li.b], &self.dzh);
            }
            if !self.touched[sym] {
                self.touched[sym] = true;
                self.touched_list.push(sym);
            }
        }
    }

    /// End of a window: gradient, one optimizer step, and the final state becomes the start
    /// of the next window.
    fn train(&mut self) {
        self.backward();
        self.b2_pow *= BETA2;
        // Adam's bias correction for the second moment (the first-moment one is 1 here).
        let step = self.lr * (1.0 - self.b2_pow).sqrt();
        adam(&mut self.params, &mut self.grad, &mut self.v, step);
        let gr = self.gate_rows;
        // Lazy updates of embeddings: only rows of symbols seen in this window move (their
        // moments are not decayed while unseen). Rows are independent, so the list order
        // does not affect the result.
        for &sym in &self.touched_list {
            for l in 0..self.layers {
                let r = (l * self.symbols + sym) * gr..(l * self.symbols + sym + 1) * gr;
                adam(
                    &mut self.emb[r.clone()],
                    &mut self.emb_grad[r.clone()],
                    &mut self.emb_v[r],
                    step,
                );
            }
            self.touched[sym] = false;
        }
        self.touched_list.clear();
        let lh = self.layers * self.hidden;
        let end = self.count * lh;
        self.hs.copy_within(end..end + lh, 0);
        if !self.cs.is_empty() {
            self.cs.copy_within(end..end + lh, 0);
        }
        self.count = 0;
    }
}

/// Softmax of `bo + wo · h` into `out`, with max-subtraction and logits floored at
/// [`LOGIT_FLOOR`] below the maximum so every probability is a positive normal number.
fn output_probs(out: &mut [f32], wo: &[f32], bo: &[f32], h: &[f32]) {
    mat_vec(out, wo, h);
    add(out, bo);
    let mut max = f32::NEG_INFINITY;
    for &z in out.iter() {
        if z > max {
            max = z;
        }
    }
    for z in out.iter_mut() {
        let d = *z - max;
        *z = detmath::exp(if d < LOGIT_FLOOR { LOGIT_FLOOR } else { d });
    }
    let inv = 1.0 / sum(out);
    for z in out.iter_mut() {
        *z *= inv;
    }
}

/// One step of Adam without momentum (see [`BETA2`]; `step` is already bias-corrected) on `w`
/// from gradient `g`, which is clipped on the way in and zeroed for the next window. Weights
/// are kept within ±[`W_MAX`]. `sqrt` is an IEEE basic operation (correctly rounded), so this
/// is as deterministic as `+ - * /`.
fn adam(w: &mut [f32], g: &mut [f32], v: &mut [f32], step: f32) {
    for ((w, g), v) in w.iter_mut().zip(g.iter_mut()).zip(v) {
        let gi = g.clamp(-GRAD_CLIP, GRAD_CLIP);
        *g = 0.0;
        *v = BETA2 * *v + (1.0 - BETA2) * gi * gi;
        *w = (*w - step * gi / (v.sqrt() + ADAM_EPS)).clamp(-W_MAX, W_MAX);
    }
}
