//! `strata gpu info|check`: what CUDA this machine has, and whether the GPU agrees with the CPU.

use anyhow::Result;
use strata_lab::gpu;

/// CUDA GPUs: what this machine has (`info`), and whether the GPU paths agree with the
/// CPU on it (`check`). Every command runs without a GPU; `--device auto` uses one when
/// present.
#[derive(clap::Args)]
pub struct GpuArgs {
    #[command(subcommand)]
    which: GpuCmd,
}

#[derive(clap::Subcommand)]
enum GpuCmd {
    /// The CUDA devices, driver and libraries found; "no CUDA driver found" (exit 0) elsewhere.
    Info {
        #[arg(long)]
        json: bool,
    },
    /// Binary GEMM (both kernels, device and CPU packing) and linear CKA (biased, debiased,
    /// features and Gram forms) on the GPU against the CPU, on random inputs of awkward sizes:
    /// integers must be equal, CKA within 1e-5 relative. Prints a skip notice without a GPU.
    Check {
        /// Seed for the random inputs [default: from the clock].
        #[arg(long)]
        seed: Option<u64>,
        #[arg(long)]
        json: bool,
    },
}

impl GpuArgs {
    pub fn exec(self) -> Result<()> {
        match self.which {
            GpuCmd::Info { json } => {
                let p = gpu::info_report();
                if json {
                    println!("{}", serde_json::to_string(&p)?);
                } else {
                    print!("{}", info_text(&p));
                }
                Ok(())
            }
            GpuCmd::Check { seed, json } => {
                let seed = seed.unwrap_or_else(|| {
                    std::time::SystemTime::now()
                        .duration_since(std::time::UNIX_EPOCH)
                        .map(|d| d.as_nanos() as u64)
                        .unwrap_or(1)
                });
                check(seed, json)
            }
        }
    }
}

/// The text `strata gpu info` prints for `p`: the library's report, with what each `--device`
/// does on a machine without a driver.
fn info_text(p: &strata_gpu::Probe) -> String {
    match p {
        strata_gpu::Probe::NoDriver => "no CUDA driver found: strata runs on the CPU (--device \
                                        auto and cpu work; --device cuda needs an NVIDIA GPU \
                                        and its driver)\n"
            .to_string(),
        p => p.text(),
    }
}

/// The GPU against the CPU; a skip notice (exit 0) without a GPU, an error after the report
/// when a comparison failed.
fn check(seed: u64, json: bool) -> Result<()> {
    let r = match gpu::check_report(seed)? {
        gpu::CheckOutcome::Skipped(why) => {
            println!("skipped: {why}");
            return Ok(());
        }
        gpu::CheckOutcome::Ran(r) => r,
    };
    if json {
        println!("{}", serde_json::to_string(&r)?);
    } else {
        print!("{}", r.text());
    }
    if !r.ok() {
        anyhow::bail!(gpu::CHECK_FAILED);
    }
    Ok(())
}
