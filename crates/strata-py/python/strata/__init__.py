"""strata: compare what neural networks learn.

CKA (linear and RBF kernels, biased and debiased estimators, minibatch CKA) and the baselines
of Kornblith et al. 2019 (CCA, SVCCA, PWCCA, linear regression, Procrustes, HSIC) on NumPy
arrays and activation files, computed by strata's Rust engine with the GIL released.

Arrays are ``(examples, features...)``: the first axis indexes examples (the same examples, in
the same order, for every representation compared); further axes are flattened per example; a
1-d array is one feature per example. Any real dtype and any memory layout is accepted; values
are computed in float32 (as the ``strata`` CLI does), results are float64.

Examples
--------
>>> import numpy as np, strata
>>> x = np.random.default_rng(0).normal(size=(500, 64))
>>> strata.cka(x, x @ np.linalg.qr(np.random.default_rng(1).normal(size=(64, 64)))[0])  # doctest: +SKIP
1.0
>>> r = strata.cka_matrix({"a": x, "b": np.tanh(x)})
>>> r.values.shape
(2, 2)
"""

from __future__ import annotations

import os
from typing import Any, Dict, Iterator, List, Mapping, Optional, Sequence, Tuple, Union

import numpy as np

from . import _strata
from . import privacy
from ._results import SimilarityResult
from ._strata import MEASURE_NAMES, StrataError

__version__: str = _strata.__version__

__all__ = [
    "MEASURE_NAMES",
    "MinibatchCKA",
    "SimilarityResult",
    "Store",
    "StoreWriter",
    "StrataError",
    "cka",
    "cka_matrix",
    "open",
    "privacy",
    "similarity",
    "similarity_matrix",
]

ArrayLike = Any
Layers = Union[Mapping[str, ArrayLike], Sequence[ArrayLike]]
PathLike = Union[str, "os.PathLike[str]"]


def _layers(layers: Layers, side: str) -> Tuple[List[str], List[ArrayLike]]:
    """Names and arrays of a dict ``name -> array`` or a list of arrays (named "0", "1", ...)."""
    if isinstance(layers, Mapping):
        return [str(k) for k in layers.keys()], list(layers.values())
    if isinstance(layers, np.ndarray) or not isinstance(layers, (list, tuple)):
        raise TypeError(
            f"{side} must be a dict name -> array or a list of arrays (one per layer), got "
            f"{type(layers).__name__}; for two single arrays use strata.cka(X, Y)"
        )
    return [str(i) for i in range(len(layers))], list(layers)


def cka(
    X: ArrayLike,
    Y: ArrayLike,
    kernel: str = "linear",
    threshold: float = 0.5,
    estimator: str = "biased",
) -> float:
    """Centered Kernel Alignment between two representations of the same examples.

    CKA (Kornblith et al. 2019) is ``HSIC(K, L) / sqrt(HSIC(K, K) HSIC(L, L))`` for the kernel
    matrices ``K`` of ``X`` and ``L`` of ``Y``. It is invariant to orthogonal transforms and
    isotropic scaling of either representation and lies in [0, 1] (the debiased estimator can
    fall slightly below 0).

    Parameters
    ----------
    X, Y : array_like
        ``(n, ...)`` arrays over the same ``n`` examples (same order); the feature counts may
        differ. Further axes are flattened per example.
    kernel : {"linear", "rbf"}, default "linear"
        ``K = X Xᵀ``, or ``K_ij = exp(-‖x_i - x_j‖² / (2 t² m))`` with ``m`` the median of all
        squared distances between examples (diagonal included) and ``t`` the threshold.
    threshold : float, default 0.5
        ``t`` for the RBF kernel (the bandwidth as a fraction of the median distance).
    estimator : {"biased", "debiased"}, default "biased"
        HSIC estimator: ``tr(KHLH)/(n-1)²`` (Kornblith et al.) or the unbiased estimator of
        Song et al. 2012 (needs ``n >= 4``).

    Returns
    -------
    float
        The CKA value.

    Raises
    ------
    StrataError
        Different numbers of examples, NaN or Inf, too few examples for the estimator, or CKA
        undefined (a constant representation), with the message the ``strata`` CLI prints.

    Examples
    --------
    >>> import numpy as np, strata
    >>> x = np.random.default_rng(0).normal(size=(100, 10))
    >>> round(strata.cka(x, 3 * x), 6)
    1.0
    """
    return _strata._cka(X, Y, kernel, threshold, estimator)


def cka_matrix(
    layers_a: Layers,
    layers_b: Optional[Layers] = None,
    kernel: str = "linear",
    threshold: float = 0.5,
    estimator: str = "biased",
) -> SimilarityResult:
    """CKA between every layer of A and every layer of B, each layer prepared once.

    Parameters
    ----------
    layers_a : dict of str to array_like, or list of array_like
        The layers of A (rows of the result), each ``(n, ...)`` over the same examples. A list
        names its layers ``"0"``, ``"1"``, ...
    layers_b : dict or list, optional
        The layers of B (columns). ``None`` compares A with itself, computing one triangle.
    kernel, threshold, estimator
        As in :func:`cka`.

    Returns
    -------
    SimilarityResult
        ``values[i, j]`` = CKA(A_i, B_j); NaN (with a note) where a layer makes it undefined.

    Raises
    ------
    StrataError
        Layers with different numbers of examples, NaN or Inf, too few examples.

    Examples
    --------
    >>> import numpy as np, strata
    >>> x = np.random.default_rng(0).normal(size=(200, 16))
    >>> r = strata.cka_matrix({"x": x, "relu": np.maximum(x, 0)})
    >>> r.layers_a, r.values.shape
    (['x', 'relu'], (2, 2))
    """
    names_a, arrays_a = _layers(layers_a, "layers_a")
    names_b, arrays_b = _layers(layers_b, "layers_b") if layers_b is not None else (None, None)
    d = _strata._cka_matrix(names_a, arrays_a, names_b, arrays_b, kernel, threshold, estimator)
    return SimilarityResult(
        d["values"],
        names_a,
        names_b if names_b is not None else names_a,
        "cka",
        d["n"],
        d["notes"],
        kernel=kernel,
        estimator=estimator,
        threshold=threshold if kernel == "rbf" else None,
        batches=d["batches"],
    )


def similarity(X: ArrayLike, Y: ArrayLike, measure: str = "cka") -> float:
    """A similarity (or distance) between two representations of the same examples.

    Parameters
    ----------
    X, Y : array_like
        ``(n, ...)`` arrays over the same ``n`` examples.
    measure : str, default "cka"
        ``"cka"`` (linear, biased: :func:`cka`) or one of :data:`MEASURE_NAMES`:
        ``cca_rho`` (mean canonical correlation), ``cca_r2`` (Yanai's R²_CCA), ``svcca_rho``,
        ``svcca_r2`` (SVCCA keeping 99% of the variance), ``pwcca`` (weights from X),
        ``linreg`` (R² of predicting Y from X), ``procrustes`` (orthogonal Procrustes
        **distance** of unit-norm layers, in [0, 2]), ``hsic`` (linear biased HSIC),
        ``cka_linear`` (linear CKA from the SVD bases), ``rsa`` (Spearman's rho between
        correlation-distance RDMs, in [-1, 1]), ``mutual_knn`` (mutual 10-nearest-neighbour
        alignment of Huh et al. 2024, in [0, 1]), ``cknna`` (CKA over mutual nearest-neighbour
        pairs, Huh et al. 2024).

    Returns
    -------
    float

    Raises
    ------
    StrataError
        Unknown measure, different numbers of examples, NaN or Inf, or a value undefined for
        these inputs (e.g. a constant layer), with the message the CLI prints.

    Examples
    --------
    >>> import numpy as np, strata
    >>> x = np.random.default_rng(0).normal(size=(100, 5))
    >>> round(strata.similarity(x, x @ np.diag([1, 2, 3, 4, 5.0]), "cca_rho"), 6)
    1.0
    """
    if measure == "cka":
        return cka(X, Y)
    return _strata._similarity(X, Y, measure)


def similarity_matrix(
    layers_a: Layers,
    layers_b: Optional[Layers] = None,
    measure: str = "cka",
) -> SimilarityResult:
    """A similarity (or distance) between every layer of A and every layer of B.

    Each layer is decomposed once (its thin SVD) for all the pairs it enters.

    Parameters
    ----------
    layers_a : dict of str to array_like, or list of array_like
        The layers of A (rows).
    layers_b : dict or list, optional
        The layers of B (columns); ``None`` compares A with itself.
    measure : str, default "cka"
        ``"cka"`` (:func:`cka_matrix`, linear and biased) or one of :data:`MEASURE_NAMES`.

    Returns
    -------
    SimilarityResult
        NaN (with a note naming the pair and the reason) where the measure is undefined.

    Raises
    ------
    StrataError
        Unknown measure, layers with different numbers of examples, NaN or Inf.
    """
    if measure == "cka":
        return cka_matrix(layers_a, layers_b)
    names_a, arrays_a = _layers(layers_a, "layers_a")
    names_b, arrays_b = _layers(layers_b, "layers_b") if layers_b is not None else (None, None)
    d = _strata._similarity_matrix(names_a, arrays_a, names_b, arrays_b, measure)
    return SimilarityResult(
        d["values"],
        names_a,
        names_b if names_b is not None else names_a,
        d["measure"],
        d["n"],
        d["notes"],
        higher_is_similar=d["higher_is_similar"],
    )


class MinibatchCKA:
    """Minibatch CKA (Nguyen, Raghu & Kornblith 2021): memory independent of the examples.

    The unbiased HSIC of every layer pair is averaged over minibatches and the ratio is taken
    once at the end, so the estimate converges to the CKA of the population while memory holds
    one batch. Every batch counts equally; a batch with fewer than 4 examples (the unbiased
    estimator's minimum) is skipped and counted in :attr:`skipped`. This is what
    ``strata cka A B --batch-size N`` computes.

    Parameters
    ----------
    kernel : {"linear", "rbf"}, default "linear"
    threshold : float, default 0.5
        The RBF bandwidth threshold (see :func:`cka`).

    Examples
    --------
    >>> import numpy as np, strata
    >>> rng = np.random.default_rng(0)
    >>> acc = strata.MinibatchCKA()
    >>> for _ in range(10):
    ...     x = rng.normal(size=(64, 8))
    ...     acc.update({"x": x, "tanh": np.tanh(x)})
    >>> acc.result().values.shape
    (2, 2)
    """

    def __init__(self, kernel: str = "linear", threshold: float = 0.5) -> None:
        self.kernel = kernel
        self.threshold = threshold
        self._acc = _strata._Minibatch(kernel, threshold)

    def update(self, acts_a: Layers, acts_b: Optional[Layers] = None) -> None:
        """Add one minibatch.

        Parameters
        ----------
        acts_a : dict of str to array_like, or list of array_like
            The batch's activations of every layer of A, ``(b, ...)`` each, the same ``b``
            examples for every layer.
        acts_b : dict or list, optional
            The same examples' activations of every layer of B; ``None`` compares A with
            itself. Every update must pass the same layers as the first.

        Raises
        ------
        StrataError
            Layers with different numbers of rows, NaN or Inf, or layers that differ from the
            first update's.
        """
        names_a, arrays_a = _layers(acts_a, "acts_a")
        names_b, arrays_b = _layers(acts_b, "acts_b") if acts_b is not None else (None, None)
        self._acc.update(names_a, arrays_a, names_b, arrays_b)

    @property
    def batches(self) -> int:
        """Minibatches accumulated so far (skipped batches not counted)."""
        return self._acc.batches

    @property
    def examples(self) -> int:
        """Examples accumulated so far."""
        return self._acc.examples

    @property
    def skipped(self) -> int:
        """Examples left out because their batch had fewer than 4."""
        return self._acc.skipped

    def result(self) -> SimilarityResult:
        """The CKA matrix from the batches so far.

        Returns
        -------
        SimilarityResult
            ``estimator == "debiased"``, ``n`` = examples accumulated, ``batches`` set.

        Raises
        ------
        StrataError
            If :meth:`update` was never called.
        """
        d = self._acc.result()
        return SimilarityResult(
            d["values"],
            d["layers_a"],
            d["layers_b"],
            "cka",
            d["n"],
            d["notes"],
            kernel=self.kernel,
            estimator="debiased",
            threshold=self.threshold if self.kernel == "rbf" else None,
            batches=d["batches"],
        )

    def __repr__(self) -> str:
        return (
            f"MinibatchCKA(kernel={self.kernel!r}, batches={self.batches}, "
            f"examples={self.examples})"
        )


class Store:
    """An activation file: ``.npy``, ``.npz``, ``.safetensors``, Arrow IPC or Parquet store.

    Opened with :func:`strata.open`. Layers are read one at a time, whole, as float32
    ``(n, *shape)`` arrays; a store reads one layer without touching the others' pages.

    Examples
    --------
    >>> s = strata.open("acts.arrow")  # doctest: +SKIP
    >>> s.layers, s.n  # doctest: +SKIP
    (['fc1', 'fc2'], 1000)
    >>> x = s["fc1"]  # doctest: +SKIP
    """

    def __init__(self, path: PathLike) -> None:
        self._s = _strata._Store(os.fspath(path))

    @property
    def path(self) -> str:
        """The file this was opened from."""
        return str(self._s.path)

    @property
    def format(self) -> str:
        """``"npy"``, ``"npz"``, ``"safetensors"``, ``"arrow"`` or ``"parquet"``."""
        return self._s.format

    @property
    def n(self) -> int:
        """Number of examples every layer holds."""
        return self._s.n

    @property
    def layers(self) -> List[str]:
        """Layer names, in file order."""
        return self._s.layers

    def shape(self, name: str) -> Tuple[int, ...]:
        """Per-example shape of layer ``name`` (without the example axis).

        Raises
        ------
        StrataError
            No layer of that name (the message lists the layers).
        """
        return tuple(self._s.shape(name))

    def read(self, name: str) -> np.ndarray:
        """Layer ``name`` as a float32 array of shape ``(n, *shape(name))``.

        Raises
        ------
        StrataError
            No such layer, NaN or Inf in it, or an unreadable file.
        """
        return self._s.read(name)

    def __getitem__(self, name: str) -> np.ndarray:
        """``store[name]`` is :meth:`read`; a missing layer raises :class:`KeyError`."""
        if name not in self:
            raise KeyError(name)
        return self.read(name)

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and name in self._s.layers

    def __len__(self) -> int:
        return len(self._s.layers)

    def __iter__(self) -> Iterator[str]:
        return iter(self._s.layers)

    def keys(self) -> List[str]:
        """Layer names (as for a dict)."""
        return self.layers

    def __repr__(self) -> str:
        layers = ", ".join(f"{k}: {self.shape(k)}" for k in self.layers[:8])
        more = f", ... ({len(self)} layers)" if len(self) > 8 else ""
        return f"Store({self.path!r}, format={self.format!r}, n={self.n}, layers={{{layers}{more}}})"


def open(path: PathLike) -> Store:  # noqa: A001 - mirrors builtins.open on purpose
    """Open an activation file of any format the ``strata`` CLI reads.

    Parameters
    ----------
    path : str or os.PathLike
        A ``.npy`` (one layer, named after the file stem), ``.npz`` or ``.safetensors`` (one
        layer per array), or a strata activation store (Arrow IPC or Parquet). The format is
        detected from the first bytes.

    Returns
    -------
    Store

    Raises
    ------
    StrataError
        Unreadable, unknown or inconsistent file (the CLI's message, naming the file).
    """
    return Store(path)


class StoreWriter:
    """Write strata's activation store (Arrow IPC or Parquet) batch by batch, atomically.

    One column per layer, one row per example; readable by ``strata`` (``strata cka``,
    ``strata layers``), by :func:`strata.open`, and by pyarrow, pandas, polars or DuckDB. Data
    goes to a hidden temporary file beside ``path`` that :meth:`close` renames into place, so a
    partial store never appears under ``path``.

    Parameters
    ----------
    path : str or os.PathLike
        Destination; ``.arrow`` (Arrow IPC) or ``.parquet`` chooses the format.
    layers : dict of str to tuple of int
        ``name -> per-example shape`` (``(64,)``, ``(16, 14, 14)``; an int means ``(int,)``),
        in the order the columns are written.
    meta : dict, optional
        Free JSON describing what produced the activations (model, data, seed), stored in the
        schema metadata under ``strata.meta``.

    Examples
    --------
    >>> with strata.StoreWriter("acts.arrow", {"fc1": (64,), "conv": (8, 4, 4)}) as w:  # doctest: +SKIP
    ...     for xb in batches:
    ...         w.write({"fc1": f1(xb), "conv": f2(xb)})
    """

    def __init__(
        self,
        path: PathLike,
        layers: Mapping[str, Union[int, Sequence[int]]],
        meta: Optional[Mapping[str, Any]] = None,
    ) -> None:
        if not isinstance(layers, Mapping):
            raise TypeError("layers must be a dict name -> per-example shape tuple")
        self._w = _strata._StoreWriter(os.fspath(path), dict(layers), meta)

    @property
    def path(self) -> str:
        """The destination path."""
        return str(self._w.path)

    @property
    def layers(self) -> Dict[str, Tuple[int, ...]]:
        """``name -> per-example shape``, as declared."""
        return self._w.layers

    @property
    def rows(self) -> int:
        """Rows (examples) written so far."""
        return self._w.rows

    @property
    def closed(self) -> bool:
        """True once :meth:`close` or :meth:`abort` was called."""
        return self._w.closed

    def write(self, batch: Mapping[str, ArrayLike]) -> None:
        """Append one batch.

        Parameters
        ----------
        batch : dict of str to array_like
            Every layer's activations for the same ``b`` examples, shaped ``(b, *shape)`` (or
            ``(b, prod(shape))``); any real dtype, converted to float32.

        Raises
        ------
        StrataError
            A missing or unknown layer, a wrong shape, rows that differ between layers, NaN or
            Inf, or a closed writer.
        """
        if not isinstance(batch, Mapping):
            raise TypeError("batch must be a dict name -> array")
        self._w.write(dict(batch))

    def close(self) -> int:
        """Finish the file and move it into place.

        Returns
        -------
        int
            The number of rows written.
        """
        return self._w.close()

    def abort(self) -> None:
        """Discard everything written; nothing appears at ``path``."""
        self._w.abort()

    def __enter__(self) -> "StoreWriter":
        return self

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
        if exc_type is None:
            if not self.closed:
                self.close()
        else:
            self.abort()

    def __repr__(self) -> str:
        state = "closed" if self.closed else "open"
        return f"StoreWriter({self.path!r}, layers={self.layers}, rows={self.rows}, {state})"
