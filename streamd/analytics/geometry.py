"""Plane geometry in normalized picture coordinates (x and y from 0 to 1): pure functions.

Lines and zones are given normalized so that they survive a change of stream
resolution; every test here runs in those coordinates, so the same path at another
resolution gives the same answer.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

__all__ = [
    "ANCHORS",
    "Point",
    "Polygon",
    "anchor_points",
    "crossing",
    "distance_to_line",
    "inside_polygon",
    "polygon_self_intersects",
    "segments_intersect",
    "side",
]

Point = tuple[float, float]

# Where on a box the tested point is, as fractions of its width and height from the top-left.
ANCHORS: dict[str, tuple[float, float]] = {
    "bottom_center": (0.5, 1.0),
    "center": (0.5, 0.5),
    "top_center": (0.5, 0.0),
    "bottom_left": (0.0, 1.0),
    "bottom_right": (1.0, 1.0),
    "top_left": (0.0, 0.0),
    "top_right": (1.0, 0.0),
}


def anchor_points(xyxy: np.ndarray, anchor: str, width: int, height: int) -> np.ndarray:
    """The anchor of each box (source pixels, x1 y1 x2 y2) in normalized coordinates, shape (N, 2)."""
    fx, fy = ANCHORS[anchor]
    boxes = np.asarray(xyxy, dtype=np.float64).reshape(-1, 4)
    x = boxes[:, 0] + fx * (boxes[:, 2] - boxes[:, 0])
    y = boxes[:, 1] + fy * (boxes[:, 3] - boxes[:, 1])
    return np.stack((x / width, y / height), axis=1)


def side(a: Point, b: Point, p: Point) -> float:
    """``(Bx-Ax)*(Py-Ay) - (By-Ay)*(Px-Ax)``: negative on one side of A->B, positive on the other."""
    return (b[0] - a[0]) * (p[1] - a[1]) - (b[1] - a[1]) * (p[0] - a[0])


def distance_to_line(a: Point, b: Point, p: Point) -> float:
    """Distance from ``p`` to the infinite line through A and B."""
    return abs(side(a, b, p)) / math.hypot(b[0] - a[0], b[1] - a[1])


def crossing(a: Point, b: Point, p: Point, q: Point) -> float | None:
    """Where the path P->Q crosses the segment A-B, as a fraction of the path (0..1), or None.

    A path that only touches the line at P (it starts on it) does not cross; one that
    ends on it (at Q) does not cross yet: the next step decides. A path that passes
    beyond either end of the segment does not cross.
    """
    rx, ry = q[0] - p[0], q[1] - p[1]
    sx, sy = b[0] - a[0], b[1] - a[1]
    denom = rx * sy - ry * sx
    if denom == 0.0:  # parallel or collinear: no single crossing point
        return None
    apx, apy = a[0] - p[0], a[1] - p[1]
    t = (apx * sy - apy * sx) / denom  # along the path
    u = (apx * ry - apy * rx) / denom  # along the segment
    if 0.0 < t <= 1.0 and 0.0 <= u <= 1.0 and side(a, b, q) != 0.0:
        return t
    return None


def segments_intersect(p1: Point, p2: Point, p3: Point, p4: Point) -> bool:
    """Whether segments P1-P2 and P3-P4 share a point (touching counts)."""

    def orient(a: Point, b: Point, c: Point) -> int:
        value = side(a, b, c)
        return 0 if abs(value) < 1e-12 else (1 if value > 0 else -1)

    def on_segment(a: Point, b: Point, c: Point) -> bool:
        return min(a[0], b[0]) <= c[0] <= max(a[0], b[0]) and min(a[1], b[1]) <= c[1] <= max(a[1], b[1])

    o1, o2, o3, o4 = orient(p1, p2, p3), orient(p1, p2, p4), orient(p3, p4, p1), orient(p3, p4, p2)
    if o1 != o2 and o3 != o4:
        return True
    return (
        (o1 == 0 and on_segment(p1, p2, p3))
        or (o2 == 0 and on_segment(p1, p2, p4))
        or (o3 == 0 and on_segment(p3, p4, p1))
        or (o4 == 0 and on_segment(p3, p4, p2))
    )


def polygon_self_intersects(polygon: Sequence[Point]) -> bool:
    """Whether two edges of a closed polygon cross or touch, other than neighbours at their shared corner."""
    n = len(polygon)
    edges = [(polygon[i], polygon[(i + 1) % n]) for i in range(n)]
    for i in range(n):
        for j in range(i + 1, n):
            if j == i + 1 or (i == 0 and j == n - 1):  # neighbours share a corner by construction
                continue
            if segments_intersect(*edges[i], *edges[j]):
                return True
    return False


class Polygon:
    """A polygon whose edges are prepared once, for the many inside tests of a zone."""

    def __init__(self, corners: np.ndarray) -> None:
        self.corners = np.asarray(corners, dtype=np.float64)
        x1, y1 = self.corners[:, 0], self.corners[:, 1]
        x2, y2 = np.roll(x1, -1), np.roll(y1, -1)
        self._y1, self._y2, self._x1 = y1[None, :], y2[None, :], x1[None, :]
        with np.errstate(divide="ignore", invalid="ignore"):
            self._slope = ((x2 - x1) / (y2 - y1))[None, :]  # inf on horizontal edges, never straddled

    def contains(self, points: np.ndarray) -> np.ndarray:
        """Which of ``points`` (N, 2) lie inside, by the even-odd rule."""
        x, y = points[:, 0][:, None], points[:, 1][:, None]
        straddles = (self._y1 > y) != (self._y2 > y)
        with np.errstate(invalid="ignore"):
            hits = straddles & (x < self._x1 + (y - self._y1) * self._slope)
        return np.asarray(np.count_nonzero(hits, axis=1) % 2 == 1)


def inside_polygon(polygon: np.ndarray, points: np.ndarray) -> np.ndarray:
    """Which of ``points`` (N, 2) lie inside ``polygon`` (M, 2), by the even-odd rule."""
    return Polygon(polygon).contains(points)
