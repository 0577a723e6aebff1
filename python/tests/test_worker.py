"""The worker as a real process: framing, malformed input, inference on a shared-memory
tensor, background model swap and its failure."""

import os
import struct
import subprocess
import sys

import msgpack
import numpy as np
import pytest

from conftest import ROOT, SYNTHETIC, require_fixtures
from orion_worker.tensors import HEADER, MAGIC, VERSION


@pytest.fixture(autouse=True)
def fixtures_present():
    require_fixtures()


def model(letter, size):
    return os.path.join(SYNTHETIC, f"yolo11{letter}_synthetic_{size}.onnx")


@pytest.fixture
def tensors():
    name = f"/orion-pytest-{os.getpid()}-tensors"
    slot_bytes = 3 * 640 * 640 * 4
    path = "/dev/shm" + name
    with open(path, "wb") as f:
        f.write(HEADER.pack(MAGIC, VERSION, 2, slot_bytes, 4096).ljust(4096, b"\0"))
        f.truncate(4096 + 2 * slot_bytes)
    yield name, path, slot_bytes
    os.unlink(path)


class Worker:
    def __init__(self, tensors_name, *extra, tensors_fd=None):
        where = ["--tensors", tensors_name] if tensors_fd is None else ["--tensors-fd", str(tensors_fd)]
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "orion_worker", *where, "--size", "n",
             "--model-640", model("n", 640), "--model-320", model("n", 320), "--threads", "1", *extra],
            cwd=ROOT, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
            pass_fds=() if tensors_fd is None else (tensors_fd,))

    def send_raw(self, body):
        self.proc.stdin.write(struct.pack(">I", len(body)) + body)
        self.proc.stdin.flush()

    def send(self, message):
        self.send_raw(msgpack.packb(message))

    def recv(self):
        (n,) = struct.unpack(">I", self.proc.stdout.read(4))
        return msgpack.unpackb(self.proc.stdout.read(n), raw=False, strict_map_key=False)

    def close(self):
        self.proc.stdin.close()
        assert self.proc.wait(timeout=10) == 0


def test_ready_then_inference_on_a_shared_memory_tensor(tensors):
    name, path, slot_bytes = tensors
    image = np.random.default_rng(1).random((1, 3, 640, 640), dtype=np.float32)
    with open(path, "r+b") as f:
        f.seek(4096 + slot_bytes)
        f.write(image.tobytes())
    w = Worker(name)
    ready = w.recv()
    assert ready["type"] == "ready" and ready["sizes"] == [320, 640] and ready["names"][0] == "person"
    w.send({"type": "infer", "id": 7, "slot": 1, "imgsz": 640, "frame_seq": 42})
    result = w.recv()
    assert result["type"] == "result" and result["id"] == 7 and result["frame_seq"] == 42
    assert len(result["boxes"]) == 4 * len(result["scores"]) > 0
    assert set(result["classes"]) == {"person"}
    assert result["timing"]["inference_ms"] > 0
    w.close()


def test_tensors_from_a_sealed_memfd_descriptor():
    """How orion-detector runs the worker: the tensor buffer is an anonymous memfd, sealed
    against resizing, handed down as a descriptor."""
    import fcntl
    slot_bytes = 3 * 640 * 640 * 4
    fd = os.memfd_create("orion-pytest-tensors", os.MFD_ALLOW_SEALING)
    try:
        os.ftruncate(fd, 4096 + 2 * slot_bytes)
        os.pwrite(fd, HEADER.pack(MAGIC, VERSION, 2, slot_bytes, 4096), 0)
        image = np.random.default_rng(2).random((1, 3, 640, 640), dtype=np.float32)
        os.pwrite(fd, image.tobytes(), 4096)
        fcntl.fcntl(fd, fcntl.F_ADD_SEALS, fcntl.F_SEAL_SHRINK | fcntl.F_SEAL_GROW)
        w = Worker(None, tensors_fd=fd)
        assert w.recv()["type"] == "ready"
        w.send({"type": "infer", "id": 1, "slot": 0, "imgsz": 640, "frame_seq": 5})
        result = w.recv()
        assert result["type"] == "result" and result["frame_seq"] == 5 and len(result["scores"]) > 0
        w.close()
    finally:
        os.close(fd)


def test_a_bad_tensor_descriptor_is_a_clear_error():
    proc = subprocess.run(
        [sys.executable, "-m", "orion_worker", "--tensors-fd", "77", "--size", "n",
         "--model-640", model("n", 640)], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert proc.returncode != 0
    assert "cannot use tensor buffer fd 77" in proc.stderr


def test_malformed_messages_get_errors_and_the_worker_keeps_serving(tensors):
    w = Worker(tensors[0])
    assert w.recv()["type"] == "ready"
    w.send_raw(b"\xc1not msgpack")
    assert w.recv()["kind"] == "bad_request"
    w.send_raw(msgpack.packb([1, 2, 3]))
    assert "map with a string 'type'" in w.recv()["message"]
    w.send({"type": "dance", "id": 1})
    assert "unknown message type" in w.recv()["message"]
    w.send({"type": "infer", "id": 2, "slot": 9, "imgsz": 640})
    assert "slot must be 0..1" in w.recv()["message"]
    w.send({"type": "infer", "id": 3, "slot": 0, "imgsz": 123})
    assert "imgsz must be 320 or 640" in w.recv()["message"]
    w.send_raw(b"x" * (2 << 20))  # over the size limit: skipped, answered
    assert "exceeds" in w.recv()["message"]
    w.send({"type": "ping", "id": 4})
    assert w.recv() == {"type": "pong", "id": 4}
    w.close()


def test_model_swap_and_failed_load_keeps_the_old_model(tensors, tmp_path):
    w = Worker(tensors[0])
    assert w.recv()["type"] == "ready"
    w.send({"type": "load_model", "id": 1, "size": "x", "path_640": model("x", 640), "path_320": None})
    loaded = w.recv()
    assert loaded["type"] == "model_loaded" and loaded["size"] == "x" and loaded["sizes"] == [640]
    w.send({"type": "infer", "id": 2, "slot": 0, "imgsz": 640})
    assert w.recv()["model_size"] == "x"

    # A loadable model with the wrong output layout: [1, 2, 10] where 4 + 1 rows belong.
    import onnx
    from onnx import TensorProto, helper
    graph = helper.make_graph(
        [helper.make_node("ReduceMean", ["images"], ["pooled"], axes=[2, 3], keepdims=0),
         helper.make_node("Tile", ["pooled", "reps"], ["tiled"]),
         helper.make_node("Reshape", ["tiled", "shape"], ["output0"])],
        "wrong", [helper.make_tensor_value_info("images", TensorProto.FLOAT, [1, 3, 640, 640])],
        [helper.make_tensor_value_info("output0", TensorProto.FLOAT, [1, 2, 10])],
        [helper.make_tensor("reps", TensorProto.INT64, [2], [1, 20]), helper.make_tensor("shape", TensorProto.INT64, [3], [1, 2, 30])])
    wrong = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    wrong.ir_version = 8
    entry = wrong.metadata_props.add()
    entry.key, entry.value = "names", "{0: 'person'}"
    wrong_path = tmp_path / "wrong_layout.onnx"
    onnx.save(wrong, wrong_path)

    corrupt = tmp_path / "yolo11m.onnx"
    corrupt.write_bytes(b"\x08\x07 this is not a protobuf")
    for bad, expected in [(str(corrupt), "not a loadable ONNX model"), ("/no/such.onnx", "does not exist"),
                          (model("s", 320), "is not [1, 3, 640, 640]"),
                          (str(wrong_path), "(Ultralytics layout)")]:
        w.send({"type": "load_model", "id": 3, "size": "m", "path_640": bad, "path_320": None})
        error = w.recv()
        assert error["type"] == "error" and error["id"] == 3 and expected in error["message"], error
    w.send({"type": "infer", "id": 4, "slot": 0, "imgsz": 640})
    assert w.recv()["model_size"] == "x", "the old model keeps working"
    w.close()


def nice_of_threads(pid):
    """The nice values of a process's threads."""
    return {os.getpriority(os.PRIO_PROCESS, int(tid)) for tid in os.listdir(f"/proc/{pid}/task")}


def test_a_spare_waits_at_low_priority_and_takes_over_at_full(tensors):
    name, _, _ = tensors
    base = os.getpriority(os.PRIO_PROCESS, 0)
    w = Worker(name, "--spare")
    assert w.recv()["type"] == "ready"
    # Started, imported and loaded at niceness 19: every thread (numpy's, ONNX Runtime's
    # pools).
    assert nice_of_threads(w.proc.pid) == {19}
    import resource
    may_go_back = os.geteuid() == 0 or resource.getrlimit(resource.RLIMIT_NICE)[0] >= 20 - base
    w.send({"type": "infer", "id": 1, "slot": 0, "imgsz": 640, "frame_seq": 1})
    assert w.recv()["type"] == "result"
    # Its first inference request: the niceness it was started with. Going back needs
    # CAP_SYS_NICE or RLIMIT_NICE (root here; LimitNICE=+0 in the unit).
    assert nice_of_threads(w.proc.pid) == ({base} if may_go_back else {19})
    w.close()


def oom_score(pid):
    with open(f"/proc/{pid}/oom_score_adj") as f:
        return int(f.read())


def test_a_spare_loads_lean_and_is_first_for_the_oom_killer_until_it_takes_over(tensors):
    name, _, _ = tensors
    w = Worker(name, "--spare")
    ready = w.recv()
    # Both inputs offered, only the 640 session built; the 320 comes on first use.
    assert ready["sizes"] == [320, 640] and ready["loaded"] == [640]
    assert oom_score(w.proc.pid) == 1000
    w.send({"type": "infer", "id": 1, "slot": 0, "imgsz": 320, "frame_seq": 1})
    assert w.recv()["type"] == "result"
    # Serving now: the score of its parent (this test) again.
    assert oom_score(w.proc.pid) == oom_score(os.getpid())
    w.close()


def test_a_deferred_worker_loads_only_when_told_to_serve(tensors):
    name, _, _ = tensors
    w = Worker(name, "--spare", "--defer-load")
    ready = w.recv()
    assert ready["deferred"] is True and ready["loaded"] == [] and ready["sizes"] == [320, 640]
    assert oom_score(w.proc.pid) == 1000
    w.send({"type": "serve", "id": 5})
    assert w.recv() == {"type": "pong", "id": 5}
    assert oom_score(w.proc.pid) == oom_score(os.getpid())
    w.send({"type": "infer", "id": 6, "slot": 0, "imgsz": 640, "frame_seq": 1})
    result = w.recv()
    assert result["type"] == "result" and result["model_size"] == "n"
    w.close()
