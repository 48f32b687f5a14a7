//! The permutation null and the bootstrap of strata-sim (`src/null.rs`) against independent
//! references: explicit recomputation on permuted / resampled rows, an f64 reference written
//! from the formulas, the uniform distribution of p-values under independence, and the coverage
//! of bootstrap intervals around a known population value.
//!
//! Exactness tests draw fresh data every run (the seed is printed on failure; set
//! STRATA_TEST_SEED to replay). The calibration tests (uniformity, coverage) are simulations
//! whose pass/fail is itself random, so they use fixed seeds: with a fresh seed they would
//! fail at their stated rate (1%) by chance.
#![allow(clippy::unwrap_used)] // in tests, a failed unwrap is a failed test, with its location
#![allow(clippy::needless_range_loop)] // reference code indexes like the formulas it transcribes

use ndarray::{Array2, ArrayView2};
use strata_data::rng::Rng;
use strata_sim::{
    cka, cka_bootstrap, cka_bootstrap_all_pairs, cka_null_all_pairs, cka_permutation_test,
    measure_bootstrap, measure_bootstrap_all_pairs, measure_null_all_pairs,
    measure_permutation_test, permutation, resample, Basis, BootstrapOptions, Estimator, Kernel,
    LinearCka, Measure, NullOptions, Procrustes, SimError,
};

mod common;
use common::{close, hsic_biased, seed, to64, M};

// ---------- the f64 reference ----------

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

fn sq_dists(x: &M) -> M {
    let n = x.len();
    (0..n)
        .map(|i| {
            (0..n)
                .map(|j| x[i].iter().zip(&x[j]).map(|(a, b)| (a - b) * (a - b)).sum())
                .collect()
        })
        .collect()
}

/// NumPy's median of all `n²` squared distances (Kornblith et al.'s bandwidth).
fn median_sq_dist(x: &M) -> f64 {
    let mut v: Vec<f64> = sq_dists(x).into_iter().flatten().collect();
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    let k = v.len();
    if k % 2 == 1 {
        v[k / 2]
    } else {
        (v[k / 2 - 1] + v[k / 2]) / 2.0
    }
}

/// RBF kernel with the median `m` given (the full sample's, for resamples).
fn gram_rbf(x: &M, t: f64, m: f64) -> M {
    sq_dists(x)
        .iter()
        .map(|r| r.iter().map(|d| (-d / (2.0 * t * t * m)).exp()).collect())
        .collect()
}

/// The unbiased HSIC (Song et al. 2012), straight from its formula.
fn hsic_unbiased(k: &M, l: &M) -> f64 {
    let n = k.len();
    let nf = n as f64;
    let kt = |i: usize, j: usize| if i == j { 0.0 } else { k[i][j] };
    let lt = |i: usize, j: usize| if i == j { 0.0 } else { l[i][j] };
    let (mut tr, mut sk, mut sl, mut cross) = (0.0, 0.0, 0.0, 0.0);
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

/// CKA of `x` and `y` in f64; for RBF the medians are `mx`, `my` (None: their own).
fn ref_cka(
    x: &Array2<f32>,
    y: &Array2<f32>,
    kernel: Kernel,
    est: Estimator,
    medians: Option<(f64, f64)>,
) -> f64 {
    let (x, y) = (to64(x), to64(y));
    let (k, l) = match kernel {
        Kernel::Linear => (gram_linear(&x), gram_linear(&y)),
        Kernel::Rbf { threshold } => {
            let (mx, my) = medians.unwrap_or_else(|| (median_sq_dist(&x), median_sq_dist(&y)));
            (gram_rbf(&x, threshold, mx), gram_rbf(&y, threshold, my))
        }
    };
    let h = match est {
        Estimator::Biased => hsic_biased,
        Estimator::Debiased => hsic_unbiased,
    };
    h(&k, &l) / (h(&k, &k) * h(&l, &l)).sqrt()
}

// ---------- inputs ----------

fn rows(x: &Array2<f32>, idx: &[usize]) -> Array2<f32> {
    Array2::from_shape_fn((idx.len(), x.ncols()), |(i, j)| x[[idx[i], j]])
}

/// `Y = X W + noise`, offset and scaled, so CKA is inside (0, 1).
fn dependent(r: &mut Rng, x: &Array2<f32>, q: usize, noise: f32) -> Array2<f32> {
    let w = r.normal_matrix(x.ncols(), q);
    let e = r.normal_matrix(x.nrows(), q);
    x.dot(&w) + &e * noise + 3.0
}

const KERNELS: [Kernel; 2] = [Kernel::Linear, Kernel::Rbf { threshold: 0.5 }];
const ESTIMATORS: [Estimator; 2] = [Estimator::Biased, Estimator::Debiased];

fn views(v: &[Array2<f32>]) -> Vec<ArrayView2<'_, f32>> {
    v.iter().map(|x| x.view()).collect()
}

// ---------- the fast null is the explicit one ----------

// Tolerance 1e-6 (absolute, on values in [-1, 1]): the inputs are f32 and the products run in
// f32; the largest difference measured over many seeds is about 5e-8.

#[test]
fn fast_null_equals_recomputing_cka_on_permuted_rows() {
    let s = seed();
    let mut r = Rng::new(s);
    let n = 36;
    // Widths against n = 36 cover every path: 3 x 4 (feature space), 30 x 28 (both < n but
    // p q > 16 n: Gram), 50 (p >= n: Gram), and the mixed pairs.
    let a: Vec<Array2<f32>> = [3, 30, 50].iter().map(|&p| r.normal_matrix(n, p)).collect();
    let b: Vec<Array2<f32>> = [4, 28, 45]
        .iter()
        .enumerate()
        .map(|(i, &q)| dependent(&mut r, &a[i], q, 2.0))
        .collect();
    let opts = NullOptions {
        permutations: 4,
        seed: s ^ 1,
    };
    let mut worst = 0f64;
    for kernel in KERNELS {
        for est in ESTIMATORS {
            let m =
                cka_null_all_pairs(&views(&a), Some(&views(&b)), kernel, est, &opts, &|_, _| {})
                    .unwrap();
            for (i, x) in a.iter().enumerate() {
                for (j, y) in b.iter().enumerate() {
                    let t = m.cells[i][j].as_ref().unwrap();
                    let what = format!("seed {s} {kernel:?} {est:?} A{i} B{j}");
                    let obs = cka(x.clone(), y.clone(), kernel, est).unwrap();
                    let obs_ref = ref_cka(x, y, kernel, est, None);
                    assert!(
                        close(t.observed, obs, 1e-6),
                        "{what}: {} vs {obs}",
                        t.observed
                    );
                    assert!(close(t.observed, obs_ref, 1e-6), "{what}: vs reference");
                    assert_eq!(t.null.len(), 4);
                    for d in 0..4 {
                        let yp = rows(y, &permutation(opts.seed, d, n));
                        let want = cka(x.clone(), yp.clone(), kernel, est).unwrap();
                        let want_ref = ref_cka(x, &yp, kernel, est, None);
                        let got = t.null[d];
                        worst = worst.max((got - want_ref).abs());
                        assert!(
                            close(got, want, 1e-6),
                            "{what} draw {d}: {got} vs cka {want}"
                        );
                        assert!(
                            close(got, want_ref, 1e-6),
                            "{what} draw {d}: {got} vs reference {want_ref}"
                        );
                    }
                }
            }
        }
    }
    eprintln!("largest difference from the f64 reference: {worst:.1e}");
}

#[test]
fn self_comparison_null_permutes_the_second_copy() {
    let s = seed();
    let mut r = Rng::new(s);
    let n = 30;
    let x0 = r.normal_matrix(n, 6);
    let a = vec![x0.clone(), dependent(&mut r, &x0, 40, 1.0)];
    let opts = NullOptions {
        permutations: 3,
        seed: s,
    };
    for est in ESTIMATORS {
        let m =
            cka_null_all_pairs(&views(&a), None, Kernel::Linear, est, &opts, &|_, _| {}).unwrap();
        for i in 0..2 {
            for j in 0..2 {
                let t = m.cells[i][j].as_ref().unwrap();
                for d in 0..3 {
                    let yp = rows(&a[j], &permutation(opts.seed, d, n));
                    let want = ref_cka(&a[i], &yp, Kernel::Linear, est, None);
                    assert!(
                        close(t.null[d], want, 2e-5),
                        "seed {s} {est:?} ({i},{j}) draw {d}"
                    );
                }
            }
        }
        // The diagonal's observed value is 1 and no permutation reaches it.
        let t = m.cells[0][0].as_ref().unwrap();
        assert!((t.observed - 1.0).abs() < 1e-5);
    }
}

#[test]
fn measure_null_equals_the_measure_on_permuted_rows() {
    let s = seed();
    let mut r = Rng::new(s);
    let n = 40;
    let x = r.normal_matrix(n, 5);
    let y = dependent(&mut r, &x, 7, 1.5);
    let opts = NullOptions {
        permutations: 5,
        seed: s,
    };
    let measures: [&dyn Measure; 2] = [&LinearCka, &Procrustes];
    for m in measures {
        let t = measure_permutation_test(m, x.view(), y.view(), &opts).unwrap();
        let bx = Basis::new(x.view()).unwrap();
        let obs = m.between(&bx, &Basis::new(y.view()).unwrap()).unwrap();
        assert!(close(t.observed, obs, 1e-9), "{}", m.name());
        for d in 0..5 {
            let yp = rows(&y, &permutation(opts.seed, d, n));
            let want = m.between(&bx, &Basis::new(yp.view()).unwrap()).unwrap();
            assert!(
                close(t.null[d], want, 1e-9),
                "seed {s} {} draw {d}",
                m.name()
            );
        }
    }
    // The generic null of linear CKA is the fast one (biased linear CKA on the same draws).
    let fast =
        cka_permutation_test(x.view(), y.view(), Kernel::Linear, Estimator::Biased, &opts).unwrap();
    let slow = measure_permutation_test(&LinearCka, x.view(), y.view(), &opts).unwrap();
    for (f, g) in fast.null.iter().zip(&slow.null) {
        assert!(close(*f, *g, 2e-5), "seed {s}: {f} vs {g}");
    }
}

// ---------- calibration ----------

/// Kolmogorov-Smirnov distance between permutation p-values and their exact null law, the
/// uniform distribution on `{1, ..., B+1} / (B+1)`, measured at its atoms.
fn ks_discrete_uniform(p: &[f64], b: usize) -> f64 {
    let m = p.len() as f64;
    (1..=b + 1)
        .map(|k| {
            let x = k as f64 / (b + 1) as f64;
            let below = p.iter().filter(|&&v| v <= x + 1e-12).count() as f64 / m;
            (below - x).abs()
        })
        .fold(0.0, f64::max)
}

#[test]
fn p_values_are_uniform_under_independence_and_tiny_under_dependence() {
    // Fixed seed: a simulation whose test fails at its 1% level by chance.
    let mut r = Rng::new(20_240_601);
    let (pairs, b) = (200, 99);
    let crit = 1.63 / (pairs as f64).sqrt();
    let cases: [(&str, Kernel, Estimator, usize, usize); 3] = [
        (
            "linear biased, feature space",
            Kernel::Linear,
            Estimator::Biased,
            5,
            3,
        ),
        (
            "linear debiased, Gram",
            Kernel::Linear,
            Estimator::Debiased,
            40,
            45,
        ),
        (
            "rbf debiased",
            Kernel::Rbf { threshold: 0.5 },
            Estimator::Debiased,
            4,
            6,
        ),
    ];
    for (name, kernel, est, p, q) in cases {
        let mut ps = Vec::with_capacity(pairs);
        for k in 0..pairs {
            let n = 30 + k % 11;
            let x = r.normal_matrix(n, p);
            let y = r.normal_matrix(n, q);
            let opts = NullOptions {
                permutations: b,
                seed: k as u64,
            };
            ps.push(
                cka_permutation_test(x.view(), y.view(), kernel, est, &opts)
                    .unwrap()
                    .p_value,
            );
        }
        assert!(ps.iter().all(|&p| p > 0.0 && p <= 1.0));
        let d = ks_discrete_uniform(&ps, b);
        eprintln!("{name}: KS distance {d:.3} (1% critical value {crit:.3})");
        assert!(d < crit, "{name}: KS {d:.3} >= {crit:.3}");
    }
    // The generic null of a distance (small = similar) is uniform too.
    let mut ps = Vec::with_capacity(pairs);
    for k in 0..pairs {
        let n = 30 + k % 11;
        let (x, y) = (r.normal_matrix(n, 4), r.normal_matrix(n, 3));
        let opts = NullOptions {
            permutations: b,
            seed: k as u64,
        };
        ps.push(
            measure_permutation_test(&Procrustes, x.view(), y.view(), &opts)
                .unwrap()
                .p_value,
        );
    }
    let d = ks_discrete_uniform(&ps, b);
    assert!(d < crit, "procrustes: KS {d:.3} >= {crit:.3}");

    // Strong dependence: no permutation comes near, so p is its floor 1 / (B + 1).
    for k in 0..5 {
        let x = r.normal_matrix(40, 6);
        let y = dependent(&mut r, &x, 8, 0.05);
        let opts = NullOptions {
            permutations: b,
            seed: k,
        };
        for kernel in KERNELS {
            for est in ESTIMATORS {
                let t = cka_permutation_test(x.view(), y.view(), kernel, est, &opts).unwrap();
                assert_eq!(t.p_value, 0.01, "{kernel:?} {est:?}");
                assert!(t.observed > t.null_q95 && t.z.unwrap() > 3.0);
                assert!((t.corrected - (t.observed - t.null_mean)).abs() < 1e-15);
            }
        }
        for m in [&LinearCka as &dyn Measure, &Procrustes] {
            let t = measure_permutation_test(m, x.view(), y.view(), &opts).unwrap();
            assert_eq!(t.p_value, 0.01, "{}", m.name());
        }
        let t = measure_permutation_test(&Procrustes, x.view(), y.view(), &opts).unwrap();
        assert!(
            t.observed < t.null_q95,
            "a distance's critical value is its low quantile"
        );
    }
}

#[test]
fn bootstrap_draws_are_the_statistic_on_resampled_rows() {
    let s = seed();
    let mut r = Rng::new(s);
    let n = 32;
    let a: Vec<Array2<f32>> = [3, 40].iter().map(|&p| r.normal_matrix(n, p)).collect();
    let b: Vec<Array2<f32>> = vec![dependent(&mut r, &a[0], 4, 1.0), r.normal_matrix(n, 29)];
    let opts = BootstrapOptions::new(3, s);
    for kernel in KERNELS {
        for est in ESTIMATORS {
            let m = cka_bootstrap_all_pairs(
                &views(&a),
                Some(&views(&b)),
                kernel,
                est,
                &opts,
                &|_, _| {},
            )
            .unwrap();
            for (i, x) in a.iter().enumerate() {
                for (j, y) in b.iter().enumerate() {
                    let c = m.cells[i][j].as_ref().unwrap();
                    // The RBF bandwidth stays the full sample's.
                    let med = (median_sq_dist(&to64(x)), median_sq_dist(&to64(y)));
                    for d in 0..3 {
                        let idx = resample(opts.seed, d, n);
                        let want = ref_cka(&rows(x, &idx), &rows(y, &idx), kernel, est, Some(med));
                        assert!(
                            close(c.draws[d], want, 5e-5),
                            "seed {s} {kernel:?} {est:?} ({i},{j}) draw {d}: {} vs {want}",
                            c.draws[d]
                        );
                    }
                }
            }
        }
    }
    // The generic bootstrap of linear CKA agrees with the CKA engine's, draw by draw.
    let (x, y) = (&a[0], &b[0]);
    let fast = cka_bootstrap(x.view(), y.view(), Kernel::Linear, Estimator::Biased, &opts).unwrap();
    let slow = measure_bootstrap(&LinearCka, x.view(), y.view(), &opts).unwrap();
    for (f, g) in fast.draws.iter().zip(&slow.draws) {
        assert!(close(*f, *g, 2e-5), "seed {s}: {f} vs {g}");
    }
}

#[test]
fn bootstrap_intervals_cover_the_population_value_at_their_nominal_rate() {
    // X ~ N(0, I_2), Y = X + σE: population linear CKA = ‖Σxy‖² / (‖Σxx‖ ‖Σyy‖) = 1/(1 + σ²),
    // 0.5 for σ = 1. With n = 300 examples and 2 features the biased estimator's O(p/n) bias
    // is small against its spread, the setting where a percentile interval is appropriate.
    // Fixed seed: the coverage of 300 intervals is itself random (binomial sd 1.3 points).
    let mut r = Rng::new(7_919);
    let (sims, n) = (300, 300);
    let truth = 0.5;
    let mut covered = 0;
    let mut covered80 = 0;
    for k in 0..sims {
        let x = r.normal_matrix(n, 2);
        let y = &x + &r.normal_matrix(n, 2);
        let i95 = cka_bootstrap(
            x.view(),
            y.view(),
            Kernel::Linear,
            Estimator::Biased,
            &BootstrapOptions::new(400, k),
        )
        .unwrap();
        covered += (i95.low <= truth && truth <= i95.high) as usize;
        let opts80 = BootstrapOptions {
            resamples: 400,
            confidence: 0.8,
            seed: k,
        };
        let i80 = cka_bootstrap(
            x.view(),
            y.view(),
            Kernel::Linear,
            Estimator::Biased,
            &opts80,
        )
        .unwrap();
        covered80 += (i80.low <= truth && truth <= i80.high) as usize;
        assert!(i80.low >= i95.low && i80.high <= i95.high);
        assert_eq!(i95.resamples, 400);
    }
    let rate = covered as f64 / sims as f64;
    let rate80 = covered80 as f64 / sims as f64;
    eprintln!("coverage: {rate} of the 95% intervals, {rate80} of the 80% ones");
    // Nominal ± about 3 binomial sds (1.3 points at 95%, 2.3 at 80%).
    assert!(
        (0.91..=0.99).contains(&rate),
        "95% intervals covered {rate}"
    );
    assert!(
        (0.73..=0.87).contains(&rate80),
        "80% intervals covered {rate80}"
    );
}

// ---------- reproducibility and errors ----------

#[test]
fn same_seed_same_result_and_any_thread_count_gives_the_same_bits() {
    let s = seed();
    let mut r = Rng::new(s);
    let n = 300;
    let a: Vec<Array2<f32>> = [8, 120, 320]
        .iter()
        .map(|&p| r.normal_matrix(n, p))
        .collect();
    let b: Vec<Array2<f32>> = [(0, 6), (1, 200), (2, 10)]
        .iter()
        .map(|&(i, q)| dependent(&mut r, &a[i], q, 3.0))
        .collect();
    let (va, vb) = (views(&a), views(&b));
    let null = NullOptions {
        permutations: 24,
        seed: 11,
    };
    let boot = BootstrapOptions::new(12, 11);
    let run = || {
        let mut out = Vec::new();
        for kernel in KERNELS {
            for est in ESTIMATORS {
                let m = cka_null_all_pairs(&va, Some(&vb), kernel, est, &null, &|_, _| {}).unwrap();
                out.push(format!("{:?}", m.cells));
                let m = cka_null_all_pairs(&va, None, kernel, est, &null, &|_, _| {}).unwrap();
                out.push(format!("{:?}", m.cells));
                let m = cka_bootstrap_all_pairs(&va, Some(&vb), kernel, est, &boot, &|_, _| {})
                    .unwrap();
                out.push(format!("{:?}", m.cells));
            }
        }
        let small = [va[0], va[2]];
        let m =
            measure_null_all_pairs(&Procrustes, &small, Some(&vb[..1]), &null, &|_, _| {}).unwrap();
        out.push(format!("{:?}", m.cells));
        let m = measure_bootstrap_all_pairs(&LinearCka, &small, None, &boot, &|_, _| {}).unwrap();
        out.push(format!("{:?}", m.cells));
        out
    };
    let pool = |t: usize| {
        rayon::ThreadPoolBuilder::new()
            .num_threads(t)
            .build()
            .unwrap()
    };
    let one = pool(1).install(run);
    let two = pool(2).install(run);
    let again = pool(2).install(run);
    for (k, ((x, y), z)) in one.iter().zip(&two).zip(&again).enumerate() {
        assert_eq!(x, y, "seed {s}: result {k} differs between 1 and 2 threads");
        assert_eq!(y, z, "seed {s}: result {k} differs between two runs");
    }
    // Another seed, other draws.
    let other = NullOptions { seed: 12, ..null };
    let t1 = cka_permutation_test(va[0], vb[0], Kernel::Linear, Estimator::Biased, &null).unwrap();
    let t2 = cka_permutation_test(va[0], vb[0], Kernel::Linear, Estimator::Biased, &other).unwrap();
    assert_eq!(t1.observed, t2.observed);
    assert_ne!(t1.null, t2.null);
}

#[test]
fn draws_are_permutations_and_resamples() {
    let s = seed();
    for n in [0, 1, 2, 17, 1000] {
        for d in 0..5 {
            let mut p = permutation(s, d, n);
            p.sort_unstable();
            assert_eq!(p, (0..n).collect::<Vec<_>>());
            let idx = resample(s, d, n);
            assert!(idx.len() == n && idx.iter().all(|&i| i < n));
        }
    }
    assert_ne!(permutation(s, 0, 50), permutation(s, 1, 50));
    assert_ne!(permutation(s, 0, 50), permutation(s ^ 1, 0, 50));
}

#[test]
fn bad_options_mismatched_examples_and_undefined_values_are_errors() {
    let mut r = Rng::new(seed());
    let x = r.normal_matrix(20, 3);
    let y = r.normal_matrix(20, 4);
    let short = r.normal_matrix(19, 4);
    let none = NullOptions {
        permutations: 0,
        seed: 1,
    };
    let ok = NullOptions {
        permutations: 9,
        seed: 1,
    };
    let (k, e) = (Kernel::Linear, Estimator::Biased);
    let invalid = |r: Result<(), SimError>| matches!(r, Err(SimError::InvalidOption(_)));
    assert!(invalid(
        cka_permutation_test(x.view(), y.view(), k, e, &none).map(|_| ())
    ));
    assert!(invalid(
        measure_permutation_test(&LinearCka, x.view(), y.view(), &none).map(|_| ())
    ));
    for bad in [0.0, 1.0, -0.5, 1.5, f64::NAN] {
        let o = BootstrapOptions {
            resamples: 10,
            confidence: bad,
            seed: 1,
        };
        assert!(
            invalid(cka_bootstrap(x.view(), y.view(), k, e, &o).map(|_| ())),
            "{bad}"
        );
        assert!(invalid(
            measure_bootstrap(&Procrustes, x.view(), y.view(), &o).map(|_| ())
        ));
    }
    let zero = BootstrapOptions::new(0, 1);
    assert!(invalid(
        cka_bootstrap(x.view(), y.view(), k, e, &zero).map(|_| ())
    ));
    let e_msg = cka_bootstrap(x.view(), y.view(), k, e, &zero)
        .unwrap_err()
        .to_string();
    assert!(e_msg.contains("at least 1 resample"), "{e_msg}");

    let mismatch =
        |r: Result<(), SimError>| matches!(r, Err(SimError::MismatchedExamples { a: 20, b: 19 }));
    assert!(mismatch(
        cka_permutation_test(x.view(), short.view(), k, e, &ok).map(|_| ())
    ));
    assert!(mismatch(
        cka_bootstrap(x.view(), short.view(), k, e, &BootstrapOptions::new(5, 1)).map(|_| ())
    ));
    assert!(mismatch(
        measure_permutation_test(&Procrustes, x.view(), short.view(), &ok).map(|_| ())
    ));
    assert!(mismatch(
        cka_null_all_pairs(
            &[x.view()],
            Some(&[y.view(), short.view()]),
            k,
            e,
            &ok,
            &|_, _| {}
        )
        .map(|_| ())
    ));

    // A constant layer: its cells are undefined and named, the others are computed.
    let constant = Array2::<f32>::from_elem((20, 2), 3.0);
    let m = cka_null_all_pairs(
        &[x.view(), constant.view()],
        Some(&[y.view()]),
        k,
        e,
        &ok,
        &|_, _| {},
    )
    .unwrap();
    assert!(m.cells[0][0].is_some() && m.cells[1][0].is_none());
    assert!(
        m.notes.iter().any(|n| n.contains("A layer 1")),
        "{:?}",
        m.notes
    );
    assert!(matches!(
        cka_permutation_test(constant.view(), y.view(), k, e, &ok),
        Err(SimError::Undefined(_))
    ));
    // Too few examples for the debiased estimator is an error, not a panic.
    let tiny = r.normal_matrix(3, 2);
    assert!(matches!(
        cka_permutation_test(tiny.view(), tiny.view(), k, Estimator::Debiased, &ok),
        Err(SimError::TooFewExamples { .. })
    ));
}
