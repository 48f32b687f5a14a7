//! Cost of the analytic (moments) permutation null of linear CKA against one all-pairs CKA
//! matrix, measured in the same process: `cargo run --release -p strata-sim --example
//! moments_cost [n]` (default n = 5000; 4 + 4 layers of widths 256, 512, 1024, 2048).
#![allow(clippy::unwrap_used)] // a benchmark: a failure should stop it where it happened

use ndarray::{Array2, ArrayView2};
use std::time::Instant;
use strata_data::rng::Rng;
use strata_sim::{cka_all_pairs, cka_null_moments_all_pairs, Estimator, Kernel};

fn main() {
    let n: usize = std::env::args()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(5000);
    let widths = [256, 512, 1024, 2048];
    let mut r = Rng::new(1);
    let a: Vec<Array2<f32>> = widths.iter().map(|&p| r.normal_matrix(n, p)).collect();
    let b: Vec<Array2<f32>> = widths.iter().map(|&p| r.normal_matrix(n, p)).collect();
    let (va, vb): (Vec<ArrayView2<f32>>, Vec<ArrayView2<f32>>) = (
        a.iter().map(|x| x.view()).collect(),
        b.iter().map(|x| x.view()).collect(),
    );
    println!(
        "n = {n}, widths {widths:?} x 2, {} threads",
        rayon::current_num_threads()
    );
    for round in 0..2 {
        let t = Instant::now();
        let m = cka_all_pairs(
            a.clone(),
            Some(b.clone()),
            Kernel::Linear,
            Estimator::Biased,
            &|_, _| {},
        )
        .unwrap();
        let matrix = t.elapsed().as_secs_f64();
        let t = Instant::now();
        let null = cka_null_moments_all_pairs(
            &va,
            Some(&vb),
            Kernel::Linear,
            Estimator::Biased,
            &|_, _| {},
        )
        .unwrap();
        let moments = t.elapsed().as_secs_f64();
        let c = null.cells[3][3].as_ref().unwrap();
        println!(
            "round {round}: matrix {matrix:.2} s; moments null (matrix included) {moments:.2} s; \
             ratio {:.2}; cell (3,3): cka {:.4} (matrix {:.4}), null mean {:.4}, sd {:.2e}, \
             skewness {:.3}, p {:.3}",
            moments / matrix,
            c.observed,
            m.values[3][3].unwrap(),
            c.null_mean,
            c.null_sd,
            c.null_skewness.unwrap_or(f64::NAN),
            c.p_value
        );
    }
}
