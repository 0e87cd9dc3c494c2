"""Per-camera tracking with the real ByteTrack: durations in seconds hold at any frame rate."""

from __future__ import annotations

import numpy as np
import pytest
import supervision as sv
from trackers import ByteTrackTracker
from trackers.core.bytetrack.tracklet import ByteTrackTracklet
from trackers.utils.predict_timing import PredictTiming
from trackers.utils.state_representations import XCYCWHStateEstimator

from streamd.config import CameraConfig
from streamd.track import CameraTracker, _block, _ByteTrack, _correct, _Tracks


def camera(**overrides) -> CameraConfig:
    base = {"id": "cam", "url": "rtsp://127.0.0.1/x", "tracker": {"lost_track_s": 1.0}, "min_confidence": 0.3}
    return CameraConfig.model_validate({**base, **overrides})


def person(x: float, confidence: float = 0.9) -> sv.Detections:
    return sv.Detections(
        xyxy=np.array([[x, 100, x + 40, 200]], np.float32),
        confidence=np.array([confidence], np.float32),
        class_id=np.array([0]),
        data={"class_name": np.array(["person"])},
    )


def run(
    tracker: CameraTracker, fps: float, seconds: float, *, t0: float, visible: bool, x0: float
) -> tuple[float, list]:
    """Feed ``seconds`` of frames at ``fps``; the person moves 20 px/s. Returns the end time and the outputs."""
    outputs = []
    n = round(seconds * fps)
    for i in range(n):
        t = t0 + i / fps
        dets = person(x0 + 20 * (t - t0)) if visible else sv.Detections.empty()
        outputs.append(tracker.update(dets, t))
    return t0 + n / fps, outputs


@pytest.mark.parametrize("fps", [2, 5, 30])
def test_a_track_survives_a_gap_shorter_than_lost_track_s_at_any_fps(fps):
    tracker = CameraTracker(camera(), class_ids=None, nominal_fps=fps)
    t, seen = run(tracker, fps, 2.0, t0=0.0, visible=True, x0=100)
    first_id = int(seen[-1].tracker_id[0])
    t, _ = run(tracker, fps, 0.5, t0=t, visible=False, x0=0)  # gap of 0.5 s < 1.0 s
    _, again = run(tracker, fps, 1.0, t0=t, visible=True, x0=100 + 20 * t)
    assert int(again[-1].tracker_id[0]) == first_id


@pytest.mark.parametrize("fps", [2, 5, 30])
def test_a_track_lost_longer_than_lost_track_s_gets_a_new_id_at_any_fps(fps):
    tracker = CameraTracker(camera(), class_ids=None, nominal_fps=fps)
    t, seen = run(tracker, fps, 2.0, t0=0.0, visible=True, x0=100)
    first_id = int(seen[-1].tracker_id[0])
    t, _ = run(tracker, fps, 2.0, t0=t, visible=False, x0=0)  # gap of 2 s > 1.0 s
    _, again = run(tracker, fps, 2.0, t0=t, visible=True, x0=100 + 20 * t)
    assert int(again[-1].tracker_id[0]) != first_id


def test_class_filter_drops_other_classes_before_tracking():
    tracker = CameraTracker(camera(), class_ids=np.array([2]), nominal_fps=10)
    _, outputs = run(tracker, 10, 1.0, t0=0.0, visible=True, x0=100)
    assert all(len(out) == 0 for out in outputs)


def test_tracking_off_publishes_every_detection_without_track_ids():
    tracker = CameraTracker(camera(tracker={"enabled": False}), class_ids=None, nominal_fps=10)
    out = tracker.update(person(100), 0.0)
    assert len(out) == 1
    assert out.tracker_id is None


def test_smoothing_lags_a_jump_and_can_be_switched_off():
    results = {}
    for enabled in (True, False):
        tracker = CameraTracker(camera(smoothing={"enabled": enabled, "time_constant_s": 0.5}), None, 10)
        for i in range(20):
            tracker.update(person(100), i / 10)
        out = tracker.update(person(110), 2.0)  # a 10 px jump, still the same track
        results[enabled] = float(out.xyxy[0, 0])
    assert results[False] == pytest.approx(110, abs=0.5)
    assert 100 < results[True] < 105  # moved 1 - exp(-0.1 / 0.5) = 18% of the way


def test_low_confidence_frames_keep_the_track_but_are_not_published():
    tracker = CameraTracker(camera(min_confidence=0.5), class_ids=None, nominal_fps=10)
    for i in range(10):
        out = tracker.update(person(100 + i), i / 10)
    track_id = int(out.tracker_id[0])
    assert len(tracker.update(person(110, confidence=0.3), 1.0)) == 0  # matched in ByteTrack's second stage
    back = tracker.update(person(111), 1.1)
    assert int(back.tracker_id[0]) == track_id


def test_batched_kalman_steps_are_trackers_steps_track_by_track():
    """The tracks' arrays step as trackers' tracklets do one by one (a 2x2 block per coordinate)."""
    rng = np.random.default_rng(3)
    boxes = rng.uniform(0, 300, (5, 2))
    boxes = np.hstack((boxes, boxes + rng.uniform(20, 80, (5, 2))))
    ours = _ByteTrack(ByteTrackTracker(state_estimator_class=XCYCWHStateEstimator))
    ours._tracks = _Tracks.born(boxes, ours._motion.first, None)
    theirs = [ByteTrackTracklet(b, XCYCWHStateEstimator) for b in boxes]
    for timing in (
        PredictTiming(frame_step=2.5, elapsed_seconds=0.25),
        PredictTiming(1.0, 0.1),
    ):  # a gap: Q scaled
        ours._predict(timing)
        for t in theirs:
            t.state_estimator.kf.state[6:8] = 0.0  # sizes are not extrapolated
            t.predict(timing)
        measured = boxes + rng.normal(0, 3, boxes.shape)
        _correct(ours._tracks, np.arange(len(boxes)), measured, ours._motion.r)
        for t, b in zip(theirs, measured, strict=True):
            t.update(b)
    tracks = ours._tracks
    for i, t in enumerate(theirs):
        kf = t.state_estimator.kf
        pp, pv, vv = tracks.covariance[i]
        assert np.allclose(tracks.state[i], kf.state.ravel())
        assert np.allclose(np.kron([[pp, pv], [pv, vv]], np.eye(4)), kf.state_covariance)


def test_a_kalman_model_that_is_not_one_block_per_coordinate_is_refused():
    """Should trackers' ByteTrack tuning stop being one 2x2 block for all coordinates, this fails loudly."""
    scaled = np.eye(8)
    scaled[2, 2] = 4.0  # the width's own variance
    with pytest.raises(ValueError, match="2x2 block"):
        _block(scaled)


def test_frames_further_apart_than_the_lost_track_time_still_keep_their_tracks():
    """A 1 fps cap with a late frame (1.02 s) must not drop tracks seen on the frame before."""
    tracker = CameraTracker(camera(fps=1), None, nominal_fps=10.0)
    published = [tracker.update(person(100.0 + 5 * i), 1.02 * i) for i in range(6)]
    assert [len(p) for p in published[1:]] == [1] * 5
    assert len({int(p.tracker_id[0]) for p in published[1:]}) == 1
    # A track unseen on a frame is lost: gone once lost_track_s (1 s) has passed.
    tracker.update(sv.Detections.empty(), 1.02 * 6)
    assert len(tracker.update(person(130.0), 1.02 * 7)) == 0
