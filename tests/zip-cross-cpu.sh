#!/usr/bin/env bash
# Determinism across machines: encode with strata-zip built for one target CPU and decode with a
# build for another (baseline x86-64 vs -C target-cpu=native, whose vector units and FMA
# instructions differ), in both directions, with one and two threads, for the context mixer and
# both recurrent predictors. Any difference in one probability would break the decode.
#
# Usage: bash tests/zip-cross-cpu.sh   (builds the small `stz` example twice, ~2 min on 2 cores)
set -euo pipefail
cd "$(dirname "$0")/.."
base="${CARGO_TARGET_DIR:-$HOME/.cache/strata-target}"
native="$base-native"
cargo build --release -q -p strata-zip --example stz
CARGO_TARGET_DIR="$native" RUSTFLAGS="-C target-cpu=native" cargo build --release -q -p strata-zip --example stz
a="$base/release/examples/stz"
b="$native/release/examples/stz"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
# Inputs: a text, DNA with line breaks, a binary XOR-like source.
head -c 60000 ../shared/datasets/text/alice29.txt > "$work/text" 2>/dev/null \
    || python3 -c "import sys; sys.stdout.write('the quick brown fox jumps over the lazy dog. ' * 1200)" > "$work/text"
python3 - "$work" <<'PY'
import random, sys
r = random.Random(7)
w = sys.argv[1]
g = ''.join(r.choice('ACGT') for _ in range(40000))
open(w + '/dna', 'w').write('>test\n' + '\n'.join(g[i:i+70] for i in range(0, len(g), 70)) + '\n')
x = [r.getrandbits(1) for _ in range(20)]
for i in range(20, 50000): x.append(x[i-1] ^ x[i-20])
open(w + '/xor', 'wb').write(bytes(x))
PY
fail=0
for input in text dna xor; do
    for model in cm "cm+lstm:hidden=16" "gru:hidden=16,layers=2" "lstm:hidden=24"; do
        [ "$input" = text ] || [ "$model" = cm ] || [ "$model" = "cm+lstm:hidden=16" ] || continue
        for pair in "$a $b" "$b $a"; do
            set -- $pair
            "$1" c "$work/$input" "$work/c" "$model" 2>/dev/null
            for threads in 1 2; do
                if "$2" d "$work/c" "$work/out" "$threads" 2>/dev/null && cmp -s "$work/out" "$work/$input"; then
                    :
                else
                    echo "FAILED: $input, model $model, encoded by $1, decoded by $2 with $threads threads"
                    fail=1
                fi
            done
        done
        echo "ok: $input with $model (baseline <-> native, 1 and 2 threads)"
    done
done
exit $fail
