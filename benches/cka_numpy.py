#!/usr/bin/env python3
"""All-pairs linear CKA the way Kornblith et al.'s NumPy reference does it.

The reference (the "CKA" Colab accompanying Kornblith et al., ICML 2019) computes linear CKA for
one pair of representations in feature space: center both, then
||Y^T X||_F^2 / (||X^T X||_F ||Y^T Y||_F). Comparing every layer of model A with every layer of
model B means calling that once per pair, so each layer is re-centered and its ||X^T X||_F
recomputed for every pair it appears in. This script does exactly that work, in the dtype asked
for (NumPy's default float64 unless told otherwise), and reports the wall time.

Usage: cka_numpy.py DIR [--dtype float64|float32] [--repeat R]
DIR holds a_0.npy, a_1.npy, ... and b_0.npy, b_1.npy, ... (examples x features).
Prints one JSON object: {"seconds": best wall time, "cka": [[...]], "numpy": version, ...}.
"""
import argparse
import glob
import json
import os
import time

import numpy as np


def feature_space_linear_cka(x, y):
    """Linear CKA of two (n, p) arrays, biased estimator, computed in feature space."""
    x = x - np.mean(x, 0, keepdims=True)
    y = y - np.mean(y, 0, keepdims=True)
    cross = np.linalg.norm(x.T.dot(y)) ** 2
    norm_x = np.linalg.norm(x.T.dot(x))
    norm_y = np.linalg.norm(y.T.dot(y))
    return cross / (norm_x * norm_y)


def load(d, prefix, dtype):
    paths = sorted(glob.glob(os.path.join(d, prefix + "_*.npy")),
                   key=lambda p: int(p.rsplit("_", 1)[1].split(".")[0]))
    return [np.load(p).astype(dtype) for p in paths]


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("dir")
    ap.add_argument("--dtype", default="float64", choices=["float64", "float32"])
    ap.add_argument("--repeat", type=int, default=1)
    args = ap.parse_args()
    a = load(args.dir, "a", args.dtype)
    b = load(args.dir, "b", args.dtype)
    best, out = float("inf"), None
    for _ in range(args.repeat):
        t0 = time.perf_counter()
        out = [[float(feature_space_linear_cka(x, y)) for y in b] for x in a]
        best = min(best, time.perf_counter() - t0)
    info = {}
    try:
        from threadpoolctl import threadpool_info
        info = [{k: i.get(k) for k in ("internal_api", "num_threads", "version")} for i in threadpool_info()]
    except Exception:
        pass
    print(json.dumps({"seconds": best, "cka": out, "numpy": np.__version__,
                      "dtype": args.dtype, "blas": info}))


if __name__ == "__main__":
    main()
