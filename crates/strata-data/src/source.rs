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
    /// A NumPy `.npy` array: one layer.
    Npy,
    /// A NumPy `.npz` archive (zip of `.npy` arrays): one layer per array.
    Npz,
    /// A `.safetensors` file (as PyTorch and Hugging Face write it): one layer per tensor.
    Safetensors,
    /// strata's activation store in Arrow IPC (`.arrow`).
    ArrowIpc,
    /// strata's activation store in Parquet.
    Parquet,
    /// A PyTorch `.pt`/`.pth` file written by `torch.save` (zip + pickle) holding a tensor or a
    /// dict of tensors: one layer per tensor, named by its (dotted) key.
    Pth,
}

impl std::fmt::Display for Format {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Format::Npy => "npy",
            Format::Npz => "npz",
            Format::Safetensors => "safetensors",
            Format::ArrowIpc => "arrow",
            Format::Parquet => "parquet",
            Format::Pth => "pth",
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
    /// `.pt`/`.pth`: a zip of raw storages; a tensor's bytes are streamed when its layer is read.
    Pth {
        tensors: Vec<crate::pth::PthTensor>,
    },
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
        open_zip(path, file, meta.len())?
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
    } else if head.starts_with(b"\x80\x02\x8a\x0a") {
        return Err(DataError::invalid(
            path,
            "is a legacy (pre-1.6) torch.save file; strata reads the zip format: re-save it \
             with torch.save(obj, path) from PyTorch >= 1.6",
        ));
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

/// Deflate cannot expand its input by more than about 1032:1 (258-byte matches coded in about
/// two bits each). A zip entry that claims more is corrupt or a decompression bomb.
const MAX_DEFLATE_RATIO: u64 = 1032;

/// Check a `.npz` member's zip entry against its `.npy` header before anything is inflated:
/// the shape's byte count must be what the entry declares it holds, and what it declares must be
/// reachable from its compressed size.
fn check_npz_member(
    path: &Path,
    name: &str,
    header: &NpyHeader,
    method: zip::CompressionMethod,
    declared: u64,
    compressed: u64,
) -> Result<()> {
    let holds = (header.data_offset as u64).saturating_add(header.data_len() as u64);
    if holds != declared {
        return Err(DataError::corrupt(
            path,
            format!(
                "array '{name}': its header's shape {:?} needs {holds} bytes but the zip entry \
                 holds {declared} (corrupt file; re-save it with numpy.savez)",
                header.shape
            ),
        ));
    }
    check_ratio(path, name, method, declared, compressed)
}

/// What a zip entry declares it inflates to must be reachable from what it occupies.
pub(crate) fn check_ratio(
    path: &Path,
    name: &str,
    method: zip::CompressionMethod,
    declared: u64,
    compressed: u64,
) -> Result<()> {
    match method {
        zip::CompressionMethod::Stored if compressed != declared => Err(DataError::corrupt(
            path,
            format!(
                "array '{name}': an uncompressed zip entry of {declared} bytes occupies \
                 {compressed} bytes (corrupt file)"
            ),
        )),
        zip::CompressionMethod::Deflated
            if declared
                > compressed
                    .saturating_mul(MAX_DEFLATE_RATIO)
                    .saturating_add(1024) =>
        {
            Err(DataError::corrupt(
                path,
                format!(
                    "array '{name}': claims {compressed} compressed bytes inflate to {declared}, \
                     beyond the {MAX_DEFLATE_RATIO}:1 that deflate can reach (corrupt file or a \
                     zip bomb)"
                ),
            ))
        }
        _ => Ok(()),
    }
}

/// A zip archive is a `torch.save` file when an entry is `data.pkl` (at any depth one below
/// the root, as PyTorch names it `<archive>/data.pkl`), otherwise a `.npz`.
fn open_zip(path: &Path, file: File, file_len: u64) -> Result<Opened> {
    let zip = zip::ZipArchive::new(file).map_err(|e| {
        DataError::corrupt(path, format!("not a readable zip (.npz or .pt) file: {e}"))
    })?;
    if crate::pth::is_pth_entries(zip.file_names_raw()) {
        open_pth(path, zip, file_len)
    } else {
        open_npz(path, zip)
    }
}

fn open_pth(path: &Path, mut zip: zip::ZipArchive<File>, file_len: u64) -> Result<Opened> {
    let tensors = crate::pth::describe(path, &mut zip, file_len)?;
    let stem = path
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_else(|| "layer".into());
    let (mut layers, mut ns) = (Vec::new(), Vec::new());
    let mut tensors = tensors;
    for t in &mut tensors {
        if t.name.is_empty() {
            t.name = stem.clone();
        }
        let (n, shape) = split_shape(path, &t.name, &t.shape)?;
        ns.push((t.name.clone(), n));
        layers.push(layer_info(path, &t.name, shape)?);
    }
    let n = common_n(path, &ns)?;
    Ok((Format::Pth, n, layers, Backend::Pth { tensors }))
}

fn open_npz(path: &Path, mut zip: zip::ZipArchive<File>) -> Result<Opened> {
    let mut members = Vec::new();
    let mut layers = Vec::new();
    let mut ns = Vec::new();
    for i in 0..zip.len() {
        let mut f = zip
            .by_index(i)
            .map_err(|e| DataError::corrupt(path, format!("zip entry {i}: {e}")))?;
        let member = f
            .name()
            .map_err(|e| DataError::corrupt(path, format!("zip entry {i}: {e}")))?
            .into_owned();
        let Some(name) = member.strip_suffix(".npy").map(str::to_string) else {
            continue;
        };
        let (method, declared, compressed) = (f.compression(), f.size(), f.compressed_size());
        // Refuse impossible ratios before inflating even the header.
        check_ratio(path, &name, method, declared, compressed)?;
        // The header is at most a few kilobytes (NumPy caps v1 headers at 64 KiB).
        let mut head = Vec::new();
        (&mut f)
            .take(1 << 16)
            .read_to_end(&mut head)
            .map_err(|e| DataError::corrupt(path, format!("array '{name}': {e}")))?;
        let header = npy::parse_header(&head)
            .map_err(|m| DataError::corrupt(path, format!("array '{name}': {m}")))?;
        check_npz_member(path, &name, &header, method, declared, compressed)?;
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
        .map_err(|e| DataError::corrupt(path, crate::safetensors_error_message_in(&e, &mmap)))?;
    let data_start = 8usize.saturating_add(header_len);
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
            Dtype::BF16 => DType::BF16,
            other => {
                return Err(DataError::invalid(
                    path,
                    format!(
                        "tensor '{name}' has dtype {other:?}; strata reads activations stored \
                         as F16, BF16, F32 or F64 (convert with tensor.float())"
                    ),
                ))
            }
        };
        // The library has checked these already; checked here too, without trusting it.
        let (start, end) = info.data_offsets;
        let bytes = info
            .shape
            .iter()
            .try_fold(1usize, |a, &d| a.checked_mul(d))
            .and_then(|n| n.checked_mul(dtype.size()));
        if end > data_len || end < start || Some(end - start) != bytes {
            return Err(DataError::corrupt(
                path,
                format!(
                    "tensor '{name}': its data offsets [{start}, {end}] do not fit its shape \
                     {:?} or lie outside the file (truncated or corrupt file)",
                    info.shape
                ),
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
    ///
    /// The matrix's size is checked against the memory this process may still claim before
    /// anything is allocated ([`DataError::TooLarge`]).
    pub fn read_layer(&self, i: usize) -> Result<Array2<f32>> {
        let info = &self.layers[i];
        let fortran = match &self.backend {
            Backend::Mapped { raw, .. } => raw[i].fortran_order,
            Backend::Npz { members } => members[i].1.fortran_order,
            _ => false,
        };
        let floats = (self.n as u64).saturating_mul(info.features as u64);
        DataError::check_fits(
            &self.path,
            floats.saturating_mul(if fortran { 8 } else { 4 }),
            format!(
                "reading layer '{}' ({} x {} float32)",
                info.name, self.n, info.features
            ),
            "read fewer layers at once, free memory, or use a machine with more",
        )?;
        let m = match &self.backend {
            Backend::Mapped { mmap, raw } => {
                mapped_rows(&self.path, mmap, &raw[i], self.n, info, 0, self.n)?
            }
            Backend::Npz { members } => self.read_npz_member(members[i].0, &members[i].1, info)?,
            Backend::Ipc(s) => s.read_layer(i)?,
            Backend::Parquet => store::parquet_read::read_layer(&self.path, i, info, self.n)?,
            Backend::Pth { tensors } => self.read_pth_tensor(&tensors[i], info)?,
        };
        check_finite(&self.path, &info.name, &m, 0)?;
        Ok(m)
    }

    /// Inflate one `.npz` member straight into the output matrix, chunk by chunk: the raw bytes
    /// are never held whole, so memory stays at the f32 matrix plus 64 KiB.
    fn read_npz_member(
        &self,
        member: usize,
        h: &NpyHeader,
        info: &LayerInfo,
    ) -> Result<Array2<f32>> {
        let path = &self.path;
        let name = &info.name;
        let bad = |what: String| DataError::corrupt(path, format!("array '{name}': {what}"));
        let file = File::open(path).map_err(|e| DataError::io(path, e))?;
        let mut zip = zip::ZipArchive::new(file)
            .map_err(|e| DataError::corrupt(path, format!("not a readable .npz file: {e}")))?;
        let mut f = zip
            .by_index(member)
            .map_err(|e| bad(format!("{e} (has the file changed since it was opened?)")))?;
        check_npz_member(
            path,
            name,
            h,
            f.compression(),
            f.size(),
            f.compressed_size(),
        )?;
        let mut head = vec![0u8; h.data_offset];
        f.read_exact(&mut head)
            .map_err(|e| bad(format!("header: {e} (truncated or corrupt member)")))?;
        if npy::parse_header(&head).ok().as_ref() != Some(h) {
            return Err(bad(
                "its header changed since the file was opened; open it again".into(),
            ));
        }
        let total = h.len();
        if total != self.n.saturating_mul(info.features) {
            return Err(bad("shape disagrees with the layer list".into()));
        }
        let size = h.dtype.size();
        let mut out: Vec<f32> = Vec::with_capacity(total);
        let mut buf = vec![0u8; (1 << 16) / size * size];
        let mut left = h.data_len();
        while left > 0 {
            let k = left.min(buf.len());
            f.read_exact(&mut buf[..k])
                .map_err(|e| bad(format!("{e} (truncated or corrupt member)")))?;
            npy::extend_f32(&mut out, &buf[..k], h.dtype, h.big_endian);
            left -= k;
        }
        // One more read reaches the end of the member, where the zip reader checks its CRC.
        let mut probe = [0u8; 1];
        match f.read(&mut probe) {
            Ok(0) => {}
            Ok(_) => return Err(bad("holds more data than its header describes".into())),
            Err(e) => return Err(bad(format!("{e} (corrupt member)"))),
        }
        if h.fortran_order {
            return fortran_to_c(path, name, out, self.n, &info.shape, 0, self.n);
        }
        Array2::from_shape_vec((self.n, info.features), out)
            .map_err(|_| bad("shape disagrees with its data".into()))
    }

    /// Stream one `torch.save` storage slice straight into the output matrix, 64 KiB at a time.
    /// The entry's size was checked against the tensor's shape when the file was opened and is
    /// checked again here, before anything is allocated.
    fn read_pth_tensor(&self, t: &crate::pth::PthTensor, info: &LayerInfo) -> Result<Array2<f32>> {
        let path = &self.path;
        let name = &info.name;
        let bad = |what: String| DataError::corrupt(path, format!("tensor '{name}': {what}"));
        let file = File::open(path).map_err(|e| DataError::io(path, e))?;
        let file_len = file.metadata().map_err(|e| DataError::io(path, e))?.len();
        let mut zip = zip::ZipArchive::new(file)
            .map_err(|e| DataError::corrupt(path, format!("not a readable .pt file: {e}")))?;
        let mut f = zip
            .by_name(&t.entry)
            .map_err(|e| bad(format!("{e} (has the file changed since it was opened?)")))?;
        let total = self.n.saturating_mul(info.features);
        let size = t.dtype.size();
        let data_len = (total as u64).saturating_mul(size as u64);
        let (declared, compressed) = (f.size(), f.compressed_size());
        if t.byte_offset.saturating_add(data_len) > declared || compressed > file_len {
            return Err(bad(
                "its storage entry is smaller than its shape needs (has the file changed since \
                 it was opened?)"
                    .into(),
            ));
        }
        check_ratio(path, name, f.compression(), declared, compressed)?;
        std::io::copy(&mut (&mut f).take(t.byte_offset), &mut std::io::sink())
            .map_err(|e| bad(format!("{e} (truncated or corrupt entry)")))?;
        let mut out: Vec<f32> = Vec::with_capacity(total);
        let mut buf = vec![0u8; (1 << 16) / size * size];
        let mut left = data_len;
        while left > 0 {
            let k = left.min(buf.len() as u64) as usize;
            f.read_exact(&mut buf[..k])
                .map_err(|e| bad(format!("{e} (truncated or corrupt entry)")))?;
            npy::extend_f32(&mut out, &buf[..k], t.dtype, t.big_endian);
            left -= k as u64;
        }
        Array2::from_shape_vec((self.n, info.features), out)
            .map_err(|_| bad("shape disagrees with its data".into()))
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
    path: &Path,
    bytes: &[u8],
    raw: &RawLayer,
    n: usize,
    info: &LayerInfo,
    start: usize,
    end: usize,
) -> Result<Array2<f32>> {
    let p = info.features;
    let size = raw.dtype.size();
    let span = |a: usize, b: usize| {
        let lo = a
            .checked_mul(p)?
            .checked_mul(size)?
            .checked_add(raw.offset)?;
        let hi = b
            .checked_mul(p)?
            .checked_mul(size)?
            .checked_add(raw.offset)?;
        bytes.get(lo..hi)
    };
    let outside = || {
        DataError::corrupt(
            path,
            format!(
                "layer '{}': its data lies outside the file (truncated?)",
                info.name
            ),
        )
    };
    if raw.fortran_order {
        // Column-major over the full shape: convert everything, then reorder.
        let all = npy::to_f32(span(0, n).ok_or_else(outside)?, raw.dtype, raw.big_endian);
        return fortran_to_c(path, &info.name, all, n, &info.shape, start, end);
    }
    let v = npy::to_f32(
        span(start, end).ok_or_else(outside)?,
        raw.dtype,
        raw.big_endian,
    );
    Array2::from_shape_vec((end - start, p), v).map_err(|_| outside())
}

/// Rows `[start, end)` of a Fortran-order array of shape `(n, shape...)`, in C order.
/// Flattening the trailing axes in C order is the transpose of the reversed-axes view.
fn fortran_to_c(
    path: &Path,
    name: &str,
    all: Vec<f32>,
    n: usize,
    shape: &[usize],
    start: usize,
    end: usize,
) -> Result<Array2<f32>> {
    let bad = || {
        DataError::corrupt(
            path,
            format!("layer '{name}': shape disagrees with its data"),
        )
    };
    let p = all.len().checked_div(n).ok_or_else(bad)?;
    let mut full_shape = vec![n];
    full_shape.extend_from_slice(shape);
    let rev: Vec<usize> = full_shape.iter().rev().copied().collect();
    let a = ndarray::ArrayD::from_shape_vec(rev, all).map_err(|_| bad())?;
    let c = a.reversed_axes();
    let rows = c.slice_axis(ndarray::Axis(0), (start..end).into());
    let flat: Vec<f32> = rows.iter().copied().collect();
    Array2::from_shape_vec((end - start, p), flat).map_err(|_| bad())
}

/// Reject NaN/Inf with the position of the first one, counted from `row_offset`.
pub(crate) fn check_finite(
    path: &Path,
    layer: &str,
    m: &Array2<f32>,
    row_offset: usize,
) -> Result<()> {
    let p = m.ncols().max(1);
    if let Some(first) = m.iter().position(|v| !v.is_finite()) {
        let count = m.iter().filter(|v| !v.is_finite()).count();
        let value = m.iter().nth(first).copied().unwrap_or(f32::NAN);
        return Err(DataError::invalid(
            path,
            format!(
                "layer '{layer}' has {count} non-finite value(s) (NaN or Inf); the first is \
                 {value} at example {}, feature {}",
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
                    &self.acts.path,
                    self.mmap,
                    &self.raw[i],
                    n,
                    &self.acts.layers[i],
                    self.pos,
                    end,
                )
            })
            .collect::<Result<Vec<_>>>()?;
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
                        match c.as_slice() {
                            Some(s) => buf.extend_from_slice(s),
                            None => buf.extend(c.iter()),
                        }
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
            let m = Array2::from_shape_vec((take, w), data).map_err(|_| {
                DataError::corrupt(
                    &self.path,
                    format!("layer '{name}': rows of different widths"),
                )
            })?;
            check_finite(&self.path, name, &m, self.emitted)?;
            out.push(m);
        }
        self.pending_rows -= take;
        self.emitted += take;
        Ok(Some(out))
    }
}
