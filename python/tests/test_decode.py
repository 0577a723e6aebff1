import numpy as np
import pytest

from orion_worker.decode import decode, nms


def output(boxes_scores, nc=3):
    """Builds [1, 4+nc, N] from (cx, cy, w, h, {class: score})."""
    out = np.zeros((1, 4 + nc, len(boxes_scores)), dtype=np.float32)
    for i, (cx, cy, w, h, scores) in enumerate(boxes_scores):
        out[0, :4, i] = cx, cy, w, h
        for c, s in scores.items():
            out[0, 4 + c, i] = s
    return out


def test_decode_converts_centre_boxes_and_filters_by_class_and_confidence():
    out = output([
        (100, 100, 20, 40, {0: 0.9}),
        (300, 300, 10, 10, {1: 0.95}),  # not a person class
        (500, 500, 10, 10, {0: 0.1}),   # below confidence
    ])
    boxes, scores, classes = decode(out, [0], 0.25, 0.45, 100)
    assert boxes.tolist() == [[90, 80, 110, 120]]
    assert scores.tolist() == pytest.approx([0.9])
    assert classes.tolist() == [0]


def test_nc_comes_from_the_shape():
    out = output([(50, 50, 10, 10, {5: 0.8})], nc=7)
    boxes, _, classes = decode(out, [5], 0.25, 0.45, 100)
    assert len(boxes) == 1 and classes.tolist() == [5]
    with pytest.raises(ValueError, match="outside the model's 7 classes"):
        decode(out, [7], 0.25, 0.45, 100)


def test_several_person_classes_share_one_nms():
    # "Normal" and "Fall" boxes on the same person: one survives, the stronger.
    out = output([(100, 100, 50, 100, {0: 0.6}), (102, 101, 50, 100, {1: 0.8})], nc=2)
    boxes, scores, classes = decode(out, [0, 1], 0.25, 0.45, 100)
    assert classes.tolist() == [1] and scores.tolist() == pytest.approx([0.8])


def test_nms_keeps_separate_boxes_and_drops_overlaps():
    boxes = np.array([[0, 0, 10, 10], [1, 1, 11, 11], [20, 20, 30, 30], [0, 0, 10, 10.5]], dtype=np.float32)
    scores = np.array([0.9, 0.8, 0.7, 0.6], dtype=np.float32)
    assert nms(boxes, scores, 0.45).tolist() == [0, 2]
    assert nms(boxes, scores, 0.99).tolist() == [0, 1, 2, 3]
    assert nms(np.zeros((0, 4), np.float32), np.zeros(0, np.float32), 0.5).tolist() == []


def test_max_det_caps_the_result_and_keeps_the_best():
    out = output([(i * 20 + 10, 10, 5, 5, {0: 0.3 + i * 0.001}) for i in range(200)])
    boxes, scores, _ = decode(out, [0], 0.25, 0.45, 100)
    assert len(boxes) == 100
    assert scores[0] == pytest.approx(0.3 + 199 * 0.001)
    assert np.all(np.diff(scores) <= 0)


def test_bad_output_shapes_are_errors_not_crashes():
    with pytest.raises(ValueError, match=r"\[1, 4\+nc, N\]"):
        decode(np.zeros((1, 3, 10), np.float32), [0], 0.25, 0.45, 100)
