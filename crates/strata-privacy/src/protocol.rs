//! Who trains on what: Carlini et al. 2022's balanced design. K models share one pool of N
//! examples; every example is a member of exactly half of the models (K/2, or one of the two
//! nearest integers by a fair coin when K is odd), so that whichever model is the target, every
//! example has IN and OUT observations among the others (what LiRA's per-example Gaussians and
//! RMIA's Pr(x) need). A model's own share of the pool is then about N/2, binomially.
//!
//! The design is data: `mia design` writes it for a training script in any language to follow,
//! `mia score` reads it back, and `mia audit` follows the same design with model 0 as its target.

use crate::{PrivacyError, Result};
use serde::Serialize;
use strata_data::rng::Rng;

/// Membership masks of K models over a pool of N examples.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Design {
    /// Number of pool examples (N).
    pub pool: usize,
    /// `members[m][i]`: model `m` trains on pool example `i`.
    pub members: Vec<Vec<bool>>,
    /// The seed the masks were drawn with.
    pub seed: u64,
}

/// Models a design may have: two at least (a target and one reference); LiRA's paper uses 256,
/// 4096 leaves room without letting a typo allocate a terabyte.
pub const MODELS_RANGE: std::ops::RangeInclusive<usize> = 2..=4096;

impl Design {
    /// The balanced design of `models` models over `pool` examples, fixed by `seed`: example by
    /// example (a column of the masks) a random `models / 2` of the models train on it, one more
    /// by a fair coin when `models` is odd.
    pub fn balanced(pool: usize, models: usize, seed: u64) -> Result<Design> {
        if !MODELS_RANGE.contains(&models) {
            return Err(PrivacyError::Invalid(format!(
                "a design needs between {} and {} models, got {models}",
                MODELS_RANGE.start(),
                MODELS_RANGE.end()
            )));
        }
        if pool < 2 {
            return Err(PrivacyError::Invalid(format!(
                "a design needs a pool of at least 2 examples, got {pool}"
            )));
        }
        Design::check_size(pool, models)?;
        let mut rng = Rng::new(seed ^ 0x6d69_615f_6465_7369);
        let mut members = vec![vec![false; pool]; models];
        let mut order: Vec<usize> = (0..models).collect();
        // Example by example (a column of the masks), so each gets exactly k models.
        #[allow(clippy::needless_range_loop)]
        for i in 0..pool {
            shuffle(&mut order, &mut rng);
            let k = models / 2 + usize::from(models % 2 == 1 && rng.below(2) == 1);
            for &m in &order[..k] {
                members[m][i] = true;
            }
        }
        Ok(Design {
            pool,
            members,
            seed,
        })
    }

    /// Refuse a design of `models` x `pool` that would not fit in memory: its masks (one byte
    /// per model and example) and member lists (8 bytes per member, half of them), before
    /// anything is allocated, so a mistyped `--pool` or a tampered design.json is one error
    /// line rather than an abort.
    pub fn check_size(pool: usize, models: usize) -> Result<()> {
        let need = (pool as u64)
            .saturating_mul(models as u64)
            .saturating_mul(5);
        strata_data::memory::check_fits(
            need,
            format!("a design of {models} models over a pool of {pool} examples"),
        )
        .map_err(|e| PrivacyError::Invalid(e.to_string()))
    }

    /// Number of models (K).
    pub fn models(&self) -> usize {
        self.members.len()
    }

    /// The pool indices model `m` trains on, ascending.
    pub fn member_indices(&self, m: usize) -> Vec<usize> {
        members(&self.members[m])
    }

    /// Check what scoring relies on: at least 2 models, every mask covers the pool, and every
    /// example is a member of half of the models (`floor(K/2)` or `ceil(K/2)`). A design that
    /// fails is not one this crate wrote, or was edited: attacks would silently lose their IN or
    /// OUT observations, so it is refused with the first offending example.
    pub fn validate(&self) -> Result<()> {
        let k = self.models();
        if k < *MODELS_RANGE.start() {
            return Err(PrivacyError::Invalid(format!(
                "the design has {k} model(s); membership scoring needs at least 2 (a target and a reference)"
            )));
        }
        if let Some(m) = self.members.iter().position(|r| r.len() != self.pool) {
            return Err(PrivacyError::Mismatched {
                what: "a design's membership mask",
                got: self.members[m].len(),
                expected: self.pool,
            });
        }
        let (lo, hi) = (k / 2, k.div_ceil(2));
        for i in 0..self.pool {
            let c = self.members.iter().filter(|r| r[i]).count();
            if c < lo || c > hi {
                return Err(PrivacyError::Invalid(format!(
                    "the design is not balanced: pool example {i} is a member of {c} of {k} models, expected {}",
                    if lo == hi { lo.to_string() } else { format!("{lo} or {hi}") }
                )));
            }
        }
        if let Some(m) = self.members.iter().position(|r| r.iter().all(|&b| b)) {
            return Err(PrivacyError::Invalid(format!(
                "model {m} of the design trains on the whole pool: it has no non-member to score"
            )));
        }
        if let Some(m) = self.members.iter().position(|r| !r.iter().any(|&b| b)) {
            return Err(PrivacyError::Invalid(format!(
                "model {m} of the design trains on no pool example: it has no member to score"
            )));
        }
        Ok(())
    }
}

/// The indices where `mask` is true: the examples a model trains on.
pub fn members(mask: &[bool]) -> Vec<usize> {
    (0..mask.len()).filter(|&i| mask[i]).collect()
}

/// Fisher-Yates with strata's portable generator.
pub fn shuffle<T>(v: &mut [T], rng: &mut Rng) {
    for i in (1..v.len()).rev() {
        v.swap(i, rng.below(i as u64 + 1) as usize);
    }
}
