//! GPU results equal the CPU path (integers exactly, CKA within 1e-5 relative) on random
//! inputs of awkward sizes. On a machine without a GPU this prints a skip notice and passes:
//! run `bash tests/gpu-check.sh` on a GPU machine for the real check.
#![allow(clippy::unwrap_used)] // in tests, a failed unwrap is a failed test, with its location

use strata_gpu::{Gpu, GpuError};
use strata_lab::gpu::check;

#[test]
fn gpu_matches_cpu_on_awkward_sizes() {
    let gpu = match Gpu::first() {
        Ok(g) => g,
        Err(e @ (GpuError::NoDriver | GpuError::NoDevice)) => {
            eprintln!("SKIPPED: {e} (the GPU checks need an NVIDIA GPU: bash tests/gpu-check.sh)");
            return;
        }
        Err(e) => panic!("a GPU is present but unusable: {e}"),
    };
    let seed = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(1);
    let report = check::run(gpu, seed).unwrap_or_else(|e| panic!("{e}"));
    eprint!("{}", report.text());
    assert!(report.ok(), "{}", report.text());
}
