#!/usr/bin/env bash
# An upgrade under a real systemd restarts every running room and only those:
# packaging/test-package.sh runs it once the package is installed and set up on this
# machine (user orion, root's venv, models). CI's machines have no systemd as PID 1, so
# this boots one in a container (systemd-nspawn) made of this machine's own /usr, /etc and
# /var under throw-away overlays: the package, the venv and the models as installed here,
# nothing written back. Inside: rooms up-a and up-b running, up-c configured and stopped;
# then `dpkg -i` of a newer build; up-a and up-b must come back with new main PIDs, active,
# and up-c stay stopped.
#
# Usage: test-upgrade.sh NEWER.deb WORKDIR (WORKDIR holds the footage and models/).
set -euo pipefail
DEB="$1"
WORK="$2"
say() { echo "test-upgrade: $*"; }
fail() { echo "test-upgrade: FAIL: $*" >&2; exit 1; }
command -v systemd-nspawn >/dev/null || fail "systemd-nspawn is missing: apt install systemd-container"

# Not under /usr, /etc or /var: an overlay's upper directory may not lie inside its lower.
NS=$(mktemp -d /tmp/orion-upgrade.XXXXXX)
ROOT="$NS/root"
NSPAWN_PID=""
# What systemd-nspawn leaves under /run/systemd that was not there before goes again.
RUN_BEFORE=$(ls /run/systemd 2>/dev/null || true)
cleanup() {
  set +e
  if [ -n "$NSPAWN_PID" ] && kill -0 "$NSPAWN_PID" 2>/dev/null; then
    inside systemctl poweroff >/dev/null 2>&1
    for _ in $(seq 1 100); do kill -0 "$NSPAWN_PID" 2>/dev/null || break; sleep 0.2; done
    kill -KILL "$NSPAWN_PID" 2>/dev/null
    wait "$NSPAWN_PID" 2>/dev/null
  fi
  for d in /run/systemd/*; do
    echo "$RUN_BEFORE" | grep -qx "$(basename "$d")" || rm -rf "$d"
  done
  rm -rf "$NS"
}
trap cleanup EXIT

# The container's init: the systemd that systemd-nspawn started.
init_pid() { pgrep -P "$NSPAWN_PID" -x systemd | head -n 1; }
inside() { nsenter -t "$(init_pid)" -a "$@"; }

mkdir -p "$ROOT"/{usr/lib,etc,var,srv,tmp,root,home,opt,proc,sys,dev,run} "$NS"/{usr,etc,var}
for l in bin lib lib64 sbin; do ln -s "usr/$l" "$ROOT/$l"; done
cp /usr/lib/os-release "$ROOT/usr/lib/os-release"   # nspawn checks for an OS tree first
# The machine's own servers stay off in the container (masked in the overlay only).
mkdir -p "$NS/etc/systemd/system"
for unit in mosquitto rabbitmq-server epmd epmd.socket postgresql; do
  case "$unit" in *.*) ;; *) unit="$unit.service" ;; esac
  ln -s /dev/null "$NS/etc/systemd/system/$unit"
done
cp "$DEB" "$WORK/upgrade-under-systemd.deb"
say "boot systemd in a container of this machine's /usr, /etc, /var (overlays)"
systemd-nspawn -q -D "$ROOT" --keep-unit --register=no --private-network --link-journal=no \
  --overlay=/usr:"$NS/usr":/usr --overlay=/etc:"$NS/etc":/etc --overlay=/var:"$NS/var":/var \
  --bind-ro="$WORK" -b >"$NS/boot.log" 2>&1 &
NSPAWN_PID=$!
state=""
for _ in $(seq 1 300); do
  state=$(inside systemctl is-system-running 2>/dev/null || true)
  case "$state" in running|degraded) break ;; esac
  kill -0 "$NSPAWN_PID" 2>/dev/null || fail "the container did not boot: $(tail -5 "$NS/boot.log")"
  sleep 0.2
done
case "$state" in running|degraded) ;; *) fail "systemd in the container is '$state'";; esac
say "systemd runs in the container ($state)"

for room in up-a up-b up-c; do
  inside sh -c "cat > /etc/orion/$room.toml" <<EOF
instance_id = "$room"
[camera]
source = "file://$WORK/sample.mp4"
[stream]
rate_hz = 2
[detector]
model_dir = "$WORK/models"
spare_worker = false
standby = false
[mqtt]
enabled = false
EOF
done
inside systemctl start oriond@up-a.service oriond@up-b.service \
  || fail "rooms did not start: $(inside journalctl -u 'oriond@*' -n 20 --no-pager)"
main_pid() { inside systemctl show -p MainPID --value "oriond@$1.service"; }
active() { [ "$(inside systemctl is-active "oriond@$1.service" 2>/dev/null)" = active ]; }
A=$(main_pid up-a)
B=$(main_pid up-b)
active up-a && active up-b || fail "up-a/up-b not active"
! active up-c || fail "up-c runs, but was never started"
say "oriond@up-a (pid $A) and oriond@up-b (pid $B) active, oriond@up-c stopped"

inside dpkg -i --force-confold "$WORK/upgrade-under-systemd.deb" >"$NS/dpkg.log" 2>&1 \
  || fail "dpkg -i in the container: $(tail -5 "$NS/dpkg.log")"
say "upgraded to $(inside dpkg-query -W -f='${Version}' orion)"
for _ in $(seq 1 300); do
  if active up-a && active up-b && [ "$(main_pid up-a)" != "$A" ] && [ "$(main_pid up-b)" != "$B" ]; then
    break
  fi
  sleep 0.2
done
A2=$(main_pid up-a)
B2=$(main_pid up-b)
[ "$A2" != "$A" ] && active up-a || fail "up-a was not restarted by the upgrade (pid $A → $A2)"
[ "$B2" != "$B" ] && active up-b || fail "up-b was not restarted by the upgrade (pid $B → $B2)"
! active up-c || fail "the upgrade started up-c, which was stopped"
say "the upgrade restarted both running rooms (up-a $A → $A2, up-b $B → $B2); up-c stays stopped"
