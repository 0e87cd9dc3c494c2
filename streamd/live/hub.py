"""The live view's pictures: drawn only while someone watches, once per camera per tick, shared by all.

The worker does nothing for it but keep a reference to its newest result (the decoded
picture it already had). A supervised thread wakes ``fps`` times a second and, for each
camera someone is watching (an MJPEG viewer, or a ``latest.jpg`` request in the last few
seconds) whose newest result it has not drawn yet, scales, draws and encodes one JPEG.
Every viewer of that camera gets those same bytes: ten viewers cost what one does.

A viewer holds a reference to the newest JPEG, never a queue of them; a viewer that takes
no picture for ``stream_timeout_s`` (gone, or too slow) is dropped, and one that
disconnects frees its thread at once. At most ``max_viewers`` streams are served.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial

from streamd.config.daemon import PreviewConfig
from streamd.live.render import Scene, draw, encode_jpeg, picture_at
from streamd.log import Throttle, get_logger
from streamd.supervise import Service
from streamd.types import FrameResult

__all__ = ["BOUNDARY", "LiveStats", "LiveView", "TooManyViewersError"]

_log = get_logger(stage="live")
BOUNDARY = "streamd-frame"
_DEMAND_S = 3.0  # a latest.jpg request keeps its camera drawn this long (the page polls every second)

Source = Callable[[str], tuple[FrameResult | None, Scene]]  # camera -> newest result and what to draw on it


class TooManyViewersError(Exception):
    """``max_viewers`` streams are already being served."""


@dataclass(frozen=True)
class _Picture:
    jpeg: bytes
    seq: int  # the result's frame seq
    number: int  # counts pictures drawn for this camera: a viewer waits for a higher one


@dataclass
class LiveStats:
    pictures: int = 0  # JPEGs drawn and encoded
    cpu_s: float = 0.0  # CPU time of drawing them (this thread's, not wall time)
    viewers: int = 0  # MJPEG streams now
    refused: int = 0  # streams refused at max_viewers
    dropped: int = 0  # streams ended because the viewer took no picture in time


class LiveView(Service):
    """Annotated pictures of the watched cameras, for the HTTP server's viewers."""

    def __init__(self, source: Source, config: PreviewConfig) -> None:
        super().__init__("live", self._run)
        self._source = source
        self.config = config
        self._pictures: dict[str, _Picture] = {}
        self._demand: dict[str, float] = {}  # camera -> monotonic time until which it is drawn
        self._viewers: dict[str, int] = {}
        self.stats = LiveStats()
        self._throttle = Throttle(60.0)

    def viewers(self, camera: str) -> int:
        return self._viewers.get(camera, 0)

    # --- what viewers call ------------------------------------------------------------------

    def latest(self, camera: str, timeout_s: float = 2.0) -> bytes | None:
        """The newest picture of a camera, waiting for one to be drawn when it is not watched yet."""
        with self._cond:
            self._demand[camera] = max(self._demand.get(camera, 0.0), time.monotonic() + _DEMAND_S)
            self._cond.notify_all()
            picture = self._pictures.get(camera)
            fresh = picture is not None and self._newest_seq(camera) in (None, picture.seq)
            if not fresh:
                number = picture.number if picture else 0
                self._cond.wait_for(partial(self._newer, camera, number), timeout_s)
                picture = self._pictures.get(camera)
        return picture.jpeg if picture is not None else None

    def stream(self, camera: str, write: Callable[[bytes], None], alive: Callable[[], bool]) -> None:
        """Send a camera's pictures as multipart parts until the viewer goes or lags, or streamd stops."""
        with self._cond:
            if self.stats.viewers >= self.config.max_viewers:
                self.stats.refused += 1
                raise TooManyViewersError(f"{self.config.max_viewers} viewers already")
            self.stats.viewers += 1
            self._viewers[camera] = self._viewers.get(camera, 0) + 1
            self._cond.notify_all()
        try:
            self._serve(camera, write, alive)
        finally:
            with self._cond:
                self.stats.viewers -= 1
                self._viewers[camera] -= 1
                if not self._viewers[camera]:
                    del self._viewers[camera]

    def _serve(self, camera: str, write: Callable[[bytes], None], alive: Callable[[], bool]) -> None:
        sent = 0
        while not self._stop.is_set():
            with self._cond:
                # Wake a few times a second even with nothing new, to let a vanished viewer go at once.
                got = self._cond.wait_for(partial(self._newer, camera, sent), 0.2)
                picture = self._pictures.get(camera)
            if self._stop.is_set() or not alive():
                return
            if not got or picture is None:
                continue  # nothing new: the camera is down, or nobody has drawn it yet
            sent = picture.number
            head = (
                f"--{BOUNDARY}\r\nContent-Type: image/jpeg\r\nContent-Length: {len(picture.jpeg)}\r\n\r\n"
            ).encode()
            write(head + picture.jpeg + b"\r\n")  # raises when the viewer is gone or too slow: that ends it

    def _newer(self, camera: str, than: int) -> bool:
        return self._number(camera) > than or self._stop.is_set()

    def _number(self, camera: str) -> int:
        picture = self._pictures.get(camera)
        return picture.number if picture is not None else 0

    def _newest_seq(self, camera: str) -> int | None:
        result, _scene = self._source(camera)
        return None if result is None else result.seq

    # --- the drawing thread -----------------------------------------------------------------

    def _watched(self, now: float) -> list[str]:
        with self._cond:
            self._demand = {c: until for c, until in self._demand.items() if until > now}
            return sorted(self._demand.keys() | self._viewers.keys())

    def _run(self) -> None:
        period = 1.0 / self.config.fps
        while not self._stop.is_set():
            started = time.monotonic()
            for camera in self._watched(started):
                self._draw(camera)
            self.component.beat(period)
            with self._cond:  # sleep out the tick, or until someone starts watching
                self._cond.wait(max(0.0, period - (time.monotonic() - started)))

    def _draw(self, camera: str) -> None:
        try:
            result, scene = self._source(camera)
            previous = self._pictures.get(camera)
            if (
                result is None
                or result.picture is None
                or (previous is not None and previous.seq == result.seq)
            ):
                return
            cpu = time.thread_time()
            image = picture_at(result.picture, self.config.max_width)
            jpeg = encode_jpeg(draw(image, result, scene), self.config.quality)
            self.stats.cpu_s += time.thread_time() - cpu
            self.stats.pictures += 1
        except Exception as exc:  # one camera's picture must not stop the others'
            held = self._throttle.ready()
            if held is not None:
                _log.exception("live picture failed", camera=camera, error=repr(exc), repeats_not_logged=held)
            return
        with self._cond:
            self._pictures[camera] = _Picture(jpeg, result.seq, (previous.number if previous else 0) + 1)
            self._cond.notify_all()

    def forget(self, camera: str) -> None:
        """A camera was removed: drop its picture."""
        with self._cond:
            self._pictures.pop(camera, None)
            self._demand.pop(camera, None)
