//! `cargo bench -p strata-lab`: the same measurements as `strata bench cka`, with its defaults.
//!
//! Set STRATA_BENCH_QUICK=1 for a small run (n = 1000, no streaming test) while iterating.
#![allow(clippy::unwrap_used)] // in tests, a failed unwrap is a failed test, with its location

use strata_lab::bench::{run, BenchCkaArgs};
use strata_lab::progress::{Progress, Silent, Task};

/// Log lines and warnings on stderr, no bars (a benchmark's output is often piped).
struct Lines;

impl Progress for Lines {
    fn task(&self, label: &str, unit: &str, total: u64) -> Box<dyn Task> {
        Silent.task(label, unit, total)
    }
    fn log(&self, line: &str) {
        eprintln!("{line}");
    }
    fn warn(&self, line: &str) {
        eprintln!("{line}");
    }
}

fn main() {
    let quick = std::env::var_os("STRATA_BENCH_QUICK").is_some();
    let args = BenchCkaArgs {
        n: if quick { 1000 } else { 5000 },
        widths: vec![256, 512, 1024, 2048],
        repeat: 3,
        seed: 2019,
        python: Some("python3".into()),
        stream_n: if quick { 0 } else { 200_000 },
        stream_features: 1024,
        stream_batch: 1024,
        scratch: std::env::temp_dir(),
    };
    match run(&args, &Lines) {
        Ok(report) => print!("{}", report.markdown()),
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::exit(1);
        }
    }
}
