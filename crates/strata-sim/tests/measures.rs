//! The baseline measures (CCA, SVCCA, PWCCA, linear regression, Procrustes, linear HSIC and
//! CKA) against an f64 reference written here from the textbook formulas (covariance inverse
//! square roots, normal equations, the explicit centering matrix), with its own Jacobi
//! eigensolver and one-sided Jacobi SVD, on fresh random inputs; plus invariances, identities
//! and edge cases.
//!
//! Each test draws a new seed (printed on failure); set STRATA_TEST_SEED to replay one.
#![allow(clippy::unwrap_used)] // in tests, a failed unwrap is a failed test, with its location
#![allow(clippy::needless_range_loop)] // reference code indexes like the formulas it transcribes

use ndarray::{concatenate, s, Array2, Axis};
use strata_data::rng::Rng;
use strata_sim::{
    canonical_correlations, cka, measure_by_name, pwcca_weights, similarity_matrix, Basis, Cca,
    Estimator, Kernel, LinearCka, LinearHsic, LinearRegression, Measure, Procrustes, Pwcca,
    SimError, Svcca, MEASURE_NAMES,
};

mod common;
use common::{close, hsic_biased, matmul, seed, to64, M};

// ---------- the reference (f64, written from the formulas) ----------

/// Column-centered copy in f64 (plain mean subtraction).
fn centered(x: &Array2<f32>) -> M {
    let (n, p) = x.dim();
    let means: Vec<f64> = (0..p)
        .map(|j| (0..n).map(|i| x[[i, j]] as f64).sum::<f64>() / n as f64)
        .collect();
    (0..n)
        .map(|i| (0..p).map(|j| x[[i, j]] as f64 - means[j]).collect())
        .collect()
}

fn transpose(a: &M) -> M {
    let (n, m) = (a.len(), a[0].len());
    (0..m).map(|j| (0..n).map(|i| a[i][j]).collect()).collect()
}

fn frob2(a: &M) -> f64 {
    a.iter().flatten().map(|v| v * v).sum()
}

/// Cyclic Jacobi eigensolver for a symmetric matrix: (eigenvalues, eigenvectors as columns).
fn jacobi_eigen(a: &M) -> (Vec<f64>, M) {
    let n = a.len();
    let mut a = a.clone();
    let mut v: M = (0..n)
        .map(|i| (0..n).map(|j| (i == j) as u8 as f64).collect())
        .collect();
    for _sweep in 0..100 {
        let off: f64 = (0..n)
            .flat_map(|i| (0..n).filter(move |&j| j != i).map(move |j| (i, j)))
            .map(|(i, j)| a[i][j] * a[i][j])
            .sum();
        if off <= 1e-30 * frob2(&a) {
            break;
        }
        for p in 0..n {
            for q in p + 1..n {
                if a[p][q] == 0.0 {
                    continue;
                }
                let theta = (a[q][q] - a[p][p]) / (2.0 * a[p][q]);
                let t = theta.signum() / (theta.abs() + (theta * theta + 1.0).sqrt());
                let c = 1.0 / (t * t + 1.0).sqrt();
                let s = t * c;
                for k in 0..n {
                    let (akp, akq) = (a[k][p], a[k][q]);
                    a[k][p] = c * akp - s * akq;
                    a[k][q] = s * akp + c * akq;
                }
                for k in 0..n {
                    let (apk, aqk) = (a[p][k], a[q][k]);
                    a[p][k] = c * apk - s * aqk;
                    a[q][k] = s * apk + c * aqk;
                }
                for k in 0..n {
                    let (vkp, vkq) = (v[k][p], v[k][q]);
                    v[k][p] = c * vkp - s * vkq;
                    v[k][q] = s * vkp + c * vkq;
                }
            }
        }
    }
    ((0..n).map(|i| a[i][i]).collect(), v)
}

/// `S^{-1/2}` of a symmetric positive definite matrix.
fn inv_sqrt(a: &M) -> M {
    let (w, v) = jacobi_eigen(a);
    let n = a.len();
    (0..n)
        .map(|i| {
            (0..n)
                .map(|j| (0..n).map(|k| v[i][k] * v[j][k] / w[k].sqrt()).sum())
                .collect()
        })
        .collect()
}

/// One-sided Jacobi SVD (Hestenes): the singular values (non-increasing) and, for each, the
/// column `A v_i = σ_i u_i` (so `u_i` is that column over `σ_i`).
fn hestenes(a: &M) -> Vec<(f64, Vec<f64>)> {
    let m = a[0].len();
    let mut cols = transpose(a); // cols[j] = column j of A
    for _sweep in 0..100 {
        let mut rotated = false;
        for i in 0..m {
            for j in i + 1..m {
                let alpha: f64 = cols[i].iter().map(|v| v * v).sum();
                let beta: f64 = cols[j].iter().map(|v| v * v).sum();
                let gamma: f64 = cols[i].iter().zip(&cols[j]).map(|(a, b)| a * b).sum();
                if gamma == 0.0 || gamma.abs() <= 1e-15 * (alpha * beta).sqrt() {
                    continue;
                }
                rotated = true;
                let zeta = (beta - alpha) / (2.0 * gamma);
                let t = zeta.signum() / (zeta.abs() + (1.0 + zeta * zeta).sqrt());
                let c = 1.0 / (1.0 + t * t).sqrt();
                let s = c * t;
                for k in 0..cols[i].len() {
                    let (x, y) = (cols[i][k], cols[j][k]);
                    cols[i][k] = c * x - s * y;
                    cols[j][k] = s * x + c * y;
                }
            }
        }
        if !rotated {
            break;
        }
    }
    let mut out: Vec<(f64, Vec<f64>)> = cols
        .into_iter()
        .map(|c| (c.iter().map(|v| v * v).sum::<f64>().sqrt(), c))
        .collect();
    out.sort_by(|a, b| b.0.total_cmp(&a.0));
    out
}

fn singular_values(a: &M) -> Vec<f64> {
    hestenes(a).into_iter().map(|(s, _)| s).collect()
}

/// CCA from `C = Σxx^{-1/2} Σxy Σyy^{-1/2}` (centered, full column rank, n > p):
/// the correlations and C's left singular vectors.
fn ref_cca(xc: &M, yc: &M) -> (Vec<f64>, Vec<Vec<f64>>) {
    let (xt, yt) = (transpose(xc), transpose(yc));
    let c = matmul(
        &matmul(&inv_sqrt(&matmul(&xt, xc)), &matmul(&xt, yc)),
        &inv_sqrt(&matmul(&yt, yc)),
    );
    let k = xc[0].len().min(yc[0].len());
    let sv = hestenes(&c);
    let rho = sv[..k].iter().map(|(s, _)| *s).collect();
    let left = sv[..k]
        .iter()
        .map(|(s, col)| col.iter().map(|v| v / s).collect())
        .collect();
    (rho, left)
}

fn ref_rho(x: &Array2<f32>, y: &Array2<f32>) -> Vec<f64> {
    ref_cca(&centered(x), &centered(y)).0
}

/// PWCCA: `h_i = X Σxx^{-1/2} u_i`, `α_i = Σ_j |⟨h_i, x_j⟩|`.
fn ref_pwcca(x: &Array2<f32>, y: &Array2<f32>) -> (f64, Vec<f64>) {
    let (xc, yc) = (centered(x), centered(y));
    let (rho, left) = ref_cca(&xc, &yc);
    let isq = inv_sqrt(&matmul(&transpose(&xc), &xc));
    let p = xc[0].len();
    let mut alpha: Vec<f64> = left
        .iter()
        .map(|u| {
            let a: Vec<f64> = (0..p)
                .map(|i| (0..p).map(|j| isq[i][j] * u[j]).sum())
                .collect();
            let h: Vec<f64> = xc
                .iter()
                .map(|row| row.iter().zip(&a).map(|(x, a)| x * a).sum())
                .collect();
            (0..p)
                .map(|j| {
                    h.iter()
                        .zip(&xc)
                        .map(|(h, row)| h * row[j])
                        .sum::<f64>()
                        .abs()
                })
                .sum()
        })
        .collect();
    let total: f64 = alpha.iter().sum();
    alpha.iter_mut().for_each(|a| *a /= total);
    (alpha.iter().zip(&rho).map(|(a, r)| a * r).sum(), alpha)
}

/// Solve `A B = R` (A square, invertible) by Gaussian elimination with partial pivoting.
fn solve(a: &M, r: &M) -> M {
    let n = a.len();
    let m = r[0].len();
    let mut aug: M = (0..n)
        .map(|i| a[i].iter().chain(&r[i]).copied().collect())
        .collect();
    for c in 0..n {
        let piv = (c..n)
            .max_by(|&i, &j| aug[i][c].abs().total_cmp(&aug[j][c].abs()))
            .unwrap();
        aug.swap(c, piv);
        for i in 0..n {
            if i != c {
                let f = aug[i][c] / aug[c][c];
                for k in c..n + m {
                    aug[i][k] -= f * aug[c][k];
                }
            }
        }
    }
    (0..n)
        .map(|i| (0..m).map(|k| aug[i][n + k] / aug[i][i]).collect())
        .collect()
}

/// `R² = 1 - ‖Y - XB‖² / ‖Y‖²` with B from the normal equations (centered data).
fn ref_linreg(x: &Array2<f32>, y: &Array2<f32>) -> f64 {
    let (xc, yc) = (centered(x), centered(y));
    let xt = transpose(&xc);
    let b = solve(&matmul(&xt, &xc), &matmul(&xt, &yc));
    let fit = matmul(&xc, &b);
    let rss: f64 = fit
        .iter()
        .flatten()
        .zip(yc.iter().flatten())
        .map(|(f, y)| (y - f) * (y - f))
        .sum();
    1.0 - rss / frob2(&yc)
}

/// Procrustes distance of unit-norm centered layers via the nuclear norm of `XᵀY`.
fn ref_procrustes(x: &Array2<f32>, y: &Array2<f32>) -> f64 {
    let (xc, yc) = (centered(x), centered(y));
    let nuc: f64 = singular_values(&matmul(&transpose(&xc), &yc)).iter().sum();
    2.0 - 2.0 * nuc / (frob2(&xc) * frob2(&yc)).sqrt()
}

/// `tr(K H L H) / (n-1)²` with linear kernels of the raw (uncentered) data.
fn ref_hsic(x: &Array2<f32>, y: &Array2<f32>) -> f64 {
    let (x, y) = (to64(x), to64(y));
    let k = matmul(&x, &transpose(&x));
    let l = matmul(&y, &transpose(&y));
    hsic_biased(&k, &l)
}

fn ref_cka(x: &Array2<f32>, y: &Array2<f32>) -> f64 {
    ref_hsic(x, y) / (ref_hsic(x, x) * ref_hsic(y, y)).sqrt()
}

/// SVCCA: project each centered layer on its top singular directions explaining `frac` of
/// the variance, then CCA.
fn ref_svcca(x: &Array2<f32>, y: &Array2<f32>, frac: f64) -> (Vec<f64>, usize, usize) {
    let reduce = |z: &Array2<f32>| -> (M, usize) {
        let sv = hestenes(&centered(z));
        let total: f64 = sv.iter().map(|(s, _)| s * s).sum();
        let mut acc = 0.0;
        let d = sv
            .iter()
            .position(|(s, _)| {
                acc += s * s;
                acc >= frac * total
            })
            .unwrap()
            + 1;
        let cols: M = sv[..d].iter().map(|(_, c)| c.clone()).collect();
        (transpose(&cols), d)
    };
    let ((xr, dx), (yr, dy)) = (reduce(x), reduce(y));
    (ref_cca(&xr, &yr).0, dx, dy)
}

// ---------- inputs ----------

/// Normals rounded to multiples of 1/64: products with small integer matrices are exact in
/// f32, so invariance tests compare exact transforms, not f32 roundings of them.
fn dyadic(r: &mut Rng, n: usize, p: usize) -> Array2<f32> {
    Array2::from_shape_simple_fn((n, p), || (r.normal() * 64.0).round() as f32 / 64.0)
}

/// Y sharing a linear image of X plus noise and an offset, so measures sit inside (0, 1).
fn pair(r: &mut Rng, n: usize, px: usize, py: usize) -> (Array2<f32>, Array2<f32>) {
    let x = dyadic(r, n, px);
    let w = dyadic(r, px, py);
    let y = x.dot(&w) + dyadic(r, n, py) * 2.0 + dyadic(r, 1, py) * 4.0;
    (x.mapv(|v| v * 4.0 + 1.0), y)
}

/// An invertible integer map: diagonal 8, off-diagonal entries in {-1, 0, 1} (strictly
/// diagonally dominant for p <= 8).
fn invertible(r: &mut Rng, p: usize) -> Array2<f32> {
    Array2::from_shape_fn(
        (p, p),
        |(i, j)| {
            if i == j {
                8.0
            } else {
                r.below(3) as f32 - 1.0
            }
        },
    )
}

/// A random orthogonal matrix (Gram-Schmidt of normals, f64, rounded to f32).
fn orthogonal(r: &mut Rng, p: usize) -> Array2<f32> {
    let mut q: Vec<Vec<f64>> = Vec::new();
    while q.len() < p {
        let mut v: Vec<f64> = (0..p).map(|_| r.normal()).collect();
        for _ in 0..2 {
            for u in &q {
                let d: f64 = v.iter().zip(u).map(|(a, b)| a * b).sum();
                v.iter_mut().zip(u).for_each(|(a, b)| *a -= d * b);
            }
        }
        let norm = v.iter().map(|a| a * a).sum::<f64>().sqrt();
        q.push(v.iter().map(|a| a / norm).collect());
    }
    Array2::from_shape_fn((p, p), |(i, j)| q[j][i] as f32)
}

fn basis(x: &Array2<f32>) -> Basis {
    Basis::new(x.view()).unwrap()
}

fn value(m: &dyn Measure, x: &Array2<f32>, y: &Array2<f32>) -> f64 {
    m.between(&basis(x), &basis(y)).unwrap()
}

fn all_measures() -> Vec<Box<dyn Measure>> {
    MEASURE_NAMES
        .iter()
        .map(|n| measure_by_name(n).unwrap())
        .collect()
}

fn assert_all_close(got: &[f64], want: &[f64], tol: f64, what: &str) {
    assert_eq!(got.len(), want.len(), "{what}: {got:?} vs {want:?}");
    for (g, w) in got.iter().zip(want) {
        assert!((g - w).abs() <= tol, "{what}: {got:?} vs {want:?}");
    }
}

/// The measures of each example's row (RSA, mutual k-NN, CKNNA), tested against their own
/// reference in measures_alignment.rs; here they join the loops where their definition allows.
const ROW_GEOMETRY: [&str; 3] = ["rsa", "mutual_knn", "cknna"];

/// Shapes with n > p on both sides (where CCA and regression are well posed).
const TALL: [(usize, usize, usize); 4] = [(40, 5, 3), (40, 3, 5), (25, 6, 6), (12, 4, 7)];
/// Shapes with p >= n on at least one side (the Gram-matrix route of `Basis`).
const WIDE: [(usize, usize, usize); 3] = [(10, 30, 4), (8, 20, 25), (12, 12, 40)];

// ---------- against the reference ----------

#[test]
fn canonical_correlations_match_the_covariance_formula() {
    let s = seed();
    let mut r = Rng::new(s);
    for (n, px, py) in TALL {
        let (x, y) = pair(&mut r, n, px, py);
        let got = canonical_correlations(&basis(&x), &basis(&y)).unwrap();
        let want = ref_rho(&x, &y);
        assert_all_close(&got, &want, 1e-8, &format!("seed {s} {n}x{px} vs {n}x{py}"));
        let mean = want.iter().sum::<f64>() / want.len() as f64;
        let r2 = want.iter().map(|v| v * v).sum::<f64>() / want.len() as f64;
        let got_mean = value(&Cca { squared: false }, &x, &y);
        let got_r2 = value(&Cca { squared: true }, &x, &y);
        assert!(
            close(got_mean, mean, 1e-9),
            "seed {s}: {got_mean} vs {mean}"
        );
        assert!(close(got_r2, r2, 1e-9), "seed {s}: {got_r2} vs {r2}");
    }
}

#[test]
fn linear_regression_matches_the_normal_equations() {
    let s = seed();
    let mut r = Rng::new(s);
    for (n, px, py) in TALL {
        let (x, y) = pair(&mut r, n, px, py);
        for (a, b) in [(&x, &y), (&y, &x)] {
            let got = value(&LinearRegression, a, b);
            let want = ref_linreg(a, b);
            assert!(
                close(got, want, 1e-9),
                "seed {s} {n}x{px}x{py}: {got} vs {want}"
            );
        }
    }
}

#[test]
fn procrustes_hsic_and_cka_match_their_formulas_in_both_routes() {
    let s = seed();
    let mut r = Rng::new(s);
    for (n, px, py) in TALL.into_iter().chain(WIDE) {
        let (x, y) = pair(&mut r, n, px, py);
        let what = format!("seed {s} {n}x{px} vs {n}x{py}");
        let (p, h, c) = (
            value(&Procrustes, &x, &y),
            value(&LinearHsic, &x, &y),
            value(&LinearCka, &x, &y),
        );
        let (wp, wh, wc) = (ref_procrustes(&x, &y), ref_hsic(&x, &y), ref_cka(&x, &y));
        assert!(close(p, wp, 1e-9), "{what}: procrustes {p} vs {wp}");
        assert!((h - wh).abs() <= 1e-9 * wh, "{what}: hsic {h} vs {wh}");
        assert!(close(c, wc, 1e-9), "{what}: cka {c} vs {wc}");
    }
}

#[test]
fn cka_linear_equals_the_crate_cka_engine() {
    let s = seed();
    let mut r = Rng::new(s);
    for (n, px, py) in TALL.into_iter().chain(WIDE) {
        let (x, y) = pair(&mut r, n, px, py);
        let engine = cka(x.clone(), y.clone(), Kernel::Linear, Estimator::Biased).unwrap();
        let ours = value(&LinearCka, &x, &y);
        // The engine multiplies in f32; agreement is to its precision.
        assert!(
            close(ours, engine, 1e-5),
            "seed {s} {n}x{px}x{py}: {ours} vs {engine}"
        );
    }
}

#[test]
fn svcca_matches_truncate_then_cca() {
    let s = seed();
    let mut r = Rng::new(s);
    // Decaying column scales so that 99% of the variance needs fewer than all directions.
    let decay = |z: Array2<f32>| {
        Array2::from_shape_fn(z.dim(), |(i, j)| z[[i, j]] * 0.25f32.powi(j as i32 % 4))
    };
    for (n, px, py) in [(40, 6, 5), (30, 8, 8), (50, 4, 9)] {
        let (x, y) = pair(&mut r, n, px, py);
        let (x, y) = (decay(x), decay(y));
        for frac in [0.99, 0.9, 1.0] {
            let (want, dx, dy) = ref_svcca(&x, &y, frac);
            let (bx, by) = (basis(&x), basis(&y));
            let what = format!("seed {s} {n}x{px}x{py} keep {frac}");
            assert_eq!(
                (bx.dims_for_variance(frac), by.dims_for_variance(frac)),
                (dx, dy),
                "{what}"
            );
            for squared in [false, true] {
                let got = Svcca {
                    variance: frac,
                    squared,
                }
                .between(&bx, &by)
                .unwrap();
                let w = want
                    .iter()
                    .map(|v| if squared { v * v } else { *v })
                    .sum::<f64>()
                    / want.len() as f64;
                assert!(
                    close(got, w, 1e-8),
                    "{what} squared {squared}: {got} vs {w}"
                );
            }
        }
    }
}

#[test]
fn pwcca_matches_projection_weights_and_is_a_weighted_mean() {
    let s = seed();
    let mut r = Rng::new(s);
    for (n, px, py) in TALL {
        let (x, y) = pair(&mut r, n, px, py);
        let what = format!("seed {s} {n}x{px}x{py}");
        let (want, want_w) = ref_pwcca(&x, &y);
        let got = value(&Pwcca, &x, &y);
        assert!(close(got, want, 1e-8), "{what}: {got} vs {want}");
        let parts = pwcca_weights(&basis(&x), &basis(&y)).unwrap();
        assert_all_close(&parts.weights, &want_w, 1e-8, &what);
        let sum: f64 = parts.weights.iter().sum();
        assert!((sum - 1.0).abs() < 1e-12, "{what}: weights sum to {sum}");
        assert!(parts.weights.iter().all(|&w| w >= 0.0), "{what}");
        let max = parts.rho.iter().copied().fold(0.0, f64::max);
        let min = parts.rho.iter().copied().fold(1.0, f64::min);
        assert!(
            got <= max + 1e-12 && got >= min - 1e-12,
            "{what}: {got} not in [{min}, {max}]"
        );
    }
}

// ---------- invariances ----------

#[test]
fn cca_family_and_regression_are_invariant_to_invertible_maps() {
    let s = seed();
    let mut r = Rng::new(s);
    for (n, px, py) in TALL {
        let (x, y) = pair(&mut r, n, px, py);
        let (ax, ay) = (
            x.dot(&invertible(&mut r, px)),
            y.dot(&invertible(&mut r, py)),
        );
        let what = format!("seed {s} {n}x{px}x{py}");
        let rho = canonical_correlations(&basis(&x), &basis(&y)).unwrap();
        for (u, v) in [(&ax, &y), (&x, &ay), (&ax, &ay)] {
            let moved = canonical_correlations(&basis(u), &basis(v)).unwrap();
            assert_all_close(&moved, &rho, 1e-10, &what);
        }
        let full = Svcca {
            variance: 1.0,
            squared: false,
        };
        assert!(
            close(value(&full, &ax, &ay), value(&full, &x, &y), 1e-10),
            "{what}"
        );
        // R² of Y from X: any invertible map of X.
        let lr = value(&LinearRegression, &x, &y);
        assert!(
            close(value(&LinearRegression, &ax, &y), lr, 1e-10),
            "{what}"
        );
        // PWCCA: any invertible map of Y.
        let pw = value(&Pwcca, &x, &y);
        assert!(close(value(&Pwcca, &x, &ay), pw, 1e-10), "{what}");
    }
}

#[test]
fn pwcca_is_invariant_to_signed_permutations_of_x() {
    let s = seed();
    let mut r = Rng::new(s);
    let (x, y) = pair(&mut r, 40, 5, 4);
    let perm = [3usize, 0, 4, 1, 2];
    let px = Array2::from_shape_fn(x.dim(), |(i, j)| {
        x[[i, perm[j]]] * if j % 2 == 0 { -1.0 } else { 1.0 }
    });
    let (a, b) = (value(&Pwcca, &x, &y), value(&Pwcca, &px, &y));
    assert!(close(a, b, 1e-10), "seed {s}: {a} vs {b}");
}

#[test]
fn cka_procrustes_hsic_are_invariant_to_orthogonal_maps_and_scale_as_documented() {
    let s = seed();
    let mut r = Rng::new(s);
    for (n, px, py) in TALL.into_iter().chain(WIDE) {
        let (x, y) = pair(&mut r, n, px, py);
        let (qx, qy) = (
            x.dot(&orthogonal(&mut r, px)),
            y.dot(&orthogonal(&mut r, py)),
        );
        let what = format!("seed {s} {n}x{px}x{py}");
        // Rotations are rounded to f32, so agreement is to f32 precision.
        for m in [&LinearCka as &dyn Measure, &Procrustes] {
            let a = value(m, &x, &y);
            let b = value(m, &qx, &qy);
            assert!(close(a, b, 1e-5), "{what} {}: {a} vs {b}", m.name());
            // Isotropic scaling by exact powers of two.
            let c = value(m, &x.mapv(|v| v * 8.0), &y.mapv(|v| v / 4.0));
            assert!(close(a, c, 1e-12), "{what} {}: {a} vs {c}", m.name());
        }
        let h = value(&LinearHsic, &x, &y);
        let hq = value(&LinearHsic, &qx, &qy);
        assert!((h - hq).abs() <= 1e-5 * h, "{what}: {h} vs {hq}");
        // HSIC is not scale invariant: scaling X by c multiplies it by c².
        let h4 = value(&LinearHsic, &x.mapv(|v| v * 4.0), &y);
        assert!(
            (h4 - 16.0 * h).abs() <= 1e-12 * h4,
            "{what}: {h4} vs 16 x {h}"
        );
        let h44 = value(&LinearHsic, &x.mapv(|v| v * 4.0), &y.mapv(|v| v * 4.0));
        assert!(
            (h44 - 256.0 * h).abs() <= 1e-12 * h44,
            "{what}: {h44} vs 256 x {h}"
        );
    }
}

#[test]
fn cka_and_procrustes_are_not_invariant_to_general_linear_maps_but_cca_is() {
    let s = seed();
    let mut r = Rng::new(s);
    let x = dyadic(&mut r, 40, 5);
    // Stretch one direction: an invertible map that is not orthogonal times a scalar.
    let d = Array2::from_diag(&ndarray::arr1(&[8.0f32, 1.0, 1.0, 1.0, 1.0]));
    let xd = x.dot(&d);
    let what = format!("seed {s}");
    let cka_xx = value(&LinearCka, &x, &x);
    let cka_xd = value(&LinearCka, &x, &xd);
    assert!(
        (cka_xx - 1.0).abs() < 1e-12 && cka_xd < 0.99,
        "{what}: {cka_xd}"
    );
    let pr = value(&Procrustes, &x, &xd);
    assert!(pr > 0.01, "{what}: Procrustes {pr}");
    // ... whereas CCA and regression see the same span.
    for m in [
        &Cca { squared: false } as &dyn Measure,
        &Cca { squared: true },
        &LinearRegression,
        &Pwcca,
    ] {
        let v = value(m, &x, &xd);
        assert!((v - 1.0).abs() < 1e-10, "{what} {}: {v}", m.name());
    }
}

#[test]
fn regression_r2_depends_on_non_orthogonal_maps_of_the_target() {
    let s = seed();
    let mut r = Rng::new(s);
    let x = dyadic(&mut r, 40, 4);
    // Y: one column well predicted by X, two pure noise columns.
    let noise = dyadic(&mut r, 40, 3);
    let y = Array2::from_shape_fn((40, 3), |(i, j)| {
        if j == 0 {
            x[[i, 0]] + noise[[i, 0]] / 16.0
        } else {
            noise[[i, j]]
        }
    });
    let stretch = Array2::from_diag(&ndarray::arr1(&[8.0f32, 1.0, 1.0]));
    let plain = value(&LinearRegression, &x, &y);
    let stretched = value(&LinearRegression, &x, &y.dot(&stretch));
    assert!(stretched - plain > 0.2, "seed {s}: {plain} -> {stretched}");
    // Orthogonal maps and isotropic scaling of the target leave it unchanged.
    let rotated = value(&LinearRegression, &x, &y.dot(&orthogonal(&mut r, 3)));
    let scaled = value(&LinearRegression, &x, &y.mapv(|v| v * 2.0));
    assert!(
        close(rotated, plain, 1e-5),
        "seed {s}: {plain} vs {rotated}"
    );
    assert!(close(scaled, plain, 1e-12), "seed {s}: {plain} vs {scaled}");
}

// ---------- identities and symmetry ----------

#[test]
fn identical_layers_give_the_identity_values() {
    let s = seed();
    let mut r = Rng::new(s);
    for (n, p) in [(40, 5), (12, 30), (3, 2)] {
        let (x, _) = pair(&mut r, n, p, 1);
        let b = basis(&x);
        let what = format!("seed {s} {n}x{p}");
        let rho = canonical_correlations(&b, &b).unwrap();
        assert_eq!(rho.len(), b.rank(), "{what}");
        assert!(
            rho.iter().all(|v| (v - 1.0).abs() < 1e-10),
            "{what}: {rho:?}"
        );
        for m in all_measures() {
            if m.name() == "rsa" && p == 2 {
                // Two features: every correlation is ±1, and all RDM entries may tie (undefined);
                // see measures_alignment.rs.
                continue;
            }
            let v = m.between(&b, &b).unwrap();
            let want = match m.name() {
                "procrustes" => 0.0,
                "hsic" => ref_hsic(&x, &x),
                _ => 1.0,
            };
            assert!(close(v, want, 1e-10), "{what} {}: {v} vs {want}", m.name());
        }
    }
}

#[test]
fn symmetric_measures_are_symmetric_and_the_others_say_so() {
    let s = seed();
    let mut r = Rng::new(s);
    for (n, px, py) in TALL.into_iter().chain(WIDE) {
        let (x, y) = pair(&mut r, n, px, py);
        let (bx, by) = (basis(&x), basis(&y));
        for m in all_measures() {
            let (a, b) = (m.between(&bx, &by).unwrap(), m.between(&by, &bx).unwrap());
            if m.symmetric() {
                assert!(close(a, b, 1e-12), "seed {s} {}: {a} vs {b}", m.name());
            }
        }
    }
    let asym: Vec<&str> = all_measures()
        .iter()
        .filter(|m| !m.symmetric())
        .map(|m| m.name())
        .collect();
    assert_eq!(asym, ["pwcca", "linreg"]);
    // Regression really is asymmetric: a layer predicts its own projection perfectly, not
    // the other way round.
    let (x, _) = pair(&mut r, 40, 5, 1);
    let proj = x.slice(s![.., ..2]).to_owned();
    assert!((value(&LinearRegression, &x, &proj) - 1.0).abs() < 1e-12);
    assert!(value(&LinearRegression, &proj, &x) < 0.9);
}

#[test]
fn names_directions_and_lookup_agree() {
    for &name in MEASURE_NAMES {
        let m = measure_by_name(name).unwrap();
        assert_eq!(m.name(), name);
        assert_eq!(m.higher_is_similar(), name != "procrustes", "{name}");
    }
    assert!(measure_by_name("cka").is_none());
    assert!(measure_by_name("").is_none());
}

#[test]
fn similarity_matrix_equals_pairwise_values() {
    let s = seed();
    let mut r = Rng::new(s);
    let n = 30;
    let mut layers: Vec<Array2<f32>> = (0..4).map(|i| dyadic(&mut r, n, 3 + 4 * i)).collect();
    layers.push(Array2::from_elem((n, 3), 2.5)); // constant: undefined for most measures
    let bases: Vec<Basis> = layers.iter().map(basis).collect();
    let copy = bases.clone();
    for m in all_measures() {
        let same = similarity_matrix(m.as_ref(), &bases, &bases);
        let other = similarity_matrix(m.as_ref(), &bases, &copy);
        for i in 0..bases.len() {
            for j in 0..bases.len() {
                let want = m.between(&bases[i], &bases[j]).ok();
                for got in [same[i][j], other[i][j]] {
                    match (got, want) {
                        (Some(g), Some(w)) => {
                            assert!(close(g, w, 1e-12), "seed {s} {} {i} {j}", m.name())
                        }
                        (None, None) => {}
                        _ => panic!("seed {s} {} {i} {j}: {got:?} vs {want:?}", m.name()),
                    }
                }
            }
        }
        let undefined = same[4].iter().filter(|v| v.is_none()).count();
        match m.name() {
            "hsic" => assert_eq!(undefined, 0),
            "linreg" => assert_eq!(undefined, 1), // only const -> const
            _ => assert_eq!(undefined, 5, "{}", m.name()),
        }
    }
}

// ---------- edge cases ----------

#[test]
fn more_features_than_examples_saturates_cca_but_not_cka() {
    let s = seed();
    let mut r = Rng::new(s);
    let n = 10;
    let x = dyadic(&mut r, n, 15);
    let y = dyadic(&mut r, n, 3); // independent of x
    let (bx, by) = (basis(&x), basis(&y));
    assert_eq!(
        bx.rank(),
        n - 1,
        "seed {s}: centering leaves n - 1 directions"
    );
    let rho = canonical_correlations(&bx, &by).unwrap();
    assert_eq!(rho.len(), 3);
    assert!(
        rho.iter().all(|v| (v - 1.0).abs() < 1e-10),
        "seed {s}: {rho:?}"
    );
    for name in ["cca_rho", "cca_r2", "pwcca", "linreg"] {
        let v = measure_by_name(name).unwrap().between(&bx, &by).unwrap();
        assert!((v - 1.0).abs() < 1e-10, "seed {s} {name}: {v}");
    }
    let c = LinearCka.between(&bx, &by).unwrap();
    assert!(c < 0.99, "seed {s}: CKA {c}");
    assert!(close(c, ref_cka(&x, &y), 1e-9), "seed {s}");
}

#[test]
fn three_examples_work() {
    let s = seed();
    let mut r = Rng::new(s);
    let x = dyadic(&mut r, 3, 2);
    let y = dyadic(&mut r, 3, 1);
    let w = dyadic(&mut r, 3, 7);
    for (a, b) in [(&x, &y), (&y, &x), (&w, &y), (&x, &w)] {
        let (ba, bb) = (basis(a), basis(b));
        assert!(ba.rank() <= 2 && bb.rank() <= 2);
        for m in all_measures() {
            if ROW_GEOMETRY.contains(&m.name()) {
                // One or two features per example: correlations are ±1 or 0/0 and unit rows
                // are ±1; their 3-example cases are in measures_alignment.rs.
                continue;
            }
            let v = m.between(&ba, &bb).unwrap();
            assert!(v.is_finite(), "seed {s} {}: {v}", m.name());
        }
        let want = ref_cka(a, b);
        let got = LinearCka.between(&ba, &bb).unwrap();
        assert!(close(got, want, 1e-9), "seed {s}: {got} vs {want}");
    }
    // Two directions fill the centered space of 3 examples: CCA saturates.
    let rho = canonical_correlations(&basis(&x), &basis(&y)).unwrap();
    assert!((rho[0] - 1.0).abs() < 1e-10, "seed {s}: {rho:?}");
}

#[test]
fn constant_columns_change_nothing() {
    let s = seed();
    let mut r = Rng::new(s);
    for (n, px, py) in [(30, 4, 5), (10, 12, 3)] {
        let (x, y) = pair(&mut r, n, px, py);
        let constant = Array2::from_elem((n, 2), 0.1f32); // 0.1 is not exact in binary
        let padded = concatenate(Axis(1), &[constant.view(), x.view(), constant.view()]).unwrap();
        let (bx, bp, by) = (basis(&x), basis(&padded), basis(&y));
        assert_eq!(bp.rank(), bx.rank(), "seed {s}");
        for m in all_measures() {
            if ROW_GEOMETRY.contains(&m.name()) {
                continue; // they see each row's mean and norm, which constant columns change
            }
            let (u, v) = (m.between(&bx, &by).unwrap(), m.between(&bp, &by).unwrap());
            assert!(
                close(u, v, 1e-10),
                "seed {s} {} (X, Y): {u} vs {v}",
                m.name()
            );
            let (u, v) = (m.between(&by, &bx).unwrap(), m.between(&by, &bp).unwrap());
            assert!(
                close(u, v, 1e-10),
                "seed {s} {} (Y, X): {u} vs {v}",
                m.name()
            );
        }
    }
}

#[test]
fn duplicate_columns_keep_the_rank_and_the_span_measures() {
    let s = seed();
    let mut r = Rng::new(s);
    let (x, y) = pair(&mut r, 30, 4, 5);
    let dup = concatenate(Axis(1), &[x.view(), x.slice(s![.., ..2])]).unwrap();
    let (bx, bd, by) = (basis(&x), basis(&dup), basis(&y));
    assert_eq!(bd.rank(), 4, "seed {s}: {:?}", bd.singular_values());
    // Measures of the span alone do not see the duplicates ...
    let rho = canonical_correlations(&bx, &by).unwrap();
    assert_all_close(
        &canonical_correlations(&bd, &by).unwrap(),
        &rho,
        1e-10,
        &format!("seed {s}"),
    );
    assert_all_close(&rho, &ref_rho(&x, &y), 1e-8, &format!("seed {s}"));
    let lr = LinearRegression.between(&bx, &by).unwrap();
    assert!(close(
        LinearRegression.between(&bd, &by).unwrap(),
        lr,
        1e-10
    ));
    // ... while kernel measures do: duplicating columns re-weights X Xᵀ.
    let c = LinearCka.between(&bx, &by).unwrap();
    let cd = LinearCka.between(&bd, &by).unwrap();
    assert!(
        close(cd, ref_cka(&dup, &y), 1e-9) && (c - cd).abs() > 1e-6,
        "seed {s}"
    );
}

#[test]
fn rank_deficient_wide_layer_keeps_its_true_rank() {
    let s = seed();
    let mut r = Rng::new(s);
    // 3 distinct columns repeated 20 times: p = 60 > n = 30, rank 3 (the Gram route).
    let z = dyadic(&mut r, 30, 3);
    let views: Vec<_> = (0..20).map(|_| z.view()).collect();
    let wide = concatenate(Axis(1), &views).unwrap();
    let y = dyadic(&mut r, 30, 4);
    let bw = basis(&wide);
    assert_eq!(bw.rank(), 3, "seed {s}: {:?}", bw.singular_values());
    let got = canonical_correlations(&bw, &basis(&y)).unwrap();
    assert_all_close(&got, &ref_rho(&z, &y), 1e-8, &format!("seed {s}"));
    let lr = value(&LinearRegression, &wide, &y);
    assert!(close(lr, ref_linreg(&z, &y), 1e-9), "seed {s}");
    // The tall route on a duplicated layer agrees.
    let tall = concatenate(Axis(1), &[z.view(), z.view()]).unwrap();
    assert_eq!(basis(&tall).rank(), 3);
}

#[test]
fn constant_layers_are_errors_where_undefined_and_zero_where_defined() {
    let s = seed();
    let mut r = Rng::new(s);
    let x = dyadic(&mut r, 20, 4);
    for c in [
        Array2::from_elem((20, 3), 0.3f32),
        Array2::zeros((20, 3)),
        Array2::from_elem((20, 50), -7.1f32),
    ] {
        let (bc, bx) = (basis(&c), basis(&x));
        assert_eq!(bc.rank(), 0);
        for m in all_measures() {
            for (a, b, side) in [(&bc, &bx, "X"), (&bx, &bc, "Y"), (&bc, &bc, "both")] {
                let got = m.between(a, b);
                match (m.name(), side) {
                    ("hsic", _) => assert_eq!(got, Ok(0.0)),
                    ("linreg", "X") => assert_eq!(got, Ok(0.0)),
                    _ => match got {
                        Err(SimError::Undefined(why)) => {
                            assert!(why.contains("constant"), "{why}")
                        }
                        other => panic!("{} {side}: {other:?}", m.name()),
                    },
                }
            }
        }
    }
}

#[test]
fn bad_inputs_are_errors() {
    let mut x = Array2::<f32>::ones((5, 3));
    x[[0, 0]] = 2.0;
    x[[3, 2]] = f32::NAN;
    assert_eq!(
        Basis::new(x.view()).unwrap_err(),
        SimError::NonFinite {
            example: 3,
            feature: 2
        }
    );
    x[[3, 2]] = 0.0;
    x[[1, 1]] = f32::NEG_INFINITY;
    assert_eq!(
        Basis::new(x.view()).unwrap_err(),
        SimError::NonFinite {
            example: 1,
            feature: 1
        }
    );
    assert_eq!(
        Basis::new(Array2::<f32>::zeros((5, 0)).view()).unwrap_err(),
        SimError::NoFeatures
    );
    assert!(matches!(
        Basis::new(Array2::<f32>::ones((1, 3)).view()),
        Err(SimError::TooFewExamples { n: 1, need: 2, .. })
    ));
    let a = basis(&Array2::from_shape_fn((6, 2), |(i, j)| {
        (i * j) as f32 + i as f32
    }));
    let b = basis(&Array2::from_shape_fn((7, 2), |(i, j)| (i + j * j) as f32));
    for m in all_measures() {
        assert_eq!(
            m.between(&a, &b),
            Err(SimError::MismatchedExamples { a: 6, b: 7 })
        );
    }
    for variance in [0.0, -0.5, 1.5, f64::NAN] {
        let m = Svcca {
            variance,
            squared: false,
        };
        assert!(matches!(m.between(&a, &a), Err(SimError::Undefined(_))));
    }
}

#[test]
fn huge_and_tiny_scales_give_the_same_values() {
    let s = seed();
    let mut r = Rng::new(s);
    for (n, px, py) in [(40, 5, 3), (10, 30, 4)] {
        let (x, y) = pair(&mut r, n, px, py);
        let base: Vec<f64> = all_measures()
            .iter()
            .map(|m| value(m.as_ref(), &x, &y))
            .collect();
        // Powers of two (2^100 ≈ 1.3e30, 2^120 ≈ 1.3e36, within 300x of f32's maximum, 2^-100) are exact.
        for e in [100i32, 120, -100] {
            let c = 2f32.powi(e);
            let (sx, sy) = (x.mapv(|v| v * c), y.mapv(|v| v * c));
            for (m, &b) in all_measures().iter().zip(&base) {
                let v = value(m.as_ref(), &sx, &sy);
                let want = if m.name() == "hsic" {
                    b * 2f64.powi(4 * e)
                } else {
                    b
                };
                assert!(
                    (v - want).abs() <= 1e-10 * want.abs().max(1.0),
                    "seed {s} 2^{e} {}: {v} vs {want}",
                    m.name()
                );
            }
        }
        // A non-binary scale rounds every entry in f32: agreement to f32 precision.
        let (sx, sy) = (x.mapv(|v| v * 1e30), y.mapv(|v| v * 1e30));
        for (m, &b) in all_measures().iter().zip(&base) {
            if m.name() != "hsic" {
                let v = value(m.as_ref(), &sx, &sy);
                assert!(close(v, b, 1e-5), "seed {s} 1e30 {}: {v} vs {b}", m.name());
            }
        }
    }
}
