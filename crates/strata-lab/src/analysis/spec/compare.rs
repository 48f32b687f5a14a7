//! `[[compare]]`: pairs of model instances whose layers are compared every one with every one.

use super::{Ctx, Instance, SpecError};
use serde::{Deserialize, Serialize};
use toml::Spanned;

/// `[[compare]]`: one pair of model instances, every layer against every layer (a heatmap).
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CompareSpec {
    /// First instance's name (`family-precision-sSEED`): the heatmap's rows.
    pub a: Spanned<String>,
    /// Second instance's name: the heatmap's columns.
    pub b: Spanned<String>,
}

/// Check every `[[compare]]` table: two instances of this spec that read the same data set.
/// Returns pairs of instance indices.
pub(super) fn check(
    cx: &Ctx,
    raw: &[Spanned<CompareSpec>],
    instances: &[Instance],
) -> Result<Vec<(usize, usize)>, SpecError> {
    let mut compare = Vec::new();
    for c in raw {
        let c = c.get_ref();
        let (a, b) = (
            find(cx, instances, &c.a, "a")?,
            find(cx, instances, &c.b, "b")?,
        );
        if instances[a].data != instances[b].data {
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
    }
    Ok(compare)
}

/// The index of the instance `s` names (the value of key `key`).
fn find(
    cx: &Ctx,
    instances: &[Instance],
    s: &Spanned<String>,
    key: &str,
) -> Result<usize, SpecError> {
    instances
        .iter()
        .position(|i| &i.name == s.get_ref())
        .ok_or_else(|| {
            cx.err(
                s.span(),
                format!(
                    "[[compare]] {key} = '{}' is not a model of this spec; models are named \
                     FAMILY-PRECISION-sSEED, e.g. '{}'",
                    s.get_ref(),
                    instances[0].name
                ),
            )
        })
}
