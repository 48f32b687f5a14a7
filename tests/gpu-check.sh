#!/usr/bin/env bash
# The GPU checks and benchmarks, for a machine with an NVIDIA GPU (CUDA 12 or 13 driver,
# libnvrtc and libcublas on the loader path). Build `strata` first (cargo build --release), or
# point STRATA at a binary built elsewhere; results go to benches/results/gpu/ (or $1): the
# benchmarks, and eval-mlp.jsonl (images/s of a float and a w1a1 1024-1024 MNIST MLP, every
# engine on the GPU and the CPU). Last, collect on the GPU must match collect on the CPU.
#
#   bash tests/gpu-check.sh
#
# Prints a skip notice and exits 0 on a machine without a GPU.
set -euo pipefail
cd "$(dirname "$0")/.."
strata="${STRATA:-${CARGO_TARGET_DIR:-$HOME/.cache/strata-target}/release/strata}"
[ -x "$strata" ] || strata=target/release/strata
out="${1:-benches/results/gpu}"
"$strata" gpu info
if "$strata" gpu info --json | grep -q '"no_driver"'; then
    echo "SKIPPED: no CUDA driver on this machine"
    exit 0
fi
echo "== GPU vs CPU on awkward sizes (integers exact, CKA within 1e-5 relative)"
"$strata" gpu check
echo "== binary GEMM vs cuBLAS SGEMM"
"$strata" bench binary-gemm --device cuda --out "$out"
echo "== all-pairs CKA: GPU vs its SGEMM floor, TF32, CPU"
"$strata" bench gram --device cuda --out "$out"
echo "== MLP inference: w1a1 (float and packed engines) vs the float MLP, GPU and CPU (images/s)"
"$strata" bench mlp --device cuda --out "$out"
echo "== trained MNIST MLPs: accuracy and images/s of every engine, GPU and CPU"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
"$strata" train --data mnist-small --precision w1a1 --widths 1024,1024 --epochs 1 --lr 1e-2 \
    --seed 0 --out "$work/w1a1" --quiet >/dev/null
"$strata" train --data mnist-small --precision float --widths 1024,1024 --epochs 1 --lr 1e-3 \
    --seed 0 --out "$work/float" --quiet >/dev/null
mkdir -p "$out"
{
    for split in test train; do
        for device in cpu cuda; do
            "$strata" eval --model "$work/float" --split "$split" --device "$device" --repeat 5 --json
            "$strata" eval --model "$work/w1a1" --split "$split" --device "$device" --repeat 5 --json
            "$strata" eval --model "$work/w1a1" --split "$split" --engine packed --device "$device" \
                --repeat 5 --json
        done
    done
} | tee "$out/eval-mlp.jsonl"
echo "== collect on the GPU vs the CPU"
for net in w1a1 float; do
    "$strata" collect --model "$work/$net" --split train --device cpu --out "$work/$net-cpu.arrow" -q
    "$strata" collect --model "$work/$net" --split train --device cuda --out "$work/$net-cuda.arrow" -q
done
# 1-bit networks' products are exact integers: the stores must be byte for byte the same.
if cmp -s "$work/w1a1-cpu.arrow" "$work/w1a1-cuda.arrow"; then
    echo "ok   collect w1a1: the GPU store is byte-identical to the CPU's"
else
    echo "FAIL collect w1a1: the GPU store differs from the CPU's"
    exit 1
fi
# A float network's differ by f32 rounding: each layer's CKA with its CPU twin is 1.
"$strata" cka "$work/float-cpu.arrow" "$work/float-cuda.arrow" --device cpu --json >"$work/twins.json"
python3 - "$work/twins.json" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))
diag = [r["cka"][i][i] for i in range(len(r["layers_a"]))]
worst = min(diag)
print(("ok  " if worst >= 1 - 1e-6 else "FAIL"),
      "collect float: CKA of each layer with its CPU twin, lowest %.9f" % worst)
sys.exit(0 if worst >= 1 - 1e-6 else 1)
PY
