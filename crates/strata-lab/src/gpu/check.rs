//! The GPU paths against the CPU on random inputs of awkward sizes (no size a multiple of any
//! tile): `strata gpu check`, and the `gpu` integration test on machines that have a GPU.

use serde::Serialize;
use std::sync::Arc;
use strata_data::rng::Rng;
use strata_gpu::{Gpu, GpuBinaryGemm, GpuError, GpuHsic};
use strata_nn::binary_gemm::{binary_gemm, BitMatrix};
use strata_sim::{cka_all_pairs_on, CkaMatrix, Cpu, Estimator, HsicBackend, Kernel};

/// CKA may differ from the CPU by f32 rounding only: this relative bound.
pub const CKA_TOLERANCE: f64 = 1e-5;

/// Below this CKA the relative difference is taken against this value instead. A CKA near 0
/// (independent layers under the debiased estimator) is a difference of nearly equal terms,
/// so its f32 rounding is absolute, about 1e-9 of the unit scale, whatever its value: a CKA of
/// 1.3e-4 that the GPU gives as 1.3e-4 + 1.6e-9 is 1.2e-5 "relative" (seen on the emulated
/// device). Above 0.01 the bound is truly relative; below, it is 1e-7 absolute.
pub const CKA_RELATIVE_FLOOR: f64 = 0.01;

/// One comparison.
#[derive(Clone, Debug, Serialize)]
pub struct CheckLine {
    /// What was compared.
    pub what: String,
    /// Largest difference: absolute for integers, relative for CKA (for uploads, a count of
    /// wrong values).
    pub max_diff: f64,
    /// Whether the difference is within the bound.
    pub ok: bool,
}

/// Everything `strata gpu check` compared.
#[derive(Clone, Debug, Serialize)]
pub struct CheckReport {
    /// The GPU's label (`cuda:N NAME (sm_XY)`).
    pub device: String,
    /// Seed of the random inputs.
    pub seed: u64,
    /// One line per comparison.
    pub lines: Vec<CheckLine>,
}

impl CheckReport {
    /// Whether every comparison passed.
    pub fn ok(&self) -> bool {
        self.lines.iter().all(|l| l.ok)
    }

    /// The report as text, one line per comparison and a count of passes.
    pub fn text(&self) -> String {
        let mut s = format!("{} (seed {})\n", self.device, self.seed);
        for l in &self.lines {
            s += &format!(
                "  {:<4} {:<58} max diff {:.3e}\n",
                if l.ok { "ok" } else { "FAIL" },
                l.what,
                l.max_diff
            );
        }
        s += &format!(
            "{} of {} checks passed\n",
            self.lines.iter().filter(|l| l.ok).count(),
            self.lines.len()
        );
        s
    }
}

/// Largest difference between two CKA matrices, relative to the first's values (or to
/// [`CKA_RELATIVE_FLOOR`] where they are smaller), or absolute. A
/// shape mismatch, a value defined on one side only, or a NaN difference counts as infinite
/// (`f64::max` would skip a NaN, and a GPU that returns NaN must fail).
pub(crate) fn cka_gap(want: &CkaMatrix, got: &CkaMatrix, relative: bool) -> f64 {
    let rows = |m: &CkaMatrix| m.values.iter().map(Vec::len).collect::<Vec<_>>();
    if rows(want) != rows(got) {
        return f64::INFINITY;
    }
    let mut worst = 0f64;
    for (rw, rg) in want.values.iter().zip(&got.values) {
        for (w, g) in rw.iter().zip(rg) {
            let d = match (w, g) {
                (Some(w), Some(g)) => {
                    (w - g).abs()
                        / if relative {
                            w.abs().max(CKA_RELATIVE_FLOOR)
                        } else {
                            1.0
                        }
                }
                (None, None) => 0.0,
                _ => f64::INFINITY,
            };
            worst = if d.is_nan() {
                f64::INFINITY
            } else {
                worst.max(d)
            };
        }
    }
    worst
}

/// Uploads through two pinned buffers of 1000 values, back to back, so that nearly every chunk
/// refills a buffer whose last copy may still be queued: each array must come back bit for bit.
fn staging_line(gpu: &Gpu, rng: &mut Rng) -> Result<CheckLine, GpuError> {
    let mut staging = match gpu.staging_check(1000) {
        Ok(s) => s,
        // Uploads still work (through pageable memory, slower), but this check cannot run.
        Err(e) => {
            return Ok(CheckLine {
                what: format!("staged uploads: no pinned memory ({e})"),
                max_diff: f64::INFINITY,
                ok: false,
            })
        }
    };
    let lens = [0usize, 1, 999, 1000, 10_007, 2501];
    let arrays: Vec<Vec<f32>> = lens
        .iter()
        .map(|&len| (0..len).map(|_| rng.normal() as f32).collect())
        .collect();
    let mut wrong = 0usize;
    for (v, back) in arrays.iter().zip(staging.round_trip(&arrays)?) {
        // An empty upload is a 1-value array (CUDA has no empty allocation); any other length
        // is wrong in every value.
        if back.len() != v.len().max(1) {
            wrong += v.len().max(1);
            continue;
        }
        wrong += v
            .iter()
            .zip(&back)
            .filter(|(a, b)| a.to_bits() != b.to_bits())
            .count();
    }
    Ok(CheckLine {
        what: format!("staged uploads {lens:?} via 2 x 1000 pinned: wrong values"),
        max_diff: wrong as f64,
        ok: wrong == 0,
    })
}

/// `len` random ±1 values.
pub(crate) fn signs(rng: &mut Rng, len: usize) -> Vec<f32> {
    (0..len)
        .map(|_| if rng.below(2) == 1 { 1.0 } else { -1.0 })
        .collect()
}

/// The dot product of two ±1 vectors, exactly: the reference binary products are held to.
pub(crate) fn pm_dot(a: &[f32], b: &[f32]) -> i64 {
    a.iter().zip(b).map(|(x, y)| (x * y) as i64).sum()
}

/// Binary products on both kernels, device packing and CPU packing, against a naive ±1 dot
/// product; CKA (linear; biased and debiased; features and Gram forms) against the CPU path;
/// trained-network inference on both GPU engines against the CPU engines.
pub fn run(gpu: Arc<Gpu>, seed: u64) -> Result<CheckReport, GpuError> {
    let mut rng = Rng::new(seed);
    let mut lines = Vec::new();
    let bin = GpuBinaryGemm::new(gpu.clone());
    let kernels = bin.kernels();
    for (m, n, k) in [
        (1, 1, 1),
        (3, 5, 63),
        (67, 131, 257),
        (130, 129, 1000),
        (259, 300, 4099),
    ] {
        let (av, bv) = (signs(&mut rng, m * k), signs(&mut rng, n * k));
        let naive: Vec<i64> = (0..m * n)
            .map(|e| {
                let (i, j) = (e / n, e % n);
                pm_dot(&av[i * k..(i + 1) * k], &bv[j * k..(j + 1) * k])
            })
            .collect();
        let (pa, pb) = (BitMatrix::pack(&av, m, k), BitMatrix::pack(&bv, n, k));
        let cpu = binary_gemm(&pa, &pb);
        let diff = |c: &[i32]| -> f64 {
            c.iter()
                .zip(&naive)
                .map(|(&x, &y)| (x as i64 - y).abs())
                .max()
                .unwrap_or(0) as f64
        };
        lines.push(CheckLine {
            what: format!("binary GEMM {m}x{n}x{k}: CPU kernel vs naive"),
            max_diff: diff(&cpu),
            ok: diff(&cpu) == 0.0,
        });
        let (da, db) = (bin.pack(&av, m, k)?, bin.pack(&bv, n, k)?);
        let (ua, ub) = (bin.upload(&pa)?, bin.upload(&pb)?);
        for &kern in &kernels {
            for (how, x, y) in [("device-packed", &da, &db), ("CPU-packed", &ua, &ub)] {
                let c = bin.gemm(x, y, kern)?;
                let d = if c.len() == naive.len() {
                    diff(&c)
                } else {
                    f64::INFINITY
                };
                lines.push(CheckLine {
                    what: format!("binary GEMM {m}x{n}x{k}: {} {how}", kern.name()),
                    max_diff: d,
                    ok: d == 0.0,
                });
            }
        }
    }
    lines.push(staging_line(&gpu, &mut rng)?);
    let hsic = GpuHsic::new(gpu.clone());
    // (examples, widths of A, widths of B): features form (p < n), Gram form (p >= n), mixed.
    for (n, wa, wb) in [
        (37usize, vec![5usize, 50], vec![3usize, 37]),
        (301, vec![17, 129], vec![300, 401]),
        (1003, vec![65, 257], vec![1031, 3]),
    ] {
        let layers = |rng: &mut Rng, ws: &[usize]| -> Vec<ndarray::Array2<f32>> {
            ws.iter()
                .map(|&p| {
                    // An offset and a scale far from 1, as real activations have.
                    rng.normal_matrix(n, p).mapv(|v| 3.0 + 40.0 * v)
                })
                .collect()
        };
        let (a, b) = (layers(&mut rng, &wa), layers(&mut rng, &wb));
        for est in [Estimator::Biased, Estimator::Debiased] {
            let nothing = |_: u64, _: u64| {};
            // A against B, then B against itself (no second model: the symmetric path, each
            // layer prepared once).
            for (what, x, y) in [
                (format!("A{wa:?} B{wb:?}"), &a, Some(&b)),
                (format!("B{wb:?} with itself"), &b, None),
            ] {
                let cka_on = |be: &dyn HsicBackend| {
                    cka_all_pairs_on(be, x.clone(), y.cloned(), Kernel::Linear, est, &nothing)
                        .map_err(|e| GpuError::Unsupported(e.to_string()))
                };
                let worst = cka_gap(&cka_on(&Cpu)?, &cka_on(&hsic)?, true);
                lines.push(CheckLine {
                    what: format!("CKA linear {} n={n} {what}", est.name()),
                    max_diff: worst,
                    ok: worst <= CKA_TOLERANCE,
                });
            }
        }
    }
    lines.extend(super::check_mlp::lines(&gpu, &mut rng)?);
    Ok(CheckReport {
        device: gpu.label(),
        seed,
        lines,
    })
}

#[cfg(test)]
mod tests {
    use super::cka_gap;
    use strata_sim::CkaMatrix;

    fn matrix(values: Vec<Vec<Option<f64>>>) -> CkaMatrix {
        let (r, c) = (values.len(), values.first().map_or(0, Vec::len));
        CkaMatrix {
            values,
            hsic: vec![vec![0.0; c]; r],
            self_a: vec![0.0; r],
            self_b: vec![0.0; c],
            n: 10,
            batches: 1,
            notes: Vec::new(),
            undefined_a: vec![None; r],
            undefined_b: vec![None; c],
        }
    }

    #[test]
    fn cka_gap_counts_nan_missing_and_shape_as_infinite() {
        let want = matrix(vec![vec![Some(0.5), None], vec![Some(0.25), Some(1.0)]]);
        assert_eq!(cka_gap(&want, &want, true), 0.0);
        let near = matrix(vec![vec![Some(0.5), None], vec![Some(0.3), Some(1.0)]]);
        assert!((cka_gap(&want, &near, true) - 0.2).abs() < 1e-12);
        assert!((cka_gap(&want, &near, false) - 0.05).abs() < 1e-12);
        // Near 0, the difference is relative to the floor: 2e-9 on 1e-4 is 2e-7, not 2e-5.
        let tiny = matrix(vec![vec![Some(1e-4), None], vec![Some(0.25), Some(1.0)]]);
        let off = matrix(vec![
            vec![Some(1e-4 + 2e-9), None],
            vec![Some(0.25), Some(1.0)],
        ]);
        assert!((cka_gap(&tiny, &off, true) - 2e-7).abs() < 1e-15);
        let neg = matrix(vec![vec![Some(-0.02), None], vec![Some(0.25), Some(1.0)]]);
        let neg_off = matrix(vec![vec![Some(-0.0202), None], vec![Some(0.25), Some(1.0)]]);
        assert!((cka_gap(&neg, &neg_off, true) - 0.01).abs() < 1e-9);
        for bad in [
            matrix(vec![vec![Some(0.5), None], vec![Some(f64::NAN), Some(1.0)]]),
            matrix(vec![
                vec![Some(0.5), Some(0.5)],
                vec![Some(0.25), Some(1.0)],
            ]),
            matrix(vec![vec![Some(0.5), None]]),
            matrix(vec![vec![Some(0.5)], vec![Some(0.25)]]),
        ] {
            assert_eq!(cka_gap(&want, &bad, true), f64::INFINITY);
        }
    }
}
