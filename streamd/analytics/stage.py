"""A camera's analytics: after tracking, each frame's tracks go through its lines, zones and track book.

Owned by the camera's route (kept, reconfigured or reset by a reload like the tracker),
run on the worker thread, cheap: a few vectorised tests per line and zone and a few
comparisons per track (measured: docs/events.md). Events and changed line and zone
states come out on the FrameResult; snapshot encoding is queued, never done here.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import orjson
import supervision as sv

from streamd.analytics.counts import CameraCounts, LineTotals, next_reset
from streamd.analytics.events import STATE_SCHEMA, Event, StateUpdate
from streamd.analytics.geometry import Polygon, anchor_points
from streamd.analytics.lines import Crossing, LineCrossings
from streamd.analytics.snapshots import SnapshotStore
from streamd.analytics.tracks import TrackBook, TrackInfo
from streamd.analytics.zones import ZoneEvent, ZoneOccupancy
from streamd.config import CameraConfig
from streamd.config.analytics import LineConfig, ZoneConfig
from streamd.types import Frame

__all__ = ["CameraAnalytics", "ClassFilters"]

ClassFilters = dict[str, frozenset[int] | None]  # by line or zone name: the class ids it counts (None: all)
Track = tuple[int | None, str | None]  # an event's track id and class name
Box = tuple[float, float, float, float] | None  # an event's object, for its snapshot (source pixels)
DwellObserver = Callable[[str, str, str, float], None]  # camera, zone, class, seconds


def _geometry(cfg: LineConfig) -> list[Any]:
    return [[float(v) for v in cfg.points[0]], [float(v) for v in cfg.points[1]], cfg.anchor]


@dataclass
class _Line:
    config: LineConfig
    classes: frozenset[int] | None
    crossings: LineCrossings
    totals: LineTotals
    next_reset: float | None
    crossed: Counter[tuple[str, str]] = field(default_factory=Counter)  # (direction, class) since start


@dataclass
class _Zone:
    config: ZoneConfig
    classes: frozenset[int] | None
    polygon: Polygon
    occupancy: ZoneOccupancy
    entries: Counter[str] = field(default_factory=Counter)  # by class, since start
    exits: Counter[str] = field(default_factory=Counter)


class _Frame:
    """What one frame's update needs to make events: ids and the wall clock of capture times."""

    def __init__(self, camera: str, frame: Frame) -> None:
        self.camera, self.frame, self.count = camera, frame, 0

    def event_id(self) -> str:
        self.count += 1
        return f"{self.camera}-{int(self.frame.ts * 1000)}-{self.frame.seq}-{self.count}"

    def wall(self, t: float) -> float:
        return self.frame.ts + (t - self.frame.t_scene)


class _Seen:
    """One frame's tracks: ids, classes, boxes, and their anchor points (each kind computed once)."""

    def __init__(self, frame: Frame, detections: sv.Detections) -> None:
        self.t = frame.t_scene
        self._size = (frame.width, frame.height)
        self.ids = np.asarray(detections.tracker_id).astype(int)
        count = len(self.ids)
        self.class_ids = (
            np.asarray(detections.class_id) if detections.class_id is not None else np.zeros(count, int)
        )
        names = detections.data.get("class_name")
        self.names = [str(n) for n in (names if names is not None else self.class_ids)]
        self.boxes = np.asarray(detections.xyxy, dtype=np.float64).reshape(-1, 4)
        self._anchors: dict[str, np.ndarray] = {}

    def anchors(self, anchor: str) -> np.ndarray:
        if anchor not in self._anchors:
            self._anchors[anchor] = anchor_points(self.boxes, anchor, *self._size)
        return self._anchors[anchor]

    def tracks(self) -> list[tuple[int, str, tuple[float, float]]]:
        centers = self.anchors("center")
        return [(int(tid), self.names[i], (float(centers[i, 0]), float(centers[i, 1])))
                for i, tid in enumerate(self.ids)]  # fmt: skip

    def rows(self, classes: frozenset[int] | None) -> list[int]:
        """The rows of the tracks a line or zone watches."""
        if classes is None:
            return list(range(len(self.ids)))
        return [i for i, c in enumerate(self.class_ids) if int(c) in classes]

    def box(self, i: int) -> tuple[float, float, float, float]:
        x1, y1, x2, y2 = (float(v) for v in self.boxes[i])
        return x1, y1, x2, y2


class CameraAnalytics:
    """Lines, zones and track lifecycle of one camera."""

    def __init__(
        self,
        camera: CameraConfig,
        filters: ClassFilters,
        counts: CameraCounts,
        *,
        snapshots: SnapshotStore | None = None,
        observe_dwell: DwellObserver | None = None,
    ) -> None:
        self.camera = camera.id
        self._counts = counts
        self._snapshots = snapshots
        self._observe_dwell = observe_dwell
        self._lines: dict[str, _Line] = {}
        self._zones: dict[str, _Zone] = {}
        self._waiting: list[tuple[str, LineTotals, str]] = []  # resets to tell at the next frame
        self._dirty: set[str] = set()
        self.config = camera
        self._book = self._new_book(camera)
        self.reconfigure(camera, filters, restored=counts.restored)

    @staticmethod
    def _new_book(camera: CameraConfig) -> TrackBook:
        cfg = camera.analytics
        return TrackBook(camera.tracker.lost_track_s, cfg.continue_within_s, cfg.continue_distance)

    # --- configuration ----------------------------------------------------------------------

    def reconfigure(
        self, camera: CameraConfig, filters: ClassFilters, restored: dict[str, LineTotals] | None = None
    ) -> None:
        """Apply new line, zone and event settings; a line whose points or anchor changed starts from 0."""
        self.config = camera
        now = time.time()
        book = self._book
        book.continue_within_s = camera.analytics.continue_within_s
        book.continue_distance = camera.analytics.continue_distance
        book.lost_after_s = camera.tracker.lost_track_s
        lines: dict[str, _Line] = {}
        for name, cfg in camera.lines.items():
            old = self._lines.get(name)
            totals = old.totals if old is not None else (restored or {}).get(name)
            geometry = _geometry(cfg)
            if totals is not None and totals.geometry != geometry:
                previous = LineTotals(totals.geometry, totals.since, totals.inward, totals.outward)
                self._waiting.append((name, previous, "geometry"))
                totals = None
            if totals is None:
                totals = LineTotals(geometry, now)
            keep = old is not None and old.totals is totals
            crossings = old.crossings if keep and old is not None else LineCrossings(*cfg.points, 0.0, 0.0)
            crossings.min_hold_s, crossings.min_distance = cfg.min_hold_s, cfg.min_distance
            crossings.once = cfg.count == "once"
            lines[name] = _Line(cfg, filters.get(name), crossings, totals,
                                next_reset(totals.since, cfg.reset, cfg.reset_at),
                                old.crossed if keep and old is not None else Counter())  # fmt: skip
        zones: dict[str, _Zone] = {}
        for name, zcfg in camera.zones.items():
            old_zone = self._zones.get(name)
            same = old_zone is not None and (old_zone.config.polygon, old_zone.config.anchor) == (
                zcfg.polygon, zcfg.anchor)  # fmt: skip
            occupancy = old_zone.occupancy if same and old_zone is not None else ZoneOccupancy(0, 0, None)
            occupancy.enter_s, occupancy.exit_s, occupancy.loiter_s = zcfg.enter_s, zcfg.exit_s, zcfg.loiter_s
            polygon = Polygon(np.array(zcfg.polygon, dtype=np.float64))
            zones[name] = _Zone(zcfg, filters.get(name), polygon, occupancy,
                                *(kept if (kept := self._zone_counters(old_zone, same)) else ()))  # fmt: skip
        self._lines, self._zones = lines, zones
        with self._counts.lock:
            self._counts.lines = {name: line.totals for name, line in lines.items()}
            self._counts.dirty = True
        self._dirty = {f"lines/{n}" for n in lines} | {f"zones/{n}" for n in zones}

    @staticmethod
    def _zone_counters(old: _Zone | None, same: bool) -> tuple[Counter[str], Counter[str]]:
        """A reconfigured zone's entry and exit counts: kept when its shape is the same."""
        return (old.entries, old.exits) if same and old is not None else (Counter(), Counter())

    def forget_tracks(self) -> None:
        """A new tracker numbers its tracks again: drop what was known of the old ones (no events)."""
        self._book = self._new_book(self.config)
        for line in self._lines.values():
            line.crossings = LineCrossings(*line.config.points, line.crossings.min_hold_s,
                                           line.crossings.min_distance, line.crossings.once)  # fmt: skip
        for name, zone in self._zones.items():
            old = zone.occupancy
            zone.occupancy = ZoneOccupancy(old.enter_s, old.exit_s, old.loiter_s)
            self._dirty.add(f"zones/{name}")

    # --- per frame --------------------------------------------------------------------------

    def update(
        self, frame: Frame, detections: sv.Detections
    ) -> tuple[tuple[Event, ...], tuple[StateUpdate, ...]]:
        """The events one frame's tracks cause, and the line and zone states that changed."""
        if detections.tracker_id is None:  # tracking is off: no identities, no events
            return (), ()
        ctx = _Frame(self.camera, frame)
        seen = _Seen(frame, detections)
        t = frame.t_scene
        events = [
            self._reset_event(ctx, name, previous, reason, t) for name, previous, reason in self._waiting
        ]
        self._waiting.clear()
        events += self._lifecycle(ctx, seen)
        events += self._cross_lines(ctx, seen)
        events += self._watch_zones(ctx, seen)
        for info in self._book.expire(t):
            events += self._ended(ctx, info)
        events += self._scheduled_resets(ctx, t)
        return tuple(events), self._states(ctx)

    def _lifecycle(self, ctx: _Frame, seen: _Seen) -> list[Event]:
        """Tracks that started, and lost ones that a new id continues (their state moves over)."""
        events: list[Event] = []
        started, continued = self._book.observe(seen.t, seen.tracks())
        for old in continued:
            assert old.continued_by is not None
            for line in self._lines.values():
                line.crossings.continue_track(old.track_id, old.continued_by)
            for zone in self._zones.values():
                zone.occupancy.continue_track(old.track_id, old.continued_by)
            events += self._track_event(ctx, "track.end", old, old.last_t)
        for info in started:
            events += self._track_event(ctx, "track.start", info, seen.t)
        return events

    def _cross_lines(self, ctx: _Frame, seen: _Seen) -> list[Event]:
        events = []
        for name, line in self._lines.items():
            points = seen.anchors(line.config.anchor)
            for i in seen.rows(line.classes):
                point = (float(points[i, 0]), float(points[i, 1]))
                crossed = line.crossings.observe(int(seen.ids[i]), point, seen.t)
                if crossed is not None:
                    events.append(self._crossing(ctx, name, line, crossed, seen.names[i], box=seen.box(i)))
        return events

    def _watch_zones(self, ctx: _Frame, seen: _Seen) -> list[Event]:
        events = []
        for name, zone in self._zones.items():
            inside = zone.polygon.contains(seen.anchors(zone.config.anchor))
            for i in seen.rows(zone.classes):
                for ze in zone.occupancy.observe(int(seen.ids[i]), seen.names[i], bool(inside[i]), seen.t):
                    events.append(self._zone_event(ctx, name, zone, ze, box=seen.box(i)))
        return events

    def _ended(self, ctx: _Frame, info: TrackInfo) -> list[Event]:
        events: list[Event] = []
        for name, line in self._lines.items():
            crossed = line.crossings.end(info.track_id)
            if crossed is not None:
                events.append(self._crossing(ctx, name, line, crossed, info.class_name, box=None))
        for name, zone in self._zones.items():
            for ze in zone.occupancy.end(info.track_id, info.last_t):
                events.append(self._zone_event(ctx, name, zone, ze, box=None))
        return events + self._track_event(ctx, "track.end", info, info.last_t)

    # --- events -----------------------------------------------------------------------------

    def _event(
        self, ctx: _Frame, kind: str, t: float, track: Track, fields: dict[str, Any], *, box: Box = None
    ) -> Event:
        event_id = ctx.event_id()
        wanted = self.config.snapshots
        if self._snapshots is not None and kind in wanted.events and box is not None:
            refs = self._snapshots.request(self.camera, event_id, ctx.frame.video, box, wanted)
            if refs is not None:
                fields = {**fields, "snapshot": refs}
        return Event(event_id, self.camera, kind, ctx.wall(t), track[0], track[1], fields)

    def _crossing(
        self, ctx: _Frame, name: str, line: _Line, crossed: Crossing, class_name: str, *, box: Box
    ) -> Event:
        with self._counts.lock:
            line.totals.add(crossed.direction, class_name)
            self._counts.dirty = True
        line.crossed[(crossed.direction, class_name)] += 1
        info = self._book.tracks.get(crossed.track_id)
        if info is not None:
            info.lines.setdefault(name, []).append(crossed.direction)
        self._dirty.add(f"lines/{name}")
        totals = line.totals
        fields = {"line": name, "direction": crossed.direction, "counts": totals.totals(),
                  "class_counts": totals.by_class(), "since": round(totals.since, 3)}  # fmt: skip
        return self._event(ctx, "line.cross", crossed.t, (crossed.track_id, class_name), fields, box=box)

    def _zone_event(self, ctx: _Frame, name: str, zone: _Zone, ze: ZoneEvent, *, box: Box) -> Event:
        occupancy = zone.occupancy.occupancy
        fields: dict[str, Any] = {"zone": name, "occupancy": sum(occupancy.values()),
                                  "class_occupancy": dict(occupancy)}  # fmt: skip
        if ze.dwell_s is not None:
            fields["dwell_s"] = round(ze.dwell_s, 3)
        if ze.kind == "enter":
            zone.entries[ze.class_name] += 1
            info = self._book.tracks.get(ze.track_id)
            if info is not None:
                info.zones.append(name)
        elif ze.kind == "exit":
            zone.exits[ze.class_name] += 1
            if self._observe_dwell is not None and ze.dwell_s is not None:
                self._observe_dwell(self.camera, name, ze.class_name, ze.dwell_s)
        if ze.kind != "loiter":
            self._dirty.add(f"zones/{name}")
        return self._event(ctx, f"zone.{ze.kind}", ze.t, (ze.track_id, ze.class_name), fields, box=box)

    def _track_event(self, ctx: _Frame, kind: str, info: TrackInfo, t: float) -> list[Event]:
        if not self.config.analytics.track_events:
            return []
        fields: dict[str, Any] = {}
        if kind == "track.start" and info.continues is not None:
            fields["continues"] = info.continues
        if kind == "track.end":
            fields = {
                "duration_s": round(info.last_t - info.first_t, 3),
                "lines": info.lines,
                "zones": info.zones,
            }
            if info.continued_by is not None:
                fields["continued_by"] = info.continued_by
        return [self._event(ctx, kind, t, (info.track_id, info.class_name), fields)]

    def _reset_event(self, ctx: _Frame, name: str, previous: LineTotals, reason: str, t: float) -> Event:
        line = self._lines.get(name)
        counts = line.totals if line is not None else LineTotals(previous.geometry, time.time())
        self._dirty.add(f"lines/{name}")
        fields = {"line": name, "counts": counts.totals(), "class_counts": counts.by_class(),
                  "previous": {**previous.totals(), "class_counts": previous.by_class(),
                               "since": round(previous.since, 3)},
                  "reason": reason, "since": round(counts.since, 3)}  # fmt: skip
        return self._event(ctx, "line.reset", t, (None, None), fields)

    def _scheduled_resets(self, ctx: _Frame, t: float) -> list[Event]:
        events = []
        now = ctx.wall(t)
        for name, line in self._lines.items():
            if line.next_reset is None or now < line.next_reset:
                continue
            previous = line.totals
            with self._counts.lock:
                line.totals = LineTotals(previous.geometry, line.next_reset)
                self._counts.lines[name] = line.totals
                self._counts.dirty = True
            line.next_reset = next_reset(line.totals.since, line.config.reset, line.config.reset_at)
            events.append(self._reset_event(ctx, name, previous, "schedule", t))
        return events

    def _states(self, ctx: _Frame) -> tuple[StateUpdate, ...]:
        if not self._dirty:
            return ()
        states = []
        ts = round(ctx.frame.ts, 3)
        for key in sorted(self._dirty):
            kind, name = key.split("/", 1)
            body: dict[str, Any] = {"schema": STATE_SCHEMA, "camera": self.camera, "ts": ts}
            if kind == "lines" and name in self._lines:
                totals = self._lines[name].totals
                body |= {"line": name, "counts": totals.totals(), "class_counts": totals.by_class(),
                         "since": round(totals.since, 3)}  # fmt: skip
            elif kind == "zones" and name in self._zones:
                occupancy = self._zones[name].occupancy.occupancy
                body |= {
                    "zone": name,
                    "occupancy": sum(occupancy.values()),
                    "class_occupancy": dict(occupancy),
                }
            else:
                continue
            states.append(StateUpdate(key, orjson.dumps(body)))
        self._dirty.clear()
        return tuple(states)

    # --- views ------------------------------------------------------------------------------

    def view(self) -> dict[str, Any]:
        """Current totals and occupancy, for /v1/cameras/<id>/counts and the live view."""
        return {
            "lines": {
                name: {**line.totals.totals(), "class_counts": line.totals.by_class(),
                       "since": round(line.totals.since, 3), "points": [list(p) for p in line.config.points]}
                for name, line in self._lines.items()
            },
            "zones": {
                name: {"occupancy": sum(zone.occupancy.occupancy.values()),
                       "class_occupancy": dict(zone.occupancy.occupancy),
                       "polygon": [list(p) for p in zone.config.polygon]}
                for name, zone in self._zones.items()
            },
        }  # fmt: skip

    def metrics(self) -> dict[str, Any]:
        """Counters since start and gauges, for /metrics (read at scrape time)."""
        return {
            "crossings": {name: dict(line.crossed) for name, line in self._lines.items()},
            "totals": {
                name: (dict(line.totals.inward), dict(line.totals.outward))
                for name, line in self._lines.items()
            },
            "entries": {name: dict(zone.entries) for name, zone in self._zones.items()},
            "exits": {name: dict(zone.exits) for name, zone in self._zones.items()},
            "occupancy": {name: dict(zone.occupancy.occupancy) for name, zone in self._zones.items()},
        }

    def trails(self) -> dict[int, list[tuple[float, float]]]:
        """The recent path of each track (normalized box centres), for drawing (from another thread)."""
        # list() copies in one step under the GIL; the worker changes these while this reads.
        return {
            tid: [(x, y) for _, x, y in list(info.trail)] for tid, info in list(self._book.tracks.items())
        }
