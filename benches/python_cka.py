#!/usr/bin/env python3
"""All-pairs linear CKA from Python: strata.cka_matrix against the CLI, NumPy and PyTorch.

The shapes are the CLI benchmark's (`strata bench cka`): two models of 4 layers each, widths
256-2048, n = 5,000 examples, float32, C-contiguous. Every contender computes the same biased
linear CKA of all 16 pairs in feature space (||YᵀX||²_F / (||XᵀX||_F ||YᵀY||_F) on centered
layers), each layer centered and its ||XᵀX||_F computed once:

* strata.cka_matrix on the arrays (the package; the GIL released while Rust computes);
* the CLI on the same arrays written as .npz files (`strata cka a.npz b.npz --json`): the time it
  reports for its own computation, file reading included, and the process's wall time;
* NumPy float32 and PyTorch float32 (CPU, its default threads), written here.

Times are the median of --repeat runs, measured in the same process on the same machine; the
matrices are checked against each other (max difference printed). Run from the repository root
with the package importable (`bash tests/python.sh` builds it; PYTHONPATH=crates/strata-py/python):

    python3 benches/python_cka.py [--n 5000] [--widths 256,512,1024,2048] [--repeat 3] [--out DIR]
"""
import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

import numpy as np
import strata


def median_time(f, repeat):
    times, out = [], None
    for _ in range(repeat):
        t = time.perf_counter()
        out = f()
        times.append(time.perf_counter() - t)
    return statistics.median(times), out


def numpy_cka(a, b):
    def prep(x):
        x = x - x.mean(0, keepdims=True, dtype=np.float32)
        return x, np.linalg.norm(x.T @ x)
    pa, pb = [prep(x) for x in a], [prep(y) for y in b]
    return np.array([[np.linalg.norm(y.T @ x) ** 2 / (nx * ny) for (y, ny) in pb] for (x, nx) in pa])


def torch_cka(torch, a, b):
    def prep(x):
        x = torch.from_numpy(x)
        x = x - x.mean(0, keepdim=True)
        return x, torch.linalg.matrix_norm(x.T @ x)
    with torch.no_grad():
        pa, pb = [prep(x) for x in a], [prep(y) for y in b]
        return np.array([[float(torch.linalg.matrix_norm(y.T @ x) ** 2 / (nx * ny))
                          for (y, ny) in pb] for (x, nx) in pa])


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=5000)
    ap.add_argument("--widths", default="256,512,1024,2048")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--strata", default=os.environ.get("STRATA_BIN", "target/release/strata"))
    ap.add_argument("--out", help="write python-cka.json and python-cka.md into this folder")
    args = ap.parse_args()
    widths = [int(w) for w in args.widths.split(",")]
    rng = np.random.default_rng(2019)
    a = [rng.standard_normal((args.n, w), dtype=np.float32) for w in widths]
    b = [np.tanh(x @ rng.standard_normal((w, w), dtype=np.float32) / np.sqrt(w)).astype(np.float32)
         for x, w in zip(a, widths)]
    rows = []

    t, m = median_time(lambda: strata.cka_matrix(a, b).values, args.repeat)
    rows.append(("strata.cka_matrix (Python)", t, m))
    with tempfile.TemporaryDirectory() as d:
        np.savez(os.path.join(d, "a.npz"), *a)
        np.savez(os.path.join(d, "b.npz"), *b)
        cmd = [args.strata, "cka", os.path.join(d, "a.npz"), os.path.join(d, "b.npz"),
               "--json", "--device", "cpu", "-q"]
        inner, wall = [], []
        for _ in range(args.repeat):
            t0 = time.perf_counter()
            res = json.loads(subprocess.run(cmd, check=True, capture_output=True, text=True).stdout)
            wall.append(time.perf_counter() - t0)
            inner.append(res["seconds"])
        cli = np.array([[np.nan if v is None else v for v in r] for r in res["cka"]])
        rows.append(("strata cka (CLI, its own time)", statistics.median(inner), cli))
        rows.append(("strata cka (CLI, process wall time)", statistics.median(wall), cli))
    t, m = median_time(lambda: numpy_cka(a, b), args.repeat)
    rows.append((f"NumPy {np.__version__} float32", t, m))
    try:
        import torch
        t, m = median_time(lambda: torch_cka(torch, a, b), args.repeat)
        rows.append((f"PyTorch {torch.__version__} float32 ({torch.get_num_threads()} threads)", t, m))
    except ImportError:
        print("note: torch not importable; skipping the PyTorch contender", file=sys.stderr)

    base = rows[0][1]
    ref = rows[0][2]
    md = [f"All-pairs linear CKA, {len(widths)} + {len(widths)} layers (widths {args.widths}), "
          f"n = {args.n}, float32, median of {args.repeat}\n",
          "| contender | seconds | time / strata.cka_matrix | max abs diff vs strata.cka_matrix |",
          "|---|---:|---:|---:|"]
    out = []
    for name, t, m in rows:
        diff = float(np.nanmax(np.abs(np.asarray(m) - ref)))
        md.append(f"| {name} | {t:.3f} | {t / base:.2f}x | {diff:.1e} |")
        out.append({"contender": name, "seconds": t, "ratio_to_package": t / base, "max_abs_diff": diff})
    text = "\n".join(md) + "\n"
    print(text, end="")
    result = {"n": args.n, "widths": widths, "repeat": args.repeat, "rows": out,
              "cpu_count": os.cpu_count()}
    print(json.dumps(result))
    if args.out:
        os.makedirs(args.out, exist_ok=True)
        with open(os.path.join(args.out, "python-cka.json"), "w") as f:
            json.dump(result, f, indent=2)
        with open(os.path.join(args.out, "python-cka.md"), "w") as f:
            f.write(text)


if __name__ == "__main__":
    main()
