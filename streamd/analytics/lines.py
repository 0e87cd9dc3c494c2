"""Line crossings: a pure, time-based state machine per line (observations in, crossings out).

A crossing is decided on the path between two consecutive observations of a track
(segment against segment), not on the sides of single observations: a crossing that
falls between dropped frames is still seen, once, and its time is interpolated along
the path. It then has to hold: it counts once the object has been on the new side for
``min_hold_s`` of capture time and has been at least ``min_distance`` beyond the line.
Crossing back before that cancels it, so a box flickering or jittering on the line
counts nothing. A path that passes beyond an end of the segment crosses nothing (the
track's side is updated silently). A track that ends while a crossing is pending, far
enough beyond the line, counts: it walked through the door and out of sight.

With ``once`` (the default) a track counts at most once per direction.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from streamd.analytics.geometry import Point, crossing, distance_to_line, side

__all__ = ["Crossing", "LineCrossings"]

# Anchors closer to the line than this are on it: neither side (a box resting on the line
# must not flip sides with float noise).
_ON_LINE = 1e-9


@dataclass(frozen=True)
class Crossing:
    """One counted crossing of a line by a track."""

    track_id: int
    direction: str  # "in" (negative side to positive) or "out"
    t: float  # capture time of the crossing, interpolated along the path (monotonic seconds)


@dataclass
class _Pending:
    to_side: int
    t_cross: float
    far: float  # the furthest the track has been beyond the line since


@dataclass
class _Track:
    established: int  # the side the track is known to be on: -1, +1, or 0 (not yet known)
    last: Point
    last_t: float
    pending: _Pending | None = None
    counted: set[str] = field(default_factory=set)


class LineCrossings:
    """The crossings of one line, A to B (moving from ``side < 0`` to ``side > 0`` is ``in``)."""

    def __init__(self, a: Point, b: Point, min_hold_s: float, min_distance: float, once: bool = True) -> None:
        self.a, self.b = a, b
        self.min_hold_s = min_hold_s
        self.min_distance = min_distance
        self.once = once
        self._tracks: dict[int, _Track] = {}

    def _side(self, p: Point) -> int:
        value = side(self.a, self.b, p)
        return 0 if abs(value) <= _ON_LINE else (1 if value > 0 else -1)

    def observe(self, track_id: int, p: Point, t: float) -> Crossing | None:
        """A track seen at ``p`` at capture time ``t``; the crossing this confirms, if any."""
        here = self._side(p)
        track = self._tracks.get(track_id)
        if track is None:
            self._tracks[track_id] = _Track(established=here, last=p, last_t=t)
            return None
        if here == 0 and track.established != 0:
            # On the line itself: the path is measured from the last point off it, so a step
            # onto the line and a step off it make one crossing, not two halves of none.
            return None
        fraction = crossing(self.a, self.b, track.last, p)
        if fraction is not None:
            self._crossed(track, here, track.last_t + fraction * (t - track.last_t))
        elif here != 0 and track.pending is None and here != track.established:
            track.established = here  # around an end of the segment, or first off the line: no crossing
        elif track.pending is not None and here == track.established:
            track.pending = None  # back on its side without crossing the segment (around an end)
        track.last, track.last_t = p, t
        return self._confirm(track_id, track, here, p, t)

    def _crossed(self, track: _Track, to_side: int, t_cross: float) -> None:
        if track.established == 0:  # first seen on the line itself: the side it leaves to is its side
            track.established = to_side
        elif to_side == track.established:
            track.pending = None  # crossed back before the crossing held: a flicker
        else:
            track.pending = _Pending(to_side, t_cross, 0.0)

    def _confirm(self, track_id: int, track: _Track, here: int, p: Point, t: float) -> Crossing | None:
        pending = track.pending
        if pending is None or here != pending.to_side:
            return None
        pending.far = max(pending.far, distance_to_line(self.a, self.b, p))
        if t - pending.t_cross < self.min_hold_s or pending.far < self.min_distance:
            return None
        return self._count(track_id, track)

    def _count(self, track_id: int, track: _Track) -> Crossing | None:
        pending = track.pending
        assert pending is not None
        track.pending = None
        track.established = pending.to_side
        direction = "in" if pending.to_side > 0 else "out"
        if self.once and direction in track.counted:
            return None
        track.counted.add(direction)
        return Crossing(track_id, direction, pending.t_cross)

    def end(self, track_id: int) -> Crossing | None:
        """The track is gone: a pending crossing that went far enough counts (it walked out of sight)."""
        track = self._tracks.pop(track_id, None)
        if track is None or track.pending is None or track.pending.far < self.min_distance:
            return None
        return self._count(track_id, track)

    def continue_track(self, old_id: int, new_id: int) -> None:
        """``new_id`` is ``old_id`` under a new number (a tracker id switch): it takes over its state."""
        track = self._tracks.pop(old_id, None)
        if track is not None:
            self._tracks[new_id] = track

    def tracks(self) -> int:
        return len(self._tracks)
