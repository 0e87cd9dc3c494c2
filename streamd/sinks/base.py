"""What every sink shares: per-camera filters, a bounded queue, a thread, a delivery policy.

The worker only ever calls ``SinkRunner.offer``, which never blocks. Each runner
has its own thread that talks to its transport (ZeroMQ, MQTT, HTTP), so a slow
or dead peer stalls nobody else.

Delivery policies:
- at_most_once: results wait in memory (``queue_size``); when full the oldest is
  dropped and counted. A batch that fails is retried with backoff meanwhile.
- at_least_once: a writer thread commits every result to the sink's SQLite
  outbox (then it counts as accepted), whatever the sender is doing; the sender
  thread deletes rows only when the peer acknowledged them. After a restart the
  rest are sent, in order.
"""

from __future__ import annotations

import collections
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol

from streamd.config import CameraSinkConfig, RetryConfig
from streamd.log import get_logger
from streamd.message import encode_frame
from streamd.sinks.outbox import Outbox
from streamd.sources.backoff import Backoff
from streamd.types import FrameResult

__all__ = ["CameraFilter", "DeliveryError", "Item", "SinkRunner", "SinkStats", "Transport"]


@dataclass(frozen=True, slots=True)
class Item:
    """One encoded message on its way to a peer."""

    camera: str
    payload: bytes
    row_id: int = 0  # outbox row, for at_least_once


class DeliveryError(Exception):
    """A send that did not fully succeed.

    ``acked`` items at the start of the batch were acknowledged; the next one
    failed. ``retry`` says whether trying it again can help (timeouts, 5xx) or not
    (a 400): then that item is given up, counted as failed.
    """

    def __init__(self, reason: str, *, retry: bool, acked: int = 0, retry_after: float | None = None) -> None:
        super().__init__(reason)
        self.retry = retry
        self.acked = acked
        self.retry_after = retry_after


class Transport(Protocol):
    """Talks to one peer. Called only from its sink's thread."""

    name: str
    max_batch: int  # most items per send call

    def send(self, items: list[Item]) -> None:
        """Deliver every item, returning once the peer acknowledged them; DeliveryError otherwise."""

    def close(self) -> None:
        """Release connections (say goodbye where the protocol has a way)."""


@dataclass
class SinkStats:
    accepted: int = 0  # taken into the queue (at_least_once: committed to the outbox)
    delivered: int = 0  # acknowledged by the peer
    failed: int = 0  # given up: the peer refused them for good
    retried: int = 0  # attempts after a failure
    dropped: int = 0  # discarded: memory queue full, or outbox bounds
    filtered: int = 0  # not sent because of the camera's send/max_rate settings
    outbox: int = 0  # rows waiting in the outbox
    last_error: str | None = None


@dataclass
class CameraFilter:
    """What one camera sends to one sink: every frame, frames with detections, or changes; rate-capped."""

    config: CameraSinkConfig
    _last_objects: frozenset[tuple[int, int]] | None = None
    _last_sent: float = float("-inf")
    pending: FrameResult | None = field(default=None)

    def admit(self, result: FrameResult, now: float) -> bool:
        """Whether to send ``result`` now; a rate-capped one may be kept as ``pending`` (newest wins)."""
        send = self.config.send
        dets = result.detections
        if send == "detections" and len(dets) == 0:
            return False
        if send == "changes":
            ids = dets.tracker_id if dets.tracker_id is not None else [-1] * len(dets)
            classes = dets.class_id if dets.class_id is not None else [-1] * len(dets)
            objects = frozenset(zip((int(i) for i in ids), (int(c) for c in classes), strict=True))
            if objects == self._last_objects:
                return False
            self._last_objects = objects
        if self.config.max_rate is None:
            return True
        if now - self._last_sent >= 1.0 / self.config.max_rate:
            self._last_sent = now
            self.pending = None
            return True
        self.pending = result
        return False

    def due(self, now: float) -> FrameResult | None:
        """The pending result once its slot in the rate has come."""
        if self.pending is None or self.config.max_rate is None:
            return None
        if now - self._last_sent < 1.0 / self.config.max_rate:
            return None
        result, self.pending = self.pending, None
        self._last_sent = now
        return result

    def next_due(self) -> float | None:
        if self.pending is None or self.config.max_rate is None:
            return None
        return self._last_sent + 1.0 / self.config.max_rate


class SinkRunner:
    """Runs one transport in a thread behind a bounded queue and, for at_least_once, an outbox."""

    def __init__(
        self,
        transport: Transport,
        queue_size: int,
        retry: RetryConfig | None = None,
        outbox: Outbox | None = None,
        accept_all: bool = False,
    ) -> None:
        self.transport = transport
        self.name = transport.name
        self.stats = SinkStats()
        self._queue: collections.deque[FrameResult] = collections.deque()
        self._size = queue_size
        self._cond = threading.Condition()
        self._stop = threading.Event()
        self._filters: dict[str, CameraFilter] = {}
        self._accept_all = accept_all  # ZeroMQ: every camera, every frame
        self._outbox = outbox
        retry = retry or RetryConfig()
        self._backoff = Backoff(retry.initial_s, retry.max_s)
        self._retry_at = 0.0
        self._held: list[Item] = []  # at_most_once: the batch being retried
        self._refusals = 0
        self._log = get_logger(sink=transport.name)
        self._threads = [threading.Thread(target=self._run, name=f"sink-{transport.name}", daemon=True)]
        if outbox is not None:
            self._threads = [
                threading.Thread(target=self._run_writer, name=f"sink-{transport.name}-outbox", daemon=True),
                threading.Thread(target=self._run_sender, name=f"sink-{transport.name}", daemon=True),
            ]
        self._committed = threading.Event()  # the writer added rows: the sender may have work
        if outbox is not None:
            self.stats.outbox = outbox.count

    @property
    def depth(self) -> int:
        """Results waiting: in memory, plus in the outbox."""
        return len(self._queue) + len(self._held) + (self._outbox.count if self._outbox else 0)

    def set_filter(self, camera: str, config: CameraSinkConfig) -> None:
        """What ``camera`` sends here; cameras without a filter send nothing unless ``accept_all``."""
        with self._cond:
            self._filters[camera] = CameraFilter(config)

    def remove_camera(self, camera: str) -> None:
        with self._cond:
            self._filters.pop(camera, None)

    def start(self) -> None:
        for thread in self._threads:
            thread.start()

    def offer(self, result: FrameResult) -> None:
        """Queue a result if its camera sends it here; never blocks (the oldest is dropped when full)."""
        with self._cond:
            filt = self._filters.get(result.camera)
            if filt is None and not self._accept_all:
                return
            if filt is not None and not filt.admit(result, time.monotonic()):
                self.stats.filtered += 1
                self._cond.notify()  # a pending result may need a wake-up to be flushed later
                return
            self._enqueue(result)

    def _enqueue(self, result: FrameResult) -> None:
        if len(self._queue) >= self._size:
            self._queue.popleft()
            self.stats.dropped += 1
        self._queue.append(result)
        self.stats.accepted += self._outbox is None
        self._cond.notify()

    def stop(self) -> None:
        self._stop.set()
        with self._cond:
            self._cond.notify()

    def join(self, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        for thread in self._threads:
            thread.join(max(0.0, deadline - time.monotonic()))
        done = not any(t.is_alive() for t in self._threads)
        if done and self._outbox is not None:
            self._outbox.close()
        return done

    # --- the sink's thread ---------------------------------------------------------------------

    def _run(self) -> None:
        """at_most_once: one thread takes results from memory and sends them."""
        try:
            while not self._stop.is_set():
                fresh = self._wait_for_work(backlog=lambda: bool(self._held))
                self._held.extend(Item(r.camera, encode_frame(r)) for r in fresh)
                overflow = len(self._held) - self._size
                if overflow > 0:  # still bounded while a peer is down
                    del self._held[:overflow]
                    self.stats.dropped += overflow
                if time.monotonic() >= self._retry_at:
                    self._send_held()
        except Exception:
            self._log.exception("sink thread failed")
        finally:
            self._close_transport()

    def _run_writer(self) -> None:
        """at_least_once: commit results to the outbox as they come, never waiting on the peer."""
        try:
            while not self._stop.is_set():
                self._commit(self._wait_for_work(backlog=lambda: False))
        except Exception:
            self._log.exception("outbox writer failed")
        finally:
            with self._cond:
                rest = list(self._queue)
                self._queue.clear()
            self._commit(rest)  # what was offered before a clean stop is kept

    def _run_sender(self) -> None:
        """at_least_once: send the oldest rows, delete them once acknowledged."""
        assert self._outbox is not None
        try:
            while not self._stop.is_set():
                wait = self._retry_at - time.monotonic()
                if wait > 0:
                    self._stop.wait(min(wait, 0.5))
                    continue
                if not self._outbox.count:
                    self._committed.wait(0.5)
                    self._committed.clear()
                    continue
                self._send_from_outbox()
        except Exception:
            self._log.exception("sink sender failed")
        finally:
            self._close_transport()

    def _close_transport(self) -> None:
        try:
            self.transport.close()
        except Exception as exc:
            self._log.warning("sink close failed", error=repr(exc))

    def _wait_for_work(self, backlog: Callable[[], bool]) -> list[FrameResult]:
        with self._cond:
            while True:
                now = time.monotonic()
                for filt in self._filters.values():
                    result = filt.due(now)
                    if result is not None:
                        self._enqueue(result)
                have_backlog = backlog()
                ready_to_send = have_backlog and now >= self._retry_at
                if self._queue or ready_to_send or self._stop.is_set():
                    fresh = list(self._queue)
                    self._queue.clear()
                    return fresh
                deadlines = [d for d in (f.next_due() for f in self._filters.values()) if d is not None]
                if have_backlog:
                    deadlines.append(self._retry_at)
                timeout = min([0.5, *[max(d - now, 0.001) for d in deadlines]])
                self._cond.wait(timeout)

    def _commit(self, results: list[FrameResult]) -> None:
        assert self._outbox is not None
        if not results:
            return
        dropped = self._outbox.add([(r.camera, encode_frame(r)) for r in results])
        self.stats.accepted += len(results)
        self.stats.outbox = self._outbox.count
        self._committed.set()
        if dropped:
            self.stats.dropped += dropped
            self._log.warning("outbox bounds reached: dropped the oldest", dropped=dropped,
                              outbox=self._outbox.count)  # fmt: skip

    def _send_from_outbox(self) -> None:
        assert self._outbox is not None
        rows = self._outbox.peek(0, self.transport.max_batch)
        if not rows:
            return
        items = [Item(r.camera, r.payload, r.id) for r in rows]
        acked, gave_up = self._attempt(items)
        self._outbox.remove([i.row_id for i in items[: acked + gave_up]])
        self.stats.outbox = self._outbox.count

    def _send_held(self) -> None:
        if not self._held:
            return
        items = self._held[: self.transport.max_batch]
        acked, gave_up = self._attempt(items)
        del self._held[: acked + gave_up]

    def _attempt(self, items: list[Item]) -> tuple[int, int]:
        """Send; returns (acknowledged, given up) counted from the start of ``items``."""
        try:
            self.transport.send(items)
        except DeliveryError as exc:
            self.stats.delivered += exc.acked
            self.stats.last_error = str(exc)
            if exc.retry:
                self.stats.retried += 1
                delay = max(self._backoff.next(), exc.retry_after or 0.0)
                self._retry_at = time.monotonic() + delay
                if self._backoff.attempts in (1, 2) or self._backoff.attempts % 10 == 0:
                    self._log.warning(
                        "delivery failed; will retry",
                        error=str(exc),
                        retry_in_s=round(delay, 2),
                        attempt=self._backoff.attempts,
                        waiting=self.depth,
                    )
                return exc.acked, 0
            self.stats.failed += 1
            self._refusals += 1
            if self._refusals == 1 or self._refusals % 100 == 0:
                self._log.error(
                    "peer refused a message; not retrying",
                    error=str(exc),
                    refused=self._refusals,
                    camera=items[exc.acked].camera,
                )
            return exc.acked, 1
        except Exception as exc:  # a transport bug: keep the data, back off, tell
            self.stats.retried += 1
            self.stats.last_error = repr(exc)
            self._retry_at = time.monotonic() + self._backoff.next()
            self._log.exception("delivery raised unexpectedly", error=repr(exc))
            return 0, 0
        self.stats.delivered += len(items)
        if self._backoff.attempts:
            self._log.info("delivery recovered", after_attempts=self._backoff.attempts)
        self._backoff.reset()
        self._retry_at = 0.0
        return len(items), 0
