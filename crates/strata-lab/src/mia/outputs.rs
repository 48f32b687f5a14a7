//! Reading outside models' outputs on the pool: one file per model (`.npy`, `.npz`,
//! `.safetensors`, Arrow, Parquet, `.pt`; one array of shape pool x classes) or one file with a
//! stacked models x pool x classes array; float16/32/64, logits or probabilities. Each model is
//! turned into the statistics the attacks read ([`Released`]) as soon as it is read, so memory
//! holds a few models' raw outputs at a time, not all of them.

use anyhow::{bail, Context, Result};
use rayon::prelude::*;
use std::path::{Path, PathBuf};
use strata_data::{open as open_outputs, Activations};
use strata_privacy::{Defense, Released};

/// What the files hold.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum OutputKind {
    /// Pre-softmax logits (the default: exact, and what LiRA's paper uses).
    Logits,
    /// Softmax probabilities (each row sums to 1).
    Probs,
}

impl OutputKind {
    /// What the files hold, as a plural noun for sentences ("17 models' logits").
    pub fn noun(self) -> &'static str {
        match self {
            OutputKind::Logits => "logits",
            OutputKind::Probs => "probabilities",
        }
    }
}

/// The models' output files, as given.
pub struct OutputFiles {
    files: Vec<(PathBuf, Activations)>,
    stacked: bool,
    /// Number of models the files hold.
    pub models: usize,
    /// Examples per model.
    pub pool: usize,
    /// Classes per example.
    pub classes: usize,
}

/// The one array of `a`, or an error naming what it holds instead.
fn single_array(path: &Path, a: &Activations) -> Result<()> {
    if a.layers().len() != 1 {
        let names: Vec<&str> = a.layers().iter().map(|l| l.name.as_str()).collect();
        bail!(
            "{} holds {} arrays ({}); give one file per model with one array each, or one models x pool x classes array",
            path.display(),
            names.len(),
            names.join(", ")
        );
    }
    Ok(())
}

impl OutputFiles {
    /// Open `paths` (one per model, or one stacked file) for a design of `models` models over a
    /// pool of `pool` examples, checking shapes before anything is read.
    pub fn open(paths: &[PathBuf], models: usize, pool: usize) -> Result<OutputFiles> {
        if paths.is_empty() {
            bail!("no output files given: pass one file per model, or one stacked models x pool x classes file");
        }
        let mut files = Vec::with_capacity(paths.len());
        for p in paths {
            let a = open_outputs(p).with_context(|| format!("model outputs {}", p.display()))?;
            single_array(p, &a)?;
            files.push((p.clone(), a));
        }
        let (p0, a0) = &files[0];
        let shape0 = a0.layers()[0].shape.clone();
        if files.len() == 1 && shape0.len() == 2 {
            // One stacked array: models x pool x classes.
            let (n, c) = (shape0[0], shape0[1]);
            if a0.n() != models {
                bail!(
                    "{} stacks the outputs of {} models; the design has {models}",
                    p0.display(),
                    a0.n()
                );
            }
            if n != pool {
                bail!(
                    "{} holds outputs on {n} examples per model; the design's pool has {pool}",
                    p0.display()
                );
            }
            return Ok(OutputFiles {
                files,
                stacked: true,
                models,
                pool,
                classes: c,
            });
        }
        if files.len() != models {
            bail!(
                "the design has {models} models, {} output file(s) were given: pass one per model, in model order (the outputs of model {} are missing)",
                files.len(),
                files.len().min(models)
            );
        }
        let mut classes = None;
        for (m, (p, a)) in files.iter().enumerate() {
            let shape = &a.layers()[0].shape;
            if shape.len() != 1 {
                bail!(
                    "{} (model {m}) has shape {} x {}; expected pool x classes ({pool} x C)",
                    p.display(),
                    a.n(),
                    shape
                        .iter()
                        .map(|d| d.to_string())
                        .collect::<Vec<_>>()
                        .join(" x ")
                );
            }
            if a.n() != pool {
                bail!(
                    "{} (model {m}) holds outputs on {} examples; the design's pool has {pool}",
                    p.display(),
                    a.n()
                );
            }
            match classes {
                None => classes = Some(shape[0]),
                Some(c) if c != shape[0] => bail!(
                    "{} (model {m}) has {} classes, {} (model 0) has {c}: every model must score the same classes",
                    p.display(),
                    shape[0],
                    files[0].0.display()
                ),
                Some(_) => {}
            }
        }
        let classes = classes.unwrap_or(0);
        if classes < 2 {
            bail!("model outputs need at least 2 classes, got {classes}");
        }
        Ok(OutputFiles {
            files,
            stacked: false,
            models,
            pool,
            classes,
        })
    }

    /// The file model `m`'s outputs come from.
    pub fn path(&self, m: usize) -> &Path {
        &self.files[if self.stacked { 0 } else { m }].0
    }

    /// Every model's released statistics under `defense`, in model order.
    pub fn released(
        &self,
        labels: &[u32],
        kind: OutputKind,
        defense: &Defense,
    ) -> Result<Vec<Released>> {
        let convert = |m: usize, raw: &[f32]| -> Result<Released> {
            let r = match kind {
                OutputKind::Logits => Released::from_logits(raw, self.classes, labels, defense),
                OutputKind::Probs => Released::from_probs(raw, self.classes, labels, defense),
            };
            r.with_context(|| format!("outputs of model {m} ({})", self.path(m).display()))
        };
        if self.stacked {
            let a = &self.files[0].1;
            // A few models at a time: bounded memory, and both cores busy converting.
            let step = 4;
            let mut reader = a.batches(&[0], step)?;
            let mut out = Vec::with_capacity(self.models);
            while let Some(batch) = reader.next_batch()? {
                let rows = &batch[0];
                let first = out.len();
                let got: Vec<Released> = (0..rows.nrows())
                    .into_par_iter()
                    .map(|k| {
                        let row = rows.row(k);
                        let raw = row.as_slice().map_or_else(|| row.to_vec(), <[f32]>::to_vec);
                        convert(first + k, &raw)
                    })
                    .collect::<Result<_>>()?;
                out.extend(got);
            }
            return Ok(out);
        }
        self.files
            .par_iter()
            .enumerate()
            .map(|(m, (_, a))| {
                // The reader's errors name the file already.
                let x = a
                    .read_layer(0)
                    .with_context(|| format!("outputs of model {m}"))?;
                match x.as_slice() {
                    Some(s) => convert(m, s),
                    None => convert(m, &x.iter().copied().collect::<Vec<_>>()),
                }
            })
            .collect()
    }
}

/// Labels of the pool from an integer `.npy` file (shape `(pool,)` or `(pool, 1)`).
pub fn read_labels(path: &Path, pool: usize) -> Result<Vec<u32>> {
    let bytes = std::fs::read(path)
        .with_context(|| format!("cannot read the labels {}", path.display()))?;
    let (shape, values) = strata_data::npy::read_ints(&bytes)
        .map_err(|e| anyhow::anyhow!("labels {}: {e}", path.display()))?;
    let n: usize = shape.iter().product();
    if !(shape.len() == 1 || (shape.len() == 2 && shape[1] == 1)) || n != pool {
        bail!(
            "labels {}: shape ({}) but the design's pool has {pool} examples; expected ({pool},)",
            path.display(),
            shape
                .iter()
                .map(|d| d.to_string())
                .collect::<Vec<_>>()
                .join(", ")
        );
    }
    values
        .iter()
        .enumerate()
        .map(|(i, &v)| {
            u32::try_from(v).map_err(|_| {
                anyhow::anyhow!(
                    "labels {}: label {v} at example {i} is not a class index (0, 1, ...)",
                    path.display()
                )
            })
        })
        .collect()
}
