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
        Ok(Self::with_order(scores, is_member)?.0)
    }

    /// The curve, and the indices of the scores from the highest down (ties in index order).
    fn with_order(scores: &[f64], is_member: &[bool]) -> Result<(Roc, Vec<usize>)> {
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
        let order = descending_order(scores);
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
        let roc = Roc {
            points,
            members,
            non_members,
        };
        Ok((roc, order))
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

/// The indices of `scores` from the highest score down, equal scores (by `total_cmp`) in index
/// order: a stable sort, done as an unstable one on (score, index) pairs kept together.
fn descending_order(scores: &[f64]) -> Vec<usize> {
    let mut keyed: Vec<(f64, usize)> = scores.iter().copied().zip(0..).collect();
    keyed.sort_unstable_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1)));
    keyed.into_iter().map(|(_, i)| i).collect()
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
///
/// The scores are sorted once; each resample is then the sorted order with a multiplicity per
/// example (how often it was drawn), swept in one linear pass that groups tied scores as
/// [`Roc::new`] does, so every resample's figures equal those of [`Roc`] on the resampled
/// vectors, at the cost of the draws instead of a sort.
pub fn metrics(scores: &[f64], is_member: &[bool], bootstrap: usize, seed: u64) -> Result<Metrics> {
    let (roc, order) = Roc::with_order(scores, is_member)?;
    let point = figures(&roc);
    let samples: Vec<[f64; 4]> = if bootstrap == 0 {
        Vec::new()
    } else {
        if u32::try_from(scores.len()).is_err() {
            return Err(PrivacyError::Invalid(format!(
                "bootstrap intervals are for fewer than 2^32 scores, got {}",
                scores.len()
            )));
        }
        let sweep = Sweep::new(scores, is_member, &roc, &order);
        (0..bootstrap)
            .into_par_iter()
            .map_init(Scratch::default, |scratch, b| {
                let rng = Rng::new(seed ^ (b as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15));
                sweep.resample(scratch, rng)
            })
            .collect()
    };
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

/// The sorted scores, for bootstrap resamples: where each member and each non-member sits in
/// the descending order, and where the groups of tied scores end.
struct Sweep {
    /// Sorted position of each member, in index order (the order resamples draw from).
    pos: Vec<u32>,
    /// Sorted position of each non-member, in index order.
    neg: Vec<u32>,
    /// Per sorted position: [`MEMBER`] if a member, [`GROUP_END`] if the next position holds
    /// a different score (or there is none).
    flags: Vec<u8>,
    members: usize,
    non_members: usize,
    /// FPs allowed at [`LOW_FPR`] and at 1%: the same for every resample (same class sizes).
    allowed: [usize; 2],
    /// Evaluate the advantage only where the exact `tp N - fp M` is largest (when `M N <
    /// 2^50`), rather than at every point.
    by_key: bool,
}

/// One thread's buffers for [`Sweep::resample`].
#[derive(Default)]
struct Scratch {
    /// Draws per member, then per non-member, in index order (zero between resamples).
    drawn: Vec<u32>,
    /// Draws per sorted position (all overwritten by each resample).
    counts: Vec<u32>,
    /// The resample's ROC points (tp, fp), from (0, 0).
    points: Vec<(u32, u32)>,
}

const MEMBER: u8 = 1;
const GROUP_END: u8 = 2;

impl Sweep {
    /// `order`: the sorted order of [`Roc::with_order`].
    fn new(scores: &[f64], is_member: &[bool], roc: &Roc, order: &[usize]) -> Sweep {
        let n = scores.len();
        let mut rank = vec![0u32; n];
        for (k, &i) in order.iter().enumerate() {
            rank[i] = k as u32;
        }
        let flags = (0..n)
            .map(|k| {
                let i = order[k];
                let end = order.get(k + 1).is_none_or(|&j| scores[j] != scores[i]);
                u8::from(is_member[i]) * MEMBER + u8::from(end) * GROUP_END
            })
            .collect();
        Sweep {
            pos: (0..n).filter(|&i| is_member[i]).map(|i| rank[i]).collect(),
            neg: (0..n).filter(|&i| !is_member[i]).map(|i| rank[i]).collect(),
            flags,
            members: roc.members,
            non_members: roc.non_members,
            allowed: [
                roc.false_positives_allowed(LOW_FPR),
                roc.false_positives_allowed(0.01),
            ],
            by_key: (roc.members as u128 * roc.non_members as u128) < 1 << 50,
        }
    }

    /// The figures of one resample: members then non-members drawn with `rng.below` (the
    /// draws of the resampled-vector definition, in the same order), counted per sorted
    /// position; then [`figures`] of [`Roc::new`] on the resample, whose points are the ends
    /// of the groups of tied scores the resample holds, bit for bit:
    ///
    /// * the AUC adds the same trapezoids in the same order;
    /// * the TPRs divide the same counts (the last point within the FPR bound has the most);
    /// * the advantage `max fl(fl(tp / M) - fl(fp / N))` is the largest of those floats over
    ///   the points with the largest exact `tp N - fp M` (two divisions at a few points instead
    ///   of at every one): each float errs from its exact value by at most `3 x 2^-53`, and
    ///   exact values that differ do so by at least `1 / (M N)`, so (for `M N < 2^50`; larger
    ///   resamples evaluate every point) no other point can round above them.
    fn resample(&self, scratch: &mut Scratch, mut rng: Rng) -> [f64; 4] {
        let n = self.flags.len();
        let Scratch {
            drawn: by_index,
            counts,
            points,
        } = scratch;
        by_index.resize(n, 0);
        counts.resize(n, 0);
        if points.len() <= n {
            points.resize(n + 1, (0, 0));
        }
        // How often each member, then each non-member, was drawn, in index order (each class
        // on its own, small, stretch of memory), then moved to its sorted position: every
        // position is a member's or a non-member's, so every count is written.
        let (by_member, by_non_member) = by_index.split_at_mut(self.pos.len());
        for (group, drawn) in [(&self.pos, by_member), (&self.neg, by_non_member)] {
            for _ in 0..group.len() {
                drawn[rng.below(group.len() as u64) as usize] += 1;
            }
            for (d, &k) in drawn.iter_mut().zip(group.iter()) {
                counts[k as usize] = *d;
                *d = 0;
            }
        }
        // The points (tp, fp): the ends of the groups drawn. Branch-free (which groups were
        // drawn is random, and mispredicted branches would cost more than the sweep itself):
        // every position is written, and kept by advancing past it when it ends a drawn group.
        let (mut tp, mut fp, mut drawn, mut kept) = (0u32, 0u32, 0u32, 1usize);
        for (&c, &f) in counts.iter().zip(&self.flags) {
            let m = u32::from(f & MEMBER);
            tp += c * m;
            fp += c * (1 - m);
            drawn |= c;
            let end = f & GROUP_END != 0;
            points[kept] = (tp, fp);
            kept += usize::from(end & (drawn != 0));
            drawn = if end { 0 } else { drawn };
        }
        // The first point, (0, 0) at +inf, is points[0].
        let points = &points[..kept];
        let (members, non_members) = (self.members as f64, self.non_members as f64);
        let advantage_at = |tp: u32, fp: u32| tp as f64 / members - fp as f64 / non_members;
        let (m_int, n_int) = (self.members as i64, self.non_members as i64);
        let (mut area, mut best_key, mut advantage) = (0.0, 0i64, 0.0f64);
        let mut best_tp = [0u32; 2];
        for w in points.windows(2) {
            let ((tp0, fp0), (tp, fp)) = (w[0], w[1]);
            area += (fp - fp0) as f64 * (i64::from(tp0) + i64::from(tp)) as f64 / 2.0;
            for (best, &allowed) in best_tp.iter_mut().zip(&self.allowed) {
                *best = if fp as usize <= allowed { tp } else { *best };
            }
            if !self.by_key {
                advantage = advantage.max(advantage_at(tp, fp));
                continue;
            }
            let key = i64::from(tp) * n_int - i64::from(fp) * m_int;
            if key >= best_key {
                let a = advantage_at(tp, fp);
                advantage = if key > best_key { a } else { advantage.max(a) };
                best_key = key;
            }
        }
        [
            area / (members * non_members),
            best_tp[0] as f64 / members,
            best_tp[1] as f64 / members,
            advantage,
        ]
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)] // in tests, a failed unwrap is a failed test

    use super::*;

    /// The advantage over the points of largest exact `tp N - fp M` equals the one over every
    /// point (what resamples with `M N >= 2^50` use), on scores with many ties.
    #[test]
    fn advantage_by_key_equals_advantage_at_every_point() {
        let mut rng = Rng::new(3);
        for trial in 0..200 {
            let n = 2 + rng.below(if trial < 150 { 30 } else { 3000 }) as usize;
            let mut m: Vec<bool> = (0..n).map(|_| rng.below(2) == 0).collect();
            m[0] = true;
            m[1] = false;
            let levels = [1.0, 3.0, 1e3][trial % 3];
            let s: Vec<f64> = m
                .iter()
                .map(|&x| ((rng.normal() + if x { 0.3 } else { 0.0 }) * levels).round())
                .collect();
            let (roc, order) = Roc::with_order(&s, &m).unwrap();
            let mut sweep = Sweep::new(&s, &m, &roc, &order);
            assert!(sweep.by_key);
            let mut scratch = Scratch::default();
            for b in 0..20 {
                let by_key = sweep.resample(&mut scratch, Rng::new(b));
                sweep.by_key = false;
                let everywhere = sweep.resample(&mut scratch, Rng::new(b));
                sweep.by_key = true;
                assert_eq!(
                    by_key[3].to_bits(),
                    everywhere[3].to_bits(),
                    "trial {trial}"
                );
                assert_eq!(by_key, everywhere);
            }
        }
    }
}
