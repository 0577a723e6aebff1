"""``python -m orion_worker.inspect_model``: what ``orion-setup --models-from`` relies on to
refuse a bad file before it is installed."""

import json
import os
import subprocess
import sys

from conftest import REPO, ROOT, SYNTHETIC, require_fixtures
from orion_worker.inspect_model import inspect, opsets

REAL = os.path.join(REPO, "fixtures", "models", "real")


def test_good_exports_are_described():
    require_fixtures()
    r = inspect(os.path.join(SYNTHETIC, "yolo11s_synthetic_320.onnx"), {"person"})
    assert r["ok"], r
    assert (r["imgsz"], r["input"], r["names"], r["person_ids"]) == (320, [1, 3, 320, 320], ["person", "bicycle", "car"], [0])
    assert r["output"][:2] == [1, 7]
    assert r["opset"] >= 11
    fall = inspect(os.path.join(REAL, "yolo11m_fall_640.onnx"), {"Normal", "Fall"})
    assert fall["ok"] and fall["imgsz"] == 640 and fall["output"] == [1, 6, 8400], fall


def test_bad_files_are_refused_with_the_reason(tmp_path):
    require_fixtures()
    good = os.path.join(SYNTHETIC, "yolo11n_synthetic_640.onnx")
    whole = open(good, "rb").read()
    cut = tmp_path / "cut.onnx"
    cut.write_bytes(whole[: len(whole) // 2])
    text = tmp_path / "notes.onnx"
    text.write_text("not a model at all\n")
    cases = {
        str(cut): "",
        str(text): "not an ONNX file",
        str(tmp_path / "missing.onnx"): "not an ONNX file",
    }
    for path, why in cases.items():
        r = inspect(path, {"person"})
        assert not r["ok"] and why in r["error"], r
    wrong_class = inspect(good, {"cat"})
    assert not wrong_class["ok"] and "none of the classes" in wrong_class["error"], wrong_class


def test_opset_is_read_without_the_onnx_package():
    require_fixtures()
    assert opsets(os.path.join(SYNTHETIC, "yolo11n_synthetic_640.onnx")).get("", 0) >= 11


def test_the_command_line_prints_one_line_per_file_and_fails_on_any_bad_one(tmp_path):
    require_fixtures()
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(b"\x08\x07")
    files = [os.path.join(SYNTHETIC, "yolo11n_synthetic_640.onnx"), str(bad)]
    env = dict(os.environ, PYTHONPATH=ROOT)
    out = subprocess.run([sys.executable, "-m", "orion_worker.inspect_model", *files], env=env,
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 1, out.stderr
    reports = [json.loads(line) for line in out.stdout.splitlines()]
    assert [r["ok"] for r in reports] == [True, False]
    assert "no ai.onnx opset" in reports[1]["error"]
