"""Decoded pictures as numpy arrays: BGR for people and tools, planar 4:2:0 for the detector."""

from __future__ import annotations

import av
import cv2
import numpy as np

__all__ = ["i420", "to_bgr"]

_I420_FORMATS = ("yuv420p", "yuvj420p")


def i420(picture: av.VideoFrame) -> np.ndarray | None:
    """The picture's planes as one ``(h * 3/2, w)`` array, or None when it is not 4:2:0 of even size."""
    if picture.format.name not in _I420_FORMATS or picture.width % 2 or picture.height % 2:
        return None
    planes: np.ndarray = picture.to_ndarray(format=picture.format.name)
    return planes


def to_bgr(picture: av.VideoFrame) -> np.ndarray:
    """BGR pixels of a decoded picture.

    For 4:2:0 pictures OpenCV's I420 conversion is 1.5-1.8x faster than FFmpeg's
    ``to_ndarray(format="bgr24")``; other pixel formats go through FFmpeg.
    """
    planes = i420(picture)
    if planes is not None:
        return cv2.cvtColor(planes, cv2.COLOR_YUV2BGR_I420)
    bgr: np.ndarray = picture.to_ndarray(format="bgr24")
    return bgr
