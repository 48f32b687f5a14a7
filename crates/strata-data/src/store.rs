//! strata's activation store: one file per run of a network, Arrow IPC or Parquet.
//!
//! # Layout
//!
//! * One column per layer, named after the layer, of type
//!   `fixed_size_list<item: float32 not null>[features]`, not nullable. Each row is one example;
//!   multi-dimensional activations (`C x H x W`) are flattened in C order and the per-example
//!   shape is kept in the field metadata under `strata.shape` (a JSON array, e.g. `[16,14,14]`).
//! * Other columns (labels, example ids) may sit beside the layers; readers skip them.
//! * Schema metadata: `strata.store` = format version (`1`), `strata.meta` = free JSON (model,
//!   data, seed) describing what produced the activations.
//! * Rows are written batch by batch as the network runs: one Arrow record batch per call to
//!   [`StoreWriter::write_batch`] in IPC, row groups of about 64 MiB in Parquet.
//!
//! One layer is readable without reading the others: Parquet stores each column in its own
//! column chunks, and the IPC reader maps the file into memory and decodes only the buffers of the
//! requested columns, so the pages of other layers are never touched.
//!
//! From Python: `pyarrow.ipc.open_file(path).read_all()` or `pyarrow.parquet.read_table(path)`;
//! `np.stack(table["layer"].to_numpy(zero_copy_only=False))` gives the `(n, features)` matrix.

use crate::{DataError, Result};
use arrow_array::{Array, ArrayRef, FixedSizeListArray, Float32Array, RecordBatch};
use arrow_schema::{DataType, Field, Schema, SchemaRef};
use ndarray::ArrayView2;
use std::collections::HashMap;
use std::fs::File;
use std::io::BufWriter;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Version written under the `strata.store` schema metadata key.
pub const STORE_VERSION: &str = "1";
/// Field metadata key holding a layer's per-example shape.
pub const SHAPE_KEY: &str = "strata.shape";
/// Schema metadata key holding free JSON about what produced the activations.
pub const META_KEY: &str = "strata.meta";

/// On-disk format of a store, chosen by file extension.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StoreFormat {
    /// Arrow IPC file format (`.arrow`, `.ipc`, `.feather`).
    Ipc,
    /// Apache Parquet (`.parquet`, `.pq`).
    Parquet,
}

impl StoreFormat {
    /// The format named by a path's extension.
    pub fn from_path(path: &Path) -> Result<Self> {
        match path
            .extension()
            .and_then(|e| e.to_str())
            .map(|e| e.to_ascii_lowercase())
            .as_deref()
        {
            Some("arrow") | Some("ipc") | Some("feather") => Ok(StoreFormat::Ipc),
            Some("parquet") | Some("pq") => Ok(StoreFormat::Parquet),
            _ => Err(DataError::invalid(
                path,
                "an activation store must end in .arrow (Arrow IPC) or .parquet",
            )),
        }
    }
}

/// Name and per-example shape of one layer to be stored.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LayerSpec {
    /// Layer name, the column name in the store.
    pub name: String,
    /// Shape of one example's activation (without the example axis).
    pub shape: Vec<usize>,
}

impl LayerSpec {
    /// A layer with the given per-example shape (e.g. `[64]` or `[16, 14, 14]`).
    pub fn new(name: impl Into<String>, shape: &[usize]) -> Self {
        LayerSpec {
            name: name.into(),
            shape: shape.to_vec(),
        }
    }

    /// Features per example: the product of the shape.
    pub fn features(&self) -> usize {
        self.shape.iter().product()
    }
}

/// The Arrow schema of a store holding `layers`.
pub fn schema_for(layers: &[LayerSpec], meta: &serde_json::Value) -> SchemaRef {
    let fields: Vec<Field> = layers
        .iter()
        .map(|l| {
            let item = Arc::new(Field::new("item", DataType::Float32, false));
            let shape = serde_json::to_string(&l.shape).unwrap_or_default();
            Field::new(
                &l.name,
                DataType::FixedSizeList(item, l.features() as i32),
                false,
            )
            .with_metadata(HashMap::from([(SHAPE_KEY.to_string(), shape)]))
        })
        .collect();
    let mut md = HashMap::from([("strata.store".to_string(), STORE_VERSION.to_string())]);
    if !meta.is_null() {
        md.insert(META_KEY.to_string(), meta.to_string());
    }
    Arc::new(Schema::new_with_metadata(fields, md))
}

enum Sink {
    Ipc(Box<arrow_ipc::writer::FileWriter<BufWriter<File>>>),
    Parquet(Box<parquet::arrow::ArrowWriter<File>>),
}

/// Writes an activation store batch by batch, atomically: the data goes to a temporary file
/// beside the destination, renamed into place by [`StoreWriter::finish`]. A writer dropped
/// without `finish` (an error, a panic) removes its temporary file, so a half-written store
/// never appears under the final name. (A process killed outright, e.g. by Ctrl-C, can leave a
/// hidden `.NAME.PID-K.tmp` beside it, never a partial file under the final name.)
pub struct StoreWriter {
    sink: Option<Sink>,
    tmp: PathBuf,
    dest: PathBuf,
    layers: Vec<LayerSpec>,
    schema: SchemaRef,
    rows: usize,
}

impl StoreWriter {
    /// Start a store at `path` (format from the extension) for `layers`, with `meta` recorded
    /// in the schema metadata (pass `serde_json::Value::Null` for none).
    pub fn create(path: &Path, layers: &[LayerSpec], meta: &serde_json::Value) -> Result<Self> {
        let format = StoreFormat::from_path(path)?;
        if layers.is_empty() {
            return Err(DataError::invalid(path, "a store needs at least one layer"));
        }
        let mut seen = std::collections::HashSet::new();
        for l in layers {
            if l.features() == 0 {
                return Err(DataError::invalid(
                    path,
                    format!("layer '{}' has no features", l.name),
                ));
            }
            if !seen.insert(&l.name) {
                return Err(DataError::invalid(
                    path,
                    format!("layer name '{}' appears twice", l.name),
                ));
            }
        }
        let schema = schema_for(layers, meta);
        let tmp = tmp_path(path);
        let file = File::create(&tmp).map_err(|e| DataError::io(&tmp, e))?;
        let sink = match format {
            StoreFormat::Ipc => {
                arrow_ipc::writer::FileWriter::try_new(BufWriter::new(file), &schema)
                    .map(|w| Sink::Ipc(Box::new(w)))
                    .map_err(|e| DataError::corrupt(path, e))
            }
            StoreFormat::Parquet => {
                let row_bytes: usize = layers.iter().map(|l| l.features() * 4).sum();
                let rows_per_group = ((64usize << 20) / row_bytes.max(1)).clamp(1, 1 << 20);
                let props = parquet::file::properties::WriterProperties::builder()
                    .set_compression(parquet::basic::Compression::SNAPPY)
                    .set_max_row_group_row_count(Some(rows_per_group))
                    .build();
                parquet::arrow::ArrowWriter::try_new(file, schema.clone(), Some(props))
                    .map(|w| Sink::Parquet(Box::new(w)))
                    .map_err(|e| DataError::corrupt(path, e))
            }
        };
        let sink = sink.inspect_err(|_| {
            let _ = std::fs::remove_file(&tmp);
        })?;
        Ok(StoreWriter {
            sink: Some(sink),
            tmp,
            dest: path.to_path_buf(),
            layers: layers.to_vec(),
            schema,
            rows: 0,
        })
    }

    /// Append one batch: `acts[i]` holds layer `i`'s activations, one row per example, all with
    /// the same number of rows.
    pub fn write_batch(&mut self, acts: &[ArrayView2<f32>]) -> Result<()> {
        if acts.len() != self.layers.len() {
            return Err(DataError::invalid(
                &self.dest,
                format!(
                    "write_batch got {} layers, the store has {}",
                    acts.len(),
                    self.layers.len()
                ),
            ));
        }
        let rows = acts[0].nrows();
        let mut columns: Vec<ArrayRef> = Vec::with_capacity(acts.len());
        for ((a, spec), field) in acts.iter().zip(&self.layers).zip(self.schema.fields()) {
            if a.nrows() != rows || a.ncols() != spec.features() {
                return Err(DataError::invalid(
                    &self.dest,
                    format!(
                        "layer '{}': batch is {}x{}, expected {rows}x{}",
                        spec.name,
                        a.nrows(),
                        a.ncols(),
                        spec.features()
                    ),
                ));
            }
            let values: Vec<f32> = a.iter().copied().collect();
            let item = match field.data_type() {
                DataType::FixedSizeList(item, _) => item.clone(),
                _ => unreachable!("schema_for builds fixed-size lists"),
            };
            columns.push(Arc::new(FixedSizeListArray::new(
                item,
                spec.features() as i32,
                Arc::new(Float32Array::from(values)),
                None,
            )));
        }
        let batch = RecordBatch::try_new(self.schema.clone(), columns)
            .map_err(|e| DataError::corrupt(&self.dest, e))?;
        let res = match self.sink.as_mut() {
            Some(Sink::Ipc(w)) => w.write(&batch),
            Some(Sink::Parquet(w)) => w.write(&batch).map_err(|e| e.into()),
            None => return Err(DataError::invalid(&self.dest, "store already finished")),
        };
        if let Err(e) = res {
            // A sink that failed mid-write cannot be trusted: drop it and its file, so a later
            // `finish` cannot move a partial store into place.
            self.sink = None;
            let _ = std::fs::remove_file(&self.tmp);
            return Err(DataError::corrupt(&self.tmp, e));
        }
        self.rows += rows;
        Ok(())
    }

    /// Rows written so far.
    pub fn rows(&self) -> usize {
        self.rows
    }

    /// Write the footer and move the file into place. Returns the number of rows written. On
    /// failure the temporary file is removed and nothing appears under the final name.
    pub fn finish(mut self) -> Result<usize> {
        let sink = self.sink.take();
        let result = Self::close(sink, &self.tmp).and_then(|_| {
            crate::fsutil::commit(&self.tmp, &self.dest).map_err(|e| DataError::io(&self.dest, e))
        });
        if result.is_err() {
            let _ = std::fs::remove_file(&self.tmp);
        }
        result.map(|_| self.rows)
    }

    fn close(sink: Option<Sink>, tmp: &Path) -> Result<()> {
        match sink {
            Some(Sink::Ipc(mut w)) => {
                w.finish().map_err(|e| DataError::corrupt(tmp, e))?;
                let inner = w.into_inner().map_err(|e| DataError::corrupt(tmp, e))?;
                inner
                    .into_inner()
                    .map_err(|e| DataError::io(tmp, e.into_error()))?
                    .sync_all()
                    .map_err(|e| DataError::io(tmp, e))
            }
            Some(Sink::Parquet(w)) => {
                let f = w.into_inner().map_err(|e| DataError::corrupt(tmp, e))?;
                f.sync_all().map_err(|e| DataError::io(tmp, e))
            }
            None => Err(DataError::invalid(tmp, "store already finished")),
        }
    }
}

impl Drop for StoreWriter {
    fn drop(&mut self) {
        if self.sink.is_some() {
            self.sink = None;
            let _ = std::fs::remove_file(&self.tmp);
        }
    }
}

/// A temporary name beside `path`, unique to this process, for atomic writes (kept here for
/// existing callers; see [`crate::fsutil`]).
pub use crate::fsutil::tmp_path;

pub(crate) mod ipc_read;
pub(crate) mod parquet_read;

/// Layers of a store schema: every `fixed_size_list<float>` column, with its column index.
pub(crate) fn layers_of(path: &Path, schema: &Schema) -> Result<Vec<(usize, crate::LayerInfo)>> {
    let mut out = Vec::new();
    for (idx, field) in schema.fields().iter().enumerate() {
        match field.data_type() {
            DataType::FixedSizeList(item, size)
                if matches!(
                    item.data_type(),
                    DataType::Float32 | DataType::Float64 | DataType::Float16
                ) =>
            {
                let Ok(size) = usize::try_from(*size) else {
                    return Err(DataError::corrupt(
                        path,
                        format!("column '{}' has a negative list size", field.name()),
                    ));
                };
                let shape = field
                    .metadata()
                    .get(SHAPE_KEY)
                    .and_then(|s| serde_json::from_str::<Vec<usize>>(s).ok())
                    .filter(|s| {
                        s.iter().try_fold(1usize, |a, &d| a.checked_mul(d)) == Some(size)
                    })
                    .unwrap_or_else(|| vec![size]);
                out.push((
                    idx,
                    crate::LayerInfo {
                        name: field.name().clone(),
                        shape,
                        features: size,
                    },
                ));
            }
            DataType::List(_) | DataType::LargeList(_) => {
                return Err(DataError::invalid(
                    path,
                    format!(
                        "column '{}' is a variable-length list; strata stores each layer as \
                         fixed_size_list<float32>[features] (pyarrow: pa.list_(pa.float32(), features))",
                        field.name()
                    ),
                ))
            }
            _ => {}
        }
    }
    if out.is_empty() {
        return Err(DataError::invalid(
            path,
            "no layer columns: strata stores each layer as a fixed_size_list<float32>[features] column",
        ));
    }
    Ok(out)
}

/// Append the rows of a decoded layer column to `out` as f32.
pub(crate) fn append_column(
    path: &Path,
    layer: &str,
    col: &ArrayRef,
    width: usize,
    out: &mut Vec<f32>,
) -> Result<()> {
    use arrow_array::{Float16Array, Float64Array};
    let fsl = col
        .as_any()
        .downcast_ref::<FixedSizeListArray>()
        .ok_or_else(|| {
            DataError::corrupt(path, format!("layer '{layer}' is not a fixed-size list"))
        })?;
    if fsl.null_count() > 0 {
        return Err(DataError::invalid(
            path,
            format!("layer '{layer}' has null rows"),
        ));
    }
    if fsl.is_empty() {
        return Ok(());
    }
    let start = fsl.value_offset_at(0);
    let end = fsl
        .len()
        .checked_mul(width)
        .and_then(|k| k.checked_add(start))
        .filter(|&end| end <= fsl.values().len())
        .ok_or_else(|| {
            DataError::corrupt(
                path,
                format!("layer '{layer}': fewer values than its rows need (corrupt file)"),
            )
        })?;
    let values = fsl.values().slice(start, end - start);
    if values.null_count() > 0 {
        return Err(DataError::invalid(
            path,
            format!("layer '{layer}' has null values"),
        ));
    }
    let any = values.as_any();
    if let Some(a) = any.downcast_ref::<Float32Array>() {
        out.extend_from_slice(a.values());
    } else if let Some(a) = any.downcast_ref::<Float64Array>() {
        out.extend(a.values().iter().map(|&v| v as f32));
    } else if let Some(a) = any.downcast_ref::<Float16Array>() {
        out.extend(a.values().iter().map(|v| v.to_f32()));
    } else {
        return Err(DataError::corrupt(
            path,
            format!("layer '{layer}' has non-float values"),
        ));
    }
    Ok(())
}
