//! CKA and the baseline measures: one pair, all pairs, and minibatch accumulation.

use crate::convert::{layer_label, layers, matrix};
use crate::{err, guarded};
use ndarray::Array2;
use numpy::IntoPyArray;
use pyo3::prelude::*;
use pyo3::types::PyDict;
use strata_sim::{
    cka_all_pairs, measure_by_name, similarity_matrix, Basis, CkaMatrix, Estimator, Kernel,
    MinibatchCka, SimError, MEASURE_NAMES,
};

/// Parse `kernel` (`linear` or `rbf`) with the RBF `threshold`.
fn parse_kernel(kernel: &str, threshold: f64) -> PyResult<Kernel> {
    match kernel {
        "linear" => Ok(Kernel::Linear),
        "rbf" => {
            if !(threshold.is_finite() && threshold > 0.0) {
                return Err(err(format!(
                    "the RBF threshold must be a positive number, got {threshold}"
                )));
            }
            Ok(Kernel::Rbf { threshold })
        }
        other => Err(err(format!("unknown kernel '{other}': use linear or rbf"))),
    }
}

/// Parse `estimator` (`biased` or `debiased`).
fn parse_estimator(estimator: &str) -> PyResult<Estimator> {
    match estimator {
        "biased" => Ok(Estimator::Biased),
        "debiased" => Ok(Estimator::Debiased),
        other => Err(err(format!(
            "unknown estimator '{other}': use biased or debiased"
        ))),
    }
}

/// The CLI's message for two representations of different numbers of examples.
fn mismatch(a: &str, na: usize, b: &str, nb: usize, what: &str) -> PyErr {
    err(format!(
        "{a} has {na} examples but {b} has {nb}: {what} compares two representations of the \
         same examples, in the same order"
    ))
}

/// The number of examples every layer holds, or the CLI's mismatch error naming the first
/// layer that differs from the first layer of A.
fn common_rows(
    a: &[Array2<f32>],
    names_a: &[String],
    b: Option<(&[Array2<f32>], &[String])>,
    what: &str,
) -> PyResult<usize> {
    let n = a.first().map_or(0, |x| x.nrows());
    let first = layer_label(names_a.first().map_or("", |s| s.as_str()), "A");
    let mut all: Vec<(&Array2<f32>, String)> = a
        .iter()
        .zip(names_a)
        .map(|(x, s)| (x, layer_label(s, "A")))
        .collect();
    if let Some((b, names_b)) = b {
        all.extend(b.iter().zip(names_b).map(|(x, s)| (x, layer_label(s, "B"))));
    }
    for (x, label) in all {
        if x.nrows() != n {
            return Err(mismatch(&first, n, &label, x.nrows(), what));
        }
    }
    Ok(n)
}

/// The CLI's message when there are too few examples for the estimator.
fn check_examples(n: usize, estimator: Estimator, holder: &str) -> PyResult<()> {
    if n < estimator.min_examples() {
        return Err(err(format!(
            "the {} estimator needs at least {} examples; {holder} {n}",
            estimator.name(),
            estimator.min_examples()
        )));
    }
    Ok(())
}

fn sim_err(e: SimError) -> PyErr {
    err(e.to_string())
}

/// A `na x nb` matrix of optional values as float64 with NaN where undefined.
fn values_array(values: &[Vec<Option<f64>>], nb: usize) -> Array2<f64> {
    let na = values.len();
    Array2::from_shape_fn((na, nb), |(i, j)| {
        values[i].get(j).copied().flatten().unwrap_or(f64::NAN)
    })
}

/// Notes naming each undefined layer once: `layer 'fc' of A: <why>` (`layer 'fc': <why>` when
/// A is compared with itself, `same`).
fn cka_notes(m: &CkaMatrix, names_a: &[String], names_b: &[String], same: bool) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    let sides = [
        ("A", names_a, &m.undefined_a),
        ("B", names_b, &m.undefined_b),
    ];
    for (side, names, reasons) in sides.into_iter().take(if same { 1 } else { 2 }) {
        for (name, r) in names.iter().zip(reasons) {
            if let Some(r) = r {
                let label = if same {
                    format!("layer '{name}'")
                } else {
                    layer_label(name, side)
                };
                let note = format!("{label}: {r}");
                if !out.contains(&note) {
                    out.push(note);
                }
            }
        }
    }
    out
}

/// The dict the Python side turns into a `SimilarityResult`.
fn cka_dict<'py>(
    py: Python<'py>,
    m: &CkaMatrix,
    names_a: &[String],
    names_b: &[String],
    same: bool,
    mut notes: Vec<String>,
) -> PyResult<Bound<'py, PyDict>> {
    let d = PyDict::new(py);
    let nb = names_b.len();
    d.set_item("values", values_array(&m.values, nb).into_pyarray(py))?;
    let hsic = Array2::from_shape_fn((names_a.len(), nb), |(i, j)| m.hsic[i][j]);
    d.set_item("hsic", hsic.into_pyarray(py))?;
    d.set_item("self_a", m.self_a.clone())?;
    d.set_item("self_b", m.self_b.clone())?;
    d.set_item("n", m.n)?;
    d.set_item("batches", m.batches)?;
    let mut all = cka_notes(m, names_a, names_b, same);
    all.append(&mut notes);
    d.set_item("notes", all)?;
    Ok(d)
}

/// CKA between two representations of the same examples.
#[pyfunction]
#[pyo3(signature = (x, y, kernel = "linear", threshold = 0.5, estimator = "biased"))]
fn _cka(
    py: Python<'_>,
    x: &Bound<'_, PyAny>,
    y: &Bound<'_, PyAny>,
    kernel: &str,
    threshold: f64,
    estimator: &str,
) -> PyResult<f64> {
    guarded(|| {
        let kernel = parse_kernel(kernel, threshold)?;
        let estimator = parse_estimator(estimator)?;
        let x = matrix(py, x, "X")?.data;
        let y = matrix(py, y, "Y")?.data;
        if x.nrows() != y.nrows() {
            return Err(mismatch("X", x.nrows(), "Y", y.nrows(), "CKA"));
        }
        check_examples(x.nrows(), estimator, "X and Y hold")?;
        let m = py
            .detach(|| cka_all_pairs(vec![x], Some(vec![y]), kernel, estimator, &|_, _| {}))
            .map_err(sim_err)?;
        match m.values[0][0] {
            Some(v) => Ok(v),
            None => {
                let why: Vec<String> = [("X", &m.undefined_a[0]), ("Y", &m.undefined_b[0])]
                    .into_iter()
                    .filter_map(|(s, r)| r.as_ref().map(|r| format!("{s}: {r}")))
                    .collect();
                Err(err(format!("CKA is undefined: {}", why.join("; "))))
            }
        }
    })
}

/// CKA between every layer of A and every layer of B (`None`: A with itself) as a dict.
#[pyfunction]
#[pyo3(signature = (names_a, arrays_a, names_b, arrays_b, kernel = "linear", threshold = 0.5, estimator = "biased"))]
#[allow(clippy::too_many_arguments)]
fn _cka_matrix<'py>(
    py: Python<'py>,
    names_a: Vec<String>,
    arrays_a: Vec<Bound<'py, PyAny>>,
    names_b: Option<Vec<String>>,
    arrays_b: Option<Vec<Bound<'py, PyAny>>>,
    kernel: &str,
    threshold: f64,
    estimator: &str,
) -> PyResult<Bound<'py, PyDict>> {
    guarded(|| {
        let kernel = parse_kernel(kernel, threshold)?;
        let estimator = parse_estimator(estimator)?;
        let a = layers(py, &names_a, &arrays_a, "A")?;
        let b = match (&names_b, &arrays_b) {
            (Some(nb), Some(ab)) => Some(layers(py, nb, ab, "B")?),
            _ => None,
        };
        let nb_names = names_b.clone().unwrap_or_else(|| names_a.clone());
        let n = common_rows(
            &a,
            &names_a,
            b.as_deref().map(|b| (b, nb_names.as_slice())),
            "CKA",
        )?;
        check_examples(n, estimator, "the arrays hold")?;
        let m = py
            .detach(|| cka_all_pairs(a, b, kernel, estimator, &|_, _| {}))
            .map_err(sim_err)?;
        cka_dict(py, &m, &names_a, &nb_names, names_b.is_none(), Vec::new())
    })
}

/// One layer decomposed for the baseline measures, its errors naming it.
fn basis(x: &Array2<f32>, label: &str) -> PyResult<Basis> {
    Basis::new(x.view()).map_err(|e| err(format!("{label}: {e}")))
}

fn measure(name: &str) -> PyResult<Box<dyn strata_sim::Measure>> {
    measure_by_name(name).ok_or_else(|| {
        err(format!(
            "unknown measure '{name}': use cka, {}",
            MEASURE_NAMES.join(", ")
        ))
    })
}

/// A baseline measure (any of `MEASURE_NAMES`) between two representations.
#[pyfunction]
#[pyo3(signature = (x, y, measure = "cka_linear"))]
fn _similarity(
    py: Python<'_>,
    x: &Bound<'_, PyAny>,
    y: &Bound<'_, PyAny>,
    measure: &str,
) -> PyResult<f64> {
    guarded(|| {
        let m = self::measure(measure)?;
        let x = matrix(py, x, "X")?.data;
        let y = matrix(py, y, "Y")?.data;
        if x.nrows() != y.nrows() {
            return Err(mismatch("X", x.nrows(), "Y", y.nrows(), "similarity"));
        }
        py.detach(|| {
            let bx = basis(&x, "X")?;
            let by = basis(&y, "Y")?;
            m.between(&bx, &by).map_err(sim_err)
        })
    })
}

/// A baseline measure between every layer of A and every layer of B, as a dict.
#[pyfunction]
#[pyo3(signature = (names_a, arrays_a, names_b, arrays_b, measure = "cka_linear"))]
fn _similarity_matrix<'py>(
    py: Python<'py>,
    names_a: Vec<String>,
    arrays_a: Vec<Bound<'py, PyAny>>,
    names_b: Option<Vec<String>>,
    arrays_b: Option<Vec<Bound<'py, PyAny>>>,
    measure: &str,
) -> PyResult<Bound<'py, PyDict>> {
    guarded(|| {
        let m = self::measure(measure)?;
        let a = layers(py, &names_a, &arrays_a, "A")?;
        let b = match (&names_b, &arrays_b) {
            (Some(nb), Some(ab)) => Some(layers(py, nb, ab, "B")?),
            _ => None,
        };
        let lb = names_b.clone().unwrap_or_else(|| names_a.clone());
        let n = common_rows(
            &a,
            &names_a,
            b.as_deref().map(|b| (b, lb.as_slice())),
            "similarity",
        )?;
        let (values, notes) = py.detach(|| -> PyResult<_> {
            let ba = a
                .iter()
                .zip(&names_a)
                .map(|(x, s)| basis(x, &layer_label(s, "A")))
                .collect::<PyResult<Vec<_>>>()?;
            let bb = match &b {
                Some(b) => Some(
                    b.iter()
                        .zip(&lb)
                        .map(|(x, s)| basis(x, &layer_label(s, "B")))
                        .collect::<PyResult<Vec<_>>>()?,
                ),
                None => None,
            };
            // The same slice on both sides lets a symmetric measure compute one triangle.
            let bref = bb.as_deref().unwrap_or(&ba);
            let values = similarity_matrix(m.as_ref(), &ba, bref);
            let mut notes = Vec::new();
            for (i, row) in values.iter().enumerate() {
                for (j, v) in row.iter().enumerate() {
                    if v.is_none() {
                        if let Err(e) = m.between(&ba[i], &bref[j]) {
                            let note = format!("{} vs {}: {e}", names_a[i], lb[j]);
                            if !notes.contains(&note) && notes.len() < 20 {
                                notes.push(note);
                            }
                        }
                    }
                }
            }
            Ok((values, notes))
        })?;
        let d = PyDict::new(py);
        d.set_item("values", values_array(&values, lb.len()).into_pyarray(py))?;
        d.set_item("n", n)?;
        d.set_item("notes", notes)?;
        d.set_item("measure", m.name())?;
        d.set_item("higher_is_similar", m.higher_is_similar())?;
        d.set_item("symmetric", m.symmetric())?;
        Ok(d)
    })
}

/// What a minibatch accumulator has seen: fixed by its first batch.
struct Started {
    acc: MinibatchCka,
    names_a: Vec<String>,
    names_b: Option<Vec<String>>,
}

/// Minibatch CKA accumulator (Nguyen, Raghu & Kornblith 2021), the engine behind
/// `strata.MinibatchCKA`.
#[pyclass(module = "strata._strata", name = "_Minibatch")]
struct Minibatch {
    kernel: Kernel,
    started: Option<Started>,
}

#[pymethods]
impl Minibatch {
    /// An empty accumulator for `kernel` (`linear` or `rbf` with `threshold`).
    #[new]
    #[pyo3(signature = (kernel = "linear", threshold = 0.5))]
    fn new(kernel: &str, threshold: f64) -> PyResult<Self> {
        guarded(|| {
            Ok(Minibatch {
                kernel: parse_kernel(kernel, threshold)?,
                started: None,
            })
        })
    }

    /// Add one minibatch: the same rows of every layer of A (and of B unless `None`).
    #[pyo3(signature = (names_a, arrays_a, names_b = None, arrays_b = None))]
    fn update<'py>(
        &mut self,
        py: Python<'py>,
        names_a: Vec<String>,
        arrays_a: Vec<Bound<'py, PyAny>>,
        names_b: Option<Vec<String>>,
        arrays_b: Option<Vec<Bound<'py, PyAny>>>,
    ) -> PyResult<()> {
        guarded(|| {
            let a = layers(py, &names_a, &arrays_a, "A")?;
            let b = match (&names_b, &arrays_b) {
                (Some(nb), Some(ab)) => Some(layers(py, nb, ab, "B")?),
                _ => None,
            };
            let lb = names_b.clone().unwrap_or_else(|| names_a.clone());
            let rows = a.first().map_or(0, |x| x.nrows());
            let first = layer_label(&names_a[0], "A");
            for (x, label) in a
                .iter()
                .zip(&names_a)
                .map(|(x, s)| (x, layer_label(s, "A")))
                .chain(
                    b.iter()
                        .flatten()
                        .zip(&lb)
                        .map(|(x, s)| (x, layer_label(s, "B"))),
                )
            {
                if x.nrows() != rows {
                    return Err(err(format!(
                        "{first} has {rows} rows but {label} has {}: a minibatch holds the \
                         same examples for every layer",
                        x.nrows()
                    )));
                }
            }
            let kernel = self.kernel;
            let st = self.started.get_or_insert_with(|| Started {
                acc: MinibatchCka::new(names_a.len(), lb.len(), kernel, names_b.is_none()),
                names_a: names_a.clone(),
                names_b: names_b.clone(),
            });
            if st.names_a != names_a || st.names_b != names_b {
                let list = |v: &[String]| {
                    let quoted: Vec<String> = v.iter().map(|s| format!("'{s}'")).collect();
                    format!("[{}]", quoted.join(", "))
                };
                let show = |a: &[String], b: &Option<Vec<String>>| match b {
                    Some(b) => format!("A {}, B {}", list(a), list(b)),
                    None => format!("A {} (with itself)", list(a)),
                };
                return Err(err(format!(
                    "this batch has layers {} but the first had {}: every update must pass the \
                     same layers, in the same order",
                    show(&names_a, &names_b),
                    show(&st.names_a, &st.names_b)
                )));
            }
            let acc = &mut st.acc;
            py.detach(|| acc.update(a, b)).map_err(sim_err)
        })
    }

    /// Batches accumulated so far (batches under 4 examples are skipped, not counted).
    #[getter]
    fn batches(&self) -> usize {
        self.started.as_ref().map_or(0, |s| s.acc.finish().batches)
    }

    /// Examples accumulated so far.
    #[getter]
    fn examples(&self) -> usize {
        self.started.as_ref().map_or(0, |s| s.acc.finish().n)
    }

    /// Examples left out because their batch had fewer than 4.
    #[getter]
    fn skipped(&self) -> usize {
        self.started.as_ref().map_or(0, |s| s.acc.skipped())
    }

    /// The CKA matrix from the batches so far, as a dict (plus the layer names).
    fn result<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        guarded(|| {
            let st = self.started.as_ref().ok_or_else(|| {
                err("MinibatchCKA has no batch yet: call update(acts_a, acts_b) first")
            })?;
            let m = st.acc.finish();
            let lb = st.names_b.clone().unwrap_or_else(|| st.names_a.clone());
            let mut extra = Vec::new();
            if m.batches == 0 {
                extra.push("no batch had the 4 examples the unbiased estimator needs".to_string());
            }
            if st.acc.skipped() > 0 {
                extra.push(format!(
                    "{} example(s) in batches smaller than 4 were left out (the unbiased HSIC \
                     estimator needs n >= 4)",
                    st.acc.skipped()
                ));
            }
            let d = cka_dict(py, &m, &st.names_a, &lb, st.names_b.is_none(), extra)?;
            d.set_item("layers_a", st.names_a.clone())?;
            d.set_item("layers_b", lb)?;
            Ok(d)
        })
    }
}

/// The range a measure's values take, `(low, high)`, for colour scales (`(-1, 1)` for rsa
/// and cknna, `(0, 1)` otherwise).
#[pyfunction]
fn _value_range(measure: &str) -> (f64, f64) {
    strata_sim::value_range(measure)
}

pub(crate) fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(_value_range, m)?)?;
    m.add_function(wrap_pyfunction!(_cka, m)?)?;
    m.add_function(wrap_pyfunction!(_cka_matrix, m)?)?;
    m.add_function(wrap_pyfunction!(_similarity, m)?)?;
    m.add_function(wrap_pyfunction!(_similarity_matrix, m)?)?;
    m.add_class::<Minibatch>()?;
    Ok(())
}
