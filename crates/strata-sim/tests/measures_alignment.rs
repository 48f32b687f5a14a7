//! The row-geometry measures (RSA, mutual k-NN, CKNNA) against an f64 reference written here
//! from their definitions with explicit loops (per-row Pearson correlations, average ranks by
//! counting, brute-force neighbour sets, the explicit centering matrix `H`), on fresh random
//! inputs; plus invariances, identities and edge cases.
//!
//! Each test draws a new seed (printed on failure); set STRATA_TEST_SEED to replay one.
#![allow(clippy::unwrap_used)] // in tests, a failed unwrap is a failed test, with its location
#![allow(clippy::needless_range_loop)] // reference code indexes like the formulas it transcribes

use ndarray::{concatenate, Array2, Axis};
use strata_data::rng::Rng;
use strata_sim::{
    correlation_rdm, measure_by_name, rsa_between_rdms, Basis, Cknna, Measure, MutualKnn, Rsa,
    SimError, DEFAULT_K, RDM_TIE_TOLERANCE,
};

#[allow(dead_code)] // hsic_biased is for the other tests
mod common;
use common::{close, matmul, seed, to64, M};

// ---------- the reference (f64, from the definitions) ----------

/// `1 - r(x_i, x_j)` for `i < j`, row-major, `r` Pearson's correlation across features.
fn ref_rdm(x: &Array2<f32>) -> Vec<f64> {
    let rows = to64(x);
    let (n, p) = (rows.len(), rows[0].len());
    let centered: M = rows
        .iter()
        .map(|r| {
            let m = r.iter().sum::<f64>() / p as f64;
            r.iter().map(|v| v - m).collect()
        })
        .collect();
    let mut out = Vec::new();
    for i in 0..n {
        for j in i + 1..n {
            let (a, b) = (&centered[i], &centered[j]);
            let mut ab = 0.0;
            let mut aa = 0.0;
            let mut bb = 0.0;
            for t in 0..p {
                ab += a[t] * b[t];
                aa += a[t] * a[t];
                bb += b[t] * b[t];
            }
            out.push(1.0 - ab / (aa * bb).sqrt());
        }
    }
    out
}

/// Average ranks (1-based) by counting: entries within the tie tolerance share a rank.
fn ref_ranks(v: &[f64]) -> Vec<f64> {
    v.iter()
        .map(|&a| {
            let below = v.iter().filter(|&&b| b < a - RDM_TIE_TOLERANCE).count();
            let tied = v
                .iter()
                .filter(|&&b| (b - a).abs() <= RDM_TIE_TOLERANCE)
                .count();
            below as f64 + (tied as f64 + 1.0) / 2.0
        })
        .collect()
}

fn pearson(a: &[f64], b: &[f64]) -> f64 {
    let m = a.len() as f64;
    let (ma, mb) = (a.iter().sum::<f64>() / m, b.iter().sum::<f64>() / m);
    let mut ab = 0.0;
    let mut aa = 0.0;
    let mut bb = 0.0;
    for t in 0..a.len() {
        ab += (a[t] - ma) * (b[t] - mb);
        aa += (a[t] - ma).powi(2);
        bb += (b[t] - mb).powi(2);
    }
    ab / (aa * bb).sqrt()
}

fn ref_rsa(x: &Array2<f32>, y: &Array2<f32>) -> f64 {
    pearson(&ref_ranks(&ref_rdm(x)), &ref_ranks(&ref_rdm(y)))
}

/// Rows scaled to unit L2 norm.
fn unit_rows(x: &Array2<f32>) -> M {
    to64(x)
        .into_iter()
        .map(|r| {
            let norm = r.iter().map(|v| v * v).sum::<f64>().sqrt();
            r.iter().map(|v| v / norm).collect()
        })
        .collect()
}

/// The cosine kernel `K = Z Zᵀ`, `Z` the unit rows.
fn ref_kernel(x: &Array2<f32>) -> M {
    let z = unit_rows(x);
    let n = z.len();
    (0..n)
        .map(|i| {
            (0..n)
                .map(|j| z[i].iter().zip(&z[j]).map(|(a, b)| a * b).sum())
                .collect()
        })
        .collect()
}

/// `mask[i][j]`: `j` is one of the `k` most similar to `i` by `kern` (itself excluded, ties to
/// the lower index), by sorting every row in full.
fn ref_knn_mask(kern: &M, k: usize) -> Vec<Vec<bool>> {
    let n = kern.len();
    (0..n)
        .map(|i| {
            let mut others: Vec<usize> = (0..n).filter(|&j| j != i).collect();
            others.sort_by(|&a, &b| kern[i][b].partial_cmp(&kern[i][a]).unwrap().then(a.cmp(&b)));
            let mut row = vec![false; n];
            for &j in &others[..k.min(n - 1)] {
                row[j] = true;
            }
            row
        })
        .collect()
}

fn ref_mutual_knn(x: &Array2<f32>, y: &Array2<f32>, k: usize) -> f64 {
    let n = x.nrows();
    let k = k.min(n - 1);
    let (a, b) = (
        ref_knn_mask(&ref_kernel(x), k),
        ref_knn_mask(&ref_kernel(y), k),
    );
    let mut total = 0.0;
    for i in 0..n {
        let shared = (0..n).filter(|&j| a[i][j] && b[i][j]).count();
        total += shared as f64 / k as f64;
    }
    total / n as f64
}

fn ref_cknna(x: &Array2<f32>, y: &Array2<f32>, k: usize) -> f64 {
    let n = x.nrows();
    let (kx, ky) = (ref_kernel(x), ref_kernel(y));
    let (mx, my) = (ref_knn_mask(&kx, k), ref_knn_mask(&ky, k));
    let h: M = (0..n)
        .map(|i| {
            (0..n)
                .map(|j| (i == j) as u8 as f64 - 1.0 / n as f64)
                .collect()
        })
        .collect();
    let (cx, cy) = (matmul(&matmul(&h, &kx), &h), matmul(&matmul(&h, &ky), &h));
    let align = |a: &M, b: &M, ma: &Vec<Vec<bool>>, mb: &Vec<Vec<bool>>| {
        let mut s = 0.0;
        for i in 0..n {
            for j in 0..n {
                if i != j && ma[i][j] && mb[i][j] {
                    s += a[i][j] * b[i][j];
                }
            }
        }
        s
    };
    align(&cx, &cy, &mx, &my) / (align(&cx, &cx, &mx, &mx) * align(&cy, &cy, &my, &my)).sqrt()
}

// ---------- inputs ----------

/// Y = X W + noise (+ a row and feature offset) so that the measures sit inside their range.
fn pair(r: &mut Rng, n: usize, px: usize, py: usize, noise: f32) -> (Array2<f32>, Array2<f32>) {
    let x = r.normal_matrix(n, px) + r.normal_matrix(1, px);
    let w = r.normal_matrix(px, py);
    let y = x.dot(&w) + r.normal_matrix(n, py) * noise + r.normal_matrix(1, py) * 3.0;
    (x, y)
}

fn basis(x: &Array2<f32>) -> Basis {
    Basis::new(x.view()).unwrap()
}

fn value(m: &dyn Measure, x: &Array2<f32>, y: &Array2<f32>) -> Result<f64, SimError> {
    m.between(&basis(x), &basis(y))
}

/// A random orthogonal matrix (Gram-Schmidt of normals in f64).
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

/// Shapes `(n, p_x, p_y)`: tall, square-ish and wide (the Gram route of `Basis`).
const SHAPES: [(usize, usize, usize); 5] = [
    (40, 5, 8),
    (30, 12, 3),
    (25, 40, 60),
    (12, 30, 4),
    (60, 20, 20),
];

// ---------- against the reference ----------

#[test]
fn rsa_matches_rdm_ranks_and_spearman_by_hand() {
    let s = seed();
    let mut r = Rng::new(s);
    for (n, px, py) in SHAPES {
        let (x, y) = pair(&mut r, n, px, py, 2.0);
        let what = format!("seed {s} {n}x{px} vs {py}");
        let got_rdm = correlation_rdm(&basis(&x)).unwrap();
        let want_rdm = ref_rdm(&x);
        assert_eq!(got_rdm.len(), n * (n - 1) / 2, "{what}");
        for (g, w) in got_rdm.iter().zip(&want_rdm) {
            assert!((g - w).abs() < 1e-12, "{what}: RDM {g} vs {w}");
        }
        let got = value(&Rsa, &x, &y).unwrap();
        let want = ref_rsa(&x, &y);
        assert!(close(got, want, 1e-9), "{what}: {got} vs {want}");
        // Not a degenerate ±1 (few features make row correlations noisy, so it can be near 0).
        assert!(got.abs() < 0.999, "{what}: not in the interior: {got}");
        let direct = rsa_between_rdms(&got_rdm, &correlation_rdm(&basis(&y)).unwrap()).unwrap();
        assert!(close(direct, got, 1e-12), "{what}: {direct} vs {got}");
    }
}

#[test]
fn rsa_ties_get_average_ranks() {
    let s = seed();
    let mut r = Rng::new(s);
    // Two features: every centered row is ±(1, -1), so every correlation is ±1 and the RDM
    // holds only 0 and 2 (many ties); against a layer with distinct distances.
    for n in [4, 7, 12] {
        // Rows (c + d, c - d) with |d| >= 0.5: no example is nearly constant (whose
        // correlations would lose digits, see `correlation_rdm`).
        let mut x = Array2::<f32>::zeros((n, 2));
        for mut row in x.rows_mut() {
            let c = r.normal() as f32;
            let d = (0.5 + r.uniform() as f32) * if r.below(2) == 0 { 1.0 } else { -1.0 };
            row[0] = c + d;
            row[1] = c - d;
        }
        let y = r.normal_matrix(n, 5);
        let rdm = correlation_rdm(&basis(&x)).unwrap();
        assert!(
            rdm.iter()
                .all(|d| d.abs() < 1e-12 || (d - 2.0).abs() < 1e-12),
            "seed {s}: {rdm:?}"
        );
        let want = ref_rsa(&x, &y);
        match value(&Rsa, &x, &y) {
            Ok(got) => assert!(close(got, want, 1e-9), "seed {s} n {n}: {got} vs {want}"),
            // All rows ordered alike: every distance 0, no ranks to correlate.
            Err(SimError::Undefined(why)) => {
                assert!(rdm.iter().all(|d| d.abs() < 1e-12), "seed {s}: {why}");
                assert!(why.contains("tied"), "{why}");
            }
            Err(e) => panic!("seed {s}: {e}"),
        }
    }
    // Hand-made: ranks of [1, 2, 2, 3] are [1, 2.5, 2.5, 4].
    let a = [1.0, 2.0, 2.0, 3.0];
    let b = [1.0, 2.0, 3.0, 4.0];
    let want = pearson(&[1.0, 2.5, 2.5, 4.0], &[1.0, 2.0, 3.0, 4.0]);
    assert!(close(rsa_between_rdms(&a, &b).unwrap(), want, 1e-15));
}

#[test]
fn mutual_knn_matches_brute_force_neighbour_sets() {
    let s = seed();
    let mut r = Rng::new(s);
    for (n, px, py) in SHAPES {
        let (x, y) = pair(&mut r, n, px, py, 1.0);
        for k in [1, 3, DEFAULT_K, n - 2, n - 1, n + 5] {
            let got = value(&MutualKnn { k }, &x, &y).unwrap();
            let want = ref_mutual_knn(&x, &y, k);
            assert!(
                close(got, want, 1e-12),
                "seed {s} {n}x{px} vs {py} k {k}: {got} vs {want}"
            );
            if k >= n - 1 {
                assert_eq!(got, 1.0, "k >= n - 1 takes every other example");
            }
        }
    }
}

#[test]
fn cknna_matches_the_formula_with_the_centering_matrix() {
    let s = seed();
    let mut r = Rng::new(s);
    for (n, px, py) in SHAPES {
        let (x, y) = pair(&mut r, n, px, py, 1.0);
        for k in [2, 5, DEFAULT_K, n - 1, n + 3] {
            let got = value(&Cknna { k }, &x, &y).unwrap();
            let want = ref_cknna(&x, &y, k);
            assert!(
                close(got, want, 1e-9),
                "seed {s} {n}x{px} vs {py} k {k}: {got} vs {want}"
            );
            assert!((-1.0..=1.0).contains(&got));
        }
    }
}

#[test]
fn named_measures_use_the_papers_defaults() {
    let s = seed();
    let mut r = Rng::new(s);
    let (x, y) = pair(&mut r, 50, 8, 6, 1.0);
    let (bx, by) = (basis(&x), basis(&y));
    let by_name = |name: &str| measure_by_name(name).unwrap().between(&bx, &by).unwrap();
    assert!(close(by_name("rsa"), ref_rsa(&x, &y), 1e-9), "seed {s}");
    assert!(
        close(by_name("mutual_knn"), ref_mutual_knn(&x, &y, 10), 1e-12),
        "seed {s}"
    );
    assert!(
        close(by_name("cknna"), ref_cknna(&x, &y, 10), 1e-9),
        "seed {s}"
    );
    for name in ["rsa", "mutual_knn", "cknna"] {
        let m = measure_by_name(name).unwrap();
        assert_eq!(m.name(), name);
        assert!(m.higher_is_similar() && m.symmetric(), "{name}");
    }
}

#[test]
fn cached_neighbours_serve_smaller_and_larger_k() {
    let s = seed();
    let mut r = Rng::new(s);
    let (x, y) = pair(&mut r, 40, 6, 9, 1.0);
    let (bx, by) = (basis(&x), basis(&y));
    let copy = bx.clone();
    // First use caches k = 10; then a prefix (k = 4) and a longer list (k = 20, uncached).
    for k in [10, 4, 20, 10] {
        for b in [&bx, &copy] {
            let got = MutualKnn { k }.between(b, &by).unwrap();
            assert!(
                close(got, ref_mutual_knn(&x, &y, k), 1e-12),
                "seed {s} k {k}"
            );
            let got = Cknna { k }.between(b, &by).unwrap();
            assert!(close(got, ref_cknna(&x, &y, k), 1e-9), "seed {s} k {k}");
        }
    }
}

// ---------- invariances, identities, symmetry ----------

#[test]
fn rsa_is_invariant_to_row_affine_maps_feature_permutations_and_monotone_rdm_maps() {
    let s = seed();
    let mut r = Rng::new(s);
    for (n, px, py) in SHAPES {
        let (x, y) = pair(&mut r, n, px, py, 2.0);
        // Multiples of 1/64, so that the maps below are exact in f32: otherwise their rounding
        // (1e-7) reorders RDM entries closer than that and moves ρ by ~1e-6.
        let x = x.mapv(|v| (v * 64.0).round() / 64.0);
        let base = value(&Rsa, &x, &y).unwrap();
        // Each example scaled by its own positive factor and shifted by its own offset.
        let scale: Vec<f32> = (0..n).map(|_| 2f32.powi(r.below(5) as i32 - 2)).collect();
        let shift: Vec<f32> = (0..n)
            .map(|_| (r.normal() * 5.0 * 64.0).round() as f32 / 64.0)
            .collect();
        let moved = Array2::from_shape_fn((n, px), |(i, j)| x[[i, j]] * scale[i] + shift[i]);
        let v = value(&Rsa, &moved, &y).unwrap();
        assert!(close(v, base, 1e-9), "seed {s} row affine: {v} vs {base}");
        // Permuted features: exactly the same correlations.
        let mut perm: Vec<usize> = (0..py).collect();
        for i in (1..py).rev() {
            perm.swap(i, r.below(i as u64 + 1) as usize);
        }
        let permuted = Array2::from_shape_fn((n, py), |(i, j)| y[[i, perm[j]]]);
        let v = value(&Rsa, &x, &permuted).unwrap();
        assert!(close(v, base, 1e-12), "seed {s} permuted: {v} vs {base}");
        // Strictly increasing maps of either RDM: the ranks do not move.
        let (a, b) = (
            correlation_rdm(&basis(&x)).unwrap(),
            correlation_rdm(&basis(&y)).unwrap(),
        );
        let fa: Vec<f64> = a.iter().map(|d| (3.0 * d).exp() - 7.0).collect();
        let fb: Vec<f64> = b.iter().map(|d| d.sqrt() * 100.0).collect();
        let v = rsa_between_rdms(&fa, &fb).unwrap();
        assert!(close(v, base, 1e-12), "seed {s} monotone: {v} vs {base}");
        // A decreasing map reverses the ranks.
        let neg: Vec<f64> = a.iter().map(|d| -d).collect();
        let v = rsa_between_rdms(&neg, &b).unwrap();
        assert!(
            close(v, -base, 1e-12),
            "seed {s} reversed: {v} vs {}",
            -base
        );
    }
}

#[test]
fn knn_measures_are_invariant_to_orthogonal_maps_and_scaling() {
    let s = seed();
    let mut r = Rng::new(s);
    for (n, px, py) in SHAPES {
        let (x, y) = pair(&mut r, n, px, py, 1.0);
        let q = orthogonal(&mut r, px);
        let rotated = x.dot(&q) * 3.5;
        // Each example scaled by its own positive power of two: unit rows are unchanged.
        let rescaled =
            Array2::from_shape_fn((n, py), |(i, j)| y[[i, j]] * 2f32.powi((i % 7) as i32 - 3));
        for m in [
            &MutualKnn { k: DEFAULT_K } as &dyn Measure,
            &Cknna { k: DEFAULT_K },
        ] {
            let base = value(m, &x, &y).unwrap();
            // f32 rounding of X Q moves cosines by ~1e-7: neighbour sets stay put unless two
            // neighbours are that close, which random data makes very unlikely.
            let v = value(m, &rotated, &y).unwrap();
            assert!(
                close(v, base, 1e-5),
                "seed {s} {} rotated: {v} vs {base}",
                m.name()
            );
            let v = value(m, &x, &rescaled).unwrap();
            assert!(
                close(v, base, 1e-10),
                "seed {s} {} row scale: {v} vs {base}",
                m.name()
            );
        }
    }
}

#[test]
fn identical_layers_give_one_and_all_are_symmetric() {
    let s = seed();
    let mut r = Rng::new(s);
    for (n, px, py) in SHAPES {
        let (x, y) = pair(&mut r, n, px, py, 1.0);
        let (bx, by) = (basis(&x), basis(&y));
        for m in [
            &Rsa as &dyn Measure,
            &MutualKnn { k: DEFAULT_K },
            &Cknna { k: DEFAULT_K },
            &MutualKnn { k: 3 },
            &Cknna { k: 3 },
        ] {
            let v = m.between(&bx, &bx).unwrap();
            assert!(close(v, 1.0, 1e-12), "seed {s} {}: {v}", m.name());
            let v = m.between(&bx, &basis(&x.clone())).unwrap();
            assert!(close(v, 1.0, 1e-12), "seed {s} {} copy: {v}", m.name());
            let (a, b) = (m.between(&bx, &by).unwrap(), m.between(&by, &bx).unwrap());
            assert!(close(a, b, 1e-12), "seed {s} {}: {a} vs {b}", m.name());
        }
    }
}

#[test]
fn unrelated_layers_score_low() {
    let s = seed();
    let mut r = Rng::new(s);
    let x = r.normal_matrix(300, 20);
    let y = r.normal_matrix(300, 20);
    let rsa = value(&Rsa, &x, &y).unwrap();
    let knn = value(&MutualKnn { k: 10 }, &x, &y).unwrap();
    let ck = value(&Cknna { k: 10 }, &x, &y).unwrap();
    // Chance for mutual k-NN is k / (n - 1) ≈ 0.033.
    assert!(
        rsa.abs() < 0.05 && knn < 0.1 && ck.abs() < 0.2,
        "seed {s}: {rsa} {knn} {ck}"
    );
}

// ---------- edge cases ----------

#[test]
fn two_and_three_examples() {
    let s = seed();
    let mut r = Rng::new(s);
    let (x, y) = pair(&mut r, 2, 4, 3, 1.0);
    // n = 2: one RDM entry has no rank correlation; one neighbour each, always shared.
    match value(&Rsa, &x, &y) {
        Err(SimError::Undefined(why)) => assert!(why.contains("3 examples"), "{why}"),
        other => panic!("seed {s}: {other:?}"),
    }
    assert_eq!(value(&MutualKnn { k: 10 }, &x, &y).unwrap(), 1.0);
    let c = value(&Cknna { k: 10 }, &x, &y).unwrap();
    assert!(
        close(c, ref_cknna(&x, &y, 1), 1e-12) && close(c, 1.0, 1e-12),
        "seed {s}: {c}"
    );
    // n = 3: three RDM entries; every example's 2 neighbours are all the others.
    let (x, y) = pair(&mut r, 3, 4, 3, 1.0);
    let got = value(&Rsa, &x, &y).unwrap();
    assert!(close(got, ref_rsa(&x, &y), 1e-9), "seed {s}: {got}");
    assert_eq!(value(&MutualKnn { k: 10 }, &x, &y).unwrap(), 1.0);
    let c = value(&Cknna { k: 10 }, &x, &y).unwrap();
    assert!(close(c, ref_cknna(&x, &y, 2), 1e-9), "seed {s}: {c}");
}

#[test]
fn constant_rows_zero_rows_constant_columns_and_bad_k() {
    let s = seed();
    let mut r = Rng::new(s);
    let (mut x, y) = pair(&mut r, 20, 6, 5, 1.0);
    // A constant column is fine for all three (it is not a constant row) ...
    let padded = concatenate(
        Axis(1),
        &[x.view(), Array2::from_elem((20, 1), 0.7f32).view()],
    )
    .unwrap();
    let v = value(&Rsa, &padded, &y).unwrap();
    assert!(close(v, ref_rsa(&padded, &y), 1e-9), "seed {s}");
    let v_pad = value(&Rsa, &padded, &y).unwrap();
    let v = value(&Cknna { k: 10 }, &padded, &y).unwrap();
    assert!(close(v, ref_cknna(&padded, &y, 10), 1e-9), "seed {s}");
    // ... but changes them: unlike CCA or CKA, they see each row's mean and norm.
    assert!(
        (value(&Rsa, &x, &y).unwrap() - v_pad).abs() > 1e-9,
        "seed {s}"
    );
    // A constant row: its correlations are 0/0, so RSA says which example; k-NN is defined.
    x.row_mut(7).fill(1.5);
    match value(&Rsa, &x, &y) {
        Err(SimError::Undefined(why)) => assert!(why.contains("example 7"), "{why}"),
        other => panic!("{other:?}"),
    }
    for a in [(&x, &y), (&y, &x)] {
        assert!(value(&Rsa, a.0, a.1).is_err());
    }
    let v = value(&MutualKnn { k: 5 }, &x, &y).unwrap();
    assert!(close(v, ref_mutual_knn(&x, &y, 5), 1e-12), "seed {s}");
    // A zero row has no direction: the k-NN measures say which example.
    x.row_mut(7).fill(0.0);
    for m in [&MutualKnn { k: 5 } as &dyn Measure, &Cknna { k: 5 }] {
        match value(m, &y, &x) {
            Err(SimError::Undefined(why)) => assert!(why.contains("example 7"), "{why}"),
            other => panic!("{}: {other:?}", m.name()),
        }
    }
    // One feature: every row is constant.
    let one = r.normal_matrix(20, 1);
    assert!(matches!(value(&Rsa, &one, &y), Err(SimError::Undefined(_))));
    // k = 0 is refused; k >= n clamps to n - 1.
    for m in [&MutualKnn { k: 0 } as &dyn Measure, &Cknna { k: 0 }] {
        assert!(matches!(value(m, &y, &y), Err(SimError::Undefined(_))));
    }
    assert_eq!(value(&MutualKnn { k: 1000 }, &padded, &y).unwrap(), 1.0);
    // Constant layers are undefined for all three, different n is an error.
    let c = Array2::from_elem((20, 4), 0.3f32);
    for m in [&Rsa as &dyn Measure, &MutualKnn { k: 5 }, &Cknna { k: 5 }] {
        match value(m, &c, &y) {
            Err(SimError::Undefined(why)) => assert!(why.contains("constant"), "{why}"),
            other => panic!("{}: {other:?}", m.name()),
        }
        assert_eq!(
            value(m, &y, &r.normal_matrix(21, 3)),
            Err(SimError::MismatchedExamples { a: 20, b: 21 })
        );
    }
    // RDMs of different lengths, or with NaN.
    assert!(rsa_between_rdms(&[1.0, 2.0, 3.0], &[1.0, 2.0]).is_err());
    assert!(rsa_between_rdms(&[1.0, f64::NAN, 3.0], &[1.0, 2.0, 3.0]).is_err());
}

#[test]
fn large_offsets_cancel() {
    let s = seed();
    let mut r = Rng::new(s);
    let (x, y) = pair(&mut r, 30, 8, 6, 1.0);
    // A big shared offset on every feature of X (a power of two: exact in f32 for these
    // magnitudes only to ~1e-4, so compare against the reference on the shifted data).
    let shifted = x.mapv(|v| v + 1024.0);
    for (got, want) in [
        (value(&Rsa, &shifted, &y).unwrap(), ref_rsa(&shifted, &y)),
        (
            value(&Cknna { k: 10 }, &shifted, &y).unwrap(),
            ref_cknna(&shifted, &y, 10),
        ),
    ] {
        assert!(close(got, want, 1e-7), "seed {s}: {got} vs {want}");
    }
}

/// Timings for the report: `cargo test --release -p strata-sim --test measures_alignment --
/// --ignored --nocapture`.
#[test]
#[ignore]
fn timing_2000_by_512() {
    let mut r = Rng::new(seed());
    let (x, y) = pair(&mut r, 2000, 512, 512, 1.0);
    let t = std::time::Instant::now();
    let (bx, by) = (basis(&x), basis(&y));
    println!("two bases: {:.3} s", t.elapsed().as_secs_f64());
    for name in ["rsa", "mutual_knn", "cknna", "cka_linear"] {
        let m = measure_by_name(name).unwrap();
        let t = std::time::Instant::now();
        let v = m.between(&bx, &by).unwrap();
        let first = t.elapsed().as_secs_f64();
        let t = std::time::Instant::now();
        m.between(&bx, &by).unwrap();
        println!(
            "{name}: {v:.4}, first pair {first:.3} s, cached {:.4} s",
            t.elapsed().as_secs_f64()
        );
    }
}

#[test]
fn neighbour_counts_are_chosen_by_name() {
    let mut r = Rng::new(seed());
    let (x, y) = pair(&mut r, 30, 6, 5, 0.5);
    for k in [1, 3, 7] {
        let m = strata_sim::measure_by_name(&format!("mutual_knn:k={k}")).unwrap();
        let got = value(m.as_ref(), &x, &y).unwrap();
        assert!(
            (got - ref_mutual_knn(&x, &y, k)).abs() < 1e-9,
            "mutual_knn k={k}"
        );
        let m = strata_sim::measure_by_name(&format!("cknna:k={k}")).unwrap();
        let got = value(m.as_ref(), &x, &y).unwrap();
        assert!((got - ref_cknna(&x, &y, k)).abs() < 1e-9, "cknna k={k}");
    }
    // The plain names keep the default k = 10.
    let plain = strata_sim::measure_by_name("mutual_knn").unwrap();
    let ten = strata_sim::measure_by_name("mutual_knn:k=10").unwrap();
    assert_eq!(
        value(plain.as_ref(), &x, &y).unwrap(),
        value(ten.as_ref(), &x, &y).unwrap()
    );
    for bad in [
        "mutual_knn:k=0",
        "mutual_knn:k=",
        "mutual_knn:k=x",
        "mutual_knn:j=3",
        "cknna:3",
        "rsa:k=3",
        "cka_linear:k=2",
    ] {
        assert!(strata_sim::measure_by_name(bad).is_none(), "{bad}");
    }
}
