//! `strata bench mlp`: inference throughput of a `w1a1` MLP against the float MLP of the same
//! shape, every engine on the CPU and (when present) the GPU, in one run.
//!
//! Throughput does not depend on what the weights are, so the networks are freshly
//! initialized (seeded) rather than trained, and the images are the embedded MNIST subset's
//! training images, tiled to `rows`. Each engine's predictions are compared with the float
//! engine's on the same network and the first device timed, so a fast wrong engine shows.

use crate::gpu;
use crate::progress::Progress;
use crate::setting::{Setting, SettingError};
use anyhow::Result;
use serde::Serialize;
use std::time::Instant;
use strata_data::dataset::{self, Dataset};
use strata_gpu::{DeviceChoice, GpuBinaryGemm, GpuMlp, MlpEngine};
use strata_nn::net::{Architecture, Net, NetConfig};
use strata_nn::packed::PackedMlp;
use strata_nn::{train, Precision};

/// Settings of `strata bench mlp`.
#[derive(Clone, Debug)]
pub struct BenchMlpArgs {
    /// Images per pass.
    pub rows: usize,
    /// Hidden layer widths of both networks.
    pub widths: Vec<usize>,
    /// Rows per GPU batch and per CPU packed-engine chunk.
    pub batch: usize,
    /// Passes per engine; the fastest counts.
    pub repeat: usize,
    /// Which GPU to time besides the CPU (`cpu`: none; `auto`: the GPU when present).
    pub device: DeviceChoice,
    /// Skip the CPU engines (the float engine on the CPU is the slowest part).
    pub no_cpu: bool,
}

/// One engine on one device.
#[derive(Clone, Debug, Serialize)]
pub struct MlpRow {
    /// `cpu` or `cuda:N`.
    pub device: String,
    /// `float` or `w1a1`.
    pub network: String,
    /// Inference engine (`float`, `packed`, or the GPU kernel's name).
    pub engine: String,
    /// Best seconds of one pass over the images.
    pub seconds: f64,
    /// Images per second of that pass.
    pub images_per_second: f64,
    /// Images/s over the float network's float engine on the same device.
    pub vs_float: f64,
    /// Share of images whose predicted class equals the reference engine's (the float engine
    /// on the same network, first device timed).
    pub agreement: f64,
}

/// Everything `strata bench mlp` measured.
#[derive(Clone, Debug, Serialize)]
pub struct BenchMlpReport {
    /// Layer sizes, input to logits (`784-1024-1024-10`).
    pub shape: String,
    /// Images per pass.
    pub rows: usize,
    /// Rows per GPU batch and per CPU packed-engine chunk.
    pub batch: usize,
    /// Passes per engine; the fastest counts.
    pub repeat: usize,
    /// CPU model name.
    pub cpu: String,
    /// Threads of the rayon pool the CPU engines ran on.
    pub threads: usize,
    /// GPU label (`None` without one).
    pub gpu: Option<String>,
    /// CUDA driver version (`None` without a GPU).
    pub driver: Option<String>,
    /// NVRTC version (`None` without a GPU).
    pub nvrtc: Option<String>,
    /// One row per engine, network and device.
    pub results: Vec<MlpRow>,
}

/// `rows` images: the training images of `d`, repeated.
fn tiled(d: &Dataset, rows: usize) -> Result<Dataset> {
    if d.is_empty() {
        anyhow::bail!("the embedded MNIST subset has no training images");
    }
    let n = d.len();
    Ok(Dataset {
        x: ndarray::Array2::from_shape_fn((rows, d.x.ncols()), |(r, c)| d.x[[r % n, c]]),
        y: (0..rows).map(|r| d.y[r % n]).collect(),
        shape: d.shape.clone(),
        classes: d.classes,
    })
}

/// Best of `repeat` passes of `f`, with the last pass's predictions.
fn best_of(repeat: usize, mut f: impl FnMut() -> Result<Vec<usize>>) -> Result<(f64, Vec<usize>)> {
    let (mut best, mut pred) = (f64::INFINITY, Vec::new());
    for _ in 0..repeat.max(1) {
        let t = Instant::now();
        pred = f()?;
        best = best.min(t.elapsed().as_secs_f64());
    }
    Ok((best, pred))
}

/// Run the benchmark, logging each engine's figure as it comes.
pub fn run(args: &BenchMlpArgs, progress: &dyn Progress) -> Result<BenchMlpReport> {
    if args.rows == 0 {
        return Err(SettingError::new(Setting::Rows, " must be at least 1").into());
    }
    if args.widths.is_empty() || args.widths.contains(&0) {
        return Err(
            SettingError::new(Setting::Widths, ": name at least one, each at least 1").into(),
        );
    }
    let gpu = match args.device {
        DeviceChoice::Cpu => None,
        d => gpu::resolve(d)?,
    };
    if let Some(g) = &gpu {
        progress.log(&gpu::running_on(g));
    }
    if gpu.is_none() && args.no_cpu {
        return Err(SettingError::new(
            Setting::NoCpu,
            " leaves nothing to time: no GPU was found on this machine",
        )
        .into());
    }
    let d = tiled(&dataset::load("mnist-small")?.train, args.rows)?;
    let net = |precision| {
        Net::new(
            NetConfig {
                architecture: Architecture::Mlp,
                input_shape: d.shape.clone(),
                widths: args.widths.clone(),
                classes: d.classes,
                precision,
                logits: Default::default(),
            },
            1,
        )
    };
    let (mut float, mut w1a1) = (net(Precision::Float)?, net(Precision::W1A1)?);
    let mut results: Vec<MlpRow> = Vec::new();
    // Reference predictions per network: the first float engine timed.
    let mut reference: [Option<Vec<usize>>; 2] = [None, None];
    let mut add = |device: &str, network: usize, engine: String, secs: f64, pred: Vec<usize>| {
        progress.log(&format!(
            "{device:<8} {:<6} {engine:<26} {:>12.0} images/s",
            ["float", "w1a1"][network],
            args.rows as f64 / secs
        ));
        let r = reference[network].get_or_insert_with(|| pred.clone());
        let agree = pred.iter().zip(r.iter()).filter(|(a, b)| a == b).count();
        results.push(MlpRow {
            device: device.to_string(),
            network: ["float", "w1a1"][network].to_string(),
            engine,
            seconds: secs,
            images_per_second: args.rows as f64 / secs,
            vs_float: f64::NAN,
            agreement: agree as f64 / pred.len().max(1) as f64,
        });
    };
    if let Some(g) = &gpu {
        let label = format!("cuda:{}", g.info.ordinal);
        let mut engines = vec![(0, MlpEngine::Float), (1, MlpEngine::Float)];
        // The tensor-core kernel first, where there is one.
        let kernels = GpuBinaryGemm::new(g.clone()).kernels();
        engines.extend(kernels.into_iter().rev().map(|k| (1, MlpEngine::Packed(k))));
        for (network, engine) in engines {
            let m = GpuMlp::new(g.clone(), [&float, &w1a1][network], engine)?;
            let (secs, pred) = best_of(args.repeat, || Ok(m.predict(d.x.view(), args.batch)?))?;
            add(&label, network, engine.name(), secs, pred);
        }
    }
    if !args.no_cpu {
        for (network, net) in [&mut float, &mut w1a1].into_iter().enumerate() {
            let (secs, pred) = best_of(args.repeat, || Ok(train::predict(net, &d)?))?;
            add("cpu", network, "float".into(), secs, pred);
        }
        let packed = PackedMlp::from_net(&w1a1)?;
        let (secs, pred) = best_of(args.repeat, || {
            let mut out = Vec::with_capacity(d.len());
            for r in (0..d.len()).step_by(args.batch.max(1)) {
                let end = (r + args.batch.max(1)).min(d.len());
                out.extend(packed.predict(d.x.slice(ndarray::s![r..end, ..])));
            }
            Ok(out)
        })?;
        add("cpu", 1, "packed".into(), secs, pred);
    }
    for i in 0..results.len() {
        let base = results
            .iter()
            .find(|r| r.device == results[i].device && r.network == "float")
            .map_or(f64::NAN, |r| r.images_per_second);
        results[i].vs_float = results[i].images_per_second / base;
    }
    let (mut driver, mut nvrtc) = (None, None);
    if let Some(g) = &gpu {
        let rec = gpu::record(g, ());
        driver = Some(rec.driver);
        nvrtc = Some(rec.nvrtc);
    }
    let mut shape = vec![d.x.ncols()];
    shape.extend(&args.widths);
    shape.push(d.classes);
    Ok(BenchMlpReport {
        shape: shape
            .iter()
            .map(|v| v.to_string())
            .collect::<Vec<_>>()
            .join("-"),
        rows: args.rows,
        batch: args.batch,
        repeat: args.repeat,
        cpu: crate::bench::cpu_name(),
        threads: rayon::current_num_threads(),
        gpu: gpu.as_ref().map(|g| g.label()),
        driver,
        nvrtc,
        results,
    })
}

/// The report as a Markdown table.
pub fn markdown(r: &BenchMlpReport) -> String {
    let mut s = format!(
        "### MLP inference {}: {} images (the embedded MNIST subset tiled), batch {}, best of {}\n\n\
         CPU: {} ({} threads)",
        r.shape, r.rows, r.batch, r.repeat, r.cpu, r.threads
    );
    if let Some(g) = &r.gpu {
        s += &format!(
            "; GPU: {g} (driver CUDA {}, NVRTC {})",
            r.driver.as_deref().unwrap_or("?"),
            r.nvrtc.as_deref().unwrap_or("?")
        );
    }
    s += "\n\n| device | network | engine | images/s | vs float MLP, same device | same predictions as the float engine |\n\
          |---|---|---|---:|---:|---:|\n";
    for x in &r.results {
        s += &format!(
            "| {} | {} | {} | {:.0} | {:.2}x | {:.2}% |\n",
            x.device,
            x.network,
            x.engine,
            x.images_per_second,
            x.vs_float,
            100.0 * x.agreement
        );
    }
    s
}
