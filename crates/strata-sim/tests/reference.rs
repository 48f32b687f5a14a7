//! strata-sim against an f64 reference written here straight from the papers' formulas
//! (explicit centering matrix H, explicit U-statistic sums), on fresh random inputs.
//!
//! Each run draws a new seed (printed on failure); set STRATA_TEST_SEED to replay one.
#![allow(clippy::unwrap_used)] // in tests, a failed unwrap is a failed test, with its location
#![allow(clippy::needless_range_loop)] // reference code indexes like the formulas it transcribes

use ndarray::{Array2, Axis};
use strata_data::rng::Rng;
use strata_sim::{cka, cka_all_pairs, Estimator, Kernel, MinibatchCka, SimError};

mod common;
use common::{close, hsic_biased, seed, to64, M};

// ---------- the reference (f64, O(n³), no shortcuts) ----------

fn gram_linear(x: &M) -> M {
    let n = x.len();
    (0..n)
        .map(|i| {
            (0..n)
                .map(|j| x[i].iter().zip(&x[j]).map(|(a, b)| a * b).sum())
                .collect()
        })
        .collect()
}

fn median_np(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    let k = v.len();
    if k % 2 == 1 {
        v[k / 2]
    } else {
        (v[k / 2 - 1] + v[k / 2]) / 2.0
    }
}

fn gram_rbf(x: &M, t: f64) -> M {
    let n = x.len();
    let d: M = (0..n)
        .map(|i| {
            (0..n)
                .map(|j| x[i].iter().zip(&x[j]).map(|(a, b)| (a - b) * (a - b)).sum())
                .collect()
        })
        .collect();
    let m = median_np(d.iter().flatten().copied().collect());
    d.iter()
        .map(|r| r.iter().map(|v| (-v / (2.0 * t * t * m)).exp()).collect())
        .collect()
}

fn hsic_unbiased(k: &M, l: &M) -> f64 {
    let n = k.len();
    let nf = n as f64;
    let kt = |i: usize, j: usize| if i == j { 0.0 } else { k[i][j] };
    let lt = |i: usize, j: usize| if i == j { 0.0 } else { l[i][j] };
    let mut tr = 0.0;
    let (mut sk, mut sl, mut cross) = (0.0, 0.0, 0.0);
    for i in 0..n {
        let (mut rk, mut rl) = (0.0, 0.0);
        for j in 0..n {
            tr += kt(i, j) * lt(j, i);
            rk += kt(i, j);
            rl += lt(i, j);
        }
        sk += rk;
        sl += rl;
        cross += rk * rl;
    }
    (tr + sk * sl / ((nf - 1.0) * (nf - 2.0)) - 2.0 / (nf - 2.0) * cross) / (nf * (nf - 3.0))
}

fn ref_cka(x: &Array2<f32>, y: &Array2<f32>, kernel: Kernel, est: Estimator) -> f64 {
    let g = |z: &Array2<f32>| match kernel {
        Kernel::Linear => gram_linear(&to64(z)),
        Kernel::Rbf { threshold } => gram_rbf(&to64(z), threshold),
    };
    let (k, l) = (g(x), g(y));
    let h = match est {
        Estimator::Biased => hsic_biased,
        Estimator::Debiased => hsic_unbiased,
    };
    h(&k, &l) / (h(&k, &k) * h(&l, &l)).sqrt()
}

// ---------- inputs ----------

/// Y shares a random linear image of X plus noise, so CKA is well inside (0, 1).
fn pair(r: &mut Rng, n: usize, px: usize, py: usize) -> (Array2<f32>, Array2<f32>) {
    let x = r.normal_matrix(n, px);
    let w = r.normal_matrix(px, py);
    let noise = r.normal_matrix(n, py);
    let offset = r.normal_matrix(1, py);
    let y = x.dot(&w) + &noise * 2.0 + &offset * 5.0;
    (x.mapv(|v| v * 3.0 + 1.0), y)
}

fn kernels() -> Vec<Kernel> {
    vec![
        Kernel::Linear,
        Kernel::Rbf { threshold: 0.2 },
        Kernel::Rbf { threshold: 0.5 },
        Kernel::Rbf { threshold: 0.8 },
    ]
}

const ESTIMATORS: [Estimator; 2] = [Estimator::Biased, Estimator::Debiased];

// ---------- tests ----------

#[test]
fn matches_reference_in_feature_gram_and_mixed_forms() {
    let s = seed();
    let mut r = Rng::new(s);
    // (px, py) against n = 40: both < n (feature form), both >= n (Gram form), and mixed.
    for (px, py) in [(5, 9), (50, 70), (6, 45), (45, 6)] {
        let (x, y) = pair(&mut r, 40, px, py);
        for kernel in kernels() {
            for est in ESTIMATORS {
                let got = cka(x.clone(), y.clone(), kernel, est).unwrap();
                let want = ref_cka(&x, &y, kernel, est);
                assert!(
                    close(got, want, 2e-5),
                    "seed {s} px {px} py {py} {kernel:?} {est:?}: strata {got} vs reference {want}"
                );
            }
        }
    }
}

#[test]
fn feature_space_and_gram_forms_agree() {
    let s = seed();
    let mut r = Rng::new(s);
    let (x, y) = pair(&mut r, 30, 8, 12);
    // Zero columns leave X Xᵀ unchanged but push p past n, switching to the Gram form.
    let pad = |m: &Array2<f32>| {
        ndarray::concatenate(Axis(1), &[m.view(), Array2::<f32>::zeros((30, 40)).view()]).unwrap()
    };
    for est in ESTIMATORS {
        let feat = cka(x.clone(), y.clone(), Kernel::Linear, est).unwrap();
        let gram = cka(pad(&x), pad(&y), Kernel::Linear, est).unwrap();
        let mixed = cka(pad(&x), y.clone(), Kernel::Linear, est).unwrap();
        assert!(
            close(feat, gram, 1e-5),
            "seed {s} {est:?}: {feat} vs {gram}"
        );
        assert!(
            close(feat, mixed, 1e-5),
            "seed {s} {est:?}: {feat} vs {mixed}"
        );
    }
}

#[test]
fn self_similarity_is_one() {
    let s = seed();
    let mut r = Rng::new(s);
    for p in [3, 25, 80] {
        let x = r.normal_matrix(50, p);
        for kernel in kernels() {
            for est in ESTIMATORS {
                let v = cka(x.clone(), x.clone(), kernel, est).unwrap();
                assert!(
                    (v - 1.0).abs() < 1e-6,
                    "seed {s} p {p} {kernel:?} {est:?}: {v}"
                );
            }
        }
    }
}

fn random_orthogonal(r: &mut Rng, p: usize) -> Array2<f32> {
    // Gram-Schmidt on a Gaussian matrix, in f64.
    let mut q: Vec<Vec<f64>> = Vec::new();
    while q.len() < p {
        let mut v: Vec<f64> = (0..p).map(|_| r.normal()).collect();
        for u in &q {
            let d: f64 = v.iter().zip(u).map(|(a, b)| a * b).sum();
            v.iter_mut().zip(u).for_each(|(a, b)| *a -= d * b);
        }
        let norm = v.iter().map(|a| a * a).sum::<f64>().sqrt();
        if norm > 1e-6 {
            q.push(v.into_iter().map(|a| a / norm).collect());
        }
    }
    Array2::from_shape_fn((p, p), |(i, j)| q[i][j] as f32)
}

#[test]
fn invariant_to_orthogonal_transforms_isotropic_scaling_and_translation() {
    let s = seed();
    let mut r = Rng::new(s);
    for (px, n) in [(10, 60), (70, 60)] {
        let (x, y) = pair(&mut r, n, px, 15);
        let q = random_orthogonal(&mut r, px);
        let shift = r.normal_matrix(1, px);
        let moved = x.dot(&q) * 7.5 + &shift * 100.0;
        for kernel in kernels() {
            for est in ESTIMATORS {
                let a = cka(x.clone(), y.clone(), kernel, est).unwrap();
                let b = cka(moved.clone(), y.clone(), kernel, est).unwrap();
                assert!(
                    close(a, b, 1e-4),
                    "seed {s} px {px} {kernel:?} {est:?}: {a} vs {b}"
                );
            }
        }
    }
}

#[test]
fn not_invariant_to_anisotropic_scaling() {
    let s = seed();
    let mut r = Rng::new(s);
    let (x, y) = pair(&mut r, 80, 6, 6);
    let mut stretched = x.clone();
    stretched.column_mut(0).mapv_inplace(|v| v * 30.0);
    let a = cka(x, y.clone(), Kernel::Linear, Estimator::Biased).unwrap();
    let b = cka(stretched, y, Kernel::Linear, Estimator::Biased).unwrap();
    assert!((a - b).abs() > 1e-3, "seed {s}: {a} vs {b}");
}

#[test]
fn debiased_and_biased_agree_as_n_grows() {
    let s = seed();
    let mut r = Rng::new(s);
    // Independent representations: population CKA is 0. The biased estimator is pulled up by
    // O(p/n); the debiased one is not.
    let gap = |r: &mut Rng, n: usize| {
        let x = r.normal_matrix(n, 20);
        let y = r.normal_matrix(n, 20);
        let b = cka(x.clone(), y.clone(), Kernel::Linear, Estimator::Biased).unwrap();
        let d = cka(x, y, Kernel::Linear, Estimator::Debiased).unwrap();
        (b, d)
    };
    let (b_small, d_small) = gap(&mut r, 60);
    let (b_big, d_big) = gap(&mut r, 6000);
    assert!(b_small > 0.15, "seed {s}: biased CKA at n=60 is {b_small}");
    assert!(
        d_small.abs() < 0.1,
        "seed {s}: debiased CKA at n=60 is {d_small}"
    );
    assert!(
        (b_big - d_big).abs() < 0.01,
        "seed {s}: n=6000 biased {b_big} debiased {d_big}"
    );
}

#[test]
fn minibatch_one_batch_equals_full_debiased_and_many_batches_average_hsic() {
    let s = seed();
    let mut r = Rng::new(s);
    let (x, y) = pair(&mut r, 48, 7, 30);
    let mut mb = MinibatchCka::new(1, 1, Kernel::Linear, false);
    mb.update(vec![x.clone()], Some(vec![y.clone()])).unwrap();
    let one = mb.finish().values[0][0].unwrap();
    let full = ref_cka(&x, &y, Kernel::Linear, Estimator::Debiased);
    assert!(close(one, full, 2e-5), "seed {s}: {one} vs {full}");

    // Three batches of 16: CKA = mean HSIC_u(K,L) / sqrt(mean HSIC_u(K,K) mean HSIC_u(L,L)).
    let mut mb = MinibatchCka::new(1, 1, Kernel::Linear, false);
    let (mut kl, mut kk, mut ll) = (0.0, 0.0, 0.0);
    for b in 0..3 {
        let xs = x.slice(ndarray::s![b * 16..(b + 1) * 16, ..]).to_owned();
        let ys = y.slice(ndarray::s![b * 16..(b + 1) * 16, ..]).to_owned();
        let (k, l) = (gram_linear(&to64(&xs)), gram_linear(&to64(&ys)));
        kl += hsic_unbiased(&k, &l);
        kk += hsic_unbiased(&k, &k);
        ll += hsic_unbiased(&l, &l);
        mb.update(vec![xs], Some(vec![ys])).unwrap();
    }
    // A trailing batch below 4 rows is skipped, not mixed in.
    mb.update(
        vec![x.slice(ndarray::s![..3, ..]).to_owned()],
        Some(vec![y.slice(ndarray::s![..3, ..]).to_owned()]),
    )
    .unwrap();
    assert_eq!(mb.skipped(), 3);
    let m = mb.finish();
    let want = kl / (kk * ll).sqrt();
    assert_eq!((m.batches, m.n), (3, 48));
    assert!(
        close(m.values[0][0].unwrap(), want, 2e-5),
        "seed {s}: {:?} vs {want}",
        m.values
    );
}

#[test]
fn all_pairs_equals_pairwise_and_self_comparison_is_symmetric() {
    let s = seed();
    let mut r = Rng::new(s);
    let n = 50;
    let a: Vec<Array2<f32>> = [4, 60, 12].iter().map(|&p| r.normal_matrix(n, p)).collect();
    let b: Vec<Array2<f32>> = vec![a[0].dot(&r.normal_matrix(4, 9)), r.normal_matrix(n, 55)];
    for kernel in [Kernel::Linear, Kernel::Rbf { threshold: 0.5 }] {
        for est in ESTIMATORS {
            let m = cka_all_pairs(a.clone(), Some(b.clone()), kernel, est, &|_, _| {}).unwrap();
            for (i, x) in a.iter().enumerate() {
                for (j, y) in b.iter().enumerate() {
                    let want = ref_cka(x, y, kernel, est);
                    let got = m.values[i][j].unwrap();
                    assert!(
                        close(got, want, 2e-5),
                        "seed {s} ({i},{j}) {kernel:?} {est:?}: {got} vs {want}"
                    );
                }
            }
            let sm = cka_all_pairs(a.clone(), None, kernel, est, &|_, _| {}).unwrap();
            for i in 0..3 {
                assert!((sm.values[i][i].unwrap() - 1.0).abs() < 1e-6);
                for j in 0..3 {
                    assert_eq!(sm.values[i][j], sm.values[j][i]);
                    let want = ref_cka(&a[i], &a[j], kernel, est);
                    assert!(close(sm.values[i][j].unwrap(), want, 2e-5), "seed {s}");
                }
            }
        }
    }
}

#[test]
fn too_few_examples_constant_layers_and_non_finite_values_are_reported() {
    let s = seed();
    let mut r = Rng::new(s);
    let x = r.normal_matrix(3, 5);
    let e = cka(x.clone(), x.clone(), Kernel::Linear, Estimator::Debiased).unwrap_err();
    assert_eq!(
        e,
        SimError::TooFewExamples {
            n: 3,
            need: 4,
            estimator: "debiased"
        }
    );
    assert!(cka(x.clone(), x.clone(), Kernel::Linear, Estimator::Biased).is_ok());
    let one = r.normal_matrix(1, 5);
    assert!(cka(one.clone(), one, Kernel::Linear, Estimator::Biased).is_err());

    // A constant layer: CKA is 0/0. Never NaN: an error for one pair, None plus a note in a matrix.
    let y = r.normal_matrix(30, 4);
    let c = Array2::from_elem((30, 6), 0.1f32);
    for kernel in kernels() {
        for est in ESTIMATORS {
            let e = cka(c.clone(), y.clone(), kernel, est).unwrap_err();
            assert!(
                matches!(e, SimError::Undefined(_)),
                "{kernel:?} {est:?}: {e:?}"
            );
            let m =
                cka_all_pairs(vec![c.clone(), y.clone()], None, kernel, est, &|_, _| {}).unwrap();
            assert_eq!(m.values[0][1], None);
            assert!(m.values[1][1].is_some());
            assert!(!m.notes.is_empty());
        }
    }

    // Constant columns next to varying ones change nothing.
    let (x, y) = pair(&mut r, 40, 5, 5);
    let with_const = ndarray::concatenate(
        Axis(1),
        &[x.view(), Array2::from_elem((40, 3), 4.0f32).view()],
    )
    .unwrap();
    for kernel in kernels() {
        let a = cka(x.clone(), y.clone(), kernel, Estimator::Biased).unwrap();
        let b = cka(with_const.clone(), y.clone(), kernel, Estimator::Biased).unwrap();
        assert!(close(a, b, 1e-5), "seed {s} {kernel:?}: {a} vs {b}");
    }

    let mut bad = r.normal_matrix(10, 3);
    bad[[7, 2]] = f32::NAN;
    assert_eq!(
        cka(
            bad,
            r.normal_matrix(10, 3),
            Kernel::Linear,
            Estimator::Biased
        )
        .unwrap_err(),
        SimError::NonFinite {
            example: 7,
            feature: 2
        }
    );
    assert!(matches!(
        cka(
            r.normal_matrix(10, 3),
            r.normal_matrix(11, 3),
            Kernel::Linear,
            Estimator::Biased
        ),
        Err(SimError::MismatchedExamples { .. })
    ));
}

#[test]
fn huge_and_tiny_magnitudes_do_not_overflow() {
    let s = seed();
    let mut r = Rng::new(s);
    let (x, y) = pair(&mut r, 40, 6, 50);
    for est in ESTIMATORS {
        let base = cka(x.clone(), y.clone(), Kernel::Linear, est).unwrap();
        for f in [1e-30f32, 1e18, 1e30] {
            let v = cka(x.mapv(|v| v * f), y.clone(), Kernel::Linear, est).unwrap();
            assert!(
                close(v, base, 1e-4),
                "seed {s} factor {f} {est:?}: {v} vs {base}"
            );
        }
    }
}
