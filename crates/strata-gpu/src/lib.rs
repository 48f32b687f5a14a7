//! CUDA acceleration for strata, found at run time: the GPU engines and the rules for where
//! work runs.
//!
//! Every binary strata builds runs on a machine without CUDA: cudarc loads the driver, NVRTC
//! and cuBLAS with `dlopen` when a GPU path is first asked for, and this crate checks that each
//! library is present before touching it (creating a context without a driver would panic).
//! So [`DeviceChoice::Auto`] means "the GPU when there is one", and [`DeviceChoice::Cuda`] on a
//! machine without one is a clear error, never a crash. Which workloads the GPU engines can run
//! is decided in one place, [`supports`], and a [`Device`] resolved once says where each
//! [`Workload`] goes. Messages name no command-line option: front ends add their own hints.
//!
//! The engines:
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
//! Besides the engines: device discovery ([`probe`]), the cuBLAS baselines and device timing
//! benchmarks need ([`timing`]), and a check of the pinned upload path ([`StagingCheck`]). The
//! self-check against the CPU and the benchmarks themselves live in strata-lab, on this API.
//!
//! Kernels are CUDA C in `src/kernels/`, compiled by NVRTC for the device's own architecture
//! when a context is created ([`kernels::compile`]); the same sources compile here without a
//! GPU whenever libnvrtc can be loaded, which the tests use to check them.

pub mod binary;
mod context;
mod device;
mod error;
mod hsic;
pub mod info;
pub mod kernels;
pub mod mlp;
mod staging;
pub mod timing;

pub use binary::{BinaryKernel, GpuBinaryGemm, PackedDevice};
pub use context::Gpu;
pub use device::{supports, Device, DeviceChoice, Unsupported, Workload};
pub use error::GpuError;
pub use hsic::GpuHsic;
pub use info::{probe, DeviceInfo, Probe};
pub use mlp::{GpuMlp, MlpBatch, MlpEngine, Record};
pub use staging::StagingCheck;
