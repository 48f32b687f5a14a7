//! The few vector kernels the predictor needs, each with a fixed evaluation order.
//!
//! Determinism rule: a floating-point sum must be evaluated in the same order on every machine.
//! [`dot`] therefore keeps exactly [`LANES`] partial sums, one per position modulo `LANES`, and
//! combines them in a fixed tree at the end. That is the shape a SIMD loop has anyway, so LLVM
//! vectorizes it for SSE2, AVX2, AVX-512 or NEON without reordering a single addition. The
//! other kernels are element-wise (each output element has its own serial accumulation), which
//! vectorizes across elements without touching the order either.

/// Number of independent partial sums in [`dot`]. Fixed, never derived from the target's
/// vector width: changing it changes the results.
pub(super) const LANES: usize = 8;

/// `Σ a[i] * b[i]` over the common length, as [`LANES`] strided partial sums combined pairwise,
/// then the tail (`len % LANES` products, summed serially) added last.
#[inline]
pub(super) fn dot(a: &[f32], b: &[f32]) -> f32 {
    debug_assert_eq!(a.len(), b.len());
    let n = a.len().min(b.len());
    let (a, b) = (&a[..n], &b[..n]);
    let ca = a.chunks_exact(LANES);
    let cb = b.chunks_exact(LANES);
    let (ta, tb) = (ca.remainder(), cb.remainder());
    let mut acc = [0.0f32; LANES];
    for (x, y) in ca.zip(cb) {
        for ((s, &p), &q) in acc.iter_mut().zip(x).zip(y) {
            *s += p * q;
        }
    }
    let mut tail = 0.0f32;
    for (&p, &q) in ta.iter().zip(tb) {
        tail += p * q;
    }
    (((acc[0] + acc[1]) + (acc[2] + acc[3])) + ((acc[4] + acc[5]) + (acc[6] + acc[7]))) + tail
}

/// `Σ x[i]`, with the same lane structure as [`dot`] (used for the softmax normalizer).
#[inline]
pub(super) fn sum(x: &[f32]) -> f32 {
    let c = x.chunks_exact(LANES);
    let t = c.remainder();
    let mut acc = [0.0f32; LANES];
    for v in c {
        for (s, &p) in acc.iter_mut().zip(v) {
            *s += p;
        }
    }
    let mut tail = 0.0f32;
    for &p in t {
        tail += p;
    }
    (((acc[0] + acc[1]) + (acc[2] + acc[3])) + ((acc[4] + acc[5]) + (acc[6] + acc[7]))) + tail
}

/// `y[i] += a * x[i]`: element-wise, so vectorization cannot change any result.
#[inline]
pub(super) fn axpy(y: &mut [f32], a: f32, x: &[f32]) {
    debug_assert_eq!(y.len(), x.len());
    for (yi, &xi) in y.iter_mut().zip(x) {
        *yi += a * xi;
    }
}

/// `y[i] += x[i]`.
#[inline]
pub(super) fn add(y: &mut [f32], x: &[f32]) {
    debug_assert_eq!(y.len(), x.len());
    for (yi, &xi) in y.iter_mut().zip(x) {
        *yi += xi;
    }
}

/// `y += Wᵀ d` for a row-major `W` with `d.len()` rows of `y.len()` columns: rows are added in
/// index order, so each `y[j]` is a serial sum in a fixed order.
#[inline]
pub(super) fn add_mat_t_vec(y: &mut [f32], w: &[f32], d: &[f32]) {
    let cols = y.len();
    if cols == 0 {
        return;
    }
    for (row, &dr) in w.chunks_exact(cols).zip(d) {
        axpy(y, dr, row);
    }
}

/// `G += d xᵀ` for a row-major gradient `G` with `d.len()` rows of `x.len()` columns.
#[inline]
pub(super) fn add_outer(g: &mut [f32], d: &[f32], x: &[f32]) {
    let cols = x.len();
    if cols == 0 {
        return;
    }
    for (row, &dr) in g.chunks_exact_mut(cols).zip(d) {
        axpy(row, dr, x);
    }
}

/// `y[r] = dot(W[r], x)` for a row-major `W` with `y.len()` rows of `x.len()` columns.
#[inline]
pub(super) fn mat_vec(y: &mut [f32], w: &[f32], x: &[f32]) {
    let cols = x.len();
    if cols == 0 {
        y.fill(0.0);
        return;
    }
    for (yr, row) in y.iter_mut().zip(w.chunks_exact(cols)) {
        *yr = dot(row, x);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dot_matches_f64_for_all_tail_lengths() {
        for n in 0..40 {
            let a: Vec<f32> = (0..n).map(|i| (i as f32 * 0.37).sin()).collect();
            let b: Vec<f32> = (0..n).map(|i| (i as f32 * 0.11).cos()).collect();
            let want: f64 = a.iter().zip(&b).map(|(&x, &y)| x as f64 * y as f64).sum();
            assert!((dot(&a, &b) as f64 - want).abs() < 1e-5, "n={n}");
            let s: f64 = a.iter().map(|&x| x as f64).sum();
            assert!((sum(&a) as f64 - s).abs() < 1e-5, "n={n}");
        }
    }

    #[test]
    fn matrix_kernels_agree_with_naive() {
        let (rows, cols) = (5, 11);
        let w: Vec<f32> = (0..rows * cols).map(|i| (i as f32 * 0.3).sin()).collect();
        let x: Vec<f32> = (0..cols).map(|i| i as f32 * 0.1 - 0.4).collect();
        let d: Vec<f32> = (0..rows).map(|i| 0.5 - i as f32 * 0.2).collect();
        let mut y = vec![0.0; rows];
        mat_vec(&mut y, &w, &x);
        let mut yt = vec![0.0; cols];
        add_mat_t_vec(&mut yt, &w, &d);
        let mut g = vec![0.0; rows * cols];
        add_outer(&mut g, &d, &x);
        for r in 0..rows {
            let want: f32 = (0..cols).map(|c| w[r * cols + c] * x[c]).sum();
            assert!((y[r] - want).abs() < 1e-5);
            for c in 0..cols {
                assert_eq!(g[r * cols + c], d[r] * x[c]);
            }
        }
        for c in 0..cols {
            let want: f32 = (0..rows).map(|r| w[r * cols + c] * d[r]).sum();
            assert!((yt[c] - want).abs() < 1e-5);
        }
    }
}
