//! `[twins]`: quantized instances against their float twins, layer by layer.

use super::{Ctx, ModelSpec, SpecError};
use serde::{Deserialize, Serialize};
use strata_nn::Precision;
use toml::Spanned;

fn yes() -> bool {
    true
}

/// `[twins]`: each quantized instance against the float instance of the same family and seed,
/// layer by layer, with the float seed-to-seed variation as the yardstick.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TwinsSpec {
    /// Families to include (default: every family with a float precision and another one).
    pub models: Option<Vec<Spanned<String>>>,
    /// Draw a full heatmap against the float twin for the first seed of each precision.
    #[serde(default = "yes")]
    pub heatmaps: bool,
}

/// Whether family `f` has float twins: a float precision and another one.
fn has_twins(f: &ModelSpec) -> bool {
    f.precisions.iter().any(|p| p.0 == Precision::Float) && f.precisions.len() > 1
}

/// Check the `[twins]` table: the families compared with their float twins (none without the
/// table), and whether to draw their heatmaps.
pub(super) fn check(
    cx: &Ctx,
    raw: Option<&Spanned<TwinsSpec>>,
    families: &[ModelSpec],
) -> Result<(Vec<String>, bool), SpecError> {
    let Some(t) = raw else {
        return Ok((Vec::new(), false));
    };
    let tspan = t.span();
    let t = t.get_ref();
    let names = match &t.models {
        None => families
            .iter()
            .filter(|f| has_twins(f))
            .map(|f| f.name.clone())
            .collect(),
        Some(list) => named(cx, list, families)?,
    };
    if names.is_empty() {
        return Err(cx.err(
            tspan,
            "[twins]: no [[model]] has both 'float' and a quantized precision".into(),
        ));
    }
    Ok((names, t.heatmaps))
}

/// The families `list` names, each a `[[model]]` with float twins.
fn named(
    cx: &Ctx,
    list: &[Spanned<String>],
    families: &[ModelSpec],
) -> Result<Vec<String>, SpecError> {
    let mut v = Vec::new();
    for s in list {
        let f = families
            .iter()
            .find(|f| &f.name == s.get_ref())
            .ok_or_else(|| {
                cx.err(
                    s.span(),
                    format!("[twins] models: '{}' is not a [[model]] name", s.get_ref()),
                )
            })?;
        if !has_twins(f) {
            return Err(cx.err(
                s.span(),
                format!(
                    "[twins] models: '{}' needs 'float' and at least one other precision",
                    f.name
                ),
            ));
        }
        v.push(f.name.clone());
    }
    Ok(v)
}
