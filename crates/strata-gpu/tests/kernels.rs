//! The CUDA sources compile, for every architecture strata targets, wherever NVRTC can be
//! loaded: no GPU is needed to compile (NVRTC runs ptxas for a real `sm_XY`, so the tensor-core
//! kernel's inline PTX is checked too). Without libnvrtc the test says so and passes.
#![allow(clippy::unwrap_used)] // in tests, a failed unwrap is a failed test, with its location

use strata_gpu::kernels::{
    compile, nvrtc_available, nvrtc_version, BINARY_KERNELS, BINARY_SRC, GRAM_KERNELS, GRAM_SRC,
    MLP_KERNELS, MLP_SRC,
};

fn contains(hay: &[u8], needle: &str) -> bool {
    hay.windows(needle.len()).any(|w| w == needle.as_bytes())
}

#[test]
fn kernels_compile_for_turing_ampere_and_hopper() {
    if !nvrtc_available() {
        eprintln!(
            "SKIPPED: libnvrtc not found, kernels not compiled (run tests/gpu-check.sh, or put \
             libnvrtc.so on LD_LIBRARY_PATH)"
        );
        return;
    }
    let (major, minor) = nvrtc_version().expect("version");
    eprintln!("NVRTC {major}.{minor}");
    for arch in ["sm_75", "sm_80", "sm_86", "sm_90"] {
        for (name, src, kernels) in [
            ("gram.cu", GRAM_SRC, GRAM_KERNELS),
            ("binary.cu", BINARY_SRC, BINARY_KERNELS),
            ("mlp.cu", MLP_SRC, MLP_KERNELS),
        ] {
            let c = compile(name, src, arch).unwrap_or_else(|e| panic!("{e}"));
            assert!(
                c.cubin.starts_with(b"\x7fELF"),
                "{name} {arch}: not an ELF cubin"
            );
            for k in kernels {
                assert!(contains(&c.cubin, k), "{name} {arch}: kernel {k} missing");
            }
            assert!(
                !c.log.contains("warning"),
                "{name} {arch}: NVRTC warnings:\n{}",
                c.log
            );
        }
    }
}

#[test]
fn a_broken_kernel_is_a_compile_error_with_the_log() {
    if !nvrtc_available() {
        eprintln!("SKIPPED: libnvrtc not found");
        return;
    }
    let e = compile(
        "broken.cu",
        "extern \"C\" __global__ void f() { undefined_thing(); }",
        "sm_90",
    )
    .err()
    .expect("must fail");
    let msg = e.to_string();
    assert!(
        msg.contains("broken.cu") && msg.contains("undefined_thing"),
        "{msg}"
    );
}
