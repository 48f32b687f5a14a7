//! `cargo bench -p strata-lab --bench binary_gemm`: the same measurements as
//! `strata bench binary-gemm`.
#![allow(clippy::unwrap_used)] // in tests, a failed unwrap is a failed test, with its location

fn main() {
    let shapes = strata_lab::bench::binary_gemm_shapes(4096);
    let rows = strata_lab::bench::binary_gemm(&shapes, 3, 7);
    print!("{}", strata_lab::bench::binary_gemm_markdown(&rows));
}
