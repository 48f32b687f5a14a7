//! The GPU behind every command: where work runs for a device choice (the capability rules
//! are strata-gpu's; this layer adds what to do instead, as [`SettingError`]s about the device,
//! which each front end words), `strata gpu info|check`, and the GPU benchmarks' records and
//! Markdown.
//!
//! The self-check against the CPU ([`check`]) and the GPU benchmarks ([`bench`](mod@bench))
//! live here, on strata-gpu's public engine API, so that strata-gpu stays the engines.

pub mod bench;
pub mod check;
mod check_mlp;

use crate::setting::{Setting, SettingError};
use anyhow::Result;
use serde::Serialize;
use std::sync::Arc;
use strata_gpu::{DeviceChoice, Gpu, GpuError, GpuHsic, Probe, Unsupported, Workload};

/// `e`, met resolving `device`, as an error about the device: with what to do instead when there
/// is no GPU (the library names no options).
fn hinted(device: DeviceChoice, e: GpuError) -> SettingError {
    match e {
        GpuError::NoDriver | GpuError::NoDevice => {
            SettingError::new(Setting::Device, format!(" {device}: {e}; use cpu or auto"))
        }
        e => SettingError::new(Setting::Device, format!(" {device}")).because(e),
    }
}

/// The choice that applies to `workload` under `device`: strata-gpu's rules
/// ([`DeviceChoice::for_workload`]), with a refusal under `cuda` saying what to do instead.
fn placement(device: DeviceChoice, workload: &Workload) -> Result<DeviceChoice> {
    device.for_workload(workload).map_err(|e| {
        let instead = match e {
            Unsupported::RbfKernel => "use cpu or auto, or the linear kernel",
            Unsupported::NotMlp { .. } => "use cpu (or auto, which runs it on the CPU)",
        };
        SettingError::new(Setting::Device, format!(" {device}: {e}; {instead}")).into()
    })
}

/// The GPU a device choice asks for (`None`: the CPU).
pub fn resolve(device: DeviceChoice) -> Result<Option<Arc<Gpu>>> {
    Ok(device.resolve().map_err(|e| hinted(device, e))?)
}

/// The line a front end shows when work runs on `gpu`, so a user always knows where it ran.
pub fn running_on(gpu: &Gpu) -> String {
    format!("running on {}", gpu.label())
}

/// Where HSIC with the linear (`linear`) or RBF kernel runs for `device` (`None`: the CPU):
/// the GPU for the linear kernel; the RBF kernel on the CPU under `auto` and
/// an error under `cuda`.
pub fn hsic_device(device: DeviceChoice, linear: bool) -> Result<Option<Arc<Gpu>>> {
    let workload = if linear {
        Workload::LinearHsic
    } else {
        Workload::RbfHsic
    };
    resolve(placement(device, &workload)?)
}

/// The HSIC backend that runs on `gpu` (`None`: the CPU).
pub fn hsic_backend_on(gpu: Option<Arc<Gpu>>) -> Box<dyn strata_sim::HsicBackend> {
    match gpu {
        Some(g) => Box::new(GpuHsic::new(g)),
        None => Box::new(strata_sim::Cpu),
    }
}

/// The GPU a trained network runs on for `device` (`None`: the CPU). The
/// GPU engines run MLPs; another network stays on the CPU under `auto` and is an error under
/// `cuda`.
pub fn net_device(device: DeviceChoice, net: &strata_nn::net::Net) -> Result<Option<Arc<Gpu>>> {
    resolve(placement(device, &Workload::network(net))?)
}

/// What `strata gpu info` reports: [`strata_gpu::probe`] (never fails; without a driver it is
/// [`Probe::NoDriver`]). Its JSON form is serde's; [`Probe::text`] is the text form, to which a
/// front end adds what its device options do on a machine without a driver.
pub fn info_report() -> Probe {
    strata_gpu::probe()
}

/// What `strata gpu check` found.
#[derive(Clone, Debug)]
pub enum CheckOutcome {
    /// No GPU on this machine (not a failure): why, as the user sees it. Shown as
    /// `skipped: {reason}`.
    Skipped(String),
    /// The comparisons; [`check::CheckReport::ok`] says whether all passed.
    Ran(check::CheckReport),
}

/// The error `strata gpu check` ends with when a comparison failed (after showing the report).
pub const CHECK_FAILED: &str = "the GPU disagrees with the CPU (see the FAIL lines above)";

/// `strata gpu check`: the GPU against the CPU ([`check::run`]), or a skip
/// without a GPU. Failed comparisons are in the report, not an error.
pub fn check_report(seed: u64) -> Result<CheckOutcome> {
    let gpu = match Gpu::first() {
        Ok(g) => g,
        Err(e @ (GpuError::NoDriver | GpuError::NoDevice)) => {
            return Ok(CheckOutcome::Skipped(e.to_string()));
        }
        Err(e) => return Err(e.into()),
    };
    Ok(CheckOutcome::Ran(check::run(gpu, seed)?))
}

/// Versions and device for benchmark records.
#[derive(Serialize)]
pub struct GpuBenchRecord<T: Serialize> {
    /// The GPU's label (`cuda:N NAME (sm_XY)`).
    pub device: String,
    /// CUDA driver version (`?` when unknown).
    pub driver: String,
    /// NVRTC version (`?` when unknown).
    pub nvrtc: String,
    /// The benchmark's own results.
    pub results: T,
}

/// `results` with the device, driver and NVRTC versions they were measured with.
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

#[cfg(test)]
mod tests {
    use super::*;
    use strata_nn::net::Architecture;

    /// The library's messages name no option: each refusal is about the device, in neutral
    /// words that a front end replaces with its own ([`SettingError::worded`]).
    #[test]
    fn messages_name_no_option() {
        let setting = |e: &anyhow::Error| {
            let s = e.downcast_ref::<SettingError>().expect("a setting error");
            assert_eq!(s.setting, Setting::Device);
            s.worded("--device")
        };
        let rbf = placement(DeviceChoice::Cuda, &Workload::RbfHsic).unwrap_err();
        assert_eq!(
            format!("{rbf:#}"),
            "device cuda: the RBF kernel runs on the CPU only; use cpu or auto, or the linear \
             kernel"
        );
        assert!(setting(&rbf).starts_with("--device cuda: the RBF kernel"));
        let cnn = Workload::Network(Architecture::Cnn);
        let e = placement(DeviceChoice::Cuda, &cnn).unwrap_err();
        assert_eq!(
            format!("{e:#}"),
            "device cuda: the GPU engines run MLPs, and this is a cnn network; use cpu (or auto, \
             which runs it on the CPU)"
        );
        assert_eq!(
            placement(DeviceChoice::Auto, &cnn).unwrap(),
            DeviceChoice::Cpu
        );
        assert_eq!(
            hinted(DeviceChoice::Cuda, GpuError::NoDriver).to_string(),
            "device cuda: no CUDA driver found (libcuda could not be loaded); use cpu or auto"
        );
        assert_eq!(
            hinted(DeviceChoice::Cuda, GpuError::NoDevice).worded("--device"),
            "--device cuda: the CUDA driver reports no GPU; use cpu or auto"
        );
        if let Probe::NoDriver = info_report() {
            let e = resolve(DeviceChoice::Cuda).unwrap_err();
            assert_eq!(
                setting(&e),
                "--device cuda: no CUDA driver found (libcuda could not be loaded); use cpu or \
                 auto"
            );
            assert!(resolve(DeviceChoice::Auto).unwrap().is_none());
            match check_report(1).unwrap() {
                CheckOutcome::Skipped(why) => {
                    assert_eq!(why, "no CUDA driver found (libcuda could not be loaded)")
                }
                CheckOutcome::Ran(r) => panic!("ran without a driver: {}", r.text()),
            }
        }
    }
}
