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

fn reader(
    path: &Path,
    names: &[&str],
    batch_size: usize,
) -> Result<(ParquetRecordBatchReader, Vec<usize>)> {
    let b = builder(path)?;
    let schema = b.schema().clone();
    let cols: Vec<usize> = names
        .iter()
        .map(|n| schema.index_of(n).map_err(|e| DataError::corrupt(path, e)))
        .collect::<Result<_>>()?;
    let mask = ProjectionMask::roots(b.parquet_schema(), cols.iter().copied());
    // Projected batches hold the selected columns in file order.
    let mut sorted = cols.clone();
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

pub fn read_layer(path: &Path, info: &LayerInfo) -> Result<Array2<f32>> {
    let (r, _) = reader(path, &[&info.name], 8192)?;
    let mut data = Vec::new();
    for batch in r {
        let batch = batch.map_err(|e| DataError::corrupt(path, e))?;
        append_column(path, &info.name, batch.column(0), info.features, &mut data)?;
    }
    let n = data.len() / info.features;
    Array2::from_shape_vec((n, info.features), data)
        .map_err(|_| DataError::corrupt(path, format!("layer '{}': ragged rows", info.name)))
}

pub(crate) fn chunks(
    path: &Path,
    layers: &[LayerInfo],
    ids: &[usize],
    batch_size: usize,
) -> Result<ParquetChunks> {
    let names: Vec<&str> = ids.iter().map(|&i| layers[i].name.as_str()).collect();
    let (r, pos) = reader(path, &names, batch_size.clamp(1, 65536))?;
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
