#!/usr/bin/env bash
# strata's GPU path end to end on a machine without a GPU. The Rust host code, cudarc, NVRTC's
# real compilation of the kernels and the kernels themselves run against tests/cudasim, a host
# emulation of the CUDA driver and of cuBLAS (SGEMM and FP16 GemmEx): threads are fibers, warp collectives and the
# tensor-core mma.sync are emulated (the latter from the PTX ISA's fragment layouts), device
# memory is guarded, and streams run in lazy, eager and random orders.
#
#   1. `strata gpu check` must pass under every order;
#   2. the CLI's GPU paths (eval both engines, collect, cka --device cuda) must agree with the CPU;
#   3. self-test: seven planted bugs (a wrong mma fragment, a missing bounds guard, a broken warp
#      reduction, packing past a row's end, a missing __syncthreads, cross-stream waits dropped,
#      pinned staging buffers refilled before their copies ran) must each be caught.
#
# This shows the code is right, not that it is fast: timings under the emulator mean nothing, and
# a GPU can still differ (its scheduling, its hardware). tests/gpu-check.sh is the check on one.
# Needs g++ on x86-64 and libnvrtc (fetched by tests/gpu-kernels.sh); prints a skip notice
# without them.
set -uo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/strata-target}"
nvrtc="$HOME/.cache/strata-cuda/nvrtc/nvidia/cu13/lib"
if ! command -v g++ >/dev/null || [ "$(uname -m)" != x86_64 ]; then
    echo "SKIPPED: the emulator needs g++ on x86-64"; exit 0
fi
if [ ! -e "$nvrtc/libnvrtc.so.13" ]; then
    echo "SKIPPED: libnvrtc not fetched (run tests/gpu-kernels.sh first)"; exit 0
fi
set -e
sim="$CARGO_TARGET_DIR/cudasim"
rm -rf "$sim"
mkdir -p "$sim/lib"
flags=(-std=c++17 -O2 -g -fPIC -ffp-contract=off -fno-strict-aliasing -DSTRATA_CUDA_SIM -Wall
    -Wno-unknown-pragmas -Wno-unused-function -I tests/cudasim)
g++ "${flags[@]}" -c tests/cudasim/fibers.cpp -o "$sim/fibers.o"
g++ "${flags[@]}" -c tests/cudasim/cublas.cpp -o "$sim/cublas.o"
# build KERNEL_DIR OUT_DIR: the driver with the kernels of KERNEL_DIR, under the names cudarc loads.
build() {
    mkdir -p "$2"
    g++ "${flags[@]}" -I "$1" -shared tests/cudasim/driver.cpp "$sim/fibers.o" "$sim/cublas.o" \
        -o "$2/libcudasim.so"
    for name in libcuda.so libcuda.so.1 libcublas.so libcublas.so.13; do
        ln -sf libcudasim.so "$2/$name"
    done
}
build crates/strata-gpu/src/kernels "$sim/lib"
cargo build --release -q -p strata-cli
strata="$CARGO_TARGET_DIR/release/strata"
with_sim() { LD_LIBRARY_PATH="$1:$nvrtc${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}" "${@:2}"; }
gpu() { with_sim "$sim/lib" "$strata" "$@"; }

gpu gpu info
echo "== 1. strata gpu check under each stream order"
for schedule in lazy eager random:1 random:2; do
    echo "-- $schedule"
    STRATA_CUDASIM_SCHEDULE=$schedule gpu gpu check --seed 7 >"$sim/check.log"
    tail -1 "$sim/check.log"
    # Every check ran and passed (a skip notice or an empty report is a failure here).
    grep -Eq "^([1-9][0-9]*) of \1 checks passed$" "$sim/check.log"
done

echo "== 2. the CLI's GPU paths against the CPU"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
for p in w1a1 float; do
    "$strata" train --data mnist-small --precision "$p" --widths 300,200 --epochs 1 --seed 0 \
        --out "$work/$p" --quiet >/dev/null
done
{
    for device in cpu cuda; do
        gpu eval --model "$work/float" --device "$device" --json
        gpu eval --model "$work/w1a1" --device "$device" --json
        gpu eval --model "$work/w1a1" --engine packed --device "$device" --json
    done
} >"$work/eval.jsonl"
python3 - "$work/eval.jsonl" <<'PY'
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
cpu, cuda = rows[:3], rows[3:]
names = ["float MLP", "w1a1 MLP, float engine", "w1a1 MLP, packed engine"]
bad = 0
for name, c, g in zip(names, cpu, cuda):
    # w1a1 is exact on both engines; a float MLP may flip an argmax tie at f32 rounding.
    ok = c["accuracy"] == g["accuracy"] if "w1a1" in name else abs(c["accuracy"] - g["accuracy"]) <= 0.002
    bad += not ok
    print("ok  " if ok else "FAIL", "eval %s: accuracy cpu %.4f, cuda %.4f" % (name, c["accuracy"], g["accuracy"]))
sys.exit(1 if bad else 0)
PY
for p in w1a1 float; do
    for device in cpu cuda; do
        gpu collect --model "$work/$p" --device "$device" --out "$work/$p-$device.arrow" -q
    done
done
cmp "$work/w1a1-cpu.arrow" "$work/w1a1-cuda.arrow"
echo "ok   collect w1a1: the GPU store is byte-identical to the CPU's"
for device in cpu cuda; do
    gpu cka "$work/float-cpu.arrow" "$work/float-cuda.arrow" --device "$device" --json \
        >"$work/twins-$device.json"
    # Minibatch CKA (debiased HSIC per batch of 300; the last batch has 100), the layers of
    # one store against each other (the symmetric path).
    gpu cka "$work/float-cpu.arrow" "$work/float-cpu.arrow" --batch-size 300 --device "$device" \
        --json >"$work/mini-$device.json"
done
python3 - "$work" <<'PY'
import json, sys
def load(name):
    return json.load(open(f"{sys.argv[1]}/{name}.json"))
def gap(x, y):
    # A shape mismatch, an empty matrix or a NaN is an infinite gap (zip would truncate, and
    # max skips a NaN that is not first).
    shape = lambda m: [len(r) for r in m["cka"]]
    if shape(x) != shape(y) or not x["cka"] or 0 in shape(x):
        return float("inf")
    # Relative, against at least 0.01 (as strata gpu check: CKA_RELATIVE_FLOOR).
    ds = [abs(a - b) / max(abs(a), 0.01) for ra, rb in zip(x["cka"], y["cka"]) for a, b in zip(ra, rb)]
    return max(d if d == d else float("inf") for d in ds)
cpu, cuda = load("twins-cpu"), load("twins-cuda")
n = len(cpu["layers_a"])
low = min(cpu["cka"][i][i] for i in range(n))
full = gap(cpu, cuda)
mini = gap(load("mini-cpu"), load("mini-cuda"))
ok = low >= 1 - 1e-6 and full <= 1e-5 and mini <= 1e-5
print("ok  " if ok else "FAIL",
      "collect float: CKA with the CPU twin >= %.9f; cka --device cuda vs cpu, max rel diff %.2e "
      "(full), %.2e (minibatch)" % (low, full, mini))
sys.exit(0 if ok else 1)
PY

# An analysis spec with [cka] device = "cuda": the runner collects on the GPU (its own stores,
# not the CPU run's cached ones) and compares there; every CKA within 1e-5 of the CPU run's.
python3 - "$work" <<'PY'
import sys
s = open("analyses/quickstart.toml").read()
for old, new in [("collect_limit = 1000", "collect_limit = 300"), ("[256, 256, 256]", "[64, 32]"),
                 ('"float", "w1a1", "w2a2", "w4a4"', '"float", "w1a1", "w2a2"'),
                 ("seeds = [0, 1, 2]", "seeds = [0, 1]"), ("epochs = 5", "epochs = 1")]:
    assert old in s, old
    s = s.replace(old, new)
for device in ["cpu", "cuda"]:
    open(f"{sys.argv[1]}/{device}.toml", "w").write(
        s.replace('activations = "post"', f'activations = "post"\ndevice = "{device}"'))
PY
for device in cpu cuda; do
    gpu run "$work/$device.toml" --reports "$work/reports" --cache "$work/cache" -q >/dev/null
done
python3 - "$work/reports" <<'PY'
import csv, json, sys
r = sys.argv[1]
rows = {d: list(csv.DictReader(open(f"{r}/{d}/tables/twin_cka.csv"))) for d in ["cpu", "cuda"]}
gap = max(abs(float(a["cka"]) - float(b["cka"])) / max(abs(float(a["cka"])), 0.01)
          for a, b in zip(rows["cpu"], rows["cuda"]))
models = json.load(open(f"{r}/cuda/manifest.json"))["models"]
on_gpu = all(m["activations_collected_on"].startswith("cuda") and not m["activations_cached"]
             for m in models)
ok = len(rows["cpu"]) == len(rows["cuda"]) > 0 and gap <= 1e-5 and on_gpu
print("ok  " if ok else "FAIL",
      "run spec with device = cuda: %d twin CKAs, max rel diff vs the CPU run %.2e; "
      "%d stores collected on the GPU" % (len(rows["cuda"]), gap, len(models)))
sys.exit(0 if ok else 1)
PY
# The benches' GPU code paths (their timings under the emulator mean nothing; bench
# binary-gemm's square shape shrinks from 8192^3 to 200^3, its MLP shapes stay).
gpu bench gram --n 301 --widths 17,40 --repeat 1 >"$work/gram.md"
gpu bench mlp --rows 700 --widths 64,32 --batch 300 --repeat 1 --device cuda >"$work/mlp.md"
gpu bench binary-gemm --device cuda --square 200 --repeat 1 --json >"$work/binary.json"
python3 - "$work/gram.md" "$work/mlp.md" "$work/binary.json" <<'PY'
import json, re, sys
gram, mlp = (open(p).read() for p in sys.argv[1:3])
binary = json.load(open(sys.argv[3]))["results"]
m = re.search(r"max rel\. diff ([0-9.e+-]+)", gram)
gap = float(m.group(1)) if m else float("inf")
rows = [l for l in mlp.splitlines() if l.startswith("| cuda:0 | w1a1 |")]
agree = len(rows) == 3 and all(l.rstrip().endswith("| 100.00% |") for l in rows)
# bench binary-gemm: 4 shapes x 2 kernels, each product checked on sampled rows (a wrong one
# is an error, not a row), each with its SGEMM and FP16 (cublasGemmEx) baselines.
full = len(binary) == 8 and all(r["checked_rows"] >= 2 and r["fp16_seconds"] is not None
                                for r in binary)
ok = gap <= 1e-5 and agree and full
print("ok  " if ok else "FAIL", "bench gram: GPU vs CPU CKA max rel diff %.2e; bench mlp: %d GPU w1a1 "
      "engines, %s; bench binary-gemm: %d rows, %s" % (gap, len(rows), "all agree with the float engine"
      if agree else "NOT all agree", len(binary), "each product checked, FP16 baseline present"
      if full else "NOT all checked or FP16 missing"))
sys.exit(0 if ok else 1)
PY

echo "== 3. self-test: planted bugs must be caught"
# mutant NAME FILE FROM TO: the kernels with FROM replaced by TO (exactly once) in FILE.
mutant() {
    local d="$sim/mutants/$1"
    mkdir -p "$d/src"
    cp crates/strata-gpu/src/kernels/*.cu "$d/src/"
    python3 - "$d/src/$2" "$3" "$4" <<'PY'
import sys
path, old, new = sys.argv[1:]
s = open(path).read()
assert s.count(old) == 1, f"mutation target not found once in {path}: {old!r}"
open(path, "w").write(s.replace(old, new))
PY
    build "$d/src" "$d/lib"
    caught "$1" "$d/lib"
}
caught() {
    # Caught means a failed comparison or an emulator error, not any failure (a build or load
    # error would say nothing about the checks).
    if with_sim "$2" "$strata" gpu check --seed 7 >"$sim/$1.log" 2>&1 \
        || ! grep -Eq "^  FAIL|^cudasim:" "$sim/$1.log"; then
        echo "FAIL planted bug '$1' was not caught"
        cat "$sim/$1.log"
        exit 1
    fi
    echo "ok   planted bug '$1' caught: $(grep -m1 -E 'FAIL|cudasim:' "$sim/$1.log" | sed 's/  */ /g')"
}
mutant mma-fragment binary.cu "a1 = r1[t], a2 = r0[4 + t]" "a1 = r0[4 + t], a2 = r1[t]"
mutant xor-bounds binary.cu "(ga < m && gw < kw)" "(gw < kw)"
mutant warp-reduction gram.cu "for (int o = 16; o > 0; o >>= 1) v += __shfl_down_sync(0xffffffffu, v, o);
    int lane" "for (int o = 8; o > 0; o >>= 1) v += __shfl_down_sync(0xffffffffu, v, o);
    int lane"
mutant pack-padding mlp.cu "if (j < out &&" "if (j <= out &&"
mutant missing-barrier binary.cu "b[(long)gb * kw + gw] : 0u;
        }
        __syncthreads();" "b[(long)gb * kw + gw] : 0u;
        }"
STRATA_CUDASIM_IGNORE_WAITS=1 caught missing-waits "$sim/lib"
STRATA_CUDASIM_IGNORE_HOST_WAITS=1 caught missing-host-waits "$sim/lib"
# Only the staging buffers wait on events from the host: the staged-upload check must be what failed.
grep -q "^  FAIL staged uploads" "$sim/missing-host-waits.log" \
    || { echo "FAIL planted bug 'missing-host-waits' was caught, but not by the staged-upload check"; exit 1; }
echo "gpu-sim: every check passed under every order, and every planted bug was caught"
