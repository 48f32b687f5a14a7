//! Activation files: reading any format the CLI reads, and writing strata's activation store.

use crate::convert::matrix;
use crate::{err, guarded};
use ndarray::{Array2, IxDyn};
use numpy::{IntoPyArray, PyArrayDyn};
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyTuple};
use std::path::PathBuf;
use std::sync::Mutex;
use strata_data::store::LayerSpec;
use strata_data::{Activations, DataError};

fn data_err(e: DataError) -> PyErr {
    err(e.to_string())
}

/// An opened activation file (`.npy`, `.npz`, `.safetensors`, Arrow IPC or Parquet store).
#[pyclass(module = "strata._strata", name = "_Store", frozen)]
struct Store {
    inner: Mutex<Activations>,
    path: PathBuf,
    format: String,
    n: usize,
    /// `(name, per-example shape)` in file order.
    layers: Vec<(String, Vec<usize>)>,
}

impl Store {
    fn index(&self, name: &str) -> PyResult<usize> {
        self.layers
            .iter()
            .position(|(n, _)| n == name)
            .ok_or_else(|| {
                let available: Vec<&str> = self.layers.iter().map(|(n, _)| n.as_str()).collect();
                err(DataError::NoSuchLayer {
                    path: self.path.clone(),
                    name: name.to_string(),
                    available: available.join(", "),
                }
                .to_string())
            })
    }
}

#[pymethods]
impl Store {
    /// Open `path`, detecting its format from its first bytes.
    #[new]
    fn new(py: Python<'_>, path: PathBuf) -> PyResult<Self> {
        guarded(|| {
            let acts = py.detach(|| strata_data::open(&path)).map_err(data_err)?;
            let layers = acts
                .layers()
                .iter()
                .map(|l| (l.name.clone(), l.shape.clone()))
                .collect();
            Ok(Store {
                path,
                format: acts.format().to_string(),
                n: acts.n(),
                layers,
                inner: Mutex::new(acts),
            })
        })
    }

    /// The file this was opened from.
    #[getter]
    fn path(&self) -> PathBuf {
        self.path.clone()
    }

    /// `npy`, `npz`, `safetensors`, `arrow` or `parquet`.
    #[getter]
    fn format(&self) -> String {
        self.format.clone()
    }

    /// Examples every layer holds.
    #[getter]
    fn n(&self) -> usize {
        self.n
    }

    /// Layer names in file order.
    #[getter]
    fn layers(&self) -> Vec<String> {
        self.layers.iter().map(|(n, _)| n.clone()).collect()
    }

    /// Per-example shape of layer `name`.
    fn shape<'py>(&self, py: Python<'py>, name: &str) -> PyResult<Bound<'py, PyTuple>> {
        let i = self.index(name)?;
        PyTuple::new(py, self.layers[i].1.clone())
    }

    /// Layer `name` as a float32 array of shape `(n, *shape)`.
    fn read<'py>(&self, py: Python<'py>, name: &str) -> PyResult<Bound<'py, PyArrayDyn<f32>>> {
        guarded(|| {
            let i = self.index(name)?;
            let m = py.detach(|| -> Result<Array2<f32>, PyErr> {
                let acts = self
                    .inner
                    .lock()
                    .map_err(|_| err("the store is unusable after an earlier failure"))?;
                acts.read_layer(i).map_err(data_err)
            })?;
            let mut dims = vec![self.n];
            dims.extend(&self.layers[i].1);
            let m = if m.is_standard_layout() {
                m
            } else {
                m.as_standard_layout().into_owned()
            };
            let arr = m
                .into_shape_with_order(IxDyn(&dims))
                .map_err(|e| err(format!("internal error (a bug in strata): {e}")))?;
            Ok(arr.into_pyarray(py))
        })
    }
}

/// The store being written, and what it was declared with.
struct Open {
    writer: strata_data::store::StoreWriter,
}

/// Writes strata's activation store (Arrow IPC or Parquet) batch by batch, atomically.
#[pyclass(module = "strata._strata", name = "_StoreWriter", frozen)]
struct StoreWriter {
    path: PathBuf,
    specs: Vec<LayerSpec>,
    /// `None` once closed or aborted.
    open: Mutex<Option<Open>>,
    rows: Mutex<usize>,
}

fn shape_of(v: &Bound<'_, PyAny>, name: &str) -> PyResult<Vec<usize>> {
    if let Ok(k) = v.extract::<usize>() {
        return Ok(vec![k]);
    }
    v.extract::<Vec<usize>>().map_err(|_| {
        err(format!(
            "layer '{name}': the per-example shape must be a tuple of non-negative ints, got {}",
            v.repr().map(|r| r.to_string()).unwrap_or_default()
        ))
    })
}

fn show_shape(s: &[usize]) -> String {
    match s {
        [one] => format!("({one},)"),
        _ => format!(
            "({})",
            s.iter()
                .map(|d| d.to_string())
                .collect::<Vec<_>>()
                .join(", ")
        ),
    }
}

#[pymethods]
impl StoreWriter {
    /// Start a store at `path` (`.arrow` or `.parquet`) holding `layers` (name -> shape).
    #[new]
    #[pyo3(signature = (path, layers, meta = None))]
    fn new(
        py: Python<'_>,
        path: PathBuf,
        layers: &Bound<'_, PyDict>,
        meta: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<Self> {
        guarded(|| {
            let mut specs = Vec::with_capacity(layers.len());
            for (k, v) in layers.iter() {
                let name: String = k
                    .extract()
                    .map_err(|_| err("layer names must be strings"))?;
                let shape = shape_of(&v, &name)?;
                specs.push(LayerSpec::new(name, &shape));
            }
            let meta: serde_json::Value = match meta {
                None => serde_json::Value::Null,
                Some(m) if m.is_none() => serde_json::Value::Null,
                Some(m) => {
                    let text: String = py
                        .import("json")?
                        .call_method1("dumps", (m,))
                        .and_then(|s| s.extract())
                        .map_err(|e| err(format!("meta must be JSON-serializable: {e}")))?;
                    serde_json::from_str(&text)
                        .map_err(|e| err(format!("meta must be JSON-serializable: {e}")))?
                }
            };
            let writer = py
                .detach(|| strata_data::store::StoreWriter::create(&path, &specs, &meta))
                .map_err(data_err)?;
            Ok(StoreWriter {
                path,
                specs,
                open: Mutex::new(Some(Open { writer })),
                rows: Mutex::new(0),
            })
        })
    }

    /// The destination path.
    #[getter]
    fn path(&self) -> PathBuf {
        self.path.clone()
    }

    /// `{name: per-example shape}` as declared.
    #[getter]
    fn layers<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let d = PyDict::new(py);
        for s in &self.specs {
            d.set_item(&s.name, PyTuple::new(py, s.shape.clone())?)?;
        }
        Ok(d)
    }

    /// Rows written so far.
    #[getter]
    fn rows(&self) -> usize {
        self.rows.lock().map_or(0, |r| *r)
    }

    /// True once closed or aborted.
    #[getter]
    fn closed(&self) -> bool {
        self.open.lock().map_or(true, |o| o.is_none())
    }

    /// Append one batch: `{name: array of shape (b, *shape)}` for every layer.
    fn write(&self, py: Python<'_>, batch: &Bound<'_, PyDict>) -> PyResult<()> {
        guarded(|| {
            if self.closed() {
                return Err(err(format!(
                    "{}: the StoreWriter is closed",
                    self.path.display()
                )));
            }
            let names: Vec<&str> = self.specs.iter().map(|s| s.name.as_str()).collect();
            for k in batch.keys() {
                let k: String = k
                    .extract()
                    .map_err(|_| err("layer names must be strings"))?;
                if !names.contains(&k.as_str()) {
                    return Err(err(format!(
                        "{}: the batch has layer '{k}', which the store does not hold (layers: \
                         {})",
                        self.path.display(),
                        names.join(", ")
                    )));
                }
            }
            let mut mats: Vec<Array2<f32>> = Vec::with_capacity(self.specs.len());
            for spec in &self.specs {
                let v = batch.get_item(&spec.name)?.ok_or_else(|| {
                    err(format!(
                        "{}: the batch is missing layer '{}' (every write holds every layer)",
                        self.path.display(),
                        spec.name
                    ))
                })?;
                let m = matrix(py, &v, &format!("layer '{}'", spec.name))?;
                let per_example = &m.shape[1..];
                let flat_ok = per_example.len() == 1 && per_example[0] == spec.features();
                let scalar_ok = per_example.is_empty() && spec.features() == 1;
                if per_example != spec.shape.as_slice() && !flat_ok && !scalar_ok {
                    return Err(err(format!(
                        "{}: layer '{}': the batch has shape {}, expected (batch, {}) for \
                         per-example shape {}",
                        self.path.display(),
                        spec.name,
                        show_shape(&m.shape),
                        spec.shape
                            .iter()
                            .map(|d| d.to_string())
                            .collect::<Vec<_>>()
                            .join(", "),
                        show_shape(&spec.shape)
                    )));
                }
                if let Some(first) = mats.first() {
                    if m.data.nrows() != first.nrows() {
                        return Err(err(format!(
                            "{}: layer '{}' has {} rows but layer '{}' has {}: a batch holds the \
                             same examples for every layer",
                            self.path.display(),
                            spec.name,
                            m.data.nrows(),
                            self.specs[0].name,
                            first.nrows()
                        )));
                    }
                }
                mats.push(m.data);
            }
            let rows = mats.first().map_or(0, |m| m.nrows());
            if rows == 0 {
                return Ok(());
            }
            let mut open = self
                .open
                .lock()
                .map_err(|_| err("the StoreWriter is unusable after an earlier failure"))?;
            let Some(o) = open.as_mut() else {
                return Err(err(format!(
                    "{}: the StoreWriter is closed",
                    self.path.display()
                )));
            };
            let res = py.detach(|| {
                let views: Vec<_> = mats.iter().map(|m| m.view()).collect();
                o.writer.write_batch(&views)
            });
            if let Err(e) = res {
                // The writer removed its temporary file: nothing more can be written.
                *open = None;
                return Err(data_err(e));
            }
            if let Ok(mut r) = self.rows.lock() {
                *r += rows;
            }
            Ok(())
        })
    }

    /// Write the footer and move the file into place; returns the rows written.
    fn close(&self, py: Python<'_>) -> PyResult<usize> {
        guarded(|| {
            let o = self
                .open
                .lock()
                .map_err(|_| err("the StoreWriter is unusable after an earlier failure"))?
                .take();
            let Some(o) = o else {
                return Err(err(format!(
                    "{}: the StoreWriter is already closed",
                    self.path.display()
                )));
            };
            py.detach(|| o.writer.finish()).map_err(data_err)
        })
    }

    /// Discard everything written: the temporary file is removed, nothing appears at `path`.
    fn abort(&self) -> PyResult<()> {
        guarded(|| {
            let o = self
                .open
                .lock()
                .map_err(|_| err("the StoreWriter is unusable after an earlier failure"))?
                .take();
            drop(o);
            Ok(())
        })
    }
}

pub(crate) fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<Store>()?;
    m.add_class::<StoreWriter>()?;
    Ok(())
}
