//! A representation turned, once, into what every pair involving it needs.

use crate::{gemm, Estimator, Kernel, SimError};
use ndarray::{Array2, ArrayView2, Axis};
use rayon::prelude::*;

/// One layer ready for HSIC: centered features or a (centered / zero-diagonal) Gram matrix,
/// plus the row sums the debiased estimator needs.
///
/// With `K̃` the kernel matrix with its diagonal set to zero, the unbiased estimator is
/// `[tr(K̃L̃) + (1ᵀK̃1)(1ᵀL̃1)/((n-1)(n-2)) - 2/(n-2) (K̃1)ᵀ(L̃1)] / (n(n-3))`, so each side keeps
/// `r = K̃1` and `s = 1ᵀK̃1`; only `tr(K̃L̃)` couples the two sides.
#[derive(Clone, Debug)]
pub struct Prepared {
    pub(crate) n: usize,
    pub(crate) form: Form,
    pub(crate) estimator: Estimator,
    /// `r = K̃1` (debiased only).
    pub(crate) r: Vec<f64>,
    /// `s = 1ᵀK̃1` (debiased only).
    pub(crate) s: f64,
    /// The layer is stored divided by its RMS `c` so that f32 products neither overflow nor
    /// underflow; linear HSIC is bilinear in `c²`, so estimates are multiplied back by `c²` in
    /// f64. 1 for the RBF kernel, which the median heuristic makes scale-free.
    pub(crate) scale2: f64,
}

#[derive(Clone, Debug)]
pub(crate) enum Form {
    /// Column-centered features `Xc` (linear kernel, `p < n`) and the squared row norms, which
    /// are the diagonal of `K = Xc Xcᵀ`.
    Features { x: Array2<f32>, diag: Vec<f64> },
    /// Biased: the doubly centered `HKH`. Debiased: `K̃` (zero diagonal).
    Gram { k: Array2<f32> },
}

/// Bytes a prepared layer of `p` features over `n` examples holds: what the caller must budget
/// before preparing many layers at once.
pub fn prepared_bytes(n: usize, p: usize, kernel: Kernel) -> usize {
    let gram = matches!(kernel, Kernel::Rbf { .. }) || p >= n;
    if gram {
        n * n * 4
    } else {
        n * p * 4
    }
}

/// Subtract the column means (accumulated in f64) in place.
pub(crate) fn center_columns(x: &mut Array2<f32>) {
    let n = x.nrows();
    let p = x.ncols();
    let sums = x
        .axis_chunks_iter(Axis(0), 1024)
        .into_par_iter()
        .map(|chunk| {
            let mut s = vec![0f64; p];
            for row in chunk.rows() {
                for (acc, &v) in s.iter_mut().zip(row.iter()) {
                    *acc += v as f64;
                }
            }
            s
        })
        .reduce(
            || vec![0f64; p],
            |mut a, b| {
                a.iter_mut().zip(&b).for_each(|(x, y)| *x += y);
                a
            },
        );
    let means: Vec<f32> = sums.iter().map(|s| (s / n as f64) as f32).collect();
    x.axis_iter_mut(Axis(0))
        .into_par_iter()
        .for_each(|mut row| {
            row.iter_mut().zip(&means).for_each(|(v, m)| *v -= m);
        });
}

pub(crate) fn row_sq_norms(x: ArrayView2<f32>) -> Vec<f64> {
    x.axis_iter(Axis(0))
        .into_par_iter()
        .map(|r| r.iter().map(|&v| v as f64 * v as f64).sum())
        .collect()
}

/// Median of the values, as NumPy defines it (mean of the two middle values for even counts).
pub(crate) fn median(mut v: Vec<f32>) -> f64 {
    let len = v.len();
    if len == 0 {
        return f64::NAN;
    }
    let mid = len / 2;
    let (lower, m, _) = v.select_nth_unstable_by(mid, |a, b| a.total_cmp(b));
    let hi = *m as f64;
    if len % 2 == 1 {
        return hi;
    }
    let lo = lower.iter().copied().fold(f32::NEG_INFINITY, f32::max) as f64;
    (lo + hi) / 2.0
}

/// The checks every backend makes before preparing a layer: features present, enough
/// examples for the estimator, every value finite.
pub fn check_layer(x: ArrayView2<f32>, estimator: Estimator) -> Result<(), SimError> {
    let (n, p) = x.dim();
    if p == 0 {
        return Err(SimError::NoFeatures);
    }
    if n < estimator.min_examples() {
        return Err(SimError::TooFewExamples {
            n,
            need: estimator.min_examples(),
            estimator: estimator.name(),
        });
    }
    if let Some((i, _)) = x.indexed_iter().find(|(_, v)| !v.is_finite()) {
        return Err(SimError::NonFinite {
            example: i.0,
            feature: i.1,
        });
    }
    Ok(())
}

/// The per-layer terms that turn a trace into an HSIC estimate (see [`Prepared`]).
#[derive(Clone, Copy, Debug)]
pub struct LayerTerms<'a> {
    /// The squared factor the layer was divided by (`1` if unscaled).
    pub scale2: f64,
    /// `r = K̃1` (debiased only; empty for biased).
    pub r: &'a [f64],
    /// `s = 1ᵀK̃1` (debiased only).
    pub s: f64,
}

/// Turn `t = tr(K̃L̃)` (debiased) or `tr(KcLc)` (biased) over `n` examples into the estimate.
/// One formula for every backend, so that the CPU and GPU paths differ only in how they get
/// `t`, `r` and `s`.
pub fn hsic_estimate(
    estimator: Estimator,
    n: usize,
    t: f64,
    a: LayerTerms<'_>,
    b: LayerTerms<'_>,
) -> f64 {
    let n = n as f64;
    let scale = a.scale2 * b.scale2;
    scale
        * match estimator {
            Estimator::Biased => t / ((n - 1.0) * (n - 1.0)),
            Estimator::Debiased => {
                let rr: f64 = a.r.iter().zip(b.r).map(|(x, y)| x * y).sum();
                (t + a.s * b.s / ((n - 1.0) * (n - 2.0)) - 2.0 / (n - 2.0) * rr) / (n * (n - 3.0))
            }
        }
}

impl Prepared {
    /// Prepare `x` (`n x p`, consumed and centered in place) for `kernel` and `estimator`.
    pub fn new(mut x: Array2<f32>, kernel: Kernel, estimator: Estimator) -> Result<Self, SimError> {
        let (n, p) = x.dim();
        check_layer(x.view(), estimator)?;
        if !x.is_standard_layout() {
            x = x.as_standard_layout().into_owned();
        }
        center_columns(&mut x);
        let ms = x.iter().map(|&v| v as f64 * v as f64).sum::<f64>() / (n * p) as f64;
        let rms = ms.sqrt();
        let mut scale2 = 1.0;
        if rms > 0.0 && rms.is_finite() {
            // Divide in f64: 1/rms overflows f32 for rms below ~3e-39.
            x.par_mapv_inplace(|v| (v as f64 / rms) as f32);
            if kernel == Kernel::Linear {
                scale2 = ms;
            }
        }
        let form = match kernel {
            Kernel::Linear if p < n => {
                // diag(K) enters only the debiased estimator.
                let diag = match estimator {
                    Estimator::Debiased => row_sq_norms(x.view()),
                    Estimator::Biased => Vec::new(),
                };
                Form::Features { x, diag }
            }
            Kernel::Linear => Form::Gram {
                k: gemm::gram(x.view())?,
            },
            Kernel::Rbf { threshold } => Form::Gram {
                k: rbf_gram(x.view(), threshold)?,
            },
        };
        let mut prep = Prepared {
            n,
            form,
            estimator,
            r: Vec::new(),
            s: 0.0,
            scale2,
        };
        match estimator {
            Estimator::Biased => {
                if let Form::Gram { k } = &mut prep.form {
                    if matches!(kernel, Kernel::Rbf { .. }) {
                        double_center(k);
                    }
                }
            }
            Estimator::Debiased => prep.fill_row_sums(),
        }
        Ok(prep)
    }

    /// Number of examples.
    pub fn n(&self) -> usize {
        self.n
    }

    fn fill_row_sums(&mut self) {
        match &mut self.form {
            Form::Features { x, diag } => {
                // K̃1 = X (Xᵀ1) - diag(K); Xᵀ1 is zero up to rounding after centering, but the
                // estimator is exact for any X, so keep the term.
                let col_sums: Vec<f64> =
                    x.axis_iter(Axis(0))
                        .fold(vec![0f64; x.ncols()], |mut s, row| {
                            s.iter_mut()
                                .zip(row.iter())
                                .for_each(|(a, &v)| *a += v as f64);
                            s
                        });
                self.r = x
                    .axis_iter(Axis(0))
                    .into_par_iter()
                    .zip(diag.par_iter())
                    .map(|(row, &d)| {
                        row.iter()
                            .zip(&col_sums)
                            .map(|(&v, s)| v as f64 * s)
                            .sum::<f64>()
                            - d
                    })
                    .collect();
            }
            Form::Gram { k } => {
                let n = k.nrows();
                for i in 0..n {
                    k[[i, i]] = 0.0;
                }
                self.r = k
                    .axis_iter(Axis(0))
                    .into_par_iter()
                    .map(|row| row.iter().map(|&v| v as f64).sum())
                    .collect();
            }
        }
        self.s = self.r.iter().sum();
    }

    /// The estimator's HSIC of this representation with `other` (same examples, same estimator;
    /// [`SimError::MismatchedExamples`] when the numbers of examples differ).
    pub fn hsic(&self, other: &Prepared) -> Result<f64, SimError> {
        if self.n != other.n {
            return Err(SimError::MismatchedExamples {
                a: self.n,
                b: other.n,
            });
        }
        let t = match (&self.form, &other.form) {
            (Form::Features { x: a, diag: da }, Form::Features { x: b, diag: db }) => {
                let core = gemm::frob2(gemm::xt_y(a.view(), b.view())?.view());
                match self.estimator {
                    Estimator::Biased => core,
                    Estimator::Debiased => {
                        core - da.iter().zip(db).map(|(u, v)| u * v).sum::<f64>()
                    }
                }
            }
            (Form::Gram { k }, Form::Features { x, .. })
            | (Form::Features { x, .. }, Form::Gram { k }) => {
                // ⟨K, X Xᵀ⟩ = ⟨K X, X⟩: n²p work instead of forming the second Gram matrix.
                gemm::dot(gemm::k_x(k.view(), x.view())?.view(), x.view())?
            }
            (Form::Gram { k: a }, Form::Gram { k: b }) => gemm::dot(a.view(), b.view())?,
        };
        Ok(self.finish(t, other))
    }

    /// HSIC of this representation with itself.
    pub fn self_hsic(&self) -> Result<f64, SimError> {
        let t = match &self.form {
            Form::Features { x, diag } => {
                let core = gemm::xtx_frob2(x.view())?;
                match self.estimator {
                    Estimator::Biased => core,
                    Estimator::Debiased => core - diag.iter().map(|d| d * d).sum::<f64>(),
                }
            }
            Form::Gram { k } => gemm::frob2(k.view()),
        };
        Ok(self.finish(t, self))
    }

    fn terms(&self) -> LayerTerms<'_> {
        LayerTerms {
            scale2: self.scale2,
            r: &self.r,
            s: self.s,
        }
    }

    fn finish(&self, t: f64, other: &Prepared) -> f64 {
        hsic_estimate(self.estimator, self.n, t, self.terms(), other.terms())
    }
}

/// `HKH` in place, with the row, column and grand means taken in f64.
fn double_center(k: &mut Array2<f32>) {
    let n = k.nrows();
    let row_means: Vec<f64> = k
        .axis_iter(Axis(0))
        .into_par_iter()
        .map(|r| r.iter().map(|&v| v as f64).sum::<f64>() / n as f64)
        .collect();
    // K is symmetric, so column means equal row means.
    let grand = row_means.iter().sum::<f64>() / n as f64;
    k.axis_iter_mut(Axis(0))
        .into_par_iter()
        .enumerate()
        .for_each(|(i, mut row)| {
            for (j, v) in row.iter_mut().enumerate() {
                *v = (*v as f64 - row_means[i] - row_means[j] + grand) as f32;
            }
        });
}

/// RBF Gram matrix with the median heuristic of Kornblith et al. (`x` already centered, which
/// leaves distances unchanged and keeps `‖x‖² + ‖y‖² - 2x·y` accurate).
fn rbf_gram(x: ArrayView2<f32>, threshold: f64) -> Result<Array2<f32>, SimError> {
    check_threshold(threshold)?;
    rbf_from_gram(gemm::gram(x)?, &row_sq_norms(x), threshold)
}

/// The RBF threshold's check, shared with the resampling statistics (`crate::null`).
pub(crate) fn check_threshold(threshold: f64) -> Result<(), SimError> {
    if !(threshold.is_finite() && threshold > 0.0) {
        return Err(SimError::Undefined(format!(
            "the RBF threshold must be a positive number, got {threshold}"
        )));
    }
    Ok(())
}

/// The RBF kernel matrix from the linear Gram matrix `k = X Xᵀ` of centered rows and their
/// squared norms, in place (see [`rbf_gram`]). Every step works entry by entry or row by row
/// in a fixed order, so the result does not depend on the number of threads.
pub(crate) fn rbf_from_gram(
    mut k: Array2<f32>,
    norms: &[f64],
    threshold: f64,
) -> Result<Array2<f32>, SimError> {
    check_threshold(threshold)?;
    k.axis_iter_mut(Axis(0))
        .into_par_iter()
        .enumerate()
        .for_each(|(i, mut row)| {
            for (j, v) in row.iter_mut().enumerate() {
                let d = if i == j {
                    0.0
                } else {
                    (norms[i] + norms[j] - 2.0 * *v as f64).max(0.0)
                };
                *v = d as f32;
            }
        });
    let m = median(k.iter().copied().collect());
    if m.is_nan() || m <= 0.0 {
        return Err(SimError::Undefined(
            "the median squared distance between examples is 0 (more than half of the pairs \
             coincide), so the RBF bandwidth is 0"
                .into(),
        ));
    }
    let scale = -1.0 / (2.0 * threshold * threshold * m);
    // With a very wide bandwidth every exponent is below f32's resolution at 1: the kernel is
    // the all-ones matrix and centering leaves nothing, which would read as "constant".
    let widest = k.iter().fold(0.0f64, |a, &d| a.max(d as f64)) * -scale;
    if widest.is_nan() || widest < 4.0 * f32::EPSILON as f64 {
        return Err(SimError::Undefined(format!(
            "the RBF threshold {threshold} makes the bandwidth so wide that every kernel value \
             rounds to 1 (largest exponent {widest:.1e}); use a threshold near 0.5 to 2, the \
             range Kornblith et al. use"
        )));
    }
    k.par_mapv_inplace(|d| (d as f64 * scale).exp() as f32);
    Ok(k)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rbf_bandwidth_too_wide_is_named_not_called_constant() {
        // Distinct rows: the median squared distance is positive.
        let x = Array2::from_shape_fn((6, 3), |(i, j)| ((i * 7 + j * 3) % 5) as f32 - 2.0);
        for t in [1e308, 1e30, 1e6] {
            let e = rbf_gram(x.view(), t).unwrap_err().to_string();
            assert!(e.contains("bandwidth so wide"), "{t}: {e}");
        }
        // The paper's thresholds still give a kernel with entries below 1 off the diagonal.
        let k = rbf_gram(x.view(), 0.5).unwrap();
        assert!(k[[0, 1]] < 1.0 && (k[[0, 0]] - 1.0).abs() < 1e-6);
    }
}
