"""Converts a darknet YOLOv3-tiny (cfg + weights) into an Ultralytics-layout ONNX model.

Output: input `images` [1, 3, S, S] (RGB, 0..1), output `output0` [1, 4 + nc, N] with rows
cx, cy, w, h (input pixels) then per-class scores (objectness x class probability), and
the metadata Ultralytics writes (`names`, `imgsz`, `stride`, `task`). Only numpy and onnx.

    python darknet_to_onnx.py CFG WEIGHTS NAMES SIZE OUT.onnx

The cfg's second YOLO head is read with `mask = 1,2,3`: the shipped `0,1,2` pairs the
16x16 head with anchors half the size it was trained with (its boxes come out half size).
"""

import sys

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

LEAKY_SLOPE = 0.1
BN_EPS = 1e-6  # darknet: (x - mean) / (sqrt(var) + .000001)
HEAD_MASK_FIX = {1: [1, 2, 3]}  # second head (index 1): see module doc


def parse_cfg(path):
    sections = []
    for raw in open(path, encoding="utf-8"):
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        if line.startswith("["):
            sections.append({"type": line.strip("[]")})
        else:
            key, value = (part.strip() for part in line.split("=", 1))
            sections[-1][key] = value
    if not sections or sections[0]["type"] != "net":
        raise ValueError(f"{path}: first section must be [net]")
    return sections[0], sections[1:]


class Weights:
    def __init__(self, path):
        data = open(path, "rb").read()
        major, minor, _ = np.frombuffer(data[:12], dtype=np.int32)
        seen_bytes = 8 if (major * 10 + minor) >= 2 and major < 1000 else 4
        self.values = np.frombuffer(data[12 + seen_bytes:], dtype=np.float32)
        self.at = 0

    def take(self, n):
        if self.at + n > self.values.size:
            raise ValueError("weights file is shorter than the cfg needs")
        out = self.values[self.at:self.at + n]
        self.at += n
        return out

    def check_consumed(self):
        if self.at != self.values.size:
            raise ValueError(f"weights file has {self.values.size - self.at} unused values")


class Graph:
    def __init__(self):
        self.nodes, self.inits, self.count = [], [], 0

    def name(self, stem):
        self.count += 1
        return f"{stem}_{self.count}"

    def const(self, array, stem="c"):
        name = self.name(stem)
        self.inits.append(numpy_helper.from_array(np.asarray(array), name))
        return name

    def op(self, op_type, inputs, stem=None, **attrs):
        out = self.name(stem or op_type.lower())
        self.nodes.append(helper.make_node(op_type, inputs, [out], **attrs))
        return out


def convolution(g, x, section, in_channels, weights):
    filters, size = int(section["filters"]), int(section["size"])
    stride = int(section.get("stride", 1))
    pad = size // 2 if int(section.get("pad", 0)) else 0
    if section.get("batch_normalize") == "1":
        bias, scale, mean, var = (weights.take(filters) for _ in range(4))
        kernel = weights.take(filters * in_channels * size * size).reshape(filters, in_channels, size, size)
        factor = scale / (np.sqrt(var) + BN_EPS)
        kernel = kernel * factor[:, None, None, None]
        bias = bias - mean * factor
    else:
        bias = weights.take(filters)
        kernel = weights.take(filters * in_channels * size * size).reshape(filters, in_channels, size, size)
    y = g.op("Conv", [x, g.const(kernel.astype(np.float32), "w"), g.const(bias.astype(np.float32), "b")],
             kernel_shape=[size, size], strides=[stride, stride], pads=[pad] * 4)
    activation = section.get("activation", "linear")
    if activation == "leaky":
        y = g.op("LeakyRelu", [y], alpha=LEAKY_SLOPE)
    elif activation != "linear":
        raise ValueError(f"unsupported activation {activation}")
    return y, filters


def maxpool(g, x, section):
    size, stride = int(section["size"]), int(section["stride"])
    # darknet pads size-1 at the end (right/bottom) only; out-of-range cells never win.
    pads = [0, 0, size - 1, size - 1] if stride == 1 else [0, 0, 0, 0]
    return g.op("MaxPool", [x], kernel_shape=[size, size], strides=[stride, stride], pads=pads)


def yolo_head(g, x, section, head_index, grid, input_size):
    anchors = np.array([float(v) for v in section["anchors"].split(",")], dtype=np.float32).reshape(-1, 2)
    mask = HEAD_MASK_FIX.get(head_index) or [int(v) for v in section["mask"].split(",")]
    classes = int(section["classes"])
    na, cells, stride = len(mask), grid * grid, input_size / grid
    t = g.op("Reshape", [x, g.const(np.array([1, na, 5 + classes, cells], dtype=np.int64))])
    part = lambda lo, hi: g.op("Slice", [t, g.const(np.array([lo], dtype=np.int64)),
                                         g.const(np.array([hi], dtype=np.int64)),
                                         g.const(np.array([2], dtype=np.int64))])
    gy, gx = np.meshgrid(np.arange(grid, dtype=np.float32), np.arange(grid, dtype=np.float32), indexing="ij")
    offsets = np.stack([gx.reshape(-1), gy.reshape(-1)])[None, None]  # [1,1,2,cells]
    xy = g.op("Mul", [g.op("Add", [g.op("Sigmoid", [part(0, 2)]), g.const(offsets)]),
                      g.const(np.array(stride, dtype=np.float32))])
    wh = g.op("Mul", [g.op("Exp", [part(2, 4)]), g.const(anchors[mask].reshape(1, na, 2, 1))])
    scores = g.op("Mul", [g.op("Sigmoid", [part(5, 5 + classes)]), g.op("Sigmoid", [part(4, 5)])])
    rows = g.op("Concat", [xy, wh, scores], axis=2)  # [1, na, 4+nc, cells]
    rows = g.op("Transpose", [rows], perm=[0, 2, 1, 3])  # [1, 4+nc, na, cells]
    return g.op("Reshape", [rows, g.const(np.array([1, 4 + classes, na * cells], dtype=np.int64))]), classes


def convert(cfg_path, weights_path, names_path, size):
    if size % 32:
        raise ValueError(f"input size {size} must be a multiple of 32")
    _, layers = parse_cfg(cfg_path)
    weights = Weights(weights_path)
    names = [n.strip() for n in open(names_path, encoding="utf-8") if n.strip()]
    g = Graph()
    outputs, channels, heads = [], [], []
    x, c, grid = "images", 3, size
    for section in layers:
        kind = section["type"]
        if kind == "convolutional":
            x, c = convolution(g, x, section, c, weights)
            grid //= int(section.get("stride", 1))
        elif kind == "maxpool":
            x = maxpool(g, x, section)
            grid //= int(section["stride"])
        elif kind == "upsample":
            x = g.op("Resize", [x, "", g.const(np.array([1, 1, 2, 2], dtype=np.float32))], mode="nearest")
            grid *= int(section["stride"])
        elif kind == "route":
            refs = [int(v) for v in section["layers"].split(",")]
            idx = [r if r >= 0 else len(outputs) + r for r in refs]
            x = outputs[idx[0]][0] if len(idx) == 1 else g.op("Concat", [outputs[i][0] for i in idx], axis=1)
            c = sum(channels[i] for i in idx)
            grid = outputs[idx[0]][1]
        elif kind == "yolo":
            head, classes = yolo_head(g, x, section, len(heads), grid, size)
            if classes != len(names):
                raise ValueError(f"cfg has {classes} classes, {names_path} names {len(names)}")
            heads.append(head)
        else:
            raise ValueError(f"unsupported layer [{kind}]")
        outputs.append((x, grid))
        channels.append(c)
    weights.check_consumed()
    out = g.op("Concat", heads, stem="detections", axis=2)
    g.nodes.append(helper.make_node("Identity", [out], ["output0"]))
    graph = helper.make_graph(
        g.nodes, "yolov3_tiny",
        [helper.make_tensor_value_info("images", TensorProto.FLOAT, [1, 3, size, size])],
        [helper.make_tensor_value_info("output0", TensorProto.FLOAT, [1, 4 + len(names), None])],
        g.inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)], producer_name="orion-darknet2onnx")
    model.ir_version = 8
    meta = {"names": str({i: n for i, n in enumerate(names)}), "imgsz": f"[{size}, {size}]",
            "stride": "32", "task": "detect", "description": "YOLOv3-tiny (darknet, COCO) converted by Orion"}
    for key, value in meta.items():
        entry = model.metadata_props.add()
        entry.key, entry.value = key, value
    onnx.checker.check_model(model)
    return model


def main(argv):
    if len(argv) != 6:
        sys.exit(__doc__)
    cfg, weights, names, size, out = argv[1:]
    onnx.save(convert(cfg, weights, names, int(size)), out)
    print(f"wrote {out}", file=sys.stderr)


if __name__ == "__main__":
    main(sys.argv)
