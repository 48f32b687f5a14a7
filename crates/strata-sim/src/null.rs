//! Significance and precision of a similarity: a seeded permutation null and bootstrap
//! percentile intervals, for CKA and for every [`Measure`].
//!
//! Why: a similarity between two representations of `n` examples is not 0 when they are
//! unrelated. Biased linear CKA between two independent isotropic Gaussian layers of `p` and
//! `q` features is about `√(pq / ((n + p)(n + q)))`: 0.05 for 10 units over 200 examples, 0.5
//! when `p = q = n`; CCA is exactly 1 once `p >= n`; RSA and k-NN overlaps have their own
//! chance levels. Whether 0.3 means "related" depends on `n`, the widths and the measure. The
//! permutation null measures that chance level on the data at hand, and the bootstrap says how
//! much the value would move with another sample of examples.
//!
//! # Permutation null
//!
//! Draw `d` pairs the examples of A with a shuffled order of B's examples: row `i` of B becomes
//! row `π_d(i)` of the original. Each layer keeps its own geometry; only the pairing between A
//! and B is broken. If the pairing carries no information (the rows of B are exchangeable with
//! respect to those of A, e.g. A and B independent), the observed value is one more draw from
//! the null distribution, and
//!
//! ```text
//! p = (1 + #{d : null_d >= observed}) / (B + 1)
//! ```
//!
//! is a valid p-value: `P(p <= α) <= α` for every `α`, exactly, with no assumption on the
//! distribution (Phipson & Smyth 2010 explain the `+1`s: the observed value counts as a draw,
//! so `p` is never 0). Ties count as extreme. Its smallest value is `1 / (B + 1)`: `B = 999`
//! resolves `p = 0.001`. For a distance (Procrustes), where small means similar, `<=` replaces
//! `>=` ([`Measure::higher_is_similar`]). Beside `p`, each test reports the null's mean and
//! standard deviation, its 95% quantile (in the direction of "more similar": the 0.05 quantile
//! for a distance), `z = (observed - mean) / sd` and the chance-corrected value
//! `observed - mean`.
//!
//! For CKA (linear and RBF kernels, biased and debiased estimators), a permutation `P` only
//! reorders B's kernel matrix, `L -> P L Pᵀ`, so no kernel and no GEMM is recomputed:
//!
//! * biased: the centering `H = I - 11ᵀ/n` commutes with `P` (`P1 = 1`), so the centered Gram
//!   of the permuted layer is the permuted centered Gram and
//!   `tr(K_c P L_c Pᵀ) = Σ_ij K_c[i,j] L_c[π(i), π(j)]`;
//! * debiased: `P K̃ Pᵀ` keeps a zero diagonal, its row sums are the permuted row sums
//!   (`r -> P r`) and its total is unchanged, so the unbiased estimator's coupling terms
//!   `tr(K̃ L̃)` and `rᵀ r'` are one `Σ_ij` pass and one `O(n)` dot (the U-centered matrix of a
//!   permuted Gram is the permuted U-centered matrix; the formula does not form it);
//! * the self-terms (the denominator) do not change at all.
//!
//! Each layer's centered (or zero-diagonal) Gram matrix is formed once (`n² p`) and every draw
//! costs one pass over the two lower triangles, `n²/2` multiply-adds in f64 per pair, no GEMM.
//! Linear layers with `p < n` features use the feature-space form instead when it is cheaper:
//! `‖X_cᵀ P Y_c‖²_F` is one `p x q x n` GEMM per draw on the permuted rows, chosen when
//! `p q <= 16 n`, and no `n x n` matrix is formed for those layers at all. (Measured at
//! `n = 2000` on one core: a pair's pass over two lower triangles takes about 2 ms and
//! gathering B's permuted matrix about 4 ms, while the GEMM takes 2.4 ms at `p = q = 170`,
//! `p q = 14.5 n`; the two paths break even between `p q ≈ 12 n` and `35 n` depending on how
//! many layers of A share the gather.)
//!
//! All pairs ([`cka_null_all_pairs`]) use **one permutation per draw for the whole matrix**,
//! applied to every layer of B: each layer of B is gathered once per draw and then dotted with
//! every layer of A, so a draw costs `n_a n_b n²/2` multiply-adds (Gram form) and the cells of a
//! row or column stay comparable within a draw. Cost: no GEMM per draw, but `B` memory-bound
//! passes; for `B = 1000` that is far more than the matrix itself (measured: a 4 x 4 linear
//! matrix at `n = 2000` took 0.16 s, 1000 permutations about 400 times that; see
//! docs/similarity.md). Memory: each layer's `n x n`
//! f32 Gram matrix (`4 n²` bytes) where the Gram form is used, plus a small buffer per thread.
//!
//! The generic null of any [`Measure`] ([`measure_null_all_pairs`]) permutes B's rows and
//! rebuilds each B layer's [`Basis`] (its SVD) every draw: `n_b` decompositions per draw,
//! much slower than the CKA shortcut, but it gives every measure a null.
//!
//! # Bootstrap percentile intervals
//!
//! Draw `d` resamples `n` examples with replacement (the same indices for both sides), and the
//! statistic is recomputed on the resampled rows; the interval's bounds are the
//! `(1 - c)/2` and `(1 + c)/2` quantiles of the draws (confidence `c`, 0.95 by default), with
//! NumPy's default linear interpolation, and the spread is the draws' standard deviation.
//! This is Efron's percentile interval: it assumes the statistic's sampling distribution is
//! roughly symmetric around its expectation and has little bias; CKA's biased estimator is
//! biased upward by `O(1/n)` (more for wide layers), so its intervals cover the population
//! value at about their nominal rate only when `n` is large against the widths
//! (`crates/strata-sim/tests/null.rs` measures the coverage in a setting where the population
//! CKA is known).
//!
//! A resample repeats about `36.8%` of the examples' slots with duplicates. The statistic is
//! computed on the resampled rows **as given**: a duplicated example forms a pair `(i, j)`,
//! `i != j`, with itself. For the debiased estimator those pairs enter the U-statistic as if
//! they were distinct examples with kernel value `K(x, x)`, which adds dependence that is not
//! in the data (the debiased value of a resample is biased upward); strata does not correct
//! for it. For CKA the resampled kernel matrices are gathered from the full sample's ones
//! (`K_b[i, j] = K[idx_i, idx_j]`, re-centered), so the RBF bandwidth is the full sample's,
//! held fixed across draws (re-estimating it on a resample would count the duplicates' zero
//! distances in its median). A draw where a value is undefined (e.g. a layer that is constant
//! on the resampled examples) is left out and the number of draws used is reported.
//!
//! # Seeds and determinism
//!
//! Draw `d` (0-based) under seed `s` takes its random numbers from a SplitMix64 stream started
//! at `mix(mix(s ^ t) + d)`, with `mix` SplitMix64's finalizer and `t` a constant per purpose
//! (one for permutations, one for resampling, so one seed gives independent streams);
//! [`permutation`] (a Fisher-Yates shuffle) and [`resample`] are those draws. Each draw's
//! value is computed on one thread in a fixed order (sequential GEMMs, fixed blocks), and the
//! draws run in parallel on rayon's pool, so results are bit-identical for any number of
//! threads. The observed value is computed by the same code as the draws (the identity
//! permutation), so it can differ from [`crate::cka`]'s in the last digits of f32 rounding.

use crate::prepared::{check_layer, rbf_from_gram, row_sq_norms};
use crate::{hsic_estimate, Basis, Estimator, Kernel, LayerTerms, Measure, Progress, SimError};
use faer::linalg::matmul::matmul;
use faer::linalg::matmul::triangular::{self, BlockStructure};
use faer::{Accum, MatMut, MatRef, Par};
use ndarray::{Array2, ArrayView2};
use rayon::prelude::*;
use serde::Serialize;
use std::sync::atomic::{AtomicU64, Ordering};

/// The confidence level of a bootstrap interval unless one is given.
pub const DEFAULT_CONFIDENCE: f64 = 0.95;

/// Linear layers of `p` and `q < n` features take the feature-space path (one `p x q x n` GEMM
/// per draw) when `p q <= FEATURES_PER_EXAMPLE * n`; others the Gram path (`n²/2` gathered
/// multiply-adds per draw).
const FEATURES_PER_EXAMPLE: usize = 16;

/// Floats of B's permuted Gram rows gathered at once (256 KiB: stays in L2 while every layer
/// of A is dotted with it).
const BLOCK_FLOATS: usize = 65_536;

/// How many permutations a permutation test draws, and from which seed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct NullOptions {
    /// Permutations `B` (at least 1). `p` is at least `1 / (B + 1)`: 999 resolves 0.001.
    pub permutations: usize,
    /// Seed of the permutations (see the module docs for the scheme).
    pub seed: u64,
}

impl NullOptions {
    fn check(&self) -> Result<(), SimError> {
        if self.permutations == 0 {
            return Err(SimError::InvalidOption(
                "a permutation test needs at least 1 permutation (999 resolve p = 0.001), got 0"
                    .into(),
            ));
        }
        Ok(())
    }
}

/// How many bootstrap resamples to draw, the interval's confidence and the seed.
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
pub struct BootstrapOptions {
    /// Resamples `B` (at least 1; a few thousand for stable 95% bounds).
    pub resamples: usize,
    /// Confidence level of the percentile interval, in `(0, 1)` ([`DEFAULT_CONFIDENCE`]).
    pub confidence: f64,
    /// Seed of the resamples (see the module docs for the scheme).
    pub seed: u64,
}

impl BootstrapOptions {
    /// `resamples` draws from `seed` at the default confidence (0.95).
    pub fn new(resamples: usize, seed: u64) -> Self {
        BootstrapOptions {
            resamples,
            confidence: DEFAULT_CONFIDENCE,
            seed,
        }
    }

    fn check(&self) -> Result<(), SimError> {
        if self.resamples == 0 {
            return Err(SimError::InvalidOption(
                "a bootstrap interval needs at least 1 resample (a few thousand for stable 95% \
                 bounds), got 0"
                    .into(),
            ));
        }
        let c = self.confidence;
        if !(c > 0.0 && c < 1.0) {
            return Err(SimError::InvalidOption(format!(
                "the confidence level of a bootstrap interval must lie strictly between 0 and 1 \
                 (0.95 for a 95% interval), got {c}"
            )));
        }
        Ok(())
    }
}

/// A permutation test of one similarity: the observed value against its null distribution.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct PermutationTest {
    /// The similarity of the data as paired.
    pub observed: f64,
    /// `(1 + #{null >= observed}) / (B + 1)` (`<=` for a distance), in `(0, 1]`.
    pub p_value: f64,
    /// Mean of the null draws: the value expected by chance.
    pub null_mean: f64,
    /// Standard deviation of the null draws (divisor `B - 1`; 0 when `B = 1`).
    pub null_sd: f64,
    /// The null's 95% quantile in the direction of "more similar" (its 0.05 quantile for a
    /// distance), NumPy's linear interpolation: roughly the value to beat for `p <= 0.05`.
    /// For the moments null, the 95% quantile of the fitted Pearson type III distribution.
    pub null_q95: f64,
    /// Skewness of the null: of the draws (`m₃ / m₂^{3/2}`, divisor `B`; `None` with fewer
    /// than 3 draws or no spread), or, for the moments null, the exact skewness over all
    /// permutations (`None` below 6 examples).
    pub null_skewness: Option<f64>,
    /// `(observed - null_mean) / null_sd`; `None` when the null has no spread.
    pub z: Option<f64>,
    /// `observed - null_mean`: the similarity above chance.
    pub corrected: f64,
    /// Draws that entered the statistics (draws whose value was undefined are left out); 0
    /// for the moments null, which draws nothing.
    pub permutations: usize,
    /// Every draw's value, in draw order (NaN where undefined); empty for the moments null.
    pub null: Vec<f64>,
}

impl PermutationTest {
    /// The test from the observed value and the null draws; `None` when the observed value or
    /// every draw is undefined.
    fn from_draws(observed: f64, null: Vec<f64>, higher_is_similar: bool) -> Option<Self> {
        let used: Vec<f64> = null.iter().copied().filter(|v| v.is_finite()).collect();
        if used.is_empty() || !observed.is_finite() {
            return None;
        }
        let extreme = used
            .iter()
            .filter(|&&v| {
                if higher_is_similar {
                    v >= observed
                } else {
                    v <= observed
                }
            })
            .count();
        let b = used.len();
        let (mean, sd) = mean_sd(&used);
        let skewness = skewness(&used, mean);
        let sorted = sorted(used);
        let q = if higher_is_similar { 0.95 } else { 0.05 };
        Some(PermutationTest {
            observed,
            p_value: (1 + extreme) as f64 / (b + 1) as f64,
            null_mean: mean,
            null_sd: sd,
            null_q95: quantile(&sorted, q),
            null_skewness: skewness,
            z: (sd > 0.0).then(|| (observed - mean) / sd),
            corrected: observed - mean,
            permutations: b,
            null,
        })
    }
}

/// A bootstrap percentile interval of one similarity.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct BootstrapInterval {
    /// The similarity of the full sample.
    pub observed: f64,
    /// Lower bound: the `(1 - confidence) / 2` quantile of the resampled values.
    pub low: f64,
    /// Upper bound: the `(1 + confidence) / 2` quantile of the resampled values.
    pub high: f64,
    /// Standard deviation of the resampled values (divisor `B - 1`; 0 when `B = 1`).
    pub sd: f64,
    /// The confidence level.
    pub confidence: f64,
    /// Resamples whose value was defined and entered the interval.
    pub resamples: usize,
    /// Every resample's value, in draw order (NaN where undefined).
    pub draws: Vec<f64>,
}

impl BootstrapInterval {
    fn from_draws(observed: f64, draws: Vec<f64>, confidence: f64) -> Option<Self> {
        let used: Vec<f64> = draws.iter().copied().filter(|v| v.is_finite()).collect();
        if used.is_empty() || !observed.is_finite() {
            return None;
        }
        let b = used.len();
        let (_, sd) = mean_sd(&used);
        let sorted = sorted(used);
        Some(BootstrapInterval {
            observed,
            low: quantile(&sorted, (1.0 - confidence) / 2.0),
            high: quantile(&sorted, (1.0 + confidence) / 2.0),
            sd,
            confidence,
            resamples: b,
            draws,
        })
    }
}

/// Permutation tests of every layer of A (rows) against every layer of B (columns).
#[derive(Clone, Debug, Serialize)]
pub struct NullMatrix {
    /// `cells[i][j]`: the test of (A_i, B_j); `None` where the similarity is undefined (see
    /// `notes`).
    pub cells: Vec<Vec<Option<PermutationTest>>>,
    /// Why some cells are undefined, one line per layer (or pair).
    pub notes: Vec<String>,
    /// Examples.
    pub n: usize,
    /// The permutations asked for and their seed (0 permutations for the moments null).
    pub options: NullOptions,
    /// How the null was obtained: seeded draws or the analytic moments.
    pub method: NullMethod,
}

/// How a permutation null is obtained.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum NullMethod {
    /// `B` seeded permutations, each recomputing the similarity ([`cka_null_all_pairs`],
    /// [`measure_null_all_pairs`]): exact p-values for any measure, `B` passes of work.
    #[default]
    Draws,
    /// The exact mean, variance and skewness of linear biased CKA over all permutations and a
    /// Pearson type III p-value ([`crate::cka_null_moments_all_pairs`]): no draws, about the
    /// cost of the CKA matrix; approximate p-values.
    Moments,
}

impl NullMethod {
    /// Short name for tables and JSON: `draws` or `moments`.
    pub fn name(&self) -> &'static str {
        match self {
            NullMethod::Draws => "draws",
            NullMethod::Moments => "moments",
        }
    }
}

impl NullMatrix {
    /// One field of every cell (`None` where the cell is undefined or the field is), e.g.
    /// `m.field(|t| Some(t.p_value))`.
    pub fn field(&self, f: impl Fn(&PermutationTest) -> Option<f64>) -> Vec<Vec<Option<f64>>> {
        self.cells
            .iter()
            .map(|row| row.iter().map(|c| c.as_ref().and_then(&f)).collect())
            .collect()
    }
}

/// Bootstrap intervals of every layer of A (rows) against every layer of B (columns).
#[derive(Clone, Debug, Serialize)]
pub struct BootstrapMatrix {
    /// `cells[i][j]`: the interval of (A_i, B_j); `None` where the similarity is undefined.
    pub cells: Vec<Vec<Option<BootstrapInterval>>>,
    /// Why some cells are undefined, one line per layer (or pair).
    pub notes: Vec<String>,
    /// Examples.
    pub n: usize,
    /// The resamples asked for, the confidence and the seed.
    pub options: BootstrapOptions,
}

impl BootstrapMatrix {
    /// One field of every cell (`None` where the cell is undefined), e.g.
    /// `m.field(|c| Some(c.low))`.
    pub fn field(&self, f: impl Fn(&BootstrapInterval) -> Option<f64>) -> Vec<Vec<Option<f64>>> {
        self.cells
            .iter()
            .map(|row| row.iter().map(|c| c.as_ref().and_then(&f)).collect())
            .collect()
    }
}

// ---------- seeds ----------

const GOLDEN: u64 = 0x9E37_79B9_7F4A_7C15;
/// Purpose constants: "permute!" and "resample" in ASCII.
const PURPOSE_PERMUTE: u64 = 0x7065_726d_7574_6521;
const PURPOSE_RESAMPLE: u64 = 0x7265_7361_6d70_6c65;

/// SplitMix64's finalizer (a bijection of `u64`).
fn mix(mut x: u64) -> u64 {
    x = (x ^ (x >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    x ^ (x >> 31)
}

/// A SplitMix64 stream, one per draw.
struct Stream(u64);

impl Stream {
    fn new(seed: u64, purpose: u64, draw: usize) -> Self {
        Stream(mix(mix(seed ^ purpose).wrapping_add(draw as u64)))
    }

    fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(GOLDEN);
        mix(self.0)
    }

    /// Uniform in `[0, n)` (Lemire's multiply-shift; bias below `n / 2^64`).
    fn below(&mut self, n: usize) -> usize {
        ((self.next_u64() as u128 * n as u128) >> 64) as usize
    }
}

/// The permutation of draw `draw` (0-based) under `seed`: row `i` of the permuted layer is row
/// `permutation[i]` of the original. A Fisher-Yates shuffle of `0..n` driven by the draw's
/// SplitMix64 stream (see the module docs), so a draw can be reproduced on its own.
pub fn permutation(seed: u64, draw: usize, n: usize) -> Vec<usize> {
    let mut g = Stream::new(seed, PURPOSE_PERMUTE, draw);
    let mut p: Vec<usize> = (0..n).collect();
    for i in (1..n).rev() {
        let j = g.below(i + 1);
        p.swap(i, j);
    }
    p
}

/// The bootstrap resample of draw `draw` (0-based) under `seed`: `n` indices drawn uniformly
/// from `0..n` with replacement; row `i` of the resampled layers is row `resample[i]`.
pub fn resample(seed: u64, draw: usize, n: usize) -> Vec<usize> {
    let mut g = Stream::new(seed, PURPOSE_RESAMPLE, draw);
    (0..n).map(|_| g.below(n)).collect()
}

// ---------- small statistics ----------

fn mean_sd(v: &[f64]) -> (f64, f64) {
    let b = v.len() as f64;
    let mean = v.iter().sum::<f64>() / b;
    let sd = if v.len() > 1 {
        (v.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / (b - 1.0)).sqrt()
    } else {
        0.0
    };
    (mean, sd)
}

/// `m₃ / m₂^{3/2}` (central moments with divisor `B`); `None` with fewer than 3 values or no
/// spread.
fn skewness(v: &[f64], mean: f64) -> Option<f64> {
    if v.len() < 3 {
        return None;
    }
    let b = v.len() as f64;
    let m2 = v.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / b;
    let m3 = v.iter().map(|x| (x - mean).powi(3)).sum::<f64>() / b;
    (m2 > 0.0).then(|| m3 / m2.powf(1.5))
}

fn sorted(mut v: Vec<f64>) -> Vec<f64> {
    v.sort_by(f64::total_cmp);
    v
}

/// The `q` quantile of sorted values with linear interpolation between order statistics
/// (NumPy's default, Hyndman & Fan's type 7).
fn quantile(sorted: &[f64], q: f64) -> f64 {
    let last = sorted.len() - 1;
    let h = last as f64 * q;
    let lo = (h.floor() as usize).min(last);
    let hi = (lo + 1).min(last);
    sorted[lo] + (h - lo as f64) * (sorted[hi] - sorted[lo])
}

// ---------- inputs ----------

fn check_rows(a: &[ArrayView2<f32>], b: Option<&[ArrayView2<f32>]>) -> Result<usize, SimError> {
    let n = a
        .first()
        .or_else(|| b.and_then(|b| b.first()))
        .map_or(0, |x| x.nrows());
    for x in a.iter().chain(b.into_iter().flatten()) {
        if x.nrows() != n {
            return Err(SimError::MismatchedExamples { a: n, b: x.nrows() });
        }
    }
    Ok(n)
}

fn slice(a: &Array2<f32>) -> Result<&[f32], SimError> {
    a.as_slice().ok_or_else(|| SimError::Shape {
        op: "null",
        msg: "an internal matrix is not in standard layout".into(),
    })
}

fn gather_rows(x: ArrayView2<f32>, rows: &[usize]) -> Array2<f32> {
    let p = x.ncols();
    Array2::from_shape_fn((rows.len(), p), |(i, j)| x[[rows[i], j]])
}

// ---------- sequential kernels (one draw = one thread, fixed order) ----------

/// `Σ a_i b_i` in f64 over two slices of one length, eight accumulators.
fn dot64(a: &[f32], b: &[f32]) -> f64 {
    let mut acc = [0f64; 8];
    let (ca, cb) = (a.chunks_exact(8), b.chunks_exact(8));
    let (ra, rb) = (ca.remainder(), cb.remainder());
    for (x, y) in ca.zip(cb) {
        for k in 0..8 {
            acc[k] += x[k] as f64 * y[k] as f64;
        }
    }
    let mut t = ((acc[0] + acc[1]) + (acc[2] + acc[3])) + ((acc[4] + acc[5]) + (acc[6] + acc[7]));
    for (x, y) in ra.iter().zip(rb) {
        t += *x as f64 * *y as f64;
    }
    t
}

/// `Σ_ij a_ij b_ij` for two symmetric `n x n` matrices, from their lower triangles.
fn lower_dot(a: &[f32], b: &[f32], n: usize) -> f64 {
    let mut t = 0.0;
    for i in 0..n {
        let (ra, rb) = (&a[i * n..i * n + i], &b[i * n..i * n + i]);
        t += 2.0 * dot64(ra, rb) + a[i * n + i] as f64 * b[i * n + i] as f64;
    }
    t
}

fn mat(x: &Array2<f32>) -> Result<MatRef<'_, f32>, SimError> {
    Ok(MatRef::from_row_major_slice(
        slice(x)?,
        x.nrows(),
        x.ncols(),
    ))
}

/// `‖Xᵀ Y‖²_F` (f32 product on one thread, f64 sum).
fn xty_frob2(x: &Array2<f32>, y: &Array2<f32>) -> Result<f64, SimError> {
    let (p, q) = (x.ncols(), y.ncols());
    let mut out = vec![0f32; p * q];
    matmul(
        MatMut::from_row_major_slice_mut(&mut out, p, q),
        Accum::Replace,
        mat(x)?.transpose(),
        mat(y)?,
        1.0,
        Par::Seq,
    );
    Ok(dot64(&out, &out))
}

/// `X Xᵀ` (`n x n`, symmetric, both halves filled) on one thread.
fn gram_seq(x: &Array2<f32>) -> Result<Array2<f32>, SimError> {
    let n = x.nrows();
    let fits = n
        .checked_mul(n)
        .and_then(|e| e.checked_mul(4))
        .is_some_and(|b| b <= isize::MAX as usize);
    if !fits {
        return Err(SimError::Shape {
            op: "null",
            msg: format!("a {n}x{n} Gram matrix is too large to address"),
        });
    }
    let mut out = vec![0f32; n * n];
    let xm = mat(x)?;
    triangular::matmul(
        MatMut::from_row_major_slice_mut(&mut out, n, n),
        BlockStructure::TriangularLower,
        Accum::Replace,
        xm,
        BlockStructure::Rectangular,
        xm.transpose(),
        BlockStructure::Rectangular,
        1.0,
        Par::Seq,
    );
    for i in 0..n {
        for j in 0..i {
            out[j * n + i] = out[i * n + j];
        }
    }
    Array2::from_shape_vec((n, n), out).map_err(|e| SimError::Shape {
        op: "null",
        msg: e.to_string(),
    })
}

/// Row sums of a symmetric `n x n` matrix from its lower triangle (diagonal included), in f64.
fn lower_row_sums(k: &[f32], n: usize) -> Vec<f64> {
    let mut sums = vec![0f64; n];
    for i in 0..n {
        let mut acc = k[i * n + i] as f64;
        for (s, &v) in sums[..i].iter_mut().zip(&k[i * n..i * n + i]) {
            acc += v as f64;
            *s += v as f64;
        }
        sums[i] += acc;
    }
    sums
}

/// `H K H` in place on one thread, means in f64, reading and writing the lower triangle of the
/// symmetric `k` only (and copying it to the upper one when `mirror`).
fn double_center_lower(k: &mut [f32], n: usize, mirror: bool) {
    let means: Vec<f64> = lower_row_sums(k, n)
        .into_iter()
        .map(|s| s / n as f64)
        .collect();
    let grand = means.iter().sum::<f64>() / n as f64;
    for i in 0..n {
        for j in 0..=i {
            let v = &mut k[i * n + j];
            *v = (*v as f64 - means[i] - means[j] + grand) as f32;
        }
    }
    if mirror {
        for i in 0..n {
            for j in 0..i {
                k[j * n + i] = k[i * n + j];
            }
        }
    }
}

/// Subtract the column means (f64, summed in row order) in place.
fn center_columns_seq(x: &mut Array2<f32>) {
    let (n, p) = x.dim();
    let mut sums = vec![0f64; p];
    for row in x.rows() {
        for (s, &v) in sums.iter_mut().zip(row.iter()) {
            *s += v as f64;
        }
    }
    let means: Vec<f32> = sums.iter().map(|s| (s / n as f64) as f32).collect();
    for mut row in x.rows_mut() {
        row.iter_mut().zip(&means).for_each(|(v, m)| *v -= m);
    }
}

// ---------- the CKA engine for resampling ----------

/// Which path each pair takes and which forms each layer must hold.
struct Plan {
    /// `features[i][j]`: the pair (A_i, B_j) takes the feature-space path.
    features: Vec<Vec<bool>>,
    /// Forms of A's layers: (features, Gram).
    forms_a: Vec<(bool, bool)>,
    /// Forms of B's layers (B's own, or, when B is A, merged into `forms_a`).
    forms_b: Vec<(bool, bool)>,
}

fn native_gram(kernel: Kernel, n: usize, p: usize) -> bool {
    matches!(kernel, Kernel::Rbf { .. }) || p >= n
}

fn features_path(kernel: Kernel, n: usize, p: usize, q: usize) -> bool {
    kernel == Kernel::Linear
        && p < n
        && q < n
        && p.saturating_mul(q) <= FEATURES_PER_EXAMPLE.saturating_mul(n)
}

impl Plan {
    fn new(kernel: Kernel, n: usize, pa: &[usize], pb: &[usize], same: bool) -> Self {
        let features: Vec<Vec<bool>> = pa
            .iter()
            .map(|&p| pb.iter().map(|&q| features_path(kernel, n, p, q)).collect())
            .collect();
        let forms = |ps: &[usize], row: &dyn Fn(usize) -> Vec<bool>| -> Vec<(bool, bool)> {
            ps.iter()
                .enumerate()
                .map(|(i, &p)| {
                    let paths = row(i);
                    let feat = paths.iter().any(|&f| f);
                    let gram = native_gram(kernel, n, p) || paths.iter().any(|&f| !f);
                    // A layer in no pair still needs one form for its self term.
                    (feat || !gram, gram)
                })
                .collect()
        };
        let mut forms_a = forms(pa, &|i| features[i].clone());
        let forms_b = forms(pb, &|j| features.iter().map(|r| r[j]).collect());
        if same {
            for (a, b) in forms_a.iter_mut().zip(&forms_b) {
                *a = (a.0 || b.0, a.1 || b.1);
            }
        }
        Plan {
            features,
            forms_a,
            forms_b,
        }
    }
}

/// One layer ready for resampled CKA: centered features and/or its kernel matrix, with the
/// debiased estimator's row sums and the self term.
#[derive(Clone, Debug)]
struct Layer {
    n: usize,
    /// Column-centered features divided by their RMS (linear kernel, `p < n`).
    x: Option<Array2<f32>>,
    /// Biased: the centered kernel matrix `HKH`. Debiased: the kernel matrix with its diagonal
    /// set to zero, `K̃`.
    gram: Option<Array2<f32>>,
    /// Debiased: the kernel matrix's diagonal (squared row norms for the linear kernel).
    kdiag: Vec<f64>,
    /// Debiased: `r = K̃1`.
    r: Vec<f64>,
    /// Debiased: `s = 1ᵀK̃1`.
    s: f64,
    /// The squared factor the features were divided by (1 for RBF).
    scale2: f64,
    /// HSIC of the layer with itself.
    self_hsic: f64,
}

/// A layer, or why its CKA is undefined.
type Prep = Result<Layer, String>;

impl Layer {
    fn terms(&self) -> LayerTerms<'_> {
        LayerTerms {
            scale2: self.scale2,
            r: &self.r,
            s: self.s,
        }
    }

    /// Prepare one layer with the forms asked for.
    fn new(
        x: ArrayView2<f32>,
        kernel: Kernel,
        estimator: Estimator,
        (want_x, want_gram): (bool, bool),
    ) -> Result<Prep, SimError> {
        check_layer(x, estimator)?;
        let (n, p) = x.dim();
        let mut xc = x.as_standard_layout().into_owned();
        center_columns_seq(&mut xc);
        let ms = xc.iter().map(|&v| v as f64 * v as f64).sum::<f64>() / (n * p) as f64;
        let rms = ms.sqrt();
        let mut scale2 = 1.0;
        if rms > 0.0 && rms.is_finite() {
            xc.mapv_inplace(|v| (v as f64 / rms) as f32);
            if kernel == Kernel::Linear {
                scale2 = ms;
            }
        }
        let gram = if want_gram {
            let g = gram_seq(&xc)?;
            match kernel {
                Kernel::Linear => Some(g),
                Kernel::Rbf { threshold } => {
                    match rbf_from_gram(g, &row_sq_norms(xc.view()), threshold) {
                        Ok(k) => Some(k),
                        Err(SimError::Undefined(why)) => return Ok(Err(why)),
                        Err(e) => return Err(e),
                    }
                }
            }
        } else {
            None
        };
        let layer = Layer {
            n,
            x: want_x.then_some(xc),
            gram,
            kdiag: Vec::new(),
            r: Vec::new(),
            s: 0.0,
            scale2,
            self_hsic: 0.0,
        };
        layer.finish(estimator, true)
    }

    /// Fill the estimator's terms (centering the Gram matrix for the biased estimator, zeroing
    /// its diagonal for the debiased one) and the self term; `Err(why)` when the self term is
    /// not positive.
    ///
    /// Only the lower triangle of the Gram matrix is read; with `full` the centered one is
    /// mirrored into the upper triangle too (the permutation null gathers from whole rows),
    /// without it the upper triangle is left as it is (a resample's, never read).
    fn finish(mut self, estimator: Estimator, full: bool) -> Result<Prep, SimError> {
        let n = self.n;
        if let Some(g) = &mut self.gram {
            let k = g.as_slice_mut().ok_or_else(|| SimError::Shape {
                op: "null",
                msg: "a Gram matrix is not in standard layout".into(),
            })?;
            match estimator {
                Estimator::Biased => double_center_lower(k, n, full),
                Estimator::Debiased => {
                    self.kdiag = (0..n).map(|i| k[i * n + i] as f64).collect();
                    for i in 0..n {
                        k[i * n + i] = 0.0;
                    }
                    self.r = lower_row_sums(k, n);
                }
            }
        } else if let (Some(x), Estimator::Debiased) = (&self.x, estimator) {
            // K̃1 = X (Xᵀ1) - diag(K).
            self.kdiag = x
                .rows()
                .into_iter()
                .map(|r| r.iter().map(|&v| v as f64 * v as f64).sum())
                .collect();
            let mut cols = vec![0f64; x.ncols()];
            for row in x.rows() {
                cols.iter_mut()
                    .zip(row.iter())
                    .for_each(|(c, &v)| *c += v as f64);
            }
            self.r = x
                .rows()
                .into_iter()
                .zip(&self.kdiag)
                .map(|(row, d)| {
                    row.iter()
                        .zip(&cols)
                        .map(|(&v, c)| v as f64 * c)
                        .sum::<f64>()
                        - d
                })
                .collect();
        }
        self.s = self.r.iter().sum();
        let t = match (&self.gram, &self.x) {
            (Some(g), _) => lower_dot(slice(g)?, slice(g)?, n),
            (None, Some(x)) => {
                let core = xty_frob2(x, x)?;
                core - self.kdiag.iter().map(|d| d * d).sum::<f64>()
            }
            (None, None) => 0.0,
        };
        self.self_hsic = hsic_estimate(estimator, n, t, self.terms(), self.terms());
        let h = self.self_hsic;
        if !(h > 0.0 && h.is_finite()) {
            return Ok(Err(format!(
                "self-HSIC is {h:.3e} (a constant representation, or too few examples for the \
                 debiased estimator), so its CKA is undefined"
            )));
        }
        Ok(Ok(self))
    }

    /// The layer on the resampled examples `idx` (kernel matrices gathered from this one's,
    /// features gathered and re-centered; the scale and the RBF bandwidth are kept).
    fn resampled(&self, idx: &[usize], estimator: Estimator) -> Result<Prep, SimError> {
        let n = self.n;
        let x = match &self.x {
            Some(x) => {
                let mut xb = gather_rows(x.view(), idx);
                center_columns_seq(&mut xb);
                Some(xb)
            }
            None => None,
        };
        let gram = match &self.gram {
            Some(g) => {
                // The lower triangle only: everything after reads no more.
                let src = slice(g)?;
                let mut out = vec![0f32; n * n];
                for (i, &a) in idx.iter().enumerate() {
                    let row = &src[a * n..(a + 1) * n];
                    let dst = &mut out[i * n..i * n + i + 1];
                    for (d, &b) in dst.iter_mut().zip(idx) {
                        *d = row[b];
                    }
                    if estimator == Estimator::Debiased {
                        // K̃ lost the diagonal: a duplicated example pairs with itself at K(x, x).
                        for (d, &b) in dst.iter_mut().zip(idx) {
                            if b == a {
                                *d = self.kdiag[a] as f32;
                            }
                        }
                    }
                }
                Some(
                    Array2::from_shape_vec((n, n), out).map_err(|e| SimError::Shape {
                        op: "null",
                        msg: e.to_string(),
                    })?,
                )
            }
            None => None,
        };
        Layer {
            n,
            x,
            gram,
            kdiag: Vec::new(),
            r: Vec::new(),
            s: 0.0,
            scale2: self.scale2,
            self_hsic: 0.0,
        }
        .finish(estimator, false)
    }
}

/// `tr` of the pair (no permutation): the Gram or the feature-space form.
fn cross_t(a: &Layer, b: &Layer, features: bool) -> Result<f64, SimError> {
    match (features, &a.x, &b.x, &a.gram, &b.gram) {
        (true, Some(x), Some(y), _, _) => {
            let core = xty_frob2(x, y)?;
            let d: f64 = a.kdiag.iter().zip(&b.kdiag).map(|(u, v)| u * v).sum();
            Ok(core - d)
        }
        (_, _, _, Some(k), Some(l)) => Ok(lower_dot(slice(k)?, slice(l)?, a.n)),
        _ => Err(SimError::Shape {
            op: "null",
            msg: "a layer lacks the form its pair needs".into(),
        }),
    }
}

fn cka_from(a: &Layer, b: &Layer, rb: &[f64], t: f64, estimator: Estimator) -> f64 {
    let tb = LayerTerms {
        scale2: b.scale2,
        r: rb,
        s: b.s,
    };
    hsic_estimate(estimator, a.n, t, a.terms(), tb) / (a.self_hsic * b.self_hsic).sqrt()
}

/// Per-thread scratch of the null draws.
#[derive(Default)]
struct Scratch {
    block: Vec<f32>,
}

/// CKA of every pair with B's rows permuted by `pi` (identity: the observed values), row-major
/// `na x nb`, NaN where a layer is undefined.
fn null_draw(
    la: &[Prep],
    lb: &[Prep],
    plan: &Plan,
    pi: &[usize],
    estimator: Estimator,
    scratch: &mut Scratch,
) -> Result<Vec<f64>, SimError> {
    let (na, nb) = (la.len(), lb.len());
    let mut out = vec![f64::NAN; na * nb];
    for (j, b) in lb.iter().enumerate() {
        let Ok(b) = b else { continue };
        let n = b.n;
        let rp: Vec<f64> = if b.r.is_empty() {
            Vec::new()
        } else {
            pi.iter().map(|&k| b.r[k]).collect()
        };
        let mut t = vec![0f64; na];
        let gram_rows: Vec<usize> = (0..na)
            .filter(|&i| la[i].is_ok() && !plan.features[i][j])
            .collect();
        if !gram_rows.is_empty() {
            let l = match &b.gram {
                Some(g) => slice(g)?,
                None => {
                    return Err(SimError::Shape {
                        op: "null",
                        msg: "a layer lacks its Gram matrix".into(),
                    })
                }
            };
            let rows_per_block = (BLOCK_FLOATS / n).max(1);
            scratch.block.resize(rows_per_block * n, 0.0);
            let mut i0 = 0;
            while i0 < n {
                let i1 = (i0 + rows_per_block).min(n);
                let mut off = 0;
                for i in i0..i1 {
                    let row = &l[pi[i] * n..(pi[i] + 1) * n];
                    for (d, &pj) in scratch.block[off..off + i + 1].iter_mut().zip(pi) {
                        *d = row[pj];
                    }
                    off += i + 1;
                }
                for &ia in &gram_rows {
                    let Ok(a) = &la[ia] else { continue };
                    let k = match &a.gram {
                        Some(g) => slice(g)?,
                        None => {
                            return Err(SimError::Shape {
                                op: "null",
                                msg: "a layer lacks its Gram matrix".into(),
                            })
                        }
                    };
                    let mut acc = 0.0;
                    let mut off = 0;
                    for i in i0..i1 {
                        let buf = &scratch.block[off..off + i + 1];
                        acc += 2.0 * dot64(&k[i * n..i * n + i], &buf[..i])
                            + k[i * n + i] as f64 * buf[i] as f64;
                        off += i + 1;
                    }
                    t[ia] += acc;
                }
                i0 = i1;
            }
        }
        let feat_rows: Vec<usize> = (0..na)
            .filter(|&i| la[i].is_ok() && plan.features[i][j])
            .collect();
        if !feat_rows.is_empty() {
            let y = match &b.x {
                Some(y) => gather_rows(y.view(), pi),
                None => {
                    return Err(SimError::Shape {
                        op: "null",
                        msg: "a layer lacks its features".into(),
                    })
                }
            };
            let dp: Vec<f64> = if b.kdiag.is_empty() {
                Vec::new()
            } else {
                pi.iter().map(|&k| b.kdiag[k]).collect()
            };
            for &ia in &feat_rows {
                let Ok(a) = &la[ia] else { continue };
                let Some(x) = &a.x else {
                    return Err(SimError::Shape {
                        op: "null",
                        msg: "a layer lacks its features".into(),
                    });
                };
                let d: f64 = a.kdiag.iter().zip(&dp).map(|(u, v)| u * v).sum();
                t[ia] = xty_frob2(x, &y)? - d;
            }
        }
        for (ia, a) in la.iter().enumerate() {
            if let Ok(a) = a {
                out[ia * nb + j] = cka_from(a, b, &rp, t[ia], estimator);
            }
        }
    }
    Ok(out)
}

/// CKA of every pair on the resampled examples `idx`, row-major `na x nb`.
fn boot_draw(
    la: &[Prep],
    lb: Option<&[Prep]>,
    plan: &Plan,
    idx: &[usize],
    estimator: Estimator,
) -> Result<Vec<f64>, SimError> {
    let ra: Vec<Prep> = la
        .iter()
        .map(|l| match l {
            Ok(l) => l.resampled(idx, estimator),
            Err(w) => Ok(Err(w.clone())),
        })
        .collect::<Result<_, _>>()?;
    let nb = lb.map_or(la.len(), <[Prep]>::len);
    let mut out = vec![f64::NAN; ra.len() * nb];
    for j in 0..nb {
        let owned;
        let b = match lb {
            Some(lb) => {
                owned = match &lb[j] {
                    Ok(l) => l.resampled(idx, estimator)?,
                    Err(w) => Err(w.clone()),
                };
                &owned
            }
            None => &ra[j],
        };
        let Ok(b) = b else { continue };
        for (i, a) in ra.iter().enumerate() {
            if let Ok(a) = a {
                let t = cross_t(a, b, plan.features[i][j])?;
                out[i * nb + j] = cka_from(a, b, &b.r, t, estimator);
            }
        }
    }
    Ok(out)
}

/// The layers prepared for the plan (in parallel, each on one thread), with notes naming the
/// undefined ones.
fn prepare(
    layers: &[ArrayView2<f32>],
    forms: &[(bool, bool)],
    kernel: Kernel,
    estimator: Estimator,
) -> Result<Vec<Prep>, SimError> {
    layers
        .par_iter()
        .zip(forms.par_iter())
        .map(|(x, &f)| Layer::new(*x, kernel, estimator, f))
        .collect()
}

fn layer_notes(side: &str, layers: &[Prep], notes: &mut Vec<String>) {
    for (i, l) in layers.iter().enumerate() {
        if let Err(w) = l {
            notes.push(format!("{side} layer {i}: {w}"));
        }
    }
}

/// Run `draws` draws (`f(d)` for `d` in `0..draws`) in parallel, in order, ticking `progress`.
fn run_draws<S: Send>(
    draws: usize,
    init: impl Fn() -> S + Sync + Send,
    f: impl Fn(&mut S, usize) -> Result<Vec<f64>, SimError> + Sync + Send,
    progress: Progress,
) -> Result<Vec<Vec<f64>>, SimError> {
    let done = AtomicU64::new(0);
    let total = draws as u64;
    (0..draws)
        .into_par_iter()
        .map_init(init, |s, d| {
            let v = f(s, d);
            progress(done.fetch_add(1, Ordering::Relaxed) + 1, total);
            v
        })
        .collect()
}

/// Column `k` of the draws: every draw's value for one cell.
fn cell(draws: &[Vec<f64>], k: usize) -> Vec<f64> {
    draws.iter().map(|d| d[k]).collect()
}

/// The `na x nb` grid of cells, cell `(i, j)` made by `make(observed, its draws)` from the
/// row-major flat index `i * nb + j` of `observed` and of every draw.
fn grid<T>(
    na: usize,
    nb: usize,
    observed: &[f64],
    draws: &[Vec<f64>],
    make: impl Fn(f64, Vec<f64>) -> Option<T>,
) -> Vec<Vec<Option<T>>> {
    (0..na)
        .map(|i| {
            (0..nb)
                .map(|j| {
                    let k = i * nb + j;
                    make(observed[k], cell(draws, k))
                })
                .collect()
        })
        .collect()
}

/// Both sides of a CKA comparison made ready for the draws: the plan, every layer's kernel
/// matrix (B's `None` when B is A) and a note for each layer whose CKA is undefined.
struct Sides {
    n: usize,
    plan: Plan,
    la: Vec<Prep>,
    lb: Option<Vec<Prep>>,
    notes: Vec<String>,
}

impl Sides {
    fn new(
        a: &[ArrayView2<f32>],
        b: Option<&[ArrayView2<f32>]>,
        kernel: Kernel,
        estimator: Estimator,
    ) -> Result<Self, SimError> {
        let n = check_rows(a, b)?;
        let widths = |l: &[ArrayView2<f32>]| l.iter().map(|x| x.ncols()).collect::<Vec<_>>();
        let pa = widths(a);
        let pb = b.map_or_else(|| pa.clone(), widths);
        let plan = Plan::new(kernel, n, &pa, &pb, b.is_none());
        let la = prepare(a, &plan.forms_a, kernel, estimator)?;
        let lb = match b {
            Some(b) => Some(prepare(b, &plan.forms_b, kernel, estimator)?),
            None => None,
        };
        let mut notes = Vec::new();
        layer_notes("A", &la, &mut notes);
        if let Some(lb) = &lb {
            layer_notes("B", lb, &mut notes);
        }
        Ok(Sides {
            n,
            plan,
            la,
            lb,
            notes,
        })
    }

    /// B's layers (A's when B is A).
    fn b(&self) -> &[Prep] {
        self.lb.as_deref().unwrap_or(&self.la)
    }

    /// Every pair's CKA on the examples as given (the identity permutation).
    fn observed(&self, estimator: Estimator) -> Result<Vec<f64>, SimError> {
        let identity: Vec<usize> = (0..self.n).collect();
        null_draw(
            &self.la,
            self.b(),
            &self.plan,
            &identity,
            estimator,
            &mut Scratch::default(),
        )
    }
}

/// Each layer's [`Basis`] on A's side and, unless B is A, on B's.
fn bases_of(
    a: &[ArrayView2<f32>],
    b: Option<&[ArrayView2<f32>]>,
) -> Result<(Vec<Basis>, Option<Vec<Basis>>), SimError> {
    let ba = bases(a)?;
    let bb = match b {
        Some(b) => Some(bases(b)?),
        None => None,
    };
    Ok((ba, bb))
}

/// Permutation tests of CKA for every layer of A against every layer of B (`b = None`: A with
/// itself), with one permutation of the examples per draw shared by the whole matrix.
///
/// Each layer's centered (or zero-diagonal) kernel matrix is formed once; a draw permutes B's
/// rows and columns and costs `n²/2` multiply-adds per pair, no GEMM (linear layers with few
/// features use one small GEMM per pair instead, see the module docs). `progress` is told
/// `(draws done, draws)`.
///
/// Errors: no permutations ([`SimError::InvalidOption`]), layers with different numbers of
/// examples, too few examples for the estimator, NaN or Inf. A layer whose CKA is undefined
/// (constant, an RBF bandwidth of 0) leaves its cells `None` and a note.
pub fn cka_null_all_pairs(
    a: &[ArrayView2<f32>],
    b: Option<&[ArrayView2<f32>]>,
    kernel: Kernel,
    estimator: Estimator,
    options: &NullOptions,
    progress: Progress,
) -> Result<NullMatrix, SimError> {
    options.check()?;
    let sides = Sides::new(a, b, kernel, estimator)?;
    let n = sides.n;
    let observed = sides.observed(estimator)?;
    let draws = run_draws(
        options.permutations,
        Scratch::default,
        |s, d| {
            let pi = permutation(options.seed, d, n);
            null_draw(&sides.la, sides.b(), &sides.plan, &pi, estimator, s)
        },
        progress,
    )?;
    let cells = grid(
        sides.la.len(),
        sides.b().len(),
        &observed,
        &draws,
        |o, d| PermutationTest::from_draws(o, d, true),
    );
    Ok(NullMatrix {
        cells,
        notes: sides.notes,
        n,
        options: *options,
        method: NullMethod::Draws,
    })
}

/// Bootstrap percentile intervals of CKA for every layer of A against every layer of B
/// (`b = None`: A with itself), each draw resampling the examples once for every layer.
///
/// A draw gathers each layer's kernel matrix at the resampled indices and re-centers it
/// (`n²` work per layer, no GEMM; linear layers with few features are gathered and
/// re-centered instead), then takes every pair's trace. Memory per thread: the resampled
/// matrices of all of A's layers plus one of B's. See the module docs for duplicates, the
/// fixed RBF bandwidth and the percentile method. `progress` is told `(draws done, draws)`.
///
/// Errors: no resamples or a confidence outside `(0, 1)` ([`SimError::InvalidOption`]), and
/// those of [`cka_null_all_pairs`].
pub fn cka_bootstrap_all_pairs(
    a: &[ArrayView2<f32>],
    b: Option<&[ArrayView2<f32>]>,
    kernel: Kernel,
    estimator: Estimator,
    options: &BootstrapOptions,
    progress: Progress,
) -> Result<BootstrapMatrix, SimError> {
    options.check()?;
    let sides = Sides::new(a, b, kernel, estimator)?;
    let n = sides.n;
    let observed = sides.observed(estimator)?;
    let draws = run_draws(
        options.resamples,
        || (),
        |_, d| {
            let idx = resample(options.seed, d, n);
            boot_draw(&sides.la, sides.lb.as_deref(), &sides.plan, &idx, estimator)
        },
        progress,
    )?;
    let cells = grid(
        sides.la.len(),
        sides.b().len(),
        &observed,
        &draws,
        |o, d| BootstrapInterval::from_draws(o, d, options.confidence),
    );
    Ok(BootstrapMatrix {
        cells,
        notes: sides.notes,
        n,
        options: *options,
    })
}

fn single<T>(cells: Vec<Vec<Option<T>>>, notes: &[String], what: &str) -> Result<T, SimError> {
    cells
        .into_iter()
        .next()
        .and_then(|r| r.into_iter().next())
        .flatten()
        .ok_or_else(|| SimError::Undefined(format!("{what} is undefined: {}", notes.join("; "))))
}

/// Permutation test of CKA between `x` (`n x p`) and `y` (`n x q`): `y`'s rows permuted
/// `options.permutations` times (see [`cka_null_all_pairs`] and the module docs).
///
/// Errors: those of [`cka_null_all_pairs`], and [`SimError::Undefined`] when the CKA itself is.
pub fn cka_permutation_test(
    x: ArrayView2<f32>,
    y: ArrayView2<f32>,
    kernel: Kernel,
    estimator: Estimator,
    options: &NullOptions,
) -> Result<PermutationTest, SimError> {
    let m = cka_null_all_pairs(&[x], Some(&[y]), kernel, estimator, options, &|_, _| {})?;
    single(m.cells, &m.notes, "CKA")
}

/// Bootstrap percentile interval of CKA between `x` and `y` (rows resampled together; see
/// [`cka_bootstrap_all_pairs`] and the module docs).
///
/// Errors: those of [`cka_bootstrap_all_pairs`], and [`SimError::Undefined`] when the CKA
/// itself is.
pub fn cka_bootstrap(
    x: ArrayView2<f32>,
    y: ArrayView2<f32>,
    kernel: Kernel,
    estimator: Estimator,
    options: &BootstrapOptions,
) -> Result<BootstrapInterval, SimError> {
    let m = cka_bootstrap_all_pairs(&[x], Some(&[y]), kernel, estimator, options, &|_, _| {})?;
    single(m.cells, &m.notes, "CKA")
}

// ---------- any measure ----------

/// Bases of the layers, each built on one rayon thread (so its decomposition runs on that
/// thread alone and does not depend on the pool's size).
fn bases(layers: &[ArrayView2<f32>]) -> Result<Vec<Basis>, SimError> {
    layers.par_iter().map(|x| Basis::new(*x)).collect()
}

/// `m` between every pair of bases, row-major, with the reasons of the undefined ones.
fn measure_cells(m: &dyn Measure, ba: &[Basis], bb: &[Basis]) -> (Vec<f64>, Vec<String>) {
    let mut notes = Vec::new();
    let mut out = Vec::with_capacity(ba.len() * bb.len());
    for (i, x) in ba.iter().enumerate() {
        for (j, y) in bb.iter().enumerate() {
            match m.between(x, y) {
                Ok(v) => out.push(v),
                Err(e) => {
                    out.push(f64::NAN);
                    if notes.len() < 20 {
                        notes.push(format!("A layer {i} vs B layer {j}: {e}"));
                    }
                }
            }
        }
    }
    (out, notes)
}

/// Permutation tests of any [`Measure`] for every layer of A against every layer of B
/// (`b = None`: A with itself): each draw permutes the rows of every layer of B with one
/// permutation and rebuilds their [`Basis`] (an SVD per layer per draw), so this costs about
/// `B` times the decompositions of B's layers. For a distance (`higher_is_similar` false), small
/// values are the extreme ones. `progress` is told `(draws done, draws)`.
///
/// Errors: no permutations, different numbers of examples, and the [`Basis::new`] errors of
/// the original layers (no features, fewer than 2 examples, NaN or Inf). A pair whose value is
/// undefined leaves its cell `None` and a note; a draw whose value is undefined is left out.
pub fn measure_null_all_pairs(
    m: &dyn Measure,
    a: &[ArrayView2<f32>],
    b: Option<&[ArrayView2<f32>]>,
    options: &NullOptions,
    progress: Progress,
) -> Result<NullMatrix, SimError> {
    options.check()?;
    let n = check_rows(a, b)?;
    let (ba, bb_owned) = bases_of(a, b)?;
    let bb: &[Basis] = bb_owned.as_deref().unwrap_or(&ba);
    let raw_b: &[ArrayView2<f32>] = b.unwrap_or(a);
    let (observed, notes) = measure_cells(m, &ba, bb);
    let draws = run_draws(
        options.permutations,
        || (),
        |_, d| {
            let pi = permutation(options.seed, d, n);
            let mut out = vec![f64::NAN; ba.len() * raw_b.len()];
            for (j, y) in raw_b.iter().enumerate() {
                let Ok(by) = Basis::new(gather_rows(*y, &pi).view()) else {
                    continue;
                };
                for (i, bx) in ba.iter().enumerate() {
                    out[i * raw_b.len() + j] = m.between(bx, &by).unwrap_or(f64::NAN);
                }
            }
            Ok(out)
        },
        progress,
    )?;
    let higher = m.higher_is_similar();
    let cells = grid(ba.len(), raw_b.len(), &observed, &draws, |o, d| {
        PermutationTest::from_draws(o, d, higher)
    });
    Ok(NullMatrix {
        cells,
        notes,
        n,
        options: *options,
        method: NullMethod::Draws,
    })
}

/// Bootstrap percentile intervals of any [`Measure`] for every layer of A against every layer
/// of B (`b = None`: A with itself): each draw resamples the examples once, with replacement,
/// for every layer, and rebuilds every [`Basis`]. `progress` is told `(draws done, draws)`.
///
/// Errors: those of [`measure_null_all_pairs`], with no resamples or a confidence outside
/// `(0, 1)` in place of no permutations.
pub fn measure_bootstrap_all_pairs(
    m: &dyn Measure,
    a: &[ArrayView2<f32>],
    b: Option<&[ArrayView2<f32>]>,
    options: &BootstrapOptions,
    progress: Progress,
) -> Result<BootstrapMatrix, SimError> {
    options.check()?;
    let n = check_rows(a, b)?;
    let (ba, bb_owned) = bases_of(a, b)?;
    let bb: &[Basis] = bb_owned.as_deref().unwrap_or(&ba);
    let (observed, notes) = measure_cells(m, &ba, bb);
    let nb = bb.len();
    let draws = run_draws(
        options.resamples,
        || (),
        |_, d| {
            let idx = resample(options.seed, d, n);
            let rebuild = |x: &ArrayView2<f32>| Basis::new(gather_rows(*x, &idx).view()).ok();
            let ra: Vec<Option<Basis>> = a.iter().map(rebuild).collect();
            let mut out = vec![f64::NAN; a.len() * nb];
            for j in 0..nb {
                let owned;
                let y = match b {
                    Some(b) => {
                        owned = rebuild(&b[j]);
                        owned.as_ref()
                    }
                    None => ra[j].as_ref(),
                };
                let Some(y) = y else { continue };
                for (i, x) in ra.iter().enumerate() {
                    if let Some(x) = x {
                        out[i * nb + j] = m.between(x, y).unwrap_or(f64::NAN);
                    }
                }
            }
            Ok(out)
        },
        progress,
    )?;
    let cells = grid(ba.len(), nb, &observed, &draws, |o, d| {
        BootstrapInterval::from_draws(o, d, options.confidence)
    });
    Ok(BootstrapMatrix {
        cells,
        notes,
        n,
        options: *options,
    })
}

/// Permutation test of any [`Measure`] between `x` and `y` (`y`'s rows permuted, its basis
/// rebuilt every draw; see [`measure_null_all_pairs`]).
///
/// Errors: those of [`measure_null_all_pairs`], and the measure's own when its value is
/// undefined for `x` and `y`.
pub fn measure_permutation_test(
    m: &dyn Measure,
    x: ArrayView2<f32>,
    y: ArrayView2<f32>,
    options: &NullOptions,
) -> Result<PermutationTest, SimError> {
    let r = measure_null_all_pairs(m, &[x], Some(&[y]), options, &|_, _| {})?;
    single(r.cells, &r.notes, m.name())
}

/// Bootstrap percentile interval of any [`Measure`] between `x` and `y` (rows resampled
/// together; see [`measure_bootstrap_all_pairs`]).
///
/// Errors: those of [`measure_bootstrap_all_pairs`], and the measure's own when its value is
/// undefined for `x` and `y`.
pub fn measure_bootstrap(
    m: &dyn Measure,
    x: ArrayView2<f32>,
    y: ArrayView2<f32>,
    options: &BootstrapOptions,
) -> Result<BootstrapInterval, SimError> {
    let r = measure_bootstrap_all_pairs(m, &[x], Some(&[y]), options, &|_, _| {})?;
    single(r.cells, &r.notes, m.name())
}

/// Bytes [`cka_null_all_pairs`] or, with `bootstrap`, [`cka_bootstrap_all_pairs`] hold at
/// most for layers of these widths over `n` examples with `threads` draws running at once
/// (the callers' raw layers and the per-draw results, `8 B n_a n_b` bytes, not included):
/// each layer's centered features (`4 n p`, linear kernel with `p < n`) and `n x n` kernel
/// matrix (`4 n²`) where its pairs need them; per thread, one block and one permuted layer
/// (null) or a resampled copy of every layer of A and one of B (bootstrap).
pub fn cka_resampling_bytes(
    n: usize,
    widths_a: &[usize],
    widths_b: Option<&[usize]>,
    kernel: Kernel,
    bootstrap: bool,
    threads: usize,
) -> u64 {
    let pb = widths_b.map_or_else(|| widths_a.to_vec(), <[usize]>::to_vec);
    let plan = Plan::new(kernel, n, widths_a, &pb, widths_b.is_none());
    let (n64, gram) = (
        n as u64,
        (n as u64).saturating_mul(n as u64).saturating_mul(4),
    );
    let bytes = |p: usize, (x, g): (bool, bool)| -> u64 {
        let xb = if x {
            n64.saturating_mul(p as u64).saturating_mul(4)
        } else {
            0
        };
        xb.saturating_add(if g { gram } else { 0 })
    };
    let sa: Vec<u64> = widths_a
        .iter()
        .zip(&plan.forms_a)
        .map(|(&p, &f)| bytes(p, f))
        .collect();
    let sb: Vec<u64> = match widths_b {
        Some(w) => w
            .iter()
            .zip(&plan.forms_b)
            .map(|(&p, &f)| bytes(p, f))
            .collect(),
        None => Vec::new(),
    };
    let held = sa.iter().chain(&sb).fold(0u64, |s, &v| s.saturating_add(v));
    let per_thread = if bootstrap {
        let all_a = sa.iter().fold(0u64, |s, &v| s.saturating_add(v));
        all_a.saturating_add(sb.iter().copied().max().unwrap_or(0))
    } else {
        let widest = pb.iter().copied().max().unwrap_or(0) as u64;
        ((BLOCK_FLOATS as u64 + n64) * 4)
            .saturating_add(n64.saturating_mul(widest).saturating_mul(4))
    };
    held.saturating_add(per_thread.saturating_mul(threads.max(1) as u64))
}
