//! `[[compare]]`: pairs of model instances (or `[[store]]` files) whose layers are compared every
//! one with every one.

use super::{Ctx, Instance, SpecError, StoreSpec};
use serde::{Deserialize, Serialize};
use toml::Spanned;

/// `[[compare]]`: one pair of model instances, every layer against every layer (a heatmap).
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CompareSpec {
    /// First instance's name (`family-precision-sSEED`) or a `[[store]]` name: the heatmap's rows.
    pub a: Spanned<String>,
    /// Second instance's or store's name: the heatmap's columns.
    pub b: Spanned<String>,
}

/// Pairs of side indices, and the line of each pair's `b`.
type Pairs = (Vec<(usize, usize)>, Vec<usize>);

/// Check every `[[compare]]` table: two instances of this spec that read the same data set, or
/// a store on either side. Returns pairs of side indices (an instance's index, or
/// `instances.len()` plus a store's index) and the line of each table's `b`.
pub(super) fn check(
    cx: &Ctx,
    raw: &[Spanned<CompareSpec>],
    instances: &[Instance],
    stores: &[StoreSpec],
) -> Result<Pairs, SpecError> {
    let mut compare = Vec::new();
    let mut lines = Vec::new();
    for c in raw {
        let c = c.get_ref();
        let (a, b) = (
            find(cx, instances, stores, &c.a, "a")?,
            find(cx, instances, stores, &c.b, "b")?,
        );
        if a < instances.len() && b < instances.len() && instances[a].data != instances[b].data {
            return Err(cx.err(
                c.b.span(),
                format!(
                    "[[compare]] '{}' and '{}' read different data sets: CKA compares two \
                     representations of the same examples",
                    c.a.get_ref(),
                    c.b.get_ref()
                ),
            ));
        }
        compare.push((a, b));
        lines.push(cx.line(c.b.span().start));
    }
    Ok((compare, lines))
}

/// The side index of the instance or store `s` names (the value of key `key`).
fn find(
    cx: &Ctx,
    instances: &[Instance],
    stores: &[StoreSpec],
    s: &Spanned<String>,
    key: &str,
) -> Result<usize, SpecError> {
    let name = s.get_ref();
    if let Some(i) = instances.iter().position(|i| &i.name == name) {
        return Ok(i);
    }
    if let Some(k) = stores.iter().position(|t| &t.name == name) {
        return Ok(instances.len() + k);
    }
    let store_names = || {
        stores
            .iter()
            .map(|t| t.name.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    };
    let msg = match (instances.first(), stores.is_empty()) {
        (Some(i), true) => format!(
            "[[compare]] {key} = '{name}' is not a model of this spec; models are named \
             FAMILY-PRECISION-sSEED, e.g. '{}'",
            i.name
        ),
        (Some(i), false) => format!(
            "[[compare]] {key} = '{name}' is neither a model nor a [[store]] of this spec; models \
             are named FAMILY-PRECISION-sSEED, e.g. '{}'; stores: {}",
            i.name,
            store_names()
        ),
        (None, _) => format!(
            "[[compare]] {key} = '{name}' is not a [[store]] of this spec (stores: {})",
            store_names()
        ),
    };
    Err(cx.err(s.span(), msg))
}
