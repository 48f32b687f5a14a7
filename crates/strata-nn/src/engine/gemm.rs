//! Row-major matrix products on faer, the three shapes a layer's forward and backward passes
//! need. Slices are row-major and exactly as long as their shapes; `acc` adds into `c` instead
//! of replacing it.

use faer::{Accum, MatMut, MatRef, Par};

fn accum(acc: bool) -> Accum {
    if acc {
        Accum::Add
    } else {
        Accum::Replace
    }
}

/// `c (m x n) = a (m x k) · b (k x n)`.
pub(super) fn ab(
    c: &mut [f32],
    a: &[f32],
    b: &[f32],
    (m, k, n): (usize, usize, usize),
    acc: bool,
    par: Par,
) {
    if m == 0 || n == 0 {
        return;
    }
    let dst = MatMut::from_row_major_slice_mut(&mut c[..m * n], m, n);
    let lhs = MatRef::from_row_major_slice(&a[..m * k], m, k);
    let rhs = MatRef::from_row_major_slice(&b[..k * n], k, n);
    faer::linalg::matmul::matmul(dst, accum(acc), lhs, rhs, 1.0, par);
}

/// `c (k x n) = aᵀ · b` for `a (m x k)`, `b (m x n)`: a weight gradient from a layer's input
/// and its output's gradient.
pub(super) fn atb(
    c: &mut [f32],
    a: &[f32],
    b: &[f32],
    (m, k, n): (usize, usize, usize),
    acc: bool,
    par: Par,
) {
    if k == 0 || n == 0 {
        return;
    }
    let dst = MatMut::from_row_major_slice_mut(&mut c[..k * n], k, n);
    let lhs = MatRef::from_row_major_slice(&a[..m * k], m, k).transpose();
    let rhs = MatRef::from_row_major_slice(&b[..m * n], m, n);
    faer::linalg::matmul::matmul(dst, accum(acc), lhs, rhs, 1.0, par);
}

/// `c (m x k) = a · bᵀ` for `a (m x n)`, `b (k x n)`: an input gradient from the output's
/// gradient and the weights.
pub(super) fn abt(
    c: &mut [f32],
    a: &[f32],
    b: &[f32],
    (m, n, k): (usize, usize, usize),
    acc: bool,
    par: Par,
) {
    if m == 0 || k == 0 {
        return;
    }
    let dst = MatMut::from_row_major_slice_mut(&mut c[..m * k], m, k);
    let lhs = MatRef::from_row_major_slice(&a[..m * n], m, n);
    let rhs = MatRef::from_row_major_slice(&b[..k * n], k, n).transpose();
    faer::linalg::matmul::matmul(dst, accum(acc), lhs, rhs, 1.0, par);
}
