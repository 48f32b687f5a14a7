//! Multilayer perceptrons, float or quantized: `dense -> batch norm -> activation` per hidden
//! layer, `dense -> batch norm` for the logits (as in BinaryNet's MNIST MLP).
//!
//! Choices for quantized precisions (after Hubara et al.): every layer's weights are quantized,
//! the first and the last included; the first layer reads the image as 8-bit fixed point
//! (`round(255 x)`, integers 0-255) rather than binarized pixels; hidden activations are
//! quantized; the logits stay real (batch norm output). Float networks read pixels in [0, 1] and
//! use ReLU.

use crate::precision::{quantize_activations, quantize_weights, Precision};
use candle_core::{DType, Device, Result, Tensor, Var};
use serde::{Deserialize, Serialize};
use strata_data::rng::Rng;

/// Architecture of an MLP.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct MlpConfig {
    /// Features per example (784 for MNIST).
    pub input: usize,
    /// Hidden layer widths.
    pub widths: Vec<usize>,
    /// Output classes.
    pub classes: usize,
    pub precision: Precision,
}

/// Batch normalization over the batch axis, with running statistics for evaluation.
pub struct BatchNorm {
    pub gamma: Var,
    pub beta: Var,
    pub running_mean: Tensor,
    pub running_var: Tensor,
    pub momentum: f64,
    pub eps: f64,
}

impl BatchNorm {
    fn new(n: usize, dev: &Device) -> Result<Self> {
        Ok(BatchNorm {
            gamma: Var::ones(n, DType::F32, dev)?,
            beta: Var::zeros(n, DType::F32, dev)?,
            running_mean: Tensor::zeros(n, DType::F32, dev)?,
            running_var: Tensor::ones(n, DType::F32, dev)?,
            momentum: 0.1,
            eps: 1e-5,
        })
    }

    /// Evaluation-mode affine map `y = (z - mean) * scale + beta`, with
    /// `scale = gamma / sqrt(running_var + eps)`: the exact f32 operations the bit-packed
    /// engine repeats, so both give identical outputs.
    pub fn eval_params(&self) -> Result<(Tensor, Tensor, Tensor)> {
        let scale = (self.gamma.as_tensor() / (&self.running_var + self.eps)?.sqrt()?)?;
        Ok((
            self.running_mean.clone(),
            scale,
            self.beta.as_tensor().clone(),
        ))
    }

    fn forward(&mut self, z: &Tensor, train: bool) -> Result<Tensor> {
        if train {
            let n = z.dim(0)? as f64;
            let mean = z.mean_keepdim(0)?;
            let centered = z.broadcast_sub(&mean)?;
            let var = centered.sqr()?.mean_keepdim(0)?;
            let m = self.momentum;
            let unbiased = (var.detach() * (n / (n - 1.0).max(1.0)))?.squeeze(0)?;
            self.running_mean =
                ((&self.running_mean * (1.0 - m))? + (mean.detach().squeeze(0)? * m)?)?;
            self.running_var = ((&self.running_var * (1.0 - m))? + (unbiased * m)?)?;
            centered
                .broadcast_div(&(var + self.eps)?.sqrt()?)?
                .broadcast_mul(self.gamma.as_tensor())?
                .broadcast_add(self.beta.as_tensor())
        } else {
            let (mean, scale, beta) = self.eval_params()?;
            z.broadcast_sub(&mean)?
                .broadcast_mul(&scale)?
                .broadcast_add(&beta)
        }
    }
}

/// One `dense -> batch norm` block; the weight is `in x out`.
pub struct Dense {
    pub name: String,
    pub w: Var,
    pub bn: BatchNorm,
}

/// An MLP with its parameters.
pub struct Mlp {
    pub config: MlpConfig,
    pub layers: Vec<Dense>,
}

/// What one forward pass produced: logits and, per layer, the input of its nonlinearity
/// (`pre`) and its output (`post`; the logits for the last layer).
pub struct Forward {
    pub logits: Tensor,
    pub pre: Vec<Tensor>,
    pub post: Vec<Tensor>,
}

impl Mlp {
    /// A freshly initialized network: He-normal weights for float, Glorot-uniform for quantized
    /// weights (as BinaryNet); drawn from strata's RNG so `seed` fixes them.
    pub fn new(config: MlpConfig, seed: u64) -> Result<Self> {
        let dev = Device::Cpu;
        let mut rng = Rng::new(seed);
        let mut dims = vec![config.input];
        dims.extend(&config.widths);
        dims.push(config.classes);
        let mut layers = Vec::new();
        for (i, pair) in dims.windows(2).enumerate() {
            let (fan_in, out) = (pair[0], pair[1]);
            let vals: Vec<f32> = match config.precision {
                Precision::Float => {
                    let std = (2.0 / fan_in as f64).sqrt();
                    (0..fan_in * out)
                        .map(|_| (rng.normal() * std) as f32)
                        .collect()
                }
                // Glorot-uniform, as BinaryNet: small real weights whose signs flip readily.
                _ => {
                    let a = (6.0 / (fan_in + out) as f64).sqrt();
                    (0..fan_in * out)
                        .map(|_| ((rng.uniform() * 2.0 - 1.0) * a) as f32)
                        .collect()
                }
            };
            let name = if i + 1 == dims.len() - 1 {
                "logits".to_string()
            } else {
                format!("fc{}", i + 1)
            };
            layers.push(Dense {
                name,
                w: Var::from_tensor(&Tensor::from_vec(vals, (fan_in, out), &dev)?)?,
                bn: BatchNorm::new(out, &dev)?,
            });
        }
        Ok(Mlp { config, layers })
    }

    /// Layer names in depth order (`fc1`, ..., `logits`).
    pub fn layer_names(&self) -> Vec<String> {
        self.layers.iter().map(|l| l.name.clone()).collect()
    }

    /// Widths of every layer's output, in depth order.
    pub fn layer_widths(&self) -> Vec<usize> {
        let mut w = self.config.widths.clone();
        w.push(self.config.classes);
        w
    }

    /// The trainable parameters.
    pub fn vars(&self) -> Vec<Var> {
        self.layers
            .iter()
            .flat_map(|l| [l.w.clone(), l.bn.gamma.clone(), l.bn.beta.clone()])
            .collect()
    }

    /// The input the network actually reads: pixels in [0, 1] for float, 8-bit integers
    /// 0-255 for quantized precisions.
    pub fn prepare_input(&self, x: &Tensor) -> Result<Tensor> {
        match self.config.precision {
            Precision::Float => Ok(x.clone()),
            _ => (x * 255.0)?.round(),
        }
    }

    /// Forward pass on a batch (`rows x input`); `train` uses batch statistics and updates the
    /// running ones.
    pub fn forward(&mut self, x: &Tensor, train: bool) -> Result<Forward> {
        let p = self.config.precision;
        let mut h = self.prepare_input(x)?;
        let (mut pre, mut post) = (Vec::new(), Vec::new());
        let last = self.layers.len() - 1;
        for (i, layer) in self.layers.iter_mut().enumerate() {
            let w = quantize_weights(layer.w.as_tensor(), p.weight_bits())?;
            let z = h.matmul(&w)?;
            let y = layer.bn.forward(&z, train)?;
            if i == last {
                pre.push(y.clone());
                post.push(y.clone());
                h = y;
            } else {
                let a = quantize_activations(&y, p.activation_bits())?;
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

    /// The integer-valued pre-batch-norm sums `z` of every layer for a quantized network with
    /// 1-bit weights (the quantities the bit-packed engine computes), in evaluation mode.
    pub fn dense_outputs(&mut self, x: &Tensor) -> Result<Vec<Tensor>> {
        let p = self.config.precision;
        let mut h = self.prepare_input(x)?;
        let mut out = Vec::new();
        let last = self.layers.len() - 1;
        for (i, layer) in self.layers.iter_mut().enumerate() {
            let w = quantize_weights(layer.w.as_tensor(), p.weight_bits())?;
            let z = h.matmul(&w)?;
            out.push(z.clone());
            if i < last {
                let y = layer.bn.forward(&z, false)?;
                h = quantize_activations(&y, p.activation_bits())?;
            }
        }
        Ok(out)
    }

    /// After an optimizer step: keep real-valued weights of quantized layers in [-1, 1]
    /// (BinaryNet's clipping, which also cancels their gradient outside that range).
    pub fn clip_weights(&self) -> Result<()> {
        if self.config.precision.weight_bits().is_some() {
            for l in &self.layers {
                l.w.set(&l.w.as_tensor().clamp(-1f64, 1f64)?)?;
            }
        }
        Ok(())
    }
}
