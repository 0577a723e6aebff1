"""ONNX Runtime sessions for one model size: a 640-input session and an optional
320-input one, validated and warmed up before they may serve a request."""

import ast
import os
import time

import numpy as np
import onnxruntime as ort


class ModelError(Exception):
    pass


class Session:
    """One validated session with a fixed square input."""

    def __init__(self, path, imgsz, threads, person_names, before_build=None):
        if not os.path.isfile(path):
            raise ModelError(f"model file {path} does not exist")
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        # Spinning pool threads would steal the CPU the capture and loader need.
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        options.log_severity_level = 3
        if before_build is not None:
            before_build()
        try:
            self.session = ort.InferenceSession(path, sess_options=options, providers=["CPUExecutionProvider"])
        except Exception as exc:  # ORT raises several types for unreadable models
            raise ModelError(f"{path} is not a loadable ONNX model: {str(exc).splitlines()[0][:300]}") from None
        inputs, outputs = self.session.get_inputs(), self.session.get_outputs()
        if len(inputs) != 1 or len(outputs) < 1:
            raise ModelError(f"{path}: expected one input and an output, got {len(inputs)} and {len(outputs)}")
        shape = inputs[0].shape
        if len(shape) != 4 or shape[1] != 3 or any(isinstance(d, int) and d != imgsz for d in shape[2:]):
            raise ModelError(f"{path}: input shape {shape} is not [1, 3, {imgsz}, {imgsz}]")
        self.input_name = inputs[0].name
        self.input_type = np.float16 if inputs[0].type == "tensor(float16)" else np.float32
        self.names = parse_names(self.session.get_modelmeta().custom_metadata_map.get("names"), path)
        self.class_ids = [i for i, n in enumerate(self.names) if n in person_names]
        if not self.class_ids:
            raise ModelError(f"{path}: none of the classes {sorted(person_names)} is in the model's names {self.names[:10]}")
        self.imgsz, self.path = imgsz, path
        out = self.run(np.zeros((1, 3, imgsz, imgsz), dtype=np.float32))  # warm-up, and a shape check
        if out.ndim != 3 or out.shape[0] != 1 or out.shape[1] != 4 + len(self.names):
            raise ModelError(f"{path}: output shape {list(out.shape)} is not [1, {4 + len(self.names)}, N] (Ultralytics layout)")

    def run(self, tensor):
        if tensor.dtype != self.input_type:
            tensor = tensor.astype(self.input_type)
        return np.asarray(self.session.run(None, {self.input_name: tensor})[0], dtype=np.float32)


def parse_names(text, path):
    if text is None:
        raise ModelError(f"{path} has no 'names' metadata (export it with Ultralytics)")
    try:
        names = ast.literal_eval(text)
    except (ValueError, SyntaxError):
        raise ModelError(f"{path}: 'names' metadata is not a dict or list literal") from None
    if isinstance(names, dict):
        if sorted(names) != list(range(len(names))):
            raise ModelError(f"{path}: 'names' keys are not 0..{len(names) - 1}")
        names = [names[i] for i in range(len(names))]
    if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
        raise ModelError(f"{path}: 'names' must map class ids to strings")
    return names


class ModelSet:
    """The sessions of one model size. Both inputs load (or fail) together."""

    def __init__(self, size, path_640, path_320, threads, person_names, before_build=None):
        started = time.monotonic()
        self.size = size
        self.sessions = {640: Session(path_640, 640, threads, person_names, before_build)}
        if path_320:
            self.sessions[320] = Session(path_320, 320, threads, person_names, before_build)
        self.load_ms = (time.monotonic() - started) * 1000

    def describe(self):
        main = self.sessions[640]
        return {
            "size": self.size,
            "sizes": sorted(self.sessions),
            "names": main.names,
            "person_class_ids": main.class_ids,
            "paths": {str(k): s.path for k, s in self.sessions.items()},
            "load_ms": round(self.load_ms, 1),
        }
