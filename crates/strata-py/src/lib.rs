//! `strata._strata`: the compiled core of the `strata` Python package.
//!
//! A thin pyo3 layer over the library crates: NumPy arrays in and out, the GIL released while
//! Rust computes, every Rust error (and any panic, which would be a bug) raised as
//! `strata.StrataError` with the same one-line message the `strata` CLI prints. The public
//! Python API (`strata.cka`, `strata.cka_matrix`, `SimilarityResult`, ...) lives in
//! `python/strata/`; this crate exposes the pieces it is built from.

mod convert;
mod privacy;
mod report;
mod sim;
mod store;

use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use std::panic::{catch_unwind, AssertUnwindSafe};

pyo3::create_exception!(
    strata,
    StrataError,
    PyValueError,
    "An error raised by strata, with the same one-line message as the ``strata`` CLI.\n\n\
     A subclass of :class:`ValueError`: the input cannot be compared as given (examples that \
     differ in number, NaN or Inf, too few examples for the estimator, an unreadable file...)."
);

/// A `StrataError` carrying `msg`.
pub(crate) fn err(msg: impl Into<String>) -> PyErr {
    StrataError::new_err(msg.into())
}

/// Run `f`, turning a panic (a bug in strata) into `StrataError("internal error ...")` so that
/// no panic ever crosses into Python.
pub(crate) fn guarded<T>(f: impl FnOnce() -> PyResult<T>) -> PyResult<T> {
    match catch_unwind(AssertUnwindSafe(f)) {
        Ok(r) => r,
        Err(payload) => {
            let what = payload
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| payload.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "unknown panic".to_string());
            Err(err(format!(
                "internal error (a bug in strata; please report it): {what}"
            )))
        }
    }
}

/// Raise a panic inside a guarded entry point (for the tests of the panic guard).
#[pyfunction]
fn _panic_for_test() -> PyResult<()> {
    guarded(|| -> PyResult<()> { panic!("deliberate panic for the test suite") })
}

/// The compiled module.
#[pymodule]
fn _strata(m: &Bound<'_, PyModule>) -> PyResult<()> {
    let py = m.py();
    m.add("StrataError", py.get_type::<StrataError>())?;
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    m.add("MEASURE_NAMES", strata_sim::MEASURE_NAMES.to_vec())?;
    m.add_function(wrap_pyfunction!(_panic_for_test, m)?)?;
    sim::register(m)?;
    store::register(m)?;
    report::register(m)?;
    privacy::register(m)?;
    Ok(())
}
