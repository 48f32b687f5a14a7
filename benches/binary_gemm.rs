//! `cargo bench -p strata-lab --bench binary_gemm`: the same measurements as
//! `strata bench binary-gemm`.

fn main() {
    let shapes = strata_lab::bench::binary_gemm_shapes(4096);
    let rows = strata_lab::bench::binary_gemm(&shapes, 3, 7);
    print!("{}", strata_lab::bench::binary_gemm_markdown(&rows));
}
