"""``python -m orion_worker.inspect_model [--classes a,b] FILE...``: checks model files the way
the worker will load them, before an operator installs them (``orion-setup --models-from``).

Prints one JSON line per file: ``{"path", "ok", "error", "opset", "imgsz", "input",
"output", "names", "person_ids"}``. A file is ok when ONNX Runtime loads it, its default
(ai.onnx) opset is at least ``MIN_OPSET``, its input is ``[1, 3, S, S]`` with S 640 or 320,
its output is the Ultralytics layout ``[1, 4 + nc, N]`` and its ``names`` metadata holds
one of the person classes. Exit 0 when every file is ok, 1 otherwise."""

import argparse
import json
import sys

from .models import ModelError, Session

# The oldest opset a YOLO export uses (Ultralytics exports 11..=17+); older files are not
# models of this family.
MIN_OPSET = 11
SIZES = (640, 320)


def _varint(data, i):
    value, shift = 0, 0
    while True:
        if i >= len(data):
            raise ValueError("truncated varint")
        b = data[i]
        i += 1
        value |= (b & 0x7F) << shift
        if b < 0x80:
            return value, i
        shift += 7
        if shift > 63:
            raise ValueError("varint too long")


def _fields(data):
    """The top-level fields of a protobuf message: (number, wire type, value)."""
    i = 0
    while i < len(data):
        key, i = _varint(data, i)
        number, wire = key >> 3, key & 7
        if wire == 0:
            value, i = _varint(data, i)
        elif wire == 1:
            value, i = data[i:i + 8], i + 8
        elif wire == 2:
            n, i = _varint(data, i)
            if i + n > len(data):
                raise ValueError("truncated field")
            value, i = data[i:i + n], i + n
        elif wire == 5:
            value, i = data[i:i + 4], i + 4
        else:
            raise ValueError(f"wire type {wire}")
        yield number, wire, value


def opsets(path):
    """``{domain: version}`` from the ModelProto's ``opset_import`` (field 8), read without the
    onnx package (the device has only ONNX Runtime)."""
    with open(path, "rb") as f:
        data = f.read()
    found = {}
    for number, wire, value in _fields(data):
        if number == 8 and wire == 2:
            domain, version = "", None
            for n, w, v in _fields(value):
                if n == 1 and w == 2:
                    domain = bytes(v).decode("utf-8", "replace")
                elif n == 2 and w == 0:
                    version = v
            if version is not None:
                found[domain] = version
    return found


def inspect(path, person_names):
    report = {"path": path, "ok": False, "error": None}
    try:
        ops = opsets(path)
    except (OSError, ValueError) as exc:
        report["error"] = f"{path} is not an ONNX file: {exc}"
        return report
    opset = ops.get("", ops.get("ai.onnx"))
    report["opset"] = opset
    if opset is None:
        report["error"] = f"{path} declares no ai.onnx opset: not an ONNX model"
        return report
    if opset < MIN_OPSET:
        report["error"] = f"{path}: opset {opset} is older than {MIN_OPSET}; export it again"
        return report
    last = None
    for imgsz in SIZES:
        try:
            session = Session(path, imgsz, 1, person_names)
        except ModelError as exc:
            last = str(exc)
            if "input shape" in last:
                continue
            report["error"] = last
            return report
        out = session.session.get_outputs()[0].shape
        report.update(
            ok=True,
            imgsz=imgsz,
            input=[1, 3, imgsz, imgsz],
            output=[d if isinstance(d, int) else str(d) for d in out],
            names=session.names,
            person_ids=session.class_ids,
        )
        return report
    report["error"] = last.replace(f"[1, 3, {SIZES[-1]}, {SIZES[-1]}]", "[1, 3, 640, 640] or [1, 3, 320, 320]")
    return report


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m orion_worker.inspect_model")
    parser.add_argument("--classes", default="person", help="comma-separated person class names")
    parser.add_argument("files", nargs="+")
    args = parser.parse_args(argv)
    person_names = {c for c in args.classes.split(",") if c}
    ok = True
    for path in args.files:
        report = inspect(path, person_names)
        ok = ok and report["ok"]
        print(json.dumps(report), flush=True)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
