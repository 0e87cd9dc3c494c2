"""Per-camera tracking: class filter, ByteTrack, box smoothing, confidence filter.

ByteTrack (the ``trackers`` package) with three changes for cameras that lose frames,
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
- Each track keeps a colour signature of its box (``streamd.appearance``), and a pair of
  track and box that looks clearly less alike than the best-looking pair of either is
  not matched (``LOOKS_VETO``): when two people cross, or one is seen again after frames
  were dropped, the box goes to the track it looks like rather than to the nearest one.
"""

from __future__ import annotations

import math
from typing import cast

import av
import numpy as np
import supervision as sv
from trackers import ByteTrackTracker
from trackers.core.bytetrack.tracklet import ByteTrackTracklet
from trackers.core.bytetrack.utils import _get_alive_tracklets
from trackers.utils.detections import default_confidences
from trackers.utils.predict_timing import PredictTiming
from trackers.utils.state_representations import XCYCWHStateEstimator

from streamd import appearance
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
# Colours (streamd.appearance, bench/identity.py: IDF1 at 66% of frames kept, median of 12 drop
# patterns, 0.881 by IoU alone, 0.913 with colours; the daemon's 8 cameras 0.868 -> 0.926):
# a pair that looks this much less alike than the best-looking pair of its track or box is
# not matched, and a smaller difference shrinks its IoU in proportion (0.33: 0.91, 0.2: 0.92).
LOOKS_VETO = 0.25
SIGNATURE_KEEP = 0.95  # a track's signature: this much of the old one, the rest from its new box
APART_IOU = 0.1  # a box overlapping another more than this does not update its track's signature


class _ByteTrack(ByteTrackTracker):
    """ByteTrack (trackers 2.6's update) with colour signatures and steady velocities in groups.

    The Kalman steps of all tracks run as one batched step each (``_predict``, ``_correct``)
    rather than track by track through trackers' objects: the same arithmetic, 0.4 instead
    of 0.9 ms a frame at about ten tracks (profiled on the shared video).
    """

    # Set up here, not in __init__: trackers checks __init__'s signature against its tuning
    # search space. Both map id(tracklet) to what is kept for a live tracklet.
    _velocity_before: dict[int, np.ndarray] | None = None  # kept while overlapping
    _signatures: dict[int, np.ndarray] | None = None  # its colours (streamd.appearance)

    def update(  # type: ignore[override]
        self, detections: sv.Detections, timestamp: float, looks: np.ndarray | None = None
    ) -> tuple[list[int], list[int]]:
        """The rows of ``detections`` that are returned and their track ids (-1: not tracked).

        ``looks`` are the detections' signatures (None: by IoU alone).
        """
        timing = self._predict_timing(timestamp)
        if timing.skip_update:
            return list(range(len(detections))), [-1] * len(detections)
        if not self.tracks and not len(detections):
            return [], []
        _predict(self.tracks, timing)
        budget = self._lost_track_time_budget(timing, self.maximum_time_without_update)
        self._prune_lost_tracks(timing)

        confidences = default_confidences(detections)
        high = np.flatnonzero(confidences >= self.high_conf_det_threshold)
        low = np.flatnonzero(confidences < self.high_conf_det_threshold)
        match = _Matching(self, np.asarray(detections.xyxy), looks)
        left = match.associate(self.tracks, high)  # high-confidence detections first, to every track
        match.associate(left, low)  # then low-confidence ones, to the tracks left
        match.correct()
        unmatched_high = match.unmatched(high)
        rows, ids = match.rows, match.ids
        for row in (*match.unmatched(low), *unmatched_high):  # returned without an id
            rows.append(row)
            ids.append(-1)
        for row in unmatched_high:
            if confidences[row] >= self.track_activation_threshold:
                match.spawn(row)

        self.tracks = _get_alive_tracklets(
            tracklets=self.tracks,
            minimum_consecutive_frames=self.minimum_consecutive_frames,
            maximum_frames_without_update=self.maximum_frames_without_update,
            maximum_time_without_update=budget,
        )
        live = {id(t) for t in self.tracks}
        self._signatures = {k: v for k, v in match.signatures.items() if k in live}
        self._keep_velocities_while_overlapping()
        return rows, ids

    def _keep_velocities_while_overlapping(self) -> None:
        tracks = self.tracks
        overlap = np.zeros(len(tracks))
        if len(tracks) > 1:
            boxes = _state_boxes(tracks)
            iou = _iou(boxes, boxes)
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


class _Matching:
    """One update's associations: the detections matched (rows, ids) and the tracks' signatures after."""

    def __init__(self, tracker: _ByteTrack, boxes: np.ndarray, looks: np.ndarray | None) -> None:
        self.tracker, self.boxes, self.looks = tracker, boxes, looks
        known = tracker._signatures or {}  # of live tracklets only: a new one may reuse a dead one's id()
        self.signatures = {id(t): known[id(t)] for t in tracker.tracks if id(t) in known}
        self.apart = _apart(boxes) if looks is not None else None
        self.rows: list[int] = []
        self.ids: list[int] = []
        self._taken: set[int] = set()
        self._updates: list[tuple[ByteTrackTracklet, int]] = []  # Kalman updates, made by correct()

    def associate(self, tracks: list[ByteTrackTracklet], rows: np.ndarray) -> list[ByteTrackTracklet]:
        """Match ``tracks`` with the detections ``rows``; the tracks left unmatched."""
        tracker = self.tracker
        similarity = _iou(_state_boxes(tracks), self.boxes[rows])
        self._weigh(similarity, tracks, rows)
        matched, unmatched, _ = tracker._get_associated_indices(similarity, tracker.minimum_iou_threshold)
        for r, c in matched:
            track, row = tracks[r], int(rows[c])
            # ByteTrackTracklet.update's bookkeeping; its Kalman update waits for correct().
            track.time_since_update, track.time_since_update_seconds = 0, 0.0
            track.number_of_successful_consecutive_updates += 1
            self._updates.append((track, row))
            confirmed = track.number_of_successful_consecutive_updates >= tracker.minimum_consecutive_frames
            if confirmed and track.tracker_id == -1:
                track.tracker_id = tracker._allocate_tracker_id()
            self._remember(track, row)
            self.rows.append(row)
            self.ids.append(track.tracker_id)
            self._taken.add(row)
        return [tracks[i] for i in unmatched]

    def correct(self) -> None:
        """The Kalman updates of every track matched so far, as one batched step."""
        if self._updates:
            tracks, rows = zip(*self._updates, strict=True)
            _correct(list(tracks), self.boxes[list(rows)])
            self._updates = []

    def unmatched(self, rows: np.ndarray) -> list[int]:
        return [int(r) for r in rows if int(r) not in self._taken]

    def spawn(self, row: int) -> None:
        """A new tracklet from detection ``row``."""
        tracklet = ByteTrackTracklet(
            initial_bbox=self.boxes[row], state_estimator_class=self.tracker.state_estimator_class
        )
        self.tracker.tracks.append(tracklet)
        if self.looks is not None and self.looks[row].any():
            self.signatures[id(tracklet)] = self.looks[row]

    def _weigh(self, similarity: np.ndarray, tracks: list[ByteTrackTracklet], rows: np.ndarray) -> None:
        """Shrink the IoU of pairs that look less alike than the best-looking pair of their track or box."""
        if self.looks is None or not similarity.size:
            return
        have = [i for i, t in enumerate(tracks) if id(t) in self.signatures]
        if not have:
            return
        alike = appearance.similarity(
            np.array([self.signatures[id(tracks[i])] for i in have]), self.looks[rows]
        )
        iou = similarity[have]
        candidates = np.where(iou > 0, alike, 0.0)
        best = np.maximum(candidates.max(axis=1, keepdims=True), candidates.max(axis=0, keepdims=True))
        penalty = np.clip(best - alike, 0.0, None) / LOOKS_VETO
        penalty[:, ~self.looks[rows].any(axis=1)] = 0.0  # a box too small for a signature: by IoU alone
        similarity[have] = iou * (1.0 - penalty)

    def _remember(self, track: ByteTrackTracklet, row: int) -> None:
        if self.looks is None or self.apart is None:
            return
        new, old = self.looks[row], self.signatures.get(id(track))
        if not new.any():  # too small for a signature
            return
        if old is None:
            self.signatures[id(track)] = new
        elif self.apart[row]:  # a box overlapping another mixes two people's colours
            self.signatures[id(track)] = np.sqrt(SIGNATURE_KEEP * old**2 + (1.0 - SIGNATURE_KEEP) * new**2)


def _predict(tracks: list[ByteTrackTracklet], timing: PredictTiming) -> None:
    """ByteTrackTracklet.predict of every track, batched: all share one transition and noise.

    A box's size is not extrapolated: its size velocity is zeroed first.
    """
    if timing.skip_predict or not tracks:
        return
    first = tracks[0].state_estimator
    first.motion.apply(first.kf, timing.frame_step, timing.frame_rate)  # F and Q for this step
    f, q = first.kf.transition_mtx, first.kf.process_noise
    filters = [t.state_estimator.kf for t in tracks]
    x = np.stack([kf.state for kf in filters])
    x[:, _SIZE_VELOCITY] = 0.0
    x = f @ x
    p = f @ np.stack([kf.state_covariance for kf in filters]) @ f.T + q
    for track, kf, state, covariance in zip(tracks, filters, x, p, strict=True):
        kf.state = kf.state_prior = state
        kf.state_covariance = kf.state_covariance_prior = covariance
        if track.time_since_update > 0:
            track.number_of_successful_consecutive_updates = 0
        track._advance_miss_clocks(timing)


def _correct(tracks: list[ByteTrackTracklet], boxes: np.ndarray) -> None:
    """KalmanFilter.update of each track with its box (xyxy), batched (H = [I 0], one R for all)."""
    filters = [t.state_estimator.kf for t in tracks]
    r = filters[0].measurement_noise
    xyxy = boxes.astype(np.float64)
    z = np.empty((len(xyxy), 4, 1))
    z[:, 2:, 0] = xyxy[:, 2:] - xyxy[:, :2]
    z[:, :2, 0] = xyxy[:, :2] + z[:, 2:, 0] * 0.5
    x = np.stack([kf.state for kf in filters])
    p = np.stack([kf.state_covariance for kf in filters])
    pht = p[:, :, :4]
    gain = pht @ np.linalg.inv(p[:, :4, :4] + r)
    x = x + gain @ (z - x[:, :4])
    i_kh = np.broadcast_to(np.eye(8), p.shape).copy()
    i_kh[:, :, :4] -= gain
    p = i_kh @ p @ i_kh.transpose(0, 2, 1) + gain @ r @ gain.transpose(0, 2, 1)
    for kf, state, covariance in zip(filters, x, p, strict=True):
        kf.state = kf.state_post = state
        kf.state_covariance = kf.state_covariance_post = covariance


def _state_boxes(tracks: list[ByteTrackTracklet]) -> np.ndarray:
    """The tracks' current boxes (xyxy) from their states (xc, yc, w, h, ...)."""
    if not tracks:
        return np.empty((0, 4))
    s = np.stack([t.state_estimator.kf.state[:4, 0] for t in tracks])
    half = s[:, 2:] * 0.5
    return np.hstack((s[:, :2] - half, s[:, :2] + half))


def _iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """IoU of every box of ``a`` with every box of ``b`` (xyxy), as float32, as ``sv.box_iou_batch``."""
    a, b = a.astype(np.float64, copy=False), b.astype(np.float64, copy=False)
    wh = np.minimum(a[:, None, 2:], b[None, :, 2:]) - np.maximum(a[:, None, :2], b[None, :, :2])
    np.clip(wh, 0.0, None, out=wh)
    inter = wh[..., 0] * wh[..., 1]
    area_a = (a[:, 2] - a[:, 0]) * (a[:, 3] - a[:, 1])
    area_b = (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])
    union = area_a[:, None] + area_b[None, :] - inter
    out = np.zeros(inter.shape, np.float32)
    np.divide(inter, union, out=out, where=union > 0)
    return out


def _apart(boxes: np.ndarray) -> np.ndarray:
    """Per box: whether it overlaps no other box by more than APART_IOU."""
    if len(boxes) < 2:
        return np.ones(len(boxes), bool)
    iou = _iou(boxes, boxes)
    np.fill_diagonal(iou, 0.0)
    return np.asarray(iou.max(axis=1) <= APART_IOU)


def select(detections: sv.Detections, mask: np.ndarray) -> sv.Detections:
    """The rows of ``detections`` where ``mask`` is true, as a new Detections."""
    return cast(sv.Detections, detections[mask])


class CameraTracker:
    """Turns one camera's raw detections into its published detections."""

    def __init__(self, camera: CameraConfig, class_ids: np.ndarray | None, nominal_fps: float) -> None:
        self._classes: np.ndarray | None = None  # tracked or not, by class id (np.isin cost 0.1 ms a frame)
        if class_ids is not None:
            self._classes = np.zeros(int(class_ids.max(initial=-1)) + 2, bool)  # the last: any other id
            self._classes[class_ids] = True
        self._min_confidence = camera.min_confidence
        cfg = camera.tracker
        self._appearance = cfg.appearance
        self._tracker = (
            _ByteTrack(
                lost_track_buffer=max(1, math.ceil(cfg.lost_track_s * _TRACKERS_REFERENCE_FPS)),
                frame_rate=nominal_fps,
                track_activation_threshold=cfg.activation_confidence,
                minimum_consecutive_frames=cfg.confirm_frames,
                minimum_iou_threshold=cfg.min_iou,
                high_conf_det_threshold=cfg.high_confidence,
                state_estimator_class=XCYCWHStateEstimator,
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

    def update(
        self, detections: sv.Detections, t: float, picture: av.VideoFrame | None = None
    ) -> sv.Detections:
        """Published detections for a frame captured at monotonic time ``t``."""
        if self._classes is not None and len(detections):
            ids = np.minimum(np.asarray(detections.class_id), len(self._classes) - 1)  # the last is False
            wanted = self._classes[ids]
            if not wanted.all():
                detections = select(detections, wanted)
        if self._tracker is None:
            if len(detections) and detections.confidence is not None:
                detections = select(detections, detections.confidence >= self._min_confidence)
            return detections
        looks = None
        if self._appearance and picture is not None and len(detections):
            looks = appearance.signatures(picture, np.asarray(detections.xyxy))
        rows, ids = self._tracker.update(detections, t, looks)
        track_ids = np.array(ids, dtype=int)
        tracked = np.array(rows, dtype=np.intp)[track_ids >= 0]  # unconfirmed and untracked: not published
        track_ids = track_ids[track_ids >= 0]
        boxes = np.asarray(detections.xyxy)[tracked]
        if self._smoother is not None and len(tracked):
            boxes = self._smoother.update(track_ids, boxes, t)
        if detections.confidence is not None:
            confident = detections.confidence[tracked] >= self._min_confidence
            tracked, track_ids, boxes = tracked[confident], track_ids[confident], boxes[confident]
        published = cast(sv.Detections, detections[tracked])  # one copy of the rows kept, in their order
        published.xyxy = boxes
        published.tracker_id = track_ids
        return published
