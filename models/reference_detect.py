"""Reference detector: the same ONNX model run the plain way, for checking the bridge.

Its own letterbox (aspect kept, pad 114, bilinear with a triangle filter as Pillow and
fast_image_resize do), its own decode and NMS; nothing shared with orion_worker or the
bridge. Reads raw RGB frames (tightly packed rows), prints one JSON line of boxes in frame pixels
per frame.

    python reference_detect.py MODEL.onnx WIDTH HEIGHT FRAME.rgb... [--crop X Y W H] [--classes person]
"""

import argparse
import ast
import json

import numpy as np
import onnxruntime as ort


def resample_axis(image, new_size, axis):
    old = image.shape[axis]
    scale = old / new_size
    support = max(scale, 1.0)
    centres = (np.arange(new_size) + 0.5) * scale
    weights = np.zeros((new_size, old), dtype=np.float64)
    for i, c in enumerate(centres):
        lo, hi = int(np.floor(c - support)), int(np.ceil(c + support))
        taps = np.arange(max(lo, 0), min(hi, old))
        w = np.maximum(0.0, 1.0 - np.abs((taps + 0.5 - c) / support))
        weights[i, taps] = w / w.sum()
    return np.moveaxis(np.tensordot(weights, np.moveaxis(image, axis, 0), axes=1), 0, axis)


def letterbox(rgb, size):
    h, w = rgb.shape[:2]
    r = min(size / w, size / h)
    nw, nh = max(1, round(w * r)), max(1, round(h * r))
    resized = resample_axis(resample_axis(rgb.astype(np.float64), nh, 0), nw, 1)
    canvas = np.full((size, size, 3), 114.0)
    left, top = (size - nw) // 2, (size - nh) // 2
    canvas[top:top + nh, left:left + nw] = np.clip(np.rint(resized), 0, 255)
    return canvas.transpose(2, 0, 1)[None].astype(np.float32) / 255.0, r, left, top


def detect(session, rgb, classes, confidence, iou):
    size = session.get_inputs()[0].shape[2]
    names = ast.literal_eval(session.get_modelmeta().custom_metadata_map["names"])
    wanted = [i for i, n in names.items() if n in classes]
    tensor, r, left, top = letterbox(rgb, size)
    out = session.run(None, {session.get_inputs()[0].name: tensor})[0][0]
    scores = out[4 + np.array(wanted)].max(axis=0)
    keep = np.where(scores >= confidence)[0]
    keep = keep[np.argsort(-scores[keep])]
    chosen = []
    for i in keep:
        cx, cy, bw, bh = out[:4, i]
        box = np.array([cx - bw / 2, cy - bh / 2, cx + bw / 2, cy + bh / 2])
        if all(iou_of(box, c[0]) <= iou for c in chosen):
            chosen.append((box, float(scores[i])))
    h, w = rgb.shape[:2]
    result = []
    for box, score in chosen[:100]:
        x1, y1, x2, y2 = box
        x1, x2 = np.clip([(x1 - left) / r, (x2 - left) / r], 0, w)
        y1, y2 = np.clip([(y1 - top) / r, (y2 - top) / r], 0, h)
        result.append({"x1": float(x1), "y1": float(y1), "x2": float(x2), "y2": float(y2), "score": score})
    return result, size


def iou_of(a, b):
    ix = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = ix * iy
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("model")
    p.add_argument("width", type=int)
    p.add_argument("height", type=int)
    p.add_argument("frames", nargs="+")
    p.add_argument("--crop", type=int, nargs=4, metavar=("X", "Y", "W", "H"))
    p.add_argument("--classes", default="person")
    p.add_argument("--confidence", type=float, default=0.25)
    p.add_argument("--iou", type=float, default=0.45)
    a = p.parse_args()
    session = ort.InferenceSession(a.model, providers=["CPUExecutionProvider"])
    for frame in a.frames:
        rgb = np.fromfile(frame, dtype=np.uint8).reshape(a.height, a.width, 3)
        x0, y0 = 0, 0
        if a.crop:
            x0, y0, cw, ch = a.crop
            rgb = rgb[y0:y0 + ch, x0:x0 + cw]
        boxes, size = detect(session, rgb, set(a.classes.split(",")), a.confidence, a.iou)
        for b in boxes:
            b["x1"] += x0
            b["x2"] += x0
            b["y1"] += y0
            b["y2"] += y0
        print(json.dumps({"frame": frame, "imgsz": size, "boxes": boxes}), flush=True)


if __name__ == "__main__":
    main()
