//! The few matrix products CKA needs, on faer, over ndarray's row-major memory without copies.
//!
//! Products run in f32 (faer's blocked GEMM, all cores); every sum that turns them into a
//! scalar (a Frobenius norm, a trace) accumulates in f64, because those sums run over up to
//! `p²` or `n²` terms.
//!
//! Inputs may have any memory layout: a view in standard (row-major, contiguous) layout is read
//! in place, any other (a transposed or strided view) is copied once into standard layout
//! first. Shapes that do not fit the product (inner dimensions that differ, a non-square `K`,
//! two matrices of different shapes for [`dot`]) and results too large to address are
//! [`SimError::Shape`] errors, never panics.

use crate::SimError;
use faer::linalg::matmul::matmul;
use faer::linalg::matmul::triangular::{self, BlockStructure};
use faer::{Accum, MatMut, MatRef, Par};
use ndarray::{Array2, ArrayView2, CowArray, Ix2};
use rayon::prelude::*;

/// `x` in standard layout: borrowed when it already is, copied otherwise.
fn standard<'a>(x: &'a ArrayView2<'_, f32>) -> CowArray<'a, f32, Ix2> {
    x.as_standard_layout()
}

/// A faer view of a matrix in standard layout.
fn view<'a>(x: &'a CowArray<'_, f32, Ix2>) -> MatRef<'a, f32> {
    let s = x
        .as_slice()
        .expect("as_standard_layout gives a contiguous row-major array");
    MatRef::from_row_major_slice(s, x.nrows(), x.ncols())
}

/// A zeroed `rows x cols` f32 result, or an error naming `op` when it cannot be addressed.
fn output(op: &'static str, rows: usize, cols: usize) -> Result<Array2<f32>, SimError> {
    let fits = rows
        .checked_mul(cols)
        .and_then(|e| e.checked_mul(std::mem::size_of::<f32>()))
        .is_some_and(|bytes| bytes <= isize::MAX as usize);
    if !fits {
        return Err(SimError::Shape {
            op,
            msg: format!("a {rows}x{cols} f32 result is too large to address"),
        });
    }
    Ok(Array2::<f32>::zeros((rows, cols)))
}

/// A faer view of a freshly allocated result.
fn view_mut(out: &mut Array2<f32>) -> MatMut<'_, f32> {
    let (r, c) = out.dim();
    MatMut::from_row_major_slice_mut(
        out.as_slice_mut()
            .expect("a fresh array is in standard layout"),
        r,
        c,
    )
}

fn par() -> Par {
    Par::rayon(0)
}

/// `Xᵀ Y` (`p_x x p_y`) for `X` (`n x p_x`) and `Y` (`n x p_y`): the same `n` examples.
pub fn xt_y(x: ArrayView2<f32>, y: ArrayView2<f32>) -> Result<Array2<f32>, SimError> {
    const OP: &str = "gemm::xt_y";
    if x.nrows() != y.nrows() {
        return Err(SimError::Shape {
            op: OP,
            msg: format!(
                "X is {}x{} and Y is {}x{}; both need the same number of rows (examples)",
                x.nrows(),
                x.ncols(),
                y.nrows(),
                y.ncols()
            ),
        });
    }
    let mut out = output(OP, x.ncols(), y.ncols())?;
    let (x, y) = (standard(&x), standard(&y));
    matmul(
        view_mut(&mut out),
        Accum::Replace,
        view(&x).transpose(),
        view(&y),
        1.0,
        par(),
    );
    Ok(out)
}

/// `K X` for a square `K` (`n x n`) and `X` (`n x p`).
pub fn k_x(k: ArrayView2<f32>, x: ArrayView2<f32>) -> Result<Array2<f32>, SimError> {
    const OP: &str = "gemm::k_x";
    let msg = if k.nrows() != k.ncols() {
        Some(format!(
            "K is {}x{}; it must be square",
            k.nrows(),
            k.ncols()
        ))
    } else if x.nrows() != k.ncols() {
        Some(format!(
            "K is {}x{} and X is {}x{}; X needs as many rows as K",
            k.nrows(),
            k.ncols(),
            x.nrows(),
            x.ncols()
        ))
    } else {
        None
    };
    if let Some(msg) = msg {
        return Err(SimError::Shape { op: OP, msg });
    }
    let mut out = output(OP, k.nrows(), x.ncols())?;
    let (k, x) = (standard(&k), standard(&x));
    matmul(
        view_mut(&mut out),
        Accum::Replace,
        view(&k),
        view(&x),
        1.0,
        par(),
    );
    Ok(out)
}

/// `‖XᵀX‖²_F`, computing only the lower triangle of the symmetric product (half the work).
pub fn xtx_frob2(x: ArrayView2<f32>) -> Result<f64, SimError> {
    let out = xtx_lower(x)?;
    Ok(out
        .axis_iter(ndarray::Axis(0))
        .into_par_iter()
        .enumerate()
        .map(|(i, row)| {
            let off: f64 = row.iter().take(i).map(|&v| (v as f64) * (v as f64)).sum();
            let d = row[i] as f64;
            2.0 * off + d * d
        })
        .sum())
}

/// The lower triangle (diagonal included) of `XᵀX` (`p x p` for `X` `n x p`); the upper part
/// is left zero.
pub fn xtx_lower(x: ArrayView2<f32>) -> Result<Array2<f32>, SimError> {
    let p = x.ncols();
    let mut out = output("gemm::xtx_lower", p, p)?;
    let x = standard(&x);
    triangular::matmul(
        view_mut(&mut out),
        BlockStructure::TriangularLower,
        Accum::Replace,
        view(&x).transpose(),
        BlockStructure::Rectangular,
        view(&x),
        BlockStructure::Rectangular,
        1.0,
        par(),
    );
    Ok(out)
}

/// The Gram matrix `X Xᵀ` (`n x n` for `X` `n x p`), computed as a lower triangle and mirrored.
pub fn gram(x: ArrayView2<f32>) -> Result<Array2<f32>, SimError> {
    let n = x.nrows();
    let mut out = output("gemm::gram", n, n)?;
    {
        let x = standard(&x);
        triangular::matmul(
            view_mut(&mut out),
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
    Ok(out)
}

/// `Σ a_ij b_ij` in f64, for `A` and `B` of one shape.
pub fn dot(a: ArrayView2<f32>, b: ArrayView2<f32>) -> Result<f64, SimError> {
    if a.dim() != b.dim() {
        return Err(SimError::Shape {
            op: "gemm::dot",
            msg: format!(
                "A is {}x{} and B is {}x{}; both need the same shape",
                a.nrows(),
                a.ncols(),
                b.nrows(),
                b.ncols()
            ),
        });
    }
    let (a, b) = (standard(&a), standard(&b));
    Ok(dot_slices(
        a.as_slice().expect("standard layout"),
        b.as_slice().expect("standard layout"),
    ))
}

/// `Σ a_i b_i` in f64 over two slices of one length, in parallel chunks.
fn dot_slices(a: &[f32], b: &[f32]) -> f64 {
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

/// `‖A‖²_F` in f64 (any shape: it cannot fail).
pub fn frob2(a: ArrayView2<f32>) -> f64 {
    let a = standard(&a);
    let s = a.as_slice().expect("standard layout");
    dot_slices(s, s)
}
