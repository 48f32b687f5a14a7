//! Scoring a design: each target scored alone equals its row of the every-target evaluation,
//! spreads are the plain mean and standard deviation, the averaged ROC is the mean of each
//! target's TPR at the grid's FPRs, and mismatched inputs are errors.
#![allow(clippy::unwrap_used)] // in tests, a failed unwrap is a failed test, with its location

use strata_data::rng::Rng;
use strata_privacy::metrics::Roc;
use strata_privacy::protocol::Design;
use strata_privacy::score::{score, ScoreConfig};
use strata_privacy::{attack_by_name, Defense, MembershipAttack, Released};

/// Models over a balanced design whose members get `gap` more logit on the true class.
fn world(pool: usize, models: usize, gap: f64, seed: u64) -> (Design, Vec<Released>) {
    let d = Design::balanced(pool, models, seed).unwrap();
    let mut rng = Rng::new(seed + 100);
    let labels: Vec<u32> = (0..pool).map(|_| rng.below(3) as u32).collect();
    let base: Vec<f64> = (0..pool).map(|_| rng.normal()).collect();
    let released = d
        .members
        .iter()
        .map(|mask| {
            let mut z = Vec::with_capacity(pool * 3);
            for i in 0..pool {
                for c in 0..3u32 {
                    let mut v = rng.normal();
                    if c == labels[i] {
                        v += 1.0 + base[i] + if mask[i] { gap } else { 0.0 };
                    }
                    z.push(v as f32);
                }
            }
            Released::from_logits(&z, 3, &labels, &Defense::None).unwrap()
        })
        .collect();
    (d, released)
}

fn attacks(names: &[&str]) -> Vec<Box<dyn MembershipAttack>> {
    names
        .iter()
        .map(|n| attack_by_name(n, 2, 0).unwrap())
        .collect()
}

#[test]
fn every_target_equals_each_target_alone() {
    let (d, released) = world(600, 6, 1.5, 1);
    let at = attacks(&["lira-global", "rmia", "loss", "shokri"]);
    let targets: Vec<usize> = (0..6).collect();
    fn cfg<'a>(at: &'a [Box<dyn MembershipAttack>], t: &'a [usize]) -> ScoreConfig<'a> {
        ScoreConfig {
            attacks: at,
            targets: t,
            references: None,
            bootstrap: 0,
            seed: 0,
        }
    }
    let all = score(&released, &d, &cfg(&at, &targets)).unwrap();
    for (k, r) in all.iter().enumerate() {
        let across = r.across_targets.as_ref().unwrap();
        assert_eq!(across.per_target.len(), 6);
        let aucs: Vec<f64> = across.per_target.iter().map(|f| f.auc).collect();
        let mean = aucs.iter().sum::<f64>() / 6.0;
        let sd = (aucs.iter().map(|a| (a - mean).powi(2)).sum::<f64>() / 5.0).sqrt();
        assert!((across.auc.mean - mean).abs() < 1e-12);
        assert!((across.auc.std - sd).abs() < 1e-12);
        assert!(across.auc.min <= mean && mean <= across.auc.max);
        let mut grid_mean = vec![0.0; r.roc.len()];
        for &t in &targets {
            let one = &score(&released, &d, &cfg(&at, &[t])).unwrap()[k];
            assert_eq!(
                one.metrics.auc.value, across.per_target[t].auc,
                "target {t}"
            );
            assert_eq!(
                one.metrics.tpr_at_low_fpr.value,
                across.per_target[t].tpr_at_low_fpr
            );
            let roc = Roc::new(&one.scores, &d.members[t]).unwrap();
            for (g, (fpr, _)) in r.roc.iter().enumerate() {
                grid_mean[g] += roc.tpr_at_fpr(*fpr) / 6.0;
            }
        }
        for ((_, got), want) in r.roc.iter().zip(&grid_mean) {
            assert!((got - want).abs() < 1e-12);
        }
        // The primary target keeps its own full figures.
        assert_eq!(r.metrics.auc.value, across.per_target[0].auc);
        assert_eq!(r.scores.len(), 600);
    }
}

#[test]
fn fewer_references_use_the_first_other_models() {
    let (d, released) = world(400, 8, 1.0, 2);
    let at = attacks(&["lira-offline"]);
    let cfg = ScoreConfig {
        attacks: &at,
        targets: &[3],
        references: Some(2),
        bootstrap: 0,
        seed: 0,
    };
    let got = score(&released, &d, &cfg).unwrap();
    // By hand: target 3, references 0 and 1.
    let refs: Vec<&Released> = vec![&released[0], &released[1]];
    let masks = vec![d.members[0].clone(), d.members[1].clone()];
    let data = strata_privacy::AuditData {
        target: &released[3],
        references: &refs,
        reference_members: &masks,
    };
    let want = at[0].attack(&data).unwrap().scores;
    assert_eq!(got[0].scores, want);
}

#[test]
fn mismatched_inputs_are_errors() {
    let (d, released) = world(200, 4, 1.0, 3);
    let at = attacks(&["loss", "lira"]);
    let cfg = |t: &'static [usize], r: Option<usize>| ScoreConfig {
        attacks: &at,
        targets: t,
        references: r,
        bootstrap: 0,
        seed: 0,
    };
    let e = |r: strata_privacy::Result<_>| -> String {
        match r {
            Ok(_) => panic!("no error"),
            Err(e) => e.to_string(),
        }
    };
    assert!(e(score(&released[..3], &d, &cfg(&[0], None))).contains("one per model"));
    assert!(e(score(&released, &d, &cfg(&[4], None))).contains("target model 4"));
    assert!(e(score(&released, &d, &cfg(&[], None))).contains("no target"));
    assert!(e(score(&released, &d, &cfg(&[0], Some(1)))).contains("needs at least 2"));
    let (_, other) = world(150, 4, 1.0, 4);
    assert!(e(score(&other, &d, &cfg(&[0], None))).contains("pool has 200"));
}

#[test]
fn nothing_leaks_when_nothing_leaks_even_with_few_models() {
    // In a balanced design of 8 models the references hold 3 IN and 4 OUT observations of the
    // target's members and 4 IN and 3 OUT of its non-members. Attacks must not read membership
    // off those counts: with no leakage every attack's AUC, averaged over the 8 targets, is 1/2
    // (per-target standard error about 0.0075 at 6,000 examples; LiRA fitted on unequal counts
    // gave 0.435).
    let (d, released) = world(6000, 8, 0.0, 5);
    let names = [
        "lira",
        "lira-offline",
        "lira-global",
        "rmia",
        "rmia-offline",
        "loss",
    ];
    let at = attacks(&names);
    let targets: Vec<usize> = (0..8).collect();
    let cfg = ScoreConfig {
        attacks: &at,
        targets: &targets,
        references: None,
        bootstrap: 0,
        seed: 0,
    };
    for (name, r) in names.iter().zip(score(&released, &d, &cfg).unwrap()) {
        let mean = r.across_targets.unwrap().auc.mean;
        assert!((mean - 0.5).abs() < 0.02, "{name}: mean AUC {mean}");
    }
}
