"""The camera thread: open, read, hand the newest picture to the worker, reconnect forever.

The thread is a supervised ``Component``: a source failure (refused, hung, ended) is
an expected event handled here with a reconnect; anything else a bug or a broken
library raises is caught by the supervisor, logged, counted as a reconnect, and the
camera starts again after a backoff.

States and the transitions allowed between them:

    CONNECTING  -> STREAMING | RECONNECTING | STOPPED
    STREAMING   -> RECONNECTING | STOPPED
    RECONNECTING -> CONNECTING | STOPPED
    STOPPED     (final; also reached when a non-looping file ends)
"""

from __future__ import annotations

import enum
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from streamd.backoff import Backoff
from streamd.config import CameraConfig, source_kind
from streamd.errors import SourceError
from streamd.log import get_logger
from streamd.redact import redact
from streamd.slot import Slot
from streamd.sources.source import Source, open_source
from streamd.supervise import Component
from streamd.types import Frame

__all__ = ["Camera", "CameraState", "CameraStats", "FpsCap"]


class CameraState(enum.Enum):
    CONNECTING = "connecting"
    STREAMING = "streaming"
    RECONNECTING = "reconnecting"
    STOPPED = "stopped"


_ALLOWED = {
    CameraState.CONNECTING: {CameraState.STREAMING, CameraState.RECONNECTING, CameraState.STOPPED},
    CameraState.STREAMING: {CameraState.RECONNECTING, CameraState.STOPPED},
    CameraState.RECONNECTING: {CameraState.CONNECTING, CameraState.STOPPED},
    CameraState.STOPPED: set(),
}


@dataclass
class CameraStats:
    """A camera's state and counters. Each counter has a single writing thread."""

    state: CameraState = CameraState.CONNECTING
    last_error: str | None = None
    since: float = field(default_factory=time.monotonic)  # when the state last changed
    decoded: int = 0  # camera thread
    skipped: int = 0  # camera thread: over the fps cap, never offered to the worker
    dropped: int = 0  # camera thread (under the board lock): overwritten before the worker took it
    processed: int = 0  # worker
    reconnects: int = 0  # camera thread
    errors: int = 0  # worker: frames that failed in preprocessing or tracking
    processing_error: str | None = None  # worker: why the last frame failed; None once one succeeds
    last_frame: float | None = None  # monotonic time of the last decoded picture
    stream_fps: float | None = None
    cpu_s: float = 0.0  # camera thread: CPU time reading and decoding (up to its last picture)
    decoding: str | None = None  # camera thread: "all" or "keyframes", what the stream decodes now


class FpsCap:
    """Lets through at most ``fps`` pictures a second, judged by capture time."""

    def __init__(self, fps: float | None) -> None:
        self._period = 1.0 / fps if fps else 0.0
        self._due = 0.0

    def admit(self, t: float) -> bool:
        """Whether the picture captured at ``t`` goes to detection."""
        if not self._period:
            return True
        # A quarter period of slack so that network jitter on a camera running at
        # exactly the cap does not skip frames.
        if t < self._due - self._period / 4:
            return False
        self._due = self._due + self._period if t - self._due < self._period else t + self._period
        return True


class Camera:
    """Reads one camera in its own thread and writes into its slot."""

    def __init__(
        self,
        config: CameraConfig,
        slot: Slot[Frame],
        opener: Callable[[CameraConfig], Source] = open_source,
    ) -> None:
        self.config = config
        self.stats = CameraStats()
        self._slot = slot
        self._open = opener
        self._stop = threading.Event()
        self._seq = 0
        self._log = get_logger(camera=config.id)
        reconnect = config.source.reconnect
        self._backoff = Backoff(reconnect.initial_s, reconnect.max_s, reconnect.multiplier)
        self.component = Component(
            f"camera/{config.id}",
            self._run,
            self._stop,
            on_failure=self._crashed,
            on_exit=self._exited,
            backoff=Backoff(reconnect.initial_s, reconnect.max_s, reconnect.multiplier),
            camera=config.id,
        )
        self._cap = FpsCap(config.fps)
        self._cpu_mark = 0.0  # the camera thread's CPU clock at its last picture
        # Replaying a file as fast as possible waits for the worker instead of dropping.
        replay = source_kind(config.url) == "file" and not config.source.realtime
        self._replay_stop = self._stop if replay else None

    @property
    def id(self) -> str:
        return self.config.id

    def start(self) -> None:
        self.component.start()

    def stop(self) -> None:
        """Ask the thread to stop; it notices within its read timeout at worst."""
        self._stop.set()

    def join(self, timeout: float) -> bool:
        """Wait for the thread; True when it ended."""
        return self.component.join(timeout)

    def _promise(self, seconds: float) -> None:
        """Tell the supervisor when this thread will next show progress (its own timeouts)."""
        self.component.beat(seconds)

    def _set_state(self, state: CameraState, error: str | None = None) -> None:
        current = self.stats.state
        if state is current:
            return
        if state not in _ALLOWED[current]:
            raise RuntimeError(f"camera {self.id}: {current.value} -> {state.value} is not allowed")
        self.stats.state = state
        self.stats.since = time.monotonic()
        self._slot.set_live(state is CameraState.STREAMING)
        if error is not None:
            self.stats.last_error = error

    def _run(self) -> None:
        self._cpu_mark = time.thread_time()
        self._set_state(CameraState.CONNECTING)
        self._log.info("camera starting", url=redact(self.config.url))
        while not self._stop.is_set():
            error = self._read_once()
            if error is None:  # stopped, or a file that does not loop has ended
                break
            self.stats.reconnects += 1
            delay = self._backoff.next()
            self._set_state(CameraState.RECONNECTING, error)
            self._log_failure(error, delay)
            self._promise(delay)
            if self._stop.wait(delay):
                break
            self._set_state(CameraState.CONNECTING)

    def _crashed(self, error: str) -> None:
        """The supervisor caught an unexpected exception: the camera reconnects after its backoff."""
        self.stats.reconnects += 1
        self._set_state(CameraState.RECONNECTING, f"internal error: {error}")

    def _exited(self) -> None:
        self._set_state(CameraState.STOPPED)
        self._log.info("camera stopped")

    def _log_failure(self, error: str, delay: float) -> None:
        # Log every change of reason, then at a slowing rate while a camera stays down:
        # attempts 1, 2, 4, 8, ... (with the backoff capped at 30 s: every few minutes, then hours).
        attempts = self._backoff.attempts
        if attempts & (attempts - 1) == 0 or error != self._last_logged:
            self._log.warning("camera down", error=error, retry_in_s=round(delay, 2), attempt=attempts)
        self._last_logged = error

    _last_logged: str | None = None

    def _read_once(self) -> str | None:
        """Open and read until the source ends; the reason it failed, or None when done."""
        source = self.config.source
        self._promise(source.open_timeout_s + 2 * source.read_timeout_s)
        try:
            stream = self._open(self.config)
        except SourceError as exc:
            return redact(str(exc))
        try:
            self._read(stream)
        except SourceError as exc:
            return redact(str(exc))
        finally:
            # Closing an RTSP session sends TEARDOWN, which a hung server never answers:
            # close in the background so that it delays neither the report nor the retry.
            threading.Thread(target=stream.close, name=f"close-{self.id}", daemon=True).start()
        return None

    def _admit(self, t_scene: float) -> bool:
        """The fps cap, asked by the source before it spends anything on a picture it would skip."""
        if self._cap.admit(t_scene):
            return True
        self.stats.skipped += 1
        return False

    def _read(self, stream: Source) -> None:
        self.stats.stream_fps = stream.fps
        self._log.info("camera connected", fps=stream.fps)
        read_window = 2 * self.config.source.read_timeout_s  # FFmpeg notices a silent peer within it
        for picture in stream.pictures(self._stop, self._admit):
            self._promise(read_window)
            self._seq += picture.decoded  # every decoded picture has a number, skipped ones too
            seq = self._seq - 1
            self.stats.decoded += picture.decoded
            self.stats.last_frame = picture.t_capture
            cpu = time.thread_time()
            self.stats.cpu_s += cpu - self._cpu_mark
            self._cpu_mark = cpu
            self.stats.decoding = "keyframes" if stream.keyframes_only else "all"
            if self.stats.state is not CameraState.STREAMING:
                self._set_state(CameraState.STREAMING)
                self._backoff.reset()
                self._log.info(
                    "camera streaming",
                    fps=stream.fps,
                    width=picture.picture.width,
                    height=picture.picture.height,
                )
            self._slot.put(
                Frame(
                    camera=self.id,
                    seq=seq,
                    ts=picture.ts,
                    t_capture=picture.t_capture,
                    t_scene=picture.t_scene,
                    decode_s=picture.decode_s,
                    t_ready=time.monotonic(),
                    picture=picture.picture,
                ),
                wait_taken=self._replay_stop,
            )
