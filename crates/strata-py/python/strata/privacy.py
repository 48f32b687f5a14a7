"""Membership inference on arrays: how much do models' outputs reveal about who they trained on?

The Python side of ``strata mia design`` and ``strata mia score``. A balanced design (Carlini et
al. 2022) says which pool examples each of K models trains on; you train the models (in
PyTorch, anywhere), collect each model's logits on the whole pool, and :func:`score` attacks one
model (or every model in turn) with the others as reference models: LiRA online/offline with
per-example or global variances, RMIA (Zarifzadeh et al. 2024), Shokri et al.'s shadow models,
ML-Leaks and global loss/confidence/entropy thresholds, measured by AUC and TPR at 0.1% and 1%
FPR with bootstrap intervals, exactly as the CLI reports them.

Examples
--------
>>> import numpy as np, strata.privacy as sp
>>> members = sp.design(pool=1000, models=8, seed=0)        # (8, 1000) booleans
>>> # ... train model m on np.flatnonzero(members[m]); logits[m] = model m's logits on the pool
>>> r = sp.score(logits, members, labels)                    # doctest: +SKIP
>>> r["lira"]["tpr_at_0.1pct_fpr"]                           # doctest: +SKIP
"""

from __future__ import annotations

import json
from typing import Any, Dict, Iterator, List, Mapping, Optional, Sequence, Tuple, Union

import numpy as np

from . import _strata
from ._strata import StrataError

__all__ = ["ATTACK_NAMES", "PrivacyResult", "design", "score"]

ATTACK_NAMES: List[str] = list(_strata.ATTACK_NAMES)
"""Every attack :func:`score` runs by default, in report order."""


def design(pool: int, models: int, seed: int = 0) -> np.ndarray:
    """Carlini et al.'s balanced design as a ``(models, pool)`` boolean array.

    Every pool example is a member of exactly half of the models (``models // 2`` or one more,
    by a fair coin, when ``models`` is odd); row ``m`` is model ``m``'s training mask. The same
    ``(pool, models, seed)`` gives the same masks as ``strata mia design --pool N --models K
    --seed S``.

    Parameters
    ----------
    pool : int
        Number of pool examples N (at least 2).
    models : int
        Number of models K (2 to 4096).
    seed : int, default 0
        Fixes the masks.

    Returns
    -------
    numpy.ndarray
        ``(models, pool)`` array of ``bool``.
    """
    flat = _strata.design(int(pool), int(models), int(seed))
    return flat.reshape(int(models), int(pool))


class PrivacyResult(Mapping[str, Dict[str, Any]]):
    """Every attack's figures, keyed by attack name (a read-only mapping, in report order).

    ``result["lira"]`` is a dict with ``auc``, ``auc_ci`` (95% bootstrap interval),
    ``tpr_at_0.1pct_fpr``, ``tpr_at_1pct_fpr`` (each with ``_ci``), the number of false
    positives each low FPR allows, ``advantage``, ``per_class_auc``, ``roc`` (``(fpr, tpr)``
    arrays) and, when several targets were scored, ``across_targets`` (mean, std, min, max of
    each figure and the per-target values). ``result.scores[name]`` is the attack's score of
    every pool example on the primary target (higher = more likely a member).
    """

    def __init__(self, raw: List[Dict[str, Any]], scores: Sequence[np.ndarray], targets: List[int]):
        self._attacks: Dict[str, Dict[str, Any]] = {}
        self.scores: Dict[str, np.ndarray] = {}
        self.targets: List[int] = targets
        for r, s in zip(raw, scores):
            m = r["metrics"]
            fig = {
                "auc": m["auc"]["value"],
                "auc_ci": (m["auc"]["ci_low"], m["auc"]["ci_high"]),
                "tpr_at_0.1pct_fpr": m["tpr_at_low_fpr"]["value"],
                "tpr_at_0.1pct_fpr_ci": (m["tpr_at_low_fpr"]["ci_low"], m["tpr_at_low_fpr"]["ci_high"]),
                "false_positives_at_0.1pct_fpr": m["false_positives_at_low_fpr"],
                "tpr_at_1pct_fpr": m["tpr_at_1pct_fpr"]["value"],
                "tpr_at_1pct_fpr_ci": (m["tpr_at_1pct_fpr"]["ci_low"], m["tpr_at_1pct_fpr"]["ci_high"]),
                "false_positives_at_1pct_fpr": m["false_positives_at_1pct_fpr"],
                "advantage": m["advantage"]["value"],
                "members": m["members"],
                "non_members": m["non_members"],
                "threshold_accuracy": r.get("threshold_accuracy"),
                "per_class_auc": r["per_class_auc"],
                "roc": (np.array([p[0] for p in r["roc"]]), np.array([p[1] for p in r["roc"]])),
            }
            if "across_targets" in r:
                fig["across_targets"] = r["across_targets"]
            self._attacks[r["attack"]] = fig
            self.scores[r["attack"]] = s

    def __getitem__(self, name: str) -> Dict[str, Any]:
        try:
            return self._attacks[name]
        except KeyError:
            raise KeyError(f"no attack '{name}' was scored; scored: {', '.join(self._attacks)}") from None

    def __iter__(self) -> Iterator[str]:
        return iter(self._attacks)

    def __len__(self) -> int:
        return len(self._attacks)

    def to_pandas(self) -> Any:
        """One row per attack: AUC, TPR at 0.1% and 1% FPR with their intervals, advantage
        (and the mean over targets when several were scored). Needs pandas."""
        import pandas as pd

        rows = []
        for name, f in self._attacks.items():
            row = {
                "attack": name,
                "auc": f["auc"],
                "auc_ci_low": f["auc_ci"][0],
                "auc_ci_high": f["auc_ci"][1],
                "tpr_at_0.1pct_fpr": f["tpr_at_0.1pct_fpr"],
                "tpr_at_1pct_fpr": f["tpr_at_1pct_fpr"],
                "advantage": f["advantage"],
            }
            t = f.get("across_targets")
            if t:
                row["auc_mean_over_targets"] = t["auc"]["mean"]
                row["auc_std_over_targets"] = t["auc"]["std"]
                row["tpr_at_0.1pct_fpr_mean_over_targets"] = t["tpr_at_low_fpr"]["mean"]
            rows.append(row)
        return pd.DataFrame(rows).set_index("attack")

    def _repr_html_(self) -> str:
        head = "<tr><th>attack</th><th>AUC [95% CI]</th><th>TPR @ 0.1% FPR</th><th>TPR @ 1% FPR</th></tr>"
        body = "".join(
            f"<tr><td>{n}</td><td>{f['auc']:.3f} [{f['auc_ci'][0]:.3f}, {f['auc_ci'][1]:.3f}]</td>"
            f"<td>{100 * f['tpr_at_0.1pct_fpr']:.2f}%</td><td>{100 * f['tpr_at_1pct_fpr']:.2f}%</td></tr>"
            for n, f in self._attacks.items()
        )
        return f"<table>{head}{body}</table>"

    def __repr__(self) -> str:
        lines = [f"PrivacyResult(targets={self.targets})"]
        for n, f in self._attacks.items():
            lines.append(
                f"  {n:<20} AUC {f['auc']:.3f}  TPR@0.1%FPR {100 * f['tpr_at_0.1pct_fpr']:6.2f}%  "
                f"TPR@1%FPR {100 * f['tpr_at_1pct_fpr']:6.2f}%"
            )
        return "\n".join(lines)


def score(
    outputs: Union[np.ndarray, Sequence[np.ndarray]],
    members: np.ndarray,
    labels: np.ndarray,
    *,
    target: Union[int, str] = 0,
    attacks: Optional[Sequence[str]] = None,
    kind: str = "logits",
    defense: str = "none",
    references: Optional[int] = None,
    shadows: Optional[int] = None,
    bootstrap: int = 200,
    seed: int = 0,
) -> PrivacyResult:
    """Attack one model (or every model in turn) with the others as reference models.

    Parameters
    ----------
    outputs : array_like
        Every model's outputs on the pool: a ``(models, pool, classes)`` array, or a list of
        ``(pool, classes)`` arrays in model order. Any float dtype (computed in float32, as the
        CLI reads files). Logits by default; probabilities with ``kind="probs"``.
    members : array_like of bool
        ``(models, pool)`` training masks (:func:`design`, or ``members.npy`` of ``strata mia
        design``). Must be balanced: every example a member of half of the models.
    labels : array_like of int
        ``(pool,)`` true classes.
    target : int or "all", default 0
        The model attacked; ``"all"`` attacks every model in turn (the LiRA paper's
        evaluation) and adds ``across_targets`` to each attack's figures.
    attacks : sequence of str, optional
        Attack names (:data:`ATTACK_NAMES`); default all of them.
    kind : {"logits", "probs"}, default "logits"
    defense : str, default "none"
        An output defense applied to every model's released vectors: ``top1``, ``round2``,
        ``temp5``...
    references : int, optional
        Use only the first ``references`` other models as references (default all of them).
    shadows : int, optional
        Shadow models of Shokri et al.'s attack (default 4, or every reference when fewer).
    bootstrap : int, default 200
        Resamples behind each 95% interval (0 for none).
    seed : int, default 0
        Fixes the bootstrap and Shokri et al.'s attack models.

    Returns
    -------
    PrivacyResult
        A mapping attack name -> figures, with ``.scores`` and ``.to_pandas()``.

    Raises
    ------
    StrataError
        Shapes that disagree, NaN/Inf outputs, labels out of range, an unbalanced design, fewer
        than 2 models, an unknown attack, too few references for an attack.
    """
    if isinstance(outputs, (list, tuple)):
        outputs = np.stack([np.asarray(o) for o in outputs])
    z = np.ascontiguousarray(outputs, dtype=np.float32)
    if z.ndim != 3:
        raise StrataError(
            f"outputs must be (models, pool, classes) or a list of (pool, classes) arrays; got shape {z.shape}"
        )
    m = np.ascontiguousarray(members)
    if m.dtype != np.bool_:
        if not np.isin(m, (0, 1)).all():
            raise StrataError("members must be a boolean (models, pool) array (0/1 values)")
        m = m.astype(np.bool_)
    if m.ndim != 2:
        raise StrataError(f"members must be a (models, pool) array; got shape {m.shape}")
    y = np.asarray(labels)
    if y.ndim == 2 and y.shape[1] == 1:
        y = y[:, 0]
    if y.ndim != 1 or not np.issubdtype(y.dtype, np.integer):
        raise StrataError(f"labels must be a 1-d integer array; got {y.dtype} of shape {y.shape}")
    k = z.shape[0]
    if isinstance(target, str):
        if target != "all":
            raise StrataError(f"target='{target}': give a model index or 'all'")
        targets = list(range(k))
    else:
        targets = [int(target)]
    names = list(attacks) if attacks is not None else list(ATTACK_NAMES)
    raw, scores = _strata.privacy_score(
        z, m, np.ascontiguousarray(y, dtype=np.int64), targets, names, kind, defense,
        references, shadows, int(bootstrap), int(seed),
    )
    return PrivacyResult(json.loads(raw), scores, targets)
