"""cka_matrix, similarity, similarity_matrix and SimilarityResult."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import strata
from conftest import ref_cka, ref_measure


def model(rng, n=120):
    x = rng.normal(size=(n, 10))
    h1 = np.maximum(x @ rng.normal(size=(10, 16)), 0)
    h2 = np.tanh(h1 @ rng.normal(size=(16, 6)))
    return {"in": x, "h1": h1, "h2": h2.reshape(n, 2, 3)}


@pytest.mark.parametrize("kernel", ["linear", "rbf"])
@pytest.mark.parametrize("estimator", ["biased", "debiased"])
def test_cka_matrix_equals_pairwise_cka(rng, kernel, estimator):
    a, b = model(rng), model(rng)
    for lb in [b, None]:
        r = strata.cka_matrix(a, lb, kernel=kernel, estimator=estimator)
        other = a if lb is None else b
        assert isinstance(r, strata.SimilarityResult)
        assert r.values.dtype == np.float64 and r.values.shape == (3, 3)
        assert r.layers_a == ["in", "h1", "h2"] and r.layers_b == list(other)
        assert (r.measure, r.kernel, r.estimator, r.n) == ("cka", kernel, estimator, 120)
        for i, na in enumerate(a):
            for j, nb in enumerate(other):
                want = ref_cka(a[na], other[nb], kernel, 0.5, estimator)
                assert r.values[i, j] == pytest.approx(want, abs=5e-5)
                assert r[na, nb] == r.values[i, j]


def test_list_layers_are_numbered(rng):
    a = list(model(rng).values())
    r = strata.cka_matrix(a)
    assert r.layers_a == r.layers_b == ["0", "1", "2"]
    np.testing.assert_allclose(np.diag(r.values), 1.0, atol=1e-5)
    np.testing.assert_allclose(r.values, r.values.T, atol=0)
    with pytest.raises(TypeError, match="dict name -> array or a list of arrays"):
        strata.cka_matrix(np.zeros((3, 4, 5)))


def test_undefined_layers_are_nan_with_a_note(rng):
    a = model(rng)
    a["dead"] = np.zeros((120, 4))
    r = strata.cka_matrix(a)
    assert np.isnan(r.values[3]).all() and np.isnan(r.values[:, 3]).all()
    assert np.isfinite(r.values[:3, :3]).all()
    assert len(r.notes) == 1 and r.notes[0].startswith("layer 'dead': self-HSIC is 0")
    r = strata.cka_matrix(a, model(rng))
    assert r.notes == [n.replace("layer 'dead'", "layer 'dead' of A") for n in
                       strata.cka_matrix(a).notes]
    assert "note: layer 'dead' of A" in repr(r)


def test_mismatched_layers_message(rng):
    a = {"x": rng.normal(size=(10, 3))}
    b = {"y": rng.normal(size=(10, 2)), "z": rng.normal(size=(12, 2))}
    with pytest.raises(strata.StrataError) as e:
        strata.cka_matrix(a, b)
    assert str(e.value) == (
        "layer 'x' of A has 10 examples but layer 'z' of B has 12: CKA compares two "
        "representations of the same examples, in the same order"
    )
    with pytest.raises(strata.StrataError, match="similarity compares two representations"):
        strata.similarity_matrix(a, b, measure="cca_rho")
    with pytest.raises(strata.StrataError, match="^A holds no layers$"):
        strata.cka_matrix({})


MEASURES = ["cca_rho", "cca_r2", "svcca_rho", "svcca_r2", "pwcca", "linreg", "procrustes",
            "hsic", "cka_linear", "rsa", "mutual_knn", "cknna"]


def test_measure_names():
    assert list(strata.MEASURE_NAMES) == MEASURES


@pytest.mark.parametrize("measure", MEASURES)
@pytest.mark.parametrize("n,p,q", [(200, 12, 7), (60, 5, 20), (30, 3, 3)])
def test_similarity_matches_reference(rng, measure, n, p, q):
    x = rng.normal(size=(n, p)) * rng.uniform(0.5, 3, size=p)
    y = np.tanh(x @ rng.normal(size=(p, q))) + 0.5 * rng.normal(size=(n, q))
    got = strata.similarity(x, y, measure)
    want = ref_measure(measure, x, y)
    assert got == pytest.approx(want, rel=1e-4, abs=1e-5)


def test_similarity_cka_is_linear_cka(rng):
    x, y = rng.normal(size=(50, 4)), rng.normal(size=(50, 6))
    assert strata.similarity(x, y) == strata.cka(x, y)
    assert strata.similarity(x, y, "cka_linear") == pytest.approx(strata.cka(x, y), abs=1e-5)
    r = strata.similarity_matrix({"x": x, "y": y})
    assert r.measure == "cka" and r.kernel == "linear"


@pytest.mark.parametrize("measure", MEASURES)
def test_similarity_matrix_equals_pairwise(rng, measure):
    a, b = model(rng), model(rng)
    for lb in [b, None]:
        other = a if lb is None else b
        r = strata.similarity_matrix(a, lb, measure=measure)
        assert r.measure == measure and r.kernel is None and r.n == 120
        assert r.higher_is_similar == (measure != "procrustes")
        for i, na in enumerate(a):
            for j, nb in enumerate(other):
                assert r.values[i, j] == pytest.approx(
                    strata.similarity(a[na], other[nb], measure), rel=1e-9, abs=1e-12
                )


def test_similarity_undefined(rng):
    y = rng.normal(size=(20, 3))
    with pytest.raises(strata.StrataError) as e:
        strata.similarity(np.ones((20, 2)), y, "cka_linear")
    assert str(e.value) == (
        "linear CKA is undefined: layer X is constant (rank 0 after centering the columns)"
    )
    r = strata.similarity_matrix({"c": np.ones((20, 2)), "y": y}, measure="procrustes")
    assert np.isnan(r.values[0]).all() and r.values[1, 1] == pytest.approx(0, abs=1e-6)
    assert r.notes[0].startswith("c vs c: the Procrustes distance is undefined")
    with pytest.raises(strata.StrataError, match=r"^unknown measure 'foo': use cka, cca_rho, "):
        strata.similarity(y, y, "foo")
    with pytest.raises(strata.StrataError, match="^X: a representation holds NaN"):
        strata.similarity(np.full((20, 2), np.nan), y, "cca_rho")


def test_result_exports(rng, tmp_path):
    r = strata.cka_matrix(model(rng), {"a": rng.normal(size=(120, 3)),
                                       "dead": np.zeros((120, 2))})
    d = r.to_dict()
    assert json.loads(json.dumps(d)) == d
    assert d["values"][0][1] is None and d["layers_b"] == ["a", "dead"]
    df = r.to_pandas()
    assert isinstance(df, pd.DataFrame)
    assert list(df.index) == r.layers_a and list(df.columns) == r.layers_b
    np.testing.assert_array_equal(df.to_numpy(), r.values)
    np.testing.assert_array_equal(np.asarray(r), r.values)
    html = r._repr_html_()
    assert html.count("<tr>") == 4 and "n/a" in html and "background: #" in html
    text = repr(r)
    assert text.startswith("SimilarityResult(linear CKA (biased), n=120, 3x2)") and "n/a" in text
    png = r.heatmap(tmp_path / "h.png")
    assert open(png, "rb").read(8) == b"\x89PNG\r\n\x1a\n"
    svg = r.heatmap(str(tmp_path / "h.svg"), title="custom")
    body = open(svg).read()
    assert body.lstrip().startswith("<svg") and "custom" in body
    with pytest.raises(strata.StrataError, match=r"h\.jpg: a heatmap is written as \.png or \.svg"):
        r.heatmap(tmp_path / "h.jpg")
    with pytest.raises(strata.StrataError, match="values have shape"):
        strata._strata.heatmap(np.zeros((2, 2)), ["a"], ["b", "c"], "t", str(tmp_path / "x.png"))
    assert "-1.00" not in body  # CKA's colour scale is [0, 1]
    with pytest.raises(strata.StrataError, match="vmin"):
        strata._strata.heatmap(np.zeros((1, 1)), ["a"], ["b"], "t", str(tmp_path / "y.png"),
                               vmin=1.0, vmax=1.0)


def test_heatmaps_of_signed_measures_span_minus_one_to_one(rng, tmp_path):
    x = rng.normal(size=(40, 5))
    r = strata.similarity_matrix({"x": x}, {"y": -x + 0.1 * rng.normal(size=(40, 5))}, measure="rsa")
    body = open(r.heatmap(tmp_path / "rsa.svg")).read()
    assert "-1.00" in body and "1.00" in body


def test_to_pandas_without_pandas(rng, monkeypatch):
    import builtins

    real = builtins.__import__

    def fake(name, *a, **k):
        if name == "pandas":
            raise ImportError("no pandas")
        return real(name, *a, **k)

    monkeypatch.setattr(builtins, "__import__", fake)
    r = strata.cka_matrix([rng.normal(size=(10, 2))])
    with pytest.raises(ImportError, match="needs pandas: pip install pandas"):
        r.to_pandas()


def test_neighbour_measures_take_k(rng):
    x = rng.normal(size=(40, 6))
    y = x @ rng.normal(size=(6, 5)) + 0.5 * rng.normal(size=(40, 5))
    k3 = strata.similarity(x, y, measure="mutual_knn:k=3")
    k39 = strata.similarity(x, y, measure="mutual_knn:k=39")
    assert 0.0 <= k3 <= 1.0 and k3 != k39
    assert strata.similarity(x, y, measure="mutual_knn") == strata.similarity(
        x, y, measure="mutual_knn:k=10")
    with pytest.raises(strata.StrataError, match="unknown measure 'mutual_knn:k=0'"):
        strata.similarity(x, y, measure="mutual_knn:k=0")


def test_heatmap_range_follows_the_measure_with_its_options():
    assert strata._strata._value_range("cknna:k=5") == (-1.0, 1.0)
    assert strata._strata._value_range("rsa") == (-1.0, 1.0)
    assert strata._strata._value_range("cka") == (0.0, 1.0)
