//! Membership inference on arrays: the scoring `strata mia score` runs, on every model's
//! outputs on a pool held in memory (`strata.privacy.score` wraps it).

use crate::{err, guarded};
use numpy::{
    PyArray1, PyReadonlyArray1, PyReadonlyArray2, PyReadonlyArray3, PyUntypedArrayMethods,
};
use pyo3::prelude::*;
use strata_privacy::protocol::Design;
use strata_privacy::score::{score as score_design, ScoreConfig};
use strata_privacy::{attack_by_name, Defense, MembershipAttack, PrivacyError, Released};

/// `e` as a Python exception: the privacy crate's message, with what to do worded for this
/// function's arguments where the message names a command-line flag.
fn privacy_err(e: PrivacyError) -> PyErr {
    match e {
        PrivacyError::TooFewReferences { attack, need, got } => err(format!(
            "{attack} needs at least {need} reference models, got {got}; raise references or \
             pass more models' outputs"
        )),
        e => err(e.to_string()),
    }
}

/// A balanced design: a `(models, pool)` boolean mask, every example a member of half of the
/// models (`strata mia design`).
#[pyfunction]
#[pyo3(signature = (pool, models, seed = 0))]
fn design<'py>(
    py: Python<'py>,
    pool: usize,
    models: usize,
    seed: u64,
) -> PyResult<Bound<'py, PyArray1<bool>>> {
    let d = guarded(|| Design::balanced(pool, models, seed).map_err(|e| err(e.to_string())))?;
    let flat: Vec<bool> = d.members.into_iter().flatten().collect();
    Ok(PyArray1::from_vec(py, flat))
}

/// Score every attack; returns the results as JSON and the primary target's per-example scores
/// of each attack, in attack order.
#[pyfunction]
#[pyo3(signature = (outputs, members, labels, targets, attacks, kind, defense, references, shadows, bootstrap, seed))]
#[allow(clippy::too_many_arguments)]
fn privacy_score<'py>(
    py: Python<'py>,
    outputs: PyReadonlyArray3<'py, f32>,
    members: PyReadonlyArray2<'py, bool>,
    labels: PyReadonlyArray1<'py, i64>,
    targets: Vec<usize>,
    attacks: Vec<String>,
    kind: &str,
    defense: &str,
    references: Option<usize>,
    shadows: Option<usize>,
    bootstrap: usize,
    seed: u64,
) -> PyResult<(String, Vec<Bound<'py, PyArray1<f64>>>)> {
    let shape = outputs.shape().to_vec();
    let (k, n, c) = (shape[0], shape[1], shape[2]);
    if members.shape() != [k, n] {
        return Err(err(format!(
            "members has shape ({}, {}); the outputs are {k} models x {n} examples, so it must be ({k}, {n})",
            members.shape()[0],
            members.shape()[1]
        )));
    }
    if labels.shape() != [n] {
        return Err(err(format!(
            "labels has {} values; the outputs cover {n} examples",
            labels.shape()[0]
        )));
    }
    let probs = match kind {
        "logits" => false,
        "probs" => true,
        _ => return Err(err(format!("outputs='{kind}': use 'logits' or 'probs'"))),
    };
    let out = outputs.as_array();
    let out = out
        .as_slice()
        .ok_or_else(|| err("outputs must be C-contiguous"))?;
    let mask = members.as_array();
    let lab = labels.as_array();
    let (json, scores) = py.detach(|| {
        guarded(|| {
            let labels: Vec<u32> = lab
                .iter()
                .enumerate()
                .map(|(i, &y)| {
                    u32::try_from(y).map_err(|_| {
                        err(format!("label {y} at example {i} is not a class index (0, 1, ...)"))
                    })
                })
                .collect::<PyResult<_>>()?;
            let design = Design {
                pool: n,
                members: mask.rows().into_iter().map(|r| r.to_vec()).collect(),
                seed: 0,
            };
            let refs = references.unwrap_or(k.saturating_sub(1));
            let shadows = shadows.unwrap_or(strata_privacy::shokri::default_shadows(refs));
            let attacks: Vec<Box<dyn MembershipAttack>> = attacks
                .iter()
                .map(|a| attack_by_name(a, shadows, seed))
                .collect::<Result<_, _>>()
                .map_err(|e| err(e.to_string()))?;
            let defense = Defense::parse(defense).map_err(|e| err(e.to_string()))?;
            if defense.is_training_time() {
                return Err(err(format!(
                    "defense '{}' is applied while training; score the outputs of models trained with it",
                    defense.name()
                )));
            }
            let released: Vec<Released> = (0..k)
                .map(|m| {
                    let z = &out[m * n * c..(m + 1) * n * c];
                    let r = if probs {
                        Released::from_probs(z, c, &labels, &defense)
                    } else {
                        Released::from_logits(z, c, &labels, &defense)
                    };
                    r.map_err(|e| err(format!("outputs of model {m}: {e}")))
                })
                .collect::<PyResult<_>>()?;
            let cfg = ScoreConfig {
                attacks: &attacks,
                targets: &targets,
                references,
                bootstrap,
                seed,
            };
            let results = score_design(&released, &design, &cfg).map_err(privacy_err)?;
            let json = serde_json::to_string(&results).map_err(|e| err(e.to_string()))?;
            let scores: Vec<Vec<f64>> = results.into_iter().map(|r| r.scores).collect();
            Ok((json, scores))
        })
    })?;
    Ok((
        json,
        scores
            .into_iter()
            .map(|s| PyArray1::from_vec(py, s))
            .collect(),
    ))
}

/// Register the privacy functions.
pub(crate) fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(design, m)?)?;
    m.add_function(wrap_pyfunction!(privacy_score, m)?)?;
    m.add("ATTACK_NAMES", strata_privacy::ATTACK_NAMES.to_vec())?;
    Ok(())
}
