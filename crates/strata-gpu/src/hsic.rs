//! Linear HSIC of all layer pairs on the GPU: the [`HsicBackend`] the CPU path also implements.
//!
//! The same algebra as strata-sim's `Prepared`, step for step, so the two paths agree to f32
//! rounding: each layer is centered (column means in f64), divided by its RMS (so f32 products
//! neither overflow nor underflow), then kept either as features (`p < n`: HSIC from
//! `‖XᵀY‖²_F`, `p² n` work) or as its `n x n` Gram matrix. Every product is one cuBLAS SGEMM
//! and every product is reduced to its scalar on the device in f64, so only scalars and
//! per-example vectors come back to the host. The estimate itself is
//! [`strata_sim::hsic_estimate`], shared with the CPU.

use crate::context::sgemm;
use crate::{supports, Gpu, GpuError, Workload};
use cudarc::cublas::sys::cublasOperation_t as Op;
use cudarc::driver::{CudaFunction, CudaSlice, LaunchConfig, PushKernelArg};
use ndarray::Array2;
use std::sync::Arc;
use strata_sim::{
    check_layer, hsic_estimate, Estimator, HsicBackend, Kernel, LayerTerms, PairHsic, Progress,
    SimError,
};

const BLOCK: u32 = 256;

/// The GPU as an [`HsicBackend`] (linear kernel; the RBF kernel stays on the CPU).
#[derive(Clone, Debug)]
pub struct GpuHsic {
    /// The device every layer is uploaded to.
    pub gpu: Arc<Gpu>,
}

impl GpuHsic {
    /// HSIC on `gpu`. Cheap: layers are uploaded per call, so one backend serves any number
    /// of comparisons.
    pub fn new(gpu: Arc<Gpu>) -> Self {
        GpuHsic { gpu }
    }
}

/// One layer on the device, ready for every pair it enters.
struct DeviceLayer {
    n: usize,
    p: usize,
    /// Centered, scaled features (row-major `n x p`).
    x: CudaSlice<f32>,
    /// `X Xᵀ` (`n x n`; for the unbiased estimator with a zero diagonal) when `p >= n`.
    gram: Option<CudaSlice<f32>>,
    /// Squared row norms (the features form of the unbiased estimator).
    diag: Vec<f64>,
    r: Vec<f64>,
    s: f64,
    scale2: f64,
}

impl DeviceLayer {
    fn terms(&self) -> LayerTerms<'_> {
        LayerTerms {
            scale2: self.scale2,
            r: &self.r,
            s: self.s,
        }
    }
}

fn err(e: GpuError) -> SimError {
    SimError::Backend(e.to_string())
}

fn cuda<E: std::fmt::Debug>(what: &'static str) -> impl Fn(E) -> SimError {
    move |e| err(GpuError::cuda(what, e))
}

fn grid_for(len: usize) -> u32 {
    // Enough blocks to fill any current GPU; grid-stride loops cover the rest.
    (len.div_ceil(BLOCK as usize)).clamp(1, 4096) as u32
}

fn cfg(grid: (u32, u32, u32)) -> LaunchConfig {
    LaunchConfig {
        grid_dim: grid,
        block_dim: (BLOCK, 1, 1),
        shared_mem_bytes: 0,
    }
}

impl GpuHsic {
    fn f(&self, name: &str) -> Result<CudaFunction, SimError> {
        self.gpu.gram_fn(name).map_err(err)
    }

    /// Column sums (f64) of a row-major `n x p` device matrix.
    fn column_sums(
        &self,
        x: &CudaSlice<f32>,
        n: usize,
        p: usize,
    ) -> Result<CudaSlice<f64>, SimError> {
        let s = &self.gpu.stream;
        let mut sums = s.alloc_zeros::<f64>(p).map_err(cuda("alloc"))?;
        let chunk = 256i32;
        let f = self.f("column_sums")?;
        let (ni, pi) = (n as i32, p as i32);
        let grid = (
            p.div_ceil(BLOCK as usize) as u32,
            n.div_ceil(chunk as usize) as u32,
            1,
        );
        let mut l = s.launch_builder(&f);
        l.arg(x).arg(&ni).arg(&pi).arg(&chunk).arg(&mut sums);
        // SAFETY: argument types match the kernel's signature; every index is bounds-checked.
        unsafe { l.launch(cfg(grid)) }.map_err(cuda("column_sums"))?;
        Ok(sums)
    }

    fn dot(&self, a: &CudaSlice<f32>, b: &CudaSlice<f32>, len: usize) -> Result<f64, SimError> {
        let s = &self.gpu.stream;
        let mut out = s.alloc_zeros::<f64>(1).map_err(cuda("alloc"))?;
        let f = self.f("dot")?;
        let len_i = len as i64;
        let mut l = s.launch_builder(&f);
        l.arg(a).arg(b).arg(&len_i).arg(&mut out);
        unsafe { l.launch(cfg((grid_for(len), 1, 1))) }.map_err(cuda("dot"))?;
        Ok(s.clone_dtoh(&out).map_err(cuda("copy"))?[0])
    }

    /// Upload, center, scale and prepare every layer, in order. The uploads run on the copy
    /// stream from a second host thread, one or two layers ahead, through pinned staging
    /// buffers ([`Gpu::upload_with`]), so layer `i + 1` crosses the bus (and the host stages
    /// it) while the GPU centers and multiplies layer `i`; each host array is freed once its
    /// copy is queued. Layers are checked on the host first, so a bad one is refused before
    /// anything is uploaded.
    fn prepare_all(
        &self,
        layers: Vec<Array2<f32>>,
        estimator: Estimator,
    ) -> Result<Vec<DeviceLayer>, SimError> {
        for x in &layers {
            check_layer(x.view(), estimator)?;
        }
        let gpu = &self.gpu;
        type Uploaded = Result<(usize, usize, CudaSlice<f32>), SimError>;
        std::thread::scope(|scope| {
            let (tx, rx) = std::sync::mpsc::sync_channel::<Uploaded>(1);
            scope.spawn(move || {
                for x in layers {
                    let (n, p) = x.dim();
                    let x = x.as_standard_layout();
                    let host = x.as_slice().expect("standard layout");
                    let up = gpu.upload(host).map(|d| (n, p, d)).map_err(err);
                    let failed = up.is_err();
                    // A closed channel means the consumer stopped on an error: stop too.
                    if tx.send(up).is_err() || failed {
                        break;
                    }
                }
            });
            // Dropping `rx` on an early error (collect stops at the first) ends the producer.
            rx.into_iter()
                .map(|up| up.and_then(|(n, p, dx)| self.prepare(n, p, dx, estimator)))
                .collect()
        })
    }

    /// Center, scale and put one uploaded `n x p` layer in the form its pairs need.
    fn prepare(
        &self,
        n: usize,
        p: usize,
        mut dx: CudaSlice<f32>,
        estimator: Estimator,
    ) -> Result<DeviceLayer, SimError> {
        let s = &self.gpu.stream;
        let len = n * p;
        let sums = self.column_sums(&dx, n, p)?;
        let mut sumsq = s.alloc_zeros::<f64>(1).map_err(cuda("alloc"))?;
        {
            let f = self.f("center_columns")?;
            let (len_i, pi, ni) = (len as i64, p as i32, n as i32);
            let mut l = s.launch_builder(&f);
            l.arg(&mut dx)
                .arg(&len_i)
                .arg(&pi)
                .arg(&ni)
                .arg(&sums)
                .arg(&mut sumsq);
            unsafe { l.launch(cfg((grid_for(len), 1, 1))) }.map_err(cuda("center_columns"))?;
        }
        let ms = s.clone_dtoh(&sumsq).map_err(cuda("copy"))?[0] / len as f64;
        let rms = ms.sqrt();
        let mut scale2 = 1.0;
        if rms > 0.0 && rms.is_finite() {
            let f = self.f("scale")?;
            let len_i = len as i64;
            let mut l = s.launch_builder(&f);
            l.arg(&mut dx).arg(&len_i).arg(&rms);
            unsafe { l.launch(cfg((grid_for(len), 1, 1))) }.map_err(cuda("scale"))?;
            scale2 = ms;
        }
        let mut layer = DeviceLayer {
            n,
            p,
            x: dx,
            gram: None,
            diag: Vec::new(),
            r: Vec::new(),
            s: 0.0,
            scale2,
        };
        if p < n {
            if estimator == Estimator::Debiased {
                let mut diag = s.alloc_zeros::<f64>(n).map_err(cuda("alloc"))?;
                let pi = p as i32;
                let f = self.f("row_sq_norms")?;
                let mut l = s.launch_builder(&f);
                l.arg(&layer.x).arg(&pi).arg(&mut diag);
                unsafe { l.launch(cfg((n as u32, 1, 1))) }.map_err(cuda("row_sq_norms"))?;
                // r = X (Xᵀ1) - diag, as on the CPU (Xᵀ1 is zero only up to rounding).
                let c = self.column_sums(&layer.x, n, p)?;
                let mut r = s.alloc_zeros::<f64>(n).map_err(cuda("alloc"))?;
                let f = self.f("row_dot_minus")?;
                let mut l = s.launch_builder(&f);
                l.arg(&layer.x).arg(&pi).arg(&c).arg(&diag).arg(&mut r);
                unsafe { l.launch(cfg((n as u32, 1, 1))) }.map_err(cuda("row_dot_minus"))?;
                layer.diag = s.clone_dtoh(&diag).map_err(cuda("copy"))?;
                layer.r = s.clone_dtoh(&r).map_err(cuda("copy"))?;
            }
        } else {
            let mut k = s.alloc_zeros::<f32>(n * n).map_err(cuda("alloc"))?;
            // Row-major X is column-major Xᵀ (p x n); K = (Xᵀ)ᵀ Xᵀ.
            sgemm(
                &self.gpu.blas,
                Op::CUBLAS_OP_T,
                Op::CUBLAS_OP_N,
                n,
                n,
                p,
                &layer.x,
                p,
                &layer.x,
                p,
                &mut k,
                n,
            )
            .map_err(err)?;
            if estimator == Estimator::Debiased {
                let mut r = s.alloc_zeros::<f64>(n).map_err(cuda("alloc"))?;
                let ni = n as i32;
                let f = self.f("zero_diag_row_sums")?;
                let mut l = s.launch_builder(&f);
                l.arg(&mut k).arg(&ni).arg(&mut r);
                unsafe { l.launch(cfg((n as u32, 1, 1))) }.map_err(cuda("zero_diag_row_sums"))?;
                layer.r = s.clone_dtoh(&r).map_err(cuda("copy"))?;
            }
            layer.gram = Some(k);
        }
        layer.s = layer.r.iter().sum();
        Ok(layer)
    }

    /// `tr(K̃L̃)` (debiased) or `tr(KcLc)` (biased) of two prepared layers.
    fn trace(
        &self,
        a: &DeviceLayer,
        b: &DeviceLayer,
        estimator: Estimator,
    ) -> Result<f64, SimError> {
        let s = &self.gpu.stream;
        let n = a.n;
        match (&a.gram, &b.gram) {
            (None, None) => {
                let mut c = s.alloc_zeros::<f32>(a.p * b.p).map_err(cuda("alloc"))?;
                // Xaᵀ Xb (pa x pb) from the column-major Xaᵀ (pa x n) and Xbᵀ (pb x n).
                sgemm(
                    &self.gpu.blas,
                    Op::CUBLAS_OP_N,
                    Op::CUBLAS_OP_T,
                    a.p,
                    b.p,
                    n,
                    &a.x,
                    a.p,
                    &b.x,
                    b.p,
                    &mut c,
                    a.p,
                )
                .map_err(err)?;
                let core = self.dot(&c, &c, a.p * b.p)?;
                Ok(match estimator {
                    Estimator::Biased => core,
                    Estimator::Debiased => {
                        core - a.diag.iter().zip(&b.diag).map(|(u, v)| u * v).sum::<f64>()
                    }
                })
            }
            (Some(k), None) => self.gram_features(k, b),
            (None, Some(k)) => self.gram_features(k, a),
            (Some(ka), Some(kb)) => self.dot(ka, kb, n * n),
        }
    }

    /// `⟨K, X Xᵀ⟩ = ⟨K X, X⟩`: `n² p` work instead of forming the second Gram matrix.
    fn gram_features(&self, k: &CudaSlice<f32>, f: &DeviceLayer) -> Result<f64, SimError> {
        let (n, p) = (f.n, f.p);
        let mut kx = self
            .gpu
            .stream
            .alloc_zeros::<f32>(n * p)
            .map_err(cuda("alloc"))?;
        // Column-major (K X)ᵀ = Xᵀ K (K symmetric): p x n, the row-major n x p K X.
        sgemm(
            &self.gpu.blas,
            Op::CUBLAS_OP_N,
            Op::CUBLAS_OP_N,
            p,
            n,
            n,
            &f.x,
            p,
            k,
            n,
            &mut kx,
            p,
        )
        .map_err(err)?;
        self.dot(&kx, &f.x, n * p)
    }

    /// Device bytes the layers need at once, to refuse early with a useful message.
    fn bytes_needed(layers: &[&Array2<f32>]) -> usize {
        layers
            .iter()
            .map(|x| {
                let (n, p) = x.dim();
                n * p * 4 + if p >= n { n * n * 4 } else { 0 } + n * 24
            })
            .sum()
    }
}

impl HsicBackend for GpuHsic {
    fn name(&self) -> String {
        self.gpu.label()
    }

    fn hsic_all(
        &self,
        a: Vec<Array2<f32>>,
        b: Option<Vec<Array2<f32>>>,
        kernel: Kernel,
        estimator: Estimator,
        progress: Progress,
    ) -> Result<PairHsic, SimError> {
        let workload = match kernel {
            Kernel::Linear => Workload::LinearHsic,
            Kernel::Rbf { .. } => Workload::RbfHsic,
        };
        supports(&workload).map_err(|e| SimError::Backend(e.to_string()))?;
        let all: Vec<&Array2<f32>> = a.iter().chain(b.iter().flatten()).collect();
        let need = GpuHsic::bytes_needed(&all);
        let free = self.gpu.free_memory().map_err(err)?;
        if need > free {
            return Err(SimError::Backend(format!(
                "the layers need about {} MiB of GPU memory and {} MiB are free; use minibatch \
                 CKA (--batch-size) or fewer layers",
                need >> 20,
                free >> 20
            )));
        }
        let same = b.is_none();
        let na = a.len();
        // One upload pipeline for A's layers then B's, so B's first layer crosses the bus
        // while A's last is prepared.
        let mut layers = a;
        layers.extend(b.into_iter().flatten());
        let mut pa = self.prepare_all(layers, estimator)?;
        let pb_owned = (!same).then(|| pa.split_off(na));
        let pb = pb_owned.as_ref().unwrap_or(&pa);
        let (na, nb) = (pa.len(), pb.len());
        let n = pa.first().map_or(0, |l| l.n);
        let self_hsic = |l: &DeviceLayer| -> Result<f64, SimError> {
            let t = self.trace(l, l, estimator)?;
            Ok(hsic_estimate(estimator, n, t, l.terms(), l.terms()))
        };
        PairHsic::fill(
            (na, nb),
            same,
            progress,
            |i| self_hsic(&pa[i]),
            |j| self_hsic(&pb[j]),
            |i, j| {
                let t = self.trace(&pa[i], &pb[j], estimator)?;
                Ok(hsic_estimate(estimator, n, t, pa[i].terms(), pb[j].terms()))
            },
            vec![None; na],
            vec![None; nb],
        )
    }
}
