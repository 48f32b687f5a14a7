//! Training and evaluation of classifiers.

use crate::engine::Engine;
use crate::error::NnError;
use crate::net::Net;
use candle_core::{Device, Tensor};
use serde::{Deserialize, Serialize};
use strata_data::dataset::Dataset;
use strata_data::rng::Rng;

/// Which optimizer.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub enum OptimizerKind {
    /// Adam with decoupled weight decay (AdamW).
    Adam,
    /// SGD with momentum; weight decay added to the gradient (L2).
    Sgd {
        /// Velocity decay per step, in [0, 1) (0.9 is usual).
        momentum: f64,
    },
}

/// Learning-rate schedule over epochs.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub enum Schedule {
    /// The base rate at every epoch.
    Constant,
    /// Cosine decay from the base rate to 1% of it at the last epoch.
    Cosine,
    /// Multiply by `gamma` every `every` epochs.
    Step {
        /// Epochs between two decays.
        every: usize,
        /// Factor applied at each decay (0.1 divides the rate by 10).
        gamma: f64,
    },
}

/// Everything that fixes a training run.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TrainConfig {
    /// Passes over the training set.
    pub epochs: usize,
    /// Examples per step (a last batch of one is dropped: batch norm needs two).
    pub batch_size: usize,
    /// Base learning rate (the schedule scales it per epoch).
    pub lr: f64,
    /// Weight decay: decoupled for Adam (AdamW), added to the gradient for SGD.
    pub weight_decay: f64,
    /// Which optimizer.
    pub optimizer: OptimizerKind,
    /// Learning rate over epochs.
    pub schedule: Schedule,
    /// Seed of the order of examples in each epoch (strata's front ends also build the
    /// network with it, so it fixes the initial weights too).
    pub seed: u64,
    /// L2 penalty `l2 * sum of squared parameters` added to the loss (Shokri et al.'s
    /// regularization defense). Unlike Adam's decoupled `weight_decay`, this is the textbook
    /// penalty whatever the optimizer. Left out of the serialized form when 0, so configurations
    /// (and cache keys) from before it existed read and hash the same.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub l2: f64,
}

fn is_zero(v: &f64) -> bool {
    *v == 0.0
}

impl TrainConfig {
    /// The learning rate for `epoch` (0-based).
    pub fn lr_at(&self, epoch: usize) -> f64 {
        match self.schedule {
            Schedule::Constant => self.lr,
            Schedule::Cosine => {
                let t = if self.epochs > 1 {
                    epoch as f64 / (self.epochs - 1) as f64
                } else {
                    0.0
                };
                let min = self.lr * 0.01;
                min + 0.5 * (self.lr - min) * (1.0 + (std::f64::consts::PI * t).cos())
            }
            Schedule::Step { every, gamma } => self.lr * gamma.powi((epoch / every.max(1)) as i32),
        }
    }
}

/// One epoch's figures.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct EpochStats {
    /// The epoch, from 1.
    pub epoch: usize,
    /// Learning rate during the epoch.
    pub lr: f64,
    /// Mean cross-entropy over the epoch's training batches (penalty excluded), in nats.
    pub loss: f64,
    /// Fraction of training examples classified correctly during the epoch (training mode, as
    /// the weights changed), in [0, 1].
    pub train_accuracy: f64,
    /// Fraction of test examples classified correctly after the epoch, in [0, 1].
    pub test_accuracy: f64,
    /// Wall-clock time of the epoch, evaluation included, in seconds.
    pub seconds: f64,
}

/// A batch of rows of `d` as tensors.
pub fn batch(d: &Dataset, idx: &[usize]) -> std::result::Result<(Tensor, Tensor), NnError> {
    let p = d.x.ncols();
    let mut xs: Vec<f32> = Vec::with_capacity(idx.len() * p);
    for &i in idx {
        xs.extend(d.x.row(i).iter());
    }
    let ys: Vec<u32> = idx.iter().map(|&i| d.y[i]).collect();
    let dev = Device::Cpu;
    Ok((
        Tensor::from_vec(xs, (idx.len(), p), &dev)?,
        Tensor::from_vec(ys, idx.len(), &dev)?,
    ))
}

/// Index of the largest value (the first one on ties).
pub fn argmax(row: &[f32]) -> usize {
    let mut best = 0;
    for (i, &v) in row.iter().enumerate() {
        if v > row[best] {
            best = i;
        }
    }
    best
}

/// Predicted classes for every example, in evaluation mode (the engine of [`crate::engine`],
/// in batches).
pub fn predict(model: &mut Net, d: &Dataset) -> std::result::Result<Vec<usize>, NnError> {
    if d.is_empty() {
        return Ok(Vec::new());
    }
    let mut engine = Engine::new(model, 1)?;
    Ok(classes_of(
        &engine.predict_logits(d.x.view()),
        model.config.classes,
    ))
}

/// The first largest logit of each row of `logits` (`rows x classes`, row-major).
fn classes_of(logits: &[f32], classes: usize) -> Vec<usize> {
    logits.chunks_exact(classes).map(argmax).collect()
}

/// Fraction of examples classified correctly.
pub fn accuracy(model: &mut Net, d: &Dataset) -> std::result::Result<f64, NnError> {
    if d.is_empty() {
        return Ok(f64::NAN);
    }
    let pred = predict(model, d)?;
    let right = pred
        .iter()
        .zip(&d.y)
        .filter(|(p, y)| **p == **y as usize)
        .count();
    Ok(right as f64 / d.len() as f64)
}

/// Train `model` on `train`, evaluating on `test` after every epoch. `on_step(epoch, batch,
/// batches, loss)` reports progress; `on_epoch` receives each epoch's figures.
///
/// Refuses, before the first step, epochs or a batch size above the caps and a run that would
/// not fit in memory ([`crate::limits::check_training`]; the error is that check's one-line
/// message).
pub fn train(
    model: &mut Net,
    train: &Dataset,
    test: &Dataset,
    cfg: &TrainConfig,
    on_step: &mut dyn FnMut(usize, usize, usize, f64),
    on_epoch: &mut dyn FnMut(&EpochStats),
) -> std::result::Result<Vec<EpochStats>, NnError> {
    crate::limits::check_training(&model.config, cfg)?;
    let mut history = Vec::new();
    let n = train.len();
    let bs = cfg.batch_size.max(2);
    let mut engine = Engine::new(model, bs.min(n.max(2)))?;
    let mut rng = Rng::new(cfg.seed ^ 0x005e_ed0f_da7a);
    for epoch in 0..cfg.epochs {
        let t = std::time::Instant::now();
        let lr = cfg.lr_at(epoch);
        let mut order: Vec<usize> = (0..n).collect();
        for i in (1..n).rev() {
            order.swap(i, rng.below(i as u64 + 1) as usize);
        }
        // Drop a last batch of one example: batch norm needs two.
        let batches: Vec<&[usize]> = order.chunks(bs).filter(|c| c.len() > 1).collect();
        let (mut loss_sum, mut seen, mut right) = (0.0, 0usize, 0usize);
        for (b, idx) in batches.iter().enumerate() {
            let s = engine.step(train.x.view(), &train.y, idx, cfg, lr);
            right += s.right;
            loss_sum += s.loss * idx.len() as f64;
            seen += idx.len();
            on_step(epoch, b + 1, batches.len(), s.loss);
        }
        let test_accuracy = if test.is_empty() {
            f64::NAN
        } else {
            let pred = classes_of(&engine.predict_logits(test.x.view()), model.config.classes);
            let hits = pred
                .iter()
                .zip(&test.y)
                .filter(|(p, y)| **p == **y as usize);
            hits.count() as f64 / test.len() as f64
        };
        let stats = EpochStats {
            epoch: epoch + 1,
            lr,
            loss: loss_sum / seen.max(1) as f64,
            train_accuracy: right as f64 / seen.max(1) as f64,
            test_accuracy,
            seconds: t.elapsed().as_secs_f64(),
        };
        on_epoch(&stats);
        history.push(stats);
    }
    engine.write_back(model)?;
    Ok(history)
}
