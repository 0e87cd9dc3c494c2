"""Per-camera tracking: class filter, ByteTrack, box smoothing, confidence filter."""

from __future__ import annotations

import math
from typing import cast

import numpy as np
import supervision as sv
from trackers import ByteTrackTracker

from streamd.config import CameraConfig
from streamd.smoothing import BoxSmoother

__all__ = ["CameraTracker", "select"]

# trackers expresses its lost-track buffer in frames of a 30 fps video; with
# timestamps it turns that into seconds (buffer / 30), whatever the real rate.
_TRACKERS_REFERENCE_FPS = 30.0


def select(detections: sv.Detections, mask: np.ndarray) -> sv.Detections:
    """The rows of ``detections`` where ``mask`` is true, as a new Detections."""
    return cast(sv.Detections, detections[mask])


class CameraTracker:
    """Turns one camera's raw detections into its published detections."""

    def __init__(self, camera: CameraConfig, class_ids: np.ndarray | None, nominal_fps: float) -> None:
        self._classes = class_ids
        self._min_confidence = camera.min_confidence
        cfg = camera.tracker
        self._tracker = (
            ByteTrackTracker(
                lost_track_buffer=max(1, math.ceil(cfg.lost_track_s * _TRACKERS_REFERENCE_FPS)),
                frame_rate=nominal_fps,
                track_activation_threshold=cfg.activation_confidence,
                minimum_consecutive_frames=cfg.confirm_frames,
                minimum_iou_threshold=cfg.min_iou,
                high_conf_det_threshold=cfg.high_confidence,
            )
            if cfg.enabled
            else None
        )
        smooth = camera.smoothing
        self._smoother = (
            BoxSmoother(smooth.time_constant_s, forget_after_s=cfg.lost_track_s)
            if smooth.enabled and self._tracker is not None
            else None
        )

    def update(self, detections: sv.Detections, t: float) -> sv.Detections:
        """Published detections for a frame captured at monotonic time ``t``."""
        if self._classes is not None and len(detections):
            detections = select(detections, np.isin(np.asarray(detections.class_id), self._classes))
        if self._tracker is not None:
            detections = self._tracker.update(detections, timestamp=t)
            track_ids = np.asarray(detections.tracker_id)
            detections = select(detections, track_ids >= 0)
            if self._smoother is not None and len(detections):
                track_ids = np.asarray(detections.tracker_id)
                detections.xyxy = self._smoother.update(track_ids, detections.xyxy, t)
        if len(detections) and detections.confidence is not None:
            detections = select(detections, detections.confidence >= self._min_confidence)
        return detections
