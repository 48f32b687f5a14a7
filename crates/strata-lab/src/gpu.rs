//! `strata gpu info|check` and the GPU benchmarks.

use anyhow::{Context, Result};
use serde::Serialize;
use std::sync::Arc;
use strata_gpu::{bench, check, DeviceChoice, Gpu, GpuHsic};

/// The GPU a `--device` asks for (`None`: the CPU), with a note on stderr when `auto` finds
/// one, so a user always knows where the work ran.
pub fn resolve(device: DeviceChoice, quiet: bool) -> Result<Option<Arc<Gpu>>> {
    let gpu = device
        .resolve()
        .with_context(|| format!("--device {device}"))?;
    if let (Some(g), false) = (&gpu, quiet) {
        eprintln!("running on {}", g.label());
    }
    Ok(gpu)
}

/// The HSIC backend for `--device`: the GPU for the linear kernel, else the CPU (`auto` falls
/// back silently; `cuda` with the RBF kernel is an error).
pub fn hsic_backend(
    device: DeviceChoice,
    linear: bool,
    quiet: bool,
) -> Result<Box<dyn strata_sim::HsicBackend>> {
    if !linear {
        if device == DeviceChoice::Cuda {
            anyhow::bail!(
                "the RBF kernel runs on the CPU only; use --device cpu or auto (or --kernel linear)"
            );
        }
        return Ok(Box::new(strata_sim::Cpu));
    }
    Ok(match resolve(device, quiet)? {
        Some(g) => Box::new(GpuHsic::new(g)),
        None => Box::new(strata_sim::Cpu),
    })
}

/// The GPU a trained network runs on for `--device` (`None`: the CPU). The GPU engines run
/// MLPs; a convolutional network stays on the CPU under `auto` and is an error under `cuda`.
pub fn net_device(
    device: DeviceChoice,
    net: &strata_nn::net::Net,
    quiet: bool,
) -> Result<Option<Arc<Gpu>>> {
    if device != DeviceChoice::Cpu && !net.is_mlp() {
        if device == DeviceChoice::Cuda {
            anyhow::bail!(
                "--device cuda: the GPU engines run MLPs, and this is a {} network; use \
                 --device cpu (or auto, which runs it on the CPU)",
                net.config.architecture.name()
            );
        }
        return Ok(None);
    }
    resolve(device, quiet)
}

/// `strata gpu info`: exit 0 whatever the machine has.
pub fn info(json: bool) -> Result<()> {
    let p = strata_gpu::probe();
    if json {
        println!("{}", serde_json::to_string(&p)?);
    } else {
        print!("{}", p.text());
    }
    Ok(())
}

/// `strata gpu check`: the GPU against the CPU; a skip notice (exit 0) without a GPU.
pub fn check(seed: u64, json: bool) -> Result<()> {
    let gpu = match Gpu::first() {
        Ok(g) => g,
        Err(e @ (strata_gpu::GpuError::NoDriver | strata_gpu::GpuError::NoDevice)) => {
            println!("skipped: {e}");
            return Ok(());
        }
        Err(e) => return Err(e.into()),
    };
    let r = check::run(gpu, seed)?;
    if json {
        println!("{}", serde_json::to_string(&r)?);
    } else {
        print!("{}", r.text());
    }
    if !r.ok() {
        anyhow::bail!("the GPU disagrees with the CPU (see the FAIL lines above)");
    }
    Ok(())
}

/// Versions and device for benchmark records.
#[derive(Serialize)]
pub struct GpuBenchRecord<T: Serialize> {
    pub device: String,
    pub driver: String,
    pub nvrtc: String,
    pub results: T,
}

pub fn record<T: Serialize>(gpu: &Gpu, results: T) -> GpuBenchRecord<T> {
    let driver = match strata_gpu::probe() {
        strata_gpu::Probe::Devices { driver_version, .. } => {
            strata_gpu::info::version_string(driver_version)
        }
        _ => "?".into(),
    };
    let nvrtc = strata_gpu::kernels::nvrtc_version()
        .map(|(a, b)| format!("{a}.{b}"))
        .unwrap_or_else(|_| "?".into());
    GpuBenchRecord {
        device: gpu.label(),
        driver,
        nvrtc,
        results,
    }
}

/// Markdown for `strata bench binary-gemm --device cuda`.
pub fn binary_markdown(r: &GpuBenchRecord<Vec<bench::BinaryGemmGpuRow>>) -> String {
    let mut s = format!(
        "### binary GEMM on {} vs cuBLAS SGEMM and FP16 tensor-core GEMM (driver CUDA {}, NVRTC {})\n\n\
         | shape (m x n x k) | kernel | binary | SGEMM | FP16 | binary TMAC/s | SGEMM TMAC/s | FP16 TMAC/s | vs SGEMM | vs FP16 |\n\
         |---|---|---:|---:|---:|---:|---:|---:|---:|---:|\n",
        r.device, r.driver, r.nvrtc
    );
    let or_na = |v: Option<f64>, f: &dyn Fn(f64) -> String| v.map_or("n/a".to_string(), f);
    for x in &r.results {
        s += &format!(
            "| {} ({} x {} x {}) | {} | {:.3} ms | {:.3} ms | {} | {:.1} | {:.1} | {} | {:.1}x | {} |\n",
            x.label,
            x.m,
            x.n,
            x.k,
            x.kernel.name(),
            x.binary_seconds * 1e3,
            x.sgemm_seconds * 1e3,
            or_na(x.fp16_seconds, &|t| format!("{:.3} ms", t * 1e3)),
            x.binary_macs_per_s / 1e12,
            x.sgemm_macs_per_s / 1e12,
            or_na(x.fp16_macs_per_s, &|v| format!("{:.1}", v / 1e12)),
            x.speedup_over_sgemm,
            or_na(x.speedup_over_fp16, &|v| format!("{v:.1}x")),
        );
    }
    let checked: usize = r.results.iter().map(|x| x.checked_rows).sum();
    s += &format!(
        "\nEvery product above was checked exactly, all columns of {checked} sampled rows in all \
         (the first, the last and up to 6 drawn at random per shape and kernel), \
         against a direct ±1 dot product on the host.\n"
    );
    // One line per shape (every kernel's row carries the same FP16 baseline).
    let mut told = Vec::new();
    for x in &r.results {
        if let Some(e) = &x.fp16_error {
            if !told.contains(&(x.m, x.n, x.k)) {
                told.push((x.m, x.n, x.k));
                s += &format!("FP16 n/a for {} x {} x {}: {e}\n", x.m, x.n, x.k);
            }
        }
    }
    s
}

/// Markdown for `strata bench gram --device cuda`.
pub fn gram_markdown(r: &GpuBenchRecord<bench::GramGpuReport>) -> String {
    let g = &r.results;
    let mut s = format!(
        "### all-pairs linear CKA on {} (driver CUDA {}), n = {}, widths {:?} x 2 models\n\n\
         | path | seconds | note |\n|---|---:|---|\n",
        r.device, r.driver, g.n, g.widths
    );
    s += &format!(
        "| GPU end to end (upload, centering, products, reductions) | {:.4} | |\n",
        g.gpu_seconds
    );
    s += &format!(
        "| bare cuBLAS SGEMMs of the same shapes | {:.4} | GEMM efficiency {:.0}% |\n",
        g.sgemm_floor_seconds,
        100.0 * g.gemm_efficiency
    );
    s += &format!(
        "| GPU with TF32 products | {:.4} | max CKA error vs f32 {:.2e} |\n",
        g.tf32_seconds, g.tf32_max_abs_error
    );
    if let (Some(c), Some(x), Some(d)) = (g.cpu_seconds, g.speedup_over_cpu, g.max_rel_diff_vs_cpu)
    {
        s += &format!(
            "| CPU (faer, {} threads) | {:.4} | GPU {:.1}x faster; max rel. diff {:.1e} |\n",
            rayon::current_num_threads(),
            c,
            x,
            d
        );
    }
    s
}
