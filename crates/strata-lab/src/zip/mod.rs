//! `strata zip`: lossless compression with strata-zip's predictors (compress, decompress, info),
//! synthetic sources with known entropy (gen), and a side-by-side benchmark against gzip, bzip2,
//! xz and zstd (bench).

pub mod bench;
pub mod files;

pub use bench::{bench, BenchArgs};
pub use files::{compress_file, decompress_file, gen_file, info_file};
