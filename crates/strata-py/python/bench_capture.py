"""Overhead of strata.torch.capture over a bare forward pass.

Runs a small ResNet (the one of tests/test_torch.py: residual blocks of conv-bn-relu with
skip connections) over N random 3x16x16 images, once bare (eval, no_grad) and once capturing
every layer into an activation store, and prints a table and one JSON line.

    python bench_capture.py --n 2000 --batch-size 100 --pool flatten mean
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import torch

import strata
import strata.torch as st

sys.path.insert(0, str(Path(__file__).resolve().parent / "tests"))
from test_torch import ResNet  # noqa: E402


def bare(model, batches) -> float:
    model.eval()
    t0 = time.perf_counter()
    with torch.no_grad():
        for x in batches:
            model(x)
    return time.perf_counter() - t0


def captured(model, batches, path: Path, pool: str) -> float:
    t0 = time.perf_counter()
    st.capture(model, batches, path, pool=pool)
    return time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=2000, help="images (default 2000)")
    ap.add_argument("--batch-size", type=int, default=100)
    ap.add_argument("--width", type=int, default=8, help="channels of the first stage")
    ap.add_argument("--pool", nargs="+", default=["flatten", "mean"])
    ap.add_argument("--format", choices=["arrow", "parquet"], default="arrow")
    ap.add_argument("--repeat", type=int, default=3, help="best of R runs")
    ap.add_argument("--threads", type=int, default=None, help="torch.set_num_threads")
    ap.add_argument("--dir", default=None, help="where the stores go (default: a temp dir)")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)

    torch.manual_seed(0)
    model = ResNet(width=args.width)
    g = torch.Generator().manual_seed(1)
    batches = [
        torch.randn(min(args.batch_size, args.n - i), 3, 16, 16, generator=g)
        for i in range(0, args.n, args.batch_size)
    ]
    bare(model, batches[:2])  # warm up

    rows = []
    with tempfile.TemporaryDirectory(dir=args.dir) as tmp:
        t_bare = min(bare(model, batches) for _ in range(args.repeat))
        for pool in args.pool:
            path = Path(tmp) / f"acts-{pool}.{args.format}"
            t_cap = min(captured(model, batches, path, pool) for _ in range(args.repeat))
            store = strata.open(str(path))
            size = os.path.getsize(path)
            rows.append(
                {
                    "pool": pool,
                    "layers": len(store.layers),
                    "n": store.n,
                    "bare_s": round(t_bare, 4),
                    "capture_s": round(t_cap, 4),
                    "overhead": round(t_cap / t_bare, 3),
                    "store_mb": round(size / 2**20, 1),
                    "write_mb_s": round(size / 2**20 / t_cap, 1),
                }
            )

    print(f"{'pool':8} {'layers':>6} {'n':>6} {'bare s':>8} {'capture s':>10} "
          f"{'overhead':>9} {'store MiB':>10} {'MiB/s':>8}")
    for r in rows:
        print(f"{r['pool']:8} {r['layers']:>6} {r['n']:>6} {r['bare_s']:>8.3f} "
              f"{r['capture_s']:>10.3f} {r['overhead']:>8.2f}x {r['store_mb']:>10.1f} "
              f"{r['write_mb_s']:>8.1f}")
    print(json.dumps({
        "bench": "capture_overhead", "torch_threads": torch.get_num_threads(),
        "batch_size": args.batch_size, "format": args.format, "results": rows,
    }))  # fmt: skip


if __name__ == "__main__":
    main()
