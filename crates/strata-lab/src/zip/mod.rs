//! `strata zip`: lossless compression with strata-zip's predictors (compress, decompress, info),
//! synthetic sources with known entropy (gen), and a side-by-side benchmark against gzip, bzip2,
//! xz and zstd, and against lstm-compress, cmix and nncp where installed (bench).

pub mod bench;
pub mod files;

pub use bench::{bench, bench_with, Baselines, BenchArgs, BenchReport};
pub use files::{compress_file, decompress_file, gen_file, info_file};
