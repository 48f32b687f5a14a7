//! Reading a Parquet store, projecting only the requested layer columns.

use super::{append_column, layers_of};
use crate::source::Chunks;
use crate::{DataError, LayerInfo, Result};
use ndarray::Array2;
use parquet::arrow::arrow_reader::{ParquetRecordBatchReader, ParquetRecordBatchReaderBuilder};
use parquet::arrow::ProjectionMask;
use std::fs::File;
use std::path::{Path, PathBuf};

fn builder(path: &Path) -> Result<ParquetRecordBatchReaderBuilder<File>> {
    let f = File::open(path).map_err(|e| DataError::io(path, e))?;
    ParquetRecordBatchReaderBuilder::try_new(f)
        .map_err(|e| DataError::corrupt(path, format!("not a readable Parquet file: {e}")))
}

/// Number of rows and the layers of a Parquet store.
pub fn describe(path: &Path) -> Result<(usize, Vec<LayerInfo>)> {
    let b = builder(path)?;
    let n = b.metadata().file_metadata().num_rows().max(0) as usize;
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
    let r = b
        .with_projection(mask)
        .with_batch_size(batch_size)
        .build()
        .map_err(|e| DataError::corrupt(path, e))?;
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

pub fn read_layer(path: &Path, layer: usize, info: &LayerInfo, n: usize) -> Result<Array2<f32>> {
    let col = columns(path)?[layer];
    let (r, _) = reader(path, &[col], 8192)?;
    let mut data = Vec::new();
    for batch in r {
        let batch = batch.map_err(|e| DataError::corrupt(path, e))?;
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
    let cols: Vec<usize> = ids.iter().map(|&i| all[i]).collect();
    let (r, pos) = reader(path, &cols, batch_size.clamp(1, 65536))?;
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
        let Some(batch) = self.reader.next() else {
            return Ok(None);
        };
        let batch = batch.map_err(|e| DataError::corrupt(&self.path, e))?;
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
