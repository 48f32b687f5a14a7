//! `strata attack`'s work as a library call: attack a saved model on a data set's examples at
//! every budget, optionally also by transfer from another saved model (a float twin), and
//! return the accuracy curve, where the representation breaks, and the adversarial examples.

use crate::progress::Progress;
use crate::robustness::{self, Plan, Point};
use crate::train::{self, Examples};
use anyhow::{bail, Result};
use ndarray::Array2;
use serde::Serialize;
use std::path::Path;
use std::time::Instant;
use strata_data::store::{LayerSpec, StoreWriter};
use strata_nn::file;

/// One budget's per-layer CKA between clean and adversarial activations.
#[derive(Clone, Debug, Serialize)]
pub struct LayerBreak {
    /// The budget.
    pub eps: f64,
    /// `(layer, linear CKA)` in network order; `None` where undefined (a constant layer).
    pub cka: Vec<(String, Option<f64>)>,
}

/// Everything `strata attack` reports.
#[derive(Clone, Debug, Serialize)]
pub struct AttackReport {
    /// The attacked model's path.
    pub model: String,
    /// Its precision (`float`, `w1a1`, ...).
    pub precision: String,
    /// The model the transfer attack was crafted on, if any.
    pub transfer_from: Option<String>,
    /// Data set and split the examples came from.
    pub data: String,
    /// `train` or `test`.
    pub split: String,
    /// Examples attacked.
    pub n: usize,
    /// The attack.
    pub plan: Plan,
    /// Per budget, the reported (stronger) attack's outcome.
    pub points: Vec<Point>,
    /// Per budget, the white-box attack's outcome.
    pub white_box: Vec<Point>,
    /// Per budget, the transfer attack's outcome (empty without a transfer model).
    pub transfer: Vec<Point>,
    /// Per positive budget, CKA between clean and adversarial activations of every layer
    /// (the reported attack's examples).
    pub layers: Vec<LayerBreak>,
    /// Wall-clock seconds.
    pub seconds: f64,
}

/// Attack `model` on `ex` with `plan`; with `transfer_from`, also craft on that model and
/// report, per budget, whichever attack left the lower accuracy. Returns the report and, per
/// budget, the reported adversarial examples (rows of the data set's layout).
pub fn attack(
    model: &Path,
    transfer_from: Option<&Path>,
    ex: Examples,
    plan: &Plan,
    progress: &dyn Progress,
) -> Result<(AttackReport, Vec<Array2<f32>>)> {
    let t0 = Instant::now();
    plan.validate()?;
    let (mut net, card, d) = train::load(model, ex)?;
    let source = match transfer_from {
        Some(p) => {
            let (s, sc) = file::load(p)?;
            if sc.config.input_shape != card.config.input_shape
                || sc.config.classes != card.config.classes
            {
                bail!(
                    "{} reads {:?} with {} classes but {} reads {:?} with {}: a transfer \
                     attack needs networks of the same inputs and classes",
                    p.display(),
                    sc.config.input_shape,
                    sc.config.classes,
                    model.display(),
                    card.config.input_shape,
                    card.config.classes
                );
            }
            Some(s)
        }
        None => None,
    };
    let y: Vec<usize> = d.y.iter().map(|&v| v as usize).collect();
    if let Some(bad) = y.iter().find(|&&v| v >= card.config.classes) {
        bail!(
            "{} has label {bad} but the model has {} classes",
            ex.data,
            card.config.classes
        );
    }
    let bar = progress.task("white-box", "budgets", plan.eps.len() as u64);
    let wb = robustness::curve(&net, None, d.x.view(), &y, plan, &*bar)?;
    bar.finish();
    let tr = match &source {
        Some(s) => {
            let bar = progress.task("transfer", "budgets", plan.eps.len() as u64);
            let v = robustness::curve(&net, Some(s), d.x.view(), &y, plan, &*bar)?;
            bar.finish();
            v
        }
        None => Vec::new(),
    };
    let (mut points, mut advs) = (Vec::new(), Vec::new());
    for (k, (w, wa)) in wb.iter().enumerate() {
        match tr.get(k) {
            Some((t, ta)) if t.accuracy < w.accuracy => {
                points.push(t.clone());
                advs.push(ta.clone());
            }
            _ => {
                points.push(w.clone());
                advs.push(wa.clone());
            }
        }
    }
    let bar = progress.task("layers", "budgets", plan.eps.len() as u64);
    let mut layers = Vec::new();
    for (p, adv) in points.iter().zip(&advs) {
        if p.eps > 0.0 {
            layers.push(LayerBreak {
                eps: p.eps,
                cka: robustness::layer_cka(&mut net, d.x.view(), adv.view())?,
            });
        }
        bar.inc(1);
    }
    bar.finish();
    let report = AttackReport {
        model: model.display().to_string(),
        precision: card.config.precision.name().to_string(),
        transfer_from: transfer_from.map(|p| p.display().to_string()),
        data: ex.data.to_string(),
        split: ex.split.to_string(),
        n: d.len(),
        plan: plan.clone(),
        points,
        white_box: wb.into_iter().map(|(p, _)| p).collect(),
        transfer: tr.into_iter().map(|(p, _)| p).collect(),
        layers,
        seconds: t0.elapsed().as_secs_f64(),
    };
    Ok((report, advs))
}

/// The adversarial examples of every budget as one activation store (one layer per budget,
/// named `eps_0.1`, each of `shape`), so that `strata layers`, `strata cka` and NumPy read them.
pub fn write_adversarial(
    path: &Path,
    report: &AttackReport,
    shape: &[usize],
    advs: &[Array2<f32>],
) -> Result<usize> {
    let specs: Vec<LayerSpec> = report
        .points
        .iter()
        .map(|p| LayerSpec::new(format!("eps_{}", p.eps as f32), shape))
        .collect();
    let meta = serde_json::json!({
        "model": report.model,
        "attack": report.plan.method.name(),
        "norm": report.plan.norm.name(),
        "targeted": report.plan.targeted,
        "seed": report.plan.seed,
        "data": report.data,
        "split": report.split,
        "crafted": report.points.iter().map(|p| p.crafted).collect::<Vec<_>>(),
        "labels": "row order of the split",
    });
    let mut w = StoreWriter::create(path, &specs, &meta)?;
    let n = advs.first().map_or(0, |a| a.nrows());
    for start in (0..n).step_by(1000) {
        let end = (start + 1000).min(n);
        let views: Vec<_> = advs
            .iter()
            .map(|a| a.slice(ndarray::s![start..end, ..]))
            .collect();
        w.write_batch(&views)?;
    }
    Ok(w.finish()?)
}
