//! The few matrix products CKA needs, on faer, over ndarray's row-major memory without copies.
//!
//! Products run in f32 (faer's blocked GEMM, all cores); every sum that turns them into a
//! scalar (a Frobenius norm, a trace) accumulates in f64, because those sums run over up to
//! `p²` or `n²` terms.

use faer::linalg::matmul::matmul;
use faer::linalg::matmul::triangular::{self, BlockStructure};
use faer::{Accum, MatMut, MatRef, Par};
use ndarray::{Array2, ArrayView2};
use rayon::prelude::*;

fn view<'a>(x: &'a ArrayView2<'_, f32>) -> MatRef<'a, f32> {
    let s = x
        .as_slice()
        .expect("representations are kept in standard layout");
    MatRef::from_row_major_slice(s, x.nrows(), x.ncols())
}

fn par() -> Par {
    Par::rayon(0)
}

/// `Xᵀ Y` (`p_x x p_y`).
pub fn xt_y(x: ArrayView2<f32>, y: ArrayView2<f32>) -> Array2<f32> {
    let mut out = Array2::<f32>::zeros((x.ncols(), y.ncols()));
    let (r, c) = out.dim();
    let dst = MatMut::from_row_major_slice_mut(out.as_slice_mut().expect("fresh"), r, c);
    matmul(
        dst,
        Accum::Replace,
        view(&x).transpose(),
        view(&y),
        1.0,
        par(),
    );
    out
}

/// `K X` for a square `K` (`n x n`) and `X` (`n x p`).
pub fn k_x(k: ArrayView2<f32>, x: ArrayView2<f32>) -> Array2<f32> {
    let mut out = Array2::<f32>::zeros((k.nrows(), x.ncols()));
    let (r, c) = out.dim();
    let dst = MatMut::from_row_major_slice_mut(out.as_slice_mut().expect("fresh"), r, c);
    matmul(dst, Accum::Replace, view(&k), view(&x), 1.0, par());
    out
}

/// `‖XᵀX‖²_F`, computing only the lower triangle of the symmetric product (half the work).
pub fn xtx_frob2(x: ArrayView2<f32>) -> f64 {
    let out = xtx_lower(x);
    out.axis_iter(ndarray::Axis(0))
        .into_par_iter()
        .enumerate()
        .map(|(i, row)| {
            let off: f64 = row.iter().take(i).map(|&v| (v as f64) * (v as f64)).sum();
            let d = row[i] as f64;
            2.0 * off + d * d
        })
        .sum()
}

/// The lower triangle (diagonal included) of `XᵀX`; the upper part is left zero.
pub fn xtx_lower(x: ArrayView2<f32>) -> Array2<f32> {
    let p = x.ncols();
    let mut out = Array2::<f32>::zeros((p, p));
    let dst = MatMut::from_row_major_slice_mut(out.as_slice_mut().expect("fresh"), p, p);
    triangular::matmul(
        dst,
        BlockStructure::TriangularLower,
        Accum::Replace,
        view(&x).transpose(),
        BlockStructure::Rectangular,
        view(&x),
        BlockStructure::Rectangular,
        1.0,
        par(),
    );
    out
}

/// The Gram matrix `X Xᵀ` (`n x n`), computed as a lower triangle and mirrored.
pub fn gram(x: ArrayView2<f32>) -> Array2<f32> {
    let n = x.nrows();
    let mut out = Array2::<f32>::zeros((n, n));
    {
        let dst = MatMut::from_row_major_slice_mut(out.as_slice_mut().expect("fresh"), n, n);
        triangular::matmul(
            dst,
            BlockStructure::TriangularLower,
            Accum::Replace,
            view(&x),
            BlockStructure::Rectangular,
            view(&x).transpose(),
            BlockStructure::Rectangular,
            1.0,
            par(),
        );
    }
    for i in 0..n {
        for j in 0..i {
            out[[j, i]] = out[[i, j]];
        }
    }
    out
}

/// `Σ a_ij b_ij` in f64.
pub fn dot(a: ArrayView2<f32>, b: ArrayView2<f32>) -> f64 {
    let a = a.as_slice().expect("standard layout");
    let b = b.as_slice().expect("standard layout");
    a.par_chunks(4096)
        .zip(b.par_chunks(4096))
        .map(|(x, y)| {
            x.iter()
                .zip(y)
                .map(|(&u, &v)| u as f64 * v as f64)
                .sum::<f64>()
        })
        .sum()
}

/// `‖A‖²_F` in f64.
pub fn frob2(a: ArrayView2<f32>) -> f64 {
    dot(a, a)
}
