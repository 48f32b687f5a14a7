//! A small binary classifier (one hidden ReLU layer, logistic output, Adam), in f64 and plain
//! Rust: Shokri et al.'s attack models are this small, and keeping them out of candle keeps
//! strata-privacy independent of the network crate.

use strata_data::rng::Rng;

/// Training settings of an attack model.
#[derive(Clone, Copy, Debug)]
pub struct MlpConfig {
    /// Units in the hidden ReLU layer.
    pub hidden: usize,
    /// Passes over the training rows.
    pub epochs: usize,
    /// Rows per Adam step.
    pub batch_size: usize,
    /// Adam's learning rate.
    pub lr: f64,
    /// Seed of the initial weights and of the batch order.
    pub seed: u64,
}

impl Default for MlpConfig {
    fn default() -> Self {
        MlpConfig {
            hidden: 64,
            epochs: 40,
            batch_size: 64,
            lr: 1e-3,
            seed: 0,
        }
    }
}

/// A fitted binary MLP, with the feature standardization it was trained under.
#[derive(Clone, Debug)]
pub struct BinaryMlp {
    d: usize,
    h: usize,
    /// `h x d`, then `h` biases, then `h` output weights, then the output bias.
    params: Vec<f64>,
    mean: Vec<f64>,
    sd: Vec<f64>,
}

impl BinaryMlp {
    /// Fit on rows `x` (all of length `d`) with labels `y`.
    pub fn fit(x: &[Vec<f64>], y: &[bool], cfg: &MlpConfig) -> BinaryMlp {
        let d = x.first().map_or(0, |r| r.len());
        let n = x.len();
        let mut mean = vec![0.0; d];
        let mut sd = vec![0.0; d];
        for r in x {
            for (m, v) in mean.iter_mut().zip(r) {
                *m += v / n.max(1) as f64;
            }
        }
        for r in x {
            for ((s, m), v) in sd.iter_mut().zip(&mean).zip(r) {
                *s += (v - m) * (v - m) / n.max(1) as f64;
            }
        }
        for s in &mut sd {
            // A constant feature is left centred but unscaled.
            *s = if s.sqrt() > 1e-12 { s.sqrt() } else { 1.0 };
        }
        let h = cfg.hidden.max(1);
        let mut rng = Rng::new(cfg.seed);
        let mut params = vec![0.0; h * d + 2 * h + 1];
        let s1 = (2.0 / d.max(1) as f64).sqrt();
        for p in &mut params[..h * d] {
            *p = rng.normal() * s1;
        }
        let s2 = (1.0 / h as f64).sqrt();
        for p in &mut params[h * d + h..h * d + 2 * h] {
            *p = rng.normal() * s2;
        }
        let mut model = BinaryMlp {
            d,
            h,
            params,
            mean,
            sd,
        };
        let xs: Vec<Vec<f64>> = x.iter().map(|r| model.standardize(r)).collect();
        let np = model.params.len();
        let (mut m1, mut m2) = (vec![0.0; np], vec![0.0; np]);
        let (b1, b2, eps) = (0.9, 0.999, 1e-8);
        let mut step = 0;
        let mut order: Vec<usize> = (0..n).collect();
        let mut grad = vec![0.0; np];
        let mut hidden = vec![0.0; h];
        for _ in 0..cfg.epochs {
            for i in (1..n).rev() {
                order.swap(i, rng.below(i as u64 + 1) as usize);
            }
            for chunk in order.chunks(cfg.batch_size.max(1)) {
                grad.iter_mut().for_each(|g| *g = 0.0);
                for &i in chunk {
                    let z = model.forward(&xs[i], &mut hidden);
                    // d(BCE with logits)/dz = sigmoid(z) - y.
                    let dz = (sigmoid(z) - f64::from(u8::from(y[i]))) / chunk.len() as f64;
                    let w2 = &model.params[h * d + h..h * d + 2 * h];
                    for j in 0..h {
                        grad[h * d + h + j] += dz * hidden[j];
                        if hidden[j] > 0.0 {
                            let dh = dz * w2[j];
                            grad[h * d + j] += dh;
                            for (g, v) in grad[j * d..(j + 1) * d].iter_mut().zip(&xs[i]) {
                                *g += dh * v;
                            }
                        }
                    }
                    grad[np - 1] += dz;
                }
                step += 1;
                let c1 = 1.0 - f64::powi(b1, step);
                let c2 = 1.0 - f64::powi(b2, step);
                for k in 0..np {
                    m1[k] = b1 * m1[k] + (1.0 - b1) * grad[k];
                    m2[k] = b2 * m2[k] + (1.0 - b2) * grad[k] * grad[k];
                    model.params[k] -= cfg.lr * (m1[k] / c1) / ((m2[k] / c2).sqrt() + eps);
                }
            }
        }
        model
    }

    fn standardize(&self, r: &[f64]) -> Vec<f64> {
        r.iter()
            .zip(&self.mean)
            .zip(&self.sd)
            .map(|((v, m), s)| (v - m) / s)
            .collect()
    }

    fn forward(&self, x: &[f64], hidden: &mut [f64]) -> f64 {
        let (d, h) = (self.d, self.h);
        let w2 = &self.params[h * d + h..h * d + 2 * h];
        let mut z = self.params[h * d + 2 * h];
        for j in 0..h {
            let w = &self.params[j * d..(j + 1) * d];
            let a = self.params[h * d + j] + w.iter().zip(x).map(|(a, b)| a * b).sum::<f64>();
            hidden[j] = a.max(0.0);
            z += w2[j] * hidden[j];
        }
        z
    }

    /// The model's logit (log-odds of "member") for one row of raw features.
    pub fn logit(&self, x: &[f64]) -> f64 {
        let mut hidden = vec![0.0; self.h];
        self.forward(&self.standardize(x), &mut hidden)
    }
}

fn sigmoid(z: f64) -> f64 {
    if z >= 0.0 {
        1.0 / (1.0 + (-z).exp())
    } else {
        let e = z.exp();
        e / (1.0 + e)
    }
}
