"""The inference worker: newest frames of its cameras in, FrameResults out to the sinks.

One worker per model. It takes the newest unseen frame of up to ``max_batch``
cameras (round-robin), infers them in one batch when the model allows, tracks
each camera's detections, and hands each result to the sinks without waiting.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from streamd.config import CameraConfig, effective_fps
from streamd.detect import Detector
from streamd.log import get_logger
from streamd.slot import FrameBoard
from streamd.sources import CameraStats, Decoded
from streamd.track import CameraTracker
from streamd.types import FrameResult, Timings

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


class InferenceWorker:
    """Runs detection and tracking for the cameras on one board."""

    def __init__(
        self,
        detector: Detector,
        board: FrameBoard[Decoded],
        publish: Callable[[FrameResult], None],
        idle_wait_s: float = 0.25,
    ) -> None:
        self.detector = detector
        self.board = board
        self._publish = publish
        self._routes: dict[str, CameraRoute] = {}
        self._idle_wait = idle_wait_s
        self._stop = threading.Event()
        self._log = get_logger(model=detector.name)
        self._thread = threading.Thread(target=self._run, name=f"worker-{detector.name}", daemon=True)
        self.last_progress = time.monotonic()  # for a watchdog: moves while the loop runs
        self.errors = 0

    def add_camera(self, route: CameraRoute) -> None:
        self._routes = {
            **self._routes,
            route.config.id: route,
        }  # copy-on-write: the loop reads without a lock

    def remove_camera(self, camera_id: str) -> None:
        self._routes = {k: v for k, v in self._routes.items() if k != camera_id}

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()

    def join(self, timeout: float) -> bool:
        self._thread.join(timeout)
        return not self._thread.is_alive()

    def _run(self) -> None:
        self._log.info(
            "worker started",
            provider=self.detector.provider,
            max_batch=self.detector.max_batch,
            batch_wait_s=self.detector.batch_wait_s,
            io_binding=self.detector.io_binding,
        )
        while not self._stop.is_set():
            batch = self.board.take(self.detector.max_batch, self._idle_wait, self.detector.batch_wait_s)
            self.last_progress = time.monotonic()
            if batch:
                self.process(batch)
        self._log.info("worker stopped")

    def process(self, batch: list[Decoded]) -> None:
        """Detect, track and publish one batch; a failure is logged with its cameras and counted."""
        t_take = time.monotonic()
        try:
            frames = [d.to_frame() for d in batch]
            detections = self.detector.detect([f.image for f in frames])
        except Exception as exc:
            self.errors += 1
            self._log.exception("inference failed", cameras=[d.camera for d in batch], error=repr(exc))
            return
        t_inferred = time.monotonic()
        for frame, dets in zip(frames, detections, strict=True):
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
                        wait=t_take - frame.t_ready,
                        infer=t_inferred - t_take,
                        track=t_done - t_track,
                        total=t_done - frame.t_capture,
                    ),
                    t_capture=frame.t_capture,
                )
            )
