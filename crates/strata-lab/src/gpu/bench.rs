//! GPU benchmarks, each against a baseline measured on the same device in the same run:
//! binary GEMM against cuBLAS SGEMM of the same shape, and all-pairs CKA against the bare
//! cuBLAS products it needs.

use super::check::{pm_dot, signs};
use ndarray::Array2;
use serde::Serialize;
use std::sync::Arc;
use std::time::Instant;
use strata_data::rng::Rng;
use strata_gpu::timing::{best_of, dense_gemm_seconds, DenseGemm};
use strata_gpu::{BinaryKernel, Gpu, GpuBinaryGemm, GpuError, GpuHsic};
use strata_sim::{cka_all_pairs_on, Estimator, Kernel};

/// Seconds for one cuBLAS GEMM `C (m x n) = A (m x k) B (k x n)` of `kind` on random data
/// (standard normal draws; `seed` picks them).
fn gemm_seconds(
    gpu: &Gpu,
    kind: DenseGemm,
    (m, n, k): (usize, usize, usize),
    repeat: usize,
    seed: u64,
) -> Result<f64, GpuError> {
    let mut r = Rng::new(seed);
    let mut random = |len: usize| -> Vec<f32> { (0..len).map(|_| r.normal() as f32).collect() };
    let (a, b) = (random(m * k), random(k * n));
    dense_gemm_seconds(gpu, kind, (m, n, k), &a, &b, repeat)
}

/// Seconds for one cuBLAS SGEMM `C (m x n) = A (m x k) B (k x n)` on random data.
pub fn sgemm_seconds(
    gpu: &Gpu,
    m: usize,
    n: usize,
    k: usize,
    repeat: usize,
) -> Result<f64, GpuError> {
    gemm_seconds(gpu, DenseGemm::Sgemm, (m, n, k), repeat, 1)
}

/// Seconds for one FP16 GEMM on the tensor cores ([`DenseGemm::Fp16`]): the fastest float
/// product the device offers, the stronger baseline beside SGEMM. A panic inside cuBLAS is an
/// error.
pub fn hgemm_seconds(
    gpu: &Gpu,
    m: usize,
    n: usize,
    k: usize,
    repeat: usize,
) -> Result<f64, GpuError> {
    gemm_seconds(gpu, DenseGemm::Fp16, (m, n, k), repeat, 2)
}

/// One binary GEMM shape.
#[derive(Clone, Debug, Serialize)]
pub struct BinaryGemmGpuRow {
    /// What the shape is (`square`, `MLP fc2, batch 256`, ...).
    pub label: String,
    /// Rows of A and of the product.
    pub m: usize,
    /// Rows of B: columns of the product.
    pub n: usize,
    /// Shared inner dimension (±1 values, packed to bits).
    pub k: usize,
    /// Which binary GEMM kernel ran.
    pub kernel: BinaryKernel,
    /// Best seconds of the binary product, operands on the device.
    pub binary_seconds: f64,
    /// Best seconds of cuBLAS SGEMM of the same shape.
    pub sgemm_seconds: f64,
    /// `m n k / s` for each.
    pub binary_macs_per_s: f64,
    /// `m n k / s` of SGEMM.
    pub sgemm_macs_per_s: f64,
    /// SGEMM time over binary time: the speed-up over cuBLAS.
    pub speedup_over_sgemm: f64,
    /// FP16 tensor-core GEMM of the same shape (`None` where it failed: see `fp16_error`).
    pub fp16_seconds: Option<f64>,
    /// `m n k / s` of the FP16 GEMM.
    pub fp16_macs_per_s: Option<f64>,
    /// FP16 time over binary time.
    pub speedup_over_fp16: Option<f64>,
    /// Why there is no FP16 time, when there is none.
    pub fp16_error: Option<String>,
    /// Rows of this kernel's product compared, every column, exactly against a direct ±1 dot
    /// product on the host (a fast wrong kernel is refused, not reported).
    pub checked_rows: usize,
}

/// The rows of an `m`-row product [`binary_gemm`] checks: the first, the last and six drawn
/// from `r` (fewer when `m` is small).
fn sample_rows(m: usize, r: &mut Rng) -> Vec<usize> {
    let mut rows: Vec<usize> = vec![0, m - 1];
    rows.extend((0..6).map(|_| r.below(m as u64) as usize));
    rows.sort_unstable();
    rows.dedup();
    rows
}

/// Compare rows `rows` of `c` (`m x n`, row-major) with `Σ_k a_ik b_jk` of the ±1 matrices
/// `a` (`m x k`) and `b` (`n x k`), computed directly.
fn check_rows(
    c: &[i32],
    a: &[f32],
    b: &[f32],
    (n, k): (usize, usize),
    rows: &[usize],
) -> Result<(), String> {
    for &i in rows {
        for j in 0..n {
            let want = pm_dot(&a[i * k..(i + 1) * k], &b[j * k..(j + 1) * k]);
            if i64::from(c[i * n + j]) != want {
                return Err(format!(
                    "C[{i}][{j}] is {} and should be {want}",
                    c[i * n + j]
                ));
            }
        }
    }
    Ok(())
}

/// Binary GEMM (every kernel the device has) against cuBLAS SGEMM and FP16 GEMM, operands
/// resident on the device, packing excluded. Each kernel's product is then checked exactly on
/// sampled rows; a mismatch is an error, not a row.
pub fn binary_gemm(
    gpu: Arc<Gpu>,
    shapes: &[(String, usize, usize, usize)],
    repeat: usize,
) -> Result<Vec<BinaryGemmGpuRow>, GpuError> {
    let bin = GpuBinaryGemm::new(gpu.clone());
    let kernels = bin.kernels();
    let mut r = Rng::new(7);
    let mut rows = Vec::new();
    for (label, m, n, k) in shapes {
        let (m, n, k) = (*m, *n, *k);
        if m == 0 || n == 0 || k == 0 {
            return Err(GpuError::Unsupported(format!(
                "binary GEMM shape {m} x {n} x {k}: every size must be at least 1"
            )));
        }
        let (ha, hb) = (signs(&mut r, m * k), signs(&mut r, n * k));
        let a = bin.pack(&ha, m, k)?;
        let b = bin.pack(&hb, n, k)?;
        let ts = sgemm_seconds(&gpu, m, n, k, repeat)?;
        // A device (or a cuBLAS) without FP16 GEMM still gets its SGEMM comparison.
        let (th, fp16_error) = match hgemm_seconds(&gpu, m, n, k, repeat) {
            Ok(t) => (Some(t), None),
            Err(e) => (None, Some(e.to_string())),
        };
        let checked = sample_rows(m, &mut r);
        for &kern in &kernels {
            let tb = best_of(&gpu, repeat, || bin.gemm_device(&a, &b, kern).map(|_| ()))?;
            let c = bin.gemm(&a, &b, kern)?;
            check_rows(&c, &ha, &hb, (n, k), &checked).map_err(|e| {
                GpuError::Unsupported(format!(
                    "binary GEMM {label} ({m} x {n} x {k}), {} kernel, gave a wrong product: {e}; \
                     run `strata gpu check` and report it",
                    kern.name()
                ))
            })?;
            let macs = (m * n * k) as f64;
            rows.push(BinaryGemmGpuRow {
                label: label.clone(),
                m,
                n,
                k,
                kernel: kern,
                binary_seconds: tb,
                sgemm_seconds: ts,
                binary_macs_per_s: macs / tb,
                sgemm_macs_per_s: macs / ts,
                speedup_over_sgemm: ts / tb,
                fp16_seconds: th,
                fp16_macs_per_s: th.map(|t| macs / t),
                speedup_over_fp16: th.map(|t| t / tb),
                fp16_error: fp16_error.clone(),
                checked_rows: checked.len(),
            });
        }
    }
    Ok(rows)
}

/// All-pairs CKA on the GPU against its own GEMM floor and the CPU.
#[derive(Clone, Debug, Serialize)]
pub struct GramGpuReport {
    /// The GPU's label (`cuda:N NAME (sm_XY)`).
    pub device: String,
    /// Examples per layer.
    pub n: usize,
    /// Feature count of each layer.
    pub widths: Vec<usize>,
    /// End to end: upload, centering, scaling, every product and reduction.
    pub gpu_seconds: f64,
    /// The bare cuBLAS SGEMMs of the same shapes, operands already on the device.
    pub sgemm_floor_seconds: f64,
    /// Floor over end to end: 1.0 would be all time in the products.
    pub gemm_efficiency: f64,
    /// End to end with TF32 tensor-core products.
    pub tf32_seconds: f64,
    /// Largest |CKA(TF32) - CKA(f32)| over all pairs.
    pub tf32_max_abs_error: f64,
    /// The same CKA on the CPU (`None` when not run).
    pub cpu_seconds: Option<f64>,
    /// CPU time over GPU time (`None` when the CPU did not run).
    pub speedup_over_cpu: Option<f64>,
    /// Largest |CKA(GPU) - CKA(CPU)| / max(|CKA(CPU)|, 0.01) (`check::CKA_RELATIVE_FLOOR`).
    pub max_rel_diff_vs_cpu: Option<f64>,
}

/// Time all-pairs linear CKA between `a` and `b` on the GPU (f32 and TF32) and, unless
/// `cpu` is false, on the CPU.
pub fn gram(
    gpu: Arc<Gpu>,
    a: Vec<Array2<f32>>,
    b: Vec<Array2<f32>>,
    repeat: usize,
    cpu: bool,
) -> Result<GramGpuReport, GpuError> {
    let n = a[0].nrows();
    let widths: Vec<usize> = a.iter().map(|x| x.ncols()).collect();
    let backend = GpuHsic::new(gpu.clone());
    let nothing = |_: u64, _: u64| {};
    let run = |be: &dyn strata_sim::HsicBackend| {
        cka_all_pairs_on(
            be,
            a.clone(),
            Some(b.clone()),
            Kernel::Linear,
            Estimator::Biased,
            &nothing,
        )
        .map_err(|e| GpuError::Unsupported(e.to_string()))
    };
    let mut f32_cka = None;
    let gpu_seconds = best_of(&gpu, repeat, || {
        f32_cka = Some(run(&backend)?);
        Ok(())
    })?;
    gpu.set_tf32(true)?;
    let mut tf32_cka = None;
    let tf32 = best_of(&gpu, repeat, || {
        tf32_cka = Some(run(&backend)?);
        Ok(())
    });
    gpu.set_tf32(false)?;
    let tf32_seconds = tf32?;
    let (fc, tc) = (f32_cka.expect("ran"), tf32_cka.expect("ran"));
    let max_diff = super::check::cka_gap;
    // The floor: the products all-pairs CKA needs (features form: Xᵀ Y for each pair and
    // XᵀX for each layer), as bare SGEMMs.
    let mut floor = 0.0;
    let all: Vec<usize> = a.iter().chain(&b).map(|x| x.ncols()).collect();
    for &p in &all {
        floor += sgemm_seconds(&gpu, p, p, n, repeat)?;
    }
    for x in &a {
        for y in &b {
            floor += sgemm_seconds(&gpu, x.ncols(), y.ncols(), n, repeat)?;
        }
    }
    let (cpu_seconds, max_rel) = if cpu {
        let t = Instant::now();
        let c = run(&strata_sim::Cpu)?;
        (
            Some(t.elapsed().as_secs_f64()),
            Some(max_diff(&c, &fc, true)),
        )
    } else {
        (None, None)
    };
    Ok(GramGpuReport {
        device: gpu.label(),
        n,
        widths,
        gpu_seconds,
        sgemm_floor_seconds: floor,
        gemm_efficiency: floor / gpu_seconds,
        tf32_seconds,
        tf32_max_abs_error: max_diff(&fc, &tc, false),
        cpu_seconds,
        speedup_over_cpu: cpu_seconds.map(|c| c / gpu_seconds),
        max_rel_diff_vs_cpu: max_rel,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The bench's row check accepts the true product and refuses any single wrong entry.
    #[test]
    fn check_rows_accepts_the_product_and_refuses_one_wrong_entry() {
        let mut r = Rng::new(3);
        let (m, n, k) = (13, 7, 45);
        let (a, b) = (signs(&mut r, m * k), signs(&mut r, n * k));
        // An independent reference: the f64 product of the ±1 values.
        let c: Vec<i32> = (0..m * n)
            .map(|ij| {
                let (i, j) = (ij / n, ij % n);
                (0..k)
                    .map(|l| f64::from(a[i * k + l]) * f64::from(b[j * k + l]))
                    .sum::<f64>() as i32
            })
            .collect();
        let rows = sample_rows(m, &mut r);
        assert!(rows.contains(&0) && rows.contains(&(m - 1)));
        assert!(rows.windows(2).all(|w| w[0] < w[1]) && rows.iter().all(|&i| i < m));
        assert!(check_rows(&c, &a, &b, (n, k), &rows).is_ok());
        for &i in &rows {
            let mut bad = c.clone();
            bad[i * n + n - 1] += 2;
            let e = check_rows(&bad, &a, &b, (n, k), &rows).unwrap_err();
            assert!(e.contains(&format!("C[{i}][{}]", n - 1)), "{e}");
        }
    }

    #[test]
    fn one_row_is_sampled_once() {
        assert_eq!(sample_rows(1, &mut Rng::new(0)), vec![0]);
    }
}
