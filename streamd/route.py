"""A camera's stage after inference: tracking, then analytics, then the FrameResult its sinks get.

The route owns everything stateful about one camera's results: the tracker and the
analytics (lines, zones, track lifecycle), and what reload keeps or replaces. Several
workers may share a route (the board serialises a camera's frames), so its calls never
overlap. It also keeps the newest result, which the live view reads.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np
import supervision as sv

from streamd.analytics.stage import CameraAnalytics
from streamd.config import CameraConfig, effective_fps
from streamd.log import Throttle, get_logger
from streamd.redact import redact
from streamd.sources import CameraStats
from streamd.track import CameraTracker
from streamd.types import Frame, FrameResult, Timings

__all__ = ["CameraRoute"]


@dataclass
class CameraRoute:
    """What the worker keeps per camera, and the stage that turns detections into its result."""

    config: CameraConfig
    stats: CameraStats
    class_ids: np.ndarray | None
    tracker: CameraTracker | None = field(default=None)
    analytics: CameraAnalytics | None = field(default=None)
    latest: FrameResult | None = field(default=None, repr=False)  # the newest result (for the live view)
    _throttle: Throttle = field(default_factory=lambda: Throttle(60.0), repr=False)

    def tracker_for(self) -> CameraTracker:
        # Built at the first frame, when the stream's real rate is known.
        if self.tracker is None:
            fps = effective_fps(self.config, self.stats.stream_fps)
            self.tracker = CameraTracker(self.config, self.class_ids, fps)
        return self.tracker

    def finish(self, frame: Frame, detections: sv.Detections, wait_s: float, infer_s: float) -> FrameResult:
        """Track one frame's detections, run its analytics, and build its result (timings up to now)."""
        t_track = time.monotonic()
        tracked = self.tracker_for().update(detections, frame.t_scene, frame.video)
        events, states = self.analytics.update(frame, tracked) if self.analytics is not None else ((), ())
        t_done = time.monotonic()
        result = FrameResult(
            camera=frame.camera,
            seq=frame.seq,
            ts=frame.ts,
            width=frame.width,
            height=frame.height,
            detections=tracked,
            timings=Timings(
                decode=frame.decode_s,
                wait=wait_s,
                infer=infer_s,
                track=t_done - t_track,
                total=t_done - frame.t_capture,
            ),
            t_capture=frame.t_capture,
            events=events,
            states=states,
            picture=frame.video,
        )
        self.latest = result
        return result

    def succeeded(self) -> None:
        """A frame of this camera went through: its processing problem, if any, is over."""
        if self.stats.processing_error is not None:
            self.stats.processing_error = None
            self._throttle.reset()
            get_logger(camera=self.config.id).info("camera frames are processed again")
        self.stats.processed += 1

    def failed(self, stage: str, exc: Exception) -> None:
        """A frame of this camera failed in ``stage``: counted, shown in health, logged (throttled)."""
        error = redact(f"{stage}: {type(exc).__name__}: {exc}")
        first = self.stats.processing_error is None
        self.stats.errors += 1
        self.stats.processing_error = error
        held = self._throttle.ready()
        if held is not None:
            log = get_logger(camera=self.config.id, stage=stage)
            (log.exception if first else log.error)(
                "camera frame failed", error=error, errors=self.stats.errors, repeats_not_logged=held
            )
