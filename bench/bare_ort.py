"""Baseline for `orion-bench detector`: a bare ONNX Runtime loop on a ready tensor, with the
session options the worker uses. Prints {"runs_per_s": R, "infer_ms": M} as one JSON line.

    python bare_ort.py MODEL.onnx IMGSZ THREADS SECONDS
"""

import json
import sys
import time

import numpy as np
import onnxruntime as ort

model, imgsz, threads, seconds = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), float(sys.argv[4])
options = ort.SessionOptions()
options.intra_op_num_threads = threads
options.inter_op_num_threads = 1
options.add_session_config_entry("session.intra_op.allow_spinning", "0")
session = ort.InferenceSession(model, sess_options=options, providers=["CPUExecutionProvider"])
name = session.get_inputs()[0].name
tensor = np.random.default_rng(0).random((1, 3, imgsz, imgsz), dtype=np.float32)
for _ in range(3):
    session.run(None, {name: tensor})
runs, start = 0, time.perf_counter()
while time.perf_counter() - start < seconds:
    session.run(None, {name: tensor})
    runs += 1
elapsed = time.perf_counter() - start
print(json.dumps({"runs_per_s": runs / elapsed, "infer_ms": elapsed / runs * 1e3}))
