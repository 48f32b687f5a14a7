//! CKA from HSIC: one pair, all pairs of two models, and minibatch accumulation.

use crate::{Estimator, Kernel, Prepared, SimError};
use ndarray::Array2;
use serde::Serialize;

/// CKA between every layer of model A (rows) and every layer of model B (columns).
#[derive(Clone, Debug, Serialize)]
pub struct CkaMatrix {
    /// `values[i][j]` = CKA(A_i, B_j); `None` where it is undefined (see `notes`).
    pub values: Vec<Vec<Option<f64>>>,
    /// HSIC(A_i, B_j) as estimated (averaged over batches in minibatch mode).
    pub hsic: Vec<Vec<f64>>,
    /// HSIC(A_i, A_i).
    pub self_a: Vec<f64>,
    /// HSIC(B_j, B_j).
    pub self_b: Vec<f64>,
    /// Examples the estimate is based on.
    pub n: usize,
    /// Minibatches accumulated (1 for a full-data estimate).
    pub batches: usize,
    /// Why some values are undefined, one line per layer.
    pub notes: Vec<String>,
    /// For each layer of A, why its CKA is undefined (`None`: defined).
    pub undefined_a: Vec<Option<String>>,
    /// For each layer of B, why its CKA is undefined (`None`: defined).
    pub undefined_b: Vec<Option<String>>,
}

impl CkaMatrix {
    fn from_hsic(
        hsic: Vec<Vec<f64>>,
        self_a: Vec<f64>,
        self_b: Vec<f64>,
        bad_a: &[Option<String>],
        bad_b: &[Option<String>],
        n: usize,
        batches: usize,
    ) -> Self {
        let reason = |h: f64, why: &Option<String>| -> Option<String> {
            match why {
                Some(w) => Some(w.clone()),
                None if h > 0.0 && h.is_finite() => None,
                None => Some(format!(
                    "self-HSIC is {h:.3e} (a constant representation, or too few examples for \
                     the debiased estimator), so its CKA is undefined"
                )),
            }
        };
        let undefined_a: Vec<Option<String>> = self_a
            .iter()
            .zip(bad_a)
            .map(|(&h, w)| reason(h, w))
            .collect();
        let undefined_b: Vec<Option<String>> = self_b
            .iter()
            .zip(bad_b)
            .map(|(&h, w)| reason(h, w))
            .collect();
        let mut notes = Vec::new();
        for (side, list) in [("A", &undefined_a), ("B", &undefined_b)] {
            for (i, r) in list.iter().enumerate() {
                if let Some(r) = r {
                    notes.push(format!("{side} layer {i}: {r}"));
                }
            }
        }
        let ok_a: Vec<bool> = undefined_a.iter().map(Option::is_none).collect();
        let ok_b: Vec<bool> = undefined_b.iter().map(Option::is_none).collect();
        let values = hsic
            .iter()
            .enumerate()
            .map(|(i, row)| {
                row.iter()
                    .enumerate()
                    .map(|(j, &h)| (ok_a[i] && ok_b[j]).then(|| h / (self_a[i] * self_b[j]).sqrt()))
                    .collect()
            })
            .collect();
        CkaMatrix {
            values,
            hsic,
            self_a,
            self_b,
            n,
            batches,
            notes,
            undefined_a,
            undefined_b,
        }
    }
}

/// Progress reports: `(pairs done, pairs total)`.
pub type Progress<'a> = &'a (dyn Fn(u64, u64) + Sync);

/// Prepared layers (`None` where degenerate) and, beside each, why it is degenerate.
type PreparedLayers = (Vec<Option<Prepared>>, Vec<Option<String>>);

/// Prepare every layer once. Degenerate layers (e.g. an RBF bandwidth of 0) are kept as notes
/// so the rest of the matrix is still computed; too few examples is an error for all.
fn prepare_all(
    layers: Vec<Array2<f32>>,
    kernel: Kernel,
    estimator: Estimator,
) -> Result<PreparedLayers, SimError> {
    let mut preps = Vec::with_capacity(layers.len());
    let mut bad = Vec::with_capacity(layers.len());
    for l in layers {
        match Prepared::new(l, kernel, estimator) {
            Ok(p) => {
                preps.push(Some(p));
                bad.push(None);
            }
            Err(SimError::Undefined(why)) => {
                preps.push(None);
                bad.push(Some(why));
            }
            Err(e) => return Err(e),
        }
    }
    Ok((preps, bad))
}

fn check_rows(a: &[Array2<f32>], b: Option<&[Array2<f32>]>) -> Result<usize, SimError> {
    let n = a.first().map(|x| x.nrows()).unwrap_or(0);
    for x in a.iter().chain(b.into_iter().flatten()) {
        if x.nrows() != n {
            return Err(SimError::MismatchedExamples { a: n, b: x.nrows() });
        }
    }
    Ok(n)
}

/// The HSIC estimates of one batch of layers, before they are normalized into CKA.
#[derive(Clone, Debug)]
pub struct PairHsic {
    /// `hsic[i][j]` = HSIC(A_i, B_j) (NaN where a layer is degenerate).
    pub hsic: Vec<Vec<f64>>,
    /// HSIC(A_i, A_i).
    pub self_a: Vec<f64>,
    /// HSIC(B_j, B_j) (equal to `self_a` when B is A).
    pub self_b: Vec<f64>,
    /// For each layer of A, why it is degenerate (`None`: fine).
    pub bad_a: Vec<Option<String>>,
    /// For each layer of B, why it is degenerate.
    pub bad_b: Vec<Option<String>>,
}

impl PairHsic {
    /// Every HSIC of an all-pairs comparison of `na` layers of A with `nb` of B (`same`: B is
    /// A, so only one triangle is computed and the diagonal is the self terms), in the order
    /// and with the progress ticks every backend shares: the self terms of A (ticked unless B
    /// is A), those of B, then the pairs. A backend supplies how to get one self term
    /// (`self_a`, `self_b`) and one cross term (`cross`); the first error ends the grid.
    #[allow(clippy::too_many_arguments)]
    pub fn fill(
        (na, nb): (usize, usize),
        same: bool,
        progress: Progress,
        mut self_a: impl FnMut(usize) -> Result<f64, SimError>,
        mut self_b: impl FnMut(usize) -> Result<f64, SimError>,
        mut cross: impl FnMut(usize, usize) -> Result<f64, SimError>,
        bad_a: Vec<Option<String>>,
        bad_b: Vec<Option<String>>,
    ) -> Result<PairHsic, SimError> {
        let total = if same {
            na * (na + 1) / 2
        } else {
            na * nb + na + nb
        } as u64;
        let mut done = 0u64;
        let mut tick = || {
            done += 1;
            progress(done, total);
        };
        let mut sa = Vec::with_capacity(na);
        for i in 0..na {
            sa.push(self_a(i)?);
            if !same {
                tick();
            }
        }
        let sb = if same {
            sa.clone()
        } else {
            let mut v = Vec::with_capacity(nb);
            for j in 0..nb {
                v.push(self_b(j)?);
                tick();
            }
            v
        };
        let mut hsic = vec![vec![f64::NAN; nb]; na];
        // Indices, not iterators: the mirrored half reads another row of `hsic`.
        #[allow(clippy::needless_range_loop)]
        for i in 0..na {
            for j in 0..nb {
                if same && j < i {
                    hsic[i][j] = hsic[j][i];
                    continue;
                }
                hsic[i][j] = if same && i == j { sa[i] } else { cross(i, j)? };
                tick();
            }
        }
        Ok(PairHsic {
            hsic,
            self_a: sa,
            self_b: sb,
            bad_a,
            bad_b,
        })
    }
}

/// Where the HSIC of every layer pair is computed. The CPU path ([`Cpu`]) and the GPU path
/// (strata-gpu) implement it, so that full-data and minibatch CKA run unchanged on either.
pub trait HsicBackend: Sync {
    /// A short name for logs and reports (`cpu`, `cuda:0 NVIDIA H100 ...`).
    fn name(&self) -> String;

    /// HSIC of every layer of `a` with every layer of `b` (`None`: `a` with itself). Layers
    /// are consumed (centered in place on the CPU).
    fn hsic_all(
        &self,
        a: Vec<Array2<f32>>,
        b: Option<Vec<Array2<f32>>>,
        kernel: Kernel,
        estimator: Estimator,
        progress: Progress,
    ) -> Result<PairHsic, SimError>;
}

/// The CPU path: faer GEMMs on all cores.
#[derive(Clone, Copy, Debug, Default)]
pub struct Cpu;

impl HsicBackend for Cpu {
    fn name(&self) -> String {
        "cpu".into()
    }

    fn hsic_all(
        &self,
        a: Vec<Array2<f32>>,
        b: Option<Vec<Array2<f32>>>,
        kernel: Kernel,
        estimator: Estimator,
        progress: Progress,
    ) -> Result<PairHsic, SimError> {
        let same = b.is_none();
        let (pa, bad_a) = prepare_all(a, kernel, estimator)?;
        let (pb_owned, bad_b) = match b {
            Some(b) => {
                let (p, bad) = prepare_all(b, kernel, estimator)?;
                (Some(p), bad)
            }
            None => (None, bad_a.clone()),
        };
        let pb = pb_owned.as_ref().unwrap_or(&pa);
        let self_hsic = |p: &Option<Prepared>| p.as_ref().map_or(Ok(f64::NAN), Prepared::self_hsic);
        PairHsic::fill(
            (pa.len(), pb.len()),
            same,
            progress,
            |i| self_hsic(&pa[i]),
            |j| self_hsic(&pb[j]),
            |i, j| match (&pa[i], &pb[j]) {
                (Some(x), Some(y)) => x.hsic(y),
                _ => Ok(f64::NAN),
            },
            bad_a,
            bad_b,
        )
    }
}

/// CKA between all layers of A and all layers of B (`b = None`: A with itself, computing only
/// one triangle). Each layer is prepared once; layers are consumed to center them in place.
pub fn cka_all_pairs(
    a: Vec<Array2<f32>>,
    b: Option<Vec<Array2<f32>>>,
    kernel: Kernel,
    estimator: Estimator,
    progress: Progress,
) -> Result<CkaMatrix, SimError> {
    cka_all_pairs_on(&Cpu, a, b, kernel, estimator, progress)
}

/// [`cka_all_pairs`] on the given backend.
pub fn cka_all_pairs_on(
    backend: &dyn HsicBackend,
    a: Vec<Array2<f32>>,
    b: Option<Vec<Array2<f32>>>,
    kernel: Kernel,
    estimator: Estimator,
    progress: Progress,
) -> Result<CkaMatrix, SimError> {
    let n = check_rows(&a, b.as_deref())?;
    let h = backend.hsic_all(a, b, kernel, estimator, progress)?;
    Ok(CkaMatrix::from_hsic(
        h.hsic, h.self_a, h.self_b, &h.bad_a, &h.bad_b, n, 1,
    ))
}

/// CKA between two representations of the same examples.
pub fn cka(
    x: Array2<f32>,
    y: Array2<f32>,
    kernel: Kernel,
    estimator: Estimator,
) -> Result<f64, SimError> {
    let m = cka_all_pairs(vec![x], Some(vec![y]), kernel, estimator, &|_, _| {})?;
    m.values[0][0]
        .ok_or_else(|| SimError::Undefined(format!("CKA is undefined: {}", m.notes.join("; "))))
}

/// Minibatch CKA (Nguyen, Raghu & Kornblith 2021): the unbiased HSIC of every layer pair is
/// averaged over minibatches and the ratio taken once at the end, so the estimate converges to
/// CKA of the population while memory holds only one batch.
///
/// Every batch counts equally. A batch with fewer than 4 examples (the unbiased estimator's
/// minimum) is skipped and counted in [`MinibatchCka::skipped`].
pub struct MinibatchCka {
    kernel: Kernel,
    same: bool,
    sum: Vec<Vec<f64>>,
    sum_a: Vec<f64>,
    sum_b: Vec<f64>,
    bad_a: Vec<Option<String>>,
    bad_b: Vec<Option<String>>,
    batches: usize,
    examples: usize,
    skipped: usize,
}

impl MinibatchCka {
    /// Accumulator for `na` layers of A against `nb` layers of B (`same`: B is A).
    pub fn new(na: usize, nb: usize, kernel: Kernel, same: bool) -> Self {
        MinibatchCka {
            kernel,
            same,
            sum: vec![vec![0.0; nb]; na],
            sum_a: vec![0.0; na],
            sum_b: vec![0.0; nb],
            bad_a: vec![None; na],
            bad_b: vec![None; nb],
            batches: 0,
            examples: 0,
            skipped: 0,
        }
    }

    /// Add one minibatch: the same rows of every layer of A (and of B unless `same`).
    pub fn update(
        &mut self,
        a: Vec<Array2<f32>>,
        b: Option<Vec<Array2<f32>>>,
    ) -> Result<(), SimError> {
        self.update_on(&Cpu, a, b)
    }

    /// [`MinibatchCka::update`] on the given backend.
    pub fn update_on(
        &mut self,
        backend: &dyn HsicBackend,
        a: Vec<Array2<f32>>,
        b: Option<Vec<Array2<f32>>>,
    ) -> Result<(), SimError> {
        let rows = check_rows(&a, b.as_deref())?;
        if rows < Estimator::Debiased.min_examples() {
            self.skipped += rows;
            return Ok(());
        }
        let b = if self.same { None } else { b };
        let PairHsic {
            hsic: h,
            self_a: sa,
            self_b: sb,
            bad_a,
            bad_b,
        } = backend.hsic_all(a, b, self.kernel, Estimator::Debiased, &|_, _| {})?;
        for (acc, row) in self.sum.iter_mut().zip(&h) {
            acc.iter_mut().zip(row).for_each(|(s, v)| *s += v);
        }
        self.sum_a.iter_mut().zip(&sa).for_each(|(s, v)| *s += v);
        self.sum_b.iter_mut().zip(&sb).for_each(|(s, v)| *s += v);
        for (acc, new) in self
            .bad_a
            .iter_mut()
            .zip(bad_a)
            .chain(self.bad_b.iter_mut().zip(bad_b))
        {
            if acc.is_none() {
                *acc = new.map(|w| format!("in batch {}: {w}", self.batches));
            }
        }
        self.batches += 1;
        self.examples += rows;
        Ok(())
    }

    /// Examples dropped because their batch was smaller than 4.
    pub fn skipped(&self) -> usize {
        self.skipped
    }

    /// The CKA matrix from the batches so far.
    pub fn finish(&self) -> CkaMatrix {
        let k = self.batches.max(1) as f64;
        let mean = |v: &[f64]| v.iter().map(|x| x / k).collect::<Vec<_>>();
        let hsic = self.sum.iter().map(|r| mean(r)).collect();
        let mut m = CkaMatrix::from_hsic(
            hsic,
            mean(&self.sum_a),
            mean(&self.sum_b),
            &self.bad_a,
            &self.bad_b,
            self.examples,
            self.batches,
        );
        if self.batches == 0 {
            m.notes
                .push("no batch had the 4 examples the unbiased estimator needs".into());
            m.values.iter_mut().flatten().for_each(|v| *v = None);
        }
        m
    }
}
