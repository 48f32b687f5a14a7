//! Adversarial robustness of trained networks: accuracy under attack over a list of budgets, and
//! where the representation breaks (per layer, linear CKA between the activations of clean
//! examples and of their adversarial versions).
//!
//! An attack is crafted on a *source* network and evaluated on a *target*: the same network is
//! the white-box attack (through straight-through gradients for quantized networks); a float
//! twin as the source is the transfer attack that gradient masking cannot stop (Athalye et al.
//! 2018). [`strongest`] keeps, per budget, whichever left the lower accuracy.

use crate::progress::Task;
use anyhow::{bail, Result};
use ndarray::{Array2, ArrayView2};
use serde::Serialize;
use strata_nn::attack::{self, Attack, Classifier, Goal, InputGradient, Method, Norm};
use strata_nn::net::Net;
use strata_sim::{Estimator, Kernel};

/// Pixels: the valid input range of every data set strata trains on.
pub const PIXEL_RANGE: (f32, f32) = (0.0, 1.0);

/// Which attack, at which budgets.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Plan {
    /// `fgsm` or `pgd`.
    pub method: MethodKind,
    /// Steps of PGD (ignored by FGSM).
    pub steps: usize,
    /// PGD's step length; `None`: `2.5 · eps / steps` at each budget (Madry et al.).
    pub step_size: Option<f32>,
    /// The norm of budgets and steps.
    pub norm: Norm,
    /// Budgets, in `norm`, in the order given (0 gives the clean accuracy).
    pub eps: Vec<f32>,
    /// Aim at a random other class per example (seeded) instead of any wrong class.
    pub targeted: bool,
    /// Seed of PGD's random start and of the targets.
    pub seed: u64,
}

/// FGSM or PGD, before a budget fixes PGD's step.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum MethodKind {
    /// One signed-gradient step.
    Fgsm,
    /// Projected gradient descent from a random start.
    Pgd,
}

impl MethodKind {
    /// `fgsm` or `pgd`.
    pub fn name(self) -> &'static str {
        match self {
            MethodKind::Fgsm => "fgsm",
            MethodKind::Pgd => "pgd",
        }
    }
}

impl Plan {
    /// Refuses budgets and steps that cannot describe an attack, in the library's words.
    pub fn validate(&self) -> Result<()> {
        if self.eps.is_empty() {
            bail!("give at least one budget (eps)");
        }
        if let Some(e) = self.eps.iter().find(|e| !(e.is_finite() && **e >= 0.0)) {
            bail!("budget {e} is not a finite value >= 0");
        }
        if self.method == MethodKind::Pgd {
            if self.steps == 0 || self.steps > 10_000 {
                bail!("PGD steps must be 1 to 10000 (got {})", self.steps);
            }
            if let Some(s) = self.step_size {
                if !(s.is_finite() && s > 0.0) {
                    bail!("step size {s} is not a finite value > 0");
                }
            }
        }
        Ok(())
    }

    /// The attack at budget `eps`; `transfer`: crafted to be evaluated on another model (PGD
    /// then runs every step instead of stopping at the first success).
    pub fn attack(&self, eps: f32, transfer: bool) -> Attack {
        let method = match self.method {
            MethodKind::Fgsm => Method::Fgsm,
            MethodKind::Pgd => Method::Pgd {
                steps: self.steps,
                step_size: self
                    .step_size
                    .unwrap_or((2.5 * eps / self.steps as f32).max(f32::MIN_POSITIVE)),
            },
        };
        Attack {
            method,
            norm: self.norm,
            eps,
            range: PIXEL_RANGE,
            seed: self.seed,
            stop_at_success: !transfer,
        }
    }
}

/// One budget's outcome on the target network.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Point {
    /// The budget.
    pub eps: f64,
    /// Fraction of all examples the target classifies correctly under attack.
    pub accuracy: f64,
    /// Untargeted: fraction of the examples the target got right when clean that it gets
    /// wrong under attack. Targeted: fraction of all examples classified as their target.
    pub success_rate: f64,
    /// Mean size of the perturbation actually applied, in the attack's norm.
    pub mean_norm: f64,
    /// `white-box` (crafted on the target) or `transfer` (crafted on another network).
    pub crafted: &'static str,
}

/// Accuracy under attack at every budget of `plan`, crafted on `source` (the target itself
/// when `None`) and evaluated on `target`; also returns each budget's adversarial examples.
/// `task` advances once per budget.
pub fn curve(
    target: &Net,
    source: Option<&Net>,
    x: ArrayView2<'_, f32>,
    y: &[usize],
    plan: &Plan,
    task: &dyn Task,
) -> Result<Vec<(Point, Array2<f32>)>> {
    plan.validate()?;
    if x.nrows() != y.len() || x.nrows() == 0 {
        bail!(
            "need one label per example and at least one example ({} examples, {} labels)",
            x.nrows(),
            y.len()
        );
    }
    let mut judge = Classifier::new(target)?;
    if let Some(s) = source {
        if s.config.input_shape != target.config.input_shape
            || s.config.classes != target.config.classes
        {
            bail!(
                "the source network reads {:?} with {} classes, the target {:?} with {}",
                s.config.input_shape,
                s.config.classes,
                target.config.input_shape,
                target.config.classes
            );
        }
    }
    let mut crafter = source.map(Classifier::new).transpose()?;
    let classes = judge.classes();
    let goal = if plan.targeted {
        Goal::Targeted(attack::random_targets(y, classes, plan.seed))
    } else {
        Goal::Untargeted
    };
    let clean = predictions(&mut judge, x)?;
    task.set_total(plan.eps.len() as u64);
    let mut out = Vec::with_capacity(plan.eps.len());
    for &eps in &plan.eps {
        let a = plan.attack(eps, source.is_some());
        let adv = match crafter.as_mut() {
            Some(c) => attack::run(c, x, y, &goal, &a)?,
            None => attack::run(&mut judge, x, y, &goal, &a)?,
        };
        let pred = predictions(&mut judge, adv.view())?;
        out.push((
            score(
                &clean,
                &pred,
                y,
                &goal,
                x,
                adv.view(),
                plan.norm,
                eps,
                source.is_some(),
            ),
            adv,
        ));
        task.inc(1);
    }
    Ok(out)
}

fn predictions(c: &mut Classifier, x: ArrayView2<'_, f32>) -> Result<Vec<usize>> {
    let logits = c.logits(x)?;
    Ok(logits
        .rows()
        .into_iter()
        .map(|r| strata_nn::train::argmax(&r.to_vec()))
        .collect())
}

#[allow(clippy::too_many_arguments)]
fn score(
    clean: &[usize],
    pred: &[usize],
    y: &[usize],
    goal: &Goal,
    x: ArrayView2<'_, f32>,
    adv: ArrayView2<'_, f32>,
    norm: Norm,
    eps: f32,
    transfer: bool,
) -> Point {
    let n = y.len();
    let right = pred.iter().zip(y).filter(|(p, y)| p == y).count();
    let success_rate = match goal {
        Goal::Untargeted => {
            let was_right: Vec<usize> = (0..n).filter(|&i| clean[i] == y[i]).collect();
            let broken = was_right.iter().filter(|&&i| pred[i] != y[i]).count();
            broken as f64 / was_right.len().max(1) as f64
        }
        Goal::Targeted(t) => pred.iter().zip(t).filter(|(p, t)| p == t).count() as f64 / n as f64,
    };
    let mean_norm = (0..n)
        .map(|i| norm.of(&(&adv.row(i) - &x.row(i)).to_vec()))
        .sum::<f64>()
        / n as f64;
    Point {
        eps: eps as f64,
        accuracy: right as f64 / n as f64,
        success_rate,
        mean_norm,
        crafted: if transfer { "transfer" } else { "white-box" },
    }
}

/// Per budget, the point with the lower accuracy of two curves over the same budgets (the
/// white-box one on ties): a careful evaluation reports the stronger attack.
pub fn strongest(white_box: &[Point], transfer: &[Point]) -> Vec<Point> {
    white_box
        .iter()
        .zip(transfer)
        .map(|(w, t)| {
            if t.accuracy < w.accuracy {
                t.clone()
            } else {
                w.clone()
            }
        })
        .collect()
}

/// Per layer of `net` (its names, in order), linear CKA between its activations on `clean`
/// and on `adv` (the same examples, row for row), after the nonlinearity. `None` where CKA is
/// undefined (a constant layer).
pub fn layer_cka(
    net: &mut Net,
    clean: ArrayView2<'_, f32>,
    adv: ArrayView2<'_, f32>,
) -> Result<Vec<(String, Option<f64>)>> {
    if clean.dim() != adv.dim() {
        bail!(
            "clean and adversarial examples differ in shape: {:?} vs {:?}",
            clean.dim(),
            adv.dim()
        );
    }
    let a = activations(net, clean)?;
    let b = activations(net, adv)?;
    Ok(net
        .layer_names()
        .into_iter()
        .zip(a.into_iter().zip(b))
        .map(|(name, (x, y))| {
            let v = strata_sim::cka(x, y, Kernel::Linear, Estimator::Biased).ok();
            (name, v.filter(|v| v.is_finite()))
        })
        .collect())
}

/// Every layer's evaluation-mode activations (after the nonlinearity), one row per example.
fn activations(net: &mut Net, x: ArrayView2<'_, f32>) -> Result<Vec<Array2<f32>>> {
    let layers = net.layer_names().len();
    let mut parts: Vec<Vec<Array2<f32>>> = vec![Vec::new(); layers];
    for start in (0..x.nrows()).step_by(500) {
        let chunk = x.slice(ndarray::s![start..(start + 500).min(x.nrows()), ..]);
        let chunk = chunk.as_standard_layout();
        let t = candle_core::Tensor::from_slice(
            chunk.as_slice().unwrap_or(&[]),
            chunk.dim(),
            &candle_core::Device::Cpu,
        )?;
        let f = net.forward(&t, false)?;
        for (l, a) in f.post.iter().enumerate() {
            let r = a.dim(0)?;
            let v = a.flatten_all()?.to_vec1::<f32>()?;
            let c = v.len() / r.max(1);
            parts[l].push(Array2::from_shape_vec((r, c), v)?);
        }
    }
    parts
        .into_iter()
        .map(|p| {
            let views: Vec<_> = p.iter().map(|a| a.view()).collect();
            Ok(ndarray::concatenate(ndarray::Axis(0), &views)?)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::progress::{Progress, Silent};
    use strata_nn::net::{Architecture, NetConfig};
    use strata_nn::Precision;

    fn net(p: Precision, seed: u64) -> Net {
        Net::new(
            NetConfig {
                architecture: Architecture::Mlp,
                input_shape: vec![1, 5, 5],
                widths: vec![16],
                classes: 3,
                precision: p,
                logits: Default::default(),
            },
            seed,
        )
        .unwrap()
    }

    fn data(n: usize) -> (Array2<f32>, Vec<usize>) {
        let mut rng = strata_data::rng::Rng::new(5);
        let x = Array2::from_shape_fn((n, 25), |_| rng.uniform() as f32);
        let y = (0..n).map(|_| rng.below(3) as usize).collect();
        (x, y)
    }

    fn plan(method: MethodKind, eps: Vec<f32>) -> Plan {
        Plan {
            method,
            steps: 10,
            step_size: None,
            norm: Norm::Linf,
            eps,
            targeted: false,
            seed: 3,
        }
    }

    #[test]
    fn eps_zero_is_the_clean_accuracy() {
        let m = net(Precision::Float, 1);
        let (x, y) = data(64);
        let mut c = Classifier::new(&m).unwrap();
        let clean = predictions(&mut c, x.view()).unwrap();
        let acc = clean.iter().zip(&y).filter(|(p, y)| p == y).count() as f64 / 64.0;
        let task = Silent.task("t", "", 0);
        for kind in [MethodKind::Fgsm, MethodKind::Pgd] {
            let pts = curve(&m, None, x.view(), &y, &plan(kind, vec![0.0, 0.3]), &*task).unwrap();
            assert_eq!(pts[0].0.accuracy, acc);
            assert_eq!(pts[0].0.mean_norm, 0.0);
            assert_eq!(pts[0].0.success_rate, 0.0);
            assert_eq!(pts[0].1, x);
            // A large budget against an untrained network: accuracy does not rise.
            assert!(pts[1].0.accuracy <= acc, "{kind:?}");
            assert!(pts[1].0.mean_norm <= 0.3 + 1e-6);
        }
    }

    #[test]
    fn transfer_is_judged_on_the_target_and_strongest_picks_the_lower() {
        let (t, s) = (net(Precision::W1A1, 2), net(Precision::Float, 2));
        let (x, y) = data(40);
        let task = Silent.task("t", "", 0);
        let p = plan(MethodKind::Fgsm, vec![0.0, 0.1, 0.2]);
        let wb = curve(&t, None, x.view(), &y, &p, &*task).unwrap();
        let tr = curve(&t, Some(&s), x.view(), &y, &p, &*task).unwrap();
        assert!(tr.iter().all(|(q, _)| q.crafted == "transfer"));
        // Transfer examples are the source's own white-box ones.
        let own = curve(&s, None, x.view(), &y, &p, &*task).unwrap();
        for (a, b) in tr.iter().zip(&own) {
            assert_eq!(a.1, b.1);
        }
        let w: Vec<Point> = wb.into_iter().map(|p| p.0).collect();
        let r: Vec<Point> = tr.into_iter().map(|p| p.0).collect();
        for ((k, a), b) in strongest(&w, &r).iter().zip(&w).zip(&r) {
            assert_eq!(k.accuracy, a.accuracy.min(b.accuracy));
        }
    }

    #[test]
    fn layer_cka_of_identical_inputs_is_one() {
        let mut m = net(Precision::Float, 4);
        let (x, _) = data(30);
        let v = layer_cka(&mut m, x.view(), x.view()).unwrap();
        assert_eq!(v.len(), 2);
        for (name, c) in v {
            let c = c.unwrap();
            assert!((c - 1.0).abs() < 1e-6, "{name}: {c}");
        }
        let (y, _) = data(31);
        assert!(layer_cka(&mut m, x.view(), y.view()).is_err());
    }

    #[test]
    fn bad_plans_are_refused() {
        let mut p = plan(MethodKind::Pgd, vec![]);
        assert!(p.validate().is_err());
        p.eps = vec![0.1, f32::NAN];
        assert!(p.validate().is_err());
        p.eps = vec![0.1];
        p.steps = 0;
        assert!(p.validate().is_err());
        p.steps = 5;
        p.step_size = Some(-1.0);
        assert!(p.validate().is_err());
        p.step_size = None;
        assert!(p.validate().is_ok());
    }
}
