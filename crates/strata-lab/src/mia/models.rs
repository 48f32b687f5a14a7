//! Training the audit's models: one target and the reference models of each model set, each on
//! its half of the pool, with their logits on the whole pool cached under the SHA-256 of
//! everything that produced them (a re-run with other attacks or output defenses trains nothing).

use crate::hashing::{data_fingerprint, sha256_hex};
use anyhow::{Context, Result};
use serde_json::json;
use std::path::{Path, PathBuf};
use std::time::Instant;
use strata_data::dataset::{Dataset, Splits};
use strata_nn::net::{Architecture, Net, NetConfig};
use strata_nn::train::{self, TrainConfig};
use strata_nn::Precision;

/// What one model set is: architecture, precision and training settings (L2 included).
#[derive(Clone, Debug)]
pub struct ModelSpec {
    /// Network architecture.
    pub architecture: Architecture,
    /// Hidden widths (empty for CNNs).
    pub widths: Vec<usize>,
    /// Precision of weights and activations.
    pub precision: Precision,
    /// Training settings, seed and L2 penalty included.
    pub train: TrainConfig,
}

/// A trained model's figures and its logits on the pool (row-major, `pool x classes`).
#[derive(Clone, Debug)]
pub struct Trained {
    /// Logits on every pool example, row-major `pool x classes`.
    pub logits: Vec<f32>,
    /// Accuracy on the pool examples it trained on, in [0, 1].
    pub train_accuracy: f64,
    /// Accuracy on the data's test split, in [0, 1].
    pub test_accuracy: f64,
    /// Seconds training took (for a cached model, when it was trained).
    pub seconds: f64,
    /// Read from the cache rather than trained now.
    pub cached: bool,
}

const MAGIC: &[u8] = b"STRATA-MIA-LOGITS-1\n";

/// Logits of `model` on every example of `d`, in evaluation mode.
pub fn logits(model: &mut Net, d: &Dataset) -> Result<Vec<f32>> {
    let mut out = Vec::with_capacity(d.len() * d.classes);
    let all: Vec<usize> = (0..d.len()).collect();
    for chunk in all.chunks(1000) {
        let (x, _) = train::batch(d, chunk)?;
        let l = model.forward(&x, false)?.logits;
        out.extend(l.flatten_all()?.to_vec1::<f32>()?);
    }
    Ok(out)
}

/// SHA-256 of a list of indices (little-endian u64s).
fn hash_indices(idx: &[usize]) -> String {
    sha256_hex(
        &idx.iter()
            .flat_map(|&i| (i as u64).to_le_bytes())
            .collect::<Vec<u8>>(),
    )
}

/// The cache key of a model trained on `members` (indices into the pool) of `pool`.
pub fn key(spec: &ModelSpec, fingerprint: &str, pool_idx: &[usize], members: &[usize]) -> String {
    let v = json!({
        "format": "strata-mia-1",
        "data": fingerprint,
        "pool": hash_indices(pool_idx),
        "members": hash_indices(members),
        "architecture": spec.architecture,
        "widths": spec.widths,
        "precision": spec.precision,
        "train": spec.train,
    });
    sha256_hex(v.to_string().as_bytes())
}

fn read_cached(path: &Path, n: usize, classes: usize) -> Option<Trained> {
    let b = std::fs::read(path).ok()?;
    let body = b.strip_prefix(MAGIC)?;
    let head = 8 * 5;
    if body.len() != head + 4 * n * classes {
        return None;
    }
    let u = |k: usize| u64::from_le_bytes(body[8 * k..8 * k + 8].try_into().unwrap_or_default());
    let f = |k: usize| f64::from_bits(u(k));
    if u(0) as usize != n || u(1) as usize != classes {
        return None;
    }
    let logits = body[head..]
        .chunks_exact(4)
        .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect();
    Some(Trained {
        logits,
        train_accuracy: f(2),
        test_accuracy: f(3),
        seconds: f(4),
        cached: true,
    })
}

fn write_cached(path: &Path, t: &Trained, n: usize, classes: usize) -> Result<()> {
    let mut b = MAGIC.to_vec();
    for v in [n as u64, classes as u64] {
        b.extend(v.to_le_bytes());
    }
    for v in [t.train_accuracy, t.test_accuracy, t.seconds] {
        b.extend(v.to_bits().to_le_bytes());
    }
    for v in &t.logits {
        b.extend(v.to_le_bytes());
    }
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    strata_report::write_atomic(path, &b)?;
    Ok(())
}

/// Trains models for one audit, with an optional cache folder.
pub struct Trainer<'a> {
    /// The data's splits (the test split gives each model's test accuracy).
    pub data: &'a Splits,
    /// The audit's pool: what models train on (their halves of it) and are scored on.
    pub pool: &'a Dataset,
    /// Indices of the pool in the training split (part of every cache key).
    pub pool_idx: &'a [usize],
    /// Folder of cached logits (`None`: train everything).
    pub cache: Option<PathBuf>,
    fingerprint: String,
}

impl<'a> Trainer<'a> {
    /// A trainer over `pool` (drawn at `pool_idx` from `data`'s training split), caching in
    /// `cache` when given.
    pub fn new(
        data: &'a Splits,
        pool: &'a Dataset,
        pool_idx: &'a [usize],
        cache: Option<PathBuf>,
    ) -> Self {
        let fingerprint = if cache.is_some() {
            data_fingerprint(data)
        } else {
            String::new()
        };
        Trainer {
            data,
            pool,
            pool_idx,
            cache,
            fingerprint,
        }
    }

    /// Train (or read from the cache) a model on the pool examples `members`, advancing
    /// `on_step` once per batch.
    pub fn train(
        &self,
        spec: &ModelSpec,
        members: &[usize],
        on_step: &mut dyn FnMut(),
    ) -> Result<Trained> {
        let (n, classes) = (self.pool.len(), self.pool.classes);
        let path = self.cache.as_ref().map(|dir| {
            dir.join(format!(
                "{}.logits",
                key(spec, &self.fingerprint, self.pool_idx, members)
            ))
        });
        if let Some(t) = path.as_deref().and_then(|p| read_cached(p, n, classes)) {
            return Ok(t);
        }
        let t0 = Instant::now();
        let config = NetConfig {
            architecture: spec.architecture,
            input_shape: self.pool.shape.clone(),
            widths: spec.widths.clone(),
            classes,
            precision: spec.precision,
            logits: Default::default(),
        };
        strata_nn::limits::check_config(&config, spec.train.batch_size.max(2), true)?;
        let mut model = Net::try_new(config, spec.train.seed)?;
        let train_set = self.pool.select(members);
        let empty = train_set.head(0);
        let history = train::train(
            &mut model,
            &train_set,
            &empty,
            &spec.train,
            &mut |_, _, _, _| on_step(),
            &mut |_| {},
        )?;
        if let Some(e) = history.iter().find(|e| !e.loss.is_finite()) {
            anyhow::bail!(
                "training diverged: the loss is {} at epoch {} ({}); lower the learning rate",
                e.loss,
                e.epoch,
                spec.precision.name()
            );
        }
        let t = Trained {
            logits: logits(&mut model, self.pool)?,
            train_accuracy: train::accuracy(&mut model, &train_set)?,
            test_accuracy: train::accuracy(&mut model, &self.data.test)?,
            seconds: t0.elapsed().as_secs_f64(),
            cached: false,
        };
        if let Some(p) = &path {
            write_cached(p, &t, n, classes)?;
        }
        Ok(t)
    }
}
