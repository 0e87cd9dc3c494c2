"""Decoded pictures as numpy arrays: BGR for people and tools, planar 4:2:0 for the detector."""

from __future__ import annotations

import av
import cv2
import numpy as np
from av.video.plane import VideoPlane

__all__ = ["i420", "plane_bytes", "to_bgr", "yuv420_planes"]

_I420_FORMATS = ("yuv420p", "yuvj420p")


def i420(picture: av.VideoFrame) -> np.ndarray | None:
    """The picture's planes as one ``(h * 3/2, w)`` array, or None when it is not 4:2:0 of even size."""
    if picture.format.name not in _I420_FORMATS or picture.width % 2 or picture.height % 2:
        return None
    planes: np.ndarray = picture.to_ndarray(format=picture.format.name)
    return planes


def yuv420_planes(picture: av.VideoFrame) -> tuple[np.ndarray, np.ndarray, np.ndarray] | None:
    """The Y, U and V planes of a 4:2:0 picture of even size as views of its buffers, or None.

    Not copied (``i420`` copies the camera's whole picture into one array): rows keep
    the decoder's stride, which OpenCV reads as it is.
    """
    if picture.format.name not in _I420_FORMATS or picture.width % 2 or picture.height % 2:
        return None
    sizes = ((picture.height, picture.width), *((picture.height // 2, picture.width // 2),) * 2)
    y, u, v = (_rows(plane)[:h, :w] for plane, (h, w) in zip(picture.planes, sizes, strict=True))
    return y, u, v


def plane_bytes(plane: VideoPlane) -> tuple[np.ndarray, int]:
    """A plane's bytes as the decoder wrote them (rows padded to the line size), not copied,
    and its line size."""
    return np.frombuffer(memoryview(plane), np.uint8), plane.line_size


def _rows(plane: VideoPlane) -> np.ndarray:
    flat, line = plane_bytes(plane)
    return flat[: plane.height * line].reshape(plane.height, line)


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
