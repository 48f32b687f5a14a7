//! A trained MLP on the GPU with its weights resident on the device: `strata eval --device
//! cuda` (both engines) and `strata collect --device cuda`.
//!
//! The two engines of the CPU, step for step:
//! * **float**: each block is a cuBLAS SGEMM of the activations and the block's quantized
//!   weights (strata-nn's own quantizer), then batch norm and the activation in one kernel
//!   (`mlp.cu`). With 1-bit weights and activations every product is an exact integer, so the
//!   outputs equal the CPU's bit for bit; a float network's equal them to f32 rounding.
//! * **packed** (`w1a1`): the first layer is an SGEMM of 8-bit pixels and ±1 weights (exact
//!   integers); then batch norm, sign and bit packing are one kernel, and every binary layer is
//!   [`GpuBinaryGemm`]'s kernel on words that never leave the device. Only the logits come back.
//!
//! Batches are uploaded on the copy stream one ahead, so batch `i + 1` crosses the bus while
//! batch `i` computes.

use crate::binary::{device_words, BinaryKernel, GpuBinaryGemm, PackedDevice};
use crate::{supports, Gpu, GpuError, Workload};
use cudarc::cublas::{sys::cublasOperation_t as Op, CudaBlas};
use cudarc::driver::{CudaSlice, DeviceRepr, LaunchArgs, LaunchConfig, PushKernelArg};
use ndarray::{s, Array2, ArrayView2};
use std::ops::Range;
use std::sync::Arc;
use strata_nn::binary_gemm::BitMatrix;
use strata_nn::net::Net;
use strata_nn::precision::{quantize_weights, Precision};

const BLOCK: u32 = 256;

/// Which engine runs the network on the GPU.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MlpEngine {
    /// The float engine (any precision; quantizers applied as in training's forward pass).
    Float,
    /// Bit-packed `w1a1` inference with this binary kernel.
    Packed(BinaryKernel),
}

impl MlpEngine {
    /// `float`, `packed (mma-b1-and)`.
    pub fn name(self) -> String {
        match self {
            MlpEngine::Float => "float".into(),
            MlpEngine::Packed(k) => format!("packed ({})", k.name()),
        }
    }
}

/// What [`GpuMlp::run`] brings back per layer besides the logits.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Record {
    /// Only the logits.
    Logits,
    /// Float engine: each block's batch-norm output, the input of its nonlinearity
    /// (`Forward::pre` on the CPU; the logits for the last block).
    Pre,
    /// Float engine: each block's activation (`Forward::post`; the logits for the last block).
    Post,
    /// Packed engine: each layer's integer sums before batch norm (`PackedMlp::run`'s first
    /// value).
    Sums,
}

/// One batch's results.
pub struct MlpBatch {
    /// `rows x classes`.
    pub logits: Array2<f32>,
    /// Per block, as [`Record::Pre`] or [`Record::Post`] asked (empty otherwise).
    pub layers: Vec<Array2<f32>>,
    /// Per layer, as [`Record::Sums`] asked (empty otherwise).
    pub sums: Vec<Array2<i32>>,
}

/// Batch norm in its evaluation form, per unit.
struct Norm {
    mean: CudaSlice<f32>,
    scale: CudaSlice<f32>,
    beta: CudaSlice<f32>,
}

enum Weights {
    /// `in x out` row-major: quantized weights (float engine), or the first layer's ±1 weights
    /// (packed engine).
    Dense(CudaSlice<f32>),
    /// One row of bits per output unit (packed engine, binary layers).
    Bits(PackedDevice),
}

struct Layer {
    inp: usize,
    out: usize,
    w: Weights,
    norm: Norm,
}

/// A trained MLP on one GPU.
pub struct GpuMlp {
    /// The device the weights live on.
    pub gpu: Arc<Gpu>,
    /// The engine it was built for (each keeps its own weight layout on the device).
    pub engine: MlpEngine,
    /// Its own cuBLAS handle in the default math mode: exact integer products need plain f32
    /// SGEMM, whatever TF32 setting the shared handle has.
    blas: CudaBlas,
    precision: Precision,
    layers: Vec<Layer>,
}

/// Results still on the device, kept alive until downloaded.
struct Pending {
    rows: usize,
    logits: CudaSlice<f32>,
    layers: Vec<(CudaSlice<f32>, usize)>,
    /// The logits are also the last block's recorded layer.
    logits_layer: bool,
    sums: Vec<(Sums, usize)>,
}

impl Pending {
    /// The packed engine's results: logits, and the sums if they were kept.
    fn packed(rows: usize, logits: CudaSlice<f32>, sums: Vec<(Sums, usize)>) -> Self {
        Pending {
            rows,
            logits,
            layers: Vec::new(),
            logits_layer: false,
            sums,
        }
    }
}

enum Sums {
    F32(CudaSlice<f32>),
    I32(CudaSlice<i32>),
}

fn cuda<E: std::fmt::Debug>(what: &'static str) -> impl Fn(E) -> GpuError {
    move |e| GpuError::cuda(what, e)
}

/// The leading arguments of every batch-norm kernel: the sums `z`, their `count` (values or
/// rows, as the kernel reads it), the width `out` and the layer's norm parameters.
fn norm_args<'a, 'b, T, N: DeviceRepr>(
    b: &'b mut LaunchArgs<'a>,
    z: &'a CudaSlice<T>,
    count: &'a N,
    out: &'a i32,
    norm: &'a Norm,
) -> &'b mut LaunchArgs<'a> {
    b.arg(z)
        .arg(count)
        .arg(out)
        .arg(&norm.mean)
        .arg(&norm.scale)
        .arg(&norm.beta)
}

fn nn(e: impl std::fmt::Display) -> GpuError {
    GpuError::Unsupported(format!("reading the network: {e}"))
}

/// A grid-stride launch over `len` elements.
fn cfg(len: usize) -> LaunchConfig {
    LaunchConfig {
        grid_dim: (len.div_ceil(BLOCK as usize).clamp(1, 8192) as u32, 1, 1),
        block_dim: (BLOCK, 1, 1),
        shared_mem_bytes: 0,
    }
}

/// The activation mode and constants of mlp.cu's `activation` for a precision's hidden layers:
/// `steps` and `unit` computed as strata-nn's quantizer computes them, so both round alike.
fn activation(precision: Precision) -> (i32, f32, f32) {
    match precision.activation_bits() {
        None => (1, 0.0, 0.0),
        Some(1) => (2, 0.0, 0.0),
        Some(k) => {
            let steps = ((1u64 << k) - 1) as f64;
            let unit = 1.0 / steps;
            (3, (1.0 / unit) as f32, unit as f32)
        }
    }
}

impl GpuMlp {
    /// Upload a trained MLP's weights and batch-norm parameters for `engine`.
    pub fn new(gpu: Arc<Gpu>, net: &Net, engine: MlpEngine) -> Result<Self, GpuError> {
        supports(&Workload::network(net))?;
        let precision = net.config.precision;
        if matches!(engine, MlpEngine::Packed(_)) && precision != Precision::W1A1 {
            return Err(GpuError::Unsupported(format!(
                "packed inference needs a w1a1 network, this one is {precision}"
            )));
        }
        let s = &gpu.stream;
        let bin = GpuBinaryGemm::new(gpu.clone());
        let up = |v: &[f32]| s.clone_htod(v).map_err(cuda("upload"));
        let mut layers = Vec::new();
        for (i, b) in net.blocks.iter().enumerate() {
            let w = match engine {
                MlpEngine::Float => {
                    quantize_weights(b.w.as_tensor(), precision.weight_bits()).map_err(nn)?
                }
                MlpEngine::Packed(_) => b.w.as_tensor().clone(),
            }
            .to_vec2::<f32>()
            .map_err(nn)?;
            let (inp, out) = (w.len(), w.first().map_or(0, |r| r.len()));
            let weights = match engine {
                MlpEngine::Float => Weights::Dense(up(&w.concat())?),
                // The packed engine's first layer reads 8-bit pixels with ±1 weights.
                MlpEngine::Packed(_) if i == 0 => {
                    let signs: Vec<f32> = w
                        .iter()
                        .flatten()
                        .map(|&v| if v >= 0.0 { 1.0 } else { -1.0 })
                        .collect();
                    Weights::Dense(up(&signs)?)
                }
                MlpEngine::Packed(_) => {
                    // Rows of the packed matrix are output units: pack Wᵀ.
                    let wt: Vec<f32> = (0..out).flat_map(|j| w.iter().map(move |r| r[j])).collect();
                    Weights::Bits(bin.upload(&BitMatrix::pack(&wt, out, inp))?)
                }
            };
            let (mean, scale, beta) = b.bn.eval_params().map_err(nn)?;
            let host = |t: candle_core::Tensor| t.to_vec1::<f32>().map_err(nn);
            layers.push(Layer {
                inp,
                out,
                w: weights,
                norm: Norm {
                    mean: up(&host(mean)?)?,
                    scale: up(&host(scale)?)?,
                    beta: up(&host(beta)?)?,
                },
            });
        }
        if layers.is_empty() {
            return Err(GpuError::Unsupported("the network has no layers".into()));
        }
        let blas = CudaBlas::new(gpu.stream.clone()).map_err(cuda("cuBLAS"))?;
        Ok(GpuMlp {
            gpu,
            engine,
            blas,
            precision,
            layers,
        })
    }

    /// Features each example must have.
    pub fn inputs(&self) -> usize {
        self.layers[0].inp
    }

    /// Run `x` (examples as rows, pixels in [0, 1]) through the network `batch` rows at a
    /// time, handing each batch's rows and results to `each` in order.
    pub fn run<E: From<GpuError>>(
        &self,
        x: ArrayView2<f32>,
        batch: usize,
        record: Record,
        mut each: impl FnMut(Range<usize>, MlpBatch) -> Result<(), E>,
    ) -> Result<(), E> {
        let ok = match (self.engine, record) {
            (_, Record::Logits) => true,
            (MlpEngine::Float, r) => r != Record::Sums,
            (MlpEngine::Packed(_), r) => r == Record::Sums,
        };
        if !ok {
            return Err(GpuError::Unsupported(format!(
                "the {} engine cannot record {record:?}",
                self.engine.name()
            ))
            .into());
        }
        if x.ncols() != self.inputs() {
            return Err(GpuError::Unsupported(format!(
                "examples have {} features, the network reads {}",
                x.ncols(),
                self.inputs()
            ))
            .into());
        }
        let batch = batch.max(1);
        let ranges: Vec<Range<usize>> = (0..x.nrows())
            .step_by(batch)
            .map(|r| r..(r + batch).min(x.nrows()))
            .collect();
        let mut next = match ranges.first() {
            Some(r) => Some(self.upload(x, r.clone())?),
            None => None,
        };
        for (i, r) in ranges.iter().enumerate() {
            let dx = next.take().expect("each batch is uploaded before its turn");
            let pending = self.launch(&dx, r.len(), record)?;
            // Queue the next upload while this batch computes; the download below waits.
            if let Some(r) = ranges.get(i + 1) {
                next = Some(self.upload(x, r.clone())?);
            }
            each(r.clone(), self.download(pending)?)?;
        }
        Ok(())
    }

    /// Predicted classes (argmax of the logits) of every row of `x`.
    pub fn predict(&self, x: ArrayView2<f32>, batch: usize) -> Result<Vec<usize>, GpuError> {
        let mut out = Vec::with_capacity(x.nrows());
        self.run(x, batch, Record::Logits, |_, b: MlpBatch| {
            out.extend(
                b.logits
                    .rows()
                    .into_iter()
                    .map(|r| strata_nn::train::argmax(r.as_slice().expect("fresh array"))),
            );
            Ok::<_, GpuError>(())
        })?;
        Ok(out)
    }

    /// The rows the network reads, on the copy stream: pixels as they are (float) or as the
    /// 8-bit integers quantized networks read (`round(255 x)`, as strata-nn does).
    fn upload(&self, x: ArrayView2<f32>, rows: Range<usize>) -> Result<CudaSlice<f32>, GpuError> {
        let part = x.slice(s![rows, ..]);
        let float = self.precision == Precision::Float;
        let read = |v: f32| if float { v } else { (v * 255.0).round() };
        // Written straight into the pinned staging buffers.
        self.gpu
            .upload_with(part.len(), |at, out| fill_row_major(part, at, out, read))
    }

    /// Queue one batch's work; nothing waits here.
    fn launch(&self, x: &CudaSlice<f32>, rows: usize, record: Record) -> Result<Pending, GpuError> {
        match self.engine {
            MlpEngine::Float => self.launch_float(x, rows, record),
            MlpEngine::Packed(kernel) => self.launch_packed(x, rows, kernel, record),
        }
    }

    /// `Z (rows x out) = H W` for row-major `H (rows x in)` and `W (in x out)`: column-major
    /// `Zᵀ = Wᵀ Hᵀ`.
    fn dense(
        &self,
        h: &CudaSlice<f32>,
        rows: usize,
        l: &Layer,
        w: &CudaSlice<f32>,
    ) -> Result<CudaSlice<f32>, GpuError> {
        // SAFETY: SGEMM with beta = 0 writes every element before anything reads it.
        let mut z = unsafe { self.gpu.stream.alloc::<f32>((rows * l.out).max(1)) }
            .map_err(cuda("alloc"))?;
        crate::context::sgemm(
            &self.blas,
            Op::CUBLAS_OP_N,
            Op::CUBLAS_OP_N,
            l.out,
            rows,
            l.inp,
            w,
            l.out,
            h,
            l.inp,
            &mut z,
            l.out,
        )?;
        Ok(z)
    }

    /// A hidden block's batch norm then activation `mode`: `(y, a)`.
    fn bn_act(
        &self,
        z: &CudaSlice<f32>,
        rows: usize,
        l: &Layer,
        (mode, steps, unit): (i32, f32, f32),
    ) -> Result<(CudaSlice<f32>, CudaSlice<f32>), GpuError> {
        let s = &self.gpu.stream;
        let len = rows * l.out;
        // SAFETY: the kernel writes every element of both.
        let mut y = unsafe { s.alloc::<f32>(len.max(1)) }.map_err(cuda("alloc"))?;
        let mut a = unsafe { s.alloc::<f32>(len.max(1)) }.map_err(cuda("alloc"))?;
        let f = self.gpu.mlp_fn("bn_act")?;
        let (len_i, out_i) = (len as i64, l.out as i32);
        let mut b = s.launch_builder(&f);
        norm_args(&mut b, z, &len_i, &out_i, &l.norm)
            .arg(&mode)
            .arg(&steps)
            .arg(&unit)
            .arg(&mut y)
            .arg(&mut a);
        // SAFETY: argument types match the kernel; it touches only indices below `len`, and
        // every buffer holds `len` values (`out` per row for the norm parameters).
        unsafe { b.launch(cfg(len)) }.map_err(cuda("bn_act"))?;
        Ok((y, a))
    }

    /// The last block's batch norm alone: the logits, from f32 or integer sums.
    fn logits<T: cudarc::driver::DeviceRepr>(
        &self,
        kernel: &'static str,
        z: &CudaSlice<T>,
        rows: usize,
        l: &Layer,
    ) -> Result<CudaSlice<f32>, GpuError> {
        let s = &self.gpu.stream;
        let len = rows * l.out;
        // SAFETY: the kernel writes every element.
        let mut y = unsafe { s.alloc::<f32>(len.max(1)) }.map_err(cuda("alloc"))?;
        let f = self.gpu.mlp_fn(kernel)?;
        let (len_i, out_i) = (len as i64, l.out as i32);
        let mut b = s.launch_builder(&f);
        norm_args(&mut b, z, &len_i, &out_i, &l.norm).arg(&mut y);
        // SAFETY: as bn_act: indices below `len`, buffers of `len` values.
        unsafe { b.launch(cfg(len)) }.map_err(cuda(kernel))?;
        Ok(y)
    }

    fn launch_float(
        &self,
        x: &CudaSlice<f32>,
        rows: usize,
        record: Record,
    ) -> Result<Pending, GpuError> {
        let act = activation(self.precision);
        let last = self.layers.len() - 1;
        let mut kept: Vec<(CudaSlice<f32>, usize)> = Vec::new();
        // The previous block's activation, unless `kept` holds it (Record::Post).
        let mut h: Option<CudaSlice<f32>> = None;
        for (i, l) in self.layers.iter().enumerate() {
            let Weights::Dense(w) = &l.w else {
                unreachable!("the float engine holds dense weights")
            };
            let input = match (&h, kept.last()) {
                (Some(h), _) => h,
                (None, Some((a, _))) if i > 0 => a,
                _ => x,
            };
            let z = self.dense(input, rows, l, w)?;
            if i == last {
                return Ok(Pending {
                    rows,
                    logits: self.logits("bn_logits_f32", &z, rows, l)?,
                    layers: kept,
                    logits_layer: record != Record::Logits,
                    sums: Vec::new(),
                });
            }
            let (y, a) = self.bn_act(&z, rows, l, act)?;
            match record {
                Record::Pre => {
                    kept.push((y, l.out));
                    h = Some(a);
                }
                Record::Post => kept.push((a, l.out)),
                _ => h = Some(a),
            }
        }
        unreachable!("the loop returns at the last layer")
    }

    /// Batch norm, sign and packing of a layer's sums into activation bits for the next.
    fn sign_pack<T: cudarc::driver::DeviceRepr>(
        &self,
        kernel: &'static str,
        z: &CudaSlice<T>,
        rows: usize,
        l: &Layer,
    ) -> Result<PackedDevice, GpuError> {
        let s = &self.gpu.stream;
        let kw = device_words(l.out);
        // SAFETY: one thread writes each word, padding words included.
        let mut words = unsafe { s.alloc::<u32>((rows * kw).max(1)) }.map_err(cuda("alloc"))?;
        let f = self.gpu.mlp_fn(kernel)?;
        let (ri, oi, kwi) = (rows as i32, l.out as i32, kw as i32);
        let mut b = s.launch_builder(&f);
        norm_args(&mut b, z, &ri, &oi, &l.norm)
            .arg(&kwi)
            .arg(&mut words);
        // SAFETY: reads `rows x out` sums, writes `rows x kw` words, one thread per word.
        unsafe { b.launch(cfg(rows * kw)) }.map_err(cuda(kernel))?;
        let popcounts = GpuBinaryGemm::new(self.gpu.clone()).popcounts(&words, rows, kw)?;
        Ok(PackedDevice {
            rows,
            k: l.out,
            kw,
            words,
            popcounts,
        })
    }

    fn launch_packed(
        &self,
        x: &CudaSlice<f32>,
        rows: usize,
        kernel: BinaryKernel,
        record: Record,
    ) -> Result<Pending, GpuError> {
        let bin = GpuBinaryGemm::new(self.gpu.clone());
        let keep = record == Record::Sums;
        let mut sums = Vec::new();
        let first = &self.layers[0];
        let Weights::Dense(w0) = &first.w else {
            unreachable!("the packed engine's first layer is dense")
        };
        let z0 = self.dense(x, rows, first, w0)?;
        if self.layers.len() == 1 {
            let y = self.logits("bn_logits_f32", &z0, rows, first)?;
            if keep {
                sums.push((Sums::F32(z0), first.out));
            }
            return Ok(Pending::packed(rows, y, sums));
        }
        let mut acts = self.sign_pack("bn_sign_pack_f32", &z0, rows, first)?;
        if keep {
            sums.push((Sums::F32(z0), first.out));
        }
        let last = self.layers.len() - 1;
        for (i, l) in self.layers.iter().enumerate().skip(1) {
            let Weights::Bits(wb) = &l.w else {
                unreachable!("the packed engine's hidden layers are bits")
            };
            let c = bin.gemm_device(&acts, wb, kernel)?;
            if i < last {
                acts = self.sign_pack("bn_sign_pack_i32", &c, rows, l)?;
                if keep {
                    sums.push((Sums::I32(c), l.out));
                }
                continue;
            }
            let y = self.logits("bn_logits_i32", &c, rows, l)?;
            if keep {
                sums.push((Sums::I32(c), l.out));
            }
            return Ok(Pending::packed(rows, y, sums));
        }
        unreachable!("the loop returns at the last layer")
    }

    /// Copy one batch's results back (this waits for its work).
    fn download(&self, p: Pending) -> Result<MlpBatch, GpuError> {
        let s = &self.gpu.stream;
        let matrix = |v: Vec<f32>, cols: usize| -> Array2<f32> {
            let mut v = v;
            v.truncate(p.rows * cols);
            Array2::from_shape_vec((p.rows, cols), v).expect("rows x cols values")
        };
        let classes = self.layers.last().expect("at least one layer").out;
        let logits = matrix(s.clone_dtoh(&p.logits).map_err(cuda("download"))?, classes);
        let mut layers = Vec::new();
        for (d, cols) in &p.layers {
            layers.push(matrix(s.clone_dtoh(d).map_err(cuda("download"))?, *cols));
        }
        if p.logits_layer {
            layers.push(logits.clone());
        }
        let mut sums = Vec::new();
        for (d, cols) in &p.sums {
            let mut v: Vec<i32> = match d {
                // The first layer's exact integer sums, held in f32 (as the CPU engine).
                Sums::F32(d) => s
                    .clone_dtoh(d)
                    .map_err(cuda("download"))?
                    .into_iter()
                    .map(|x| x as i32)
                    .collect(),
                Sums::I32(d) => s.clone_dtoh(d).map_err(cuda("download"))?,
            };
            v.truncate(p.rows * cols);
            sums.push(Array2::from_shape_vec((p.rows, *cols), v).expect("rows x cols values"));
        }
        Ok(MlpBatch {
            logits,
            layers,
            sums,
        })
    }
}

/// Values `at .. at + out.len()` of `x` in row-major order, mapped by `read`, whatever `x`'s
/// memory layout: a row segment at a time, since a staging chunk may start and end mid-row.
fn fill_row_major(x: ArrayView2<f32>, at: usize, out: &mut [f32], read: impl Fn(f32) -> f32) {
    let cols = x.ncols();
    let (mut r, mut c, mut done) = (at / cols.max(1), at % cols.max(1), 0);
    while done < out.len() {
        let take = (cols - c).min(out.len() - done);
        let src = x.slice(s![r, c..c + take]);
        for (o, &v) in out[done..done + take].iter_mut().zip(src.iter()) {
            *o = read(v);
        }
        (r, c, done) = (r + 1, 0, done + take);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use strata_data::rng::Rng;

    /// Every split of a matrix into chunks, on row-major, column-major and strided views,
    /// gives the values in row-major order.
    #[test]
    fn fill_row_major_matches_iteration_order_for_every_layout_and_chunking() {
        let mut rng = Rng::new(5);
        let base = rng.normal_matrix(7, 11);
        let fortran = base.t().as_standard_layout().into_owned();
        let views = [
            base.view(),
            fortran.t(),
            base.slice(s![1..6;2, 2..9]),
            base.slice(s![.., 3..4]),
        ];
        for x in views {
            let want: Vec<f32> = x.iter().map(|v| v * 2.0).collect();
            for chunk in [1, 2, 3, 5, x.ncols(), x.ncols() + 1, 13, want.len()] {
                let mut got = vec![f32::NAN; want.len()];
                for (q, out) in got.chunks_mut(chunk).enumerate() {
                    fill_row_major(x, q * chunk, out, |v| v * 2.0);
                }
                assert_eq!(got, want, "{:?} in chunks of {chunk}", x.dim());
            }
        }
    }
}
