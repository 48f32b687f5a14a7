//! A small binary classifier (one hidden ReLU layer, logistic output, Adam), in f64 and plain
//! Rust: Shokri et al.'s attack models are this small, and keeping them out of candle keeps
//! strata-privacy independent of the network crate.
//!
//! The rows are one flat row-major array, and the first layer's weights are stored by input
//! feature (`d x h`), so that the forward and backward passes run over the hidden units in
//! contiguous, vectorizable loops. Each weight still sees its floating-point operations in the
//! order of the textbook loop (per hidden unit, the sum over features from the first; per
//! weight, the gradient summed over a batch's rows in order), so the fitted model does not
//! depend on the layout.

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
    /// First-layer weights by input feature (`d x h`: weight `(j, k)` of hidden unit `j` and
    /// feature `k` at `k * h + j`), then `h` biases, then `h` output weights, then the output
    /// bias.
    params: Vec<f64>,
    mean: Vec<f64>,
    sd: Vec<f64>,
}

/// Rows whose forward and backward passes share one pass over the weights in training.
const BLOCK: usize = 4;

/// Buffers of one forward pass.
struct Scratch {
    /// Hidden pre-activations, then activations.
    hidden: Vec<f64>,
    /// The standardized row.
    x: Vec<f64>,
}

impl BinaryMlp {
    /// Fit on rows `x` (all of length `d`) with labels `y`.
    pub fn fit(x: &[Vec<f64>], y: &[bool], cfg: &MlpConfig) -> BinaryMlp {
        let d = x.first().map_or(0, |r| r.len());
        let flat: Vec<f64> = x
            .iter()
            .flat_map(|r| (0..d).map(|k| r.get(k).copied().unwrap_or(0.0)))
            .collect();
        Self::fit_rows(&flat, d, &y[..y.len().min(x.len())], cfg)
    }

    /// Fit on row-major `n x d` rows `x` with labels `y` (`n = y.len()`; rows beyond
    /// `x.len() / d` are not there and are not used).
    pub fn fit_rows(x: &[f64], d: usize, y: &[bool], cfg: &MlpConfig) -> BinaryMlp {
        let n = y.len().min(x.len().checked_div(d).unwrap_or(usize::MAX));
        let x = &x[..n * d];
        let mut mean = vec![0.0; d];
        let mut sd = vec![0.0; d];
        for r in x.chunks_exact(d.max(1)) {
            for (m, v) in mean.iter_mut().zip(r) {
                *m += v / n.max(1) as f64;
            }
        }
        for r in x.chunks_exact(d.max(1)) {
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
        // Drawn hidden unit by hidden unit, as for an `h x d` layout.
        for j in 0..h {
            for k in 0..d {
                params[k * h + j] = rng.normal() * s1;
            }
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
        let mut xs = vec![0.0; n * d];
        for (r, s) in x.chunks_exact(d.max(1)).zip(xs.chunks_exact_mut(d.max(1))) {
            model.standardize(r, s);
        }
        let np = model.params.len();
        let (mut m1, mut m2) = (vec![0.0; np], vec![0.0; np]);
        let (b1, b2, eps) = (0.9, 0.999, 1e-8);
        let mut step = 0;
        let mut order: Vec<usize> = (0..n).collect();
        let mut grad = vec![0.0; np];
        let mut hidden = vec![0.0; h];
        let mut dh = vec![0.0; h];
        let mut hidden_block = vec![0.0; BLOCK * h];
        let mut dh_block = vec![0.0; BLOCK * h];
        for _ in 0..cfg.epochs {
            for i in (1..n).rev() {
                order.swap(i, rng.below(i as u64 + 1) as usize);
            }
            for chunk in order.chunks(cfg.batch_size.max(1)) {
                grad.iter_mut().for_each(|g| *g = 0.0);
                let mut blocks = chunk.chunks_exact(BLOCK);
                for block in &mut blocks {
                    let rows: [&[f64]; BLOCK] =
                        std::array::from_fn(|r| &xs[block[r] * d..(block[r] + 1) * d]);
                    let z = model.forward_block(rows, &mut hidden_block);
                    let dz: [f64; BLOCK] = std::array::from_fn(|r| {
                        (sigmoid(z[r]) - f64::from(u8::from(y[block[r]]))) / chunk.len() as f64
                    });
                    model.backward_block(rows, dz, &hidden_block, &mut dh_block, &mut grad);
                }
                for &i in blocks.remainder() {
                    let xi = &xs[i * d..(i + 1) * d];
                    let z = model.forward(xi, &mut hidden);
                    // d(BCE with logits)/dz = sigmoid(z) - y.
                    let dz = (sigmoid(z) - f64::from(u8::from(y[i]))) / chunk.len() as f64;
                    model.backward_block([xi], [dz], &hidden, &mut dh, &mut grad);
                }
                step += 1;
                let c1 = 1.0 - f64::powi(b1, step);
                let c2 = 1.0 - f64::powi(b2, step);
                for (((p, a), b), &g) in model
                    .params
                    .iter_mut()
                    .zip(m1.iter_mut())
                    .zip(m2.iter_mut())
                    .zip(&grad)
                {
                    *a = b1 * *a + (1.0 - b1) * g;
                    *b = b2 * *b + (1.0 - b2) * g * g;
                    *p -= cfg.lr * (*a / c1) / ((*b / c2).sqrt() + eps);
                }
            }
        }
        model
    }

    /// Number of input features.
    pub fn features(&self) -> usize {
        self.d
    }

    fn standardize(&self, r: &[f64], out: &mut [f64]) {
        for (((o, v), m), s) in out.iter_mut().zip(r).zip(&self.mean).zip(&self.sd) {
            *o = (v - m) / s;
        }
    }

    /// The logit of a standardized row; `hidden` (length `h`) receives the activations.
    fn forward(&self, x: &[f64], hidden: &mut [f64]) -> f64 {
        self.forward_block([x], hidden)[0]
    }

    /// The logits of `B` standardized rows under the same weights; `hidden` (`B x h`)
    /// receives their activations. Each row's arithmetic is that of the textbook loop: per
    /// hidden unit `b_j + sum_k w_jk x_k` with the sum taken as `Iterator::sum` takes it, term by
    /// term in feature order, then `z = b + sum_j v_j relu_j` in unit order. The rows only share
    /// the passes over the weights, and their `B` chains of additions overlap.
    fn forward_block<const B: usize>(&self, x: [&[f64]; B], hidden: &mut [f64]) -> [f64; B] {
        let (d, h) = (self.d, self.h);
        let hidden = &mut hidden[..B * h];
        let start: f64 = std::iter::empty::<f64>().sum();
        hidden.iter_mut().for_each(|a| *a = start);
        for (k, w_k) in self.params[..h * d].chunks_exact(h).enumerate() {
            for (a_r, x_r) in hidden.chunks_exact_mut(h).zip(&x) {
                let v = x_r[k];
                for (a, &w) in a_r.iter_mut().zip(w_k) {
                    *a += w * v;
                }
            }
        }
        let bias = &self.params[h * d..h * d + h];
        let w2 = &self.params[h * d + h..h * d + 2 * h];
        let mut z = [self.params[h * d + 2 * h]; B];
        for (j, (&b, &w)) in bias.iter().zip(w2).enumerate() {
            for (r, z_r) in z.iter_mut().enumerate() {
                let a = &mut hidden[r * h + j];
                *a = (b + *a).max(0.0);
                *z_r += w * *a;
            }
        }
        z
    }

    /// Add the gradients of `B` rows' losses (`dz[r]`: d loss / d logit of row `r`; `hidden`:
    /// their activations) to `grad`, each entry's terms in row order. `dh` (`B x h`) is scratch.
    /// Only active units pass gradient back: an inactive unit's entries get `+ 0 * v` instead of
    /// being skipped, which changes nothing: an entry starts at +0 and a sum is -0 only when
    /// both its terms are, so no entry is ever -0, and adding +-0 leaves any other value as it is.
    fn backward_block<const B: usize>(
        &self,
        x: [&[f64]; B],
        dz: [f64; B],
        hidden: &[f64],
        dh: &mut [f64],
        grad: &mut [f64],
    ) {
        let (d, h) = (self.d, self.h);
        let w2 = &self.params[h * d + h..h * d + 2 * h];
        let (g_w, g_rest) = grad.split_at_mut(h * d);
        let (g_b, g_rest) = g_rest.split_at_mut(h);
        let (g_w2, g_out) = g_rest.split_at_mut(h);
        let (hidden, dh) = (&hidden[..B * h], &mut dh[..B * h]);
        for (r, (a_r, dh_r)) in hidden
            .chunks_exact(h)
            .zip(dh.chunks_exact_mut(h))
            .enumerate()
        {
            for ((g, &a), (e, &w)) in g_w2.iter_mut().zip(a_r).zip(dh_r.iter_mut().zip(w2)) {
                *g += dz[r] * a;
                *e = if a > 0.0 { dz[r] * w } else { 0.0 };
            }
        }
        for (j, g) in g_b.iter_mut().enumerate() {
            for r in 0..B {
                *g += dh[r * h + j];
            }
        }
        for (k, g_k) in g_w.chunks_exact_mut(h).enumerate() {
            let v: [f64; B] = std::array::from_fn(|r| x[r][k]);
            for (j, g) in g_k.iter_mut().enumerate() {
                let mut acc = *g;
                for r in 0..B {
                    acc += dh[r * h + j] * v[r];
                }
                *g = acc;
            }
        }
        for dz in dz {
            g_out[0] += dz;
        }
    }

    fn scratch(&self) -> Scratch {
        Scratch {
            hidden: vec![0.0; self.h],
            x: vec![0.0; self.d],
        }
    }

    fn logit_in(&self, x: &[f64], s: &mut Scratch) -> f64 {
        self.standardize(x, &mut s.x);
        self.forward(&s.x, &mut s.hidden)
    }

    /// The model's logit (log-odds of "member") for one row of raw features.
    pub fn logit(&self, x: &[f64]) -> f64 {
        let mut s = self.scratch();
        self.logit_in(x, &mut s)
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
