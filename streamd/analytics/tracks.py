"""Track lifecycle: when a track starts and ends, and when a new id is the same object again.

A track starts when its confirmed id is first published, and ends once it has not been
seen for the tracker's ``lost_track_s``. The tracker sometimes loses an object and
finds it again under a new id; counting that as a new object would count a crossing
twice. So a new track continues a lost one when both hold:

- the lost one (same class) was last seen at most ``continue_within_s`` before, and is
  not in the picture now;
- the new one appears within ``continue_distance`` (normalized) of where the lost one
  was headed: its last centre moved on by its speed over the gap (speed from its last
  two observations, at most 0.5 picture a second).

The nearest such track is continued: the new id takes over its line and zone state, so
it is not counted again and does not leave and re-enter a zone. Both ids stay visible
in the events (``track.end`` with ``continued_by``, ``track.start`` with ``continues``).
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass, field

__all__ = ["TrackBook", "TrackInfo"]

_MAX_SPEED = 0.5  # picture widths a second: a guess no farther than this
TRAIL_S = 2.0  # how much of each track's path is kept for the live view


@dataclass
class TrackInfo:
    """What is known of one track."""

    track_id: int
    class_name: str
    first_t: float
    last_t: float
    center: tuple[float, float]
    velocity: tuple[float, float] = (0.0, 0.0)
    continues: int | None = None
    continued_by: int | None = None
    lines: dict[str, list[str]] = field(default_factory=dict)  # line -> directions crossed
    zones: list[str] = field(default_factory=list)  # zones entered, in order
    trail: deque[tuple[float, float, float]] = field(default_factory=deque)  # (t, x, y) of the box centre

    def seen(self, t: float, center: tuple[float, float]) -> None:
        dt = t - self.last_t
        if dt > 0:
            self.velocity = ((center[0] - self.center[0]) / dt, (center[1] - self.center[1]) / dt)
        self.last_t, self.center = t, center
        self.trail.append((t, center[0], center[1]))
        while self.trail and self.trail[0][0] < t - TRAIL_S:
            self.trail.popleft()

    def headed(self, t: float) -> tuple[float, float]:
        """Where it would be at ``t`` at its last speed (capped)."""
        dt = t - self.last_t
        vx, vy = self.velocity
        speed = math.hypot(vx, vy)
        if speed > _MAX_SPEED:
            vx, vy = vx * _MAX_SPEED / speed, vy * _MAX_SPEED / speed
        return self.center[0] + vx * dt, self.center[1] + vy * dt


class TrackBook:
    """The tracks of one camera."""

    def __init__(self, lost_after_s: float, continue_within_s: float, continue_distance: float) -> None:
        self.lost_after_s = lost_after_s
        self.continue_within_s = continue_within_s
        self.continue_distance = continue_distance
        self.tracks: dict[int, TrackInfo] = {}

    def observe(
        self, t: float, seen: list[tuple[int, str, tuple[float, float]]]
    ) -> tuple[list[TrackInfo], list[TrackInfo]]:
        """Tracks ``(id, class, centre)`` seen at ``t``: those that started, and lost ones they continue."""
        started, continued = [], []
        present = {tid for tid, _, _ in seen}
        for track_id, class_name, center in seen:
            info = self.tracks.get(track_id)
            if info is not None:
                info.seen(t, center)
                continue
            info = TrackInfo(track_id, class_name, t, t, center, trail=deque([(t, center[0], center[1])]))
            old = self._lost_one(info, present)
            if old is not None:
                old.continued_by, info.continues = track_id, old.track_id
                info.first_t, info.lines, info.zones = old.first_t, old.lines, old.zones
                info.velocity, info.trail = old.velocity, old.trail
                info.trail.append((t, center[0], center[1]))
                del self.tracks[old.track_id]
                continued.append(old)
            self.tracks[track_id] = info
            started.append(info)
        return started, continued

    def _lost_one(self, new: TrackInfo, present: set[int]) -> TrackInfo | None:
        best, best_distance = None, self.continue_distance
        for old in self.tracks.values():
            if old.track_id in present or old.class_name != new.class_name:
                continue
            if new.first_t - old.last_t > self.continue_within_s:
                continue
            hx, hy = old.headed(new.first_t)
            distance = math.hypot(new.center[0] - hx, new.center[1] - hy)
            if distance <= best_distance:
                best, best_distance = old, distance
        return best

    def expire(self, t: float) -> list[TrackInfo]:
        """Tracks not seen for ``lost_after_s``: they have ended."""
        gone = [info for info in self.tracks.values() if t - info.last_t > self.lost_after_s]
        for info in gone:
            del self.tracks[info.track_id]
        return gone
