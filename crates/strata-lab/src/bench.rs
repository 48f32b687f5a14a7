//! `strata bench cka`: all-pairs linear CKA against its GEMM floor and the NumPy reference, and
//! minibatch CKA streamed from a large Arrow store under a memory bound.
//!
//! Every figure is a ratio to a baseline measured in the same run on the same data.

use crate::progress::Progress;
use crate::setting::{Setting, SettingError};
use anyhow::{Context, Result};
use ndarray::Array2;
use serde::Serialize;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;
use strata_data::rng::Rng;
use strata_data::store::{LayerSpec, StoreWriter};
use strata_sim::{cka_all_pairs, gemm, Estimator, Kernel};

/// Settings of `strata bench cka`.
#[derive(Clone, Debug)]
pub struct BenchCkaArgs {
    /// Examples per layer.
    pub n: usize,
    /// Feature count of each layer (both synthetic models have these layers).
    pub widths: Vec<usize>,
    /// Timed runs of each side; the median counts.
    pub repeat: usize,
    /// Seed of the synthetic activations.
    pub seed: u64,
    /// Python interpreter for the NumPy reference; `None` skips it.
    pub python: Option<String>,
    /// Minibatch streaming test: examples, features per layer, batch size (`stream_n = 0` skips).
    pub stream_n: usize,
    /// Features per layer of the streaming test.
    pub stream_features: usize,
    /// Examples per minibatch of the streaming test.
    pub stream_batch: usize,
    /// Where the streaming test writes its temporary store.
    pub scratch: PathBuf,
}

/// The minibatch streaming test: an Arrow store written to disk, then minibatch CKA over it.
#[derive(Clone, Debug, Serialize)]
pub struct StreamResult {
    /// Examples in the store.
    pub n: usize,
    /// Features per layer.
    pub features: usize,
    /// Layers in the store.
    pub layers: usize,
    /// Examples per minibatch.
    pub batch_size: usize,
    /// Size of the store on disk, in bytes.
    pub store_bytes: u64,
    /// Seconds spent writing the store.
    pub write_seconds: f64,
    /// Seconds of the minibatch CKA pass.
    pub cka_seconds: f64,
    /// Peak resident memory of the process after the pass, in bytes (`None` off Linux).
    pub peak_rss_bytes: Option<u64>,
    /// Minibatch CKA between the two layers (`None` where undefined).
    pub cka: Option<f64>,
}

/// The NumPy reference implementation's run on the same activations.
#[derive(Clone, Debug, Serialize)]
pub struct NumpyResult {
    /// Best wall time of the NumPy all-pairs CKA (pair by pair), in seconds.
    pub seconds: f64,
    /// NumPy version.
    pub numpy: String,
    /// Floating-point type NumPy computed in.
    pub dtype: String,
    /// Largest absolute difference between its CKA values and strata's.
    pub max_abs_diff: f64,
}

/// Everything `strata bench cka` measured.
#[derive(Clone, Debug, Serialize)]
pub struct BenchCkaReport {
    /// Examples per layer.
    pub n: usize,
    /// Feature count of each layer.
    pub widths: Vec<usize>,
    /// Timed runs of each side.
    pub repeat: usize,
    /// Threads of the rayon pool the products ran on.
    pub threads: usize,
    /// CPU model name.
    pub cpu: String,
    /// Seconds of each `cka_all_pairs` run.
    pub strata_seconds: Vec<f64>,
    /// Seconds of each run of the bare GEMMs it needs (the floor).
    pub floor_seconds: Vec<f64>,
    /// Floating-point work of the GEMM floor, in GFLOP (a multiply-add counts 2).
    pub gemm_gflop: f64,
    /// The NumPy reference (`None` when skipped).
    pub numpy: Option<NumpyResult>,
    /// The minibatch streaming test (`None` when skipped).
    pub stream: Option<StreamResult>,
}

fn median(v: &[f64]) -> f64 {
    let mut s = v.to_vec();
    s.sort_by(|a, b| a.total_cmp(b));
    s[s.len() / 2]
}

/// The CPU's model name from `/proc/cpuinfo`, else the architecture (`x86_64`, ...).
pub fn cpu_name() -> String {
    std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split(':').nth(1))
                .map(|s| s.trim().to_string())
        })
        .unwrap_or_else(|| std::env::consts::ARCH.to_string())
}

/// Two "models" whose layers are noisy linear images of a shared latent, so CKA values are
/// spread over (0, 1) like real layers rather than all near 0.
pub fn synthetic_models(
    n: usize,
    widths: &[usize],
    seed: u64,
) -> (Vec<Array2<f32>>, Vec<Array2<f32>>) {
    let mut r = Rng::new(seed);
    let z = r.normal_matrix(n, 32);
    let mut model = |noise: f32| -> Vec<Array2<f32>> {
        widths
            .iter()
            .map(|&p| z.dot(&r.normal_matrix(32, p)) + r.normal_matrix(n, p) * noise)
            .collect()
    };
    let a = model(1.0);
    let b = model(3.0);
    (a, b)
}

impl BenchCkaReport {
    /// Median seconds of `cka_all_pairs`.
    pub fn strata_median(&self) -> f64 {
        median(&self.strata_seconds)
    }
    /// Median seconds of the GEMM floor.
    pub fn floor_median(&self) -> f64 {
        median(&self.floor_seconds)
    }

    /// A human-readable summary (also valid Markdown).
    pub fn markdown(&self) -> String {
        let mut s = String::new();
        let widths: Vec<String> = self.widths.iter().map(|w| w.to_string()).collect();
        s.push_str(&format!(
            "### all-pairs linear CKA: {k} x {k} layers (widths {w}), n = {n}\n\n\
             machine: {cpu}, {t} threads; median of {r} runs\n\n\
             | what | time | ratio |\n|---|---:|---|\n",
            k = self.widths.len(),
            w = widths.join(", "),
            n = self.n,
            cpu = self.cpu,
            t = self.threads,
            r = self.repeat
        ));
        let st = self.strata_median();
        let fl = self.floor_median();
        s.push_str(&format!(
            "| strata `cka_all_pairs` (f32, f64 sums) | {st:.3} s | {:.2}x the GEMM floor (target <= 1.5x) |\n",
            st / fl
        ));
        s.push_str(&format!(
            "| GEMM floor: the same products, bare (faer) | {fl:.3} s | {:.0} GFLOP/s |\n",
            self.gemm_gflop / fl
        ));
        match &self.numpy {
            Some(np) => s.push_str(&format!(
                "| NumPy reference, per pair ({}, NumPy {}) | {:.3} s | strata is {:.1}x faster (target >= 10x); max abs difference {:.1e} |\n",
                np.dtype,
                np.numpy,
                np.seconds,
                np.seconds / st,
                np.max_abs_diff
            )),
            None => s.push_str("| NumPy reference | skipped | python3 with numpy not found |\n"),
        }
        if let Some(m) = &self.stream {
            s.push_str(&format!(
                "\n### minibatch CKA streamed from Arrow: n = {}, {} layers x {} features, batch {}\n\n\
                 | what | value |\n|---|---:|\n\
                 | store size | {} |\n| write time | {:.1} s |\n| minibatch CKA time | {:.1} s ({:.0} examples/s) |\n\
                 | peak resident memory (whole process, writing included) | {} (target < 1 GiB) |\n| CKA(a, b) | {} |\n",
                m.n,
                m.layers,
                m.features,
                m.batch_size,
                crate::human_bytes(m.store_bytes),
                m.write_seconds,
                m.cka_seconds,
                m.n as f64 / m.cka_seconds,
                m.peak_rss_bytes.map_or("unknown".into(), crate::human_bytes),
                m.cka.map_or("undefined".into(), |v| format!("{v:.6}")),
            ));
        }
        s
    }
}

/// Run the benchmark, reporting to `progress`.
pub fn run(args: &BenchCkaArgs, progress: &dyn Progress) -> Result<BenchCkaReport> {
    // The streaming test runs first so that the process's peak resident memory, read right
    // after it, covers only the store writing and the minibatch pass.
    let stream = if args.stream_n > 0 {
        Some(stream_test(args, progress)?)
    } else {
        None
    };
    let (a, b) = synthetic_models(args.n, &args.widths, args.seed);
    let flop: f64 = {
        let n = args.n as f64;
        let cross: f64 = args.widths.iter().map(|&p| p as f64).sum::<f64>().powi(2) * n * 2.0;
        // Self products are symmetric: half of p² n multiply-adds each.
        let selfp: f64 = args.widths.iter().map(|&p| (p * p) as f64 * n).sum::<f64>() * 2.0;
        (cross + selfp) / 1e9
    };
    let pb = progress.task("bench", "runs", args.repeat as u64 * 2);
    let mut strata_seconds = Vec::new();
    let mut floor_seconds = Vec::new();
    let mut matrix = None;
    for _ in 0..args.repeat {
        let (ca, cb) = (a.clone(), b.clone());
        let t = Instant::now();
        let m = cka_all_pairs(ca, Some(cb), Kernel::Linear, Estimator::Biased, &|_, _| {})?;
        strata_seconds.push(t.elapsed().as_secs_f64());
        matrix = Some(m);
        pb.inc(1);
        let t = Instant::now();
        for x in a.iter().chain(&b) {
            std::hint::black_box(gemm::xtx_lower(x.view())?);
        }
        for x in &a {
            for y in &b {
                std::hint::black_box(gemm::xt_y(x.view(), y.view())?);
            }
        }
        floor_seconds.push(t.elapsed().as_secs_f64());
        pb.inc(1);
    }
    pb.finish();
    let matrix = matrix.ok_or_else(|| SettingError::new(Setting::Repeat, " must be at least 1"))?;
    let numpy = match &args.python {
        Some(py) => numpy_reference(py, &a, &b, &matrix.values, progress)?,
        None => None,
    };
    Ok(BenchCkaReport {
        n: args.n,
        widths: args.widths.clone(),
        repeat: args.repeat,
        threads: rayon::current_num_threads(),
        cpu: cpu_name(),
        strata_seconds,
        floor_seconds,
        gemm_gflop: flop,
        numpy,
        stream,
    })
}

const NUMPY_SCRIPT: &str = include_str!("../../../benches/cka_numpy.py");

fn numpy_reference(
    python: &str,
    a: &[Array2<f32>],
    b: &[Array2<f32>],
    ours: &[Vec<Option<f64>>],
    progress: &dyn Progress,
) -> Result<Option<NumpyResult>> {
    let ok = Command::new(python)
        .args(["-c", "import numpy"])
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false);
    if !ok {
        progress.log(&format!(
            "note: {python} with numpy not found; skipping the NumPy reference"
        ));
        return Ok(None);
    }
    let dir = std::env::temp_dir().join(format!("strata-bench-numpy-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let result = (|| -> Result<Option<NumpyResult>> {
        for (prefix, layers) in [("a", a), ("b", b)] {
            for (i, l) in layers.iter().enumerate() {
                let f = std::fs::File::create(dir.join(format!("{prefix}_{i}.npy")))?;
                strata_data::npy::write_f32(
                    std::io::BufWriter::new(f),
                    &[l.nrows(), l.ncols()],
                    l.as_slice().context("layout")?,
                )?;
            }
        }
        let script = dir.join("cka_numpy.py");
        std::fs::write(&script, NUMPY_SCRIPT)?;
        progress.log("running the NumPy reference (this is the slow part)...");
        let out = Command::new(python).arg(&script).arg(&dir).output()?;
        if !out.status.success() {
            anyhow::bail!(
                "NumPy reference failed: {}",
                String::from_utf8_lossy(&out.stderr).trim()
            );
        }
        let v: serde_json::Value =
            serde_json::from_slice(&out.stdout).context("NumPy reference printed no JSON")?;
        let theirs: Vec<Vec<f64>> = serde_json::from_value(v["cka"].clone())?;
        let mut diff: f64 = 0.0;
        for (r1, r2) in ours.iter().zip(&theirs) {
            for (x, y) in r1.iter().zip(r2) {
                diff = diff.max((x.unwrap_or(f64::NAN) - y).abs());
            }
        }
        Ok(Some(NumpyResult {
            seconds: v["seconds"].as_f64().unwrap_or(f64::NAN),
            numpy: v["numpy"].as_str().unwrap_or("?").to_string(),
            dtype: v["dtype"].as_str().unwrap_or("?").to_string(),
            max_abs_diff: diff,
        }))
    })();
    let _ = std::fs::remove_dir_all(&dir);
    result
}

fn stream_test(args: &BenchCkaArgs, progress: &dyn Progress) -> Result<StreamResult> {
    let (n, p) = (args.stream_n, args.stream_features);
    std::fs::create_dir_all(&args.scratch)?;
    let path = args
        .scratch
        .join(format!("strata-bench-stream-{}.arrow", std::process::id()));
    let result = stream_inner(args, &path, n, p, progress);
    let _ = std::fs::remove_file(&path);
    result
}

fn stream_inner(
    args: &BenchCkaArgs,
    path: &Path,
    n: usize,
    p: usize,
    progress: &dyn Progress,
) -> Result<StreamResult> {
    let specs = [LayerSpec::new("a", &[p]), LayerSpec::new("b", &[p])];
    let t = Instant::now();
    let mut w = StoreWriter::create(path, &specs, &serde_json::json!({"bench": "stream"}))?;
    let mut r = Rng::new(args.seed);
    let mix = r.normal_matrix(p, p).mapv(|v| v / (p as f32).sqrt());
    let pb = progress.task("write store", "examples", n as u64);
    let chunk = 8192;
    let mut done = 0;
    while done < n {
        let rows = chunk.min(n - done);
        let xa = r.normal_matrix(rows, p);
        let xb = xa.dot(&mix) + r.normal_matrix(rows, p);
        w.write_batch(&[xa.view(), xb.view()])?;
        done += rows;
        pb.set_position(done as u64);
    }
    w.finish()?;
    pb.finish();
    let write_seconds = t.elapsed().as_secs_f64();
    let store_bytes = std::fs::metadata(path)?.len();
    let t = Instant::now();
    let cka = crate::compare::CkaArgs {
        a: path.to_path_buf(),
        b: path.to_path_buf(),
        kernel: Kernel::Linear,
        estimator: None,
        batch_size: Some(args.stream_batch),
        layers_a: Some(vec!["a".into()]),
        layers_b: Some(vec!["b".into()]),
        // This benchmark measures the CPU path's streaming memory.
        device: strata_gpu::DeviceChoice::Cpu,
    };
    let res = crate::compare::run(&cka, progress)?;
    Ok(StreamResult {
        n,
        features: p,
        layers: 2,
        batch_size: args.stream_batch,
        store_bytes,
        write_seconds,
        cka_seconds: t.elapsed().as_secs_f64(),
        peak_rss_bytes: crate::peak_rss_bytes(),
        cka: res.matrix.values[0][0],
    })
}

/// One shape of `strata bench binary-gemm`.
#[derive(Clone, Debug, Serialize)]
pub struct BinaryGemmRow {
    /// What the shape is (`square`, `MLP fc2, batch 256`, ...).
    pub label: String,
    /// Rows of A and of the product.
    pub m: usize,
    /// Rows of B: columns of the product.
    pub n: usize,
    /// Shared inner dimension (±1 values, packed to bits).
    pub k: usize,
    /// Best seconds of the packed binary product.
    pub binary_seconds: f64,
    /// Best seconds of faer's f32 GEMM of the same shape.
    pub f32_seconds: f64,
    /// `m n k / s` of the binary product.
    pub binary_macs_per_s: f64,
    /// `m n k / s` of the f32 GEMM.
    pub f32_macs_per_s: f64,
    /// f32 time over binary time: the binary product's speed-up.
    pub ratio: f64,
}

/// The shapes `strata bench binary-gemm` measures: `square`^3 (4096 on the CPU, 8192 on the
/// GPU by default) and the w1a1 MLP's layers at batch 256.
pub fn binary_gemm_shapes(square: usize) -> Vec<(String, usize, usize, usize)> {
    vec![
        ("square".to_string(), square, square, square),
        ("MLP fc2, batch 256".to_string(), 256, 1024, 1024),
        ("MLP fc1 shape, batch 256".to_string(), 256, 1024, 784),
        ("MLP logits, batch 256".to_string(), 256, 10, 1024),
    ]
}

/// Packed binary product vs faer's f32 GEMM on the same shapes, same threads, same run.
pub fn binary_gemm(
    shapes: &[(String, usize, usize, usize)],
    repeat: usize,
    seed: u64,
) -> Vec<BinaryGemmRow> {
    use strata_nn::binary_gemm::{binary_gemm, BitMatrix};
    let mut r = Rng::new(seed);
    let mut out = Vec::new();
    for (label, m, n, k) in shapes {
        let (m, n, k) = (*m, *n, *k);
        let pm = |rows: usize, r: &mut Rng| -> Vec<f32> {
            (0..rows * k)
                .map(|_| if r.below(2) == 1 { 1.0 } else { -1.0 })
                .collect()
        };
        let (av, bv) = (pm(m, &mut r), pm(n, &mut r));
        let (ab, bb) = (BitMatrix::pack(&av, m, k), BitMatrix::pack(&bv, n, k));
        let time = |f: &mut dyn FnMut()| -> f64 {
            let mut best = f64::INFINITY;
            for _ in 0..repeat.max(1) {
                let t = Instant::now();
                f();
                best = best.min(t.elapsed().as_secs_f64());
            }
            best
        };
        let tb = time(&mut || {
            std::hint::black_box(binary_gemm(&ab, &bb));
        });
        // xt_y computes Xᵀ Y: feed it Aᵀ (k x m) and Bᵀ (k x n), laid out before timing.
        let at = Array2::from_shape_vec((m, k), av)
            .expect("sizes")
            .reversed_axes()
            .as_standard_layout()
            .into_owned();
        let bt = Array2::from_shape_vec((n, k), bv)
            .expect("sizes")
            .reversed_axes()
            .as_standard_layout()
            .into_owned();
        let tf = time(&mut || {
            // The shapes agree by construction (both `k` rows): the result is never an error.
            let _ = std::hint::black_box(gemm::xt_y(at.view(), bt.view()));
        });
        let macs = (m * n * k) as f64;
        out.push(BinaryGemmRow {
            label: label.clone(),
            m,
            n,
            k,
            binary_seconds: tb,
            f32_seconds: tf,
            binary_macs_per_s: macs / tb,
            f32_macs_per_s: macs / tf,
            ratio: tf / tb,
        });
    }
    out
}

/// Markdown table of [`binary_gemm`] rows.
pub fn binary_gemm_markdown(rows: &[BinaryGemmRow]) -> String {
    let mut s = format!(
        "### packed binary GEMM ({} kernel) vs f32 GEMM (faer), {} threads, {}\n\n\
         | shape (m x n x k) | binary | f32 | binary GMAC/s | f32 GMAC/s | speed-up |\n|---|---:|---:|---:|---:|---:|\n",
        strata_nn::binary_gemm::kernel_name(),
        rayon::current_num_threads(),
        cpu_name()
    );
    for r in rows {
        s.push_str(&format!(
            "| {} ({} x {} x {}) | {:.4} s | {:.4} s | {:.0} | {:.0} | {:.1}x |\n",
            r.label,
            r.m,
            r.n,
            r.k,
            r.binary_seconds,
            r.f32_seconds,
            r.binary_macs_per_s / 1e9,
            r.f32_macs_per_s / 1e9,
            r.ratio
        ));
    }
    s
}
