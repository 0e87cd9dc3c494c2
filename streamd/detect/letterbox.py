"""Letterboxing: resize keeping the aspect ratio and pad to the model's input size."""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

__all__ = ["Letterbox", "input_tensor", "letterbox", "letterbox_yuv420", "unletterbox"]

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
    scale, new_w, new_h, pad_x, pad_y = _placement(h, w, size_hw, center, even=False)
    canvas = out if out is not None else np.empty((dst_h, dst_w, 3), np.uint8)
    canvas.fill(PAD_VALUE)
    target = canvas[pad_y : pad_y + new_h, pad_x : pad_x + new_w]
    if (new_w, new_h) == (w, h):
        target[...] = image
    else:
        cv2.resize(image, (new_w, new_h), dst=target, interpolation=cv2.INTER_LINEAR)
    return canvas, Letterbox(scale=scale, pad_x=pad_x, pad_y=pad_y)


def _placement(
    h: int, w: int, size_hw: tuple[int, int], center: bool, even: bool
) -> tuple[float, int, int, int, int]:
    dst_h, dst_w = size_hw
    scale = min(dst_h / h, dst_w / w)
    new_w, new_h = min(dst_w, round(w * scale)), min(dst_h, round(h * scale))
    if even:  # 4:2:0 chroma planes need even sizes
        new_w, new_h = max(2, new_w - new_w % 2), max(2, new_h - new_h % 2)
    pad_x = (dst_w - new_w) // 2 if center else 0
    pad_y = (dst_h - new_h) // 2 if center else 0
    return scale, new_w, new_h, pad_x, pad_y


def letterbox_yuv420(
    planes: tuple[np.ndarray, np.ndarray, np.ndarray],
    size_hw: tuple[int, int],
    center: bool,
    out: np.ndarray | None = None,
) -> tuple[np.ndarray, Letterbox]:
    """``letterbox`` of a 4:2:0 picture given as its Y, U and V planes, resized before colour conversion.

    The planes may be views of the decoder's buffers (rows padded): nothing is copied
    at the camera's size. Converting the small picture instead of the camera's full one
    costs a fraction: for 1080p into 416x416 about 12x fewer pixels go through the
    YUV->BGR step.
    """
    y, u, v = planes
    h, w = y.shape
    scale, new_w, new_h, pad_x, pad_y = _placement(h, w, size_hw, center, even=True)
    small = np.empty(new_h * new_w * 3 // 2, np.uint8)
    y_size, c_size = new_h * new_w, (new_h // 2) * (new_w // 2)
    cv2.resize(y, (new_w, new_h), dst=small[:y_size].reshape(new_h, new_w), interpolation=cv2.INTER_LINEAR)
    for i, plane in enumerate((u, v)):
        start = y_size + i * c_size
        target = small[start : start + c_size].reshape(new_h // 2, new_w // 2)
        cv2.resize(plane, (new_w // 2, new_h // 2), dst=target, interpolation=cv2.INTER_LINEAR)
    dst_h, dst_w = size_hw
    canvas = out if out is not None else np.empty((dst_h, dst_w, 3), np.uint8)
    canvas.fill(PAD_VALUE)
    target = canvas[pad_y : pad_y + new_h, pad_x : pad_x + new_w]
    cv2.cvtColor(small.reshape(new_h * 3 // 2, new_w), cv2.COLOR_YUV2BGR_I420, dst=target)
    return canvas, Letterbox(scale=scale, pad_x=pad_x, pad_y=pad_y)


def input_tensor(canvases: list[np.ndarray], rgb: bool, scale: float) -> np.ndarray:
    """The NCHW float32 batch of BGR canvases (channels swapped to RGB when ``rgb``, times ``scale``).

    What ``cv2.dnn.blobFromImages`` makes, split plane by plane instead: 0.16 against
    0.44 ms for a 416x416 canvas.
    """
    h, w = canvases[0].shape[:2]
    blob = np.empty((len(canvases), 3, h, w), np.float32)
    order = (2, 1, 0) if rgb else (0, 1, 2)
    factor = np.float32(scale)
    for image, canvas in zip(blob, canvases, strict=True):
        planes = cv2.split(canvas)
        for channel, plane in zip(image, order, strict=True):
            if factor == 1:
                channel[...] = planes[plane]
            else:
                np.multiply(planes[plane], factor, out=channel)
    return blob


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
