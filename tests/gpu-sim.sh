#!/usr/bin/env bash
# strata's GPU path end to end on a machine without a GPU: the Rust host code, cudarc, NVRTC's
# real compilation of the kernels, and the kernels themselves, run against tests/cudasim, a
# host emulation of the CUDA driver and cuBLAS SGEMM (threads as fibers, warp collectives and
# the tensor-core mma.sync emulated from the PTX ISA's fragment layouts, checked memory, streams
# run in lazy, eager and random orders). `strata gpu check` must pass under each order.
#
# This says the code is right, not that it is fast: timings under the emulator mean nothing,
# and a real GPU can still differ (scheduling, hardware). tests/gpu-check.sh is the check on one.
# Needs g++ and libnvrtc (fetched by tests/gpu-kernels.sh); prints a skip notice without them.
set -uo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/strata-target}"
nvrtc="$HOME/.cache/strata-cuda/nvrtc/nvidia/cu13/lib"
if ! command -v g++ >/dev/null; then echo "SKIPPED: no g++ to build the emulator"; exit 0; fi
if [ ! -e "$nvrtc/libnvrtc.so.13" ]; then
    echo "SKIPPED: libnvrtc not fetched (run tests/gpu-kernels.sh first)"; exit 0
fi
set -e
sim="$CARGO_TARGET_DIR/cudasim"
mkdir -p "$sim"
g++ -std=c++17 -O2 -g -fPIC -shared -ffp-contract=off -fno-strict-aliasing -DSTRATA_CUDA_SIM \
    -Wall -Wno-unknown-pragmas -Wno-unused-function \
    -I crates/strata-gpu/src/kernels -I tests/cudasim \
    tests/cudasim/driver.cpp tests/cudasim/fibers.cpp tests/cudasim/cublas.cpp \
    -o "$sim/libcudasim.so"
for name in libcuda.so libcuda.so.1 libcublas.so libcublas.so.13; do
    ln -sf libcudasim.so "$sim/$name"
done
cargo build --release -q -p strata-cli
strata="$CARGO_TARGET_DIR/release/strata"
export LD_LIBRARY_PATH="$sim:$nvrtc${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
"$strata" gpu info
for schedule in lazy eager random:1 random:2; do
    echo "== schedule $schedule"
    STRATA_CUDASIM_SCHEDULE=$schedule "$strata" gpu check --seed 7
done
echo "gpu-sim: all checks passed under every schedule"
