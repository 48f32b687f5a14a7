//! Asking for a GPU on any machine returns a value or an error, never a panic, and `auto`
//! always resolves (to the CPU when there is no GPU).
#![allow(clippy::unwrap_used)] // in tests, a failed unwrap is a failed test, with its location

use strata_gpu::{Device, DeviceChoice, Gpu, Workload};

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
    match DeviceChoice::Auto.resolve() {
        Ok(_) => {}
        Err(e) => panic!("auto must fall back to the CPU, got {e}"),
    }
    let auto = Device::resolve(DeviceChoice::Auto).unwrap_or_else(|e| panic!("{e}"));
    // The RBF kernel runs on the CPU under auto, whatever the machine has.
    assert!(matches!(auto.for_workload(&Workload::RbfHsic), Ok(None)));
    let on_gpu = auto.for_workload(&Workload::LinearHsic);
    assert_eq!(on_gpu.map(|g| g.is_some()), Ok(auto.gpu().is_some()));
}
