"""Decoding of Ultralytics-layout YOLO outputs and non-maximum suppression.

The output is ``[1, 4 + nc, N]``: rows ``cx, cy, w, h`` in input pixels, then one score row
per class. ``nc`` comes from the shape. Only the configured classes count; a box's score is
its best score among them, and NMS runs across them (they all mean "a person", so one box
per person survives)."""

import numpy as np

# Best-scoring boxes considered by NMS (its IoU matrix is MAX_CANDIDATES² floats).
MAX_CANDIDATES = 1000


def decode(output, class_ids, confidence, iou, max_det):
    """Returns ``(boxes [K,4] xyxy, scores [K], classes [K])`` sorted by score."""
    if output.ndim != 3 or output.shape[0] != 1 or output.shape[1] < 5:
        raise ValueError(f"expected output [1, 4+nc, N], got {list(output.shape)}")
    rows = output[0]
    nc = rows.shape[0] - 4
    if any(c < 0 or c >= nc for c in class_ids):
        raise ValueError(f"class ids {list(class_ids)} outside the model's {nc} classes")
    if len(class_ids) == 1:  # the common case: a view, no copy
        scores = rows[4 + class_ids[0]]
        best = np.zeros(rows.shape[1], dtype=np.int64)
    else:
        class_scores = rows[4 + np.asarray(class_ids, dtype=np.int64)]  # [C, N]
        best = class_scores.argmax(axis=0)
        scores = class_scores[best, np.arange(rows.shape[1])]
    keep = scores >= confidence
    if not keep.any():
        empty = np.zeros((0, 4), dtype=np.float32)
        return empty, np.zeros(0, dtype=np.float32), np.zeros(0, dtype=np.int64)
    cx, cy, w, h = rows[0, keep], rows[1, keep], rows[2, keep], rows[3, keep]
    boxes = np.stack([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2], axis=1).astype(np.float32)
    scores = scores[keep].astype(np.float32)
    classes = np.asarray(class_ids, dtype=np.int64)[best[keep]]
    order = np.argsort(-scores, kind="stable")[:MAX_CANDIDATES]
    boxes, scores, classes = boxes[order], scores[order], classes[order]
    kept = nms(boxes, scores, iou, max_det)
    return boxes[kept], scores[kept], classes[kept]


def nms(boxes, scores, iou_threshold, limit=None):
    """Greedy NMS over boxes sorted by descending score; returns kept indices in order
    (at most ``limit``). One IoU matrix, then one vector operation per kept box."""
    n = len(boxes)
    if n == 0:
        return np.zeros(0, dtype=np.int64)
    x1, y1, x2, y2 = boxes.T
    areas = np.maximum(x2 - x1, 0) * np.maximum(y2 - y1, 0)
    iw = np.maximum(np.minimum(x2[:, None], x2[None]) - np.maximum(x1[:, None], x1[None]), 0)
    ih = np.maximum(np.minimum(y2[:, None], y2[None]) - np.maximum(y1[:, None], y1[None]), 0)
    inter = iw * ih
    union = areas[:, None] + areas[None] - inter
    overlaps = np.where(union > 0, inter / np.where(union > 0, union, 1), 0) > iou_threshold
    suppressed = np.zeros(n, dtype=bool)
    keep = []
    for i in range(n):
        if suppressed[i]:
            continue
        keep.append(i)
        if limit is not None and len(keep) >= limit:
            break
        suppressed |= overlaps[i]
    return np.asarray(keep, dtype=np.int64)
