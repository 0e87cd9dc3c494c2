"""Event snapshots: a JPEG of the object (crop with a margin) and of the frame, encoded off the worker.

The worker only queues a reference to the decoded picture it already holds; a
``SnapshotStore`` thread converts, crops, scales and encodes it. The queue is short:
when it is full the snapshot is skipped and counted, and the event goes out without
one, so snapshots never slow detection down. Files go to
``state_dir/snapshots/<camera>/<event_id>-object.jpg`` (and ``-frame.jpg``), 0600 in
0700 folders, at most ``max_mb`` of them (the oldest are deleted first), and are served
at ``/v1/cameras/<camera>/snapshots/<file>``; the event carries those paths.
"""

from __future__ import annotations

import collections
import os
import re
from dataclasses import dataclass
from pathlib import Path

import av
import cv2
import numpy as np

from streamd.config.analytics import SnapshotConfig
from streamd.files import FILE_MODE, private_dir
from streamd.log import Throttle, get_logger
from streamd.picture import to_bgr
from streamd.supervise import Service

__all__ = ["SnapshotStats", "SnapshotStore"]

_log = get_logger(stage="snapshots")
_FILE = re.compile(r"[A-Za-z0-9_.-]+\.jpg")


@dataclass(frozen=True)
class _Job:
    camera: str
    event_id: str
    picture: av.VideoFrame
    box: tuple[float, float, float, float] | None
    config: SnapshotConfig


@dataclass
class SnapshotStats:
    written: int = 0  # JPEG files written
    skipped: int = 0  # snapshots not taken: the queue was full
    failed: int = 0  # snapshots that could not be encoded or written
    deleted: int = 0  # old files removed to stay under max_mb
    bytes: int = 0  # on disk now


class SnapshotStore(Service):
    """Encodes and stores event snapshots in its own thread."""

    def __init__(self, root: Path, max_mb: float, queue_size: int) -> None:
        super().__init__("snapshots", self._run)
        self.root = root
        self._max_bytes = int(max_mb * 1024 * 1024)
        self._size = queue_size
        self._jobs: collections.deque[_Job] = collections.deque()
        self._files: collections.OrderedDict[Path, int] = collections.OrderedDict()  # oldest first
        self.stats = SnapshotStats()
        self._throttle = Throttle(60.0)

    def start(self) -> None:
        private_dir(self.root)
        found = sorted(self.root.glob("*/*.jpg"), key=lambda p: p.stat().st_mtime)
        self._files.update((path, path.stat().st_size) for path in found)
        self.stats.bytes = sum(self._files.values())
        super().start()

    def request(
        self,
        camera: str,
        event_id: str,
        picture: av.VideoFrame,
        box: tuple[float, float, float, float] | None,
        config: SnapshotConfig,
    ) -> dict[str, str] | None:
        """Queue a snapshot; the paths it will be served at, or None when skipped (queue full)."""
        wanted = {"object": config.object and box is not None, "frame": config.frame}
        parts = [kind for kind, yes in wanted.items() if yes]
        if not parts:
            return None
        with self._cond:
            if len(self._jobs) >= self._size:
                self.stats.skipped += 1
                return None
            self._jobs.append(_Job(camera, event_id, picture, box, config))
            self._cond.notify()
        return {kind: f"/v1/cameras/{camera}/snapshots/{event_id}-{kind}.jpg" for kind in parts}

    def path(self, camera: str, name: str) -> Path | None:
        """The file behind a snapshot path, or None (unknown, or a name that could leave the folder)."""
        if not _FILE.fullmatch(name) or not _FILE.fullmatch(f"{camera}.jpg") or name.startswith("."):
            return None
        path = self.root / camera / name
        return path if path.is_file() else None

    def _run(self) -> None:
        while not self._stop.is_set():
            with self._cond:
                while not self._jobs and not self._stop.is_set():
                    self.component.beat(0.5)  # promised before the wait, not after it
                    self._cond.wait(0.5)
                if not self._jobs:
                    continue
                job = self._jobs.popleft()
            try:
                self._write(job)
            except Exception as exc:  # one bad picture is counted, not a restart
                self.stats.failed += 1
                held = self._throttle.ready()
                if held is not None:
                    _log.exception("snapshot failed", camera=job.camera, event_id=job.event_id,
                                   error=repr(exc), repeats_not_logged=held)  # fmt: skip
            self.component.beat()

    def _write(self, job: _Job) -> None:
        bgr = to_bgr(job.picture)
        folder = private_dir(self.root / job.camera)
        params = [cv2.IMWRITE_JPEG_QUALITY, job.config.quality]
        if job.config.object and job.box is not None:
            self._save(folder / f"{job.event_id}-object.jpg", _crop(bgr, job.box, job.config.margin), params)
        if job.config.frame:
            self._save(folder / f"{job.event_id}-frame.jpg", _fit(bgr, job.config.max_width), params)

    def _save(self, path: Path, image: np.ndarray, params: list[int]) -> None:
        ok, encoded = cv2.imencode(".jpg", image, params)
        if not ok:
            raise ValueError("the JPEG encoder refused the picture")
        data = encoded.tobytes()
        tmp = path.with_name(f".{path.name}.tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, FILE_MODE)
        try:
            os.write(fd, data)
        finally:
            os.close(fd)
        os.replace(tmp, path)  # never served half written
        self._files[path] = len(data)
        self.stats.written += 1
        self.stats.bytes += len(data)
        while self.stats.bytes > self._max_bytes and len(self._files) > 1:
            old, size = self._files.popitem(last=False)
            old.unlink(missing_ok=True)
            self.stats.bytes -= size
            self.stats.deleted += 1


def _crop(bgr: np.ndarray, box: tuple[float, float, float, float], margin: float) -> np.ndarray:
    h, w = bgr.shape[:2]
    x1, y1, x2, y2 = box
    mx, my = (x2 - x1) * margin, (y2 - y1) * margin
    left, top = max(0, int(x1 - mx)), max(0, int(y1 - my))
    right, bottom = min(w, int(np.ceil(x2 + mx))), min(h, int(np.ceil(y2 + my)))
    return bgr[top : max(bottom, top + 1), left : max(right, left + 1)]


def _fit(bgr: np.ndarray, max_width: int) -> np.ndarray:
    h, w = bgr.shape[:2]
    if w <= max_width:
        return bgr
    return cv2.resize(bgr, (max_width, round(h * max_width / w)), interpolation=cv2.INTER_AREA)
