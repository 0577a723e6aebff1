#!/usr/bin/env bash
# Hot-reload walk-through in the seed's own form: one instance "node_001", every command
# sent as a backend of the seed sends it (mosquitto_pub, `{"command", "params"}`, no
# request_id, QoS 0), the acks printed from care/health/node_001. Run it against a running
# Orion whose instance_id is node_001 and whose model directory holds the seed's file names
# (yolo11n_640.onnx, yolo11m_640.onnx, yolo11m_320.onnx, ...); tests/tests/seed.rs does, and
# checks that each command was acked and applied.
#
# MQTT_HOST / MQTT_PORT / PAUSE_S may be set in the environment (defaults: localhost, 1883, 2).
set -u

MQTT_HOST="${MQTT_HOST:-localhost}"
MQTT_PORT="${MQTT_PORT:-1883}"
INSTANCE_ID="node_001"
CONTROL_TOPIC="care/control/$INSTANCE_ID"
HEALTH_TOPIC="care/health/$INSTANCE_ID"
PAUSE_S="${PAUSE_S:-2}"

send_command() {
  echo ">>> $1"
  mosquitto_pub -h "$MQTT_HOST" -p "$MQTT_PORT" -t "$CONTROL_TOPIC" -m "$1"
  sleep "$PAUSE_S"
}

echo "Listening for acks on $HEALTH_TOPIC"
mosquitto_sub -h "$MQTT_HOST" -p "$MQTT_PORT" -t "$HEALTH_TOPIC" -v &
SUB_PID=$!
trap 'kill "$SUB_PID" 2>/dev/null; wait "$SUB_PID" 2>/dev/null' EXIT
sleep 1

echo "=== status"
send_command '{"command": "get_status", "params": {}}'

echo "=== inference rate"
send_command '{"command": "set_inference_rate", "params": {"rate_hz": 2.0}}'

echo "=== model size"
send_command '{"command": "set_model_size", "params": {"size": "m"}}'

echo "=== attention ROIs"
send_command '{"command": "set_attention_rois", "params": {"rois": [{"x": 0.1, "y": 0.1, "width": 0.5, "height": 0.5}]}}'
send_command '{"command": "get_attention_rois", "params": {}}'

echo "=== auto-focus"
send_command '{"command": "set_auto_focus_strategy", "params": {"strategy": "smoothing", "alpha": 0.5}}'
send_command '{"command": "enable_auto_focus", "params": {}}'
send_command '{"command": "get_auto_focus_strategy", "params": {}}'
send_command '{"command": "get_auto_focus_stats", "params": {}}'
send_command '{"command": "clear_auto_focus_history", "params": {}}'

echo "=== pause (twice: the second is harmless) and resume"
send_command '{"command": "pause_inference", "params": {}}'
send_command '{"command": "pause_inference", "params": {}}'
send_command '{"command": "resume_inference", "params": {}}'

echo "=== status"
send_command '{"command": "get_status", "params": {}}'
echo "done"
