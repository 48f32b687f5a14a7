//! Measures of a layer's example-by-example geometry: representational similarity analysis
//! (RSA) and the mutual nearest-neighbour measures of Huh et al. 2024 (mutual k-NN, CKNNA).
//!
//! | name | value | range | symmetric |
//! |---|---|---|---|
//! | `rsa` | Spearman's ρ between the two correlation-distance RDMs | [-1, 1] | yes |
//! | `mutual_knn` | mean fraction of shared k nearest neighbours (`k = 10`) | [0, 1] | yes |
//! | `cknna` | CKA restricted to mutual k-NN pairs (`k = 10`) | [-1, 1] | yes |
//!
//! All three depend on the raw rows (not only on the column-centered layer), so [`Basis`] keeps,
//! besides its SVD, each row's mean, spread and norm and the column-mean vector projected on
//! its singular directions (`O(n + r)` numbers). From these, `X Xᵀ` (and its row-centered
//! version) is rebuilt from `U diag(s)` in blocks of rows, `n² r` work per layer, without
//! holding the layer or any `n x n` matrix. What a layer needs for every pair it enters (its
//! RDM's ranks, its k-NN lists) is computed once, on first use, and cached in the basis (shared
//! by its clones): see [`row_geometry_bytes`] for the memory.

use crate::basis::product;
use crate::measures::{check, nonzero_rank};
use crate::{Basis, Measure, SimError};
use faer::Mat;
use rayon::prelude::*;
use std::sync::{Arc, OnceLock};

/// Huh et al.'s default number of neighbours for `mutual_knn` and `cknna`.
pub const DEFAULT_K: usize = 10;

/// Most examples the row-geometry measures accept: RSA's doubled average ranks of the
/// `n(n-1)/2` RDM entries are stored as `u32`. (At this `n`, the RDM alone is 17 GB.)
pub const MAX_ROW_EXAMPLES: usize = 65_536;

/// RDM entries (correlation distances, in `[0, 2]`) closer than this count as tied: the same
/// distance computed two ways differs by rounding (about `1e-15` for examples spread across
/// their features, more for nearly constant ones, see [`correlation_rdm`]), and a tie must not
/// turn into an order by accident.
pub const RDM_TIE_TOLERANCE: f64 = 1e-10;

/// Rows of `X Xᵀ` formed at once.
const BLOCK: usize = 256;

/// Bytes the row-geometry measures use for one layer of `n` examples, at most (RSA's, the
/// largest): while its RDM is ranked, the `n(n-1)/2` distances (f64), their order (u32) and
/// their doubled ranks (u32), plus a block of `X Xᵀ` and `U diag(s)`; afterwards the doubled
/// ranks stay cached in the basis (`2 n(n-1)` bytes; 8 MB at `n = 2000`, 50 MB at 5000). The
/// k-NN lists cached for `mutual_knn` and `cknna` take `12 n k` bytes. `r` is the layer's rank.
pub fn row_geometry_bytes(n: usize, r: usize) -> usize {
    let pairs = n.saturating_mul(n.saturating_sub(1)) / 2;
    pairs
        .saturating_mul(16)
        .saturating_add(BLOCK.min(n).saturating_mul(n).saturating_mul(8))
        .saturating_add(n.saturating_mul(r).saturating_mul(8))
}

/// Per-row statistics of the raw layer, computed exactly (in f64) when its [`Basis`] is built.
#[derive(Clone, Debug, Default)]
pub(crate) struct RowStats {
    /// Row means `m_i = Σ_j x_ij / p`.
    pub mean: Vec<f64>,
    /// Row spreads `Σ_j (x_ij - m_i)²` (0 exactly for a constant row).
    pub css: Vec<f64>,
    /// Squared row norms `Σ_j x_ij²` (0 exactly for an all-zero row).
    pub norm2: Vec<f64>,
    /// Mean of the column means, `c = Σ_j μ_j / p`.
    pub grand: f64,
    /// `‖μ - c 1‖²`, `μ` the column means.
    pub mu_t_norm2: f64,
    /// `(V diag(s))ᵀ (μ - c 1)`, length `r`.
    pub vs_mu_t: Vec<f64>,
    /// What the measures computed from this layer, kept for the other pairs it enters.
    pub cache: RowCache,
}

/// Lazily computed, shared between clones of a basis.
#[derive(Clone, Debug, Default)]
pub(crate) struct RowCache {
    rsa: Arc<OnceLock<Result<Arc<Ranks>, SimError>>>,
    knn: Arc<OnceLock<Result<Arc<Neighbours>, SimError>>>,
}

/// Doubled average ranks (so ties' half ranks stay integers) of an RDM's entries.
#[derive(Debug)]
struct Ranks {
    twice: Vec<u32>,
    /// `Σ (twice - (M + 1))²`, `M` entries, whose doubled mean rank is `M + 1` whatever the ties.
    ss: f64,
}

/// Each example's `k` nearest neighbours by cosine similarity (most similar first, ties to the
/// lower index), with the double-centered cosine kernel `K̄ = H K H` at each of those pairs.
#[derive(Debug)]
struct Neighbours {
    k: usize,
    /// `n x k`, row-major.
    idx: Vec<u32>,
    /// `K̄_{i, idx[i k + t]}`.
    kbar: Vec<f64>,
}

impl RowStats {
    /// The statistics of `x` (`n x p`, finite), its column means `mu` and `vs = V diag(s)`.
    pub(crate) fn new(
        x: ndarray::ArrayView2<'_, f32>,
        mu: &[f64],
        vs: faer::MatRef<'_, f64>,
    ) -> Self {
        let p = x.ncols() as f64;
        let mut mean = Vec::with_capacity(x.nrows());
        let mut css = Vec::with_capacity(x.nrows());
        let mut norm2 = Vec::with_capacity(x.nrows());
        for row in x.rows() {
            // A constant row's sum is exact (an f32 times an integer below 2^29), so its mean
            // is that constant and its spread exactly 0.
            let m = row.iter().map(|&v| v as f64).sum::<f64>() / p;
            mean.push(m);
            css.push(row.iter().map(|&v| (v as f64 - m).powi(2)).sum());
            norm2.push(row.iter().map(|&v| (v as f64).powi(2)).sum());
        }
        let grand = mu.iter().sum::<f64>() / p;
        let mu_t: Vec<f64> = mu.iter().map(|m| m - grand).collect();
        let vs_mu_t = (0..vs.ncols())
            .map(|k| vs.col(k).iter().zip(&mu_t).map(|(a, b)| a * b).sum())
            .collect();
        RowStats {
            mean,
            css,
            norm2,
            grand,
            mu_t_norm2: mu_t.iter().map(|v| v * v).sum(),
            vs_mu_t,
            cache: RowCache::default(),
        }
    }
}

/// Which Gram matrix of the raw rows to rebuild.
#[derive(Clone, Copy, PartialEq)]
enum Gram {
    /// `⟨x_i - m_i 1, x_j - m_j 1⟩` (rows centered across their features: Pearson's numerator).
    RowCentered,
    /// `⟨x_i, x_j⟩`.
    Raw,
}

/// Calls `f(i, row_i)` for every example `i` with row `i` of the chosen Gram matrix, its
/// diagonal entry exact (from [`RowStats`]). With `x_i - m_i 1 = μ̃ + x̃_i - δ_i 1` (`μ̃` the
/// column means less their mean `c`, `x̃_i` the column-centered row, `δ_i = m_i - c`, and
/// `⟨x̃_i, 1⟩ = p δ_i`), the row-centered Gram is `‖μ̃‖² + ã_i + ã_j + ⟨x̃_i, x̃_j⟩ - p δ_i δ_j`
/// with `ã = X̃ μ̃ = U (V diag(s))ᵀ μ̃` and `⟨x̃_i, x̃_j⟩ = (U diag(s²) Uᵀ)_ij`; the raw Gram adds
/// `p m_i m_j`. Large offsets shared by all rows cancel in `μ̃` and `δ` before any product.
fn for_gram_rows(b: &Basis, which: Gram, mut f: impl FnMut(usize, &[f64])) {
    let (n, r) = (b.n(), b.rank());
    let st = b.rows();
    let p = b.features() as f64;
    let u = b.u();
    let s = b.singular_values();
    let w = Mat::<f64>::from_fn(n, r, |i, k| u[(i, k)] * s[k]);
    let a: Vec<f64> = (0..n)
        .map(|i| (0..r).map(|k| u[(i, k)] * st.vs_mu_t[k]).sum())
        .collect();
    let delta: Vec<f64> = st.mean.iter().map(|m| m - st.grand).collect();
    let mut row = vec![0f64; n];
    for i0 in (0..n).step_by(BLOCK) {
        let rows = BLOCK.min(n - i0);
        let g = if r > 0 {
            product(w.subrows(i0, rows), w.transpose())
        } else {
            Mat::zeros(rows, n)
        };
        for t in 0..rows {
            let i = i0 + t;
            for (j, out) in row.iter_mut().enumerate() {
                let c = st.mu_t_norm2 + a[i] + a[j] + g[(t, j)] - p * delta[i] * delta[j];
                *out = match which {
                    Gram::RowCentered => c,
                    Gram::Raw => c + p * st.mean[i] * st.mean[j],
                };
            }
            row[i] = match which {
                Gram::RowCentered => st.css[i],
                Gram::Raw => st.norm2[i],
            };
            f(i, &row);
        }
    }
}

fn too_many(n: usize, what: &'static str) -> Result<(), SimError> {
    if n > MAX_ROW_EXAMPLES {
        return Err(SimError::Shape {
            op: what,
            msg: format!(
                "{n} examples: at most {MAX_ROW_EXAMPLES} are supported (the example-by-example \
                 matrices grow as n²; subsample the examples)"
            ),
        });
    }
    Ok(())
}

/// A vector of `len` copies of `v`, or an error naming `what` where the memory is not there.
fn alloc<T: Clone>(len: usize, v: T, what: &'static str) -> Result<Vec<T>, SimError> {
    let mut out = Vec::new();
    out.try_reserve_exact(len).map_err(|_| SimError::Shape {
        op: what,
        msg: format!(
            "{len} entries of {} bytes do not fit in memory",
            std::mem::size_of::<T>()
        ),
    })?;
    out.resize(len, v);
    Ok(out)
}

/// The correlation-distance RDM of a layer, condensed: `1 - r(x_i, x_j)` for `i < j` in
/// row-major order (SciPy's `pdist(x, "correlation")` order), `r` Pearson's correlation between
/// two examples across the layer's features. Each entry lies in `[0, 2]`.
///
/// Invariant to shifting and positively scaling each example, to permuting features, and to
/// anything that keeps every example's centered row up to a positive factor.
///
/// Accuracy: the Gram matrix is rebuilt from the basis, so an entry's absolute error is about
/// `ε ‖x_i‖ ‖x_j‖ / (‖x_i - m_i‖ ‖x_j - m_j‖)` (`m_i` the example's mean): `1e-15` for
/// examples spread across their features, worse for one whose spread is far below its norm
/// (nearly constant across features). Offsets shared by all examples cancel first.
///
/// Errors: a constant example (including every example when the layer has one feature),
/// whose correlations are `0/0`; more than [`MAX_ROW_EXAMPLES`] examples. Cost: `n² r` for
/// the Gram matrix, `n(n-1)/2` f64 returned.
pub fn correlation_rdm(b: &Basis) -> Result<Vec<f64>, SimError> {
    let n = b.n();
    too_many(n, "rsa")?;
    if let Some(i) = b.rows().css.iter().position(|&c| c <= 0.0) {
        return Err(SimError::Undefined(format!(
            "RSA is undefined: example {i} is constant across the layer's {} features, so its \
             correlation with other examples is 0/0",
            b.features()
        )));
    }
    let css = &b.rows().css;
    let mut rdm = alloc(n * (n - 1) / 2, 0f64, "rsa")?;
    let mut at = 0;
    for_gram_rows(b, Gram::RowCentered, |i, row| {
        for j in i + 1..n {
            let r = row[j] / (css[i] * css[j]).sqrt();
            rdm[at] = 1.0 - r.clamp(-1.0, 1.0);
            at += 1;
        }
    });
    Ok(rdm)
}

/// Doubled average ranks of `v` (ascending; entries within [`RDM_TIE_TOLERANCE`] of the
/// previous one in sorted order share a rank).
fn ranks(v: &[f64]) -> Result<Ranks, SimError> {
    let m = v.len();
    if m > u32::MAX as usize / 2 {
        return Err(SimError::Shape {
            op: "rsa",
            msg: format!("{m} RDM entries are too many to rank"),
        });
    }
    let mut order = alloc(m, 0u32, "rsa")?;
    order
        .iter_mut()
        .enumerate()
        .for_each(|(t, o)| *o = t as u32);
    let cmp = |a: &u32, b: &u32| v[*a as usize].total_cmp(&v[*b as usize]);
    if rayon::current_thread_index().is_none() {
        order.par_sort_unstable_by(cmp);
    } else {
        order.sort_unstable_by(cmp);
    }
    let mut twice = alloc(m, 0u32, "rsa")?;
    let mut start = 0;
    while start < m {
        let mut end = start + 1;
        while end < m && v[order[end] as usize] - v[order[end - 1] as usize] <= RDM_TIE_TOLERANCE {
            end += 1;
        }
        // Ranks start..end (1-based: start + 1 ..= end) average to (start + 1 + end) / 2.
        let r2 = (start + 1 + end) as u32;
        for &o in &order[start..end] {
            twice[o as usize] = r2;
        }
        start = end;
    }
    let mid = (m + 1) as f64;
    let ss = twice.iter().map(|&t| (t as f64 - mid).powi(2)).sum();
    Ok(Ranks { twice, ss })
}

/// Spearman's ρ (Pearson's correlation of the average ranks) between two ranked RDMs.
fn spearman(a: &Ranks, b: &Ranks) -> Result<f64, SimError> {
    let m = a.twice.len();
    if m != b.twice.len() {
        return Err(SimError::Shape {
            op: "rsa",
            msg: format!("RDMs of {m} and {} entries", b.twice.len()),
        });
    }
    if m < 2 {
        return Err(SimError::Undefined(format!(
            "RSA is undefined: an RDM of {m} entr{} has no rank correlation (it needs at least \
             3 examples)",
            if m == 1 { "y" } else { "ies" }
        )));
    }
    if a.ss == 0.0 || b.ss == 0.0 {
        return Err(SimError::Undefined(
            "RSA is undefined: every entry of an RDM is tied (all examples equally far apart), \
             so its rank correlation is 0/0"
                .into(),
        ));
    }
    let mid = (m + 1) as f64;
    let cross: f64 = a
        .twice
        .iter()
        .zip(&b.twice)
        .map(|(&x, &y)| (x as f64 - mid) * (y as f64 - mid))
        .sum();
    Ok((cross / (a.ss * b.ss).sqrt()).clamp(-1.0, 1.0))
}

/// Spearman's ρ between two condensed RDMs of the same examples (for instance one from
/// [`correlation_rdm`] and one measured in a brain), ties given their average rank (entries
/// within [`RDM_TIE_TOLERANCE`] count as tied). Invariant to any strictly increasing transform
/// of either RDM.
///
/// Errors: different lengths, fewer than 2 entries, an RDM whose entries are all tied, NaN.
pub fn rsa_between_rdms(a: &[f64], b: &[f64]) -> Result<f64, SimError> {
    if let Some(t) = a.iter().chain(b).position(|v| v.is_nan()) {
        return Err(SimError::Undefined(format!("RSA: RDM entry {t} is NaN")));
    }
    spearman(&ranks(a)?, &ranks(b)?)
}

fn rsa_ranks(b: &Basis) -> Result<Arc<Ranks>, SimError> {
    b.rows()
        .cache
        .rsa
        .get_or_init(|| Ok(Arc::new(ranks(&correlation_rdm(b)?)?)))
        .clone()
}

/// Representational similarity analysis (Kriegeskorte, Mur & Bandettini 2008): each layer's
/// representational dissimilarity matrix (RDM) is the correlation distance `1 - r(x_i, x_j)`
/// between every pair of examples ([`correlation_rdm`]), and two layers are compared by
/// Spearman's ρ between the upper triangles of their RDMs, ties at their average rank
/// (rsatoolbox's `"correlation"` RDM with its `"spearman"` comparison).
///
/// Range `[-1, 1]`, 1 for identical layers; symmetric. Invariant to shifting and positively
/// scaling each example, to permuting features, and (through the ranks) to any strictly
/// increasing transform of either RDM. Not invariant to adding a constant to a feature.
///
/// Errors: a constant example in either layer (every example when a layer has one feature),
/// fewer than 3 examples (one RDM entry), an RDM whose entries are all tied, a rank-0 layer.
///
/// Cost per layer, once (cached in its basis): `n² r` for `X Xᵀ`, then sorting the `n(n-1)/2`
/// distances; memory in [`row_geometry_bytes`]. Per pair: `n(n-1)/2`. At `n = 2000` a layer
/// keeps 8 MB of ranks.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Rsa;

impl Measure for Rsa {
    fn name(&self) -> &'static str {
        "rsa"
    }
    fn between(&self, x: &Basis, y: &Basis) -> Result<f64, SimError> {
        check(x, y)?;
        nonzero_rank("RSA", x, y)?;
        let (a, b) = (rsa_ranks(x)?, rsa_ranks(y)?);
        spearman(&a, &b)
    }
}

/// Every example's `k` nearest neighbours (itself excluded) by cosine similarity, and `K̄`.
fn neighbours(b: &Basis, k: usize) -> Result<Neighbours, SimError> {
    let n = b.n();
    too_many(n, "mutual k-NN")?;
    let st = b.rows();
    if let Some(i) = st.norm2.iter().position(|&v| v <= 0.0) {
        return Err(SimError::Undefined(format!(
            "the mutual k-NN measures are undefined: example {i} is all zeros, so it has no \
             direction (rows are scaled to unit norm)"
        )));
    }
    let inv: Vec<f64> = st.norm2.iter().map(|v| 1.0 / v.sqrt()).collect();
    let mut idx = alloc(n * k, 0u32, "mutual k-NN")?;
    let mut kz = alloc(n * k, 0f64, "mutual k-NN")?;
    let mut sums = vec![0f64; n];
    let mut cand: Vec<(f64, u32)> = Vec::with_capacity(n);
    for_gram_rows(b, Gram::Raw, |i, row| {
        cand.clear();
        let mut sum = 0.0;
        for (j, &g) in row.iter().enumerate() {
            let c = if i == j { 1.0 } else { g * inv[i] * inv[j] };
            sum += c;
            if i != j {
                cand.push((c, j as u32));
            }
        }
        sums[i] = sum;
        let by = |a: &(f64, u32), b: &(f64, u32)| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1));
        if k < cand.len() {
            cand.select_nth_unstable_by(k - 1, by);
        }
        cand[..k].sort_unstable_by(by);
        for (t, &(c, j)) in cand[..k].iter().enumerate() {
            idx[i * k + t] = j;
            kz[i * k + t] = c;
        }
    });
    // H K H = K - r 1ᵀ - 1 rᵀ + g, r the row means and g the mean of K.
    let nf = n as f64;
    let rmean: Vec<f64> = sums.iter().map(|s| s / nf).collect();
    let g = rmean.iter().sum::<f64>() / nf;
    let kbar = (0..n * k)
        .map(|t| kz[t] - rmean[t / k] - rmean[idx[t] as usize] + g)
        .collect();
    Ok(Neighbours { k, idx, kbar })
}

/// The neighbour lists of `b` for `k` (clamped to `n - 1`), from the cache when it holds at
/// least `k` (the first `k` of a longer list are the `k` nearest).
fn knn(b: &Basis, k: usize) -> Result<(Arc<Neighbours>, usize), SimError> {
    if k == 0 {
        return Err(SimError::Undefined(
            "mutual k-NN needs k >= 1 neighbours".into(),
        ));
    }
    let k = k.min(b.n() - 1);
    let cached = b
        .rows()
        .cache
        .knn
        .get_or_init(|| neighbours(b, k).map(Arc::new))
        .clone()?;
    if cached.k >= k {
        Ok((cached, k))
    } else {
        Ok((Arc::new(neighbours(b, k)?), k))
    }
}

fn row<T>(v: &[T], stride: usize, i: usize, k: usize) -> &[T] {
    &v[i * stride..i * stride + k]
}

/// Mutual k-nearest-neighbour alignment (Huh, Cheung, Wang & Isola 2024, "The Platonic
/// Representation Hypothesis", their `mutual_knn`): with every example scaled to unit L2 norm
/// and similarity the inner product (cosine), `N_X(i)` the `k` examples nearest to `i`
/// (itself excluded), the score is `(1/n) Σ_i |N_X(i) ∩ N_Y(i)| / k`.
///
/// `k` is clamped to `n - 1` (so with `k >= n - 1` every set is "all the others" and the score
/// is 1); Huh et al. use `k = 10` ([`DEFAULT_K`]). Equal similarities are broken towards the
/// lower example index. Unlike their pipeline, no outlier clipping is applied first.
///
/// Range `[0, 1]`, 1 for identical layers; symmetric. Invariant to orthogonal maps and
/// isotropic scaling of the features, and to scaling each example by its own positive
/// factor; not to shifts (a constant added to a feature changes the cosines).
///
/// Errors: `k = 0`, an all-zero example, a rank-0 layer (every example the same: all neighbours
/// tied). Cost per layer, once (cached): `n² r` for `X Xᵀ` and `O(n²)` to select the
/// neighbours; it keeps `12 n k` bytes. Per pair: `O(n k²)`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct MutualKnn {
    /// Neighbours per example (10 in Huh et al.).
    pub k: usize,
}

impl Measure for MutualKnn {
    fn name(&self) -> &'static str {
        "mutual_knn"
    }
    fn between(&self, x: &Basis, y: &Basis) -> Result<f64, SimError> {
        check(x, y)?;
        nonzero_rank("mutual k-NN", x, y)?;
        let ((nx, k), (ny, _)) = (knn(x, self.k)?, knn(y, self.k)?);
        let n = x.n();
        let shared: usize = (0..n)
            .map(|i| {
                let b = row(&ny.idx, ny.k, i, k);
                row(&nx.idx, nx.k, i, k)
                    .iter()
                    .filter(|j| b.contains(j))
                    .count()
            })
            .sum();
        Ok(shared as f64 / (n * k) as f64)
    }
}

/// CKNNA, Centered Kernel Nearest-Neighbour Alignment (Huh et al. 2024, Appendix A): CKA
/// restricted to pairs that are mutual nearest neighbours. With each example scaled to unit
/// L2 norm, `K = X Xᵀ` (cosine kernel), `K̄ = H K H` (`H = I - 11ᵀ/n`), and the mask
/// `α(i, j) = 1` when `i ≠ j`, `j ∈ N_K(i)` and `j ∈ N_L(i)` (the `k` nearest neighbours by
/// `K` and by `L`, as in [`MutualKnn`]):
///
/// `Align(K, L) = Σ_ij α(i, j) K̄_ij L̄_ij`, `CKNNA = Align(K, L) / √(Align(K, K) Align(L, L))`,
///
/// where `Align(K, K)` masks by `N_K` alone. With `k = n - 1` it is linear CKA of the
/// row-normalized layers without the diagonal terms.
///
/// Huh et al.'s released code (`metrics.py`, `cknna`) differs in its estimator: it applies
/// the unbiased HSIC of Song et al. to the masked, uncentered kernels `α ∘ K` and `α ∘ L`, and
/// adds `1e-6` to the denominator; strata follows the formula above (the paper's centered
/// alignment), so values differ slightly from theirs.
///
/// Range `[-1, 1]` (Cauchy-Schwarz, since `α` is within each side's own mask), 1 for identical
/// layers; symmetric. Invariant to orthogonal maps and isotropic scaling of the features.
///
/// Errors: `k = 0`, an all-zero example, a rank-0 layer, or `Align(K, K) = 0` (no centered
/// similarity among neighbours). Cost: as [`MutualKnn`] (the same cached neighbour lists).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Cknna {
    /// Neighbours per example (10 in Huh et al.).
    pub k: usize,
}

impl Measure for Cknna {
    fn name(&self) -> &'static str {
        "cknna"
    }
    fn between(&self, x: &Basis, y: &Basis) -> Result<f64, SimError> {
        check(x, y)?;
        nonzero_rank("CKNNA", x, y)?;
        let ((nx, k), (ny, _)) = (knn(x, self.k)?, knn(y, self.k)?);
        let n = x.n();
        let (mut kl, mut kk, mut ll) = (0.0, 0.0, 0.0);
        for i in 0..n {
            let (ix, iy) = (row(&nx.idx, nx.k, i, k), row(&ny.idx, ny.k, i, k));
            let (vx, vy) = (row(&nx.kbar, nx.k, i, k), row(&ny.kbar, ny.k, i, k));
            kk += vx.iter().map(|v| v * v).sum::<f64>();
            ll += vy.iter().map(|v| v * v).sum::<f64>();
            for (a, j) in ix.iter().enumerate() {
                if let Some(b) = iy.iter().position(|l| l == j) {
                    kl += vx[a] * vy[b];
                }
            }
        }
        if !(kk > 0.0 && ll > 0.0) {
            return Err(SimError::Undefined(format!(
                "CKNNA is undefined: the centered kernel of layer {} is 0 on all its \
                 nearest-neighbour pairs",
                if kk > 0.0 { "Y" } else { "X" }
            )));
        }
        Ok((kl / (kk * ll).sqrt()).clamp(-1.0, 1.0))
    }
}
