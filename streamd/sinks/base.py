"""What every sink shares: per-camera filters, a bounded queue, a thread, a delivery policy.

What a camera sends a sink: its frames (all, with detections, on changes, or none, at
most ``max_rate`` a second) and, when asked, its events and the retained states of its
lines and zones (transports that keep state, MQTT). Events are never held back by
``max_rate``: a frame held back still lets the events of its result through.

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

Both threads are supervised components: a result that cannot be encoded is counted
as failed and skipped; anything else that raises restarts the thread after a
backoff, with what it held kept (the writer puts uncommitted results back). On
stop, the writer commits everything offered so far, and at_most_once makes one
last attempt to send what is in memory.
"""

from __future__ import annotations

import collections
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol

from streamd.analytics.events import Event, StateUpdate
from streamd.backoff import Backoff
from streamd.config import CameraSinkConfig, RetryConfig
from streamd.log import Throttle, get_logger
from streamd.message import encode_frame
from streamd.redact import redact
from streamd.sinks.outbox import Outbox
from streamd.supervise import Component
from streamd.types import FrameResult

__all__ = ["CameraFilter", "DeliveryError", "Item", "Outgoing", "SinkRunner", "SinkStats", "Transport"]


@dataclass(frozen=True, slots=True)
class Item:
    """One encoded message on its way to a peer."""

    camera: str
    payload: bytes
    row_id: int = 0  # outbox row, for at_least_once
    queued: float = 0.0  # time.time() it was queued or committed, for the batch fill wait
    kind: str = "frame"  # frame (streamd.frame/1), event (streamd.event/1) or state (streamd.state/1)
    key: str = ""  # a state's line or zone: "lines/<name>", "zones/<name>"


@dataclass(frozen=True, slots=True)
class Outgoing:
    """One result, and what of it a sink sends: the frame's message, some events, some states."""

    result: FrameResult
    frame: bool
    events: tuple[Event, ...] = ()
    states: tuple[StateUpdate, ...] = ()

    @property
    def messages(self) -> int:
        return int(self.frame) + len(self.events) + len(self.states)


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
    fill: int  # a send waits for this many items...
    fill_wait_s: float  # ...for at most this long after the oldest was queued (0: never waits)
    keeps_state: bool  # it takes the retained states of lines and zones (MQTT)

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
    filtered: int = 0  # frames not sent because of the camera's send/max_rate settings
    outbox: int = 0  # rows waiting in the outbox
    last_error: str | None = None


@dataclass
class CameraFilter:
    """What one camera sends to one sink: every frame, frames with detections, or changes; rate-capped."""

    config: CameraSinkConfig
    _last_objects: frozenset[tuple[int, int]] | None = None
    _last_sent: float = float("-inf")
    pending: FrameResult | None = field(default=None)

    def events(self, result: FrameResult) -> tuple[Event, ...]:
        """The result's events this camera sends to this sink."""
        wanted = self.config.events
        if not wanted or not result.events:
            return ()
        return result.events if wanted is True else tuple(e for e in result.events if e.type in wanted)

    def admit(self, result: FrameResult, now: float) -> bool:
        """Whether to send the frame of ``result`` now; a rate-capped one may wait as ``pending``."""
        send = self.config.send
        dets = result.detections
        if send == "none" or (send == "detections" and len(dets) == 0):
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
        self._queue: collections.deque[Outgoing] = collections.deque()
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
        self._encode_throttle = Throttle(60.0)
        name = f"sink/{transport.name}"
        if outbox is None:
            self.sender = Component(name, self._run, self._stop, sink=transport.name)
            self.components = [self.sender]
        else:
            self.writer = Component(f"{name}/outbox", self._run_writer, self._stop, sink=transport.name)
            self.sender = Component(name, self._run_sender, self._stop, sink=transport.name)
            self.components = [self.writer, self.sender]
        self._committed = threading.Event()  # the writer added rows: the sender may have work
        self._closed = False
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
        for component in self.components:
            component.start()

    def offer(self, result: FrameResult) -> None:
        """Queue what of a result its camera sends here; never blocks (the oldest is dropped when full)."""
        with self._cond:
            filt = self._filters.get(result.camera)
            if filt is None and not self._accept_all:
                return
            if filt is None:  # ZeroMQ: every frame and every event
                out = Outgoing(result, True, result.events)
            else:
                frame = filt.admit(result, time.monotonic())
                events = filt.events(result)
                states = result.states if self.transport.keeps_state and filt.config.events else ()
                if not frame:
                    self.stats.filtered += 1
                    self._cond.notify()  # a pending result may need a wake-up to be flushed later
                out = Outgoing(result, frame, events, states)
            if out.messages:
                self._enqueue(out)

    def _enqueue(self, out: Outgoing) -> None:
        if self._stop.is_set():  # too late: counted, never silently lost
            self.stats.dropped += out.messages
            return
        if len(self._queue) >= self._size:
            self.stats.dropped += self._queue.popleft().messages
        self._queue.append(out)
        self.stats.accepted += out.messages if self._outbox is None else 0
        self._cond.notify()

    def stop(self) -> None:
        self._stop.set()
        with self._cond:
            self._cond.notify_all()

    def join(self, timeout: float) -> bool:
        """Wait for the threads, then close the transport and the outbox; True when all ended."""
        deadline = time.monotonic() + timeout
        ended = [c.join(max(0.0, deadline - time.monotonic())) for c in self.components]  # join every one
        done = all(ended)
        if done and not self._closed:
            self._closed = True
            self._close_transport()
            if self._outbox is not None:
                self._outbox.close()
        return done

    # --- the sink's threads --------------------------------------------------------------------

    def _run(self) -> None:
        """at_most_once: one thread takes results from memory and sends them."""
        while not self._stop.is_set():
            self._hold(self._wait_for_work(backlog=self._held_due))
            if time.monotonic() >= self._retry_at and self._batch_ready(self._held):
                self._send_held()
            self.sender.beat()
        # Stopping: the workers are done, so this is the last of the results; one attempt.
        with self._cond:
            rest = list(self._queue)
            self._queue.clear()
        self._hold(rest)
        while self._held and self._send_held(final=True):
            pass
        if self._held:  # the peer refused the last attempt: these are lost, and counted
            self.stats.dropped += len(self._held)
            self._held.clear()

    def _held_due(self) -> float | None:
        """When the at_most_once backlog wants sending (retry and batch fill waits), or None."""
        if not self._held:
            return None
        fill_due = self._held[0].queued + self.transport.fill_wait_s - time.time() + time.monotonic()
        return self._retry_at if self._batch_ready(self._held) else max(self._retry_at, fill_due)

    def _hold(self, entries: list[Outgoing]) -> None:
        now = time.time()
        for out in entries:
            self._held.extend(self._encode(out, now))
        overflow = len(self._held) - self._size
        if overflow > 0:  # still bounded while a peer is down
            del self._held[:overflow]
            self.stats.dropped += overflow

    def _encode(self, out: Outgoing, now: float) -> list[Item]:
        """The messages of an entry; one that cannot be encoded is counted as failed, logged and skipped."""
        camera = out.result.camera
        parts: list[tuple[str, str, object]] = [("frame", "", out.result)] if out.frame else []
        parts += [("event", "", e) for e in out.events] + [("state", s.key, s) for s in out.states]
        items = []
        for kind, key, part in parts:
            try:
                if isinstance(part, Event):
                    payload = part.encode()
                elif isinstance(part, StateUpdate):
                    payload = part.payload
                else:
                    payload = encode_frame(out.result)
            except Exception as exc:
                self.stats.failed += 1
                self.stats.last_error = redact(f"cannot encode a {kind} of {camera}: {exc!r}")
                held = self._encode_throttle.ready()
                if held is not None:
                    self._log.exception("cannot encode a result; skipped", camera=camera, kind=kind,
                                        repeats_not_logged=held)  # fmt: skip
                continue
            items.append(Item(camera, payload, queued=now, kind=kind, key=key))
        return items

    def _batch_ready(self, items: list[Item]) -> bool:
        """Whether to send now: enough items, or the oldest has waited its fill time (or stopping)."""
        transport = self.transport
        if not items:
            return False
        if len(items) >= transport.fill or transport.fill_wait_s <= 0 or self._stop.is_set():
            return True
        return time.time() - items[0].queued >= transport.fill_wait_s

    def _run_writer(self) -> None:
        """at_least_once: commit results to the outbox as they come, never waiting on the peer."""
        while not self._stop.is_set():
            self._commit(self._wait_for_work(backlog=lambda: None))
            self.writer.beat()
        with self._cond:
            rest = list(self._queue)
            self._queue.clear()
        self._commit(rest)  # what was offered before a clean stop is kept

    def _run_sender(self) -> None:
        """at_least_once: send the oldest rows, delete them once acknowledged."""
        assert self._outbox is not None
        while not self._stop.is_set():
            self.sender.beat(max(0.0, self._retry_at - time.monotonic()))
            wait = self._retry_at - time.monotonic()
            if wait > 0:
                self._stop.wait(min(wait, 0.5))
                continue
            if not self._outbox.count:
                self._committed.wait(0.5)
                self._committed.clear()
                continue
            self._send_from_outbox()

    def _close_transport(self) -> None:
        try:
            self.transport.close()
        except Exception as exc:
            self._log.warning("sink close failed", error=repr(exc))

    def _wait_for_work(self, backlog: Callable[[], float | None]) -> list[Outgoing]:
        """New results, once there are some, or the backlog is due (monotonic time), or on stop."""
        with self._cond:
            while True:
                now = time.monotonic()
                for filt in self._filters.values():
                    result = filt.due(now)
                    if result is not None:  # its events went out with it already
                        self._enqueue(Outgoing(result, True))
                due = backlog()
                if self._queue or (due is not None and now >= due) or self._stop.is_set():
                    fresh = list(self._queue)
                    self._queue.clear()
                    return fresh
                deadlines = [d for d in (f.next_due() for f in self._filters.values()) if d is not None]
                if due is not None:
                    deadlines.append(due)
                timeout = min([0.5, *[max(d - now, 0.001) for d in deadlines]])
                self._cond.wait(timeout)

    def _commit(self, entries: list[Outgoing]) -> None:
        assert self._outbox is not None
        if not entries:
            return
        now = time.time()
        items = [item for out in entries for item in self._encode(out, now)]
        try:
            dropped = self._outbox.add([(i.camera, i.payload, i.kind, i.key) for i in items])
        except Exception:
            # Not committed: put them back in front, so a restart of the writer commits them.
            with self._cond:
                self._queue.extendleft(reversed(entries))
                while len(self._queue) > self._size:
                    self.stats.dropped += self._queue.popleft().messages
            raise
        self.stats.accepted += len(items)
        self.stats.outbox = self._outbox.count
        self._committed.set()
        if dropped:
            self.stats.dropped += dropped
            self._log.warning("outbox bounds reached: dropped the oldest", dropped=dropped,
                              outbox=self._outbox.count)  # fmt: skip

    def _send_from_outbox(self) -> None:
        assert self._outbox is not None
        rows = self._outbox.peek(0, self.transport.max_batch)
        items = [Item(r.camera, r.payload, r.id, r.created, r.kind, r.key) for r in rows]
        if not self._batch_ready(items):
            if items:  # wait for the batch to fill, or its oldest to have waited long enough
                self._stop.wait(max(0.001, items[0].queued + self.transport.fill_wait_s - time.time()))
            return
        acked, gave_up = self._attempt(items)
        self._outbox.remove([i.row_id for i in items[: acked + gave_up]])
        self.stats.outbox = self._outbox.count

    def _send_held(self, final: bool = False) -> bool:
        """Send the oldest held batch; True when some of it was acknowledged or given up."""
        if not self._held:
            return False
        items = self._held[: self.transport.max_batch]
        acked, gave_up = self._attempt(items, log=not final)
        del self._held[: acked + gave_up]
        return acked + gave_up > 0

    def _attempt(self, items: list[Item], log: bool = True) -> tuple[int, int]:
        """Send; returns (acknowledged, given up) counted from the start of ``items``."""
        try:
            self.transport.send(items)
        except DeliveryError as exc:
            self.stats.delivered += exc.acked
            self.stats.last_error = redact(str(exc))
            if exc.retry:
                self.stats.retried += 1
                delay = max(self._backoff.next(), exc.retry_after or 0.0)
                self._retry_at = time.monotonic() + delay
                if log and (self._backoff.attempts in (1, 2) or self._backoff.attempts % 10 == 0):
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
            self.stats.last_error = redact(repr(exc))
            self._retry_at = time.monotonic() + self._backoff.next()
            self._log.exception("delivery raised unexpectedly", error=repr(exc))
            return 0, 0
        self.stats.delivered += len(items)
        if self._backoff.attempts:
            self._log.info("delivery recovered", after_attempts=self._backoff.attempts)
        self._backoff.reset()
        self._retry_at = 0.0
        return len(items), 0
