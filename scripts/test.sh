#!/usr/bin/env bash
# The project's test command: formatting, lints, the Python worker's tests, then every
# test in the workspace. Needs scripts/install-deps.sh, scripts/setup-python.sh and
# models/fetch_fixtures.sh to have run (.ci/run does all three).
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="${ORION_CACHE:-/var/cache/orion}/cargo-tools/bin:$PATH"

echo "== cargo fmt --check"
cargo fmt --all -- --check
echo "== cargo clippy --all-targets -D warnings"
cargo clippy --workspace --all-targets --quiet -- -D warnings
# The RustSec advisories come from GitHub, which CI cannot reach: deny.toml says where and
# how they were checked; everything else cargo-deny checks here.
echo "== cargo deny check licenses bans sources"
cargo deny --log-level error check licenses bans sources
echo "== pytest (python worker; fuzzing with ORION_FUZZ_CASES inputs, default 1000)"
PY="${ORION_VENV:-$PWD/.venv}/bin/python"
# Missing fixtures fail here instead of skipping.
export ORION_REQUIRE_FIXTURES=1
"$PY" -m pytest -q python/tests
# The ONNX-heavy tests share a serial group that only nextest honours (.config/nextest.toml).
if ! cargo nextest --version >/dev/null 2>&1; then
  echo "test: cargo-nextest is missing; run scripts/install-deps.sh" >&2
  exit 1
fi
# A test build leaves out binaries of packages without tests (orion-snapshot): build them
# all, so the tests pass from an empty target directory too.
echo "== cargo build --workspace --bins"
cargo build --workspace --bins --quiet
echo "== cargo nextest run (fuzzing: ORION_FUZZ_CASES inputs per property, default 2000)"
cargo nextest run --workspace --no-fail-fast
# Crash-isolation soak: random SIGKILLs of every child, commands at 5/s, camera restarts.
SOAK_S="${ORION_SOAK_S:-180}"
echo "== soak (${SOAK_S} s; ORION_SOAK_S sets it)"
"${CARGO_TARGET_DIR:-target}/debug/soak" --duration-s "$SOAK_S"
# The .deb on this machine: install, run as user orion, purge (needs root: dpkg -i).
if [ "$(id -u)" -eq 0 ] && [ "${ORION_PACKAGE_TEST:-1}" != 0 ]; then
  echo "== package test (packaging/test-package.sh)"
  ./packaging/test-package.sh
else
  echo "== package test skipped (needs root; CI runs it)"
fi
