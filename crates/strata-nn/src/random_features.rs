use ndarray::{Array1, Array2, ArrayView2, Axis};
use strata_data::rng::Rng;

/// A multilayer perceptron with fixed random weights: `h_{k+1} = relu(h_k W_k + b_k)`, weights
/// drawn N(0, 2/fan_in) (He et al. 2015) so activations keep their scale with depth.
#[derive(Clone, Debug)]
pub struct RandomFeatureMlp {
    weights: Vec<Array2<f32>>,
    biases: Vec<Array1<f32>>,
    names: Vec<String>,
}

impl RandomFeatureMlp {
    /// `input` features in, one hidden layer per entry of `widths`, weights fixed by `seed`.
    pub fn new(input: usize, widths: &[usize], seed: u64) -> Self {
        let mut rng = Rng::new(seed);
        let mut fan_in = input;
        let mut weights = Vec::new();
        let mut biases = Vec::new();
        for &w in widths {
            let std = (2.0 / fan_in as f64).sqrt() as f32;
            weights.push(rng.normal_matrix(fan_in, w).mapv(|v| v * std));
            biases.push(Array1::from_shape_fn(w, |_| rng.normal() as f32 * 0.1));
            fan_in = w;
        }
        let names = (1..=widths.len()).map(|i| format!("fc{i}")).collect();
        RandomFeatureMlp {
            weights,
            biases,
            names,
        }
    }

    /// Layer names, input side first (`fc1`, `fc2`, ...).
    pub fn layer_names(&self) -> &[String] {
        &self.names
    }

    /// Widths of the hidden layers.
    pub fn widths(&self) -> Vec<usize> {
        self.weights.iter().map(|w| w.ncols()).collect()
    }

    /// Post-ReLU activations of every layer for a batch `x` (`rows x input`).
    pub fn forward(&self, x: ArrayView2<f32>) -> Vec<Array2<f32>> {
        let mut h = x.to_owned();
        let mut out = Vec::with_capacity(self.weights.len());
        for (w, b) in self.weights.iter().zip(&self.biases) {
            let mut z = h.dot(w);
            z += &b.view().insert_axis(Axis(0));
            z.mapv_inplace(|v| v.max(0.0));
            out.push(z.clone());
            h = z;
        }
        out
    }
}

/// Standardize each column to mean 0, variance 1 (constant columns become 0).
pub fn standardize(x: &Array2<f32>) -> Array2<f32> {
    let n = x.nrows() as f64;
    let mut out = x.clone();
    for mut col in out.columns_mut() {
        let mean = col.iter().map(|&v| v as f64).sum::<f64>() / n;
        let var = col.iter().map(|&v| (v as f64 - mean).powi(2)).sum::<f64>() / n;
        let sd = var.sqrt();
        col.mapv_inplace(|v| {
            if sd > 0.0 {
                ((v as f64 - mean) / sd) as f32
            } else {
                0.0
            }
        });
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn forward_matches_a_direct_computation_and_seed_fixes_weights() {
        let net = RandomFeatureMlp::new(3, &[4, 2], 9);
        let again = RandomFeatureMlp::new(3, &[4, 2], 9);
        let other = RandomFeatureMlp::new(3, &[4, 2], 10);
        assert_eq!(net.weights, again.weights);
        assert_ne!(net.weights, other.weights);
        let x = Array2::from_shape_vec((2, 3), vec![1.0, -2.0, 0.5, 0.0, 3.0, -1.0]).unwrap();
        let acts = net.forward(x.view());
        assert_eq!(acts.len(), 2);
        for r in 0..2 {
            for j in 0..4 {
                let z: f32 = (0..3)
                    .map(|k| x[[r, k]] * net.weights[0][[k, j]])
                    .sum::<f32>()
                    + net.biases[0][j];
                assert!((acts[0][[r, j]] - z.max(0.0)).abs() < 1e-6);
            }
        }
        let s = standardize(
            &Array2::from_shape_vec((3, 2), vec![1.0, 5.0, 2.0, 5.0, 3.0, 5.0]).unwrap(),
        );
        assert!((s[[0, 0]] + 1.2247449).abs() < 1e-5 && s.column(1).iter().all(|&v| v == 0.0));
    }
}
