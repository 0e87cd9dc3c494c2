"""Line totals that survive restarts: ``state_dir/counts/<camera>.json``, replaced atomically.

A camera's analytics adds to its totals on the worker thread; a ``CountsStore`` thread
writes the cameras whose totals changed, at most once per ``interval_s`` (a second), by
writing a new file and renaming it over the old one (fsync'd), so a crash or SIGKILL
loses at most the last second and never leaves half a file. At start the totals of a
line are restored when its geometry (points and anchor) is what it was; otherwise the
line starts from 0 and says so with a ``line.reset`` event. Totals also start again on a
schedule (``reset: hourly | daily``, local time).
"""

from __future__ import annotations

import json
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from streamd.files import atomic_write, private_dir
from streamd.log import get_logger
from streamd.supervise import Component

__all__ = ["CameraCounts", "CountsStore", "LineTotals", "next_reset"]

_log = get_logger(stage="counts")


def next_reset(since: float, every: str, at: str) -> float | None:
    """The first scheduled reset after ``since`` (unix seconds), in local time; None for ``never``."""
    if every == "never":
        return None
    hour, minute = (int(part) for part in at.split(":"))
    base = datetime.fromtimestamp(since)  # naive local time: .timestamp() below follows DST
    if every == "daily":
        when = base.replace(hour=hour, minute=minute, second=0, microsecond=0)
        step = timedelta(days=1)
    else:
        when = base.replace(minute=minute, second=0, microsecond=0)
        step = timedelta(hours=1)
    while when.timestamp() <= since:
        when += step
    return when.timestamp()


@dataclass
class LineTotals:
    """In and out counts of one line by class, since ``since`` (unix seconds)."""

    geometry: list[Any]  # [[xA, yA], [xB, yB], anchor]: a change starts the totals again
    since: float
    inward: Counter[str] = field(default_factory=Counter)
    outward: Counter[str] = field(default_factory=Counter)

    def add(self, direction: str, class_name: str) -> None:
        (self.inward if direction == "in" else self.outward)[class_name] += 1

    def totals(self) -> dict[str, int]:
        return {"in": sum(self.inward.values()), "out": sum(self.outward.values())}

    def by_class(self) -> dict[str, dict[str, int]]:
        names = sorted(self.inward.keys() | self.outward.keys())
        return {name: {"in": self.inward[name], "out": self.outward[name]} for name in names}

    def to_json(self) -> dict[str, Any]:
        return {
            "geometry": self.geometry,
            "since": self.since,
            "in": dict(self.inward),
            "out": dict(self.outward),
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> LineTotals:
        return cls(
            geometry=list(data["geometry"]),
            since=float(data["since"]),
            inward=Counter({str(k): int(v) for k, v in data.get("in", {}).items()}),
            outward=Counter({str(k): int(v) for k, v in data.get("out", {}).items()}),
        )


class CameraCounts:
    """One camera's line totals: written by its analytics, read by the store and the HTTP views."""

    def __init__(self, camera: str, restored: dict[str, LineTotals]) -> None:
        self.camera = camera
        self.restored = restored  # what the file held at start, by line name
        self.lines: dict[str, LineTotals] = {}
        self.lock = threading.Lock()
        self.dirty = False

    def snapshot(self) -> dict[str, Any]:
        with self.lock:
            self.dirty = False
            return {"version": 1, "camera": self.camera,
                    "lines": {name: totals.to_json() for name, totals in self.lines.items()}}  # fmt: skip


class CountsStore:
    """Writes every camera's changed totals to ``root/<camera>.json``, at most once per ``interval_s``."""

    def __init__(self, root: Path, interval_s: float = 1.0) -> None:
        self.root = root
        self._interval = interval_s
        self._cameras: dict[str, CameraCounts] = {}
        self._stop = threading.Event()
        self.component = Component("counts", self._run, self._stop)
        self.writes = 0

    def path(self, camera: str) -> Path:
        return self.root / f"{camera}.json"

    def open(self, camera: str) -> CameraCounts:
        """A camera's counts, restored from its file if any (an unreadable file is logged and kept aside)."""
        restored: dict[str, LineTotals] = {}
        path = self.path(camera)
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
            restored = {name: LineTotals.from_json(body) for name, body in data.get("lines", {}).items()}
        except FileNotFoundError:
            pass
        except (OSError, ValueError, KeyError, TypeError) as exc:
            aside = path.with_suffix(f".unreadable-{int(time.time())}")
            _log.error("line counts unreadable; starting from 0", camera=camera, file=str(path),
                       error=repr(exc), kept_as=str(aside))  # fmt: skip
            path.replace(aside)
        counts = CameraCounts(camera, restored)
        self._cameras = {**self._cameras, camera: counts}
        return counts

    def close(self, camera: str) -> None:
        """Write a camera's counts one last time and stop watching them (it was removed or restarted)."""
        counts = self._cameras.get(camera)
        self._cameras = {k: v for k, v in self._cameras.items() if k != camera}
        if counts is not None and counts.dirty:
            self._write(counts)

    def start(self) -> None:
        private_dir(self.root)
        self.component.start()

    def stop(self) -> None:
        self._stop.set()

    def join(self, timeout: float) -> bool:
        ended = self.component.join(timeout)
        self.flush()  # the last second, on a clean stop
        return ended

    def flush(self) -> None:
        """Write every camera whose totals changed since its last write."""
        for counts in self._cameras.values():
            if counts.dirty:
                self._write(counts)

    def _write(self, counts: CameraCounts) -> None:
        data = json.dumps(counts.snapshot(), indent=1, sort_keys=True).encode()
        try:
            atomic_write(self.path(counts.camera), data)
        except Exception:
            counts.dirty = True  # try again at the next round
            raise
        self.writes += 1

    def _run(self) -> None:
        self.component.beat(self._interval)  # the promise comes before the wait, not after it
        while not self._stop.wait(self._interval):
            self.flush()
            self.component.beat(self._interval)
