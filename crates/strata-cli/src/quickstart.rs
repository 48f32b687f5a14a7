//! `strata quickstart`: the default run, on data embedded in the binary.
//!
//! Two random-feature MLPs (same architecture, different seeds) read the 8x8 digits; every
//! layer's activations stream into strata's Arrow activation store batch by batch; then CKA
//! compares every layer of one network with every layer of the other, and the heatmap, tables
//! and a manifest land in the output folder. It shows the whole path a user's own activations
//! take, in a few seconds.

use crate::cka_cmd::{self, CkaArgs, CkaResult};
use anyhow::{Context, Result};
use std::path::{Path, PathBuf};
use std::time::Instant;
use strata_data::store::{LayerSpec, StoreWriter};
use strata_nn::{standardize, RandomFeatureMlp};
use strata_sim::{Estimator, Kernel};

/// Hidden widths of the quickstart networks.
pub const WIDTHS: [usize; 4] = [256, 256, 128, 64];
/// Seeds of the two networks compared.
pub const SEEDS: [u64; 2] = [1, 2];

/// What the quickstart produced.
pub struct Quickstart {
    pub stores: Vec<PathBuf>,
    pub cka: CkaResult,
    pub files: Vec<PathBuf>,
}

fn write_store(path: &Path, x: &ndarray::Array2<f32>, seed: u64) -> Result<()> {
    let net = RandomFeatureMlp::new(x.ncols(), &WIDTHS, seed);
    let mut specs = vec![LayerSpec::new("input", &[8, 8])];
    specs.extend(
        net.layer_names()
            .iter()
            .zip(net.widths())
            .map(|(name, w)| LayerSpec::new(name.clone(), &[w])),
    );
    let meta = serde_json::json!({
        "model": "random-feature MLP (He-normal weights, ReLU)",
        "widths": WIDTHS,
        "seed": seed,
        "data": "digits 8x8 (embedded), standardized per pixel",
    });
    let mut w = StoreWriter::create(path, &specs, &meta)?;
    // Batch by batch, as a network writes while it runs.
    for rows in x.axis_chunks_iter(ndarray::Axis(0), 256) {
        let acts = net.forward(rows);
        let mut views = vec![rows.view()];
        views.extend(acts.iter().map(|a| a.view()));
        w.write_batch(&views)?;
    }
    w.finish()?;
    Ok(())
}

fn git_commit() -> Option<String> {
    let out = std::process::Command::new("git")
        .args(["rev-parse", "HEAD"])
        .output()
        .ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).trim().to_string())
}

/// Run the quickstart into `out`.
pub fn run(out: &Path, quiet: bool) -> Result<Quickstart> {
    let t = Instant::now();
    std::fs::create_dir_all(out).with_context(|| format!("cannot create {}", out.display()))?;
    let digits = strata_data::digits::load();
    let x = standardize(&digits.images);
    let mut stores = Vec::new();
    for seed in SEEDS {
        let p = out.join(format!("activations-seed{seed}.arrow"));
        write_store(&p, &x, seed)?;
        stores.push(p);
    }
    let cka = cka_cmd::run(&CkaArgs {
        a: stores[0].clone(),
        b: stores[1].clone(),
        kernel: Kernel::Linear,
        estimator: Some(Estimator::Biased),
        batch_size: None,
        layers_a: None,
        layers_b: None,
        quiet,
    })?;
    let mut files = cka.write_out(out)?;
    let manifest = serde_json::json!({
        "command": "strata quickstart",
        "strata_version": env!("CARGO_PKG_VERSION"),
        "git_commit": git_commit(),
        "data": {"name": "digits", "examples": x.nrows(), "features": x.ncols(),
                 "source": "fixtures/digits/digits.csv.gz (scikit-learn load_digits)"},
        "models": SEEDS.iter().map(|s| serde_json::json!({"kind": "random-feature MLP", "widths": WIDTHS, "seed": s})).collect::<Vec<_>>(),
        "measure": {"kernel": "linear", "estimator": "biased"},
        "threads": rayon::current_num_threads(),
        "seconds": t.elapsed().as_secs_f64(),
        "outputs": files.iter().chain(&stores).map(|p| p.display().to_string()).collect::<Vec<_>>(),
    });
    let mpath = out.join("manifest.json");
    strata_report::write_atomic(&mpath, serde_json::to_string_pretty(&manifest)?.as_bytes())?;
    files.push(mpath);
    Ok(Quickstart { stores, cka, files })
}
