//! Device discovery: which GPUs there are, without assuming a driver exists.

use crate::error::guarded;
use crate::GpuError;
use cudarc::driver::{result, sys, CudaContext};
use serde::Serialize;

/// One CUDA device as the driver reports it.
#[derive(Clone, Debug, Serialize)]
pub struct DeviceInfo {
    /// The driver's index (`cuda:0` is 0).
    pub ordinal: usize,
    /// The marketing name, e.g. `NVIDIA H100 80GB HBM3`.
    pub name: String,
    /// Compute capability, e.g. (9, 0) for Hopper: which kernels can run (tensor-core binary
    /// products need 8.0) and the architecture NVRTC compiles for.
    pub compute_capability: (i32, i32),
    /// Device memory in bytes.
    pub total_memory: usize,
    /// Device memory free when asked, in bytes (what the largest jobs are sized against).
    pub free_memory: usize,
    /// Streaming multiprocessors: how wide the device is.
    pub multiprocessors: i32,
}

/// What [`probe`] found.
#[derive(Clone, Debug, Serialize)]
#[serde(tag = "status", rename_all = "snake_case")]
pub enum Probe {
    /// libcuda could not be loaded: a machine without an NVIDIA driver.
    NoDriver,
    /// The driver loaded. `driver_version` is CUDA's encoding (13000 = 13.0).
    Devices {
        /// The newest CUDA version the driver supports, in CUDA's encoding.
        driver_version: i32,
        /// Every device the driver reports (possibly none).
        devices: Vec<DeviceInfo>,
        /// NVRTC found: kernels can be compiled.
        nvrtc: bool,
        /// cuBLAS found: products can run.
        cublas: bool,
    },
    /// The driver loaded but failed (no device, a broken install): the message says how.
    Error {
        /// What failed, as the driver reported it.
        message: String,
    },
}

/// `13000` -> `13.0`.
pub fn version_string(v: i32) -> String {
    format!("{}.{}", v / 1000, (v % 1000) / 10)
}

/// Whether libcuda can be loaded. Cheap; never panics.
pub fn driver_present() -> bool {
    // SAFETY: only dlopen()s the library and drops it.
    std::panic::catch_unwind(|| unsafe { sys::is_culib_present() }).unwrap_or(false)
}

pub(crate) fn nvrtc_present() -> bool {
    std::panic::catch_unwind(|| unsafe { cudarc::nvrtc::sys::is_culib_present() }).unwrap_or(false)
}

pub(crate) fn cublas_present() -> bool {
    std::panic::catch_unwind(|| unsafe { cudarc::cublas::sys::is_culib_present() }).unwrap_or(false)
}

/// Find the CUDA devices. Never panics and never fails: a machine without a driver is
/// [`Probe::NoDriver`].
pub fn probe() -> Probe {
    if !driver_present() {
        return Probe::NoDriver;
    }
    match guarded("device discovery", discover) {
        Ok((driver_version, devices)) => Probe::Devices {
            driver_version,
            devices,
            nvrtc: nvrtc_present(),
            cublas: cublas_present(),
        },
        Err(e) => Probe::Error {
            message: e.to_string(),
        },
    }
}

fn discover() -> Result<(i32, Vec<DeviceInfo>), GpuError> {
    result::init().map_err(|e| GpuError::cuda("cuInit", e))?;
    let mut version = 0;
    // SAFETY: the driver is loaded and initialized; the pointer is to a local.
    unsafe { sys::cuDriverGetVersion(&mut version) }
        .result()
        .map_err(|e| GpuError::cuda("cuDriverGetVersion", e))?;
    let count = CudaContext::device_count().map_err(|e| GpuError::cuda("device count", e))?;
    let mut devices = Vec::new();
    for ordinal in 0..count.max(0) as usize {
        let ctx = CudaContext::new(ordinal).map_err(|e| GpuError::cuda("context", e))?;
        let (free, total) = ctx
            .mem_get_info()
            .map_err(|e| GpuError::cuda("memory info", e))?;
        devices.push(DeviceInfo {
            ordinal,
            name: ctx.name().map_err(|e| GpuError::cuda("device name", e))?,
            compute_capability: ctx
                .compute_capability()
                .map_err(|e| GpuError::cuda("compute capability", e))?,
            total_memory: total,
            free_memory: free,
            multiprocessors: ctx
                .attribute(sys::CUdevice_attribute::CU_DEVICE_ATTRIBUTE_MULTIPROCESSOR_COUNT)
                .map_err(|e| GpuError::cuda("attribute", e))?,
        });
    }
    Ok((version, devices))
}

impl Probe {
    /// A plain-text report of what was found, one line per device (`strata gpu info` prints
    /// it, adding its own hints for the options).
    pub fn text(&self) -> String {
        match self {
            Probe::NoDriver => {
                "no CUDA driver found: strata runs on the CPU (the GPU paths need an NVIDIA GPU and \
                 its driver)\n"
                    .to_string()
            }
            Probe::Error { message } => {
                format!("a CUDA driver was found but cannot be used: {message}\n")
            }
            Probe::Devices {
                driver_version,
                devices,
                nvrtc,
                cublas,
            } => {
                let mut s = format!(
                    "CUDA driver {} ({} device{})\n",
                    version_string(*driver_version),
                    devices.len(),
                    if devices.len() == 1 { "" } else { "s" }
                );
                for d in devices {
                    s += &format!(
                        "  cuda:{}  {}  sm_{}{}  {} multiprocessors  {:.1} GiB ({:.1} GiB free)\n",
                        d.ordinal,
                        d.name,
                        d.compute_capability.0,
                        d.compute_capability.1,
                        d.multiprocessors,
                        d.total_memory as f64 / (1u64 << 30) as f64,
                        d.free_memory as f64 / (1u64 << 30) as f64,
                    );
                }
                let yes = |b: bool| if b { "found" } else { "NOT found" };
                s += &format!("  NVRTC {}, cuBLAS {}\n", yes(*nvrtc), yes(*cublas));
                s
            }
        }
    }
}
