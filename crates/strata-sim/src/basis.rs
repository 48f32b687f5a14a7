//! A representation reduced, once, to the thin SVD of its centered matrix.
//!
//! Every baseline measure (CCA, SVCCA, PWCCA, linear regression, orthogonal Procrustes, linear
//! HSIC and CKA) depends on a pair of layers only through `M = U_xᵀ U_y` and each side's
//! singular values, so a layer is decomposed once and the identification test, which compares
//! every layer with dozens of others, pays one `n x r_x x r_y` product per pair instead of one
//! SVD per pair.

use crate::alignment::RowStats;
use crate::SimError;
use faer::diag::Diag;
use faer::dyn_stack::{MemBuffer, MemStack};
use faer::linalg::evd::{self_adjoint_evd, self_adjoint_evd_scratch, ComputeEigenvectors};
use faer::linalg::matmul::matmul;
use faer::linalg::svd::{svd, svd_scratch, ComputeSvdVectors};
use faer::{Accum, Mat, MatRef, Par};
use ndarray::ArrayView2;

/// All cores, unless already running inside a rayon task (e.g. one pair of
/// [`crate::similarity_matrix`]), where the outer loop owns the parallelism and nested
/// parallel products would only add overhead.
pub(crate) fn par() -> Par {
    if rayon::current_thread_index().is_some() {
        Par::Seq
    } else {
        Par::rayon(0)
    }
}

/// `a b` in f64.
pub(crate) fn product(a: MatRef<'_, f64>, b: MatRef<'_, f64>) -> Mat<f64> {
    let mut out = Mat::<f64>::zeros(a.nrows(), b.ncols());
    matmul(out.as_mut(), Accum::Replace, a, b, 1.0, par());
    out
}

/// A thin SVD `(U, s, V)`, `s` non-increasing.
pub(crate) type ThinSvd = (Mat<f64>, Vec<f64>, Mat<f64>);

/// The thin SVD of `a` (`U` and `V` empty unless `vectors`).
pub(crate) fn thin_svd(a: MatRef<'_, f64>, vectors: bool) -> Result<ThinSvd, SimError> {
    let (m, n) = a.shape();
    let k = m.min(n);
    let mut s = Diag::<f64>::zeros(k);
    let (mut u, mut v) = if vectors {
        (Mat::<f64>::zeros(m, k), Mat::<f64>::zeros(n, k))
    } else {
        (Mat::<f64>::zeros(0, 0), Mat::<f64>::zeros(0, 0))
    };
    if k > 0 {
        let compute = if vectors {
            ComputeSvdVectors::Thin
        } else {
            ComputeSvdVectors::No
        };
        let par = par();
        let mut buf = MemBuffer::new(svd_scratch::<f64>(
            m,
            n,
            compute,
            compute,
            par,
            Default::default(),
        ));
        svd(
            a,
            s.as_mut(),
            vectors.then(|| u.as_mut()),
            vectors.then(|| v.as_mut()),
            par,
            MemStack::new(&mut buf),
            Default::default(),
        )
        .map_err(|_| SimError::NoConvergence("singular value decomposition"))?;
    }
    Ok((u, s.column_vector().iter().copied().collect(), v))
}

/// Bytes a [`Basis`] of an `n x p` layer holds at most (`r = min(n, p)`): `U` (`n x r`) and
/// `V diag(s)` (`p x r`) in f64. While it is being built the centered layer (`n x p`) and,
/// for `p > n`, the `n x n` Gram matrix and its eigenvectors are held as well.
pub fn basis_bytes(n: usize, p: usize) -> usize {
    (n + p) * n.min(p) * 8 + n.min(p) * 8
}

/// One layer prepared for every baseline measure: the thin SVD `X_c = U diag(s) Vᵀ` of its
/// column-centered matrix, truncated to the numerical rank `r`.
///
/// Why these and nothing else: for two layers, `Y_cᵀ X_c = V_y S_y (U_yᵀ U_x) S_x V_xᵀ`, and the
/// orthogonal `V` factors drop out of every measure except PWCCA's weights, so each measure is
/// a function of `M = U_xᵀ U_y` (`r_x x r_y`), `s_x` and `s_y`.
///
/// Memory: `U` is `n x r` and `V diag(s)` is `p x r`, both f64, so a basis holds
/// `8 r (n + p)` bytes (see [`basis_bytes`]): at full rank `r = min(n, p)` that is
/// `2 (n + p) / max(n, p)` times the f32 layer, between 2 and 4 times it. `V diag(s)` (that is,
/// `(Uᵀ X_c)ᵀ`, half or more of those bytes when `p >= n`) is kept only for the PWCCA weights,
/// which sum `|⟨h_i, x_j⟩|` over the layer's `p` columns.
///
/// Rank: a direction counts when its singular value is not rounding noise.
/// * `p <= n`: the thin SVD of `X_c` (backward stable, singular values accurate to
///   `ε s_max`); kept: `s_i > max(n, p) ε s_max`, NumPy's `matrix_rank` rule.
/// * `p > n`: the eigendecomposition of the `n x n` Gram matrix `X_c X_cᵀ` (about `p n²` work
///   instead of the SVD's larger constant and its `p x n` factor). Forming and diagonalizing
///   `G` perturbs its eigenvalues by up to about `max(n, p) ε tr(G)`, so kept: `s_i² >
///   max(n, p) ε ‖s‖²`. Singular values below `√(max(n, p) ε) ‖s‖` (about `1e-7` relative)
///   cannot be resolved on this route and count as zero. Centering always removes one
///   direction (the all-ones vector), so `r <= n - 1`.
///
/// Measured on random rank-deficient inputs (up to 200 x 2000), rounding noise in the Gram route
/// sits near `1e-17 ‖s‖²`, four orders below the threshold. A layer that is rank-deficient only
/// up to f32 rounding (e.g. `Z W` computed in f32) has noise directions near `1e-7 s_max`: the
/// SVD route counts them, the Gram route may not, and CCA-family measures and regression,
/// which weigh every kept direction equally, see them. That sensitivity to tiny directions is
/// CCA's, not the basis's; SVCCA's truncation exists to remove it.
///
/// A constant (or all-zero) layer has `r = 0`; it is a valid basis, and the measures say per
/// measure whether that is an error. Exactly constant columns center to exact zeros.
#[derive(Clone, Debug)]
pub struct Basis {
    n: usize,
    p: usize,
    /// `n x r`, orthonormal columns.
    u: Mat<f64>,
    /// `r`, non-increasing, all positive.
    s: Vec<f64>,
    /// `p x r`: `V diag(s) = X_cᵀ U`.
    vs: Mat<f64>,
    /// `‖X_c‖²_F`, summed directly from the centered entries.
    total: f64,
    /// What the row-geometry measures (RSA, mutual k-NN, CKNNA) need of the raw rows, which
    /// the column-centered SVD has lost: `3n + r + 2` numbers, plus their cache.
    rows: RowStats,
}

impl Basis {
    /// Center the columns of `x` (`n` examples x `p` features) in f64 and decompose it.
    ///
    /// Errors: no features, fewer than 2 examples (centering leaves nothing), NaN or Inf (the
    /// first one's position), or a decomposition that did not converge.
    pub fn new(x: ArrayView2<'_, f32>) -> Result<Self, SimError> {
        let (n, p) = x.dim();
        if p == 0 {
            return Err(SimError::NoFeatures);
        }
        if n < 2 {
            return Err(SimError::TooFewExamples {
                n,
                need: 2,
                estimator: "centered (CCA, regression, Procrustes)",
            });
        }
        let xc = center(x)?;
        let total: f64 = (0..p)
            .map(|j| xc.col(j).iter().map(|v| v * v).sum::<f64>())
            .sum();
        let tol_factor = n.max(p) as f64 * f64::EPSILON;
        let (u, s, vs) = if total == 0.0 {
            (Mat::zeros(n, 0), Vec::new(), Mat::zeros(p, 0))
        } else if p <= n {
            let (u, s, v) = thin_svd(xc.as_ref(), true)?;
            let tol = tol_factor * s[0];
            let r = s.iter().take_while(|&&v| v > tol).count();
            let vs = Mat::from_fn(p, r, |j, k| v[(j, k)] * s[k]);
            (u.subcols(0, r).to_owned(), s[..r].to_vec(), vs)
        } else {
            let g = product(xc.as_ref(), xc.transpose());
            let par = par();
            let mut lambda = Diag::<f64>::zeros(n);
            let mut vecs = Mat::<f64>::zeros(n, n);
            let mut buf = MemBuffer::new(self_adjoint_evd_scratch::<f64>(
                n,
                ComputeEigenvectors::Yes,
                par,
                Default::default(),
            ));
            self_adjoint_evd(
                g.as_ref(),
                lambda.as_mut(),
                Some(vecs.as_mut()),
                par,
                MemStack::new(&mut buf),
                Default::default(),
            )
            .map_err(|_| SimError::NoConvergence("symmetric eigendecomposition"))?;
            // Eigenvalues come in non-decreasing order.
            let lambda: Vec<f64> = lambda.column_vector().iter().rev().copied().collect();
            let tol = tol_factor * total;
            let r = lambda.iter().take_while(|&&l| l > tol).count();
            let u = Mat::from_fn(n, r, |i, k| vecs[(i, n - 1 - k)]);
            let s = lambda[..r].iter().map(|l| l.sqrt()).collect();
            let vs = product(xc.transpose(), u.as_ref());
            (u, s, vs)
        };
        let mu: Vec<f64> = (0..p)
            .map(|j| x.column(j).iter().map(|&v| v as f64).sum::<f64>() / n as f64)
            .collect();
        let rows = RowStats::new(x, &mu, vs.as_ref());
        Ok(Basis {
            n,
            p,
            u,
            s,
            vs,
            total,
            rows,
        })
    }

    /// Number of examples.
    pub fn n(&self) -> usize {
        self.n
    }

    /// Number of features of the layer (before the rank truncation).
    pub fn features(&self) -> usize {
        self.p
    }

    /// Numerical rank `r` of the centered layer (0 for a constant layer).
    pub fn rank(&self) -> usize {
        self.s.len()
    }

    /// The `r` kept singular values of the centered layer, non-increasing.
    pub fn singular_values(&self) -> &[f64] {
        &self.s
    }

    /// `‖X_c‖²_F`, the total variance times `n - 1`, summed from the centered entries.
    pub fn total_variance(&self) -> f64 {
        self.total
    }

    /// The smallest `d >= 1` whose top `d` directions explain at least `fraction` of the total
    /// variance (`Σ_{i<d} s_i² >= fraction ‖X_c‖²_F`); all `r` directions when `fraction >= 1`
    /// or when rounding keeps the sum just below the target. 0 for a rank-0 layer. This is
    /// SVCCA's truncation (Raghu et al. 2017 keep 99%).
    pub fn dims_for_variance(&self, fraction: f64) -> usize {
        let r = self.rank();
        if fraction >= 1.0 {
            return r;
        }
        let target = fraction * self.total;
        let mut acc = 0.0;
        for (i, s) in self.s.iter().enumerate() {
            acc += s * s;
            if acc >= target {
                return i + 1;
            }
        }
        r
    }

    pub(crate) fn u(&self) -> MatRef<'_, f64> {
        self.u.as_ref()
    }

    pub(crate) fn vs(&self) -> MatRef<'_, f64> {
        self.vs.as_ref()
    }

    pub(crate) fn rows(&self) -> &RowStats {
        &self.rows
    }
}

/// `x` with each column's mean subtracted, in f64, as a column-major faer matrix.
///
/// The mean is taken relative to the first row (`m_j = x_0j + Σ_i (x_ij - x_0j) / n`), so an
/// exactly constant column becomes exact zeros instead of rounding noise that the rank test
/// would have to tell apart from signal, and large offsets cancel before the sum.
fn center(x: ArrayView2<'_, f32>) -> Result<Mat<f64>, SimError> {
    let (n, p) = x.dim();
    let first: Vec<f64> = x.row(0).iter().map(|&v| v as f64).collect();
    let mut dev = vec![0f64; p];
    for (i, row) in x.rows().into_iter().enumerate() {
        for (j, (&v, acc)) in row.iter().zip(dev.iter_mut()).enumerate() {
            if !v.is_finite() {
                return Err(SimError::NonFinite {
                    example: i,
                    feature: j,
                });
            }
            *acc += v as f64 - first[j];
        }
    }
    let mean_dev: Vec<f64> = dev.iter().map(|d| d / n as f64).collect();
    Ok(Mat::from_fn(n, p, |i, j| {
        (x[[i, j]] as f64 - first[j]) - mean_dev[j]
    }))
}
