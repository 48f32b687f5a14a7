//! `[robustness]`: accuracy under adversarial attack (FGSM or PGD) over a list of budgets, for
//! every precision and seed of the named families, and per-layer CKA between clean and
//! adversarial activations.

use super::{Ctx, ModelSpec, SpecError};
use crate::robustness::{MethodKind, Plan};
use serde::{Deserialize, Serialize};
use std::ops::Range;
use strata_nn::attack::Norm;
use strata_nn::Precision;
use toml::Spanned;

/// Most test examples one `[robustness]` section attacks.
pub const MAX_LIMIT: usize = 10_000;

/// Default L-infinity budgets (pixels in [0, 1]): MNIST's usual range up to Madry et al.'s 0.3.
pub const LINF_EPS: &[f32] = &[0.0, 0.05, 0.1, 0.15, 0.2, 0.25, 0.3];
/// Default L2 budgets (pixels in [0, 1]; a 28 x 28 image).
pub const L2_EPS: &[f32] = &[0.0, 0.5, 1.0, 1.5, 2.0, 2.5, 3.0];

fn yes() -> bool {
    true
}

/// `[robustness]` as written.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RobustnessSpec {
    /// Families to attack; each needs a `float` precision (the transfer source and the CKA
    /// baseline).
    pub models: Vec<Spanned<String>>,
    /// `fgsm` or `pgd` (default `pgd`).
    pub attack: Option<Spanned<String>>,
    /// `linf` or `l2` (default `linf`).
    pub norm: Option<Spanned<String>>,
    /// Budgets, in `norm` (default: 0 to 0.3 for linf, 0 to 3 for l2).
    pub eps: Option<Vec<f64>>,
    /// PGD steps (default 20).
    pub steps: Option<usize>,
    /// PGD step length (default 2.5 · eps / steps at each budget).
    pub step_size: Option<f64>,
    /// Aim at a random other class per example (default false).
    #[serde(default)]
    pub targeted: bool,
    /// Test examples attacked: the first N of the test split (default 1000).
    pub limit: Option<usize>,
    /// Also attack quantized networks by transfer from the float twin of the same seed, and
    /// report the stronger attack per budget (default true).
    #[serde(default = "yes")]
    pub transfer: bool,
    /// The budget at which per-layer CKA(clean, adversarial) is computed (default the largest).
    pub cka_eps: Option<f64>,
    /// Seed of PGD's random start and of the targets (default 0).
    #[serde(default)]
    pub seed: u64,
}

/// A checked `[robustness]` section.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct RobustnessPlan {
    /// Families to attack, in spec order (each has a float precision).
    pub families: Vec<String>,
    /// The attack and its budgets.
    pub attack: Plan,
    /// Test examples attacked (the first `limit` of the test split, or all when fewer).
    pub limit: usize,
    /// Quantized networks are also attacked by transfer from their float twin.
    pub transfer: bool,
    /// Index in `attack.eps` of the budget of the per-layer CKA.
    pub cka_index: usize,
    /// Line of `models`, for errors found after parsing (the data's range).
    #[serde(skip)]
    pub line: usize,
}

impl RobustnessPlan {
    /// The budget of the per-layer CKA.
    pub fn cka_eps(&self) -> f32 {
        self.attack.eps[self.cka_index]
    }
}

/// Check the `[robustness]` table.
pub(super) fn check(
    cx: &Ctx,
    r: &Spanned<RobustnessSpec>,
    families: &[ModelSpec],
) -> Result<RobustnessPlan, SpecError> {
    let span = r.span();
    let r = r.get_ref();
    let names = family_names(cx, &span, r, families)?;
    let method = match r.attack.as_ref().map(|a| (a.get_ref().as_str(), a.span())) {
        None | Some(("pgd", _)) => MethodKind::Pgd,
        Some(("fgsm", _)) => MethodKind::Fgsm,
        Some((other, at)) => {
            return Err(cx.err(
                at,
                format!("[robustness] attack: unknown attack '{other}'; use \"pgd\" or \"fgsm\""),
            ))
        }
    };
    let norm = match r.norm.as_ref().map(|n| (n.get_ref().as_str(), n.span())) {
        None | Some(("linf", _)) => Norm::Linf,
        Some(("l2", _)) => Norm::L2,
        Some((other, at)) => {
            return Err(cx.err(
                at,
                format!("[robustness] norm: unknown norm '{other}'; use \"linf\" or \"l2\""),
            ))
        }
    };
    let eps = budgets(cx, &span, r, norm)?;
    if method == MethodKind::Fgsm {
        for (k, given) in [
            ("steps", r.steps.is_some()),
            ("step_size", r.step_size.is_some()),
        ] {
            if given {
                return Err(cx.key_err(
                    &span,
                    k,
                    format!(
                        "[robustness] {k}: FGSM takes one step; {k} applies to attack = \"pgd\""
                    ),
                ));
            }
        }
    }
    let steps = r.steps.unwrap_or(20);
    if !(1..=10_000).contains(&steps) {
        return Err(cx.key_err(
            &span,
            "steps",
            format!("[robustness] steps: 1 to 10000 PGD steps (got {steps})"),
        ));
    }
    if let Some(s) = r.step_size {
        if !(s.is_finite() && s > 0.0 && s as f32 > 0.0) {
            return Err(cx.key_err(
                &span,
                "step_size",
                format!("[robustness] step_size: a finite value > 0 (got {s})"),
            ));
        }
    }
    let limit = r.limit.unwrap_or(1000);
    if !(1..=MAX_LIMIT).contains(&limit) {
        return Err(cx.key_err(
            &span,
            "limit",
            format!("[robustness] limit: 1 to {MAX_LIMIT} test examples (got {limit})"),
        ));
    }
    let cka_index = match r.cka_eps {
        None => (0..eps.len()).fold(0, |best, k| if eps[k] > eps[best] { k } else { best }),
        Some(c) => eps.iter().position(|&e| e == c as f32).ok_or_else(|| {
            cx.key_err(
                &span,
                "cka_eps",
                format!(
                    "[robustness] cka_eps: {c} is not one of the budgets (eps = [{}])",
                    show(&eps)
                ),
            )
        })?,
    };
    let attack = Plan {
        method,
        steps,
        step_size: r.step_size.map(|s| s as f32),
        norm,
        eps,
        targeted: r.targeted,
        seed: r.seed,
    };
    attack
        .validate()
        .map_err(|e| cx.err(span.clone(), format!("[robustness]: {e}")))?;
    Ok(RobustnessPlan {
        families: names,
        attack,
        limit,
        transfer: r.transfer,
        cka_index,
        line: cx.key_line(&span, "models"),
    })
}

fn show(eps: &[f32]) -> String {
    eps.iter()
        .map(|e| e.to_string())
        .collect::<Vec<_>>()
        .join(", ")
}

/// The families to attack: at least one, each a `[[model]]` of this spec with a float precision,
/// none twice.
fn family_names(
    cx: &Ctx,
    span: &Range<usize>,
    r: &RobustnessSpec,
    families: &[ModelSpec],
) -> Result<Vec<String>, SpecError> {
    if r.models.is_empty() {
        return Err(cx.key_err(
            span,
            "models",
            "[robustness] models: name at least one [[model]]".into(),
        ));
    }
    let mut names: Vec<String> = Vec::new();
    for f in &r.models {
        let name = f.get_ref();
        let fam = families.iter().find(|x| &x.name == name).ok_or_else(|| {
            cx.err(
                f.span(),
                format!("[robustness] models: '{name}' is not a [[model]] name"),
            )
        })?;
        if !fam.precisions.iter().any(|p| p.0 == Precision::Float) {
            return Err(cx.err(
                f.span(),
                format!(
                    "[robustness] models: '{name}' has no 'float' precision; add it to its \
                     precisions (the float twin is the transfer attack's source and the \
                     baseline of the comparison)"
                ),
            ));
        }
        if names.contains(name) {
            return Err(cx.err(
                f.span(),
                format!("[robustness] models: '{name}' is named twice"),
            ));
        }
        names.push(name.clone());
    }
    Ok(names)
}

/// The budgets: the norm's defaults, or those given, each finite, >= 0, once; L-infinity ones at
/// most 1 (pixels lie in [0, 1]).
fn budgets(
    cx: &Ctx,
    span: &Range<usize>,
    r: &RobustnessSpec,
    norm: Norm,
) -> Result<Vec<f32>, SpecError> {
    let Some(given) = &r.eps else {
        return Ok(match norm {
            Norm::Linf => LINF_EPS.to_vec(),
            Norm::L2 => L2_EPS.to_vec(),
        });
    };
    let err = |msg: String| cx.key_err(span, "eps", format!("[robustness] eps: {msg}"));
    if given.is_empty() {
        return Err(err(
            "give at least one budget, e.g. [0, 0.1, 0.2, 0.3]".into()
        ));
    }
    if given.len() > 64 {
        return Err(err(format!("at most 64 budgets (got {})", given.len())));
    }
    let mut eps: Vec<f32> = Vec::with_capacity(given.len());
    for &e in given {
        if !(e.is_finite() && e >= 0.0) {
            return Err(err(format!("budget {e} is not a finite value >= 0")));
        }
        if norm == Norm::Linf && e > 1.0 {
            return Err(err(format!(
                "budget {e} is above 1: L-infinity budgets are in pixel units, pixels lie in \
                 [0, 1] (8/255 is 0.0314)"
            )));
        }
        if eps.contains(&(e as f32)) {
            return Err(err(format!("budget {e} is given twice")));
        }
        eps.push(e as f32);
    }
    Ok(eps)
}

#[cfg(test)]
mod tests {
    use super::super::{parse, SpecError};
    use super::*;

    const BASE: &str = r#"
[data.d]
source = "digits"

[[model]]
name = "mlp"
data = "d"
widths = [16]
precisions = ["float", "w1a1"]
seeds = [0, 1]

[[model]]
name = "bin"
data = "d"
widths = [16]
precisions = ["w1a1"]

[robustness]
"#;

    /// Line of `[robustness]`'s first key.
    const FIRST: usize = 19;

    fn plan(body: &str) -> RobustnessPlan {
        parse(&format!("{BASE}{body}\n"), "x.toml", "x")
            .unwrap()
            .robustness
            .unwrap()
    }

    fn err(body: &str) -> SpecError {
        parse(&format!("{BASE}{body}\n"), "x.toml", "x").expect_err(body)
    }

    #[test]
    fn defaults() {
        let p = plan("models = [\"mlp\"]");
        assert_eq!(p.families, ["mlp"]);
        assert_eq!(
            p.attack,
            Plan {
                method: MethodKind::Pgd,
                steps: 20,
                step_size: None,
                norm: Norm::Linf,
                eps: LINF_EPS.to_vec(),
                targeted: false,
                seed: 0,
            }
        );
        assert_eq!((p.limit, p.transfer, p.cka_eps()), (1000, true, 0.3));
        let p = plan("models = [\"mlp\"]\nnorm = \"l2\"");
        assert_eq!(p.attack.eps, L2_EPS);
        assert_eq!(p.cka_eps(), 3.0);
        // No section, no plan.
        let a = parse(BASE.trim_end_matches("[robustness]\n"), "x.toml", "x").unwrap();
        assert!(a.robustness.is_none());
    }

    #[test]
    fn every_key_is_read() {
        let p = plan(
            "models = [\"mlp\"]\nattack = \"fgsm\"\nnorm = \"l2\"\neps = [0, 1, 0.5]\n\
             targeted = true\nlimit = 50\ntransfer = false\ncka_eps = 0.5\nseed = 7",
        );
        assert_eq!(p.attack.method, MethodKind::Fgsm);
        assert_eq!(p.attack.norm, Norm::L2);
        assert_eq!(p.attack.eps, [0.0, 1.0, 0.5]);
        assert!(p.attack.targeted);
        assert_eq!((p.limit, p.transfer, p.cka_index), (50, false, 2));
        assert_eq!(p.attack.seed, 7);
        let p = plan("models = [\"mlp\"]\nsteps = 5\nstep_size = 0.01\neps = [0.2, 0.1]");
        assert_eq!((p.attack.steps, p.attack.step_size), (5, Some(0.01)));
        // The largest budget, wherever it is.
        assert_eq!(p.cka_index, 0);
    }

    #[test]
    fn refusals_name_the_key_and_its_line() {
        let cases: &[(&str, &str, usize)] = &[
            ("models = []", "name at least one", FIRST),
            ("models = [\"cnn\"]", "'cnn' is not a [[model]] name", FIRST),
            (
                "models = [\"bin\"]",
                "'bin' has no 'float' precision",
                FIRST,
            ),
            ("models = [\"mlp\", \"mlp\"]", "named twice", FIRST),
            (
                "models = [\"mlp\"]\nattack = \"cw\"",
                "unknown attack 'cw'",
                FIRST + 1,
            ),
            (
                "models = [\"mlp\"]\nnorm = \"l1\"",
                "unknown norm 'l1'",
                FIRST + 1,
            ),
            (
                "models = [\"mlp\"]\neps = []",
                "at least one budget",
                FIRST + 1,
            ),
            (
                "models = [\"mlp\"]\neps = [0, -0.1]",
                "budget -0.1",
                FIRST + 1,
            ),
            ("models = [\"mlp\"]\neps = [0, 8]", "above 1", FIRST + 1),
            (
                "models = [\"mlp\"]\neps = [0.1, 0.1]",
                "given twice",
                FIRST + 1,
            ),
            (
                "models = [\"mlp\"]\neps = [0, nan]",
                "not a finite value",
                FIRST + 1,
            ),
            ("models = [\"mlp\"]\nsteps = 0", "1 to 10000", FIRST + 1),
            ("models = [\"mlp\"]\nsteps = 20000", "1 to 10000", FIRST + 1),
            (
                "models = [\"mlp\"]\nstep_size = 0",
                "finite value > 0",
                FIRST + 1,
            ),
            (
                "models = [\"mlp\"]\nattack = \"fgsm\"\nsteps = 3",
                "FGSM",
                FIRST + 2,
            ),
            (
                "models = [\"mlp\"]\nattack = \"fgsm\"\nstep_size = 0.1",
                "FGSM",
                FIRST + 2,
            ),
            (
                "models = [\"mlp\"]\nlimit = 0",
                "1 to 10000 test",
                FIRST + 1,
            ),
            (
                "models = [\"mlp\"]\nlimit = 10001",
                "1 to 10000 test",
                FIRST + 1,
            ),
            (
                "models = [\"mlp\"]\neps = [0, 0.1]\ncka_eps = 0.2",
                "0.2 is not one of the budgets (eps = [0, 0.1])",
                FIRST + 2,
            ),
            (
                "models = [\"mlp\"]\nbudget = 3",
                "unknown field `budget`",
                FIRST + 1,
            ),
            (
                "models = [\"mlp\"]\ntransfer = \"yes\"",
                "transfer",
                FIRST + 1,
            ),
            ("attack = \"pgd\"", "models", FIRST - 1),
        ];
        for &(body, want, line) in cases {
            let e = err(body);
            assert!(e.msg.contains(want), "{body}: {e}");
            assert_eq!(e.line, line, "{body}: {e}");
            assert!(!e.msg.contains('\n'), "{body}: {e}");
        }
    }
}
