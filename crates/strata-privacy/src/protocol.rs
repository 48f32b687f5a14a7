//! Who trains on what. The audit draws a pool of examples at random; the target trains on a
//! random half of it (its members; the other half are the non-members the attack must tell
//! apart); each reference model trains on its own random half, chosen so that every pool example
//! is in half of the reference models (Carlini et al. 2022's design: every example then has IN
//! and OUT observations for LiRA), independently of the target's split.

use serde::Serialize;
use strata_data::rng::Rng;

/// Membership masks over a pool: `target[i]`, and `references[m][i]`.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Design {
    /// Number of pool examples.
    pub pool: usize,
    /// `target[i]`: the target model trains on pool example `i` (exactly `pool / 2` are true).
    pub target: Vec<bool>,
    /// `references[m][i]`: reference model `m` trains on pool example `i`.
    pub references: Vec<Vec<bool>>,
    /// The seed the masks were drawn with.
    pub seed: u64,
}

impl Design {
    /// A design for `pool` examples and `references` reference models, fixed by `seed`. The
    /// target gets exactly `pool / 2` members; each example goes to exactly `references / 2`
    /// reference models (one more, by a fair coin, when `references` is odd).
    pub fn new(pool: usize, references: usize, seed: u64) -> Design {
        let mut rng = Rng::new(seed ^ 0x6d69_615f_6465_7369);
        let mut order: Vec<usize> = (0..pool).collect();
        shuffle(&mut order, &mut rng);
        let mut target = vec![false; pool];
        for &i in &order[..pool / 2] {
            target[i] = true;
        }
        let mut refs = vec![vec![false; pool]; references];
        let mut models: Vec<usize> = (0..references).collect();
        // Example by example (a column of the masks), so each gets exactly k models.
        #[allow(clippy::needless_range_loop)]
        for i in 0..pool {
            shuffle(&mut models, &mut rng);
            let k = references / 2 + usize::from(references % 2 == 1 && rng.below(2) == 1);
            for &m in &models[..k] {
                refs[m][i] = true;
            }
        }
        Design {
            pool,
            target,
            references: refs,
            seed,
        }
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
