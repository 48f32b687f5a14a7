//! `strata_sim::gemm` against a naive f64 reference written here (triple loops), on random
//! inputs in standard and non-standard layouts, and every shape it cannot handle refused with
//! [`SimError::Shape`] instead of a panic.
#![allow(clippy::unwrap_used)] // in tests, a failed unwrap is a failed test, with its location
#![allow(clippy::needless_range_loop)] // reference code indexes like the formulas it transcribes

use ndarray::{s, Array2, ArrayView2};
use strata_data::rng::Rng;
use strata_sim::{gemm, SimError};

/// `Aᵀ B` in f64.
fn ref_at_b(a: ArrayView2<f32>, b: ArrayView2<f32>) -> Vec<Vec<f64>> {
    let mut out = vec![vec![0f64; b.ncols()]; a.ncols()];
    for i in 0..a.ncols() {
        for j in 0..b.ncols() {
            for r in 0..a.nrows() {
                out[i][j] += a[[r, i]] as f64 * b[[r, j]] as f64;
            }
        }
    }
    out
}

/// `A B` in f64.
fn ref_a_b(a: ArrayView2<f32>, b: ArrayView2<f32>) -> Vec<Vec<f64>> {
    ref_at_b(a.t(), b)
}

/// Largest |v| of a reference matrix (at least 1), for tolerances relative to its scale.
fn scale(m: &[Vec<f64>]) -> f64 {
    m.iter().flatten().fold(1f64, |s, v| s.max(v.abs()))
}

/// `got` equals `want` up to f32 rounding of `k`-term sums (relative to the largest value).
fn assert_close(got: &Array2<f32>, want: &[Vec<f64>], k: usize, what: &str) {
    assert_eq!(got.nrows(), want.len(), "{what}: rows");
    let tol = 1e-5 * (k.max(1) as f64).sqrt() * scale(want);
    for (i, row) in want.iter().enumerate() {
        assert_eq!(got.ncols(), row.len(), "{what}: columns");
        for (j, &w) in row.iter().enumerate() {
            let g = got[[i, j]] as f64;
            assert!((g - w).abs() <= tol, "{what}[{i}][{j}]: {g} vs {w}");
        }
    }
}

fn close(got: f64, want: f64, what: &str) {
    assert!(
        (got - want).abs() <= 1e-4 * want.abs().max(1.0),
        "{what}: {got} vs {want}"
    );
}

fn random(rng: &mut Rng, rows: usize, cols: usize) -> Array2<f32> {
    rng.normal_matrix(rows, cols)
}

/// The same values as `x` in a transposed (column-major) layout.
fn column_major(x: &Array2<f32>) -> Array2<f32> {
    let mut t = x.t().as_standard_layout().into_owned();
    t.swap_axes(0, 1);
    assert!(!t.is_standard_layout() || x.nrows() <= 1 || x.ncols() <= 1);
    t
}

#[test]
fn products_match_a_naive_f64_reference() {
    let mut rng = Rng::new(0x9e44);
    // Shapes around faer's blocking sizes, and the degenerate ones.
    for &(n, p, q) in &[
        (1, 1, 1),
        (7, 3, 5),
        (33, 17, 9),
        (130, 65, 70),
        (5, 0, 3),
        (0, 4, 2),
    ] {
        let x = random(&mut rng, n, p);
        let y = random(&mut rng, n, q);
        let k = random(&mut rng, n, n);
        // Standard layout, and the same matrices in column-major and strided layouts.
        let xc = column_major(&x);
        let wide = random(&mut rng, n, 2 * q);
        let ys = wide.slice(s![.., ..;2]);
        let want_xy = ref_at_b(x.view(), ys);
        for xv in [x.view(), xc.view()] {
            let what = format!("xt_y {n}x{p} {n}x{q}");
            assert_close(&gemm::xt_y(xv, ys).unwrap(), &want_xy, n, &what);
            let xy = ref_at_b(xv, y.view());
            assert_close(&gemm::xt_y(xv, y.view()).unwrap(), &xy, n, &what);

            let kx = ref_a_b(k.view(), xv);
            let what = format!("k_x {n}x{n} {n}x{p}");
            assert_close(&gemm::k_x(k.view(), xv).unwrap(), &kx, n, &what);
            let kt = k.t();
            assert_close(
                &gemm::k_x(kt, xv).unwrap(),
                &ref_a_b(kt, xv),
                n,
                &format!("{what} (Kᵀ)"),
            );

            let xtx = ref_at_b(xv, xv);
            let lower = gemm::xtx_lower(xv).unwrap();
            let want_lower: Vec<Vec<f64>> = xtx
                .iter()
                .enumerate()
                .map(|(i, r)| {
                    r.iter()
                        .enumerate()
                        .map(|(j, &v)| if j <= i { v } else { 0.0 })
                        .collect()
                })
                .collect();
            assert_close(&lower, &want_lower, n, &format!("xtx_lower {n}x{p}"));
            let f2: f64 = xtx.iter().flatten().map(|v| v * v).sum();
            close(gemm::xtx_frob2(xv).unwrap(), f2, "xtx_frob2");

            let g = ref_a_b(xv, xv.t());
            assert_close(&gemm::gram(xv).unwrap(), &g, p, &format!("gram {n}x{p}"));

            let d: f64 = x
                .iter()
                .zip(xv.iter())
                .map(|(&a, &b)| a as f64 * b as f64)
                .sum();
            close(gemm::dot(x.view(), xv).unwrap(), d, "dot");
            close(gemm::frob2(xv), d, "frob2");
        }
    }
}

#[test]
fn shapes_that_do_not_fit_are_errors_not_panics() {
    let a = Array2::<f32>::ones((4, 3));
    let b = Array2::<f32>::ones((5, 2));
    let sq = Array2::<f32>::ones((4, 4));
    let rect = Array2::<f32>::ones((4, 5));
    let is_shape = |r: Result<(), SimError>, op: &str, has: &str| match r {
        Err(e @ SimError::Shape { .. }) => {
            let m = e.to_string();
            assert!(m.starts_with(op) && m.contains(has), "{m}");
        }
        other => panic!("{op}: expected a shape error, got {other:?}"),
    };
    // Xᵀ Y with different numbers of rows.
    is_shape(
        gemm::xt_y(a.view(), b.view()).map(drop),
        "gemm::xt_y",
        "X is 4x3 and Y is 5x2",
    );
    // K X with a non-square K, and with X of the wrong height.
    is_shape(
        gemm::k_x(rect.view(), a.view()).map(drop),
        "gemm::k_x",
        "K is 4x5; it must be square",
    );
    is_shape(
        gemm::k_x(sq.view(), b.view()).map(drop),
        "gemm::k_x",
        "X is 5x2",
    );
    // ⟨A, B⟩ of two shapes, including two with the same number of elements.
    is_shape(
        gemm::dot(a.view(), b.view()).map(drop),
        "gemm::dot",
        "A is 4x3 and B is 5x2",
    );
    let a34 = Array2::<f32>::ones((3, 4));
    is_shape(
        gemm::dot(a.view(), a34.view()).map(drop),
        "gemm::dot",
        "A is 4x3 and B is 3x4",
    );
    // Results too large to address, from inputs that hold no data at all.
    let none: [f32; 0] = [];
    let wide = ArrayView2::from_shape((0, 1usize << 40), &none).unwrap();
    let tall = ArrayView2::from_shape((1usize << 40, 0), &none).unwrap();
    is_shape(
        gemm::xtx_lower(wide).map(drop),
        "gemm::xtx_lower",
        "too large",
    );
    is_shape(
        gemm::xtx_frob2(wide).map(drop),
        "gemm::xtx_lower",
        "too large",
    );
    is_shape(gemm::gram(tall).map(drop), "gemm::gram", "too large");
    is_shape(gemm::xt_y(wide, wide).map(drop), "gemm::xt_y", "too large");
}
