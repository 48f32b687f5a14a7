//! One GPU ready for work: context, streams, cuBLAS handle and the compiled kernels.

use crate::error::guarded;
use crate::info::{cublas_present, driver_present, nvrtc_present};
use crate::staging::Staging;
use crate::{kernels, DeviceInfo, GpuError};
use cudarc::cublas::{sys as blas_sys, sys::cublasOperation_t as Op, CudaBlas, Gemm, GemmConfig};
use cudarc::driver::{result, sys, CudaContext, CudaFunction, CudaModule, CudaSlice, CudaStream};
use cudarc::nvrtc::Ptx;
use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};

/// A CUDA device with everything strata's GPU paths need, created once and shared.
pub struct Gpu {
    pub(crate) ctx: Arc<CudaContext>,
    /// Pinned buffers every upload on `copy` passes through, made on first use (the inner
    /// `None`: page-locked memory could not be had, and uploads go from pageable memory).
    /// Declared before the streams, so it is dropped (its copies waited for) before they are.
    staging: Mutex<Option<Option<Staging>>>,
    /// Where kernels and products run.
    pub(crate) stream: Arc<CudaStream>,
    /// Where host-to-device copies run while `stream` computes. cudarc records an event on
    /// every slice a copy writes, and a kernel on `stream` that reads it waits for that event,
    /// so the two streams need no hand-placed synchronization.
    pub(crate) copy: Arc<CudaStream>,
    pub(crate) blas: CudaBlas,
    gram: Arc<CudaModule>,
    binary: Arc<CudaModule>,
    mlp: Arc<CudaModule>,
    /// What the driver reported.
    pub info: DeviceInfo,
    /// The architecture kernels were compiled for (`sm_90`).
    pub arch: String,
}

impl std::fmt::Debug for Gpu {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Gpu({})", self.label())
    }
}

impl Gpu {
    /// The first device (`cuda:0`), shared by every caller in this process: the context is
    /// created and the kernels compiled once, however many commands or comparisons ask.
    pub fn first() -> Result<Arc<Gpu>, GpuError> {
        Gpu::shared(0)
    }

    /// Device `ordinal`, created on first use and then shared (failures are not kept, so a
    /// later call tries again).
    pub fn shared(ordinal: usize) -> Result<Arc<Gpu>, GpuError> {
        static SHARED: OnceLock<Mutex<HashMap<usize, Arc<Gpu>>>> = OnceLock::new();
        let mut map = SHARED
            .get_or_init(Default::default)
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if let Some(g) = map.get(&ordinal) {
            return Ok(g.clone());
        }
        let g = Gpu::new(ordinal)?;
        map.insert(ordinal, g.clone());
        Ok(g)
    }

    /// Device `ordinal`, fresh: checks the driver, NVRTC and cuBLAS are loadable, creates a
    /// context and compiles the kernels for the device's architecture.
    pub fn new(ordinal: usize) -> Result<Arc<Gpu>, GpuError> {
        if !driver_present() {
            return Err(GpuError::NoDriver);
        }
        guarded("GPU set-up", || {
            result::init().map_err(|e| GpuError::cuda("cuInit", e))?;
            let count =
                CudaContext::device_count().map_err(|e| GpuError::cuda("device count", e))?;
            if count <= 0 {
                return Err(GpuError::NoDevice);
            }
            if ordinal >= count as usize {
                return Err(GpuError::Unsupported(format!(
                    "cuda:{ordinal} does not exist ({count} device(s))"
                )));
            }
            if !nvrtc_present() {
                return Err(GpuError::MissingLibrary("libnvrtc"));
            }
            if !cublas_present() {
                return Err(GpuError::MissingLibrary("libcublas"));
            }
            let ctx = CudaContext::new(ordinal).map_err(|e| GpuError::cuda("context", e))?;
            let cc = ctx
                .compute_capability()
                .map_err(|e| GpuError::cuda("compute capability", e))?;
            let (free, total) = ctx
                .mem_get_info()
                .map_err(|e| GpuError::cuda("memory info", e))?;
            let info = DeviceInfo {
                ordinal,
                name: ctx.name().map_err(|e| GpuError::cuda("device name", e))?,
                compute_capability: cc,
                total_memory: total,
                free_memory: free,
                multiprocessors: ctx
                    .attribute(sys::CUdevice_attribute::CU_DEVICE_ATTRIBUTE_MULTIPROCESSOR_COUNT)
                    .map_err(|e| GpuError::cuda("attribute", e))?,
            };
            let arch = format!("sm_{}{}", cc.0, cc.1);
            let load = |name: &'static str, src: &str| -> Result<Arc<CudaModule>, GpuError> {
                let c = kernels::compile(name, src, &arch)?;
                ctx.load_module(Ptx::from_binary(c.cubin))
                    .map_err(|e| GpuError::cuda("loading kernels", e))
            };
            let gram = load("gram.cu", kernels::GRAM_SRC)?;
            let binary = load("binary.cu", kernels::BINARY_SRC)?;
            let mlp = load("mlp.cu", kernels::MLP_SRC)?;
            let stream = ctx.new_stream().map_err(|e| GpuError::cuda("stream", e))?;
            let copy = ctx.new_stream().map_err(|e| GpuError::cuda("stream", e))?;
            let blas = CudaBlas::new(stream.clone()).map_err(|e| GpuError::cuda("cuBLAS", e))?;
            Ok(Arc::new(Gpu {
                staging: Mutex::new(None),
                ctx,
                stream,
                copy,
                blas,
                gram,
                binary,
                mlp,
                info,
                arch,
            }))
        })
    }

    /// `cuda:0 NVIDIA H100 80GB HBM3 (sm_90)`.
    pub fn label(&self) -> String {
        format!(
            "cuda:{} {} ({})",
            self.info.ordinal, self.info.name, self.arch
        )
    }

    /// Let cuBLAS use TF32 tensor cores for f32 products (about 10 bits of mantissa in the
    /// inputs: faster, less exact; `strata bench gram --tf32` reports the error it costs).
    pub fn set_tf32(&self, on: bool) -> Result<(), GpuError> {
        let mode = if on {
            blas_sys::cublasMath_t::CUBLAS_TF32_TENSOR_OP_MATH
        } else {
            blas_sys::cublasMath_t::CUBLAS_DEFAULT_MATH
        };
        // SAFETY: a live handle owned by `self.blas`.
        unsafe { blas_sys::cublasSetMathMode(*self.blas.handle(), mode) }
            .result()
            .map_err(|e| GpuError::cuda("cublasSetMathMode", e))
    }

    pub(crate) fn gram_fn(&self, name: &str) -> Result<CudaFunction, GpuError> {
        lookup(&self.gram, name)
    }

    pub(crate) fn binary_fn(&self, name: &str) -> Result<CudaFunction, GpuError> {
        lookup(&self.binary, name)
    }

    pub(crate) fn mlp_fn(&self, name: &str) -> Result<CudaFunction, GpuError> {
        lookup(&self.mlp, name)
    }

    /// A new device array of `len` f32 values (1 unset value when `len` is 0), uploaded on
    /// the copy stream through pinned staging buffers: `fill(offset, out)` writes values
    /// `offset ..` into `out`. Kernels on the compute stream that read the array wait for its
    /// copies. Uploads take turns (`fill` must not upload itself). Where page-locked memory
    /// cannot be had, the values go through an ordinary `Vec` instead: slower, same result.
    pub(crate) fn upload_with(
        &self,
        len: usize,
        mut fill: impl FnMut(usize, &mut [f32]),
    ) -> Result<CudaSlice<f32>, GpuError> {
        // A panic in another upload leaves the buffers' events intact, so their contents can
        // still be reused safely.
        let mut staging = self
            .staging
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let staging =
            staging.get_or_insert_with(|| Staging::new(&self.ctx, crate::staging::CHUNK).ok());
        match staging {
            Some(s) => s.upload(&self.copy, len, fill),
            None => {
                let mut host = vec![0f32; len.max(1)];
                fill(0, &mut host[..len]);
                self.copy
                    .clone_htod(&host)
                    .map_err(|e| GpuError::cuda("upload", e))
            }
        }
    }

    /// [`Gpu::upload_with`] of a slice.
    pub(crate) fn upload(&self, values: &[f32]) -> Result<CudaSlice<f32>, GpuError> {
        self.upload_with(values.len(), |at, out| {
            out.copy_from_slice(&values[at..at + out.len()])
        })
    }

    /// Free device memory now, in bytes.
    pub fn free_memory(&self) -> Result<usize, GpuError> {
        self.ctx
            .mem_get_info()
            .map(|(free, _)| free)
            .map_err(|e| GpuError::cuda("memory info", e))
    }

    /// Wait for all queued work, copies included.
    pub fn synchronize(&self) -> Result<(), GpuError> {
        for s in [&self.copy, &self.stream] {
            s.synchronize()
                .map_err(|e| GpuError::cuda("synchronize", e))?;
        }
        Ok(())
    }
}

fn lookup(module: &Arc<CudaModule>, name: &str) -> Result<CudaFunction, GpuError> {
    module
        .load_function(name)
        .map_err(|e| GpuError::cuda("kernel lookup", e))
}

/// Column-major `C (m x n) = op(A) op(B)` with cuBLAS SGEMM on `blas`'s handle (TF32 only if
/// that handle's math mode allows it). A row-major matrix is its column-major transpose, which
/// is how callers with row-major data pick `op` and the leading dimensions.
#[allow(clippy::too_many_arguments)]
pub(crate) fn sgemm(
    blas: &CudaBlas,
    ta: Op,
    tb: Op,
    m: usize,
    n: usize,
    k: usize,
    a: &CudaSlice<f32>,
    lda: usize,
    b: &CudaSlice<f32>,
    ldb: usize,
    c: &mut CudaSlice<f32>,
    ldc: usize,
) -> Result<(), GpuError> {
    let cfg = GemmConfig {
        transa: ta,
        transb: tb,
        m: m as i32,
        n: n as i32,
        k: k as i32,
        alpha: 1.0f32,
        lda: lda as i32,
        ldb: ldb as i32,
        beta: 0.0f32,
        ldc: ldc as i32,
    };
    // SAFETY: the dimensions and leading dimensions describe the buffers' sizes.
    unsafe { blas.gemm(cfg, a, b, c) }.map_err(|e| GpuError::cuda("cuBLAS SGEMM", e))
}
