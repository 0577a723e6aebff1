"""``python -m orion_worker``: see ``orion_worker.worker``."""

import ctypes
import os
import signal


def _die_with_parent():
    # PR_SET_PDEATHSIG = 1: the bridge's death takes the worker with it (no orphans). Set
    # before anything slow is imported; a parent gone before that leaves us to init.
    parent = os.getppid()
    try:
        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM)
    except (OSError, AttributeError):
        pass
    if os.getppid() != parent or parent == 1:
        os._exit(0)


_die_with_parent()

import argparse  # noqa: E402  (after the death signal, on purpose)
import sys  # noqa: E402


# A spare's niceness while it starts and loads: the least CPU share there is (a niceness of
# 10 still slowed the serving worker's inference by half while a 45 MB model loaded).
SPARE_NICE = 19


def _spare_priority():
    """A spare (`--spare`) starts, imports and loads at niceness 19 so that it does not slow
    the worker serving frames; set before any thread exists (numpy's and ONNX Runtime's
    pools inherit it). The bridge raises it to 10 when it finds no idle CPU for a few
    seconds; its first inference request restores the niceness it had. Returns that
    niceness, or None when not a spare."""
    if "--spare" not in sys.argv[1:]:
        return None
    base = os.getpriority(os.PRIO_PROCESS, 0)
    try:
        os.setpriority(os.PRIO_PROCESS, 0, SPARE_NICE)
    except OSError:
        return None
    _first_to_go()
    return base


def _first_to_go():
    """A spare is the first the kernel's OOM killer takes (the room must never be killed
    for a stand-in); it takes its bridge's score again when it takes over."""
    try:
        with open("/proc/self/oom_score_adj", "w") as f:
            f.write("1000")
    except OSError:
        pass


def main():
    spare_base = _spare_priority()
    # numpy and ONNX Runtime are imported here, after the death signal is set.
    from .worker import serve

    parser = argparse.ArgumentParser(prog="python -m orion_worker", description=__doc__)
    where = parser.add_mutually_exclusive_group(required=True)
    where.add_argument("--tensors", help="shared-memory tensor buffer by name, e.g. /orion-room1-tensors")
    where.add_argument("--tensors-fd", type=int, help="inherited descriptor of the tensor buffer (a sealed memfd)")
    parser.add_argument("--size", required=True, help="model size letter of the initial model")
    parser.add_argument("--model-640", required=True)
    parser.add_argument("--model-320")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--classes", default="person", help="comma-separated class names that count as a person")
    parser.add_argument("--confidence", type=float, default=0.25)
    parser.add_argument("--iou", type=float, default=0.45)
    parser.add_argument("--max-det", type=int, default=100)
    parser.add_argument("--spare", action="store_true", help="wait at a low CPU priority until the first inference request; load lean")
    parser.add_argument("--defer-load", action="store_true", help="load the model only when told to serve (a standby detector's worker)")
    args = parser.parse_args()
    args.spare_base = spare_base
    args.classes = [c for c in args.classes.split(",") if c]
    if not 1 <= args.threads <= 64 or not 0 <= args.confidence <= 1 or not 0 < args.iou <= 1 or not 1 <= args.max_det <= 1000:
        parser.error("threads 1..64, confidence 0..1, iou (0, 1], max-det 1..1000")
    # Nothing to flush or release (the tensor buffer is mapped read-only): leave at once,
    # even while the loader thread is inside ONNX Runtime.
    signal.signal(signal.SIGTERM, lambda *_: os._exit(0))
    sys.exit(serve(args))


if __name__ == "__main__":
    main()
