//! Released statistics against closed forms, and every attack on synthetic worlds whose answer
//! is known: no leakage (AUC within sampling error of 1/2), and a model that memorizes (high
//! AUC, with the per-example test beating the global threshold at low FPR).
#![allow(clippy::unwrap_used)] // in tests, a failed unwrap is a failed test, with its location
#![allow(clippy::needless_range_loop)] // reference code indexes like the formulas it transcribes

use strata_data::rng::Rng;
use strata_privacy::protocol::Design;
use strata_privacy::{
    attack_by_name, metrics, AuditData, Defense, PrivacyError, Released, ATTACK_NAMES,
};

fn f64_logsumexp(z: &[f64]) -> f64 {
    let m = z.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
    m + z.iter().map(|v| (v - m).exp()).sum::<f64>().ln()
}

#[test]
fn released_statistics_match_closed_forms() {
    let mut rng = Rng::new(1);
    for _ in 0..200 {
        let c = 2 + rng.below(9) as usize;
        let z: Vec<f32> = (0..c).map(|_| (rng.normal() * 4.0) as f32).collect();
        let y = rng.below(c as u64) as u32;
        let r = Released::from_logits(&z, c, &[y], &Defense::None).unwrap();
        let zd: Vec<f64> = z.iter().map(|&v| v as f64).collect();
        let lse = f64_logsumexp(&zd);
        let p: Vec<f64> = zd.iter().map(|v| (v - lse).exp()).collect();
        let yi = y as usize;
        assert!((r.loss(0) - (lse - zd[yi])).abs() < 1e-9);
        assert!((r.confidence(0) - p[yi]).abs() < 1e-12);
        let others: Vec<f64> = (0..c).filter(|&j| j != yi).map(|j| zd[j]).collect();
        assert!((r.logit_confidence(0) - (zd[yi] - f64_logsumexp(&others))).abs() < 1e-9);
        let h: f64 = -p.iter().map(|q| q * q.ln()).sum::<f64>();
        assert!((r.entropy(0) - h).abs() < 1e-9);
        let mentr = -(1.0 - p[yi]) * p[yi].ln()
            - (0..c)
                .filter(|&j| j != yi)
                .map(|j| p[j] * (1.0 - p[j]).ln())
                .sum::<f64>();
        assert!((r.modified_entropy(0) - mentr).abs() < 1e-9);
        assert!((r.top(0) - p.iter().cloned().fold(0.0, f64::max)).abs() < 1e-12);
    }
}

#[test]
fn confident_predictions_keep_their_digits() {
    // p_y = 1 - 2e-40 rounds to 1 in f64; the loss and logit confidence must not.
    let r = Released::from_logits(&[40.0, 0.0, 0.0], 3, &[0], &Defense::None).unwrap();
    let want_phi = 40.0 - 2f64.ln();
    assert!(
        (r.logit_confidence(0) - want_phi).abs() < 1e-9,
        "{}",
        r.logit_confidence(0)
    );
    let want_loss = 2.0 * (-40f64).exp();
    assert!((r.loss(0) / want_loss - 1.0).abs() < 1e-9, "{}", r.loss(0));
}

#[test]
fn defenses_release_what_they_say() {
    let z = [2.0f32, 1.0, 0.5, -1.0];
    let mut row = [0.0; 4];
    Defense::TopK { k: 1 }.release(&z, &mut row);
    assert_eq!(row[1..], [0.0, 0.0, 0.0]);
    assert!(row[0] > 0.5);
    let top1 = Released::from_logits(&z, 4, &[1], &Defense::TopK { k: 1 }).unwrap();
    assert_eq!(top1.sorted(0)[1..], [0.0, 0.0, 0.0]);
    assert_eq!(top1.top(0), row[0]);
    // One class released: its probability's entropy term alone.
    assert_eq!(top1.entropy(0), -(row[0] * row[0].ln()));
    // The true class is hidden: confidence 0, loss at the resolution floor, finite.
    assert_eq!(top1.confidence(0), 0.0);
    assert!(top1.loss(0).is_finite() && top1.logit_confidence(0).is_finite());
    Defense::Round { decimals: 2 }.release(&z, &mut row);
    for p in row {
        assert!(((p * 100.0).round() - p * 100.0).abs() < 1e-9);
    }
    let r2 = Released::from_logits(&z, 4, &[0], &Defense::Round { decimals: 2 }).unwrap();
    // Four classes: the whole released vector, sorted.
    for p in r2.sorted(0) {
        assert!(((p * 100.0).round() - p * 100.0).abs() < 1e-9);
    }
    let hot = Released::from_logits(&z, 4, &[0], &Defense::Temperature { t: 1e6 }).unwrap();
    for p in hot.sorted(0) {
        assert!((p - 0.25).abs() < 1e-5);
    }
    assert!((hot.entropy(0) - 4f64.ln()).abs() < 1e-9);
    let saturated =
        Released::from_logits(&[50.0, 0.0], 2, &[0], &Defense::Round { decimals: 3 }).unwrap();
    // Rounded to 1.000: the attacker knows only that 1 - p is below 0.0005.
    assert!((saturated.logit_confidence(0) - (1.0f64.ln() - 0.0005f64.ln())).abs() < 1e-12);
}

#[test]
fn bad_outputs_are_errors() {
    assert!(matches!(
        Released::from_logits(&[f32::NAN, 0.0], 2, &[0], &Defense::None),
        Err(PrivacyError::NonFinite { .. })
    ));
    assert!(matches!(
        Released::from_logits(&[1.0, 0.0], 2, &[2], &Defense::None),
        Err(PrivacyError::BadLabel { .. })
    ));
    assert!(matches!(
        Released::from_logits(&[1.0, 0.0, 3.0], 2, &[0], &Defense::None),
        Err(PrivacyError::Mismatched { .. })
    ));
}

#[test]
fn defense_names_round_trip() {
    for s in [
        "none", "top1", "top3", "round2", "temp5", "temp0.5", "l2=0.001",
    ] {
        assert_eq!(Defense::parse(s).unwrap().name(), s);
    }
    for s in ["top0", "round0", "temp-1", "l2=x", "blur"] {
        assert!(Defense::parse(s).is_err(), "{s}");
    }
    assert!(Defense::parse("l2=1e-3").unwrap().is_training_time());
    assert!(!Defense::parse("top1").unwrap().is_training_time());
}

#[test]
fn design_is_balanced_and_seeded() {
    let d = Design::balanced(1001, 16, 7).unwrap();
    assert_eq!(d.models(), 16);
    for i in 0..1001 {
        assert_eq!(d.members.iter().filter(|r| r[i]).count(), 8);
    }
    for r in &d.members {
        let k = r.iter().filter(|&&m| m).count();
        assert!((400..600).contains(&k), "{k}");
    }
    d.validate().unwrap();
    assert_eq!(d, Design::balanced(1001, 16, 7).unwrap());
    assert_ne!(d.members, Design::balanced(1001, 16, 8).unwrap().members);
    let odd = Design::balanced(2000, 5, 1).unwrap();
    let counts: Vec<usize> = (0..2000)
        .map(|i| odd.members.iter().filter(|r| r[i]).count())
        .collect();
    assert!(counts.iter().all(|&c| c == 2 || c == 3));
    // Both counts occur: the coin is fair, not stuck.
    assert!(counts.contains(&2) && counts.contains(&3));
    odd.validate().unwrap();
}

#[test]
fn unbalanced_or_degenerate_designs_are_refused() {
    let mut d = Design::balanced(100, 4, 0).unwrap();
    let flip = !d.members[0][5];
    d.members[0][5] = flip;
    let e = d.validate().unwrap_err().to_string();
    assert!(e.contains("not balanced: pool example 5"), "{e}");
    assert!(Design::balanced(100, 1, 0).is_err());
    assert!(Design::balanced(1, 4, 0).is_err());
    let mut short = Design::balanced(100, 4, 0).unwrap();
    short.members[2].pop();
    assert!(short.validate().is_err());
}

/// Target and reference masks of a test world: model 0 of a balanced design is the target.
struct Masks {
    target: Vec<bool>,
    references: Vec<Vec<bool>>,
}

impl Masks {
    fn new(pool: usize, refs: usize, seed: u64) -> Masks {
        let mut d = Design::balanced(pool, refs + 1, seed).unwrap().members;
        let target = d.remove(0);
        Masks {
            target,
            references: d,
        }
    }
}

/// A two-class world where example i has difficulty `d_i` and a model's logit-scaled confidence
/// on it is `d_i + gap` if it trained on i, `d_i` if not, plus noise. Logits [phi, 0] give
/// exactly that phi. The per-example likelihood ratio is the optimal test here; a global
/// threshold is hurt by the spread of difficulties.
struct World {
    design: Masks,
    labels: Vec<u32>,
    difficulty: Vec<f64>,
}

impl World {
    fn new(pool: usize, refs: usize, seed: u64) -> World {
        let mut rng = Rng::new(seed);
        World {
            design: Masks::new(pool, refs, seed),
            labels: (0..pool).map(|_| rng.below(2) as u32).collect(),
            difficulty: (0..pool).map(|_| rng.normal() * 3.0).collect(),
        }
    }

    /// Every example classified correctly (phi > 0), as on MNIST.
    fn easy(mut self) -> World {
        self.difficulty.iter_mut().for_each(|d| *d = d.abs() + 1.0);
        self
    }

    fn model(&self, members: &[bool], gap: f64, seed: u64) -> Released {
        let mut rng = Rng::new(seed);
        let mut z = Vec::new();
        for i in 0..self.labels.len() {
            let phi = self.difficulty[i] + if members[i] { gap } else { 0.0 } + 0.3 * rng.normal();
            let (a, b) = (phi as f32, 0.0f32);
            if self.labels[i] == 0 {
                z.extend([a, b]);
            } else {
                z.extend([b, a]);
            }
        }
        Released::from_logits(&z, 2, &self.labels, &Defense::None).unwrap()
    }

    fn run(&self, gap: f64) -> Vec<(String, metrics::Metrics)> {
        let target = self.model(&self.design.target, gap, 1000);
        let refs: Vec<Released> = self
            .design
            .references
            .iter()
            .enumerate()
            .map(|(m, mask)| self.model(mask, gap, m as u64))
            .collect();
        let data = AuditData {
            target: &target,
            references: &refs.iter().collect::<Vec<_>>(),
            reference_members: &self.design.references,
        };
        ATTACK_NAMES
            .iter()
            .map(|name| {
                let a = attack_by_name(name, 4, 0).unwrap();
                let out = a.attack(&data).unwrap();
                let m = metrics(&out.scores, &self.design.target, 0, 0).unwrap();
                (name.to_string(), m)
            })
            .collect()
    }
}

#[test]
fn no_leakage_gives_auc_near_one_half() {
    let w = World::new(4000, 8, 3);
    // Standard error of the AUC under the null: sqrt((n1 + n2 + 1) / (12 n1 n2)) = 0.0091.
    for (name, m) in w.run(0.0) {
        assert!(
            (m.auc.value - 0.5).abs() < 4.0 * 0.0092,
            "{name}: {}",
            m.auc.value
        );
    }
}

#[test]
fn a_constant_predictor_leaks_nothing() {
    let w = World::new(600, 4, 4);
    let labels = &w.labels;
    let constant = |_: &[bool]| {
        let z: Vec<f32> = labels.iter().flat_map(|_| [1.5f32, -0.5]).collect();
        Released::from_logits(&z, 2, labels, &Defense::None).unwrap()
    };
    let target = constant(&w.design.target);
    let refs: Vec<Released> = w.design.references.iter().map(|m| constant(m)).collect();
    let data = AuditData {
        target: &target,
        references: &refs.iter().collect::<Vec<_>>(),
        reference_members: &w.design.references,
    };
    for name in ATTACK_NAMES {
        let out = attack_by_name(name, 4, 0).unwrap().attack(&data).unwrap();
        let m = metrics(&out.scores, &w.design.target, 0, 0).unwrap();
        // Every example looks the same to the attacker except through its label, and labels
        // are independent of membership.
        assert!(
            (m.auc.value - 0.5).abs() < 4.0 * 0.024,
            "{name}: {}",
            m.auc.value
        );
        assert!(
            m.tpr_at_1pct_fpr.value < 0.1,
            "{name}: {}",
            m.tpr_at_1pct_fpr.value
        );
    }
}

#[test]
fn memorization_is_detected_and_lira_wins_at_low_fpr() {
    let w = World::new(4000, 16, 5);
    let r: std::collections::HashMap<String, metrics::Metrics> = w.run(2.0).into_iter().collect();
    let lira = &r["lira"];
    let loss = &r["loss"];
    assert!(lira.auc.value > 0.95, "lira auc {}", lira.auc.value);
    assert!(r["lira-offline"].auc.value > 0.9);
    // Shokri's attack models see the sorted vector, which hides whether the top class is the
    // true one: here (many confidently wrong predictions) it can do no better than ML-Leaks'
    // label-free top posterior, and does about as well.
    let (shokri, salem) = (r["shokri"].auc.value, r["salem"].auc.value);
    assert!(
        shokri > 0.53 && (shokri - salem).abs() < 0.03,
        "shokri {shokri} salem {salem}"
    );
    // Difficulty spread 3 against a gap of 2: a global loss threshold does much worse.
    assert!(loss.auc.value > 0.55 && loss.auc.value < lira.auc.value - 0.1);
    assert!(lira.tpr_at_1pct_fpr.value > 0.5);
    assert!(lira.tpr_at_1pct_fpr.value > 5.0 * loss.tpr_at_1pct_fpr.value);
    assert!(r["lira-offline"].tpr_at_1pct_fpr.value > loss.tpr_at_1pct_fpr.value);
}

#[test]
fn shokri_learns_confidence_when_predictions_are_correct() {
    let w = World::new(4000, 8, 6).easy();
    let r: std::collections::HashMap<String, metrics::Metrics> = w.run(2.0).into_iter().collect();
    let (shokri, loss) = (r["shokri"].auc.value, r["loss"].auc.value);
    // With the top class the true one, the sorted vector carries the loss: the attack models
    // should find the loss threshold's separation, no worse.
    assert!(
        shokri > 0.6 && shokri > loss - 0.02,
        "shokri {shokri} loss {loss}"
    );
}

#[test]
fn lira_online_matches_a_direct_gaussian_likelihood_ratio() {
    let w = World::new(50, 6, 8);
    let target = w.model(&w.design.target, 1.0, 99);
    let refs: Vec<Released> = (0..6)
        .map(|m| w.model(&w.design.references[m], 1.0, m as u64))
        .collect();
    let data = AuditData {
        target: &target,
        references: &refs.iter().collect::<Vec<_>>(),
        reference_members: &w.design.references,
    };
    let out = attack_by_name("lira", 0, 0).unwrap().attack(&data).unwrap();
    for i in 0..50 {
        // As many IN as OUT observations, the first ones in reference order.
        let count = |member: bool| {
            (0..6)
                .filter(|&m| w.design.references[m][i] == member)
                .count()
        };
        let keep = count(true).min(count(false));
        let side = |member: bool| -> (f64, f64) {
            let v: Vec<f64> = (0..6)
                .filter(|&m| w.design.references[m][i] == member)
                .take(keep)
                .map(|m| refs[m].logit_confidence(i))
                .collect();
            let mean = v.iter().sum::<f64>() / v.len() as f64;
            let var = v.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / (v.len() - 1) as f64;
            (mean, var)
        };
        let ((mi, vi), (mo, vo)) = (side(true), side(false));
        let x = target.logit_confidence(i);
        let lp = |m: f64, v: f64| {
            -0.5 * (x - m).powi(2) / v - 0.5 * (2.0 * std::f64::consts::PI * v).ln()
        };
        let want = lp(mi, vi) - lp(mo, vo);
        assert!(
            (out.scores[i] - want).abs() < 1e-9 * want.abs().max(1.0),
            "{i}"
        );
    }
}

#[test]
fn attacks_that_need_references_say_so() {
    let t = Released::from_logits(&[1.0, 0.0, 0.0, 1.0], 2, &[0, 1], &Defense::None).unwrap();
    let data = AuditData {
        target: &t,
        references: &[],
        reference_members: &[],
    };
    for name in ["lira", "lira-offline", "shokri"] {
        let e = attack_by_name(name, 4, 0)
            .unwrap()
            .attack(&data)
            .unwrap_err();
        assert!(matches!(e, PrivacyError::TooFewReferences { .. }), "{name}");
    }
    assert!(attack_by_name("loss", 4, 0).unwrap().attack(&data).is_ok());
    assert!(attack_by_name("nope", 4, 0).is_err());
}
