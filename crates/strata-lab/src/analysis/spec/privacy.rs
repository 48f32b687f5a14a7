//! `[privacy]`: membership-inference audits of the spec's families.

use super::{Ctx, ModelSpec, SpecError};
use serde::{Deserialize, Serialize};
use std::ops::Range;
use toml::Spanned;

fn default_references() -> usize {
    16
}
fn default_bootstrap() -> usize {
    200
}

/// `[privacy]`: a membership-inference audit of each named family, every one of its precisions
/// training its own target and reference models (see `strata mia audit --help`).
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PrivacySpec {
    /// Families to audit; each uses its data, architecture, precisions and training settings,
    /// and its first seed as the audit's seed.
    pub models: Vec<Spanned<String>>,
    /// Pool size (default: the data's `train_limit`, else the training split up to 10,000).
    pub pool: Option<usize>,
    /// Reference models per model set (default 16).
    #[serde(default = "default_references")]
    pub references: usize,
    /// Shadow models of Shokri et al.'s attack (default: 4, or all references when fewer).
    pub shadows: Option<usize>,
    /// Attacks (default: all).
    pub attacks: Option<Vec<Spanned<String>>>,
    /// Defenses: none, topK, roundD, tempT, l2=LAMBDA (default: none).
    pub defenses: Option<Vec<Spanned<String>>>,
    /// Bootstrap resamples behind each 95% interval (default 200).
    #[serde(default = "default_bootstrap")]
    pub bootstrap: usize,
}

/// A checked `[privacy]` section.
#[derive(Clone, Debug, Serialize)]
pub struct PrivacyPlan {
    /// Families to audit, in spec order.
    pub families: Vec<String>,
    /// Pool size (`None`: the data's `train_limit`, else the training split up to 10,000).
    pub pool: Option<usize>,
    /// Reference models per model set.
    pub references: usize,
    /// Shadow models of Shokri et al.'s attack.
    pub shadows: usize,
    /// Attacks to run, by name.
    pub attacks: Vec<String>,
    /// Defenses, output (top-K, rounding, temperature) or training-time (L2).
    pub defenses: Vec<strata_privacy::Defense>,
    /// Bootstrap resamples behind each 95% interval.
    pub bootstrap: usize,
}

/// Check the `[privacy]` table: families of this spec, attacks with the reference models they
/// need, defenses, and counts the audit accepts.
pub(super) fn check(
    cx: &Ctx,
    p: &Spanned<PrivacySpec>,
    families: &[ModelSpec],
) -> Result<PrivacyPlan, SpecError> {
    let span = p.span();
    let p = p.get_ref();
    let names = family_names(cx, &span, p, families)?;
    let shadows = p
        .shadows
        .unwrap_or(strata_privacy::shokri::default_shadows(p.references));
    let attacks = attacks(cx, &span, p, shadows)?;
    let mut defenses = Vec::new();
    for d in p.defenses.iter().flatten() {
        defenses.push(
            strata_privacy::Defense::parse(d.get_ref())
                .map_err(|e| cx.err(d.span(), format!("[privacy] defenses: {e}")))?,
        );
    }
    if p.pool.is_some_and(|n| n < 20) {
        return Err(cx.err(span, "[privacy] pool: at least 20 examples".into()));
    }
    crate::mia::audit::check_counts(p.references, shadows, p.bootstrap, crate::mia::Origin::Spec)
        .map_err(|e| cx.err(span.clone(), e.to_string()))?;
    Ok(PrivacyPlan {
        families: names,
        pool: p.pool,
        references: p.references,
        shadows,
        attacks,
        defenses,
        bootstrap: p.bootstrap,
    })
}

/// The families to audit: at least one, each a `[[model]]` of this spec.
fn family_names(
    cx: &Ctx,
    span: &Range<usize>,
    p: &PrivacySpec,
    families: &[ModelSpec],
) -> Result<Vec<String>, SpecError> {
    if p.models.is_empty() {
        return Err(cx.err(
            span.clone(),
            "[privacy] models: name at least one [[model]]".into(),
        ));
    }
    let mut names = Vec::new();
    for f in &p.models {
        if !families.iter().any(|x| &x.name == f.get_ref()) {
            return Err(cx.err(
                f.span(),
                format!(
                    "[privacy] models: '{}' is not a [[model]] name",
                    f.get_ref()
                ),
            ));
        }
        names.push(f.get_ref().clone());
    }
    Ok(names)
}

/// The attacks to run (all by default), each known and given the reference models it needs.
fn attacks(
    cx: &Ctx,
    span: &Range<usize>,
    p: &PrivacySpec,
    shadows: usize,
) -> Result<Vec<String>, SpecError> {
    let attacks: Vec<String> = match &p.attacks {
        None => strata_privacy::ATTACK_NAMES
            .iter()
            .map(|s| s.to_string())
            .collect(),
        Some(list) => list.iter().map(|a| a.get_ref().clone()).collect(),
    };
    for (k, name) in attacks.iter().enumerate() {
        let at_span = p.attacks.as_ref().map_or(span.clone(), |l| l[k].span());
        let at = strata_privacy::attack_by_name(name, shadows, 0)
            .map_err(|e| cx.err(at_span.clone(), format!("[privacy] attacks: {e}")))?;
        if at.references_needed() > p.references {
            return Err(cx.err(
                at_span,
                format!(
                    "[privacy] attacks: '{name}' needs at least {} reference models, references is {}",
                    at.references_needed(),
                    p.references
                ),
            ));
        }
    }
    Ok(attacks)
}
