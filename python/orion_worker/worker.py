"""The request loop: answers every request exactly once, never dies of a bad one, and
swaps models between two requests after loading them in the background."""

import os
import sys
import threading
import time

from . import decode, protocol
from .models import ModelError, ModelSet
from .tensors import TensorBuffer, TensorError

LOADER_NICE = 10
# How long a loader waits for a gap between two inferences before it builds a session anyway.
GAP_WAIT_S = 0.5


def log(message):
    print(f"orion_worker: {message}", file=sys.stderr, flush=True)


class Worker:
    def __init__(self, tensors, out, threads, person_names, confidence, iou, max_det):
        self.tensors = tensors
        self.out = out
        self.threads = threads
        self.person_names = set(person_names)
        self.confidence, self.iou, self.max_det = confidence, iou, max_det
        self.models = None
        self.lock = threading.Lock()  # held while a request runs; the swap takes it too
        self.write_lock = threading.Lock()
        self.loading = False  # a load_model is being served (set and cleared on the main/loader threads)
        # Inference replies sent so far: the loader builds each session right after one,
        # in the gap before the next request (see `_after_a_reply`).
        self.replies = 0
        self.replied = threading.Condition()
        # A spare's priority to restore on its first inference request (None: not lowered).
        self.spare_base = None
        # A standby detector's worker loads nothing until it is told to serve: (size, 640
        # path, 320 path) until then.
        self.deferred = None

    def send(self, message):
        frame = protocol.encode_message(message)
        with self.write_lock:
            self.out.write(frame)
            self.out.flush()

    def error(self, request_id, kind, message):
        self.send({"type": "error", "id": request_id, "kind": kind, "message": message})

    # ---- requests -------------------------------------------------------------------------

    def handle(self, message):
        kind = message["type"]
        request_id = message.get("id")
        if self.deferred is not None and kind in ("infer", "serve"):
            self.load_deferred()
        if kind == "serve":
            # Told at a take-over, before the first frame: the load above is done.
            self.send({"type": "pong", "id": request_id})
        elif kind == "infer":
            self.take_over()
            self.infer(request_id, message)
            with self.replied:
                self.replies += 1
                self.replied.notify_all()
        elif kind == "load_model":
            self.load_model(request_id, message)
        elif kind == "ping":
            self.send({"type": "pong", "id": request_id})
        else:
            self.error(request_id, "bad_request", f"unknown message type {kind!r}")

    def infer(self, request_id, message):
        slot, imgsz, seq = message.get("slot"), message.get("imgsz"), message.get("frame_seq")
        if not isinstance(imgsz, int) or imgsz not in (320, 640):
            return self.error(request_id, "bad_request", f"imgsz must be 320 or 640, got {imgsz!r}")
        with self.lock:
            if self.models is None:
                return self.error(request_id, "model", "no model loaded")
            try:
                session = self.models.session(imgsz)
            except ModelError as exc:
                return self.error(request_id, "model", str(exc))
            if session is None:
                return self.error(request_id, "bad_request", f"no {imgsz} model loaded (sizes {sorted(self.models.paths)})")
            t0 = time.perf_counter()
            try:
                tensor = self.tensors.view(slot, imgsz)
            except TensorError as exc:
                return self.error(request_id, "bad_request", str(exc))
            t1 = time.perf_counter()
            try:
                output = session.run(tensor)
            except Exception as exc:  # a runtime failure is reported, not fatal
                return self.error(request_id, "infer", f"inference failed: {exc}")
            t2 = time.perf_counter()
            boxes, scores, classes = decode.decode(output, session.class_ids, self.confidence, self.iou, self.max_det)
            t3 = time.perf_counter()
            reply = {
                "type": "result",
                "id": request_id,
                "frame_seq": seq,
                "imgsz": imgsz,
                "model_size": self.models.size,
                "boxes": boxes.reshape(-1).tolist(),
                "scores": scores.tolist(),
                "classes": [session.names[c] for c in classes.tolist()],
                "timing": {"preprocess_ms": (t1 - t0) * 1e3, "inference_ms": (t2 - t1) * 1e3, "postprocess_ms": (t3 - t2) * 1e3},
            }
        self.send(reply)

    def load_model(self, request_id, message):
        size, p640, p320 = message.get("size"), message.get("path_640"), message.get("path_320")
        if not isinstance(size, str) or not isinstance(p640, str) or not (p320 is None or isinstance(p320, str)):
            return self.error(request_id, "bad_request", "load_model needs size (str), path_640 (str), path_320 (str or nil)")
        if self.loading:
            return self.error(request_id, "busy", "a model is already loading")
        self.loading = True
        threading.Thread(target=self._load, args=(request_id, size, p640, p320), daemon=True).start()

    def load_initial(self, size, p640, p320, stand_in=False, later_320=False):
        self.models = ModelSet(size, p640, p320, self.threads, self.person_names, stand_in=stand_in, later_320=later_320)

    def take_over(self):
        """A stand-in's first request: it serves now. Back to the priority it started with,
        and no longer first for the OOM killer (the bridge's own score)."""
        if self.spare_base is None:
            return
        _restore_all_threads(self.spare_base)
        self.spare_base = None
        _oom_score_as_parent()

    def load_deferred(self):
        """The standby's worker takes over: full priority, then the model. One that does not
        load ends the process, so the bridge starts a worker that reports why."""
        size, p640, p320 = self.deferred
        self.deferred = None
        self.take_over()
        try:
            with self.lock:
                # The 320 session on first use: the first frame waits for the 640 alone.
                self.load_initial(size, p640, p320, later_320=True)
        except ModelError as exc:
            self.error(None, "model", str(exc))
            log(str(exc))
            os._exit(3)
        log(f"loaded model {size} on taking over ({self.models.load_ms:.0f} ms)")

    def _load(self, request_id, size, p640, p320):
        before = set(os.listdir("/proc/self/task"))
        if self.spare_base is None:
            _renice_self(LOADER_NICE)  # inference keeps the CPU while we load
        # (A spare loads at its own low niceness, which the new threads keep.)
        try:
            models = ModelSet(size, p640, p320, self.threads, self.person_names, self._after_a_reply)
        except Exception as exc:  # never let a loader failure go unanswered
            message = str(exc) if isinstance(exc, ModelError) else f"loading {size} failed: {exc}"
            log(f"load_model {size} failed: {message}")
            self.loading = False  # before the reply: the next load_model may follow it at once
            return self.error(request_id, "model", message)
        finally:
            _restore_new_threads(before)
        with self.lock:  # between two requests
            self.models = models
        log(f"swapped to model {size} ({models.load_ms:.0f} ms to load)")
        self.loading = False
        self.send({"type": "model_loaded", "id": request_id, **models.describe()})


    def _after_a_reply(self):
        """Waits for the next inference reply (at most GAP_WAIT_S). ONNX Runtime holds the
        GIL while it builds a session (~0.1-0.2 s for a small YOLO), which would stall a
        request arriving meanwhile; just after a reply the next frame is furthest away."""
        with self.replied:
            seen = self.replies
            self.replied.wait_for(lambda: self.replies != seen, timeout=GAP_WAIT_S)


def _oom_score_as_parent():
    """Takes the bridge's OOM score again (a spare started at 1000: first to go). Lowering
    it back to where it was needs no privilege."""
    try:
        with open(f"/proc/{os.getppid()}/oom_score_adj") as f:
            score = f.read().strip()
        with open("/proc/self/oom_score_adj", "w") as f:
            f.write(score)
    except OSError as exc:
        log(f"cannot give back the OOM score on taking over: {exc}")


def _renice_self(nice):
    try:
        os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), nice)
    except OSError:
        pass


def _restore_new_threads(before):
    """Threads created while loading (ONNX Runtime's pool for the new session, this loader)
    inherited the loader's niceness; give them back the process's normal priority so
    inference after the swap runs at full speed. Needs CAP_SYS_NICE or RLIMIT_NICE; without
    it the new pool stays niced, which is logged once."""
    base = os.getpriority(os.PRIO_PROCESS, os.getpid())
    tids = set(os.listdir("/proc/self/task")) - before | {str(threading.get_native_id())}
    _renice(tids, base, "after a model load")


def _restore_all_threads(nice):
    """A spare taking over: every thread back to the niceness the process started with
    (needs CAP_SYS_NICE or an RLIMIT_NICE that allows it: the unit's LimitNICE=+0)."""
    if _renice(os.listdir("/proc/self/task"), nice, "on taking over"):
        log("took over: priority restored")


def _renice(tids, nice, when):
    """Threads `tids` to niceness `nice`; False (logged) where that is not allowed."""
    for tid in tids:
        try:
            os.setpriority(os.PRIO_PROCESS, int(tid), nice)
        except ProcessLookupError:
            pass
        except PermissionError:
            log(f"cannot restore thread priority {when} (no CAP_SYS_NICE / LimitNICE)")
            return False
    return True


def serve(args):
    try:
        tensors = TensorBuffer(name=args.tensors, fd=args.tensors_fd)
    except TensorError as exc:
        log(str(exc))
        return 2
    out = sys.stdout.buffer
    sys.stdout = sys.stderr  # nothing else may write to the protocol stream
    worker = Worker(tensors, out, args.threads, args.classes, args.confidence, args.iou, args.max_det)
    worker.spare_base = getattr(args, "spare_base", None)
    import onnxruntime
    ready = {"type": "ready", "pid": os.getpid(), "providers": onnxruntime.get_available_providers()}
    if args.defer_load:
        worker.deferred = (args.size, args.model_640, args.model_320)
        sizes = [640, 320] if args.model_320 else [640]
        worker.send({**ready, "size": args.size, "sizes": sorted(sizes), "loaded": [], "names": [], "deferred": True})
    else:
        try:
            # A spare loads lean (see models.py): it may wait for hours.
            worker.load_initial(args.size, args.model_640, args.model_320, stand_in=args.spare, later_320=args.spare)
        except ModelError as exc:
            worker.error(None, "model", str(exc))
            log(str(exc))
            return 3
        worker.send({**ready, **worker.models.describe()})
    stdin = sys.stdin.buffer
    while True:
        try:
            message = protocol.read_message(stdin)
        except protocol.StreamClosed:
            return 0
        except protocol.ProtocolError as exc:
            worker.error(None, "bad_request", str(exc))
            continue
        try:
            worker.handle(message)
        except Exception as exc:  # the last line of defence: answer, log, keep serving
            log(f"request {message.get('type')!r} failed: {exc!r}")
            worker.error(message.get("id"), "internal", f"{type(exc).__name__}: {exc}")
