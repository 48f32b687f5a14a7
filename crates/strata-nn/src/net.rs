//! Float and quantized networks: an MLP, a LeNet-like CNN and Tiny-10 (Kornblith et al. 2019,
//! Appendix E), each a chain of `dense|conv -> batch norm -> activation [-> max pool]` blocks
//! ending in a `dense -> batch norm` block that gives the logits (as in BinaryNet), or, with
//! [`LogitsLayer::Linear`], a plain dense layer with a bias (as Kornblith et al.'s and most
//! PyTorch networks end).
//!
//! Choices for quantized precisions (after Hubara et al.): every layer's weights are quantized,
//! the first and the last included; the first layer reads the image as 8-bit fixed point
//! (`round(255 x)`, integers 0-255) rather than binarized pixels; hidden activations are
//! quantized; the logits stay real (batch norm output). Float networks read pixels in [0, 1] and
//! use ReLU.

use crate::error::NnError;
use crate::precision::{quantize_activations, quantize_weights, Precision};
use candle_core::{Device, Tensor, Var};
use serde::{Deserialize, Serialize};
use strata_data::rng::Rng;

/// Which network.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Architecture {
    /// Fully connected layers of the given widths.
    Mlp,
    /// LeNet-like: conv 5x5 x6 (same padding), pool 2, conv 5x5 x16, pool 2, dense 120, dense 84.
    Cnn,
    /// Tiny-10: 3x3 convs 16, 16, 32/2, 32, 32, 64/2, 64 (valid), 1x1 conv 64, global average
    /// pooling, logits.
    Tiny10,
}

impl Architecture {
    /// The name used in flags, specs and model cards: `mlp`, `cnn`, `tiny10`.
    pub fn name(self) -> &'static str {
        match self {
            Architecture::Mlp => "mlp",
            Architecture::Cnn => "cnn",
            Architecture::Tiny10 => "tiny10",
        }
    }
}

/// How the last block turns features into logits.
///
/// BinaryNet normalizes the logits (`dense -> batch norm`); most float networks, Kornblith et
/// al.'s Tiny-10 among them, end in a plain dense layer with a bias. The choice changes what
/// the hidden layers learn: trained with normalized logits, Tiny-10's layers are much less
/// identifiable across seeds by CKA (see `docs/similarity.md`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogitsLayer {
    /// `dense -> batch norm` (BinaryNet's choice; the default, and what older model files hold).
    #[default]
    BatchNorm,
    /// `dense + bias`: the batch norm's shift alone, its scale fixed at 1 and no statistics.
    Linear,
}

impl LogitsLayer {
    /// The name used in flags, specs and model cards: `batchnorm`, `linear`.
    pub fn name(self) -> &'static str {
        match self {
            LogitsLayer::BatchNorm => "batchnorm",
            LogitsLayer::Linear => "linear",
        }
    }

    /// The layer named `name` (`batchnorm`, `linear`).
    pub fn from_name(name: &str) -> Option<Self> {
        match name {
            "batchnorm" => Some(LogitsLayer::BatchNorm),
            "linear" => Some(LogitsLayer::Linear),
            _ => None,
        }
    }

    /// True for the default, which model cards leave out (so older cards and cache keys stay
    /// as they were).
    pub fn is_batch_norm(&self) -> bool {
        *self == LogitsLayer::BatchNorm
    }
}

/// What a network is: enough to rebuild it before loading its weights.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct NetConfig {
    /// Which network.
    pub architecture: Architecture,
    /// Shape of one example: `[channels, height, width]`.
    pub input_shape: Vec<usize>,
    /// Hidden widths (MLP only).
    pub widths: Vec<usize>,
    /// Number of classes: the width of the logits.
    pub classes: usize,
    /// Bits of weights and activations.
    pub precision: Precision,
    /// How the logits are computed (absent from older model cards: batch norm).
    #[serde(default, skip_serializing_if = "LogitsLayer::is_batch_norm")]
    pub logits: LogitsLayer,
}

/// Batch normalization over every axis but the channel axis (1), with running statistics.
pub struct BatchNorm {
    /// Learned scale, one per channel.
    pub gamma: Var,
    /// Learned shift, one per channel.
    pub beta: Var,
    /// Running mean of the inputs, one per channel (used in evaluation).
    pub running_mean: Tensor,
    /// Running (unbiased) variance of the inputs, one per channel (used in evaluation).
    pub running_var: Tensor,
    /// Weight of the current batch in the running statistics' update, in [0, 1] (0.1).
    pub momentum: f64,
    /// Added to the variance before the square root, for stability (1e-5).
    pub eps: f64,
    /// False for a [`LogitsLayer::Linear`] head: `y = z + beta`, with `gamma` fixed at 1 and
    /// the running statistics unused.
    pub normalize: bool,
}

/// `(N, C)` stays; `(N, C, H, W)` becomes `(N*H*W, C)` for statistics.
fn to_rows(z: &Tensor) -> candle_core::Result<Tensor> {
    match z.rank() {
        4 => {
            let (n, c, h, w) = z.dims4()?;
            z.permute((0, 2, 3, 1))?.reshape((n * h * w, c))
        }
        _ => Ok(z.clone()),
    }
}

fn from_rows(y: &Tensor, like: &Tensor) -> candle_core::Result<Tensor> {
    match like.rank() {
        4 => {
            let (n, c, h, w) = like.dims4()?;
            y.reshape((n, h, w, c))?.permute((0, 3, 1, 2))?.contiguous()
        }
        _ => Ok(y.clone()),
    }
}

impl BatchNorm {
    /// Evaluation-mode affine map `y = (z - mean) * scale + beta`, with
    /// `scale = gamma / sqrt(running_var + eps)`: the exact f32 operations the bit-packed
    /// engine repeats, so both give identical outputs.
    pub fn eval_params(&self) -> Result<(Tensor, Tensor, Tensor), NnError> {
        Ok(self.eval_tensors()?)
    }

    fn eval_tensors(&self) -> candle_core::Result<(Tensor, Tensor, Tensor)> {
        if !self.normalize {
            // `(z - 0) · 1 + beta` is `z + beta` exactly in f32.
            let beta = self.beta.as_tensor();
            return Ok((beta.zeros_like()?, beta.ones_like()?, beta.clone()));
        }
        let scale = (self.gamma.as_tensor() / (&self.running_var + self.eps)?.sqrt()?)?;
        Ok((
            self.running_mean.clone(),
            scale,
            self.beta.as_tensor().clone(),
        ))
    }

    fn forward(&mut self, z: &Tensor, train: bool) -> candle_core::Result<Tensor> {
        let rows = to_rows(z)?;
        let y = if !self.normalize {
            rows.broadcast_add(self.beta.as_tensor())?
        } else if train {
            let n = rows.dim(0)? as f64;
            let mean = rows.mean_keepdim(0)?;
            let centered = rows.broadcast_sub(&mean)?;
            let var = centered.sqr()?.mean_keepdim(0)?;
            let m = self.momentum;
            let unbiased = (var.detach() * (n / (n - 1.0).max(1.0)))?.squeeze(0)?;
            self.running_mean =
                ((&self.running_mean * (1.0 - m))? + (mean.detach().squeeze(0)? * m)?)?;
            self.running_var = ((&self.running_var * (1.0 - m))? + (unbiased * m)?)?;
            centered
                .broadcast_div(&(var + self.eps)?.sqrt()?)?
                .broadcast_mul(self.gamma.as_tensor())?
                .broadcast_add(self.beta.as_tensor())?
        } else {
            let (mean, scale, beta) = self.eval_tensors()?;
            rows.broadcast_sub(&mean)?
                .broadcast_mul(&scale)?
                .broadcast_add(&beta)?
        };
        from_rows(&y, z)
    }
}

/// How a block transforms its input.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Op {
    /// Dense layer; a 4-D input is flattened, or averaged over space when `gap`.
    Dense {
        /// Global average pooling of a 4-D input (Tiny-10's last block) instead of flattening.
        gap: bool,
    },
    /// 2-D convolution, square kernel.
    Conv {
        /// Kernel side, in pixels.
        k: usize,
        /// Step between kernel positions, in pixels.
        stride: usize,
        /// Zero padding on each side, in pixels.
        pad: usize,
    },
}

/// One `op -> batch norm -> activation [-> max pool]` block. Weights are `in x out` for dense
/// layers and `out x in x k x k` for convolutions.
pub struct Block {
    /// The block's name in files and reports (`fc1`, `conv2`, `logits`).
    pub name: String,
    /// Dense or convolution.
    pub op: Op,
    /// The real-valued weights (quantized in the forward pass for quantized precisions).
    pub w: Var,
    /// The batch norm after the op.
    pub bn: BatchNorm,
    /// Max pooling window after the activation (1 = none).
    pub pool: usize,
    /// Shape of one example's output `[C, H, W]` or `[F]` (after pooling).
    pub out_shape: Vec<usize>,
}

/// A network with its parameters.
pub struct Net {
    /// What the network is.
    pub config: NetConfig,
    /// Its blocks in depth order, the logits last.
    pub blocks: Vec<Block>,
}

/// What one forward pass produced: logits and, per block, the input of its nonlinearity
/// (`pre`) and its output after pooling (`post`; the logits for the last block).
pub struct Forward {
    /// `(N, classes)`.
    pub logits: Tensor,
    /// Per block, the batch norm's output (the input of the nonlinearity).
    pub pre: Vec<Tensor>,
    /// Per block, the activation after pooling (the logits for the last block).
    pub post: Vec<Tensor>,
}

struct Spec {
    name: String,
    op: Op,
    out: usize,
    pool: usize,
}

fn conv(name: &str, out: usize, k: usize, stride: usize, pad: usize, pool: usize) -> Spec {
    Spec {
        name: name.into(),
        op: Op::Conv { k, stride, pad },
        out,
        pool,
    }
}

fn dense(name: &str, out: usize, gap: bool) -> Spec {
    Spec {
        name: name.into(),
        op: Op::Dense { gap },
        out,
        pool: 1,
    }
}

fn specs(c: &NetConfig) -> Vec<Spec> {
    let mut v = Vec::new();
    match c.architecture {
        Architecture::Mlp => {
            for (i, &w) in c.widths.iter().enumerate() {
                v.push(dense(&format!("fc{}", i + 1), w, false));
            }
            v.push(dense("logits", c.classes, false));
        }
        Architecture::Cnn => {
            v.push(conv("conv1", 6, 5, 1, 2, 2));
            v.push(conv("conv2", 16, 5, 1, 0, 2));
            v.push(dense("fc1", 120, false));
            v.push(dense("fc2", 84, false));
            v.push(dense("logits", c.classes, false));
        }
        Architecture::Tiny10 => {
            v.push(conv("conv1", 16, 3, 1, 1, 1));
            v.push(conv("conv2", 16, 3, 1, 1, 1));
            v.push(conv("conv3", 32, 3, 2, 1, 1));
            v.push(conv("conv4", 32, 3, 1, 1, 1));
            v.push(conv("conv5", 32, 3, 1, 1, 1));
            v.push(conv("conv6", 64, 3, 2, 1, 1));
            v.push(conv("conv7", 64, 3, 1, 0, 1));
            v.push(conv("conv8", 64, 1, 1, 0, 1));
            v.push(dense("logits", c.classes, true));
        }
    }
    v
}

/// One block as the configuration implies it, computed before anything is allocated: what
/// [`crate::limits`] sizes and what a model file's tensors are checked against.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct BlockPlan {
    pub name: String,
    pub op: Op,
    /// `in x out` (dense) or `out x in x k x k` (convolution).
    pub wshape: Vec<usize>,
    /// Output units or channels (the batch norm's size).
    pub out: usize,
    pub pool: usize,
    /// Per-example output shape after pooling.
    pub out_shape: Vec<usize>,
    pub fan_in: usize,
    pub fan_out: usize,
    /// Per-example elements of the block's output before pooling.
    pub pre_elems: usize,
}

impl BlockPlan {
    /// Elements of the weight tensor.
    pub fn weight_elems(&self) -> usize {
        self.wshape.iter().product()
    }
}

fn product(dims: &[usize]) -> Option<usize> {
    dims.iter().try_fold(1usize, |a, &d| a.checked_mul(d))
}

/// Every block's shapes for `c`, with checked arithmetic: an impossible configuration (a rank
/// other than 3, a zero dimension, an input too small for a convolution, sizes that overflow)
/// is an error, never a panic or an allocation.
pub(crate) fn plan(c: &NetConfig) -> Result<Vec<BlockPlan>, NnError> {
    let shape_name = || format!("input shape {:?}", c.input_shape);
    if c.input_shape.len() != 3 {
        return Err(NnError::invalid(
            shape_name(),
            "must have three dimensions [channels, height, width]",
        ));
    }
    if c.input_shape.contains(&0) {
        return Err(NnError::invalid(
            shape_name(),
            "every dimension must be at least 1",
        ));
    }
    let overflow = || NnError::invalid(shape_name(), "sizes overflow");
    let mut shape = c.input_shape.clone();
    let mut out = Vec::new();
    for s in specs(c) {
        if s.out == 0 {
            let what = if s.name == "logits" {
                "classes".to_string()
            } else {
                format!("width of hidden layer {}", out.len() + 1)
            };
            return Err(NnError::invalid(what, "must be at least 1"));
        }
        let b = match s.op {
            Op::Dense { gap } => {
                let fin = if gap && shape.len() == 3 {
                    shape[0]
                } else {
                    product(&shape).ok_or_else(overflow)?
                };
                BlockPlan {
                    name: s.name,
                    op: s.op,
                    wshape: vec![fin, s.out],
                    out: s.out,
                    pool: s.pool,
                    out_shape: vec![s.out],
                    fan_in: fin,
                    fan_out: s.out,
                    pre_elems: s.out,
                }
            }
            Op::Conv { k, stride, pad } => {
                if shape.len() != 3 {
                    return Err(NnError::invalid(
                        s.name,
                        "a convolution cannot follow a dense layer",
                    ));
                }
                let (cin, h, w) = (shape[0], shape[1], shape[2]);
                let too_small = || {
                    NnError::invalid(
                        format!("input {h}x{w}"),
                        format!("too small for {}", s.name),
                    )
                };
                let (hp, wp) = (
                    h.checked_add(2 * pad).ok_or_else(overflow)?,
                    w.checked_add(2 * pad).ok_or_else(overflow)?,
                );
                if hp < k || wp < k {
                    return Err(too_small());
                }
                let oh = (hp - k) / stride + 1;
                let ow = (wp - k) / stride + 1;
                if oh / s.pool == 0 || ow / s.pool == 0 {
                    return Err(too_small());
                }
                let kk = k * k;
                BlockPlan {
                    wshape: vec![s.out, cin, k, k],
                    out: s.out,
                    pool: s.pool,
                    out_shape: vec![s.out, oh / s.pool, ow / s.pool],
                    fan_in: cin.checked_mul(kk).ok_or_else(overflow)?,
                    fan_out: s.out.checked_mul(kk).ok_or_else(overflow)?,
                    pre_elems: product(&[s.out, oh, ow]).ok_or_else(overflow)?,
                    name: s.name,
                    op: s.op,
                }
            }
        };
        product(&b.wshape).ok_or_else(overflow)?;
        shape = b.out_shape.clone();
        out.push(b);
    }
    Ok(out)
}

/// The five tensors of a block, as a model file stores them (row-major f32).
pub(crate) struct BlockParams {
    pub weight: Vec<f32>,
    pub gamma: Vec<f32>,
    pub beta: Vec<f32>,
    pub running_mean: Vec<f32>,
    pub running_var: Vec<f32>,
}

impl Net {
    /// A freshly initialized network: He-normal weights for float, Glorot-uniform for quantized
    /// weights (as BinaryNet); drawn from strata's RNG so `seed` fixes them.
    ///
    /// The configuration is checked first ([`crate::limits::check_config`]: hard caps, then the
    /// memory the network needs to be built), so an absurd size is one clear error instead of
    /// an out-of-memory abort.
    pub fn new(config: NetConfig, seed: u64) -> Result<Self, NnError> {
        crate::limits::check_config(&config, 1, false)?;
        let plans = plan(&config)?;
        let mut rng = Rng::new(seed);
        let mut params = Vec::with_capacity(plans.len());
        for p in &plans {
            let numel = p.weight_elems();
            let weight: Vec<f32> = match config.precision {
                Precision::Float => {
                    let std = (2.0 / p.fan_in as f64).sqrt();
                    (0..numel).map(|_| (rng.normal() * std) as f32).collect()
                }
                // Glorot-uniform, as BinaryNet: small real weights whose signs flip readily.
                _ => {
                    let a = (6.0 / (p.fan_in + p.fan_out) as f64).sqrt();
                    (0..numel)
                        .map(|_| ((rng.uniform() * 2.0 - 1.0) * a) as f32)
                        .collect()
                }
            };
            params.push(BlockParams {
                weight,
                gamma: vec![1.0; p.out],
                beta: vec![0.0; p.out],
                running_mean: vec![0.0; p.out],
                running_var: vec![1.0; p.out],
            });
        }
        Self::assemble(config, plans, params)
    }

    /// The same as [`Net::new`] (the name from when `new` returned candle's error type).
    pub fn try_new(config: NetConfig, seed: u64) -> Result<Self, NnError> {
        Self::new(config, seed)
    }

    /// A network from its planned blocks and their parameters (lengths already checked against
    /// the plan by the caller).
    pub(crate) fn assemble(
        config: NetConfig,
        plans: Vec<BlockPlan>,
        params: Vec<BlockParams>,
    ) -> Result<Self, NnError> {
        let dev = Device::Cpu;
        let count = plans.len();
        let mut blocks = Vec::with_capacity(count);
        for (i, (p, v)) in plans.into_iter().zip(params).enumerate() {
            let last = i + 1 == count;
            // `Var::from_vec` takes the buffer as is (no copy on the CPU).
            let w = Var::from_vec(v.weight, p.wshape.clone(), &dev)?;
            let n = p.out;
            blocks.push(Block {
                name: p.name,
                op: p.op,
                w,
                bn: BatchNorm {
                    gamma: Var::from_vec(v.gamma, n, &dev)?,
                    beta: Var::from_vec(v.beta, n, &dev)?,
                    running_mean: Tensor::from_vec(v.running_mean, n, &dev)?,
                    running_var: Tensor::from_vec(v.running_var, n, &dev)?,
                    momentum: 0.1,
                    eps: 1e-5,
                    normalize: !(last && config.logits == LogitsLayer::Linear),
                },
                pool: p.pool,
                out_shape: p.out_shape,
            });
        }
        Ok(Net { config, blocks })
    }

    /// Block names in depth order (e.g. `fc1`, ..., `logits`).
    pub fn layer_names(&self) -> Vec<String> {
        self.blocks.iter().map(|b| b.name.clone()).collect()
    }

    /// Per-example output shape of every block.
    pub fn layer_shapes(&self) -> Vec<Vec<usize>> {
        self.blocks.iter().map(|b| b.out_shape.clone()).collect()
    }

    /// True for an MLP (every block dense, input flattened).
    pub fn is_mlp(&self) -> bool {
        self.config.architecture == Architecture::Mlp
    }

    /// The trainable parameters (a linear logits layer's fixed scale left out).
    pub fn vars(&self) -> Vec<Var> {
        let mut v = Vec::new();
        for l in &self.blocks {
            v.push(l.w.clone());
            if l.bn.normalize {
                v.push(l.bn.gamma.clone());
            }
            v.push(l.bn.beta.clone());
        }
        v
    }

    /// The input the network actually reads, as `(N, C, H, W)`: pixels in [0, 1] for float,
    /// 8-bit integers 0-255 for quantized precisions. `x` is `(N, C*H*W)`.
    pub fn prepare_input(&self, x: &Tensor) -> Result<Tensor, NnError> {
        let s = &self.config.input_shape;
        let x = x.reshape((x.dim(0)?, s[0], s[1], s[2]))?;
        match self.config.precision {
            Precision::Float => Ok(x),
            _ => Ok((x * 255.0)?.round()?),
        }
    }

    fn apply_op(&self, b: &Block, h: &Tensor) -> Result<Tensor, NnError> {
        let w = quantize_weights(b.w.as_tensor(), self.config.precision.weight_bits())?;
        match b.op {
            Op::Dense { gap } => {
                let h = if h.rank() == 4 {
                    if gap {
                        h.mean(3)?.mean(2)?
                    } else {
                        h.flatten_from(1)?
                    }
                } else {
                    h.clone()
                };
                Ok(h.matmul(&w)?)
            }
            Op::Conv { stride, pad, .. } => Ok(h.conv2d(&w, pad, stride, 1, 1)?),
        }
    }

    /// Forward pass on a batch (`rows x features`); `train` uses batch statistics and updates
    /// the running ones.
    pub fn forward(&mut self, x: &Tensor, train: bool) -> Result<Forward, NnError> {
        let h = self.prepare_input(x)?;
        self.forward_prepared(h, train)
    }

    /// [`Net::forward`] from the input the network reads ([`Net::prepare_input`]'s output), so
    /// that a test can differentiate with respect to it.
    pub(crate) fn forward_prepared(&mut self, h: Tensor, train: bool) -> Result<Forward, NnError> {
        let bits = self.config.precision.activation_bits();
        let mut h = h;
        let (mut pre, mut post) = (Vec::new(), Vec::new());
        let last = self.blocks.len() - 1;
        for i in 0..self.blocks.len() {
            let z = self.apply_op(&self.blocks[i], &h)?;
            let b = &mut self.blocks[i];
            let y = b.bn.forward(&z, train)?;
            if i == last {
                pre.push(y.clone());
                post.push(y.clone());
                h = y;
            } else {
                let mut a = quantize_activations(&y, bits)?;
                if b.pool > 1 {
                    a = a.max_pool2d(b.pool)?;
                }
                pre.push(y);
                post.push(a.clone());
                h = a;
            }
        }
        Ok(Forward {
            logits: h,
            pre,
            post,
        })
    }

    /// The pre-batch-norm outputs of every block in evaluation mode: for networks with 1-bit
    /// weights these are integers, the quantities the bit-packed engine computes.
    pub fn dense_outputs(&mut self, x: &Tensor) -> Result<Vec<Tensor>, NnError> {
        let bits = self.config.precision.activation_bits();
        let mut h = self.prepare_input(x)?;
        let mut out = Vec::new();
        let last = self.blocks.len() - 1;
        for i in 0..self.blocks.len() {
            let z = self.apply_op(&self.blocks[i], &h)?;
            out.push(z.clone());
            if i < last {
                let b = &mut self.blocks[i];
                let y = b.bn.forward(&z, false)?;
                h = quantize_activations(&y, bits)?;
                if b.pool > 1 {
                    h = h.max_pool2d(b.pool)?;
                }
            }
        }
        Ok(out)
    }

    /// After an optimizer step: keep real-valued weights of quantized layers in [-1, 1]
    /// (BinaryNet's clipping, which also cancels their gradient outside that range).
    pub fn clip_weights(&self) -> Result<(), NnError> {
        if self.config.precision.weight_bits().is_some() {
            for l in &self.blocks {
                l.w.set(&l.w.as_tensor().clamp(-1f64, 1f64)?)?;
            }
        }
        Ok(())
    }
}
