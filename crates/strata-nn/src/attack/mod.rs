//! Adversarial examples against strata's networks: the fast gradient sign method (FGSM,
//! Goodfellow et al. 2015) and projected gradient descent with a random start (PGD, Madry et
//! al. 2018), under the L-infinity and L2 norms, untargeted and targeted.
//!
//! Invariants every attack keeps, whatever the model:
//! - every adversarial example lies in the valid input range (`[lo, hi]` per coordinate, the
//!   pixels' `[0, 1]` by default) and within `eps` of its clean example in the attack's norm;
//! - `eps = 0` returns the clean examples unchanged (bit for bit);
//! - the seed fixes the random start and nothing else is random.
//!
//! Binary and low-bit networks have no useful gradient through their quantizers. The gradient
//! [`Classifier`] returns is the straight-through one their training used (Hubara et al.): an
//! attack through it is the white-box attack, and a careful evaluation also transfers the
//! adversarial examples of a float twin (Athalye et al. 2018); the callers do both.

use crate::engine::Engine;
use crate::error::NnError;
use crate::net::Net;
use ndarray::{Array2, ArrayView2};
use serde::{Deserialize, Serialize};
use strata_data::rng::Rng;

#[cfg(test)]
mod tests;

/// A classifier whose loss can be differentiated with respect to its input.
pub trait InputGradient {
    /// Values per example (the length of a row of `x`).
    fn input_len(&self) -> usize;
    /// Number of classes (columns of the logits).
    fn classes(&self) -> usize;
    /// The logits of every row of `x` (`rows x classes`) and, for each row, the gradient of
    /// the cross-entropy of its logits against `labels[row]` with respect to that row.
    fn logits_and_gradients(
        &mut self,
        x: ArrayView2<'_, f32>,
        labels: &[usize],
    ) -> Result<(Array2<f32>, Array2<f32>), NnError>;
    /// The logits of every row of `x`.
    fn logits(&mut self, x: ArrayView2<'_, f32>) -> Result<Array2<f32>, NnError>;
}

/// A trained network in evaluation mode, as an attack sees it: batch norm with its running
/// statistics, quantizers with their straight-through gradients, and quantized networks'
/// 8-bit input rounding passed straight through.
pub struct Classifier {
    engine: Engine,
    input_len: usize,
    classes: usize,
}

impl Classifier {
    /// A copy of `net`'s parameters, ready to evaluate and differentiate.
    pub fn new(net: &Net) -> Result<Self, NnError> {
        Ok(Classifier {
            engine: Engine::new(net, 1)?,
            input_len: net.config.input_shape.iter().product(),
            classes: net.config.classes,
        })
    }

    fn check(&self, x: &ArrayView2<'_, f32>) -> Result<(), NnError> {
        if x.ncols() != self.input_len {
            return Err(NnError::invalid(
                "input",
                format!(
                    "examples have {} values but the network reads {}",
                    x.ncols(),
                    self.input_len
                ),
            ));
        }
        Ok(())
    }
}

impl InputGradient for Classifier {
    fn input_len(&self) -> usize {
        self.input_len
    }

    fn classes(&self) -> usize {
        self.classes
    }

    fn logits_and_gradients(
        &mut self,
        x: ArrayView2<'_, f32>,
        labels: &[usize],
    ) -> Result<(Array2<f32>, Array2<f32>), NnError> {
        self.check(&x)?;
        if labels.len() != x.nrows() || labels.iter().any(|&y| y >= self.classes) {
            return Err(NnError::invalid(
                "labels",
                format!(
                    "need one label in 0..{} per example ({} examples, {} labels)",
                    self.classes,
                    x.nrows(),
                    labels.len()
                ),
            ));
        }
        let x = x.as_standard_layout();
        let (logits, grads) = self.engine.input_gradients(x.view(), labels);
        Ok((
            to_array(logits, x.nrows(), self.classes)?,
            to_array(grads, x.nrows(), self.input_len)?,
        ))
    }

    fn logits(&mut self, x: ArrayView2<'_, f32>) -> Result<Array2<f32>, NnError> {
        self.check(&x)?;
        let x = x.as_standard_layout();
        let logits = self.engine.predict_logits(x.view());
        to_array(logits, x.nrows(), self.classes)
    }
}

fn to_array(v: Vec<f32>, rows: usize, cols: usize) -> Result<Array2<f32>, NnError> {
    Array2::from_shape_vec((rows, cols), v)
        .map_err(|e| NnError::invalid("engine output", e.to_string()))
}

/// The norm that bounds a perturbation.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Norm {
    /// Largest absolute change of one value; steps follow the gradient's sign.
    Linf,
    /// Euclidean length of the change; steps follow the normalized gradient.
    L2,
}

impl Norm {
    /// `linf` or `l2`.
    pub fn name(self) -> &'static str {
        match self {
            Norm::Linf => "linf",
            Norm::L2 => "l2",
        }
    }

    /// The norm of `d`.
    pub fn of(self, d: &[f32]) -> f64 {
        match self {
            Norm::Linf => d.iter().fold(0f64, |m, v| m.max(v.abs() as f64)),
            Norm::L2 => d.iter().map(|v| (*v as f64).powi(2)).sum::<f64>().sqrt(),
        }
    }
}

/// How the perturbation is found.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase", tag = "method")]
pub enum Method {
    /// One step of size `eps` along the gradient's sign (L-infinity) or its direction (L2; the
    /// "fast gradient method").
    Fgsm,
    /// `steps` steps of `step_size` from a uniform random point of the `eps`-ball, each
    /// projected back onto the ball and the valid range.
    Pgd {
        /// Gradient steps.
        steps: usize,
        /// Length of one step in the attack's norm (Madry et al. use `2.5 eps / steps`).
        step_size: f32,
    },
}

impl Method {
    /// `fgsm` or `pgd`.
    pub fn name(self) -> &'static str {
        match self {
            Method::Fgsm => "fgsm",
            Method::Pgd { .. } => "pgd",
        }
    }
}

/// What the attack aims at.
#[derive(Clone, Debug, PartialEq)]
pub enum Goal {
    /// Any wrong class: the loss of the true label goes up.
    Untargeted,
    /// One class per example: the loss of `targets[row]` goes down.
    Targeted(Vec<usize>),
}

/// One attack at one budget.
#[derive(Clone, Debug, PartialEq)]
pub struct Attack {
    /// FGSM or PGD.
    pub method: Method,
    /// The norm of the budget and of the steps.
    pub norm: Norm,
    /// The budget: the largest perturbation allowed, in `norm`.
    pub eps: f32,
    /// The valid input range, per value (pixels: `[0, 1]`).
    pub range: (f32, f32),
    /// Seed of PGD's random start.
    pub seed: u64,
    /// PGD keeps an example's first iterate that succeeds on the attacked model and stops
    /// moving it (the white-box evaluation); `false` runs every step (adversarial examples
    /// meant to transfer to another model, where a barely-successful one transfers poorly).
    pub stop_at_success: bool,
}

impl Attack {
    /// Refuses what cannot describe an attack.
    pub fn validate(&self) -> Result<(), NnError> {
        let bad = |what: &str, msg: String| Err(NnError::invalid(what, msg));
        if !(self.eps.is_finite() && self.eps >= 0.0) {
            return bad("eps", format!("{} is not a finite value >= 0", self.eps));
        }
        let (lo, hi) = self.range;
        if !(lo.is_finite() && hi.is_finite() && lo < hi) {
            return bad("input range", format!("[{lo}, {hi}] is not an interval"));
        }
        if let Method::Pgd { steps, step_size } = self.method {
            if steps == 0 {
                return bad("steps", "PGD needs at least one step".into());
            }
            if !(step_size.is_finite() && step_size > 0.0) {
                return bad(
                    "step size",
                    format!("{step_size} is not a finite value > 0"),
                );
            }
        }
        Ok(())
    }
}

/// Adversarial examples for `x` (`rows x input_len`, clean examples in `attack.range`) with
/// true labels `labels`, crafted on `model`.
///
/// With `stop_at_success`, PGD keeps, for each example, the first iterate that succeeds on
/// `model` (misclassified, or classified as its target), else its last iterate: every iterate
/// lies in the allowed set, so this is the attack's best answer rather than a random one.
pub fn run(
    model: &mut dyn InputGradient,
    x: ArrayView2<'_, f32>,
    labels: &[usize],
    goal: &Goal,
    attack: &Attack,
) -> Result<Array2<f32>, NnError> {
    attack.validate()?;
    let (rows, d) = x.dim();
    if d != model.input_len() {
        return Err(NnError::invalid(
            "input",
            format!(
                "examples have {d} values but the network reads {}",
                model.input_len()
            ),
        ));
    }
    let (lo, hi) = attack.range;
    if x.iter().any(|v| !(lo..=hi).contains(v)) {
        return Err(NnError::invalid(
            "input",
            format!("clean examples must lie in [{lo}, {hi}] (a NaN or out-of-range value)"),
        ));
    }
    let (aim, sign) = match goal {
        Goal::Untargeted => (labels, 1f32),
        Goal::Targeted(t) => {
            if t.len() != rows {
                return Err(NnError::invalid(
                    "targets",
                    format!(
                        "need one target per example ({rows} examples, {} targets)",
                        t.len()
                    ),
                ));
            }
            (t.as_slice(), -1f32)
        }
    };
    if labels.len() != rows {
        return Err(NnError::invalid(
            "labels",
            format!(
                "need one label per example ({rows} examples, {} labels)",
                labels.len()
            ),
        ));
    }
    let x = x.as_standard_layout().into_owned();
    if attack.eps == 0.0 || rows == 0 {
        return Ok(x);
    }
    let success = |logits: &ndarray::CowArray<'_, f32, ndarray::Ix2>, r: usize| -> bool {
        let p = crate::train::argmax(&logits.row(r).to_vec());
        match goal {
            Goal::Untargeted => p != labels[r],
            Goal::Targeted(t) => p == t[r],
        }
    };
    match attack.method {
        Method::Fgsm => {
            let (_, g) = model.logits_and_gradients(x.view(), aim)?;
            let g = g.as_standard_layout();
            let mut adv = x.clone();
            for r in 0..rows {
                let row = adv.row_mut(r).into_slice().expect("standard layout");
                step(
                    row,
                    g.row(r).as_slice().expect("standard layout"),
                    attack.norm,
                    sign * attack.eps,
                );
                clip(row, (lo, hi));
            }
            Ok(adv)
        }
        Method::Pgd { steps, step_size } => {
            let mut rng = Rng::new(attack.seed ^ 0x00a7_7ac4_5eed);
            let mut adv = x.clone();
            for r in 0..rows {
                let row = adv.row_mut(r).into_slice().expect("standard layout");
                random_start(row, attack.norm, attack.eps, &mut rng);
                clip(row, (lo, hi));
            }
            let mut done = vec![false; rows];
            let mut best = adv.clone();
            for _ in 0..steps {
                let (logits, g) = model.logits_and_gradients(adv.view(), aim)?;
                let (logits, g) = (logits.as_standard_layout(), g.as_standard_layout());
                for (r, done_r) in done.iter_mut().enumerate() {
                    if *done_r {
                        continue;
                    }
                    if attack.stop_at_success && success(&logits, r) {
                        *done_r = true;
                        best.row_mut(r).assign(&adv.row(r));
                        continue;
                    }
                    let row = adv.row_mut(r).into_slice().expect("standard layout");
                    step(
                        row,
                        g.row(r).as_slice().expect("standard layout"),
                        attack.norm,
                        sign * step_size,
                    );
                    project(
                        row,
                        x.row(r).as_slice().expect("standard layout"),
                        attack.norm,
                        attack.eps,
                    );
                    clip(row, (lo, hi));
                }
                if done.iter().all(|&d| d) {
                    break;
                }
            }
            // The last iterate of every example that never succeeded along the way.
            for r in (0..rows).filter(|&r| !done[r]) {
                best.row_mut(r).assign(&adv.row(r));
            }
            Ok(best)
        }
    }
}

/// `x += size · sign(g)` (L-infinity) or `x += size · g / ‖g‖₂` (L2); a zero gradient moves
/// nothing.
fn step(x: &mut [f32], g: &[f32], norm: Norm, size: f32) {
    match norm {
        Norm::Linf => {
            for (v, d) in x.iter_mut().zip(g) {
                if *d > 0.0 {
                    *v += size;
                } else if *d < 0.0 {
                    *v -= size;
                }
            }
        }
        Norm::L2 => {
            let len = Norm::L2.of(g);
            if len > 0.0 && len.is_finite() {
                let k = (size as f64 / len) as f32;
                for (v, d) in x.iter_mut().zip(g) {
                    *v += k * d;
                }
            }
        }
    }
}

/// `x` moved back into the `eps`-ball around `x0`.
fn project(x: &mut [f32], x0: &[f32], norm: Norm, eps: f32) {
    match norm {
        Norm::Linf => {
            for (v, c) in x.iter_mut().zip(x0) {
                *v = v.clamp(c - eps, c + eps);
            }
        }
        Norm::L2 => {
            let len = x
                .iter()
                .zip(x0)
                .map(|(v, c)| ((v - c) as f64).powi(2))
                .sum::<f64>()
                .sqrt();
            if len > eps as f64 {
                let k = (eps as f64 / len) as f32;
                for (v, c) in x.iter_mut().zip(x0) {
                    *v = c + (*v - c) * k;
                }
            }
        }
    }
}

/// Clipping to the valid range never leaves the ball: it moves every value toward the clean
/// one, which lies in the range.
fn clip(x: &mut [f32], (lo, hi): (f32, f32)) {
    for v in x {
        *v = v.clamp(lo, hi);
    }
}

/// `x` moved to a uniform random point of the `eps`-ball around it: uniform per value for
/// L-infinity; for L2 a uniform direction (a normalized Gaussian) at radius `eps · u^(1/d)`.
fn random_start(x: &mut [f32], norm: Norm, eps: f32, rng: &mut Rng) {
    match norm {
        Norm::Linf => {
            for v in x.iter_mut() {
                *v += ((2.0 * rng.uniform() - 1.0) * eps as f64) as f32;
            }
        }
        Norm::L2 => {
            let dir: Vec<f64> = (0..x.len()).map(|_| rng.normal()).collect();
            let len = dir.iter().map(|v| v * v).sum::<f64>().sqrt();
            let radius = eps as f64 * rng.uniform().powf(1.0 / x.len().max(1) as f64);
            if len > 0.0 {
                for (v, d) in x.iter_mut().zip(&dir) {
                    *v += (d / len * radius) as f32;
                }
            }
        }
    }
}

/// A target class for every example: uniform over the classes other than its label, seeded.
pub fn random_targets(labels: &[usize], classes: usize, seed: u64) -> Vec<usize> {
    let mut rng = Rng::new(seed ^ 0x7a26_e75e_ed00);
    labels
        .iter()
        .map(|&y| {
            if classes < 2 {
                return y;
            }
            let t = rng.below(classes as u64 - 1) as usize;
            if t >= y {
                t + 1
            } else {
                t
            }
        })
        .collect()
}
