"""Letterbox, output decoders and NMS against hand-computed values."""

from __future__ import annotations

import math

import av
import cv2
import numpy as np
import pytest

from streamd.detect.detector import fitted_hw
from streamd.detect.families import FAMILIES, anchor_count, decode_ultralytics, decode_yolox
from streamd.detect.letterbox import (
    Letterbox,
    input_tensor,
    letterbox,
    letterbox_yuv420,
    unletterbox,
)
from streamd.detect.nms import batched_nms, nms
from streamd.errors import ModelError
from streamd.picture import i420, yuv420_planes


def test_letterbox_top_left_scales_and_pads_with_114():
    image = np.full((100, 200, 3), 7, np.uint8)
    canvas, box = letterbox(image, (100, 100), center=False)
    assert box == Letterbox(scale=0.5, pad_x=0, pad_y=0)
    assert canvas.shape == (100, 100, 3)
    assert (canvas[:50] == 7).all()
    assert (canvas[50:] == 114).all()


def test_letterbox_centered_splits_the_padding():
    image = np.full((100, 200, 3), 7, np.uint8)
    canvas, box = letterbox(image, (100, 100), center=True)
    assert box == Letterbox(scale=0.5, pad_x=0, pad_y=25)
    assert (canvas[:25] == 114).all()
    assert (canvas[25:75] == 7).all()
    assert (canvas[75:] == 114).all()


def test_letterbox_reuses_the_given_canvas():
    out = np.zeros((64, 64, 3), np.uint8)
    canvas, _ = letterbox(np.zeros((32, 32, 3), np.uint8), (64, 64), center=False, out=out)
    assert canvas is out


def test_unletterbox_maps_back_to_source_pixels_and_clips():
    boxes = np.array([[10, 35, 50, 65], [-5, 20, 120, 30]], np.float32)
    back = unletterbox(boxes, Letterbox(scale=0.5, pad_x=0, pad_y=25), source_hw=(100, 200))
    np.testing.assert_allclose(back, [[20, 20, 100, 80], [0, 0, 200, 10]])


def test_anchor_count_of_strides_8_16_32():
    assert anchor_count((416, 416)) == 3549
    assert anchor_count((32, 32)) == 16 + 4 + 1


def test_decode_yolox_applies_grid_stride_exp_and_objectness():
    out = np.zeros((21, 7), np.float32)
    out[0] = [0.5, 0.5, math.log(2), math.log(2), 0.9, 0.1, 0.5]  # stride 8, cell (0, 0)
    out[17] = [0.0, 0.0, 0.0, 0.0, 0.8, 0.9, 0.2]  # stride 16, cell (gx=1, gy=0)
    boxes, scores, class_ids = decode_yolox(out, (32, 32), threshold=0.3)
    order = np.argsort(-scores)
    np.testing.assert_allclose(boxes[order], [[8, -8, 24, 8], [-4, -4, 12, 12]], atol=1e-5)
    np.testing.assert_allclose(scores[order], [0.72, 0.45], atol=1e-6)
    assert class_ids[order].tolist() == [0, 1]


def test_decode_yolox_drops_scores_below_threshold():
    out = np.zeros((21, 7), np.float32)
    out[3, 4:] = [0.5, 0.5, 0.5]  # score 0.25
    assert len(decode_yolox(out, (32, 32), threshold=0.3)[0]) == 0
    assert len(decode_yolox(out, (32, 32), threshold=0.2)[0]) == 1


def test_decode_ultralytics_reads_cxcywh_and_best_class():
    out = np.zeros((6, 21), np.float32)
    out[:, 3] = [10, 20, 4, 6, 0.1, 0.7]
    boxes, scores, class_ids = decode_ultralytics(out, (32, 32), threshold=0.25)
    np.testing.assert_allclose(boxes, [[8, 17, 12, 23]])
    np.testing.assert_allclose(scores, [0.7])
    assert class_ids.tolist() == [1]


def test_family_rejects_an_output_that_does_not_fit():
    with pytest.raises(ModelError, match="anchors"):
        FAMILIES["yolox"].class_count((100, 85), (416, 416))
    with pytest.raises(ModelError, match="values per anchor"):
        FAMILIES["yolov8"].class_count((4, 3549), (416, 416))
    assert FAMILIES["yolov8"].class_count((84, 3549), (416, 416)) == 80
    assert FAMILIES["yolox"].class_count((3549, 85), (416, 416)) == 80


def test_nms_drops_the_lower_scored_overlapping_box():
    boxes = np.array([[0, 0, 10, 10], [1, 1, 11, 11], [20, 20, 30, 30]], np.float32)
    scores = np.array([0.8, 0.9, 0.7], np.float32)
    # IoU of the first two = 81 / 119 = 0.68
    assert nms(boxes, scores, iou_threshold=0.5).tolist() == [1, 2]
    assert nms(boxes, scores, iou_threshold=0.7).tolist() == [1, 0, 2]


def test_batched_nms_never_suppresses_across_classes():
    boxes = np.array([[0, 0, 10, 10], [1, 1, 11, 11], [0, 0, 10, 10]], np.float32)
    scores = np.array([0.9, 0.8, 0.6], np.float32)
    class_ids = np.array([0, 0, 1])
    assert batched_nms(boxes, scores, class_ids, 0.5).tolist() == [0, 2]
    assert batched_nms(boxes, scores, class_ids, 0.5, max_keep=1).tolist() == [0]
    assert batched_nms(np.empty((0, 4), np.float32), np.empty(0), np.empty(0), 0.5).tolist() == []


def _planes(packed: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Y, U and V of a packed I420 array (h * 3/2 rows), as views."""
    h, w = packed.shape[0] * 2 // 3, packed.shape[1]
    chroma = packed[h:].reshape(2, h // 2, w // 2)
    return packed[:h], chroma[0], chroma[1]


def test_letterbox_yuv420_matches_converting_first_within_chroma_rounding():
    rng = np.random.default_rng(0)
    bgr = cv2.GaussianBlur(rng.integers(0, 255, (96, 128, 3), dtype=np.uint8), (9, 9), 3)
    planes = cv2.cvtColor(bgr, cv2.COLOR_BGR2YUV_I420)
    expected, box_a = letterbox(cv2.cvtColor(planes, cv2.COLOR_YUV2BGR_I420), (64, 64), center=True)
    got, box_b = letterbox_yuv420(_planes(planes), (64, 64), center=True)
    assert box_a == box_b == Letterbox(scale=0.5, pad_x=0, pad_y=8)
    assert (got[:8] == 114).all()
    assert (got[56:] == 114).all()
    assert np.abs(got.astype(int) - expected.astype(int)).mean() < 3


def _reference_nms(boxes: np.ndarray, scores: np.ndarray, classes: np.ndarray, iou: float) -> set[int]:
    """Greedy class-aware NMS, written plainly: the definition the fast one must keep to."""
    kept: list[int] = []
    for i in np.argsort(-scores, kind="stable"):
        overlaps = False
        for j in kept:
            if classes[i] != classes[j]:
                continue
            lt, rb = np.maximum(boxes[i, :2], boxes[j, :2]), np.minimum(boxes[i, 2:], boxes[j, 2:])
            inter = float(np.prod(np.clip(rb - lt, 0, None)))
            union = float(np.prod(boxes[i, 2:] - boxes[i, :2]) + np.prod(boxes[j, 2:] - boxes[j, :2])) - inter
            overlaps = overlaps or inter / union > iou
        if not overlaps:
            kept.append(int(i))
    return set(kept)


def test_batched_nms_keeps_what_plain_greedy_nms_keeps_on_random_boxes():
    rng = np.random.default_rng(7)
    for _ in range(300):
        n = int(rng.integers(0, 40))
        corner = rng.uniform(0, 600, (n, 2))
        boxes = np.column_stack((corner, corner + rng.uniform(5, 150, (n, 2)))).astype(np.float32)
        scores = rng.uniform(0.25, 1.0, n).astype(np.float32)
        classes = rng.integers(0, 3, n)
        keep = batched_nms(boxes, scores, classes, 0.45)
        assert set(keep.tolist()) == _reference_nms(boxes, scores, classes, 0.45)
        assert np.all(np.diff(scores[keep]) <= 0)  # highest score first


def test_letterbox_of_padded_plane_views_equals_the_packed_picture():
    """The detector reads the decoder's planes in place: rows padded to the line size must not matter."""
    rng = np.random.default_rng(1)
    planes = rng.integers(0, 255, (144, 128), dtype=np.uint8)  # i420 of a 96x128 picture
    packed, box_a = letterbox_yuv420(_planes(planes), (64, 64), center=False)
    y = np.zeros((96, 160), np.uint8)  # line size 160, as a decoder aligns rows
    u, v = np.zeros((48, 96), np.uint8), np.zeros((48, 96), np.uint8)
    y[:, :128] = planes[:96]
    u[:, :64] = planes[96:120].reshape(48, 64)
    v[:, :64] = planes[120:].reshape(48, 64)
    padded, box_b = letterbox_yuv420((y[:, :128], u[:, :64], v[:, :64]), (64, 64), center=False)
    assert box_a == box_b
    assert np.array_equal(packed, padded)


def test_the_decoders_planes_are_read_in_place_as_the_packed_picture():
    rng = np.random.default_rng(2)
    bgr = rng.integers(0, 255, (60, 100, 3), dtype=np.uint8)  # 100 px rows: padded by the decoder
    picture = av.VideoFrame.from_ndarray(bgr, format="bgr24").reformat(format="yuv420p")
    assert picture.planes[0].line_size != 100
    y, u, v = yuv420_planes(picture)
    packed = i420(picture)
    assert np.array_equal(y, packed[:60])
    assert np.array_equal(u.reshape(-1), packed[60:75].reshape(-1))
    assert np.array_equal(v.reshape(-1), packed[75:].reshape(-1))
    assert yuv420_planes(picture.reformat(format="nv12")) is None


@pytest.mark.parametrize(("rgb", "scale"), [(False, 1.0), (True, 1 / 255)])
def test_input_tensor_is_what_opencv_blob_from_images_makes(rgb, scale):
    rng = np.random.default_rng(4)
    canvases = [rng.integers(0, 255, (48, 64, 3), dtype=np.uint8) for _ in range(2)]
    expected = cv2.dnn.blobFromImages(canvases, scalefactor=scale, swapRB=rgb, crop=False)
    got = input_tensor(canvases, rgb=rgb, scale=scale)
    assert got.shape == expected.shape == (2, 3, 48, 64) and got.dtype == np.float32
    assert np.allclose(got, expected, rtol=1e-6, atol=1e-7)


def test_fitted_input_keeps_the_picture_shape_in_multiples_of_32():
    assert fitted_hw((576, 768), (416, 416)) == (320, 416)  # 4:3, the shared video
    assert fitted_hw((1080, 1920), (416, 416)) == (256, 416)  # 16:9
    assert fitted_hw((1920, 1080), (416, 416)) == (416, 256)  # portrait
    assert fitted_hw((480, 480), (416, 416)) == (416, 416)
    assert fitted_hw((1080, 1920), (640, 640)) == (384, 640)
