"""strata.open / strata.StoreWriter: round trips with the CLI, pyarrow and NumPy files."""

from __future__ import annotations

import json
import os
import struct

import numpy as np
import pyarrow.ipc
import pyarrow.parquet
import pytest
import strata

SHAPES = {"fc1": (16,), "conv": (3, 4, 2), "logits": (5,)}


def acts(rng, n):
    return {k: rng.normal(size=(n, *s)).astype(np.float32) for k, s in SHAPES.items()}


def write_store(path, data, batch=37, meta=None):
    n = next(iter(data.values())).shape[0]
    with strata.StoreWriter(path, SHAPES, meta=meta) as w:
        assert not w.closed and w.rows == 0
        for s in range(0, n, batch):
            w.write({k: v[s:s + batch] for k, v in data.items()})
        assert w.rows == n
    assert w.closed
    return w


def leftovers(d):
    return sorted(p for p in os.listdir(d) if p.endswith(".tmp") or p.startswith("."))


@pytest.mark.parametrize("ext", ["arrow", "parquet"])
def test_round_trip(rng, tmp_path, ext, cli):
    path = tmp_path / f"acts.{ext}"
    data = acts(rng, 150)
    w = write_store(path, data, meta={"model": "mlp", "seed": 3})
    assert w.rows == 150 and w.layers == SHAPES and w.path == str(path)
    s = strata.open(path)
    assert (s.n, s.format, s.layers, len(s)) == (150, ext, list(SHAPES), 3)
    assert list(s) == list(SHAPES) and "conv" in s and "nope" not in s
    for k, shape in SHAPES.items():
        assert s.shape(k) == shape
        got = s[k]
        assert got.dtype == np.float32 and got.shape == (150, *shape)
        np.testing.assert_array_equal(got, data[k])
    assert repr(s).startswith(f"Store('{path}', format='{ext}', n=150, layers={{fc1: (16,)")
    with pytest.raises(KeyError):
        s["nope"]
    with pytest.raises(strata.StrataError, match=r"no layer named 'nope' \(layers: fc1, conv, logits\)"):
        s.read("nope")
    # The CLI reads it.
    info = cli("layers", path, "--json")
    assert info["n"] == 150 and info["format"] == ext
    assert [(l["name"], tuple(l["shape"])) for l in info["layers"]] == list(SHAPES.items())
    got = cli("cka", path, path, "--device", "cpu", "--json")
    r = strata.cka_matrix(data)
    assert got["layers_a"] == r.layers_a
    np.testing.assert_allclose(np.array(got["cka"], dtype=float), r.values, rtol=1e-6, atol=1e-7)
    # pyarrow reads it, with the metadata.
    table = (pyarrow.ipc.open_file(str(path)).read_all() if ext == "arrow"
             else pyarrow.parquet.read_table(str(path)))
    assert table.column_names == list(SHAPES)
    assert json.loads(table.schema.metadata[b"strata.meta"]) == {"model": "mlp", "seed": 3}
    np.testing.assert_array_equal(np.stack(table["fc1"].to_numpy(zero_copy_only=False)),
                                  data["fc1"])
    assert leftovers(tmp_path) == []


def test_cli_written_store_is_read(tmp_path, cli):
    cli("train", "--data", "digits", "--widths", "12,8", "--epochs", "1",
        "--out", tmp_path / "m")
    out = cli("collect", "--model", tmp_path / "m.safetensors", "--data", "digits",
              "--limit", "120", "--out", tmp_path / "acts.parquet", "--device", "cpu")
    assert "120" in out
    s = strata.open(tmp_path / "acts.parquet")
    info = cli("layers", tmp_path / "acts.parquet", "--json")
    assert s.n == info["n"] == 120 and s.format == "parquet"
    assert s.layers == [l["name"] for l in info["layers"]]
    layers = {k: s[k] for k in s}
    got = cli("cka", tmp_path / "acts.parquet", tmp_path / "acts.parquet", "--device", "cpu",
              "--json")
    r = strata.cka_matrix(layers)
    np.testing.assert_allclose(np.array(got["cka"], dtype=float), r.values, rtol=1e-6, atol=1e-7)
    rbf = cli("cka", tmp_path / "acts.parquet", tmp_path / "acts.parquet", "--kernel", "rbf",
              "--estimator", "debiased", "--device", "cpu", "--json")
    r = strata.cka_matrix(layers, kernel="rbf", estimator="debiased")
    np.testing.assert_allclose(np.array(rbf["cka"], dtype=float), r.values, rtol=1e-6, atol=1e-7)


def test_numpy_files(rng, tmp_path, cli):
    x = rng.normal(size=(40, 3, 4)).astype(np.float32)
    np.save(tmp_path / "one.npy", x)
    s = strata.open(str(tmp_path / "one.npy"))
    assert (s.format, s.layers, s.shape("one")) == ("npy", ["one"], (3, 4))
    np.testing.assert_array_equal(s["one"], x)
    np.save(tmp_path / "f.npy", np.asfortranarray(x.reshape(40, 12)).astype(np.float64))
    np.testing.assert_array_equal(strata.open(tmp_path / "f.npy")["f"], x.reshape(40, 12))
    np.savez_compressed(tmp_path / "z.npz", a=x, b=x[:, 0])
    z = strata.open(tmp_path / "z.npz")
    assert z.format == "npz" and z.layers == ["a", "b"] and z.shape("b") == (4,)
    np.testing.assert_array_equal(z["b"], x[:, 0])
    # safetensors, written by hand (header length, JSON header, little-endian data).
    header = {"t": {"dtype": "F32", "shape": [40, 12], "data_offsets": [0, 40 * 12 * 4]}}
    hb = json.dumps(header).encode()
    with open(tmp_path / "w.safetensors", "wb") as f:
        f.write(struct.pack("<Q", len(hb)) + hb + x.reshape(40, 12).astype("<f4").tobytes())
    st = strata.open(tmp_path / "w.safetensors")
    assert st.format == "safetensors" and st.layers == ["t"]
    np.testing.assert_array_equal(st["t"], x.reshape(40, 12))
    # The CLI and Python agree on these files too.
    got = cli("cka", tmp_path / "z.npz", tmp_path / "w.safetensors", "--device", "cpu", "--json")
    r = strata.cka_matrix({"a": z["a"], "b": z["b"]}, {"t": st["t"]})
    np.testing.assert_allclose(np.array(got["cka"], dtype=float), r.values, rtol=1e-6, atol=1e-7)


def test_open_errors(tmp_path):
    with pytest.raises(strata.StrataError, match="No such file"):
        strata.open(tmp_path / "missing.npy")
    (tmp_path / "junk.bin").write_bytes(b"hello world, not an array")
    with pytest.raises(strata.StrataError, match=r"junk\.bin: unknown format \(expected \.npy"):
        strata.open(tmp_path / "junk.bin")
    bad = np.ones((5, 2), dtype=np.float32)
    bad[2, 1] = np.nan
    np.save(tmp_path / "nan.npy", bad)
    s = strata.open(tmp_path / "nan.npy")
    with pytest.raises(strata.StrataError, match="NaN"):
        s.read("nan")


def test_exception_in_with_block_leaves_nothing(rng, tmp_path):
    path = tmp_path / "acts.arrow"
    data = acts(rng, 20)
    with pytest.raises(RuntimeError, match="boom"):
        with strata.StoreWriter(path, SHAPES) as w:
            w.write(data)
            assert leftovers(tmp_path) != []  # the hidden temporary file
            raise RuntimeError("boom")
    assert not path.exists() and leftovers(tmp_path) == [] and w.closed
    # abort() and dropping an unclosed writer leave nothing either.
    w = strata.StoreWriter(path, SHAPES)
    w.write(data)
    w.abort()
    del w
    w = strata.StoreWriter(path, SHAPES)
    w.write(data)
    del w
    assert os.listdir(tmp_path) == []


def test_write_errors(rng, tmp_path):
    path = tmp_path / "acts.parquet"
    data = acts(rng, 8)
    with pytest.raises(strata.StrataError, match=r"must end in \.arrow \(Arrow IPC\) or \.parquet"):
        strata.StoreWriter(tmp_path / "acts.csv", SHAPES)
    with pytest.raises(strata.StrataError, match="meta must be JSON-serializable"):
        strata.StoreWriter(path, SHAPES, meta={"f": object()})
    with pytest.raises(strata.StrataError, match="per-example shape must be a tuple"):
        strata.StoreWriter(path, {"a": "wide"})
    w = strata.StoreWriter(path, SHAPES)
    with pytest.raises(strata.StrataError, match="the batch is missing layer 'logits'"):
        w.write({"fc1": data["fc1"], "conv": data["conv"]})
    with pytest.raises(strata.StrataError, match=r"the batch has layer 'extra', which the store "
                                                 r"does not hold \(layers: fc1, conv, logits\)"):
        w.write({**data, "extra": data["fc1"]})
    with pytest.raises(strata.StrataError, match=r"layer 'conv': the batch has shape \(8, 4, 3, 2\), "
                                                 r"expected \(batch, 3, 4, 2\)"):
        w.write({**data, "conv": data["conv"].reshape(8, 4, 3, 2)})
    with pytest.raises(strata.StrataError, match="layer 'conv' has 7 rows but layer 'fc1' has 8"):
        w.write({**data, "conv": data["conv"][:7]})
    nan = data["logits"].copy()
    nan[1, 4] = np.inf
    with pytest.raises(strata.StrataError, match=r"layer 'logits': a representation holds NaN or "
                                                 r"Inf \(first at example 1, feature 4\)"):
        w.write({**data, "logits": nan})
    assert w.rows == 0
    # Any dtype, any layout, flattened per-example shapes are accepted.
    w.write({"fc1": data["fc1"].astype(np.float64), "conv": data["conv"].reshape(8, 24),
             "logits": np.asfortranarray(data["logits"]).astype(np.float16)})
    w.write({"fc1": data["fc1"][:0], "conv": data["conv"][:0], "logits": data["logits"][:0]})
    assert w.close() == 8
    with pytest.raises(strata.StrataError, match="the StoreWriter is closed"):
        w.write(data)
    with pytest.raises(strata.StrataError, match="already closed"):
        w.close()
    s = strata.open(path)
    np.testing.assert_array_equal(s["conv"], data["conv"])
    np.testing.assert_array_equal(s["logits"], data["logits"].astype(np.float16).astype(np.float32))
