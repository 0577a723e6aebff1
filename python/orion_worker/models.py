"""ONNX Runtime sessions for one model size: a 640-input session and an optional
320-input one, validated and warmed up before they may serve a request.

A stand-in (a spare worker) loads lean: the 640 session only, and the memory its warm-up
run took for activations given back to the system at once; the 320 session on first use. It waits, perhaps for hours, to
take over a model the serving worker already loaded and ran; its memory is what the room
pays for that wait (docs/adr/0009-lean-stand-ins.md)."""

import ast
import ctypes
import os
import time

import numpy as np
import onnxruntime as ort


class ModelError(Exception):
    pass


class Session:
    """One validated session with a fixed square input."""

    def __init__(self, path, imgsz, threads, person_names, before_build=None, keep_arena=True):
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
        # The warm-up run is also the output shape check. A stand-in gives the activations'
        # memory back after it (it may wait for hours); its first real run takes it again.
        out = self.run(np.zeros((1, 3, imgsz, imgsz), dtype=np.float32), shrink=not keep_arena)
        if out.ndim != 3 or out.shape[0] != 1 or out.shape[1] != 4 + len(self.names):
            raise ModelError(f"{path}: output shape {list(out.shape)} is not [1, {4 + len(self.names)}, N] (Ultralytics layout)")

    def run(self, tensor, shrink=False):
        if tensor.dtype != self.input_type:
            tensor = tensor.astype(self.input_type)
        options = None
        if shrink:
            options = ort.RunOptions()
            options.add_run_config_entry("memory.enable_memory_arena_shrinkage", "cpu:0")
        return np.asarray(self.session.run(None, {self.input_name: tensor}, options)[0], dtype=np.float32)


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
    """The sessions of one model size. Both inputs load (or fail) together, unless
    `later_320`: then the 320 session loads on its first request. A `stand_in` gives back
    the memory of its warm-up's activations."""

    def __init__(self, size, path_640, path_320, threads, person_names, before_build=None, stand_in=False, later_320=False):
        started = time.monotonic()
        self.size = size
        self.threads, self.person_names = threads, person_names
        self.paths = {640: path_640, 320: path_320} if path_320 else {640: path_640}
        self.sessions = {640: Session(path_640, 640, threads, person_names, before_build, keep_arena=not stand_in)}
        if path_320 and not later_320:
            self.sessions[320] = Session(path_320, 320, threads, person_names, before_build)
        self.load_ms = (time.monotonic() - started) * 1000
        give_back_freed_memory()

    def session(self, imgsz):
        """The session for `imgsz`, loading a lean set's 320 session on its first use
        (None: this model has no such input)."""
        if imgsz not in self.sessions and imgsz in self.paths:
            self.sessions[imgsz] = Session(self.paths[imgsz], imgsz, self.threads, self.person_names)
            give_back_freed_memory()
        return self.sessions.get(imgsz)

    def describe(self):
        main = self.sessions[640]
        return {
            "size": self.size,
            "sizes": sorted(self.paths),
            "loaded": sorted(self.sessions),
            "names": main.names,
            "person_class_ids": main.class_ids,
            "paths": {str(k): p for k, p in self.paths.items()},
            "load_ms": round(self.load_ms, 1),
        }


def give_back_freed_memory():
    """Loading parses the whole model file into memory the runtime frees once the session
    is built; glibc keeps such freed pages unless asked (~30 MB for a 35 MB model)."""
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):
        pass  # not glibc: nothing to ask
