//! Timing on the device, for benchmarks: best-of-`n` wall time with the device synchronized
//! around each run (kernels are asynchronous, so an unsynchronized clock measures only the
//! queueing), and the cuBLAS dense products that strata's kernels are measured against on the
//! same device in the same run.

use crate::error::guarded;
use crate::{Gpu, GpuError};
use cudarc::cublas::{sys::cublasOperation_t as Op, Gemm, GemmConfig};
use std::time::Instant;

fn cuda<E: std::fmt::Debug>(what: &'static str) -> impl Fn(E) -> GpuError {
    move |e| GpuError::cuda(what, e)
}

/// Best of `repeat` runs of `f` (at least one) after one warm-up run, in seconds, waiting for
/// all queued device work before and after each, so that the time is the work's, not the
/// time to queue it.
pub fn best_of(
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

/// A dense float product of cuBLAS: the baselines a binary or Gram kernel must beat.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DenseGemm {
    /// cuBLAS SGEMM: f32 operands, accumulation and result.
    Sgemm,
    /// `cublasGemmEx` with FP16 operands and result and FP32 accumulation, the default
    /// algorithm (tensor cores on Volta and later): the fastest float product the device
    /// offers, the stronger baseline beside SGEMM.
    Fp16,
}

impl DenseGemm {
    /// `SGEMM`, `FP16 GEMM`: how errors name it.
    pub fn name(self) -> &'static str {
        match self {
            DenseGemm::Sgemm => "SGEMM",
            DenseGemm::Fp16 => "FP16 GEMM",
        }
    }
}

/// Seconds for one `C (m x n) = A (m x k) B (k x n)` of `kind` ([`best_of`] `repeat` runs),
/// operands uploaded first (`a`: `m k` values, `b`: `k n` values, column-major; FP16 converts
/// them). A panic inside cuBLAS (an old library without the entry point) is an error, so a
/// benchmark can report the baseline as missing and go on.
pub fn dense_gemm_seconds(
    gpu: &Gpu,
    kind: DenseGemm,
    (m, n, k): (usize, usize, usize),
    a: &[f32],
    b: &[f32],
    repeat: usize,
) -> Result<f64, GpuError> {
    if a.len() != m * k || b.len() != k * n {
        return Err(GpuError::Unsupported(format!(
            "{} {m} x {n} x {k}: operands of {} and {} values",
            kind.name(),
            a.len(),
            b.len()
        )));
    }
    guarded(kind.name(), || match kind {
        DenseGemm::Sgemm => gemm_seconds(gpu, (m, n, k), a, b, repeat, |v| v, kind.name()),
        DenseGemm::Fp16 => gemm_seconds(
            gpu,
            (m, n, k),
            a,
            b,
            repeat,
            half::f16::from_f32,
            kind.name(),
        ),
    })
}

/// [`dense_gemm_seconds`] in element type `T` (`from` converts each f32).
fn gemm_seconds<T>(
    gpu: &Gpu,
    (m, n, k): (usize, usize, usize),
    a: &[f32],
    b: &[f32],
    repeat: usize,
    from: impl Fn(f32) -> T,
    what: &'static str,
) -> Result<f64, GpuError>
where
    T: cudarc::driver::DeviceRepr + cudarc::driver::ValidAsZeroBits + Copy,
    cudarc::cublas::CudaBlas: Gemm<T>,
{
    let s = &gpu.stream;
    let convert = |v: &[f32]| -> Vec<T> { v.iter().map(|&x| from(x)).collect() };
    let da = s.clone_htod(&convert(a)).map_err(cuda("upload"))?;
    let db = s.clone_htod(&convert(b)).map_err(cuda("upload"))?;
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
