"""Type stubs for ``strata._strata``, the compiled core of the ``strata`` package.

The public API is re-exported (and documented) by ``strata``; the underscored names are the
building blocks its Python layer wraps.
"""

import os
from typing import Any, Dict, List, Optional, Sequence, Tuple, TypedDict, Union

import numpy as np
import numpy.typing as npt

__version__: str
MEASURE_NAMES: List[str]

class StrataError(ValueError):
    """An error raised by strata, with the same one-line message as the ``strata`` CLI."""

class _CkaDict(TypedDict):
    values: npt.NDArray[np.float64]
    hsic: npt.NDArray[np.float64]
    self_a: List[float]
    self_b: List[float]
    n: int
    batches: int
    notes: List[str]

class _MinibatchDict(_CkaDict):
    layers_a: List[str]
    layers_b: List[str]

class _MeasureDict(TypedDict):
    values: npt.NDArray[np.float64]
    n: int
    notes: List[str]
    measure: str
    higher_is_similar: bool
    symmetric: bool

def _cka(
    x: Any,
    y: Any,
    kernel: str = "linear",
    threshold: float = 0.5,
    estimator: str = "biased",
) -> float: ...
def _cka_matrix(
    names_a: Sequence[str],
    arrays_a: Sequence[Any],
    names_b: Optional[Sequence[str]],
    arrays_b: Optional[Sequence[Any]],
    kernel: str = "linear",
    threshold: float = 0.5,
    estimator: str = "biased",
) -> _CkaDict: ...
def _similarity(x: Any, y: Any, measure: str = "cka_linear") -> float: ...
def _similarity_matrix(
    names_a: Sequence[str],
    arrays_a: Sequence[Any],
    names_b: Optional[Sequence[str]],
    arrays_b: Optional[Sequence[Any]],
    measure: str = "cka_linear",
) -> _MeasureDict: ...
def heatmap(
    values: npt.NDArray[np.float64],
    rows: Sequence[str],
    cols: Sequence[str],
    title: str,
    path: Union[str, os.PathLike[str]],
    x_label: str = "",
    y_label: str = "",
    colorbar_label: str = "",
    vmin: float = 0.0,
    vmax: float = 1.0,
) -> None:
    """Draw ``values`` (NaN drawn grey, n/a) as strata-report's heatmap, PNG or SVG by extension;
    colours span ``[vmin, vmax]``."""

def _value_range(measure: str) -> tuple[float, float]: ...
def _panic_for_test() -> None: ...

class _Minibatch:
    def __init__(self, kernel: str = "linear", threshold: float = 0.5) -> None: ...
    def update(
        self,
        names_a: Sequence[str],
        arrays_a: Sequence[Any],
        names_b: Optional[Sequence[str]] = None,
        arrays_b: Optional[Sequence[Any]] = None,
    ) -> None: ...
    @property
    def batches(self) -> int: ...
    @property
    def examples(self) -> int: ...
    @property
    def skipped(self) -> int: ...
    def result(self) -> _MinibatchDict: ...

class _Store:
    def __init__(self, path: Union[str, os.PathLike[str]]) -> None: ...
    @property
    def path(self) -> "os.PathLike[str]": ...
    @property
    def format(self) -> str: ...
    @property
    def n(self) -> int: ...
    @property
    def layers(self) -> List[str]: ...
    def shape(self, name: str) -> Tuple[int, ...]: ...
    def read(self, name: str) -> npt.NDArray[np.float32]: ...

class _StoreWriter:
    def __init__(
        self,
        path: Union[str, os.PathLike[str]],
        layers: Dict[str, Union[int, Sequence[int]]],
        meta: Optional[Any] = None,
    ) -> None: ...
    @property
    def path(self) -> "os.PathLike[str]": ...
    @property
    def layers(self) -> Dict[str, Tuple[int, ...]]: ...
    @property
    def rows(self) -> int: ...
    @property
    def closed(self) -> bool: ...
    def write(self, batch: Dict[str, Any]) -> None: ...
    def close(self) -> int: ...
    def abort(self) -> None: ...

ATTACK_NAMES: List[str]

def design(pool: int, models: int, seed: int = 0) -> npt.NDArray[np.bool_]: ...
def privacy_score(
    outputs: npt.NDArray[np.float32],
    members: npt.NDArray[np.bool_],
    labels: npt.NDArray[np.int64],
    targets: List[int],
    attacks: List[str],
    kind: str,
    defense: str,
    references: Optional[int],
    shadows: Optional[int],
    bootstrap: int,
    seed: int,
) -> Tuple[str, List[npt.NDArray[np.float64]]]: ...
