"""The demo's live line: once a second, what Orion is doing right now, read from the MQTT
traffic the demo records (``mosquitto_sub -v`` lines: ``topic payload``) and the last
command the demo gave. Runs until its parent's demo removes the stop file.

Usage: demo_live.py MQTT_LOG LAST_COMMAND_FILE STOP_FILE INSTANCE
"""

import json
import os
import sys
import time


def main(log_path, command_path, stop_path, instance):
    detection = occupancy = status = None
    position = 0
    pending = ""
    while os.path.exists(stop_path):
        try:
            with open(log_path, "r", encoding="utf-8", errors="replace") as log:
                log.seek(position)
                chunk = log.read()
                position = log.tell()
        except FileNotFoundError:
            chunk = ""
        lines = (pending + chunk).split("\n")
        pending = lines.pop()
        for line in lines:
            topic, _, payload = line.partition(" ")
            try:
                value = json.loads(payload)
            except ValueError:
                continue
            if topic == f"care/inferences/{instance}/person_detection":
                detection = value
            elif topic == f"care/occupancy/{instance}":
                occupancy = value
            elif topic == f"care/status/{instance}":
                status = value
        print(line_now(detection, occupancy, status, last_command(command_path)), flush=True)
        time.sleep(1)


def line_now(detection, occupancy, status, command):
    people = detection["data"]["count"] if detection else "-"
    roi = detection["data"]["metadata"]["roi_source"] if detection else "-"
    latency = f"{detection['latency_ms']:.0f} ms" if detection and detection.get("latency_ms") is not None else "-"
    if occupancy is None:
        occ = "-"
    elif occupancy.get("occupied") is None and occupancy.get("reason"):
        occ = f"unknown ({occupancy['reason']})"
    elif occupancy.get("occupied") is None:
        occ = "deciding (debouncing the first frames)"
    else:
        occ = f"{'yes' if occupancy['occupied'] else 'no'} ({occupancy['count']})"
    fps = "-"
    if status and isinstance(status.get("detector"), dict):
        fps = f"{status['detector'].get('inference_fps', 0):.1f}"
    return f"  live: people {people} | occupied {occ} | inference {fps} fps | latency {latency} | roi {roi} | last: {command}"


def last_command(path):
    try:
        with open(path, encoding="utf-8") as f:
            return " ".join(f.read().split())[:100] or "-"
    except FileNotFoundError:
        return "-"


if __name__ == "__main__":
    if len(sys.argv) != 5:
        sys.exit(__doc__)
    main(*sys.argv[1:])
