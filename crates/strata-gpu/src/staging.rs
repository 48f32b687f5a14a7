//! Host-to-device uploads through page-locked (pinned) staging buffers.
//!
//! A copy from ordinary pageable memory is not really asynchronous: the driver first copies the
//! data into a pinned buffer of its own, and the calling thread waits while it does. Here the
//! data passes through two pinned buffers of our own instead: the host fills one while the DMA
//! engine reads the other, the call returns once the last chunk is queued, and data transformed
//! on the way (the 8-bit pixels quantized networks read) is written straight into pinned memory,
//! with no intermediate `Vec`.
//!
//! The one hazard is refilling a buffer the DMA engine has not finished reading. Each buffer
//! carries an event recorded after its copy; the host waits on it before writing the buffer
//! again. (`strata gpu check` uploads through tiny buffers, so that every upload reuses them
//! many times; the emulator in tests/gpu-sim.sh reads pinned memory only when a copy runs, so
//! a missing wait there gives wrong data.)

use crate::{Gpu, GpuError};
use cudarc::driver::{
    result, sys, CudaContext, CudaEvent, CudaSlice, CudaStream, DevicePtrMut, PinnedHostSlice,
};
use std::sync::Arc;

/// f32 values per staging buffer (8 MiB): large enough that the DMA engine runs near its
/// peak, small enough that filling one overlaps copying the other.
pub(crate) const CHUNK: usize = 1 << 21;

fn cuda<E: std::fmt::Debug>(what: &'static str) -> impl Fn(E) -> GpuError {
    move |e| GpuError::cuda(what, e)
}

struct Buffer {
    host: PinnedHostSlice<f32>,
    /// Recorded after the last copy out of `host`.
    copied: CudaEvent,
}

impl Drop for Buffer {
    fn drop(&mut self) {
        // The pinned memory is freed right after this: no copy may still be reading it.
        let _ = self.copied.synchronize();
    }
}

/// Two pinned buffers used in turn.
pub(crate) struct Staging {
    buffers: Vec<Buffer>,
    next: usize,
    chunk: usize,
}

impl Staging {
    /// Two buffers of `chunk` f32 values each.
    pub(crate) fn new(ctx: &Arc<CudaContext>, chunk: usize) -> Result<Self, GpuError> {
        let chunk = chunk.max(1);
        let mut buffers = Vec::new();
        for _ in 0..2 {
            // SAFETY: the memory is only written (by `fill`) before anything reads it.
            let host = unsafe { ctx.alloc_pinned::<f32>(chunk) }.map_err(cuda("pinned alloc"))?;
            // Blocking sync: a host thread waiting for a copy sleeps rather than spins, so it
            // leaves its core to the thread queueing kernels.
            let copied = ctx
                .new_event(Some(sys::CUevent_flags::CU_EVENT_BLOCKING_SYNC))
                .map_err(cuda("event"))?;
            buffers.push(Buffer { host, copied });
        }
        Ok(Staging {
            buffers,
            next: 0,
            chunk,
        })
    }

    /// A new device array of `len` values (1 unset value when `len` is 0: CUDA has no empty
    /// allocation), queued on `stream`: `fill(offset, out)` writes the values
    /// `offset .. offset + out.len()` into `out` (pinned memory: write, never read). Returns
    /// once the last chunk is queued; a kernel on another stream that reads the result waits
    /// for the copies (cudarc records the array's write event on `stream`).
    pub(crate) fn upload(
        &mut self,
        stream: &Arc<CudaStream>,
        len: usize,
        mut fill: impl FnMut(usize, &mut [f32]),
    ) -> Result<CudaSlice<f32>, GpuError> {
        stream.context().bind_to_thread().map_err(cuda("context"))?;
        // SAFETY: the copies below write every one of the `len` values before any read.
        let mut dst = unsafe { stream.alloc::<f32>(len.max(1)) }.map_err(cuda("alloc"))?;
        {
            // `_written` records the array's write event when dropped, after the last copy.
            let (base, _written) = dst.device_ptr_mut(stream);
            let mut offset = 0;
            while offset < len {
                let n = (len - offset).min(self.chunk);
                let turn = self.next;
                self.next = (turn + 1) % self.buffers.len();
                let b = &mut self.buffers[turn];
                b.copied.synchronize().map_err(cuda("event wait"))?;
                let host = &mut b.host.as_mut_slice().map_err(cuda("pinned buffer"))?[..n];
                fill(offset, host);
                let at = base + (offset * std::mem::size_of::<f32>()) as sys::CUdeviceptr;
                // SAFETY: `at .. at + n` lies inside `dst` (offset + n <= len), and `host`
                // stays untouched until `copied`, recorded next, has completed.
                unsafe { result::memcpy_htod_async(at, &*host, stream.cu_stream()) }
                    .map_err(cuda("upload"))?;
                if let Err(e) = b.copied.record(stream) {
                    // The event still marks an older copy: wait for this one before anyone
                    // can refill the buffer.
                    let _ = stream.synchronize();
                    return Err(GpuError::cuda("event record", e));
                }
                offset += n;
            }
        }
        Ok(dst)
    }
}

/// Uploads through a pair of pinned buffers of a chosen size, made for one self-check: with
/// tiny buffers every upload refills them many times, so an upload that overwrote a buffer
/// whose copy was still queued would bring back wrong values.
pub struct StagingCheck<'a> {
    gpu: &'a Gpu,
    staging: Staging,
}

impl Gpu {
    /// Two pinned buffers of `chunk` f32 values each, for [`StagingCheck::round_trip`]. An
    /// error here means page-locked memory could not be had: uploads still work (through
    /// pageable memory, slower), but the staged path cannot be checked.
    pub fn staging_check(&self, chunk: usize) -> Result<StagingCheck<'_>, GpuError> {
        Ok(StagingCheck {
            gpu: self,
            staging: Staging::new(&self.ctx, chunk)?,
        })
    }
}

impl StagingCheck<'_> {
    /// Upload every array, back to back on the copy stream, then read each back on the compute
    /// stream (which waits for the copies as kernels do). An empty array comes back as one
    /// value: CUDA has no empty allocation.
    pub fn round_trip(&mut self, arrays: &[Vec<f32>]) -> Result<Vec<Vec<f32>>, GpuError> {
        let mut uploaded = Vec::new();
        for v in arrays {
            uploaded.push(self.staging.upload(&self.gpu.copy, v.len(), |at, out| {
                out.copy_from_slice(&v[at..at + out.len()])
            })?);
        }
        uploaded
            .iter()
            .map(|d| {
                self.gpu
                    .stream
                    .clone_dtoh(d)
                    .map_err(|e| GpuError::cuda("download", e))
            })
            .collect()
    }
}
