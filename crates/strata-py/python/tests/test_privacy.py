"""strata.privacy: the balanced design and membership scoring on arrays, against the CLI's
`mia design` / `mia score` on the same inputs, leaking and non-leaking worlds, and errors."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

import strata
import strata.privacy as sp


def leaky_world(rng: np.random.Generator, members: np.ndarray, classes: int, gap: float):
    """Logits of every model: a member's true class gets `gap` more, per-example difficulty."""
    k, n = members.shape
    labels = rng.integers(0, classes, size=n)
    base = rng.normal(0, 1, size=n)
    z = rng.normal(size=(k, n, classes)).astype(np.float32)
    z[:, np.arange(n), labels] += (1.5 + base + gap * members).astype(np.float32)
    return z, labels


def test_design_is_balanced_seeded_and_matches_the_cli(tmp_path: Path, cli) -> None:
    m = sp.design(pool=500, models=7, seed=4)
    assert m.shape == (7, 500) and m.dtype == np.bool_
    per_example = m.sum(axis=0)
    assert set(np.unique(per_example)) <= {3, 4}
    assert np.array_equal(m, sp.design(500, 7, seed=4))
    assert not np.array_equal(m, sp.design(500, 7, seed=5))
    cli("mia", "design", "--pool", 500, "--models", 7, "--seed", 4, "--out", tmp_path, "-q")
    assert np.array_equal(np.load(tmp_path / "members.npy"), m)
    with pytest.raises(strata.StrataError, match="between 2 and"):
        sp.design(100, 1)
    with pytest.raises(strata.StrataError, match="of memory"):
        sp.design(10**13, 4)


def test_a_leak_is_found_and_no_leak_is_chance(rng: np.random.Generator) -> None:
    members = sp.design(2000, 8, seed=1)
    z, y = leaky_world(rng, members, 10, gap=3.0)
    r = sp.score(z, members, y, bootstrap=50)
    assert list(r) == sp.ATTACK_NAMES
    # 7 references: per-example variances rest on 3-4 observations, global ones on thousands.
    for name in ("lira", "lira-global", "rmia", "loss"):
        assert r[name]["auc"] > 0.8, (name, r[name]["auc"])
    lo, hi = r["lira"]["auc_ci"]
    assert lo <= r["lira"]["auc"] <= hi
    assert r.scores["lira"].shape == (2000,)
    # The scores order the target's members above its non-members.
    s = r.scores["loss"]
    assert s[members[0]].mean() > s[~members[0]].mean()
    z0, y0 = leaky_world(rng, members, 10, gap=0.0)
    null = sp.score(z0, members, y0, attacks=["lira", "rmia", "loss"], bootstrap=0)
    # AUC's standard error under no leakage: sqrt((n1 + n0 + 1) / (12 n1 n0)) ~ 0.013 here.
    n1 = int(members[0].sum())
    se = np.sqrt((2000 + 1) / (12 * n1 * (2000 - n1)))
    for name in ("lira", "rmia", "loss"):
        assert abs(null[name]["auc"] - 0.5) < 5 * se, (name, null[name]["auc"])


def test_scores_equal_the_cli_on_the_same_files(tmp_path: Path, cli, rng: np.random.Generator) -> None:
    cli("mia", "design", "--pool", 600, "--models", 5, "--seed", 2, "--out", tmp_path, "-q")
    members = np.load(tmp_path / "members.npy")
    z, y = leaky_world(rng, members, 4, gap=1.0)
    np.save(tmp_path / "labels.npy", y.astype(np.int64))
    files = []
    for m in range(5):
        f = tmp_path / f"model-{m}.npy"
        np.save(f, z[m])
        files.append(f)
    out = cli(
        "mia", "score", "--design", tmp_path / "design.json", "--labels", tmp_path / "labels.npy",
        "--target", 2, "--bootstrap", 40, "--attacks", "lira-global,rmia-offline,shokri,mentr",
        "--json", "-q", "--logits", *files,
    )
    r = sp.score(list(z), members, y, target=2, bootstrap=40,
                 attacks=["lira-global", "rmia-offline", "shokri", "mentr"])
    for name, f in r.items():
        assert f["auc"] == out["attacks"][name]["auc"], name
        assert list(f["auc_ci"]) == out["attacks"][name]["auc_ci"], name
        assert f["tpr_at_0.1pct_fpr"] == out["attacks"][name]["tpr_at_0.1pct_fpr"], name


def test_every_model_as_target(rng: np.random.Generator) -> None:
    members = sp.design(800, 6, seed=3)
    z, y = leaky_world(rng, members, 5, gap=2.0)
    r = sp.score(z, members, y, target="all", attacks=["lira-global", "loss"], bootstrap=0)
    t = r["lira-global"]["across_targets"]
    assert len(t["per_target"]) == 6
    aucs = [p["auc"] for p in t["per_target"]]
    assert t["auc"]["mean"] == pytest.approx(np.mean(aucs), abs=1e-12)
    assert t["auc"]["std"] == pytest.approx(np.std(aucs, ddof=1), abs=1e-12)
    assert r.targets == list(range(6))
    df = r.to_pandas()
    assert list(df.index) == ["lira-global", "loss"]
    assert "auc_mean_over_targets" in df.columns
    assert "<table>" in r._repr_html_()


def test_probabilities_give_the_figures_of_their_logits(rng: np.random.Generator) -> None:
    members = sp.design(500, 4, seed=0)
    z, y = leaky_world(rng, members, 3, gap=1.5)
    p = np.exp(z - z.max(axis=2, keepdims=True))
    p /= p.sum(axis=2, keepdims=True)
    a = sp.score(z, members, y, attacks=["loss", "lira-offline"], bootstrap=0)
    b = sp.score(p, members, y, attacks=["loss", "lira-offline"], kind="probs", bootstrap=0)
    for name in ("loss", "lira-offline"):
        assert b[name]["auc"] == pytest.approx(a[name]["auc"], abs=2e-3)


def test_bad_input_raises_strata_error(rng: np.random.Generator) -> None:
    members = sp.design(300, 4, seed=0)
    z, y = leaky_world(rng, members, 3, gap=1.0)
    bad = z.copy()
    bad[1, 5, 0] = np.nan
    cases = [
        (lambda: sp.score(bad, members, y), "not finite"),
        (lambda: sp.score(z, members, np.where(np.arange(300) == 7, 3, y)), "label 3 at example 7"),
        (lambda: sp.score(z, members, np.where(np.arange(300) == 7, -1, y)), "label -1 at example 7"),
        (lambda: sp.score(z[:3], members, y), "must be \\(3, 300\\)"),
        (lambda: sp.score(z, members[:, :200], y), "must be \\(4, 300\\)"),
        (lambda: sp.score(z, members, y[:10]), "labels has 10 values"),
        (lambda: sp.score(z, np.ones_like(members), y), "not balanced"),
        (lambda: sp.score(z[:1], members[:1], y), "at least 2"),
        (lambda: sp.score(z, members, y, attacks=["nope"]), "unknown attack 'nope'"),
        (lambda: sp.score(z, members, y, target=9), "target model 9"),
        (lambda: sp.score(z, members, y, references=1, attacks=["lira"]), "needs at least 2"),
        (lambda: sp.score(z, members, y.astype(np.float64)), "integer"),
    ]
    for f, want in cases:
        with pytest.raises(strata.StrataError, match=want):
            f()
    assert issubclass(strata.StrataError, ValueError)
