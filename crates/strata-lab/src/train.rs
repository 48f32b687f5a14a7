//! `strata train`, `strata eval`, `strata collect`: networks on labelled data.

use crate::progress::{Progress, Task};
use crate::setting::{Setting, SettingError};
use anyhow::{bail, Context, Result};
use candle_core::Tensor;
use serde_json::json;
use std::path::{Path, PathBuf};
use std::time::Instant;
use strata_data::dataset::{self, Dataset};
use strata_data::store::{LayerSpec, StoreWriter};
use strata_nn::file::{self, ModelCard};
use strata_nn::net::{Architecture, LogitsLayer, Net, NetConfig};
use strata_nn::packed::PackedMlp;
use strata_nn::train::{self, TrainConfig};
use strata_nn::Precision;

/// Settings of `strata train`.
#[derive(Clone, Debug)]
pub struct TrainArgs {
    /// Data set, as `--data` names it (`mnist`, `digits`, `csv:PATH`, ...).
    pub data: String,
    /// Label column for `csv:PATH` data.
    pub label: Option<String>,
    /// Network architecture.
    pub architecture: Architecture,
    /// Hidden widths (MLPs only).
    pub widths: Vec<usize>,
    /// How the logits are computed.
    pub logits: LogitsLayer,
    /// Precision of weights and activations.
    pub precision: Precision,
    /// Training settings.
    pub train: TrainConfig,
    /// Train on the first N training examples only.
    pub limit: Option<usize>,
    /// Where the model goes: a path stem, `.safetensors` and `.json` beside it.
    pub out: PathBuf,
}

/// Result of `strata train`.
pub struct Trained {
    /// The model card saved beside the weights.
    pub card: ModelCard,
    /// The files written: weights (`.safetensors`) and card (`.json`).
    pub files: (PathBuf, PathBuf),
}

/// Load a data set; for CSV data, warn how missing values were handled (one line per column
/// that had any, and one for rows dropped for a missing label).
pub fn load_data(
    name: &str,
    label: Option<&str>,
    limit: Option<usize>,
    progress: &dyn Progress,
) -> Result<dataset::Splits> {
    let (mut s, report) = dataset::load_with_report(name, label)?;
    for note in report.iter().flat_map(|r| r.notes()) {
        progress.warn(&format!("note: {name}: {note}"));
    }
    if let Some(n) = limit {
        s.train = s.train.head(n);
    }
    if s.train.len() < 2 {
        bail!("data set '{name}' has fewer than 2 training examples");
    }
    Ok(s)
}

/// Train a network and save it, logging each epoch's figures.
pub fn train(a: &TrainArgs, progress: &dyn Progress) -> Result<Trained> {
    let data = load_data(&a.data, a.label.as_deref(), a.limit, progress)?;
    let pb = progress.task("train", "steps", 0);
    let t = train_on(a, &data, &*pb, &mut |s| progress.log(&epoch_line(s)))?;
    pb.finish();
    Ok(t)
}

/// One epoch's figures as a log line.
pub fn epoch_line(s: &strata_nn::train::EpochStats) -> String {
    format!(
        "epoch {:>3}  lr {:.2e}  loss {:.4}  train acc {:.2}%  test acc {:.2}%  ({:.1} s)",
        s.epoch,
        s.lr,
        s.loss,
        100.0 * s.train_accuracy,
        100.0 * s.test_accuracy,
        s.seconds
    )
}

/// Train on already loaded data (`data.train` already limited), advancing `pb` one step per
/// batch and handing each epoch's figures to `on_epoch`; save to `a.out`.
pub fn train_on(
    a: &TrainArgs,
    data: &dataset::Splits,
    pb: &dyn Task,
    on_epoch: &mut dyn FnMut(&strata_nn::train::EpochStats),
) -> Result<Trained> {
    let t = Instant::now();
    let config = NetConfig {
        architecture: a.architecture,
        input_shape: data.train.shape.clone(),
        widths: if a.architecture == Architecture::Mlp {
            a.widths.clone()
        } else {
            Vec::new()
        },
        classes: data.train.classes,
        precision: a.precision,
        logits: a.logits,
    };
    let bs = a.train.batch_size.max(2);
    // Sizes first: a typo in the widths is an error line, not minutes of allocation.
    strata_nn::limits::check_train_config(&a.train)?;
    strata_nn::limits::check_config(&config, bs, true)?;
    let mut model = Net::try_new(config.clone(), a.train.seed)?;
    let steps = data.train.len().div_ceil(bs) as u64;
    pb.set_total(steps * a.train.epochs as u64);
    let history = train::train(
        &mut model,
        &data.train,
        &data.test,
        &a.train,
        &mut |epoch, _b, _n, loss| {
            pb.inc(1);
            pb.set_message(&format!("epoch {} loss {loss:.3}", epoch + 1));
        },
        on_epoch,
    )?;
    // A diverged run (NaN/inf loss) would save a card JSON cannot hold; say what happened.
    if let Some(e) = history.iter().find(|e| !e.loss.is_finite()) {
        bail!(
            "training diverged: the loss is {} at epoch {}; lower the learning rate (lr {:.2e})",
            e.loss,
            e.epoch,
            e.lr
        );
    }
    let train_accuracy = train::accuracy(&mut model, &data.train)?;
    let test_accuracy = train::accuracy(&mut model, &data.test)?;
    let card = ModelCard {
        format: "strata-model-1".into(),
        config,
        data: a.data.clone(),
        train: a.train.clone(),
        train_accuracy,
        test_accuracy,
        history,
        threads: rayon::current_num_threads(),
        seconds: t.elapsed().as_secs_f64(),
        strata_version: env!("CARGO_PKG_VERSION").into(),
    };
    let files = file::save(&a.out, &model, &card)?;
    Ok(Trained { card, files })
}

fn split<'a>(s: &'a dataset::Splits, which: &str) -> Result<&'a Dataset> {
    match which {
        "train" => Ok(&s.train),
        "test" => Ok(&s.test),
        other => Err(SettingError::new(
            Setting::Split,
            format!(" must be train or test, got '{other}'"),
        )
        .into()),
    }
}

/// Which examples a command reads: data set, label column (CSV), split, first-N limit.
#[derive(Clone, Copy, Debug)]
pub struct Examples<'a> {
    /// Data set, as `--data` names it.
    pub data: &'a str,
    /// Label column of `csv:PATH` data.
    pub label: Option<&'a str>,
    /// `train` or `test`.
    pub split: &'a str,
    /// Read the first N examples of the split only.
    pub limit: Option<usize>,
}

/// A saved model and the examples it will read, checked to have the shape it expects.
pub(crate) fn load(model: &Path, ex: Examples) -> Result<(Net, ModelCard, Dataset)> {
    if ex.limit == Some(0) {
        return Err(SettingError::new(
            Setting::Limit,
            " must be at least 1 (it counts the examples to read)",
        )
        .into());
    }
    let (m, card) = file::load(model)?;
    let s = dataset::load_with_label(ex.data, ex.label)?;
    let d = split(&s, ex.split)?;
    let d = ex.limit.map_or_else(|| d.clone(), |n| d.head(n));
    if d.is_empty() {
        bail!("{} has no examples in its {} split", ex.data, ex.split);
    }
    if d.shape != card.config.input_shape {
        bail!(
            "{} has examples of shape {:?}, the model expects {:?}",
            ex.data,
            d.shape,
            card.config.input_shape
        );
    }
    Ok((m, card, d))
}

/// Rows per GPU batch in `eval`: large enough to fill the GPU, small enough for any of them.
const GPU_EVAL_BATCH: usize = 8192;

/// Accuracy of a saved model; `packed` runs `w1a1` layers as XOR/popcount. `device` picks
/// the CPU or the GPU (MLPs only; both engines), as `gpu::net_device` decides. The data
/// go through `repeat` times and the fastest pass gives the images/s (setting up the engine,
/// uploading weights included, is not timed). Logs where it runs when that is a GPU.
pub fn eval(
    model: &Path,
    ex: Examples,
    packed: bool,
    device: strata_gpu::DeviceChoice,
    repeat: usize,
    progress: &dyn Progress,
) -> Result<serde_json::Value> {
    enum Engine {
        Gpu(strata_gpu::GpuMlp),
        Packed(PackedMlp),
        Float,
    }
    let (mut m, card, d) = load(model, ex)?;
    let (data, which) = (ex.data, ex.split);
    let gpu = net_device(device, &m, progress)?;
    let mut name = if packed { "packed" } else { "float" }.to_string();
    let engine = match (&gpu, packed) {
        (Some(g), _) => {
            let kind = if packed {
                let kernel = strata_gpu::GpuBinaryGemm::new(g.clone()).best_kernel();
                strata_gpu::MlpEngine::Packed(kernel)
            } else {
                strata_gpu::MlpEngine::Float
            };
            let mlp = strata_gpu::GpuMlp::new(g.clone(), &m, kind)
                .with_context(|| format!("the {name} engine on {}", g.label()))?;
            name = kind.name();
            Engine::Gpu(mlp)
        }
        (None, true) => Engine::Packed(
            PackedMlp::from_net(&m)
                .map_err(|e| SettingError::new(Setting::Engine, " packed").because(e))?,
        ),
        (None, false) => Engine::Float,
    };
    let (mut pred, mut secs) = (Vec::new(), f64::INFINITY);
    for _ in 0..repeat.max(1) {
        let t = Instant::now();
        pred = match &engine {
            Engine::Gpu(mlp) => mlp.predict(d.x.view(), GPU_EVAL_BATCH)?,
            Engine::Packed(p) => p.predict(d.x.view()),
            Engine::Float => train::predict(&mut m, &d)?,
        };
        secs = secs.min(t.elapsed().as_secs_f64());
    }
    let right = pred
        .iter()
        .zip(&d.y)
        .filter(|(p, y)| **p == **y as usize)
        .count();
    Ok(json!({
        "model": model.display().to_string(),
        "precision": card.config.precision.name(),
        "data": data,
        "split": which,
        "engine": name,
        "device": match &gpu {
            Some(g) => g.label(),
            None => "cpu".to_string(),
        },
        "n": d.len(),
        "accuracy": right as f64 / d.len().max(1) as f64,
        "repeat": repeat.max(1),
        "seconds": secs,
        "images_per_second": d.len() as f64 / secs.max(1e-9),
    }))
}

/// The GPU `m` runs on for `device` (`None`: the CPU), logging which when it is one, so a user
/// always knows where the work ran.
fn net_device(
    device: strata_gpu::DeviceChoice,
    m: &Net,
    progress: &dyn Progress,
) -> Result<Option<std::sync::Arc<strata_gpu::Gpu>>> {
    let gpu = crate::gpu::net_device(device, m)?;
    if let Some(g) = &gpu {
        progress.log(&crate::gpu::running_on(g));
    }
    Ok(gpu)
}

/// Stream every layer's activations of a saved model into an activation store, on the CPU or
/// (MLPs) the GPU's float engine.
pub fn collect(
    model: &Path,
    ex: Examples,
    pre: bool,
    out: &Path,
    device: strata_gpu::DeviceChoice,
    progress: &dyn Progress,
) -> Result<usize> {
    let (st, js) = file::paths(model);
    crate::outset::refuse_inputs_as_outputs(&[out.to_path_buf()], &[&st, &js])?;
    let (mut m, card, d) = load(model, ex)?;
    let gpu = net_device(device, &m, progress)?;
    let pb = progress.task("collect", "examples", d.len() as u64);
    let rows = collect_on(&mut m, &card, model, &d, ex, pre, out, gpu.as_ref(), &*pb)?;
    pb.finish();
    Ok(rows)
}

/// [`collect`] for a loaded model and data set (checked to match), advancing `pb` per example.
#[allow(clippy::too_many_arguments)]
pub fn collect_on(
    m: &mut Net,
    card: &ModelCard,
    model: &Path,
    d: &Dataset,
    ex: Examples,
    pre: bool,
    out: &Path,
    gpu: Option<&std::sync::Arc<strata_gpu::Gpu>>,
    pb: &dyn Task,
) -> Result<usize> {
    if d.shape != card.config.input_shape {
        bail!(
            "{} has examples of shape {:?}, the model expects {:?}",
            ex.data,
            d.shape,
            card.config.input_shape
        );
    }
    let (data, which) = (ex.data, ex.split);
    let specs: Vec<LayerSpec> = m
        .layer_names()
        .into_iter()
        .zip(m.layer_shapes())
        .map(|(n, s)| LayerSpec::new(n, &s))
        .collect();
    let meta = json!({
        "model": model.display().to_string(),
        "architecture": card.config.architecture.name(),
        "precision": card.config.precision.name(),
        "widths": card.config.widths,
        "seed": card.train.seed,
        "data": data,
        "split": which,
        "activations": if pre { "pre" } else { "post" },
        "labels": "row order of the split",
    });
    let mut w = StoreWriter::create(out, &specs, &meta)?;
    pb.set_total(d.len() as u64);
    if let Some(g) = gpu {
        let mlp = strata_gpu::GpuMlp::new(g.clone(), m, strata_gpu::MlpEngine::Float)?;
        let record = if pre {
            strata_gpu::Record::Pre
        } else {
            strata_gpu::Record::Post
        };
        mlp.run(d.x.view(), 500, record, |rows, b| -> Result<()> {
            let views: Vec<_> = b.layers.iter().map(|a| a.view()).collect();
            w.write_batch(&views)?;
            pb.inc(rows.len() as u64);
            Ok(())
        })?;
        return Ok(w.finish()?);
    }
    let all: Vec<usize> = (0..d.len()).collect();
    for chunk in all.chunks(500) {
        let (x, _) = train::batch(d, chunk)?;
        let f = m.forward(&x, false)?;
        let layers: &[Tensor] = if pre { &f.pre } else { &f.post };
        let arrays = layers
            .iter()
            .map(|t| {
                let r = t.dim(0)?;
                let v = t.flatten_all()?.to_vec1::<f32>()?;
                let c = v.len() / r.max(1);
                Ok(ndarray::Array2::from_shape_vec((r, c), v)?)
            })
            .collect::<Result<Vec<_>>>()?;
        let views: Vec<_> = arrays.iter().map(|a| a.view()).collect();
        w.write_batch(&views)?;
        pb.inc(chunk.len() as u64);
    }
    Ok(w.finish()?)
}
