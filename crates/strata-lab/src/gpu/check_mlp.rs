//! `strata gpu check`'s network lines: [`GpuMlp`] against the CPU engines on random networks
//! of awkward widths (no width a multiple of any tile), with random batch-norm statistics so
//! that signs and ReLUs go both ways, run in uneven batches.

use super::check::CheckLine;
use candle_core::{Device, Tensor};
use ndarray::{concatenate, Array2, Axis};
use std::sync::Arc;
use strata_data::rng::Rng;
use strata_gpu::{Gpu, GpuBinaryGemm, GpuError, GpuMlp, MlpBatch, MlpEngine, Record};
use strata_nn::net::{Architecture, Net, NetConfig};
use strata_nn::packed::PackedMlp;
use strata_nn::Precision;

/// Float networks may differ from candle by f32 rounding in the products: this bound, relative
/// to the largest value of the layer.
pub const FLOAT_TOLERANCE: f64 = 1e-4;

const WIDTHS: [usize; 2] = [1000, 333];
const ROWS: usize = 777;
const BATCH: usize = 300;

fn nn(e: impl std::fmt::Display) -> GpuError {
    GpuError::Unsupported(format!("building a test network: {e}"))
}

/// A freshly initialized MLP (784 inputs) with random evaluation statistics: means and
/// variances on the scale of each layer's sums, gammas of both signs.
fn random_net(precision: Precision, rng: &mut Rng) -> Result<Net, GpuError> {
    let config = NetConfig {
        architecture: Architecture::Mlp,
        input_shape: vec![1, 28, 28],
        widths: WIDTHS.to_vec(),
        classes: 10,
        precision,
        logits: Default::default(),
    };
    let mut net = Net::new(config, rng.next_u64()).map_err(nn)?;
    let mut inputs = 784usize;
    for (i, b) in net.blocks.iter_mut().enumerate() {
        let out = b.out_shape[0];
        // Sums of ±1 products grow as sqrt(inputs); the first layer's pixels are 0-255.
        let spread = match (precision, i) {
            (Precision::Float, _) => 1.0,
            (_, 0) => 150.0 * (inputs as f64).sqrt(),
            _ => (inputs as f64).sqrt(),
        };
        let v = |rng: &mut Rng, f: &dyn Fn(&mut Rng) -> f64| -> Result<Tensor, GpuError> {
            let vals: Vec<f32> = (0..out).map(|_| f(rng) as f32).collect();
            Tensor::from_vec(vals, out, &Device::Cpu).map_err(nn)
        };
        b.bn.running_mean = v(rng, &|r| 0.5 * spread * r.normal())?;
        b.bn.running_var = v(rng, &|r| spread * spread * (0.25 + r.uniform()))?;
        b.bn.gamma.set(&v(rng, &|r| r.normal())?).map_err(nn)?;
        b.bn.beta.set(&v(rng, &|r| 0.5 * r.normal())?).map_err(nn)?;
        inputs = out;
    }
    Ok(net)
}

/// Run the GPU engine over `x` in uneven batches and stack the batches back together.
fn gpu_run(mlp: &GpuMlp, x: &Array2<f32>, record: Record) -> Result<MlpBatch, GpuError> {
    let mut batches: Vec<MlpBatch> = Vec::new();
    mlp.run(x.view(), BATCH, record, |_, b| {
        batches.push(b);
        Ok::<_, GpuError>(())
    })?;
    let stack_f = |v: Vec<&Array2<f32>>| -> Array2<f32> {
        let views: Vec<_> = v.iter().map(|a| a.view()).collect();
        concatenate(Axis(0), &views).expect("batches of equal widths")
    };
    let logits = stack_f(batches.iter().map(|b| &b.logits).collect());
    let n_layers = batches.first().map_or(0, |b| b.layers.len());
    let layers = (0..n_layers)
        .map(|l| stack_f(batches.iter().map(|b| &b.layers[l]).collect()))
        .collect();
    let n_sums = batches.first().map_or(0, |b| b.sums.len());
    let sums = (0..n_sums)
        .map(|l| {
            let views: Vec<_> = batches.iter().map(|b| b.sums[l].view()).collect();
            concatenate(Axis(0), &views).expect("batches of equal widths")
        })
        .collect();
    Ok(MlpBatch {
        logits,
        layers,
        sums,
    })
}

/// Largest absolute difference; a shape mismatch or a NaN on one side only is infinite.
fn max_abs<T: Copy + Into<f64>>(a: &Array2<T>, b: &Array2<T>) -> f64 {
    if a.dim() != b.dim() {
        return f64::INFINITY;
    }
    a.iter()
        .zip(b)
        .map(|(&x, &y)| {
            let (x, y): (f64, f64) = (x.into(), y.into());
            let d = (x - y).abs();
            if x == y || (x.is_nan() && y.is_nan()) {
                0.0
            } else if d.is_nan() {
                f64::INFINITY
            } else {
                d
            }
        })
        .fold(0.0, f64::max)
}

/// The worst of `diff` over layers compared pairwise; a different number of layers is infinite.
fn worst<T>(got: &[Array2<T>], want: &[Array2<T>], diff: fn(&Array2<T>, &Array2<T>) -> f64) -> f64 {
    if got.len() != want.len() {
        return f64::INFINITY;
    }
    got.iter()
        .zip(want)
        .map(|(a, b)| diff(a, b))
        .fold(0.0, f64::max)
}

/// Largest difference relative to the layer's largest magnitude (at least 1).
fn max_rel(a: &Array2<f32>, b: &Array2<f32>) -> f64 {
    let scale = b.iter().fold(1f64, |m, &v| m.max((v as f64).abs()));
    max_abs(a, b) / scale
}

fn candle_layers(net: &mut Net, x: &Array2<f32>, pre: bool) -> Result<Vec<Array2<f32>>, GpuError> {
    let t = Tensor::from_slice(
        x.as_slice().expect("standard layout"),
        x.dim(),
        &Device::Cpu,
    )
    .map_err(nn)?;
    let f = net.forward(&t, false).map_err(nn)?;
    let layers = if pre { f.pre } else { f.post };
    layers
        .iter()
        .map(|t| {
            let v = t.to_vec2::<f32>().map_err(nn)?;
            let cols = v.first().map_or(0, |r| r.len());
            Ok(Array2::from_shape_vec((v.len(), cols), v.concat()).expect("rectangular"))
        })
        .collect()
}

/// The network lines of the check.
pub(crate) fn lines(gpu: &Arc<Gpu>, rng: &mut Rng) -> Result<Vec<CheckLine>, GpuError> {
    let mut lines = Vec::new();
    let shape = format!(
        "784-{}-{}-10, {ROWS} rows in batches of {BATCH}",
        WIDTHS[0], WIDTHS[1]
    );
    let x = Array2::from_shape_fn((ROWS, 784), |_| rng.uniform() as f32);
    let mut push = |what: String, d: f64, ok: bool| {
        lines.push(CheckLine {
            what,
            max_diff: d,
            ok,
        })
    };

    // w1a1: every engine computes the same integers and the same logits, bit for bit.
    let mut net = random_net(Precision::W1A1, rng)?;
    let cpu = PackedMlp::from_net(&net).map_err(nn)?;
    let (zs, logits) = cpu.run(x.view());
    for k in GpuBinaryGemm::new(gpu.clone()).kernels() {
        let mlp = GpuMlp::new(gpu.clone(), &net, MlpEngine::Packed(k))?;
        let MlpBatch {
            logits: l, sums, ..
        } = gpu_run(&mlp, &x, Record::Sums)?;
        let d = worst(&zs, &sums, max_abs);
        push(
            format!("w1a1 MLP {shape}: packed {} sums vs CPU packed", k.name()),
            d,
            d == 0.0,
        );
        let d = max_abs(&l, &logits);
        push(
            format!("w1a1 MLP: packed {} logits vs CPU packed", k.name()),
            d,
            d == 0.0,
        );
    }
    let mlp = GpuMlp::new(gpu.clone(), &net, MlpEngine::Float)?;
    let l = gpu_run(&mlp, &x, Record::Logits)?.logits;
    let d = max_abs(&l, &logits);
    push(
        "w1a1 MLP: float engine logits vs CPU packed".into(),
        d,
        d == 0.0,
    );
    for (record, pre) in [(Record::Pre, true), (Record::Post, false)] {
        let got = gpu_run(&mlp, &x, record)?.layers;
        let want = candle_layers(&mut net, &x, pre)?;
        let d = worst(&got, &want, max_abs);
        push(
            format!("w1a1 MLP: float engine {record:?} layers vs candle"),
            d,
            d == 0.0,
        );
    }

    // Float: ReLU network, products in f32 in another order than the CPU's.
    let mut net = random_net(Precision::Float, rng)?;
    let mlp = GpuMlp::new(gpu.clone(), &net, MlpEngine::Float)?;
    let post = gpu_run(&mlp, &x, Record::Post)?.layers;
    let want = candle_layers(&mut net, &x, false)?;
    let d = worst(&post, &want, max_rel);
    push(
        format!("float MLP {shape}: activations vs candle (relative)"),
        d,
        d <= FLOAT_TOLERANCE,
    );

    // w1a2: the first layer's sums are exact, so its 2-bit activations must match exactly
    // (later layers sum multiples of 1/3, which rounds with the order of the sum).
    let mut net = random_net(Precision::W1A2, rng)?;
    let mlp = GpuMlp::new(gpu.clone(), &net, MlpEngine::Float)?;
    let post = gpu_run(&mlp, &x, Record::Post)?.layers;
    let want = candle_layers(&mut net, &x, false)?;
    let d = match (post.first(), want.first()) {
        (Some(a), Some(b)) => max_abs(a, b),
        _ => f64::INFINITY,
    };
    push(
        "w1a2 MLP: first layer's 2-bit activations vs candle".into(),
        d,
        d == 0.0,
    );
    Ok(lines)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn share(a: &Array2<f32>, f: impl Fn(f32) -> bool) -> f64 {
        a.iter().filter(|&&v| f(v)).count() as f64 / a.len() as f64
    }

    /// What the GPU is compared against: the CPU references agree with each other bit for bit
    /// (w1a1), and the random statistics make every hidden unit's sign, ReLU and 2-bit level
    /// go more than one way, so a wrong kernel cannot pass by writing constants.
    #[test]
    fn the_references_agree_and_exercise_every_branch() {
        let mut rng = Rng::new(0xc0ffee);
        let x = Array2::from_shape_fn((97, 784), |_| rng.uniform() as f32);
        let mut net = random_net(Precision::W1A1, &mut rng).unwrap();
        let (_, logits) = PackedMlp::from_net(&net).unwrap().run(x.view());
        let pre = candle_layers(&mut net, &x, true).unwrap();
        assert_eq!(max_abs(&logits, pre.last().unwrap()), 0.0);
        for (i, y) in pre[..pre.len() - 1].iter().enumerate() {
            let pos = share(y, |v| v >= 0.0);
            assert!(
                (0.1..0.9).contains(&pos),
                "w1a1 layer {i}: {pos} non-negative"
            );
        }

        let mut net = random_net(Precision::Float, &mut rng).unwrap();
        let post = candle_layers(&mut net, &x, false).unwrap();
        for (i, a) in post[..post.len() - 1].iter().enumerate() {
            let zeros = share(a, |v| v == 0.0);
            assert!(
                (0.1..0.9).contains(&zeros),
                "float layer {i}: {zeros} zeros"
            );
        }

        let mut net = random_net(Precision::W1A2, &mut rng).unwrap();
        let post = candle_layers(&mut net, &x, false).unwrap();
        for level in [0.0f32, 1.0] {
            let s = share(&post[0], |v| v == level);
            assert!(s > 0.02, "w1a2 first layer: level {level} has share {s}");
        }
        let mid = share(&post[0], |v| v > 0.0 && v < 1.0);
        assert!(
            mid > 0.02,
            "w1a2 first layer: inner levels have share {mid}"
        );
    }

    #[test]
    fn differences_count_nan_and_shape_as_infinite() {
        let a = Array2::from_shape_vec((1, 3), vec![1.0f32, f32::NAN, 3.0]).unwrap();
        let mut b = a.clone();
        assert_eq!(max_abs(&a, &b), 0.0);
        b[[0, 2]] = 3.5;
        assert_eq!(max_abs(&a, &b), 0.5);
        b[[0, 1]] = 0.0;
        assert_eq!(max_abs(&a, &b), f64::INFINITY);
        assert_eq!(max_abs(&a, &Array2::zeros((3, 1))), f64::INFINITY);
        assert!(max_rel(&b, &a).is_infinite());
        let c = Array2::from_shape_vec((1, 2), vec![2.0f32, 4.0]).unwrap();
        let d = Array2::from_shape_vec((1, 2), vec![2.0f32, 5.0]).unwrap();
        assert!(
            (max_rel(&c, &d) - 0.2).abs() < 1e-12,
            "relative to the largest |value|"
        );
    }
}
