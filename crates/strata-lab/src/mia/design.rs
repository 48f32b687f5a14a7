//! The design on disk: `design.json` (what a training script reads), `members.npy` (the same as
//! a K x N boolean array, for NumPy users) and `members/model-NNN.txt` (one pool index per line,
//! for any language). `mia design` writes them, `mia audit` writes them beside its report, and
//! `mia score` reads `design.json` back and refuses one that is not balanced.

use crate::outset::OutputSet;
use crate::progress::Progress;
use crate::setting::{Setting, SettingError};
use crate::train::load_data;
use anyhow::{bail, Context, Result};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use strata_data::rng::Rng;
use strata_privacy::protocol::{shuffle, Design};

/// The `format` field of every design strata writes.
pub const FORMAT: &str = "strata.mia.design";
/// The design format's version.
pub const VERSION: u32 = 1;

/// Where the pool's examples come from, when they come from a data set strata knows.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PoolSource {
    /// The data set, as `--data` names it (`mnist`, `csv:PATH`, ...).
    pub data: String,
    /// Label column of `csv:` data.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub label: Option<String>,
    /// The split the pool was drawn from (always `train`).
    pub split: String,
    /// `indices[i]`: pool example `i` is example `indices[i]` of that split.
    pub indices: Vec<usize>,
}

/// `design.json`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct DesignFile {
    /// Always [`FORMAT`].
    pub format: String,
    /// Always [`VERSION`].
    pub version: u32,
    /// What the fields mean, for whoever opens the file.
    #[serde(default)]
    pub note: String,
    /// Pool size N.
    pub pool: usize,
    /// Number of models K.
    pub models: usize,
    /// Seed the design was drawn with.
    pub seed: u64,
    /// Where the pool comes from, if from a data set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<PoolSource>,
    /// Training seed of each model, when strata trained them (`mia audit`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model_seeds: Option<Vec<u64>>,
    /// `members[m]`: the pool indices model `m` trains on, ascending.
    pub members: Vec<Vec<usize>>,
}

const NOTE: &str = "members[m] lists the pool examples (0-based) model m trains on; every example is a member of half of the models. members.npy holds the same as a models x pool boolean array, members/model-NNN.txt one index per line. Train model m on those examples, save its logits on the whole pool (in pool order), and run strata mia score.";

impl DesignFile {
    /// The file for `design`, with its pool's source and model seeds when known.
    pub fn new(design: &Design, source: Option<PoolSource>, model_seeds: Option<Vec<u64>>) -> Self {
        DesignFile {
            format: FORMAT.into(),
            version: VERSION,
            note: NOTE.into(),
            pool: design.pool,
            models: design.models(),
            seed: design.seed,
            source,
            model_seeds,
            members: (0..design.models())
                .map(|m| design.member_indices(m))
                .collect(),
        }
    }

    /// The masks, checked: indices in range and not repeated, one list per model, balanced.
    pub fn design(&self) -> Result<Design> {
        if self.members.len() != self.models {
            bail!(
                "says it has {} models but lists members for {}",
                self.models,
                self.members.len()
            );
        }
        Design::check_size(self.pool, self.models)?;
        let mut masks = vec![vec![false; self.pool]; self.models];
        for (m, list) in self.members.iter().enumerate() {
            for &i in list {
                match masks[m].get_mut(i) {
                    None => bail!(
                        "model {m} lists pool example {i}, but the pool has {} examples (0 to {})",
                        self.pool,
                        self.pool.saturating_sub(1)
                    ),
                    Some(b) if *b => bail!("model {m} lists pool example {i} twice"),
                    Some(b) => *b = true,
                }
            }
        }
        if let Some(s) = &self.source {
            if s.indices.len() != self.pool {
                bail!(
                    "its source lists {} data-set indices for a pool of {}",
                    s.indices.len(),
                    self.pool
                );
            }
        }
        let d = Design {
            pool: self.pool,
            members: masks,
            seed: self.seed,
        };
        d.validate()?;
        Ok(d)
    }

    /// Read and check `path`.
    pub fn read(path: &Path) -> Result<(DesignFile, Design)> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read the design {}", path.display()))?;
        let f: DesignFile = serde_json::from_str(&text).with_context(|| {
            format!(
                "{} is not a design file strata can read (write one with strata mia design)",
                path.display()
            )
        })?;
        if f.format != FORMAT || f.version != VERSION {
            bail!(
                "{}: format '{}' version {}, expected '{FORMAT}' version {VERSION}",
                path.display(),
                f.format,
                f.version
            );
        }
        let d = f
            .design()
            .with_context(|| format!("design {}", path.display()))?;
        Ok((f, d))
    }

    /// Write design.json, members.npy and members/model-NNN.txt into the staged folder `dir`.
    pub fn write_into(&self, design: &Design, dir: &Path) -> Result<()> {
        // Compact: the member lists hold about K x N / 2 indices (1.6 million for 64 models of
        // 50,000), one per line when pretty-printed.
        strata_report::write_atomic(
            &dir.join("design.json"),
            serde_json::to_string(self)?.as_bytes(),
        )?;
        let flat: Vec<bool> = design.members.iter().flatten().copied().collect();
        let mut npy = Vec::new();
        strata_data::npy::write_bool(&mut npy, &[design.models(), design.pool], &flat)?;
        strata_report::write_atomic(&dir.join("members.npy"), &npy)?;
        let lists = dir.join("members");
        std::fs::create_dir_all(&lists).with_context(|| format!("creating {}", lists.display()))?;
        for (m, idx) in self.members.iter().enumerate() {
            let mut text = String::with_capacity(idx.len() * 6);
            for i in idx {
                text.push_str(&i.to_string());
                text.push('\n');
            }
            strata_report::write_atomic(&lists.join(format!("model-{m:03}.txt")), text.as_bytes())?;
        }
        Ok(())
    }
}

/// Settings of `strata mia design`.
#[derive(Clone, Debug)]
pub struct DesignArgs {
    /// `N` (a pool of N examples), `DATA` (the whole training split of a data set) or `DATA:N`
    /// (N examples drawn at random from it).
    pub pool: String,
    /// Label column of `csv:` data.
    pub label: Option<String>,
    /// Number of models K.
    pub models: usize,
    /// Seed of the draw of the pool and of the masks.
    pub seed: u64,
    /// The folder to write.
    pub out: PathBuf,
}

/// What `mia design` wrote.
#[derive(Clone, Debug, Serialize)]
pub struct DesignResult {
    /// The folder written.
    pub out: PathBuf,
    /// Pool size.
    pub pool: usize,
    /// Number of models.
    pub models: usize,
    /// Smallest and largest number of pool examples one model trains on.
    pub members_per_model: (usize, usize),
    /// The data set the pool was drawn from, if any.
    pub data: Option<String>,
    /// Files written, relative to `out`.
    pub files: Vec<String>,
}

/// Parse `--pool`: a count, or a data set with an optional count.
fn parse_pool(pool: &str) -> Result<(Option<String>, Option<usize>)> {
    let pool = pool.trim();
    if let Ok(n) = pool.parse::<usize>() {
        return Ok((None, Some(n)));
    }
    // `csv:PATH:N` and `mnist:N`: the count is after the last colon, when it is a number.
    if let Some((data, n)) = pool.rsplit_once(':') {
        if let Ok(n) = n.parse::<usize>() {
            return Ok((Some(data.to_string()), Some(n)));
        }
    }
    if pool.is_empty() {
        return Err(SettingError::new(
            Setting::Pool,
            " is empty: give a number of examples (10000) or a data set (mnist, mnist:10000)",
        )
        .into());
    }
    Ok((Some(pool.to_string()), None))
}

/// Draw `n` of `avail` indices at random (all of them, in order, when `n` is `None`).
pub fn draw_pool(avail: usize, n: Option<usize>, seed: u64) -> Vec<usize> {
    let mut idx: Vec<usize> = (0..avail).collect();
    if let Some(n) = n.filter(|&n| n < avail) {
        let mut rng = Rng::new(seed ^ 0x706f_6f6c);
        shuffle(&mut idx, &mut rng);
        idx.truncate(n);
    }
    idx
}

/// Write a balanced design (and, for a data-set pool, the pool's labels as `labels.npy`).
pub fn design(a: &DesignArgs, progress: &dyn Progress) -> Result<DesignResult> {
    let (data, count) = parse_pool(&a.pool)?;
    let (pool_n, source, labels) = match &data {
        None => (count.unwrap_or(0), None, None),
        Some(name) => {
            let splits = load_data(name, a.label.as_deref(), None, progress)?;
            let avail = splits.train.len();
            if let Some(n) = count.filter(|&n| n > avail) {
                return Err(SettingError::new(
                    Setting::Pool,
                    format!(" {name}:{n}: '{name}' has only {avail} training examples"),
                )
                .into());
            }
            let idx = draw_pool(avail, count, a.seed);
            let labels: Vec<i64> = idx.iter().map(|&i| i64::from(splits.train.y[i])).collect();
            let src = PoolSource {
                data: name.clone(),
                label: a.label.clone(),
                split: "train".into(),
                indices: idx,
            };
            (src.indices.len(), Some(src), Some(labels))
        }
    };
    let d = Design::balanced(pool_n, a.models, a.seed).map_err(|e| match e {
        // The number of models, else the pool (its size, or the design's memory, which the
        // pool dominates).
        strata_privacy::PrivacyError::Invalid(m) => {
            let setting = if strata_privacy::protocol::MODELS_RANGE.contains(&a.models) {
                Setting::Pool
            } else {
                Setting::Models
            };
            SettingError::new(setting, format!(": {m}")).into()
        }
        e => anyhow::Error::from(e),
    })?;
    let file = DesignFile::new(&d, source, None);
    // members/model-NNN.txt are staged too; OutputSet moves them with the named files.
    let mut names = vec!["design.json", "members.npy"];
    if labels.is_some() {
        names.push("labels.npy");
    }
    let set = OutputSet::new(&a.out, &names, &[])?;
    file.write_into(&d, set.root())?;
    if let Some(l) = &labels {
        let mut npy = Vec::new();
        strata_data::npy::write_i64(&mut npy, &[l.len()], l)?;
        strata_report::write_atomic(&set.path("labels.npy"), &npy)?;
    }
    set.commit()?;
    let sizes: Vec<usize> = d
        .members
        .iter()
        .map(|r| r.iter().filter(|&&b| b).count())
        .collect();
    Ok(DesignResult {
        out: a.out.clone(),
        pool: d.pool,
        models: d.models(),
        members_per_model: (
            sizes.iter().copied().min().unwrap_or(0),
            sizes.iter().copied().max().unwrap_or(0),
        ),
        data,
        files: names
            .iter()
            .map(|s| s.to_string())
            .chain(std::iter::once("members/".to_string()))
            .collect(),
    })
}
