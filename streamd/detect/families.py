"""Model families: how each lays out its input and its raw output.

A family turns one image's raw output into candidate boxes (xyxy, in the model's
input pixels), scores and class ids, keeping only scores at or above a threshold.
These are pure functions of arrays.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from streamd.errors import ModelError

__all__ = ["FAMILIES", "Candidates", "Family", "anchor_count", "decode_ultralytics", "decode_yolox"]

STRIDES = (8, 16, 32)

Candidates = tuple[np.ndarray, np.ndarray, np.ndarray]  # xyxy (N,4) float32, scores (N,), class_ids (N,)


def anchor_count(input_hw: tuple[int, int]) -> int:
    """Anchor points of a stride-8/16/32 head for an input size."""
    h, w = input_hw
    return sum((h // s) * (w // s) for s in STRIDES)


@lru_cache(maxsize=8)
def _yolox_grid(input_hw: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    h, w = input_hw
    grids, strides = [], []
    for s in STRIDES:
        gy, gx = np.meshgrid(np.arange(h // s), np.arange(w // s), indexing="ij")
        grids.append(np.stack((gx, gy), axis=-1).reshape(-1, 2))
        strides.append(np.full((grids[-1].shape[0], 1), s))
    return np.concatenate(grids).astype(np.float32), np.concatenate(strides).astype(np.float32)


def _best_class(class_scores: np.ndarray, threshold: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    class_ids = class_scores.argmax(axis=1)
    scores = np.take_along_axis(class_scores, class_ids[:, None], axis=1)[:, 0]
    keep = np.flatnonzero(scores >= threshold)
    return keep, scores[keep], class_ids[keep]


def _cxcywh_to_xyxy(cxcy: np.ndarray, wh: np.ndarray) -> np.ndarray:
    half = wh / 2
    return np.concatenate((cxcy - half, cxcy + half), axis=1).astype(np.float32)


def decode_yolox(output: np.ndarray, input_hw: tuple[int, int], threshold: float) -> Candidates:
    """Raw YOLOX head, ``(anchors, 5 + classes)``: grid offsets, log sizes, objectness, class scores."""
    grid, stride = _yolox_grid(input_hw)
    if output.shape[0] != grid.shape[0]:
        raise ModelError(f"YOLOX output has {output.shape[0]} rows, expected {grid.shape[0]} for {input_hw}")
    # A score is objectness x class probability, never above the objectness: only the few
    # anchors whose objectness reaches the threshold need their 80 class scores looked at.
    candidates = np.flatnonzero(output[:, 4] >= threshold)
    rows = output[candidates]
    keep, scores, class_ids = _best_class(rows[:, 4:5] * rows[:, 5:], threshold)
    keep = candidates[keep]
    rows = output[keep]
    cxcy = (rows[:, 0:2] + grid[keep]) * stride[keep]
    wh = np.exp(rows[:, 2:4]) * stride[keep]
    return _cxcywh_to_xyxy(cxcy, wh), scores.astype(np.float32), class_ids.astype(np.int64)


def decode_ultralytics(output: np.ndarray, input_hw: tuple[int, int], threshold: float) -> Candidates:
    """Ultralytics YOLOv8/YOLO11 export, ``(4 + classes, anchors)``: cx, cy, w, h in input pixels, scores."""
    del input_hw  # boxes are already decoded
    # The best class score of every anchor along the contiguous axis, then only the few
    # anchors that reach the threshold are transposed.
    candidates = np.flatnonzero(output[4:].max(axis=0) >= threshold)
    rows = output[:, candidates].T
    keep, scores, class_ids = _best_class(rows[:, 4:], threshold)
    boxes = rows[keep]
    return (
        _cxcywh_to_xyxy(boxes[:, 0:2], boxes[:, 2:4]),
        scores.astype(np.float32),
        class_ids.astype(np.int64),
    )


@dataclass(frozen=True)
class Family:
    """Input conventions and output decoder of a model family."""

    name: str
    rgb: bool  # channel order the model expects
    scale: float  # multiplies 0..255 pixel values
    center: bool  # letterbox in the middle rather than the top-left corner
    decode: Callable[[np.ndarray, tuple[int, int], float], Candidates]
    classes_axis: int  # axis of the per-image output that holds box + class values

    def class_count(self, output_shape: tuple[int, ...], input_hw: tuple[int, int]) -> int:
        """Classes implied by a per-image output shape; ModelError when it does not fit."""
        if len(output_shape) != 2:
            raise ModelError(f"{self.name}: expected a 2-D output per image, got shape {list(output_shape)}")
        values = output_shape[self.classes_axis]
        anchors = output_shape[1 - self.classes_axis]
        offset = 5 if self.name == "yolox" else 4
        expected = anchor_count(input_hw)
        if isinstance(anchors, int) and anchors != expected:
            raise ModelError(
                f"{self.name}: output has {anchors} anchors, expected {expected} for input {list(input_hw)}"
                " (is this the right family?)"
            )
        if not isinstance(values, int) or values <= offset:
            raise ModelError(
                f"{self.name}: output has {values} values per anchor, expected {offset} + classes"
                " (is this the right family?)"
            )
        return values - offset


_ULTRALYTICS = Family(
    "yolov8", rgb=True, scale=1 / 255, center=True, decode=decode_ultralytics, classes_axis=0
)

FAMILIES: dict[str, Family] = {
    "yolox": Family("yolox", rgb=False, scale=1.0, center=False, decode=decode_yolox, classes_axis=1),
    "yolov8": _ULTRALYTICS,
    "yolo11": _ULTRALYTICS,
}
