//! `cargo bench -p strata-cli --bench binary_gemm`: the same measurements as
//! `strata bench binary-gemm`.

fn main() {
    let shapes = vec![
        ("square".to_string(), 4096, 4096, 4096),
        ("MLP fc2, batch 256".to_string(), 256, 1024, 1024),
        ("MLP fc1 shape, batch 256".to_string(), 256, 1024, 784),
        ("MLP logits, batch 256".to_string(), 256, 10, 1024),
    ];
    let rows = strata_cli::bench::binary_gemm(&shapes, 3, 7);
    print!("{}", strata_cli::bench::binary_gemm_markdown(&rows));
}
