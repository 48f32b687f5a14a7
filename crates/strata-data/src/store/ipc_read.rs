//! Reading an Arrow IPC store through a memory map, one layer at a time.

use super::{append_column, layers_of};
use crate::guard::no_panic;
use crate::source::Chunks;
use crate::{DataError, LayerInfo, Result};
use arrow_buffer::Buffer;
use arrow_ipc::reader::FileDecoder;
use arrow_ipc::{Block, MetadataVersion};
use arrow_schema::SchemaRef;
use memmap2::Mmap;
use ndarray::Array2;
use std::path::{Path, PathBuf};
use std::ptr::NonNull;
use std::sync::Arc;

/// An Arrow IPC store, mapped into memory. Decoding is zero-copy and projected, so reading one
/// layer touches only that layer's pages.
pub struct IpcStore {
    path: PathBuf,
    mmap: Arc<Mmap>,
    buffer: Buffer,
    schema: SchemaRef,
    version: MetadataVersion,
    dictionaries: Vec<Block>,
    blocks: Vec<Block>,
    rows: Vec<usize>,
    layers: Vec<LayerInfo>,
    cols: Vec<usize>,
}

impl IpcStore {
    pub fn open(path: &Path) -> Result<Self> {
        let file = std::fs::File::open(path).map_err(|e| DataError::io(path, e))?;
        // SAFETY: read-only map of an input strata never writes; see `source::map`.
        let mmap = Arc::new(unsafe { Mmap::map(&file) }.map_err(|e| DataError::io(path, e))?);
        let len = mmap.len();
        let truncated = || {
            DataError::corrupt(
                path,
                "truncated or corrupt Arrow IPC file (no valid footer)",
            )
        };
        if len < 18 || &mmap[len - 6..] != b"ARROW1" {
            return Err(truncated());
        }
        let ptr = NonNull::new(mmap.as_ptr() as *mut u8).ok_or_else(truncated)?;
        // SAFETY: `ptr` and `len` describe the live mapping, which the Arc keeps alive for as
        // long as any Buffer slice of it exists.
        let buffer = unsafe { Buffer::from_custom_allocation(ptr, len, mmap.clone()) };
        let trailer: [u8; 10] = mmap[len - 10..].try_into().map_err(|_| truncated())?;
        let footer_len = arrow_ipc::reader::read_footer_length(trailer).map_err(|_| truncated())?;
        if footer_len + 10 > len {
            return Err(truncated());
        }
        let footer = arrow_ipc::root_as_footer(&mmap[len - 10 - footer_len..len - 10])
            .map_err(|_| truncated())?;
        let schema = footer.schema().ok_or_else(truncated).and_then(|s| {
            arrow_ipc::convert::try_fb_to_schema(s).map_err(|e| DataError::corrupt(path, e))
        })?;
        let schema = Arc::new(schema);
        let version = footer.version();
        let check = |b: &Block| -> Result<Block> {
            let end = (b.offset() as i128) + b.metaDataLength() as i128 + b.bodyLength() as i128;
            if b.offset() < 0 || b.metaDataLength() < 8 || b.bodyLength() < 0 || end > len as i128 {
                return Err(truncated());
            }
            Ok(*b)
        };
        let blocks: Vec<Block> = footer
            .recordBatches()
            .map(|v| v.iter().map(&check).collect::<Result<Vec<_>>>())
            .transpose()?
            .unwrap_or_default();
        let dictionaries: Vec<Block> = footer
            .dictionaries()
            .map(|v| v.iter().map(check).collect::<Result<Vec<_>>>())
            .transpose()?
            .unwrap_or_default();
        for b in &dictionaries {
            batch_rows_or_dictionary(&mmap, b).ok_or_else(truncated)?;
        }
        let rows = blocks
            .iter()
            .map(|b| batch_rows(&mmap, b).ok_or_else(truncated))
            .collect::<Result<Vec<_>>>()?;
        let (cols, layers): (Vec<usize>, Vec<LayerInfo>) =
            layers_of(path, &schema)?.into_iter().unzip();
        // Row counts come from headers: they must fit in the bytes actually present (at least
        // two bytes per value of every layer), which also bounds every allocation made from them.
        let row_bytes: u64 = layers.iter().map(|l| 2 * l.features as u64).sum();
        for (b, &r) in blocks.iter().zip(&rows) {
            if (r as u64)
                .checked_mul(row_bytes)
                .is_none_or(|need| need > b.bodyLength() as u64)
            {
                return Err(DataError::corrupt(
                    path,
                    "a record batch claims more rows than it holds",
                ));
            }
        }
        Ok(IpcStore {
            path: path.to_path_buf(),
            mmap,
            buffer,
            schema,
            version,
            dictionaries,
            blocks,
            rows,
            layers,
            cols,
        })
    }

    pub fn n(&self) -> usize {
        self.rows.iter().sum()
    }

    pub fn layers(&self) -> &[LayerInfo] {
        &self.layers
    }

    fn decoder(&self, ids: &[usize]) -> Result<FileDecoder> {
        let proj = ids.iter().map(|&i| self.cols[i]).collect();
        let mut d = FileDecoder::new(self.schema.clone(), self.version).with_projection(proj);
        for b in &self.dictionaries {
            no_panic(&self.path, "the Arrow IPC decoder", || {
                d.read_dictionary(b, &self.block_data(b))
                    .map_err(|e| DataError::corrupt(&self.path, e))
            })?;
        }
        Ok(d)
    }

    fn block_data(&self, b: &Block) -> Buffer {
        self.buffer.slice_with_length(
            b.offset() as usize,
            b.metaDataLength() as usize + b.bodyLength() as usize,
        )
    }

    /// Decode block `k` for the decoder's projection and append each column's rows.
    fn decode_into(
        &self,
        d: &FileDecoder,
        k: usize,
        ids: &[usize],
        out: &mut [Vec<f32>],
    ) -> Result<()> {
        let b = &self.blocks[k];
        // The blocks' buffers were checked at open; the decoder is still kept from crashing
        // strata should a corrupt file get past those checks.
        let batch = no_panic(&self.path, "the Arrow IPC decoder", || {
            d.read_record_batch(b, &self.block_data(b))
                .map_err(|e| DataError::corrupt(&self.path, format!("record batch {k}: {e}")))
        })?
        .ok_or_else(|| DataError::corrupt(&self.path, format!("record batch {k} is empty")))?;
        for ((col, &i), buf) in batch.columns().iter().zip(ids).zip(out.iter_mut()) {
            let info = &self.layers[i];
            append_column(&self.path, &info.name, col, info.features, buf)?;
        }
        Ok(())
    }

    pub fn read_layer(&self, i: usize) -> Result<Array2<f32>> {
        let d = self.decoder(&[i])?;
        let p = self.layers[i].features;
        let mut out = vec![Vec::with_capacity(self.n() * p)];
        for k in 0..self.blocks.len() {
            self.decode_into(&d, k, &[i], &mut out)?;
        }
        let data = out.pop().unwrap_or_default();
        Array2::from_shape_vec((self.n(), p), data).map_err(|_| {
            DataError::corrupt(
                &self.path,
                format!("layer '{}': row count mismatch", self.layers[i].name),
            )
        })
    }

    pub(crate) fn chunks(&self, ids: &[usize]) -> Result<IpcChunks<'_>> {
        Ok(IpcChunks {
            store: self,
            decoder: self.decoder(ids)?,
            ids: ids.to_vec(),
            next: 0,
        })
    }
}

/// The flatbuffer message at the start of block `b`, and the block's body length.
fn message<'a>(mmap: &'a [u8], b: &Block) -> Option<(arrow_ipc::Message<'a>, u64)> {
    let start = usize::try_from(b.offset()).ok()?;
    let meta_len = usize::try_from(b.metaDataLength()).ok()?;
    let body_len = u64::try_from(b.bodyLength()).ok()?;
    let meta = mmap.get(start..start.checked_add(meta_len)?)?;
    // Encapsulated message: optional 0xFFFFFFFF continuation marker, i32 length, flatbuffer.
    let (len_at, fb_at): (usize, usize) = if meta.get(..4)? == [0xFF; 4] {
        (4, 8)
    } else {
        (0, 4)
    };
    let len = usize::try_from(i32::from_le_bytes(
        meta.get(len_at..len_at + 4)?.try_into().ok()?,
    ))
    .ok()?;
    let msg = arrow_ipc::root_as_message(meta.get(fb_at..fb_at.checked_add(len)?)?).ok()?;
    Some((msg, body_len))
}

/// True when every buffer entry lies inside the body. The decoder slices the body by these
/// entries without checking them, so a corrupt file must be caught here, not panic there.
fn buffers_inside(rb: &arrow_ipc::RecordBatch, body_len: u64) -> Option<()> {
    for buf in rb.buffers()?.iter() {
        let off = u64::try_from(buf.offset()).ok()?;
        let l = u64::try_from(buf.length()).ok()?;
        if off.checked_add(l)? > body_len {
            return None;
        }
    }
    Some(())
}

/// Rows of the record batch in block `b`, read from its message header.
fn batch_rows(mmap: &[u8], b: &Block) -> Option<usize> {
    let (msg, body_len) = message(mmap, b)?;
    let rb = msg.header_as_record_batch()?;
    buffers_inside(&rb, body_len)?;
    usize::try_from(rb.length()).ok()
}

pub(crate) struct IpcChunks<'a> {
    store: &'a IpcStore,
    decoder: FileDecoder,
    ids: Vec<usize>,
    next: usize,
}

impl Chunks for IpcChunks<'_> {
    fn next_chunk(&mut self) -> Result<Option<Vec<Array2<f32>>>> {
        let s = self.store;
        if self.next >= s.blocks.len() {
            return Ok(None);
        }
        let k = self.next;
        self.next += 1;
        let mut out = vec![Vec::new(); self.ids.len()];
        s.decode_into(&self.decoder, k, &self.ids, &mut out)?;
        // The rows are copied out; let the kernel drop this batch's pages so that streaming a
        // store larger than memory keeps the resident set at a few batches.
        let b = &s.blocks[k];
        // SAFETY: DONTNEED on a read-only file mapping only discards cached pages; a later
        // access faults them back in from the file. No Buffer of this block outlives this call.
        unsafe {
            let _ = s.mmap.unchecked_advise_range(
                memmap2::UncheckedAdvice::DontNeed,
                b.offset() as usize,
                b.metaDataLength() as usize + b.bodyLength() as usize,
            );
        }
        let rows = s.rows[k];
        out.into_iter()
            .zip(&self.ids)
            .map(|(v, &i)| {
                Array2::from_shape_vec((rows, s.layers[i].features), v).map_err(|_| {
                    DataError::corrupt(&s.path, format!("record batch {k}: row count mismatch"))
                })
            })
            .collect::<Result<Vec<_>>>()
            .map(Some)
    }
}

/// Check a dictionary block's message and buffer entries like [`batch_rows`] does.
fn batch_rows_or_dictionary(mmap: &[u8], b: &Block) -> Option<()> {
    let (msg, body_len) = message(mmap, b)?;
    buffers_inside(&msg.header_as_dictionary_batch()?.data()?, body_len)
}
