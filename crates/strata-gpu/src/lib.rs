//! CUDA acceleration for strata, found at run time.
//!
//! Every binary strata builds runs on a machine without CUDA: cudarc loads the driver, NVRTC
//! and cuBLAS with `dlopen` when a GPU path is first asked for, and this crate checks that each
//! library is present before touching it (creating a context without a driver would panic).
//! So `--device auto` means "the GPU when there is one", and `--device cuda` on a machine
//! without one is a clear error, never a crash.
//!
//! What runs on the GPU:
//! * linear HSIC / CKA of all layer pairs ([`GpuHsic`], an [`strata_sim::HsicBackend`]): each
//!   layer is uploaded once, centered and scaled by NVRTC kernels, and every product is a
//!   cuBLAS SGEMM (optionally TF32) reduced to a scalar in f64 on the device;
//! * binary matrix products on packed bits ([`GpuBinaryGemm`]): a shared-memory tiled
//!   XOR-popcount kernel on the CUDA cores, and a tensor-core kernel on `mma.sync` b1 operands
//!   in the AND form that Hopper keeps;
//! * trained MLPs with their weights resident ([`GpuMlp`]): the float engine (SGEMM, batch norm
//!   and activation kernels) and the bit-packed `w1a1` engine (activations packed to bits on
//!   the device, binary layers on the kernels above).
//!
//! Kernels are CUDA C in `src/kernels/`, compiled by NVRTC for the device's own architecture
//! when a context is created ([`kernels::compile`]); the same sources compile here without a
//! GPU whenever libnvrtc can be loaded, which the tests use to check them.

pub mod bench;
pub mod binary;
pub mod check;
mod check_mlp;
mod context;
mod error;
mod hsic;
pub mod info;
pub mod kernels;
pub mod mlp;
mod staging;

pub use binary::{BinaryKernel, GpuBinaryGemm, PackedDevice};
pub use context::Gpu;
pub use error::GpuError;
pub use hsic::GpuHsic;
pub use info::{probe, DeviceInfo, Probe};
pub use mlp::{GpuMlp, MlpBatch, MlpEngine, Record};

use std::sync::Arc;

/// Where a computation runs, as the user asks for it (`--device cpu|cuda|auto`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DeviceChoice {
    /// Always the CPU.
    Cpu,
    /// The first CUDA GPU; an error if there is none.
    Cuda,
    /// The first CUDA GPU if there is one, else the CPU.
    #[default]
    Auto,
}

impl DeviceChoice {
    /// Parse `cpu`, `cuda` (or `gpu`), `auto`.
    pub fn parse(s: &str) -> Option<Self> {
        match s.trim().to_ascii_lowercase().as_str() {
            "cpu" => Some(DeviceChoice::Cpu),
            "cuda" | "gpu" => Some(DeviceChoice::Cuda),
            "auto" => Some(DeviceChoice::Auto),
            _ => None,
        }
    }

    /// The name as the user writes it.
    pub fn name(self) -> &'static str {
        match self {
            DeviceChoice::Cpu => "cpu",
            DeviceChoice::Cuda => "cuda",
            DeviceChoice::Auto => "auto",
        }
    }

    /// Decide: `Ok(None)` is the CPU, `Ok(Some(gpu))` the first GPU. `Cuda` without a usable
    /// GPU is an error that says why; `Auto` falls back to the CPU silently.
    pub fn resolve(self) -> Result<Option<Arc<Gpu>>, GpuError> {
        match self {
            DeviceChoice::Cpu => Ok(None),
            DeviceChoice::Cuda => Gpu::first().map(Some),
            DeviceChoice::Auto => Ok(Gpu::first().ok()),
        }
    }
}

impl std::fmt::Display for DeviceChoice {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}
