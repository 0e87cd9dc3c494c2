"""The inference worker: newest frames of its cameras in, FrameResults out to the sinks.

One worker per model:

    take the newest unseen frame of up to max_batch cameras (round-robin)
    -> letterbox from YUV -> input tensor -> run the session -> decode + NMS
    -> track each camera -> publish

Pipelined (the default on GPUs), a prep thread does the first three steps while
the worker thread infers the previous batch; between them is a single-place
hand-over, so under overload frames are at most one inference older than without
it, and when idle nothing waits at all. On a CPU the cores are already busy with
inference, so pipelining there only adds that latency (measured: 8 cameras x 25 fps
on 2 cores, same 40 fps processed, p50 latency 49 -> 96 ms); it is off.
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from streamd.config import CameraConfig, effective_fps
from streamd.detect import Detector
from streamd.detect.detector import Prepared
from streamd.log import get_logger
from streamd.slot import FrameBoard
from streamd.sources import CameraStats
from streamd.track import CameraTracker
from streamd.types import Frame, FrameResult, Timings

__all__ = ["CameraRoute", "InferenceWorker"]


@dataclass
class CameraRoute:
    """What the worker keeps per camera."""

    config: CameraConfig
    stats: CameraStats
    class_ids: np.ndarray | None
    tracker: CameraTracker | None = field(default=None)

    def tracker_for(self) -> CameraTracker:
        # Built at the first frame, when the stream's real rate is known.
        if self.tracker is None:
            fps = effective_fps(self.config, self.stats.stream_fps)
            self.tracker = CameraTracker(self.config, self.class_ids, fps)
        return self.tracker


@dataclass(frozen=True)
class _Batch:
    frames: list[Frame]
    prepared: Prepared
    t_take: float
    t_prepared: float


class InferenceWorker:
    """Runs detection and tracking for the cameras on one board."""

    def __init__(
        self,
        detector: Detector,
        board: FrameBoard[Frame],
        publish: Callable[[FrameResult], None],
        idle_wait_s: float = 0.25,
        index: int = 0,
    ) -> None:
        self.detector = detector
        self.board = board
        self._publish = publish
        self._routes: dict[str, CameraRoute] = {}
        self._idle_wait = idle_wait_s
        self._stop = threading.Event()
        self._handover: queue.Queue[_Batch] = queue.Queue(maxsize=1)
        self._log = get_logger(model=detector.name, worker=index)
        suffix = f"-{index}" if index else ""
        self._threads = (
            [
                threading.Thread(
                    target=self._prepare_loop, name=f"prep-{detector.name}{suffix}", daemon=True
                ),
                threading.Thread(
                    target=self._infer_loop, name=f"worker-{detector.name}{suffix}", daemon=True
                ),
            ]
            if detector.pipeline
            else [
                threading.Thread(
                    target=self._serial_loop, name=f"worker-{detector.name}{suffix}", daemon=True
                )
            ]
        )
        self._progress = [time.monotonic(), time.monotonic()]  # prep, infer
        self.errors = 0

    @property
    def last_progress(self) -> float:
        """Monotonic time both loops last went round: a watchdog's view of a wedged worker."""
        return min(self._progress)

    def add_camera(self, route: CameraRoute) -> None:
        self._routes = {**self._routes, route.config.id: route}  # copy-on-write: loops read without a lock

    def route(self, camera_id: str) -> CameraRoute | None:
        return self._routes.get(camera_id)

    def remove_camera(self, camera_id: str) -> None:
        self._routes = {k: v for k, v in self._routes.items() if k != camera_id}

    def start(self) -> None:
        self._log.info(
            "worker started",
            provider=self.detector.provider,
            max_batch=self.detector.max_batch,
            batch_wait_s=self.detector.batch_wait_s,
            io_binding=self.detector.io_binding,
            pipeline=self.detector.pipeline,
        )
        for thread in self._threads:
            thread.start()

    def stop(self) -> None:
        self._stop.set()

    def join(self, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        for thread in self._threads:
            thread.join(max(0.0, deadline - time.monotonic()))
        return not any(t.is_alive() for t in self._threads)

    def _take_and_prepare(self) -> _Batch | None:
        frames = self.board.take(self.detector.max_batch, self._idle_wait, self.detector.batch_wait_s)
        self._progress[0] = time.monotonic()
        if not frames:
            return None
        t_take = time.monotonic()
        try:
            prepared = self.detector.prepare([f.picture for f in frames])
        except Exception as exc:
            self.errors += 1
            self._log.exception("preprocessing failed", cameras=[f.camera for f in frames], error=repr(exc))
            self.board.release([f.camera for f in frames])
            return None
        return _Batch(frames, prepared, t_take, time.monotonic())

    def _serial_loop(self) -> None:
        while not self._stop.is_set():
            batch = self._take_and_prepare()
            if batch is not None:
                self.process(batch)
            self._progress[1] = time.monotonic()
        self._log.info("worker stopped")

    def _prepare_loop(self) -> None:
        while not self._stop.is_set():
            batch = self._take_and_prepare()
            if batch is None:
                continue
            while not self._stop.is_set():
                try:
                    self._handover.put(batch, timeout=self._idle_wait)
                    break
                except queue.Full:
                    continue

    def _infer_loop(self) -> None:
        while not self._stop.is_set():
            try:
                batch = self._handover.get(timeout=self._idle_wait)
            except queue.Empty:
                self._progress[1] = time.monotonic()
                continue
            self.process(batch)
            self._progress[1] = time.monotonic()
        self._log.info("worker stopped")

    def process(self, batch: _Batch) -> None:
        """Infer, track and publish one batch; a failure is logged with its cameras and counted."""
        try:
            self._process(batch)
        finally:
            self.board.release([f.camera for f in batch.frames])

    def _process(self, batch: _Batch) -> None:
        t_start = time.monotonic()
        try:
            detections = self.detector.infer(batch.prepared)
        except Exception as exc:
            self.errors += 1
            self._log.exception("inference failed", cameras=[f.camera for f in batch.frames], error=repr(exc))
            return
        t_inferred = time.monotonic()
        prep_s = batch.t_prepared - batch.t_take
        for frame, dets in zip(batch.frames, detections, strict=True):
            route = self._routes.get(frame.camera)
            if route is None:  # the camera was removed while its frame was in flight
                continue
            try:
                t_track = time.monotonic()
                tracked = route.tracker_for().update(dets, frame.t_capture)
                t_done = time.monotonic()
            except Exception as exc:
                self.errors += 1
                self._log.exception("tracking failed", camera=frame.camera, error=repr(exc))
                continue
            route.stats.processed += 1
            self._publish(
                FrameResult(
                    camera=frame.camera,
                    seq=frame.seq,
                    ts=frame.ts,
                    width=frame.width,
                    height=frame.height,
                    detections=tracked,
                    timings=Timings(
                        decode=frame.decode_s,
                        # in the slot, plus in the hand-over while the previous batch ran
                        wait=(batch.t_take - frame.t_ready) + (t_start - batch.t_prepared),
                        infer=prep_s + (t_inferred - t_start),
                        track=t_done - t_track,
                        total=t_done - frame.t_capture,
                    ),
                    t_capture=frame.t_capture,
                )
            )
