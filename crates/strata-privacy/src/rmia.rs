//! The Robust Membership Inference Attack (Zarifzadeh, Liu & Shokri, ICML 2024, "Low-Cost
//! High-Power Membership Inference Attacks").
//!
//! LiRA asks "is the target's output on `x` more typical of models trained with `x` or without
//! it?" and needs many reference models per example to fit its two Gaussians. RMIA asks instead
//! "does the target raise `x`'s probability, relative to what reference models give it, more
//! than it raises other examples' probabilities?":
//!
//! * the signal is `Pr(x|θ)`, the released probability of `x`'s true label;
//! * `Pr(x)`, the probability an average model (trained or not on `x`) gives it, is estimated
//!   from the reference models: online, `½(mean of IN references + mean of OUT references)`;
//!   offline (OUT references only), by the authors' linear approximation
//!   `Pr(x) ≈ ½((1 + a)·Pr_OUT(x) + (1 − a))`;
//! * the likelihood ratio `r(x) = Pr(x|θ) / Pr(x)` is compared with the ratios `r(z)` of a
//!   population `Z` of other examples: `Score(x) = Pr_z[r(x) / r(z) ≥ γ]`.
//!
//! Dividing by `Pr(x)` removes how easy `x` is for any model; comparing with `r(z)` of other
//! examples under the same target calibrates away how confident the target is overall. With a
//! single reference model the attack still works (the paper's point), where LiRA online needs
//! several per example.
//!
//! Here the population is the rest of the audit pool (or a seeded random subset of it), where
//! the authors use separate non-member data: the audit pool is all the attacker has, and since
//! the score is the empirical distribution function of `r` over `Z`, members in `Z` change the
//! calibration, not the ordering (see [`Rmia`]).

use crate::attack::{check_references, AttackOutput, AuditData, MembershipAttack};
use crate::{PrivacyError, Result};
use strata_data::rng::Rng;

/// The authors' default for the offline coefficient `a` (the default of `offline_a` in their
/// code, ml_privacy_meter). The paper tunes `a` on a pair of reference models; 0.3 is what the
/// code uses without tuning, and what [`Rmia::new`] uses.
pub const DEFAULT_OFFLINE_A: f64 = 0.3;

/// Floor on every probability RMIA divides by or into: a released 0 (the true class cut by a
/// top-k defense, or rounded away) gives a tiny ratio, not a division by zero or a NaN. A
/// probability this small (a logit gap of 69) already says "the model rejects the label" as
/// plainly as 0 does, and the floor keeps every ratio within `1e±30` and every quotient
/// `r(x) / r(z)` within `1e±60`: finite and normal, so the comparisons stay exact.
pub const PROBABILITY_FLOOR: f64 = 1e-30;

/// RMIA, online (with offline fallback) or offline.
///
/// # Semantics
///
/// * `Pr(x)`: with both IN and OUT reference observations of `x` and `online`,
///   `½(mean_IN + mean_OUT)` (each side averaged first, so an unbalanced split still weighs the
///   two halves equally). Otherwise (offline, or no IN observation) the offline formula
///   `½((1 + a)·mean_OUT + (1 − a))`. When `x` has only IN observations (one reference that
///   trained on it), `mean_OUT` is estimated by inverting the same relation,
///   `mean_OUT = (mean_IN + a − 1) / a`, clamped into `[PROBABILITY_FLOOR, 1]`, as the authors'
///   code does for one reference model (with `a = 0`, where the relation cannot be inverted,
///   their code inverts with 0.3, and so does this). Every probability is floored at
///   [`PROBABILITY_FLOOR`].
/// * `r(x) = Pr(x|θ) / Pr(x)`, the same rules for every pool example.
/// * `Z`: every pool example (`population: None`) or a seeded random subset of `population`
///   of them; `x` itself is never in its own `Z` (it would always compare as a tie).
/// * `Score(x) = #{z ∈ Z, z ≠ x : r(x) / r(z) ≥ γ} / #{z ∈ Z, z ≠ x}`, in `[0, 1]`. The paper
///   defines the test with `≥ γ`; the authors' code counts `ratios > 1.0`. The two differ only on
///   exact ties `r(z) = r(x) / γ`, and `≥` makes the score at `γ = 1` the empirical distribution
///   function of `r` over `Z` at `r(x)`, so ties count for `x`.
///
/// For a fixed `Z`, the score is a non-decreasing (rank) transform of `r(x)`: the pairwise
/// comparison calibrates the score into "the fraction of the population `x` dominates", which
/// makes a threshold on it mean the same thing for every target, but it does not reorder the
/// examples. Leaving `x` out of its own `Z` shifts every count by the same amount, so this holds
/// for the whole pool as `Z` too, where at `γ = 1` the score is even strictly increasing in
/// `r(x)` and RMIA's ROC curve is exactly that of `r`. Other `γ` can only merge neighbouring
/// ratios into ties; with a random subset, an example inside `Z` and one outside it are
/// compared over `|Z| − 1` and `|Z|` others, which can move a score by at most `1/(|Z| − 1)`.
/// The score is computed in `O(N log N)`: the `r(z)` are sorted once and each `x` binary-searches
/// `r(x)/γ` among them.
#[derive(Clone, Debug, PartialEq)]
pub struct Rmia {
    /// Use IN reference observations where there are some (online); `false` uses only OUT
    /// observations (offline: reference models need not have trained on the audited examples,
    /// so they can be trained once, before the examples to audit are known).
    pub online: bool,
    /// The offline coefficient `a` in `[0, 1]`: how much of `Pr(x)` the OUT references explain
    /// (1: `Pr(x) = Pr_OUT(x)`; 0: `Pr(x) = ½(Pr_OUT(x) + 1)`, members assumed fully memorized).
    pub offline_a: f64,
    /// The threshold on `r(x) / r(z)` (positive): `x` dominates `z` when `x`'s ratio is at
    /// least `γ` times `z`'s. Larger values demand more; 1 (the default) counts plain dominance.
    pub gamma: f64,
    /// Size of the population `Z` drawn from the pool (at least 2), or `None` for the whole pool.
    /// A subset makes each score coarser (steps of `1/|Z|`) but is what the paper does when the
    /// population is large; the ranking it gives is the same up to ties.
    pub population: Option<usize>,
    /// Seed of the population draw (unused with `population: None`).
    pub seed: u64,
}

impl Rmia {
    /// RMIA with the authors' defaults: `offline_a` = [`DEFAULT_OFFLINE_A`], `γ = 1`, the whole
    /// pool as population.
    pub fn new(online: bool) -> Self {
        Rmia {
            online,
            offline_a: DEFAULT_OFFLINE_A,
            gamma: 1.0,
            population: None,
            seed: 0,
        }
    }

    /// Check the settings: `offline_a` in `[0, 1]`, `gamma` finite and positive, a population of
    /// at least 2 examples.
    pub fn validate(&self) -> Result<()> {
        if !(0.0..=1.0).contains(&self.offline_a) {
            return Err(PrivacyError::Invalid(format!(
                "RMIA's offline coefficient a must be in [0, 1], got {}",
                self.offline_a
            )));
        }
        if !(self.gamma.is_finite() && self.gamma > 0.0) {
            return Err(PrivacyError::Invalid(format!(
                "RMIA's gamma must be finite and positive, got {}",
                self.gamma
            )));
        }
        if let Some(k) = self.population {
            if k < 2 {
                return Err(PrivacyError::Invalid(format!(
                    "RMIA's population must hold at least 2 examples, got {k}"
                )));
            }
        }
        Ok(())
    }

    /// The pool examples that make up the population `Z` for a pool of `n` examples, in
    /// increasing order: all of them, or `population` of them drawn without replacement with
    /// `seed` (all of them when `population >= n`). Public so that callers can see which
    /// examples an RMIA score compares against.
    pub fn population_indices(&self, n: usize) -> Vec<usize> {
        let mut idx: Vec<usize> = (0..n).collect();
        if let Some(k) = self.population.filter(|&k| k < n) {
            // Partial Fisher-Yates: the first k places hold a uniform random k-subset.
            let mut rng = Rng::new(self.seed);
            for j in 0..k {
                let pick = j + rng.below((n - j) as u64) as usize;
                idx.swap(j, pick);
            }
            idx.truncate(k);
            idx.sort_unstable();
        }
        idx
    }

    /// `Pr(x)` of every pool example, estimated from the reference models (see [`Rmia`]).
    pub fn marginals(&self, data: &AuditData) -> Result<Vec<f64>> {
        self.validate()?;
        check_references(&self.name(), data, self.references_needed())?;
        let n = data.target.len();
        let (mut sum_in, mut n_in) = (vec![0.0; n], vec![0usize; n]);
        let (mut sum_out, mut n_out) = (vec![0.0; n], vec![0usize; n]);
        for (r, members) in data.references.iter().zip(data.reference_members) {
            for i in 0..n {
                let p = r.confidence(i).max(PROBABILITY_FLOOR);
                if members[i] {
                    sum_in[i] += p;
                    n_in[i] += 1;
                } else {
                    sum_out[i] += p;
                    n_out[i] += 1;
                }
            }
        }
        let a = self.offline_a;
        let offline = |p_out: f64| 0.5 * ((1.0 + a) * p_out + (1.0 - a));
        // a = 0 makes Pr(x) independent of Pr_OUT(x), and the relation cannot be inverted;
        // the authors' code inverts with a = 0.3 then.
        let a_inv = if a > 0.0 { a } else { DEFAULT_OFFLINE_A };
        Ok((0..n)
            .map(|i| {
                let mean_in = sum_in[i] / n_in[i].max(1) as f64;
                let mean_out = sum_out[i] / n_out[i].max(1) as f64;
                if self.online && n_in[i] > 0 && n_out[i] > 0 {
                    0.5 * (mean_in + mean_out)
                } else if n_out[i] > 0 {
                    offline(mean_out)
                } else {
                    // Only IN observations (check_references guarantees at least one).
                    let est_out = ((mean_in + a_inv - 1.0) / a_inv).clamp(PROBABILITY_FLOOR, 1.0);
                    offline(est_out)
                }
            })
            .collect())
    }

    /// The likelihood ratios `r(x) = Pr(x|θ) / Pr(x)` of every pool example: RMIA's statistic
    /// before the comparison with the population.
    pub fn ratios(&self, data: &AuditData) -> Result<Vec<f64>> {
        let marginal = self.marginals(data)?;
        Ok(marginal
            .iter()
            .enumerate()
            .map(|(i, &px)| data.target.confidence(i).max(PROBABILITY_FLOOR) / px)
            .collect())
    }
}

impl MembershipAttack for Rmia {
    fn name(&self) -> String {
        if self.online {
            "rmia".into()
        } else {
            "rmia-offline".into()
        }
    }

    fn references_needed(&self) -> usize {
        1
    }

    fn attack(&self, data: &AuditData) -> Result<AttackOutput> {
        let r = self.ratios(data)?;
        let n = r.len();
        if n == 1 {
            return Err(PrivacyError::Invalid(
                "RMIA compares each example with others: the pool needs at least 2 examples".into(),
            ));
        }
        let pop = self.population_indices(n);
        let mut in_pop = vec![false; n];
        for &z in &pop {
            in_pop[z] = true;
        }
        let mut sorted: Vec<f64> = pop.iter().map(|&z| r[z]).collect();
        sorted.sort_by(f64::total_cmp);
        let gamma = self.gamma;
        let scores = (0..n)
            .map(|x| {
                let rx = r[x];
                // r(x) / r(z) does not increase with r(z) (rounding is monotone), so the z
                // that x dominates are a prefix of the sorted ratios; testing the quotient
                // itself, not r(z) <= r(x) / gamma, gives exactly the pairwise comparison.
                let mut count = sorted.partition_point(|&rz| rx / rz >= gamma);
                let mut size = sorted.len();
                if in_pop[x] {
                    // x is in the sorted ratios; r(x) / r(x) = 1 exactly.
                    size -= 1;
                    if 1.0 >= gamma {
                        count -= 1;
                    }
                }
                count as f64 / size as f64
            })
            .collect();
        Ok(AttackOutput {
            scores,
            threshold: None,
        })
    }
}
