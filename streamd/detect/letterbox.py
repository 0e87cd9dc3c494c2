"""Letterboxing: resize keeping the aspect ratio and pad to the model's input size."""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

__all__ = ["Letterbox", "letterbox", "unletterbox"]

PAD_VALUE = 114


@dataclass(frozen=True, slots=True)
class Letterbox:
    """How a source image was placed on the model's canvas: ``input = source * scale + pad``."""

    scale: float
    pad_x: int
    pad_y: int


def letterbox(
    image: np.ndarray, size_hw: tuple[int, int], center: bool, out: np.ndarray | None = None
) -> tuple[np.ndarray, Letterbox]:
    """Resize ``image`` into an ``size_hw`` canvas, padded with 114.

    ``center`` places the image in the middle (Ultralytics); otherwise at the top-left
    corner (YOLOX). ``out``, when given, is reused as the canvas.
    """
    h, w = image.shape[:2]
    dst_h, dst_w = size_hw
    scale = min(dst_h / h, dst_w / w)
    new_w, new_h = min(dst_w, round(w * scale)), min(dst_h, round(h * scale))
    pad_x = (dst_w - new_w) // 2 if center else 0
    pad_y = (dst_h - new_h) // 2 if center else 0
    canvas = out if out is not None else np.empty((dst_h, dst_w, 3), np.uint8)
    canvas.fill(PAD_VALUE)
    target = canvas[pad_y : pad_y + new_h, pad_x : pad_x + new_w]
    if (new_w, new_h) == (w, h):
        target[...] = image
    else:
        cv2.resize(image, (new_w, new_h), dst=target, interpolation=cv2.INTER_LINEAR)
    return canvas, Letterbox(scale=scale, pad_x=pad_x, pad_y=pad_y)


def unletterbox(xyxy: np.ndarray, box: Letterbox, source_hw: tuple[int, int]) -> np.ndarray:
    """Map boxes from the model's canvas back to source pixels, clipped to the image."""
    out = xyxy.astype(np.float32, copy=True)
    xs, ys = out[:, 0::2], out[:, 1::2]  # views: x1, x2 and y1, y2
    xs -= box.pad_x
    ys -= box.pad_y
    out /= box.scale
    h, w = source_hw
    np.clip(xs, 0, w, out=xs)
    np.clip(ys, 0, h, out=ys)
    return out
