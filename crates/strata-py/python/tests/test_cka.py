"""strata.cka against independent float64 references; inputs of every dtype and layout; errors."""

from __future__ import annotations

import re
import threading
import time

import numpy as np
import pytest
import strata
from conftest import ref_cka, ref_kornblith_linear

SIZES = [(4, 3, 5), (5, 2, 2), (7, 9, 4), (50, 8, 30), (60, 120, 70), (300, 40, 25)]


@pytest.mark.parametrize("n,p,q", SIZES)
@pytest.mark.parametrize("estimator", ["biased", "debiased"])
def test_linear_matches_reference(rng, n, p, q, estimator):
    x = rng.normal(size=(n, p))
    y = np.tanh(x @ rng.normal(size=(p, q))) + 0.3 * rng.normal(size=(n, q))
    got = strata.cka(x, y, estimator=estimator)
    assert isinstance(got, float)
    assert got == pytest.approx(ref_cka(x, y, estimator=estimator), abs=2e-5)
    if estimator == "biased":
        assert got == pytest.approx(ref_kornblith_linear(x, y), abs=2e-5)


@pytest.mark.parametrize("n,p,q", SIZES)
@pytest.mark.parametrize("estimator", ["biased", "debiased"])
@pytest.mark.parametrize("threshold", [0.2, 0.5, 0.8])
def test_rbf_matches_reference(rng, n, p, q, estimator, threshold):
    x = rng.normal(size=(n, p))
    y = np.sin(x @ rng.normal(size=(p, q))) + 0.1 * rng.normal(size=(n, q))
    got = strata.cka(x, y, kernel="rbf", threshold=threshold, estimator=estimator)
    want = ref_cka(x, y, "rbf", threshold, estimator)
    assert got == pytest.approx(want, abs=5e-5)


def test_smallest_sizes(rng):
    x, y = rng.normal(size=(2, 3)), rng.normal(size=(2, 4))
    assert strata.cka(x, y) == pytest.approx(ref_cka(x, y), abs=1e-5)
    x, y = rng.normal(size=(4, 3)), rng.normal(size=(4, 2))
    assert strata.cka(x, y, estimator="debiased") == pytest.approx(
        ref_cka(x, y, estimator="debiased"), abs=1e-4
    )


def test_invariances(rng):
    x = rng.normal(size=(200, 20))
    q, _ = np.linalg.qr(rng.normal(size=(20, 20)))
    assert strata.cka(x, 5.0 * x @ q) == pytest.approx(1.0, abs=1e-5)
    assert strata.cka(x, x + 100.0) == pytest.approx(1.0, abs=1e-5)


def test_constant_columns_contribute_nothing(rng):
    x = rng.normal(size=(80, 6))
    y = rng.normal(size=(80, 5))
    xc = np.concatenate([x, np.full((80, 3), 7.5)], axis=1)
    for est in ["biased", "debiased"]:
        want = ref_cka(x, y, estimator=est)
        assert strata.cka(xc, y, estimator=est) == pytest.approx(want, abs=2e-5)


def test_constant_representation_is_undefined(rng):
    y = rng.normal(size=(30, 4))
    with pytest.raises(strata.StrataError, match=r"^CKA is undefined: X: self-HSIC is 0"):
        strata.cka(np.full((30, 3), 2.0), y)
    with pytest.raises(strata.StrataError, match=r"^CKA is undefined: Y: .*constant"):
        strata.cka(y, np.zeros((30, 2)), estimator="debiased")
    with pytest.raises(strata.StrataError, match="RBF bandwidth is 0"):
        strata.cka(np.zeros((30, 2)), y, kernel="rbf")


def test_huge_and_tiny_values(rng):
    x = rng.normal(size=(100, 10))
    y = rng.normal(size=(100, 7)) + x[:, :7]
    want = strata.cka(x, y)
    for scale in [1e30, 1e-30, 3e37]:
        assert strata.cka(x * scale, y) == pytest.approx(want, abs=2e-5)
        assert strata.cka(x, y * scale, estimator="debiased") == pytest.approx(
            strata.cka(x, y, estimator="debiased"), abs=2e-5
        )
        assert strata.cka(x * scale, y, kernel="rbf") == pytest.approx(
            strata.cka(x, y, kernel="rbf"), abs=2e-5
        )
    with pytest.raises(strata.StrataError, match=r"X holds a value beyond float32's range "
                                                 r"\(first at example 3, feature 4\)"):
        z = x.copy()
        z[3, 4] = 1e300
        strata.cka(z, y)


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
@pytest.mark.parametrize("dtype", [np.float32, np.float64, np.float16])
def test_non_finite_is_an_error(rng, bad, dtype):
    x = rng.normal(size=(20, 5)).astype(dtype)
    y = rng.normal(size=(20, 3))
    x[7, 2] = bad
    msg = re.escape("X: a representation holds NaN or Inf (first at example 7, feature 2)")
    with pytest.raises(strata.StrataError, match="^" + msg + "$"):
        strata.cka(x, y)
    with pytest.raises(strata.StrataError, match="^Y: a representation holds NaN or Inf"):
        strata.cka(y, x)
    with pytest.raises(strata.StrataError, match=r"^layer 'b' of A: a representation holds"):
        strata.cka_matrix({"a": y, "b": x})


def test_mismatched_examples_message(rng):
    with pytest.raises(strata.StrataError) as e:
        strata.cka(rng.normal(size=(10, 3)), rng.normal(size=(12, 3)))
    assert str(e.value) == (
        "X has 10 examples but Y has 12: CKA compares two representations of the same "
        "examples, in the same order"
    )
    assert isinstance(e.value, ValueError)


def test_too_few_examples_messages(rng):
    with pytest.raises(strata.StrataError) as e:
        strata.cka(rng.normal(size=(3, 2)), rng.normal(size=(3, 2)), estimator="debiased")
    assert str(e.value) == (
        "the debiased estimator needs at least 4 examples; X and Y hold 3"
    )
    with pytest.raises(strata.StrataError, match="^the biased estimator needs at least 2 "):
        strata.cka(rng.normal(size=(1, 2)), rng.normal(size=(1, 2)))
    with pytest.raises(strata.StrataError, match="needs at least 2 examples; X and Y hold 0"):
        strata.cka(np.zeros((0, 2)), np.zeros((0, 2)))


def test_bad_options():
    x = np.eye(5)
    with pytest.raises(strata.StrataError, match="^unknown kernel 'poly': use linear or rbf$"):
        strata.cka(x, x, kernel="poly")
    with pytest.raises(strata.StrataError, match="^unknown estimator 'x': use biased or debiased$"):
        strata.cka(x, x, estimator="x")
    with pytest.raises(strata.StrataError,
                       match="^the RBF threshold must be a positive number, got -1$"):
        strata.cka(x, x, kernel="rbf", threshold=-1)
    with pytest.raises(strata.StrataError, match="no features"):
        strata.cka(np.zeros((5, 0)), x)


def test_dtypes_and_layouts_give_the_same_value(rng):
    base = rng.normal(size=(40, 6, 5)).astype(np.float32)
    y = rng.normal(size=(40, 11))
    want = strata.cka(base.reshape(40, -1), y)
    assert want == pytest.approx(ref_cka(base, y), abs=2e-5)
    same = [
        base.astype(np.float64),
        np.asfortranarray(base),
        base.astype(">f4"),
        base.reshape(40, 3, 2, 5),  # rank 4, same C-order flattening
        np.ascontiguousarray(base.transpose(0, 2, 1)).transpose(0, 2, 1),  # non-contiguous
        base.tolist(),
    ]
    for x in same:
        assert strata.cka(x, y) == pytest.approx(want, abs=1e-6)
    # A strided slice equals its contiguous copy.
    big = rng.normal(size=(80, 30))
    sl = big[::2, 1::3]
    assert not sl.flags.c_contiguous
    assert strata.cka(sl, y) == pytest.approx(strata.cka(sl.copy(), y), abs=1e-7)
    # float16 and integers are converted (values rounded the same way).
    h = base.astype(np.float16)
    assert strata.cka(h, y) == pytest.approx(ref_cka(h.astype(np.float64), y), abs=2e-5)
    ints = rng.integers(-50, 50, size=(40, 7))
    for dt in [np.int8, np.int32, np.int64, np.uint8]:
        v = ints.astype(dt)
        assert strata.cka(v, y) == pytest.approx(ref_cka(v.astype(np.float64), y), abs=2e-5)
    assert strata.cka(ints > 0, y) == pytest.approx(ref_cka((ints > 0).astype(float), y), abs=2e-5)


def test_rank_one_and_rank_zero(rng):
    x = rng.normal(size=50)
    y = rng.normal(size=(50, 3))
    assert strata.cka(x, y) == pytest.approx(strata.cka(x[:, None], y), abs=1e-7)
    with pytest.raises(strata.StrataError, match="^X is a 0-d array"):
        strata.cka(np.float32(1.0), y)
    with pytest.raises(strata.StrataError, match="^Y has dtype complex128; strata compares real numbers"):
        strata.cka(y, y.astype(complex))
    with pytest.raises(strata.StrataError, match="^X cannot be read as an array"):
        strata.cka([[1, 2], [3]], y)


def test_input_is_not_modified(rng):
    x = rng.normal(size=(30, 4)).astype(np.float32)
    keep = x.copy()
    strata.cka(x, x + 1, kernel="rbf")
    np.testing.assert_array_equal(x, keep)


def test_panics_become_strata_errors():
    with pytest.raises(strata.StrataError, match=r"^internal error \(a bug in strata"):
        strata._strata._panic_for_test()


def test_gil_is_released_while_computing(rng):
    x = rng.normal(size=(2500, 2500)).astype(np.float32)
    y = rng.normal(size=(2500, 2500)).astype(np.float32)
    t0 = time.perf_counter()
    strata.cka(x, y)
    alone = time.perf_counter() - t0
    done = []
    t = threading.Thread(target=lambda: done.append(strata.cka(x, y)))
    ticks = 0
    t.start()
    while t.is_alive():
        ticks += 1
        time.sleep(0.001)
    t.join()
    assert done and np.isfinite(done[0])
    # With the GIL held for the whole call this loop could not run while it computes.
    assert ticks >= max(5, int(alone * 100)), (ticks, alone)
