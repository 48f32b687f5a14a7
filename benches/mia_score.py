#!/usr/bin/env python3
"""Time `strata mia score` on a CIFAR-100-sized audit: 64 models x 50,000 pool examples x 100
classes, logits generated with NumPy (members get a larger true-class logit), every attack, every
model as the target in turn. Reports wall time and the process's peak resident memory (from
/usr/bin/time -v when present, else from resource.getrusage) into benches/results/mia-score.*.

    python3 benches/mia_score.py [--strata PATH] [--models 64] [--pool 50000] [--classes 100]
"""

import argparse
import json
import os
import platform
import resource
import shutil
import subprocess
import sys
import tempfile
import time

import numpy as np


def find_strata(given):
    if given:
        return given
    target = os.environ.get("CARGO_TARGET_DIR", os.path.join(os.path.dirname(__file__), "..", "target"))
    built = os.path.join(target, "release", "strata")
    return built if os.path.exists(built) else shutil.which("strata") or "strata"


def cpu_name():
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--strata", help="the strata binary [default: $CARGO_TARGET_DIR/release/strata]")
    ap.add_argument("--models", type=int, default=64)
    ap.add_argument("--pool", type=int, default=50_000)
    ap.add_argument("--classes", type=int, default=100)
    ap.add_argument("--bootstrap", type=int, default=200)
    ap.add_argument("--work", help="folder for the generated logits [default: a temporary one]")
    ap.add_argument("--out", default=os.path.join(os.path.dirname(__file__), "results"))
    a = ap.parse_args()
    strata = find_strata(a.strata)
    work = a.work or tempfile.mkdtemp(prefix="strata-mia-bench-")
    os.makedirs(work, exist_ok=True)
    k, n, c = a.models, a.pool, a.classes

    subprocess.run([strata, "mia", "design", "--pool", str(n), "--models", str(k), "--seed", "0",
                    "--out", os.path.join(work, "design"), "-q"], check=True, stdout=subprocess.DEVNULL)
    members = np.load(os.path.join(work, "design", "members.npy"))
    rng = np.random.default_rng(0)
    labels = rng.integers(0, c, size=n)
    np.save(os.path.join(work, "labels.npy"), labels.astype(np.int64))
    # Per-example difficulty shared by all models, plus per-model noise; a member's true class
    # gets a boost that varies by example (some examples leak much more than others).
    difficulty = rng.normal(0.0, 1.5, size=n).astype(np.float32)
    boost = rng.gamma(2.0, 0.5, size=n).astype(np.float32)
    t0 = time.perf_counter()
    files = []
    for m in range(k):
        z = rng.standard_normal((n, c), dtype=np.float32)
        z[np.arange(n), labels] += 2.0 + difficulty + boost * members[m]
        path = os.path.join(work, f"model-{m:03d}.npy")
        np.save(path, z)
        files.append(path)
    gen = time.perf_counter() - t0

    cmd = [strata, "mia", "score", "--design", os.path.join(work, "design", "design.json"),
           "--labels", os.path.join(work, "labels.npy"), "--all-targets",
           "--bootstrap", str(a.bootstrap), "--json", "-q", "--logits", *files]
    timer = shutil.which("time") and os.path.exists("/usr/bin/time")
    full = (["/usr/bin/time", "-v"] + cmd) if timer else cmd
    t0 = time.perf_counter()
    p = subprocess.run(full, capture_output=True, text=True)
    wall = time.perf_counter() - t0
    if p.returncode != 0:
        sys.exit(f"strata mia score failed:\n{p.stderr}")
    peak_kib = None
    for line in p.stderr.splitlines():
        if "Maximum resident set size" in line:
            peak_kib = int(line.split(":")[1])
    if peak_kib is None:
        peak_kib = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    result = json.loads(p.stdout.strip().splitlines()[-1])
    attacks = result["attacks"]
    summary = {
        "what": f"strata mia score --all-targets: {k} models x {n} pool examples x {c} classes, "
                f"{len(attacks)} attacks, {a.bootstrap} bootstrap resamples on the primary target",
        "machine": {"cpu": cpu_name(), "cores": os.cpu_count(), "system": platform.platform()},
        "models": k, "pool": n, "classes": c, "attacks": sorted(attacks),
        "seconds": round(wall, 2), "peak_rss_gib": round(peak_kib / 2**20, 3),
        "generate_seconds": round(gen, 1),
        "targets": {"limit_seconds": 60, "limit_gib": 4.0},
        "auc_mean": {name: round(v["across_targets"]["auc"]["mean"], 4) for name, v in attacks.items()},
        "tpr_at_0.1pct_fpr_mean": {name: round(v["across_targets"]["tpr_at_0.1pct_fpr"]["mean"], 4)
                                   for name, v in attacks.items()},
    }
    os.makedirs(a.out, exist_ok=True)
    with open(os.path.join(a.out, "mia-score.json"), "w") as f:
        json.dump(summary, f, indent=2)
    rows = "\n".join(
        f"| {name} | {summary['auc_mean'][name]:.3f} | {100 * summary['tpr_at_0.1pct_fpr_mean'][name]:.2f}% |"
        for name in sorted(attacks))
    md = f"""# `strata mia score` at CIFAR-100 size

{summary['what']}; {summary['machine']['cores']} cores ({summary['machine']['cpu']}).

| wall time | peak memory | target |
|---:|---:|---|
| **{wall:.1f} s** | **{peak_kib / 2**20:.2f} GiB** | at most 60 s and 4 GiB |

Generated logits (NumPy, {gen:.0f} s, not timed): a member's true class gets a per-example boost.
Mean over the {k} targets:

| attack | AUC | TPR @ 0.1% FPR |
|---|---:|---:|
{rows}

Reproduce: `python3 benches/mia_score.py` (needs NumPy and a release build of strata).
"""
    with open(os.path.join(a.out, "mia-score.md"), "w") as f:
        f.write(md)
    print(md)
    if not a.work:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
