//! What an attacker sees of a model: the released probability vector for every example of the
//! audit pool, and the per-example statistics the attacks are built on.

use crate::defense::Defense;
use crate::{PrivacyError, Result};

/// One model's released outputs on the audit pool (row-major `n x classes` probabilities) with
/// the pool's labels.
#[derive(Clone, Debug)]
pub struct Released {
    /// Length of each probability vector.
    pub classes: usize,
    /// True class of each pool example.
    pub labels: Vec<u32>,
    /// Released probabilities, row-major `n x classes` (after any output defense).
    pub probs: Vec<f64>,
    /// Probability of the true class.
    p_true: Vec<f64>,
    /// Mass on the other classes, as the attacker can know it: their sum for a full vector
    /// (exact even when `p_true` rounds to 1), `1 - p_true` when the API hides or rounds.
    rest: Vec<f64>,
    /// Values below this are indistinguishable from 0 in the released vector.
    resolution: f64,
}

impl Released {
    /// Apply `defense` to row-major `n x classes` logits. Errors on NaN/Inf logits and on labels
    /// outside `0..classes`.
    pub fn from_logits(
        logits: &[f32],
        classes: usize,
        labels: &[u32],
        defense: &Defense,
    ) -> Result<Released> {
        let n = labels.len();
        if classes == 0 || logits.len() != n * classes {
            return Err(PrivacyError::Mismatched {
                what: "logits",
                got: logits.len(),
                expected: n * classes,
            });
        }
        let mut probs = vec![0.0; n * classes];
        let (mut p_true, mut rest) = (Vec::with_capacity(n), Vec::with_capacity(n));
        let full = matches!(
            defense,
            Defense::None | Defense::Temperature { .. } | Defense::L2 { .. }
        );
        for i in 0..n {
            let z = &logits[i * classes..(i + 1) * classes];
            if z.iter().any(|v| !v.is_finite()) {
                return Err(PrivacyError::NonFinite {
                    what: "a logit",
                    example: i,
                });
            }
            let y = labels[i] as usize;
            if y >= classes {
                return Err(PrivacyError::BadLabel {
                    label: labels[i],
                    example: i,
                    classes,
                });
            }
            let row = &mut probs[i * classes..(i + 1) * classes];
            defense.release(z, row);
            let p = row[y];
            let r = if full {
                row.iter()
                    .enumerate()
                    .filter(|&(j, _)| j != y)
                    .map(|(_, &q)| q)
                    .sum()
            } else {
                (1.0 - p).max(0.0)
            };
            p_true.push(p);
            rest.push(r);
        }
        Ok(Released {
            classes,
            labels: labels.to_vec(),
            probs,
            p_true,
            rest,
            resolution: defense.resolution(),
        })
    }

    /// Number of examples.
    pub fn len(&self) -> usize {
        self.labels.len()
    }

    /// True when there is no example.
    pub fn is_empty(&self) -> bool {
        self.labels.is_empty()
    }

    /// Example `i`'s released vector.
    pub fn row(&self, i: usize) -> &[f64] {
        &self.probs[i * self.classes..(i + 1) * self.classes]
    }

    fn clamp(&self, v: f64) -> f64 {
        v.max(self.resolution)
    }

    /// Probability of the true class.
    pub fn confidence(&self, i: usize) -> f64 {
        self.p_true[i]
    }

    /// Cross-entropy loss `-ln p_y`, computed as `ln(1 + rest / p_y)` so that it keeps its
    /// digits when `p_y` is within 1e-16 of 1.
    pub fn loss(&self, i: usize) -> f64 {
        (self.clamp(self.rest[i]) / self.clamp(self.p_true[i])).ln_1p()
    }

    /// Logit-scaled confidence `ln(p_y / (1 - p_y))` (Carlini et al. 2022, Section IV-B):
    /// approximately Gaussian over training runs, which LiRA's parametric test needs.
    pub fn logit_confidence(&self, i: usize) -> f64 {
        self.clamp(self.p_true[i]).ln() - self.clamp(self.rest[i]).ln()
    }

    /// Shannon entropy of the released vector (natural log; zeros contribute nothing).
    pub fn entropy(&self, i: usize) -> f64 {
        -self
            .row(i)
            .iter()
            .filter(|&&p| p > 0.0)
            .map(|&p| p * p.ln())
            .sum::<f64>()
    }

    /// Song & Mittal's modified entropy, `-(1 - p_y) ln p_y - sum_{j != y} p_j ln(1 - p_j)`:
    /// low for confident correct predictions, high for confident wrong ones.
    pub fn modified_entropy(&self, i: usize) -> f64 {
        let y = self.labels[i] as usize;
        let mut m = -self.rest[i] * self.clamp(self.p_true[i]).ln();
        for (j, &p) in self.row(i).iter().enumerate() {
            if j != y && p > 0.0 {
                // ln(1 - p), exact for small p, floored at the released resolution.
                let ln_q = if p < 1.0 {
                    (-p).ln_1p()
                } else {
                    f64::NEG_INFINITY
                };
                m -= p * ln_q.max(self.resolution.ln());
            }
        }
        m
    }

    /// The largest released probability (ML-Leaks' statistic).
    pub fn top(&self, i: usize) -> f64 {
        self.row(i).iter().fold(0.0, |m, &p| m.max(p))
    }

    /// The released vector sorted from the largest probability down.
    pub fn sorted(&self, i: usize) -> Vec<f64> {
        let mut v = self.row(i).to_vec();
        v.sort_by(|a, b| b.total_cmp(a));
        v
    }
}
