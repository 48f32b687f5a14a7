#!/usr/bin/env bash
# Reproduces the strata zip tables in the README (benches/results/zip-text and zip-other): every
# file is compressed by strata and by gzip -9, bzip2 -9, xz -9e and zstd -19 in the same run, and
# every output is decoded and compared. About 15 minutes on 2 cores.
#
# Usage: bash benches/zip-bench.sh [path/to/strata]
set -euo pipefail
cd "$(dirname "$0")/.."
strata="${1:-${CARGO_TARGET_DIR:-target}/release/strata}"
[ -x "$strata" ] || { echo "error: $strata not found; build it with cargo build --release" >&2; exit 1; }
data=../shared/datasets
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
"$strata" zip bench "$data"/text/*.txt --out benches/results/zip-text
gunzip -c "$data/dna/ecoli-mg1655.fasta.gz" > "$work/ecoli-mg1655.fasta"
for k in 20 40 60; do "$strata" zip gen "xor:k=$k" --n 10000000 "$work/xor$k.bin"; done
"$strata" zip gen lfib:j=24,k=55,bits=8 "$work/lfib.bin"
"$strata" zip gen markov:alphabet=4,order=3 "$work/markov.bin"
"$strata" zip gen hmm:states=4,alphabet=4 "$work/hmm.bin"
"$strata" zip gen iid:alphabet=2,entropy=0.5 "$work/iid.bin"
"$strata" zip bench "$work/ecoli-mg1655.fasta" "$data/binary/random_org_10k.bin" \
    "$data/binary/mapsdatazrh" "$work"/xor{20,40,60}.bin "$work"/{lfib,markov,hmm,iid}.bin \
    --out benches/results/zip-other
