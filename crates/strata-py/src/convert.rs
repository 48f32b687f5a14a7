//! NumPy array-likes in, `n x p` f32 matrices out.
//!
//! Any array-like of a real dtype and any layout is accepted. A float32 or float64 array is read
//! in place through its buffer (no Python-side copy); other dtypes (float16, integers, bool,
//! non-native byte order) are converted by NumPy first. Either way the values are copied once
//! into an owned matrix, the working buffer the engine centers in place. The first axis indexes
//! examples; the others are flattened in C order (rank 1 is one feature per example). The copy
//! is made with the GIL held, so no other Python thread can write the buffer while it is read;
//! the computation that follows runs with the GIL released.

use crate::err;
use ndarray::{Array2, ArrayViewD};
use numpy::{
    PyArrayDescrMethods, PyArrayDyn, PyArrayMethods, PyUntypedArray, PyUntypedArrayMethods,
};
use pyo3::prelude::*;

/// One input array as the engine needs it, with the shape it came in.
pub(crate) struct Matrix {
    /// `n x p`, row-major, every value finite.
    pub(crate) data: Array2<f32>,
    /// The input's shape (`(n,)` for rank 1).
    pub(crate) shape: Vec<usize>,
}

/// A value type the buffer may hold, read as f32.
trait Element: Copy + Send + Sync {
    fn to_f32(self) -> f32;
    /// Finite here (so a non-finite f32 means the value is beyond f32's range).
    fn finite(self) -> bool;
}

impl Element for f32 {
    fn to_f32(self) -> f32 {
        self
    }
    fn finite(self) -> bool {
        self.is_finite()
    }
}

impl Element for f64 {
    fn to_f32(self) -> f32 {
        self as f32
    }
    fn finite(self) -> bool {
        self.is_finite()
    }
}

/// Copy `a` into an owned `n x p` matrix in C order, rejecting NaN, Inf and values beyond
/// float32's range (naming the first one as the engine does).
fn flatten<T: Element>(a: ArrayViewD<'_, T>, name: &str) -> PyResult<Array2<f32>> {
    let n = a.shape()[0];
    // Rank 1: the empty product, one feature per example.
    let p: usize = a.shape()[1..].iter().product();
    let mut out = Vec::with_capacity(n.saturating_mul(p));
    let mut bad: Option<(usize, bool)> = None;
    let mut push = |v: T| {
        let f = v.to_f32();
        if bad.is_none() && !f.is_finite() {
            bad = Some((out.len(), v.finite()));
        }
        out.push(f);
    };
    match a.as_slice() {
        Some(s) => s.iter().for_each(|&v| push(v)),
        None => a.iter().for_each(|&v| push(v)),
    }
    if let Some((at, overflow)) = bad {
        let (example, feature) = (at / p.max(1), at % p.max(1));
        return Err(err(if overflow {
            format!(
                "{name} holds a value beyond float32's range (first at example {example}, \
                 feature {feature}); strata computes in float32, so rescale the array"
            )
        } else {
            format!(
                "{name}: {}",
                strata_sim::SimError::NonFinite { example, feature }
            )
        }));
    }
    Array2::from_shape_vec((n, p), out)
        .map_err(|e| err(format!("internal error (a bug in strata): {name}: {e}")))
}

/// Read `obj` (any NumPy array-like) as an `n x p` f32 matrix; `name` ("X", "layer 'fc' of A")
/// names it in errors.
pub(crate) fn matrix(py: Python<'_>, obj: &Bound<'_, PyAny>, name: &str) -> PyResult<Matrix> {
    let arr: Bound<'_, PyUntypedArray> = match obj.cast::<PyUntypedArray>() {
        Ok(a) => a.clone(),
        Err(_) => {
            let np = py.import("numpy")?;
            let a = np
                .call_method1("asarray", (obj,))
                .map_err(|e| err(format!("{name} cannot be read as an array: {e}")))?;
            a.cast_into::<PyUntypedArray>()
                .map_err(|e| err(format!("{name} cannot be read as an array: {e}")))?
        }
    };
    let dtype = arr.dtype();
    if !matches!(dtype.kind(), b'f' | b'i' | b'u' | b'b') {
        return Err(err(format!(
            "{name} has dtype {}; strata compares real numbers (a float, integer or bool array)",
            dtype.str().map(|s| s.to_string()).unwrap_or_default()
        )));
    }
    let shape = arr.shape().to_vec();
    if shape.is_empty() {
        return Err(err(format!(
            "{name} is a 0-d array (a scalar); expected an array of shape (examples, features...)"
        )));
    }
    let data = if let Ok(a) = arr.cast::<PyArrayDyn<f32>>() {
        let ro = a
            .try_readonly()
            .map_err(|e| err(format!("{name} cannot be read: {e}")))?;
        let view = ro.as_array();
        flatten(view, name)?
    } else if let Ok(a) = arr.cast::<PyArrayDyn<f64>>() {
        let ro = a
            .try_readonly()
            .map_err(|e| err(format!("{name} cannot be read: {e}")))?;
        let view = ro.as_array();
        flatten(view, name)?
    } else {
        // float16, integers, bool, non-native byte order: NumPy converts.
        let conv = arr
            .call_method1("astype", ("float32",))
            .map_err(|e| err(format!("{name} cannot be converted to float32: {e}")))?;
        let a = conv
            .cast::<PyArrayDyn<f32>>()
            .map_err(|e| err(format!("{name} cannot be converted to float32: {e}")))?;
        let ro = a
            .try_readonly()
            .map_err(|e| err(format!("{name} cannot be read: {e}")))?;
        let view = ro.as_array();
        flatten(view, name)?
    };
    Ok(Matrix { data, shape })
}

/// Named layers: `names[i]` for `arrays[i]`, read as matrices named `layer '<name>' of <side>`.
pub(crate) fn layers(
    py: Python<'_>,
    names: &[String],
    arrays: &[Bound<'_, PyAny>],
    side: &str,
) -> PyResult<Vec<Array2<f32>>> {
    if names.len() != arrays.len() {
        return Err(err(format!(
            "internal error (a bug in strata): {} names for {} arrays",
            names.len(),
            arrays.len()
        )));
    }
    if arrays.is_empty() {
        return Err(err(format!("{side} holds no layers")));
    }
    names
        .iter()
        .zip(arrays)
        .map(|(n, a)| matrix(py, a, &layer_label(n, side)).map(|m| m.data))
        .collect()
}

/// How errors name a layer: `layer 'fc1' of A`.
pub(crate) fn layer_label(name: &str, side: &str) -> String {
    format!("layer '{name}' of {side}")
}
