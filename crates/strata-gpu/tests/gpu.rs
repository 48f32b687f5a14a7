//! GPU results equal the CPU path (integers exactly, CKA within 1e-5 relative) on random
//! inputs of awkward sizes. On a machine without a GPU this prints a skip notice and passes:
//! run `bash tests/gpu-check.sh` on a GPU machine for the real check.

use strata_gpu::{check, Gpu, GpuError};

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

#[test]
fn no_gpu_is_an_error_not_a_panic() {
    // Whatever the machine has, asking for the GPU returns (a value or an error); asking for
    // a device that cannot exist is an error.
    let _ = Gpu::first();
    if let Ok(g) = Gpu::new(usize::MAX / 2) {
        panic!(
            "device {usize} cannot exist, got {g:?}",
            usize = usize::MAX / 2
        );
    }
    match strata_gpu::DeviceChoice::Auto.resolve() {
        Ok(_) => {}
        Err(e) => panic!("auto must fall back to the CPU, got {e}"),
    }
}
