//! `Released` keeps per-example statistics instead of the released vectors: they must be the
//! statistics of the vectors (computed here from `Defense::release`'s rows with the formulas
//! of the first implementation, which kept the vectors), bit for bit, from f32 logits, f64
//! logits and probabilities alike; and probabilities that are not probabilities are refused.
#![allow(clippy::unwrap_used)] // in tests, a failed unwrap is a failed test, with its location

use strata_data::rng::Rng;
use strata_privacy::outputs::{PROB_SUM_TOLERANCE, SORTED_KEPT};
use strata_privacy::{Defense, PrivacyError, Released};

/// The statistics of one released row, as the first implementation computed them from the row
/// it kept: confidence, loss, logit confidence, entropy, modified entropy, top, and the row
/// sorted from the largest down.
fn reference(row: &[f64], y: usize, defense: &Defense) -> ([f64; 6], Vec<f64>) {
    let full = matches!(
        defense,
        Defense::None | Defense::Temperature { .. } | Defense::L2 { .. }
    );
    let p = row[y];
    let rest: f64 = if full {
        row.iter()
            .enumerate()
            .filter(|&(j, _)| j != y)
            .map(|(_, &q)| q)
            .sum()
    } else {
        (1.0 - p).max(0.0)
    };
    let resolution = defense.resolution();
    let clamp = |v: f64| v.max(resolution);
    let loss = (clamp(rest) / clamp(p)).ln_1p();
    let phi = clamp(p).ln() - clamp(rest).ln();
    let entropy = -row
        .iter()
        .filter(|&&p| p > 0.0)
        .map(|&p| p * p.ln())
        .sum::<f64>();
    let mut mentr = -rest * clamp(p).ln();
    for (j, &q) in row.iter().enumerate() {
        if j != y && q > 0.0 {
            let ln_q = if q < 1.0 {
                (-q).ln_1p()
            } else {
                f64::NEG_INFINITY
            };
            mentr -= q * ln_q.max(resolution.ln());
        }
    }
    let top = row.iter().fold(0.0f64, |m, &q| m.max(q));
    let mut sorted = row.to_vec();
    sorted.sort_by(|a, b| b.total_cmp(a));
    ([p, loss, phi, entropy, mentr, top], sorted)
}

fn stats(r: &Released, i: usize) -> [f64; 6] {
    [
        r.confidence(i),
        r.loss(i),
        r.logit_confidence(i),
        r.entropy(i),
        r.modified_entropy(i),
        r.top(i),
    ]
}

fn same(a: &[f64], b: &[f64]) -> bool {
    a.len() == b.len() && a.iter().zip(b).all(|(x, y)| x.to_bits() == y.to_bits())
}

const DEFENSES: [Defense; 8] = [
    Defense::None,
    Defense::TopK { k: 1 },
    Defense::TopK { k: 3 },
    Defense::Round { decimals: 2 },
    Defense::Round { decimals: 4 },
    Defense::Temperature { t: 0.5 },
    Defense::Temperature { t: 5.0 },
    Defense::L2 { lambda: 1e-3 },
];

/// Random logits, some of them saturating (scale 30) and some tied (rounded to integers).
fn logits(rng: &mut Rng, n: usize, classes: usize) -> (Vec<f32>, Vec<u32>) {
    let mut z = Vec::with_capacity(n * classes);
    for i in 0..n {
        let scale = [1.0, 4.0, 30.0][i % 3];
        for _ in 0..classes {
            let v = rng.normal() * scale;
            z.push(if i % 5 == 4 { v.round() } else { v } as f32);
        }
    }
    let labels = (0..n).map(|_| rng.below(classes as u64) as u32).collect();
    (z, labels)
}

#[test]
fn statistics_are_those_of_the_released_vectors() {
    let mut rng = Rng::new(1);
    for classes in [1, 2, 3, 9, 10, 11, 100] {
        let n = 300;
        let (z, labels) = logits(&mut rng, n, classes);
        for defense in &DEFENSES {
            let r = Released::from_logits(&z, classes, &labels, defense).unwrap();
            assert_eq!((r.len(), r.classes), (n, classes));
            assert_eq!(r.labels, labels);
            let mut row = vec![0.0; classes];
            for i in 0..n {
                defense.release(&z[i * classes..(i + 1) * classes], &mut row);
                let (want, sorted) = reference(&row, labels[i] as usize, defense);
                let kept = SORTED_KEPT.min(classes);
                assert!(
                    same(&stats(&r, i), &want),
                    "{classes} classes {defense:?} example {i}: {:?} vs {want:?}",
                    stats(&r, i)
                );
                assert!(same(r.sorted(i), &sorted[..kept]), "{defense:?} {i}");
            }
        }
    }
}

#[test]
fn f64_logits_and_probabilities_give_the_same_statistics() {
    let mut rng = Rng::new(2);
    for classes in [2, 7, 30] {
        let n = 200;
        let (z, labels) = logits(&mut rng, n, classes);
        let z64: Vec<f64> = z.iter().map(|&v| v as f64).collect();
        // The probabilities of the logits, as a user's model would hand them over.
        let mut p = vec![0.0; n * classes];
        for (zr, pr) in z.chunks(classes).zip(p.chunks_mut(classes)) {
            Defense::None.release(zr, pr);
        }
        let p32: Vec<f32> = p.iter().map(|&v| v as f32).collect();
        for defense in &DEFENSES {
            let a = Released::from_logits(&z, classes, &labels, defense).unwrap();
            let b = Released::from_logits_f64(&z64, classes, &labels, defense).unwrap();
            let c = Released::from_probs(&p, classes, &labels, defense).unwrap();
            let d = Released::from_probs(&p32, classes, &labels, defense).unwrap();
            for i in 0..n {
                // Widened f32 logits: the same arithmetic.
                assert!(same(&stats(&a, i), &stats(&b, i)), "{defense:?} {i}");
                assert!(same(a.sorted(i), b.sorted(i)));
                if !matches!(defense, Defense::Temperature { .. }) {
                    // The same released vector: the same bits.
                    assert!(same(&stats(&a, i), &stats(&c, i)), "{defense:?} {i}");
                    assert!(same(a.sorted(i), c.sorted(i)));
                } else {
                    // p^(1/t), renormalized, is the softmax of z / t up to rounding.
                    for (x, y) in stats(&a, i).iter().zip(stats(&c, i)) {
                        assert!(
                            (x - y).abs() <= 1e-9 * x.abs().max(1.0),
                            "{defense:?} {x} {y}"
                        );
                    }
                }
                // Probabilities stored in f32: close where f32 resolves them.
                if matches!(defense, Defense::None) {
                    let (sa, sd) = (stats(&a, i), stats(&d, i));
                    assert!((sa[0] - sd[0]).abs() < 1e-6, "{i}");
                    assert!((sa[3] - sd[3]).abs() < 1e-5, "{i}");
                    for (x, y) in a.sorted(i).iter().zip(d.sorted(i)) {
                        assert!((x - y).abs() <= 1e-7 * x.max(1e-30), "{x} {y}");
                    }
                }
            }
        }
    }
}

#[test]
fn bad_probabilities_are_errors_naming_the_first_bad_example() {
    let labels = [0, 1, 0];
    let ok = [0.5f64, 0.5, 0.9, 0.1, 1.0, 0.0];
    assert!(Released::from_probs(&ok, 2, &labels, &Defense::None).is_ok());
    // Within the tolerance: accepted as given.
    let near = [0.5, 0.5 + 0.5 * PROB_SUM_TOLERANCE, 0.9, 0.1, 1.0, 0.0];
    assert!(Released::from_probs(&near, 2, &labels, &Defense::None).is_ok());
    let with = |i: usize, v: f64| {
        let mut p = ok;
        p[i] = v;
        Released::from_probs(&p, 2, &labels, &Defense::None)
    };
    let invalid_at = |e: PrivacyError, example: usize| match e {
        PrivacyError::Invalid(msg) => assert!(msg.contains(&format!("example {example}")), "{msg}"),
        e => panic!("{e:?}"),
    };
    assert!(matches!(
        with(2, f64::NAN),
        Err(PrivacyError::NonFinite { example: 1, .. })
    ));
    assert!(matches!(
        with(5, f64::INFINITY),
        Err(PrivacyError::NonFinite { example: 2, .. })
    ));
    invalid_at(with(3, -0.1).unwrap_err(), 1); // negative (and the row sums to 0.8)
    invalid_at(with(4, 1.5).unwrap_err(), 2); // above 1
    invalid_at(with(0, 0.4).unwrap_err(), 0); // sums to 0.9
                                              // Logits and percentages are not probabilities.
    invalid_at(
        Released::from_probs(&[2.0, -1.0], 2, &[0], &Defense::None).unwrap_err(),
        0,
    );
    invalid_at(
        Released::from_probs(&[50.0, 50.0], 2, &[0], &Defense::None).unwrap_err(),
        0,
    );
    // The first offending example is named, whatever is wrong with the later ones.
    let mut p = ok;
    p[0] = 0.3; // example 0 sums to 0.8
    p[3] = f64::NAN; // example 1 is not finite
    invalid_at(
        Released::from_probs(&p, 2, &labels, &Defense::None).unwrap_err(),
        0,
    );
    assert!(matches!(
        Released::from_probs(&ok, 2, &[0, 2, 0], &Defense::None),
        Err(PrivacyError::BadLabel { example: 1, .. })
    ));
    assert!(matches!(
        Released::from_probs(&ok[..5], 2, &labels, &Defense::None),
        Err(PrivacyError::Mismatched { .. })
    ));
    assert!(matches!(
        Released::from_probs(&ok, 0, &labels, &Defense::None),
        Err(PrivacyError::Mismatched { .. })
    ));
}

#[test]
fn f64_logits_are_checked_like_f32_ones() {
    assert!(matches!(
        Released::from_logits_f64(
            &[0.0, 1.0, f64::NEG_INFINITY, 0.0],
            2,
            &[0, 1],
            &Defense::None
        ),
        Err(PrivacyError::NonFinite { example: 1, .. })
    ));
    assert!(matches!(
        Released::from_logits_f64(&[1.0, 0.0], 2, &[2], &Defense::None),
        Err(PrivacyError::BadLabel { .. })
    ));
    assert!(matches!(
        Released::from_logits_f64(&[1.0, 0.0, 3.0], 2, &[0], &Defense::None),
        Err(PrivacyError::Mismatched { .. })
    ));
}

#[test]
fn memory_is_per_example_statistics_not_vectors() {
    // 2,000 examples of 100 classes: the vectors alone would take 1.6 MB in f64.
    let (n, classes) = (2000, 100);
    let mut rng = Rng::new(3);
    let (z, labels) = logits(&mut rng, n, classes);
    let r = Released::from_logits(&z, classes, &labels, &Defense::None).unwrap();
    // Labels (4 bytes), 5 statistics (40) and the 10 largest probabilities (80) per example.
    let per_example = r.memory_bytes() as f64 / n as f64;
    assert!(per_example < 130.0, "{per_example} bytes per example");
    for i in 0..n {
        let s = r.sorted(i);
        assert_eq!(s.len(), SORTED_KEPT);
        assert!(s.windows(2).all(|w| w[0] >= w[1]));
        assert_eq!(s[0], r.top(i));
    }
}
