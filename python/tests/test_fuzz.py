"""The worker's side of its protocol against arbitrary input from the bridge: random
bytes, frames of random length, MsgPack maps shaped like requests with fields of any type.
Every message gets an answer (error, pong, result, model_loaded) and the worker keeps
serving. ORION_FUZZ_CASES sets the inputs (default 1000; the long run uses 1000000)."""

import os
import random
import struct

import msgpack
import pytest

from conftest import require_fixtures
from test_worker import Worker, tensors  # noqa: F401  (the fixture)

CASES = int(os.environ.get("ORION_FUZZ_CASES", "1000"))
TYPES = ["infer", "load_model", "ping", "dance", "", None, 3]
KEYS = ["id", "slot", "imgsz", "frame_seq", "size", "path_640", "path_320", "type"]


def any_value(rng, depth=0):
    pick = rng.randrange(9 if depth < 2 else 6)
    if pick == 0:
        return None
    if pick == 1:
        return rng.choice([True, False])
    if pick == 2:
        return rng.choice([0, 1, 2, 320, 640, -1, 2**31, 2**63 - 1, rng.randrange(-1000, 1000)])
    if pick == 3:
        return rng.choice([0.0, -0.0, 1e308, float("nan"), float("inf"), rng.random()])
    if pick == 4:
        return "".join(rng.choice("ab/._-\x00é") for _ in range(rng.randrange(12)))
    if pick == 5:
        return bytes(rng.randrange(256) for _ in range(rng.randrange(8)))
    if pick == 6:
        return [any_value(rng, depth + 1) for _ in range(rng.randrange(4))]
    if pick == 7:
        return {rng.choice(KEYS): any_value(rng, depth + 1) for _ in range(rng.randrange(4))}
    return {any_value(rng, depth + 2) if rng.random() < 0.2 else "k": 1}


def request_like(rng):
    message = {rng.choice(KEYS): any_value(rng) for _ in range(rng.randrange(6))}
    message["type"] = rng.choice(TYPES)
    # Never a real model file: a load must fail cleanly, not swap.
    for key in ("path_640", "path_320"):
        if isinstance(message.get(key), str):
            message[key] = "/nonexistent/" + message[key]
    try:
        return msgpack.packb(message)
    except (TypeError, ValueError, OverflowError):
        return msgpack.packb({"type": "ping", "id": 0})


def test_the_worker_answers_every_message_and_keeps_serving(tensors):  # noqa: F811
    require_fixtures()
    rng = random.Random(int(os.environ.get("ORION_FUZZ_SEED", "7")))
    w = Worker(tensors[0])
    assert w.recv()["type"] == "ready"
    answered = 0
    for i in range(CASES):
        kind = rng.randrange(3)
        if kind == 0:
            body = bytes(rng.randrange(256) for _ in range(rng.randrange(64)))
        else:
            body = request_like(rng)
        w.send_raw(body)
        reply = w.recv()
        assert reply["type"] in ("error", "pong", "result", "model_loaded"), reply
        answered += 1
        if i % 97 == 0:
            w.send({"type": "ping", "id": i})
            assert w.recv() == {"type": "pong", "id": i}
    assert answered == CASES
    print(f"worker fuzz: {answered} inputs answered")
    w.close()
