#!/usr/bin/env bash
# Build the strata Python package (crates/strata-py) and run its tests.
#
# On a fresh machine this creates a virtual environment at ${STRATA_VENV:-$HOME/.cache/strata-venv}
# (reused when present), installs what is missing (pytest, numpy, pyarrow, pandas; torch only if
# absent, for strata.torch), builds the extension module with cargo and the `strata` CLI the tests
# compare against (unless STRATA_BIN names one), and runs pytest on crates/strata-py/python/tests. Extra arguments go to pytest. Exits non-zero on any failure.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
venv="${STRATA_VENV:-$HOME/.cache/strata-venv}"
python="${PYTHON:-python3}"

if [ ! -x "$venv/bin/python" ]; then
    echo "creating the virtual environment $venv"
    "$python" -m venv "$venv"
fi
py="$venv/bin/python"

missing=()
for pkg in pytest numpy pyarrow pandas; do
    "$py" -c "import $pkg" 2>/dev/null || missing+=("$pkg")
done
if [ "${#missing[@]}" -gt 0 ]; then
    echo "installing ${missing[*]}"
    "$py" -m pip install --quiet "${missing[@]}"
fi
if ! "$py" -c "import torch" 2>/dev/null; then
    # Large: the CPU wheel is enough for the tests.
    echo "installing torch (CPU)"
    # The CPU-only index when reachable (a much smaller download), else the default index.
    "$py" -m pip install --quiet --retries 0 --timeout 15 torch \
        --index-url https://download.pytorch.org/whl/cpu 2>/dev/null \
        || "$py" -m pip install --quiet torch
fi

# The extension module is the crate's cdylib, built by cargo into the same target folder as the
# rest of the workspace (so nothing is rebuilt with other flags) and placed beside the package's
# Python sources, which the tests import through PYTHONPATH. `pip install ./crates/strata-py`
# (maturin) builds the same library for users.
target="${CARGO_TARGET_DIR:-$root/target}"
(cd "$root" && PYO3_BUILD_EXTENSION_MODULE=1 cargo build --release --quiet -p strata-py)
cp "$target/release/lib_strata.so" "$root/crates/strata-py/python/strata/_strata.abi3.so"
export PYTHONPATH="$root/crates/strata-py/python${PYTHONPATH:+:$PYTHONPATH}"

if [ -z "${STRATA_BIN:-}" ]; then
    (cd "$root" && cargo build --release --quiet -p strata-cli)
    export STRATA_BIN="$target/release/strata"
fi

cd "$root/crates/strata-py/python/tests"
exec "$venv/bin/python" -m pytest -q "$@"
