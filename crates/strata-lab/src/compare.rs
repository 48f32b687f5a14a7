//! `strata cka A B`: CKA between the layers of two activation files.

use crate::progress::Progress;
use crate::setting::{Setting, SettingError};
use anyhow::{bail, Result};
use ndarray::Array2;
use serde_json::json;
use std::path::{Path, PathBuf};
use std::time::Instant;
use strata_data::Activations;
use strata_sim::{
    cka_all_pairs_on, cka_bootstrap_all_pairs, cka_null_all_pairs, cka_null_moments_all_pairs,
    cka_resampling_bytes, BootstrapMatrix, BootstrapOptions, CkaMatrix, Estimator, Kernel,
    MinibatchCka, NullMatrix, NullMethod, NullOptions,
};

/// What to compare and how.
#[derive(Clone, Debug)]
pub struct CkaArgs {
    /// Activation store of model A (the matrix's rows).
    pub a: PathBuf,
    /// Activation store of model B (the matrix's columns).
    pub b: PathBuf,
    /// Kernel applied to each layer's activations.
    pub kernel: Kernel,
    /// `None`: biased for full-data CKA, debiased for minibatch CKA.
    pub estimator: Option<Estimator>,
    /// Minibatch CKA with this many examples per batch.
    pub batch_size: Option<usize>,
    /// Restrict to these layers of A / B (default: all, in file order).
    pub layers_a: Option<Vec<String>>,
    /// Restrict B to these layers (default: all, in file order).
    pub layers_b: Option<Vec<String>>,
    /// Where linear CKA runs (`auto`: the GPU when present).
    pub device: strata_gpu::DeviceChoice,
}

/// A computed CKA matrix with what produced it.
#[derive(Clone, Debug)]
pub struct CkaResult {
    /// Activation store of model A.
    pub a: PathBuf,
    /// Activation store of model B.
    pub b: PathBuf,
    /// Layer names of A: the matrix's rows.
    pub layers_a: Vec<String>,
    /// Layer names of B: the matrix's columns.
    pub layers_b: Vec<String>,
    /// CKA of every (layer of A, layer of B) pair.
    pub matrix: CkaMatrix,
    /// Kernel used.
    pub kernel: Kernel,
    /// HSIC estimator used (debiased for minibatch CKA).
    pub estimator: Estimator,
    /// Examples per minibatch (`None`: full-data CKA).
    pub batch_size: Option<usize>,
    /// Seconds the comparison took, reading the stores included.
    pub seconds: f64,
    /// The permutation null and bootstrap intervals, when asked for ([`run_with`]).
    pub significance: Option<SignificanceResult>,
}

/// Indices of the layers `names` selects in `acts` (every layer for `None`).
pub(crate) fn select(acts: &Activations, names: &Option<Vec<String>>) -> Result<Vec<usize>> {
    match names {
        None => Ok((0..acts.layers().len()).collect()),
        Some(names) => names
            .iter()
            .map(|n| acts.layer_index(n).map_err(Into::into))
            .collect(),
    }
}

fn same_file(a: &Path, b: &Path) -> bool {
    match (a.canonicalize(), b.canonicalize()) {
        (Ok(x), Ok(y)) => x == y,
        _ => false,
    }
}

/// Compute the CKA matrix between the selected layers of A and B, reporting to `progress`.
pub fn run(args: &CkaArgs, progress: &dyn Progress) -> Result<CkaResult> {
    run_with(args, &Significance::default(), progress)
}

/// [`run`], then the permutation null and/or bootstrap intervals `sig` asks for, on the CPU
/// (see [`Significance`]). They recompute full-data CKA on every draw, so they refuse a batch
/// size (minibatch CKA).
pub fn run_with(args: &CkaArgs, sig: &Significance, progress: &dyn Progress) -> Result<CkaResult> {
    if sig.requested() {
        sig.check()?;
        if args.batch_size.is_some() {
            return Err(SettingError::within(
                Setting::BatchSize,
                "a permutation null and bootstrap intervals recompute full-data CKA on every \
                 draw, so they do not combine with a ",
                " (minibatch CKA); drop one or the other",
            )
            .into());
        }
    }
    let start = Instant::now();
    let fa = strata_data::open(&args.a)?;
    let same = same_file(&args.a, &args.b) && args.layers_a == args.layers_b;
    let fb_owned = if same {
        None
    } else {
        Some(strata_data::open(&args.b)?)
    };
    let fb = fb_owned.as_ref().unwrap_or(&fa);
    if fa.n() != fb.n() {
        bail!(
            "{} has {} examples but {} has {}: CKA compares two representations of the same \
             examples, in the same order",
            args.a.display(),
            fa.n(),
            args.b.display(),
            fb.n()
        );
    }
    let ia = select(&fa, &args.layers_a)?;
    let ib = select(fb, &args.layers_b)?;
    let names = |f: &Activations, ids: &[usize]| -> Vec<String> {
        ids.iter().map(|&i| f.layers()[i].name.clone()).collect()
    };
    let (layers_a, layers_b) = (names(&fa, &ia), names(fb, &ib));
    let estimator = match (args.batch_size, args.estimator) {
        (Some(_), Some(Estimator::Biased)) => return Err(SettingError::new(
            Setting::Estimator,
            " biased: minibatch CKA (with a batch size) averages the unbiased HSIC estimator over \
                 batches (Nguyen et al. 2021); use the debiased estimator, or no batch size",
        )
        .into()),
        (Some(_), _) => Estimator::Debiased,
        (None, e) => e.unwrap_or(Estimator::Biased),
    };
    let n = fa.n();
    if n < estimator.min_examples() {
        bail!(
            "the {} estimator needs at least {} examples; the files hold {n}",
            estimator.name(),
            estimator.min_examples()
        );
    }
    let matrix = match args.batch_size {
        Some(bs) => {
            if bs < 4 {
                return Err(SettingError::new(
                    Setting::BatchSize,
                    " must be at least 4 (the unbiased HSIC estimator needs n >= 4)",
                )
                .into());
            }
            minibatch(&fa, fb, &ia, &ib, same, bs, args, progress)?
        }
        None => full(&fa, fb, &ia, &ib, same, estimator, args, progress)?,
    };
    let significance = if sig.requested() {
        let layers = Layers {
            fa: &fa,
            fb,
            ia: &ia,
            ib: &ib,
            same,
        };
        Some(cka_significance(
            &layers,
            args.kernel,
            estimator,
            sig,
            progress,
        )?)
    } else {
        None
    };
    Ok(CkaResult {
        a: args.a.clone(),
        b: args.b.clone(),
        layers_a,
        layers_b,
        matrix,
        kernel: args.kernel,
        estimator,
        batch_size: args.batch_size,
        seconds: start.elapsed().as_secs_f64(),
        significance,
    })
}

#[allow(clippy::too_many_arguments)]
fn full(
    fa: &Activations,
    fb: &Activations,
    ia: &[usize],
    ib: &[usize],
    same: bool,
    estimator: Estimator,
    args: &CkaArgs,
    progress: &dyn Progress,
) -> Result<CkaMatrix> {
    let n = fa.n();
    let mut need: u64 = 0;
    let mut widest = 0u64;
    for (f, ids) in [(fa, ia), (fb, ib)]
        .into_iter()
        .take(if same { 1 } else { 2 })
    {
        for &i in ids {
            // Every raw layer is read before any is prepared, so each costs the larger of its
            // raw and prepared sizes; RBF also copies one n x n matrix to take the median.
            let p = f.layers()[i].features as u64;
            let raw = (n as u64).saturating_mul(p).saturating_mul(4);
            let prep = match args.kernel {
                Kernel::Rbf { .. } => (n as u64).saturating_mul(n as u64).saturating_mul(4),
                Kernel::Linear if p >= n as u64 => {
                    (n as u64).saturating_mul(n as u64).saturating_mul(4)
                }
                Kernel::Linear => raw,
            };
            need = need.saturating_add(raw.max(prep));
            widest = widest.max(prep);
        }
    }
    need = need.saturating_add(widest);
    if let Some(avail) = crate::available_memory_bytes() {
        if need > avail * 9 / 10 {
            return Err(SettingError::within(
                Setting::BatchSize,
                format!(
                    "computing all pairs at once needs about {} but {} is available; use ",
                    crate::human_bytes(need),
                    crate::human_bytes(avail)
                ),
                " 1024 (minibatch CKA, memory independent of the number of examples) or select \
                 fewer layers",
            )
            .into());
        }
    }
    let read = |f: &Activations, ids: &[usize], label: &str| -> Result<Vec<Array2<f32>>> {
        let pb = progress.task(label, "layers", ids.len() as u64);
        let out = ids
            .iter()
            .map(|&i| {
                let m = f.read_layer(i);
                pb.inc(1);
                m
            })
            .collect::<strata_data::Result<Vec<_>>>();
        pb.finish();
        Ok(out?)
    };
    let a = read(fa, ia, "reading A")?;
    let b = if same {
        None
    } else {
        Some(read(fb, ib, "reading B")?)
    };
    let pb = progress.task("CKA", "pairs", 0);
    let backend = hsic_backend(args, progress)?;
    let m = cka_all_pairs_on(&*backend, a, b, args.kernel, estimator, &|done, total| {
        pb.set_total(total);
        pb.set_position(done);
    })?;
    pb.finish();
    Ok(m)
}

/// The HSIC backend for `args.device`, logging where it runs when that is a GPU.
fn hsic_backend(
    args: &CkaArgs,
    progress: &dyn Progress,
) -> Result<Box<dyn strata_sim::HsicBackend>> {
    let gpu = crate::gpu::hsic_device(args.device, args.kernel == Kernel::Linear)?;
    if let Some(g) = &gpu {
        progress.log(&crate::gpu::running_on(g));
    }
    Ok(crate::gpu::hsic_backend_on(gpu))
}

#[allow(clippy::too_many_arguments)]
fn minibatch(
    fa: &Activations,
    fb: &Activations,
    ia: &[usize],
    ib: &[usize],
    same: bool,
    bs: usize,
    args: &CkaArgs,
    progress: &dyn Progress,
) -> Result<CkaMatrix> {
    let backend = hsic_backend(args, progress)?;
    let mut acc = MinibatchCka::new(ia.len(), ib.len(), args.kernel, same);
    let mut ra = fa.batches(ia, bs)?;
    let mut rb = if same {
        None
    } else {
        Some(fb.batches(ib, bs)?)
    };
    let pb = progress.task("minibatch CKA", "examples", fa.n() as u64);
    // The next batches are read (and decoded) on their own thread while this one computes.
    let next = move || -> Result<Option<Batch>> {
        let a = ra.next_batch()?;
        let b = match rb.as_mut() {
            Some(r) => r.next_batch()?,
            None => None,
        };
        let Some(a) = a else {
            if b.is_some() {
                bail!(
                    "{} holds fewer examples than {} (its files disagree with their headers)",
                    args.a.display(),
                    args.b.display()
                );
            }
            return Ok(None);
        };
        let rows = a[0].nrows();
        if !same && b.as_ref().map(|b| b[0].nrows()) != Some(rows) {
            bail!(
                "{} and {} ran out of examples at different points",
                args.a.display(),
                args.b.display()
            );
        }
        Ok(Some((a, b)))
    };
    read_ahead(next, |(a, b)| {
        let rows = a[0].nrows();
        acc.update_on(&*backend, a, b)?;
        pb.inc(rows as u64);
        Ok(())
    })?;
    pb.finish();
    if acc.skipped() > 0 {
        progress.warn(&format!(
            "note: the last {} example(s) formed a batch smaller than 4 and were left out",
            acc.skipped()
        ));
    }
    Ok(acc.finish())
}

/// One batch of every layer of A and, unless A is compared with itself, of B.
type Batch = (Vec<Array2<f32>>, Option<Vec<Array2<f32>>>);

/// Calls `consume` on every item `produce` yields, in order, with `produce` running on its own
/// thread up to two items ahead: reading and decoding the next batch overlaps computing on this
/// one (on a GPU the device then never waits for the disk). The first error of either side ends
/// both and is returned; the producer stops at its next item once the consumer has failed.
pub(crate) fn read_ahead<T: Send>(
    mut produce: impl FnMut() -> Result<Option<T>> + Send,
    mut consume: impl FnMut(T) -> Result<()>,
) -> Result<()> {
    std::thread::scope(|scope| {
        let (tx, rx) = std::sync::mpsc::sync_channel::<Result<T>>(1);
        scope.spawn(move || loop {
            let item = produce().transpose();
            let last = !matches!(item, Some(Ok(_)));
            // A failed send means the consumer has stopped: nothing more is wanted.
            if item.is_none_or(|i| tx.send(i).is_err()) || last {
                break;
            }
        });
        for item in rx {
            consume(item?)?;
        }
        Ok(())
    })
}

// ---------- significance: a permutation null and bootstrap intervals ----------

/// Significance statistics asked for beside a similarity matrix (none by default): a
/// permutation null (a p-value, the chance level and a z-score per cell) and bootstrap
/// percentile intervals. Both recompute the measure on every draw, on the CPU; see
/// `strata_sim::cka_null_all_pairs` for what they mean and cost.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Significance {
    /// Permutations of the null (`None`: no permutation test). `p >= 1 / (B + 1)`. With
    /// [`NullMethod::Moments`] there are none (`None`).
    pub permutations: Option<usize>,
    /// How the null is obtained: `Draws` (`permutations` seeded draws, the default) or
    /// `Moments` (the analytic null of linear biased CKA: exact mean, variance and skewness, a
    /// Pearson type III p-value; no draws).
    pub null: NullMethod,
    /// Bootstrap resamples (`None`: no intervals).
    pub bootstrap: Option<usize>,
    /// Confidence level of the bootstrap intervals, in `(0, 1)`.
    pub confidence: f64,
    /// Seed of the permutations and of the resamples.
    pub seed: u64,
}

impl Default for Significance {
    fn default() -> Self {
        Significance {
            permutations: None,
            null: NullMethod::Draws,
            bootstrap: None,
            confidence: strata_sim::DEFAULT_CONFIDENCE,
            seed: 0,
        }
    }
}

impl Significance {
    /// True when a permutation null or bootstrap intervals are asked for.
    pub fn requested(&self) -> bool {
        self.null_requested() || self.bootstrap.is_some()
    }

    /// True when a permutation null (drawn or analytic) is asked for.
    pub fn null_requested(&self) -> bool {
        self.permutations.is_some() || self.null == NullMethod::Moments
    }

    /// Refuse no permutations, no resamples, or a confidence level outside `(0, 1)`, before
    /// any file is read.
    pub fn check(&self) -> Result<()> {
        if self.null == NullMethod::Moments && self.permutations.is_some() {
            bail!(
                "the moments null is computed analytically and draws no permutations; drop the \
                 permutation count, or use the draws null"
            );
        }
        if self.permutations == Some(0) {
            bail!(
                "a permutation test needs at least 1 permutation (99 resolve p = 0.01, 999 \
                 resolve 0.001), got 0"
            );
        }
        if self.bootstrap == Some(0) {
            return Err(SettingError::new(
                Setting::Bootstrap,
                " must be at least 1 resample (a few thousand give stable 95% bounds)",
            )
            .into());
        }
        let c = self.confidence;
        if self.bootstrap.is_some() && !(c > 0.0 && c < 1.0) {
            bail!(
                "the confidence level of the bootstrap intervals must lie strictly between 0 and \
                 1 (0.95 for 95% intervals), got {c}"
            );
        }
        Ok(())
    }

    fn null_options(&self, permutations: usize) -> NullOptions {
        NullOptions {
            permutations,
            seed: self.seed,
        }
    }

    fn bootstrap_options(&self, resamples: usize) -> BootstrapOptions {
        BootstrapOptions {
            resamples,
            confidence: self.confidence,
            seed: self.seed,
        }
    }
}

/// The permutation null and the bootstrap intervals of every cell of a matrix.
#[derive(Clone, Debug)]
pub struct SignificanceResult {
    /// What was asked for.
    pub options: Significance,
    /// The permutation tests (`None`: not asked for).
    pub null: Option<NullMatrix>,
    /// The bootstrap intervals (`None`: not asked for).
    pub bootstrap: Option<BootstrapMatrix>,
    /// Seconds the draws took, reading the layers again included.
    pub seconds: f64,
}

/// The per-cell columns of a [`SignificanceResult`], in output order.
pub const SIGNIFICANCE_COLUMNS: [&str; 7] = [
    "p_value",
    "null_mean",
    "null_q95",
    "z",
    "corrected",
    "ci_low",
    "ci_high",
];

/// The files `write_out` adds when significance was computed: one row per pair of layers.
pub const SIGNIFICANCE_FILES: [&str; 2] = ["significance.csv", "significance.parquet"];

impl SignificanceResult {
    /// The per-cell columns computed ([`SIGNIFICANCE_COLUMNS`]: the first five with a
    /// permutation null, the last two with bootstrap intervals), each as a matrix.
    pub fn columns(&self) -> Vec<(&'static str, Vec<Vec<Option<f64>>>)> {
        let mut out = Vec::new();
        if let Some(m) = &self.null {
            out.push(("p_value", m.field(|t| Some(t.p_value))));
            out.push(("null_mean", m.field(|t| Some(t.null_mean))));
            out.push(("null_q95", m.field(|t| Some(t.null_q95))));
            out.push(("z", m.field(|t| t.z)));
            out.push(("corrected", m.field(|t| Some(t.corrected))));
        }
        if let Some(m) = &self.bootstrap {
            out.push(("ci_low", m.field(|c| Some(c.low))));
            out.push(("ci_high", m.field(|c| Some(c.high))));
        }
        out
    }

    /// The null-corrected values (the measure minus the null mean), when a null was computed.
    pub fn corrected(&self) -> Option<Vec<Vec<Option<f64>>>> {
        self.null.as_ref().map(|m| m.field(|t| Some(t.corrected)))
    }

    /// Columns the JSON carries besides [`Self::columns`]: the null's and the bootstrap's
    /// standard deviations.
    fn spread_columns(&self) -> Vec<(&'static str, Vec<Vec<Option<f64>>>)> {
        let mut out = Vec::new();
        if let Some(m) = &self.null {
            out.push(("null_sd", m.field(|t| Some(t.null_sd))));
            out.push(("null_skewness", m.field(|t| t.null_skewness)));
        }
        if let Some(m) = &self.bootstrap {
            out.push(("boot_sd", m.field(|c| Some(c.sd))));
        }
        out
    }

    /// Add the columns to a JSON object: one number each for a single pair, else one matrix
    /// each (null where undefined), plus `permutations`, `bootstrap`, `confidence` and `seed`.
    pub fn add_json(&self, o: &mut serde_json::Map<String, serde_json::Value>, single: bool) {
        for (name, m) in self.columns().into_iter().chain(self.spread_columns()) {
            let v = if single {
                json!(m.first().and_then(|r| r.first()).copied().flatten())
            } else {
                json!(m)
            };
            o.insert(name.into(), v);
        }
        o.insert("permutations".into(), json!(self.options.permutations));
        if self.null.is_some() {
            o.insert("null".into(), json!(self.options.null.name()));
        }
        o.insert("bootstrap".into(), json!(self.options.bootstrap));
        o.insert(
            "confidence".into(),
            json!(self.options.bootstrap.map(|_| self.options.confidence)),
        );
        o.insert("seed".into(), json!(self.options.seed));
    }

    /// One line per pair of layers: the value (`value_name`) and every column, aligned, for
    /// the terminal.
    pub fn table(
        &self,
        rows: &[String],
        cols: &[String],
        values: &[Vec<Option<f64>>],
        value_name: &str,
    ) -> String {
        let columns = self.columns();
        let wa = rows
            .iter()
            .map(|s| s.chars().count())
            .max()
            .unwrap_or(1)
            .max(7);
        let wb = cols
            .iter()
            .map(|s| s.chars().count())
            .max()
            .unwrap_or(1)
            .max(7);
        let cell = |name: &str, v: Option<f64>| match (name, v) {
            (_, None) => "n/a".to_string(),
            ("z", Some(v)) => format!("{v:.1}"),
            (_, Some(v)) => format!("{v:.4}"),
        };
        let wv = value_name.chars().count().max(9);
        let mut out = format!("{:<wa$}  {:<wb$}  {value_name:>wv$}", "layer_a", "layer_b");
        for (name, _) in &columns {
            out.push_str(&format!("  {name:>9}"));
        }
        out.push('\n');
        for (i, a) in rows.iter().enumerate() {
            for (j, b) in cols.iter().enumerate() {
                let v = values.get(i).and_then(|r| r.get(j)).copied().flatten();
                out.push_str(&format!("{a:<wa$}  {b:<wb$}  {:>wv$}", cell(value_name, v)));
                for (name, m) in &columns {
                    let c = m.get(i).and_then(|r| r.get(j)).copied().flatten();
                    out.push_str(&format!("  {:>9}", cell(name, c)));
                }
                out.push('\n');
            }
        }
        out
    }

    /// One sentence for a single pair: `p = 0.0200 (49 permutations: ...); 95% interval ...`.
    pub fn summary(&self) -> String {
        let mut parts = Vec::new();
        let first = |m: Vec<Vec<Option<f64>>>| m.first().and_then(|r| r.first()).copied().flatten();
        if let Some(m) = &self.null {
            match m
                .cells
                .first()
                .and_then(|r| r.first())
                .and_then(Option::as_ref)
            {
                Some(t) if m.method == NullMethod::Moments => parts.push(format!(
                    "p = {:.2e} (moments null, Pearson type III: chance level {:.4}, null sd \
                     {:.4}, skewness {}, null 95% quantile {:.4}, z = {})",
                    t.p_value,
                    t.null_mean,
                    t.null_sd,
                    t.null_skewness.map_or("n/a".into(), |g| format!("{g:.2}")),
                    t.null_q95,
                    t.z.map_or("n/a".into(), |z| format!("{z:.1}"))
                )),
                Some(t) => parts.push(format!(
                    "p = {:.4} ({} permutations, seed {}: chance level {:.4}, null 95% quantile \
                     {:.4}, z = {})",
                    t.p_value,
                    t.permutations,
                    self.options.seed,
                    t.null_mean,
                    t.null_q95,
                    t.z.map_or("n/a".into(), |z| format!("{z:.1}"))
                )),
                None => parts.push("p = n/a (undefined)".into()),
            }
        }
        if let Some(m) = &self.bootstrap {
            let (lo, hi) = (
                first(m.field(|c| Some(c.low))),
                first(m.field(|c| Some(c.high))),
            );
            let used = m
                .cells
                .first()
                .and_then(|r| r.first())
                .and_then(Option::as_ref)
                .map_or(0, |c| c.resamples);
            match (lo, hi) {
                (Some(lo), Some(hi)) => parts.push(format!(
                    "{:.0}% bootstrap interval [{lo:.4}, {hi:.4}] ({used} resamples, seed {})",
                    self.options.confidence * 100.0,
                    self.options.seed
                )),
                _ => parts.push("bootstrap interval n/a (undefined)".into()),
            }
        }
        parts.join("; ")
    }

    /// The long table behind [`SIGNIFICANCE_FILES`]: `layer_a`, `layer_b`, the value
    /// (`value_name`) and every column, one row per pair.
    pub fn long_table(
        &self,
        rows: &[String],
        cols: &[String],
        values: &[Vec<Option<f64>>],
        value_name: &str,
    ) -> strata_report::Table {
        use strata_report::Column;
        let pairs: Vec<(usize, usize)> = (0..rows.len())
            .flat_map(|i| (0..cols.len()).map(move |j| (i, j)))
            .collect();
        let pick = |m: &[Vec<Option<f64>>]| -> Vec<Option<f64>> {
            pairs
                .iter()
                .map(|&(i, j)| m.get(i).and_then(|r| r.get(j)).copied().flatten())
                .collect()
        };
        let mut columns = vec![
            Column::Str(
                "layer_a".into(),
                pairs.iter().map(|&(i, _)| rows[i].clone()).collect(),
            ),
            Column::Str(
                "layer_b".into(),
                pairs.iter().map(|&(_, j)| cols[j].clone()).collect(),
            ),
            Column::F64(value_name.into(), pick(values)),
        ];
        for (name, m) in self.columns() {
            columns.push(Column::F64(name.into(), pick(&m)));
        }
        strata_report::Table { columns }
    }
}

/// The selected layers of both files, as [`run_with`] found them.
struct Layers<'a> {
    fa: &'a Activations,
    fb: &'a Activations,
    ia: &'a [usize],
    ib: &'a [usize],
    /// B is A (the same file and layers).
    same: bool,
}

/// Bytes the draws' values take until the statistics are computed: one f64 per cell per draw.
pub(crate) fn kept_draws_bytes(cells: usize, draws: usize) -> u64 {
    (cells as u64)
        .saturating_mul(draws as u64)
        .saturating_mul(8)
}

/// Refuse a permutation null or bootstrap that would need more than 90% of the memory
/// available, before any draw runs.
pub(crate) fn fits_in_memory(need: u64) -> Result<()> {
    if let Some(avail) = crate::available_memory_bytes() {
        if need > avail * 9 / 10 {
            bail!(
                "the permutation null / bootstrap over these layers needs about {} but {} is \
                 available; compare fewer layers at a time, or use fewer examples or draws",
                crate::human_bytes(need),
                crate::human_bytes(avail)
            );
        }
    }
    Ok(())
}

/// Read the layers again and run the permutation null and/or the bootstrap on the CPU.
fn cka_significance(
    l: &Layers,
    kernel: Kernel,
    estimator: Estimator,
    sig: &Significance,
    progress: &dyn Progress,
) -> Result<SignificanceResult> {
    let start = Instant::now();
    let n = l.fa.n();
    let widths = |f: &Activations, ids: &[usize]| -> Vec<usize> {
        ids.iter().map(|&i| f.layers()[i].features).collect()
    };
    let wa = widths(l.fa, l.ia);
    let wb = (!l.same).then(|| widths(l.fb, l.ib));
    let raw: u64 = wa
        .iter()
        .chain(wb.iter().flatten())
        .map(|&p| (n as u64).saturating_mul(p as u64).saturating_mul(4))
        .fold(0, u64::saturating_add);
    let threads = rayon::current_num_threads();
    let cells = wa.len() * wb.as_ref().map_or(wa.len(), Vec::len);
    let mut need = 0u64;
    let drawn = sig.permutations.filter(|_| sig.null == NullMethod::Draws);
    for (asked, boot) in [(drawn, false), (sig.bootstrap, true)] {
        if let Some(draws) = asked {
            let b = cka_resampling_bytes(n, &wa, wb.as_deref(), kernel, boot, threads);
            need = need.max(
                raw.saturating_add(b)
                    .saturating_add(kept_draws_bytes(cells, draws)),
            );
        }
    }
    fits_in_memory(need)?;
    let read = |f: &Activations, ids: &[usize]| -> Result<Vec<Array2<f32>>> {
        ids.iter()
            .map(|&i| f.read_layer(i).map_err(Into::into))
            .collect()
    };
    let a = read(l.fa, l.ia)?;
    let b = if l.same {
        None
    } else {
        Some(read(l.fb, l.ib)?)
    };
    let va: Vec<_> = a.iter().map(|x| x.view()).collect();
    let vb: Option<Vec<_>> = b.as_ref().map(|b| b.iter().map(|x| x.view()).collect());
    let null = match (sig.null, sig.permutations) {
        (NullMethod::Moments, _) => {
            let total = (l.ia.len() + if l.same { 0 } else { l.ib.len() }) as u64;
            let pb = progress.task("moments null", "layers", total);
            let m = cka_null_moments_all_pairs(&va, vb.as_deref(), kernel, estimator, &|_, _| {
                pb.inc(1)
            })?;
            pb.finish();
            Some(m)
        }
        (NullMethod::Draws, Some(p)) => {
            let pb = progress.task("permutation null", "draws", p as u64);
            let m = cka_null_all_pairs(
                &va,
                vb.as_deref(),
                kernel,
                estimator,
                &sig.null_options(p),
                &|_, _| pb.inc(1),
            )?;
            pb.finish();
            Some(m)
        }
        (NullMethod::Draws, None) => None,
    };
    let bootstrap = match sig.bootstrap {
        Some(r) => {
            let pb = progress.task("bootstrap", "resamples", r as u64);
            let m = cka_bootstrap_all_pairs(
                &va,
                vb.as_deref(),
                kernel,
                estimator,
                &sig.bootstrap_options(r),
                &|_, _| pb.inc(1),
            )?;
            pb.finish();
            Some(m)
        }
        None => None,
    };
    Ok(SignificanceResult {
        options: *sig,
        null,
        bootstrap,
        seconds: start.elapsed().as_secs_f64(),
    })
}

impl CkaResult {
    /// One warning per layer whose CKA is undefined, naming the layer and its file (a layer on
    /// both sides of a self-comparison is named once).
    pub fn warnings(&self) -> Vec<String> {
        let m = &self.matrix;
        let sides = [
            (&self.a, &self.layers_a, &m.undefined_a),
            (&self.b, &self.layers_b, &m.undefined_b),
        ];
        let mut out: Vec<String> = Vec::new();
        for (file, names, reasons) in sides {
            for (name, r) in names.iter().zip(reasons) {
                if let Some(r) = r {
                    let w = format!("layer '{name}' of {}: {r}", file.display());
                    if !out.contains(&w) {
                        out.push(w);
                    }
                }
            }
        }
        out
    }

    /// True when both sides hold one layer: the result is a single number.
    pub fn is_single(&self) -> bool {
        self.layers_a.len() == 1 && self.layers_b.len() == 1
    }

    /// "linear CKA (biased)", "RBF CKA, t = 0.5 (debiased, minibatch of 1024)".
    pub fn measure_name(&self) -> String {
        let k = match self.kernel {
            Kernel::Linear => "linear CKA".to_string(),
            Kernel::Rbf { threshold } => format!("RBF CKA, t = {threshold}"),
        };
        match self.batch_size {
            Some(bs) => format!("{k} ({}, minibatch of {bs})", self.estimator.name()),
            None => format!("{k} ({})", self.estimator.name()),
        }
    }

    fn common_json(&self) -> serde_json::Value {
        json!({
            "n": self.matrix.n,
            "kernel": self.kernel.name(),
            "rbf_threshold": match self.kernel { Kernel::Rbf { threshold } => Some(threshold), _ => None },
            "estimator": self.estimator.name(),
            "batch_size": self.batch_size,
            "batches": self.matrix.batches,
            "a": self.a.display().to_string(),
            "b": self.b.display().to_string(),
            "seconds": self.seconds,
            "notes": self.warnings(),
        })
    }

    /// The result as one JSON object: `{"cka": x, ...}` for one pair, otherwise
    /// `{"layers_a": [...], "layers_b": [...], "cka": [[...]], ...}` (undefined values are null).
    pub fn json(&self) -> serde_json::Value {
        let mut v = self.common_json();
        let o = v.as_object_mut().expect("object");
        if self.is_single() {
            o.insert("cka".into(), json!(self.matrix.values[0][0]));
            o.insert("layer_a".into(), json!(self.layers_a[0]));
            o.insert("layer_b".into(), json!(self.layers_b[0]));
        } else {
            o.insert("layers_a".into(), json!(self.layers_a));
            o.insert("layers_b".into(), json!(self.layers_b));
            o.insert("cka".into(), json!(self.matrix.values));
        }
        if let Some(sig) = &self.significance {
            sig.add_json(o, self.is_single());
        }
        v
    }

    /// The matrix as an aligned text table (rows: layers of A), followed, when significance
    /// was computed, by one line per pair with its columns.
    pub fn table(&self) -> String {
        let mut t = matrix_table(&self.layers_a, &self.layers_b, &self.matrix.values);
        if let Some(sig) = &self.significance {
            t.push('\n');
            t.push_str(&sig.table(&self.layers_a, &self.layers_b, &self.matrix.values, "cka"));
        }
        t
    }

    /// The files [`Self::write_out`] writes.
    pub const OUT_FILES: [&'static str; 5] = [
        "cka.csv",
        "cka.parquet",
        "cka.json",
        "heatmap.png",
        "heatmap.svg",
    ];

    /// Write `cka.csv`, `cka.parquet`, `cka.json`, `heatmap.png` and `heatmap.svg` into `dir`
    /// as one set (see [`crate::outset`]), and [`SIGNIFICANCE_FILES`] when significance was
    /// computed; refuses to replace either input.
    pub fn write_out(&self, dir: &Path) -> Result<Vec<PathBuf>> {
        let mut names: Vec<&str> = Self::OUT_FILES.to_vec();
        if self.significance.is_some() {
            names.extend(SIGNIFICANCE_FILES);
        }
        let corrected = self.significance.as_ref().and_then(|g| g.corrected());
        if corrected.is_some() {
            names.extend(CORRECTED_HEATMAPS);
        }
        let set = crate::outset::OutputSet::new(dir, &names, &[&self.a, &self.b])?;
        if let Some(sig) = &self.significance {
            let t = sig.long_table(&self.layers_a, &self.layers_b, &self.matrix.values, "cka");
            strata_report::write_table(&t, set.root(), "significance")?;
        }
        let v = &self.matrix.values;
        let csv = strata_report::matrix_csv(&self.layers_a, &self.layers_b, v);
        let paths: Vec<PathBuf> = Self::OUT_FILES.iter().map(|f| set.path(f)).collect();
        strata_report::write_atomic(&paths[0], csv.as_bytes())?;
        strata_report::write_matrix_parquet(&paths[1], &self.layers_a, &self.layers_b, v)?;
        let mut j = self.json();
        if self.is_single() {
            // The file form always carries the matrix, so scripts can read every output alike.
            let o = j.as_object_mut().expect("object");
            o.insert("layers_a".into(), json!(self.layers_a));
            o.insert("layers_b".into(), json!(self.layers_b));
            o.insert("matrix".into(), json!(v));
        }
        let text = serde_json::to_string_pretty(&j)?;
        strata_report::write_atomic(&paths[2], text.as_bytes())?;
        let file = |p: &Path| {
            p.file_name()
                .map(|s| s.to_string_lossy().into_owned())
                .unwrap_or_default()
        };
        let hm = strata_report::Heatmap {
            title: format!(
                "{}: {} vs {}",
                self.measure_name(),
                file(&self.a),
                file(&self.b)
            ),
            rows: &self.layers_a,
            cols: &self.layers_b,
            values: v,
            x_label: format!("layers of {}", file(&self.b)),
            y_label: format!("layers of {}", file(&self.a)),
            colorbar_label: format!("{} (n = {})", self.measure_name(), self.matrix.n),
            range: (0.0, 1.0),
        };
        strata_report::heatmap_png(&hm, &paths[3])?;
        strata_report::heatmap_svg(&hm, &paths[4])?;
        if let Some(c) = &corrected {
            let hc = corrected_heatmap(&hm, c);
            strata_report::heatmap_png(&hc, &set.path(CORRECTED_HEATMAPS[0]))?;
            strata_report::heatmap_svg(&hc, &set.path(CORRECTED_HEATMAPS[1]))?;
        }
        set.commit()
    }
}

/// The heatmaps `write_out` adds when a permutation null was computed: the null-corrected
/// values (the measure minus the chance level of the same layers), on [-1, 1].
pub const CORRECTED_HEATMAPS: [&str; 2] = ["heatmap-corrected.png", "heatmap-corrected.svg"];

/// `raw`'s heatmap redrawn with the null-corrected values: 0 is chance, whatever the widths
/// and the number of examples made the raw chance level.
pub(crate) fn corrected_heatmap<'a>(
    raw: &strata_report::Heatmap<'a>,
    corrected: &'a [Vec<Option<f64>>],
) -> strata_report::Heatmap<'a> {
    strata_report::Heatmap {
        title: format!("{} (minus chance)", raw.title),
        rows: raw.rows,
        cols: raw.cols,
        values: corrected,
        x_label: raw.x_label.clone(),
        y_label: raw.y_label.clone(),
        colorbar_label: format!("{} minus the null mean", raw.colorbar_label),
        range: (-1.0, 1.0),
    }
}

/// A matrix as an aligned text table: rows = `rows`, columns = `cols`, 4 decimals, `n/a` for
/// undefined values.
pub fn matrix_table(rows: &[String], cols: &[String], values: &[Vec<Option<f64>>]) -> String {
    let w0 = rows
        .iter()
        .map(|s| s.chars().count())
        .max()
        .unwrap_or(5)
        .max(5);
    let ws: Vec<usize> = cols.iter().map(|s| s.chars().count().max(6)).collect();
    let mut out = format!("{:<w0$}", "A \\ B");
    for (name, w) in cols.iter().zip(&ws) {
        out.push_str(&format!("  {name:>w$}"));
    }
    out.push('\n');
    for (name, row) in rows.iter().zip(values) {
        out.push_str(&format!("{name:<w0$}"));
        for (v, w) in row.iter().zip(&ws) {
            let cell = v.map_or("n/a".to_string(), |v| format!("{v:.4}"));
            out.push_str(&format!("  {cell:>w$}"));
        }
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::read_ahead;
    use anyhow::bail;
    use std::sync::atomic::{AtomicUsize, Ordering};

    #[test]
    fn read_ahead_keeps_the_order_and_every_item() {
        let mut i = 0;
        let mut seen = Vec::new();
        read_ahead(
            || {
                i += 1;
                Ok((i <= 100).then_some(i))
            },
            |x| {
                seen.push(x);
                Ok(())
            },
        )
        .unwrap();
        assert_eq!(seen, (1..=100).collect::<Vec<_>>());
    }

    #[test]
    fn read_ahead_returns_the_first_error_of_either_side() {
        // The producer fails after 3 items: the consumer saw exactly those.
        let (mut i, mut seen) = (0, 0);
        let e = read_ahead(
            || {
                i += 1;
                if i == 4 {
                    bail!("bad batch {i}")
                }
                Ok(Some(i))
            },
            |_| {
                seen += 1;
                Ok(())
            },
        )
        .unwrap_err();
        assert_eq!((e.to_string(), seen), ("bad batch 4".into(), 3));
        // The consumer fails on item 2: the producer stops a few items later, not at the end.
        let made = AtomicUsize::new(0);
        let e = read_ahead(
            || Ok(Some(made.fetch_add(1, Ordering::SeqCst))),
            |x| {
                if x == 2 {
                    bail!("cannot use {x}")
                } else {
                    Ok(())
                }
            },
        )
        .unwrap_err();
        assert_eq!(e.to_string(), "cannot use 2");
        assert!(made.load(Ordering::SeqCst) <= 6, "the producer kept going");
    }
}
