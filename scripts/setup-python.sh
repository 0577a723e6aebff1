#!/usr/bin/env bash
# Creates the Python environment the worker and its tests need: a venv at $ORION_VENV
# (default .venv in the repo) with python/requirements-dev.txt. Idempotent; downloads are
# cached in $ORION_CACHE/pip (default /var/cache/orion/pip).
set -euo pipefail
cd "$(dirname "$0")/.."

VENV="${ORION_VENV:-$PWD/.venv}"
PY="${PYTHON:-python3}"
CACHE="${ORION_CACHE:-/var/cache/orion}/pip"
REQS="python/requirements-dev.txt"
STAMP="$VENV/.orion-requirements"

if [ -x "$VENV/bin/python" ] && [ -f "$STAMP" ] && cmp -s "$STAMP" <(cat python/requirements*.txt); then
  echo "setup-python: $VENV is up to date"
  exit 0
fi
"$PY" -m venv "$VENV"
"$VENV/bin/python" -m pip install --quiet --disable-pip-version-check --cache-dir "$CACHE" -r "$REQS"
cat python/requirements*.txt > "$STAMP"
echo "setup-python: $VENV ready ($("$VENV/bin/python" -c 'import onnxruntime, numpy; print("onnxruntime", onnxruntime.__version__, "numpy", numpy.__version__)'))"
