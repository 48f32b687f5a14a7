"""The result of comparing every layer of A with every layer of B."""

from __future__ import annotations

import html
import math
import os
from typing import Any, Dict, List, Optional, Sequence, Union

import numpy as np

from . import _strata

__all__ = ["SimilarityResult"]


def _viridis(t: float) -> str:
    """A hex colour for ``t`` in [0, 1] on (a coarse sampling of) the viridis scale."""
    stops = [
        (0.267, 0.005, 0.329),
        (0.283, 0.141, 0.458),
        (0.254, 0.265, 0.530),
        (0.207, 0.372, 0.553),
        (0.164, 0.471, 0.558),
        (0.128, 0.567, 0.551),
        (0.135, 0.659, 0.518),
        (0.267, 0.749, 0.441),
        (0.478, 0.821, 0.318),
        (0.741, 0.873, 0.150),
        (0.993, 0.906, 0.144),
    ]
    t = min(max(t, 0.0), 1.0) * (len(stops) - 1)
    i = min(int(t), len(stops) - 2)
    f = t - i
    rgb = [a + (b - a) * f for a, b in zip(stops[i], stops[i + 1])]
    return "#" + "".join(f"{round(c * 255):02x}" for c in rgb)


class SimilarityResult:
    """A similarity (or distance) between every layer of A and every layer of B.

    Returned by :func:`strata.cka_matrix`, :func:`strata.similarity_matrix` and
    :meth:`strata.MinibatchCKA.result`.

    Attributes
    ----------
    values : numpy.ndarray
        ``(len(layers_a), len(layers_b))`` float64; ``values[i, j]`` compares layer
        ``layers_a[i]`` with ``layers_b[j]``. NaN where the value is undefined (see ``notes``).
    layers_a, layers_b : list of str
        Layer names of A (rows) and B (columns).
    measure : str
        ``"cka"`` or one of :data:`strata.MEASURE_NAMES`.
    kernel : str or None
        ``"linear"`` or ``"rbf"`` for CKA, ``None`` for the baseline measures.
    estimator : str or None
        ``"biased"`` or ``"debiased"`` for CKA, ``None`` for the baseline measures.
    n : int
        Number of examples the values are based on.
    notes : list of str
        Why some values are undefined, one line per layer (or pair).
    threshold : float or None
        The RBF bandwidth threshold, when ``kernel == "rbf"``.
    batches : int
        Minibatches accumulated (1 for a full-data estimate).
    higher_is_similar : bool
        False for distances (``procrustes``).
    """

    __slots__ = (
        "values",
        "layers_a",
        "layers_b",
        "measure",
        "kernel",
        "estimator",
        "n",
        "notes",
        "threshold",
        "batches",
        "higher_is_similar",
    )

    def __init__(
        self,
        values: np.ndarray,
        layers_a: Sequence[str],
        layers_b: Sequence[str],
        measure: str,
        n: int,
        notes: Sequence[str] = (),
        kernel: Optional[str] = None,
        estimator: Optional[str] = None,
        threshold: Optional[float] = None,
        batches: int = 1,
        higher_is_similar: bool = True,
    ) -> None:
        self.values = np.asarray(values, dtype=np.float64)
        self.layers_a: List[str] = list(layers_a)
        self.layers_b: List[str] = list(layers_b)
        if self.values.shape != (len(self.layers_a), len(self.layers_b)):
            raise ValueError(
                f"values have shape {self.values.shape} but there are {len(self.layers_a)} "
                f"layers of A and {len(self.layers_b)} of B"
            )
        self.measure = measure
        self.n = int(n)
        self.notes: List[str] = list(notes)
        self.kernel = kernel
        self.estimator = estimator
        self.threshold = threshold
        self.batches = int(batches)
        self.higher_is_similar = bool(higher_is_similar)

    @property
    def title(self) -> str:
        """A one-line description: ``"linear CKA (biased)"``, ``"procrustes"``, ..."""
        if self.measure != "cka":
            return self.measure
        k = "linear CKA" if self.kernel == "linear" else f"RBF CKA, t = {self.threshold}"
        extra = f", minibatch over {self.batches} batches" if self.batches > 1 else ""
        return f"{k} ({self.estimator}{extra})"

    @property
    def shape(self) -> tuple:
        """``values.shape``."""
        return self.values.shape

    def __getitem__(self, key: Any) -> Any:
        """``result["a", "b"]`` by layer names, otherwise indexes ``values``."""
        if (
            isinstance(key, tuple)
            and len(key) == 2
            and isinstance(key[0], str)
            and isinstance(key[1], str)
        ):
            try:
                i, j = self.layers_a.index(key[0]), self.layers_b.index(key[1])
            except ValueError:
                raise KeyError(key) from None
            return float(self.values[i, j])
        return self.values[key]

    def __array__(self, dtype: Any = None, copy: Any = None) -> np.ndarray:
        """The values, so ``np.asarray(result)`` works."""
        v = self.values if dtype is None else self.values.astype(dtype)
        return v.copy() if copy else v

    def __repr__(self) -> str:
        head = f"SimilarityResult({self.title}, n={self.n}, {len(self.layers_a)}x{len(self.layers_b)})"
        w0 = max([5] + [len(s) for s in self.layers_a])
        ws = [max(6, len(s)) for s in self.layers_b]
        corner = "A \\ B"
        lines = [head, f"{corner:<{w0}}" + "".join(f"  {c:>{w}}" for c, w in zip(self.layers_b, ws))]
        for name, row in zip(self.layers_a, self.values):
            cells = "".join(
                f"  {('n/a' if math.isnan(v) else f'{v:.4f}'):>{w}}" for v, w in zip(row, ws)
            )
            lines.append(f"{name:<{w0}}" + cells)
        lines += [f"note: {n}" for n in self.notes]
        return "\n".join(lines)

    def _repr_html_(self) -> str:
        """An HTML table coloured on the viridis scale (rendered by Jupyter)."""
        esc = html.escape
        finite = self.values[np.isfinite(self.values)]
        if self.measure in ("cka", "cka_linear", "cca_rho", "cca_r2", "svcca_rho", "svcca_r2",
                            "pwcca", "linreg", "mutual_knn"):
            lo, hi = 0.0, 1.0
        elif self.measure == "procrustes":
            lo, hi = 0.0, 2.0
        else:
            lo = float(finite.min()) if finite.size else 0.0
            hi = float(finite.max()) if finite.size else 1.0
        span = (hi - lo) or 1.0
        out = [
            "<div>",
            f"<p><b>{esc(self.title)}</b>, n = {self.n}</p>",
            '<table style="border-collapse: collapse; font-family: monospace;">',
            "<tr><th style=\"padding: 4px;\">A \\ B</th>"
            + "".join(f'<th style="padding: 4px;">{esc(c)}</th>' for c in self.layers_b)
            + "</tr>",
        ]
        for name, row in zip(self.layers_a, self.values):
            cells = []
            for v in row:
                if math.isnan(v):
                    cells.append(
                        '<td style="padding: 4px; background: #bbbbbb; text-align: center;">n/a</td>'
                    )
                    continue
                t = (v - lo) / span
                if not self.higher_is_similar:
                    t = 1.0 - t
                fg = "#000000" if t > 0.55 else "#ffffff"
                cells.append(
                    f'<td style="padding: 4px; background: {_viridis(t)}; color: {fg}; '
                    f'text-align: right;">{v:.4f}</td>'
                )
            out.append(f'<tr><th style="padding: 4px; text-align: left;">{esc(name)}</th>'
                       + "".join(cells) + "</tr>")
        out.append("</table>")
        for n in self.notes:
            out.append(f"<p><i>note: {esc(n)}</i></p>")
        out.append("</div>")
        return "\n".join(out)

    def to_dict(self) -> Dict[str, Any]:
        """The result as plain Python objects (JSON-serializable; undefined values are None).

        Returns
        -------
        dict
            Keys ``measure``, ``kernel``, ``estimator``, ``threshold``, ``n``, ``batches``,
            ``layers_a``, ``layers_b``, ``values`` (nested lists) and ``notes``, shaped like
            ``strata cka --json``.
        """
        return {
            "measure": self.measure,
            "kernel": self.kernel,
            "estimator": self.estimator,
            "threshold": self.threshold,
            "n": self.n,
            "batches": self.batches,
            "layers_a": list(self.layers_a),
            "layers_b": list(self.layers_b),
            "values": [[None if math.isnan(v) else float(v) for v in row] for row in self.values],
            "notes": list(self.notes),
        }

    def to_pandas(self) -> Any:
        """The values as a :class:`pandas.DataFrame` (index: layers of A, columns: layers of B).

        Raises
        ------
        ImportError
            If pandas is not installed.
        """
        try:
            import pandas as pd
        except ImportError as e:
            raise ImportError(
                "SimilarityResult.to_pandas() needs pandas: pip install pandas"
            ) from e
        df = pd.DataFrame(
            self.values.copy(),
            index=pd.Index(self.layers_a, name="A"),
            columns=pd.Index(self.layers_b, name="B"),
        )
        df.attrs["measure"] = self.measure
        df.attrs["n"] = self.n
        return df

    def heatmap(
        self,
        path: Union[str, "os.PathLike[str]"],
        title: Optional[str] = None,
    ) -> str:
        """Draw the matrix as a heatmap with strata's own figure code (as ``strata cka --out``).

        Parameters
        ----------
        path : str or os.PathLike
            Destination; ``.png`` or ``.svg`` chooses the format.
        title : str, optional
            Title line; defaults to the measure and the number of examples.

        Returns
        -------
        str
            ``path``.
        """
        path = os.fspath(path)
        vmin, vmax = _strata._value_range(self.measure)
        _strata.heatmap(
            np.ascontiguousarray(self.values, dtype=np.float64),
            [str(s) for s in self.layers_a],
            [str(s) for s in self.layers_b],
            title if title is not None else self.title,
            path,
            x_label="layers of B",
            y_label="layers of A",
            colorbar_label=f"{self.title} (n = {self.n})",
            vmin=vmin,
            vmax=vmax,
        )
        return path
