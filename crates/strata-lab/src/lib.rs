//! The strata pipeline as a library: analysis specs, the content-addressed cache, the runner
//! and its reports, the membership-inference audit protocol, and the work behind each command
//! (train, eval, collect, compare, compress, benchmarks), so that the `strata` binary, tests,
//! benchmarks and other front ends all call the same code. Front ends parse their own options
//! and format what these functions return; an error about an option the user chose is a
//! [`SettingError`], which names it in neutral words that each front end replaces with its own.

pub mod analysis;
pub mod attack;
pub mod bench;
pub mod bench_mlp;
pub mod bench_train;
pub mod compare;
pub mod gpu;
pub mod hashing;
pub mod measure;
pub mod mia;
pub mod outset;
pub mod progress;
pub mod robustness;
pub mod setting;
pub mod train;
pub mod zip;

pub use setting::{Setting, SettingError};
pub use strata_data::memory::{available_bytes as available_memory_bytes, human_bytes};

/// Peak resident memory of this process so far (Linux `VmHWM`), in bytes.
pub fn peak_rss_bytes() -> Option<u64> {
    let s = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = s.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}
