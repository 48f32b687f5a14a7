#!/usr/bin/env bash
# The GPU checks and benchmarks, for a machine with an NVIDIA GPU (CUDA 12 or 13 driver,
# libnvrtc and libcublas on the loader path). Build `strata` first (cargo build --release), or
# point STRATA at a binary built elsewhere; results go to benches/results/gpu/ (or $1): the
# benchmarks, and eval-mlp.jsonl (w1a1 MLP images/s: packed engine on the GPU and the CPU).
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
echo "== w1a1 MLP inference: packed engine on the GPU vs the CPU (images/s, same accuracy)"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
"$strata" train --data mnist-small --precision w1a1 --widths 1024,1024 --epochs 1 --lr 1e-2 \
    --seed 0 --out "$work/w1a1" >/dev/null
"$strata" train --data mnist-small --precision float --widths 1024,1024 --epochs 1 --lr 1e-3 \
    --seed 0 --out "$work/float" >/dev/null
mkdir -p "$out"
{
    for split in test train; do
        "$strata" eval --model "$work/float" --split "$split" --json
        "$strata" eval --model "$work/w1a1" --split "$split" --json
        "$strata" eval --model "$work/w1a1" --split "$split" --engine packed --device cpu --json
        "$strata" eval --model "$work/w1a1" --split "$split" --engine packed --device cuda --json
    done
} | tee "$out/eval-mlp.jsonl"
