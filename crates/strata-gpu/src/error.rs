//! Why a GPU path could not run.

/// Errors of the GPU paths. Each message says what went wrong, and what to do where the fix
/// is not a choice of options (front ends add hints that name their own options).
#[derive(Debug, thiserror::Error)]
pub enum GpuError {
    /// No driver library (libcuda) could be loaded.
    #[error("no CUDA driver found (libcuda could not be loaded)")]
    NoDriver,
    /// The driver loaded but reports no device.
    #[error("the CUDA driver reports no GPU")]
    NoDevice,
    /// A CUDA library other than the driver is missing.
    #[error("{0} could not be loaded: install the CUDA toolkit's {0} or put its folder on LD_LIBRARY_PATH")]
    MissingLibrary(&'static str),
    /// NVRTC rejected a kernel (a bug in strata, or a toolkit too old for the device).
    #[error("NVRTC could not compile {name} for {arch}: {log}")]
    Compile {
        /// The source file (`binary.cu`).
        name: &'static str,
        /// The target architecture (`sm_90`).
        arch: String,
        /// NVRTC's log, which says where and why.
        log: String,
    },
    /// A driver, cuBLAS or launch error.
    #[error("CUDA error in {what}: {detail}")]
    Cuda {
        /// What was being done (`upload`, `cuBLAS SGEMM`).
        what: &'static str,
        /// The library's own error.
        detail: String,
    },
    /// The request does not fit the device (memory) or is not implemented there.
    #[error("{0}")]
    Unsupported(String),
}

impl GpuError {
    /// Wrap any CUDA-side error with what was being done.
    pub(crate) fn cuda(what: &'static str, e: impl std::fmt::Debug) -> Self {
        GpuError::Cuda {
            what,
            detail: format!("{e:?}"),
        }
    }
}

/// Run `f`, turning a panic inside cudarc (a missing symbol in an old driver, say) into an
/// error: the GPU path must never take the process down.
pub(crate) fn guarded<T>(
    what: &'static str,
    f: impl FnOnce() -> Result<T, GpuError>,
) -> Result<T, GpuError> {
    match std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)) {
        Ok(r) => r,
        Err(p) => {
            let msg = p
                .downcast_ref::<String>()
                .map(String::as_str)
                .or_else(|| p.downcast_ref::<&str>().copied())
                .unwrap_or("panic")
                .to_string();
            Err(GpuError::Cuda { what, detail: msg })
        }
    }
}
