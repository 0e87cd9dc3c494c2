"""Newest-frame slots: the hand-over between camera threads and an inference worker.

There is no queue. Each camera owns one slot that holds its newest decoded frame;
a frame overwritten before the worker took it is counted as dropped. The worker
takes the newest unseen frame of several cameras at once, round-robin, so a busy
camera cannot starve the others. Several workers may share a board: a camera
whose frame is being processed is skipped until that worker releases it, so each
camera's frames are tracked one at a time and in order.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Generic, TypeVar

__all__ = ["FrameBoard", "Slot"]

T = TypeVar("T")


@dataclass
class _Entry(Generic[T]):
    item: T | None = None
    t_put: float = 0.0


class Slot(Generic[T]):
    """A camera's newest-frame slot on a board. Only the camera thread calls ``put``."""

    def __init__(self, board: FrameBoard[T], key: str, on_drop: Callable[[], None]) -> None:
        self._board = board
        self.key = key
        self._on_drop = on_drop
        self.entry: _Entry[T] = _Entry()
        self.live = False  # the camera is streaming: a batch may wait for its next frame

    def set_live(self, live: bool) -> None:
        """The camera started or stopped streaming (a batch waits only for cameras that can deliver)."""
        with self._board.cond:
            self.live = live
            self._board.cond.notify_all()

    def put(self, item: T, wait_taken: threading.Event | None = None) -> None:
        """Offer a frame. Overwrites (and counts as dropped) an unseen one.

        With ``wait_taken`` (a stop event), wait until the previous frame was taken
        instead of dropping it: replay of a file as fast as the worker goes.
        """
        cond = self._board.cond
        with cond:
            if wait_taken is not None:
                while self.entry.item is not None and not wait_taken.is_set():
                    cond.wait(0.1)
            if self.entry.item is not None:
                self._on_drop()
            self.entry.item = item
            self.entry.t_put = time.monotonic()
            cond.notify_all()


class FrameBoard(Generic[T]):
    """The slots of every camera served by one worker."""

    def __init__(self) -> None:
        self.cond = threading.Condition()
        self._slots: dict[str, Slot[T]] = {}
        self._order: list[str] = []
        self._next = 0
        self._busy: set[str] = set()

    def add(self, key: str, on_drop: Callable[[], None]) -> Slot[T]:
        """Create the slot of a camera."""
        with self.cond:
            if key in self._slots:
                raise KeyError(f"slot {key!r} exists")
            slot: Slot[T] = Slot(self, key, on_drop)
            self._slots[key] = slot
            self._order.append(key)
            return slot

    def remove(self, key: str) -> None:
        """Drop a camera's slot; an unseen frame in it is discarded."""
        with self.cond:
            self._slots.pop(key, None)
            self._busy.discard(key)
            if key in self._order:
                self._order.remove(key)
            self._next = 0
            self.cond.notify_all()

    def take(self, max_items: int, timeout: float, fill_wait: float = 0.0) -> list[T]:
        """Take up to ``max_items`` unseen frames from distinct cameras, waiting up to ``timeout``.

        Cameras are visited round-robin from where the last call stopped. With
        ``fill_wait``, once one frame is ready, wait up to that long for more cameras
        to fill the batch (dynamic batching on a GPU trades a few ms for throughput):
        only for cameras that can deliver, streaming and not in another worker's hands.
        """
        deadline = time.monotonic() + timeout
        with self.cond:
            while self._ready_count() == 0:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return []
                self.cond.wait(remaining)
            if fill_wait > 0:
                fill_deadline = time.monotonic() + fill_wait
                while self._ready_count() < min(max_items, self._deliverable_count()):
                    remaining = fill_deadline - time.monotonic()
                    if remaining <= 0:
                        break
                    self.cond.wait(remaining)
            taken = self._take_ready(max_items)
            self.cond.notify_all()  # wake replay sources waiting for their slot to empty
            return taken

    def release(self, keys: list[str]) -> None:
        """Let the board hand out these cameras' frames again (their taken frames are done)."""
        with self.cond:
            self._busy.difference_update(keys)
            self.cond.notify_all()

    def _deliverable_count(self) -> int:
        """Cameras whose frame is ready, or that stream and are not being processed elsewhere."""
        return sum(
            1
            for key, slot in self._slots.items()
            if key not in self._busy and (slot.entry.item is not None or slot.live)
        )

    def _ready_count(self) -> int:
        return sum(
            1 for key, slot in self._slots.items() if slot.entry.item is not None and key not in self._busy
        )

    def _take_ready(self, max_items: int) -> list[T]:
        n = len(self._order)
        taken: list[T] = []
        for i in range(n):
            key = self._order[(self._next + i) % n]
            entry = self._slots[key].entry
            if entry.item is None or key in self._busy:
                continue
            taken.append(entry.item)
            entry.item = None
            self._busy.add(key)
            if len(taken) == max_items:
                self._next = (self._next + i + 1) % n
                return taken
        if taken:
            self._next = (self._next + 1) % max(n, 1)
        return taken
