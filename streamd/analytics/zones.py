"""Zone occupancy: a pure, time-based state machine per zone (observations in, enter/exit/loiter out).

A track enters once its anchor has been inside for ``enter_s`` of capture time (the
event carries the time it was first seen inside), and leaves once it has been outside
(or unseen, when its track ends) for ``exit_s`` (the event carries the time it was
first seen outside, and the dwell time from enter to exit). So an object is counted in
a zone at most once per visit whatever the frame rate or the drops, a box flickering at
the edge does not enter and leave, and occupancy is never negative.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

__all__ = ["ZoneEvent", "ZoneOccupancy"]


@dataclass(frozen=True)
class ZoneEvent:
    """A track entered, left or loitered in a zone."""

    kind: str  # "enter", "exit" or "loiter"
    track_id: int
    class_name: str
    t: float  # capture time (monotonic seconds) the event happened at
    dwell_s: float | None  # exit and loiter: time inside so far


@dataclass
class _Visit:
    class_name: str
    candidate_since: float | None = None  # first seen inside, not yet entered
    entered: float | None = None  # inside since (entered)
    outside_since: float | None = None  # inside, but first seen outside at
    loitered: bool = False


class ZoneOccupancy:
    """Who is in one zone, by class."""

    def __init__(self, enter_s: float, exit_s: float, loiter_s: float | None) -> None:
        self.enter_s = enter_s
        self.exit_s = exit_s
        self.loiter_s = loiter_s
        self._visits: dict[int, _Visit] = {}
        self.occupancy: Counter[str] = Counter()

    def observe(self, track_id: int, class_name: str, inside: bool, t: float) -> list[ZoneEvent]:
        """A track seen inside or outside at ``t``; the events this decides."""
        visit = self._visits.setdefault(track_id, _Visit(class_name))
        events: list[ZoneEvent] = []
        if inside:
            visit.outside_since = None
            if visit.entered is None:
                visit.candidate_since = t if visit.candidate_since is None else visit.candidate_since
                if t - visit.candidate_since >= self.enter_s:
                    visit.entered, visit.candidate_since = visit.candidate_since, None
                    self.occupancy[visit.class_name] += 1
                    events.append(ZoneEvent("enter", track_id, visit.class_name, visit.entered, None))
            if visit.entered is not None:
                events += self._loiter(track_id, visit, t)
        else:
            visit.candidate_since = None
            if visit.entered is not None:
                visit.outside_since = t if visit.outside_since is None else visit.outside_since
                if t - visit.outside_since >= self.exit_s:
                    events.append(self._leave(track_id, visit, visit.outside_since))
        if visit.entered is None and visit.candidate_since is None:
            self._visits.pop(track_id, None)  # nothing to remember about a track outside
        return events

    def _loiter(self, track_id: int, visit: _Visit, t: float) -> list[ZoneEvent]:
        assert visit.entered is not None
        if self.loiter_s is None or visit.loitered or t - visit.entered < self.loiter_s:
            return []
        visit.loitered = True
        at = visit.entered + self.loiter_s
        return [ZoneEvent("loiter", track_id, visit.class_name, at, self.loiter_s)]

    def _leave(self, track_id: int, visit: _Visit, at: float) -> ZoneEvent:
        assert visit.entered is not None
        self.occupancy[visit.class_name] -= 1
        if self.occupancy[visit.class_name] <= 0:
            del self.occupancy[visit.class_name]
        event = ZoneEvent("exit", track_id, visit.class_name, at, at - visit.entered)
        self._visits.pop(track_id, None)
        return event

    def end(self, track_id: int, last_seen: float) -> list[ZoneEvent]:
        """The track is gone: if it was inside, it left when it was last seen (or first seen outside)."""
        visit = self._visits.pop(track_id, None)
        if visit is None or visit.entered is None:
            return []
        self._visits[track_id] = visit
        return [self._leave(track_id, visit, visit.outside_since or last_seen)]

    def continue_track(self, old_id: int, new_id: int) -> None:
        """``new_id`` is ``old_id`` under a new number: it stays inside, no exit and enter."""
        visit = self._visits.pop(old_id, None)
        if visit is not None:
            self._visits[new_id] = visit

    def inside(self) -> list[int]:
        """Tracks counted inside now."""
        return [tid for tid, v in self._visits.items() if v.entered is not None]
