"""A camera's lines, zones, events and snapshots (keys ``lines``, ``zones``, ``analytics``, ``snapshots``).

Coordinates are normalized to the picture: x from 0 at the left to 1 at the right, y from
0 at the top to 1 at the bottom. Durations are seconds of capture time, never frames.
The defaults are measured on the shared pedestrian video; docs/events.md says how.
"""

from __future__ import annotations

import math
import re
from typing import Annotated, Literal

from pydantic import Field, field_validator, model_validator

from streamd.analytics.geometry import ANCHORS, polygon_self_intersects
from streamd.config.base import Strict

__all__ = ["EVENT_TYPES", "AnalyticsConfig", "LineConfig", "SnapshotConfig", "ZoneConfig"]

Coordinate = Annotated[float, Field(ge=0, le=1, allow_inf_nan=False)]
NormPoint = tuple[Coordinate, Coordinate]
Anchor = Literal[
    "bottom_center", "center", "top_center", "bottom_left", "bottom_right", "top_left", "top_right"
]
Seconds = Annotated[float, Field(ge=0, allow_inf_nan=False)]

EVENT_TYPES = (
    "line.cross",
    "line.reset",
    "zone.enter",
    "zone.exit",
    "zone.loiter",
    "track.start",
    "track.end",
)
EventType = Literal[
    "line.cross", "line.reset", "zone.enter", "zone.exit", "zone.loiter", "track.start", "track.end"
]

assert set(ANCHORS) == set(Anchor.__args__)  # type: ignore[attr-defined]  # one list of anchors

# A line shorter than this (a thousandth of the picture) has no direction worth trusting.
_MIN_LINE_LENGTH = 1e-3


class LineConfig(Strict):
    """A counting line from A to B: crossing from the negative to the positive side is ``in``."""

    points: tuple[NormPoint, NormPoint] = Field(description="[[xA, yA], [xB, yB]], normalized 0..1")
    classes: list[str | int] | None = Field(
        None, description="class names or ids counted; default: the camera's"
    )
    anchor: Anchor = Field(
        "bottom_center", description="point of each box that is tested (feet seen from above)"
    )
    min_hold_s: Seconds = Field(
        0.3, description="a crossing counts once the object has stayed on the new side this long"
    )
    min_distance: Annotated[float, Field(ge=0, le=1)] = Field(
        0.02,
        description="...and has been at least this far beyond it (normalized): jitter on it counts nothing",
    )
    count: Literal["once", "every"] = Field(
        "once", description="once: each track counts at most once per direction; every: every crossing counts"
    )
    reset: Literal["never", "hourly", "daily"] = Field(
        "never", description="when the totals start again from 0 (also when the points change)"
    )
    reset_at: str = Field("00:00", description="local time of a daily reset (HH:MM); its minutes for hourly")

    @model_validator(mode="after")
    def _not_degenerate(self) -> LineConfig:
        (ax, ay), (bx, by) = self.points
        if math.hypot(bx - ax, by - ay) < _MIN_LINE_LENGTH:
            raise ValueError("points: A and B are the same point; a line needs two distinct points")
        return self

    @field_validator("reset_at")
    @classmethod
    def _clock(cls, value: str) -> str:
        match = re.fullmatch(r"(\d{1,2}):(\d{2})", value)
        if not match or int(match.group(1)) > 23 or int(match.group(2)) > 59:
            raise ValueError("expected a local time HH:MM, e.g. 00:00 or 06:30")
        return value


class ZoneConfig(Strict):
    """A zone: a polygon, entered after ``enter_s`` inside and left after ``exit_s`` outside."""

    polygon: list[NormPoint] = Field(min_length=3, description="3 or more [x, y] corners, normalized 0..1")
    classes: list[str | int] | None = Field(
        None, description="class names or ids watched; default: the camera's"
    )
    anchor: Anchor = Field("bottom_center", description="point of each box that is tested")
    enter_s: Seconds = Field(0.5, description="inside this long before zone.enter")
    exit_s: Seconds = Field(1.0, description="outside (or unseen) this long before zone.exit")
    loiter_s: Annotated[float, Field(gt=0)] | None = Field(
        None, description="a zone.loiter event once an object has been inside this long; default: none"
    )

    @model_validator(mode="after")
    def _simple_polygon(self) -> ZoneConfig:
        corners = [(float(x), float(y)) for x, y in self.polygon]
        if polygon_self_intersects(corners):  # first: a bow tie's two halves also cancel to no area
            raise ValueError("polygon: two of its edges cross; list the corners in order around the zone")
        twice_area = sum(
            x1 * y2 - x2 * y1 for (x1, y1), (x2, y2) in zip(corners, corners[1:] + corners[:1], strict=True)
        )
        if abs(twice_area) < 1e-6:
            raise ValueError("polygon: its corners enclose no area (all on one line?)")
        return self


class AnalyticsConfig(Strict):
    """Track lifecycle events, and how an id switch of the tracker is told from a new object."""

    track_events: bool = Field(True, description="publish track.start (once confirmed) and track.end")
    continue_within_s: Seconds = Field(
        1.0, description="a new track that appears this soon after another of its class was last seen..."
    )
    continue_distance: Annotated[float, Field(ge=0, le=1)] = Field(
        0.05,
        description="...this close to where that one was headed (normalized) continues it: no second count",
    )


class SnapshotConfig(Strict):
    """JPEG pictures attached to events (files in state_dir, served over HTTP, referenced from the event)."""

    events: list[EventType] = Field(default_factory=list, description="event types that carry snapshots")
    object: bool = Field(True, description="a crop of the object, with a margin")
    frame: bool = Field(True, description="the whole picture")
    margin: Annotated[float, Field(ge=0, le=2)] = Field(
        0.25, description="crop margin, as a fraction of the box"
    )
    quality: Annotated[int, Field(ge=10, le=100)] = Field(85, description="JPEG quality")
    max_width: Annotated[int, Field(ge=64)] = Field(
        1280, description="the frame picture is scaled down to this"
    )
