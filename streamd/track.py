"""Per-camera tracking: class filter, ByteTrack, box smoothing, confidence filter.

ByteTrack (the ``trackers`` package) with two changes for cameras that lose frames,
measured with ``bench/identity.py`` (the video as one of many cameras against the same
video seen whole, IDF1 of the track ids; docs/events.md has the numbers):

- A track's box moves with its velocity between observations, but its size does not
  change with it: a person half hidden behind a post shrinks for a frame or two, and
  carried over a gap of dropped frames that shrink collapsed the predicted box so that
  the person, seen whole again, became a new track.
- While two tracks overlap (IoU of their boxes above ``OVERLAP_IOU``), each keeps the
  velocity it had before: two people walking together often come out of the detector as
  one box, and whichever track takes it would learn that box's motion, so which of them
  keeps which id after they part depended on which frames happened to be seen. With the
  velocities from before, it depends on how each of them was moving, in every run.
"""

from __future__ import annotations

import math
from typing import cast

import numpy as np
import supervision as sv
from trackers import ByteTrackTracker
from trackers.utils.iou import IoU
from trackers.utils.state_representations import XCYCWHStateEstimator

from streamd.config import CameraConfig
from streamd.smoothing import BoxSmoother

__all__ = ["CameraTracker", "select"]

# trackers expresses its lost-track buffer in frames of a 30 fps video; with
# timestamps it turns that into seconds (buffer / 30), whatever the real rate.
_TRACKERS_REFERENCE_FPS = 30.0
# Tracks overlapping more than this keep the velocities they had before (bench/identity.py:
# at 70% of frames kept, IDF1 median 0.884 with 0.3 against 0.822 without; 0.5: 0.816).
OVERLAP_IOU = 0.3
# XCYCWH state layout: [xc, yc, w, h, vx, vy, vw, vh]
_SIZE_VELOCITY = slice(6, 8)
_VELOCITY = slice(4, 8)


class _SteadySize(XCYCWHStateEstimator):
    """A box whose centre moves with its velocity and whose size is not extrapolated."""

    def clamp_velocity(self, frame_step: float = 1.0) -> None:
        # Called by trackers before each prediction: the size changes only with measurements.
        self.kf.state[_SIZE_VELOCITY] = 0.0


class _ByteTrack(ByteTrackTracker):
    """ByteTrack in which overlapping tracks keep the velocity they had before they met."""

    # id(tracklet) -> the velocity it keeps while overlapping (trackers checks __init__'s
    # signature against its tuning search space, so this is not set up there).
    _velocity_before: dict[int, np.ndarray] | None = None

    def update(
        self, detections: sv.Detections, frame: np.ndarray | None = None, timestamp: float | None = None
    ) -> sv.Detections:
        result: sv.Detections = super().update(detections, frame=frame, timestamp=timestamp)
        tracks = self.tracks
        overlap = np.zeros(len(tracks))
        if len(tracks) > 1:
            boxes = np.array([t.get_state_bbox() for t in tracks])
            iou = IoU().compute(boxes, boxes)
            np.fill_diagonal(iou, 0.0)
            overlap = iou.max(axis=1)
        kept: dict[int, np.ndarray] = {}
        for track, worst in zip(tracks, overlap, strict=True):
            if worst <= OVERLAP_IOU:
                continue
            state = track.state_estimator.kf.state
            before = (self._velocity_before or {}).get(id(track))
            if before is None:
                kept[id(track)] = state[_VELOCITY].copy()
            else:
                state[_VELOCITY] = before
                kept[id(track)] = before
        self._velocity_before = kept  # only live, overlapping tracks: ids of dead ones cannot linger
        return result


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
            _ByteTrack(
                lost_track_buffer=max(1, math.ceil(cfg.lost_track_s * _TRACKERS_REFERENCE_FPS)),
                frame_rate=nominal_fps,
                track_activation_threshold=cfg.activation_confidence,
                minimum_consecutive_frames=cfg.confirm_frames,
                minimum_iou_threshold=cfg.min_iou,
                high_conf_det_threshold=cfg.high_confidence,
                state_estimator_class=_SteadySize,
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
