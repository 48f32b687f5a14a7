//! Labelled data sets for training and evaluating classifiers, by name.

use crate::{digits, mnist, DataError, Result};
use ndarray::{Array2, Axis};
use std::path::{Path, PathBuf};

/// Examples (rows), integer labels, and the shape of one example (`[1, 28, 28]` for MNIST).
#[derive(Clone, Debug)]
pub struct Dataset {
    /// Inputs, one example per row, flattened in row-major order of `shape`.
    pub x: Array2<f32>,
    /// Class label of each row, in `0..classes`.
    pub y: Vec<u32>,
    /// Shape of one example before flattening (`[1, 28, 28]` for MNIST, `[64]` for digits).
    pub shape: Vec<usize>,
    /// Number of classes the labels range over (set by the data set, not by the labels present).
    pub classes: usize,
}

impl Dataset {
    /// Number of examples.
    pub fn len(&self) -> usize {
        self.y.len()
    }

    /// True when there is no example.
    pub fn is_empty(&self) -> bool {
        self.y.is_empty()
    }

    /// The first `n` examples (all if `n` is larger).
    pub fn head(&self, n: usize) -> Dataset {
        let n = n.min(self.len());
        Dataset {
            x: self.x.slice(ndarray::s![..n, ..]).to_owned(),
            y: self.y[..n].to_vec(),
            shape: self.shape.clone(),
            classes: self.classes,
        }
    }

    /// The examples at `idx`, in that order.
    pub fn select(&self, idx: &[usize]) -> Dataset {
        Dataset {
            x: self.x.select(Axis(0), idx),
            y: idx.iter().map(|&i| self.y[i]).collect(),
            shape: self.shape.clone(),
            classes: self.classes,
        }
    }
}

/// A train/test pair with the name it was loaded by.
#[derive(Clone, Debug)]
pub struct Splits {
    /// Name the pair was loaded by (`mnist`, `digits`, `csv:PATH`, ...).
    pub name: String,
    /// The training split.
    pub train: Dataset,
    /// The held-out split.
    pub test: Dataset,
}

/// The embedded MNIST subset (see `fixtures/mnist-small/README.md`).
const MNIST_SMALL: [&[u8]; 4] = [
    include_bytes!("../../../fixtures/mnist-small/train-images-idx3-ubyte.gz"),
    include_bytes!("../../../fixtures/mnist-small/train-labels-idx1-ubyte.gz"),
    include_bytes!("../../../fixtures/mnist-small/t10k-images-idx3-ubyte.gz"),
    include_bytes!("../../../fixtures/mnist-small/t10k-labels-idx1-ubyte.gz"),
];

fn gunzip(b: &[u8]) -> Vec<u8> {
    use std::io::Read;
    let mut out = Vec::new();
    // Embedded at compile time and checked by tests.
    let _ = flate2::read::GzDecoder::new(b).read_to_end(&mut out);
    out
}

fn mnist_dataset(images: Array2<f32>, labels: Vec<u8>) -> Dataset {
    Dataset {
        x: images,
        y: labels.into_iter().map(u32::from).collect(),
        shape: vec![1, 28, 28],
        classes: 10,
    }
}

/// Where full MNIST is looked for: `$STRATA_MNIST`, `../shared/datasets/mnist`, `data/mnist`.
pub fn mnist_dirs() -> Vec<PathBuf> {
    let mut v = Vec::new();
    if let Some(d) = std::env::var_os("STRATA_MNIST") {
        v.push(PathBuf::from(d));
    }
    v.push(PathBuf::from("../shared/datasets/mnist"));
    v.push(PathBuf::from("data/mnist"));
    v
}

/// Load a data set by name:
///
/// * `mnist` - full MNIST (60,000 + 10,000) from the first of [`mnist_dirs`] that exists;
/// * `mnist:DIR` - MNIST from the IDX files in `DIR`;
/// * `mnist-small` - the embedded subset (6,000 + 1,000), for runs that need no files;
/// * `digits` - the embedded 8x8 digits, split 1,438 / 359 by a fixed shuffle;
/// * `adult`, `adult:DIR` - UCI Adult (see [`crate::tabular::adult`]);
/// * `csv:PATH` - any CSV with a header and a label column (see [`crate::tabular::csv`]).
pub fn load(name: &str) -> Result<Splits> {
    load_with_label(name, None)
}

/// [`load`], naming the label column of a `csv:PATH` data set (default `label`).
pub fn load_with_label(name: &str, label: Option<&str>) -> Result<Splits> {
    load_with_report(name, label).map(|x| x.0)
}

/// [`load_with_label`], also returning, for tabular data sets (`adult`, `csv:PATH`), what the
/// loader did: missing values per column, rows dropped for a missing label, the encoding of
/// each column ([`crate::tabular::TabularReport`]; print its `notes()`). `None` for image sets.
pub fn load_with_report(
    name: &str,
    label: Option<&str>,
) -> Result<(Splits, Option<crate::tabular::TabularReport>)> {
    let here = Path::new(name);
    let tab = |r: Result<(Splits, crate::tabular::TabularReport)>| r.map(|(s, t)| (s, Some(t)));
    let splits = match name {
        "mnist-small" => {
            let p = Path::new("fixtures/mnist-small");
            let g = |i: usize| gunzip(MNIST_SMALL[i]);
            let (xi, _) = mnist::parse_images(p, &g(0))?;
            let yi = mnist::parse_labels(p, &g(1))?;
            let (xt, _) = mnist::parse_images(p, &g(2))?;
            let yt = mnist::parse_labels(p, &g(3))?;
            Splits {
                name: name.into(),
                train: mnist_dataset(xi, yi),
                test: mnist_dataset(xt, yt),
            }
        }
        "mnist" => {
            let dirs = mnist_dirs();
            let dir =
                dirs.iter().find(|d| d.is_dir()).ok_or_else(|| {
                    DataError::invalid(
                        here,
                        format!(
                        "full MNIST not found in {}; set STRATA_MNIST=DIR, name the data set mnist:DIR, \
                         or use mnist-small (the embedded subset)",
                        dirs.iter().map(|d| d.display().to_string()).collect::<Vec<_>>().join(", ")
                    ),
                    )
                })?;
            load_mnist_dir(dir, name)?
        }
        _ if name.starts_with("mnist:") => load_mnist_dir(Path::new(&name[6..]), name)?,
        "adult" => {
            let dirs = crate::tabular::adult_dirs();
            let dir = dirs.iter().find(|d| d.is_dir()).ok_or_else(|| {
                DataError::invalid(here, "UCI Adult not found; set STRATA_ADULT=DIR or use adult:DIR")
            })?;
            return tab(crate::tabular::adult_with_report(dir));
        }
        _ if name.starts_with("adult:") => {
            return tab(crate::tabular::adult_with_report(Path::new(&name[6..])))
        }
        _ if name.starts_with("csv:") => {
            return tab(crate::tabular::csv_with_report(
                Path::new(&name[4..]),
                label.unwrap_or("label"),
            ))
        }
        "digits" => {
            let d = digits::load();
            let n = d.labels.len();
            let mut idx: Vec<usize> = (0..n).collect();
            let mut rng = crate::rng::Rng::new(1797);
            for i in (1..n).rev() {
                idx.swap(i, rng.below(i as u64 + 1) as usize);
            }
            let all = Dataset {
                x: d.images.mapv(|v| v / 16.0),
                y: d.labels.iter().map(|&l| l as u32).collect(),
                shape: vec![1, 8, 8],
                classes: 10,
            };
            let cut = n * 4 / 5;
            Splits {
                name: name.into(),
                train: all.select(&idx[..cut]),
                test: all.select(&idx[cut..]),
            }
        }
        _ => {
            return Err(DataError::invalid(
                here,
                "unknown data set; use mnist, mnist:DIR, mnist-small, digits, adult, adult:DIR or csv:PATH",
            ))
        }
    };
    Ok((splits, None))
}

fn load_mnist_dir(dir: &Path, name: &str) -> Result<Splits> {
    let tr = mnist::load_split(dir, "train")?;
    let te = mnist::load_split(dir, "t10k")?;
    Ok(Splits {
        name: name.into(),
        train: mnist_dataset(tr.images, tr.labels),
        test: mnist_dataset(te.images, te.labels),
    })
}
