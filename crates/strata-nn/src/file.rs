//! Model files: weights in safetensors (`NAME.safetensors`) beside a JSON config (`NAME.json`)
//! holding the architecture, precision, data, seed, training settings and accuracies.

use crate::net::{Net, NetConfig};
use crate::train::{EpochStats, TrainConfig};
use candle_core::{Device, Tensor};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::path::{Path, PathBuf};

/// The JSON half of a model file.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ModelCard {
    /// `strata-model-1`.
    pub format: String,
    pub config: NetConfig,
    pub data: String,
    pub train: TrainConfig,
    pub train_accuracy: f64,
    pub test_accuracy: f64,
    pub history: Vec<EpochStats>,
    pub threads: usize,
    pub seconds: f64,
    pub strata_version: String,
}

/// Errors reading or writing a model file.
#[derive(Debug, thiserror::Error)]
pub enum ModelFileError {
    #[error("{path}: {msg}")]
    Bad { path: PathBuf, msg: String },
}

fn bad(path: &Path, msg: impl std::fmt::Display) -> ModelFileError {
    ModelFileError::Bad {
        path: path.to_path_buf(),
        msg: msg.to_string(),
    }
}

/// `model.safetensors` / `model.json` / `model` -> (`model.safetensors`, `model.json`).
pub fn paths(path: &Path) -> (PathBuf, PathBuf) {
    let stem = match path.extension().and_then(|e| e.to_str()) {
        Some("safetensors") | Some("json") => path.with_extension(""),
        _ => path.to_path_buf(),
    };
    let name = stem
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "model".into());
    (
        stem.with_file_name(format!("{name}.safetensors")),
        stem.with_file_name(format!("{name}.json")),
    )
}

fn tensors(model: &Net) -> candle_core::Result<HashMap<String, Tensor>> {
    let mut m = HashMap::new();
    for l in &model.blocks {
        m.insert(format!("{}.weight", l.name), l.w.as_tensor().clone());
        m.insert(
            format!("{}.bn.gamma", l.name),
            l.bn.gamma.as_tensor().clone(),
        );
        m.insert(format!("{}.bn.beta", l.name), l.bn.beta.as_tensor().clone());
        m.insert(
            format!("{}.bn.running_mean", l.name),
            l.bn.running_mean.clone(),
        );
        m.insert(
            format!("{}.bn.running_var", l.name),
            l.bn.running_var.clone(),
        );
    }
    Ok(m)
}

/// Write both files atomically (temporary names, then renames).
pub fn save(
    path: &Path,
    model: &Net,
    card: &ModelCard,
) -> Result<(PathBuf, PathBuf), ModelFileError> {
    let (wp, jp) = paths(path);
    if let Some(dir) = wp.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(|e| bad(dir, e))?;
    }
    let tw = strata_data::store::tmp_path(&wp);
    let tj = strata_data::store::tmp_path(&jp);
    let result = (|| {
        candle_core::safetensors::save(&tensors(model).map_err(|e| bad(&wp, e))?, &tw)
            .map_err(|e| bad(&wp, e))?;
        let json = serde_json::to_string_pretty(card).map_err(|e| bad(&jp, e))?;
        std::fs::write(&tj, json).map_err(|e| bad(&jp, e))?;
        std::fs::rename(&tw, &wp).map_err(|e| bad(&wp, e))?;
        std::fs::rename(&tj, &jp).map_err(|e| bad(&jp, e))
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tw);
        let _ = std::fs::remove_file(&tj);
    }
    result.map(|_| (wp, jp))
}

/// Load a model saved by [`save`], checking every tensor's presence and shape.
pub fn load(path: &Path) -> Result<(Net, ModelCard), ModelFileError> {
    let (wp, jp) = paths(path);
    let text = std::fs::read_to_string(&jp)
        .map_err(|e| bad(&jp, format!("cannot read the model's JSON config: {e}")))?;
    let card: ModelCard = serde_json::from_str(&text)
        .map_err(|e| bad(&jp, format!("not a strata model config: {e}")))?;
    let c = &card.config;
    if c.classes == 0 || c.widths.contains(&0) || c.input_shape.iter().product::<usize>() == 0 {
        return Err(bad(&jp, "config has a zero-sized layer"));
    }
    if c.widths.len() > 64 {
        return Err(bad(&jp, "config has more than 64 hidden layers"));
    }
    let mut model = Net::new(c.clone(), 0).map_err(|e| bad(&jp, e))?;
    let mut ts = candle_core::safetensors::load(&wp, &Device::Cpu)
        .map_err(|e| bad(&wp, format!("cannot read weights: {e}")))?;
    for l in model.blocks.iter_mut() {
        let wshape = l.w.as_tensor().dims().to_vec();
        let out = l.bn.gamma.as_tensor().dims()[0];
        let mut take = |key: &str, shape: &[usize]| -> Result<Tensor, ModelFileError> {
            let name = format!("{}.{key}", l.name);
            let t = ts
                .remove(&name)
                .ok_or_else(|| bad(&wp, format!("missing tensor '{name}'")))?;
            if t.dims() != shape {
                return Err(bad(
                    &wp,
                    format!(
                        "tensor '{name}' has shape {:?}, the config says {shape:?}",
                        t.dims()
                    ),
                ));
            }
            t.to_dtype(candle_core::DType::F32).map_err(|e| bad(&wp, e))
        };
        let w = take("weight", &wshape)?;
        l.w.set(&w).map_err(|e| bad(&wp, e))?;
        l.bn.gamma
            .set(&take("bn.gamma", &[out])?)
            .map_err(|e| bad(&wp, e))?;
        l.bn.beta
            .set(&take("bn.beta", &[out])?)
            .map_err(|e| bad(&wp, e))?;
        l.bn.running_mean = take("bn.running_mean", &[out])?;
        l.bn.running_var = take("bn.running_var", &[out])?;
    }
    Ok((model, card))
}
