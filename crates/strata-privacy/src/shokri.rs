//! Shokri et al. 2017, "Membership Inference Attacks Against Machine Learning Models": k shadow
//! models trained like the target on data whose membership the attacker knows; their released
//! vectors on members and non-members train one attack model per class, which then reads the
//! target's vector. Here the shadows are the first k reference models (each trained on a random
//! half of the pool), and the attack models see the sorted vector (largest first; per-class
//! models make the class known), as log-probabilities floored at 1e-12 so that the tail a
//! member's vector is missing stays visible.
//!
//! Fitting the attack models is the expensive part (at 50,000 examples, 100 classes and 4
//! shadows: 200,000 rows), and it depends only on the shadows: when every model of an audit is
//! the target in turn, most targets share their first k references. A [`Shokri`] therefore
//! keeps the attack models of the last few shadow sets it saw, keyed by a hash of everything
//! they are fitted on, and fits a shadow set once however many targets it attacks.

use crate::attack::{check_references, AttackOutput, AuditData, MembershipAttack};
use crate::mlp::{BinaryMlp, MlpConfig};
use crate::outputs::{Released, SORTED_KEPT};
use crate::{PrivacyError, Result};
use rayon::prelude::*;
use std::hash::{DefaultHasher, Hash, Hasher};
use std::sync::{Arc, Mutex};

/// Shokri et al.'s attack with `shadows` shadow models.
///
/// Build it with [`Shokri::new`] and reuse the same value for every target of an audit: it
/// caches the fitted attack models of the last [`SHADOW_SETS_CACHED`] shadow sets.
pub struct Shokri {
    /// Number of shadow models: the first `shadows` reference models (at least 1).
    pub shadows: usize,
    /// Training settings of the attack models.
    pub model: MlpConfig,
    /// A class with fewer shadow examples than this on either side (member / non-member) is
    /// attacked by one model trained on all classes.
    pub min_per_class: usize,
    /// Fitted attack models by the hash of what they were fitted on, the most recent last.
    fitted: Mutex<Vec<(u128, Arc<Fitted>)>>,
}

/// How many shadow sets' attack models a [`Shokri`] keeps (each about 6 KB per class with the
/// default 64 hidden units).
pub const SHADOW_SETS_CACHED: usize = 4;

/// Shadow models Shokri et al.'s attack uses when the user names none: 4 (the paper's order of
/// magnitude, and enough for per-class attack models on MNIST), or every reference when fewer.
pub fn default_shadows(references: usize) -> usize {
    references.clamp(1, 4)
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
            fitted: Mutex::new(Vec::new()),
        }
    }

    /// The attack models for `shadows`, from the cache or fitted (and cached).
    fn attack_models(&self, shadows: &[(&Released, &[bool])], classes: usize) -> Arc<Fitted> {
        let key = self.key(shadows, classes);
        // The cache is a plain list, consistent at every point: a poisoned lock is still usable.
        let cached = |fitted: &mut Vec<(u128, Arc<Fitted>)>| {
            let at = fitted.iter().position(|(k, _)| *k == key)?;
            let hit = fitted.remove(at);
            let models = Arc::clone(&hit.1);
            fitted.push(hit);
            Some(models)
        };
        if let Some(m) = cached(&mut self.fitted.lock().unwrap_or_else(|e| e.into_inner())) {
            return m;
        }
        // Fitted outside the lock: concurrent attacks on other shadow sets proceed (two
        // concurrent attacks on the same new set both fit it, and agree).
        let models = Arc::new(self.fit(shadows, classes));
        let mut fitted = self.fitted.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(m) = cached(&mut fitted) {
            return m;
        }
        if fitted.len() >= SHADOW_SETS_CACHED {
            fitted.remove(0);
        }
        fitted.push((key, Arc::clone(&models)));
        models
    }

    /// A 128-bit hash of everything the attack models depend on: the settings, and every
    /// shadow's labels, membership and sorted probabilities.
    fn key(&self, shadows: &[(&Released, &[bool])], classes: usize) -> u128 {
        let per_shadow: Vec<[u64; 2]> = shadows
            .par_iter()
            .map(|(r, members)| {
                let mut h = [DefaultHasher::new(), DefaultHasher::new()];
                h[1].write_u64(0x5348_4f4b_5249_0001);
                for h in &mut h {
                    h.write_usize(r.len());
                }
                // In blocks of bytes: hashing long writes is several times faster than
                // hashing each value on its own.
                let mut block: Vec<u8> = Vec::with_capacity(1 << 13);
                let n = r.len().min(members.len());
                for i in 0..n {
                    block.extend_from_slice(&r.labels[i].to_le_bytes());
                    block.push(u8::from(members[i]));
                    for p in r.sorted(i) {
                        block.extend_from_slice(&p.to_bits().to_le_bytes());
                    }
                    if block.len() >= 1 << 13 || i + 1 == n {
                        for h in &mut h {
                            h.write(&block);
                        }
                        block.clear();
                    }
                }
                [h[0].finish(), h[1].finish()]
            })
            .collect();
        let mut h = [DefaultHasher::new(), DefaultHasher::new()];
        h[1].write_u64(0x5348_4f4b_5249_0002);
        let cfg = &self.model;
        for h in &mut h {
            (classes, self.min_per_class, shadows.len()).hash(h);
            (
                cfg.hidden,
                cfg.epochs,
                cfg.batch_size,
                cfg.lr.to_bits(),
                cfg.seed,
            )
                .hash(h);
            per_shadow.hash(h);
        }
        (u128::from(h[0].finish()) << 64) | u128::from(h[1].finish())
    }

    /// Fit the per-class attack models (and the all-class one, when some class has too few
    /// shadow examples) on the shadows' features.
    fn fit(&self, shadows: &[(&Released, &[bool])], classes: usize) -> Fitted {
        let d = SORTED_KEPT.min(classes);
        // Training rows of the attack models, by class: row-major features and membership.
        let mut rows: Vec<(Vec<f64>, Vec<bool>)> = vec![(Vec::new(), Vec::new()); classes];
        for (r, members) in shadows {
            for (i, &member) in members.iter().enumerate().take(r.len()) {
                let c = r.labels[i] as usize;
                push_features(r, i, &mut rows[c].0);
                rows[c].1.push(member);
            }
        }
        let enough = |(_, y): &(Vec<f64>, Vec<bool>)| {
            let ins = y.iter().filter(|&&m| m).count();
            y.len() - ins >= self.min_per_class && ins >= self.min_per_class
        };
        let needs_global = rows.iter().any(|r| !enough(r));
        let (global, per_class) = rayon::join(
            || {
                needs_global.then(|| {
                    let x: Vec<f64> = rows.iter().flat_map(|r| r.0.iter().copied()).collect();
                    let y: Vec<bool> = rows.iter().flat_map(|r| r.1.iter().copied()).collect();
                    BinaryMlp::fit_rows(&x, d, &y, &self.model)
                })
            },
            || {
                rows.par_iter()
                    .enumerate()
                    .map(|(c, r)| {
                        enough(r).then(|| {
                            let cfg = MlpConfig {
                                seed: self.model.seed ^ (c as u64 + 1).wrapping_mul(0x9E37_79B9),
                                ..self.model
                            };
                            BinaryMlp::fit_rows(&r.0, d, &r.1, &cfg)
                        })
                    })
                    .collect()
            },
        );
        Fitted { global, per_class }
    }
}

/// The attack models fitted on one shadow set.
struct Fitted {
    /// The model of the classes with too few shadow examples, if any has.
    global: Option<BinaryMlp>,
    /// One model per class with enough shadow examples.
    per_class: Vec<Option<BinaryMlp>>,
}

/// Append example `i`'s features: its sorted released probabilities (at most
/// [`SORTED_KEPT`]), as log-probabilities floored at 1e-12.
fn push_features(r: &Released, i: usize, out: &mut Vec<f64>) {
    out.extend(r.sorted(i).iter().map(|&p| p.max(1e-12).ln()));
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
        let t = data.target;
        let classes = t.classes;
        let shadows: Vec<(&Released, &[bool])> = data
            .references
            .iter()
            .zip(data.reference_members)
            .take(self.shadows)
            .map(|(&r, m)| (r, m.as_slice()))
            .collect();
        if let Some((r, _)) = shadows.iter().find(|(r, _)| r.classes != classes) {
            return Err(PrivacyError::Mismatched {
                what: "classes of a reference model's outputs",
                got: r.classes,
                expected: classes,
            });
        }
        let fitted = self.attack_models(&shadows, classes);
        let scores = (0..t.len())
            .into_par_iter()
            .with_min_len(1024)
            .map_init(
                || Vec::with_capacity(SORTED_KEPT),
                |x, i| {
                    let c = t.labels[i] as usize;
                    let m = fitted.per_class[c].as_ref().or(fitted.global.as_ref());
                    m.map_or(0.0, |m| {
                        x.clear();
                        push_features(t, i, x);
                        m.logit(x)
                    })
                },
            )
            .collect();
        // The attack model's own decision: logit 0 is probability 1/2.
        Ok(AttackOutput {
            scores,
            threshold: Some(0.0),
        })
    }
}
