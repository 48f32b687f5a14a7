//! Hard caps on network and training sizes, an estimate of the memory a network needs, and the
//! check every constructor and the training loop run before allocating.
//!
//! Why here, in the library: a network's size comes from flags, analysis specs and model cards
//! alike, and a typo (`--widths 100000000`, a card whose input shape is `[1, 100000, 100000]`)
//! otherwise aborts the process with an out-of-memory error minutes later, or takes the machine
//! down with it. Checking in [`crate::net::Net::new`], [`crate::train::train`] and
//! [`crate::file::load`] guards every front end at once; front ends may call [`check_config`]
//! earlier to fail before loading data. Messages name the field in neutral terms; the CLI adds
//! its flag names.
//!
//! The estimate is deliberately simple and on the generous side: f32 parameters held once to
//! use a network, twice while it is built or loaded (initial values or file bytes beside the
//! tensors), four times to train it (weights, gradients, Adam's two moments; quantized networks
//! add the quantized copies of their weights), plus activations for a batch. Arithmetic
//! saturates, so absurd sizes give a huge number, never an overflow.

use crate::error::NnError;
use crate::net::{plan, Architecture, BlockPlan, NetConfig};
use crate::train::TrainConfig;
use strata_data::memory;

/// At most this many hidden layers (a deeper MLP is a typo, not an experiment).
pub const MAX_LAYERS: usize = 64;
/// At most this many units in a hidden layer.
pub const MAX_WIDTH: usize = 65_536;
/// At most this many classes (the logits layer is as wide as a hidden layer may be).
pub const MAX_CLASSES: usize = MAX_WIDTH;
/// At most this many training epochs.
pub const MAX_EPOCHS: usize = 100_000;
/// At most this many examples in a training batch.
pub const MAX_BATCH: usize = 1 << 20;
/// At most this many input elements per example (`channels x height x width`): 16 Mi, a
/// 4096x4096 single-channel image or a 2364x2364 RGB one.
pub const MAX_INPUT_ELEMENTS: usize = 1 << 24;
/// Rows per evaluation batch that the memory estimate allows for ([`crate::train::predict`]
/// evaluates 256 rows at a time, within it).
pub const EVAL_BATCH: usize = 1000;

/// f32 copies of every block's (pre-pooling) output that training holds per example: the
/// forward pass keeps batch norm's and the quantizers' intermediates for the backward pass,
/// which adds gradients of the same sizes.
const TRAIN_ACTIVATION_COPIES: u64 = 10;
/// The same for evaluation: a block's input, output and one temporary.
const EVAL_ACTIVATION_COPIES: u64 = 3;
/// Extra f32 copies of the weights that a quantized network's forward pass keeps for backward.
const QUANTIZED_WEIGHT_COPIES: u64 = 3;
/// Below this many bytes the machine's free memory is not read: every ordinary network.
const CHEAP_BYTES: u64 = 64 << 20;

/// What a network configuration costs, in bytes of f32 storage unless named otherwise.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MemoryEstimate {
    /// Number of f32 parameters: weights and the four batch norm vectors of every block.
    pub parameters: u64,
    /// To build or load the network (parameters held twice at the peak).
    pub build_bytes: u64,
    /// To build it and run one batch of `batch_size` examples through it.
    pub eval_bytes: u64,
    /// To train it with batches of `batch_size` (weights, gradients, Adam moments, quantized
    /// copies, and the larger of a training batch's and an evaluation batch's activations).
    pub train_bytes: u64,
    /// The training batch's share of `train_bytes`.
    pub train_activation_bytes: u64,
}

/// The hard caps on a network configuration, checked without planning or allocating anything:
/// input shape (three dimensions, each at least 1, at most [`MAX_INPUT_ELEMENTS`] in all),
/// hidden layers (at most [`MAX_LAYERS`], each 1 to [`MAX_WIDTH`] units) and classes (1 to
/// [`MAX_CLASSES`]).
pub fn check_caps(config: &NetConfig) -> Result<(), NnError> {
    let s = &config.input_shape;
    let shape = || format!("input shape {s:?}");
    if s.len() != 3 {
        return Err(NnError::invalid(
            shape(),
            "must have three dimensions [channels, height, width]",
        ));
    }
    if s.contains(&0) {
        return Err(NnError::invalid(
            shape(),
            "every dimension must be at least 1",
        ));
    }
    let elems = s.iter().fold(1u64, |a, &d| a.saturating_mul(d as u64));
    if elems > MAX_INPUT_ELEMENTS as u64 {
        return Err(NnError::TooLarge {
            what: format!("{} elements per example", shape()),
            value: elems,
            max: MAX_INPUT_ELEMENTS as u64,
        });
    }
    if config.widths.len() > MAX_LAYERS {
        return Err(NnError::TooLarge {
            what: "hidden layers".into(),
            value: config.widths.len() as u64,
            max: MAX_LAYERS as u64,
        });
    }
    for (i, &w) in config.widths.iter().enumerate() {
        let what = || format!("width of hidden layer {}", i + 1);
        if w == 0 {
            return Err(NnError::invalid(what(), "must be at least 1"));
        }
        if w > MAX_WIDTH {
            return Err(NnError::TooLarge {
                what: what(),
                value: w as u64,
                max: MAX_WIDTH as u64,
            });
        }
    }
    if config.classes == 0 {
        return Err(NnError::invalid("classes", "must be at least 1"));
    }
    if config.classes > MAX_CLASSES {
        return Err(NnError::TooLarge {
            what: "classes".into(),
            value: config.classes as u64,
            max: MAX_CLASSES as u64,
        });
    }
    Ok(())
}

/// The hard caps on a training configuration: epochs (at most [`MAX_EPOCHS`]) and batch size
/// (at most [`MAX_BATCH`]).
pub fn check_train_config(cfg: &TrainConfig) -> Result<(), NnError> {
    if cfg.epochs > MAX_EPOCHS {
        return Err(NnError::TooLarge {
            what: "epochs".into(),
            value: cfg.epochs as u64,
            max: MAX_EPOCHS as u64,
        });
    }
    if cfg.batch_size > MAX_BATCH {
        return Err(NnError::TooLarge {
            what: "batch size".into(),
            value: cfg.batch_size as u64,
            max: MAX_BATCH as u64,
        });
    }
    Ok(())
}

fn sum_u64(it: impl Iterator<Item = u64>) -> u64 {
    it.fold(0u64, |a, b| a.saturating_add(b))
}

fn estimate_plans(config: &NetConfig, plans: &[BlockPlan], batch_size: usize) -> MemoryEstimate {
    let f32s = |n: u64| n.saturating_mul(4);
    let parameters = sum_u64(
        plans
            .iter()
            .map(|p| (p.weight_elems() as u64).saturating_add(4 * p.out as u64)),
    );
    let input = config
        .input_shape
        .iter()
        .fold(1u64, |a, &d| a.saturating_mul(d as u64));
    let outputs = sum_u64(plans.iter().map(|p| p.pre_elems as u64));
    // Per example: the input and its prepared copy, then every block's outputs.
    let per_example = |copies: u64| {
        input
            .saturating_mul(2)
            .saturating_add(outputs.saturating_mul(copies))
    };
    let batch = batch_size.max(1) as u64;
    let eval_act = f32s(batch.saturating_mul(per_example(EVAL_ACTIVATION_COPIES)));
    let train_act = f32s(
        batch
            .max(2)
            .saturating_mul(per_example(TRAIN_ACTIVATION_COPIES)),
    );
    let eval_batch_act =
        f32s((EVAL_BATCH as u64).saturating_mul(per_example(EVAL_ACTIVATION_COPIES)));
    let weight_copies = 4 + if config.precision.weight_bits().is_some() {
        QUANTIZED_WEIGHT_COPIES
    } else {
        0
    };
    let build_bytes = f32s(parameters.saturating_mul(2));
    MemoryEstimate {
        parameters,
        build_bytes,
        eval_bytes: build_bytes.saturating_add(eval_act),
        train_bytes: f32s(parameters.saturating_mul(weight_copies))
            .saturating_add(train_act.max(eval_batch_act)),
        train_activation_bytes: train_act,
    }
}

/// The memory `config` needs, for batches of `batch_size` examples. Fails only where the
/// configuration cannot describe a network (see [`crate::net::Net::new`]'s errors); sizes
/// are not capped here, so call [`check_caps`] first for user input.
pub fn estimate(config: &NetConfig, batch_size: usize) -> Result<MemoryEstimate, NnError> {
    Ok(estimate_plans(config, &plan(config)?, batch_size))
}

/// What drives the size, and what to change, in neutral terms.
fn culprit(config: &NetConfig, batch_dominates: bool, batch: usize) -> (String, &'static str) {
    if batch_dominates {
        return (
            format!("batch size {batch} on input shape {:?}", config.input_shape),
            "use a smaller batch",
        );
    }
    match config.architecture {
        Architecture::Mlp if !config.widths.is_empty() => (
            format!("hidden widths {:?}", config.widths),
            "use narrower or fewer layers",
        ),
        arch => (
            format!("a {} on input shape {:?}", arch.name(), config.input_shape),
            "use smaller inputs",
        ),
    }
}

fn fits(
    need: u64,
    action: &'static str,
    culprit: impl FnOnce() -> (String, &'static str),
) -> Result<(), NnError> {
    if need <= CHEAP_BYTES {
        return Ok(());
    }
    memory::check_fits(need, "network").map_err(|e| {
        let (what, hint) = culprit();
        NnError::Memory {
            what,
            need: e.need,
            available: e.available,
            action,
            hint,
        }
    })
}

/// Everything to check before building a network from `config`: the hard caps
/// ([`check_caps`]), that the configuration describes a network (shapes fit the architecture),
/// then that it fits in the memory this process may still claim — to train with batches of
/// `batch_size` when `training`, else to build it and run a batch of `batch_size` examples.
/// Ordinary sizes (under 64 MiB) skip reading the machine's free memory. Returns the estimate
/// it checked, for callers that add several networks up.
pub fn check_config(
    config: &NetConfig,
    batch_size: usize,
    training: bool,
) -> Result<MemoryEstimate, NnError> {
    check_caps(config)?;
    let est = estimate(config, batch_size)?;
    if training {
        let batch_dominates = est.train_activation_bytes > est.train_bytes / 2;
        fits(est.train_bytes, "to train", || {
            culprit(config, batch_dominates, batch_size)
        })?;
    } else {
        let batch_dominates = est.eval_bytes - est.build_bytes > est.eval_bytes / 2;
        fits(est.eval_bytes, "to build", || {
            culprit(config, batch_dominates, batch_size)
        })?;
    }
    Ok(est)
}

/// The check [`crate::train::train`] runs on an already built network: the training caps
/// ([`check_train_config`]) and the memory training needs beyond the parameters the network
/// already holds.
pub fn check_training(config: &NetConfig, cfg: &TrainConfig) -> Result<(), NnError> {
    check_train_config(cfg)?;
    check_caps(config)?;
    let est = estimate(config, cfg.batch_size)?;
    let held = est.parameters.saturating_mul(4);
    let more = est.train_bytes.saturating_sub(held);
    let batch_dominates = est.train_activation_bytes > more / 2;
    fits(more, "more to train", || {
        culprit(config, batch_dominates, cfg.batch_size)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Precision;

    fn mlp(input: Vec<usize>, widths: Vec<usize>, classes: usize) -> NetConfig {
        NetConfig {
            architecture: Architecture::Mlp,
            input_shape: input,
            widths,
            classes,
            precision: Precision::Float,
            logits: Default::default(),
        }
    }

    #[test]
    fn estimate_counts_parameters_and_training_bytes_by_hand() {
        // 784 -> 100 -> 10: weights 78400 + 1000, batch norm 4 x (100 + 10).
        let c = mlp(vec![1, 28, 28], vec![100], 10);
        let e = estimate(&c, 64).unwrap();
        let params: u64 = 78_400 + 1_000 + 4 * 110;
        assert_eq!(e.parameters, params);
        assert_eq!(e.build_bytes, 8 * params);
        // Per example for training: input twice, outputs (100 + 10) ten times.
        let train_act: u64 = 4 * 64 * (2 * 784 + 10 * 110);
        let eval_act: u64 = 4 * 1000 * (2 * 784 + 3 * 110);
        assert_eq!(e.train_activation_bytes, train_act);
        assert_eq!(e.train_bytes, 16 * params + train_act.max(eval_act));
        assert_eq!(e.eval_bytes, 8 * params + 4 * 64 * (2 * 784 + 3 * 110));
        // Quantized weights add three copies.
        let q = NetConfig {
            precision: Precision::W1A1,
            ..c.clone()
        };
        assert_eq!(
            estimate(&q, 64).unwrap().train_bytes,
            28 * params + train_act.max(eval_act)
        );
    }

    #[test]
    fn conv_outputs_count_before_pooling() {
        // LeNet-like on 1x28x28: conv1 6x28x28, conv2 16x10x10, fc 120, 84, logits 10.
        let c = NetConfig {
            architecture: Architecture::Cnn,
            ..mlp(vec![1, 28, 28], vec![], 10)
        };
        let e = estimate(&c, 1).unwrap();
        let outputs: u64 = 6 * 28 * 28 + 16 * 10 * 10 + 120 + 84 + 10;
        let weights: u64 = 6 * 25 + 16 * 6 * 25 + 400 * 120 + 120 * 84 + 84 * 10;
        let params = weights + 4 * (6 + 16 + 120 + 84 + 10);
        assert_eq!(e.parameters, params);
        assert_eq!(e.eval_bytes, 8 * params + 4 * (2 * 784 + 3 * outputs));
    }

    #[test]
    fn caps_name_the_field() {
        let e = check_caps(&mlp(vec![1, 100_000, 100_000], vec![8], 10)).unwrap_err();
        assert_eq!(
            e.to_string(),
            "input shape [1, 100000, 100000] elements per example: 10000000000 is more than \
             the 16777216 allowed"
        );
        let e = check_caps(&mlp(vec![1, 28, 28], vec![100_000_000], 10)).unwrap_err();
        assert_eq!(
            e.to_string(),
            "width of hidden layer 1: 100000000 is more than the 65536 allowed"
        );
        let e = check_caps(&mlp(vec![1, 28, 28], vec![8; 65], 10)).unwrap_err();
        assert!(
            e.to_string().starts_with("hidden layers: 65 is more"),
            "{e}"
        );
        let e = check_caps(&mlp(vec![0, 28, 28], vec![8], 10)).unwrap_err();
        assert!(e.to_string().contains("at least 1"), "{e}");
        let e = check_caps(&mlp(vec![28, 28], vec![8], 10)).unwrap_err();
        assert!(e.to_string().contains("three dimensions"), "{e}");
        assert!(check_caps(&mlp(vec![1, 28, 28], vec![8], 0)).is_err());
        assert!(check_caps(&mlp(vec![1, 28, 28], vec![8], MAX_CLASSES + 1)).is_err());
        // usize::MAX dimensions saturate instead of overflowing.
        let huge = mlp(vec![usize::MAX, usize::MAX, 2], vec![8], 10);
        assert!(matches!(check_caps(&huge), Err(NnError::TooLarge { .. })));
        let mut t = TrainConfig {
            epochs: MAX_EPOCHS + 1,
            batch_size: 32,
            lr: 0.01,
            weight_decay: 0.0,
            optimizer: crate::train::OptimizerKind::Adam,
            schedule: crate::train::Schedule::Constant,
            seed: 0,
            l2: 0.0,
        };
        assert!(check_train_config(&t)
            .unwrap_err()
            .to_string()
            .starts_with("epochs: "));
        t.epochs = 1;
        t.batch_size = MAX_BATCH + 1;
        assert!(check_train_config(&t)
            .unwrap_err()
            .to_string()
            .starts_with("batch size: "));
    }

    #[test]
    fn widths_under_the_caps_but_beyond_memory_are_refused_before_allocating() {
        let available = memory::available_bytes().expect("Linux exposes /proc/meminfo");
        // Ordinary networks pass.
        check_config(&mlp(vec![1, 28, 28], vec![512, 512], 10), 128, true).unwrap();
        // A batch that alone needs 100 TB names the batch.
        let c = mlp(vec![3, 2048, 2048], vec![4], 10);
        let e = check_config(&c, MAX_BATCH, true).unwrap_err().to_string();
        assert!(
            e.starts_with("batch size 1048576 on input shape [3, 2048, 2048]"),
            "{e}"
        );
        assert!(e.ends_with("use a smaller batch"), "{e}");
        // Two hidden layers of 65536 units: 4.3e9 parameters, 68.7 GB to train, 34 GB to build.
        // Only a machine with more than that free would accept it; skip there.
        let c = mlp(vec![1, 28, 28], vec![MAX_WIDTH, MAX_WIDTH], 10);
        let need = estimate(&c, 128).unwrap().train_bytes;
        if need < available {
            return;
        }
        let e = check_config(&c, 128, true).unwrap_err();
        let msg = e.to_string();
        assert!(
            msg.starts_with("hidden widths [65536, 65536]: the network needs ")
                && msg.contains(" of memory to train but only ")
                && msg.ends_with("; use narrower or fewer layers"),
            "{msg}"
        );
        match e {
            NnError::Memory { need: n, .. } => assert_eq!(n, need),
            other => panic!("{other:?}"),
        }
        // The constructor itself refuses, before drawing a single weight (where even building
        // would not fit; between build and training needs it would really build: skip there).
        let build = estimate(&c, 1).unwrap().build_bytes;
        if build <= available / 10 * 9 {
            return;
        }
        let e = crate::net::Net::try_new(c, 0).err().expect("refused");
        assert!(
            matches!(
                e,
                NnError::Memory {
                    action: "to build",
                    ..
                }
            ),
            "{e}"
        );
    }
}
