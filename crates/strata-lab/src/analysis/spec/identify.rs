//! `[identify]`: Kornblith et al.'s layer-identification test across the seeds of a family.

use super::{Ctx, ModelSpec, PrecisionName, SpecError};
use serde::{Deserialize, Serialize};
use strata_nn::Precision;
use toml::Spanned;

/// `[identify]`: Kornblith et al.'s layer-identification test across the seeds of a family.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IdentifySpec {
    /// Families whose networks (one per seed, at `precision`) are compared with each other.
    pub models: Vec<Spanned<String>>,
    /// Which precision's networks (default float).
    pub precision: Option<PrecisionName>,
    /// Measures to test (default: every one, as in the paper's Table 2).
    pub measures: Option<Vec<Spanned<String>>>,
    /// Layers left out of the test, as queries and as candidates (the paper's Table 2 excludes
    /// the logits: `exclude = ["logits"]`).
    pub exclude: Option<Vec<Spanned<String>>>,
}

/// One identification test the runner performs: a family's networks at one precision, compared
/// by each measure, over the layers not excluded.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct IdentifyTest {
    /// The family (`[[model]] name`).
    pub family: String,
    /// The precision whose networks are compared.
    pub precision: Precision,
    /// Measure names, as `[identify] measures` gives them.
    pub measures: Vec<String>,
    /// Layer names left out of the test (checked against the stores when they exist).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub exclude: Vec<String>,
}

/// RBF CKA bandwidths of Kornblith et al.'s Table 2, tested by default as `cka_rbf_T`.
pub const RBF_THRESHOLDS: &[&str] = &["0.2", "0.4", "0.8"];

/// The identification test's default measures: linear CKA, RBF CKA at the paper's bandwidths,
/// then every baseline of `strata_sim` (whose names are the single list of them).
pub fn identify_measures() -> Vec<String> {
    std::iter::once("cka_linear".to_string())
        .chain(RBF_THRESHOLDS.iter().map(|t| format!("cka_rbf_{t}")))
        .chain(
            strata_sim::MEASURE_NAMES
                .iter()
                .filter(|m| **m != "cka_linear")
                .map(|m| m.to_string()),
        )
        .collect()
}

/// The threshold of a `cka_rbf_T` measure name.
pub fn rbf_threshold_of(name: &str) -> Option<f64> {
    let t: f64 = name.strip_prefix("cka_rbf_")?.parse().ok()?;
    (t.is_finite() && t > 0.0).then_some(t)
}

/// Check the `[identify]` table: one test per named family (none without the table).
pub(super) fn check(
    cx: &Ctx,
    raw: Option<&Spanned<IdentifySpec>>,
    families: &[ModelSpec],
) -> Result<Vec<IdentifyTest>, SpecError> {
    let mut identify = Vec::new();
    let Some(id) = raw else {
        return Ok(identify);
    };
    let ispan = id.span();
    let id = id.get_ref();
    let precision = id.precision.map_or(Precision::Float, |p| p.0);
    let measures = match &id.measures {
        None => identify_measures(),
        Some(list) => measures(cx, list)?,
    };
    if measures.is_empty() || id.models.is_empty() {
        return Err(cx.err(
            ispan,
            "[identify]: models and measures must not be empty".into(),
        ));
    }
    let mut exclude: Vec<String> = Vec::new();
    for e in id.exclude.iter().flatten() {
        if e.get_ref().trim().is_empty() {
            return Err(cx.err(
                e.span(),
                "[identify] exclude: give layer names, e.g. [\"logits\"]".into(),
            ));
        }
        if !exclude.contains(e.get_ref()) {
            exclude.push(e.get_ref().clone());
        }
    }
    for f in &id.models {
        let fam = family(cx, f, families, precision)?;
        identify.push(IdentifyTest {
            family: fam.name.clone(),
            precision,
            measures: measures.clone(),
            exclude: exclude.clone(),
        });
    }
    Ok(identify)
}

/// The measures `list` names, each known (or `cka_rbf_T`), repeats dropped.
fn measures(cx: &Ctx, list: &[Spanned<String>]) -> Result<Vec<String>, SpecError> {
    let mut v = Vec::new();
    for m in list {
        let name = m.get_ref();
        if strata_sim::measure_by_name(name).is_none() && rbf_threshold_of(name).is_none() {
            return Err(cx.err(
                m.span(),
                format!(
                    "[identify] measures: unknown measure '{name}'; use {} (or \
                     cka_rbf_T for any bandwidth T > 0)",
                    identify_measures().join(", ")
                ),
            ));
        }
        if !v.contains(name) {
            v.push(name.clone());
        }
    }
    Ok(v)
}

/// The family `f` names, which must have at least two seeds at `precision`.
fn family<'a>(
    cx: &Ctx,
    f: &Spanned<String>,
    families: &'a [ModelSpec],
    precision: Precision,
) -> Result<&'a ModelSpec, SpecError> {
    let fam = families
        .iter()
        .find(|x| &x.name == f.get_ref())
        .ok_or_else(|| {
            cx.err(
                f.span(),
                format!(
                    "[identify] models: '{}' is not a [[model]] name",
                    f.get_ref()
                ),
            )
        })?;
    let seeds = if fam.precisions.iter().any(|p| p.0 == precision) {
        fam.seeds.len()
    } else {
        0
    };
    if seeds < 2 {
        return Err(cx.err(
            f.span(),
            format!(
                "[identify] models: '{}' needs at least 2 seeds at precision {} (the test \
                 compares networks trained from different seeds)",
                fam.name,
                precision.name()
            ),
        ));
    }
    Ok(fam)
}
