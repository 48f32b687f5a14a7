#!/usr/bin/env bash
# Compile strata's CUDA kernels with NVRTC on a machine without a GPU: NVRTC is a library that
# needs no driver, and compiling for a real sm_XY runs ptxas, so syntax, types and the
# tensor-core kernel's inline PTX are all checked. libnvrtc comes from NVIDIA's PyPI wheel
# (nvidia-cuda-nvrtc), cached under ~/.cache/strata-cuda; if it cannot be had, the test prints
# a skip notice and passes.
set -uo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/strata-target}"
cache="$HOME/.cache/strata-cuda"
lib="$cache/nvrtc/nvidia/cu13/lib"
if [ ! -e "$lib/libnvrtc.so.13" ]; then
    mkdir -p "$cache"
    if timeout 300 python3 -m pip download -q --no-deps --only-binary=:all: \
        --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
        --python-version 3.12 --implementation cp -d "$cache" 'nvidia-cuda-nvrtc>=13,<14' \
        && unzip -o -q "$cache"/nvidia_cuda_nvrtc-*.whl -d "$cache/nvrtc"; then
        :
    else
        echo "SKIPPED: could not fetch libnvrtc; the kernels were not compiled here"
        exit 0
    fi
fi
set -e
LD_LIBRARY_PATH="$lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}" \
    cargo test --release -p strata-gpu --test kernels -- --nocapture
