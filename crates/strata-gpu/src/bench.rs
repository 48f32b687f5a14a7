//! GPU benchmarks, each against a baseline measured on the same device in the same run:
//! binary GEMM against cuBLAS SGEMM of the same shape, and all-pairs CKA against the bare
//! cuBLAS products it needs.

use crate::check::{pm_dot, signs};
use crate::{BinaryKernel, Gpu, GpuBinaryGemm, GpuError, GpuHsic};
use cudarc::cublas::{sys::cublasOperation_t as Op, Gemm, GemmConfig};
use ndarray::Array2;
use serde::Serialize;
use std::sync::Arc;
use std::time::Instant;
use strata_data::rng::Rng;
use strata_sim::{cka_all_pairs_on, Estimator, Kernel};

fn cuda<E: std::fmt::Debug>(what: &'static str) -> impl Fn(E) -> GpuError {
    move |e| GpuError::cuda(what, e)
}

/// Best of `repeat` runs of `f` after one warm-up, synchronizing the device around each.
fn best_of(
    gpu: &Gpu,
    repeat: usize,
    mut f: impl FnMut() -> Result<(), GpuError>,
) -> Result<f64, GpuError> {
    f()?;
    gpu.synchronize()?;
    let mut best = f64::INFINITY;
    for _ in 0..repeat.max(1) {
        let t = Instant::now();
        f()?;
        gpu.synchronize()?;
        best = best.min(t.elapsed().as_secs_f64());
    }
    Ok(best)
}

/// Seconds for one cuBLAS GEMM `C (m x n) = A (m x k) B (k x n)` in element type `T` on random
/// data (`from` converts a standard normal draw; `seed` picks the data).
fn gemm_seconds<T>(
    gpu: &Gpu,
    (m, n, k): (usize, usize, usize),
    repeat: usize,
    seed: u64,
    from: impl Fn(f32) -> T,
    what: &'static str,
) -> Result<f64, GpuError>
where
    T: cudarc::driver::DeviceRepr + cudarc::driver::ValidAsZeroBits + Copy,
    cudarc::cublas::CudaBlas: Gemm<T>,
{
    let s = &gpu.stream;
    let mut r = Rng::new(seed);
    let mut random = |len: usize| -> Vec<T> { (0..len).map(|_| from(r.normal() as f32)).collect() };
    let da = s.clone_htod(&random(m * k)).map_err(cuda("upload"))?;
    let db = s.clone_htod(&random(k * n)).map_err(cuda("upload"))?;
    let mut dc = s.alloc_zeros::<T>(m * n).map_err(cuda("alloc"))?;
    best_of(gpu, repeat, || {
        let cfg = GemmConfig {
            transa: Op::CUBLAS_OP_N,
            transb: Op::CUBLAS_OP_N,
            m: m as i32,
            n: n as i32,
            k: k as i32,
            alpha: from(1.0),
            lda: m as i32,
            ldb: k as i32,
            beta: from(0.0),
            ldc: m as i32,
        };
        // SAFETY: buffers sized m*k, k*n, m*n, column-major.
        unsafe { gpu.blas.gemm(cfg, &da, &db, &mut dc) }.map_err(cuda(what))
    })
}

/// Seconds for one cuBLAS SGEMM `C (m x n) = A (m x k) B (k x n)` on random data.
pub fn sgemm_seconds(
    gpu: &Gpu,
    m: usize,
    n: usize,
    k: usize,
    repeat: usize,
) -> Result<f64, GpuError> {
    gemm_seconds(gpu, (m, n, k), repeat, 1, |v| v, "SGEMM")
}

/// Seconds for one FP16 GEMM on the tensor cores (cublasGemmEx: FP16 operands and result, FP32
/// accumulation, the default algorithm, which uses tensor cores on Volta and later): the
/// fastest float product the device offers, the stronger baseline beside SGEMM.
pub fn hgemm_seconds(
    gpu: &Gpu,
    m: usize,
    n: usize,
    k: usize,
    repeat: usize,
) -> Result<f64, GpuError> {
    gemm_seconds(gpu, (m, n, k), repeat, 2, half::f16::from_f32, "FP16 GEMM")
}

/// One binary GEMM shape.
#[derive(Clone, Debug, Serialize)]
pub struct BinaryGemmGpuRow {
    pub label: String,
    pub m: usize,
    pub n: usize,
    pub k: usize,
    pub kernel: BinaryKernel,
    pub binary_seconds: f64,
    pub sgemm_seconds: f64,
    /// `m n k / s` for each.
    pub binary_macs_per_s: f64,
    pub sgemm_macs_per_s: f64,
    /// SGEMM time over binary time: the speed-up over cuBLAS.
    pub speedup_over_sgemm: f64,
    /// FP16 tensor-core GEMM of the same shape (`None` where it failed: see `fp16_error`).
    pub fp16_seconds: Option<f64>,
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
        let (th, fp16_error) =
            match crate::error::guarded("FP16 GEMM", || hgemm_seconds(&gpu, m, n, k, repeat)) {
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
    pub device: String,
    pub n: usize,
    pub widths: Vec<usize>,
    /// End to end: upload, centering, scaling, every product and reduction.
    pub gpu_seconds: f64,
    /// The bare cuBLAS SGEMMs of the same shapes, operands already on the device.
    pub sgemm_floor_seconds: f64,
    /// Floor over end to end: 1.0 would be all time in the products.
    pub gemm_efficiency: f64,
    pub tf32_seconds: f64,
    /// Largest |CKA(TF32) - CKA(f32)| over all pairs.
    pub tf32_max_abs_error: f64,
    pub cpu_seconds: Option<f64>,
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
    let max_diff = crate::check::cka_gap;
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
