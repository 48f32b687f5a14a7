//! Shokri et al. 2017, "Membership Inference Attacks Against Machine Learning Models": k shadow
//! models trained like the target on data whose membership the attacker knows; their released
//! vectors on members and non-members train one attack model per class, which then reads the
//! target's vector. Here the shadows are the first k reference models (each trained on a random
//! half of the pool), and the attack models see the sorted vector (largest first; per-class
//! models make the class known), as log-probabilities floored at 1e-12 so that the tail a
//! member's vector is missing stays visible.

use crate::attack::{check_references, AttackOutput, AuditData, MembershipAttack};
use crate::mlp::{BinaryMlp, MlpConfig};
use crate::outputs::Released;
use crate::Result;
use rayon::prelude::*;

/// Shokri et al.'s attack with `shadows` shadow models.
pub struct Shokri {
    /// Number of shadow models: the first `shadows` reference models (at least 1).
    pub shadows: usize,
    /// Training settings of the attack models.
    pub model: MlpConfig,
    /// A class with fewer shadow examples than this on either side (member / non-member) is
    /// attacked by one model trained on all classes.
    pub min_per_class: usize,
}

impl Shokri {
    /// The attack with `shadows` shadow models (at least 1) and default attack models seeded by `seed`.
    pub fn new(shadows: usize, seed: u64) -> Self {
        Shokri {
            shadows: shadows.max(1),
            model: MlpConfig {
                seed,
                ..MlpConfig::default()
            },
            min_per_class: 20,
        }
    }
}

/// At most this many of the sorted probabilities: the tail of a 1000-class vector adds nothing.
const FEATURES: usize = 10;

fn features(r: &Released, i: usize) -> Vec<f64> {
    r.sorted(i)
        .into_iter()
        .take(FEATURES)
        .map(|p| p.max(1e-12).ln())
        .collect()
}

impl MembershipAttack for Shokri {
    fn name(&self) -> String {
        "shokri".into()
    }

    fn references_needed(&self) -> usize {
        self.shadows
    }

    fn attack(&self, data: &AuditData) -> Result<AttackOutput> {
        check_references(&self.name(), data, self.shadows)?;
        let classes = data.target.classes;
        // Training rows of the attack models, by class.
        let mut rows: Vec<(Vec<Vec<f64>>, Vec<bool>)> = vec![(Vec::new(), Vec::new()); classes];
        for (r, members) in data
            .references
            .iter()
            .zip(data.reference_members)
            .take(self.shadows)
        {
            for (i, &member) in members.iter().enumerate().take(r.len()) {
                let c = r.labels[i] as usize;
                rows[c].0.push(features(r, i));
                rows[c].1.push(member);
            }
        }
        let enough = |(x, y): &(Vec<Vec<f64>>, Vec<bool>)| {
            let ins = y.iter().filter(|&&m| m).count();
            x.len() - ins >= self.min_per_class && ins >= self.min_per_class
        };
        let needs_global = rows.iter().any(|r| !enough(r));
        let global = needs_global.then(|| {
            let x: Vec<Vec<f64>> = rows.iter().flat_map(|r| r.0.iter().cloned()).collect();
            let y: Vec<bool> = rows.iter().flat_map(|r| r.1.iter().copied()).collect();
            BinaryMlp::fit(&x, &y, &self.model)
        });
        let per_class: Vec<Option<BinaryMlp>> = rows
            .par_iter()
            .enumerate()
            .map(|(c, r)| {
                enough(r).then(|| {
                    let cfg = MlpConfig {
                        seed: self.model.seed ^ (c as u64 + 1).wrapping_mul(0x9E37_79B9),
                        ..self.model
                    };
                    BinaryMlp::fit(&r.0, &r.1, &cfg)
                })
            })
            .collect();
        let t = data.target;
        let scores = (0..t.len())
            .map(|i| {
                let c = t.labels[i] as usize;
                let m = per_class[c].as_ref().or(global.as_ref());
                m.map_or(0.0, |m| m.logit(&features(t, i)))
            })
            .collect();
        // The attack model's own decision: logit 0 is probability 1/2.
        Ok(AttackOutput {
            scores,
            threshold: Some(0.0),
        })
    }
}
