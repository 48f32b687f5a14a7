//! How much an attack reveals: the ROC curve of its scores against true membership, its area,
//! the true-positive rate at a fixed low false-positive rate (Carlini et al. 2022 argue this is
//! the figure that matters: an attack that confidently identifies a few members is a real
//! breach even when its average accuracy is near chance), the membership advantage
//! `max(TPR - FPR)` (Yeom et al. 2018), and bootstrap confidence intervals.

use crate::{PrivacyError, Result};
use rayon::prelude::*;
use serde::Serialize;
use strata_data::rng::Rng;

/// One ROC point: counts, so that FPR comparisons are exact.
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
pub struct RocPoint {
    /// Members flagged (true positives) at this threshold.
    pub tp: usize,
    /// Non-members flagged (false positives).
    pub fp: usize,
    /// Flag examples whose score is at least this.
    pub threshold: f64,
}

/// The ROC curve of scores (higher = more likely a member) against membership: one point per
/// distinct score, from (0, 0) at threshold +inf to (1, 1).
#[derive(Clone, Debug)]
pub struct Roc {
    /// One point per distinct score, thresholds decreasing, from (0, 0) to (members, non-members).
    pub points: Vec<RocPoint>,
    /// Number of members (positives).
    pub members: usize,
    /// Number of non-members (negatives).
    pub non_members: usize,
}

impl Roc {
    /// Errors on a length mismatch, a NaN/Inf score, or when either class is empty.
    pub fn new(scores: &[f64], is_member: &[bool]) -> Result<Roc> {
        if scores.len() != is_member.len() {
            return Err(PrivacyError::Mismatched {
                what: "membership labels",
                got: is_member.len(),
                expected: scores.len(),
            });
        }
        if let Some(i) = scores.iter().position(|s| !s.is_finite()) {
            return Err(PrivacyError::NonFinite {
                what: "an attack score",
                example: i,
            });
        }
        let members = is_member.iter().filter(|&&m| m).count();
        let non_members = is_member.len() - members;
        if members == 0 || non_members == 0 {
            return Err(PrivacyError::OneSided {
                members,
                non_members,
            });
        }
        let mut order: Vec<usize> = (0..scores.len()).collect();
        order.sort_by(|&a, &b| scores[b].total_cmp(&scores[a]));
        let mut points = vec![RocPoint {
            tp: 0,
            fp: 0,
            threshold: f64::INFINITY,
        }];
        let (mut tp, mut fp) = (0, 0);
        for (k, &i) in order.iter().enumerate() {
            if is_member[i] {
                tp += 1;
            } else {
                fp += 1;
            }
            // A threshold can only sit between distinct scores.
            let last_of_group = order.get(k + 1).is_none_or(|&j| scores[j] != scores[i]);
            if last_of_group {
                points.push(RocPoint {
                    tp,
                    fp,
                    threshold: scores[i],
                });
            }
        }
        Ok(Roc {
            points,
            members,
            non_members,
        })
    }

    /// (FPR, TPR) of a point.
    pub fn rates(&self, p: &RocPoint) -> (f64, f64) {
        (
            p.fp as f64 / self.non_members as f64,
            p.tp as f64 / self.members as f64,
        )
    }

    /// Area under the curve by the trapezoid rule: the probability that a random member scores
    /// above a random non-member, ties counted one half (the Mann-Whitney statistic).
    pub fn auc(&self) -> f64 {
        let mut area = 0.0;
        for w in self.points.windows(2) {
            let dx = (w[1].fp - w[0].fp) as f64;
            area += dx * (w[0].tp + w[1].tp) as f64 / 2.0;
        }
        area / (self.members as f64 * self.non_members as f64)
    }

    /// The number of false positives an FPR of at most `fpr` allows: `floor(fpr x negatives)`.
    /// When it is 0, the TPR at that FPR rests on no false positive at all and says little.
    pub fn false_positives_allowed(&self, fpr: f64) -> usize {
        // The epsilon keeps 0.01 x 1000 at 10 despite 0.01 having no exact binary form.
        (fpr * self.non_members as f64 + 1e-9).floor() as usize
    }

    /// The highest TPR among thresholds whose FPR is at most `fpr` (the convention of Carlini
    /// et al.'s evaluation code, with `<=`).
    pub fn tpr_at_fpr(&self, fpr: f64) -> f64 {
        let allowed = self.false_positives_allowed(fpr);
        let tp = self
            .points
            .iter()
            .filter(|p| p.fp <= allowed)
            .map(|p| p.tp)
            .max()
            .unwrap_or(0);
        tp as f64 / self.members as f64
    }

    /// Membership advantage: `max over thresholds of TPR - FPR`.
    pub fn advantage(&self) -> f64 {
        self.points
            .iter()
            .map(|p| {
                let (f, t) = self.rates(p);
                t - f
            })
            .fold(0.0, f64::max)
    }

    /// Points for a plot, at most about `max` of them, dense at low FPR (log-spaced), always
    /// including the first and last.
    pub fn curve(&self, max: usize) -> Vec<(f64, f64)> {
        let n = self.points.len();
        if n <= max.max(2) {
            return self.points.iter().map(|p| self.rates(p)).collect();
        }
        let mut out = Vec::with_capacity(max + 2);
        let mut next_fp = 0.0f64;
        let step = (self.non_members as f64).powf(1.0 / max as f64);
        for (k, p) in self.points.iter().enumerate() {
            let last_at_fp = self.points.get(k + 1).is_none_or(|q| q.fp != p.fp);
            if k == 0 || k + 1 == n || (last_at_fp && p.fp as f64 >= next_fp) {
                out.push(self.rates(p));
                next_fp = (p.fp as f64 * step).max(p.fp as f64 + 1.0);
            }
        }
        out
    }
}

/// (TPR + TNR) / 2 when flagging scores at or above `threshold`.
pub fn balanced_accuracy_at(scores: &[f64], is_member: &[bool], threshold: f64) -> f64 {
    let (mut tp, mut tn, mut pos, mut neg) = (0usize, 0usize, 0usize, 0usize);
    for (&s, &m) in scores.iter().zip(is_member) {
        if m {
            pos += 1;
            tp += usize::from(s >= threshold);
        } else {
            neg += 1;
            tn += usize::from(s < threshold);
        }
    }
    0.5 * (tp as f64 / pos.max(1) as f64 + tn as f64 / neg.max(1) as f64)
}

/// A figure with its bootstrap 95% interval (2.5th and 97.5th percentiles).
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
pub struct Estimate {
    /// The figure on the whole sample.
    pub value: f64,
    /// 2.5th percentile over the bootstrap resamples.
    pub ci_low: f64,
    /// 97.5th percentile over the bootstrap resamples.
    pub ci_high: f64,
}

/// An attack's figures on one audit.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Metrics {
    /// Number of members scored.
    pub members: usize,
    /// Number of non-members scored.
    pub non_members: usize,
    /// Area under the ROC curve (0.5 = chance).
    pub auc: Estimate,
    /// TPR at FPR <= 0.1%.
    pub tpr_at_low_fpr: Estimate,
    /// How many false positives 0.1% FPR allows (`floor(0.001 x non_members)`).
    pub false_positives_at_low_fpr: usize,
    /// TPR at FPR <= 1%.
    pub tpr_at_1pct_fpr: Estimate,
    /// How many false positives 1% FPR allows (`floor(0.01 x non_members)`).
    pub false_positives_at_1pct_fpr: usize,
    /// max(TPR - FPR).
    pub advantage: Estimate,
    /// (TPR + TNR) / 2 at the best threshold: (1 + advantage) / 2.
    pub balanced_accuracy: f64,
}

/// The low FPR of [`Metrics::tpr_at_low_fpr`].
pub const LOW_FPR: f64 = 0.001;

fn figures(roc: &Roc) -> [f64; 4] {
    [
        roc.auc(),
        roc.tpr_at_fpr(LOW_FPR),
        roc.tpr_at_fpr(0.01),
        roc.advantage(),
    ]
}

fn percentile(sorted: &[f64], q: f64) -> f64 {
    let pos = q * (sorted.len() - 1) as f64;
    let (lo, hi) = (pos.floor() as usize, pos.ceil() as usize);
    sorted[lo] + (sorted[hi] - sorted[lo]) * (pos - lo as f64)
}

/// An attack's metrics, with `bootstrap` resamples (members and non-members resampled
/// separately, with replacement, so each resample keeps the class sizes) seeded by `seed`.
/// With `bootstrap = 0` the intervals collapse onto the value.
pub fn metrics(scores: &[f64], is_member: &[bool], bootstrap: usize, seed: u64) -> Result<Metrics> {
    let roc = Roc::new(scores, is_member)?;
    let point = figures(&roc);
    let pos: Vec<usize> = (0..scores.len()).filter(|&i| is_member[i]).collect();
    let neg: Vec<usize> = (0..scores.len()).filter(|&i| !is_member[i]).collect();
    let samples: Vec<[f64; 4]> = (0..bootstrap)
        .into_par_iter()
        .map(|b| {
            let mut rng = Rng::new(seed ^ (b as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15));
            let mut s = Vec::with_capacity(scores.len());
            let mut m = Vec::with_capacity(scores.len());
            for (group, member) in [(&pos, true), (&neg, false)] {
                for _ in 0..group.len() {
                    s.push(scores[group[rng.below(group.len() as u64) as usize]]);
                    m.push(member);
                }
            }
            // Both classes are non-empty, so this cannot fail.
            Roc::new(&s, &m).map(|r| figures(&r)).unwrap_or(point)
        })
        .collect();
    let est = |k: usize| {
        if samples.is_empty() {
            return Estimate {
                value: point[k],
                ci_low: point[k],
                ci_high: point[k],
            };
        }
        let mut v: Vec<f64> = samples.iter().map(|s| s[k]).collect();
        v.sort_by(f64::total_cmp);
        Estimate {
            value: point[k],
            ci_low: percentile(&v, 0.025),
            ci_high: percentile(&v, 0.975),
        }
    };
    Ok(Metrics {
        members: roc.members,
        non_members: roc.non_members,
        auc: est(0),
        tpr_at_low_fpr: est(1),
        false_positives_at_low_fpr: roc.false_positives_allowed(LOW_FPR),
        tpr_at_1pct_fpr: est(2),
        false_positives_at_1pct_fpr: roc.false_positives_allowed(0.01),
        advantage: est(3),
        balanced_accuracy: 0.5 * (1.0 + point[3]),
    })
}
