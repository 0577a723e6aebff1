"""Generates synthetic YOLO-layout ONNX models for fast tests: the Ultralytics interface
(input `images` [1, 3, S, S], output `output0` [1, 4 + nc, N], `names` metadata) with a
convolution stack whose cost grows with the size letter n < s < m < l < x.

    python make_synthetic.py OUT_DIR     # writes yolo11{n,s,m,l,x}_synthetic_{640,320}.onnx

Outputs are deterministic functions of the input: boxes lie inside the input, and a few
class scores pass a 0.25 threshold, so decode, NMS and box mapping all run.
"""

import os
import sys

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

# size letter -> (channels, extra 3x3 convolutions at the final resolution)
COST = {"n": (8, 0), "s": (16, 1), "m": (24, 2), "l": (32, 3), "x": (48, 4)}
NAMES = ["person", "bicycle", "car"]


def build(size_letter, imgsz, seed):
    rng = np.random.default_rng(seed)
    channels, extra = COST[size_letter]
    nodes, inits = [], []

    def const(array, name):
        inits.append(numpy_helper.from_array(np.asarray(array, dtype=np.float32), name))
        return name

    x, c = "images", 3
    # Three stride-2 convolutions: S -> S/8 cells.
    for i in range(3 + extra):
        stride = 2 if i < 3 else 1
        w = const(rng.normal(0, np.sqrt(2.0 / (c * 9)), (channels, c, 3, 3)), f"w{i}")
        b = const(np.zeros(channels), f"b{i}")
        nodes.append(helper.make_node("Conv", [x, w, b], [f"conv{i}"], kernel_shape=[3, 3], strides=[stride] * 2, pads=[1] * 4))
        nodes.append(helper.make_node("Relu", [f"conv{i}"], [f"relu{i}"]))
        x, c = f"relu{i}", channels
    rows = 4 + len(NAMES)
    w = const(rng.normal(0, 1.0 / np.sqrt(c), (rows, c, 1, 1)), "head_w")
    nodes.append(helper.make_node("Conv", [x, w, const(np.zeros(rows), "head_b")], ["head"], kernel_shape=[1, 1]))
    cells = (imgsz // 8) ** 2
    inits.append(numpy_helper.from_array(np.array([1, rows, cells], dtype=np.int64), "shape"))
    nodes.append(helper.make_node("Reshape", ["head", "shape"], ["flat"]))
    # Standardize each row over the cells, so the score offset fixes the share of cells
    # that pass a 0.25 threshold (about 1 %: z > 2.3) whatever the weights.
    nodes.append(helper.make_node("InstanceNormalization", ["flat", const(np.ones(rows), "ones"), const(np.zeros(rows), "zeros")], ["z"], epsilon=1e-5))
    gain = np.ones((1, rows, 1), dtype=np.float32)
    offset = np.zeros((1, rows, 1), dtype=np.float32)
    gain[0, 4:, 0], offset[0, 4:, 0] = 2.0, -5.7
    nodes.append(helper.make_node("Mul", ["z", const(gain, "gain")], ["zg"]))
    nodes.append(helper.make_node("Add", ["zg", const(offset, "offset")], ["logits"]))
    nodes.append(helper.make_node("Sigmoid", ["logits"], ["unit"]))
    # Box rows into input pixels: centres anywhere, sizes up to a quarter of the input.
    scale = np.ones((1, rows, 1), dtype=np.float32)
    scale[0, :2, 0], scale[0, 2:4, 0] = imgsz, imgsz / 4
    nodes.append(helper.make_node("Mul", ["unit", const(scale, "scale")], ["output0"]))
    graph = helper.make_graph(
        nodes, f"synthetic_{size_letter}_{imgsz}",
        [helper.make_tensor_value_info("images", TensorProto.FLOAT, [1, 3, imgsz, imgsz])],
        [helper.make_tensor_value_info("output0", TensorProto.FLOAT, [1, rows, cells])],
        inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)], producer_name="orion-synthetic")
    model.ir_version = 8
    for key, value in {"names": str(dict(enumerate(NAMES))), "imgsz": f"[{imgsz}, {imgsz}]", "task": "detect"}.items():
        entry = model.metadata_props.add()
        entry.key, entry.value = key, value
    onnx.checker.check_model(model)
    return model


def main(argv):
    if len(argv) != 2:
        sys.exit(__doc__)
    out = argv[1]
    os.makedirs(out, exist_ok=True)
    for seed, letter in enumerate(COST):
        for imgsz in (640, 320):
            onnx.save(build(letter, imgsz, seed), os.path.join(out, f"yolo11{letter}_synthetic_{imgsz}.onnx"))
    print(f"wrote synthetic models n..x at 640 and 320 into {out}", file=sys.stderr)


if __name__ == "__main__":
    main(sys.argv)
