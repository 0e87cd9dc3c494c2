"""Colour signatures of detected boxes, read from the decoded YUV picture as it is.

A signature is two small joint histograms of (Y, U, V), one of the upper middle of a box
(a person's torso) and one of its lower middle (the legs), sampled on a ``_GRID`` x
``_GRID`` grid for all boxes at once: about 35 µs a box, and no colour conversion of the
picture.
Rows are the square roots of the normalized histograms, so the Bhattacharyya coefficient
of two signatures is their dot product divided by the number of regions.
"""

from __future__ import annotations

from typing import NamedTuple

import av
import numpy as np

from streamd.picture import plane_bytes

__all__ = ["LENGTH", "REGIONS", "signatures", "similarity"]

# Parts of a box, as fractions (x0, y0, x1, y1) of its width and height.
REGIONS = ((0.25, 0.12, 0.75, 0.5), (0.3, 0.55, 0.7, 0.92))
_Y_BINS, _C_BINS = 4, 6
_BINS = _Y_BINS * _C_BINS * _C_BINS
_GRID = 16
LENGTH = len(REGIONS) * _BINS  # of a signature
_MIN_SIDE = 4  # pixels: a region smaller than this has no signature (a row of zeros)
_PARTS = np.asarray(REGIONS)
_STEPS = np.linspace(0.0, 1.0, _GRID)
# A sample's bin, (y * C + u) * C + v, as the sum of three lookups by its Y, U and V.
_LEVELS = np.arange(256)
_Y_LUT = (_LEVELS * _Y_BINS >> 8) * _C_BINS * _C_BINS
_U_LUT = (_LEVELS * _C_BINS >> 8) * _C_BINS
_V_LUT = _LEVELS * _C_BINS >> 8


def signatures(picture: av.VideoFrame, xyxy: np.ndarray) -> np.ndarray | None:
    """One row per box; None when the picture's format is not one read here (planar YUV 4:2:0, NV12)."""
    planes = _planes(picture)
    if planes is None:
        return None
    boxes = np.asarray(xyxy, np.float64).reshape(-1, 4)
    x, y = boxes[:, :1], boxes[:, 1:2]
    w, h = boxes[:, 2:3] - x, boxes[:, 3:] - y
    x0 = np.clip(x + _PARTS[:, 0] * w, 0, picture.width - 1)  # (boxes, regions)
    x1 = np.clip(x + _PARTS[:, 2] * w, 0, picture.width - 1)
    y0 = np.clip(y + _PARTS[:, 1] * h, 0, picture.height - 1)
    y1 = np.clip(y + _PARTS[:, 3] * h, 0, picture.height - 1)
    xs = (x0[..., None] + (x1 - x0)[..., None] * _STEPS).astype(np.intp)[..., None, :]  # (b, r, 1, grid)
    ys = (y0[..., None] + (y1 - y0)[..., None] * _STEPS).astype(np.intp)[..., :, None]  # (b, r, grid, 1)
    at_chroma = (ys >> 1) * planes.chroma_line + (xs >> 1) * planes.chroma_step
    index = _Y_LUT.take(planes.luma.take(ys * planes.luma_line + xs))
    index += _U_LUT.take(planes.cb.take(at_chroma))
    index += _V_LUT.take(planes.cr.take(at_chroma))
    cells = x0.size
    index = index.reshape(cells, -1)
    index += np.arange(0, cells * _BINS, _BINS, dtype=index.dtype)[:, None]
    hist = np.bincount(index.ravel(), minlength=cells * _BINS).reshape(cells, _BINS)
    rows: np.ndarray = np.sqrt(hist.astype(np.float32) * np.float32(1.0 / (_GRID * _GRID)))
    small = ((x1 - x0) < _MIN_SIDE) | ((y1 - y0) < _MIN_SIDE)
    rows[small.ravel()] = 0.0
    return rows.reshape(len(boxes), LENGTH)


def similarity(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Bhattacharyya coefficients (0..1) of every row of ``a`` with every row of ``b``."""
    return np.asarray(a @ b.T / len(REGIONS))


class _Planes(NamedTuple):
    """A picture's samples as flat arrays: Y, and U and V with their steps within a row."""

    luma: np.ndarray
    luma_line: int
    cb: np.ndarray
    cr: np.ndarray
    chroma_line: int
    chroma_step: int  # 1 planar, 2 interleaved (NV12)


def _planes(picture: av.VideoFrame) -> _Planes | None:
    name = picture.format.name
    if name in ("yuv420p", "yuvj420p"):
        (luma, line), (cb, chroma_line), (cr, _) = (plane_bytes(plane) for plane in picture.planes)
        return _Planes(luma, line, cb, cr, chroma_line, 1)
    if name == "nv12":  # chroma interleaved: U V U V ...
        (luma, line), (chroma, chroma_line) = (plane_bytes(plane) for plane in picture.planes)
        return _Planes(luma, line, chroma, chroma[1:], chroma_line, 2)
    return None
