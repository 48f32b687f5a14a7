"""Shared fixtures: independent float64 NumPy references and the `strata` CLI binary."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path
from typing import Any, List

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[4]


# ---------------------------------------------------------------------------------------------
# References, written from the papers' formulas in float64, independent of strata's code.
# ---------------------------------------------------------------------------------------------


def f32(x: Any) -> np.ndarray:
    """The values strata computes on: the input rounded to float32, as float64, 2-d."""
    a = np.asarray(x)
    a = a.reshape(a.shape[0], -1) if a.ndim != 1 else a.reshape(-1, 1)
    return a.astype(np.float32).astype(np.float64)


def center(x: np.ndarray) -> np.ndarray:
    return x - x.mean(axis=0, keepdims=True)


def linear_gram(x: np.ndarray) -> np.ndarray:
    return x @ x.T


def rbf_gram(x: np.ndarray, threshold: float) -> np.ndarray:
    """Kornblith et al.'s RBF kernel: bandwidth from the median of all n² squared distances."""
    sq = np.sum(x * x, axis=1)
    d = np.maximum(sq[:, None] + sq[None, :] - 2 * x @ x.T, 0.0)
    np.fill_diagonal(d, 0.0)
    m = np.median(d)
    return np.exp(-d / (2 * threshold**2 * m))


def hsic_biased(k: np.ndarray, l: np.ndarray) -> float:
    n = k.shape[0]
    h = np.eye(n) - np.ones((n, n)) / n
    return float(np.trace(k @ h @ l @ h)) / (n - 1) ** 2


def hsic_unbiased(k: np.ndarray, l: np.ndarray) -> float:
    """Song et al. 2012, Eq. (5)."""
    n = k.shape[0]
    k = k.copy()
    l = l.copy()
    np.fill_diagonal(k, 0.0)
    np.fill_diagonal(l, 0.0)
    one = np.ones(n)
    t = np.trace(k @ l)
    t += (one @ k @ one) * (one @ l @ one) / ((n - 1) * (n - 2))
    t -= 2.0 / (n - 2) * (one @ k @ l @ one)
    return float(t / (n * (n - 3)))


def ref_cka(x: Any, y: Any, kernel: str = "linear", threshold: float = 0.5,
            estimator: str = "biased") -> float:
    x, y = f32(x), f32(y)
    if kernel == "linear":
        k, l = linear_gram(x), linear_gram(y)
    else:
        k, l = rbf_gram(x, threshold), rbf_gram(y, threshold)
    h = hsic_biased if estimator == "biased" else hsic_unbiased
    return h(k, l) / np.sqrt(h(k, k) * h(l, l))


def ref_kornblith_linear(x: Any, y: Any) -> float:
    """Kornblith et al. 2019, Eq. (5), in feature space."""
    x, y = center(f32(x)), center(f32(y))
    return float(
        np.linalg.norm(y.T @ x) ** 2
        / (np.linalg.norm(x.T @ x) * np.linalg.norm(y.T @ y))
    )


def orth(x: np.ndarray, keep: float = 1.0) -> np.ndarray:
    """Orthonormal basis of the centered column span (top directions explaining `keep`)."""
    u, s, _ = np.linalg.svd(center(x), full_matrices=False)
    tol = max(x.shape) * np.finfo(np.float64).eps * s[0]
    r = int(np.sum(s > tol))
    if keep < 1.0:
        frac = np.cumsum(s[:r] ** 2) / np.sum(s[:r] ** 2)
        r = int(np.searchsorted(frac, keep) + 1)
    return u[:, :r]


def ref_measure(name: str, x: Any, y: Any) -> float:
    x, y = f32(x), f32(y)
    n = x.shape[0]
    if name in ("cca_rho", "cca_r2", "svcca_rho", "svcca_r2"):
        keep = 0.99 if name.startswith("svcca") else 1.0
        rho = np.clip(np.linalg.svd(orth(x, keep).T @ orth(y, keep), compute_uv=False), 0, 1)
        return float(np.mean(rho**2) if name.endswith("r2") else np.mean(rho))
    if name == "pwcca":
        # Morcos et al. 2018: weights from X's canonical variates' projections on its columns.
        ux, uy = orth(x), orth(y)
        a, rho, _ = np.linalg.svd(ux.T @ uy, full_matrices=False)
        h = ux @ a  # canonical variates of X (unit norm)
        alpha = np.abs(h.T @ center(x)).sum(axis=1)
        alpha = alpha / alpha.sum()
        return float(np.sum(alpha * np.clip(rho, 0, 1)))
    if name == "linreg":
        xc, yc = center(x), center(y)
        b, *_ = np.linalg.lstsq(xc, yc, rcond=None)
        return float(1 - np.linalg.norm(yc - xc @ b) ** 2 / np.linalg.norm(yc) ** 2)
    if name == "procrustes":
        xc, yc = center(x), center(y)
        nuc = np.linalg.svd(xc.T @ yc, compute_uv=False).sum()
        return float(2 - 2 * nuc / (np.linalg.norm(xc) * np.linalg.norm(yc)))
    if name == "hsic":
        xc, yc = center(x), center(y)
        return float(np.linalg.norm(yc.T @ xc) ** 2 / (n - 1) ** 2)
    if name == "cka_linear":
        return ref_kornblith_linear(x, y)
    if name == "rsa":
        # Correlation-distance RDMs compared by Spearman's rho (average ranks for ties).
        iu = np.triu_indices(n, 1)
        dx, dy = (1 - np.corrcoef(v.astype(np.float64))[iu] for v in (x, y))
        rx, ry = _average_ranks(dx), _average_ranks(dy)
        return float(np.corrcoef(rx, ry)[0, 1])
    if name in ("mutual_knn", "cknna"):
        k = min(10, n - 1)
        kx, ky = (_unit_rows(v) @ _unit_rows(v).T for v in (x, y))
        nx, ny = _knn_mask(kx, k), _knn_mask(ky, k)
        if name == "mutual_knn":
            return float(np.mean((nx & ny).sum(axis=1) / k))
        h = np.eye(n) - 1.0 / n
        cx, cy = h @ kx @ h, h @ ky @ h

        def align(a, b, mask):
            return float(np.sum(mask * a * b))

        m = nx & ny
        return align(cx, cy, m) / np.sqrt(align(cx, cx, nx) * align(cy, cy, ny))
    raise KeyError(name)


def _average_ranks(v: Any) -> Any:
    order = np.argsort(v, kind="mergesort")
    ranks = np.empty(len(v))
    ranks[order] = np.arange(len(v), dtype=np.float64)
    sv = v[order]
    i = 0
    while i < len(v):
        j = i
        while j + 1 < len(v) and sv[j + 1] - sv[i] <= 1e-10:
            j += 1
        ranks[order[i:j + 1]] = (i + j) / 2.0
        i = j + 1
    return ranks


def _unit_rows(v: Any) -> Any:
    v = v.astype(np.float64)
    return v / np.linalg.norm(v, axis=1, keepdims=True)


def _knn_mask(sim: Any, k: int) -> Any:
    """mask[i, j]: j is one of the k most similar examples to i (i itself excluded)."""
    s = sim.copy()
    np.fill_diagonal(s, -np.inf)
    idx = np.argsort(-s, axis=1, kind="stable")[:, :k]
    mask = np.zeros_like(s, dtype=bool)
    np.put_along_axis(mask, idx, True, axis=1)
    return mask


# ---------------------------------------------------------------------------------------------
# The CLI.
# ---------------------------------------------------------------------------------------------


def _find_strata_bin() -> Path:
    candidates: List[Path] = []
    if os.environ.get("STRATA_BIN"):
        candidates.append(Path(os.environ["STRATA_BIN"]))
    if os.environ.get("CARGO_TARGET_DIR"):
        candidates.append(Path(os.environ["CARGO_TARGET_DIR"]) / "release" / "strata")
    candidates += [
        Path.home() / ".cache" / "strata-target" / "release" / "strata",
        REPO / "target" / "release" / "strata",
    ]
    for c in candidates:
        if c.is_file() and os.access(c, os.X_OK):
            return c
    raise FileNotFoundError(
        "the strata CLI binary was not found (tried: "
        + ", ".join(str(c) for c in candidates)
        + "); build it with `cargo build --release -p strata-cli` or set STRATA_BIN"
    )


@pytest.fixture(scope="session")
def strata_bin() -> Path:
    return _find_strata_bin()


@pytest.fixture(scope="session")
def cli(strata_bin: Path):
    """Run the CLI; `cli(*args)` returns parsed JSON when `--json` is passed, else stdout."""

    def run(*args: Any, check: bool = True) -> Any:
        p = subprocess.run(
            [str(strata_bin), *map(str, args)], capture_output=True, text=True, timeout=300
        )
        if check and p.returncode != 0:
            raise AssertionError(f"strata {' '.join(map(str, args))} failed: {p.stderr}")
        if not check:
            return p
        return json.loads(p.stdout) if "--json" in map(str, args) else p.stdout

    return run


@pytest.fixture
def rng() -> np.random.Generator:
    """Fresh random inputs each run; the seed is printed so a failure can be replayed
    (STRATA_TEST_SEED=<seed>)."""
    seed = int(os.environ.get("STRATA_TEST_SEED") or int.from_bytes(os.urandom(4), "little"))
    print(f"STRATA_TEST_SEED={seed}")
    return np.random.default_rng(seed)
