"""Drawing a camera's newest result: boxes with class, track id and confidence, trails, lines, zones.

Pure functions of a picture and what is known about it, so that they are tested as
such. The picture is scaled and turned to BGR by FFmpeg in one step (``reformat``),
which costs a fraction of converting at full size and then scaling.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import av
import cv2
import numpy as np

from streamd.types import FrameResult

__all__ = ["Scene", "draw", "encode_jpeg", "picture_at"]

_FONT = cv2.FONT_HERSHEY_SIMPLEX
_LINE_COLOUR = (0, 200, 255)  # amber
_ZONE_COLOUR = (255, 160, 0)  # blue
# Colours for tracks, by id: distinct, bright on grey streets and green grass.
_PALETTE = [(80, 220, 60), (255, 120, 40), (60, 60, 255), (200, 60, 220), (40, 200, 230), (255, 200, 60),
            (150, 255, 150), (0, 140, 255)]  # fmt: skip


@dataclass(frozen=True)
class Scene:
    """What to draw besides the boxes: lines and zones with their numbers, and each track's trail."""

    lines: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)  # name -> points, in, out
    zones: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)  # name -> polygon, occupancy
    trails: Mapping[int, Sequence[tuple[float, float]]] = field(default_factory=dict)  # normalized centres


def picture_at(picture: av.VideoFrame, max_width: int) -> np.ndarray:
    """The picture as BGR pixels, scaled down to ``max_width`` (never up)."""
    width, height = picture.width, picture.height
    if width > max_width:
        width, height = max_width, max(2, round(height * max_width / width))
    bgr: np.ndarray = picture.reformat(width=width, height=height, format="bgr24").to_ndarray()
    return bgr


def _label(
    image: np.ndarray, text: str, at: tuple[int, int], colour: tuple[int, int, int], scale: float
) -> None:
    x, y = at
    (w, h), base = cv2.getTextSize(text, _FONT, scale, 1)
    y = max(h + base, y)
    cv2.rectangle(image, (x, y - h - base), (x + w + 2, y), colour, cv2.FILLED)
    cv2.putText(image, text, (x + 1, y - base), _FONT, scale, (0, 0, 0), 1, cv2.LINE_AA)


def draw(image: np.ndarray, result: FrameResult, scene: Scene) -> np.ndarray:
    """Annotate ``image`` (the result's picture, at any scale) in place and return it."""
    h, w = image.shape[:2]
    sx, sy = w / result.width, h / result.height
    scale = max(0.35, min(0.6, w / 1600))
    thick = 1 if w < 800 else 2
    polygons = {name: np.array([[x * w, y * h] for x, y in zone["polygon"]], np.int32)
                for name, zone in scene.zones.items()}  # fmt: skip
    if polygons:  # zones are tinted: filled on a copy, blended back
        overlay = image.copy()
        cv2.fillPoly(overlay, list(polygons.values()), _ZONE_COLOUR)
        cv2.addWeighted(overlay, 0.25, image, 0.75, 0, dst=image)
    for name, corners in polygons.items():
        cv2.polylines(image, [corners], True, _ZONE_COLOUR, thick, cv2.LINE_AA)
        top = corners[np.argmin(corners[:, 1])]
        occupancy = scene.zones[name].get("occupancy", 0)
        _label(image, f"{name}: {occupancy}", (int(top[0]), int(top[1]) - 2), _ZONE_COLOUR, scale)
    for name, line in scene.lines.items():
        (ax, ay), (bx, by) = line["points"]
        a, b = (round(ax * w), round(ay * h)), (round(bx * w), round(by * h))
        cv2.line(image, a, b, _LINE_COLOUR, thick + 1, cv2.LINE_AA)
        # An arrow towards the "in" side: side(A + n) = |AB|^2 > 0 for n = (-(By-Ay), Bx-Ax).
        mid = ((a[0] + b[0]) // 2, (a[1] + b[1]) // 2)
        nx, ny = -(b[1] - a[1]), b[0] - a[0]
        norm = max(1.0, float(np.hypot(nx, ny)))
        tip = (round(mid[0] + 18 * nx / norm), round(mid[1] + 18 * ny / norm))
        cv2.arrowedLine(image, mid, tip, _LINE_COLOUR, thick, cv2.LINE_AA, tipLength=0.4)
        totals = f"{name}: in {line.get('in', 0)} out {line.get('out', 0)}"
        _label(image, totals, (a[0] + 3, a[1] - 3), _LINE_COLOUR, scale)
    for track_id, trail in scene.trails.items():
        if len(trail) > 1:
            points = np.array([[x * w, y * h] for x, y in trail], np.int32)
            cv2.polylines(image, [points], False, _PALETTE[track_id % len(_PALETTE)], thick, cv2.LINE_AA)
    det = result.detections
    ids = det.tracker_id if det.tracker_id is not None else [None] * len(det)
    names = det.data.get("class_name", [None] * len(det))
    confidences = det.confidence if det.confidence is not None else [None] * len(det)
    for box, track_id, name, confidence in zip(det.xyxy, ids, names, confidences, strict=True):
        colour = _PALETTE[int(track_id) % len(_PALETTE)] if track_id is not None else _PALETTE[0]
        x1, y1, x2, y2 = round(box[0] * sx), round(box[1] * sy), round(box[2] * sx), round(box[3] * sy)
        cv2.rectangle(image, (x1, y1), (x2, y2), colour, thick, cv2.LINE_AA)
        text = f"{name}" + (f" #{track_id}" if track_id is not None else "")
        if confidence is not None:
            text += f" {float(confidence):.2f}"
        _label(image, text, (x1, y1 - 2), colour, scale)
    return image


def encode_jpeg(image: np.ndarray, quality: int) -> bytes:
    """A JPEG of ``image``."""
    ok, data = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, quality])
    if not ok:
        raise ValueError("the JPEG encoder refused the picture")
    return data.tobytes()
