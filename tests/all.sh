#!/usr/bin/env bash
# Every test of the project, as the README's test command: the Rust workspace (unit, integration,
# end-to-end tests of the `strata` binary), then the Python package (tests/python.sh builds it
# with maturin in a virtual environment, installing what is missing, and runs pytest).
set -euo pipefail
cd "$(dirname "$0")/.."
cargo test --workspace --release
bash tests/python.sh
