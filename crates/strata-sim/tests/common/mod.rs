//! The f64 reference helpers shared by `measures.rs` and `reference.rs`: the seed, plain
//! dense matrices, their product and the biased HSIC with the explicit centering matrix.
#![allow(clippy::unwrap_used)] // in tests, a failed unwrap is a failed test, with its location
#![allow(clippy::needless_range_loop)] // reference code indexes like the formulas it transcribes

use ndarray::Array2;

/// The test seed: STRATA_TEST_SEED when set (to replay a failure), else the clock.
pub fn seed() -> u64 {
    std::env::var("STRATA_TEST_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_nanos() as u64)
                .unwrap_or(1)
        })
}

/// A dense f64 matrix, row by row.
pub type M = Vec<Vec<f64>>;

/// The rows of `x` in f64, unchanged (no centering).
pub fn to64(x: &Array2<f32>) -> M {
    x.rows()
        .into_iter()
        .map(|r| r.iter().map(|&v| v as f64).collect())
        .collect()
}

pub fn matmul(a: &M, b: &M) -> M {
    let (n, k, m) = (a.len(), b.len(), b[0].len());
    (0..n)
        .map(|i| {
            (0..m)
                .map(|j| (0..k).map(|l| a[i][l] * b[l][j]).sum())
                .collect()
        })
        .collect()
}

/// `tr(K H L H) / (n-1)²` with the explicit centering matrix `H = I - 11ᵀ/n`.
pub fn hsic_biased(k: &M, l: &M) -> f64 {
    let n = k.len();
    let h: M = (0..n)
        .map(|i| {
            (0..n)
                .map(|j| (i == j) as u8 as f64 - 1.0 / n as f64)
                .collect()
        })
        .collect();
    let khlh = matmul(&matmul(&matmul(k, &h), l), &h);
    (0..n).map(|i| khlh[i][i]).sum::<f64>() / ((n - 1) as f64).powi(2)
}

/// `a` within `tol` of `b`, relative to `1 + |b|`.
pub fn close(a: f64, b: f64, tol: f64) -> bool {
    (a - b).abs() <= tol * (1.0 + b.abs())
}
