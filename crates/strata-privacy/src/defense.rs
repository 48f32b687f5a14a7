//! Defenses against membership inference, after Shokri et al. 2017 (Section VI): the model's
//! owner restricts what its prediction API releases (the top k classes, probabilities rounded to
//! d decimals, a softmax temperature) or regularizes training (L2). Output defenses are applied
//! to every model the audit queries, the reference models included: the attacker knows the API
//! and simulates it on the shadow models, as in the paper.

use crate::{PrivacyError, Result};
use serde::Serialize;

/// One defense, as named on the command line.
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Defense {
    /// The full probability vector, as computed.
    None,
    /// Only the k most likely classes' probabilities; the others released as 0.
    TopK {
        /// Classes released (at least 1).
        k: usize,
    },
    /// Every probability rounded to `decimals` decimal places.
    Round {
        /// Decimal places kept, 1-15.
        decimals: u32,
    },
    /// Softmax at temperature `t` (t > 1 flattens the vector).
    Temperature {
        /// The temperature (positive).
        t: f64,
    },
    /// L2 regularization of the weights while training (weight decay `lambda`): a training-time
    /// defense, so it needs its own target and reference models.
    L2 {
        /// Weight of the penalty `lambda * sum of squared parameters` (non-negative).
        lambda: f64,
    },
}

impl Defense {
    /// Parse `none`, `topK` (e.g. `top1`), `roundD` (e.g. `round2`), `tempT` (e.g. `temp5`) or
    /// `l2=LAMBDA` (e.g. `l2=1e-3`).
    pub fn parse(s: &str) -> Result<Defense> {
        let bad = |why: &str| {
            PrivacyError::Invalid(format!(
                "defense '{s}': {why}; use none, topK (top1), roundD (round2), tempT (temp5) or l2=LAMBDA (l2=1e-3)"
            ))
        };
        let s = s.trim();
        if s == "none" {
            return Ok(Defense::None);
        }
        if let Some(k) = s.strip_prefix("top") {
            let k: usize = k.parse().map_err(|_| bad("k is not a whole number"))?;
            if k == 0 {
                return Err(bad("k must be at least 1"));
            }
            return Ok(Defense::TopK { k });
        }
        if let Some(d) = s.strip_prefix("round") {
            let decimals: u32 = d.parse().map_err(|_| bad("d is not a whole number"))?;
            if !(1..=15).contains(&decimals) {
                return Err(bad("d must be between 1 and 15"));
            }
            return Ok(Defense::Round { decimals });
        }
        if let Some(t) = s.strip_prefix("temp") {
            let t: f64 = t.parse().map_err(|_| bad("T is not a number"))?;
            if !(t.is_finite() && t > 0.0) {
                return Err(bad("T must be positive"));
            }
            return Ok(Defense::Temperature { t });
        }
        if let Some(l) = s.strip_prefix("l2=") {
            let lambda: f64 = l.parse().map_err(|_| bad("LAMBDA is not a number"))?;
            if !(lambda.is_finite() && lambda >= 0.0) {
                return Err(bad("LAMBDA must be non-negative"));
            }
            return Ok(Defense::L2 { lambda });
        }
        Err(bad("unknown defense"))
    }

    /// The name [`Defense::parse`] reads back.
    pub fn name(&self) -> String {
        match self {
            Defense::None => "none".into(),
            Defense::TopK { k } => format!("top{k}"),
            Defense::Round { decimals } => format!("round{decimals}"),
            Defense::Temperature { t } => format!("temp{t}"),
            Defense::L2 { lambda } => format!("l2={lambda}"),
        }
    }

    /// True for defenses that change training (and so need their own models).
    pub fn is_training_time(&self) -> bool {
        matches!(self, Defense::L2 { .. })
    }

    /// The smallest probability the released vector can resolve: below it, the attacker cannot
    /// tell a value from 0 (or 1 - value from 1). Full vectors resolve everything an f64 holds.
    pub fn resolution(&self) -> f64 {
        match self {
            Defense::Round { decimals } => 0.5 * 10f64.powi(-(*decimals as i32)),
            Defense::TopK { .. } => f64::EPSILON,
            _ => f64::MIN_POSITIVE,
        }
    }

    /// The released probability vector for one example's logits.
    pub fn release(&self, logits: &[f32], out: &mut [f64]) {
        let t = match self {
            Defense::Temperature { t } => *t,
            _ => 1.0,
        };
        softmax(logits, t, out);
        self.restrict(out);
    }

    /// What an output defense does to a probability vector after the softmax: keep the top k
    /// (the others released as 0), or round; the identity for the other defenses. Shared by
    /// [`Self::release`] and released vectors built from f64 logits or from probabilities.
    pub fn restrict(&self, out: &mut [f64]) {
        match self {
            Defense::TopK { k } if *k < out.len() => {
                let mut order: Vec<usize> = (0..out.len()).collect();
                // Stable: on ties the lower class index is kept, as argmax does.
                order.sort_by(|&a, &b| out[b].total_cmp(&out[a]));
                for &j in &order[*k..] {
                    out[j] = 0.0;
                }
            }
            Defense::Round { decimals } => {
                let s = 10f64.powi(*decimals as i32);
                for p in out.iter_mut() {
                    *p = (*p * s).round() / s;
                }
            }
            _ => {}
        }
    }
}

/// Softmax of `z / t` in f64, shifted by the maximum so that no exponential overflows.
pub fn softmax(z: &[f32], t: f64, out: &mut [f64]) {
    let m = z.iter().fold(f64::NEG_INFINITY, |m, &v| m.max(v as f64));
    let mut s = 0.0;
    for (o, &v) in out.iter_mut().zip(z) {
        *o = ((v as f64 - m) / t).exp();
        s += *o;
    }
    for o in out.iter_mut() {
        *o /= s;
    }
}
