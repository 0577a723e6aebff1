#!/usr/bin/env bash
# The package, proven on this machine as root (CI runs it from scripts/test.sh):
# build the .deb → lintian → install → systemd-analyze (verify, security) → a modified
# conffile survives an upgrade → orion-setup (venv from a wheel directory, offline) →
# oriond --check-config → the installed oriond runs as user orion (setpriv; no systemd
# needed) on the sample footage with the real model and a local mosquitto → detections on
# MQTT → ownership and modes → an upgrade under systemd (in a container, test-upgrade.sh)
# restarts the running rooms → stop → remove → purge → nothing the package made is left.
#
# Leaves the machine as it found it (the package purged), also on failure. Refuses to run
# where an orion package it did not install is present (installed, or removed with its
# conffiles kept): purging it would take an operator's Orion and its config.
set -euo pipefail
cd "$(dirname "$0")/.."
REPO=$PWD
[ "$(id -u)" -eq 0 ] || { echo "test-package: needs root (dpkg -i)"; exit 1; }

export PATH="/var/cache/orion/cargo-tools/bin:$PATH"
CACHE="${ORION_CACHE:-/var/cache/orion}"
TARGET="${CARGO_TARGET_DIR:-$REPO/target}"
INSTANCE=pkgtest
WORK=""
CONF=/etc/orion/$INSTANCE.toml
ORIOND_PID=""
BROKER_PID=""

say() { echo "test-package: $*"; }
fail() { echo "test-package: FAIL: $*" >&2; exit 1; }

# Before the cleanup trap, which purges: nothing here is ours yet.
present=$(dpkg-query -W -f='${db:Status-Abbrev} ${Version}' orion 2>/dev/null || true)
case "$present" in
  ""|un*) ;;
  *) echo "test-package: refusing to run: an orion package is on this machine ($present)." >&2
     echo "test-package: this test installs and purges orion, which would remove it and its /etc/orion." >&2
     echo "test-package: run it on a machine without Orion, or skip it: ORION_PACKAGE_TEST=0 ./scripts/test.sh" >&2
     exit 3 ;;
esac
[ ! -e "$CONF" ] || { echo "test-package: refusing to run: $CONF exists and is not this test's" >&2; exit 3; }
# Purge keeps the system user (Debian's way); the test removes it again only if it made it.
USER_BEFORE=$(getent passwd orion || true)

cleanup() {
  set +e
  [ -n "$ORIOND_PID" ] && kill -TERM "$ORIOND_PID" 2>/dev/null && wait "$ORIOND_PID" 2>/dev/null
  [ -n "$BROKER_PID" ] && kill -TERM "$BROKER_PID" 2>/dev/null && wait "$BROKER_PID" 2>/dev/null
  rm -f "$CONF"
  dpkg -P orion >/dev/null 2>&1
  if [ -z "$USER_BEFORE" ] && getent passwd orion >/dev/null; then
    deluser --quiet --system orion >/dev/null 2>&1
    delgroup --quiet --system orion >/dev/null 2>&1
  fi
  [ -n "$WORK" ] && rm -rf "$WORK"
}
trap cleanup EXIT
# Private until the test opens it to user orion (below).
WORK=$(mktemp -d /srv/orion-pkgtest.XXXXXX)

# ---- build and lint --------------------------------------------------------------------
say "build"
./packaging/build-deb.sh >/dev/null
DEB=$(ls -t "$TARGET"/debian/orion_*.deb | head -n 1)
say "package $(basename "$DEB"): $(du -k "$DEB" | cut -f1) KiB, installed $(dpkg-deb -f "$DEB" Installed-Size) KiB"
say "lintian"
if ! lintian --fail-on error,warning "$DEB" >"$TARGET/debian/lintian.log" 2>&1; then
  cat "$TARGET/debian/lintian.log"
  fail "lintian reports errors or warnings"
fi
say "lintian: clean (justified overrides in packaging/lintian-overrides)"

# ---- install ---------------------------------------------------------------------------
dpkg -P orion >/dev/null 2>&1 || true
say "install"
apt-get install -y -qq "$DEB" >/dev/null
getent passwd orion >/dev/null || fail "no user orion"
id -nG orion | grep -qw video || fail "orion is not in group video"
[ "$(stat -c '%U:%G %a' /var/lib/orion)" = "orion:orion 750" ] || fail "/var/lib/orion is $(stat -c '%U:%G %a' /var/lib/orion)"
for unit in oriond.service oriond@.service; do
  [ -f "/usr/lib/systemd/system/$unit" ] || fail "$unit not installed"
done
# Man pages and completions, generated from the programs' own definitions.
for page in man8/oriond.8 man8/orionctl.8 man8/orion-setup.8 man1/orion-fleet.1 \
            man8/orion-capture.8 man8/orion-detector.8 man8/orion-control.8 man8/orion-snapshot.8; do
  zcat "/usr/share/man/$page.gz" | grep -q '^\.TH' || fail "no man page $page"
done
zcat /usr/share/man/man8/orionctl.8.gz | grep -q 'metrics' || fail "orionctl(8) lacks the metrics verb"
for c in /usr/share/bash-completion/completions/orionctl /usr/share/zsh/vendor-completions/_orionctl \
         /usr/share/fish/vendor_completions.d/orionctl.fish; do
  grep -q get-status "$c" || fail "no completion of orionctl's verbs in $c"
done
bash -c 'source /usr/share/bash-completion/completions/orionctl && complete -p orionctl' >/dev/null \
  || fail "the bash completion does not load"
grep -q "^Documentation=man:oriond(8)" /usr/lib/systemd/system/oriond.service || fail "the unit names no man page"
say "man pages, completions (bash, zsh, fish), Documentation=man: in the units"
# The copyright file: Orion's licence, then the linked crates' notices (cargo-about).
COPYRIGHT=/usr/share/doc/orion/copyright
grep -q "^License: Apache-2.0" "$COPYRIGHT" || fail "the copyright file does not name Orion's licence"
grep -q "^Used by: .*tokio " "$COPYRIGHT" || fail "the copyright file lacks the linked crates"
grep -q "Copyright" <(sed -n '/^MIT License/,$p' "$COPYRIGHT") || fail "no MIT notice kept in the copyright file"
say "copyright: $(grep -c '^Used by:' "$COPYRIGHT") licence texts for $(grep '^Used by:' "$COPYRIGHT" | tr ',' '\n' | wc -l) crates"
# A new install gets an identity from the machine, not a default every box shares.
grep -q '^instance_id' /etc/orion/orion.toml && fail "the shipped config sets an instance_id"
cp /etc/orion/orion.toml "$WORK/shipped.toml"
orion-setup --config "$WORK/shipped.toml" --no-venv > "$WORK/identity.log" 2>&1 || true
grep -q '^identity: instance_id ".*" (from this machine' "$WORK/identity.log" \
  || fail "orion-setup gave no identity: $(head -3 "$WORK/identity.log")"
id_line=$(grep '^instance_id = ' "$WORK/shipped.toml") || fail "no instance_id written"
say "orion-setup wrote $id_line"
say "systemd-analyze verify"
systemd-analyze verify /usr/lib/systemd/system/oriond.service
# A template verifies through an instance name.
cp /usr/lib/systemd/system/oriond@.service "$WORK/oriond@$INSTANCE.service"
systemd-analyze verify "$WORK/oriond@$INSTANCE.service"
rm -f "$WORK/oriond@$INSTANCE.service"
for unit in oriond.service oriond@.service; do
  score=$(systemd-analyze security --offline=true "/usr/lib/systemd/system/$unit" 2>/dev/null \
    | sed -n 's/.*Overall exposure level for [^:]*: \([0-9.]*\).*/\1/p')
  say "systemd-analyze security $unit: exposure $score"
  awk -v s="$score" 'BEGIN { exit !(s != "" && s < 3.0) }' || fail "$unit exposure $score (aim: below 3.0)"
done

# ---- a modified conffile survives an upgrade -------------------------------------------
echo "# edited by the operator" >> /etc/orion/orion.toml
cargo deb --no-build --locked --strip -p orion-supervisor --deb-version 0.1.0-2 -o "$TARGET/debian/upgrade.deb" >/dev/null
dpkg -i --force-confold "$TARGET/debian/upgrade.deb" >/dev/null
[ "$(dpkg-query -W -f='${Version}' orion)" = "0.1.0-2" ] || fail "upgrade did not happen"
grep -q "# edited by the operator" /etc/orion/orion.toml || fail "the upgrade overwrote the edited conffile"
say "upgrade kept the edited /etc/orion/orion.toml"

# ---- a test instance: footage, real model, local broker --------------------------------
chmod 0755 "$WORK"   # user orion reads the footage and models
# The model exports as an operator copies them over; orion-setup --models-from installs
# them into the (not yet existing) model directory.
install -d -m 0755 "$WORK/exports"
cp "$REPO/fixtures/footage/sample.mp4" "$WORK/"
cp "$REPO"/fixtures/models/real/yolo11n_yolov3-tiny_*.onnx "$WORK/exports/"
chmod -R a+rX "$WORK"
PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
cat > "$WORK/mosquitto.conf" <<EOF
listener $PORT 127.0.0.1
allow_anonymous true
set_tcp_nodelay true
EOF
mosquitto -c "$WORK/mosquitto.conf" >"$WORK/mosquitto.log" 2>&1 &
BROKER_PID=$!
cat > "$CONF" <<EOF
instance_id = "$INSTANCE"
room_id = "package test"
[camera]
source = "file://$WORK/sample.mp4"
[stream]
rate_hz = 4
[detector]
model_dir = "$WORK/models"
[mqtt]
host = "127.0.0.1"
port = $PORT
EOF
chmod 0644 "$CONF"

say "orion-setup (venv from a wheel directory, no index; models from the exports)"
WHEELS="$CACHE/wheels"
"${ORION_VENV:-$REPO/.venv}/bin/python" -m pip download --quiet --disable-pip-version-check --cache-dir "$CACHE/pip" \
  -r /usr/lib/orion/python/requirements.txt -d "$WHEELS"
orion-setup --config "$CONF" --wheels "$WHEELS" --models-from "$WORK/exports" | tee "$WORK/setup.log"
grep -q "^ready" "$WORK/setup.log" || fail "orion-setup did not report ready"
for m in yolo11n_640.onnx yolo11n_320.onnx; do
  [ "$(stat -c %a "$WORK/models/$m" 2>/dev/null)" = 644 ] || fail "orion-setup did not install $m (0644)"
done
VENV=/usr/lib/orion/venv
[ -x $VENV/bin/python3 ] || fail "no venv at $VENV"
# Root runs the venv (orion-setup, --check-config): nothing in it or above it is orion's.
theirs=$(find $VENV ! -user root -o -perm -g+w ! -type l -o -perm -o+w ! -type l | head -3)
[ -z "$theirs" ] || fail "the venv holds files root does not own alone: $theirs"
for d in /usr/lib/orion /usr/lib /usr; do
  [ "$(stat -c %U "$d")" = root ] || fail "$d is not root's"
done

# As systemd would run it: user orion with its groups, its home, a clean environment.
# (env and setpriv exec, so $! of a background run is oriond itself.)
AS_ORION=(env -i HOME=/var/lib/orion PATH=/usr/bin:/bin LANG=C.UTF-8
  setpriv --reuid=orion --regid=orion --init-groups --inh-caps=-all --)
say "oriond --check-config as orion"
"${AS_ORION[@]}" /usr/bin/oriond --check-config --config "$CONF"
say "oriond --check-config and orion-setup as root refuse a venv orion could change"
SITE=$(find $VENV/lib -maxdepth 2 -name site-packages | head -1)
chown orion "$SITE"
if out=$(oriond --check-config --config "$CONF" 2>&1); then fail "root checked a venv orion can change: $out"; fi
case "$out" in *"$SITE is owned by uid"*) ;; *) fail "unclear refusal: $out";; esac
if out=$(orion-setup --config "$CONF" 2>&1); then fail "orion-setup ran a venv orion can change"; fi
case "$out" in *"python: MISSING: detector.python: $SITE is owned by uid"*) ;; *) fail "unclear orion-setup refusal: $out";; esac
chown root "$SITE"
oriond --check-config --config "$CONF" >/dev/null || fail "root's venv refused"

# systemd's RuntimeDirectory= would make this.
install -d -o orion -g orion -m 0750 /run/orion
say "start the installed oriond as orion"
"${AS_ORION[@]}" /usr/bin/oriond --config "$CONF" >"$WORK/oriond.log" 2>&1 &
ORIOND_PID=$!

# An operator's view: every message under care/, QoS 1, until a detection with people.
say "waiting for detections on MQTT"
mosquitto_sub -h 127.0.0.1 -p "$PORT" -V mqttv5 -q 1 -t 'care/#' -v -W 120 \
  > "$WORK/mqtt.log" 2>&1 &
SUB=$!
deadline=$((SECONDS + 120))
while ! grep -q "^care/inferences/$INSTANCE/person_detection .*\"count\":[1-9]" "$WORK/mqtt.log"; do
  kill -0 "$ORIOND_PID" 2>/dev/null || { cat "$WORK/oriond.log"; fail "oriond exited"; }
  [ $SECONDS -lt $deadline ] || { tail -20 "$WORK/oriond.log"; fail "no detection with people within 120 s"; }
  sleep 1
done
kill "$SUB" 2>/dev/null; wait "$SUB" 2>/dev/null || true
say "detection: $(grep -m1 "^care/inferences/$INSTANCE/person_detection .*\"count\":[1-9]" "$WORK/mqtt.log" | cut -c1-200)"
grep -q "^care/availability/$INSTANCE online" "$WORK/mqtt.log" || fail "no availability online"

say "orionctl -i $INSTANCE"
# Exit 0, or 5 if the looping footage is between two passes at this moment (all RUNNING).
code=0; orionctl -i "$INSTANCE" status || code=$?
[ $code -eq 0 ] || [ $code -eq 5 ] || fail "orionctl status exited $code"
orionctl -i "$INSTANCE" rois set 0.1,0.1,0.8,0.8 >/dev/null
orionctl -i "$INSTANCE" rois clear >/dev/null
# The packaged fleet view sees this room through the broker, and commands it.
fleet=$(orion-fleet --host 127.0.0.1 --port "$PORT" rooms) || fail "orion-fleet rooms: $fleet"
echo "$fleet" | grep -q "^$INSTANCE .*online" || fail "orion-fleet does not list $INSTANCE: $fleet"
orion-fleet --host 127.0.0.1 --port "$PORT" send --room "$INSTANCE" get_status >/dev/null \
  || fail "orion-fleet send get_status"
# The packaged helper and font: a PNG with a caption (no "no caption" in the answer).
shot=$(orionctl -i "$INSTANCE" snapshot -o "$WORK/snapshot.png") || fail "orionctl snapshot: $shot"
say "$shot"
case "$shot" in *"no caption"*) fail "snapshot without a caption: $shot";; esac
[ "$(head -c 4 "$WORK/snapshot.png" | od -An -c | tr -d ' ')" = "211PNG" ] || fail "snapshot is not a PNG"

# ---- ownership and modes ---------------------------------------------------------------
say "ownership and modes"
SOCK=/run/orion/oriond-$INSTANCE.sock
[ "$(stat -c '%U %a' "$SOCK")" = "orion 660" ] || fail "socket is $(stat -c '%U %a' "$SOCK")"
[ "$(stat -c '%U %a' /run/orion)" = "orion 750" ] || fail "/run/orion is $(stat -c '%U %a' /run/orion)"
STATE=/var/lib/orion/desired-$INSTANCE.json
[ "$(stat -c '%U %a' "$STATE")" = "orion 600" ] || fail "state file is $(stat -c '%U %a' "$STATE")"
for p in $(pgrep -P "$ORIOND_PID"); do
  [ "$(stat -c %U "/proc/$p")" = "orion" ] || fail "child $p does not run as orion"
done
CAPTURE=$(orionctl -i "$INSTANCE" pid capture)
grep -q "^NoNewPrivs:[[:space:]]*1" "/proc/$CAPTURE/status" || fail "capture has no NoNewPrivs"
grep -q "^Seccomp:[[:space:]]*2" "/proc/$CAPTURE/status" || fail "capture has no seccomp filter"
readlink "/proc/$CAPTURE/fd/3" | grep -q "^/memfd:orion-$INSTANCE-frames" || fail "capture's fd 3 is not the sealed ring"
if ls /dev/shm | grep -q "orion-$INSTANCE"; then fail "shared memory reachable by path: $(ls /dev/shm)"; fi
world=$(find /var/lib/orion /run/orion /etc/orion /usr/lib/orion -perm -o+w ! -type l 2>/dev/null)
[ -z "$world" ] || fail "world-writable: $world"
say "socket 0660, state 0600, ring and tensors memfds (no path), children as orion, capture sandboxed"

# ---- an upgrade under systemd restarts the running rooms, and only those ---------------
cargo deb --no-build --locked --strip -p orion-supervisor --deb-version 0.1.0-3 -o "$TARGET/debian/upgrade3.deb" >/dev/null
"$REPO/packaging/test-upgrade.sh" "$TARGET/debian/upgrade3.deb" "$WORK"

# ---- stop ------------------------------------------------------------------------------
kill -TERM "$ORIOND_PID"
status=0
wait "$ORIOND_PID" || status=$?
[ "$status" -eq 0 ] || { tail -20 "$WORK/oriond.log"; fail "oriond exited with $status on SIGTERM"; }
ORIOND_PID=""
pgrep -u orion >/dev/null && fail "processes of orion left: $(pgrep -u orion -a)"
grep -q "^care/availability/$INSTANCE offline" <(mosquitto_sub -h 127.0.0.1 -p "$PORT" -t "care/availability/$INSTANCE" -C 1 -W 5 -v) \
  || fail "availability not offline after the stop"
say "stopped: children gone, availability offline"

# ---- remove, purge ---------------------------------------------------------------------
rm -f "$CONF"
dpkg -r orion >/dev/null
[ ! -e /usr/bin/oriond ] || fail "oriond left after remove"
[ -f /etc/orion/orion.toml ] || fail "remove must keep the conffile"
dpkg -P orion >/dev/null
for left in /etc/orion /var/lib/orion /run/orion /usr/lib/orion /usr/share/doc/orion \
            /usr/lib/systemd/system/oriond.service /usr/lib/systemd/system/oriond@.service; do
  [ ! -e "$left" ] || fail "$left left after purge: $(find "$left" | head -20)"
done
getent passwd orion >/dev/null || fail "purge removed the system user (Debian keeps it)"
say "purged: nothing the package made is left but the system user, as Debian does"
say "OK"
