#!/usr/bin/env bash
# The main job: the whole of Orion on real footage. A local RTSP server loops the sample
# street video; oriond runs capture, the detector (YOLOv3-tiny converted to the YOLO11
# layout, real ONNX Runtime) and control, with an embedded broker (a local mosquitto oriond
# runs as its child, ADR 0006); this script watches
# the MQTT traffic, drives Orion live (ROIs, rate, auto-focus, pause) with orionctl and
# mosquitto_pub, and prints what came out. Usage: scripts/demo.sh [SECONDS]  (default 40)
#
# Ports: ORION_DEMO_RTSP_PORT (8554), ORION_DEMO_MQTT_PORT (18830).
set -euo pipefail
cd "$(dirname "$0")/.."
REPO="$PWD"
SECONDS_TOTAL="${1:-40}"
RTSP_PORT="${ORION_DEMO_RTSP_PORT:-8554}"
MQTT_PORT="${ORION_DEMO_MQTT_PORT:-18830}"

if ! command -v cargo >/dev/null 2>&1 && [ -f "$HOME/.cargo/env" ]; then
  # shellcheck disable=SC1091
  . "$HOME/.cargo/env"
fi

echo "== setup (Debian packages, Python venv, fixtures: quick when already done)"
if [ "$(id -u)" = 0 ]; then ./scripts/install-deps.sh >/dev/null; else echo "(not root: assuming scripts/install-deps.sh already ran)"; fi
./scripts/setup-python.sh >/dev/null
./models/fetch_fixtures.sh >/dev/null

echo "== build (release; the first build on a fresh machine takes a few minutes)"
cargo build --release -p orion-supervisor -p orion-capture -p orion-detector-bridge -p orion-control -p orion-snapshot -p orion-tests
BIN="${CARGO_TARGET_DIR:-$REPO/target}/release"

# Private (0700) and new each run: no other local user can have made it first.
RUN=$(mktemp -d -t orion-demo.XXXXXX)
sed -e "s|\.\./|$REPO/|g" \
    -e "s|rtsp://127.0.0.1:8554/demo|rtsp://127.0.0.1:$RTSP_PORT/demo|" \
    -e "s|^port = 1883|port = $MQTT_PORT|" \
    packaging/demo.toml > "$RUN/demo.toml"

SERVER_PID= ORIOND_PID= SUB_PID= LIVE_PID=
cleanup() {
  rm -f "$RUN/live"
  [ -n "$LIVE_PID" ] && wait "$LIVE_PID" 2>/dev/null
  [ -n "$SUB_PID" ] && kill "$SUB_PID" 2>/dev/null && wait "$SUB_PID" 2>/dev/null
  if [ -n "$ORIOND_PID" ] && kill -0 "$ORIOND_PID" 2>/dev/null; then
    kill "$ORIOND_PID"; wait "$ORIOND_PID" 2>/dev/null || true
  fi
  exec 3>&- 2>/dev/null || true
  [ -n "$SERVER_PID" ] && wait "$SERVER_PID" 2>/dev/null
  true
}
trap cleanup EXIT

echo "== camera: rtsp://127.0.0.1:$RTSP_PORT/demo (fixtures/footage/sample.mp4, looped)"
mkfifo "$RUN/server-stdin"
"$BIN/rtsp-test-server" --port "$RTSP_PORT" --mount /demo --file fixtures/footage/sample.mp4 \
  < "$RUN/server-stdin" > "$RUN/rtsp.log" 2>&1 &
SERVER_PID=$!
exec 3>"$RUN/server-stdin"   # the server runs until this closes

echo "== oriond --config $RUN/demo.toml (logs: $RUN/oriond.log)"
"$BIN/oriond" --config "$RUN/demo.toml" > "$RUN/oriond.log" 2>&1 &
ORIOND_PID=$!
CTL=("$BIN/orionctl" --config "$RUN/demo.toml")
# An operator's command: shown, and remembered (with its answer) for the live line.
ctl() {
  local out
  out=$("${CTL[@]}" "$@" 2>&1) || true
  echo "orionctl $* → $out" | tee "$RUN/last_command"
}
for _ in $(seq 1 180); do
  if "${CTL[@]}" status >/dev/null 2>&1; then break; fi
  kill -0 "$ORIOND_PID" || { tail -20 "$RUN/oriond.log"; exit 1; }
  sleep 0.5
done
"${CTL[@]}" status

mosquitto_sub -h 127.0.0.1 -p "$MQTT_PORT" -V mqttv5 -t 'care/#' -v > "$RUN/mqtt.log" &
SUB_PID=$!
echo "== live (one line a second, from the MQTT traffic)"
touch "$RUN/live"
"$REPO/.venv/bin/python" scripts/demo_live.py "$RUN/mqtt.log" "$RUN/last_command" "$RUN/live" demo &
LIVE_PID=$!
third=$(( SECONDS_TOTAL / 4 ))
sleep "$third"
echo "== live changes, no restart"
ctl rois set 0.2,0.1,0.6,0.9
sleep "$third"
ctl rois clear
ctl focus strategy velocity --alpha 0.4
ctl focus on
ctl rate 3
# The way a care-room backend does it: a command on MQTT, an ack on the health topic.
mosquitto_pub -h 127.0.0.1 -p "$MQTT_PORT" -t care/control/demo \
  -m '{"command": "get_auto_focus_stats", "request_id": "demo-1"}'
sleep "$third"
ctl pause
sleep 2
ctl resume
sleep "$third"
rm -f "$RUN/live"; wait "$LIVE_PID" 2>/dev/null || true; LIVE_PID=
"${CTL[@]}" status
echo "== what Orion sees now (boxes green, attention ROIs blue, auto-focus region orange)"
"${CTL[@]}" snapshot -o "$RUN/snapshot.png" || true

echo "== what came out on MQTT"
det=$(grep -c '^care/inferences/demo/person_detection ' "$RUN/mqtt.log" || true)
acks=$(grep -c '^care/health/demo ' "$RUN/mqtt.log" || true)
echo "detection messages: $det   acks: $acks   (all traffic: $RUN/mqtt.log)"
grep '^care/inferences/demo/person_detection ' "$RUN/mqtt.log" | tail -1 | cut -d' ' -f2- \
  | "$REPO/.venv/bin/python" -c 'import json,sys; d=json.load(sys.stdin); print("last detection: frame", d["frame_seq"], "people", d["data"]["count"], "roi", d["data"]["metadata"]["roi_source"], "latency_ms", round(d["latency_ms"],1))' || true
grep '^care/health/demo ' "$RUN/mqtt.log" | grep demo-1 | cut -d' ' -f2- || true
grep '^care/occupancy/demo ' "$RUN/mqtt.log" | tail -1 | cut -d' ' -f2- | sed 's/^/last occupancy: /' || true
"${CTL[@]}" shutdown
wait "$ORIOND_PID" || true
ORIOND_PID=
[ "$det" -gt 0 ] || { echo "no detections were published"; exit 1; }
[ -s "$RUN/snapshot.png" ] && echo "snapshot: $RUN/snapshot.png"
echo "== demo done"
