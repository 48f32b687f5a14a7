//! Baseline similarity measures (Kornblith et al. 2019, Sections 2-4 and Table 2), all computed
//! from two prepared [`Basis`] values through `M = U_xᵀ U_y`.
//!
//! | name | value | range | symmetric |
//! |---|---|---|---|
//! | `cca_rho` | mean canonical correlation `Σρ_i / k` | [0, 1] | yes |
//! | `cca_r2` | Yanai's `R²_CCA = Σρ_i² / k` | [0, 1] | yes |
//! | `svcca_rho`, `svcca_r2` | the same after keeping the top directions that explain 99% of each side's variance (Raghu et al. 2017) | [0, 1] | yes |
//! | `pwcca` | projection-weighted mean `ρ` (Morcos et al. 2018), weights from X | [0, 1] | no |
//! | `linreg` | `R²` of the least-squares prediction of Y from X | [0, 1] | no |
//! | `procrustes` | orthogonal Procrustes **distance** of unit-norm layers | [0, 2] | yes |
//! | `hsic` | linear biased HSIC `‖Y_cᵀX_c‖²_F / (n-1)²` | [0, ∞) | yes |
//! | `cka_linear` | linear CKA | [0, 1] | yes |
//!
//! [`MEASURE_NAMES`] also holds `rsa`, `mutual_knn` and `cknna`, the measures of each
//! example's row (see [`crate::Rsa`], [`crate::MutualKnn`], [`crate::Cknna`]).
//!
//! `k = min(r_x, r_y)` is the number of canonical correlations. CCA-family measures are
//! invariant to any invertible linear map of either layer, which is why they fail when a layer
//! has at least as many features as there are examples: its centered span is then the whole
//! `(n-1)`-dimensional space of centered vectors, every direction of the other layer lies in
//! it, and all `ρ = 1` whatever the data. strata returns that 1 (it is the mathematically
//! correct value) and documents it rather than hiding it; SVCCA's truncation, CKA and
//! Procrustes do not have this failure.

use crate::alignment::{Cknna, MutualKnn, Rsa, DEFAULT_K};
use crate::basis::{product, thin_svd};
use crate::{Basis, SimError};
use faer::{Mat, MatRef};
use rayon::prelude::*;

/// A similarity (or distance) between two layers of the same examples, computed from their
/// prepared bases so that each layer is decomposed once however many pairs it enters.
///
/// One trait for every measure lets the identification test and the CLI list, name and loop
/// over them alike.
pub trait Measure: Send + Sync {
    /// Short name for tables and `--measure` (one of [`MEASURE_NAMES`] for the built-ins).
    fn name(&self) -> &'static str;
    /// True when larger means more similar (false for distances such as Procrustes), so that
    /// rankings can sort the right way. Most measures are similarities.
    fn higher_is_similar(&self) -> bool {
        true
    }
    /// True when `between(x, y) == between(y, x)`, so all-pairs matrices of a model with
    /// itself need only one triangle. Most measures are symmetric.
    fn symmetric(&self) -> bool {
        true
    }
    /// The value for two prepared layers of the same `n` examples.
    ///
    /// Errors: different `n`, or a value that is undefined for these layers (e.g. a rank-0
    /// layer where the measure divides by its norm), as [`SimError::Undefined`] saying why.
    fn between(&self, x: &Basis, y: &Basis) -> Result<f64, SimError>;
}

/// The names [`measure_by_name`] accepts, in the order reports list them.
pub const MEASURE_NAMES: &[&str] = &[
    "cca_rho",
    "cca_r2",
    "svcca_rho",
    "svcca_r2",
    "pwcca",
    "linreg",
    "procrustes",
    "hsic",
    "cka_linear",
    "rsa",
    "mutual_knn",
    "cknna",
];

/// The measure called `name` (see [`MEASURE_NAMES`]) with its paper's defaults (SVCCA keeps
/// 99% of the variance, `mutual_knn` and `cknna` use `k = 10` neighbours); `None` for an
/// unknown name. The neighbourhood measures take another `k` as `mutual_knn:k=20` or
/// `cknna:k=5` (`k >= 1`; a `k` of `n` or more is the measure's error at compute time).
pub fn measure_by_name(name: &str) -> Option<Box<dyn Measure>> {
    if let Some((base, option)) = name.split_once(':') {
        let k = option
            .strip_prefix("k=")?
            .parse::<usize>()
            .ok()
            .filter(|&k| k >= 1)?;
        return match base {
            "mutual_knn" => Some(Box::new(MutualKnn { k })),
            "cknna" => Some(Box::new(Cknna { k })),
            _ => None,
        };
    }
    Some(match name {
        "cca_rho" => Box::new(Cca { squared: false }),
        "cca_r2" => Box::new(Cca { squared: true }),
        "svcca_rho" => Box::new(Svcca {
            variance: SVCCA_VARIANCE,
            squared: false,
        }),
        "svcca_r2" => Box::new(Svcca {
            variance: SVCCA_VARIANCE,
            squared: true,
        }),
        "pwcca" => Box::new(Pwcca),
        "linreg" => Box::new(LinearRegression),
        "procrustes" => Box::new(Procrustes),
        "hsic" => Box::new(LinearHsic),
        "cka_linear" => Box::new(LinearCka),
        "rsa" => Box::new(Rsa),
        "mutual_knn" => Box::new(MutualKnn { k: DEFAULT_K }),
        "cknna" => Box::new(Cknna { k: DEFAULT_K }),
        _ => return None,
    })
}

/// The range a similarity named as [`measure_by_name`] takes (or `cka`), for colour scales:
/// `(-1, 1)` for the measures that can be negative (RSA's Spearman correlation, CKNNA's
/// centered alignment, with or without a `:k=` option), `(0, 1)` for CKA and the other
/// similarities. (HSIC and the Procrustes distance are unbounded; callers tabulate them.)
pub fn value_range(name: &str) -> (f64, f64) {
    match name.split(':').next().unwrap_or(name) {
        "rsa" | "cknna" => (-1.0, 1.0),
        _ => (0.0, 1.0),
    }
}

/// `m` between every layer of `a` (rows) and every layer of `b` (columns), pairs in parallel.
///
/// `None` where [`Measure::between`] fails for that pair (a rank-0 layer, different `n`); call
/// it on the pair for the reason. When `m` is symmetric and `b` is the same slice as `a`, only
/// one triangle is computed and mirrored.
pub fn similarity_matrix(m: &dyn Measure, a: &[Basis], b: &[Basis]) -> Vec<Vec<Option<f64>>> {
    let same = m.symmetric() && std::ptr::eq(a, b);
    let pairs: Vec<(usize, usize)> = (0..a.len())
        .flat_map(|i| (if same { i } else { 0 }..b.len()).map(move |j| (i, j)))
        .collect();
    let values: Vec<Option<f64>> = pairs
        .par_iter()
        .map(|&(i, j)| m.between(&a[i], &b[j]).ok())
        .collect();
    let mut out = vec![vec![None; b.len()]; a.len()];
    for (&(i, j), v) in pairs.iter().zip(values) {
        out[i][j] = v;
        if same {
            out[j][i] = v;
        }
    }
    out
}

/// SVCCA's default: keep the directions that explain 99% of the variance (Raghu et al. 2017).
pub const SVCCA_VARIANCE: f64 = 0.99;

/// Mean CCA (`Σρ_i / k`) or, with `squared`, Yanai's `R²_CCA = Σρ_i² / k`.
///
/// Invariant to invertible linear maps of either layer. All `ρ = 1` when either layer's rank
/// is `n - 1` (e.g. `p >= n`), see the module docs. Undefined for a rank-0 layer.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Cca {
    /// Average `ρ²` (`cca_r2`) instead of `ρ` (`cca_rho`).
    pub squared: bool,
}

impl Measure for Cca {
    fn name(&self) -> &'static str {
        if self.squared {
            "cca_r2"
        } else {
            "cca_rho"
        }
    }
    fn between(&self, x: &Basis, y: &Basis) -> Result<f64, SimError> {
        let rho = canonical_correlations(x, y)?;
        Ok(mean_of(&rho, self.squared))
    }
}

/// SVCCA (Raghu et al. 2017): keep each layer's top singular directions that explain
/// `variance` of its total variance ([`Basis::dims_for_variance`]), then mean `ρ` (or `ρ²`)
/// of the CCA between those subspaces.
///
/// The truncation removes low-variance directions, so SVCCA is not invariant to invertible
/// linear maps (it is with `variance = 1`, which is plain CCA) and does not saturate at 1 when
/// `p >= n` unless the top directions already span everything.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Svcca {
    /// Fraction of variance kept on each side, in `(0, 1]`; [`SVCCA_VARIANCE`] by default.
    pub variance: f64,
    /// Average `ρ²` (`svcca_r2`) instead of `ρ` (`svcca_rho`).
    pub squared: bool,
}

impl Measure for Svcca {
    fn name(&self) -> &'static str {
        if self.squared {
            "svcca_r2"
        } else {
            "svcca_rho"
        }
    }
    fn between(&self, x: &Basis, y: &Basis) -> Result<f64, SimError> {
        if !(self.variance > 0.0 && self.variance <= 1.0) {
            return Err(SimError::Undefined(format!(
                "SVCCA keeps a fraction of the variance in (0, 1], got {}",
                self.variance
            )));
        }
        check(x, y)?;
        nonzero_rank("SVCCA", x, y)?;
        let (dx, dy) = (
            x.dims_for_variance(self.variance),
            y.dims_for_variance(self.variance),
        );
        let m = product(x.u().subcols(0, dx).transpose(), y.u().subcols(0, dy));
        let rho = correlations_of(m.as_ref())?;
        Ok(mean_of(&rho, self.squared))
    }
}

/// Projection-weighted CCA (Morcos et al. 2018): `Σ α_i ρ_i` with `α_i ∝ Σ_j |⟨h_i, x_j⟩|`,
/// `h_i` the unit canonical variates of X and `x_j` the centered columns of X, so that
/// canonical directions which account for more of X's columns count more.
///
/// Asymmetric: the weights come from X (the first argument). Morcos et al.'s code weights by
/// whichever layer has fewer neurons; pass that layer first to match it. Invariant to any
/// invertible map of Y and to permutations and sign flips of X's columns, not to general
/// rotations of X (the weights use an L1 sum). Undefined for a rank-0 layer.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Pwcca;

impl Measure for Pwcca {
    fn name(&self) -> &'static str {
        "pwcca"
    }
    fn symmetric(&self) -> bool {
        false
    }
    fn between(&self, x: &Basis, y: &Basis) -> Result<f64, SimError> {
        let parts = pwcca_weights(x, y)?;
        Ok(parts
            .weights
            .iter()
            .zip(&parts.rho)
            .map(|(a, r)| a * r)
            .sum())
    }
}

/// `R²` of predicting Y from X by least squares with an intercept: `1 - ‖Y_c - X_c B‖²_F /
/// ‖Y_c‖²_F = ‖U_xᵀ U_y diag(s_y)‖²_F / ‖s_y‖²`, the fraction of Y's variance in X's span.
///
/// Asymmetric. Invariant to invertible maps of X and to orthogonal maps and isotropic
/// scaling of Y, not to other maps of Y. 1 when X's rank is `n - 1` (e.g. `p_x >= n`): with
/// as many features as examples, X fits anything. 0 when X is constant; undefined when Y is.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct LinearRegression;

impl Measure for LinearRegression {
    fn name(&self) -> &'static str {
        "linreg"
    }
    fn symmetric(&self) -> bool {
        false
    }
    fn between(&self, x: &Basis, y: &Basis) -> Result<f64, SimError> {
        check(x, y)?;
        if y.rank() == 0 {
            return Err(undefined_rank0("linear regression R²", "Y (the target)"));
        }
        let m = cross(x, y);
        let sy = y.singular_values();
        let explained: f64 = (0..m.ncols())
            .map(|j| sy[j] * sy[j] * m.col(j).iter().map(|v| v * v).sum::<f64>())
            .sum();
        Ok((explained / sum_sq(sy)).clamp(0.0, 1.0))
    }
}

/// Orthogonal Procrustes **distance** (0 = identical up to a rotation and a scale): both layers
/// scaled to unit Frobenius norm, then `min_Q ‖X - Y Q‖²_F = 2 - 2 ‖X_cᵀ Y_c‖_* / (‖X_c‖_F
/// ‖Y_c‖_F)` over orthogonal `Q` (zero-padding the narrower layer), with `‖·‖_*` the nuclear
/// norm. Lower means more similar; the range is `[0, 2]`.
///
/// Invariant to orthogonal maps and isotropic scaling of either layer, not to other linear
/// maps. Undefined for a rank-0 layer (it cannot be scaled to unit norm).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Procrustes;

impl Measure for Procrustes {
    fn name(&self) -> &'static str {
        "procrustes"
    }
    fn higher_is_similar(&self) -> bool {
        false
    }
    fn between(&self, x: &Basis, y: &Basis) -> Result<f64, SimError> {
        check(x, y)?;
        nonzero_rank("the Procrustes distance", x, y)?;
        let (_, sv, _) = thin_svd(weighted(x, y).as_ref(), false)?;
        let nuclear: f64 = sv.iter().sum();
        let (nx, ny) = (
            sum_sq(x.singular_values()).sqrt(),
            sum_sq(y.singular_values()).sqrt(),
        );
        Ok((2.0 - 2.0 * nuclear / (nx * ny)).clamp(0.0, 2.0))
    }
}

/// Linear HSIC, biased estimator: `tr(K H L H) / (n-1)² = ‖Y_cᵀ X_c‖²_F / (n-1)²`, the same
/// value as [`crate::Prepared::hsic`] with the linear kernel and [`crate::Estimator::Biased`].
///
/// Not normalized: it scales by `c²` when either layer is scaled by `c`; invariant to
/// orthogonal maps. 0 (not an error) when either layer is constant.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct LinearHsic;

impl Measure for LinearHsic {
    fn name(&self) -> &'static str {
        "hsic"
    }
    fn between(&self, x: &Basis, y: &Basis) -> Result<f64, SimError> {
        check(x, y)?;
        let d = (x.n() - 1) as f64;
        Ok(frob2(weighted(x, y).as_ref()) / (d * d))
    }
}

/// Linear CKA (biased HSIC) from the bases: `‖diag(s_x) M diag(s_y)‖²_F / (‖s_x²‖ ‖s_y²‖)`.
/// The crate's CKA engine ([`crate::cka`]) is the one to use for CKA alone; this one lets CKA
/// sit beside the baselines in one loop. Invariant to orthogonal maps and isotropic scaling.
/// Undefined for a rank-0 layer.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct LinearCka;

impl Measure for LinearCka {
    fn name(&self) -> &'static str {
        "cka_linear"
    }
    fn between(&self, x: &Basis, y: &Basis) -> Result<f64, SimError> {
        check(x, y)?;
        nonzero_rank("linear CKA", x, y)?;
        let norm = |s: &[f64]| s.iter().map(|v| v.powi(4)).sum::<f64>().sqrt();
        let value = frob2(weighted(x, y).as_ref())
            / (norm(x.singular_values()) * norm(y.singular_values()));
        Ok(value.clamp(0.0, 1.0))
    }
}

/// The `k = min(r_x, r_y)` canonical correlations between two layers, non-increasing, each in
/// `[0, 1]`: the singular values of `U_xᵀ U_y`, i.e. the cosines of the principal angles
/// between the two centered column spaces. Undefined for a rank-0 layer.
pub fn canonical_correlations(x: &Basis, y: &Basis) -> Result<Vec<f64>, SimError> {
    check(x, y)?;
    nonzero_rank("CCA", x, y)?;
    correlations_of(cross(x, y).as_ref())
}

/// What PWCCA averages: `weights[i]` (non-negative, summing to 1) for the canonical
/// correlation `rho[i]`, both in the order of non-increasing `rho`.
#[derive(Clone, Debug, PartialEq)]
pub struct PwccaParts {
    /// `α_i = Σ_j |⟨h_i, x_j⟩|`, normalized to sum to 1.
    pub weights: Vec<f64>,
    /// The canonical correlations `ρ_i`.
    pub rho: Vec<f64>,
}

/// The PWCCA weights of X's canonical variates against Y, with their correlations.
///
/// With `U_xᵀ U_y = A diag(ρ) Bᵀ`, X's canonical variates are `h_i = U_x a_i` and `⟨h_i, x_j⟩`
/// is entry `(i, j)` of `Aᵀ diag(s_x) V_xᵀ`. Undefined for a rank-0 layer.
pub fn pwcca_weights(x: &Basis, y: &Basis) -> Result<PwccaParts, SimError> {
    check(x, y)?;
    nonzero_rank("PWCCA", x, y)?;
    let (a, rho, _) = thin_svd(cross(x, y).as_ref(), true)?;
    // `V diag(s) A` is `p x k`; column i holds ⟨h_i, x_j⟩ over j.
    let proj = product(x.vs(), a.as_ref());
    let raw: Vec<f64> = (0..proj.ncols())
        .map(|i| proj.col(i).iter().map(|v| v.abs()).sum())
        .collect();
    let total: f64 = raw.iter().sum();
    if !(total > 0.0 && total.is_finite()) {
        return Err(SimError::Undefined(format!(
            "PWCCA is undefined: the projections of X's canonical variates on its columns sum \
             to {total:e}"
        )));
    }
    Ok(PwccaParts {
        weights: raw.iter().map(|w| w / total).collect(),
        rho: rho.iter().map(|r| r.clamp(0.0, 1.0)).collect(),
    })
}

pub(crate) fn check(x: &Basis, y: &Basis) -> Result<(), SimError> {
    if x.n() != y.n() {
        return Err(SimError::MismatchedExamples { a: x.n(), b: y.n() });
    }
    Ok(())
}

fn undefined_rank0(measure: &str, side: &str) -> SimError {
    SimError::Undefined(format!(
        "{measure} is undefined: {side} is constant (rank 0 after centering the columns)"
    ))
}

pub(crate) fn nonzero_rank(measure: &str, x: &Basis, y: &Basis) -> Result<(), SimError> {
    match (x.rank(), y.rank()) {
        (0, 0) => Err(undefined_rank0(measure, "both layers X and Y")),
        (0, _) => Err(undefined_rank0(measure, "layer X")),
        (_, 0) => Err(undefined_rank0(measure, "layer Y")),
        _ => Ok(()),
    }
}

/// `M = U_xᵀ U_y`.
fn cross(x: &Basis, y: &Basis) -> Mat<f64> {
    product(x.u().transpose(), y.u())
}

/// `diag(s_x) M diag(s_y) = V_xᵀ X_cᵀ Y_c V_y`.
fn weighted(x: &Basis, y: &Basis) -> Mat<f64> {
    let mut m = cross(x, y);
    let (sx, sy) = (x.singular_values(), y.singular_values());
    for (j, &syj) in sy.iter().enumerate() {
        for (v, &sxi) in m.col_mut(j).iter_mut().zip(sx) {
            *v *= sxi * syj;
        }
    }
    m
}

fn correlations_of(m: MatRef<'_, f64>) -> Result<Vec<f64>, SimError> {
    let (_, rho, _) = thin_svd(m, false)?;
    Ok(rho.into_iter().map(|r| r.clamp(0.0, 1.0)).collect())
}

fn mean_of(rho: &[f64], squared: bool) -> f64 {
    let sum: f64 = if squared {
        rho.iter().map(|r| r * r).sum()
    } else {
        rho.iter().sum()
    };
    sum / rho.len() as f64
}

fn sum_sq(v: &[f64]) -> f64 {
    v.iter().map(|x| x * x).sum()
}

fn frob2(m: MatRef<'_, f64>) -> f64 {
    (0..m.ncols())
        .map(|j| m.col(j).iter().map(|v| v * v).sum::<f64>())
        .sum()
}
