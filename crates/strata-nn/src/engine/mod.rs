//! strata's training and evaluation engine: explicit forward and backward passes of its
//! networks over buffers allocated once per batch size, with every matrix product on faer.
//!
//! Why not the tensor library's autograd: a training step built from generic tensor operations
//! allocates dozens of fresh buffers per layer (the kernel's page-fault path took a third of the
//! time), runs convolutions as direct loops and their backward as transposed convolutions, and
//! builds batch norm and Adam from many small passes. Here a convolution is im2col + GEMM over
//! channels-last activations, batch norm is fused with the nonlinearity, Adam is one pass over
//! one flat parameter buffer, and nothing is allocated per step beyond small per-channel sums.
//!
//! The networks are the same as [`crate::net`]'s: the engine copies a [`Net`]'s parameters in
//! ([`Engine::new`]), trains or evaluates, and copies them back ([`Engine::write_back`]). Its
//! numbers follow the same definitions (tested against the tensor implementation's gradients
//! and against finite differences), with two deliberate differences: max pooling sends the
//! gradient to one maximum per window (the tensor library scales it by the number of ties over
//! the window size), and a clip's gradient is 1 on its boundary (the tensor library gives 1/2).
//!
//! Determinism: per-channel statistics and weight gradients of convolutions are summed over
//! fixed blocks in a fixed order, and faer's products split work over outputs only, so the same
//! parameters, data and thread count give bit-identical results.

mod conv;
mod gemm;
mod norm;
mod optim;
mod pool;

use crate::error::NnError;
use crate::net::{Net, Op};
use crate::precision::Precision;
use crate::train::{OptimizerKind, TrainConfig};
use candle_core::Tensor;
use conv::ConvGeo;
use faer::Par;
use norm::{Act, Norm};
use pool::PoolGeo;
use rayon::prelude::*;
use std::ops::Range;

/// Patch rows per convolution task: a task's patches (rows x k·k·c_in floats) stay in the
/// core's cache between im2col and the product.
const CONV_ROWS: usize = 1024;

/// Largest batch the engine evaluates at once (evaluation results do not depend on it).
const EVAL_ROWS: usize = 256;

enum LayerOp {
    /// `fin` inputs per example; `gap = Some(positions)` averages a channels-last input over
    /// its positions first.
    Dense {
        fin: usize,
        gap: Option<usize>,
    },
    Conv(ConvGeo),
}

struct Layer {
    op: LayerOp,
    /// Output channels or units (the batch norm's size).
    out: usize,
    act: Act,
    pool: Option<PoolGeo>,
    /// Per-example elements: input, op output, block output (after pooling).
    in_len: usize,
    z_len: usize,
    post_len: usize,
    /// Offsets in the flat parameter buffer.
    w: Range<usize>,
    gamma: usize,
    beta: usize,
    /// Offset of the running mean (the running variance follows it) in `running`.
    stats: usize,
    /// False for a linear logits layer: `z + beta`, no batch norm.
    normalize: bool,
    /// Engine weight index -> index in the network's own layout; `None` for the identity.
    perm: Option<Vec<usize>>,
}

impl Layer {
    /// Weight-shaped values (weights or their gradients) from the engine's layout back into
    /// the network's own (`perm` undone).
    fn to_network_layout(&self, v: &[f32]) -> Vec<f32> {
        match &self.perm {
            Some(p) => {
                let mut c = vec![0f32; v.len()];
                for (&j, &x) in p.iter().zip(v) {
                    c[j] = x;
                }
                c
            }
            None => v.to_vec(),
        }
    }
}

/// Per-layer buffers for a batch of up to `cap` examples.
#[derive(Default)]
struct LayerBufs {
    /// Op output; in training, batch norm's normalized `x̂` (kept for backward).
    z: Vec<f32>,
    /// Activation before pooling (pooled layers only).
    act: Vec<f32>,
    /// The block's output (the logits for the last block).
    post: Vec<f32>,
    /// Which window entry each pooled output came from.
    arg: Vec<u8>,
    /// Averaged input of a global-average-pooling dense layer.
    gap: Vec<f32>,
    invstd: Vec<f32>,
}

/// One training step's figures.
pub(crate) struct StepStats {
    /// Mean cross-entropy over the batch, in nats (penalty excluded).
    pub loss: f64,
    /// Examples whose largest logit is their label.
    pub right: usize,
}

/// A network's parameters and the buffers to train or evaluate it.
pub(crate) struct Engine {
    precision: Precision,
    /// Input `[channels, height, width]`.
    input: [usize; 3],
    layers: Vec<Layer>,
    params: Vec<f32>,
    grads: Vec<f32>,
    /// Quantized weights (same offsets as `params`); empty for float networks.
    wq: Vec<f32>,
    running: Vec<f32>,
    momentum: f32,
    eps: f32,
    cap: usize,
    x: Vec<f32>,
    bufs: Vec<LayerBufs>,
    /// Backward scratch: the gradient flowing down, and a second buffer to write the next one.
    ga: Vec<f32>,
    gb: Vec<f32>,
    optim: Option<optim::Optim>,
    /// `wq` holds the quantized weights of the current `params` (evaluation batches reuse them).
    wq_fresh: bool,
}

fn tensor_vec(t: &Tensor) -> Result<Vec<f32>, NnError> {
    Ok(t.flatten_all()?.to_vec1::<f32>()?)
}

impl Engine {
    /// An engine holding a copy of `net`'s parameters, with buffers for batches of `cap`.
    pub fn new(net: &Net, cap: usize) -> Result<Self, NnError> {
        let s = &net.config.input_shape;
        let input = [s[0], s[1], s[2]];
        let bits = net.config.precision.activation_bits();
        let last = net.blocks.len() - 1;
        let (mut params, mut running, mut layers) = (Vec::new(), Vec::new(), Vec::new());
        // The current per-example shape, channels-last: positions x channels.
        let (mut c, mut h, mut w) = (input[0], input[1], input[2]);
        let mut flat = false;
        for (i, b) in net.blocks.iter().enumerate() {
            let canon = tensor_vec(b.w.as_tensor())?;
            let out = b.bn.gamma.as_tensor().dim(0)?;
            let in_len = if flat { c } else { c * h * w };
            let (op, perm, z_pos) = match b.op {
                Op::Dense { gap } => {
                    let spatial = !flat && h * w > 1;
                    let (fin, gap) = if gap && spatial {
                        (c, Some(h * w))
                    } else {
                        (in_len, None)
                    };
                    // The network flattens channels-first (c, y, x); the engine's rows are
                    // channels-last (y, x, c): reorder the weight rows to match.
                    let perm = (gap.is_none() && spatial && c > 1).then(|| {
                        let hw = h * w;
                        let mut p = Vec::with_capacity(fin * out);
                        for r in 0..fin {
                            let (pos, ch) = (r / c, r % c);
                            for o in 0..out {
                                p.push((ch * hw + pos) * out + o);
                            }
                        }
                        p
                    });
                    flat = true;
                    (LayerOp::Dense { fin, gap }, perm, 1)
                }
                Op::Conv { k, stride, pad } => {
                    let oh = (h + 2 * pad - k) / stride + 1;
                    let ow = (w + 2 * pad - k) / stride + 1;
                    let g = ConvGeo {
                        cin: c,
                        h,
                        w,
                        k,
                        stride,
                        pad,
                        oh,
                        ow,
                    };
                    let kl = g.patch_len();
                    let mut p = Vec::with_capacity(kl * out);
                    for r in 0..kl {
                        let (tap, ch) = (r / c, r % c);
                        let (ky, kx) = (tap / k, tap % k);
                        for o in 0..out {
                            p.push(((o * c + ch) * k + ky) * k + kx);
                        }
                    }
                    (h, w) = (oh, ow);
                    (LayerOp::Conv(g), Some(p), oh * ow)
                }
            };
            c = out;
            let pool = (b.pool > 1).then_some(PoolGeo {
                c: out,
                h,
                w,
                p: b.pool,
            });
            if let Some(p) = &pool {
                (h, w) = (h / p.p, w / p.p);
            }
            let post_len = if flat { out } else { out * h * w };
            let wr = params.len()..params.len() + canon.len();
            match &perm {
                Some(p) => params.extend(p.iter().map(|&j| canon[j])),
                None => params.extend_from_slice(&canon),
            }
            let gamma = params.len();
            params.extend(tensor_vec(b.bn.gamma.as_tensor())?);
            let beta = params.len();
            params.extend(tensor_vec(b.bn.beta.as_tensor())?);
            let stats = running.len();
            running.extend(tensor_vec(&b.bn.running_mean)?);
            running.extend(tensor_vec(&b.bn.running_var)?);
            layers.push(Layer {
                op,
                out,
                act: if i == last {
                    Act::Identity
                } else {
                    Act::for_bits(bits)
                },
                pool,
                in_len,
                z_len: z_pos * out,
                post_len,
                w: wr,
                gamma,
                beta,
                stats,
                normalize: b.bn.normalize,
                perm,
            });
        }
        let quantized = net.config.precision.weight_bits().is_some();
        let n = params.len();
        let mut e = Engine {
            precision: net.config.precision,
            input,
            layers,
            grads: vec![0.0; n],
            wq: if quantized { vec![0.0; n] } else { Vec::new() },
            params,
            running,
            momentum: net.blocks[0].bn.momentum as f32,
            eps: net.blocks[0].bn.eps as f32,
            cap: 0,
            x: Vec::new(),
            bufs: Vec::new(),
            ga: Vec::new(),
            gb: Vec::new(),
            optim: None,
            wq_fresh: false,
        };
        e.reserve(cap);
        Ok(e)
    }

    /// Buffers for batches of up to `cap` examples (allocated once, reused by every step).
    fn reserve(&mut self, cap: usize) {
        if cap <= self.cap {
            return;
        }
        self.cap = cap;
        let n = cap;
        let in_len = self.input.iter().product::<usize>();
        self.x = vec![0.0; n * in_len];
        let mut grad_len = 0;
        self.bufs = self
            .layers
            .iter()
            .map(|l| {
                grad_len = grad_len.max(l.in_len.max(l.z_len).max(l.post_len));
                let mut b = LayerBufs {
                    z: vec![0.0; n * l.z_len],
                    post: vec![0.0; n * l.post_len],
                    invstd: vec![0.0; l.out],
                    ..Default::default()
                };
                if l.pool.is_some() {
                    b.act = vec![0.0; n * l.z_len];
                    b.arg = vec![0; n * l.post_len];
                }
                if let LayerOp::Dense { fin, gap: Some(_) } = &l.op {
                    b.gap = vec![0.0; n * fin];
                }
                b
            })
            .collect();
        self.ga = vec![0.0; n * grad_len];
        self.gb = vec![0.0; n * grad_len];
    }

    /// Copies rows `idx` of `x` (`rows x (c·h·w)`, channels-first) into the input buffer,
    /// channels-last, as the network reads them (8-bit integers for quantized networks).
    fn load(&mut self, x: ndarray::ArrayView2<'_, f32>, idx: &[usize]) {
        let [c, h, w] = self.input;
        let hw = h * w;
        let quantized = self.precision != Precision::Float;
        let len = c * hw;
        self.x[..idx.len() * len]
            .par_chunks_mut(len)
            .zip(idx.par_iter())
            .for_each(|(dst, &i)| {
                let row = x.row(i);
                for (j, v) in row.iter().enumerate() {
                    let v = if quantized {
                        round_non_negative(v * 255.0)
                    } else {
                        *v
                    };
                    let (ch, pos) = (j / hw, j % hw);
                    dst[pos * c + ch] = v;
                }
            });
    }

    /// Forward pass over the `n` loaded examples; `train` normalizes by batch statistics
    /// (updating the running ones) and keeps what backward needs. The logits end in the last
    /// layer's `post`.
    fn forward(&mut self, n: usize, train: bool) {
        if let Some(bits) = self.precision.weight_bits() {
            if !self.wq_fresh {
                for l in &self.layers {
                    optim::quantize(&self.params[l.w.clone()], bits, &mut self.wq[l.w.clone()]);
                }
                self.wq_fresh = true;
            }
        }
        let weights = if self.wq.is_empty() {
            &self.params
        } else {
            &self.wq
        };
        for i in 0..self.layers.len() {
            let l = &self.layers[i];
            let (before, rest) = self.bufs.split_at_mut(i);
            let cur = &mut rest[0];
            let x = if i == 0 {
                &self.x[..n * l.in_len]
            } else {
                &before[i - 1].post[..n * l.in_len]
            };
            let w = &weights[l.w.clone()];
            let z = &mut cur.z[..n * l.z_len];
            match &l.op {
                LayerOp::Dense { fin, gap } => {
                    let x = match gap {
                        Some(pos) => {
                            pool::gap_forward(x, *pos, *fin, &mut cur.gap[..n * fin]);
                            &cur.gap[..n * fin]
                        }
                        None => x,
                    };
                    gemm::ab(z, x, w, (n, *fin, l.out), false, Par::rayon(0));
                }
                LayerOp::Conv(g) => conv_forward(g, x, w, l.out, z),
            }
            let (stats_mean, stats_var) =
                self.running[l.stats..l.stats + 2 * l.out].split_at_mut(l.out);
            let norm = Norm {
                gamma: &self.params[l.gamma..l.gamma + l.out],
                beta: &self.params[l.beta..l.beta + l.out],
                running_mean: stats_mean,
                running_var: stats_var,
                momentum: self.momentum,
                eps: self.eps,
            };
            let dst = if l.pool.is_some() {
                &mut cur.act[..n * l.z_len]
            } else {
                &mut cur.post[..n * l.post_len]
            };
            if !l.normalize {
                norm::bias_forward(z, l.out, norm.beta, dst);
            } else if train {
                norm::forward_train(z, l.out, norm, l.act, &mut cur.invstd, dst);
            } else {
                norm::forward_eval(z, l.out, &norm, l.act, dst);
            }
            if let Some(p) = &l.pool {
                p.forward(
                    &cur.act[..n * l.z_len],
                    &mut cur.post[..n * l.post_len],
                    &mut cur.arg[..n * l.post_len],
                );
            }
        }
    }

    fn logits(&self, n: usize) -> &[f32] {
        let l = self.layers.len() - 1;
        &self.bufs[l].post[..n * self.layers[l].post_len]
    }

    /// Backward pass from the logits' gradient in `ga`: every parameter's gradient into
    /// `grads`.
    fn backward(&mut self, n: usize) {
        let weights = if self.wq.is_empty() {
            &self.params
        } else {
            &self.wq
        };
        for i in (0..self.layers.len()).rev() {
            let l = &self.layers[i];
            let (before, rest) = self.bufs.split_at_mut(i);
            let cur = &mut rest[0];
            if let Some(p) = &l.pool {
                p.backward(
                    &self.ga[..n * l.post_len],
                    &cur.arg[..n * l.post_len],
                    &mut self.gb[..n * l.z_len],
                );
                std::mem::swap(&mut self.ga, &mut self.gb);
            }
            let dz = &mut self.ga[..n * l.z_len];
            let (g_all, rest_grads) = self.grads.split_at_mut(l.beta);
            if !l.normalize {
                norm::bias_backward(
                    dz,
                    l.out,
                    &mut g_all[l.gamma..l.gamma + l.out],
                    &mut rest_grads[..l.out],
                );
            } else {
                norm::backward(
                    dz,
                    &cur.z[..n * l.z_len],
                    l.out,
                    &self.params[l.gamma..l.gamma + l.out],
                    &self.params[l.beta..l.beta + l.out],
                    &cur.invstd,
                    l.act,
                    &mut g_all[l.gamma..l.gamma + l.out],
                    &mut rest_grads[..l.out],
                );
            }
            let dz = &self.ga[..n * l.z_len];
            let x = if i == 0 {
                &self.x[..n * l.in_len]
            } else {
                &before[i - 1].post[..n * l.in_len]
            };
            let w = &weights[l.w.clone()];
            let dw = &mut self.grads[l.w.clone()];
            let dx = (i > 0).then(|| &mut self.gb[..n * l.in_len]);
            match &l.op {
                LayerOp::Dense { fin, gap } => {
                    let xin = if gap.is_some() {
                        &cur.gap[..n * fin]
                    } else {
                        x
                    };
                    gemm::atb(dw, xin, dz, (n, *fin, l.out), false, Par::rayon(0));
                    if let Some(dx) = dx {
                        match gap {
                            Some(pos) => {
                                // The averaged input's gradient, then spread over positions.
                                let dg = &mut cur.gap[..n * fin];
                                gemm::abt(dg, dz, w, (n, l.out, *fin), false, Par::rayon(0));
                                pool::gap_backward(dg, *pos, *fin, dx);
                            }
                            None => gemm::abt(dx, dz, w, (n, l.out, *fin), false, Par::rayon(0)),
                        }
                    }
                }
                LayerOp::Conv(g) => conv_backward(g, x, w, l.out, dz, Some(dw), dx),
            }
            if let Some(bits) = self.precision.weight_bits() {
                if bits > 1 {
                    optim::mask_clipped(&self.params[l.w.clone()], &mut self.grads[l.w.clone()]);
                }
            }
            std::mem::swap(&mut self.ga, &mut self.gb);
        }
    }

    /// Forward and backward on rows `idx` of `x` with labels `y`: every parameter's gradient
    /// of the mean cross-entropy plus `l2 · Σ θ²` into `grads`.
    fn gradients(
        &mut self,
        x: ndarray::ArrayView2<'_, f32>,
        y: &[u32],
        idx: &[usize],
        l2: f64,
    ) -> StepStats {
        let n = idx.len();
        self.reserve(n);
        self.load(x, idx);
        self.forward(n, true);
        let last = self.layers.len() - 1;
        let classes = self.layers[last].out;
        let labels: Vec<usize> = idx.iter().map(|&i| y[i] as usize).collect();
        let (loss, right) = cross_entropy(
            &self.bufs[last].post[..n * classes],
            &labels,
            classes,
            &mut self.ga[..n * classes],
        );
        self.backward(n);
        if l2 > 0.0 {
            let k = (2.0 * l2) as f32;
            for (g, p) in self.grads.iter_mut().zip(&self.params) {
                *g += k * p;
            }
        }
        StepStats { loss, right }
    }

    /// One training step on rows `idx` of `x` with labels `y`: forward, cross-entropy,
    /// backward, optimizer update (and the clip of quantized weights to [-1, 1]).
    pub fn step(
        &mut self,
        x: ndarray::ArrayView2<'_, f32>,
        y: &[u32],
        idx: &[usize],
        cfg: &TrainConfig,
        lr: f64,
    ) -> StepStats {
        let stats = self.gradients(x, y, idx, cfg.l2);
        let optim = self.optim.get_or_insert_with(|| match cfg.optimizer {
            OptimizerKind::Adam => optim::Optim::adam(self.params.len(), cfg.weight_decay),
            OptimizerKind::Sgd { momentum } => {
                optim::Optim::sgd(self.params.len(), momentum, cfg.weight_decay)
            }
        });
        optim.step(&mut self.params, &self.grads, lr);
        // A linear logits layer's scale is fixed at 1 (weight decay would otherwise shrink it).
        for l in self.layers.iter().filter(|l| !l.normalize) {
            self.params[l.gamma..l.gamma + l.out].fill(1.0);
        }
        self.wq_fresh = false;
        if self.precision.weight_bits().is_some() {
            for l in &self.layers {
                for v in &mut self.params[l.w.clone()] {
                    *v = v.clamp(-1.0, 1.0);
                }
            }
        }
        // A non-finite loss is reported as such; the callers name the epoch it diverged in.
        stats
    }

    /// Evaluation-mode backward from the logits' gradient in `ga` down to the input: the
    /// gradient of the loss with respect to the loaded input (channels-last) ends in `ga`.
    /// Parameters get no gradient; batch norm uses its running statistics, and every quantizer
    /// passes its straight-through gradient, as in training.
    fn backward_input(&mut self, n: usize) {
        let weights = if self.wq.is_empty() {
            &self.params
        } else {
            &self.wq
        };
        for i in (0..self.layers.len()).rev() {
            let l = &self.layers[i];
            let (before, rest) = self.bufs.split_at_mut(i);
            let cur = &mut rest[0];
            if let Some(p) = &l.pool {
                p.backward(
                    &self.ga[..n * l.post_len],
                    &cur.arg[..n * l.post_len],
                    &mut self.gb[..n * l.z_len],
                );
                std::mem::swap(&mut self.ga, &mut self.gb);
            }
            let (mean, var) = self.running[l.stats..l.stats + 2 * l.out].split_at_mut(l.out);
            let norm = Norm {
                gamma: &self.params[l.gamma..l.gamma + l.out],
                beta: &self.params[l.beta..l.beta + l.out],
                running_mean: mean,
                running_var: var,
                momentum: self.momentum,
                eps: self.eps,
            };
            // A linear logits layer passes the gradient through unchanged.
            if l.normalize {
                norm::backward_eval(
                    &mut self.ga[..n * l.z_len],
                    &cur.z[..n * l.z_len],
                    l.out,
                    &norm,
                    l.act,
                );
            }
            let dz = &self.ga[..n * l.z_len];
            let w = &weights[l.w.clone()];
            let dx = &mut self.gb[..n * l.in_len];
            match &l.op {
                LayerOp::Dense { fin, gap } => match gap {
                    Some(pos) => {
                        let dg = &mut cur.gap[..n * fin];
                        gemm::abt(dg, dz, w, (n, l.out, *fin), false, Par::rayon(0));
                        pool::gap_backward(dg, *pos, *fin, dx);
                    }
                    None => gemm::abt(dx, dz, w, (n, l.out, *fin), false, Par::rayon(0)),
                },
                LayerOp::Conv(g) => {
                    let x = if i == 0 {
                        &self.x[..n * l.in_len]
                    } else {
                        &before[i - 1].post[..n * l.in_len]
                    };
                    conv_backward(g, x, w, l.out, dz, None, Some(dx));
                }
            }
            std::mem::swap(&mut self.ga, &mut self.gb);
        }
    }

    /// Evaluation-mode logits of every row of `x` (`rows x (c·h·w)`, channels-first, as
    /// [`Engine::predict_logits`] reads it) and the gradient of each example's cross-entropy
    /// against `labels[row]` with respect to that row (same layout). Quantized networks read
    /// their input as `round(255 x)`: the rounding passes its straight-through gradient, so the
    /// gradient is 255 times the one with respect to the integer input.
    pub fn input_gradients(
        &mut self,
        x: ndarray::ArrayView2<'_, f32>,
        labels: &[usize],
    ) -> (Vec<f32>, Vec<f32>) {
        let rows = x.nrows();
        let [c, h, w] = self.input;
        let (hw, len) = (h * w, c * h * w);
        let classes = self.layers[self.layers.len() - 1].out;
        let batch = EVAL_ROWS.min(rows.max(1));
        self.reserve(batch);
        let scale = if self.precision == Precision::Float {
            1.0
        } else {
            255.0
        };
        let (mut logits, mut grads) = (Vec::with_capacity(rows * classes), vec![0f32; rows * len]);
        let all: Vec<usize> = (0..rows).collect();
        for idx in all.chunks(batch) {
            let n = idx.len();
            self.load(x, idx);
            self.forward(n, false);
            let labs: Vec<usize> = idx.iter().map(|&i| labels[i]).collect();
            let out = self.logits(n).to_vec();
            // Per-example losses: the batch mean's gradient times n.
            cross_entropy(&out, &labs, classes, &mut self.ga[..n * classes]);
            for g in &mut self.ga[..n * classes] {
                *g *= n as f32;
            }
            logits.extend_from_slice(&out);
            self.backward_input(n);
            for (k, &i) in idx.iter().enumerate() {
                let src = &self.ga[k * len..(k + 1) * len];
                let dst = &mut grads[i * len..(i + 1) * len];
                for (pos, px) in src.chunks_exact(c).enumerate() {
                    for (ch, v) in px.iter().enumerate() {
                        dst[ch * hw + pos] = v * scale;
                    }
                }
            }
        }
        (logits, grads)
    }

    /// Evaluation-mode logits of every row of `x` (`rows x classes`, row-major), in batches.
    pub fn predict_logits(&mut self, x: ndarray::ArrayView2<'_, f32>) -> Vec<f32> {
        let rows = x.nrows();
        let classes = self.layers[self.layers.len() - 1].out;
        let batch = EVAL_ROWS.min(rows.max(1));
        self.reserve(batch);
        let mut out = Vec::with_capacity(rows * classes);
        let all: Vec<usize> = (0..rows).collect();
        for idx in all.chunks(batch) {
            self.load(x, idx);
            self.forward(idx.len(), false);
            out.extend_from_slice(self.logits(idx.len()));
        }
        out
    }

    /// The engine's parameters and running statistics copied back into `net`.
    pub fn write_back(&self, net: &mut Net) -> Result<(), NnError> {
        for (l, b) in self.layers.iter().zip(net.blocks.iter_mut()) {
            let canon = l.to_network_layout(&self.params[l.w.clone()]);
            let dev = b.w.as_tensor().device().clone();
            let shape = b.w.as_tensor().shape().clone();
            b.w.set(&Tensor::from_vec(canon, shape, &dev)?)?;
            let out = l.out;
            b.bn.gamma.set(&Tensor::from_slice(
                &self.params[l.gamma..l.gamma + out],
                out,
                &dev,
            )?)?;
            b.bn.beta.set(&Tensor::from_slice(
                &self.params[l.beta..l.beta + out],
                out,
                &dev,
            )?)?;
            b.bn.running_mean =
                Tensor::from_slice(&self.running[l.stats..l.stats + out], out, &dev)?;
            b.bn.running_var =
                Tensor::from_slice(&self.running[l.stats + out..l.stats + 2 * out], out, &dev)?;
        }
        Ok(())
    }

    /// Every parameter's gradient from the last step, in the network's own layout, per block:
    /// `(weights, gamma, beta)`. For tests.
    #[cfg(test)]
    fn block_grads(&self) -> Vec<(Vec<f32>, Vec<f32>, Vec<f32>)> {
        self.layers
            .iter()
            .map(|l| {
                let w = l.to_network_layout(&self.grads[l.w.clone()]);
                (
                    w,
                    self.grads[l.gamma..l.gamma + l.out].to_vec(),
                    self.grads[l.beta..l.beta + l.out].to_vec(),
                )
            })
            .collect()
    }
}

/// `x.round()` (half away from zero) for `x` in `[0, 2^31)`, in SSE2 operations that vectorize:
/// the baseline x86-64 target has no rounding instruction, and `f32::round` is then a library
/// call per element. Exact: `x - trunc(x)` is representable, so the comparison with 0.5 decides
/// as `round` does. Pixels and quantizer grids are the only inputs, all non-negative.
#[inline]
pub(super) fn round_non_negative(x: f32) -> f32 {
    let t = x as i32 as f32;
    t + if x - t >= 0.5 { 1.0 } else { 0.0 }
}

/// Mean cross-entropy of `logits` (`n x classes`) against `labels`; `d` receives its gradient
/// `(softmax - onehot) / n`. Also counts rows whose first largest logit is the label.
fn cross_entropy(logits: &[f32], labels: &[usize], classes: usize, d: &mut [f32]) -> (f64, usize) {
    let n = labels.len();
    let (mut loss, mut right) = (0f64, 0usize);
    for (r, &y) in labels.iter().enumerate() {
        let row = &logits[r * classes..(r + 1) * classes];
        let dr = &mut d[r * classes..(r + 1) * classes];
        let m = row.iter().cloned().fold(f32::NEG_INFINITY, f32::max) as f64;
        let s: f64 = row.iter().map(|&v| (v as f64 - m).exp()).sum();
        let lse = m + s.ln();
        loss += lse - row[y] as f64;
        for (g, &v) in dr.iter_mut().zip(row) {
            *g = (((v as f64 - lse).exp()) / n as f64) as f32;
        }
        dr[y] -= 1.0 / n as f32;
        if crate::train::argmax(row) == y {
            right += 1;
        }
    }
    (loss / n as f64, right)
}

/// Rows of examples per convolution task, for `g`.
fn task_examples(g: &ConvGeo) -> usize {
    (CONV_ROWS / g.positions()).max(1)
}

thread_local! {
    /// Each worker's patch buffers, reused by every task it runs: a task's patches stay in
    /// that core's cache from im2col to the product (one shared buffer with a slice per task
    /// would send every patch to memory and back).
    static SCRATCH: std::cell::RefCell<(Vec<f32>, Vec<f32>)> =
        const { std::cell::RefCell::new((Vec::new(), Vec::new())) };
}

/// Runs `f` with this thread's two scratch buffers, of `la` and `lb` floats.
fn with_scratch<R>(la: usize, lb: usize, f: impl FnOnce(&mut [f32], &mut [f32]) -> R) -> R {
    SCRATCH.with(|s| {
        let mut s = s.borrow_mut();
        let (a, b) = &mut *s;
        if a.len() < la {
            a.resize(la, 0.0);
        }
        if b.len() < lb {
            b.resize(lb, 0.0);
        }
        f(&mut a[..la], &mut b[..lb])
    })
}

fn conv_forward(g: &ConvGeo, x: &[f32], w: &[f32], out: usize, z: &mut [f32]) {
    let te = task_examples(g);
    let (pl, kl) = (g.positions(), g.patch_len());
    z.par_chunks_mut(te * pl * out)
        .zip(x.par_chunks(te * g.in_len()))
        .for_each(|(zt, xt)| {
            let rows = zt.len() / out;
            with_scratch(rows * kl, 0, |pt, _| {
                g.im2col(xt, pt);
                gemm::ab(zt, pt, w, (rows, kl, out), false, Par::Seq);
            });
        });
}

fn conv_backward(
    g: &ConvGeo,
    x: &[f32],
    w: &[f32],
    out: usize,
    dz: &[f32],
    dw: Option<&mut [f32]>,
    dx: Option<&mut [f32]>,
) {
    let te = task_examples(g);
    let (pl, kl) = (g.positions(), g.patch_len());
    let n = x.len() / g.in_len();
    let tasks = n.div_ceil(te);
    let need_dw = dw.is_some();
    let mut parts = vec![0f32; if need_dw { tasks * kl * out } else { tasks }];
    let dx_chunks: Vec<Option<&mut [f32]>> = match dx {
        Some(d) => d.chunks_mut(te * g.in_len()).map(Some).collect(),
        None => (0..tasks).map(|_| None).collect(),
    };
    let part_len = if need_dw { kl * out } else { 1 };
    parts
        .par_chunks_mut(part_len)
        .zip(dz.par_chunks(te * pl * out))
        .zip(x.par_chunks(te * g.in_len()))
        .zip(dx_chunks.into_par_iter())
        .for_each(|(((part, dzt), xt), dxt)| {
            let rows = dzt.len() / out;
            with_scratch(rows * kl, rows * kl, |pt, dpt| {
                if need_dw {
                    g.im2col(xt, pt);
                    gemm::atb(part, pt, dzt, (rows, kl, out), false, Par::Seq);
                }
                if let Some(dxt) = dxt {
                    gemm::abt(dpt, dzt, w, (rows, out, kl), false, Par::Seq);
                    g.col2im(dpt, dxt);
                }
            });
        });
    // Fixed-order sum of the tasks' partial gradients.
    let Some(dw) = dw else { return };
    dw.fill(0.0);
    for p in parts.chunks(kl * out) {
        for (a, b) in dw.iter_mut().zip(p) {
            *a += b;
        }
    }
}

#[cfg(test)]
mod tests;
