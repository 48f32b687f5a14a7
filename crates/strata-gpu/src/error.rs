//! Why a GPU path could not run.

/// Errors of the GPU paths. Each message says what to do instead.
#[derive(Debug, thiserror::Error)]
pub enum GpuError {
    /// No driver library (libcuda) could be loaded.
    #[error("no CUDA driver found (libcuda could not be loaded); use --device cpu or auto")]
    NoDriver,
    /// The driver loaded but reports no device.
    #[error("the CUDA driver reports no GPU; use --device cpu or auto")]
    NoDevice,
    /// A CUDA library other than the driver is missing.
    #[error("{0} could not be loaded: install the CUDA toolkit's {0} or put its folder on LD_LIBRARY_PATH")]
    MissingLibrary(&'static str),
    /// NVRTC rejected a kernel (a bug in strata, or a toolkit too old for the device).
    #[error("NVRTC could not compile {name} for {arch}: {log}")]
    Compile {
        name: &'static str,
        arch: String,
        log: String,
    },
    /// A driver, cuBLAS or launch error.
    #[error("CUDA error in {what}: {detail}")]
    Cuda { what: &'static str, detail: String },
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
