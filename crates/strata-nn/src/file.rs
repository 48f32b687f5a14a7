//! Model files: weights in safetensors (`NAME.safetensors`) beside a JSON card (`NAME.json`)
//! holding the architecture, precision, data, seed, training settings and accuracies.
//!
//! Loading trusts nothing in either file: the card is checked in full (hard caps, shapes that fit
//! the architecture, the memory the network needs) and the weights file's header is compared
//! with the tensors the card implies (names, dtype, shapes, data offsets, file length) before a
//! byte of weights is read or a network allocated. So a hostile or damaged file gives one line
//! naming the file and the fault, never a panic or an out-of-memory abort.
//!
//! Saving writes both files under temporary names and renames them into place, each created
//! with the ordinary mode (`0666` less the umask), so the pair always has the same permissions.

use crate::error::NnError;
use crate::net::{plan, BlockParams, BlockPlan, Net, NetConfig};
use crate::train::{EpochStats, TrainConfig};
use candle_core::{DType, Tensor};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use strata_data::fsutil::{commit, write_temp};

/// The `format` every model card carries.
pub const FORMAT: &str = "strata-model-1";

/// Cards above this size are refused unread: the largest strata writes (100,000 epochs of
/// history) is about 30 MB.
const MAX_CARD_BYTES: u64 = 256 << 20;

/// Safetensors headers above this size are refused unread: a model of [`crate::limits::MAX_LAYERS`]
/// blocks writes about 30 KB.
const MAX_HEADER_BYTES: u64 = 1 << 20;

/// What to do about a damaged file.
const REDO: &str = "retrain the model or copy it again";

/// The JSON half of a model file.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ModelCard {
    /// [`FORMAT`].
    pub format: String,
    /// The network: architecture, input shape, widths, classes, precision.
    pub config: NetConfig,
    /// The data set it was trained on (`mnist`, `digits`, ...).
    pub data: String,
    /// The training settings, seed included.
    pub train: TrainConfig,
    /// Fraction of training examples classified correctly after training, in [0, 1].
    pub train_accuracy: f64,
    /// Fraction of test examples classified correctly after training, in [0, 1].
    pub test_accuracy: f64,
    /// Every epoch's figures, in order.
    pub history: Vec<EpochStats>,
    /// Threads training ran on (results do not depend on it; timings do).
    pub threads: usize,
    /// Wall-clock training time, in seconds.
    pub seconds: f64,
    /// The strata version that trained and wrote the model.
    pub strata_version: String,
}

/// Errors reading or writing a model file. Every variant carries the file at fault
/// ([`ModelFileError::path`]), so a caller holding several models (the analysis cache) can say
/// which entry failed, and [`ModelFileError::is_corrupt`] tells a damaged entry (retraining
/// replaces it) from a machine problem.
#[derive(Debug, thiserror::Error)]
pub enum ModelFileError {
    /// The file could not be read, written or renamed (missing, permissions, disk full).
    #[error("{path}: {msg}")]
    Io {
        /// The file at fault.
        path: PathBuf,
        /// What was being done and the operating system's reason.
        msg: String,
        /// The operating system's error kind (`NotFound`, `PermissionDenied`, ...).
        kind: std::io::ErrorKind,
    },
    /// The JSON card is not a strata model card (bad JSON, a missing field, a wrong type, an
    /// unknown precision or architecture, another format).
    #[error("{path}: {msg}")]
    Card {
        /// The card.
        path: PathBuf,
        /// What is wrong with it.
        msg: String,
    },
    /// The card describes a network that cannot exist, exceeds a hard cap, or would not fit in
    /// memory ([`NnError`]).
    #[error("{path}: {source}")]
    Config {
        /// The card.
        path: PathBuf,
        /// Why the network it describes is refused.
        source: NnError,
    },
    /// The weights file is truncated, corrupt, not safetensors, or holds other tensors than the
    /// card implies.
    #[error("{path}: {msg}")]
    Weights {
        /// The weights file.
        path: PathBuf,
        /// What is wrong with it, and what to do.
        msg: String,
    },
    /// A tensor whose shape differs from the one the card implies.
    #[error(
        "{path}: tensor '{tensor}' has shape {found:?} but the model card implies {expected:?}; \
         the weights and the card come from different models"
    )]
    Mismatch {
        /// The weights file.
        path: PathBuf,
        /// The tensor's name (`fc1.weight`).
        tensor: String,
        /// The shape the card implies.
        expected: Vec<usize>,
        /// The shape the weights file declares.
        found: Vec<u64>,
    },
}

impl ModelFileError {
    /// The file at fault (the card or the weights).
    pub fn path(&self) -> &Path {
        match self {
            ModelFileError::Io { path, .. }
            | ModelFileError::Card { path, .. }
            | ModelFileError::Config { path, .. }
            | ModelFileError::Weights { path, .. }
            | ModelFileError::Mismatch { path, .. } => path,
        }
    }

    /// True when the files themselves are at fault (damaged, mismatched, describing an
    /// impossible or capped network), so deleting and retraining the model mends it; false for
    /// I/O failures and for a network that is merely too large for this machine's free memory.
    pub fn is_corrupt(&self) -> bool {
        match self {
            ModelFileError::Io { .. } => false,
            ModelFileError::Config { source, .. } => !matches!(source, NnError::Memory { .. }),
            _ => true,
        }
    }
}

fn io(path: &Path, doing: &str, e: std::io::Error) -> ModelFileError {
    ModelFileError::Io {
        path: path.to_path_buf(),
        msg: format!("{doing}: {e}"),
        kind: e.kind(),
    }
}

fn weights(path: &Path, msg: impl std::fmt::Display) -> ModelFileError {
    ModelFileError::Weights {
        path: path.to_path_buf(),
        msg: msg.to_string(),
    }
}

/// A damaged weights file: the fault, then what to do.
fn damaged(path: &Path, msg: impl std::fmt::Display) -> ModelFileError {
    weights(path, format!("{msg}; {REDO}"))
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

/// The tensors a configuration implies, in block order: name and shape.
fn expected_tensors(plans: &[BlockPlan]) -> Vec<(String, Vec<usize>)> {
    let mut v = Vec::with_capacity(plans.len() * 5);
    for p in plans {
        v.push((format!("{}.weight", p.name), p.wshape.clone()));
        for key in ["bn.gamma", "bn.beta", "bn.running_mean", "bn.running_var"] {
            v.push((format!("{}.{key}", p.name), vec![p.out]));
        }
    }
    v
}

fn model_tensors(model: &Net) -> Vec<(String, Tensor)> {
    let mut v = Vec::with_capacity(model.blocks.len() * 5);
    for l in &model.blocks {
        v.push((format!("{}.weight", l.name), l.w.as_tensor().clone()));
        v.push((
            format!("{}.bn.gamma", l.name),
            l.bn.gamma.as_tensor().clone(),
        ));
        v.push((format!("{}.bn.beta", l.name), l.bn.beta.as_tensor().clone()));
        v.push((
            format!("{}.bn.running_mean", l.name),
            l.bn.running_mean.clone(),
        ));
        v.push((
            format!("{}.bn.running_var", l.name),
            l.bn.running_var.clone(),
        ));
    }
    v
}

/// Stream `tensors` as a safetensors file (little-endian f32, header padded to 8 bytes), one
/// tensor's values in memory at a time.
fn write_safetensors(w: &mut dyn Write, tensors: &[(String, Tensor)]) -> std::io::Result<()> {
    let other = |e: candle_core::Error| std::io::Error::other(e.to_string());
    let mut header = serde_json::Map::new();
    let mut offset = 0u64;
    for (name, t) in tensors {
        let bytes = 4 * t.elem_count() as u64;
        header.insert(
            name.clone(),
            serde_json::json!({
                "dtype": "F32",
                "shape": t.dims(),
                "data_offsets": [offset, offset + bytes],
            }),
        );
        offset += bytes;
    }
    let mut text = serde_json::to_string(&header).map_err(std::io::Error::other)?;
    while text.len() % 8 != 0 {
        text.push(' ');
    }
    w.write_all(&(text.len() as u64).to_le_bytes())?;
    w.write_all(text.as_bytes())?;
    for (_, t) in tensors {
        let vals = t
            .to_dtype(DType::F32)
            .and_then(|t| t.flatten_all())
            .and_then(|t| t.to_vec1::<f32>())
            .map_err(other)?;
        let mut buf = Vec::with_capacity(vals.len().min(1 << 16) * 4);
        for chunk in vals.chunks(1 << 16) {
            buf.clear();
            for v in chunk {
                buf.extend_from_slice(&v.to_le_bytes());
            }
            w.write_all(&buf)?;
        }
    }
    Ok(())
}

/// Write both files atomically (temporary names, then renames), with the same permissions.
pub fn save(
    path: &Path,
    model: &Net,
    card: &ModelCard,
) -> Result<(PathBuf, PathBuf), ModelFileError> {
    let (wp, jp) = paths(path);
    if let Some(dir) = wp.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(|e| io(dir, "cannot create the directory", e))?;
    }
    let json = serde_json::to_string_pretty(card).map_err(|e| ModelFileError::Card {
        path: jp.clone(),
        msg: format!("cannot write the model card: {e}"),
    })?;
    let tensors = model_tensors(model);
    let tw = write_temp(&wp, |w| write_safetensors(w, &tensors))
        .map_err(|e| io(&wp, "cannot write", e))?;
    let tj = match write_temp(&jp, |w| w.write_all(json.as_bytes())) {
        Ok(t) => t,
        Err(e) => {
            let _ = std::fs::remove_file(&tw);
            return Err(io(&jp, "cannot write", e));
        }
    };
    // `commit` removes its own temporary file when the rename fails; the card's must go too
    // when the weights' rename fails first.
    let renamed = commit(&tw, &wp)
        .map_err(|e| io(&wp, "cannot rename into place", e))
        .and_then(|_| commit(&tj, &jp).map_err(|e| io(&jp, "cannot rename into place", e)));
    if renamed.is_err() {
        let _ = std::fs::remove_file(&tj);
    }
    renamed.map(|_| (wp, jp))
}

/// Read and check a model card: JSON of the right form, [`FORMAT`], and a configuration that
/// passes [`crate::limits::check_config`] (caps, shapes, memory to build). Reads nothing else.
pub fn read_card(path: &Path) -> Result<ModelCard, ModelFileError> {
    let (_, jp) = paths(path);
    let card_err = |msg: String| ModelFileError::Card {
        path: jp.clone(),
        msg,
    };
    let mut f = std::fs::File::open(&jp).map_err(|e| io(&jp, "cannot read the model card", e))?;
    let len = f
        .metadata()
        .map_err(|e| io(&jp, "cannot read the model card", e))?
        .len();
    if len > MAX_CARD_BYTES {
        return Err(card_err(format!(
            "the model card is {len} bytes, more than any strata model card (corrupt file)"
        )));
    }
    let mut text = String::new();
    f.read_to_string(&mut text).map_err(|e| {
        if e.kind() == std::io::ErrorKind::InvalidData {
            card_err("the model card is not UTF-8 text (corrupt file)".into())
        } else {
            io(&jp, "cannot read the model card", e)
        }
    })?;
    let card: ModelCard = serde_json::from_str(&text)
        .map_err(|e| card_err(format!("not a strata model card: {e}")))?;
    if card.format != FORMAT {
        return Err(card_err(format!(
            "format '{}' is not {FORMAT}",
            card.format.escape_debug()
        )));
    }
    crate::limits::check_config(&card.config, 1, false).map_err(|source| {
        ModelFileError::Config {
            path: jp.clone(),
            source,
        }
    })?;
    Ok(card)
}

/// One tensor's entry in a safetensors header.
struct Entry {
    dtype: String,
    shape: Vec<u64>,
    offsets: (u64, u64),
}

fn parse_entry(v: &serde_json::Value) -> Option<Entry> {
    let dtype = v.get("dtype")?.as_str()?.to_string();
    let shape = v
        .get("shape")?
        .as_array()?
        .iter()
        .map(|d| d.as_u64())
        .collect::<Option<Vec<u64>>>()?;
    let o = v.get("data_offsets")?.as_array()?;
    if o.len() != 2 {
        return None;
    }
    Some(Entry {
        dtype,
        shape,
        offsets: (o[0].as_u64()?, o[1].as_u64()?),
    })
}

/// The weights file's length and header, read without trusting either (the header's length is
/// bounded before it is read).
fn read_header(
    wp: &Path,
    f: &mut std::fs::File,
) -> Result<(u64, u64, BTreeMap<String, Entry>), ModelFileError> {
    use safetensors::SafeTensorError as E;
    use strata_data::safetensors_error_message as say;
    let len = f
        .metadata()
        .map_err(|e| io(wp, "cannot read the weights", e))?
        .len();
    let mut prefix = [0u8; 8];
    if len < 8 {
        return Err(damaged(wp, say(&E::HeaderTooSmall)));
    }
    f.read_exact(&mut prefix)
        .map_err(|e| io(wp, "cannot read the weights", e))?;
    let n = u64::from_le_bytes(prefix);
    if n > len - 8 {
        return Err(damaged(
            wp,
            format!(
                "its header claims {n} bytes but only {} follow the length prefix (truncated or \
                 corrupt file)",
                len - 8
            ),
        ));
    }
    if n > MAX_HEADER_BYTES {
        return Err(damaged(
            wp,
            format!(
                "its header claims {n} bytes, more than a strata model's header ever takes \
                 (corrupt file, or not a strata model)"
            ),
        ));
    }
    let mut header = vec![0u8; n as usize];
    f.read_exact(&mut header)
        .map_err(|e| io(wp, "cannot read the weights", e))?;
    let text = std::str::from_utf8(&header).map_err(|e| damaged(wp, say(&E::InvalidHeader(e))))?;
    let raw: BTreeMap<String, serde_json::Value> = serde_json::from_str(text)
        .map_err(|e| damaged(wp, say(&E::InvalidHeaderDeserialization(e))))?;
    let mut entries = BTreeMap::new();
    for (name, v) in raw {
        if name == "__metadata__" {
            continue;
        }
        let Some(e) = parse_entry(&v) else {
            return Err(damaged(
                wp,
                format!(
                    "its header entry for tensor '{}' is malformed (corrupt file)",
                    name.escape_debug()
                ),
            ));
        };
        entries.insert(name, e);
    }
    Ok((len, n, entries))
}

/// Compare the header with the tensors the card implies: names, dtype, shapes, then data
/// offsets (contiguous, each exactly its tensor's size) and the file's length. Returns the
/// data's length.
fn check_header(
    wp: &Path,
    len: u64,
    n: u64,
    entries: &BTreeMap<String, Entry>,
    expected: &[(String, Vec<usize>)],
) -> Result<u64, ModelFileError> {
    for (name, shape) in expected {
        let Some(e) = entries.get(name) else {
            return Err(weights(
                wp,
                format!(
                    "{}, which the model card implies; the weights and the card come from \
                     different models, or the file is corrupt",
                    strata_data::safetensors_error_message(
                        &safetensors::SafeTensorError::TensorNotFound(name.clone())
                    )
                ),
            ));
        };
        if e.shape.len() != shape.len() || e.shape.iter().zip(shape).any(|(&a, &b)| a != b as u64) {
            return Err(ModelFileError::Mismatch {
                path: wp.to_path_buf(),
                tensor: name.clone(),
                expected: shape.clone(),
                found: e.shape.clone(),
            });
        }
        if e.dtype != "F32" {
            return Err(damaged(
                wp,
                format!(
                    "tensor '{name}' is stored as {}; strata model files hold F32",
                    e.dtype.escape_debug()
                ),
            ));
        }
    }
    if let Some(extra) = entries
        .keys()
        .find(|k| !expected.iter().any(|(name, _)| name == *k))
    {
        return Err(weights(
            wp,
            format!(
                "holds tensor '{}', which the model card does not describe; the weights and the \
                 card come from different models",
                extra.escape_debug()
            ),
        ));
    }
    let mut spans: Vec<(u64, u64, &str, usize)> = expected
        .iter()
        .map(|(name, shape)| {
            let e = &entries[name];
            (
                e.offsets.0,
                e.offsets.1,
                name.as_str(),
                shape.iter().product(),
            )
        })
        .collect();
    spans.sort();
    let mut end = 0u64;
    for (s, e, name, numel) in spans {
        let bytes = 4 * numel as u64;
        if e < s || e - s != bytes {
            return Err(damaged(
                wp,
                format!(
                    "tensor '{name}': an F32 tensor of {numel} values needs {bytes} bytes but its \
                     data offsets [{s}, {e}] say otherwise (corrupt file)"
                ),
            ));
        }
        if s != end {
            return Err(damaged(
                wp,
                strata_data::safetensors_error_message(
                    &safetensors::SafeTensorError::InvalidOffset(name.to_string()),
                ),
            ));
        }
        end = e;
    }
    let have = len - 8 - n;
    if have < end {
        return Err(damaged(
            wp,
            format!(
                "its tensors' data should end at byte {} but the file has only {len} bytes \
                 (truncated file)",
                8 + n + end
            ),
        ));
    }
    if have > end {
        return Err(damaged(
            wp,
            format!(
                "its tensors' data ends at byte {} but the file has {len} bytes (extra bytes \
                 appended, or a corrupt header)",
                8 + n + end
            ),
        ));
    }
    Ok(end)
}

/// Load a model saved by [`save`]. The card is checked in full ([`read_card`]) and the weights
/// file's header compared with the tensors the card implies before any weights are read or the
/// network allocated; every failure is one line naming the file.
pub fn load(path: &Path) -> Result<(Net, ModelCard), ModelFileError> {
    let (wp, jp) = paths(path);
    let card = read_card(path)?;
    let config_err = |source: NnError| ModelFileError::Config {
        path: jp.clone(),
        source,
    };
    let plans = plan(&card.config).map_err(config_err)?;
    let expected = expected_tensors(&plans);
    let mut f = std::fs::File::open(&wp).map_err(|e| io(&wp, "cannot read the weights", e))?;
    let (len, n, entries) = read_header(&wp, &mut f)?;
    check_header(&wp, len, n, &entries, &expected)?;
    // The length is now exactly what the card implies, which check_config sized: safe to read,
    // from the same open file (a file swapped meanwhile cannot make it larger).
    let mut bytes = Vec::with_capacity(len as usize);
    std::io::Seek::rewind(&mut f)
        .and_then(|_| (&mut f).take(len).read_to_end(&mut bytes))
        .map_err(|e| io(&wp, "cannot read the weights", e))?;
    let st = safetensors::SafeTensors::deserialize(&bytes)
        .map_err(|e| damaged(&wp, strata_data::safetensors_error_message_in(&e, &bytes)))?;
    let take = |name: &str, numel: usize| -> Result<Vec<f32>, ModelFileError> {
        let view = st
            .tensor(name)
            .map_err(|e| damaged(&wp, strata_data::safetensors_error_message_in(&e, &bytes)))?;
        let data = view.data();
        if view.dtype() != safetensors::Dtype::F32 || data.len() != numel * 4 {
            return Err(damaged(
                &wp,
                format!("tensor '{name}' changed while it was read (file rewritten meanwhile?)"),
            ));
        }
        Ok(data
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect())
    };
    let mut params = Vec::with_capacity(plans.len());
    for p in &plans {
        params.push(BlockParams {
            weight: take(&format!("{}.weight", p.name), p.weight_elems())?,
            gamma: take(&format!("{}.bn.gamma", p.name), p.out)?,
            beta: take(&format!("{}.bn.beta", p.name), p.out)?,
            running_mean: take(&format!("{}.bn.running_mean", p.name), p.out)?,
            running_var: take(&format!("{}.bn.running_var", p.name), p.out)?,
        });
    }
    drop(bytes);
    let net = Net::assemble(card.config.clone(), plans, params).map_err(config_err)?;
    Ok((net, card))
}
