//! Precision settings and the quantizers behind them, with straight-through estimators (STE).
//!
//! Following Hubara et al., "Quantized Neural Networks" (and BinaryNet, Courbariaux et al. 2016):
//!
//! * weights, 1 bit: `sign(w)` forward; backward passes the gradient to the real-valued weight,
//!   which is clipped to [-1, 1] after every update (so the gradient is cancelled outside it);
//! * weights, k bits: `w` clipped to [-1, 1], divided by its largest magnitude `α`, rounded to
//!   `2^k - 1` uniform steps over [-1, 1] and multiplied back by `α`;
//! * activations, 1 bit: `sign(hardtanh(x))`, gradient `1_{|x| <= 1}` (the paper's STE);
//! * activations, k bits: `x` clipped to [0, 1] and rounded to `2^k - 1` steps, gradient
//!   `1_{0 <= x <= 1}`.
//!
//! `sign(0) = +1`. The STE is `q = x + (Q(x) - x).detach()`: forward value `Q(x)`, gradient of
//! the identity (times the clip's own gradient).

use crate::error::NnError;
use candle_core::{Result, Tensor};
use serde::{Deserialize, Serialize};

/// Bits for weights and activations (`None` = float).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Precision {
    /// f32 weights and activations, ReLU.
    Float,
    /// 1-bit weights, 1-bit activations (BinaryNet).
    W1A1,
    /// 1-bit weights, 2-bit activations.
    W1A2,
    /// 2-bit weights, 2-bit activations.
    W2A2,
    /// 4-bit weights, 4-bit activations.
    W4A4,
    /// 8-bit weights, 8-bit activations.
    W8A8,
}

impl Precision {
    /// Every setting, float first.
    pub const ALL: [Precision; 6] = [
        Precision::Float,
        Precision::W1A1,
        Precision::W1A2,
        Precision::W2A2,
        Precision::W4A4,
        Precision::W8A8,
    ];

    /// The name used on the command line and in files: `float`, `w1a1`, ...
    pub fn name(self) -> &'static str {
        match self {
            Precision::Float => "float",
            Precision::W1A1 => "w1a1",
            Precision::W1A2 => "w1a2",
            Precision::W2A2 => "w2a2",
            Precision::W4A4 => "w4a4",
            Precision::W8A8 => "w8a8",
        }
    }

    /// Parse a name (`float`, `w1a1`, `w1a2`, `w2a2`, `w4a4`, `w8a8`).
    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|p| p.name() == s)
    }

    /// Weight bits (`None` for float).
    pub fn weight_bits(self) -> Option<u32> {
        match self {
            Precision::Float => None,
            Precision::W1A1 | Precision::W1A2 => Some(1),
            Precision::W2A2 => Some(2),
            Precision::W4A4 => Some(4),
            Precision::W8A8 => Some(8),
        }
    }

    /// Activation bits (`None` for float).
    pub fn activation_bits(self) -> Option<u32> {
        match self {
            Precision::Float => None,
            Precision::W1A1 => Some(1),
            Precision::W1A2 | Precision::W2A2 => Some(2),
            Precision::W4A4 => Some(4),
            Precision::W8A8 => Some(8),
        }
    }
}

impl std::fmt::Display for Precision {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// `+1` where `x >= 0`, `-1` elsewhere (no gradient).
pub fn sign(x: &Tensor) -> std::result::Result<Tensor, NnError> {
    Ok(sign_tensor(x)?)
}

fn sign_tensor(x: &Tensor) -> Result<Tensor> {
    let pos = x.ge(0f64)?.to_dtype(x.dtype())?;
    pos.affine(2.0, -1.0)
}

fn ste(x: &Tensor, q: &Tensor) -> Result<Tensor> {
    x + (q - x)?.detach()
}

/// Round `x` (already in [lo, hi]) to `steps` uniform steps over [lo, hi] (no gradient).
fn round_to_grid(x: &Tensor, lo: f64, hi: f64, steps: f64) -> Result<Tensor> {
    let unit = (hi - lo) / steps;
    x.affine(1.0 / unit, -lo / unit)?.round()?.affine(unit, lo)
}

/// Quantized weights with an STE; `bits = None` returns `w` unchanged.
pub fn quantize_weights(w: &Tensor, bits: Option<u32>) -> std::result::Result<Tensor, NnError> {
    Ok(weights_tensor(w, bits)?)
}

fn weights_tensor(w: &Tensor, bits: Option<u32>) -> Result<Tensor> {
    match bits {
        None => Ok(w.clone()),
        Some(1) => ste(w, &sign_tensor(w)?),
        Some(k) => {
            // Scale by the largest magnitude (a constant for the gradient) so the grid spans the
            // weights actually present; batch norm after the layer absorbs the scale.
            let c = w.clamp(-1f64, 1f64)?;
            let alpha = c.abs()?.max_all()?.detach().to_scalar::<f32>()?.max(1e-8) as f64;
            let q = round_to_grid(&(&c / alpha)?, -1.0, 1.0, ((1u64 << k) - 1) as f64)?;
            ste(&c, &(q * alpha)?)
        }
    }
}

/// Quantized activations with an STE; `bits = None` applies ReLU (the float network).
pub fn quantize_activations(x: &Tensor, bits: Option<u32>) -> std::result::Result<Tensor, NnError> {
    Ok(activations_tensor(x, bits)?)
}

fn activations_tensor(x: &Tensor, bits: Option<u32>) -> Result<Tensor> {
    match bits {
        None => x.relu(),
        Some(1) => {
            let h = x.clamp(-1f64, 1f64)?;
            ste(&h, &sign_tensor(&h)?)
        }
        Some(k) => {
            let c = x.clamp(0f64, 1f64)?;
            let q = round_to_grid(&c, 0.0, 1.0, ((1u64 << k) - 1) as f64)?;
            ste(&c, &q)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::{Device, Var};

    #[test]
    fn forward_values_and_straight_through_gradients() {
        let dev = Device::Cpu;
        let x = Var::from_slice(&[-1.7f32, -0.6, -0.0, 0.2, 0.9, 1.4], 6, &dev).unwrap();
        // Binary activations: sign forward, gradient 1 inside [-1, 1], 0 outside.
        let y = quantize_activations(x.as_tensor(), Some(1)).unwrap();
        assert_eq!(
            y.to_vec1::<f32>().unwrap(),
            [-1.0, -1.0, 1.0, 1.0, 1.0, 1.0]
        );
        let g = y.sum_all().unwrap().backward().unwrap();
        let gx = g.get(x.as_tensor()).unwrap().to_vec1::<f32>().unwrap();
        assert_eq!(gx, [0.0, 1.0, 1.0, 1.0, 1.0, 0.0]);
        // 2-bit activations on [0, 1]: levels 0, 1/3, 2/3, 1.
        let y = quantize_activations(x.as_tensor(), Some(2)).unwrap();
        let v = y.to_vec1::<f32>().unwrap();
        let want = [0.0, 0.0, 0.0, 1.0 / 3.0, 1.0, 1.0];
        for (a, b) in v.iter().zip(want) {
            assert!((a - b).abs() < 1e-6, "{v:?}");
        }
        // Binary weights: sign forward, identity gradient.
        let w = quantize_weights(x.as_tensor(), Some(1)).unwrap();
        let g = (w.clone() * 3.0)
            .unwrap()
            .sum_all()
            .unwrap()
            .backward()
            .unwrap();
        assert_eq!(
            g.get(x.as_tensor()).unwrap().to_vec1::<f32>().unwrap(),
            [3.0; 6]
        );
        // 4-bit weights land on a grid of 15 steps over [-α, α], α = max |clip(w)| = 1 here.
        let w = quantize_weights(x.as_tensor(), Some(4))
            .unwrap()
            .to_vec1::<f32>()
            .unwrap();
        for v in w {
            let k = (v + 1.0) * 7.5;
            assert!((k - k.round()).abs() < 1e-5 && (-1.0..=1.0).contains(&v));
        }
        let small = Tensor::from_slice(&[0.01f32, -0.02, 0.005], 3, &dev).unwrap();
        let q = quantize_weights(&small, Some(2))
            .unwrap()
            .to_vec1::<f32>()
            .unwrap();
        // α = 0.02; levels ±0.02, ±0.02/3.
        let want = [0.02 / 3.0, -0.02, 0.02 / 3.0];
        for (a, b) in q.iter().zip(want) {
            assert!((a - b).abs() < 1e-7, "{q:?}");
        }
        assert_eq!(Precision::parse("w1a2"), Some(Precision::W1A2));
        assert_eq!(Precision::W2A2.activation_bits(), Some(2));
    }
}
