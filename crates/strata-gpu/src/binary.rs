//! Binary (±1) matrix products on the GPU, on bits packed 32 to a word.

use crate::{Gpu, GpuError};
use cudarc::driver::{CudaSlice, LaunchConfig, PushKernelArg};
use std::sync::Arc;
use strata_nn::binary_gemm::BitMatrix;

/// Which kernel computes the product.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum BinaryKernel {
    /// CUDA cores: `K - 2 popc(a XOR b)`, 64 x 64 tiles in shared memory.
    Xor,
    /// Tensor cores (sm_80+): `mma.sync` m16n8k256 on b1 operands, AND form.
    TensorCore,
}

impl BinaryKernel {
    /// `xor-popcount`, `mma-b1-and`: how reports and benchmark records name it.
    pub fn name(self) -> &'static str {
        match self {
            BinaryKernel::Xor => "xor-popcount",
            BinaryKernel::TensorCore => "mma-b1-and",
        }
    }
}

/// A packed ±1 matrix on the device: `rows` rows of `kw` words (`kw` a multiple of 8, so a
/// row holds whole 256-bit mma steps; padding bits are 0), with each row's popcount.
pub struct PackedDevice {
    /// Rows of the matrix (examples, or output units for weights).
    pub rows: usize,
    /// Bits per row: the length of the ±1 vectors a product contracts.
    pub k: usize,
    /// 32-bit words per row on the device ([`device_words`] of `k`).
    pub kw: usize,
    pub(crate) words: CudaSlice<u32>,
    pub(crate) popcounts: CudaSlice<i32>,
}

/// Words per row on the device for `k` bits.
pub fn device_words(k: usize) -> usize {
    k.div_ceil(256).max(1) * 8
}

/// Binary GEMM on one GPU.
#[derive(Clone, Debug)]
pub struct GpuBinaryGemm {
    /// The device the kernels run on.
    pub gpu: Arc<Gpu>,
}

fn cuda<E: std::fmt::Debug>(what: &'static str) -> impl Fn(E) -> GpuError {
    move |e| GpuError::cuda(what, e)
}

impl GpuBinaryGemm {
    /// Binary products on `gpu` (its kernels were compiled with the context: this is cheap).
    pub fn new(gpu: Arc<Gpu>) -> Self {
        GpuBinaryGemm { gpu }
    }

    /// Whether the tensor-core kernel can run here (compute capability 8.0 or newer).
    pub fn has_tensor_cores(&self) -> bool {
        self.gpu.info.compute_capability.0 >= 8
    }

    /// Every kernel this device can run: XOR-popcount, then the tensor-core kernel where there
    /// are tensor cores.
    pub fn kernels(&self) -> Vec<BinaryKernel> {
        let mut k = vec![BinaryKernel::Xor];
        if self.has_tensor_cores() {
            k.push(BinaryKernel::TensorCore);
        }
        k
    }

    /// The fastest kernel this device has.
    pub fn best_kernel(&self) -> BinaryKernel {
        if self.has_tensor_cores() {
            BinaryKernel::TensorCore
        } else {
            BinaryKernel::Xor
        }
    }

    pub(crate) fn popcounts(
        &self,
        words: &CudaSlice<u32>,
        rows: usize,
        kw: usize,
    ) -> Result<CudaSlice<i32>, GpuError> {
        let s = &self.gpu.stream;
        let mut pop = s.alloc_zeros::<i32>(rows.max(1)).map_err(cuda("alloc"))?;
        let f = self.gpu.binary_fn("row_popcounts")?;
        let (ri, kwi) = (rows as i32, kw as i32);
        let mut l = s.launch_builder(&f);
        l.arg(words).arg(&ri).arg(&kwi).arg(&mut pop);
        let cfg = LaunchConfig {
            grid_dim: (rows.div_ceil(256).max(1) as u32, 1, 1),
            block_dim: (256, 1, 1),
            shared_mem_bytes: 0,
        };
        // SAFETY: argument types match the kernel; it checks `r < rows`.
        unsafe { l.launch(cfg) }.map_err(cuda("row_popcounts"))?;
        Ok(pop)
    }

    /// Upload a matrix the CPU packed (u64 words, read as little-endian u32 pairs: the device
    /// layout), re-padded to whole 256-bit steps.
    pub fn upload(&self, m: &BitMatrix) -> Result<PackedDevice, GpuError> {
        let kw = device_words(m.k);
        let mut host = vec![0u32; m.rows * kw];
        for r in 0..m.rows {
            for (w, &word) in m.bits[r * m.words..(r + 1) * m.words].iter().enumerate() {
                host[r * kw + 2 * w] = word as u32;
                if 2 * w + 1 < kw {
                    host[r * kw + 2 * w + 1] = (word >> 32) as u32;
                }
            }
        }
        let words = self.gpu.stream.clone_htod(&host).map_err(cuda("upload"))?;
        let popcounts = self.popcounts(&words, m.rows, kw)?;
        Ok(PackedDevice {
            rows: m.rows,
            k: m.k,
            kw,
            words,
            popcounts,
        })
    }

    /// Pack a row-major `rows x k` f32 matrix on the device (bit set where `x >= 0`).
    pub fn pack(&self, x: &[f32], rows: usize, k: usize) -> Result<PackedDevice, GpuError> {
        if x.len() != rows * k {
            return Err(GpuError::Unsupported(format!(
                "pack: {} values for a {rows} x {k} matrix",
                x.len()
            )));
        }
        let s = &self.gpu.stream;
        let dx = s.clone_htod(x).map_err(cuda("upload"))?;
        self.pack_device(&dx, rows, k)
    }

    /// Pack a device-resident row-major `rows x k` f32 matrix.
    pub fn pack_device(
        &self,
        x: &CudaSlice<f32>,
        rows: usize,
        k: usize,
    ) -> Result<PackedDevice, GpuError> {
        let s = &self.gpu.stream;
        let kw = device_words(k);
        let mut words = s
            .alloc_zeros::<u32>((rows * kw).max(1))
            .map_err(cuda("alloc"))?;
        if rows > 0 {
            let f = self.gpu.binary_fn("pack_signs")?;
            let (ki, kwi) = (k as i32, kw as i32);
            let mut l = s.launch_builder(&f);
            l.arg(x).arg(&ki).arg(&kwi).arg(&mut words);
            let cfg = LaunchConfig {
                grid_dim: ((kw * 32).div_ceil(256) as u32, rows as u32, 1),
                block_dim: (256, 1, 1),
                shared_mem_bytes: 0,
            };
            // SAFETY: reads only `b < k` of each row, writes only words `< kw`.
            unsafe { l.launch(cfg) }.map_err(cuda("pack_signs"))?;
        }
        let popcounts = self.popcounts(&words, rows, kw)?;
        Ok(PackedDevice {
            rows,
            k,
            kw,
            words,
            popcounts,
        })
    }

    /// `C[i][j] = Σ_k a_ik b_jk` (`a.rows x b.rows`, row-major), on the device.
    pub fn gemm_device(
        &self,
        a: &PackedDevice,
        b: &PackedDevice,
        kernel: BinaryKernel,
    ) -> Result<CudaSlice<i32>, GpuError> {
        if a.k != b.k {
            return Err(GpuError::Unsupported(format!(
                "binary GEMM: A has {} bits per row and B {}",
                a.k, b.k
            )));
        }
        if kernel == BinaryKernel::TensorCore && !self.has_tensor_cores() {
            return Err(GpuError::Unsupported(format!(
                "the tensor-core binary kernel needs compute capability 8.0 or newer; {} is {}.{}",
                self.gpu.info.name,
                self.gpu.info.compute_capability.0,
                self.gpu.info.compute_capability.1
            )));
        }
        let s = &self.gpu.stream;
        let (m, n) = (a.rows, b.rows);
        let mut c = s
            .alloc_zeros::<i32>((m * n).max(1))
            .map_err(cuda("alloc"))?;
        if m == 0 || n == 0 {
            return Ok(c);
        }
        let (mi, ni, kwi, ki) = (m as i32, n as i32, a.kw as i32, a.k as i32);
        // Output tile per block of 256 threads; the tensor-core kernel also takes the rows'
        // popcounts (its AND form needs them).
        let (name, tile) = match kernel {
            BinaryKernel::Xor => ("xor_gemm", 64),
            BinaryKernel::TensorCore => ("mma_and_gemm", 128),
        };
        let f = self.gpu.binary_fn(name)?;
        let mut l = s.launch_builder(&f);
        l.arg(&a.words).arg(&b.words);
        if kernel == BinaryKernel::TensorCore {
            l.arg(&a.popcounts).arg(&b.popcounts);
        }
        l.arg(&mi).arg(&ni).arg(&kwi).arg(&ki).arg(&mut c);
        let cfg = LaunchConfig {
            grid_dim: (n.div_ceil(tile) as u32, m.div_ceil(tile) as u32, 1),
            block_dim: (256, 1, 1),
            shared_mem_bytes: 0,
        };
        // SAFETY: argument lists match each kernel's signature; tiles past m, n or kw load
        // zeros and stores are bounds-checked; kw is a multiple of 8, so the tensor-core
        // kernel's vector loads stay inside rows.
        unsafe { l.launch(cfg) }.map_err(cuda(name))?;
        Ok(c)
    }

    /// [`GpuBinaryGemm::gemm_device`] with the result copied back.
    pub fn gemm(
        &self,
        a: &PackedDevice,
        b: &PackedDevice,
        kernel: BinaryKernel,
    ) -> Result<Vec<i32>, GpuError> {
        let c = self.gemm_device(a, b, kernel)?;
        let mut out = self.gpu.stream.clone_dtoh(&c).map_err(cuda("download"))?;
        out.truncate(a.rows * b.rows);
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use strata_data::rng::Rng;

    /// The identity the tensor-core kernel relies on, on the device layout (u32 words, padding
    /// bits 0): `Σ a_k b_k = K - 2(popc a + popc b) + 4 popc(a AND b)`, and the XOR form.
    #[test]
    fn and_and_xor_forms_equal_the_plus_minus_one_dot() {
        let mut r = Rng::new(0x5eed);
        for k in [1usize, 31, 32, 33, 255, 256, 257, 1000] {
            for _ in 0..20 {
                let a: Vec<f32> = (0..k)
                    .map(|_| if r.below(2) == 1 { 1.0 } else { -1.0 })
                    .collect();
                let b: Vec<f32> = (0..k)
                    .map(|_| if r.below(2) == 1 { 1.0 } else { -1.0 })
                    .collect();
                let pack = |v: &[f32]| -> Vec<u32> {
                    let mut w = vec![0u32; device_words(k)];
                    for (i, &x) in v.iter().enumerate() {
                        if x >= 0.0 {
                            w[i / 32] |= 1 << (i % 32);
                        }
                    }
                    w
                };
                let (pa, pb) = (pack(&a), pack(&b));
                assert_eq!(pa.len() % 8, 0, "whole 256-bit steps");
                let popc = |w: &[u32]| w.iter().map(|x| x.count_ones() as i64).sum::<i64>();
                let and: i64 = pa
                    .iter()
                    .zip(&pb)
                    .map(|(x, y)| (x & y).count_ones() as i64)
                    .sum();
                let xor: i64 = pa
                    .iter()
                    .zip(&pb)
                    .map(|(x, y)| (x ^ y).count_ones() as i64)
                    .sum();
                let naive: i64 = a.iter().zip(&b).map(|(x, y)| (x * y) as i64).sum();
                let k = k as i64;
                assert_eq!(k - 2 * (popc(&pa) + popc(&pb)) + 4 * and, naive);
                assert_eq!(k - 2 * xor, naive);
            }
        }
    }

    /// CPU-packed u64 words read as little-endian u32 pairs are the device layout.
    #[test]
    fn cpu_words_split_into_the_device_layout() {
        let mut r = Rng::new(9);
        let k = 197;
        let v: Vec<f32> = (0..k).map(|_| r.normal() as f32).collect();
        let m = BitMatrix::pack(&v, 1, k);
        for (i, &x) in v.iter().enumerate() {
            let word = m.bits[i / 64];
            let half = if (i % 64) < 32 {
                word as u32
            } else {
                (word >> 32) as u32
            };
            assert_eq!((half >> (i % 32)) & 1 == 1, x >= 0.0, "bit {i}");
        }
    }
}
