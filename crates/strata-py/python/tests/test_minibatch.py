"""MinibatchCKA against a NumPy reference and against `strata cka --batch-size`."""

from __future__ import annotations

import numpy as np
import pytest
import strata
from conftest import f32, hsic_unbiased, linear_gram, rbf_gram


def ref_minibatch(a, b, bs, kernel="linear", threshold=0.5):
    """Nguyen et al. 2021: unbiased HSIC averaged over batches, normalized at the end."""
    n = next(iter(a.values())).shape[0]
    gram = (lambda x: linear_gram(x)) if kernel == "linear" else (lambda x: rbf_gram(x, threshold))
    na, nb = len(a), len(b)
    xy, xx, yy, k = np.zeros((na, nb)), np.zeros(na), np.zeros(nb), 0
    for s in range(0, n, bs):
        e = min(n, s + bs)
        if e - s < 4:
            continue
        ka = [gram(f32(v)[s:e]) for v in a.values()]
        kb = [gram(f32(v)[s:e]) for v in b.values()]
        for i in range(na):
            xx[i] += hsic_unbiased(ka[i], ka[i])
            for j in range(nb):
                xy[i, j] += hsic_unbiased(ka[i], kb[j])
        for j in range(nb):
            yy[j] += hsic_unbiased(kb[j], kb[j])
        k += 1
    return xy / np.sqrt(np.outer(xx, yy)), k


def layers(rng, n):
    x = rng.normal(size=(n, 12))
    return {
        "x": x,
        "relu": np.maximum(x @ rng.normal(size=(12, 20)), 0),
        "conv": np.tanh(x @ rng.normal(size=(12, 24))).reshape(n, 2, 3, 4),
    }


def feed(acc, a, b, bs):
    n = next(iter(a.values())).shape[0]
    for s in range(0, n, bs):
        acc.update({k: v[s:s + bs] for k, v in a.items()},
                   None if b is None else {k: v[s:s + bs] for k, v in b.items()})


@pytest.mark.parametrize("kernel", ["linear", "rbf"])
def test_matches_reference(rng, kernel):
    a, b = layers(rng, 203), layers(rng, 203)
    acc = strata.MinibatchCKA(kernel=kernel)
    feed(acc, a, b, 50)  # the last batch has 3 examples: skipped
    r = acc.result()
    want, k = ref_minibatch(a, b, 50, kernel)
    assert (acc.batches, acc.examples, acc.skipped) == (k, 200, 3) == (4, 200, 3)
    assert (r.n, r.batches, r.estimator, r.kernel) == (200, 4, "debiased", kernel)
    np.testing.assert_allclose(r.values, want, atol=5e-5)
    assert any("3 example(s) in batches smaller than 4" in n for n in r.notes)
    assert "MinibatchCKA(kernel=" in repr(acc)


def test_self_comparison(rng):
    a = layers(rng, 96)
    acc = strata.MinibatchCKA()
    feed(acc, a, None, 32)
    r = acc.result()
    want, _ = ref_minibatch(a, a, 32)
    np.testing.assert_allclose(r.values, want, atol=5e-5)
    assert r.layers_a == r.layers_b == ["x", "relu", "conv"]


def test_equals_the_cli(rng, tmp_path, cli):
    a, b = layers(rng, 250), layers(rng, 250)
    # The CLI names the layers of an .npz after its arrays.
    np.savez(tmp_path / "a.npz", **{k: v.astype(np.float32) for k, v in a.items()})
    np.savez(tmp_path / "b.npz", **{k: v.astype(np.float32) for k, v in b.items()})
    for kernel, extra in [("linear", []), ("rbf", ["--rbf-threshold", "0.8"])]:
        got = cli("cka", tmp_path / "a.npz", tmp_path / "b.npz", "--batch-size", 64,
                  "--kernel", kernel, *extra, "--device", "cpu", "--json")
        acc = strata.MinibatchCKA(kernel=kernel, threshold=0.8)
        feed(acc, a, b, 64)
        r = acc.result()
        assert got["layers_a"] == r.layers_a and got["layers_b"] == r.layers_b
        assert (got["n"], got["batches"], got["estimator"]) == (r.n, r.batches, "debiased")
        np.testing.assert_allclose(np.array(got["cka"], dtype=float), r.values, rtol=1e-6,
                                   atol=1e-7)
    # A with itself.
    got = cli("cka", tmp_path / "a.npz", tmp_path / "a.npz", "--batch-size", 64,
              "--device", "cpu", "--json")
    acc = strata.MinibatchCKA()
    feed(acc, a, None, 64)
    np.testing.assert_allclose(np.array(got["cka"], dtype=float), acc.result().values,
                               rtol=1e-6, atol=1e-7)


def test_errors(rng):
    acc = strata.MinibatchCKA()
    with pytest.raises(strata.StrataError, match="^MinibatchCKA has no batch yet"):
        acc.result()
    x = rng.normal(size=(16, 3))
    acc.update({"a": x, "b": x[:, :2]})
    with pytest.raises(strata.StrataError, match=r"^this batch has layers A \['a'\] \(with itself\) "
                                                 r"but the first had A \['a', 'b'\]"):
        acc.update({"a": x})
    with pytest.raises(strata.StrataError, match="^layer 'a' of A has 16 rows but layer 'b' of A "
                                                 "has 15: a minibatch holds the same examples"):
        acc.update({"a": x, "b": x[:15]})
    with pytest.raises(strata.StrataError, match="^layer 'b' of A: a representation holds NaN"):
        acc.update({"a": x, "b": np.full((16, 2), np.nan)})
    with pytest.raises(strata.StrataError, match="^unknown kernel"):
        strata.MinibatchCKA(kernel="cosine")
    only_small = strata.MinibatchCKA()
    only_small.update([x[:3]])
    r = only_small.result()
    assert np.isnan(r.values).all() and r.batches == 0 and only_small.skipped == 3
    assert "no batch had the 4 examples the unbiased estimator needs" in r.notes
