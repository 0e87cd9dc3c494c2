"""What every sink shares: a bounded queue and a thread, so the worker never waits on one."""

from __future__ import annotations

import collections
import threading
from dataclasses import dataclass
from typing import Protocol

from streamd.log import get_logger
from streamd.types import FrameResult

__all__ = ["Sink", "SinkRunner", "SinkStats"]


class Sink(Protocol):
    """Delivers results somewhere. Called from the sink's own thread only."""

    name: str

    def send(self, result: FrameResult) -> None:
        """Deliver one result; raise on failure."""

    def close(self) -> None:
        """Release connections."""


@dataclass
class SinkStats:
    delivered: int = 0
    failed: int = 0
    dropped: int = 0  # oldest results discarded because the queue was full


class SinkRunner:
    """Runs one sink in a thread behind a bounded queue that drops its oldest entry when full."""

    def __init__(self, sink: Sink, queue_size: int) -> None:
        self.sink = sink
        self.stats = SinkStats()
        self._queue: collections.deque[FrameResult] = collections.deque()
        self._size = queue_size
        self._cond = threading.Condition()
        self._stop = threading.Event()
        self._log = get_logger(sink=sink.name)
        self._thread = threading.Thread(target=self._run, name=f"sink-{sink.name}", daemon=True)

    @property
    def depth(self) -> int:
        return len(self._queue)

    def start(self) -> None:
        self._thread.start()

    def offer(self, result: FrameResult) -> None:
        """Queue a result without ever blocking; the oldest is dropped when full."""
        with self._cond:
            if len(self._queue) >= self._size:
                self._queue.popleft()
                self.stats.dropped += 1
            self._queue.append(result)
            self._cond.notify()

    def stop(self) -> None:
        self._stop.set()
        with self._cond:
            self._cond.notify()

    def join(self, timeout: float) -> bool:
        self._thread.join(timeout)
        return not self._thread.is_alive()

    def _run(self) -> None:
        try:
            while not self._stop.is_set():
                with self._cond:
                    while not self._queue and not self._stop.is_set():
                        self._cond.wait(0.5)
                    if self._stop.is_set():
                        break
                    result = self._queue.popleft()
                try:
                    self.sink.send(result)
                    self.stats.delivered += 1
                except Exception as exc:  # one bad message must not stop the sink
                    self.stats.failed += 1
                    self._log.warning("sink send failed", camera=result.camera, error=repr(exc))
        finally:
            try:
                self.sink.close()
            except Exception as exc:
                self._log.warning("sink close failed", error=repr(exc))
