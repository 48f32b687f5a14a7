//! `cargo bench -p strata-cli --bench binary_gemm`: the same measurements as
//! `strata bench binary-gemm`.

fn main() {
    let shapes = strata_cli::bench::binary_gemm_shapes(4096);
    let rows = strata_cli::bench::binary_gemm(&shapes, 3, 7);
    print!("{}", strata_cli::bench::binary_gemm_markdown(&rows));
}
