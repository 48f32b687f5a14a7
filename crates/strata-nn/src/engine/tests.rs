//! The engine against independent references: candle's autograd on the same networks (the
//! tensor implementation in `crate::net`, gradients and logits), central finite differences of
//! the engine's own loss where the two definitions differ (max pooling's ties), and
//! determinism.

use super::*;
use crate::net::{Architecture, NetConfig};
use candle_core::{Device, Tensor};
use ndarray::Array2;
use strata_data::rng::Rng;

fn config(architecture: Architecture, input: [usize; 3], precision: Precision) -> NetConfig {
    NetConfig {
        architecture,
        input_shape: input.to_vec(),
        widths: vec![12, 9],
        classes: 5,
        precision,
        logits: Default::default(),
    }
}

/// A net with batch norm parameters moved off their initial values (so gamma and beta matter)
/// and `n` random examples in [0, 1] with labels.
fn setup(c: &NetConfig, n: usize, seed: u64) -> (Net, Array2<f32>, Vec<u32>) {
    let mut net = Net::new(c.clone(), seed).unwrap();
    let mut rng = Rng::new(seed + 1);
    for b in &mut net.blocks {
        let k = b.bn.gamma.as_tensor().dim(0).unwrap();
        let g: Vec<f32> = (0..k).map(|_| 0.5 + rng.uniform() as f32).collect();
        let be: Vec<f32> = (0..k).map(|_| rng.normal() as f32 * 0.2).collect();
        b.bn.gamma
            .set(&Tensor::new(g, &Device::Cpu).unwrap())
            .unwrap();
        b.bn.beta
            .set(&Tensor::new(be, &Device::Cpu).unwrap())
            .unwrap();
    }
    let d: usize = c.input_shape.iter().product();
    let x = Array2::from_shape_fn((n, d), |_| rng.uniform() as f32);
    let y = (0..n).map(|_| rng.below(c.classes as u64) as u32).collect();
    (net, x, y)
}

type Grads = Vec<(Vec<f32>, Vec<f32>, Vec<f32>)>;

/// candle's loss and gradients for the same batch, per block `(w, gamma, beta)`.
fn candle_reference(net: &mut Net, x: &Array2<f32>, y: &[u32]) -> (f64, Grads, Vec<f32>) {
    let xt = Tensor::from_slice(x.as_slice().unwrap(), x.dim(), &Device::Cpu).unwrap();
    let yt = Tensor::from_slice(y, y.len(), &Device::Cpu).unwrap();
    let f = net.forward(&xt, true).unwrap();
    let loss = candle_nn::loss::cross_entropy(&f.logits, &yt).unwrap();
    let g = loss.backward().unwrap();
    let get = |t: &Tensor| {
        g.get(t)
            .map(|v| v.flatten_all().unwrap().to_vec1::<f32>().unwrap())
            .unwrap_or_else(|| vec![0.0; t.elem_count()])
    };
    let grads = net
        .blocks
        .iter()
        .map(|b| {
            (
                get(b.w.as_tensor()),
                get(b.bn.gamma.as_tensor()),
                get(b.bn.beta.as_tensor()),
            )
        })
        .collect();
    let logits = f.logits.flatten_all().unwrap().to_vec1::<f32>().unwrap();
    (loss.to_scalar::<f32>().unwrap() as f64, grads, logits)
}

fn close(what: &str, got: &[f32], want: &[f32], tol: f32) {
    assert_eq!(got.len(), want.len(), "{what}");
    let scale = want.iter().fold(0f32, |m, v| m.max(v.abs())).max(1e-3);
    for (i, (a, b)) in got.iter().zip(want).enumerate() {
        assert!(
            (a - b).abs() <= tol * scale,
            "{what}[{i}]: engine {a}, reference {b} (scale {scale})"
        );
    }
}

#[test]
fn gradients_equal_candles_autograd() {
    let cases = [
        (Architecture::Mlp, [1, 6, 6], Precision::Float),
        (Architecture::Mlp, [3, 4, 4], Precision::Float),
        (Architecture::Mlp, [1, 6, 6], Precision::W1A1),
        (Architecture::Mlp, [2, 5, 5], Precision::W2A2),
        (Architecture::Mlp, [1, 6, 6], Precision::W4A4),
        (Architecture::Tiny10, [1, 12, 12], Precision::Float),
        (Architecture::Tiny10, [2, 12, 12], Precision::Float),
        (Architecture::Tiny10, [1, 12, 12], Precision::W1A1),
        (Architecture::Tiny10, [1, 12, 12], Precision::W4A4),
    ];
    for (k, (arch, input, p)) in cases.into_iter().enumerate() {
        let c = config(arch, input, p);
        let (mut net, x, y) = setup(&c, 16, 40 + k as u64);
        let mut e = Engine::new(&net, 16).unwrap();
        let idx: Vec<usize> = (0..16).collect();
        let s = e.gradients(x.view(), &y, &idx, 0.0);
        let (loss, want, _) = candle_reference(&mut net, &x, &y);
        let what = format!("{arch:?} {input:?} {p}");
        assert!(
            (s.loss - loss).abs() < 1e-4 * (1.0 + loss),
            "{what}: loss {} vs {loss}",
            s.loss
        );
        for (b, (g, w)) in e.block_grads().iter().zip(&want).enumerate() {
            close(&format!("{what} block {b} weights"), &g.0, &w.0, 2e-3);
            close(&format!("{what} block {b} gamma"), &g.1, &w.1, 2e-3);
            close(&format!("{what} block {b} beta"), &g.2, &w.2, 2e-3);
        }
    }
}

#[test]
fn evaluation_logits_equal_the_tensor_implementation() {
    for (k, (arch, input)) in [
        (Architecture::Mlp, [1, 6, 6]),
        (Architecture::Cnn, [1, 16, 16]),
        (Architecture::Cnn, [3, 20, 20]),
        (Architecture::Tiny10, [2, 12, 12]),
    ]
    .into_iter()
    .enumerate()
    {
        for p in [Precision::Float, Precision::W1A1, Precision::W2A2] {
            let c = config(arch, input, p);
            let (mut net, x, _) = setup(&c, 300, 70 + k as u64);
            // Running statistics away from (0, 1).
            for b in &mut net.blocks {
                let k = b.bn.running_var.dim(0).unwrap();
                b.bn.running_mean = Tensor::new(vec![0.3f32; k], &Device::Cpu).unwrap();
                b.bn.running_var = Tensor::new(vec![2.5f32; k], &Device::Cpu).unwrap();
            }
            let got = Engine::new(&net, 1).unwrap().predict_logits(x.view());
            let xt = Tensor::from_slice(x.as_slice().unwrap(), x.dim(), &Device::Cpu).unwrap();
            let want = net.forward(&xt, false).unwrap().logits;
            let want = want.flatten_all().unwrap().to_vec1::<f32>().unwrap();
            let what = format!("{arch:?} {input:?} {p}");
            if p == Precision::W1A1 && arch != Architecture::Tiny10 {
                // Integer sums and the same f32 batch norm: bit for bit (global average
                // pooling sums in another order, so Tiny-10 is only close).
                assert_eq!(got, want, "{what}");
            } else {
                close(&what, &got, &want, 1e-4);
            }
        }
    }
}

#[test]
fn cnn_gradients_equal_candles_up_to_its_pooling_scale() {
    // candle's max-pool backward gives a window's unique maximum a quarter of the gradient
    // (the mask's average over the 2 x 2 window, not its sum). Everything below a pool is
    // linear in the gradient that arrives, so the CNN's conv2 gradients are candle's times 4
    // and conv1's times 16: checked here for float CNNs (ties only among ReLU-dead entries,
    // whose gradient is zero either way).
    for (k, input) in [[1, 16, 16], [3, 20, 20]].into_iter().enumerate() {
        let c = config(Architecture::Cnn, input, Precision::Float);
        let (mut net, x, y) = setup(&c, 16, 90 + k as u64);
        let mut e = Engine::new(&net, 16).unwrap();
        let idx: Vec<usize> = (0..16).collect();
        let s = e.gradients(x.view(), &y, &idx, 0.0);
        let (loss, want, _) = candle_reference(&mut net, &x, &y);
        assert!((s.loss - loss).abs() < 1e-4 * (1.0 + loss));
        for (b, (g, w)) in e.block_grads().iter().zip(&want).enumerate() {
            let scale = [16.0f32, 4.0, 1.0, 1.0, 1.0][b];
            let up = |v: &[f32]| v.iter().map(|x| x * scale).collect::<Vec<f32>>();
            let what = format!("CNN {input:?} block {b}");
            close(&format!("{what} weights"), &g.0, &up(&w.0), 2e-3);
            close(&format!("{what} gamma"), &g.1, &up(&w.1), 2e-3);
            close(&format!("{what} beta"), &g.2, &up(&w.2), 2e-3);
        }
    }
}

/// The loss of the engine's current parameters on a batch (training mode).
fn loss_at(e: &mut Engine, x: &Array2<f32>, y: &[u32]) -> f64 {
    let idx: Vec<usize> = (0..x.nrows()).collect();
    e.gradients(x.view(), y, &idx, 0.0).loss
}

#[test]
fn cnn_gradients_equal_finite_differences() {
    // Max pooling's tie rule differs from candle's, so the LeNet-like CNN (pooling, and a
    // dense layer reading a channels-first flattening) is checked against central differences.
    let c = config(Architecture::Cnn, [2, 16, 16], Precision::Float);
    let (net, x, y) = setup(&c, 12, 5);
    let mut e = Engine::new(&net, 12).unwrap();
    let idx: Vec<usize> = (0..12).collect();
    e.gradients(x.view(), &y, &idx, 0.0);
    let grads = e.grads.clone();
    let mut rng = Rng::new(9);
    let h = 1e-3f32;
    let (mut checked, mut bad) = (0, Vec::new());
    for l in 0..e.layers.len() {
        let (w, gamma) = (e.layers[l].w.clone(), e.layers[l].gamma);
        let picks: Vec<usize> = (0..6)
            .map(|_| w.start + rng.below(w.len() as u64) as usize)
            .chain([gamma, gamma + 1])
            .collect();
        for i in picks {
            let v = e.params[i];
            e.params[i] = v + h;
            let up = loss_at(&mut e, &x, &y);
            e.params[i] = v - h;
            let down = loss_at(&mut e, &x, &y);
            e.params[i] = v;
            let fd = (up - down) / (2.0 * h as f64);
            checked += 1;
            if (fd - grads[i] as f64).abs() > 2e-3 + 0.05 * fd.abs() {
                bad.push((l, i, fd, grads[i]));
            }
        }
    }
    // A ReLU or a window's maximum may switch inside [v - h, v + h] for a rare coordinate.
    assert!(bad.len() <= checked / 20, "{bad:?} of {checked}");
}

#[test]
fn same_seed_same_parameters_and_sgd_and_l2_move_them() {
    let c = config(Architecture::Cnn, [1, 16, 16], Precision::W1A1);
    let run = |optimizer| {
        let (net, x, y) = setup(&c, 40, 11);
        let mut e = Engine::new(&net, 20).unwrap();
        let cfg = TrainConfig {
            epochs: 1,
            batch_size: 20,
            lr: 0.01,
            weight_decay: 0.0,
            optimizer,
            schedule: crate::train::Schedule::Constant,
            seed: 1,
            l2: 1e-3,
        };
        for b in 0..4 {
            let idx: Vec<usize> = (b % 2 * 20..b % 2 * 20 + 20).collect();
            e.step(x.view(), &y, &idx, &cfg, cfg.lr);
        }
        (net, e)
    };
    let (net, a) = run(OptimizerKind::Adam);
    let (_, b) = run(OptimizerKind::Adam);
    assert_eq!(a.params, b.params);
    assert_eq!(a.running, b.running);
    let (_, s) = run(OptimizerKind::Sgd { momentum: 0.9 });
    assert_ne!(a.params, s.params);
    // Quantized weights stay in [-1, 1]; parameters moved from the initial ones.
    let start = Engine::new(&net, 1).unwrap();
    assert_ne!(start.params, a.params);
    for l in &a.layers {
        assert!(a.params[l.w.clone()]
            .iter()
            .all(|v| (-1.0..=1.0).contains(v)));
    }
}

#[test]
fn write_back_restores_the_networks_layout() {
    for (arch, input) in [
        (Architecture::Cnn, [3, 20, 20]),
        (Architecture::Mlp, [2, 5, 5]),
        (Architecture::Tiny10, [2, 12, 12]),
    ] {
        let c = config(arch, input, Precision::Float);
        let (mut net, _, _) = setup(&c, 1, 3);
        let before: Vec<Vec<f32>> = net
            .blocks
            .iter()
            .map(|b| tensor_vec(b.w.as_tensor()).unwrap())
            .collect();
        let e = Engine::new(&net, 1).unwrap();
        e.write_back(&mut net).unwrap();
        for (b, w) in net.blocks.iter().zip(before) {
            assert_eq!(tensor_vec(b.w.as_tensor()).unwrap(), w);
            assert_eq!(b.w.as_tensor().dims(), b.w.as_tensor().dims());
        }
    }
}

#[test]
fn cross_entropy_matches_its_definition() {
    let logits = [1.0f32, 2.0, 0.5, -3.0, 0.0, 3.0];
    let mut d = [0f32; 6];
    let (loss, right) = cross_entropy(&logits, &[1, 0], 3, &mut d);
    let l0 = (1f64.exp() + 2f64.exp() + 0.5f64.exp()).ln() - 2.0;
    let l1 = ((-3f64).exp() + 1.0 + 3f64.exp()).ln() + 3.0;
    assert!((loss - (l0 + l1) / 2.0).abs() < 1e-9);
    assert_eq!(right, 1);
    // Each row's gradient sums to zero.
    assert!((d[0] + d[1] + d[2]).abs() < 1e-7 && (d[3] + d[4] + d[5]).abs() < 1e-7);
}

#[test]
fn round_non_negative_equals_round() {
    let mut rng = Rng::new(17);
    let mut xs: Vec<f32> = (0..100_000)
        .map(|_| (rng.uniform() * 300.0) as f32)
        .collect();
    // Halves, their neighbours, and the largest float below 0.5.
    for k in 0..600 {
        let h = k as f32 * 0.5;
        xs.extend([
            h,
            f32::from_bits(h.to_bits().wrapping_sub(1)),
            f32::from_bits(h.to_bits() + 1),
        ]);
    }
    xs.extend([0.0, 0.49999997, 254.5, 255.0, 1e9]);
    for x in xs.into_iter().filter(|x| x.is_finite() && *x >= 0.0) {
        assert_eq!(round_non_negative(x).to_bits(), x.round().to_bits(), "{x}");
    }
}

/// After 40 Adam steps (weights clipped at the boundary, batch norm moved, gradients from
/// earlier steps in the buffers) the next step's gradients still equal candle's on the same
/// parameters.
#[test]
fn gradients_equal_candles_after_training_steps() {
    for (k, (arch, input, p)) in [
        (Architecture::Mlp, [1, 6, 6], Precision::W2A2),
        (Architecture::Mlp, [1, 6, 6], Precision::W1A1),
        (Architecture::Mlp, [1, 6, 6], Precision::Float),
        (Architecture::Tiny10, [1, 12, 12], Precision::W2A2),
    ]
    .into_iter()
    .enumerate()
    {
        let c = config(arch, input, p);
        let (mut net, x, y) = setup(&c, 64, 140 + k as u64);
        let mut e = Engine::new(&net, 64).unwrap();
        let cfg = TrainConfig {
            epochs: 1,
            batch_size: 16,
            lr: 0.01,
            weight_decay: 0.0,
            optimizer: OptimizerKind::Adam,
            schedule: crate::train::Schedule::Constant,
            seed: 1,
            l2: 0.0,
        };
        for b in 0..40 {
            let idx: Vec<usize> = (b % 4 * 16..b % 4 * 16 + 16).collect();
            e.step(x.view(), &y, &idx, &cfg, cfg.lr);
        }
        e.write_back(&mut net).unwrap();
        let idx: Vec<usize> = (0..16).collect();
        let xs = x.slice(ndarray::s![0..16, ..]).to_owned();
        let s = e.gradients(x.view(), &y, &idx, 0.0);
        let (loss, want, _) = candle_reference(&mut net, &xs, &y[..16]);
        let what = format!("after training {arch:?} {input:?} {p}");
        assert!(
            (s.loss - loss).abs() < 1e-3 * (1.0 + loss),
            "{what}: loss {} vs {loss}",
            s.loss
        );
        for (b, (g, w)) in e.block_grads().iter().zip(&want).enumerate() {
            close(&format!("{what} block {b} weights"), &g.0, &w.0, 2e-2);
            close(&format!("{what} block {b} gamma"), &g.1, &w.1, 2e-2);
            close(&format!("{what} block {b} beta"), &g.2, &w.2, 2e-2);
        }
    }
}

fn linear(c: NetConfig) -> NetConfig {
    NetConfig {
        logits: crate::net::LogitsLayer::Linear,
        ..c
    }
}

#[test]
fn linear_logits_gradients_equal_candles_autograd() {
    let cases = [
        (Architecture::Mlp, [1, 6, 6], Precision::Float),
        (Architecture::Mlp, [1, 6, 6], Precision::W1A1),
        (Architecture::Tiny10, [2, 12, 12], Precision::Float),
        (Architecture::Tiny10, [1, 12, 12], Precision::W2A2),
    ];
    for (k, (arch, input, p)) in cases.into_iter().enumerate() {
        let c = linear(config(arch, input, p));
        let (mut net, x, y) = setup(&c, 16, 90 + k as u64);
        let last = net.blocks.len() - 1;
        // The tensor implementation fixes the linear layer's scale at 1 whatever is stored.
        net.blocks[last]
            .bn
            .gamma
            .set(&Tensor::new(vec![1f32; c.classes], &Device::Cpu).unwrap())
            .unwrap();
        let mut e = Engine::new(&net, 16).unwrap();
        let idx: Vec<usize> = (0..16).collect();
        let s = e.gradients(x.view(), &y, &idx, 0.0);
        let (loss, want, _) = candle_reference(&mut net, &x, &y);
        let what = format!("linear logits {arch:?} {input:?} {p}");
        assert!((s.loss - loss).abs() < 1e-4 * (1.0 + loss), "{what}");
        let got = e.block_grads();
        for (b, (g, w)) in got.iter().zip(&want).enumerate() {
            close(&format!("{what} block {b} weights"), &g.0, &w.0, 2e-3);
            close(&format!("{what} block {b} gamma"), &g.1, &w.1, 2e-3);
            close(&format!("{what} block {b} beta"), &g.2, &w.2, 2e-3);
        }
        // Closed form: the bias's gradient is the column sum of dL/dlogits = (softmax - onehot)/n.
        let (_, _, logits) = candle_reference(&mut net, &x, &y);
        let mut dbias = vec![0f64; c.classes];
        for (r, row) in logits.chunks(c.classes).enumerate() {
            let m = row.iter().fold(f32::NEG_INFINITY, |a, &v| a.max(v)) as f64;
            let z: f64 = row.iter().map(|&v| (v as f64 - m).exp()).sum();
            for (j, &v) in row.iter().enumerate() {
                let p = (v as f64 - m).exp() / z - f64::from(u8::from(y[r] as usize == j));
                dbias[j] += p / 16.0;
            }
        }
        let dbias: Vec<f32> = dbias.iter().map(|&v| v as f32).collect();
        close(
            &format!("{what} bias closed form"),
            &got[last].2,
            &dbias,
            1e-4,
        );
        assert!(got[last].1.iter().all(|&g| g == 0.0), "{what}: scale moved");
    }
}

#[test]
fn linear_logits_are_the_dense_output_plus_the_bias() {
    for (arch, input, p) in [
        (Architecture::Mlp, [1, 6, 6], Precision::W1A1),
        (Architecture::Cnn, [1, 16, 16], Precision::Float),
        (Architecture::Tiny10, [2, 12, 12], Precision::Float),
    ] {
        let c = linear(config(arch, input, p));
        let (mut net, x, _) = setup(&c, 50, 5);
        let last = net.blocks.len() - 1;
        let xt = Tensor::from_slice(x.as_slice().unwrap(), x.dim(), &Device::Cpu).unwrap();
        let z = net.dense_outputs(&xt).unwrap()[last]
            .flatten_all()
            .unwrap()
            .to_vec1::<f32>()
            .unwrap();
        let bias = tensor_vec(net.blocks[last].bn.beta.as_tensor()).unwrap();
        let want: Vec<f32> = z
            .iter()
            .enumerate()
            .map(|(i, v)| v + bias[i % c.classes])
            .collect();
        let tensor = net.forward(&xt, false).unwrap().logits;
        assert_eq!(tensor_vec(&tensor).unwrap(), want, "{arch:?} {p} tensor");
        let got = Engine::new(&net, 1).unwrap().predict_logits(x.view());
        if arch == Architecture::Mlp {
            assert_eq!(got, want, "{arch:?} {p} engine");
        } else {
            // Convolutions sum in another order than the tensor implementation's.
            close(&format!("{arch:?} {p} engine"), &got, &want, 1e-4);
        }
    }
}

#[test]
fn linear_logits_keep_their_scale_and_statistics_while_training() {
    let c = linear(config(Architecture::Mlp, [1, 6, 6], Precision::Float));
    let (net, x, y) = setup(&c, 40, 8);
    let mut net = net;
    let last = net.blocks.len() - 1;
    net.blocks[last]
        .bn
        .gamma
        .set(&Tensor::new(vec![1f32; c.classes], &Device::Cpu).unwrap())
        .unwrap();
    let mut e = Engine::new(&net, 20).unwrap();
    let cfg = TrainConfig {
        epochs: 1,
        batch_size: 20,
        lr: 0.05,
        weight_decay: 0.1,
        optimizer: OptimizerKind::Adam,
        schedule: crate::train::Schedule::Constant,
        seed: 1,
        l2: 1e-3,
    };
    let bias0 = tensor_vec(net.blocks[last].bn.beta.as_tensor()).unwrap();
    for b in 0..4 {
        let idx: Vec<usize> = (b % 2 * 20..b % 2 * 20 + 20).collect();
        e.step(x.view(), &y, &idx, &cfg, cfg.lr);
    }
    e.write_back(&mut net).unwrap();
    let bn = &net.blocks[last].bn;
    assert_eq!(
        tensor_vec(bn.gamma.as_tensor()).unwrap(),
        vec![1f32; c.classes]
    );
    assert_eq!(tensor_vec(&bn.running_mean).unwrap(), vec![0f32; c.classes]);
    assert_eq!(tensor_vec(&bn.running_var).unwrap(), vec![1f32; c.classes]);
    assert_ne!(
        tensor_vec(bn.beta.as_tensor()).unwrap(),
        bias0,
        "the bias learns"
    );
    // The hidden layers still normalize and move their statistics.
    assert_ne!(
        tensor_vec(&net.blocks[0].bn.running_mean).unwrap(),
        vec![0f32; 12]
    );
}
