"""Per-camera tracking: class filter, ByteTrack, box smoothing, confidence filter.

ByteTrack as the ``trackers`` package runs it, on arrays of tracks (``_ByteTrack``), with
three changes for cameras that lose frames, measured with ``bench/identity.py`` (the
video as one of many cameras against the same video seen whole, IDF1 of the track ids;
docs/events.md has the numbers):

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
_POSITION = slice(0, 4)
# Colours (streamd.appearance, bench/identity.py: IDF1 at 66% of frames kept, median of 12 drop
# patterns, 0.881 by IoU alone, 0.913 with colours; the daemon's 8 cameras 0.868 -> 0.926):
# a pair that looks this much less alike than the best-looking pair of its track or box is
# not matched, and a smaller difference shrinks its IoU in proportion (0.33: 0.91, 0.2: 0.92).
LOOKS_VETO = 0.25
SIGNATURE_KEEP = 0.95  # a track's signature: this much of the old one, the rest from its new box
APART_IOU = 0.1  # a box overlapping another more than this does not update its track's signature


class _Tracks:
    """A camera's tracks, a row each: what trackers keeps in one ByteTrackTracklet object per track."""

    COLUMNS = ("state", "covariance", "ids", "misses", "missed_s", "streak", "looks", "steady")

    def __init__(self, *columns: np.ndarray) -> None:
        self.state: np.ndarray  # (n, 8): xc, yc, w, h and their velocities (XCYCWH)
        self.covariance: np.ndarray  # (n, 3): pp, pv, vv of each coordinate (_Motion)
        self.ids: np.ndarray  # track id; -1 until confirmed
        self.misses: np.ndarray  # predictions since its last match (time_since_update)
        self.missed_s: np.ndarray  # seconds since its last match
        self.streak: np.ndarray  # consecutive matches (number_of_successful_consecutive_updates)
        self.looks: np.ndarray  # (n, appearance.LENGTH) colour signature; zeros: none yet
        self.steady: np.ndarray  # (n, 4) velocity kept while it overlaps another; NaN: it does not
        for name, column in zip(self.COLUMNS, columns, strict=True):
            setattr(self, name, column)

    @classmethod
    def born(cls, xyxy: np.ndarray, covariance: np.ndarray, looks: np.ndarray | None) -> _Tracks:
        """New tracks from boxes (ByteTrackTracklet's initial state: the box, no velocity, one match)."""
        n = len(xyxy)
        state = np.zeros((n, 8))
        state[:, _POSITION] = _xcycwh(xyxy)
        return cls(
            state,
            np.broadcast_to(covariance, (n, 3)).copy(),
            np.full(n, -1, np.int64),
            np.zeros(n, np.int64),
            np.zeros(n),
            np.ones(n, np.int64),
            np.zeros((n, appearance.LENGTH), np.float32) if looks is None else looks.astype(np.float32),
            np.full((n, 4), np.nan),
        )

    def __len__(self) -> int:
        return len(self.ids)

    def take(self, rows: np.ndarray) -> _Tracks:
        """The tracks at ``rows`` (indices or a mask), in that order."""
        return _Tracks(*(getattr(self, name)[rows] for name in self.COLUMNS))

    def extend(self, other: _Tracks) -> _Tracks:
        """These tracks, then ``other``'s."""
        return _Tracks(*(np.concatenate((getattr(self, n), getattr(other, n))) for n in self.COLUMNS))

    def boxes(self) -> np.ndarray:
        """The tracks' current boxes (xyxy)."""
        s = self.state[:, _POSITION]
        half = s[:, 2:] * 0.5
        return np.hstack((s[:, :2] - half, s[:, :2] + half))


class _ByteTrack:
    """ByteTrack (trackers 2.6's update) on arrays of tracks, with colours and steady velocities in groups.

    trackers' ByteTrackTracker supplies the settings, the clock (a predict step from the
    timestamps) and the id allocator; its tracklet supplies the Kalman model (_Motion).
    The tracks themselves are rows of arrays, so that every step runs for all of them at
    once, with the same ids and boxes as trackers' objects one by one.
    """

    def __init__(self, settings: ByteTrackTracker) -> None:
        self._settings = settings
        self._motion = _Motion()
        self._tracks = _Tracks.born(np.empty((0, 4)), self._motion.first, None)

    def update(
        self, detections: sv.Detections, timestamp: float, looks: np.ndarray | None = None
    ) -> tuple[list[int], list[int]]:
        """The rows of ``detections`` that are returned and their track ids (-1: not tracked).

        ``looks`` are the detections' signatures (None: by IoU alone).
        """
        settings = self._settings
        timing = settings._predict_timing(timestamp)
        if timing.skip_update:
            return list(range(len(detections))), [-1] * len(detections)
        if not len(self._tracks) and not len(detections):
            return [], []
        self._predict(timing)
        budget = settings._lost_track_time_budget(timing, settings.maximum_time_without_update)
        if budget is not None:  # expired by time: not matched again (trackers' _prune_lost_tracks)
            # A track seen on the previous frame is not lost, however late this one comes
            # (trackers would drop every track of a camera whose frames are over budget apart).
            self._tracks = self._tracks.take((self._tracks.missed_s <= budget) | (self._tracks.misses <= 1))
        tracks = self._tracks

        boxes = np.asarray(detections.xyxy)
        confidences = default_confidences(detections)
        high = np.flatnonzero(confidences >= settings.high_conf_det_threshold)
        low = np.flatnonzero(confidences < settings.high_conf_det_threshold)
        match = _Matching(settings, tracks, boxes, looks)
        left = match.associate(np.arange(len(tracks)), high)  # high-confidence first, to every track
        match.associate(left, low)  # then low-confidence ones, to the tracks left
        match.finish(self._motion.r)
        taken = np.zeros(len(detections), bool)
        taken[match.rows] = True
        unmatched_high = high[~taken[high]]
        rows = [*match.rows, *low[~taken[low]].tolist(), *unmatched_high.tolist()]
        ids = [*match.ids, *[-1] * (len(rows) - len(match.ids))]
        spawn = unmatched_high[confidences[unmatched_high] >= settings.track_activation_threshold]
        if len(spawn):
            born = _Tracks.born(boxes[spawn], self._motion.first, None if looks is None else looks[spawn])
            tracks = tracks.extend(born)

        # trackers' _get_alive_tracklets: within the lost-track budget, and confirmed or just matched
        within = (
            tracks.missed_s <= budget
            if budget is not None
            else tracks.misses <= settings.maximum_frames_without_update
        )
        confirmed = (tracks.ids != -1) | (tracks.streak >= settings.minimum_consecutive_frames)
        self._tracks = tracks.take(within & (confirmed | (tracks.misses == 0)))
        _keep_velocities_while_overlapping(self._tracks)
        return rows, ids

    def _predict(self, timing: PredictTiming) -> None:
        """ByteTrackTracklet.predict of every track: one transition and noise for all.

        A box's size is not extrapolated: its size velocity is zeroed first.
        """
        tracks = self._tracks
        if timing.skip_predict or not len(tracks):
            return
        dt, (qa, qb, qc) = self._motion.step(timing)
        x = tracks.state
        x[:, _SIZE_VELOCITY] = 0.0
        x[:, _POSITION] += dt * x[:, _VELOCITY]
        pp, pv, vv = tracks.covariance.T
        a, b = pp + dt * pv, pv + dt * vv  # F P
        tracks.covariance = np.column_stack((a + dt * b + qa, b + qb, vv + qc))  # F P F' + Q
        tracks.streak[tracks.misses > 0] = 0
        tracks.misses += 1
        if timing.elapsed_seconds is None:  # fixed-rate mode: trackers keeps no seconds
            tracks.missed_s[:] = 0.0
        else:
            tracks.missed_s += timing.elapsed_seconds


class _Matching:
    """One update's associations: the detections matched (rows, ids) and what they change in the tracks.

    The IoU and the likeness of every track with every box are computed once, for both
    rounds of association.
    """

    def __init__(
        self, settings: ByteTrackTracker, tracks: _Tracks, boxes: np.ndarray, looks: np.ndarray | None
    ) -> None:
        self.settings, self.tracks, self.boxes, self.looks = settings, tracks, boxes, looks
        self.iou = _iou(tracks.boxes(), boxes)
        self.alike = appearance.similarity(tracks.looks, looks) if looks is not None else None
        self.rows: list[int] = []
        self.ids: list[int] = []
        self._matched: list[int] = []  # the track of each of rows

    def associate(self, which: np.ndarray, rows: np.ndarray) -> np.ndarray:
        """Match the tracks ``which`` with the detections ``rows``; the tracks left unmatched."""
        settings, tracks = self.settings, self.tracks
        pairs = np.ix_(which, rows)
        similarity = self.iou[pairs]
        if self.alike is not None and similarity.size:
            self._weigh(similarity, self.alike[pairs], which, rows)
        matched, unmatched, _ = settings._get_associated_indices(similarity, settings.minimum_iou_threshold)
        if matched:
            r, c = np.array(matched).T
            track, row = which[r], rows[c]
            # ByteTrackTracklet.update's bookkeeping; its Kalman update waits for finish().
            tracks.misses[track], tracks.missed_s[track] = 0, 0.0
            tracks.streak[track] += 1
            confirmed = (tracks.ids[track] == -1) & (
                tracks.streak[track] >= settings.minimum_consecutive_frames
            )
            for t in track[confirmed]:  # ids in the order trackers gives them
                tracks.ids[t] = settings._allocate_tracker_id()
            self._matched.extend(track.tolist())
            self.rows.extend(row.tolist())
            self.ids.extend(tracks.ids[track].tolist())
        return which[unmatched]

    def finish(self, measurement_noise: float) -> None:
        """The Kalman updates of every track matched, as one batched step, and their signatures."""
        if not self._matched:
            return
        which, rows = np.array(self._matched), np.array(self.rows)
        _correct(self.tracks, which, self.boxes[rows], measurement_noise)
        if self.looks is not None:
            self._remember(which, rows)

    def _weigh(self, similarity: np.ndarray, alike: np.ndarray, which: np.ndarray, rows: np.ndarray) -> None:
        """Shrink the IoU of pairs that look less alike than the best-looking pair of their track or box."""
        assert self.looks is not None
        have = self.tracks.looks[which].any(axis=1)  # tracks without a signature: by IoU alone
        if not have.any():
            return
        alike = alike[have]
        iou = similarity[have]
        candidates = np.where(iou > 0, alike, 0.0)
        best = np.maximum(candidates.max(axis=1, keepdims=True), candidates.max(axis=0, keepdims=True))
        penalty = np.clip(best - alike, 0.0, None) / LOOKS_VETO
        penalty[:, ~self.looks[rows].any(axis=1)] = 0.0  # a box too small for a signature: by IoU alone
        similarity[have] = iou * (1.0 - penalty)

    def _remember(self, which: np.ndarray, rows: np.ndarray) -> None:
        """Matched tracks' signatures: a new track's is its box's; a box apart from others blends in."""
        assert self.looks is not None
        new = self.looks[rows]
        old = self.tracks.looks[which]
        seen = new.any(axis=1)  # a box too small has no signature
        first = seen & ~old.any(axis=1)
        # Only a box apart from the others blends in: an overlapping one mixes two people's colours.
        blend = seen & ~first & _apart(self.boxes)[rows]
        looks = self.tracks.looks
        looks[which[first]] = new[first]
        looks[which[blend]] = np.sqrt(
            SIGNATURE_KEEP * old[blend] ** 2 + (1.0 - SIGNATURE_KEEP) * new[blend] ** 2
        )


def _keep_velocities_while_overlapping(tracks: _Tracks) -> None:
    """Tracks overlapping another keep the velocity they had when the overlap began."""
    overlap = np.zeros(len(tracks))
    if len(tracks) > 1:
        boxes = tracks.boxes()
        iou = _iou(boxes, boxes)
        np.fill_diagonal(iou, 0.0)
        overlap = iou.max(axis=1)
    over = overlap > OVERLAP_IOU
    kept = over & ~np.isnan(tracks.steady[:, 0])
    starts = over & ~kept
    tracks.state[kept, _VELOCITY] = tracks.steady[kept]
    tracks.steady[starts] = tracks.state[starts, _VELOCITY]
    tracks.steady[~over] = np.nan


def _correct(tracks: _Tracks, which: np.ndarray, boxes: np.ndarray, r: float) -> None:
    """KalmanFilter.update of the tracks ``which``, each with its box (xyxy), for all at once.

    Per coordinate: H = [1 0], gain k = P H' / (H P H' + r), and P in Joseph form,
    (I - k H) P (I - k H)' + k r k', as trackers' filter computes it.
    """
    x = tracks.state[which]
    pp, pv, vv = tracks.covariance[which].T
    s = pp + r
    k0, k1 = pp / s, pv / s
    innovation = _xcycwh(boxes) - x[:, _POSITION]
    x[:, _POSITION] += k0[:, None] * innovation
    x[:, _VELOCITY] += k1[:, None] * innovation
    a = 1.0 - k0
    tracks.state[which] = x
    tracks.covariance[which] = np.column_stack(
        (
            a * a * pp + k0 * k0 * r,
            a * (pv - k1 * pp) + k0 * k1 * r,
            k1 * k1 * pp - 2.0 * k1 * pv + vv + k1 * k1 * r,
        )
    )


def _xcycwh(xyxy: np.ndarray) -> np.ndarray:
    """Boxes as centre, width and height (float64, as trackers' xyxy_to_xywh)."""
    xyxy = xyxy.astype(np.float64)
    wh = xyxy[:, 2:] - xyxy[:, :2]
    return np.hstack((xyxy[:, :2] + wh * 0.5, wh))


class _Motion:
    """trackers' constant-velocity Kalman model of ByteTrack's XCYCWH boxes, as one 2x2 block.

    Its F, Q, R and first covariance tie each coordinate (xc, yc, w, h) to its own velocity
    only, with the same numbers for all four, so a track's covariance is one 2x2 matrix,
    kept as (pp, pv, vv), for its four coordinates. ``_block`` checks that this holds.
    """

    def __init__(self) -> None:
        self._estimator = ByteTrackTracklet(np.zeros(4), XCYCWHStateEstimator).state_estimator
        kf = self._estimator.kf
        self.first = _block(kf.state_covariance)  # of a new track
        r = kf.measurement_noise
        if not np.array_equal(r, r[0, 0] * np.eye(4)):
            raise ValueError(f"trackers' ByteTrack measurement noise is not one number per coordinate: {r}")
        self.r = float(r[0, 0])
        self._q: np.ndarray | None = None
        self._q_block = self.first

    def step(self, timing: PredictTiming) -> tuple[float, np.ndarray]:
        """F's position-from-velocity term and Q (pp, pv, vv) for a predict step."""
        kf = self._estimator.kf
        self._estimator.motion.apply(kf, timing.frame_step, timing.frame_rate)  # cached by frame step
        if kf.process_noise is not self._q:
            self._q, self._q_block = kf.process_noise, _block(kf.process_noise)
        f = kf.transition_mtx
        return float(f[0, 4]), self._q_block


def _block(m: np.ndarray) -> np.ndarray:
    """(pp, pv, vv) of an 8x8 matrix made of the same 2x2 block for each coordinate."""
    block = np.array([m[0, 0], m[0, 4], m[4, 4]])
    if not np.array_equal(m, np.kron([[block[0], block[1]], [block[1], block[2]]], np.eye(4))):
        raise ValueError(f"trackers' ByteTrack Kalman matrix is not one 2x2 block per coordinate: {m}")
    return block


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
                ByteTrackTracker(
                    lost_track_buffer=max(1, math.ceil(cfg.lost_track_s * _TRACKERS_REFERENCE_FPS)),
                    frame_rate=nominal_fps,
                    track_activation_threshold=cfg.activation_confidence,
                    minimum_consecutive_frames=cfg.confirm_frames,
                    minimum_iou_threshold=cfg.min_iou,
                    high_conf_det_threshold=cfg.high_confidence,
                    state_estimator_class=XCYCWHStateEstimator,
                )
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
