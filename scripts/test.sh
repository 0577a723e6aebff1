#!/usr/bin/env bash
# The project's test command: formatting, lints, then every test in the workspace.
set -euo pipefail
cd "$(dirname "$0")/.."

echo "== cargo fmt --check"
cargo fmt --all -- --check
echo "== cargo clippy --all-targets -D warnings"
cargo clippy --workspace --all-targets --quiet -- -D warnings
if cargo nextest --version >/dev/null 2>&1; then
  echo "== cargo nextest run"
  cargo nextest run --workspace --no-fail-fast
else
  echo "== cargo test (cargo-nextest not installed)"
  cargo test --workspace --no-fail-fast
fi
