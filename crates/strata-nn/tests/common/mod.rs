//! Small models and cards for the model-file tests, built in the test (no data sets needed).
#![allow(clippy::unwrap_used)] // in tests, a failed unwrap is a failed test, with its location
#![allow(dead_code)]

use candle_core::{Device, Tensor};
use std::path::PathBuf;
use strata_nn::file::{ModelCard, FORMAT};
use strata_nn::net::{Architecture, Net, NetConfig};
use strata_nn::train::{EpochStats, OptimizerKind, Schedule, TrainConfig};
use strata_nn::Precision;

/// A deterministic generator independent of the library's (SplitMix64).
pub struct SplitMix(pub u64);

impl SplitMix {
    pub fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Uniform in `0..n` (`n > 0`).
    pub fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }

    /// Uniform in [-1, 1).
    pub fn signed(&mut self) -> f32 {
        (self.next() >> 40) as f32 / (1u64 << 23) as f32 - 1.0
    }
}

/// A fresh temporary directory for one test.
pub fn temp_dir(tag: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("strata-nn-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

pub fn train_config() -> TrainConfig {
    TrainConfig {
        epochs: 1,
        batch_size: 16,
        lr: 1e-2,
        weight_decay: 0.0,
        optimizer: OptimizerKind::Adam,
        schedule: Schedule::Constant,
        seed: 5,
        l2: 0.0,
    }
}

/// A randomly initialised network whose batch norm statistics are random too (so a load that
/// dropped them would show).
pub fn model(architecture: Architecture, precision: Precision, seed: u64) -> Net {
    let (input_shape, widths, classes) = match architecture {
        Architecture::Mlp => (vec![1, 6, 6], vec![10, 7], 4),
        _ => (vec![1, 12, 12], vec![], 3),
    };
    let config = NetConfig {
        architecture,
        input_shape,
        widths,
        classes,
        precision,
        logits: Default::default(),
    };
    let mut net = Net::new(config, seed).unwrap();
    let mut rng = SplitMix(seed ^ 0xabcdef);
    for b in net.blocks.iter_mut() {
        let n = b.out_shape[0];
        let mut vec = |lo: f32, spread: f32| -> Tensor {
            let v: Vec<f32> = (0..n).map(|_| lo + spread * rng.signed()).collect();
            Tensor::from_vec(v, n, &Device::Cpu).unwrap()
        };
        b.bn.running_mean = vec(0.0, 2.0);
        b.bn.running_var = vec(1.5, 1.0);
        b.bn.gamma.set(&vec(0.0, 1.5)).unwrap();
        b.bn.beta.set(&vec(0.0, 0.5)).unwrap();
    }
    net
}

pub fn card(net: &Net) -> ModelCard {
    ModelCard {
        format: FORMAT.into(),
        config: net.config.clone(),
        data: "digits".into(),
        train: train_config(),
        train_accuracy: 0.5,
        test_accuracy: 0.25,
        history: vec![EpochStats {
            epoch: 1,
            lr: 1e-2,
            loss: 1.0,
            train_accuracy: 0.5,
            test_accuracy: 0.25,
            seconds: 0.1,
        }],
        threads: 2,
        seconds: 0.1,
        strata_version: "test".into(),
    }
}

/// Logits of one deterministic input, in evaluation mode.
pub fn logits(net: &mut Net, seed: u64) -> Result<Vec<f32>, strata_nn::NnError> {
    let p: usize = net.config.input_shape.iter().product();
    let mut rng = SplitMix(seed);
    let x: Vec<f32> = (0..p).map(|_| 0.5 + 0.5 * rng.signed()).collect();
    let x = Tensor::from_vec(x, (1, p), &Device::Cpu)?;
    Ok(net
        .forward(&x, false)?
        .logits
        .flatten_all()?
        .to_vec1::<f32>()?)
}
