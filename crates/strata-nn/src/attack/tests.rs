//! Attacks against independent references: the input gradient against central finite
//! differences (float networks) and against candle's autograd through the straight-through
//! estimators (quantized networks); FGSM against its formula; PGD on a linear classifier, whose
//! smallest L2 perturbation that changes a prediction is known in closed form.

#![allow(clippy::needless_range_loop)]

use super::*;
use crate::net::{Architecture, LogitsLayer, NetConfig};
use crate::precision::Precision;
use candle_core::{Device, Tensor, Var};

fn net(architecture: Architecture, precision: Precision, seed: u64) -> Net {
    net_with(architecture, precision, seed, LogitsLayer::BatchNorm)
}

fn net_with(
    architecture: Architecture,
    precision: Precision,
    seed: u64,
    logits: LogitsLayer,
) -> Net {
    let input = match architecture {
        Architecture::Mlp => vec![1, 6, 6],
        _ => vec![1, 12, 12],
    };
    let mut net = Net::new(
        NetConfig {
            architecture,
            input_shape: input,
            widths: vec![10, 8],
            classes: 4,
            precision,
            logits,
        },
        seed,
    )
    .unwrap();
    // Running statistics and affine parameters off their initial values, so that evaluation
    // mode's batch norm is not the identity.
    let mut rng = Rng::new(seed + 7);
    for b in &mut net.blocks {
        let k = b.bn.gamma.as_tensor().dim(0).unwrap();
        let v = |rng: &mut Rng, lo: f64, span: f64| -> Tensor {
            let v: Vec<f32> = (0..k).map(|_| (lo + span * rng.uniform()) as f32).collect();
            Tensor::new(v, &Device::Cpu).unwrap()
        };
        b.bn.gamma.set(&v(&mut rng, 0.5, 1.0)).unwrap();
        b.bn.beta.set(&v(&mut rng, -0.2, 0.4)).unwrap();
        b.bn.running_mean = v(&mut rng, -0.3, 0.6);
        b.bn.running_var = v(&mut rng, 0.5, 1.5);
    }
    net
}

fn examples(net: &Net, n: usize, seed: u64) -> (Array2<f32>, Vec<usize>) {
    let d: usize = net.config.input_shape.iter().product();
    let mut rng = Rng::new(seed);
    let x = Array2::from_shape_fn((n, d), |_| rng.uniform() as f32);
    let y = (0..n)
        .map(|_| rng.below(net.config.classes as u64) as usize)
        .collect();
    (x, y)
}

/// Cross-entropy of one row of logits against `y`, in f64.
fn ce(logits: &[f32], y: usize) -> f64 {
    let m = logits
        .iter()
        .fold(f64::NEG_INFINITY, |m, &v| m.max(v as f64));
    let s: f64 = logits.iter().map(|&v| (v as f64 - m).exp()).sum();
    m + s.ln() - logits[y] as f64
}

fn cosine(a: &[f32], b: &[f64]) -> f64 {
    let dot: f64 = a.iter().zip(b).map(|(x, y)| *x as f64 * y).sum();
    let na: f64 = a.iter().map(|x| (*x as f64).powi(2)).sum::<f64>().sqrt();
    let nb: f64 = b.iter().map(|x| x * x).sum::<f64>().sqrt();
    dot / (na * nb)
}

#[test]
fn float_input_gradients_equal_finite_differences() {
    for (arch, seed, head) in [
        (Architecture::Mlp, 1, LogitsLayer::BatchNorm),
        (Architecture::Cnn, 2, LogitsLayer::BatchNorm),
        (Architecture::Tiny10, 3, LogitsLayer::BatchNorm),
        (Architecture::Mlp, 4, LogitsLayer::Linear),
        (Architecture::Tiny10, 5, LogitsLayer::Linear),
    ] {
        let net = net_with(arch, Precision::Float, seed, head);
        let mut c = Classifier::new(&net).unwrap();
        let (x, y) = examples(&net, 3, seed + 100);
        let (logits, g) = c.logits_and_gradients(x.view(), &y).unwrap();
        let plain = c.logits(x.view()).unwrap();
        assert_eq!(logits, plain, "{arch:?}: logits of the gradient pass");
        let h = 2e-3f32;
        for r in 0..x.nrows() {
            let fd: Vec<f64> = (0..x.ncols())
                .map(|j| {
                    let mut xp = x.row(r).to_owned().insert_axis(ndarray::Axis(0));
                    let mut xm = xp.clone();
                    xp[[0, j]] += h;
                    xm[[0, j]] -= h;
                    let lp = ce(
                        c.logits(xp.view()).unwrap().row(0).as_slice().unwrap(),
                        y[r],
                    );
                    let lm = ce(
                        c.logits(xm.view()).unwrap().row(0).as_slice().unwrap(),
                        y[r],
                    );
                    (lp - lm) / (2.0 * h as f64)
                })
                .collect();
            let gr = g.row(r).to_vec();
            let cos = cosine(&gr, &fd);
            assert!(cos > 0.995, "{arch:?} row {r}: cosine {cos}");
            let (na, nb) = (
                Norm::L2.of(&gr),
                fd.iter().map(|v| v * v).sum::<f64>().sqrt(),
            );
            assert!(
                (na / nb - 1.0).abs() < 0.03,
                "{arch:?} row {r}: norms {na} vs {nb}"
            );
        }
    }
}

/// candle's autograd of the same network from its 8-bit input: the straight-through
/// estimators of the tensor implementation, times 255 for the input's rounding.
fn candle_input_gradient(net: &mut Net, x: &Array2<f32>, y: &[usize]) -> Vec<f32> {
    let s = net.config.input_shape.clone();
    let ints: Vec<f32> = x.iter().map(|v| (v * 255.0).round()).collect();
    let t = Tensor::from_vec(ints, (x.nrows(), s[0], s[1], s[2]), &Device::Cpu).unwrap();
    let v = Var::from_tensor(&t).unwrap();
    let f = net.forward_prepared(v.as_tensor().clone(), false).unwrap();
    let yt = Tensor::from_vec(
        y.iter().map(|&c| c as u32).collect::<Vec<_>>(),
        y.len(),
        &Device::Cpu,
    )
    .unwrap();
    // The sum of per-example losses: each example's gradient is its own loss's.
    let loss = (candle_nn::loss::cross_entropy(&f.logits, &yt).unwrap() * y.len() as f64).unwrap();
    let g = loss.backward().unwrap();
    let gx = g.get(v.as_tensor()).unwrap().flatten_all().unwrap();
    gx.to_vec1::<f32>()
        .unwrap()
        .iter()
        .map(|v| v * 255.0)
        .collect()
}

#[test]
fn quantized_input_gradients_are_the_straight_through_ones() {
    for arch in [Architecture::Mlp, Architecture::Tiny10] {
        for p in [Precision::W1A1, Precision::W2A2, Precision::W4A4] {
            let mut net = net(arch, p, 11);
            let mut c = Classifier::new(&net).unwrap();
            let (x, y) = examples(&net, 4, 12);
            let (_, g) = c.logits_and_gradients(x.view(), &y).unwrap();
            let reference = candle_input_gradient(&mut net, &x, &y);
            let scale = reference.iter().fold(0f32, |m, v| m.max(v.abs())).max(1e-3);
            for (k, (a, b)) in g.iter().zip(&reference).enumerate() {
                assert!(
                    (a - b).abs() <= 1e-3 * scale,
                    "{arch:?} {p:?} value {k}: {a} vs {b}"
                );
            }
        }
    }
}

#[test]
fn fgsm_is_the_clipped_sign_step() {
    let net = net(Architecture::Cnn, Precision::Float, 5);
    let mut c = Classifier::new(&net).unwrap();
    let (x, y) = examples(&net, 5, 6);
    let (_, g) = c.logits_and_gradients(x.view(), &y).unwrap();
    for eps in [0.0f32, 0.03, 0.3] {
        let a = Attack {
            method: Method::Fgsm,
            norm: Norm::Linf,
            eps,
            range: (0.0, 1.0),
            seed: 0,
            stop_at_success: true,
        };
        let adv = run(&mut c, x.view(), &y, &Goal::Untargeted, &a).unwrap();
        for ((v, x0), d) in adv.iter().zip(x.iter()).zip(g.iter()) {
            let s = if *d > 0.0 {
                1.0
            } else if *d < 0.0 {
                -1.0
            } else {
                0.0
            };
            assert_eq!(*v, (x0 + eps * s).clamp(0.0, 1.0));
        }
        // Targeted: a step down the target's loss.
        let t = random_targets(&y, 4, 3);
        let (_, gt) = c.logits_and_gradients(x.view(), &t).unwrap();
        let adv = run(&mut c, x.view(), &y, &Goal::Targeted(t.clone()), &a).unwrap();
        for ((v, x0), d) in adv.iter().zip(x.iter()).zip(gt.iter()) {
            let s = if *d > 0.0 {
                -1.0
            } else if *d < 0.0 {
                1.0
            } else {
                0.0
            };
            assert_eq!(*v, (x0 + eps * s).clamp(0.0, 1.0));
        }
    }
}

#[test]
fn fgsm_raises_the_loss_for_a_small_step() {
    // The first-order promise FGSM rests on, checked on the network's own loss.
    let net = net(Architecture::Mlp, Precision::Float, 8);
    let mut c = Classifier::new(&net).unwrap();
    let (x, y) = examples(&net, 8, 9);
    let a = Attack {
        method: Method::Fgsm,
        norm: Norm::Linf,
        eps: 1e-3,
        range: (-10.0, 10.0),
        seed: 0,
        stop_at_success: true,
    };
    let adv = run(&mut c, x.view(), &y, &Goal::Untargeted, &a).unwrap();
    let (l0, l1) = (c.logits(x.view()).unwrap(), c.logits(adv.view()).unwrap());
    for r in 0..x.nrows() {
        let (a, b) = (
            ce(l0.row(r).as_slice().unwrap(), y[r]),
            ce(l1.row(r).as_slice().unwrap(), y[r]),
        );
        assert!(b > a, "row {r}: loss {a} -> {b}");
    }
}

/// Softmax regression `logits = x W + b`: its input gradient in closed form.
struct Linear {
    w: Array2<f64>,
    b: Vec<f64>,
}

impl Linear {
    fn logits64(&self, x: &[f32]) -> Vec<f64> {
        (0..self.w.ncols())
            .map(|k| {
                self.b[k]
                    + x.iter()
                        .zip(self.w.column(k))
                        .map(|(a, w)| *a as f64 * w)
                        .sum::<f64>()
            })
            .collect()
    }

    /// The smallest L2 distance from `x` to a point classified otherwise than its current
    /// class c: `min over k != c of (f_c - f_k) / ‖w_c - w_k‖` (the nearest decision boundary).
    fn distance_to_boundary(&self, x: &[f32]) -> f64 {
        let f = self.logits64(x);
        let c = (0..f.len()).fold(0, |b, k| if f[k] > f[b] { k } else { b });
        (0..f.len())
            .filter(|&k| k != c)
            .map(|k| {
                let d = &self.w.column(c) - &self.w.column(k);
                (f[c] - f[k]) / d.iter().map(|v| v * v).sum::<f64>().sqrt()
            })
            .fold(f64::INFINITY, f64::min)
    }
}

impl InputGradient for Linear {
    fn input_len(&self) -> usize {
        self.w.nrows()
    }
    fn classes(&self) -> usize {
        self.w.ncols()
    }
    fn logits_and_gradients(
        &mut self,
        x: ArrayView2<'_, f32>,
        labels: &[usize],
    ) -> Result<(Array2<f32>, Array2<f32>), NnError> {
        let (n, d, k) = (x.nrows(), self.w.nrows(), self.w.ncols());
        let mut logits = Array2::zeros((n, k));
        let mut g = Array2::zeros((n, d));
        for r in 0..n {
            let f = self.logits64(&x.row(r).to_vec());
            let m = f.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
            let s: f64 = f.iter().map(|v| (v - m).exp()).sum();
            for j in 0..k {
                logits[[r, j]] = f[j] as f32;
            }
            for i in 0..d {
                let v: f64 = (0..k)
                    .map(|j| {
                        let p = (f[j] - m).exp() / s - if j == labels[r] { 1.0 } else { 0.0 };
                        self.w[[i, j]] * p
                    })
                    .sum();
                g[[r, i]] = v as f32;
            }
        }
        Ok((logits, g))
    }
    fn logits(&mut self, x: ArrayView2<'_, f32>) -> Result<Array2<f32>, NnError> {
        let y = vec![0; x.nrows()];
        Ok(self.logits_and_gradients(x, &y)?.0)
    }
}

#[test]
fn pgd_finds_the_nearest_boundary_of_a_linear_classifier() {
    let mut rng = Rng::new(42);
    let (d, k, n) = (20, 2, 12);
    let mut lin = Linear {
        w: Array2::from_shape_fn((d, k), |_| rng.normal()),
        b: (0..k).map(|_| rng.normal() * 0.1).collect(),
    };
    let x = Array2::from_shape_fn((n, d), |_| (rng.normal() * 0.5) as f32);
    let y: Vec<usize> = (0..n)
        .map(|r| {
            let f = lin.logits64(x.row(r).as_slice().unwrap());
            (0..k).fold(0, |b, j| if f[j] > f[b] { j } else { b })
        })
        .collect();
    for r in 0..n {
        let dist = lin.distance_to_boundary(x.row(r).as_slice().unwrap());
        let xr = x.row(r).to_owned().insert_axis(ndarray::Axis(0));
        let attack = |eps: f64| Attack {
            method: Method::Pgd {
                steps: 50,
                step_size: (eps / 10.0) as f32,
            },
            norm: Norm::L2,
            eps: eps as f32,
            range: (-100.0, 100.0),
            seed: r as u64,
            stop_at_success: true,
        };
        let flipped = |lin: &mut Linear, eps: f64| {
            let adv = run(
                lin,
                xr.view(),
                &y[r..r + 1],
                &Goal::Untargeted,
                &attack(eps),
            )
            .unwrap();
            let f = lin.logits64(adv.row(0).as_slice().unwrap());
            let p = (0..k).fold(0, |b, j| if f[j] > f[b] { j } else { b });
            let moved = Norm::L2.of(&(&adv.row(0) - &xr.row(0)).to_vec());
            assert!(
                moved <= eps * (1.0 + 1e-5),
                "row {r}: moved {moved} > eps {eps}"
            );
            p != y[r]
        };
        // Just beyond the boundary PGD crosses it; short of it nothing can.
        assert!(
            flipped(&mut lin, dist * 1.03),
            "row {r}: not flipped at 1.03 x {dist}"
        );
        assert!(
            !flipped(&mut lin, dist * 0.97),
            "row {r}: flipped at 0.97 x {dist}"
        );
    }
}

#[test]
fn budgets_and_range_hold_and_eps_zero_is_the_identity() {
    let net = net(Architecture::Mlp, Precision::W1A1, 21);
    let mut c = Classifier::new(&net).unwrap();
    let (x, y) = examples(&net, 6, 22);
    for norm in [Norm::Linf, Norm::L2] {
        for method in [
            Method::Fgsm,
            Method::Pgd {
                steps: 7,
                step_size: 0.05,
            },
        ] {
            for (eps, stop_at_success) in [(0.0f32, true), (0.1, true), (0.1, false), (2.0, false)]
            {
                let a = Attack {
                    method,
                    norm,
                    eps,
                    range: (0.0, 1.0),
                    seed: 9,
                    stop_at_success,
                };
                let adv = run(&mut c, x.view(), &y, &Goal::Untargeted, &a).unwrap();
                if eps == 0.0 {
                    assert_eq!(adv, x);
                }
                for r in 0..x.nrows() {
                    let d = (&adv.row(r) - &x.row(r)).to_vec();
                    assert!(
                        norm.of(&d) <= eps as f64 * (1.0 + 1e-5) + 1e-6,
                        "{norm:?} {method:?}"
                    );
                }
                assert!(adv.iter().all(|v| (0.0..=1.0).contains(v)));
                // A seed fixes the result.
                let again = run(&mut c, x.view(), &y, &Goal::Untargeted, &a).unwrap();
                assert_eq!(adv, again);
            }
        }
    }
}

#[test]
fn bad_inputs_are_errors() {
    let net = net(Architecture::Mlp, Precision::Float, 1);
    let mut c = Classifier::new(&net).unwrap();
    let (mut x, y) = examples(&net, 2, 2);
    let ok = Attack {
        method: Method::Fgsm,
        norm: Norm::Linf,
        eps: 0.1,
        range: (0.0, 1.0),
        seed: 0,
        stop_at_success: true,
    };
    let bad = [
        Attack {
            eps: -0.1,
            ..ok.clone()
        },
        Attack {
            eps: f32::NAN,
            ..ok.clone()
        },
        Attack {
            range: (1.0, 0.0),
            ..ok.clone()
        },
        Attack {
            method: Method::Pgd {
                steps: 0,
                step_size: 0.1,
            },
            ..ok.clone()
        },
        Attack {
            method: Method::Pgd {
                steps: 3,
                step_size: 0.0,
            },
            ..ok.clone()
        },
    ];
    for a in bad {
        assert!(
            run(&mut c, x.view(), &y, &Goal::Untargeted, &a).is_err(),
            "{a:?}"
        );
    }
    assert!(run(&mut c, x.view(), &y[..1], &Goal::Untargeted, &ok).is_err());
    assert!(run(&mut c, x.view(), &y, &Goal::Targeted(vec![0]), &ok).is_err());
    assert!(c.logits_and_gradients(x.view(), &[0, 9]).is_err());
    x[[0, 0]] = f32::NAN;
    assert!(run(&mut c, x.view(), &y, &Goal::Untargeted, &ok).is_err());
    let wrong = Array2::<f32>::zeros((2, 5));
    assert!(c.logits(wrong.view()).is_err());
}

#[test]
fn random_targets_differ_from_labels_and_cover_the_others() {
    let labels: Vec<usize> = (0..1000).map(|i| i % 10).collect();
    let t = random_targets(&labels, 10, 1);
    assert!(t.iter().zip(&labels).all(|(a, b)| a != b && *a < 10));
    let mut seen = [false; 10];
    t.iter().for_each(|&v| seen[v] = true);
    assert!(seen.iter().all(|&s| s));
    assert_eq!(t, random_targets(&labels, 10, 1));
}
