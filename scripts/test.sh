#!/usr/bin/env bash
# The project's test command: formatting, lints, the Python worker's tests, then every
# test in the workspace. Needs scripts/install-deps.sh, scripts/setup-python.sh and
# models/fetch_fixtures.sh to have run (.ci/run does all three).
set -euo pipefail
cd "$(dirname "$0")/.."

echo "== cargo fmt --check"
cargo fmt --all -- --check
echo "== cargo clippy --all-targets -D warnings"
cargo clippy --workspace --all-targets --quiet -- -D warnings
echo "== pytest (python worker)"
PY="${ORION_VENV:-$PWD/.venv}/bin/python"
"$PY" -m pytest -q python/tests
if cargo nextest --version >/dev/null 2>&1; then
  echo "== cargo nextest run"
  cargo nextest run --workspace --no-fail-fast
else
  echo "== cargo test (cargo-nextest not installed)"
  cargo test --workspace --no-fail-fast
fi
