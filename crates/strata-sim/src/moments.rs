//! The analytic permutation null of linear CKA: the exact mean, variance and skewness of CKA
//! over all `n!` permutations of B's examples, and a Pearson type III p-value.
//!
//! Biased linear CKA of column-centered `X`, `Y` is Escoufier's RV coefficient:
//! `RV = tr(K L) / √(tr(K²) tr(L²))` with `K = XXᵀ`, `L = YYᵀ` (both doubly centered). Under a
//! permutation `P` of B's rows only `t(P) = tr(K P L Pᵀ)` changes; the denominator does not.
//! The first three moments of `t` over all permutations are polynomials in a few invariants of
//! each matrix (Kazi-Aoual, Hitier, Sabatier & Lebreton 1995, "Refined approximations to
//! permutation tests for multivariate inference", CSDA 20; the form used by Josse, Pagès &
//! Husson 2008, "Testing the significance of the RV coefficient", CSDA 53, and by FactoMineR's
//! `coeffRV`):
//!
//! * `E[t] = tr K tr L / (n - 1)`;
//! * with `K₀ = K - c H`, `c = tr K / (n - 1)`, `H = I - 11ᵀ/n` (doubly centered, trace 0) and
//!   likewise `L₀`: `t - E[t] = tr(K₀ P L₀ Pᵀ)` exactly (`tr(H P L₀ Pᵀ) = tr L₀ = 0`), so the
//!   central moments of `t` are the raw moments of the trace-zero problem. strata evaluates the
//!   published formulas there, where every term with `tr K` vanishes; this removes the
//!   cancellation of `E[t³] - 3 E[t] Var - E[t]³` (that difference is about
//!   `(2/n)^{3/2}` times its terms) and leaves the invariants of `K₀`: `a₂ = tr K₀²`,
//!   `t₃ = tr K₀³`, `s₂ = Σ d_i²`, `s₃ = Σ d_i³` with `d = diag K₀`, `u = Σ_ij K₀_ij³`,
//!   `b = dᵀ K₀ d` and `r = Σ_i d_i (K₀²)_ii`;
//! * `Var t = 2 a₂ a₂' / ((n+1)(n-2)) + (n(n+1) s₂ - 2(n-1) a₂)(n(n+1) s₂' - 2(n-1) a₂') /
//!   ((n+1) n (n-1)(n-2)(n-3))` (needs `n >= 4`);
//! * `E[(t - E t)³]`: a degree-two polynomial in the invariants of the two sides divided by
//!   `n(n-1)(n-2)(n-3)(n-4)(n-5)` (needs `n >= 6`; see `third_moment`).
//!
//! `crates/strata-sim/tests/null_moments.rs` checks all three against a full enumeration of
//! the `n!` permutations at `n = 6` and `7`.
//!
//! Cost per layer (`n x p`, features scaled by their RMS): for `p < n`, the lower triangle of
//! `C = XᵀX` (`p² n / 2`) and of `C²` (`p³ / 2`) give `tr K²` and `tr K³`; the rest, `u` above
//! all (it has no feature-space form), comes from the lower triangle of `XXᵀ` in row blocks
//! (`n² p / 2`, never stored whole); for `p >= n`, `XXᵀ` (`n² p / 2`) and `K₀²` (`n³ / 2`).
//! Layers whose `n² p` is at most `2^28` are done in f64, larger ones with f32 products (sums
//! in f64). A pair then costs nothing: its observed value comes from the all-pairs CKA matrix.

use crate::null::{NullMatrix, NullMethod, NullOptions, PermutationTest};
use crate::special::{pearson3_upper_quantile, pearson3_upper_tail};
use crate::{cka_all_pairs, Estimator, Kernel, Progress, SimError};
use faer::linalg::matmul::matmul;
use faer::linalg::matmul::triangular::{self, BlockStructure};
use faer::{Accum, MatMut, MatRef, Par};
use ndarray::{Array2, ArrayView2};
use rayon::prelude::*;

/// Layers with `n² p` at most this are done in f64 throughout.
const PRECISE_WORK: usize = 1 << 28;

/// Floats of one row block of `XXᵀ` in the `u` pass.
const BLOCK_FLOATS: usize = 1 << 20;

/// f32 or f64, with the two products the invariants need.
trait Real: Copy + Send + Sync + Into<f64> + 'static {
    const ZERO: Self;
    fn of(v: f64) -> Self;
    /// `out (m x n) = A (m x k) Bᵀ (B: n x k)`, all row-major.
    fn a_bt(out: &mut [Self], a: &[Self], b: &[Self], mnk: (usize, usize, usize), par: Par);
    /// The lower triangle (diagonal included) of `out (m x m) = A Bᵀ` for `A`, `B` `m x k`
    /// row-major with a symmetric product; the upper triangle is left as it was.
    fn a_bt_lower(out: &mut [Self], a: &[Self], b: &[Self], mk: (usize, usize), par: Par);
}

macro_rules! real {
    ($t:ty) => {
        impl Real for $t {
            const ZERO: Self = 0.0;
            fn of(v: f64) -> Self {
                v as $t
            }
            fn a_bt(
                out: &mut [Self],
                a: &[Self],
                b: &[Self],
                (m, n, k): (usize, usize, usize),
                par: Par,
            ) {
                matmul(
                    MatMut::from_row_major_slice_mut(out, m, n),
                    Accum::Replace,
                    MatRef::from_row_major_slice(a, m, k),
                    MatRef::from_row_major_slice(b, n, k).transpose(),
                    1.0,
                    par,
                );
            }
            fn a_bt_lower(
                out: &mut [Self],
                a: &[Self],
                b: &[Self],
                (m, k): (usize, usize),
                par: Par,
            ) {
                triangular::matmul(
                    MatMut::from_row_major_slice_mut(out, m, m),
                    BlockStructure::TriangularLower,
                    Accum::Replace,
                    MatRef::from_row_major_slice(a, m, k),
                    BlockStructure::Rectangular,
                    MatRef::from_row_major_slice(b, m, k).transpose(),
                    BlockStructure::Rectangular,
                    1.0,
                    par,
                );
            }
        }
    };
}
real!(f32);
real!(f64);

/// The invariants of one layer's `K = XXᵀ` (X centered, divided by its RMS) and of its
/// trace-zero part `K₀ = K - cH` (see the module docs).
#[derive(Clone, Copy, Debug)]
struct Invariants {
    /// `tr K`.
    tt: f64,
    /// `tr K²`.
    t2: f64,
    /// `tr K₀²`.
    a2: f64,
    /// `Σ d_i²`, `d = diag K₀`.
    s2: f64,
    /// `Σ d_i³`.
    s3: f64,
    /// `tr K₀³`.
    t3: f64,
    /// `Σ_ij K₀_ij³`.
    u: f64,
    /// `dᵀ K₀ d`.
    b: f64,
    /// `Σ_i d_i (K₀²)_ii`.
    r: f64,
}

fn sum_sq<T: Real>(v: &[T]) -> f64 {
    v.iter()
        .map(|&x| {
            let x: f64 = x.into();
            x * x
        })
        .sum()
}

fn dot<T: Real>(a: &[T], b: &[T]) -> f64 {
    a.iter()
        .zip(b)
        .map(|(&x, &y)| {
            let (x, y): (f64, f64) = (x.into(), y.into());
            x * y
        })
        .sum()
}

fn alloc<T: Real>(len: Option<usize>) -> Result<Vec<T>, SimError> {
    let len = len
        .filter(|l| l.checked_mul(8).is_some_and(|b| b <= isize::MAX as usize))
        .ok_or_else(|| SimError::Shape {
            op: "moments null",
            msg: "a matrix of the moments null is too large to address".into(),
        })?;
    Ok(vec![T::ZERO; len])
}

/// `xᵀ` (`p x n`) of a row-major `n x p` matrix.
fn transpose<T: Real>(x: &[T], n: usize, p: usize) -> Result<Vec<T>, SimError> {
    let mut out: Vec<T> = alloc(n.checked_mul(p))?;
    for (i, row) in x.chunks_exact(p).enumerate() {
        for (j, &v) in row.iter().enumerate() {
            out[j * n + i] = v;
        }
    }
    Ok(out)
}

/// Copy the lower triangle of a square row-major matrix into its upper one.
fn mirror<T: Real>(m: &mut [T], n: usize) {
    for i in 0..n {
        for j in 0..i {
            m[j * n + i] = m[i * n + j];
        }
    }
}

/// `Σ_ij A_ij B_ij` for symmetric `A` (its lower triangle read) and `B` (whole).
fn lower_dot<T: Real>(a: &[T], b: &[T], n: usize) -> f64 {
    let mut s = 0.0;
    for i in 0..n {
        let off = dot(&a[i * n..i * n + i], &b[i * n..i * n + i]);
        let d: f64 = Into::<f64>::into(a[i * n + i]) * Into::<f64>::into(b[i * n + i]);
        s += 2.0 * off + d;
    }
    s
}

/// The invariants of one layer, or `None` when its `tr K` is 0 (a constant layer).
fn invariants<T: Real>(x: ArrayView2<f32>) -> Result<Option<Invariants>, SimError> {
    let (n, p) = x.dim();
    let nf = n as f64;
    let mut means = vec![0f64; p];
    for row in x.rows() {
        means.iter_mut().zip(row).for_each(|(m, &v)| *m += v as f64);
    }
    means.iter_mut().for_each(|m| *m /= nf);
    let ss: f64 = x
        .rows()
        .into_iter()
        .map(|row| {
            row.iter()
                .zip(&means)
                .map(|(&v, m)| (v as f64 - m).powi(2))
                .sum::<f64>()
        })
        .sum();
    let rms = (ss / (nf * p as f64)).sqrt();
    if !(rms > 0.0 && rms.is_finite()) {
        return Ok(None);
    }
    let mut xs: Vec<T> = alloc(n.checked_mul(p))?;
    for (i, row) in x.rows().into_iter().enumerate() {
        for (j, (&v, m)) in row.iter().zip(&means).enumerate() {
            xs[i * p + j] = T::of((v as f64 - m) / rms);
        }
    }
    let diag: Vec<f64> = xs.chunks_exact(p).map(sum_sq).collect();
    let tt: f64 = diag.iter().sum();
    if tt.is_nan() || tt <= 0.0 {
        return Ok(None);
    }
    let c = tt / (nf - 1.0);
    let d: Vec<f64> = diag.iter().map(|v| v - tt / nf).collect();
    let s2: f64 = d.iter().map(|v| v * v).sum();
    let s3: f64 = d.iter().map(|v| v * v * v).sum();
    let h = |i: usize, j: usize| (i == j) as u8 as f64 - 1.0 / nf;
    let inv = if p < n {
        // C = XᵀX (lower triangle, then mirrored): tr K² = ‖C‖², tr K³ = ⟨C², C⟩.
        let xt = transpose(&xs, n, p)?;
        let mut cm: Vec<T> = alloc(p.checked_mul(p))?;
        T::a_bt_lower(&mut cm, &xt, &xt, (p, n), Par::rayon(0));
        drop(xt);
        mirror(&mut cm, p);
        let t2 = sum_sq(&cm);
        let mut c2: Vec<T> = alloc(p.checked_mul(p))?;
        T::a_bt_lower(&mut c2, &cm, &cm, (p, p), Par::rayon(0));
        let t3_full = lower_dot(&c2, &cm, p);
        drop(c2);
        // The entries of K₀ from the lower triangle of XXᵀ, row block by row block: u, a₂,
        // b = Σ_ij d_i K₀_ij d_j and r = Σ_ij d_i K₀_ij².
        let rows = (BLOCK_FLOATS / n).clamp(16, n.max(16));
        let starts: Vec<usize> = (0..n).step_by(rows).collect();
        let parts = starts
            .par_iter()
            .map(|&i0| -> Result<[f64; 4], SimError> {
                let i1 = (i0 + rows).min(n);
                let mut gb: Vec<T> = alloc((i1 - i0).checked_mul(i1))?;
                T::a_bt(
                    &mut gb,
                    &xs[i0 * p..i1 * p],
                    &xs[..i1 * p],
                    (i1 - i0, i1, p),
                    Par::Seq,
                );
                let mut acc = [0f64; 4];
                for (bi, i) in (i0..i1).enumerate() {
                    let row = &gb[bi * i1..bi * i1 + i + 1];
                    let di = d[i];
                    let (mut u, mut a2, mut b, mut r) = (0.0, 0.0, 0.0, 0.0);
                    for ((&w, &dj), j) in row[..i].iter().zip(&d).zip(0..) {
                        let k0 = Into::<f64>::into(w) - c * h(i, j);
                        let k02 = k0 * k0;
                        u += k02 * k0;
                        a2 += k02;
                        b += k0 * dj;
                        r += k02 * (di + dj);
                    }
                    let k0 = Into::<f64>::into(row[i]) - c * h(i, i);
                    acc[0] += 2.0 * u + k0 * k0 * k0;
                    acc[1] += 2.0 * a2 + k0 * k0;
                    acc[2] += di * (2.0 * b + k0 * di);
                    acc[3] += r + di * k0 * k0;
                }
                Ok(acc)
            })
            .collect::<Result<Vec<[f64; 4]>, SimError>>()?;
        let [u, a2, b, r] = parts.iter().fold([0f64; 4], |mut s, v| {
            s.iter_mut().zip(v).for_each(|(s, v)| *s += v);
            s
        });
        // tr K₀³ = tr K³ - 3c tr K² + 3c² tr K - c³ (n - 1) = tr K³ - c tr K² - 2c a₂.
        let t3 = t3_full - c * t2 - 2.0 * c * a2;
        Invariants {
            tt,
            t2,
            a2,
            s2,
            s3,
            t3,
            u,
            b,
            r,
        }
    } else {
        let mut k0: Vec<T> = alloc(n.checked_mul(n))?;
        T::a_bt_lower(&mut k0, &xs, &xs, (n, p), Par::rayon(0));
        drop(xs);
        mirror(&mut k0, n);
        for i in 0..n {
            for j in 0..n {
                let v = &mut k0[i * n + j];
                *v = T::of(Into::<f64>::into(*v) - c * h(i, j));
            }
        }
        let a2 = sum_sq(&k0);
        let t2 = a2 + c * tt;
        let mut u = 0.0;
        let mut b = 0.0;
        let mut r = 0.0;
        for (i, row) in k0.chunks_exact(n).enumerate() {
            let (mut kd, mut sq) = (0.0, 0.0);
            for (j, &w) in row.iter().enumerate() {
                let w: f64 = w.into();
                u += w * w * w;
                kd += w * d[j];
                sq += w * w;
            }
            b += d[i] * kd;
            r += d[i] * sq;
        }
        // K₀² (lower triangle): tr K₀³ = ⟨K₀², K₀⟩.
        let mut k02: Vec<T> = alloc(n.checked_mul(n))?;
        T::a_bt_lower(&mut k02, &k0, &k0, (n, n), Par::rayon(0));
        let t3 = lower_dot(&k02, &k0, n);
        Invariants {
            tt,
            t2,
            a2,
            s2,
            s3,
            t3,
            u,
            b,
            r,
        }
    };
    Ok(Some(inv))
}

fn layer_invariants(x: ArrayView2<f32>) -> Result<Option<Invariants>, SimError> {
    let (n, p) = x.dim();
    let work = n.saturating_mul(n).saturating_mul(p);
    if work <= PRECISE_WORK {
        invariants::<f64>(x)
    } else {
        invariants::<f32>(x)
    }
}

/// `Var t` for `t = tr(K P L Pᵀ)` over uniform permutations `P` (`n >= 4`).
fn variance(n: f64, x: &Invariants, y: &Invariants) -> f64 {
    let first = 2.0 * x.a2 * y.a2 / ((n + 1.0) * (n - 2.0));
    let fx = n * (n + 1.0) * x.s2 - 2.0 * (n - 1.0) * x.a2;
    let fy = n * (n + 1.0) * y.s2 - 2.0 * (n - 1.0) * y.a2;
    first + fx * fy / ((n + 1.0) * n * (n - 1.0) * (n - 2.0) * (n - 3.0))
}

/// `E[(t - E t)³]` (`n >= 6`): Kazi-Aoual et al.'s third moment of `tr(K₀ P L₀ Pᵀ)`, with
/// every term carrying `tr K₀ = tr L₀ = 0` dropped.
fn third_moment(n: f64, x: &Invariants, y: &Invariants) -> f64 {
    let n2 = n * n;
    let n3 = n2 * n;
    let n4 = n3 * n;
    // Symmetric cross products of two invariants of the two sides.
    let cross = |f: fn(&Invariants) -> f64, g: fn(&Invariants) -> f64| f(x) * g(y) + g(x) * f(y);
    let s3 = |v: &Invariants| v.s3;
    let u = |v: &Invariants| v.u;
    let b = |v: &Invariants| v.b;
    let r = |v: &Invariants| v.r;
    let t3 = |v: &Invariants| v.t3;
    let two_u_three_b = |v: &Invariants| 2.0 * v.u + 3.0 * v.b;
    let total = n2 * (n + 1.0) * (n2 + 15.0 * n - 4.0) * x.s3 * y.s3
        + 4.0 * (n4 - 8.0 * n3 + 19.0 * n2 - 4.0 * n - 16.0) * x.u * y.u
        + 24.0 * (n2 - n - 4.0) * cross(u, b)
        + 6.0 * (n4 - 8.0 * n3 + 21.0 * n2 - 6.0 * n - 24.0) * x.b * y.b
        + 12.0 * (n4 - n3 - 8.0 * n2 + 36.0 * n - 48.0) * x.r * y.r
        + 24.0 * (n3 - 3.0 * n2 - 2.0 * n + 8.0) * cross(r, u)
        + 24.0 * (n3 - 2.0 * n2 - 3.0 * n + 12.0) * cross(r, b)
        - 2.0 * n * (n - 1.0) * (n2 - n + 4.0) * cross(two_u_three_b, s3)
        - 12.0 * n * (n - 1.0).powi(2) * (n + 4.0) * cross(r, s3)
        + 16.0 * n * (n - 1.0) * (n - 2.0) * cross(t3, s3)
        + 8.0 * (n3 - 9.0 * n2 + 26.0 * n - 22.0) * x.t3 * y.t3
        - 8.0 * (3.0 * n2 - 15.0 * n + 16.0) * cross(t3, u)
        - 8.0 * (3.0 * n2 - 15.0 * n + 24.0) * cross(t3, b)
        - 8.0 * (n - 2.0) * (3.0 * n2 - 15.0 * n + 24.0) * cross(t3, r);
    total / (n * (n - 1.0) * (n - 2.0) * (n - 3.0) * (n - 4.0) * (n - 5.0))
}

/// The test of one pair from the observed CKA and the two layers' invariants.
fn pair_test(n: usize, observed: f64, x: &Invariants, y: &Invariants) -> Option<PermutationTest> {
    let nf = n as f64;
    let norm = (x.t2 * y.t2).sqrt();
    if !(norm > 0.0 && norm.is_finite() && observed.is_finite()) {
        return None;
    }
    let mean = x.tt * y.tt / (nf - 1.0) / norm;
    let var_t = variance(nf, x, y).max(0.0);
    let sd = var_t.sqrt() / norm;
    let skew = if n >= 6 && var_t > 0.0 {
        let g = third_moment(nf, x, y) / var_t.powf(1.5);
        g.is_finite().then_some(g)
    } else {
        None
    };
    let (z, p_value, q95) = if sd > 0.0 && sd.is_finite() {
        let z = (observed - mean) / sd;
        let zq = pearson3_upper_quantile(0.05, skew);
        (Some(z), pearson3_upper_tail(z, skew), mean + sd * zq)
    } else {
        // No spread: every permutation gives the mean.
        (None, 1.0, mean)
    };
    Some(PermutationTest {
        observed,
        p_value,
        null_mean: mean,
        null_sd: sd,
        null_q95: q95,
        null_skewness: skew,
        z,
        corrected: observed - mean,
        permutations: 0,
        null: Vec::new(),
    })
}

/// The analytic permutation null of linear CKA for every layer of A (rows) against every
/// layer of B (columns; `b = None`: A with itself): the exact mean, standard deviation and
/// skewness of CKA over all `n!` permutations of B's examples, from a few invariants of each
/// layer (Kazi-Aoual et al. 1995; formulas and cost in docs/similarity.md).
///
/// Each cell is a [`PermutationTest`] with `permutations = 0` and no draws: `null_mean`,
/// `null_sd` and `null_skewness` are exact (up to rounding); `p_value` is the upper tail of a
/// Pearson type III distribution with those three moments (Josse, Pagès & Husson 2008), the
/// normal one when the skewness is undefined (`n < 6`) or about 0, and `null_q95` its 95%
/// quantile: both are approximations (a permutation distribution is discrete and not exactly
/// Pearson III). Unlike the draws' `(1 + #) / (B + 1)`, `p` can be far below `1 / B` and can
/// be 0 (observed beyond the support of a negatively skewed fit). `z = (observed -
/// null_mean) / null_sd`. Cost: one all-pairs CKA matrix plus, per layer, `O(p² n + n² p)`
/// (see the module docs); `progress` is told `(layers done, layers)`.
///
/// Errors: a kernel other than linear or the debiased estimator ([`SimError::InvalidOption`]:
/// the moments are those of the RV coefficient, which is biased linear CKA), fewer than 4
/// examples ([`SimError::InvalidOption`]: the variance divides by `n - 3`), and those of
/// [`crate::cka_all_pairs`] (different numbers of examples, no features, NaN or Inf). A
/// constant layer leaves its cells `None` and a note.
pub fn cka_null_moments_all_pairs(
    a: &[ArrayView2<f32>],
    b: Option<&[ArrayView2<f32>]>,
    kernel: Kernel,
    estimator: Estimator,
    progress: Progress,
) -> Result<NullMatrix, SimError> {
    if kernel != Kernel::Linear || estimator != Estimator::Biased {
        return Err(SimError::InvalidOption(format!(
            "the moments null is exact for linear CKA with the biased estimator (the RV \
             coefficient) only, not the {} kernel with the {} estimator; use the draws null",
            kernel.name(),
            estimator.name()
        )));
    }
    let owned =
        |l: &[ArrayView2<f32>]| -> Vec<Array2<f32>> { l.iter().map(|x| x.to_owned()).collect() };
    let matrix = cka_all_pairs(owned(a), b.map(owned), kernel, estimator, &|_, _| {})?;
    let n = matrix.n;
    if n < 4 {
        return Err(SimError::InvalidOption(format!(
            "the moments null needs at least 4 examples (its variance divides by n - 3), got {n}"
        )));
    }
    let total = (a.len() + b.map_or(0, <[_]>::len)) as u64;
    let done = std::sync::atomic::AtomicU64::new(0);
    let run = |layers: &[ArrayView2<f32>]| -> Result<Vec<Option<Invariants>>, SimError> {
        layers
            .iter()
            .map(|x| {
                let v = layer_invariants(*x);
                progress(
                    done.fetch_add(1, std::sync::atomic::Ordering::Relaxed) + 1,
                    total,
                );
                v
            })
            .collect()
    };
    let ia = run(a)?;
    let ib_owned = match b {
        Some(b) => Some(run(b)?),
        None => None,
    };
    let ib = ib_owned.as_deref().unwrap_or(&ia);
    let mut notes = matrix.notes.clone();
    let cells = matrix
        .values
        .iter()
        .enumerate()
        .map(|(i, row)| {
            row.iter()
                .enumerate()
                .map(|(j, v)| match (v, &ia[i], &ib[j]) {
                    (Some(v), Some(x), Some(y)) => pair_test(n, *v, x, y),
                    _ => None,
                })
                .collect::<Vec<_>>()
        })
        .collect::<Vec<_>>();
    for (i, row) in cells.iter().enumerate() {
        for (j, c) in row.iter().enumerate() {
            if c.is_none() && matrix.values[i][j].is_some() && notes.len() < 20 {
                notes.push(format!(
                    "A layer {i} vs B layer {j}: the moments null is undefined (a layer with no \
                     variance)"
                ));
            }
        }
    }
    Ok(NullMatrix {
        cells,
        notes,
        n,
        options: NullOptions {
            permutations: 0,
            seed: 0,
        },
        method: NullMethod::Moments,
    })
}

/// The analytic permutation null of linear CKA between `x` (`n x p`) and `y` (`n x q`): see
/// [`cka_null_moments_all_pairs`] (exact moments, approximate p-value).
///
/// Errors: those of [`cka_null_moments_all_pairs`], and [`SimError::Undefined`] when the CKA
/// or its null is undefined (a constant layer).
pub fn cka_null_moments(
    x: ArrayView2<f32>,
    y: ArrayView2<f32>,
    kernel: Kernel,
    estimator: Estimator,
) -> Result<PermutationTest, SimError> {
    let m = cka_null_moments_all_pairs(&[x], Some(&[y]), kernel, estimator, &|_, _| {})?;
    m.cells
        .into_iter()
        .next()
        .and_then(|r| r.into_iter().next())
        .flatten()
        .ok_or_else(|| {
            SimError::Undefined(format!(
                "CKA or its moments null is undefined: {}",
                m.notes.join("; ")
            ))
        })
}
