//! Shokri et al.'s attack against a transcription of its first implementation (attack models
//! on `Vec<Vec<f64>>` rows, the textbook MLP loops, features from the full released vector):
//! the scores must be the same bits, and the cache of fitted attack models must only ever
//! return models fitted on the same shadows and settings.
#![allow(clippy::unwrap_used)] // in tests, a failed unwrap is a failed test, with its location
#![allow(clippy::needless_range_loop)] // reference code indexes like the formulas it transcribes
#![allow(clippy::too_many_arguments)] // the reference attack takes its inputs one by one

use strata_data::rng::Rng;
use strata_privacy::mlp::MlpConfig;
use strata_privacy::shokri::Shokri;
use strata_privacy::{AuditData, Defense, MembershipAttack, PrivacyError, Released};

/// The reference MLP, as first written.
struct RefMlp {
    d: usize,
    h: usize,
    params: Vec<f64>,
    mean: Vec<f64>,
    sd: Vec<f64>,
}

fn sigmoid(z: f64) -> f64 {
    if z >= 0.0 {
        1.0 / (1.0 + (-z).exp())
    } else {
        let e = z.exp();
        e / (1.0 + e)
    }
}

impl RefMlp {
    fn fit(x: &[Vec<f64>], y: &[bool], cfg: &MlpConfig) -> RefMlp {
        let d = x.first().map_or(0, |r| r.len());
        let n = x.len();
        let mut mean = vec![0.0; d];
        let mut sd = vec![0.0; d];
        for r in x {
            for (m, v) in mean.iter_mut().zip(r) {
                *m += v / n.max(1) as f64;
            }
        }
        for r in x {
            for ((s, m), v) in sd.iter_mut().zip(&mean).zip(r) {
                *s += (v - m) * (v - m) / n.max(1) as f64;
            }
        }
        for s in &mut sd {
            *s = if s.sqrt() > 1e-12 { s.sqrt() } else { 1.0 };
        }
        let h = cfg.hidden.max(1);
        let mut rng = Rng::new(cfg.seed);
        let mut params = vec![0.0; h * d + 2 * h + 1];
        let s1 = (2.0 / d.max(1) as f64).sqrt();
        for p in &mut params[..h * d] {
            *p = rng.normal() * s1;
        }
        let s2 = (1.0 / h as f64).sqrt();
        for p in &mut params[h * d + h..h * d + 2 * h] {
            *p = rng.normal() * s2;
        }
        let mut model = RefMlp {
            d,
            h,
            params,
            mean,
            sd,
        };
        let xs: Vec<Vec<f64>> = x.iter().map(|r| model.standardize(r)).collect();
        let np = model.params.len();
        let (mut m1, mut m2) = (vec![0.0; np], vec![0.0; np]);
        let (b1, b2, eps) = (0.9, 0.999, 1e-8);
        let mut step = 0;
        let mut order: Vec<usize> = (0..n).collect();
        let mut grad = vec![0.0; np];
        let mut hidden = vec![0.0; h];
        for _ in 0..cfg.epochs {
            for i in (1..n).rev() {
                order.swap(i, rng.below(i as u64 + 1) as usize);
            }
            for chunk in order.chunks(cfg.batch_size.max(1)) {
                grad.iter_mut().for_each(|g| *g = 0.0);
                for &i in chunk {
                    let z = model.forward(&xs[i], &mut hidden);
                    let dz = (sigmoid(z) - f64::from(u8::from(y[i]))) / chunk.len() as f64;
                    let w2 = &model.params[h * d + h..h * d + 2 * h];
                    for j in 0..h {
                        grad[h * d + h + j] += dz * hidden[j];
                        if hidden[j] > 0.0 {
                            let dh = dz * w2[j];
                            grad[h * d + j] += dh;
                            for (g, v) in grad[j * d..(j + 1) * d].iter_mut().zip(&xs[i]) {
                                *g += dh * v;
                            }
                        }
                    }
                    grad[np - 1] += dz;
                }
                step += 1;
                let c1 = 1.0 - f64::powi(b1, step);
                let c2 = 1.0 - f64::powi(b2, step);
                for k in 0..np {
                    m1[k] = b1 * m1[k] + (1.0 - b1) * grad[k];
                    m2[k] = b2 * m2[k] + (1.0 - b2) * grad[k] * grad[k];
                    model.params[k] -= cfg.lr * (m1[k] / c1) / ((m2[k] / c2).sqrt() + eps);
                }
            }
        }
        model
    }

    fn standardize(&self, r: &[f64]) -> Vec<f64> {
        r.iter()
            .zip(&self.mean)
            .zip(&self.sd)
            .map(|((v, m), s)| (v - m) / s)
            .collect()
    }

    fn forward(&self, x: &[f64], hidden: &mut [f64]) -> f64 {
        let (d, h) = (self.d, self.h);
        let w2 = &self.params[h * d + h..h * d + 2 * h];
        let mut z = self.params[h * d + 2 * h];
        for j in 0..h {
            let w = &self.params[j * d..(j + 1) * d];
            let a = self.params[h * d + j] + w.iter().zip(x).map(|(a, b)| a * b).sum::<f64>();
            hidden[j] = a.max(0.0);
            z += w2[j] * hidden[j];
        }
        z
    }

    fn logit(&self, x: &[f64]) -> f64 {
        let mut hidden = vec![0.0; self.h];
        self.forward(&self.standardize(x), &mut hidden)
    }
}

/// One model's logits, with the released vectors the reference reads.
struct Model {
    logits: Vec<f32>,
    released: Released,
}

/// The reference's features: the whole released vector sorted, its first 10, floored logs.
fn ref_features(m: &Model, classes: usize, i: usize, defense: &Defense) -> Vec<f64> {
    let mut row = vec![0.0; classes];
    defense.release(&m.logits[i * classes..(i + 1) * classes], &mut row);
    row.sort_by(|a, b| b.total_cmp(a));
    row.into_iter()
        .take(10)
        .map(|p| p.max(1e-12).ln())
        .collect()
}

/// The attack as first written, on `shadows` shadows.
fn ref_shokri(
    target: &Model,
    shadows: &[Model],
    members: &[Vec<bool>],
    labels: &[u32],
    classes: usize,
    defense: &Defense,
    cfg: &MlpConfig,
    min_per_class: usize,
) -> Vec<f64> {
    let mut rows: Vec<(Vec<Vec<f64>>, Vec<bool>)> = vec![(Vec::new(), Vec::new()); classes];
    for (r, mask) in shadows.iter().zip(members) {
        for (i, &member) in mask.iter().enumerate() {
            let c = labels[i] as usize;
            rows[c].0.push(ref_features(r, classes, i, defense));
            rows[c].1.push(member);
        }
    }
    let enough = |(x, y): &(Vec<Vec<f64>>, Vec<bool>)| {
        let ins = y.iter().filter(|&&m| m).count();
        x.len() - ins >= min_per_class && ins >= min_per_class
    };
    let global = rows.iter().any(|r| !enough(r)).then(|| {
        let x: Vec<Vec<f64>> = rows.iter().flat_map(|r| r.0.iter().cloned()).collect();
        let y: Vec<bool> = rows.iter().flat_map(|r| r.1.iter().copied()).collect();
        RefMlp::fit(&x, &y, cfg)
    });
    let per_class: Vec<Option<RefMlp>> = rows
        .iter()
        .enumerate()
        .map(|(c, r)| {
            enough(r).then(|| {
                let cfg = MlpConfig {
                    seed: cfg.seed ^ (c as u64 + 1).wrapping_mul(0x9E37_79B9),
                    ..*cfg
                };
                RefMlp::fit(&r.0, &r.1, &cfg)
            })
        })
        .collect();
    (0..labels.len())
        .map(|i| {
            let c = labels[i] as usize;
            let m = per_class[c].as_ref().or(global.as_ref());
            m.map_or(0.0, |m| m.logit(&ref_features(target, classes, i, defense)))
        })
        .collect()
}

/// A world of `classes` classes (the last one rare, so that it falls back on the all-class
/// model), `models` models with random halves of the pool as members.
struct World {
    classes: usize,
    labels: Vec<u32>,
    members: Vec<Vec<bool>>,
    models: Vec<Model>,
}

fn world(pool: usize, classes: usize, models: usize, defense: &Defense, seed: u64) -> World {
    let mut rng = Rng::new(seed);
    let labels: Vec<u32> = (0..pool)
        .map(|_| {
            if rng.below(150) == 0 {
                (classes - 1) as u32
            } else {
                rng.below(classes as u64 - 1) as u32
            }
        })
        .collect();
    let members: Vec<Vec<bool>> = (0..models)
        .map(|_| (0..pool).map(|_| rng.below(2) == 1).collect())
        .collect();
    let models = members
        .iter()
        .map(|mask| {
            let mut logits = Vec::with_capacity(pool * classes);
            for i in 0..pool {
                for j in 0..classes {
                    let mut v = rng.normal() * 1.5;
                    if j == labels[i] as usize {
                        v += 1.0 + if mask[i] { 1.5 } else { 0.0 } + rng.normal();
                    }
                    logits.push(v as f32);
                }
            }
            let released = Released::from_logits(&logits, classes, &labels, defense).unwrap();
            Model { logits, released }
        })
        .collect();
    World {
        classes,
        labels,
        members,
        models,
    }
}

impl World {
    fn data<'a>(&'a self, refs: &'a [&'a Released], first: usize) -> AuditData<'a> {
        AuditData {
            target: &self.models[0].released,
            references: &refs[first..],
            reference_members: &self.members[1 + first..],
        }
    }
}

fn bits(v: &[f64]) -> Vec<u64> {
    v.iter().map(|x| x.to_bits()).collect()
}

#[test]
fn scores_are_those_of_the_first_implementation() {
    for (classes, defense, seed) in [
        (12, Defense::None, 1),
        (3, Defense::None, 2),
        (12, Defense::Round { decimals: 2 }, 3),
        (6, Defense::TopK { k: 2 }, 4),
    ] {
        let w = world(1200, classes, 4, &defense, seed);
        let refs: Vec<Released> = w.models[1..].iter().map(|m| m.released.clone()).collect();
        let mut attack = Shokri::new(3, 7);
        attack.model.epochs = 6;
        let got = attack
            .attack(&w.data(&refs.iter().collect::<Vec<_>>(), 0))
            .unwrap();
        let want = ref_shokri(
            &w.models[0],
            &w.models[1..],
            &w.members[1..],
            &w.labels,
            w.classes,
            &defense,
            &attack.model,
            attack.min_per_class,
        );
        assert_eq!(
            bits(&got.scores),
            bits(&want),
            "{classes} classes, {defense:?}"
        );
        assert_eq!(got.threshold, Some(0.0));
    }
}

#[test]
fn default_settings_match_the_first_implementation() {
    // The default 40 epochs and 64 hidden units, where most classes have their own model.
    let w = world(2000, 4, 3, &Defense::None, 11);
    let refs: Vec<Released> = w.models[1..].iter().map(|m| m.released.clone()).collect();
    let attack = Shokri::new(2, 5);
    let got = attack
        .attack(&w.data(&refs.iter().collect::<Vec<_>>(), 0))
        .unwrap();
    let want = ref_shokri(
        &w.models[0],
        &w.models[1..],
        &w.members[1..],
        &w.labels,
        w.classes,
        &Defense::None,
        &attack.model,
        attack.min_per_class,
    );
    assert_eq!(bits(&got.scores), bits(&want));
}

#[test]
fn cached_attack_models_are_those_of_the_same_shadows_and_settings() {
    let w = world(800, 5, 6, &Defense::None, 21);
    let refs: Vec<Released> = w.models[1..].iter().map(|m| m.released.clone()).collect();
    let fresh = |first: usize, seed: u64| {
        let mut a = Shokri::new(2, seed);
        a.model.epochs = 3;
        a.attack(&w.data(&refs.iter().collect::<Vec<_>>(), first))
            .unwrap()
            .scores
    };
    let mut attack = Shokri::new(2, 0);
    attack.model.epochs = 3;
    // More shadow sets than the cache holds, then back to the first ones.
    let firsts = [0, 1, 2, 0, 3, 1, 0, 2, 2];
    for &first in &firsts {
        let got = attack
            .attack(&w.data(&refs.iter().collect::<Vec<_>>(), first))
            .unwrap()
            .scores;
        assert_eq!(bits(&got), bits(&fresh(first, 0)), "shadows from {first}");
    }
    // A changed setting is a different key.
    attack.model.seed = 9;
    let got = attack
        .attack(&w.data(&refs.iter().collect::<Vec<_>>(), 0))
        .unwrap()
        .scores;
    assert_eq!(bits(&got), bits(&fresh(0, 9)));
    assert_ne!(bits(&got), bits(&fresh(0, 0)));
    // So are changed shadow outputs with the same masks, and changed masks.
    let mut other = refs.clone();
    other[0] = w.models[5].released.clone();
    let got = attack
        .attack(&w.data(&other.iter().collect::<Vec<_>>(), 0))
        .unwrap()
        .scores;
    let mut a = Shokri::new(2, 9);
    a.model.epochs = 3;
    assert_eq!(
        bits(&got),
        bits(
            &a.attack(&w.data(&other.iter().collect::<Vec<_>>(), 0))
                .unwrap()
                .scores
        )
    );
    assert_ne!(bits(&got), bits(&fresh(0, 9)));
}

#[test]
fn references_with_other_classes_are_an_error() {
    let w = world(200, 4, 3, &Defense::None, 31);
    let other = world(200, 5, 3, &Defense::None, 32);
    let refs = [&w.models[1].released, &other.models[2].released];
    let e = Shokri::new(2, 0).attack(&w.data(&refs, 0)).unwrap_err();
    assert!(matches!(e, PrivacyError::Mismatched { .. }), "{e:?}");
}
