//! Opening activation files of any supported format behind one handle.

use crate::npy::{self, DType, NpyHeader};
use crate::{store, DataError, Result};
use memmap2::Mmap;
use ndarray::Array2;
use std::fs::File;
use std::io::Read;
use std::path::{Path, PathBuf};

/// File formats strata reads activations from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    Npy,
    Npz,
    Safetensors,
    ArrowIpc,
    Parquet,
}

impl std::fmt::Display for Format {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Format::Npy => "npy",
            Format::Npz => "npz",
            Format::Safetensors => "safetensors",
            Format::ArrowIpc => "arrow",
            Format::Parquet => "parquet",
        })
    }
}

/// One layer as a file describes it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LayerInfo {
    /// The layer's name: the array name in `.npz`/`.safetensors`, the column name in a store,
    /// the file stem for a bare `.npy`.
    pub name: String,
    /// Shape of one example's activation (everything after the first axis).
    pub shape: Vec<usize>,
    /// Features per example: the product of `shape`.
    pub features: usize,
}

/// Where a layer's bytes live inside a memory-mapped `.npy` or `.safetensors` file.
#[derive(Clone, Debug)]
struct RawLayer {
    offset: usize,
    dtype: DType,
    big_endian: bool,
    fortran_order: bool,
}

enum Backend {
    /// `.npy` and `.safetensors`: the file is mapped; rows are converted on demand.
    Mapped {
        mmap: Mmap,
        raw: Vec<RawLayer>,
    },
    /// `.npz`: a zip of `.npy` members; a member is decompressed when its layer is read.
    Npz {
        members: Vec<(usize, NpyHeader)>,
    },
    Ipc(crate::store::ipc_read::IpcStore),
    Parquet,
}

/// An opened activation file: a list of layers that share the same examples.
pub struct Activations {
    path: PathBuf,
    format: Format,
    n: usize,
    layers: Vec<LayerInfo>,
    backend: Backend,
}

/// Open `path`, detecting its format from its first bytes.
///
/// Every layer must have the same number of examples (first axis) and at least one example and
/// one feature. Values are checked for NaN/Inf when they are read, not here.
pub fn open(path: &Path) -> Result<Activations> {
    let file = File::open(path).map_err(|e| DataError::io(path, e))?;
    let meta = file.metadata().map_err(|e| DataError::io(path, e))?;
    if meta.is_dir() {
        return Err(DataError::invalid(path, "is a directory, expected a file"));
    }
    let mut head = [0u8; 16];
    let got = (&file)
        .take(16)
        .read(&mut head)
        .map_err(|e| DataError::io(path, e))?;
    let head = &head[..got];
    let (format, n, layers, backend) = if npy::is_npy(head) {
        open_npy(path, &file)?
    } else if head.starts_with(b"PK\x03\x04") || head.starts_with(b"PK\x05\x06") {
        open_npz(path, file)?
    } else if head.starts_with(b"ARROW1") {
        let s = store::ipc_read::IpcStore::open(path)?;
        (
            Format::ArrowIpc,
            s.n(),
            s.layers().to_vec(),
            Backend::Ipc(s),
        )
    } else if head.starts_with(b"PAR1") {
        let (n, layers) = store::parquet_read::describe(path)?;
        (Format::Parquet, n, layers, Backend::Parquet)
    } else if looks_like_safetensors(head) {
        open_safetensors(path, &file)?
    } else if got == 0 {
        return Err(DataError::invalid(path, "file is empty"));
    } else {
        return Err(DataError::UnknownFormat {
            path: path.to_path_buf(),
        });
    };
    if layers.is_empty() {
        return Err(DataError::invalid(path, "holds no layers"));
    }
    if n == 0 {
        return Err(DataError::invalid(
            path,
            "holds no examples (first axis is 0)",
        ));
    }
    if let Some(l) = layers.iter().find(|l| l.features == 0) {
        return Err(DataError::invalid(
            path,
            format!("layer '{}' has no features (shape {:?})", l.name, l.shape),
        ));
    }
    Ok(Activations {
        path: path.to_path_buf(),
        format,
        n,
        layers,
        backend,
    })
}

type Opened = (Format, usize, Vec<LayerInfo>, Backend);

fn map(path: &Path, file: &File) -> Result<Mmap> {
    // SAFETY: the map is read-only and strata never writes to its inputs. Another process
    // truncating the file while it is mapped is the one hazard of any mmap-based reader; strata
    // accepts it for the zero-copy reads it buys, as NumPy's mmap_mode and safetensors do.
    unsafe { Mmap::map(file) }.map_err(|e| DataError::io(path, e))
}

/// Split a full array shape into (examples, per-example shape), requiring rank >= 2.
fn split_shape(path: &Path, name: &str, shape: &[usize]) -> Result<(usize, Vec<usize>)> {
    if shape.len() < 2 {
        return Err(DataError::invalid(
            path,
            format!(
                "array '{name}' has shape {shape:?}; activations need rank >= 2 \
                 (examples first, then features): reshape to (n, -1)"
            ),
        ));
    }
    Ok((shape[0], shape[1..].to_vec()))
}

fn layer_info(path: &Path, name: &str, shape: Vec<usize>) -> Result<LayerInfo> {
    let features = shape
        .iter()
        .try_fold(1usize, |a, &d| a.checked_mul(d))
        .ok_or_else(|| {
            DataError::corrupt(
                path,
                format!("array '{name}': shape {shape:?} is too large"),
            )
        })?;
    Ok(LayerInfo {
        name: name.to_string(),
        features,
        shape,
    })
}

fn common_n(path: &Path, ns: &[(String, usize)]) -> Result<usize> {
    let n = ns.first().map(|x| x.1).unwrap_or(0);
    if let Some((name, m)) = ns.iter().find(|x| x.1 != n) {
        return Err(DataError::invalid(
            path,
            format!(
                "layers disagree on the number of examples: '{}' has {n}, '{name}' has {m}",
                ns[0].0
            ),
        ));
    }
    Ok(n)
}

fn open_npy(path: &Path, file: &File) -> Result<Opened> {
    let mmap = map(path, file)?;
    let header = npy::parse_header(&mmap).map_err(|m| DataError::corrupt(path, m))?;
    let need = header.data_offset + header.data_len();
    if mmap.len() < need {
        return Err(DataError::corrupt(
            path,
            format!(
                "truncated: shape {:?} needs {need} bytes, file has {}",
                header.shape,
                mmap.len()
            ),
        ));
    }
    let name = path
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_else(|| "layer".into());
    let (n, shape) = split_shape(path, &name, &header.shape)?;
    let raw = vec![RawLayer {
        offset: header.data_offset,
        dtype: header.dtype,
        big_endian: header.big_endian,
        fortran_order: header.fortran_order,
    }];
    Ok((
        Format::Npy,
        n,
        vec![layer_info(path, &name, shape)?],
        Backend::Mapped { mmap, raw },
    ))
}

fn open_npz(path: &Path, file: File) -> Result<Opened> {
    let mut zip = zip::ZipArchive::new(file).map_err(|e| DataError::corrupt(path, e))?;
    let mut members = Vec::new();
    let mut layers = Vec::new();
    let mut ns = Vec::new();
    for i in 0..zip.len() {
        let mut f = zip.by_index(i).map_err(|e| DataError::corrupt(path, e))?;
        let member = f
            .name()
            .map_err(|e| DataError::corrupt(path, e))?
            .into_owned();
        let Some(name) = member.strip_suffix(".npy").map(str::to_string) else {
            continue;
        };
        // The header is at most a few kilobytes (NumPy caps v1 headers at 64 KiB).
        let mut head = Vec::new();
        (&mut f)
            .take(1 << 16)
            .read_to_end(&mut head)
            .map_err(|e| DataError::corrupt(path, format!("member '{member}': {e}")))?;
        let header = npy::parse_header(&head)
            .map_err(|m| DataError::corrupt(path, format!("array '{name}': {m}")))?;
        let (n, shape) = split_shape(path, &name, &header.shape)?;
        ns.push((name.clone(), n));
        layers.push(layer_info(path, &name, shape)?);
        members.push((i, header));
    }
    let n = common_n(path, &ns)?;
    Ok((Format::Npz, n, layers, Backend::Npz { members }))
}

fn looks_like_safetensors(head: &[u8]) -> bool {
    head.len() >= 9 && {
        let len = u64::from_le_bytes(head[..8].try_into().unwrap_or([0; 8]));
        len > 1 && len < (100 << 20) && head[8] == b'{'
    }
}

fn open_safetensors(path: &Path, file: &File) -> Result<Opened> {
    use safetensors::Dtype;
    let mmap = map(path, file)?;
    let (header_len, meta) = safetensors::SafeTensors::read_metadata(&mmap)
        .map_err(|e| DataError::corrupt(path, format!("not a valid safetensors file: {e:?}")))?;
    let data_start = 8 + header_len;
    let data_len = mmap.len().saturating_sub(data_start);
    let mut names = meta.offset_keys();
    // A writer that cares about depth order can say so; otherwise keep the file's order.
    if let Some(order) = meta
        .metadata()
        .as_ref()
        .and_then(|m| m.get("strata.layers"))
        .and_then(|s| serde_json::from_str::<Vec<String>>(s).ok())
    {
        names.sort_by_key(|n| order.iter().position(|o| o == n).unwrap_or(usize::MAX));
    }
    let (mut layers, mut raw, mut ns) = (Vec::new(), Vec::new(), Vec::new());
    for name in names {
        let Some(info) = meta.info(&name) else {
            continue;
        };
        let dtype = match info.dtype {
            Dtype::F32 => DType::F32,
            Dtype::F64 => DType::F64,
            Dtype::F16 => DType::F16,
            other => {
                return Err(DataError::invalid(
                    path,
                    format!("tensor '{name}' has dtype {other:?}; strata reads F16, F32 and F64"),
                ))
            }
        };
        let (start, end) = info.data_offsets;
        let numel: usize = info.shape.iter().product();
        if end > data_len || end < start || end - start != numel * dtype.size() {
            return Err(DataError::corrupt(
                path,
                format!("tensor '{name}': data offsets out of range (truncated file?)"),
            ));
        }
        let (n, shape) = split_shape(path, &name, &info.shape)?;
        ns.push((name.clone(), n));
        layers.push(layer_info(path, &name, shape)?);
        raw.push(RawLayer {
            offset: data_start + start,
            dtype,
            big_endian: false,
            fortran_order: false,
        });
    }
    let n = common_n(path, &ns)?;
    Ok((
        Format::Safetensors,
        n,
        layers,
        Backend::Mapped { mmap, raw },
    ))
}

impl Activations {
    /// The file this was opened from.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The detected format.
    pub fn format(&self) -> Format {
        self.format
    }

    /// Number of examples (rows) every layer holds.
    pub fn n(&self) -> usize {
        self.n
    }

    /// The layers, in file order.
    pub fn layers(&self) -> &[LayerInfo] {
        &self.layers
    }

    /// Index of the layer called `name`.
    pub fn layer_index(&self, name: &str) -> Result<usize> {
        self.layers
            .iter()
            .position(|l| l.name == name)
            .ok_or_else(|| DataError::NoSuchLayer {
                path: self.path.clone(),
                name: name.to_string(),
                available: self
                    .layers
                    .iter()
                    .map(|l| l.name.as_str())
                    .collect::<Vec<_>>()
                    .join(", "),
            })
    }

    /// Read layer `i` whole as an `n x features` f32 matrix, rejecting NaN and Inf.
    pub fn read_layer(&self, i: usize) -> Result<Array2<f32>> {
        let info = &self.layers[i];
        let m = match &self.backend {
            Backend::Mapped { mmap, raw } => mapped_rows(mmap, &raw[i], self.n, info, 0, self.n),
            Backend::Npz { members } => self.read_npz_member(members[i].0, &members[i].1, info)?,
            Backend::Ipc(s) => s.read_layer(i)?,
            Backend::Parquet => store::parquet_read::read_layer(&self.path, i, info, self.n)?,
        };
        check_finite(&self.path, &info.name, &m, 0)?;
        Ok(m)
    }

    fn read_npz_member(
        &self,
        member: usize,
        h: &NpyHeader,
        info: &LayerInfo,
    ) -> Result<Array2<f32>> {
        let file = File::open(&self.path).map_err(|e| DataError::io(&self.path, e))?;
        let mut zip = zip::ZipArchive::new(file).map_err(|e| DataError::corrupt(&self.path, e))?;
        let f = zip
            .by_index(member)
            .map_err(|e| DataError::corrupt(&self.path, e))?;
        // Never inflate more than the header promises (a zip bomb stops here).
        let mut bytes = Vec::new();
        f.take((h.data_offset + h.data_len()) as u64)
            .read_to_end(&mut bytes)
            .map_err(|e| DataError::corrupt(&self.path, format!("array '{}': {e}", info.name)))?;
        if bytes.len() < h.data_offset + h.data_len() {
            return Err(DataError::corrupt(
                &self.path,
                format!("array '{}' is truncated", info.name),
            ));
        }
        let raw = RawLayer {
            offset: h.data_offset,
            dtype: h.dtype,
            big_endian: h.big_endian,
            fortran_order: h.fortran_order,
        };
        Ok(mapped_rows(&bytes, &raw, self.n, info, 0, self.n))
    }

    /// Stream rows `batch_size` at a time for the layers `ids`, in lockstep. Memory stays bounded
    /// by a few batches for Arrow and Parquet stores and `.npy`/`.safetensors` files; `.npz`
    /// members are compressed streams and are read whole.
    pub fn batches(&self, ids: &[usize], batch_size: usize) -> Result<BatchReader<'_>> {
        let batch_size = batch_size.max(1);
        let chunks: Box<dyn Chunks + Send + '_> = match &self.backend {
            Backend::Mapped { mmap, raw } if raw.iter().all(|r| !r.fortran_order) => {
                Box::new(MappedChunks {
                    acts: self,
                    mmap,
                    raw,
                    ids: ids.to_vec(),
                    pos: 0,
                    step: batch_size,
                })
            }
            Backend::Ipc(s) => Box::new(s.chunks(ids)?),
            Backend::Parquet => Box::new(store::parquet_read::chunks(
                &self.path,
                &self.layers,
                ids,
                batch_size,
            )?),
            _ => {
                let whole = ids
                    .iter()
                    .map(|&i| self.read_layer(i))
                    .collect::<Result<Vec<_>>>()?;
                Box::new(WholeChunks {
                    layers: whole,
                    pos: 0,
                    step: batch_size,
                })
            }
        };
        Ok(BatchReader {
            path: self.path.clone(),
            names: ids.iter().map(|&i| self.layers[i].name.clone()).collect(),
            widths: ids.iter().map(|&i| self.layers[i].features).collect(),
            chunks,
            pending: vec![Vec::new(); ids.len()],
            pending_rows: 0,
            batch_size,
            emitted: 0,
            done: false,
        })
    }
}

/// Convert rows `[start, end)` of a raw C- or Fortran-order array to f32.
fn mapped_rows(
    bytes: &[u8],
    raw: &RawLayer,
    n: usize,
    info: &LayerInfo,
    start: usize,
    end: usize,
) -> Array2<f32> {
    let p = info.features;
    let size = raw.dtype.size();
    if raw.fortran_order {
        // Column-major over the full shape: flattening the trailing axes in C order is the
        // transpose of the reversed-axes view. Convert everything, then reorder.
        let all = npy::to_f32(
            &bytes[raw.offset..raw.offset + n * p * size],
            raw.dtype,
            raw.big_endian,
        );
        let mut full_shape = vec![n];
        full_shape.extend_from_slice(&info.shape);
        let rev: Vec<usize> = full_shape.iter().rev().copied().collect();
        let a = ndarray::ArrayD::from_shape_vec(rev, all).expect("size checked at open");
        let c = a.reversed_axes();
        let c = c.as_standard_layout();
        let flat: Vec<f32> = c.iter().copied().collect();
        let m = Array2::from_shape_vec((n, p), flat).expect("size checked at open");
        return m.slice(ndarray::s![start..end, ..]).to_owned();
    }
    let lo = raw.offset + start * p * size;
    let hi = raw.offset + end * p * size;
    let v = npy::to_f32(&bytes[lo..hi], raw.dtype, raw.big_endian);
    Array2::from_shape_vec((end - start, p), v).expect("sizes agree by construction")
}

/// Reject NaN/Inf with the position of the first one, counted from `row_offset`.
pub(crate) fn check_finite(
    path: &Path,
    layer: &str,
    m: &Array2<f32>,
    row_offset: usize,
) -> Result<()> {
    let p = m.ncols();
    let slice = m.as_slice().expect("standard layout");
    if let Some(first) = slice.iter().position(|v| !v.is_finite()) {
        let count = slice.iter().filter(|v| !v.is_finite()).count();
        return Err(DataError::invalid(
            path,
            format!(
                "layer '{layer}' has {count} non-finite value(s) (NaN or Inf); the first is \
                 {} at example {}, feature {}",
                slice[first],
                row_offset + first / p,
                first % p
            ),
        ));
    }
    Ok(())
}

/// A source of row chunks of arbitrary size, all layers in lockstep.
pub(crate) trait Chunks {
    fn next_chunk(&mut self) -> Result<Option<Vec<Array2<f32>>>>;
}

struct MappedChunks<'a> {
    acts: &'a Activations,
    mmap: &'a Mmap,
    raw: &'a [RawLayer],
    ids: Vec<usize>,
    pos: usize,
    step: usize,
}

impl Chunks for MappedChunks<'_> {
    fn next_chunk(&mut self) -> Result<Option<Vec<Array2<f32>>>> {
        let n = self.acts.n;
        if self.pos >= n {
            return Ok(None);
        }
        let end = (self.pos + self.step).min(n);
        let out = self
            .ids
            .iter()
            .map(|&i| {
                mapped_rows(
                    self.mmap,
                    &self.raw[i],
                    n,
                    &self.acts.layers[i],
                    self.pos,
                    end,
                )
            })
            .collect();
        self.pos = end;
        Ok(Some(out))
    }
}

struct WholeChunks {
    layers: Vec<Array2<f32>>,
    pos: usize,
    step: usize,
}

impl Chunks for WholeChunks {
    fn next_chunk(&mut self) -> Result<Option<Vec<Array2<f32>>>> {
        let n = self.layers.first().map(|l| l.nrows()).unwrap_or(0);
        if self.pos >= n {
            return Ok(None);
        }
        let end = (self.pos + self.step).min(n);
        let out = self
            .layers
            .iter()
            .map(|l| l.slice(ndarray::s![self.pos..end, ..]).to_owned())
            .collect();
        self.pos = end;
        Ok(Some(out))
    }
}

/// Yields batches of exactly `batch_size` rows (the last one may be shorter) for a fixed set
/// of layers, whatever the chunking of the underlying file. Each batch is checked for NaN/Inf.
pub struct BatchReader<'a> {
    path: PathBuf,
    names: Vec<String>,
    widths: Vec<usize>,
    chunks: Box<dyn Chunks + Send + 'a>,
    pending: Vec<Vec<f32>>,
    pending_rows: usize,
    batch_size: usize,
    emitted: usize,
    done: bool,
}

impl BatchReader<'_> {
    /// The next batch, or `None` at the end of the file.
    pub fn next_batch(&mut self) -> Result<Option<Vec<Array2<f32>>>> {
        while self.pending_rows < self.batch_size && !self.done {
            match self.chunks.next_chunk()? {
                Some(chunk) => {
                    let rows = chunk.first().map(|c| c.nrows()).unwrap_or(0);
                    for (buf, c) in self.pending.iter_mut().zip(&chunk) {
                        buf.extend_from_slice(c.as_slice().expect("standard layout"));
                    }
                    self.pending_rows += rows;
                }
                None => self.done = true,
            }
        }
        if self.pending_rows == 0 {
            return Ok(None);
        }
        let take = self.batch_size.min(self.pending_rows);
        let mut out = Vec::with_capacity(self.pending.len());
        for ((buf, &w), name) in self.pending.iter_mut().zip(&self.widths).zip(&self.names) {
            let rest = buf.split_off(take * w);
            let data = std::mem::replace(buf, rest);
            let m = Array2::from_shape_vec((take, w), data).expect("widths agree");
            check_finite(&self.path, name, &m, self.emitted)?;
            out.push(m);
        }
        self.pending_rows -= take;
        self.emitted += take;
        Ok(Some(out))
    }
}
