//! Training, model files and bit-packed inference, on real data.
#![allow(clippy::unwrap_used)] // in tests, a failed unwrap is a failed test, with its location

use candle_core::Tensor;
use std::path::PathBuf;
use strata_data::dataset::{self, Dataset};
use strata_nn::file::{self, ModelCard};
use strata_nn::net::{Architecture, Net, NetConfig};
use strata_nn::packed::PackedMlp;
use strata_nn::train::{self, OptimizerKind, Schedule, TrainConfig};
use strata_nn::Precision;

fn cfg(epochs: usize, seed: u64) -> TrainConfig {
    TrainConfig {
        epochs,
        batch_size: 100,
        lr: 1e-2,
        weight_decay: 0.0,
        optimizer: OptimizerKind::Adam,
        schedule: Schedule::Cosine,
        seed,
        l2: 0.0,
    }
}

fn fit(
    architecture: Architecture,
    precision: Precision,
    widths: &[usize],
    data: &dataset::Splits,
    epochs: usize,
    seed: u64,
) -> Net {
    let mut m = new_net(architecture, precision, widths, data, seed);
    train_on(&mut m, data, &cfg(epochs, seed), &mut |_, _, _, _| {}).unwrap();
    m
}

/// An untrained ten-class network for `data`'s inputs.
fn new_net(
    architecture: Architecture,
    precision: Precision,
    widths: &[usize],
    data: &dataset::Splits,
    seed: u64,
) -> Net {
    let config = NetConfig {
        architecture,
        input_shape: data.train.shape.clone(),
        widths: widths.to_vec(),
        classes: 10,
        precision,
        logits: Default::default(),
    };
    Net::new(config, seed).unwrap()
}

/// Train `m` on `data` under `c`, calling `on_step` after each step.
fn train_on(
    m: &mut Net,
    data: &dataset::Splits,
    c: &TrainConfig,
    on_step: &mut dyn FnMut(usize, usize, usize, f64),
) -> Result<Vec<train::EpochStats>, strata_nn::NnError> {
    train::train(m, &data.train, &data.test, c, on_step, &mut |_| {})
}

fn tensor(d: &Dataset) -> Tensor {
    let all: Vec<usize> = (0..d.len()).collect();
    train::batch(d, &all).unwrap().0
}

/// Full MNIST's test set when the shared data sets are beside the repository, else the
/// embedded subset's.
fn mnist_test() -> Dataset {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared/datasets/mnist");
    if dir.is_dir() {
        dataset::load(&format!("mnist:{}", dir.display()))
            .unwrap()
            .test
    } else {
        eprintln!(
            "note: full MNIST not found at {}; using the embedded subset",
            dir.display()
        );
        dataset::load("mnist-small").unwrap().test
    }
}

#[test]
fn packed_w1a1_equals_the_float_simulation_exactly() {
    let data = dataset::load("mnist-small").unwrap();
    // Widths that are not multiples of 64, so padding bits are exercised.
    let mut m = fit(Architecture::Mlp, Precision::W1A1, &[200, 100], &data, 1, 3);
    let p = PackedMlp::from_net(&m).unwrap();
    let test = mnist_test();
    for chunk in (0..test.len()).collect::<Vec<_>>().chunks(2500) {
        let d = test.select(chunk);
        let z_float = m.dense_outputs(&tensor(&d)).unwrap();
        let (z_packed, _) = p.run(d.x.view());
        assert_eq!(z_float.len(), z_packed.len());
        for (zf, zp) in z_float.iter().zip(&z_packed) {
            let zf = zf.to_vec2::<f32>().unwrap();
            for (rf, rp) in zf.iter().zip(zp.rows()) {
                for (a, b) in rf.iter().zip(rp.iter()) {
                    assert_eq!(a.fract(), 0.0, "float simulation gave a non-integer sum");
                    assert_eq!(*a as i32, *b);
                }
            }
        }
        assert_eq!(train::predict(&mut m, &d).unwrap(), p.predict(d.x.view()));
    }
}

#[test]
fn same_seed_same_model_and_files_round_trip() {
    let data = dataset::load("digits").unwrap();
    let mut a = fit(Architecture::Mlp, Precision::W2A2, &[48, 40], &data, 2, 11);
    let b = fit(Architecture::Mlp, Precision::W2A2, &[48, 40], &data, 2, 11);
    let c = fit(Architecture::Mlp, Precision::W2A2, &[48, 40], &data, 2, 12);
    let w = |m: &Net| {
        m.blocks[1]
            .w
            .as_tensor()
            .flatten_all()
            .unwrap()
            .to_vec1::<f32>()
            .unwrap()
    };
    assert_eq!(w(&a), w(&b));
    assert_ne!(w(&a), w(&c));

    let dir = std::env::temp_dir().join(format!("strata-nn-{}", std::process::id()));
    let card = ModelCard {
        format: "strata-model-1".into(),
        config: a.config.clone(),
        data: "digits".into(),
        train: cfg(2, 11),
        train_accuracy: train::accuracy(&mut a, &data.train).unwrap(),
        test_accuracy: train::accuracy(&mut a, &data.test).unwrap(),
        history: vec![],
        threads: 2,
        seconds: 0.0,
        strata_version: "test".into(),
    };
    let (wp, jp) = file::save(&dir.join("m"), &a, &card).unwrap();
    assert!(wp.ends_with("m.safetensors") && jp.ends_with("m.json"));
    let (mut back, card2) = file::load(&wp).unwrap();
    assert_eq!(card2.config, a.config);
    assert_eq!(
        train::predict(&mut back, &data.test).unwrap(),
        train::predict(&mut a, &data.test).unwrap()
    );
    // A config that disagrees with the weights is refused with a clear message.
    let mut bad = card.clone();
    bad.config.widths = vec![48, 41];
    std::fs::write(&jp, serde_json::to_string(&bad).unwrap()).unwrap();
    let e = file::load(&wp).err().unwrap().to_string();
    assert!(e.contains("shape"), "{e}");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn float_mlp_learns_digits() {
    let data = dataset::load("digits").unwrap();
    let mut m = fit(Architecture::Mlp, Precision::Float, &[64], &data, 8, 1);
    let acc = train::accuracy(&mut m, &data.test).unwrap();
    // A linear classifier already reaches about 95% on these digits.
    assert!(acc > 0.9, "test accuracy {acc}");
}

#[test]
fn cnn_and_tiny10_train_on_mnist_and_digits_and_round_trip() {
    let mnist = dataset::load("mnist-small").unwrap();
    let small = dataset::Splits {
        name: "mnist-small-2000".into(),
        train: mnist.train.head(2000),
        test: mnist.test.clone(),
    };
    let mut cnn = fit(Architecture::Cnn, Precision::Float, &[], &small, 1, 2);
    let acc = train::accuracy(&mut cnn, &small.test).unwrap();
    assert!(
        acc > 0.8,
        "LeNet-like CNN after one epoch on 2,000 images: {acc}"
    );
    assert_eq!(cnn.layer_shapes()[0], vec![6, 14, 14]);
    assert_eq!(cnn.layer_shapes()[1], vec![16, 5, 5]);
    // Tiny-10 on 28x28 and on 8x8 inputs; quantized too.
    let t = fit(Architecture::Tiny10, Precision::W1A1, &[], &small, 1, 3);
    assert_eq!(t.layer_shapes()[6], vec![64, 5, 5]);
    // 8x8 digits are too small for Tiny-10's valid 3x3 convolution: a clear error, no panic.
    let digits = dataset::load("digits").unwrap();
    let cfg8 = NetConfig {
        architecture: Architecture::Tiny10,
        input_shape: digits.train.shape.clone(),
        widths: vec![],
        classes: 10,
        precision: Precision::Float,
        logits: Default::default(),
    };
    let e = Net::new(cfg8, 0)
        .err()
        .expect("8x8 is too small")
        .to_string();
    assert!(e.contains("too small"), "{e}");
}

#[test]
fn l2_penalty_shrinks_the_weights() {
    let data = dataset::load("digits").unwrap();
    let sq = |l2: f64| -> f64 {
        let mut m = new_net(Architecture::Mlp, Precision::Float, &[32], &data, 0);
        let c = TrainConfig { l2, ..cfg(3, 0) };
        train_on(&mut m, &data, &c, &mut |_, _, _, _| {}).unwrap();
        m.vars()
            .iter()
            .map(|v| {
                v.as_tensor()
                    .sqr()
                    .unwrap()
                    .sum_all()
                    .unwrap()
                    .to_scalar::<f32>()
                    .unwrap() as f64
            })
            .sum()
    };
    let (free, penalized) = (sq(0.0), sq(0.05));
    // Same seed, same batches: only the penalty differs, and it must pull the weights in.
    assert!(
        penalized < 0.7 * free,
        "sum of squares {penalized} with L2 vs {free} without"
    );
}

#[test]
fn train_refuses_sizes_beyond_the_caps_before_the_first_step() {
    let data = dataset::load("digits").unwrap();
    let mut m = new_net(Architecture::Mlp, Precision::Float, &[8], &data, 0);
    let mut steps = 0;
    let mut c = cfg(strata_nn::limits::MAX_EPOCHS + 1, 0);
    let e = train_on(&mut m, &data, &c, &mut |_, _, _, _| steps += 1)
        .unwrap_err()
        .to_string();
    assert_eq!(e, "epochs: 100001 is more than the 100000 allowed");
    c.epochs = 1;
    c.batch_size = strata_nn::limits::MAX_BATCH + 1;
    let e = train_on(&mut m, &data, &c, &mut |_, _, _, _| steps += 1)
        .unwrap_err()
        .to_string();
    assert!(e.starts_with("batch size: 1048577 is more than"), "{e}");
    assert_eq!(steps, 0);
}

#[test]
fn packed_w1a1_with_linear_logits_equals_the_float_simulation() {
    let data = dataset::load("mnist-small").unwrap();
    let config = NetConfig {
        logits: strata_nn::net::LogitsLayer::Linear,
        ..new_net(Architecture::Mlp, Precision::W1A1, &[100, 70], &data, 5).config
    };
    let mut m = Net::new(config, 5).unwrap();
    train_on(&mut m, &data, &cfg(1, 5), &mut |_, _, _, _| {}).unwrap();
    let p = PackedMlp::from_net(&m).unwrap();
    let d = data.test.select(&(0..500).collect::<Vec<_>>());
    let z = m.dense_outputs(&tensor(&d)).unwrap();
    let (zp, logits) = p.run(d.x.view());
    for (zf, zp) in z.iter().zip(&zp) {
        let zf = zf.to_vec2::<f32>().unwrap();
        for (rf, rp) in zf.iter().zip(zp.rows()) {
            for (a, b) in rf.iter().zip(rp.iter()) {
                assert_eq!(*a as i32, *b);
            }
        }
    }
    let want = m.forward(&tensor(&d), false).unwrap().logits;
    assert_eq!(
        want.to_vec2::<f32>().unwrap().concat(),
        logits.iter().copied().collect::<Vec<_>>()
    );
    assert_eq!(train::predict(&mut m, &d).unwrap(), p.predict(d.x.view()));
}
