//! The analytic (moments) permutation null of linear CKA (`src/moments.rs`) and the special
//! functions behind it (`src/special.rs`), against independent references: a full enumeration
//! of the `n!` permutations at `n = 6, 7`, 20,000 seeded draws of the draws null at `n = 40`,
//! the uniformity of p-values under independence, and closed forms of the incomplete gamma.
//!
//! Exactness tests draw fresh data every run (the seed is printed; set STRATA_TEST_SEED to
//! replay). The calibration test (uniformity) is a simulation whose pass/fail is itself random
//! and whose p-values are approximate by design, so it uses a fixed seed.
#![allow(clippy::unwrap_used)] // in tests, a failed unwrap is a failed test, with its location
#![allow(clippy::needless_range_loop)] // reference code indexes like the formulas it transcribes

use ndarray::{Array2, ArrayView2};
use strata_data::rng::Rng;
use strata_sim::{
    cka_null_moments, cka_null_moments_all_pairs, cka_permutation_test, ln_gamma,
    normal_upper_tail, pearson3_upper_quantile, pearson3_upper_tail, regularized_gamma_p,
    regularized_gamma_q, Estimator, Kernel, NullMethod, NullOptions, SimError,
};

#[allow(dead_code)] // the helpers the other test files share
mod common;
use common::{seed, to64, M};

// ---------- the f64 reference: enumerate every permutation ----------

/// `H X Xᵀ H` in f64.
fn centered_gram(x: &Array2<f32>) -> M {
    let x = to64(x);
    let (n, p) = (x.len(), x[0].len());
    let means: Vec<f64> = (0..p)
        .map(|j| x.iter().map(|r| r[j]).sum::<f64>() / n as f64)
        .collect();
    let xc: M = x
        .iter()
        .map(|r| r.iter().zip(&means).map(|(v, m)| v - m).collect())
        .collect();
    (0..n)
        .map(|i| {
            (0..n)
                .map(|j| xc[i].iter().zip(&xc[j]).map(|(a, b)| a * b).sum())
                .collect()
        })
        .collect()
}

/// Heap's algorithm: call `f` on every permutation of `0..n`.
fn each_permutation(n: usize, f: &mut dyn FnMut(&[usize])) {
    let mut p: Vec<usize> = (0..n).collect();
    let mut c = vec![0usize; n];
    f(&p);
    let mut i = 0;
    while i < n {
        if c[i] < i {
            if i % 2 == 0 {
                p.swap(0, i);
            } else {
                p.swap(c[i], i);
            }
            f(&p);
            c[i] += 1;
            i = 0;
        } else {
            c[i] = 0;
            i += 1;
        }
    }
}

/// Mean, variance and third central moment of RV over all `n!` permutations of Y's rows, and
/// the identity's RV.
fn enumerate_moments(x: &Array2<f32>, y: &Array2<f32>) -> (f64, f64, f64, f64) {
    let (k, l) = (centered_gram(x), centered_gram(y));
    let n = k.len();
    let frob = |m: &M| m.iter().flatten().map(|v| v * v).sum::<f64>();
    let norm = (frob(&k) * frob(&l)).sqrt();
    let mut vals = Vec::new();
    each_permutation(n, &mut |pi| {
        let mut t = 0.0;
        for i in 0..n {
            for j in 0..n {
                t += k[i][j] * l[pi[i]][pi[j]];
            }
        }
        vals.push(t / norm);
    });
    let identity: f64 = (0..n)
        .map(|i| (0..n).map(|j| k[i][j] * l[i][j]).sum::<f64>())
        .sum::<f64>()
        / norm;
    let b = vals.len() as f64;
    let mean = vals.iter().sum::<f64>() / b;
    let var = vals.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / b;
    let m3 = vals.iter().map(|v| (v - mean).powi(3)).sum::<f64>() / b;
    (mean, var, m3, identity)
}

/// An `n x p` Gaussian layer, offset, with row 0 scaled by `heavy` (an outlier example, so the
/// diagonal terms of the formulas matter).
fn layer(r: &mut Rng, n: usize, p: usize, heavy: f32) -> Array2<f32> {
    let mut x = r.normal_matrix(n, p) + 2.0;
    x.row_mut(0).mapv_inplace(|v| v * heavy);
    x
}

fn rel(a: f64, b: f64, scale: f64) -> f64 {
    (a - b).abs() / scale.max(f64::MIN_POSITIVE)
}

#[test]
fn moments_equal_full_enumeration_at_n_6_and_7() {
    let s = seed();
    eprintln!("seed {s}");
    let mut r = Rng::new(s);
    let mut worst = (0f64, 0f64, 0f64);
    for n in [6usize, 7] {
        // (p, q, heavy row factor): p = 1, p > n, p = q, and outlier rows.
        for &(p, q, heavy) in &[
            (1, 1, 1.0),
            (1, 3, 8.0),
            (2, 3, 1.0),
            (3, 3, 12.0),
            (9, 2, 1.0),
            (2, 10, 6.0),
            (12, 15, 10.0),
        ] {
            let x = layer(&mut r, n, p, heavy);
            let y = layer(&mut r, n, q, if heavy > 1.0 { 1.0 } else { 5.0 });
            let (mean, var, m3, obs) = enumerate_moments(&x, &y);
            let t =
                cka_null_moments(x.view(), y.view(), Kernel::Linear, Estimator::Biased).unwrap();
            let what = format!("seed {s} n {n} p {p} q {q} heavy {heavy}");
            let sd3 = var.powf(1.5);
            let got_m3 = t.null_skewness.unwrap() * t.null_sd.powi(3);
            let e = (
                rel(t.null_mean, mean, mean.abs()),
                rel(t.null_sd * t.null_sd, var, var),
                rel(got_m3, m3, m3.abs().max(sd3)),
            );
            eprintln!(
                "{what}: mean {mean:.6} var {var:.3e} m3 {m3:.3e}; rel. errors {:.1e} {:.1e} {:.1e}",
                e.0, e.1, e.2
            );
            assert!(e.0 < 1e-9, "{what}: mean {} vs {mean}", t.null_mean);
            assert!(
                e.1 < 1e-9,
                "{what}: variance {} vs {var}",
                t.null_sd.powi(2)
            );
            assert!(e.2 < 1e-9, "{what}: third moment {got_m3} vs {m3}");
            assert!((t.observed - obs).abs() < 1e-5, "{what}: observed");
            assert_eq!(t.permutations, 0);
            assert!(t.null.is_empty());
            worst = (worst.0.max(e.0), worst.1.max(e.1), worst.2.max(e.2));
        }
    }
    eprintln!(
        "largest relative errors: mean {:.1e}, variance {:.1e}, third moment {:.1e}",
        worst.0, worst.1, worst.2
    );
}

// ---------- against the draws null ----------

#[test]
fn moments_agree_with_20000_draws_at_n_40() {
    let s = seed();
    eprintln!("seed {s}");
    let mut r = Rng::new(s);
    let n = 40;
    // Feature-space (5, 3), Gram (60 >= n) and heavy rows.
    for &(p, q, heavy) in &[(5, 3, 1.0), (4, 60, 6.0), (1, 2, 10.0)] {
        let x = layer(&mut r, n, p, heavy);
        let y = layer(&mut r, n, q, 1.0);
        let t = cka_null_moments(x.view(), y.view(), Kernel::Linear, Estimator::Biased).unwrap();
        let draws = cka_permutation_test(
            x.view(),
            y.view(),
            Kernel::Linear,
            Estimator::Biased,
            &NullOptions {
                permutations: 20_000,
                seed: s ^ 7,
            },
        )
        .unwrap();
        let v = &draws.null;
        let b = v.len() as f64;
        let mean = v.iter().sum::<f64>() / b;
        let c2: Vec<f64> = v.iter().map(|x| (x - mean).powi(2)).collect();
        let c3: Vec<f64> = v.iter().map(|x| (x - mean).powi(3)).collect();
        let var = c2.iter().sum::<f64>() / b;
        let m3 = c3.iter().sum::<f64>() / b;
        let se =
            |c: &[f64], m: f64| (c.iter().map(|x| (x - m).powi(2)).sum::<f64>() / b / b).sqrt();
        let (se_mean, se_var, se_m3) = ((var / b).sqrt(), se(&c2, var), se(&c3, m3));
        let want_var = t.null_sd.powi(2);
        let want_m3 = t.null_skewness.unwrap() * t.null_sd.powi(3);
        let what = format!("seed {s} p {p} q {q} heavy {heavy}");
        let zs = (
            (t.null_mean - mean) / se_mean,
            (want_var - var) / se_var,
            (want_m3 - m3) / se_m3,
        );
        eprintln!(
            "{what}: mean {:.5} vs draws {mean:.5}, var {want_var:.3e} vs {var:.3e}, skewness \
             {:.3} vs {:.3}; in standard errors {:.1} {:.1} {:.1}",
            t.null_mean,
            t.null_skewness.unwrap(),
            m3 / var.powf(1.5),
            zs.0,
            zs.1,
            zs.2
        );
        assert!(zs.0.abs() < 4.0, "{what}: mean");
        assert!(zs.1.abs() < 4.0, "{what}: variance");
        assert!(zs.2.abs() < 4.0, "{what}: third moment");
        // The observed values are the same; the p-values agree roughly where the null is not
        // dominated by an outlier example (with a heavy row a permutation null is far from a
        // smooth three-moment fit: Pearson III is an approximation; 0.03-0.08 apart measured).
        assert!(
            (t.observed - draws.observed).abs() < 1e-6,
            "{what}: observed"
        );
        eprintln!("{what}: p {:.4} vs draws {:.4}", t.p_value, draws.p_value);
        if heavy == 1.0 {
            assert!(
                (t.p_value - draws.p_value).abs() < 0.05,
                "{what}: p {} vs draws {}",
                t.p_value,
                draws.p_value
            );
        }
    }
}

// ---------- calibration ----------

/// Kolmogorov-Smirnov distance of sorted values from the uniform distribution on [0, 1].
fn ks_uniform(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    let m = v.len() as f64;
    v.iter()
        .enumerate()
        .map(|(i, &x)| (x - i as f64 / m).abs().max(((i + 1) as f64 / m - x).abs()))
        .fold(0.0, f64::max)
}

#[test]
fn p_values_are_uniform_under_independence_and_small_under_dependence() {
    let mut r = Rng::new(20_240_611);
    let n = 30;
    let mut ps = Vec::new();
    for k in 0..300 {
        let (p, q) = (1 + k % 7, 2 + k % 5);
        let x = r.normal_matrix(n, p);
        let y = r.normal_matrix(n, q);
        let t = cka_null_moments(x.view(), y.view(), Kernel::Linear, Estimator::Biased).unwrap();
        ps.push(t.p_value);
    }
    let d = ks_uniform(ps.clone());
    let below = ps.iter().filter(|&&p| p <= 0.05).count();
    eprintln!("KS distance {d:.4} (1% critical value 0.094); {below}/300 p <= 0.05");
    assert!(d < 1.63 / 300f64.sqrt(), "KS distance {d}");

    let s = seed();
    let mut r = Rng::new(s);
    for _ in 0..5 {
        let x = r.normal_matrix(n, 4);
        let w = r.normal_matrix(4, 6);
        let y = x.dot(&w) + r.normal_matrix(n, 6) * 0.1;
        let t = cka_null_moments(x.view(), y.view(), Kernel::Linear, Estimator::Biased).unwrap();
        eprintln!(
            "seed {s}: dependent CKA {:.3}, p {:.2e}",
            t.observed, t.p_value
        );
        assert!(t.p_value < 0.01, "seed {s}: p {}", t.p_value);
        assert!(t.observed > t.null_q95);
    }
}

// ---------- all pairs, edge cases ----------

fn same_test(a: &strata_sim::PermutationTest, b: &strata_sim::PermutationTest) {
    let close = |x: f64, y: f64| (x - y).abs() <= 1e-9 * (1.0 + y.abs());
    assert!(close(a.observed, b.observed), "{a:?} vs {b:?}");
    assert!(close(a.null_mean, b.null_mean), "{a:?} vs {b:?}");
    assert!(close(a.null_sd, b.null_sd), "{a:?} vs {b:?}");
    assert!(close(a.p_value, b.p_value), "{a:?} vs {b:?}");
    assert!(close(a.null_q95, b.null_q95), "{a:?} vs {b:?}");
    assert!(
        close(a.null_skewness.unwrap(), b.null_skewness.unwrap()),
        "{a:?} vs {b:?}"
    );
}

#[test]
fn all_pairs_match_single_pairs_and_note_constant_layers() {
    let s = seed();
    eprintln!("seed {s}");
    let mut r = Rng::new(s);
    let n = 25;
    let a = [r.normal_matrix(n, 3), r.normal_matrix(n, 40)];
    let mut b = vec![r.normal_matrix(n, 2), Array2::from_elem((n, 4), 1.5f32)];
    b.push(a[0].dot(&r.normal_matrix(3, 5)));
    let va: Vec<ArrayView2<f32>> = a.iter().map(|x| x.view()).collect();
    let vb: Vec<ArrayView2<f32>> = b.iter().map(|x| x.view()).collect();
    let m = cka_null_moments_all_pairs(
        &va,
        Some(&vb),
        Kernel::Linear,
        Estimator::Biased,
        &|_, _| {},
    )
    .unwrap();
    assert_eq!(m.method, NullMethod::Moments);
    assert_eq!(m.options.permutations, 0);
    for i in 0..2 {
        assert!(m.cells[i][1].is_none(), "constant layer");
        for j in [0, 2] {
            let c = m.cells[i][j].as_ref().unwrap();
            let one = cka_null_moments(a[i].view(), b[j].view(), Kernel::Linear, Estimator::Biased)
                .unwrap();
            same_test(c, &one);
        }
    }
    assert!(!m.notes.is_empty());
    // A with itself.
    let same = cka_null_moments_all_pairs(&va, None, Kernel::Linear, Estimator::Biased, &|_, _| {})
        .unwrap();
    let one =
        cka_null_moments(a[0].view(), a[1].view(), Kernel::Linear, Estimator::Biased).unwrap();
    same_test(same.cells[0][1].as_ref().unwrap(), &one);
    // A constant layer alone: undefined.
    let e = cka_null_moments(a[0].view(), b[1].view(), Kernel::Linear, Estimator::Biased);
    assert!(matches!(e, Err(SimError::Undefined(_))), "{e:?}");
}

#[test]
fn refuses_other_kernels_estimators_and_fewer_than_4_examples() {
    let mut r = Rng::new(seed());
    let (x, y) = (r.normal_matrix(10, 3), r.normal_matrix(10, 2));
    for (k, e) in [
        (Kernel::Rbf { threshold: 0.5 }, Estimator::Biased),
        (Kernel::Linear, Estimator::Debiased),
    ] {
        let got = cka_null_moments(x.view(), y.view(), k, e);
        assert!(matches!(got, Err(SimError::InvalidOption(_))), "{got:?}");
    }
    let (x, y) = (r.normal_matrix(3, 3), r.normal_matrix(3, 2));
    let got = cka_null_moments(x.view(), y.view(), Kernel::Linear, Estimator::Biased);
    assert!(matches!(got, Err(SimError::InvalidOption(_))), "{got:?}");
    // n = 4 and 5: mean and variance, no skewness, a normal p-value.
    for n in [4, 5] {
        let (x, y) = (r.normal_matrix(n, 1), r.normal_matrix(n, 2));
        let t = cka_null_moments(x.view(), y.view(), Kernel::Linear, Estimator::Biased).unwrap();
        assert!(t.null_skewness.is_none());
        assert!(t.p_value > 0.0 && t.p_value <= 1.0);
        let z = t.z.unwrap();
        assert!((t.p_value - normal_upper_tail(z)).abs() < 1e-15);
    }
}

// ---------- special functions against closed forms ----------

fn factorial_ln(k: u32) -> f64 {
    (1..=k).map(|j| (j as f64).ln()).sum()
}

/// `Q(k, x)` for integer `k`: `P(Poisson(x) <= k - 1) = e^{-x} Σ_{j<k} x^j / j!`, in logs.
fn q_integer(k: u32, x: f64) -> f64 {
    (0..k)
        .map(|j| (j as f64 * x.ln() - x - factorial_ln(j)).exp())
        .sum()
}

#[test]
fn incomplete_gamma_matches_closed_forms() {
    // ln Γ.
    let pi = std::f64::consts::PI;
    for (x, want) in [
        (0.5, 0.5 * pi.ln()),
        (1.0, 0.0),
        (2.0, 0.0),
        (10.0, factorial_ln(9)),
        (100.0, factorial_ln(99)),
        (0.1, 2.252_712_651_734_206),
        (1.5, (0.5 * pi.sqrt()).ln()),
    ] {
        let got = ln_gamma(x);
        assert!(
            (got - want).abs() < 1e-13 * (1.0 + want.abs()),
            "ln Γ({x}): {got} vs {want}"
        );
    }
    // Exponential CDF: P(1, x) = 1 - e^{-x}; Q(1, x) = e^{-x}, relative in the far tail.
    for x in [1e-8, 0.01, 0.5, 1.0, 2.0, 10.0, 50.0, 300.0] {
        let p = regularized_gamma_p(1.0, x);
        let q = regularized_gamma_q(1.0, x);
        let want_p = -(-x).exp_m1();
        assert!(
            (p - want_p).abs() <= 1e-13 * want_p,
            "P(1, {x}): {p} vs {want_p}"
        );
        let want_q = (-x).exp();
        assert!(
            (q - want_q).abs() <= 1e-12 * want_q,
            "Q(1, {x}): {q} vs {want_q}"
        );
    }
    // Chi-square with 2k degrees of freedom: Q(k, x) = Poisson CDF, k up to 1000.
    for k in [2u32, 3, 5, 10, 50, 200, 1000] {
        for f in [0.3, 0.8, 1.0, 1.2, 2.0] {
            let x = k as f64 * f;
            let want = q_integer(k, x);
            let got = regularized_gamma_q(k as f64, x);
            assert!(
                (got - want).abs() <= 1e-10 * want.max(1e-300) + 1e-15,
                "Q({k}, {x}): {got} vs {want}"
            );
            let gp = regularized_gamma_p(k as f64, x);
            assert!((gp + got - 1.0).abs() < 1e-13, "P + Q at ({k}, {x})");
        }
    }
    // Half-integer shapes: Q(1/2, x) = erfc(√x) (reference values of erfc).
    for (y, erfc) in [
        (0.5f64, 0.479_500_122_186_953_5),
        (1.0, 0.157_299_207_050_285_13),
        (2.0, 4.677_734_981_047_266e-3),
        (4.0, 1.541_725_790_028_002e-8),
    ] {
        let got = regularized_gamma_q(0.5, y * y);
        assert!(
            (got - erfc).abs() <= 1e-12 * erfc,
            "erfc({y}): {got} vs {erfc}"
        );
    }
    // The recurrence P(a + 1, x) = P(a, x) - x^a e^{-x} / Γ(a + 1) at a non-integer shape.
    for (a, x) in [(0.3, 0.2), (2.7, 3.1), (7.5, 4.0), (40.25, 45.0)] {
        let lhs = regularized_gamma_p(a + 1.0, x);
        let rhs = regularized_gamma_p(a, x) - (a * f64::ln(x) - x - ln_gamma(a + 1.0)).exp();
        assert!(
            (lhs - rhs).abs() < 1e-13,
            "recurrence at ({a}, {x}): {lhs} vs {rhs}"
        );
    }
    // Invalid arguments.
    assert!(regularized_gamma_p(0.0, 1.0).is_nan());
    assert!(regularized_gamma_q(1.0, -1.0).is_nan());
    assert_eq!(regularized_gamma_p(2.0, 0.0), 0.0);
}

#[test]
fn pearson_iii_tail_and_quantile_match_closed_forms() {
    // g = 2: Z = G - 1 with G exponential: P(Z >= z) = e^{-(z + 1)}; 95% quantile ln 20 - 1.
    for z in [-0.9, 0.0, 1.0, 3.0, 10.0] {
        let want = (-(z + 1.0f64)).exp();
        let got = pearson3_upper_tail(z, Some(2.0));
        assert!(
            (got - want).abs() <= 1e-13 * want,
            "g = 2, z = {z}: {got} vs {want}"
        );
    }
    assert_eq!(pearson3_upper_tail(-1.5, Some(2.0)), 1.0);
    let q = pearson3_upper_quantile(0.05, Some(2.0));
    assert!((q - (20f64.ln() - 1.0)).abs() < 1e-12, "quantile {q}");
    // g = -2: Z = 1 - G: P(Z >= z) = P(G <= 1 - z) = 1 - e^{-(1 - z)}; 0 above z = 1.
    for z in [-3.0f64, -1.0, 0.0, 0.5, 0.99] {
        let want = -(-(1.0 - z)).exp_m1();
        let got = pearson3_upper_tail(z, Some(-2.0));
        assert!(
            (got - want).abs() <= 1e-13 * want,
            "g = -2, z = {z}: {got} vs {want}"
        );
    }
    assert_eq!(pearson3_upper_tail(1.5, Some(-2.0)), 0.0);
    // No skewness: the normal, 1.6449 for the 95% quantile; tiny skewness: close to it.
    let z95 = 1.644_853_626_951_472_2;
    assert!((pearson3_upper_quantile(0.05, None) - z95).abs() < 1e-12);
    assert!((normal_upper_tail(z95) - 0.05).abs() < 1e-15);
    assert!((normal_upper_tail(-z95) - 0.95).abs() < 1e-15);
    // Small skewness: the first Edgeworth term, Q(z) + g (z² - 1) φ(z) / 6, up to O(g²).
    let (z, g) = (2.0f64, 1e-3);
    let phi = (-z * z / 2.0).exp() / (2.0 * std::f64::consts::PI).sqrt();
    let edgeworth = normal_upper_tail(z) + g * (z * z - 1.0) * phi / 6.0;
    let near = pearson3_upper_tail(z, Some(g));
    assert!((near - edgeworth).abs() < 1e-6, "{near} vs {edgeworth}");
}
