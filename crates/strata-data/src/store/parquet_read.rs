//! Reading a Parquet store, projecting only the requested layer columns.

use super::{append_column, layers_of};
use crate::guard::no_panic;
use crate::source::Chunks;
use crate::{DataError, LayerInfo, Result};
use ndarray::Array2;
use parquet::arrow::arrow_reader::{ParquetRecordBatchReader, ParquetRecordBatchReaderBuilder};
use parquet::arrow::ProjectionMask;
use std::fs::File;
use std::path::{Path, PathBuf};

/// What [`no_panic`] calls the library in its errors.
const READER: &str = "the Parquet reader";

fn builder(path: &Path) -> Result<ParquetRecordBatchReaderBuilder<File>> {
    let f = File::open(path).map_err(|e| DataError::io(path, e))?;
    no_panic(path, READER, || {
        ParquetRecordBatchReaderBuilder::try_new(f)
            .map_err(|e| DataError::corrupt(path, format!("not a readable Parquet file: {e}")))
    })
}

/// The next batch of `r`, with a panic inside the decoder turned into an error.
fn next_batch(
    path: &Path,
    r: &mut ParquetRecordBatchReader,
) -> Result<Option<arrow_array::RecordBatch>> {
    no_panic(path, READER, || {
        r.next()
            .transpose()
            .map_err(|e| DataError::corrupt(path, e))
    })
}

/// Number of rows and the layers of a Parquet store.
pub fn describe(path: &Path) -> Result<(usize, Vec<LayerInfo>)> {
    let b = builder(path)?;
    let md = b.metadata();
    let claimed = md.file_metadata().num_rows();
    // The footer's row count is a claim; the row groups' counts must add up to it, so a flipped
    // footer cannot announce rows that no row group holds.
    let groups: i128 = md.row_groups().iter().map(|g| g.num_rows() as i128).sum();
    if claimed < 0 || groups != claimed as i128 || md.row_groups().iter().any(|g| g.num_rows() < 0)
    {
        return Err(DataError::corrupt(
            path,
            format!(
                "the footer says {claimed} rows but its row groups hold {groups} (corrupt file)"
            ),
        ));
    }
    let n = usize::try_from(claimed)
        .map_err(|_| DataError::corrupt(path, format!("{claimed} rows is too many to address")))?;
    let layers = layers_of(path, b.schema())?
        .into_iter()
        .map(|x| x.1)
        .collect();
    Ok((n, layers))
}

/// A reader over the root columns `cols` (indices into the file's schema) and, for each
/// requested column, its position in the projected batches (which keep file order).
fn reader(
    path: &Path,
    cols: &[usize],
    batch_size: usize,
) -> Result<(ParquetRecordBatchReader, Vec<usize>)> {
    let b = builder(path)?;
    let mask = ProjectionMask::roots(b.parquet_schema(), cols.iter().copied());
    let mut sorted = cols.to_vec();
    sorted.sort_unstable();
    sorted.dedup();
    let pos = cols
        .iter()
        .map(|c| sorted.iter().position(|s| s == c).unwrap_or(0))
        .collect();
    let r = no_panic(path, READER, || {
        b.with_projection(mask)
            .with_batch_size(batch_size)
            .build()
            .map_err(|e| DataError::corrupt(path, e))
    })?;
    Ok((r, pos))
}

/// Schema column index of each layer (by position, so duplicate names stay distinct).
fn columns(path: &Path) -> Result<Vec<usize>> {
    let b = builder(path)?;
    Ok(layers_of(path, b.schema())?
        .into_iter()
        .map(|x| x.0)
        .collect())
}

/// Rows per decoded batch so that one batch of `features`-wide rows stays near 16 MiB.
fn rows_per_batch(features: usize, want: usize) -> usize {
    ((16usize << 20) / features.max(1) / 4).clamp(1, want.max(1))
}

pub fn read_layer(path: &Path, layer: usize, info: &LayerInfo, n: usize) -> Result<Array2<f32>> {
    let col = *columns(path)?
        .get(layer)
        .ok_or_else(|| DataError::corrupt(path, "the file changed since it was opened"))?;
    let (mut r, _) = reader(path, &[col], rows_per_batch(info.features, 8192))?;
    // Sized once (the caller checked n x features against the memory budget), so growing it
    // never holds two copies; a file that holds more rows than its footer says is refused below.
    let mut data = Vec::with_capacity(n.saturating_mul(info.features));
    while let Some(batch) = next_batch(path, &mut r)? {
        append_column(path, &info.name, batch.column(0), info.features, &mut data)?;
    }
    let rows = data.len() / info.features.max(1);
    if rows != n {
        return Err(DataError::corrupt(
            path,
            format!(
                "layer '{}' holds {rows} rows, the footer says {n}",
                info.name
            ),
        ));
    }
    Array2::from_shape_vec((n, info.features), data)
        .map_err(|_| DataError::corrupt(path, format!("layer '{}': ragged rows", info.name)))
}

pub(crate) fn chunks(
    path: &Path,
    layers: &[LayerInfo],
    ids: &[usize],
    batch_size: usize,
) -> Result<ParquetChunks> {
    let all = columns(path)?;
    let cols: Vec<usize> = ids
        .iter()
        .map(|&i| all.get(i).copied())
        .collect::<Option<_>>()
        .ok_or_else(|| DataError::corrupt(path, "the file changed since it was opened"))?;
    let width: usize = ids.iter().map(|&i| layers[i].features).sum();
    let (r, pos) = reader(
        path,
        &cols,
        rows_per_batch(width, batch_size.clamp(1, 65536)),
    )?;
    Ok(ParquetChunks {
        path: path.to_path_buf(),
        reader: r,
        pos,
        layers: ids.iter().map(|&i| layers[i].clone()).collect(),
    })
}

pub(crate) struct ParquetChunks {
    path: PathBuf,
    reader: ParquetRecordBatchReader,
    pos: Vec<usize>,
    layers: Vec<LayerInfo>,
}

impl Chunks for ParquetChunks {
    fn next_chunk(&mut self) -> Result<Option<Vec<Array2<f32>>>> {
        let Some(batch) = next_batch(&self.path, &mut self.reader)? else {
            return Ok(None);
        };
        let rows = batch.num_rows();
        self.pos
            .iter()
            .zip(&self.layers)
            .map(|(&p, info)| {
                let mut v = Vec::with_capacity(rows * info.features);
                append_column(
                    &self.path,
                    &info.name,
                    batch.column(p),
                    info.features,
                    &mut v,
                )?;
                Array2::from_shape_vec((rows, info.features), v)
                    .map_err(|_| DataError::corrupt(&self.path, "row count mismatch"))
            })
            .collect::<Result<Vec<_>>>()
            .map(Some)
    }
}
