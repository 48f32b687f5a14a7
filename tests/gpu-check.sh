#!/usr/bin/env bash
# The GPU checks and benchmarks, for a machine with an NVIDIA GPU (CUDA 12 or 13 driver,
# libnvrtc and libcublas on the loader path). Build `strata` first (cargo build --release), or
# point STRATA at a binary built elsewhere; results go to benches/results/gpu/ (or $1).
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
