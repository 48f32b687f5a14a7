//! `[privacy]`: a membership-inference audit of each named family, run after the layer
//! comparisons, with the family's own data, architecture, precisions and training settings.

use super::runner::Outcome;
use crate::mia::{self, AuditArgs, AuditResult};
use crate::progress::Progress;
use anyhow::{Context, Result};
use strata_nn::Precision;

/// One audited family.
pub struct PrivacyRun {
    /// Family name (its `[[model]] name`).
    pub family: String,
    /// The audit of the family's precisions.
    pub result: AuditResult,
}

/// Run the `[privacy]` audits of `o`'s analysis (none without the section).
pub fn run(o: &Outcome, p: &dyn Progress) -> Result<Vec<PrivacyRun>> {
    let Some(plan) = &o.analysis.privacy else {
        return Ok(Vec::new());
    };
    let a = &o.analysis;
    let mut out = Vec::new();
    for family in &plan.families {
        let insts: Vec<_> = a.instances.iter().filter(|i| &i.family == family).collect();
        let Some(first) = insts.first() else {
            continue;
        };
        let quantized = insts.iter().find(|i| i.precision != Precision::Float);
        let float = insts
            .iter()
            .find(|i| i.precision == Precision::Float)
            .unwrap_or(first);
        let mut precisions: Vec<Precision> = Vec::new();
        for i in &insts {
            if !precisions.contains(&i.precision) {
                precisions.push(i.precision);
            }
        }
        let data = &a.data[&first.data];
        let args = AuditArgs {
            data: data.source.to_string(),
            label: data.label.clone(),
            pool: plan.pool.or(data.train_limit),
            architecture: first.architecture,
            widths: first.widths.clone(),
            precisions,
            references: plan.references,
            shadows: plan.shadows,
            attacks: plan.attacks.clone(),
            defenses: plan.defenses.clone(),
            train: float.train.clone(),
            lr_quantized: quantized.map(|i| i.train.lr),
            bootstrap: plan.bootstrap,
            seed: first.train.seed,
            cache: (!o.args.force).then(|| o.args.cache.join("mia")),
            origin: mia::Origin::Spec,
        };
        p.log(&format!(
            "[privacy] {family}: auditing {} precision(s) with {} reference models each",
            args.precisions.len(),
            args.references
        ));
        let result =
            mia::run(&args, p).with_context(|| format!("[privacy] audit of '{family}'"))?;
        out.push(PrivacyRun {
            family: family.clone(),
            result,
        });
    }
    Ok(out)
}
