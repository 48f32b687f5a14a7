//! The CUDA C sources and their compilation by NVRTC.
//!
//! Kernels are compiled when a [`crate::Gpu`] is created, for that device's own architecture
//! (`sm_XY`, so NVRTC runs ptxas and the driver loads machine code with no JIT step). The same
//! function compiles them on a machine without a GPU when libnvrtc is present, which is how the
//! tests check the sources, the inline PTX of the tensor-core kernel included, everywhere.

use crate::GpuError;
use cudarc::nvrtc::{result, sys};
use std::ffi::{c_char, CStr, CString};

/// Centering, scaling, row terms and f64 reductions for HSIC.
pub const GRAM_SRC: &str = include_str!("kernels/gram.cu");
/// Bit packing and the two binary GEMM kernels.
pub const BINARY_SRC: &str = include_str!("kernels/binary.cu");
/// Batch norm, activations and sign packing between a dense network's products.
pub const MLP_SRC: &str = include_str!("kernels/mlp.cu");

/// Kernel entry points of each source, checked after compilation (a kernel renamed in the
/// source but not in the host code would otherwise fail only on a GPU): those of
/// [`GRAM_SRC`].
pub const GRAM_KERNELS: &[&str] = &[
    "column_sums",
    "center_columns",
    "scale",
    "row_sq_norms",
    "row_dot_minus",
    "zero_diag_row_sums",
    "dot",
];
/// The entry points of [`BINARY_SRC`].
pub const BINARY_KERNELS: &[&str] = &["pack_signs", "row_popcounts", "xor_gemm", "mma_and_gemm"];
/// The entry points of [`MLP_SRC`].
pub const MLP_KERNELS: &[&str] = &[
    "bn_act",
    "bn_logits_f32",
    "bn_logits_i32",
    "bn_sign_pack_f32",
    "bn_sign_pack_i32",
];

/// Machine code for one architecture.
pub struct Compiled {
    /// An ELF cubin the driver loads with no JIT step.
    pub cubin: Vec<u8>,
    /// NVRTC's log (warnings), empty when clean.
    pub log: String,
}

/// Whether NVRTC can be loaded on this machine.
pub fn nvrtc_available() -> bool {
    crate::info::nvrtc_present()
}

/// NVRTC's version, `(major, minor)`.
pub fn nvrtc_version() -> Result<(i32, i32), GpuError> {
    if !nvrtc_available() {
        return Err(GpuError::MissingLibrary("libnvrtc"));
    }
    let (mut major, mut minor) = (0, 0);
    // SAFETY: plain out-parameters.
    unsafe { sys::nvrtcVersion(&mut major, &mut minor) }
        .result()
        .map_err(|e| GpuError::cuda("nvrtcVersion", e))?;
    Ok((major, minor))
}

/// Compile `src` (named `name` in messages) to a cubin for `arch` (e.g. `sm_90`).
pub fn compile(name: &'static str, src: &str, arch: &str) -> Result<Compiled, GpuError> {
    if !nvrtc_available() {
        return Err(GpuError::MissingLibrary("libnvrtc"));
    }
    crate::error::guarded("NVRTC", || compile_inner(name, src, arch))
}

fn compile_inner(name: &'static str, src: &str, arch: &str) -> Result<Compiled, GpuError> {
    let csrc =
        CString::new(src).map_err(|_| GpuError::Unsupported("NUL in kernel source".into()))?;
    let cname = CString::new(name).expect("kernel names have no NUL");
    let prog = result::create_program(&csrc, Some(&cname))
        .map_err(|e| GpuError::cuda("nvrtcCreateProgram", e))?;
    let options = [
        format!("--gpu-architecture={arch}"),
        "--std=c++17".to_string(),
        // Results must match the CPU path: no flush-to-zero, IEEE division and square root.
        "--ftz=false".to_string(),
        "--prec-div=true".to_string(),
        "--prec-sqrt=true".to_string(),
    ];
    // SAFETY: `prog` is a live program; options are valid C strings for the call.
    let compiled = unsafe { result::compile_program(prog, &options) };
    let log = unsafe { result::get_program_log(prog) }
        .map(|raw| {
            // SAFETY: NVRTC returns a NUL-terminated log.
            unsafe { CStr::from_ptr(raw.as_ptr()) }
                .to_string_lossy()
                .trim()
                .to_string()
        })
        .unwrap_or_default();
    let out = match compiled {
        Err(_) => Err(GpuError::Compile {
            name,
            arch: arch.to_string(),
            log: log.clone(),
        }),
        Ok(()) => cubin(prog).map(|cubin| Compiled {
            cubin,
            log: log.clone(),
        }),
    };
    // SAFETY: destroyed once, after the last use.
    let _ = unsafe { result::destroy_program(prog) };
    out
}

fn cubin(prog: sys::nvrtcProgram) -> Result<Vec<u8>, GpuError> {
    let mut size = 0usize;
    // SAFETY: `prog` compiled for a real architecture, so a cubin exists.
    unsafe { sys::nvrtcGetCUBINSize(prog, &mut size) }
        .result()
        .map_err(|e| GpuError::cuda("nvrtcGetCUBINSize", e))?;
    let mut buf = vec![0u8; size];
    unsafe { sys::nvrtcGetCUBIN(prog, buf.as_mut_ptr() as *mut c_char) }
        .result()
        .map_err(|e| GpuError::cuda("nvrtcGetCUBIN", e))?;
    Ok(buf)
}
