#!/usr/bin/env bash
# Exports the production models, YOLO11 n/s/m/l/x at 640 and 320 input, to ONNX in the
# Ultralytics layout Orion reads, under the names model discovery finds:
#   yolo11{n,s,m,l,x}_640.onnx  yolo11{n,s,m,l,x}_320.onnx
# Run it on a connected machine (it installs Ultralytics into a venv of its own and lets
# Ultralytics fetch the .pt weights from its release page), then copy the files to the
# device and install them with `orion-setup --models-from DIR` (docs/operations.md, section 4).
# It cannot run in CI (no network there) and nothing in the tests needs it.
#
# Usage: models/download_models.sh [OUT_DIR] [SIZES]   (default: ./yolo11-onnx  "n s m l x")
#   ULTRALYTICS_VERSION pins the exporter (default 8.3.*), OPSET the ONNX opset (default 17,
#   which ONNX Runtime 1.23 on the device runs).
set -euo pipefail

OUT="${1:-./yolo11-onnx}"
SIZES="${2:-n s m l x}"
VERSION="${ULTRALYTICS_VERSION:-8.3.*}"
OPSET="${OPSET:-17}"
PY="${PYTHON:-python3}"

for s in $SIZES; do
  case "$s" in n|s|m|l|x) ;; *) echo "download_models: size $s is not one of n s m l x" >&2; exit 2 ;; esac
done

cat <<'LICENCE'
== Licence of the weights
YOLO11 weights and the Ultralytics exporter are published by Ultralytics under the
AGPL-3.0 licence (https://www.ultralytics.com/license); an Enterprise licence is sold for
uses the AGPL does not fit. The exported .onnx files carry the same terms: check that your
deployment complies before you ship them. Orion's package never contains model weights.
LICENCE

mkdir -p "$OUT"
OUT=$(cd "$OUT" && pwd)
WORK=$(mktemp -d -t orion-export.XXXXXX)
trap 'rm -rf "$WORK"' EXIT

echo "== exporter: ultralytics==$VERSION in $WORK/venv"
"$PY" -m venv "$WORK/venv"
"$WORK/venv/bin/python" -m pip install --quiet --disable-pip-version-check \
  "ultralytics==$VERSION" onnx onnxslim

for s in $SIZES; do
  for imgsz in 640 320; do
    echo "== yolo11$s at $imgsz"
    # Ultralytics downloads yolo11$s.pt into the working directory.
    (cd "$WORK" && "$WORK/venv/bin/python" - "$s" "$imgsz" "$OPSET" <<'PY'
import shutil, sys
from ultralytics import YOLO
size, imgsz, opset = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
path = YOLO(f"yolo11{size}.pt").export(format="onnx", imgsz=imgsz, opset=opset, simplify=True, dynamic=False)
shutil.move(path, f"export_{size}_{imgsz}.onnx")
PY
    )
    mv "$WORK/export_${s}_${imgsz}.onnx" "$OUT/yolo11${s}_${imgsz}.onnx"
    echo "   $OUT/yolo11${s}_${imgsz}.onnx"
  done
done
echo "== done: install them on the device with: sudo orion-setup --models-from $OUT"
