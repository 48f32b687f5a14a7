//! `strata cka A B --measure NAME`: the baseline similarity measures of Kornblith et al. 2019
//! (CCA, SVCCA, PWCCA, linear regression, orthogonal Procrustes, unnormalized linear HSIC) between
//! every layer of A and every layer of B, from the same activation files as CKA.

use crate::compare::{Significance, SignificanceResult, CORRECTED_HEATMAPS, SIGNIFICANCE_FILES};
use crate::progress::Progress;
use anyhow::{anyhow, bail, Context, Result};
use ndarray::Array2;
use serde_json::json;
use std::path::{Path, PathBuf};
use std::time::Instant;
use strata_sim::{
    measure_bootstrap_all_pairs, measure_by_name, measure_null_all_pairs, similarity_matrix, Basis,
    BootstrapOptions, Measure, NullMethod, NullOptions, MEASURE_NAMES,
};

/// A matrix of one baseline measure.
pub struct MeasureResult {
    /// Activation store of model A.
    pub a: PathBuf,
    /// Activation store of model B.
    pub b: PathBuf,
    /// The measure's name.
    pub measure: &'static str,
    /// Larger values mean more similar (false for distances).
    pub higher_is_similar: bool,
    /// The measure gives the same value with A and B swapped.
    pub symmetric: bool,
    /// Layer names of A: the rows of `values`.
    pub layers_a: Vec<String>,
    /// Layer names of B: the columns of `values`.
    pub layers_b: Vec<String>,
    /// `values[i][j]`: the measure between layer i of A and layer j of B (`None` where undefined).
    pub values: Vec<Vec<Option<f64>>>,
    /// Why a layer's values are undefined (e.g. a constant layer), one line per layer.
    pub notes: Vec<String>,
    /// Examples compared.
    pub n: usize,
    /// Seconds the comparison took, reading the stores included.
    pub seconds: f64,
    /// The permutation null and bootstrap intervals, when asked for ([`run_with`]).
    pub significance: Option<SignificanceResult>,
}

/// Names `--measure` accepts besides `cka`.
pub fn names() -> String {
    format!(
        "{} (mutual_knn and cknna take another neighbour count as mutual_knn:k=20)",
        MEASURE_NAMES.join(", ")
    )
}

fn bases(
    path: &Path,
    names: &Option<Vec<String>>,
    progress: &dyn Progress,
) -> Result<(Vec<String>, Vec<Basis>, usize)> {
    let f = strata_data::open(path)?;
    let ids = crate::compare::select(&f, names)?;
    let pb = progress.task("bases", "layers", ids.len() as u64);
    let mut out = Vec::with_capacity(ids.len());
    for &i in &ids {
        let x = f.read_layer(i)?;
        let name = &f.layers()[i].name;
        out.push(
            Basis::new(x.view())
                .with_context(|| format!("layer '{name}' of {}", path.display()))?,
        );
        pb.inc(1);
    }
    pb.finish();
    let names = ids.iter().map(|&i| f.layers()[i].name.clone()).collect();
    Ok((names, out, f.n()))
}

/// Compute `measure` between the selected layers of `a` and `b`, reporting to `progress`.
pub fn run(
    a: &Path,
    b: &Path,
    measure: &str,
    layers_a: &Option<Vec<String>>,
    layers_b: &Option<Vec<String>>,
    progress: &dyn Progress,
) -> Result<MeasureResult> {
    run_with(
        a,
        b,
        measure,
        layers_a,
        layers_b,
        &Significance::default(),
        progress,
    )
}

/// [`run`], then the permutation null and/or bootstrap intervals `sig` asks for. Every draw
/// rebuilds the bases (an SVD per layer) of the permuted or resampled layers, so this costs
/// about `B` times the bases of B's layers (permutations) or of every layer (bootstrap).
pub fn run_with(
    a: &Path,
    b: &Path,
    measure: &str,
    layers_a: &Option<Vec<String>>,
    layers_b: &Option<Vec<String>>,
    sig: &Significance,
    progress: &dyn Progress,
) -> Result<MeasureResult> {
    let t = Instant::now();
    let m = measure_by_name(measure)
        .ok_or_else(|| anyhow!("unknown measure '{measure}': use cka, {}", names()))?;
    if sig.requested() {
        sig.check()?;
    }
    let (la, ba, na) = bases(a, layers_a, progress)?;
    let (lb, bb, nb) = bases(b, layers_b, progress)?;
    if na != nb {
        bail!(
            "{} has {na} examples but {} has {nb}: similarity compares two representations of \
             the same examples, in the same order",
            a.display(),
            b.display()
        );
    }
    // Each draw keeps a value per cell (the bases are rebuilt one draw at a time).
    let cells = ba.len() * bb.len();
    let drawn = sig.permutations.filter(|_| sig.null == NullMethod::Draws);
    let most = drawn.unwrap_or(0).max(sig.bootstrap.unwrap_or(0));
    crate::compare::fits_in_memory(crate::compare::kept_draws_bytes(cells, most))?;
    let values = similarity_matrix(m.as_ref(), &ba, &bb);
    // A cell is undefined only for a reason the measure gives; name it once per layer.
    let mut notes = Vec::new();
    for (i, row) in values.iter().enumerate() {
        for (j, v) in row.iter().enumerate() {
            if v.is_none() {
                if let Err(e) = m.between(&ba[i], &bb[j]) {
                    let note = format!("{} vs {}: {e}", la[i], lb[j]);
                    if !notes.contains(&note) && notes.len() < 20 {
                        notes.push(note);
                    }
                }
            }
        }
    }
    let significance = if sig.requested() {
        Some(measure_significance(
            m.as_ref(),
            (a, layers_a),
            (b, layers_b),
            sig,
            progress,
        )?)
    } else {
        None
    };
    Ok(MeasureResult {
        a: a.to_path_buf(),
        b: b.to_path_buf(),
        measure: m.name(),
        higher_is_similar: m.higher_is_similar(),
        symmetric: m.symmetric(),
        layers_a: la,
        layers_b: lb,
        values,
        notes,
        n: na,
        seconds: t.elapsed().as_secs_f64(),
        significance,
    })
}

/// The selected layers of `path`, as read (no basis).
fn read_layers(path: &Path, names: &Option<Vec<String>>) -> Result<Vec<Array2<f32>>> {
    let f = strata_data::open(path)?;
    let ids = crate::compare::select(&f, names)?;
    ids.iter()
        .map(|&i| f.read_layer(i).map_err(Into::into))
        .collect()
}

/// Read the layers again and run the generic permutation null and/or bootstrap.
fn measure_significance(
    m: &dyn Measure,
    (a, layers_a): (&Path, &Option<Vec<String>>),
    (b, layers_b): (&Path, &Option<Vec<String>>),
    sig: &Significance,
    progress: &dyn Progress,
) -> Result<SignificanceResult> {
    let start = Instant::now();
    let ra = read_layers(a, layers_a)?;
    let rb = read_layers(b, layers_b)?;
    let va: Vec<_> = ra.iter().map(|x| x.view()).collect();
    let vb: Vec<_> = rb.iter().map(|x| x.view()).collect();
    let null = match sig.permutations {
        Some(p) => {
            let pb = progress.task("permutation null", "draws", p as u64);
            let opts = NullOptions {
                permutations: p,
                seed: sig.seed,
            };
            let r = measure_null_all_pairs(m, &va, Some(&vb), &opts, &|_, _| pb.inc(1))?;
            pb.finish();
            Some(r)
        }
        None => None,
    };
    let bootstrap = match sig.bootstrap {
        Some(r) => {
            let pb = progress.task("bootstrap", "resamples", r as u64);
            let opts = BootstrapOptions {
                resamples: r,
                confidence: sig.confidence,
                seed: sig.seed,
            };
            let res = measure_bootstrap_all_pairs(m, &va, Some(&vb), &opts, &|_, _| pb.inc(1))?;
            pb.finish();
            Some(res)
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

impl MeasureResult {
    /// True when both sides hold one layer.
    pub fn is_single(&self) -> bool {
        self.layers_a.len() == 1 && self.layers_b.len() == 1
    }

    /// The result as one JSON object, shaped like `strata cka --json`.
    pub fn json(&self) -> serde_json::Value {
        let mut v = json!({
            "a": self.a.display().to_string(),
            "b": self.b.display().to_string(),
            "measure": self.measure,
            "higher_is_similar": self.higher_is_similar,
            "symmetric": self.symmetric,
            "n": self.n,
            "seconds": self.seconds,
            "notes": self.notes,
        });
        let o = v.as_object_mut().expect("object");
        if self.is_single() {
            o.insert("value".into(), json!(self.values[0][0]));
            o.insert("layer_a".into(), json!(self.layers_a[0]));
            o.insert("layer_b".into(), json!(self.layers_b[0]));
        } else {
            o.insert("layers_a".into(), json!(self.layers_a));
            o.insert("layers_b".into(), json!(self.layers_b));
            o.insert("values".into(), json!(self.values));
        }
        if let Some(sig) = &self.significance {
            sig.add_json(o, self.is_single());
        }
        v
    }

    /// The files [`Self::write_out`] writes: `MEASURE.csv`, `MEASURE.parquet`, `MEASURE.json`,
    /// and a heatmap when the values lie on [0, 1] (all but HSIC and the Procrustes distance).
    pub fn out_files(&self) -> Vec<String> {
        let stem = self.measure;
        let mut names = vec![
            format!("{stem}.csv"),
            format!("{stem}.parquet"),
            format!("{stem}.json"),
        ];
        if self.has_heatmap() {
            names.push("heatmap.png".into());
            names.push("heatmap.svg".into());
        }
        if self.significance.is_some() {
            names.extend(SIGNIFICANCE_FILES.map(String::from));
        }
        if self.has_heatmap() && self.corrected().is_some() {
            names.extend(CORRECTED_HEATMAPS.map(String::from));
        }
        names
    }

    /// The null-corrected values, when a permutation null was computed.
    fn corrected(&self) -> Option<Vec<Vec<Option<f64>>>> {
        self.significance.as_ref().and_then(|g| g.corrected())
    }

    fn has_heatmap(&self) -> bool {
        !matches!(self.measure, "hsic" | "procrustes")
    }

    /// Write [`Self::out_files`] into `dir` as one set (see [`crate::outset`]); refuses to
    /// replace either input.
    pub fn write_out(&self, dir: &Path) -> Result<Vec<PathBuf>> {
        let names = self.out_files();
        let refs: Vec<&str> = names.iter().map(String::as_str).collect();
        let set = crate::outset::OutputSet::new(dir, &refs, &[&self.a, &self.b])?;
        let paths: Vec<PathBuf> = names.iter().map(|n| set.path(n)).collect();
        let v = &self.values;
        if let Some(sig) = &self.significance {
            let t = sig.long_table(&self.layers_a, &self.layers_b, v, self.measure);
            strata_report::write_table(&t, set.root(), "significance")?;
        }
        let csv = strata_report::matrix_csv(&self.layers_a, &self.layers_b, v);
        strata_report::write_atomic(&paths[0], csv.as_bytes())?;
        strata_report::write_matrix_parquet(&paths[1], &self.layers_a, &self.layers_b, v)?;
        let mut j = self.json();
        if let Some(o) = j.as_object_mut() {
            o.insert("layers_a".into(), json!(self.layers_a));
            o.insert("layers_b".into(), json!(self.layers_b));
            o.insert("matrix".into(), json!(v));
        }
        strata_report::write_atomic(&paths[2], serde_json::to_string_pretty(&j)?.as_bytes())?;
        if self.has_heatmap() {
            let file = |p: &Path| {
                p.file_name()
                    .map(|s| s.to_string_lossy().into_owned())
                    .unwrap_or_default()
            };
            let hm = strata_report::Heatmap {
                title: format!("{}: {} vs {}", self.measure, file(&self.a), file(&self.b)),
                rows: &self.layers_a,
                cols: &self.layers_b,
                values: v,
                x_label: format!("layers of {}", file(&self.b)),
                y_label: format!("layers of {}", file(&self.a)),
                colorbar_label: format!("{} (n = {})", self.measure, self.n),
                range: strata_sim::value_range(self.measure),
            };
            strata_report::heatmap_png(&hm, &paths[3])?;
            strata_report::heatmap_svg(&hm, &paths[4])?;
            if let Some(c) = self.corrected() {
                let hc = crate::compare::corrected_heatmap(&hm, &c);
                strata_report::heatmap_png(&hc, &set.path(CORRECTED_HEATMAPS[0]))?;
                strata_report::heatmap_svg(&hc, &set.path(CORRECTED_HEATMAPS[1]))?;
            }
        }
        set.commit()
    }
}
