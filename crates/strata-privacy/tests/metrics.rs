//! ROC, AUC, TPR at fixed FPR and advantage against hand-computed cases and brute-force f64
//! references on random scores with ties.
#![allow(clippy::unwrap_used)] // in tests, a failed unwrap is a failed test, with its location

use strata_data::rng::Rng;
use strata_privacy::metrics::{balanced_accuracy_at, metrics, Roc};
use strata_privacy::PrivacyError;

#[test]
fn hand_computed_roc() {
    let s = [0.9, 0.8, 0.7, 0.6, 0.5, 0.4];
    let m = [true, false, true, true, false, false];
    let roc = Roc::new(&s, &m).unwrap();
    // Members 0.9, 0.7, 0.6 beat 3, 2 and 2 of the non-members 0.8, 0.5, 0.4.
    assert!((roc.auc() - 7.0 / 9.0).abs() < 1e-15);
    // No false positive allowed with 3 negatives at FPR 1%: only 0.9 is flagged.
    assert_eq!(roc.false_positives_allowed(0.01), 0);
    assert!((roc.tpr_at_fpr(0.01) - 1.0 / 3.0).abs() < 1e-15);
    // At FPR 1/3 all three members are caught before the second non-member.
    assert!((roc.tpr_at_fpr(1.0 / 3.0) - 1.0).abs() < 1e-15);
    assert!((roc.advantage() - 2.0 / 3.0).abs() < 1e-15);
    let curve: Vec<(f64, f64)> = roc.points.iter().map(|p| roc.rates(p)).collect();
    let third = 1.0 / 3.0;
    let want = [
        (0.0, 0.0),
        (0.0, third),
        (third, third),
        (third, 2.0 * third),
        (third, 1.0),
        (2.0 * third, 1.0),
        (1.0, 1.0),
    ];
    for (a, b) in curve.iter().zip(want) {
        assert!(
            (a.0 - b.0).abs() < 1e-15 && (a.1 - b.1).abs() < 1e-15,
            "{curve:?}"
        );
    }
    assert_eq!(curve.len(), want.len());
}

#[test]
fn perfect_reversed_and_tied_scores() {
    let m = [true, true, false, false];
    let perfect = Roc::new(&[4.0, 3.0, 2.0, 1.0], &m).unwrap();
    assert_eq!(perfect.auc(), 1.0);
    assert_eq!(perfect.tpr_at_fpr(0.001), 1.0);
    assert_eq!(perfect.advantage(), 1.0);
    let reversed = Roc::new(&[1.0, 2.0, 3.0, 4.0], &m).unwrap();
    assert_eq!(reversed.auc(), 0.0);
    assert_eq!(reversed.tpr_at_fpr(0.001), 0.0);
    assert_eq!(reversed.advantage(), 0.0);
    // A constant score: one threshold, the diagonal, AUC exactly 1/2.
    let tied = Roc::new(&[7.0; 4], &m).unwrap();
    assert_eq!(tied.points.len(), 2);
    assert_eq!(tied.auc(), 0.5);
    assert_eq!(tied.tpr_at_fpr(0.01), 0.0);
    assert_eq!(tied.advantage(), 0.0);
}

#[test]
fn false_positives_allowed_is_floor_of_fpr_times_negatives() {
    let make = |neg: usize| {
        let mut m = vec![false; neg];
        m.push(true);
        Roc::new(&vec![0.0; neg + 1], &m).unwrap()
    };
    assert_eq!(make(1000).false_positives_allowed(0.01), 10);
    assert_eq!(make(1000).false_positives_allowed(0.001), 1);
    assert_eq!(make(999).false_positives_allowed(0.001), 0);
    assert_eq!(make(5000).false_positives_allowed(0.001), 5);
}

/// Brute force: every threshold among the scores (and +inf), counted directly.
fn reference(s: &[f64], m: &[bool], fpr: f64) -> (f64, f64, f64) {
    let pos = m.iter().filter(|&&x| x).count() as f64;
    let neg = m.len() as f64 - pos;
    let mut auc = 0.0;
    for i in 0..s.len() {
        for j in 0..s.len() {
            if m[i] && !m[j] {
                auc += if s[i] > s[j] {
                    1.0
                } else if s[i] == s[j] {
                    0.5
                } else {
                    0.0
                };
            }
        }
    }
    let mut thresholds: Vec<f64> = s.to_vec();
    thresholds.push(f64::INFINITY);
    let (mut best_tpr, mut adv) = (0.0f64, 0.0f64);
    for &t in &thresholds {
        let tp = (0..s.len()).filter(|&i| m[i] && s[i] >= t).count() as f64;
        let fp = (0..s.len()).filter(|&i| !m[i] && s[i] >= t).count() as f64;
        if fp <= (fpr * neg + 1e-9).floor() {
            best_tpr = best_tpr.max(tp / pos);
        }
        adv = adv.max(tp / pos - fp / neg);
    }
    (auc / (pos * neg), best_tpr, adv)
}

#[test]
fn matches_brute_force_on_random_scores_with_ties() {
    let mut rng = Rng::new(11);
    for trial in 0..40 {
        let n = 2 + rng.below(300) as usize;
        let levels = 1.0 + rng.below(20) as f64;
        let mut m: Vec<bool> = (0..n).map(|_| rng.below(2) == 1).collect();
        m[0] = true;
        m[1] = false;
        // Members score a little higher; rounding to `levels` makes ties common.
        let s: Vec<f64> = m
            .iter()
            .map(|&x| ((rng.normal() + if x { 0.7 } else { 0.0 }) * levels).round() / levels)
            .collect();
        let roc = Roc::new(&s, &m).unwrap();
        for fpr in [0.001, 0.01, 0.1, 0.5] {
            let (auc, tpr, adv) = reference(&s, &m, fpr);
            assert!((roc.auc() - auc).abs() < 1e-12, "trial {trial}");
            assert!(
                (roc.tpr_at_fpr(fpr) - tpr).abs() < 1e-12,
                "trial {trial} fpr {fpr}"
            );
            assert!((roc.advantage() - adv).abs() < 1e-12, "trial {trial}");
        }
    }
}

#[test]
fn balanced_accuracy_at_a_threshold() {
    let s = [0.9, 0.8, 0.7, 0.6, 0.5, 0.4];
    let m = [true, false, true, true, false, false];
    // Flag >= 0.65: TPR 2/3, TNR 2/3.
    assert!((balanced_accuracy_at(&s, &m, 0.65) - 2.0 / 3.0).abs() < 1e-15);
    // Flag everything: TPR 1, TNR 0.
    assert_eq!(balanced_accuracy_at(&s, &m, f64::NEG_INFINITY), 0.5);
}

#[test]
fn bootstrap_intervals_cover_the_value_and_are_seeded() {
    let mut rng = Rng::new(5);
    let m: Vec<bool> = (0..2000).map(|i| i % 2 == 0).collect();
    let s: Vec<f64> = m
        .iter()
        .map(|&x| rng.normal() + if x { 0.5 } else { 0.0 })
        .collect();
    let a = metrics(&s, &m, 100, 3).unwrap();
    let b = metrics(&s, &m, 100, 3).unwrap();
    assert_eq!(a, b);
    let c = metrics(&s, &m, 100, 4).unwrap();
    assert_ne!(a.auc.ci_low, c.auc.ci_low);
    for e in [a.auc, a.tpr_at_1pct_fpr, a.advantage] {
        assert!(e.ci_low <= e.value && e.value <= e.ci_high, "{e:?}");
    }
    // AUC of N(0.5, 1) vs N(0, 1) is Phi(0.5 / sqrt 2) = 0.6382; the interval is about
    // +-0.024 wide at n = 2000 and must contain it in all but rare seeds.
    assert!(
        a.auc.ci_low < 0.6382 && 0.6382 < a.auc.ci_high,
        "{:?}",
        a.auc
    );
    assert!(a.auc.ci_high - a.auc.ci_low < 0.08);
    assert_eq!(a.false_positives_at_low_fpr, 1);
    assert_eq!(a.false_positives_at_1pct_fpr, 10);
    assert!((a.balanced_accuracy - 0.5 * (1.0 + a.advantage.value)).abs() < 1e-15);
    let z = metrics(&s, &m, 0, 3).unwrap();
    assert_eq!(z.auc.ci_low, z.auc.value);
}

#[test]
fn bad_inputs_are_errors() {
    assert!(matches!(
        Roc::new(&[1.0, 2.0], &[true, true]),
        Err(PrivacyError::OneSided { .. })
    ));
    assert!(matches!(
        Roc::new(&[1.0, f64::NAN], &[true, false]),
        Err(PrivacyError::NonFinite { example: 1, .. })
    ));
    assert!(matches!(
        Roc::new(&[1.0], &[true, false]),
        Err(PrivacyError::Mismatched { .. })
    ));
}

#[test]
fn curve_keeps_the_ends_and_thins_the_middle() {
    let mut rng = Rng::new(9);
    let m: Vec<bool> = (0..20000).map(|i| i % 2 == 0).collect();
    let s: Vec<f64> = (0..20000).map(|_| rng.normal()).collect();
    let roc = Roc::new(&s, &m).unwrap();
    let c = roc.curve(200);
    assert!(c.len() <= 420, "{}", c.len());
    assert_eq!(c[0], (0.0, 0.0));
    assert_eq!(*c.last().unwrap(), (1.0, 1.0));
    assert!(c.windows(2).all(|w| w[0].0 <= w[1].0 && w[0].1 <= w[1].1));
}

/// The bootstrap as it was before the single-sort sweep: every resample builds its score and
/// membership vectors and runs `Roc::new`. `metrics` must give the same figures.
fn metrics_by_resorting(
    scores: &[f64],
    is_member: &[bool],
    bootstrap: usize,
    seed: u64,
) -> strata_privacy::Metrics {
    use strata_privacy::metrics::{Estimate, LOW_FPR};
    let figures = |roc: &Roc| {
        [
            roc.auc(),
            roc.tpr_at_fpr(LOW_FPR),
            roc.tpr_at_fpr(0.01),
            roc.advantage(),
        ]
    };
    let percentile = |sorted: &[f64], q: f64| {
        let pos = q * (sorted.len() - 1) as f64;
        let (lo, hi) = (pos.floor() as usize, pos.ceil() as usize);
        sorted[lo] + (sorted[hi] - sorted[lo]) * (pos - lo as f64)
    };
    let roc = Roc::new(scores, is_member).unwrap();
    let point = figures(&roc);
    let pos: Vec<usize> = (0..scores.len()).filter(|&i| is_member[i]).collect();
    let neg: Vec<usize> = (0..scores.len()).filter(|&i| !is_member[i]).collect();
    let samples: Vec<[f64; 4]> = (0..bootstrap)
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
            figures(&Roc::new(&s, &m).unwrap())
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
    strata_privacy::Metrics {
        members: roc.members,
        non_members: roc.non_members,
        auc: est(0),
        tpr_at_low_fpr: est(1),
        false_positives_at_low_fpr: roc.false_positives_allowed(LOW_FPR),
        tpr_at_1pct_fpr: est(2),
        false_positives_at_1pct_fpr: roc.false_positives_allowed(0.01),
        advantage: est(3),
        balanced_accuracy: 0.5 * (1.0 + point[3]),
    }
}

#[test]
fn bootstrap_sweep_equals_resorting_every_resample() {
    let mut rng = Rng::new(21);
    // Small n (down to one member and one non-member), heavy ties, and signed zeros.
    for trial in 0..300 {
        let n = 2 + rng.below(if trial < 200 { 12 } else { 400 }) as usize;
        let levels = [0.5, 1.0, 4.0, 1e6][trial % 4];
        let mut m: Vec<bool> = (0..n).map(|_| rng.below(3) == 0).collect();
        m[0] = true;
        m[n - 1] = false;
        let s: Vec<f64> = m
            .iter()
            .map(|&x| {
                let v = ((rng.normal() + if x { 0.8 } else { 0.0 }) * levels).round() / levels;
                if v == 0.0 && rng.below(2) == 0 {
                    -0.0
                } else {
                    v
                }
            })
            .collect();
        let boot = 1 + rng.below(60) as usize;
        let got = metrics(&s, &m, boot, trial as u64).unwrap();
        let want = metrics_by_resorting(&s, &m, boot, trial as u64);
        assert_eq!(got, want, "trial {trial} n {n}");
    }
    // Large n: tied (rounded) and untied scores, enough non-members for FPR 0.1% to allow some.
    for (trial, round) in [(0, true), (1, false)] {
        let n = 30_000;
        let m: Vec<bool> = (0..n).map(|_| rng.below(2) == 0).collect();
        let s: Vec<f64> = m
            .iter()
            .map(|&x| {
                let v = rng.normal() + if x { 0.4 } else { 0.0 };
                if round {
                    (v * 20.0).round() / 20.0
                } else {
                    v
                }
            })
            .collect();
        let got = metrics(&s, &m, 40, 100 + trial).unwrap();
        let want = metrics_by_resorting(&s, &m, 40, 100 + trial);
        assert_eq!(got, want, "large trial {trial}");
    }
}
