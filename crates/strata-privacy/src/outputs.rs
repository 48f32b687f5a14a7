//! What an attacker sees of a model: the released probability vector for every example of the
//! audit pool, reduced at construction to the per-example statistics the attacks are built on.
//!
//! A released vector is read once, when [`Released`] is built, and not kept: an audit holds
//! tens of models' outputs on tens of thousands of examples with up to a thousand classes, and
//! the attacks need a few numbers per example (the true class's probability and the mass on
//! the others, the entropies, and the [`SORTED_KEPT`] largest probabilities). At 50,000
//! examples and 100 classes that is 6 MB per model instead of 40 MB for the vectors.

use crate::defense::Defense;
use crate::{PrivacyError, Result};
use rayon::prelude::*;

/// How many of the largest released probabilities [`Released::sorted`] keeps per example:
/// the tail of a 1000-class vector adds nothing an attack reads.
pub const SORTED_KEPT: usize = 10;

/// How far the probabilities of one example may sum from 1 in [`Released::from_probs`].
pub const PROB_SUM_TOLERANCE: f64 = 1e-3;

/// One model's released outputs on the audit pool, as per-example statistics of the released
/// probability vectors (after any output defense), with the pool's labels.
#[derive(Clone, Debug)]
pub struct Released {
    /// Length of each probability vector.
    pub classes: usize,
    /// True class of each pool example.
    pub labels: Vec<u32>,
    /// The statistics of each example's released vector.
    stats: Vec<Stats>,
    /// The `kept = min(SORTED_KEPT, classes)` largest released probabilities of each example,
    /// largest first, row-major `n x kept`.
    sorted: Vec<f64>,
    /// Values below this are indistinguishable from 0 in the released vector.
    resolution: f64,
}

/// What the attacks read of one released vector, computed once.
#[derive(Clone, Copy, Debug, Default)]
struct Stats {
    /// Probability of the true class.
    p_true: f64,
    /// Mass on the other classes, as the attacker can know it: their sum for a full vector
    /// (exact even when `p_true` rounds to 1), `1 - p_true` when the API hides or rounds.
    rest: f64,
    /// Shannon entropy of the vector.
    entropy: f64,
    /// Song & Mittal's modified entropy.
    modified_entropy: f64,
    /// The largest probability.
    top: f64,
}

/// Rows smaller than this many values go to one rayon task together.
const ROWS_PER_TASK_MIN: usize = 256;

impl Released {
    /// Apply `defense` to row-major `n x classes` logits (`n = labels.len()`). Errors on a
    /// length mismatch, NaN/Inf logits and labels outside `0..classes`, naming the first
    /// offending example.
    pub fn from_logits(
        logits: &[f32],
        classes: usize,
        labels: &[u32],
        defense: &Defense,
    ) -> Result<Released> {
        check_rows(logits, classes, labels, "logits", "a logit", |_, _| Ok(()))?;
        Ok(Self::build(classes, labels, defense, |i, row| {
            defense.release(&logits[i * classes..(i + 1) * classes], row)
        }))
    }

    /// [`Released::from_logits`] for f64 logits: the softmax is computed from the f64 values
    /// (so f32 logits widened to f64 give exactly what `from_logits` gives).
    pub fn from_logits_f64(
        logits: &[f64],
        classes: usize,
        labels: &[u32],
        defense: &Defense,
    ) -> Result<Released> {
        check_rows(logits, classes, labels, "logits", "a logit", |_, _| Ok(()))?;
        let t = match defense {
            Defense::Temperature { t } => *t,
            _ => 1.0,
        };
        Ok(Self::build(classes, labels, defense, |i, row| {
            let z = &logits[i * classes..(i + 1) * classes];
            let m = z.iter().fold(f64::NEG_INFINITY, |m, &v| m.max(v));
            let mut s = 0.0;
            for (o, &v) in row.iter_mut().zip(z) {
                *o = ((v - m) / t).exp();
                s += *o;
            }
            for o in row.iter_mut() {
                *o /= s;
            }
            defense.restrict(row);
        }))
    }

    /// For models whose probabilities, not logits, are at hand: row-major `n x classes`
    /// probabilities (f32 or f64), with `defense` applied to them as the API would: top-k and
    /// rounding act on the probabilities as given, a temperature `t` releases
    /// `p_j^(1/t) / sum_k p_k^(1/t)` (the softmax of the logits `ln p` at `t`), `none` and `l2`
    /// release them unchanged.
    ///
    /// Each row must be finite, within `[0, 1]`, and sum to 1 within [`PROB_SUM_TOLERANCE`]
    /// (probabilities saved in f32, or rounded to 3 decimals, pass; logits or percentages do
    /// not). Errors name the first offending example: [`PrivacyError::NonFinite`] for NaN/Inf,
    /// [`PrivacyError::Invalid`] for a value outside `[0, 1]` or a row that does not sum to 1,
    /// [`PrivacyError::BadLabel`] and [`PrivacyError::Mismatched`] as for logits.
    pub fn from_probs<T>(
        probs: &[T],
        classes: usize,
        labels: &[u32],
        defense: &Defense,
    ) -> Result<Released>
    where
        T: Copy + Into<f64> + Sync,
    {
        check_rows(
            probs,
            classes,
            labels,
            "probabilities",
            "a probability",
            |i, row| {
                let mut sum = 0.0;
                for (j, &p) in row.iter().enumerate() {
                    let p: f64 = p.into();
                    if !(0.0..=1.0).contains(&p) {
                        return Err(PrivacyError::Invalid(format!(
                            "probability {p} of class {j} at example {i} is outside [0, 1]"
                        )));
                    }
                    sum += p;
                }
                if (sum - 1.0).abs() > PROB_SUM_TOLERANCE {
                    return Err(PrivacyError::Invalid(format!(
                        "the probabilities of example {i} sum to {sum}, not 1 (within \
                         {PROB_SUM_TOLERANCE}); logits belong in from_logits"
                    )));
                }
                Ok(())
            },
        )?;
        Ok(Self::build(classes, labels, defense, |i, row| {
            for (o, &p) in row.iter_mut().zip(&probs[i * classes..(i + 1) * classes]) {
                *o = p.into();
            }
            if let Defense::Temperature { t } = defense {
                // softmax(ln p / t); zeros stay zero (exp(-inf) = 0), and some p is positive.
                let m = row.iter().fold(f64::NEG_INFINITY, |m, &p| m.max(p.ln()));
                let mut s = 0.0;
                for o in row.iter_mut() {
                    *o = ((o.ln() - m) / t).exp();
                    s += *o;
                }
                for o in row.iter_mut() {
                    *o /= s;
                }
            }
            defense.restrict(row);
        }))
    }

    /// The statistics of every row, each released into a scratch row by `release(i, row)`;
    /// the rows are checked already.
    fn build<F>(classes: usize, labels: &[u32], defense: &Defense, release: F) -> Released
    where
        F: Fn(usize, &mut [f64]) + Sync,
    {
        let n = labels.len();
        let kept = SORTED_KEPT.min(classes);
        let full = matches!(
            defense,
            Defense::None | Defense::Temperature { .. } | Defense::L2 { .. }
        );
        let resolution = defense.resolution();
        let mut stats = vec![Stats::default(); n];
        let mut sorted = vec![0.0; n * kept];
        stats
            .par_iter_mut()
            .zip(sorted.par_chunks_mut(kept.max(1)))
            .enumerate()
            .with_min_len(ROWS_PER_TASK_MIN)
            .for_each_init(
                || (vec![0.0; classes], vec![0.0; classes]),
                |(row, scratch), (i, (st, top))| {
                    release(i, row);
                    *st = row_stats(row, labels[i] as usize, full, resolution);
                    largest_first(row, scratch, top);
                },
            );
        Released {
            classes,
            labels: labels.to_vec(),
            stats,
            sorted,
            resolution,
        }
    }

    /// Number of examples.
    pub fn len(&self) -> usize {
        self.labels.len()
    }

    /// True when there is no example.
    pub fn is_empty(&self) -> bool {
        self.labels.is_empty()
    }

    /// Bytes of memory the statistics hold (the labels included), for sizing audits.
    pub fn memory_bytes(&self) -> usize {
        std::mem::size_of::<Self>()
            + self.labels.capacity() * std::mem::size_of::<u32>()
            + self.stats.capacity() * std::mem::size_of::<Stats>()
            + self.sorted.capacity() * std::mem::size_of::<f64>()
    }

    fn clamp(&self, v: f64) -> f64 {
        v.max(self.resolution)
    }

    /// Probability of the true class.
    pub fn confidence(&self, i: usize) -> f64 {
        self.stats[i].p_true
    }

    /// Cross-entropy loss `-ln p_y`, computed as `ln(1 + rest / p_y)` so that it keeps its
    /// digits when `p_y` is within 1e-16 of 1.
    pub fn loss(&self, i: usize) -> f64 {
        let s = &self.stats[i];
        (self.clamp(s.rest) / self.clamp(s.p_true)).ln_1p()
    }

    /// Logit-scaled confidence `ln(p_y / (1 - p_y))` (Carlini et al. 2022, Section IV-B):
    /// approximately Gaussian over training runs, which LiRA's parametric test needs.
    pub fn logit_confidence(&self, i: usize) -> f64 {
        let s = &self.stats[i];
        self.clamp(s.p_true).ln() - self.clamp(s.rest).ln()
    }

    /// Shannon entropy of the released vector (natural log; zeros contribute nothing).
    pub fn entropy(&self, i: usize) -> f64 {
        self.stats[i].entropy
    }

    /// Song & Mittal's modified entropy, `-(1 - p_y) ln p_y - sum_{j != y} p_j ln(1 - p_j)`:
    /// low for confident correct predictions, high for confident wrong ones.
    pub fn modified_entropy(&self, i: usize) -> f64 {
        self.stats[i].modified_entropy
    }

    /// The largest released probability (ML-Leaks' statistic).
    pub fn top(&self, i: usize) -> f64 {
        self.stats[i].top
    }

    /// The `min(SORTED_KEPT, classes)` largest released probabilities, largest first (the
    /// whole vector sorted when there are at most [`SORTED_KEPT`] classes).
    pub fn sorted(&self, i: usize) -> &[f64] {
        let kept = SORTED_KEPT.min(self.classes);
        &self.sorted[i * kept..(i + 1) * kept]
    }
}

/// Check the shape of row-major `n x classes` values, then example by example that they are
/// finite, that the label is a class and that `check(i, row)` passes: the error names the first
/// offending example.
fn check_rows<T: Copy + Into<f64>>(
    values: &[T],
    classes: usize,
    labels: &[u32],
    what: &'static str,
    one: &'static str,
    check: impl Fn(usize, &[T]) -> Result<()>,
) -> Result<()> {
    let n = labels.len();
    let expected = n.saturating_mul(classes);
    if classes == 0 || values.len() != expected {
        return Err(PrivacyError::Mismatched {
            what,
            got: values.len(),
            expected,
        });
    }
    for (i, (row, &label)) in values.chunks_exact(classes).zip(labels).enumerate() {
        if row.iter().any(|&v| !v.into().is_finite()) {
            return Err(PrivacyError::NonFinite {
                what: one,
                example: i,
            });
        }
        if label as usize >= classes {
            return Err(PrivacyError::BadLabel {
                label,
                example: i,
                classes,
            });
        }
        check(i, row)?;
    }
    Ok(())
}

/// The statistics of one released vector `row` with true class `y`.
fn row_stats(row: &[f64], y: usize, full: bool, resolution: f64) -> Stats {
    let p_true = row[y];
    let rest = if full {
        row.iter()
            .enumerate()
            .filter(|&(j, _)| j != y)
            .map(|(_, &q)| q)
            .sum()
    } else {
        (1.0 - p_true).max(0.0)
    };
    let entropy = -row
        .iter()
        .filter(|&&p| p > 0.0)
        .map(|&p| p * p.ln())
        .sum::<f64>();
    let mut modified_entropy = -rest * p_true.max(resolution).ln();
    let ln_floor = resolution.ln();
    for (j, &p) in row.iter().enumerate() {
        if j != y && p > 0.0 {
            // ln(1 - p), exact for small p, floored at the released resolution.
            let ln_q = if p < 1.0 {
                (-p).ln_1p()
            } else {
                f64::NEG_INFINITY
            };
            modified_entropy -= p * ln_q.max(ln_floor);
        }
    }
    Stats {
        p_true,
        rest,
        entropy,
        modified_entropy,
        top: row.iter().fold(0.0, |m, &p| m.max(p)),
    }
}

/// The `top.len()` largest values of `row` into `top`, largest first (as a full descending sort
/// would give them), using `scratch` (as long as `row`).
fn largest_first(row: &[f64], scratch: &mut [f64], top: &mut [f64]) {
    let k = top.len();
    if k == 0 {
        return;
    }
    scratch.copy_from_slice(row);
    if k < scratch.len() {
        scratch.select_nth_unstable_by(k - 1, |a, b| b.total_cmp(a));
    }
    let head = &mut scratch[..k];
    head.sort_unstable_by(|a, b| b.total_cmp(a));
    top.copy_from_slice(head);
}
